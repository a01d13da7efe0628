package workertest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/jobwire/jobwire/services/runner/worker"
	"github.com/jobwire/jobwire/services/runner/worker/workertest"
	"github.com/jobwire/jobwire/shared/jobs"
)

// countWords is the job type under test.
func countWords() worker.JobType {
	return worker.JobType{
		Name:        "count-words",
		Description: "Counts the words of a text.",
		InputSchema: `{"type":"object","required":["text"],"properties":{"text":{"type":"string"}}}`,
		Handler: func(ctx context.Context, job *worker.Job) (any, error) {
			var in struct{ Text string }
			if err := json.Unmarshal(job.Input, &in); err != nil {
				return nil, worker.Permanent("invalid_input", err.Error())
			}
			words := strings.Fields(in.Text)
			job.Progress.Stage("counting")
			for i := range words {
				job.Progress.Count(int64(i+1), int64(len(words)))
			}
			job.Progress.Log(fmt.Sprintf("counted %d words", len(words)))
			return map[string]int{"words": len(words)}, nil
		},
	}
}

// Run runs one job of a type on a real runner against an embedded NATS
// server and returns every event the job stored and its final state. In a
// test it is one line:
//
//	events, final := workertest.Run(t, countWords(), map[string]string{"text": "the quick brown fox"})
func ExampleRun() {
	t := &testing.T{} // stands in for a test's *testing.T

	events, final := workertest.Run(t, countWords(), map[string]string{"text": "the quick brown fox"})

	for _, ev := range events {
		if ev.Kind == jobs.KindLog {
			fmt.Println("log:", ev.Log)
		}
	}
	fmt.Printf("%s on attempt %d: %.0f%%, result %s\n", final.Status, final.Attempt, *final.Percent, final.Result)
	// Output:
	// log: counted 4 words
	// succeeded on attempt 1: 100%, result {"words":4}
}

// A Harness runs many jobs of several types on one runner, and can cancel
// them or stop the runner.
func ExampleHarness() {
	t := &testing.T{} // stands in for a test's *testing.T
	h := workertest.New(t, workertest.Config{}, countWords())
	defer h.Close() // in a test, Close is called when the test ends

	// The input is checked against the type's schema, as the gateway does.
	_, err := h.TrySubmit("count-words", map[string]int{"text": 1})
	fmt.Println(err != nil)

	id := h.Submit("count-words", map[string]string{"text": "to be or not to be"})
	_, final := h.Wait(id)
	fmt.Println(final.Status, string(final.Result))
	// Output:
	// true
	// succeeded {"words":6}
}
