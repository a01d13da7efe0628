package jobclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/natstest"
	"github.com/jobwire/jobwire/services/runner/jobtypes"
	"github.com/jobwire/jobwire/services/runner/worker"
	"github.com/jobwire/jobwire/shared/jobclient"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testContext is a context that ends after d or with the test.
func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// system is an embedded NATS server with a runner of the built-in job
// types (which creates jobwire's streams) and a client on its own
// connection.
type system struct {
	srv    *server.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	client *jobclient.Client
}

func startSystem(t *testing.T) *system {
	t.Helper()
	srv := natstest.Server(t)
	startRunner(t, natstest.Connect(t, srv), worker.Config{})
	nc := natstest.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &system{srv: srv, nc: nc, js: js, client: newClient(t, nc)}
}

// startBare is a server with jobwire's streams and buckets but no runner:
// the test plays the services' part.
func startBare(t *testing.T) *system {
	t.Helper()
	srv := natstest.Server(t)
	nc := natstest.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (jobs.Topology{}).CreateOrUpdate(testContext(t, 10*time.Second), js); err != nil {
		t.Fatal(err)
	}
	return &system{srv: srv, nc: nc, js: js, client: newClient(t, nc)}
}

func newClient(t *testing.T, nc *nats.Conn) *jobclient.Client {
	t.Helper()
	c, err := jobclient.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startRunner runs a runner of the built-in types on nc until the test
// ends, and waits for it to stop.
func startRunner(t *testing.T, nc *nats.Conn, cfg worker.Config) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	newCtx, cancelNew := context.WithTimeout(ctx, 10*time.Second)
	defer cancelNew()
	r, err := worker.New(newCtx, nc, cfg, jobtypes.Builtin()...)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-ran:
			if err != nil {
				t.Errorf("runner: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("runner did not stop within 30s")
		}
	})
}

// registerType stores a job type registration as a runner does.
func registerType(t *testing.T, s *system, info jobs.TypeInfo) {
	t.Helper()
	ctx := testContext(t, 10*time.Second)
	kv, err := s.js.KeyValue(ctx, jobs.TypesBucket)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, info.Type, b); err != nil {
		t.Fatal(err)
	}
}

// collect runs a watch to its end and returns the events and the error
// it ended with (nil if it ended after a terminal event or at once).
func collect(t *testing.T, events func(func(jobs.Event, error) bool)) ([]jobs.Event, error) {
	t.Helper()
	var got []jobs.Event
	for ev, err := range events {
		if err != nil {
			return got, err
		}
		got = append(got, ev)
	}
	return got, nil
}

// checkRun asserts that got is exactly the events from seq from to seq to,
// one by one, and that only the last one is terminal.
func checkRun(t *testing.T, got []jobs.Event, from, to uint64) {
	t.Helper()
	if len(got) == 0 {
		if from <= to {
			t.Fatalf("no events, want seq %d..%d", from, to)
		}
		return
	}
	for i, ev := range got {
		if want := from + uint64(i); ev.Seq != want {
			t.Fatalf("event %d has seq %d, want %d (seqs: %v)", i, ev.Seq, want, seqs(got))
		}
		if terminal := ev.Status.Terminal(); terminal != (i == len(got)-1) {
			t.Fatalf("event seq %d: status %s, terminal=%v, but it is event %d of %d", ev.Seq, ev.Status, terminal, i+1, len(got))
		}
	}
	if last := got[len(got)-1].Seq; last != to {
		t.Fatalf("last event has seq %d, want %d", last, to)
	}
}

func seqs(evs []jobs.Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, ev := range evs {
		out[i] = ev.Seq
	}
	return out
}

// waitTerminal polls the job until it has ended and returns its final event.
func waitTerminal(t *testing.T, c *jobclient.Client, id string) jobs.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ev, err := c.Get(testContext(t, 5*time.Second), id)
		if err != nil && !errors.Is(err, jobs.ErrNotFound) {
			t.Fatal(err)
		}
		if err == nil && ev.Status.Terminal() {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s did not end within 20s (last: %+v)", id, ev)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}
