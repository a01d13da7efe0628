package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/jobwire/jobwire/internal/devstack"
	"github.com/jobwire/jobwire/services/runner/worker"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A job type is a stable wire name plus a handler. The handler reports
// progress through job.Progress (calls never block on NATS), watches its
// context, and returns a result or an error; the runner stores the events
// and owns every ack.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A NATS server with JetStream, in process (use a real one in production).
	srv, stopNATS, err := devstack.StartTempNATS()
	if err != nil {
		log.Fatal(err)
	}
	defer stopNATS()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	countWords := worker.JobType{
		Name:         "count-words",
		Description:  "Counts the words of a text.",
		ExampleInput: map[string]string{"text": "hello world"},
		Handler: func(ctx context.Context, job *worker.Job) (any, error) {
			var in struct {
				Text string `json:"text"`
			}
			if err := json.Unmarshal(job.Input, &in); err != nil {
				return nil, worker.Permanent("invalid_input", err.Error()) // not retried
			}
			words := strings.Fields(in.Text)
			job.Progress.Stage("counting")
			for i := range words {
				if err := ctx.Err(); err != nil {
					return nil, err // cancelled, timed out, or the runner is shutting down
				}
				job.Progress.Count(int64(i+1), int64(len(words)))
			}
			job.Progress.Log(fmt.Sprintf("counted %d words", len(words)))
			return map[string]int{"words": len(words)}, nil
		},
	}

	r, err := worker.New(ctx, nc, worker.Config{Concurrency: 2}, countWords)
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- r.Run(runCtx) }()

	// Submit a job as the gateway does: one request on the type's queue
	// subject, which is also the job's "queued" event.
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	id := jobs.NewID(time.Now())
	req := jobs.Request{ID: id, Type: "count-words", Input: json.RawMessage(`{"text":"the quick brown fox"}`), CreatedAt: time.Now()}
	if _, err := jobs.Enqueue(ctx, js, req); err != nil {
		log.Fatal(err)
	}

	// Follow the job's events (every one is on jobs.<id>.progress) until it
	// ends. Progress events may be coalesced; log lines and the final
	// state never are.
	events, err := js.OrderedConsumer(ctx, jobs.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{jobs.JobSubjects(id)},
	})
	if err != nil {
		log.Fatal(err)
	}
	for {
		msg, err := events.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			log.Fatal(err)
		}
		var ev jobs.Event
		if err := json.Unmarshal(msg.Data(), &ev); err != nil {
			log.Fatal(err)
		}
		switch ev.Kind {
		case jobs.KindStarted:
			fmt.Printf("started, attempt %d\n", ev.Attempt)
		case jobs.KindLog:
			fmt.Println("log:", ev.Log)
		}
		if ev.Status.Terminal() {
			fmt.Printf("%s: %.0f%%, %d of %d, result %s\n", ev.Status, *ev.Percent, ev.Current, ev.Total, ev.Result)
			break
		}
	}

	stop() // as on SIGTERM: stop fetching, let running jobs finish
	if err := <-ran; err != nil {
		log.Fatal(err)
	}
	// Output:
	// started, attempt 1
	// log: counted 4 words
	// succeeded: 100%, 4 of 4, result {"words":4}
}
