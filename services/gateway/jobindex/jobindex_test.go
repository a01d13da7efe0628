package jobindex_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/natstest"
	"github.com/jobwire/jobwire/services/gateway/jobindex"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// bundle is a NATS server with jobwire's streams, an indexer keeping the
// index and a reader of it.
type bundle struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	streams *jobs.Streams
	reader  *jobindex.Reader
	// startIndexer starts (again) an indexer; stopIndexer stops it.
	startIndexer func()
	stopIndexer  func()
}

func setup(t testing.TB) *bundle {
	t.Helper()
	ns := natstest.Server(t)
	nc := natstest.Connect(t, ns)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	streams, err := jobs.Topology{}.CreateOrUpdate(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{nc: nc, js: js, streams: streams, reader: jobindex.NewReader(nc, streams)}
	var stop context.CancelFunc
	var wg sync.WaitGroup
	b.startIndexer = func() {
		ctx, cancel := context.WithCancel(context.Background())
		stop = cancel
		ix := jobindex.New(js, streams, slog.New(slog.DiscardHandler))
		wg.Go(func() { ix.Run(ctx) })
	}
	b.stopIndexer = func() {
		stop()
		wg.Wait()
	}
	b.startIndexer()
	t.Cleanup(func() { b.stopIndexer() })
	return b
}

// job is a job the test made, and the status it left it in.
type job struct {
	id, owner, typ string
	status         jobs.Status
}

// run stores a job's request and the events that take it to status:
// started, then a progress event, then the final one.
func (b *bundle) run(t testing.TB, owner, typ string, status jobs.Status) job {
	t.Helper()
	ctx := t.Context()
	now := time.Now()
	req := jobs.Request{ID: jobs.NewID(now), Type: typ, CreatedAt: now, Owner: owner}
	ev, err := jobs.Enqueue(ctx, b.js, req)
	if err != nil {
		t.Fatal(err)
	}
	write := func(kind jobs.Kind, st jobs.Status) {
		ev = ev.Next(kind, time.Now())
		ev.Status = st
		data, _ := json.Marshal(ev)
		ack, err := b.js.Publish(ctx, jobs.EventSubject(typ, req.ID), data)
		if err != nil {
			t.Fatal(err)
		}
		if st.Terminal() { // as a runner does: the end record names the final event
			if err := jobs.RecordEnd(ctx, b.js, ev, ack.Sequence); err != nil {
				t.Fatal(err)
			}
		}
	}
	if status == jobs.StatusQueued {
		return job{req.ID, owner, typ, status}
	}
	write(jobs.KindStarted, jobs.StatusRunning)
	write(jobs.KindProgress, jobs.StatusRunning)
	switch status {
	case jobs.StatusSucceeded:
		write(jobs.KindSucceeded, status)
	case jobs.StatusFailed:
		write(jobs.KindFailed, status)
	case jobs.StatusCanceled:
		write(jobs.KindCanceled, status)
	}
	return job{req.ID, owner, typ, status}
}

// snapshot decodes a listed job's state.
func snapshot(t testing.TB, l jobindex.Listed) jobs.Snapshot {
	t.Helper()
	var s jobs.Snapshot
	if err := json.Unmarshal(l.JSON, &s); err != nil {
		t.Fatalf("job %s listed as %q: %v", l.ID, l.JSON, err)
	}
	return s
}

// waitCounted waits until the index counts want jobs of scope in all.
func (b *bundle) waitCounted(t *testing.T, scope jobs.ListScope, want map[string]map[jobs.Status]int64) []jobindex.TypeStats {
	t.Helper()
	var got []jobindex.TypeStats
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var err error
		got, err = b.reader.Stats(t.Context(), scope, nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		same := len(got) == len(want)
		for _, ts := range got {
			for st, n := range ts.Counts {
				same = same && want[ts.Type][st] == n
			}
		}
		if same {
			return got
		}
	}
	t.Fatalf("counts: %+v\nwant %v", got, want)
	return nil
}

// all reads every page of a list, limit jobs at a time. Each page must be
// newest first, or for a final status the most recently ended first.
func (b *bundle) all(t *testing.T, q jobindex.PageQuery) (ids []string, pages int) {
	t.Helper()
	when := func(l jobindex.Listed) time.Time { return l.Created }
	if q.Status.Terminal() {
		when = func(l jobindex.Listed) time.Time { return l.Ended }
	}
	for range 1000 {
		p, err := b.reader.Page(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Jobs) > q.Limit {
			t.Fatalf("a page of %d jobs, limit %d", len(p.Jobs), q.Limit)
		}
		for i, ev := range p.Jobs {
			ids = append(ids, ev.ID)
			if s := snapshot(t, ev); s.ID != ev.ID || s.Status != ev.Status {
				t.Fatalf("listed %s %s, its snapshot says %s %s", ev.ID, ev.Status, s.ID, s.Status)
			}
			if i > 0 && when(ev).After(when(p.Jobs[i-1])) {
				t.Fatalf("a page out of order (status %q): %v after %v", q.Status, when(ev), when(p.Jobs[i-1]))
			}
		}
		pages++
		if p.Next == 0 {
			return ids, pages
		}
		if q.Before != 0 && p.Next >= q.Before {
			t.Fatalf("cursor did not move down: %d after %d", p.Next, q.Before)
		}
		q.Before = p.Next
	}
	t.Fatal("paging did not end")
	return nil, 0
}

func TestIndexListsCountsAndFilters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	statuses := []jobs.Status{jobs.StatusSucceeded, jobs.StatusFailed, jobs.StatusCanceled, jobs.StatusQueued, jobs.StatusSucceeded}
	var made []job
	for i := range 23 {
		made = append(made, b.run(t, "user:alice", []string{"demo", "exec"}[i%2], statuses[i%len(statuses)]))
	}
	for i := range 4 {
		made = append(made, b.run(t, "user:bob", "demo", statuses[i%len(statuses)]))
	}
	want := func(owner string) map[string]map[jobs.Status]int64 {
		w := map[string]map[jobs.Status]int64{}
		for _, j := range made {
			if owner != "" && j.owner != owner {
				continue
			}
			if w[j.typ] == nil {
				w[j.typ] = map[jobs.Status]int64{jobs.StatusQueued: 0, jobs.StatusRunning: 0, jobs.StatusSucceeded: 0, jobs.StatusFailed: 0, jobs.StatusCanceled: 0}
			}
			w[j.typ][j.status]++
		}
		return w
	}
	b.waitCounted(t, jobs.OwnerScope("user:bob"), want("user:bob"))
	stats := b.waitCounted(t, jobs.OwnerScope("user:alice"), want("user:alice"))
	b.waitCounted(t, jobs.AllJobsScope, want(""))

	// The jobs that ended are counted in this minute (or the one before,
	// if the minute turned while the test ran).
	ended := int64(0)
	for _, ts := range stats {
		if len(ts.PerMinute) != 60 {
			t.Fatalf("%d minutes, want 60", len(ts.PerMinute))
		}
		for _, m := range ts.PerMinute[58:] {
			ended += m.Succeeded + m.Failed + m.Canceled
		}
	}
	wantEnded := int64(0)
	for _, j := range made {
		if j.owner == "user:alice" && j.status.Terminal() {
			wantEnded++
		}
	}
	if ended != wantEnded {
		t.Fatalf("alice's jobs ended in the last minutes: %d, want %d", ended, wantEnded)
	}

	var alice []job
	for _, j := range made {
		if j.owner == "user:alice" {
			alice = append(alice, j)
		}
	}
	// Lists are newest first by position, and positions follow the order
	// the indexer saw the jobs in: across pages that may differ from the
	// order they were made in by a few milliseconds, so the whole list is
	// compared as a set (each page is checked in order by all).
	newestFirst := func(js []job) []string {
		var ids []string
		for _, j := range js {
			ids = append(ids, j.id)
		}
		slices.Sort(ids)
		return ids
	}
	sorted := func(ids []string) []string { return slices.Sorted(slices.Values(ids)) }
	// Every page of alice's list, 4 at a time: her jobs, newest first, once each.
	ids, pages := b.all(t, jobindex.PageQuery{Scope: jobs.OwnerScope("user:alice"), Limit: 4})
	if !slices.Equal(sorted(ids), newestFirst(alice)) || pages != 6 {
		t.Fatalf("alice's list in %d pages:\n%v\nwant\n%v", pages, ids, newestFirst(alice))
	}
	// Filtered by status, and by type.
	for _, f := range []struct {
		status jobs.Status
		typ    string
	}{{jobs.StatusFailed, ""}, {jobs.StatusQueued, "exec"}, {"", "exec"}, {jobs.StatusRunning, ""}} {
		var want []job
		for _, j := range alice {
			if (f.status == "" || j.status == f.status) && (f.typ == "" || j.typ == f.typ) {
				want = append(want, j)
			}
		}
		ids, _ := b.all(t, jobindex.PageQuery{Scope: jobs.OwnerScope("user:alice"), Limit: 2, Status: f.status, Type: f.typ})
		if !slices.Equal(sorted(ids), newestFirst(want)) {
			t.Fatalf("alice's %q jobs of type %q: %v, want %v", f.status, f.typ, ids, newestFirst(want))
		}
	}
	// Everyone's list has every job.
	ids, _ = b.all(t, jobindex.PageQuery{Scope: jobs.AllJobsScope, Limit: 50})
	if !slices.Equal(sorted(ids), newestFirst(made)) {
		t.Fatalf("every job: %v, want %v", ids, newestFirst(made))
	}
}

