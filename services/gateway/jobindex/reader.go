package jobindex

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Reader reads the index and the state of the jobs it lists.
type Reader struct {
	nc      *nats.Conn
	streams *jobs.Streams
}

// NewReader reads the index in streams over nc.
func NewReader(nc *nats.Conn, streams *jobs.Streams) *Reader {
	return &Reader{nc: nc, streams: streams}
}

// PageQuery is what a page of a list holds.
type PageQuery struct {
	Scope  jobs.ListScope
	Before uint64 // only positions below this one; 0: from the newest job
	Limit  int
	Status jobs.Status // "": any
	Type   string      // "": any
}

// Page is a page of a list: the jobs' states, newest first (a list of
// ended jobs: the most recently ended first), and the position the next
// page starts below (0: this is the last page).
type Page struct {
	Jobs []Listed
	Next uint64
}

// Listed is a job on a page: its state as JSON (a jobs.Snapshot, which an
// ended job's entry holds ready, so a page of ended jobs decodes none),
// and what the page is sorted and filtered by.
type Listed struct {
	ID      string
	Status  jobs.Status
	Created time.Time
	Ended   time.Time // zero while the job has not ended
	JSON    json.RawMessage
}

// listed is ev's state on a page.
func listed(ev jobs.Event) Listed {
	l := Listed{ID: ev.JobID, Status: ev.Status}
	l.JSON, _ = json.Marshal(jobs.SnapshotOf(ev))
	if ev.CreatedAt != nil {
		l.Created = *ev.CreatedAt
	}
	if ev.Status.Terminal() {
		l.Ended = ev.Time
		if ev.EndedAt != nil {
			l.Ended = *ev.EndedAt
		}
	}
	return l
}

// Examined bounds how many positions one page reads when it is filtered:
// a filter that matches few of the jobs returns fewer than its limit and a
// Next to go on from, so a page costs a bounded number of reads.
func Examined(limit int) int { return min(max(10*limit, 200), 1000) }

// window is how many positions one request of a page reads: the page's
// limit, or for a filtered page more (up to 100, within Examined), so
// that it examines its positions in a few requests. A page of jobs ended
// in one status reads that status's list (List), where nearly every
// position matches.
func window(q PageQuery) int {
	if q.Type == "" && (q.Status == "" || q.Status.Terminal()) {
		return q.Limit
	}
	return min(max(q.Limit, 100), Examined(q.Limit))
}

// List is the list a page of q reads: for a final status the list of
// the jobs that ended in it (most recently ended first), otherwise
// q.Scope's list of every job (newest first). A page's Next is a
// position in it.
func (q PageQuery) List() jobs.ListScope {
	if q.Status.Terminal() {
		return q.Scope.Ended(q.Status)
	}
	return q.Scope
}

// filterBudget is how long a filtered page goes on reading windows: once
// it is spent, the page ends with what it found and a Next to go on from
// (an owner's entries are spread over the whole index stream, and older
// ones cost the server a block read each).
const filterBudget = time.Second

// MaxRequests bounds the NATS requests Page makes for q: one for the
// list's last position, then per window one for the entries and two (at
// once) for the jobs not ended yet (none when every job listed has ended).
func MaxRequests(q PageQuery) int {
	windows := 1
	if q.Status != "" || q.Type != "" {
		windows = (Examined(q.Limit) + window(q) - 1) / window(q)
	}
	return 1 + 3*windows
}

