package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
)

// History reads one job's events, across several batches, from a given
// stream sequence, skipping other jobs' events, and creates no consumer.
func TestHistory(t *testing.T) {
	t.Parallel()
	ctx, nc, js, streams := withTopology(t)
	var err error
	a, b := jobs.NewID(time.Now()), jobs.NewID(time.Now())
	var lastA, lastB uint64 // stream sequences of each job's last event
	const count = 600       // more than two batches
	for seq := uint64(1); seq <= count; seq++ {
		if lastA, err = jobs.PublishEvent(ctx, js, jobs.Event{JobID: a, Type: "demo", Seq: seq, Kind: jobs.KindLog, Status: jobs.StatusRunning}, lastA); err != nil {
			t.Fatal(err)
		}
		if lastB, err = jobs.PublishEvent(ctx, js, jobs.Event{JobID: b, Type: "demo", Seq: seq, Kind: jobs.KindLog, Status: jobs.StatusRunning}, lastB); err != nil {
			t.Fatal(err)
		}
	}
	read := func(from uint64, stopAt uint64) (seqs []uint64) {
		t.Helper()
		for m, err := range jobs.History(ctx, nc, a, from) {
			if err != nil {
				t.Fatal(err)
			}
			var ev jobs.Event
			if err := json.Unmarshal(m.Data, &ev); err != nil || ev.JobID != a || m.Subject != jobs.EventSubject("demo", a) {
				t.Fatalf("event %s at %d: %v", m.Data, m.StreamSeq, err)
			}
			seqs = append(seqs, ev.Seq)
			if ev.Seq == stopAt {
				break
			}
		}
		return seqs
	}
	check := func(name string, seqs []uint64, first, last uint64) {
		t.Helper()
		if uint64(len(seqs)) != last-first+1 || seqs[0] != first || seqs[len(seqs)-1] != last {
			t.Fatalf("%s: %d events %d..%d, want %d..%d", name, len(seqs), seqs[0], seqs[len(seqs)-1], first, last)
		}
		for i := 1; i < len(seqs); i++ {
			if seqs[i] != seqs[i-1]+1 {
				t.Fatalf("%s: seq %d after %d", name, seqs[i], seqs[i-1])
			}
		}
	}
	check("whole history", read(0, 0), 1, count)
	check("from the 301st event on", read(2*300-1, 0), 300, count) // a's 300th event is at stream sequence 599
	check("stopped early", read(1, 270), 1, 270)
	if got := read(lastB+1, 0); len(got) != 0 {
		t.Fatalf("after the last event: %v", got)
	}
	info, err := streams.Events.Info(ctx)
	if err != nil || info.State.Consumers != 1 { // the indexer's, made by the set-up
		t.Fatalf("events stream: %d consumers (want only the indexer's), %v", info.State.Consumers, err)
	}

	// Without the stream (or NATS) answering, it fails with ErrHistory.
	if err := js.DeleteStream(ctx, jobs.Stream); err != nil {
		t.Fatal(err)
	}
	cctx, cancelNow := context.WithCancel(ctx)
	cancelNow()
	for name, c := range map[string]struct {
		ctx  context.Context
		want error
	}{"without the stream": {ctx, jobs.ErrHistory}, "ended context": {cctx, context.Canceled}} {
		var errs []error
		for _, err := range jobs.History(c.ctx, nc, a, 0) {
			errs = append(errs, err)
		}
		if len(errs) != 1 || !errors.Is(errs[0], c.want) {
			t.Fatalf("%s: %v, want one error wrapping %v", name, errs, c.want)
		}
	}
}
