package jobtypes_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/jobwire/jobwire/services/runner/jobtypes"
	"github.com/jobwire/jobwire/services/runner/worker/workertest"
	"github.com/jobwire/jobwire/shared/jobclient"
	"github.com/jobwire/jobwire/shared/jobs"
)

func TestDemoCountsToTheEnd(t *testing.T) {
	t.Parallel()
	events, final := workertest.Run(t, jobtypes.Demo(), jobtypes.DemoInput{Steps: 3, StepMS: 1})
	if final.Status != jobs.StatusSucceeded || final.Current != 3 || final.Total != 3 || *final.Percent != 100 ||
		final.Stage != "counting" || final.Message != "step 3 of 3" || string(final.Result) != `{"steps":3}` {
		t.Fatalf("final state:%s", workertest.Describe(events))
	}
}

func TestDemoFailsAtTheStepAskedFor(t *testing.T) {
	t.Parallel()
	events, final := workertest.Run(t, jobtypes.Demo(), jobtypes.DemoInput{Steps: 5, FailAtStep: 2})
	if final.Status != jobs.StatusFailed || final.Attempt != 1 || final.Error == nil || final.Error.Code != "demo_failure" ||
		!strings.Contains(final.Error.Message, "step 2 of 5") || final.Current != 1 {
		t.Fatalf("final state:%s", workertest.Describe(events))
	}
}

func TestDemoInputIsChecked(t *testing.T) {
	t.Parallel()
	h := workertest.New(t, workertest.Config{}, jobtypes.Demo())
	for _, bad := range []any{jobtypes.DemoInput{Steps: 0}, map[string]int{"steps": 10001}, map[string]int{"step_ms": -1}, map[string]any{"steps": 1, "extra": true}} {
		if _, err := h.TrySubmit("demo", bad); !errors.Is(err, jobclient.ErrInvalidInput) {
			t.Errorf("input %+v: %v, want invalid input", bad, err)
		}
	}
}

func TestSelectKeepsTheNamedTypes(t *testing.T) {
	t.Parallel()
	all := append(jobtypes.Builtin(), jobtypes.Demo())
	all[1].Name = "other"
	got, err := jobtypes.Select(all, []string{"other"})
	if err != nil || len(got) != 1 || got[0].Name != "other" {
		t.Errorf("Select other: %v %v", got, err)
	}
	if got, err := jobtypes.Select(all, nil); err != nil || len(got) != 2 {
		t.Errorf("Select nothing named: %d types, %v; want all", len(got), err)
	}
	if _, err := jobtypes.Select(all, []string{"demo", "nosuch", "nope"}); err == nil || !strings.Contains(err.Error(), "nosuch") || !strings.Contains(err.Error(), "nope") {
		t.Errorf("Select of unknown types: %v, want an error naming each", err)
	}
}
