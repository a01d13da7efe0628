package workertest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jobwire/jobwire/services/runner/worker"
	"github.com/jobwire/jobwire/services/runner/worker/workertest"
	"github.com/jobwire/jobwire/shared/jobclient"
	"github.com/jobwire/jobwire/shared/jobs"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Close stops everything a Harness started.
	goleak.VerifyTestMain(m)
}

func kindsOf(events []jobs.Event) []jobs.Kind {
	var out []jobs.Kind
	for _, ev := range events {
		out = append(out, ev.Kind)
	}
	return out
}

// Attempts retries quickly, and the events show every attempt.
func TestRunWithAttempts(t *testing.T) {
	t.Parallel()
	flaky := worker.JobType{Name: "flaky", Description: "fails twice", Handler: func(ctx context.Context, job *worker.Job) (any, error) {
		if job.Attempt < 3 {
			return nil, errors.New("not yet")
		}
		return "third time", nil
	}}
	events, final := workertest.Run(t, flaky, nil, workertest.Attempts(3))
	if final.Status != jobs.StatusSucceeded || final.Attempt != 3 || string(final.Result) != `"third time"` {
		t.Fatalf("final %+v", final)
	}
	want := []jobs.Kind{jobs.KindQueued, jobs.KindStarted, jobs.KindRetrying, jobs.KindStarted, jobs.KindRetrying, jobs.KindStarted, jobs.KindSucceeded}
	if got := kindsOf(events); !slices.Equal(got, want) {
		t.Errorf("kinds %v, want %v:%s", got, want, workertest.Describe(events))
	}
}

// CancelWhen cancels the running job once an event matches.
func TestRunWithCancelWhen(t *testing.T) {
	t.Parallel()
	waits := worker.JobType{Name: "waits", Description: "waits to be canceled", Handler: func(ctx context.Context, job *worker.Job) (any, error) {
		job.Progress.Stage("waiting")
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	events, final := workertest.Run(t, waits, nil, workertest.CancelWhen(func(ev jobs.Event) bool { return ev.Stage == "waiting" }))
	if final.Status != jobs.StatusCanceled || final.Error == nil || !strings.Contains(final.Error.Message, "workertest") {
		t.Fatalf("final %+v:%s", final, workertest.Describe(events))
	}
}

// A bad registration fails New; a type the runner does not serve and an
// input against the schema are refused at submit, as by the gateway.
func TestHarnessRefuses(t *testing.T) {
	t.Parallel()
	ft := &fakeT{TB: t}
	func() {
		defer func() { _ = recover() }()
		workertest.New(ft, workertest.Config{}, worker.JobType{Name: "a.b", Handler: func(context.Context, *worker.Job) (any, error) { return nil, nil }})
	}()
	if !strings.Contains(ft.fatal, "a.b") {
		t.Errorf("New with a bad type: fatal %q, want it to name the type", ft.fatal)
	}

	h := workertest.New(t, workertest.Config{}, worker.JobType{Name: "typed", InputSchema: `{"type":"object","properties":{"n":{"type":"integer"}}}`,
		Handler: func(context.Context, *worker.Job) (any, error) { return nil, nil }})
	if _, err := h.TrySubmit("typed", map[string]string{"n": "x"}); !errors.Is(err, jobclient.ErrInvalidInput) {
		t.Errorf("bad input: %v, want ErrInvalidInput", err)
	}
	if _, err := h.TrySubmit("other", nil); !errors.Is(err, jobclient.ErrUnknownType) {
		t.Errorf("unknown type: %v, want ErrUnknownType", err)
	}
}

// fakeT records Fatalf instead of ending the test.
type fakeT struct {
	testing.TB
	fatal string
}

func (f *fakeT) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	panic("fatal")
}
