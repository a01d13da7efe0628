package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jobwire/jobwire/internal/natstest"
	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
)

// clusterFault is what one fault did to the jobs submitted while it lasted
// (from the kill until the node was back and current).
type clusterFault struct {
	stream, node    string
	submitted       int
	accepted        int
	oneFinal        int // accepted jobs with exactly one final event
	lost            int // accepted jobs with no final event
	duplicated      int // accepted jobs with more than one final event
	getNotFound     int // GETs right after a 202 that said 404
	getBehind       int // GETs right after a 202 with a seq below the 202's
	watchGaps       int // watched jobs whose events had a gap
	watchDups       int // watched jobs whose events repeated one
	longestFailing  time.Duration
	slowestAccepted time.Duration // the longest a 202 took
	lasted          time.Duration
	notes           []string
}

// On a 3-node cluster with JETSTREAM_REPLICAS=3, the leader of each stream
// is killed in turn (JOBS, then JOBS_RECORDS; the node
// comes back before the next) while jobs are submitted over HTTP at a
// steady rate and watched over WebSockets. No accepted job is lost, none
// gets two final states, a GET right after the 202 always finds the job,
// and no watcher sees a gap or a duplicate. The figures are logged for
// docs/RELIABILITY.md.
func TestClusterLosesNoJobWhenAStreamLeaderDies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-node NATS cluster and kills its nodes")
	}
	began := time.Now()
	c := natstest.Cluster(t, 3)
	sys := testsys.StartOnURLs(t, c.URLs(), testsys.WithReplicas(3), testsys.WithRunners(2),
		testsys.WithNATSOptions(nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond)))
	for _, s := range []string{jobs.Stream, jobs.RecordsStream} {
		c.WaitStreamCurrent(sys.JS, s, 30*time.Second)
	}

	load := startClusterLoad(t, sys)
	var faults []*clusterFault
	for _, stream := range []string{jobs.Stream, jobs.RecordsStream} {
		leader := c.StreamLeader(sys.JS, stream)
		f := &clusterFault{stream: stream, node: c.Name(leader)}
		faults = append(faults, f)
		start := time.Now()
		load.phase(f)
		c.Stop(leader)
		// Load goes on until submits have worked again for 2 s (or 20 s
		// passed), then the node comes back and catches up.
		waitUntil(t, 30*time.Second, "submits work again after "+f.node+" died", func() bool {
			return time.Since(start) > 4*time.Second && load.healthy(2*time.Second) || time.Since(start) > 20*time.Second
		})
		c.Start(leader)
		for _, s := range []string{jobs.Stream, jobs.RecordsStream} {
			c.WaitStreamCurrent(sys.JS, s, 30*time.Second)
		}
		f.lasted = time.Since(start)
	}
	load.stop()

	finals := waitForFinals(t, sys, load.acceptedIDs(), 45*time.Second)
	load.checkWatchers(t, 30*time.Second)
	for _, f := range faults {
		load.count(f, finals)
		t.Logf("kill leader of %-12s (%s): %3d submitted, %3d accepted, %3d with one final state, %d lost, %d duplicated final states; "+
			"GET right after 202: %d not found, %d behind; watchers: %d gaps, %d duplicates; longest failing-submit window %v, slowest 202 %v; fault lasted %v",
			f.stream, f.node, f.submitted, f.accepted, f.oneFinal, f.lost, f.duplicated, f.getNotFound, f.getBehind,
			f.watchGaps, f.watchDups, f.longestFailing.Round(10*time.Millisecond), f.slowestAccepted.Round(10*time.Millisecond), f.lasted.Round(100*time.Millisecond))
		for _, n := range f.notes {
			t.Log(n)
		}
		if f.lost > 0 || f.duplicated > 0 || f.getNotFound > 0 || f.getBehind > 0 || f.watchGaps > 0 || f.watchDups > 0 {
			t.Errorf("fault on %s: %+v", f.stream, *f)
		}
		if f.accepted == 0 {
			t.Errorf("fault on %s: no job accepted: the test proves nothing", f.stream)
		}
	}
	if len(load.others) > 0 {
		t.Logf("the watchers also got (and watched again after an unavailable): %v", load.others)
	}
	t.Logf("the whole test took %v", time.Since(began).Round(100*time.Millisecond))
}

