package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jobwire/jobwire/internal/backoff"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
)

// queue is one job type's durable consumer on the JOBS stream for one
// priority, as a runner uses it. It takes the type's requests of that
// priority (jobs.PriorityQueueFilter); the stream keeps them after the
// ack, as the jobs' first events. Every runner serving the type shares it,
// whatever else it serves; the runner creates it at start-up and again if
// it disappears.
type queue struct {
	typ     string
	prio    int // jobs.PriorityHigh, PriorityNormal or PriorityLow
	ackWait time.Duration
	topo    jobs.Topology // the consumer's replicas
	js      jetstream.JetStream
	log     *slog.Logger
	cons    jetstream.Consumer // set by bind; after New only the runner's scheduler uses it

	// Owned by the scheduler's loop (schedule.go).
	waiting  bool            // a waiting fetch is open
	failures backoff.Backoff // fetches that failed in a row
	retryAt  time.Time       // no fetch before then (after a failure)
	warn     backoff.Warner
}

func (q *queue) name() string { return jobs.PriorityConsumerName(q.prio, q.typ) }

// bind creates the type's consumer or updates it. An existing consumer
// keeps its ack wait (every runner of the type heartbeats for that one).
func (q *queue) bind(ctx context.Context) error {
	if existing, err := q.js.Consumer(ctx, jobs.Stream, q.name()); err == nil {
		if aw := existing.CachedInfo().Config.AckWait; aw > 0 && aw != q.ackWait {
			q.log.Warn("keeping the consumer's ack wait", "consumer", q.name(), "consumer_ack_wait", aw, "configured", q.ackWait)
			q.ackWait = aw
		}
	}
	cons, err := q.create(ctx)
	if err != nil {
		return fmt.Errorf("consumer %s: %w", q.name(), err)
	}
	q.cons = cons
	return nil
}

// create creates the consumer or updates it in place. An update keeps the
// consumer's state: its pending messages and those in flight (a consumer
// scaled from R1 to R3 this way re-runs nothing). While the stream is
// still scaling up to the consumer's replicas it waits, as long as ctx
// allows.
func (q *queue) create(ctx context.Context) (jetstream.Consumer, error) {
	cfg := q.topo.PriorityRunnerConsumerConfig(q.prio, q.typ, q.ackWait)
	return jobs.CreateOrUpdateConsumer(ctx, q.js, cfg, func() {
		q.log.Info("waiting for the stream to scale up to the consumer's replicas", "consumer", q.name(), "replicas", cfg.Replicas)
	})
}

// ensure creates the consumer again if it is gone (deleted by hand, or
// lost with the server's storage); a consumer that exists is left as is.
func (q *queue) ensure(ctx context.Context) error {
	_, err := q.cons.Info(ctx)
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return err
	}
	if err := q.bind(ctx); err != nil {
		return err
	}
	q.log.Info("created the job type's consumer again", "consumer", q.name())
	return nil
}

// fetch pulls up to n messages and hands each to start as it arrives. It
// waits up to wait for them, or, with wait 0, takes only what is there.
// It returns how many arrived.
//
// A waiting fetch is not cut short when ctx ends: the server would still
// send a job to the abandoned request, and nobody would take it until its
// ack wait ran out. It lasts its wait, and start hands back what comes.
func (q *queue) fetch(ctx context.Context, n int, wait time.Duration, start func(jetstream.Msg)) (int, error) {
	var batch jetstream.MessageBatch
	var err error
	if wait > 0 {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wait)
		defer cancel()
		batch, err = q.cons.Fetch(n, jetstream.FetchContext(fctx))
	} else {
		batch, err = q.cons.FetchNoWait(n)
	}
	if err != nil {
		return 0, err
	}
	got := 0
	for msg := range batch.Messages() {
		got++
		start(msg)
	}
	err = batch.Error()
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		err = nil // the wait ended, or the runner is stopping
	}
	return got, err
}
