package worker

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/jobwire/jobwire/shared/jobs"
)

// Job is what a handler gets: the request and a progress reporter.
type Job struct {
	ID       string
	Type     string
	Input    json.RawMessage
	Attempt  int
	Progress *Progress
}

// maxPendingLogs bounds the log lines waiting to be published per job;
// when a handler logs faster than they can be stored, the oldest go.
const maxPendingLogs = 256

// Progress records what a handler reports. Calls never block on NATS: they
// update the job's snapshot and wake the job's publisher, which stores the
// latest snapshot (intermediate values may be coalesced) and every log line.
type Progress struct {
	mu       sync.Mutex
	snap     progressState
	dirty    bool
	logs     []string
	kept     int // log lines accepted so far
	maxLogs  int // log lines kept per attempt
	dropped  int // log lines not kept
	reported bool
	wake     chan struct{}
}

type progressState struct {
	percent        *float64
	current, total int64
	stage, message string
}

// applyTo sets the reported values on an event.
func (s *progressState) applyTo(e *jobs.Event) {
	e.Percent, e.Current, e.Total, e.Stage, e.Message = s.percent, s.current, s.total, s.stage, s.message
}

func newProgress(maxLogs int) *Progress {
	return &Progress{wake: make(chan struct{}, 1), maxLogs: maxLogs}
}

func (p *Progress) update(f func(s *progressState)) {
	p.mu.Lock()
	f(&p.snap)
	p.dirty = true
	p.mu.Unlock()
	p.signal()
}

func (p *Progress) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Percent sets the completion percentage (clamped to 0..100).
func (p *Progress) Percent(pct float64) {
	p.update(func(s *progressState) { s.percent = jobs.Percentage(pct) })
}

// Count sets current out of total, and the percentage from them.
func (p *Progress) Count(current, total int64) {
	p.update(func(s *progressState) {
		s.current, s.total = current, total
		if total > 0 {
			s.percent = jobs.Percentage(float64(current) * 100 / float64(total))
		}
	})
}

// Stage names the phase the job is in.
func (p *Progress) Stage(stage string) {
	p.update(func(s *progressState) { s.stage = stage })
}

// Message sets a human-readable status line.
func (p *Progress) Message(msg string) {
	p.update(func(s *progressState) { s.message = msg })
}

// Log adds a log line; each one becomes a "log" event. Lines past the
// runner's per-job limit are counted, not kept; so are the oldest waiting
// lines when a handler logs faster than they can be stored.
func (p *Progress) Log(line string) {
	p.mu.Lock()
	switch {
	case p.maxLogs > 0 && p.kept >= p.maxLogs:
		p.dropped++
	case len(p.logs) >= maxPendingLogs:
		p.logs = append(p.logs[1:], line)
		p.dropped++
	default:
		p.logs = append(p.logs, line)
		p.kept++
	}
	p.mu.Unlock()
	p.signal()
}

// take returns what is waiting to be published and clears it. The final
// take adds a line saying how many log lines were dropped, if any.
func (p *Progress) take(final bool) (snap progressState, dirty bool, logs []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	snap, dirty, logs = p.snap, p.dirty, p.logs
	if final && p.dropped > 0 && !p.reported {
		logs = append(logs, fmt.Sprintf("(%d log lines dropped: over the limit of %d per job)", p.dropped, p.maxLogs))
		p.reported = true
	}
	p.dirty, p.logs = false, nil
	return snap, dirty, logs
}
