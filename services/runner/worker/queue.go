package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
)

// queue is one job type's durable consumer on the JOBS stream, as a runner
// uses it. Every runner serving the type shares it, whatever else it
// serves; the runner creates it at start-up and again if it disappears.
type queue struct {
	typ     string
	ackWait time.Duration
	topo    jobs.Topology // the consumer's replicas
	js      jetstream.JetStream
	log     *slog.Logger
	cons    jetstream.Consumer // set by bind; after New only the queue's fetch loop uses it
}

// errReplicasExceedStream is JetStream's "consumer config replica count
// exceeds parent stream": the stream is still being scaled up to the
// consumer's replicas (JETSTREAM_REPLICAS raised on a running
// deployment); it takes the server some seconds.
const errReplicasExceedStream jetstream.ErrorCode = 10126

// errWQConsumerNotUnique is JetStream's "filtered consumer not unique on
// workqueue stream": another consumer takes jobs of the same type.
const errWQConsumerNotUnique jetstream.ErrorCode = 10100

func (q *queue) name() string { return jobs.ConsumerName(q.typ) }

// bind creates the type's consumer or updates it. An existing consumer
// keeps its ack wait (every runner of the type heartbeats for that one).
// A consumer of an old multi-type pool that takes the same jobs is removed
// once it has no job in flight.
func (q *queue) bind(ctx context.Context) error {
	if existing, err := q.js.Consumer(ctx, jobs.QueueStream, q.name()); err == nil {
		if aw := existing.CachedInfo().Config.AckWait; aw > 0 && aw != q.ackWait {
			q.log.Warn("keeping the consumer's ack wait", "consumer", q.name(), "consumer_ack_wait", aw, "configured", q.ackWait)
			q.ackWait = aw
		}
	}
	cons, err := q.create(ctx)
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == errWQConsumerNotUnique {
		if rerr := q.removeOldPools(ctx); rerr != nil {
			return fmt.Errorf("consumer %s: another consumer takes jobs of type %s (an old pool's?) and it was not removed: %w "+
				"(once its runners are stopped: nats consumer ls %s; nats consumer rm %s <name>)", q.name(), q.typ, rerr, jobs.QueueStream, jobs.QueueStream)
		}
		cons, err = q.create(ctx)
	}
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
	cfg := q.topo.RunnerConsumerConfig(q.typ, q.ackWait)
	logged := false
	for {
		cons, err := q.js.CreateOrUpdateConsumer(ctx, jobs.QueueStream, cfg)
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode != errReplicasExceedStream {
			return cons, err
		}
		if !logged {
			q.log.Info("waiting for the stream to scale up to the consumer's replicas", "consumer", q.name(), "replicas", cfg.Replicas)
			logged = true
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (the stream %s is still scaling up to %d replicas)", err, jobs.QueueStream, cfg.Replicas)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// removeOldPools deletes the consumers that take this type's jobs under
// another name: those of runner pools from before jobwire used one
// consumer per type ("runners_a_b"). One with a job in flight is left
// alone (its runner may still be running the job), and its name is
// returned in the error, so the runner tries again later.
func (q *queue) removeOldPools(ctx context.Context) error {
	subject := jobs.QueueSubject(q.typ)
	stream, err := q.js.Stream(ctx, jobs.QueueStream)
	if err != nil {
		return err
	}
	list := stream.ListConsumers(ctx)
	var errs []error
	for info := range list.Info() {
		if info.Name == q.name() || !filtersMatch(info.Config, subject) {
			continue
		}
		if info.NumAckPending > 0 {
			errs = append(errs, fmt.Errorf("consumer %s has %d jobs in flight", info.Name, info.NumAckPending))
			continue
		}
		if err := q.js.DeleteConsumer(ctx, jobs.QueueStream, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			errs = append(errs, fmt.Errorf("remove old pool consumer %s: %w", info.Name, err))
			continue
		}
		q.log.Info("removed an old pool's consumer: each job type has its own now", "consumer", info.Name, "type", q.typ)
	}
	if err := list.Err(); err != nil {
		errs = append(errs, fmt.Errorf("list the consumers of %s: %w", jobs.QueueStream, err))
	}
	return errors.Join(errs...)
}

// filtersMatch reports whether a consumer with config c takes messages
// on subject (which has no wildcards).
func filtersMatch(c jetstream.ConsumerConfig, subject string) bool {
	filters := c.FilterSubjects
	if c.FilterSubject != "" {
		filters = append(filters, c.FilterSubject)
	}
	if len(filters) == 0 {
		return true // no filter: every subject of the stream
	}
	for _, f := range filters {
		if subjectMatches(f, subject) {
			return true
		}
	}
	return false
}

// subjectMatches reports whether filter (with NATS wildcards) matches
// subject.
func subjectMatches(filter, subject string) bool {
	ft, st := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, f := range ft {
		switch {
		case f == ">":
			return len(st) > i
		case i >= len(st):
			return false
		case f != "*" && f != st[i]:
			return false
		}
	}
	return len(ft) == len(st)
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
