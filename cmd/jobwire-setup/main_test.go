package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/devstack"
	"github.com/jobwire/jobwire/internal/natstest"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
)

// runSetup runs the command with env and returns its output; it fails the
// test if the command fails.
func runSetup(t *testing.T, ctx context.Context, env map[string]string) string {
	t.Helper()
	var stdout, stderr natstest.LockedBuffer
	if err := run(ctx, nil, func(k string) string { return env[k] }, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	return stdout.String()
}

// The first run creates all five streams and buckets, a second one changes
// nothing (not even the servers' configurations), and one with other
// retention settings updates exactly what they change; the services'
// check then accepts the result with those settings.
func TestSetupCreatesThenChangesNothing(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s := natstest.Server(t)
	js, err := jetstream.New(natstest.Connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"NATS_URL": s.ClientURL()}
	want := "stream JOBS: created\nstream JOBS_RECORDS: created\n" +
		"stream JOBS_INDEX: created\nstream JOBS_COUNTS: created\nstream JOBS_MINUTES: created\nstream JOBS_TIMERS: created\n" +
		"bucket JOBWIRE_TYPES: created\nbucket JOBWIRE_IDEMPOTENCY: created\n"
	if out := runSetup(t, ctx, env); !strings.HasPrefix(out, want) || !strings.Contains(out, "the topology is set up") {
		t.Fatalf("first run printed:\n%s\nwant it to start with\n%s", out, want)
	}
	infos := func() string {
		t.Helper()
		var all []any
		for _, it := range topology {
			st, err := js.Stream(ctx, it.stream)
			if err != nil {
				t.Fatal(err)
			}
			info := st.CachedInfo()
			all = append(all, info.Config, info.Created, info.Cluster)
		}
		b, _ := json.Marshal(all)
		return string(b)
	}
	first := infos()

	want = strings.ReplaceAll(want, "created", "unchanged")
	if out := runSetup(t, ctx, env); !strings.HasPrefix(out, want) {
		t.Fatalf("second run printed:\n%s\nwant it to start with\n%s", out, want)
	}
	if again := infos(); again != first {
		t.Fatalf("the second run changed the streams:\nbefore %s\nafter  %s", first, again)
	}

	env["EVENTS_MAX_AGE"] = "1h"
	want = "stream JOBS: updated: max_age is 168h0m0s, want 1h0m0s\n" +
		"stream JOBS_RECORDS: updated: max_age is 888h0m0s, want 721h0m0s\n" +
		"stream JOBS_INDEX: updated: max_age is 168h0m0s, want 1h0m0s\n" +
		"stream JOBS_COUNTS: unchanged\nstream JOBS_MINUTES: unchanged\n" +
		"stream JOBS_TIMERS: updated: max_age is 168h0m0s, want 1h0m0s\n" +
		"bucket JOBWIRE_TYPES: unchanged\nbucket JOBWIRE_IDEMPOTENCY: unchanged\n"
	if out := runSetup(t, ctx, env); !strings.HasPrefix(out, want) {
		t.Fatalf("run with EVENTS_MAX_AGE=1h printed:\n%s\nwant it to start with\n%s", out, want)
	}
	if _, err := (jobs.Topology{EventsMaxAge: time.Hour}).Check(ctx, js); err != nil {
		t.Fatalf("the services' check after the update: %v", err)
	}
}

// Started before NATS, it waits for it and then sets the topology up.
func TestSetupWaitsForNATS(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	addr := freeAddr(t)
	env := map[string]string{"NATS_URL": "nats://" + addr}
	var stdout, stderr natstest.LockedBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, &stdout, &stderr) }()
	for !strings.Contains(stderr.String(), "waiting for nats") {
		if ctx.Err() != nil {
			t.Fatalf("no sign of waiting for NATS:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	s, err := devstack.StartNATS(addr, filepath.Join(t.TempDir(), "nats"))
	if err != nil {
		t.Fatal(err)
	}
	defer devstack.StopNATS(s)
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if n := strings.Count(stdout.String(), ": created"); n != len(topology) {
		t.Fatalf("created %d of %d:\n%s", n, len(topology), stdout.String())
	}
}

// freeAddr is a loopback address where nothing listens (yet).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Without NATS it gives up after --timeout, saying so.
func TestSetupTimesOut(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	start := time.Now()
	err := run(t.Context(), []string{"--timeout", "1s"}, func(k string) string {
		return map[string]string{"NATS_URL": "nats://" + addr}[k]
	}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--timeout") {
		t.Fatalf("run: %v, want an error naming --timeout", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("gave up after %v, want about 1s", d)
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	var stderr strings.Builder
	if err := run(t.Context(), []string{"--help"}, func(string) string { return "" }, io.Discard, &stderr); err != nil {
		t.Fatalf("run --help: %v", err)
	}
	if !strings.Contains(stderr.String(), "-timeout") || !strings.Contains(stderr.String(), "-events-max-age") {
		t.Fatalf("run --help printed %q, want the flags", stderr.String())
	}
	env := map[string]string{"SETUP_TIMEOUT": "-1s", "EVENTS_MAX_AGE": "1s", "NATS_PASSWORD": "x"}
	err := run(t.Context(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
	for _, want := range []string{"NATS_URL", "SETUP_TIMEOUT", "EVENTS_MAX_AGE", "NATS_USER"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad configuration: %v, want it to mention %s", err, want)
		}
	}
}
