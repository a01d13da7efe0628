package jobops

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jobwire/jobwire/services/gateway/jobindex"
	"github.com/jobwire/jobwire/shared/jobs"
)

// ListQuery picks the jobs List returns.
type ListQuery struct {
	Limit  int         // at most this many jobs
	Status jobs.Status // only jobs in this state; "" for any
	Type   string      // only jobs of this type; "" for any
	Cursor string      // where the page starts: a NextCursor of an earlier page; "" for the newest
}

// List returns the jobs who may see, newest first, or for a final status
// the most recently ended first (an admin's: everyone's,
// others' their own: the jobs whose request named them, whatever later
// events say), and the cursor of the next page ("" on the last
// page). It reads a page of the job index (jobindex.Reader.Page): a few
// requests however many jobs are stored. A filtered page examines a
// bounded number of jobs, so it may hold fewer than q.Limit jobs and
// still have a next page. Each job is its jobs.Snapshot as JSON (an ended
// job's as the index holds it, not decoded).
func (s *Service) List(ctx context.Context, who Caller, q ListQuery) (page []json.RawMessage, next string, err error) {
	switch {
	case q.Status != "" && !q.Status.Valid():
		return nil, "", &InvalidArgumentError{"status must be one of scheduled, queued, running, succeeded, failed, canceled"}
	case q.Type != "" && jobs.ValidateType(q.Type) != nil:
		return nil, "", &InvalidArgumentError{"type is not a valid job type name"}
	}
	scope := jobs.OwnerScope(who.Owner)
	if who.Admin {
		scope = jobs.AllJobsScope
	}
	pq := jobindex.PageQuery{Scope: scope, Limit: q.Limit, Status: q.Status, Type: q.Type}
	list := string(pq.List().EndedIn()) // a cursor is a position in this list
	before, cursorOK := s.cursors.open(who.Owner, list, q.Cursor)
	if !cursorOK {
		return nil, "", &InvalidArgumentError{"cursor is not valid"}
	}
	pq.Before = before
	p, err := s.index.Page(ctx, pq)
	if err != nil {
		return nil, "", unavailable(err)
	}
	page = make([]json.RawMessage, len(p.Jobs))
	for i, l := range p.Jobs {
		page[i] = l.JSON
	}
	if p.Next != 0 {
		next = s.cursors.seal(who.Owner, list, p.Next)
	}
	return page, next, nil
}

// Stats is what the job index counts for who (an admin: every job; others
// their own jobs), per type; for an admin also each type's queue.
type Stats struct {
	Scope       string               `json:"scope"` // "all" or "mine"
	GeneratedAt time.Time            `json:"generated_at"`
	Types       []jobindex.TypeStats `json:"types"`
}

// Stats reads who's statistics: no job is read (see jobindex.Reader.Stats).
func (s *Service) Stats(ctx context.Context, who Caller) (Stats, error) {
	now := time.Now().UTC()
	out := Stats{Scope: "mine", GeneratedAt: now}
	scope := jobs.OwnerScope(who.Owner)
	if who.Admin {
		out.Scope, scope = "all", jobs.AllJobsScope
	}
	var types []string
	for _, t := range s.catalog.list() {
		types = append(types, t.Type)
	}
	var err error
	if out.Types, err = s.index.Stats(ctx, scope, types, now); err != nil {
		return Stats{}, unavailable(err)
	}
	if !who.Admin {
		return out, nil
	}
	runners := s.runners(ctx)
	for i := range out.Types {
		t := &out.Types[i]
		if t.Queue, err = s.index.Queue(ctx, t.Type, now); err != nil {
			return Stats{}, unavailable(err)
		}
		if r, ok := runners[t.Type]; ok {
			t.Runners = &r
		} else {
			t.Runners = &jobindex.RunnerStats{}
		}
	}
	return out, nil
}
