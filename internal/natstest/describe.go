package natstest

import (
	"fmt"
	"strings"

	"github.com/jobwire/jobwire/shared/jobs"
)

// Describe is a one-line summary of a job event for failure messages:
// seq, kind/status, attempt, and whichever of progress, stage, message,
// log, error and result it carries.
func Describe(ev jobs.Event) string {
	s := fmt.Sprintf("#%d %s/%s attempt=%d", ev.Seq, ev.Kind, ev.Status, ev.Attempt)
	if ev.Percent != nil {
		s += fmt.Sprintf(" %.0f%%", *ev.Percent)
	}
	if ev.Total > 0 {
		s += fmt.Sprintf(" %d/%d", ev.Current, ev.Total)
	}
	if ev.Stage != "" {
		s += fmt.Sprintf(" stage=%q", ev.Stage)
	}
	if ev.Message != "" {
		s += fmt.Sprintf(" msg=%q", ev.Message)
	}
	if ev.Log != "" {
		s += fmt.Sprintf(" log=%q", ev.Log)
	}
	if ev.Error != nil {
		s += fmt.Sprintf(" error=%s", ev.Error)
	}
	if len(ev.Result) > 0 {
		s += fmt.Sprintf(" result=%s", ev.Result)
	}
	return s
}

// DescribeAll describes events one per line, indented.
func DescribeAll(evs []jobs.Event) string {
	lines := make([]string, len(evs))
	for i, ev := range evs {
		lines[i] = "  " + Describe(ev)
	}
	return strings.Join(lines, "\n")
}
