package jobtypes

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jobwire/jobwire/services/runner/worker"
)

// DemoInput is the input of the demo job type.
type DemoInput struct {
	Steps      int `json:"steps"`
	StepMS     int `json:"step_ms"`
	FailAtStep int `json:"fail_at_step,omitempty"`
}

const demoSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "steps":        {"type": "integer", "minimum": 1, "maximum": 10000},
    "step_ms":      {"type": "integer", "minimum": 0, "maximum": 60000},
    "fail_at_step": {"type": "integer", "minimum": 0}
  },
  "additionalProperties": false
}`

// Demo is the classic sample's loop: it sleeps step_ms per step and reports
// the percentage after each step. fail_at_step > 0 fails at that step.
func Demo() worker.JobType {
	return worker.JobType{
		Name:         "demo",
		Description:  "Counts through steps, sleeping step_ms each, reporting progress; fail_at_step > 0 fails there.",
		ExampleInput: DemoInput{Steps: 20, StepMS: 100},
		InputSchema:  demoSchema,
		Handler:      runDemo,
	}
}

func runDemo(ctx context.Context, job *worker.Job) (any, error) {
	in := DemoInput{Steps: 20, StepMS: 100}
	if len(job.Input) > 0 {
		if err := json.Unmarshal(job.Input, &in); err != nil {
			return nil, worker.Permanent("invalid_input", err.Error())
		}
	}
	if in.Steps < 1 || in.Steps > 10000 || in.StepMS < 0 || in.StepMS > 60000 || in.FailAtStep < 0 {
		return nil, worker.Permanent("invalid_input", "steps must be 1-10000, step_ms 0-60000, fail_at_step >= 0")
	}
	job.Progress.Stage("counting")
	for i := 1; i <= in.Steps; i++ {
		if in.StepMS > 0 {
			t := time.NewTimer(time.Duration(in.StepMS) * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
		}
		if i == in.FailAtStep {
			return nil, worker.Permanent("demo_failure", fmt.Sprintf("failed at step %d of %d, as asked", i, in.Steps))
		}
		job.Progress.Count(int64(i), int64(in.Steps))
		job.Progress.Message(fmt.Sprintf("step %d of %d", i, in.Steps))
	}
	return map[string]int{"steps": in.Steps}, nil
}
