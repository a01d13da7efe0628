package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jobwire/jobwire/internal/backoff"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// writer stores one attempt's events of a job, in order, fenced against
// any other writer by the expected last sequence of the job's subject.
type writer struct {
	js      jetstream.Publisher
	events  jetstream.Stream
	ev      jobs.Event // the last event stored
	lastSeq uint64     // its stream sequence (0: none yet)
	attempt int
	// pending is progress reported last by a handler that has returned:
	// the next event (the attempt's end) carries it instead of a progress
	// event of its own.
	pending *progressState
	// fencedLost counts writes another writer beat (nil: not counted).
	fencedLost prometheus.Counter
}

// openWriter starts from the job's stored state. On a job's first
// delivery the request itself is that state (its queued event, at the
// message's stream sequence), which saves a read: the first write is
// fenced on the request, so if anything was stored since (a cancel), the
// write fails and the writer reads the state then.
func (r *Runner) openWriter(ctx context.Context, req jobs.Request, meta *jetstream.MsgMetadata) (*writer, error) {
	w := &writer{js: r.js, events: r.events, ev: jobs.Event{JobID: req.ID}, fencedLost: r.metrics.forType(req.Type).fencedWritesLost}
	if meta != nil && meta.NumDelivered == 1 && meta.Sequence.Stream > 0 {
		w.ev, w.lastSeq = req.Queued(), meta.Sequence.Stream
		return w, nil
	}
	if err := w.reload(ctx); errors.Is(err, jobs.ErrNotFound) {
		// Nothing of the job is stored any more (its request aged out
		// while it was delivered): start from its queued event.
		w.ev = req.Queued()
	} else if err != nil {
		return nil, err
	}
	return w, nil
}

func (w *writer) reload(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	ev, seq, err := jobs.LastEvent(rctx, w.events, w.ev.JobID)
	if err != nil {
		return err
	}
	w.ev, w.lastSeq = ev, seq
	return nil
}

// emit stores the next event: the last snapshot changed by set. When
// another writer got there first it re-reads the state; if that writer is
// a newer attempt or the job has ended, it returns errSuperseded,
// otherwise it applies set to the new state and tries again. A write whose
// answer was lost (a timeout) may have been stored: if the state read
// after it is that very event, the write counts as done, so a retry never
// stores the same event twice.
func (w *writer) emit(ctx context.Context, kind jobs.Kind, set func(*jobs.Event)) error {
	const tries = 5
	var err error
	var unsure []jobs.Event // writes whose outcome is unknown
	wait := backoff.Backoff{Base: 100 * time.Millisecond, Max: 2 * time.Second}
	for i := range tries {
		next := w.ev.Next(kind, time.Now())
		if w.pending != nil {
			w.pending.applyTo(&next)
		}
		set(&next)
		if i == 0 && w.attempt == 0 {
			w.attempt = next.Attempt
		}
		pctx, cancel := context.WithTimeout(ctx, storeTimeout)
		var seq uint64
		seq, err = jobs.PublishEvent(pctx, w.js, next, w.lastSeq)
		cancel()
		if err == nil {
			w.ev, w.lastSeq, w.pending = next, seq, nil
			return nil
		}
		if !jobs.IsWrongLastSequence(err) {
			unsure = append(unsure, next)
			wait.Wait(ctx)
			continue
		}
		if w.fencedLost != nil {
			w.fencedLost.Inc()
		}
		if rerr := w.reload(ctx); rerr != nil {
			return rerr
		}
		if slices.ContainsFunc(unsure, func(tried jobs.Event) bool { return sameWrite(w.ev, tried) }) {
			w.pending = nil // stored after all: its answer was lost
			return nil
		}
		if w.ev.Status.Terminal() {
			return fmt.Errorf("%w: it is %s", errJobEnded, w.ev.Status)
		}
		if w.ev.Attempt > w.attempt || kind == jobs.KindStarted && w.ev.Attempt >= w.attempt {
			return fmt.Errorf("%w: attempt %d is running", errSuperseded, w.ev.Attempt)
		}
	}
	return fmt.Errorf("store %s event of job %s: %w", kind, w.ev.JobID, err)
}

// sameWrite reports whether stored is the event a writer tried to store:
// same place in the job's history, same kind, same moment (to the
// nanosecond; another writer's event differs at least in its time).
func sameWrite(stored, tried jobs.Event) bool {
	return stored.Seq == tried.Seq && stored.Kind == tried.Kind && stored.Attempt == tried.Attempt && stored.Time.Equal(tried.Time)
}

// publishProgress stores what the handler reports until stop is closed,
// then stores what is left. Progress is coalesced: each event carries the
// latest values, and a new batch is stored at most once per interval
// (the first one interval after the start). If
// events can no longer be stored it cancels the handler.
func (w *writer) publishProgress(ctx context.Context, p *Progress, interval time.Duration, stop <-chan struct{}, cancelRun context.CancelCauseFunc) error {
	var pace *time.Timer
	if interval > 0 {
		// The started event counts as the last write: a job that ends
		// within one interval stores no progress event, only its end.
		pace = time.NewTimer(interval)
		defer pace.Stop()
	}
	for {
		var stopping bool
		select {
		case <-p.wake:
		case <-stop:
			stopping = true
		}
		if pace != nil && !stopping {
			select { // wait out the interval, but not past the end
			case <-pace.C:
			case <-stop:
				stopping = true
			}
		}
		if err := w.flush(ctx, p, stopping); err != nil {
			cancelRun(err)
			return err
		}
		if stopping {
			return nil
		}
		if pace != nil {
			pace.Reset(interval)
		}
	}
}

// flush stores the log lines and the progress reported since the last
// flush. The final flush, after the handler returned, leaves the progress
// to the event that ends the attempt, which comes next and carries the
// same snapshot: one write fewer per job, and nothing a watcher misses.
func (w *writer) flush(ctx context.Context, p *Progress, final bool) error {
	snap, dirty, logs := p.take(final)
	for _, line := range logs {
		if err := w.emit(ctx, jobs.KindLog, func(e *jobs.Event) { snap.applyTo(e); e.Log = line }); err != nil {
			return err
		}
	}
	switch {
	case !dirty || len(logs) > 0:
		return nil
	case final:
		w.pending = &snap
		return nil
	default:
		return w.emit(ctx, jobs.KindProgress, snap.applyTo)
	}
}
