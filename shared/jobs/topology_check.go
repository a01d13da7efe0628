package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Check looks the streams and buckets up without creating or changing
// anything: for services whose NATS user may not create streams (a set-up
// step, jobwire-setup, runs CreateOrUpdate with admin rights). It returns
// the same handles as CreateOrUpdate when every stream and bucket exists
// and matches t in what jobwire depends on: subjects, retention policy,
// storage, replicas, limits (age, messages per subject, discard, deny
// delete/purge, duplicates window, no overall caps), direct gets,
// republishing. Otherwise it returns a *TopologyError listing every
// missing or different one together, or the error of a look-up that
// failed for another reason (NATS not ready, no permission).
func (t Topology) Check(ctx context.Context, js jetstream.JetStream) (*Streams, error) {
	t = t.withDefaults()
	var s Streams
	var problems []TopologyProblem
	look := func(kind, name, stream string, want jetstream.StreamConfig) (bool, error) {
		got, err := js.Stream(ctx, stream)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			problems = append(problems, TopologyProblem{Kind: kind, Name: name, Missing: true})
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("%s %s: %w", kind, name, err)
		}
		if diffs := configDiffs(want, got.CachedInfo().Config, kind == "bucket"); len(diffs) > 0 {
			problems = append(problems, TopologyProblem{Kind: kind, Name: name, Diffs: diffs})
			return false, nil
		}
		switch stream {
		case Stream:
			s.Events = got
		case RecordsStream:
			s.Records = got
		}
		for _, x := range t.indexStreams(&s) {
			if x.cfg.Name == stream {
				*x.handle = got
			}
		}
		return true, nil
	}
	if err := refuseOldLayout(ctx, js); err != nil {
		return nil, err
	}
	for _, want := range []jetstream.StreamConfig{t.StreamConfig(), t.RecordsStreamConfig(), t.IndexStreamConfig(), t.CountsStreamConfig(), t.MinutesStreamConfig(), t.TimersStreamConfig()} {
		if _, err := look("stream", want.Name, want.Name, want); err != nil {
			return nil, err
		}
	}
	for _, c := range []struct {
		stream jetstream.Stream
		name   string
		handle *jetstream.Consumer
	}{{s.Events, IndexerConsumer, &s.Indexer}, {s.Timers, TimersConsumer, &s.TimersFiring}} {
		if c.stream == nil {
			continue
		}
		var err error
		*c.handle, err = c.stream.Consumer(ctx, c.name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			problems = append(problems, TopologyProblem{Kind: "consumer", Name: c.name, Missing: true})
		} else if err != nil {
			return nil, fmt.Errorf("consumer %s: %w", c.name, err)
		}
	}
	for _, b := range []struct {
		cfg jetstream.KeyValueConfig
		kv  *jetstream.KeyValue
	}{{t.typesBucketConfig(), &s.Types}, {t.idempotencyBucketConfig(), &s.Idempotency}} {
		ok, err := look("bucket", b.cfg.Bucket, BucketStream(b.cfg.Bucket), bucketStreamConfig(b.cfg))
		if err != nil {
			return nil, err
		}
		if ok {
			if *b.kv, err = js.KeyValue(ctx, b.cfg.Bucket); err != nil {
				return nil, fmt.Errorf("bucket %s: %w", b.cfg.Bucket, err)
			}
		}
	}
	if len(problems) > 0 {
		return nil, &TopologyError{Problems: problems}
	}
	return t.readers(js, &s), nil
}

// TopologyError is what Check found: every stream and bucket that is
// missing or does not match.
type TopologyError struct {
	Problems []TopologyProblem
}

// TopologyProblem is one stream or bucket that is missing or differs.
type TopologyProblem struct {
	Kind    string   // "stream" or "bucket"
	Name    string   // its name (a bucket's, not its stream's)
	Missing bool     // it does not exist
	Diffs   []string // otherwise how it differs, e.g. "max_age is 1h0m0s, want 168h0m0s"
}

func (p TopologyProblem) String() string {
	if p.Missing {
		return p.Kind + " " + p.Name + " is missing"
	}
	return p.Kind + " " + p.Name + ": " + strings.Join(p.Diffs, ", ")
}

