package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jobwire/jobwire/internal/backoff"
	"github.com/jobwire/jobwire/shared/jobs"
)

// Handler does the work of one job. It reports progress through job and
// returns the result (any value that encodes to JSON, or nil) or an error.
// It never sees NATS messages: the runner acks, naks and terminates.
// When ctx is cancelled it should return promptly.
type Handler func(ctx context.Context, job *Job) (result any, err error)

// JobType is one kind of job a runner can run.
type JobType struct {
	// Name is the stable wire name (a safe subject token), e.g. "demo".
	Name        string
	Description string
	// ExampleInput is shown to clients discovering the type.
	ExampleInput any
	// InputSchema is a JSON Schema (draft 2020-12) the gateway checks
	// inputs against at submit time. Empty means any input is accepted.
	InputSchema string
	Handler     Handler
	// Retry says how often and how soon a failed attempt is retried.
	Retry RetryPolicy
	// Timeout is the longest one attempt may run (0: no limit). At the
	// deadline the handler's context is cancelled and the attempt fails
	// with the code "timeout".
	Timeout time.Duration
}

// RetryPolicy is a job type's retry schedule. The zero value means the
// defaults: 5 attempts, 1s doubling up to 5m, with jitter.
type RetryPolicy struct {
	MaxAttempts int           // attempts in all, including the first (default 5)
	BaseDelay   time.Duration // delay after the first failure (default 1s)
	MaxDelay    time.Duration // the longest delay (default 5m)
	// RetryTimeouts retries attempts that ran out of time; by default a
	// timeout fails the job at once.
	RetryTimeouts bool
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 5
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = time.Second
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 5 * time.Minute
	}
	p.MaxDelay = max(p.MaxDelay, p.BaseDelay)
	return p
}

// Delay is how long to wait after attempt (1-based) failed: BaseDelay
// doubled per attempt, at most MaxDelay, with "equal jitter" (a random
// point in the upper half) so that many failing jobs do not retry in step.
func (p RetryPolicy) Delay(attempt int) time.Duration {
	p = p.withDefaults()
	return backoff.Delay(p.BaseDelay, p.MaxDelay, attempt)
}

// Info is the registration record stored in the types bucket.
func (t JobType) Info() (jobs.TypeInfo, error) {
	info := jobs.TypeInfo{Type: t.Name, Description: t.Description}
	if t.ExampleInput != nil {
		b, err := json.Marshal(t.ExampleInput)
		if err != nil {
			return info, fmt.Errorf("job type %s: example input: %w", t.Name, err)
		}
		info.ExampleInput = b
	}
	if t.InputSchema != "" {
		if !json.Valid([]byte(t.InputSchema)) {
			return info, fmt.Errorf("job type %s: input schema is not valid JSON", t.Name)
		}
		info.InputSchema = json.RawMessage(t.InputSchema)
	}
	return info, nil
}

// registry maps type names to job types.
type registry map[string]JobType

func newRegistry(types []JobType) (registry, error) {
	reg := make(registry, len(types))
	var errs []error
	for _, t := range types {
		if err := jobs.ValidateType(t.Name); err != nil {
			errs = append(errs, fmt.Errorf("job type %q: %w", t.Name, err))
			continue
		}
		if t.Handler == nil {
			errs = append(errs, fmt.Errorf("job type %s: no handler", t.Name))
			continue
		}
		if _, dup := reg[t.Name]; dup {
			errs = append(errs, fmt.Errorf("job type %s: registered twice", t.Name))
			continue
		}
		reg[t.Name] = t
	}
	if len(types) == 0 {
		errs = append(errs, errors.New("no job types registered"))
	}
	return reg, errors.Join(errs...)
}

// PermanentError marks an error that retrying cannot fix (bad input, a
// business rule): the job fails at once.
type PermanentError struct{ Err *jobs.Error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent returns a permanent error with a machine code and a message.
func Permanent(code, message string) error {
	return &PermanentError{Err: &jobs.Error{Code: code, Message: message}}
}

// names lists the registered type names, sorted.
func (r registry) names() []string {
	out := make([]string, 0, len(r))
	for n := range r {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
