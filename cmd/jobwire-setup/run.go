package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jobwire/jobwire/internal/backoff"
	"github.com/jobwire/jobwire/internal/envflag"
	"github.com/jobwire/jobwire/internal/natsconn"
	"github.com/jobwire/jobwire/internal/settings"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// config is everything jobwire-setup can be told; flags default to env vars.
type config struct {
	NATSURL   string
	NATS      natsconn.Auth
	Retention settings.Retention // with JETSTREAM_REPLICAS
	Timeout   time.Duration
	Logging   settings.Logging
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	s := envflag.New("jobwire-setup", getenv, stderr)
	s.String(&c.NATSURL, "nats-url", "NATS_URL", "", "NATS server URL(s), comma separated (required)")
	c.Retention.Register(s)
	s.Duration(&c.Timeout, "timeout", "SETUP_TIMEOUT", time.Minute, "give up when NATS and JetStream are not ready and the topology not set up after this long")
	c.NATS.RegisterFlags(s)
	c.Logging.Register(s)
	if err := s.Parse(args); err != nil {
		return c, err
	}
	s.Check(c.NATSURL != "", "NATS_URL (--nats-url) is required")
	c.Logging.Check(s)
	s.Check(c.Timeout > 0, "SETUP_TIMEOUT (--timeout) must be positive")
	c.Retention.Check(s)
	if err := c.NATS.Validate(); err != nil {
		s.Errorf("%v", err)
	}
	return c, s.Err()
}

// run is the whole command; main only adds signals.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, envflag.ErrHelp) {
		return nil // the usage is printed: asking for it is no failure
	}
	if err != nil {
		return err
	}
	log := cfg.Logging.Logger(stderr, false)
	ctx, cancel := context.WithTimeoutCause(ctx, cfg.Timeout, fmt.Errorf("not done within %v (--timeout)", cfg.Timeout))
	defer cancel()
	// A permissions violation is no reason to wait: this user may not do it.
	ctx, refuse := context.WithCancelCause(ctx)
	defer refuse(nil)
	opts, err := cfg.NATS.Options()
	if err != nil {
		return err
	}
	opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			refuse(fmt.Errorf("%w: this NATS user may not set up jobwire's streams and buckets; use one that may (deploy/nats: user setup)", err))
			return
		}
		log.Error("nats error", "err", err)
	}))
	nc, err := natsconn.Connect(ctx, cfg.NATSURL, "jobwire-setup", log, opts...)
	if err != nil {
		return fmt.Errorf("%w (%v)", context.Cause(ctx), err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	topo := cfg.Retention.Topology()
	wait := backoff.Backoff{Base: 250 * time.Millisecond, Max: 5 * time.Second}
	warn := backoff.Warner{Log: log, Every: 10 * time.Second}
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		done, err := setUp(actx, js, topo)
		cancel()
		if err == nil {
			for _, line := range done {
				fmt.Fprintln(stdout, line)
			}
			fmt.Fprintf(stdout, "jobwire-setup: the topology is set up on %s\n", nc.ConnectedUrlRedacted())
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (last error: %v)", context.Cause(ctx), err)
		}
		if !retryable(err) {
			return err
		}
		warn.Warn("waiting for NATS JetStream", err, "failures", wait.Failures()+1)
		if !wait.Wait(ctx) {
			return fmt.Errorf("%w (last error: %v)", context.Cause(ctx), err)
		}
	}
}

// retryable reports whether err may go away by itself: no answer (NATS or
// JetStream starting), JetStream unavailable, a cluster still forming.
func retryable(err error) bool {
	var te *jobs.TopologyError
	if errors.As(err, &te) {
		return false
	}
	var api *jetstream.APIError
	if !errors.As(err, &api) {
		return true
	}
	const noSuitablePeers jetstream.ErrorCode = 10005 // placement before the cluster's peers are known
	return api.Code >= 500 || api.ErrorCode == noSuitablePeers
}

// topology is every stream and bucket of jobs.Topology, in its order.
var topology = []struct{ kind, name, stream string }{
	{"stream", jobs.Stream, jobs.Stream},
	{"stream", jobs.RecordsStream, jobs.RecordsStream},
	{"stream", jobs.IndexStream, jobs.IndexStream},
	{"stream", jobs.CountsStream, jobs.CountsStream},
	{"stream", jobs.MinutesStream, jobs.MinutesStream},
	{"stream", jobs.TimersStream, jobs.TimersStream},
	{"bucket", jobs.TypesBucket, jobs.BucketStream(jobs.TypesBucket)},
	{"bucket", jobs.IdempotencyBucket, jobs.BucketStream(jobs.IdempotencyBucket)},
}

// setUp creates or updates the topology and says, for each stream and
// bucket, whether it was created, updated (and how) or left unchanged.
// It ends with the services' own check, so what it leaves is what they
// accept.
func setUp(ctx context.Context, js jetstream.JetStream, topo jobs.Topology) ([]string, error) {
	before := map[string]map[string]any{}
	for _, it := range topology {
		cfg, err := streamConfig(ctx, js, it.stream)
		if err != nil {
			return nil, err
		}
		before[it.stream] = cfg
	}
	diffs := map[string][]string{}
	var te *jobs.TopologyError
	if _, err := topo.Check(ctx, js); errors.As(err, &te) {
		for _, p := range te.Problems {
			diffs[p.Kind+" "+p.Name] = p.Diffs
		}
	} else if err != nil {
		return nil, err
	}
	if _, err := topo.CreateOrUpdate(ctx, js); err != nil {
		return nil, err
	}
	if _, err := topo.Check(ctx, js); err != nil {
		return nil, fmt.Errorf("after creating or updating: %w", err)
	}
	var lines []string
	for _, it := range topology {
		after, err := streamConfig(ctx, js, it.stream)
		if err != nil {
			return nil, err
		}
		what := "unchanged"
		switch changed := changedFields(before[it.stream], after); {
		case before[it.stream] == nil:
			what = "created"
		case len(diffs[it.kind+" "+it.name]) > 0:
			what = "updated: " + strings.Join(diffs[it.kind+" "+it.name], ", ")
		case len(changed) > 0:
			what = "updated: " + strings.Join(changed, ", ")
		}
		lines = append(lines, it.kind+" "+it.name+": "+what)
	}
	return lines, nil
}

// streamConfig is the configuration of stream as the server reports it,
// as JSON fields; nil when there is no such stream.
func streamConfig(ctx context.Context, js jetstream.JetStream, stream string) (map[string]any, error) {
	s, err := js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	b, err := json.Marshal(s.CachedInfo().Config)
	if err != nil {
		return nil, err
	}
	var fields map[string]any
	return fields, json.Unmarshal(b, &fields)
}

// changedFields are the names of the fields whose values differ.
func changedFields(a, b map[string]any) []string {
	var changed []string
	for _, k := range slices.Sorted(maps.Keys(b)) {
		if fmt.Sprint(a[k]) != fmt.Sprint(b[k]) {
			changed = append(changed, k)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			changed = append(changed, k)
		}
	}
	return changed
}