// A gateway that dies halfway leaves its messages unacked: they come
// again to another indexer, which must not count anything twice nor list
// a job twice. Here every message comes again (the consumer is made anew
// from the first message).
func TestIndexerAppliesEachChangeOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i := range 10 {
		b.run(t, "user:carol", "demo", []jobs.Status{jobs.StatusSucceeded, jobs.StatusFailed}[i%2])
	}
	want := map[string]map[jobs.Status]int64{"demo": {jobs.StatusQueued: 0, jobs.StatusRunning: 0, jobs.StatusSucceeded: 5, jobs.StatusFailed: 5, jobs.StatusCanceled: 0}}
	b.waitCounted(t, jobs.OwnerScope("user:carol"), want)

	b.stopIndexer()
	ctx := t.Context()
	if err := b.streams.Events.DeleteConsumer(ctx, jobs.IndexerConsumer); err != nil {
		t.Fatal(err)
	}
	cons, err := b.streams.Events.CreateOrUpdateConsumer(ctx, jobs.Topology{}.IndexerConsumerConfig())
	if err != nil {
		t.Fatal(err)
	}
	b.streams.Indexer = cons
	b.startIndexer()
	b.waitIndexed(t)
	b.waitCounted(t, jobs.OwnerScope("user:carol"), want)
	ids, _ := b.all(t, jobindex.PageQuery{Scope: jobs.OwnerScope("user:carol"), Limit: 100})
	if len(ids) != 10 {
		t.Fatalf("carol's list after every message came again: %d jobs, want 10: %v", len(ids), ids)
	}
	ids, _ = b.all(t, jobindex.PageQuery{Scope: jobs.OwnerScope("user:carol"), Limit: 100, Status: jobs.StatusFailed})
	if len(ids) != 5 || len(slices.Compact(slices.Sorted(slices.Values(ids)))) != 5 {
		t.Fatalf("carol's failed jobs after every message came again: %v, want 5 jobs once each", ids)
	}
	// (A request read again asks for positions it then leaves unused:
	// holes, which lists skip.)
}