func (e *TopologyError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "jobwire's streams and buckets do not match this service's settings: " + strings.Join(parts, "; ") +
		". Run jobwire-setup (with the same retention and replica settings) to create or update them"
}

// BucketStream is the name of the stream that holds key-value bucket b.
func BucketStream(b string) string { return "KV_" + b }

// bucketStreamConfig is what of a bucket's stream configDiffs compares.
func bucketStreamConfig(b jetstream.KeyValueConfig) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name: BucketStream(b.Bucket), Subjects: []string{"$KV." + b.Bucket + ".>"},
		Storage: b.Storage, Replicas: b.Replicas, MaxAge: b.TTL, AllowDirect: true,
	}
}

// configDiffs says how got differs from want in what jobwire depends on;
// for a bucket's stream, only in what the bucket's settings set.
func configDiffs(want, got jetstream.StreamConfig, bucket bool) []string {
	var diffs []string
	differ := func(what string, same bool, gotV, wantV any) {
		if !same {
			diffs = append(diffs, fmt.Sprintf("%s is %v, want %v", what, gotV, wantV))
		}
	}
	unlimited := func(n int64) int64 { // 0 and -1 both mean no limit
		if n <= 0 {
			return -1
		}
		return n
	}
	differ("subjects", sameSet(got.Subjects, want.Subjects), got.Subjects, want.Subjects)
	differ("storage", got.Storage == want.Storage, got.Storage, want.Storage)
	differ("replicas", max(got.Replicas, 1) == max(want.Replicas, 1), got.Replicas, want.Replicas)
	differ("max_age", got.MaxAge == want.MaxAge, got.MaxAge, want.MaxAge)
	differ("allow_direct", got.AllowDirect == want.AllowDirect, got.AllowDirect, want.AllowDirect)
	differ("allow_msg_counter", got.AllowMsgCounter == want.AllowMsgCounter, got.AllowMsgCounter, want.AllowMsgCounter)
	differ("allow_msg_schedules", got.AllowMsgSchedules == want.AllowMsgSchedules, got.AllowMsgSchedules, want.AllowMsgSchedules)
	differ("sealed", !got.Sealed, got.Sealed, false)
	differ("max_msgs", unlimited(got.MaxMsgs) == -1, got.MaxMsgs, "no limit")
	differ("max_bytes", unlimited(got.MaxBytes) == -1, got.MaxBytes, "no limit")
	if bucket {
		return diffs
	}
	differ("retention", got.Retention == want.Retention, got.Retention, want.Retention)
	differ("max_msgs_per_subject", unlimited(got.MaxMsgsPerSubject) == unlimited(want.MaxMsgsPerSubject), got.MaxMsgsPerSubject, want.MaxMsgsPerSubject)
	differ("discard", got.Discard == want.Discard, got.Discard, want.Discard)
	differ("discard_new_per_subject", got.DiscardNewPerSubject == want.DiscardNewPerSubject, got.DiscardNewPerSubject, want.DiscardNewPerSubject)
	differ("deny_delete", got.DenyDelete == want.DenyDelete, got.DenyDelete, want.DenyDelete)
	differ("deny_purge", got.DenyPurge == want.DenyPurge, got.DenyPurge, want.DenyPurge)
	wantDup := want.Duplicates
	if wantDup == 0 { // the server's default
		wantDup = DefaultQueueDuplicateWindow
		if want.MaxAge > 0 {
			wantDup = min(wantDup, want.MaxAge)
		}
	}
	differ("duplicate_window", got.Duplicates == wantDup, got.Duplicates, wantDup)
	differ("republish", sameRePublish(got.RePublish, want.RePublish), rePublishString(got.RePublish), rePublishString(want.RePublish))
	return diffs
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func sameRePublish(a, b *jetstream.RePublish) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func rePublishString(r *jetstream.RePublish) string {
	if r == nil {
		return "none"
	}
	s := r.Source + " to " + r.Destination
	if r.HeadersOnly {
		s += " (headers only)"
	}
	return s
}
