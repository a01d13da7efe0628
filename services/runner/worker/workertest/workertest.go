// Package workertest runs job types in tests: a real NATS server with
// JetStream (embedded, in a temporary directory), a real runner serving the
// types, and a client that submits jobs and reads the events they produced.
// Nothing is mocked, so what a test sees is what a watcher of the job would
// see.
//
// One job, one call:
//
//	events, final := workertest.Run(t, myJobType(), map[string]any{"url": "..."})
//	if final.Status != jobs.StatusSucceeded { ... }
//
// For several jobs, several types, cancelling or stopping the runner, make
// a Harness with New.
package workertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/devstack"
	"github.com/jobwire/jobwire/internal/natstest"
	"github.com/jobwire/jobwire/services/runner/worker"
	"github.com/jobwire/jobwire/shared/jobclient"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// DefaultTimeout bounds each wait of a Harness (and a whole Run) unless
// Config.Timeout says otherwise.
const DefaultTimeout = 30 * time.Second

// Config tunes a Harness. The zero value is a runner with worker's
// defaults and DefaultTimeout.
type Config struct {
	// Runner is the runner's configuration (concurrency, ack wait,
	// progress interval, log lines, logger, ...).
	Runner worker.Config
	// Timeout bounds each wait (for a job to end, for a cancel request to
	// be taken, for the runner to stop).
	Timeout time.Duration
}

// Harness is one NATS server with a runner serving some job types, and a
// client of the test's own. Close (called when the test ends) stops them.
type Harness struct {
	t        testing.TB
	cfg      Config
	srv      *server.Server
	stopNATS func()     // shuts srv down and removes its storage
	nc       *nats.Conn // the test's
	rnc      *nats.Conn // the runner's
	client   *jobclient.Client

	closeOnce sync.Once
	stopOnce  sync.Once
	stopRun   context.CancelFunc
	ran       chan error // Run's result; nil until Run started
}

// New starts a server and a runner serving types, and fails the test if
// the runner does not start (a duplicate type, a bad name ...).
func New(t testing.TB, cfg Config, types ...worker.JobType) *Harness {
	t.Helper()
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	h := &Harness{t: t, cfg: cfg}
	t.Cleanup(h.Close)
	if err := h.start(types); err != nil {
		h.Close()
		t.Fatalf("workertest: %v", err)
	}
	return h
}

func (h *Harness) start(types []worker.JobType) error {
	var err error
	if h.srv, h.stopNATS, err = devstack.StartTempNATS(); err != nil {
		return err
	}
	if h.nc, err = nats.Connect(h.srv.ClientURL()); err != nil {
		return err
	}
	if h.client, err = jobclient.New(h.nc); err != nil {
		return err
	}
	if h.rnc, err = nats.Connect(h.srv.ClientURL()); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.Timeout)
	defer cancel()
	r, err := worker.New(ctx, h.rnc, h.cfg.Runner, types...)
	if err != nil {
		return fmt.Errorf("start the runner: %w", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	h.stopRun, h.ran = stop, make(chan error, 1)
	go func() { h.ran <- r.Run(runCtx) }()
	return nil
}

// Server is the embedded NATS server (for a second runner, say).
func (h *Harness) Server() *server.Server { return h.srv }

// Conn is the test's own NATS connection (not the runner's).
func (h *Harness) Conn() *nats.Conn { return h.nc }

// Client is a jobclient on the test's connection.
func (h *Harness) Client() *jobclient.Client { return h.client }

// Stop stops the runner as SIGTERM does (no more fetching; running jobs
// get the shutdown grace period, then are handed back) and waits for it.
// Calling it again does nothing.
func (h *Harness) Stop() {
	h.t.Helper()
	h.stopOnce.Do(func() {
		if h.ran == nil {
			return // never started
		}
		h.stopRun()
		select {
		case err := <-h.ran:
			if err != nil {
				h.t.Errorf("workertest: the runner stopped with %v", err)
			}
		case <-time.After(h.cfg.Timeout):
			h.t.Errorf("workertest: the runner did not stop within %v", h.cfg.Timeout)
		}
	})
}

// Close stops the runner, closes the connections, shuts the server down
// and removes its storage. It is called when the test ends; calling it
// again does nothing.
func (h *Harness) Close() {
	h.t.Helper()
	h.closeOnce.Do(func() {
		h.Stop()
		for _, nc := range []*nats.Conn{h.rnc, h.nc} {
			if nc != nil {
				nc.Close()
			}
		}
		if h.stopNATS != nil {
			h.stopNATS()
		}
	})
}

// TrySubmit submits a job as any client does (jobclient.Submit): the type
// must be registered and the input must match its input schema, or the
// error wraps jobclient.ErrUnknownType or jobclient.ErrInvalidInput. It
// returns the job's id.
func (h *Harness) TrySubmit(typ string, input any) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.Timeout)
	defer cancel()
	ev, err := h.client.Submit(ctx, typ, input)
	return ev.JobID, err
}