// waitIndexed waits until the indexer has applied every message stored.
func (b *bundle) waitIndexed(t testing.TB) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		info, err := b.streams.Indexer.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if info.NumPending == 0 && info.NumAckPending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the indexer did not catch up: %+v", info)
		}
	}
}

// A page costs a few requests whatever the list holds: one for the list's
// last position and one for the entries, which hold the final events of
// ended jobs; for jobs not ended yet one more for their last messages and
// one for their end records.
func TestPageRequests(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for range 30 {
		b.run(t, "user:dave", "demo", jobs.StatusSucceeded)
	}
	b.waitIndexed(t)
	requests := func(q jobindex.PageQuery, want int) jobindex.Page {
		t.Helper()
		before := b.nc.Stats().OutMsgs
		p, err := b.reader.Page(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		if n := b.nc.Stats().OutMsgs - before; n != uint64(want) {
			t.Fatalf("a page %+v took %d requests, want %d", q, n, want)
		}
		return p
	}
	for _, limit := range []int{5, 25} {
		p := requests(jobindex.PageQuery{Scope: jobs.OwnerScope("user:dave"), Limit: limit}, 2)
		if len(p.Jobs) != limit {
			t.Fatalf("page of %d: %d jobs", limit, len(p.Jobs))
		}
		for _, l := range p.Jobs {
			if s := snapshot(t, l); s.Status != jobs.StatusSucceeded || s.Seq != 4 || l.Ended.IsZero() {
				t.Fatalf("a listed job is not its final event's state: %+v", s)
			}
		}
	}
	// A page of a final status reads that status's list: its last
	// position and its entries. Dave has no failed job: his list of failed
	// jobs has no last position.
	p := requests(jobindex.PageQuery{Scope: jobs.OwnerScope("user:dave"), Limit: 20, Status: jobs.StatusSucceeded}, 2)
	if len(p.Jobs) != 20 {
		t.Fatalf("dave's succeeded jobs: %d in a page of 20", len(p.Jobs))
	}
	requests(jobindex.PageQuery{Scope: jobs.OwnerScope("user:dave"), Limit: 20, Status: jobs.StatusFailed}, 1)
	// Another filter reads dave's 30 positions in one window.
	requests(jobindex.PageQuery{Scope: jobs.OwnerScope("user:dave"), Limit: 20, Type: "exec"}, 2)

	// Jobs not ended are read from the jobs stream.
	running := b.run(t, "user:dave", "demo", jobs.StatusQueued)
	b.waitIndexed(t)
	p = requests(jobindex.PageQuery{Scope: jobs.OwnerScope("user:dave"), Limit: 5}, 4)
	if p.Jobs[0].ID != running.id || p.Jobs[0].Status != jobs.StatusQueued {
		t.Fatalf("the newest job: %+v, want %s queued", p.Jobs[0], running.id)
	}
}

// Each final status has its own list, most recently ended first: a page
// of failed jobs is full however rare failures are, reads two requests,
// and paging it lists each failed job once, and no other job.
func TestEndedListsHoldEachEndedJobOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var failed []string
	for range 5 {
		failed = append(failed, b.run(t, "user:hal", "demo", jobs.StatusFailed).id)
		b.run(t, "user:ivy", "demo", jobs.StatusFailed) // another owner's failures
	}
	// More than a window of newer jobs: the failed ones are far down
	// hal's list of every job.
	for range 110 {
		b.run(t, "user:hal", "demo", jobs.StatusSucceeded)
	}
	b.run(t, "user:hal", "demo", jobs.StatusQueued)
	b.waitIndexed(t)
	ids, pages := b.all(t, jobindex.PageQuery{Scope: jobs.OwnerScope("user:hal"), Limit: 2, Status: jobs.StatusFailed})
	if !slices.Equal(slices.Sorted(slices.Values(ids)), slices.Sorted(slices.Values(failed))) || pages != 3 {
		t.Fatalf("hal's failed jobs in %d pages: %v, want %v in 3", pages, ids, failed)
	}
	before := b.nc.Stats().OutMsgs
	p, err := b.reader.Page(t.Context(), jobindex.PageQuery{Scope: jobs.OwnerScope("user:hal"), Limit: 5, Status: jobs.StatusFailed})
	if n := b.nc.Stats().OutMsgs - before; err != nil || n != 2 || len(p.Jobs) != 5 || p.Next != 0 {
		t.Fatalf("a page of hal's 5 failed jobs: %d jobs, next %d, %d requests, err %v; want 5, 0, 2", len(p.Jobs), p.Next, n, err)
	}
	ids, _ = b.all(t, jobindex.PageQuery{Scope: jobs.AllJobsScope, Limit: 50, Status: jobs.StatusFailed})
	if len(ids) != 10 {
		t.Fatalf("everyone's failed jobs: %d, want 10", len(ids))
	}
	for st, want := range map[jobs.Status]int{jobs.StatusCanceled: 0, jobs.StatusQueued: 1, jobs.StatusSucceeded: 110} {
		ids, _ = b.all(t, jobindex.PageQuery{Scope: jobs.OwnerScope("user:hal"), Limit: 50, Status: st})
		if len(ids) != want {
			t.Fatalf("hal's %s jobs: %d, want %d", st, len(ids), want)
		}
	}
}

