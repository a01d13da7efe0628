package jobops

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jobwire/jobwire/internal/consumeloop"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
)

// The gateways' timers: the firings of the JetStream message schedules in
// jobs.TimersStream (shared/jobs/timers.go), read through the durable
// consumer the gateways share, become the jobs' next steps here. Each
// step is fenced on the job's last event, so a firing handled twice (a
// gateway died before its ack), or racing a cancel, changes nothing the
// second time.

// timerWorkers is how many firings one gateway handles at once.
const timerWorkers = 4

// maxFenceRaces bounds the tries of one firing that lost a race with
// another write of the job.
const maxFenceRaces = 5

// runTimers handles firings until ctx ends.
func (s *Service) runTimers(ctx context.Context) {
	consumeloop.Loop{
		JS: s.js, Stream: jobs.TimersStream, Consumer: s.streams.TimersFiring, Name: jobs.TimersConsumer, Workers: timerWorkers, Log: s.log,
		Route:  func(m jetstream.Msg) (string, any) { return m.Subject(), nil },
		Handle: func(ctx context.Context, m jetstream.Msg, _ any) { s.fire(ctx, m) },
	}.Run(ctx)
}

// fire handles one firing and acks it, or hands it back to be tried again.
func (s *Service) fire(ctx context.Context, m jetstream.Msg) {
	kind, id := jobs.FiringOf(m.Subject())
	var err error
	switch kind {
	case jobs.FiringDue:
		err = s.due(ctx, id)
	case jobs.FiringExpired:
		err = s.expire(ctx, id)
	case jobs.FiringTick:
		err = s.tick(ctx, id, m)
	default:
		_ = m.Term()
		return
	}
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("timer: cannot handle a firing; it comes again", "subject", m.Subject(), "err", err)
		}
		_ = m.NakWithDelay(time.Second)
		return
	}
	_ = m.Ack()
}

// due queues delayed job id, now due: its request, read from its
// "scheduled" event, is stored on its queue subject as its next event,
// fenced on that event. A job canceled meanwhile is left alone; one past
// its deadline expires instead.
func (s *Service) due(ctx context.Context, id string) error {
	for range maxFenceRaces {
		ev, lastSeq, err := jobs.State(ctx, s.streams.Events, s.streams.Records, id)
		switch {
		case errors.Is(err, jobs.ErrNotFound):
			return nil // its submit failed after the timer was stored
		case err != nil:
			return err
		case ev.Status != jobs.StatusScheduled:
			return nil // canceled, or queued by an earlier firing
		}
		req, err := jobs.ReadRequest(ctx, s.streams.Events, id)
		if err != nil {
			return err
		}
		if req.ExpiresAt != nil && time.Now().After(*req.ExpiresAt) {
			_, err = s.endHere(ctx, ev, lastSeq, jobs.CancelRequest{By: jobs.CanceledByDeadline})
		} else {
			m, merr := jobs.DueRequestMsg(req, lastSeq, ev.Seq)
			if merr != nil {
				return merr
			}
			err = jobs.EnqueueMsg(ctx, s.js, m)
		}
		if err == nil || !errors.Is(err, jobs.ErrDuplicateID) && !jobs.IsWrongLastSequence(err) {
			return err
		}
		// Something was stored meanwhile (a cancel): look again.
	}
	return fmt.Errorf("job %s kept changing", id)
}

// expire ends job id "canceled" (code "expired") if it has not started by
// its deadline: scheduled, or queued and never started.
func (s *Service) expire(ctx context.Context, id string) error {
	for range maxFenceRaces {
		ev, lastSeq, err := jobs.State(ctx, s.streams.Events, s.streams.Records, id)
		switch {
		case errors.Is(err, jobs.ErrNotFound):
			return nil
		case err != nil:
			return err
		case ev.StartedAt != nil || ev.Status.Terminal() || ev.Status == jobs.StatusRunning:
			return nil // it started in time, or ended
		}
		_, err = s.endHere(ctx, ev, lastSeq, jobs.CancelRequest{By: jobs.CanceledByDeadline})
		if err == nil || !jobs.IsWrongLastSequence(err) {
			return err
		}
	}
	return fmt.Errorf("job %s kept changing", id)
}