// Page reads a page of q's list (q.List()): the entries at the positions
// below q.Before, a window at a time (one request). An ended job's entry holds
// its final state; the jobs not ended yet are read from the jobs stream
// (one request for their last messages, one for their end records, at
// once). A filtered page reads windows until it is full, it has
// examined Examined(q.Limit) positions, or filterBudget is spent.
func (r *Reader) Page(ctx context.Context, q PageQuery) (Page, error) {
	list := q.List()
	top := q.Before
	if top == 0 {
		last, err := r.last(ctx, list.PositionCounter())
		if err != nil {
			return Page{}, err
		}
		top = last + 1
	}
	page := Page{Jobs: []Listed{}}
	pos, examined := top-1, 0 // pos: the highest position not yet read
	start := time.Now()
	for pos >= 1 && len(page.Jobs) < q.Limit && examined < Examined(q.Limit) && (examined == 0 || time.Since(start) < filterBudget) {
		positions := make([]uint64, 0, window(q))
		for p := pos; p >= 1 && len(positions) < cap(positions); p-- {
			positions = append(positions, p)
		}
		entries, err := r.entries(ctx, list, positions)
		if err != nil {
			return Page{}, err
		}
		if len(entries) == 0 {
			// Nothing in this window: the list's older entries may have
			// aged out; then there is nothing more to read.
			first, err := r.firstPosition(ctx, list)
			if err != nil {
				return Page{}, err
			}
			if first == 0 || first > pos {
				pos = 0
				break
			}
		}
		states := make(map[string]Listed, len(entries))
		var running []entry
		for _, e := range entries {
			if q.Type != "" && e.Type != q.Type || q.Status != "" && e.Status.Terminal() && e.Status != q.Status {
				continue // ended in another status
			}
			if l, ok := e.ended(); ok {
				states[e.ID] = l
			} else {
				running = append(running, e)
			}
		}
		live, err := r.states(ctx, running)
		if err != nil {
			return Page{}, err
		}
		for id, ev := range live {
			states[id] = listed(ev)
		}
		taken := 0
		for i, p := range positions {
			taken = i + 1
			e, ok := entries[p]
			if !ok {
				continue
			}
			ev, ok := states[e.ID]
			if !ok || (q.Status != "" && ev.Status != q.Status) || (q.Type != "" && e.Type != q.Type) {
				continue
			}
			page.Jobs = append(page.Jobs, ev)
			if len(page.Jobs) == q.Limit {
				break
			}
		}
		pos, examined = pos-uint64(taken), examined+taken
	}
	if pos >= 1 {
		page.Next = pos + 1
	}
	// Positions follow the order the indexers saw the jobs (or their
	// ends) in, which may differ from the order they were made (or ended)
	// in by a few milliseconds.
	when := func(l Listed) time.Time { return l.Created }
	if list.EndedIn() != "" {
		when = func(l Listed) time.Time { return l.Ended }
	}
	slices.SortStableFunc(page.Jobs, func(a, b Listed) int {
		return cmp.Or(when(b).Compare(when(a)), cmp.Compare(b.ID, a.ID))
	})
	return page, nil
}

// entry is a list entry (jobs.IndexEntry) as the reader reads it: an
// ended job's snapshot is kept as it is, not decoded.
type entry struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	CreatedAt time.Time       `json:"created_at"`
	Snapshot  json.RawMessage `json:"snapshot"`
	Status    jobs.Status     `json:"status"`
	EndedAt   time.Time       `json:"ended_at"`
	Final     *jobs.Event     `json:"final"` // entries written before 2026-12-02
}

// ended is the state of e's job if e says it has ended.
func (e entry) ended() (Listed, bool) {
	switch {
	case !e.Status.Terminal():
		return Listed{}, false
	case len(e.Snapshot) > 0:
		return Listed{ID: e.ID, Status: e.Status, Created: e.CreatedAt, Ended: e.EndedAt, JSON: e.Snapshot}, true
	case e.Final != nil && e.Final.JobID == e.ID && e.Final.Status == e.Status:
		return listed(*e.Final), true
	}
	return Listed{}, false
}

// last reads a counter's value (0 if it was never counted).
func (r *Reader) last(ctx context.Context, counter string) (uint64, error) {
	m, err := r.streams.Counts.GetLastMsgForSubject(ctx, counter)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, ok := jobs.CounterValue(m.Data)
	if !ok || n < 0 {
		return 0, nil
	}
	return uint64(n), nil
}

