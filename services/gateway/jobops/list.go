package jobops

import (
	"cmp"
	"context"
	"errors"
	"slices"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
)

// maxListScan bounds how many jobs one list request reads.
const maxListScan = 5000

// ListQuery picks the jobs List returns.
type ListQuery struct {
	Limit  int         // at most this many jobs
	Status jobs.Status // only jobs in this state; "" for any
	Type   string      // only jobs of this type; "" for any
	Cursor string      // where the page starts: a NextCursor of an earlier page; "" for the newest
}

// List returns the jobs who may see, newest first, and the cursor of the
// next page ("" on the last page).
func (s *Service) List(ctx context.Context, who Caller, q ListQuery) (page []jobs.Snapshot, next string, err error) {
	cursor, cursorOK := s.cursors.open(who.Owner, q.Cursor)
	switch {
	case q.Status != "" && !q.Status.Valid():
		return nil, "", &InvalidArgumentError{"status must be one of queued, running, succeeded, failed, canceled"}
	case q.Type != "" && jobs.ValidateType(q.Type) != nil:
		return nil, "", &InvalidArgumentError{"type is not a valid job type name"}
	case !cursorOK:
		return nil, "", &InvalidArgumentError{"cursor is not valid"}
	}
	ids, err := s.jobIDs(ctx)
	if err != nil {
		return nil, "", unavailable(err)
	}
	page = []jobs.Snapshot{}
	scanned, last := 0, ""
	for _, id := range ids {
		if cursor != "" && id >= cursor {
			continue
		}
		if len(page) == q.Limit || scanned == maxListScan {
			next = s.cursors.seal(who.Owner, last)
			break
		}
		scanned, last = scanned+1, id
		// The request first: a job of another owner costs one read.
		owner, err := jobs.ReadOwner(ctx, s.streams.Events, id)
		if err != nil && !errors.Is(err, jobs.ErrNotFound) || !who.CanSee(owner.Owner) || q.Type != "" && owner.Type != "" && owner.Type != q.Type {
			continue // not who's, or aged out between listing and reading
		}
		ev, _, err := jobs.State(ctx, s.streams.Events, s.streams.Records, id)
		if err == nil && (q.Status == "" || ev.Status == q.Status) && (q.Type == "" || cmp.Or(owner.Type, ev.Type) == q.Type) {
			page = append(page, jobs.SnapshotOf(ev))
		}
	}
	return page, next, nil
}

// jobIDs lists the ids of every job with a stored request, newest first.
func (s *Service) jobIDs(ctx context.Context) ([]string, error) {
	info, err := s.streams.Events.Info(ctx, jetstream.WithSubjectFilter(jobs.AllQueue))
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(info.State.Subjects))
	for subj := range info.State.Subjects {
		if id, ok := jobs.IDFromEventSubject(subj); ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids) // a second request of an id (not jobwire's doing)
	slices.Reverse(ids)
	return ids, nil
}