// clusterLoad submits a job every loadEvery over HTTP, GETs it right after
// its 202, and has it watched on one of its WebSockets.
type clusterLoad struct {
	sys         *testsys.System
	client      *http.Client
	wss         []*websocket.Conn
	stopSubmits context.CancelFunc
	stopReads   context.CancelFunc
	submits     sync.WaitGroup
	reads       sync.WaitGroup

	mu       sync.Mutex
	cur      *clusterFault
	subs     []submitResult
	inFlight map[int]time.Time   // submits under way: when they started
	others   []string            // what the WebSockets got besides events
	watched  map[string][]uint64 // job id → seqs seen by its watcher
	ended    map[string]bool     // job id → its watcher saw a final event
	readErr  error
}

type submitResult struct {
	fault       *clusterFault
	at          time.Time
	took        time.Duration // until the answer
	id          string        // "" unless accepted
	notFound    bool
	behind      bool
	failureText string
}

const (
	loadEvery   = 25 * time.Millisecond // 40 submits a second
	loadSockets = 8
)

func startClusterLoad(t *testing.T, sys *testsys.System) *clusterLoad {
	t.Helper()
	ctx, stopSubmits := context.WithCancel(context.Background())
	// Reads end when the test has checked the watchers (a cancelled
	// read closes its WebSocket).
	rctx, stopReads := context.WithCancel(context.Background())
	l := &clusterLoad{sys: sys, stopSubmits: stopSubmits, stopReads: stopReads, watched: map[string][]uint64{}, ended: map[string]bool{}, inFlight: map[int]time.Time{},
		client: &http.Client{Jar: sys.HTTPClient().Jar, Timeout: 15 * time.Second}}
	t.Cleanup(func() {
		l.stop()
		l.stopReads()
		l.reads.Wait()
	})
	for range loadSockets {
		ws := dialWS(t, sys)
		l.wss = append(l.wss, ws.c)
		l.reads.Go(func() { l.read(rctx, ws.c) })
	}
	l.submits.Go(func() {
		tick := time.NewTicker(loadEvery)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			l.submits.Go(func() { l.submit(i) })
		}
	})
	return l
}

// phase makes the following submits count for f.
func (l *clusterLoad) phase(f *clusterFault) {
	l.mu.Lock()
	l.cur = f
	l.mu.Unlock()
}

// stop stops submitting and waits for the submits under way.
func (l *clusterLoad) stop() {
	l.stopSubmits()
	l.submits.Wait()
}

// submit submits job i, without a context of its own: a submit under way
// when the load stops still counts.
func (l *clusterLoad) submit(i int) {
	ctx := context.Background()
	at := time.Now()
	r := submitResult{at: at}
	l.mu.Lock()
	r.fault = l.cur
	l.inFlight[i] = at
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.inFlight, i)
		l.subs = append(l.subs, r)
		l.mu.Unlock()
	}()
	code, body := l.call(ctx, "POST", "/api/jobs", `{"type":"demo","input":{"steps":3,"step_ms":20}}`)
	r.took = time.Since(at)
	var snap jobs.Snapshot
	if code != http.StatusAccepted || json.Unmarshal(body, &snap) != nil {
		r.failureText = fmt.Sprintf("%d %s", code, body)
		return
	}
	r.id = snap.ID
	_ = l.wss[i%len(l.wss)].Write(ctx, websocket.MessageText, []byte(`{"op":"watch","job_id":"`+snap.ID+`","after_seq":0}`))
	// Read your write: at once, the job is there, at least as far as the 202 said.
	code, body = l.call(ctx, "GET", "/api/jobs/"+snap.ID, "")
	var got jobs.Snapshot
	switch {
	case code == http.StatusNotFound:
		r.notFound = true
	case code == http.StatusOK && json.Unmarshal(body, &got) == nil && got.Seq < snap.Seq:
		r.behind = true
	}
}

