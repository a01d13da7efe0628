// Package jobtypes holds the job types jobwire ships with (demo, and the
// exec types an operator configures) and their registration. The engine
// that runs them is package worker; it knows none of them: a runner is
// given its types at the edge (services/runner's main, the gateway's --dev
// runner).
package jobtypes

import (
	"errors"
	"fmt"

	"github.com/jobwire/jobwire/services/runner/worker"
)

// Builtin lists the job types this runner ships with: one line each.
func Builtin() []worker.JobType {
	return []worker.JobType{
		Demo(),
	}
}

// All is the built-in types plus the exec types configured in the file at
// execConfig (none when it is empty).
func All(execConfig string, getenv func(string) string) ([]worker.JobType, error) {
	types := Builtin()
	if execConfig == "" {
		return types, nil
	}
	execTypes, err := LoadExec(execConfig, getenv)
	if err != nil {
		return nil, err
	}
	return append(types, execTypes...), nil
}

// Select keeps the types named in only (all of them when only is empty);
// naming a type that does not exist is an error.
func Select(types []worker.JobType, only []string) ([]worker.JobType, error) {
	if len(only) == 0 {
		return types, nil
	}
	byName := map[string]worker.JobType{}
	for _, t := range types {
		byName[t.Name] = t
	}
	var out []worker.JobType
	var errs []error
	for _, n := range only {
		t, ok := byName[n]
		if !ok {
			errs = append(errs, fmt.Errorf("job type %q is not known to this runner", n))
			continue
		}
		out = append(out, t)
	}
	return out, errors.Join(errs...)
}
