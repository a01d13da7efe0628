package worker

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/natstest"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// BenchmarkNoopJob is the runner's per-job cost end to end: b.N no-op jobs
// already stored (queued event + request), run by one runner, until every
// final event is stored. Compare with BenchmarkFetchAck, the raw JetStream
// work of fetching and acking as many messages on the same kind of server.
func BenchmarkNoopJob(b *testing.B) { benchNoopJobs(b, nil) }

// BenchmarkNoopJobTraced is BenchmarkNoopJob with tracing on: every
// delivery a span, every event a traceparent header; with the spans
// sampled out (as OTEL_TRACES_SAMPLER=always_off, the cost of tracing a
// job nobody looks at) or all kept and handed to an exporter that drops
// them.
func BenchmarkNoopJobTraced(b *testing.B) {
	for _, c := range []struct {
		name   string
		sample sdktrace.Sampler
	}{{"sampled_out", sdktrace.NeverSample()}, {"sampled", sdktrace.AlwaysSample()}} {
		b.Run(c.name, func(b *testing.B) {
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(c.sample), sdktrace.WithBatcher(tracetest.NewNoopExporter()))
			b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			benchNoopJobs(b, tp)
		})
	}
}

func benchNoopJobs(b *testing.B, tp trace.TracerProvider) {
	s := natstest.Server(b)
	nc := natstest.Connect(b, s)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	js, _ := jetstream.New(nc)
	noop := JobType{Name: "noop", Description: "does nothing", Handler: func(context.Context, *Job) (any, error) { return nil, nil }}
	if _, err := (jobs.Topology{}).CreateOrUpdate(ctx, js); err != nil {
		b.Fatal(err)
	}
	var done atomic.Int64
	sub, err := nc.Subscribe(jobs.AllProgress, func(m *nats.Msg) {
		if len(m.Data) > 0 && containsTerminal(m.Data) {
			done.Add(1)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	for range b.N {
		if _, err := jobs.Enqueue(ctx, js, jobs.Request{ID: jobs.NewID(time.Now()), Type: "noop", CreatedAt: time.Now()}); err != nil {
			b.Fatal(err)
		}
	}
	r, err := New(ctx, natstest.Connect(b, s), Config{Concurrency: 64, TracerProvider: tp}, noop)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	runCtx, stop := context.WithCancel(ctx)
	finished := make(chan struct{})
	go func() { _ = r.Run(runCtx); close(finished) }()
	for done.Load() < int64(b.N) {
		if ctx.Err() != nil {
			b.Fatalf("only %d of %d jobs finished", done.Load(), b.N)
		}
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
	b.StopTimer()
	stop()
	<-finished
}

func containsTerminal(data []byte) bool {
	for _, s := range [][]byte{[]byte(`"status":"succeeded"`), []byte(`"status":"failed"`)} {
		if indexOf(data, s) >= 0 {
			return true
		}
	}
	return false
}

func indexOf(data, sub []byte) int {
	for i := 0; i+len(sub) <= len(data); i++ {
		if string(data[i:i+len(sub)]) == string(sub) {
			return i
		}
	}
	return -1
}

// BenchmarkFetchAck is the baseline for BenchmarkNoopJob: fetch and ack
// b.N stored messages from a work-queue stream, 64 at a time.
func BenchmarkFetchAck(b *testing.B) {
	s := natstest.Server(b)
	nc := natstest.Connect(b, s)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	js, _ := jetstream.New(nc)
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RAW", Subjects: []string{"raw.>"}, Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage})
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 128)
	for range b.N {
		if _, err := js.Publish(ctx, "raw.job", payload); err != nil {
			b.Fatal(err)
		}
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "raw", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for got := 0; got < b.N; {
		batch, err := cons.Fetch(min(64, b.N-got), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			b.Fatal(err)
		}
		for m := range batch.Messages() {
			if err := m.Ack(); err != nil {
				b.Fatal(err)
			}
			got++
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