func (l *clusterLoad) call(ctx context.Context, method, path, body string) (int, []byte) {
	req, err := http.NewRequestWithContext(ctx, method, l.sys.URL+path, strings.NewReader(body))
	if err != nil {
		return 0, []byte(err.Error())
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// read records the seqs each watched job's events carry.
func (l *clusterLoad) read(ctx context.Context, ws *websocket.Conn) {
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			if ctx.Err() == nil {
				l.mu.Lock()
				l.readErr = err
				l.mu.Unlock()
			}
			return
		}
		var m serverMsg
		if json.Unmarshal(b, &m) != nil || m.Op != "event" {
			l.mu.Lock()
			l.others = append(l.others, string(b))
			seqs := l.watched[m.JobID]
			l.mu.Unlock()
			if m.Op == "error" && m.Code == "unavailable" && m.JobID != "" {
				// As a client does: watch again, from the last seq seen.
				after := uint64(0)
				if len(seqs) > 0 {
					after = seqs[len(seqs)-1]
				}
				_ = ws.Write(context.Background(), websocket.MessageText, fmt.Appendf(nil, `{"op":"watch","job_id":%q,"after_seq":%d}`, m.JobID, after))
			}
			continue
		}
		l.mu.Lock()
		l.watched[m.JobID] = append(l.watched[m.JobID], m.Event.Seq)
		if m.Event.Status.Terminal() {
			l.ended[m.JobID] = true
		}
		l.mu.Unlock()
	}
}

// healthy reports whether submits work: every one that started in the
// last d and ended was accepted (at least half of those due), and none
// has been under way for more than a second.
func (l *clusterLoad) healthy(d time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	for _, at := range l.inFlight {
		if now.Sub(at) > time.Second {
			return false
		}
	}
	n := 0
	for _, s := range l.subs {
		if s.at.After(now.Add(-d)) {
			if s.id == "" {
				return false
			}
			n++
		}
	}
	return n >= int(d/loadEvery)/2
}

func (l *clusterLoad) acceptedIDs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []string
	for _, s := range l.subs {
		if s.id != "" {
			ids = append(ids, s.id)
		}
	}
	return ids
}

// checkWatchers waits until every accepted job's watcher saw its final
// event, then stops reading.
func (l *clusterLoad) checkWatchers(t *testing.T, d time.Duration) {
	t.Helper()
	ids := l.acceptedIDs()
	for deadline := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		l.mu.Lock()
		if l.readErr != nil {
			l.mu.Unlock()
			t.Fatalf("a watcher's WebSocket failed: %v", l.readErr)
		}
		var waiting []string
		for _, id := range ids {
			if !l.ended[id] {
				waiting = append(waiting, fmt.Sprintf("%s %v", id, l.watched[id]))
			}
		}
		others := slices.Clone(l.others)
		l.mu.Unlock()
		if len(waiting) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d watched jobs did not show their end within %v: %v; the watchers also got %v", len(waiting), d, waiting, others)
		}
	}
	l.stopReads()
	l.reads.Wait()
}

// count fills f's figures from the submits made during it and the final
// events per job.
func (l *clusterLoad) count(f *clusterFault, finals map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var failSince time.Time
	subs := slices.Clone(l.subs)
	slices.SortFunc(subs, func(a, b submitResult) int { return a.at.Compare(b.at) })
	for _, s := range subs {
		if s.fault != f {
			continue
		}
		f.submitted++
		if s.id == "" {
			if failSince.IsZero() {
				failSince = s.at
			}
			continue
		}
		if !failSince.IsZero() {
			f.longestFailing = max(f.longestFailing, s.at.Sub(failSince))
			failSince = time.Time{}
		}
		f.accepted++
		switch n := finals[s.id]; {
		case n == 0:
			f.lost++
		case n == 1:
			f.oneFinal++
		default:
			f.duplicated++
		}
		if s.notFound {
			f.getNotFound++
		}
		if s.behind {
			f.getBehind++
		}
		gap, dup := seqFaults(l.watched[s.id])
		if gap {
			f.watchGaps++
		}
		if dup {
			f.watchDups++
		}
		if gap || dup {
			f.notes = append(f.notes, fmt.Sprintf("job %s: watcher saw seqs %v", s.id, l.watched[s.id]))
		}
		if d := s.took; d > f.slowestAccepted {
			f.slowestAccepted = d
		}
	}
}

