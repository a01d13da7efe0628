package jobclient_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/jobwire/jobwire/internal/devstack"
	"github.com/jobwire/jobwire/services/runner/jobtypes"
	"github.com/jobwire/jobwire/services/runner/worker"
	"github.com/jobwire/jobwire/shared/jobclient"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
)

// Submit a job and follow it to its end. Every event is a full snapshot
// of the job; progress events may be coalesced by the runner, so how many
// there are varies, but their seqs never skip.
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

	// A runner with the built-in job types: it creates jobwire's streams
	// and registers the "demo" type.
	r, err := worker.New(ctx, nc, worker.Config{}, jobtypes.Builtin()...)
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stopRunner := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- r.Run(runCtx) }()
	defer func() { stopRunner(); <-ran }()

	client, err := jobclient.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	queued, err := client.Submit(ctx, "demo", map[string]int{"steps": 3, "step_ms": 80})
	if err != nil {
		log.Fatal(err)
	}

	var progress int
	for ev, err := range client.Watch(ctx, queued.JobID, 0) {
		if err != nil {
			log.Fatal(err)
		}
		switch {
		case ev.Kind == jobs.KindProgress:
			progress++ // 1 or 2 of them: the runner stores progress at most every 100 ms
		case ev.Status.Terminal():
			fmt.Println("progress events seen:", progress > 0)
			fmt.Println("gap-free:", ev.Seq == uint64(2+progress+1)) // queued, started, progress..., this
			fmt.Printf("%s: %.0f%%, %d of %d, result %s\n",
				ev.Kind, *ev.Percent, ev.Current, ev.Total, ev.Result)
		default:
			fmt.Printf("seq %d: %s\n", ev.Seq, ev.Kind)
		}
	}
	// Output:
	// seq 1: queued
	// seq 2: started
	// progress events seen: true
	// gap-free: true
	// succeeded: 100%, 3 of 3, result {"steps":3}
}

// A watcher that has processed events up to some seq resumes after it:
// here, after the "started" event of a job that has finished meanwhile.
func ExampleClient_Watch() {
	client, done := startJobwire()
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	queued, err := client.Submit(ctx, "demo", map[string]int{"steps": 3, "step_ms": 80})
	if err != nil {
		log.Fatal(err)
	}
	var final jobs.Event
	for ev, err := range client.Watch(ctx, queued.JobID, 0) {
		if err != nil {
			log.Fatal(err)
		}
		final = ev
	}

	lastSeen := uint64(2)
	var resumed []jobs.Event
	for ev, err := range client.Watch(ctx, queued.JobID, lastSeen) {
		if err != nil {
			log.Fatal(err)
		}
		resumed = append(resumed, ev)
	}
	fmt.Println("resumed at seq", resumed[0].Seq, "with a", resumed[0].Kind, "event")
	fmt.Println("ended with the final state:", resumed[len(resumed)-1].Seq == final.Seq, resumed[len(resumed)-1].Status)

	// Nothing follows the final event.
	for range client.Watch(ctx, queued.JobID, final.Seq) {
		fmt.Println("unexpected")
	}
	// Output:
	// resumed at seq 3 with a progress event
	// ended with the final state: true succeeded
}

// Submit refuses, before storing anything, a type no runner registered
// and an input that does not fit the type's JSON Schema.
func ExampleClient_Submit() {
	client, done := startJobwire()
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	_, err := client.Submit(ctx, "resize", map[string]int{"width": 640})
	fmt.Println("unknown type:", errors.Is(err, jobclient.ErrUnknownType))

	_, err = client.Submit(ctx, "demo", map[string]int{"steps": 0})
	fmt.Println("invalid input:", errors.Is(err, jobclient.ErrInvalidInput))

	_, err = client.Get(ctx, "no-such-job")
	fmt.Println("not found:", errors.Is(err, jobs.ErrNotFound))

	_, err = client.Get(ctx, "jobs.*")
	fmt.Println("invalid id:", errors.Is(err, jobs.ErrInvalidID))
	// Output:
	// unknown type: true
	// invalid input: true
	// not found: true
	// invalid id: true
}

// startJobwire starts what the package example starts: an embedded NATS
// server and a runner of the built-in job types. It returns a client and
// a function that stops it all.
func startJobwire() (*jobclient.Client, func()) {
	srv, stopNATS, err := devstack.StartTempNATS()
	if err != nil {
		log.Fatal(err)
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		log.Fatal(err)
	}
	ctx, stopRunner := context.WithCancel(context.Background())
	newCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := worker.New(newCtx, nc, worker.Config{}, jobtypes.Builtin()...)
	if err != nil {
		log.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()
	client, err := jobclient.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	return client, func() {
		stopRunner()
		<-ran
		nc.Close()
		stopNATS()
	}
}