// An entry that says less than the job's events (written late by an
// indexer that lost a race, or by an older version) never shows a wrong
// status: a job whose entry has no final event is read from its events.
func TestStaleEntryShowsTheJobsState(t *testing.T) {
	t.Parallel()
	b := setup(t)
	done := b.endedWithIndexerStopped(t, "user:fay", jobs.StatusFailed)
	entry, _ := json.Marshal(jobs.IndexEntry{ID: done.id, Type: "demo", CreatedAt: time.Now()})
	b.putFirstEntry(t, "user:fay", entry)
	for _, status := range []jobs.Status{"", jobs.StatusFailed} {
		p, err := b.reader.Page(t.Context(), jobindex.PageQuery{Scope: jobs.OwnerScope("user:fay"), Limit: 10, Status: status})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Jobs) != 1 || p.Jobs[0].ID != done.id || snapshot(t, p.Jobs[0]).Status != jobs.StatusFailed {
			t.Fatalf("fay's jobs (status %q) with a stale entry: %+v, want %s failed", status, p.Jobs, done.id)
		}
	}
}

// endedWithIndexerStopped runs a job of owner to st, waits until it is
// indexed, then stops the indexer (so what the test writes stays).
func (b *bundle) endedWithIndexerStopped(t *testing.T, owner string, st jobs.Status) job {
	t.Helper()
	j := b.run(t, owner, "demo", st)
	b.waitIndexed(t)
	b.stopIndexer()
	return j
}