// seqFaults reports whether seqs (a watcher's, from seq 1) skip one or
// repeat one.
func seqFaults(seqs []uint64) (gap, dup bool) {
	next := uint64(1)
	for _, seq := range seqs {
		switch {
		case seq < next:
			dup = true
		case seq > next:
			gap = true
			next = seq + 1
		default:
			next++
		}
	}
	return gap, dup
}

// waitForFinals counts the final events each job has stored, reading its
// history (batched direct gets, as watchers do), until every one of ids
// has one or d passed.
func waitForFinals(t *testing.T, sys *testsys.System, ids []string, d time.Duration) map[string]int {
	t.Helper()
	finals := map[string]int{}
	waitUntil(t, d, "every accepted job ends", func() bool {
		for _, id := range ids {
			if finals[id] > 0 {
				continue
			}
			n, err := countFinals(sys, id)
			if err != nil {
				t.Logf("count the final events: %v (trying again)", err)
				return false
			}
			if finals[id] = n; n == 0 {
				return false
			}
		}
		return true
	})
	return finals
}

// countFinals is how many final events job id has stored.
func countFinals(sys *testsys.System, id string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := 0
	for m, err := range jobs.History(ctx, sys.NC, id, 0) {
		if err != nil {
			return 0, err
		}
		var ev jobs.Event
		if json.Unmarshal(m.Data, &ev) == nil && ev.Status.Terminal() {
			n++
		}
	}
	return n, nil
}

// Delayed jobs and a recurring schedule on a 3-node cluster: the leader of
// JOBS_TIMERS (which fires the message schedules) dies; every delayed job
// still runs once, and the schedule goes on firing, one job per firing.
func TestClusterTimersSurviveALeaderDying(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-node NATS cluster and kills a node")
	}
	c := natstest.Cluster(t, 3)
	sys := testsys.StartOnURLs(t, c.URLs(), testsys.WithReplicas(3), testsys.WithRunners(1),
		testsys.WithNATSOptions(nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond)))
	for _, s := range []string{jobs.Stream, jobs.TimersStream} {
		c.WaitStreamCurrent(sys.JS, s, 30*time.Second)
	}
	var sc struct{ ID string }
	if r := sys.Do(t, "POST", "/api/schedules", "application/json", `{"type":"demo","input":{"steps":1,"step_ms":1},"every":"1s"}`, nil, &sc); r.StatusCode != http.StatusCreated {
		t.Fatalf("create schedule: %d", r.StatusCode)
	}
	var delayed []string
	for i := range 10 {
		snap := sys.SubmitBody(t, `{"type":"demo","input":{"steps":1,"step_ms":1},"delay":"`+strconv.Itoa(1000+300*i)+`ms"}`)
		delayed = append(delayed, snap.ID)
	}
	start := time.Now()
	leader := c.StreamLeader(sys.JS, jobs.TimersStream)
	c.Stop(leader)
	time.Sleep(3 * time.Second) // the node stays down this long: delayed jobs fall due and the schedule fires meanwhile
	c.Start(leader)
	for _, id := range delayed {
		done := sys.WaitStatus(t, id, jobs.StatusSucceeded, 60*time.Second)
		if done.Attempt != 1 {
			t.Errorf("delayed job %s ran %d times", id, done.Attempt)
		}
	}
	var ids map[string]bool
	waitUntil(t, 30*time.Second, "the schedule firing after the leader came back", func() bool {
		var page struct{ Jobs []jobs.Snapshot }
		sys.Do(t, "GET", "/api/jobs?limit=500", "", "", nil, &page)
		ids = map[string]bool{}
		for _, j := range page.Jobs {
			if j.ScheduleID == sc.ID {
				ids[j.ID] = true
			}
		}
		return len(ids) >= 5 && time.Since(start) > 6*time.Second
	})
	if most := int(time.Since(start)/time.Second) + 3; len(ids) > most {
		t.Fatalf("%d jobs of a 1s schedule in %v: a firing was doubled", len(ids), time.Since(start))
	}
}
