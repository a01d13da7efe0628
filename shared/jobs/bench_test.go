package jobs_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
)

func benchEvent() jobs.Event {
	now := time.Now()
	return jobs.Event{
		JobID: jobs.NewID(now), Type: "demo", Owner: "user:bench", Seq: 42, Kind: jobs.KindProgress, Status: jobs.StatusRunning,
		Percent: jobs.Percentage(42), Current: 42, Total: 100, Stage: "counting", Message: "step 42 of 100",
		Attempt: 1, Time: now, CreatedAt: &now, StartedAt: &now,
	}
}

// BenchmarkEventEncode: PublishEvent calls MarshalJSON directly; through
// json.Marshal the output would be scanned once more.
func BenchmarkEventEncode(b *testing.B) {
	ev := benchEvent()
	b.Run("MarshalJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ev.MarshalJSON(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkEventDecode(b *testing.B) {
	data, _ := json.Marshal(benchEvent())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var ev jobs.Event
		if err := json.Unmarshal(data, &ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateID(b *testing.B) {
	id := jobs.NewID(time.Now())
	b.ReportAllocs()
	for b.Loop() {
		if err := jobs.ValidateID(id); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkProgressSubject(b *testing.B) {
	id := jobs.NewID(time.Now())
	b.ReportAllocs()
	for b.Loop() {
		if s := jobs.ProgressSubject(id); len(s) == 0 {
			b.Fatal("empty")
		}
	}
}

func BenchmarkEventSubject(b *testing.B) {
	id := jobs.NewID(time.Now())
	b.ReportAllocs()
	for b.Loop() {
		if s := jobs.EventSubject("demo", id); len(s) == 0 {
			b.Fatal("empty")
		}
	}
}

func BenchmarkIDFromProgressSubject(b *testing.B) {
	subj := jobs.ProgressSubject(jobs.NewID(time.Now()))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := jobs.IDFromProgressSubject(subj); !ok {
			b.Fatal("not an id")
		}
	}
}

// BenchmarkRead compares a job's reads: the last event alone (what the
// gateway read before owner and end records), its state (last event and
// end record at once) and ReadJob (owner record too), on a real server.
func BenchmarkRead(b *testing.B) {
	ctx, _, js, streams := withTopology(b)
	req := jobs.Request{ID: jobs.NewID(time.Now()), Type: "demo", CreatedAt: time.Now(), Owner: "user:bench"}
	if _, err := jobs.Enqueue(ctx, js, req); err != nil {
		b.Fatal(err)
	}
	for name, read := range map[string]func() error{
		"LastEvent": func() error { _, _, err := jobs.LastEvent(ctx, streams.Events, req.ID); return err },
		"State":     func() error { _, _, err := jobs.State(ctx, streams.Events, streams.Records, req.ID); return err },
		"ReadJob":   func() error { _, err := jobs.ReadJob(ctx, streams.Events, streams.Records, req.ID); return err },
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := read(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEnqueue is a submission's stores: owner record, queued event,
// request.
func BenchmarkEnqueue(b *testing.B) {
	ctx, _, js, _ := withTopology(b)
	b.ReportAllocs()
	for b.Loop() {
		req := jobs.Request{ID: jobs.NewID(time.Now()), Type: "demo", CreatedAt: time.Now(), Owner: "user:bench"}
		if _, err := jobs.Enqueue(ctx, js, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSubmit: one job stored by Enqueue (one fenced request with its
// Nats-Msg-Id) against the raw JetStream write under it (a sync publish of
// the same bytes without headers), from 64 goroutines on one connection,
// on an in-process server. The allocation figures include the server's.
func BenchmarkSubmit(b *testing.B) {
	ctx, _, js, _ := withTopology(b)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RAW", Subjects: []string{"raw"}, Storage: jetstream.FileStorage}); err != nil {
		b.Fatal(err)
	}
	input := json.RawMessage(`{"steps":1,"step_ms":0}`)
	newReq := func() jobs.Request {
		return jobs.Request{ID: jobs.NewID(time.Now()), Type: "demo", Input: input, CreatedAt: time.Now(), Owner: "user:bench"}
	}
	data, _ := newReq().MarshalJSON()
	b.Run("Enqueue", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(32) // × GOMAXPROCS 2 = 64 goroutines
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := jobs.Enqueue(ctx, js, newReq()); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("RawPublish", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := js.Publish(ctx, "raw", data); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkNewID: one job id, as every submit makes (many goroutines at
// once, as the gateway's handlers do).
func BenchmarkNewID(b *testing.B) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = jobs.NewID(time.Now())
		}
	})
}