// Submit is TrySubmit that fails the test on an error.
func (h *Harness) Submit(typ string, input any) string {
	h.t.Helper()
	id, err := h.TrySubmit(typ, input)
	if err != nil {
		h.t.Fatalf("workertest: submit a %s job: %v", typ, err)
	}
	return id
}

// Wait waits for job id to end and returns every event it stored, in
// order from its "queued" event, and its final state (the last of them).
func (h *Harness) Wait(id string) (events []jobs.Event, final jobs.Event) {
	h.t.Helper()
	return h.WaitFor(id, func(ev jobs.Event) bool { return ev.Status.Terminal() })
}

// WaitFor returns the job's events up to and including the first one for
// which until is true (the job need not have ended), and that event. It
// fails the test if the job ends, or the timeout passes, before one does.
func (h *Harness) WaitFor(id string, until func(jobs.Event) bool) (events []jobs.Event, match jobs.Event) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.Timeout)
	defer cancel()
	for ev, err := range h.client.Watch(ctx, id, 0) {
		if err != nil {
			h.t.Fatalf("workertest: watch job %s after %d events: %v%s", id, len(events), err, Describe(events))
		}
		events = append(events, ev)
		if until(ev) {
			return events, ev
		}
	}
	h.t.Fatalf("workertest: job %s ended before the event waited for:%s", id, Describe(events))
	return nil, jobs.Event{}
}

// Cancel asks the runner running job id to cancel it, as the gateway does
// for a running job (the handler's context is cancelled; the job ends
// "canceled" with reason). It asks again until the runner holds the job,
// so it may be called right after Submit. A job that has not started is
// not canceled by this (the gateway records that itself).
func (h *Harness) Cancel(id, reason string) {
	h.t.Helper()
	req, _ := json.Marshal(jobs.CancelRequest{By: jobs.CanceledByOwner, Reason: reason})
	deadline := time.Now().Add(h.cfg.Timeout)
	for {
		msg, err := h.nc.Request(jobs.CancelSubject(id), req, 200*time.Millisecond)
		if err == nil {
			var reply jobs.CancelReply
			if json.Unmarshal(msg.Data, &reply) == nil && reply.Accepted {
				return
			}
		} else if errors.Is(err, nats.ErrNoResponders) {
			time.Sleep(10 * time.Millisecond) // polling interval: no runner listens (yet)
		} else if !errors.Is(err, nats.ErrTimeout) {
			h.t.Fatalf("workertest: cancel job %s: %v", id, err)
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("workertest: no runner took the cancel request of job %s within %v", id, h.cfg.Timeout)
		}
	}
}

// Option changes how Run runs its job.
type Option func(*options)

type options struct {
	cfg        Config
	attempts   int
	cancelWhen func(jobs.Event) bool
}

// Attempts lets the job run up to n attempts, retried 10ms apart (instead
// of the job type's own policy; whether a timeout is retried stays the
// type's choice).
func Attempts(n int) Option {
	return func(o *options) { o.attempts = n }
}

// CancelWhen cancels the job (as its owner, with the reason "workertest") once one of its
// events satisfies when, e.g. the first progress event.
func CancelWhen(when func(jobs.Event) bool) Option {
	return func(o *options) { o.cancelWhen = when }
}

// WithConfig sets the harness's configuration (the runner's, the waits').
func WithConfig(cfg Config) Option {
	return func(o *options) { o.cfg = cfg }
}

// Run runs one job of type jt with input on a fresh Harness, closed
// before Run returns, and returns every event the job stored (from
// "queued" to its end) and its final state. input is encoded to JSON (a json.RawMessage is taken as is) and
// must match jt's input schema. The job type's own retry policy applies
// (use Attempts for quick retries).
func Run(t testing.TB, jt worker.JobType, input any, opts ...Option) (events []jobs.Event, final jobs.Event) {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.attempts > 0 {
		jt.Retry.MaxAttempts, jt.Retry.BaseDelay, jt.Retry.MaxDelay = o.attempts, 10*time.Millisecond, 10*time.Millisecond
	}
	h := New(t, o.cfg, jt)
	defer h.Close()
	id := h.Submit(jt.Name, input)
	if o.cancelWhen != nil {
		before, ev := h.WaitFor(id, func(ev jobs.Event) bool { return o.cancelWhen(ev) || ev.Status.Terminal() })
		if ev.Status.Terminal() {
			return before, ev
		}
		h.Cancel(id, "workertest")
	}
	return h.Wait(id)
}

// Describe lists events one per line (seq, kind/status, attempt, and
// what each carries), for failure messages.
func Describe(events []jobs.Event) string {
	return "\n" + natstest.DescribeAll(events)
}