// entries reads the entries of scope's list at positions, in one request.
func (r *Reader) entries(ctx context.Context, scope jobs.ListScope, positions []uint64) (map[uint64]entry, error) {
	subjects := make([]string, len(positions))
	for i, p := range positions {
		subjects[i] = scope.IndexSubject(p)
	}
	entries := make(map[uint64]entry, len(positions))
	err := jobs.MultiLast(ctx, r.nc, jobs.IndexStream, subjects, func(m jobs.StoredEvent) {
		var e entry
		p, err := strconv.ParseUint(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:], 10, 64)
		if err != nil {
			return
		}
		if json.Unmarshal(m.Data, &e) != nil {
			// A final state that does not decode: the job is read from
			// its events.
			var plain jobs.IndexEntry
			if json.Unmarshal(m.Data, &plain) != nil {
				return
			}
			e = entry{ID: plain.ID, Type: plain.Type, CreatedAt: plain.CreatedAt}
		}
		if jobs.ValidateID(e.ID) == nil && jobs.ValidateType(e.Type) == nil {
			entries[p] = e
		}
	})
	return entries, err
}

// firstPosition is the oldest position of scope's list still kept (0: none).
func (r *Reader) firstPosition(ctx context.Context, scope jobs.ListScope) (uint64, error) {
	var first uint64
	_, err := jobs.DirectBatch(ctx, r.nc, jobs.IndexStream, struct {
		Seq     uint64 `json:"seq"`
		NextFor string `json:"next_by_subj"`
		Batch   int    `json:"batch"`
	}{1, scope.IndexFilter(), 1}, func(m jobs.StoredEvent) bool {
		first, _ = strconv.ParseUint(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:], 10, 64)
		return false
	})
	return first, err
}

// statesPerRequest is how many jobs' last messages one request reads.
const statesPerRequest = 300

// states reads the state of each job in entries as jobs.State does: its
// last event, unless its end record names another (final) one. It reads
// the last messages of all of them in one request and their end records
// in another, at once.
func (r *Reader) states(ctx context.Context, entries []entry) (map[string]jobs.Event, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	ends := make([]string, 0, len(entries))
	for _, e := range entries {
		ends = append(ends, jobs.EndSubject(e.ID))
	}
	type endRecords struct {
		seqs map[string]uint64
		err  error
	}
	endc := make(chan endRecords, 1)
	go func() {
		seqs := map[string]uint64{}
		err := jobs.MultiLast(ctx, r.nc, jobs.RecordsStream, ends, func(m jobs.StoredEvent) {
			var rec jobs.EndRecord
			if json.Unmarshal(m.Data, &rec) == nil {
				seqs[strings.TrimPrefix(m.Subject, jobs.EndSubject(""))] = rec.Seq
			}
		})
		endc <- endRecords{seqs, err}
	}()
	type last struct {
		ev  jobs.Event
		seq uint64
	}
	lasts := make(map[string]last, len(entries))
	var err error
	// Each job's last message of each of its subjects (its request on a
	// queue or jobwire.sched, its events): at most three a job, and a
	// direct get answers at most 1,024, so a page of many jobs asks in
	// parts.
	for part := range slices.Chunk(entries, statesPerRequest) {
		subjects := make([]string, len(part))
		for i, e := range part {
			subjects[i] = jobs.JobSubjects(e.ID)
		}
		err = jobs.MultiLast(ctx, r.nc, jobs.Stream, subjects, func(m jobs.StoredEvent) {
			var ev jobs.Event
			_, id, ok := jobs.JobOfSubject(m.Subject)
			if ok && json.Unmarshal(m.Data, &ev) == nil && ev.JobID == id && m.StreamSeq > lasts[id].seq {
				lasts[id] = last{ev, m.StreamSeq}
			}
		})
		if err != nil {
			break
		}
	}
	end := <-endc
	if err != nil {
		return nil, err
	}
	if end.err != nil {
		return nil, end.err
	}
	states := make(map[string]jobs.Event, len(lasts))
	for id, l := range lasts {
		if seq, ended := end.seqs[id]; ended && seq != l.seq {
			// Something was stored after the final event its end record
			// names (not jobwire's doing): read the state the long way.
			ev, _, err := jobs.State(ctx, r.streams.Events, r.streams.Records, id)
			if err != nil {
				continue
			}
			l.ev = ev
		}
		states[id] = l.ev
	}
	return states, nil
}