// putFirstEntry writes data as the entry at position 1 of owner's list.
func (b *bundle) putFirstEntry(t *testing.T, owner string, data []byte) {
	t.Helper()
	if _, err := b.js.Publish(t.Context(), jobs.OwnerScope(owner).IndexSubject(1), data); err != nil {
		t.Fatal(err)
	}
}

// Entries written before 2026-12-02 hold the final event itself, not the
// snapshot: they are still read as ended jobs, without reading the job.
func TestEntriesHoldingTheFinalEventAreRead(t *testing.T) {
	t.Parallel()
	b := setup(t)
	done := b.endedWithIndexerStopped(t, "user:olga", jobs.StatusCanceled)
	final, _, err := jobs.State(t.Context(), b.streams.Events, b.streams.Records, done.id)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(final)
	old, _ := json.Marshal(map[string]any{"id": done.id, "type": "demo", "created_at": final.CreatedAt, "final": json.RawMessage(data), "status": "canceled"})
	b.putFirstEntry(t, "user:olga", old)
	before := b.nc.Stats().OutMsgs
	p, err := b.reader.Page(t.Context(), jobindex.PageQuery{Scope: jobs.OwnerScope("user:olga"), Limit: 10})
	if n := b.nc.Stats().OutMsgs - before; err != nil || n != 2 || len(p.Jobs) != 1 {
		t.Fatalf("olga's list: %+v, %d requests, %v; want her job in 2 requests", p.Jobs, n, err)
	}
	if s := snapshot(t, p.Jobs[0]); s.ID != done.id || s.Status != jobs.StatusCanceled || s.Seq != final.Seq {
		t.Fatalf("olga's job listed as %+v, want %s canceled at seq %d", s, done.id, final.Seq)
	}
}

// A final event written after the job ended (a runner's credentials can
// write events) is never listed nor counted: the entry holds only the
// final event the job's end record names, the list reads the rest from
// the events as GET does, and the indexer passes over what is stored
// after the end.
func TestForgedFinalEventIsNotListed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	done := b.run(t, "user:gus", "demo", jobs.StatusSucceeded)
	b.waitIndexed(t)
	forged := jobs.Event{JobID: done.id, Type: "demo", Seq: 9, Kind: jobs.KindFailed, Status: jobs.StatusFailed, Time: time.Now()}
	data, _ := json.Marshal(forged)
	if _, err := b.js.Publish(t.Context(), jobs.EventSubject("demo", done.id), data); err != nil {
		t.Fatal(err)
	}
	b.waitIndexed(t)
	for _, status := range []jobs.Status{"", jobs.StatusSucceeded} {
		p, err := b.reader.Page(t.Context(), jobindex.PageQuery{Scope: jobs.OwnerScope("user:gus"), Limit: 10, Status: status})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Jobs) != 1 || snapshot(t, p.Jobs[0]).Status != jobs.StatusSucceeded || snapshot(t, p.Jobs[0]).Seq != 4 {
			t.Fatalf("gus's list (status %q) after a forged final event: %+v, want the real end (succeeded, seq 4)", status, p.Jobs)
		}
	}
	// Nor counted: gus has one job, succeeded.
	b.waitCounted(t, jobs.OwnerScope("user:gus"), map[string]map[jobs.Status]int64{"demo": {jobs.StatusQueued: 0, jobs.StatusRunning: 0, jobs.StatusSucceeded: 1, jobs.StatusFailed: 0, jobs.StatusCanceled: 0}})
	for _, scope := range []jobs.ListScope{jobs.OwnerScope("user:gus"), jobs.AllJobsScope} {
		p, err := b.reader.Page(t.Context(), jobindex.PageQuery{Scope: scope, Limit: 10, Status: jobs.StatusFailed})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Jobs) != 0 {
			t.Fatalf("failed jobs after a forged failure: %+v, want none", p.Jobs)
		}
	}
}

// A consumer deleted under a running indexer (by hand, or lost with the
// server's storage) is looked up again until the set-up makes it anew;
// the index then catches up.
func TestIndexerFindsItsConsumerAgain(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.run(t, "user:erin", "demo", jobs.StatusSucceeded)
	counted := func(n int64) map[string]map[jobs.Status]int64 {
		return map[string]map[jobs.Status]int64{"demo": {jobs.StatusQueued: 0, jobs.StatusRunning: 0, jobs.StatusSucceeded: n, jobs.StatusFailed: 0, jobs.StatusCanceled: 0}}
	}
	b.waitCounted(t, jobs.OwnerScope("user:erin"), counted(1))
	ctx := t.Context()
	if err := b.streams.Events.DeleteConsumer(ctx, jobs.IndexerConsumer); err != nil {
		t.Fatal(err)
	}
	b.run(t, "user:erin", "demo", jobs.StatusSucceeded)
	if _, err := jobs.CreateOrUpdateConsumer(ctx, b.js, jobs.Topology{}.IndexerConsumerConfig(), nil); err != nil {
		t.Fatal(err)
	}
	b.waitCounted(t, jobs.OwnerScope("user:erin"), counted(2))
}

// Only a job's request names its owner: events of a job without one (a
// runner's credentials writing a job of their own) are listed for admins
// only, after waiting a little for the request.
func TestOnlyRequestsPlaceJobsInOwnersLists(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := jobs.NewID(time.Now())
	now := time.Now()
	ev := jobs.Event{JobID: id, Type: "demo", Owner: "user:frank", Seq: 2, Kind: jobs.KindStarted, Status: jobs.StatusRunning, Time: now, CreatedAt: &now}
	data, _ := json.Marshal(ev)
	if _, err := b.js.Publish(t.Context(), jobs.EventSubject("demo", id), data); err != nil {
		t.Fatal(err)
	}
	b.waitCounted(t, jobs.AllJobsScope, map[string]map[jobs.Status]int64{"demo": {jobs.StatusQueued: 0, jobs.StatusRunning: 1, jobs.StatusSucceeded: 0, jobs.StatusFailed: 0, jobs.StatusCanceled: 0}})
	if ids, _ := b.all(t, jobindex.PageQuery{Scope: jobs.AllJobsScope, Limit: 10}); !slices.Equal(ids, []string{id}) {
		t.Fatalf("every job: %v, want [%s]", ids, id)
	}
	if ids, _ := b.all(t, jobindex.PageQuery{Scope: jobs.OwnerScope("user:frank"), Limit: 10}); len(ids) != 0 {
		t.Fatalf("frank's list holds %v", ids)
	}
	if st, err := b.reader.Stats(t.Context(), jobs.OwnerScope("user:frank"), nil, time.Now()); err != nil || len(st) != 0 {
		t.Fatalf("frank's counts: %+v, %v", st, err)
	}
}

// Delayed jobs (first stored on jobwire.sched) and jobs of every priority
// (a queue each) are listed with their status.
func TestListsEveryKindOfRequest(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := time.Now()
	later := now.Add(time.Hour)
	reqs := []jobs.Request{
		{ID: jobs.NewID(now), Type: "demo", CreatedAt: now, Owner: "user:gina", Priority: jobs.PriorityHigh},
		{ID: jobs.NewID(now), Type: "demo", CreatedAt: now, Owner: "user:gina", Priority: jobs.PriorityLow},
		{ID: jobs.NewID(now), Type: "demo", CreatedAt: now, Owner: "user:gina", RunAt: &later, Deferred: true},
	}
	for _, r := range reqs {
		if _, err := jobs.Enqueue(t.Context(), b.js, r); err != nil {
			t.Fatal(err)
		}
	}
	b.waitCounted(t, jobs.OwnerScope("user:gina"), map[string]map[jobs.Status]int64{"demo": {jobs.StatusScheduled: 1, jobs.StatusQueued: 2, jobs.StatusRunning: 0, jobs.StatusSucceeded: 0, jobs.StatusFailed: 0, jobs.StatusCanceled: 0}})
	p, err := b.reader.Page(t.Context(), jobindex.PageQuery{Scope: jobs.OwnerScope("user:gina"), Limit: 10})
	if err != nil || len(p.Jobs) != 3 {
		t.Fatalf("gina's list: %+v, %v", p.Jobs, err)
	}
	byID := map[string]jobs.Snapshot{}
	for _, l := range p.Jobs {
		byID[l.ID] = snapshot(t, l)
	}
	if byID[reqs[0].ID].Priority != jobs.PriorityHigh || byID[reqs[1].ID].Status != jobs.StatusQueued || byID[reqs[2].ID].Status != jobs.StatusScheduled {
		t.Fatalf("gina's list: %+v", p.Jobs)
	}
}
