package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jobwire/jobwire/services/gateway/jobindex"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// indexType is the type of the seeded jobs: no runner serves it, so
// nothing runs them.
const indexType = "benchidx"

// indexLimit is the page size measured (GET /api/jobs's default).
const indexLimit = 50

// indexResult is the job index at --index-jobs jobs: what seeding them
// and indexing them cost, what a page of a list costs, and what keeping
// the index costs the runner path.
type indexResult struct {
	Jobs   int `json:"jobs"`
	Owners int `json:"owners"`
	// Seeding: each job's request, final event and end record, straight
	// on NATS with async publishes, the indexer's consumer paused.
	SeedSeconds    float64 `json:"seed_seconds"`
	SeedJobsPerSec float64 `json:"seed_jobs_per_sec"`
	SeedMsgsPerSec float64 `json:"seed_msgs_per_sec"`
	SeedInFlight   int     `json:"seed_max_in_flight"`
	SeedCPU        cpuUse  `json:"seed_cpu"`
	// Indexing: the consumer's first delivery after its resume → nothing
	// pending or unacked. IndexStartSeconds: resume → first delivery.
	IndexStartSeconds float64 `json:"index_start_seconds"`
	IndexSeconds      float64 `json:"index_seconds"`
	IndexJobsPerSec   float64 `json:"index_jobs_per_sec"`
	IndexEventsPerSec float64 `json:"index_events_per_sec"` // messages of JOBS indexed (request + final event per job)
	IndexCPU          cpuUse  `json:"index_cpu"`
	IndexCPUPerJobUS  float64 `json:"index_cpu_per_job_us"`
	// The gateway process's memory (NATS server included) after the
	// seeding and once the indexer had caught up.
	MemSeeded    memSample    `json:"mem_seeded"`
	MemIndexed   memSample    `json:"mem_indexed"`
	AllPositions uint64       `json:"all_jobs_last_position"`
	Store        []streamSize `json:"index_store"`
	Pages        []pageCase   `json:"pages"`
	Runner       *indexRunner `json:"runner_path,omitempty"`
}

type streamSize struct {
	Stream string `json:"stream"`
	Msgs   uint64 `json:"msgs"`
	Bytes  uint64 `json:"bytes"`
}

// pageCase is one kind of list page, read over HTTP and, for the
// baseline, with jobindex.Reader.Page on the tool's own connection (the
// same NATS reads without HTTP, auth and JSON).
type pageCase struct {
	Name     string  `json:"name"`
	Query    string  `json:"query"`
	Admin    bool    `json:"admin"`
	Requests int     `json:"requests"`
	Clients  int     `json:"clients"`
	HTTP     latency `json:"http"`
	HTTPPerS float64 `json:"http_per_sec"`
	HTTPCPU  cpuUse  `json:"http_cpu"`
	// CPUPerPageUS: the gateway process's CPU per page served (NATS
	// server included: it runs in the process).
	CPUPerPageUS float64 `json:"gateway_cpu_per_page_us"`
	Direct       latency `json:"direct"`
	// Jobs per page (a filtered page may hold fewer than the limit).
	JobsPerPage float64 `json:"jobs_per_page"`
	// NATS direct gets ($JS.API.DIRECT.GET.>) the gateway made per page,
	// and the most the reader may make for this page.
	NATSRequests    int64   `json:"nats_direct_gets"`
	RequestsPerPage float64 `json:"nats_requests_per_page"`
	MaxPerPage      int     `json:"max_nats_requests_per_page"`
	// A shorter pass with every direct get timed at a tap: the HTTP
	// latency then, and each kind of request's count and time.
	TappedHTTP latency       `json:"tapped_http"`
	Breakdown  []requestTime `json:"nats_request_times"`
}

// indexRunner compares runJobs on a gateway without its indexer
// (JOB_INDEXER=false) and with it.
type indexRunner struct {
	Jobs           int     `json:"jobs"`
	Rounds         int     `json:"rounds"`
	OffJobsPerSec  float64 `json:"indexer_off_jobs_per_sec"`
	OnJobsPerSec   float64 `json:"indexer_on_jobs_per_sec"`
	Ratio          float64 `json:"ratio"`
	OffCPUPerJobUS float64 `json:"indexer_off_gateway_cpu_per_job_us"`
	OnCPUPerJobUS  float64 `json:"indexer_on_gateway_cpu_per_job_us"`
	// OnLagSeconds: after the last job's final event, until the indexer
	// had indexed everything (the mean over the rounds).
	OnLagSeconds float64 `json:"indexer_lag_seconds"`
	// OnCPUPerJobIndexedUS: the gateway's CPU per job until the indexer
	// had indexed everything, not only until the last job ended.
	OnCPUPerJobIndexedUS float64 `json:"indexer_on_gateway_cpu_per_job_us_until_indexed"`
}

func measureIndex(ctx context.Context, cfg config, l *launcher, logf func(string, ...any)) (*indexResult, error) {
	if cfg.external() && cfg.JWTSecret == "" {
		return nil, errSkipped("index: with --url it needs --jwt-secret (it signs a token per owner)")
	}
	res := &indexResult{Jobs: cfg.IndexJobs, Owners: cfg.IndexOwners}
	if err := func() error {
		sys, release, err := l.system(ctx)
		if err != nil {
			return err
		}
		defer release()
		return indexLists(ctx, cfg, sys, res, logf)
	}(); err != nil {
		return res, err
	}
	if cfg.external() {
		// A running system (say, NATS in a process of its own) is measured
		// as it is: the runner-path comparison starts gateways with and
		// without the indexer, which only the tool's own can do.
		logf("index: the runner path with and without the indexer needs gateways the tool starts; skipped with --url")
		return res, nil
	}
	var err error
	res.Runner, err = indexRunnerPath(ctx, cfg, l, logf)
	return res, err
}

// indexLists seeds the jobs, waits for the indexer and measures pages.
func indexLists(ctx context.Context, cfg config, sys *system, res *indexResult, logf func(string, ...any)) error {
	nc, err := connect(sys.NATSURL, "jobwire-bench-index", nil)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(seedInFlight))
	if err != nil {
		return err
	}
	// Paused, the indexer waits: the seeding and the indexing are
	// measured apart, each with the machine to itself.
	if _, err := js.PauseConsumer(ctx, jobs.Stream, jobs.IndexerConsumer, time.Now().Add(cfg.IndexTimeout+time.Hour)); err != nil {
		return fmt.Errorf("index: pause the consumer %s: %w", jobs.IndexerConsumer, err)
	}
	logf("index: seeding %s jobs of %d owners (request, final event, end record each)", num(float64(cfg.IndexJobs)), cfg.IndexOwners)
	meter := startCPU(sys.PID)
	start := time.Now()
	seed, err := seedJobs(ctx, js, cfg.IndexJobs, cfg.IndexOwners, cfg.IndexTimeout, logf)
	res.SeedCPU = meter.stop()
	if err != nil {
		return err
	}
	res.SeedSeconds = time.Since(start).Seconds()
	res.SeedJobsPerSec = float64(cfg.IndexJobs) / res.SeedSeconds
	res.SeedMsgsPerSec = 3 * res.SeedJobsPerSec
	res.SeedInFlight = seedInFlight

	res.MemSeeded, _ = readMem(sys.PID)
	logf("index: seeded at %s jobs/s; the indexer starts", num(res.SeedJobsPerSec))
	resumed := time.Now()
	if _, err := js.ResumeConsumer(ctx, jobs.Stream, jobs.IndexerConsumer); err != nil {
		return fmt.Errorf("index: resume the consumer %s: %w", jobs.IndexerConsumer, err)
	}
	// The indexer's pull requests that waited on the paused consumer are
	// not always served at once: the clock starts at the first delivery.
	if err := waitConsumer(ctx, js, cfg.IndexTimeout, func(info *jetstream.ConsumerInfo) bool { return info.Delivered.Stream > 0 }); err != nil {
		return fmt.Errorf("index: the indexer took nothing after its consumer resumed: %w", err)
	}
	res.IndexStartSeconds = time.Since(resumed).Seconds()
	meter = startCPU(sys.PID)
	start = time.Now()
	if err := waitIndexed(ctx, js, cfg.IndexTimeout, 10*time.Second, logf); err != nil {
		return err
	}
	res.IndexCPU = meter.stop()
	res.IndexSeconds = time.Since(start).Seconds()
	res.MemIndexed, _ = readMem(sys.PID)
	res.IndexJobsPerSec = float64(cfg.IndexJobs) / res.IndexSeconds
	res.IndexEventsPerSec = 2 * res.IndexJobsPerSec
	res.IndexCPUPerJobUS = res.IndexCPU.gatewayCPU.Seconds() * 1e6 / float64(cfg.IndexJobs)
	logf("index: indexed in %.1fs (first delivery %.1fs after the resume), %s jobs/s, gateway %.2f cores",
		res.IndexSeconds, res.IndexStartSeconds, num(res.IndexJobsPerSec), res.IndexCPU.GatewayCores)

	streams, err := jobs.Topology{}.Check(ctx, js)
	if err != nil {
		return fmt.Errorf("index: the gateway's streams: %w", err)
	}
	if res.AllPositions, err = lastPosition(ctx, streams.Counts, jobs.AllJobsScope); err != nil {
		return err
	}
	if res.AllPositions != uint64(cfg.IndexJobs) {
		return fmt.Errorf("index: the list of all jobs ends at position %d, want %d (one per seeded job)", res.AllPositions, cfg.IndexJobs)
	}
	for _, s := range []jetstream.Stream{streams.Index, streams.Counts, streams.Minutes} {
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		res.Store = append(res.Store, streamSize{info.Config.Name, info.State.Msgs, info.State.Bytes})
	}

	pm := &pageMeter{cfg: cfg, sys: sys, seed: seed, reader: jobindex.NewReader(nc, streams), nc: nc,
		prof: &profiler{dir: cfg.PerfDir, pid: sys.PID, log: logf}}
	for _, c := range []struct {
		name   string
		status jobs.Status
		admin  bool
	}{
		{"owner, no filter", "", false},
		{"owner, status=failed", jobs.StatusFailed, false},
		{"owner, status=succeeded", jobs.StatusSucceeded, false},
		{"admin (all jobs), no filter", "", true},
	} {
		for _, clients := range cfg.IndexClients {
			pc, err := pm.measure(ctx, c.name, c.status, c.admin, clients, logf)
			res.Pages = append(res.Pages, pc)
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// seedInFlight bounds the async publishes the seeding has in flight.
const seedInFlight = 4096

// seeded is what seedJobs stored: job i is ids[i], owned by owner
// i % owners.
type seeded struct {
	ids    []string
	owners int
	byID   map[string]int32
	counts map[seedKey]int
}

// seedKey names a count of seeded jobs: an owner's (-1: everyone's) in a
// status ("": any).
type seedKey struct {
	owner  int
	status jobs.Status
}

// count is how many jobs owner (-1: any) has in status ("": any).
func (s *seeded) count(owner int, status jobs.Status) int { return s.counts[seedKey{owner, status}] }

func benchOwnerSub(o int) string { return fmt.Sprintf("bench-%04d", o) }

func (s *seeded) ownerOf(id string) (int, bool) {
	i, ok := s.byID[id]
	if !ok {
		return 0, false
	}
	return int(i) % s.owners, true
}

// seedStatus is the final status of job i: one job in ten of each owner
// fails (its 10th, 20th, … job), the others succeed.
func seedStatus(i, owners int) jobs.Status {
	if (i/owners)%10 == 9 {
		return jobs.StatusFailed
	}
	return jobs.StatusSucceeded
}

// seedJobs stores n jobs of indexType as the gateway and a runner would
// have: the request (jobs.RequestMsg), the final event fenced on it
// (jobs.EventMsg, seq 2) and the end record (jobs.EndMsg), with async
// publishes from a few goroutines, each a chunk at a time.
func seedJobs(ctx context.Context, js jetstream.JetStream, n, owners int, limit time.Duration, logf func(string, ...any)) (*seeded, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	now := time.Now()
	s := &seeded{ids: make([]string, n), owners: owners, byID: make(map[string]int32, n), counts: map[seedKey]int{}}
	for i := range s.ids {
		s.ids[i] = jobs.NewID(now)
		s.byID[s.ids[i]] = int32(i)
		for _, owner := range []int{i % owners, -1} {
			for _, st := range []jobs.Status{"", seedStatus(i, owners)} {
				s.counts[seedKey{owner, st}]++
			}
		}
	}
	const chunk, workers = 512, 6
	var next, done atomic.Int64
	var errs errorTally
	stopProgress := every(10*time.Second, func() {
		logf("index: seeded %s of %s jobs", num(float64(done.Load())), num(float64(n)))
	})
	defer stopProgress()
	input := json.RawMessage(`{"steps":1,"step_ms":0}`)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil && errs.n.Load() == 0 {
				from := int(next.Add(chunk) - chunk)
				if from >= n {
					return
				}
				to := min(from+chunk, n)
				if err := seedChunk(ctx, js, s, from, to, input); err != nil {
					errs.add(err)
					return
				}
				done.Add(int64(to - from))
			}
		})
	}
	wg.Wait()
	if errs.n.Load() > 0 {
		return nil, fmt.Errorf("index: seeding: %s", errs.first)
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("index: seeded %d of %d jobs in %v: %w", done.Load(), n, limit, ctx.Err())
	}
	return s, nil
}

// seedChunk stores jobs from..to-1: their requests, then (fenced on each
// request's sequence) their final events, then their end records.
func seedChunk(ctx context.Context, js jetstream.JetStream, s *seeded, from, to int, input json.RawMessage) error {
	reqs := make([]jobs.Request, to-from)
	msgs := make([]*nats.Msg, to-from)
	for k := range msgs {
		i := from + k
		reqs[k] = jobs.Request{ID: s.ids[i], Type: indexType, Input: input, CreatedAt: time.Now(), Owner: "user:" + benchOwnerSub(i%s.owners)}
		var err error
		if msgs[k], err = jobs.RequestMsg(reqs[k]); err != nil {
			return err
		}
	}
	seqs, err := publishAll(ctx, js, msgs)
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	finals := make([]jobs.Event, len(reqs))
	for k, req := range reqs {
		q := req.Queued()
		st := seedStatus(from+k, s.owners)
		ev := q.Next(jobs.Kind(st), time.Now())
		ev.Status = st
		started, ended := q.Time, ev.Time
		ev.StartedAt, ev.EndedAt = &started, &ended
		if st == jobs.StatusFailed {
			ev.Error = &jobs.Error{Code: "bench", Message: "seeded as failed"}
		}
		finals[k] = ev
		if msgs[k], err = jobs.EventMsg(ev, seqs[k]); err != nil {
			return err
		}
	}
	if seqs, err = publishAll(ctx, js, msgs); err != nil {
		return fmt.Errorf("final event: %w", err)
	}
	for k, ev := range finals {
		if msgs[k], err = jobs.EndMsg(ev, seqs[k]); err != nil {
			return err
		}
	}
	if _, err = publishAll(ctx, js, msgs); err != nil {
		return fmt.Errorf("end record: %w", err)
	}
	return nil
}

// publishAll publishes msgs asynchronously and returns their stream
// sequences once all are acknowledged.
func publishAll(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg) ([]uint64, error) {
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for k, m := range msgs {
		for attempt := 0; ; attempt++ {
			f, err := js.PublishMsgAsync(m, jetstream.WithStallWait(5*time.Second))
			if err == nil {
				futures[k] = f
				break
			}
			if attempt >= 20 || ctx.Err() != nil {
				return nil, err
			}
			sleepCtx(ctx, 10*time.Millisecond)
		}
	}
	seqs := make([]uint64, len(msgs))
	for k, f := range futures {
		select {
		case ack := <-f.Ok():
			seqs[k] = ack.Sequence
		case err := <-f.Err():
			return nil, fmt.Errorf("%s: %w", f.Msg().Subject, err)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return seqs, nil
}

// waitIndexed waits until the indexer's consumer has nothing pending and
// nothing unacknowledged, logging progress every logEvery (0: never).
func waitIndexed(ctx context.Context, js jetstream.JetStream, limit, logEvery time.Duration, logf func(string, ...any)) error {
	start, lastLog := time.Now(), time.Now()
	return waitConsumer(ctx, js, limit, func(info *jetstream.ConsumerInfo) bool {
		left := info.NumPending + uint64(info.NumAckPending)
		if left > 0 && logEvery > 0 && time.Since(lastLog) >= logEvery {
			lastLog = time.Now()
			logf("index: %s messages of %s left to index after %.0fs (acked up to stream seq %d)",
				num(float64(left)), jobs.Stream, time.Since(start).Seconds(), info.AckFloor.Stream)
		}
		return left == 0
	})
}

// waitConsumer polls the indexer's consumer until done says so.
func waitConsumer(ctx context.Context, js jetstream.JetStream, limit time.Duration, done func(*jetstream.ConsumerInfo) bool) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last *jetstream.ConsumerInfo
	var err error
	for {
		var c jetstream.Consumer
		if c, err = js.Consumer(ctx, jobs.Stream, jobs.IndexerConsumer); err == nil {
			var info *jetstream.ConsumerInfo
			if info, err = c.Info(ctx); err == nil {
				if last = info; done(info) {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("index: not done after %v: %d messages pending, %d unacknowledged (last error: %v)", limit, last.NumPending, last.NumAckPending, err)
			}
			return fmt.Errorf("index: not done after %v: %v", limit, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// lastPosition reads the counter of scope's list's last position.
func lastPosition(ctx context.Context, counts jetstream.Stream, scope jobs.ListScope) (uint64, error) {
	m, err := counts.GetLastMsgForSubject(ctx, scope.PositionCounter())
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("index: read %s: %w", scope.PositionCounter(), err)
	}
	n, ok := jobs.CounterValue(m.Data)
	if !ok || n < 0 {
		return 0, fmt.Errorf("index: %s holds %q", scope.PositionCounter(), m.Data)
	}
	return uint64(n), nil
}

// pageMeter measures list pages of the seeded jobs.
type pageMeter struct {
	cfg    config
	sys    *system
	seed   *seeded
	reader *jobindex.Reader
	nc     *nats.Conn
	prof   *profiler // --perf-dir: a profile of each case's HTTP pass
	tokens []string  // per owner
}

// listAnswer is what GET /api/jobs answers.
type listAnswer struct {
	Jobs []struct {
		ID     string      `json:"id"`
		Status jobs.Status `json:"status"`
	} `json:"jobs"`
	NextCursor string `json:"next_cursor"`
}

func (pm *pageMeter) measure(ctx context.Context, name string, status jobs.Status, admin bool, clients int, logf func(string, ...any)) (pageCase, error) {
	cfg := pm.cfg
	q := fmt.Sprintf("limit=%d", indexLimit)
	if status != "" {
		q += "&status=" + string(status)
	}
	pc := pageCase{Name: name, Query: "GET /api/jobs?" + q, Admin: admin, Requests: cfg.IndexRequests, Clients: clients,
		MaxPerPage: jobindex.MaxRequests(jobindex.PageQuery{Limit: indexLimit, Status: status})}
	if pm.tokens == nil {
		for o := range pm.seed.owners {
			t, err := mintTokenFor(pm.sys.secret, benchOwnerSub(o), false)
			if err != nil {
				return pc, err
			}
			pm.tokens = append(pm.tokens, t)
		}
	}

	// Unmeasured first: the connections, and the blocks of the lists'
	// newest entries loaded into the server's cache, as in a running
	// system (the first pages after the indexing would measure the cold
	// start instead).
	if _, _, _, err := pm.httpPass(ctx, warmupPages(cfg.IndexRequests), clients, q, status, admin); err != nil {
		return pc, fmt.Errorf("index: %s (%s), warm-up: %w", pc.Query, name, err)
	}
	// Counted from here: the warm-up's requests are not the pass's.
	var gets atomic.Int64
	sub, err := pm.nc.Subscribe("$JS.API.DIRECT.GET.>", func(*nats.Msg) { gets.Add(1) })
	if err != nil {
		return pc, err
	}
	_ = sub.SetPendingLimits(-1, -1)
	if err := pm.nc.Flush(); err != nil {
		return pc, err
	}
	logf("index: %s %s, %d requests from %d clients", pc.Query, name, cfg.IndexRequests, clients)
	stopProfile := pm.prof.start(fmt.Sprintf("index-%s-%dclients", strings.NewReplacer(" ", "", ",", "-", "(", "", ")", "", "=", "-").Replace(name), clients))
	meter := startCPU(pm.sys.PID)
	h, jobsSeen, wall, err := pm.httpPass(ctx, cfg.IndexRequests, clients, q, status, admin)
	pc.HTTPCPU = meter.stop()
	stopProfile()
	pc.HTTP = h.summary()
	pc.HTTPPerS = float64(cfg.IndexRequests) / wall
	pc.CPUPerPageUS = pc.HTTPCPU.gatewayCPU.Seconds() * 1e6 / float64(cfg.IndexRequests)
	pc.JobsPerPage = float64(jobsSeen) / float64(cfg.IndexRequests)
	// Every direct get the gateway made before its answers reached us has
	// reached the server; a round trip and the subscription's queue
	// emptying make sure we counted them.
	if ferr := pm.nc.Flush(); ferr == nil {
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			if n, _, _ := sub.Pending(); n == 0 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	_ = sub.Unsubscribe()
	pc.NATSRequests = gets.Load()
	pc.RequestsPerPage = float64(pc.NATSRequests) / float64(cfg.IndexRequests)
	if err != nil {
		return pc, fmt.Errorf("index: %s (%s): %w", pc.Query, name, err)
	}

	// The baseline: the same reads by jobindex.Reader on the tool's own
	// NATS connection.
	var d hist
	err = parallel(ctx, cfg.IndexRequests, clients, func(int) error {
		scope := jobs.OwnerScope("user:" + benchOwnerSub(rand.IntN(pm.seed.owners)))
		if admin {
			scope = jobs.AllJobsScope
		}
		t0 := time.Now()
		p, err := pm.reader.Page(ctx, jobindex.PageQuery{Scope: scope, Limit: indexLimit, Status: status})
		d.record(time.Since(t0))
		if err == nil && len(p.Jobs) == 0 {
			err = errors.New("an empty page")
		}
		return err
	})
	pc.Direct = d.summary()
	if err != nil {
		return pc, fmt.Errorf("index: jobindex.Reader.Page (%s): %w", name, err)
	}
	logf("index: %s, %d clients: p50 / p99 %s / %s ms over HTTP, %s / %s ms direct; %.1f jobs and %.1f NATS requests per page",
		name, clients, msf(pc.HTTP.P50MS), msf(pc.HTTP.P99MS), msf(pc.Direct.P50MS), msf(pc.Direct.P99MS), pc.JobsPerPage, pc.RequestsPerPage)

	// Where a page's time goes: a shorter HTTP pass with every direct get
	// and its answer timed at a tap (which costs the server a copy of
	// each, so it is not the measurement above).
	tap, err := startTap(pm.nc)
	if err != nil {
		return pc, err
	}
	n := max(cfg.IndexRequests/4, 20)
	th, _, _, err := pm.httpPass(ctx, n, clients, q, status, admin)
	pc.Breakdown = tap.stop(pm.nc, n)
	pc.TappedHTTP = th.summary()
	for _, b := range pc.Breakdown {
		logf("index: %s, tapped: %.2f × %s per page, p50 / p99 / max %s / %s / %s ms", name, b.PerPage, b.Kind,
			msf(b.Latency.P50MS), msf(b.Latency.P99MS), msf(b.Latency.MaxMS))
	}
	return pc, err
}

// warmupPages is how many pages go unmeasured before each case's passes.
func warmupPages(requests int) int { return max(requests/10, 10) }

// httpPass GETs n pages from clients clients as random owners (or as
// the admin) and checks every answer.
func (pm *pageMeter) httpPass(ctx context.Context, n, clients int, query string, status jobs.Status, admin bool) (h *hist, jobsSeen int64, seconds float64, err error) {
	hc := newAPI(pm.sys, clients*2)
	defer hc.close()
	h = &hist{}
	var seen atomic.Int64
	start := time.Now()
	err = parallel(ctx, n, clients, func(int) error {
		owner := rand.IntN(pm.seed.owners)
		token := pm.tokens[owner]
		if admin {
			owner, token = -1, pm.sys.Token
		}
		t0 := time.Now()
		ans, err := getList(ctx, hc.hc, pm.sys.URL+"/api/jobs?"+query, token)
		h.record(time.Since(t0))
		if err != nil {
			return err
		}
		seen.Add(int64(len(ans.Jobs)))
		return pm.check(ans, owner, status)
	})
	return h, seen.Load(), time.Since(start).Seconds(), err
}

// check refuses a page that is not what was seeded: a job of another
// owner (owner -1: any seeded job), of another status, too few jobs (a
// page of a status holds as many as the owner has, up to the limit).
func (pm *pageMeter) check(ans listAnswer, owner int, status jobs.Status) error {
	if want := min(indexLimit, pm.seed.count(owner, status)); len(ans.Jobs) != want {
		return fmt.Errorf("%d jobs in the page, want %d", len(ans.Jobs), want)
	}
	for _, j := range ans.Jobs {
		o, ok := pm.seed.ownerOf(j.ID)
		switch {
		case !ok:
			return fmt.Errorf("job %s was not seeded", j.ID)
		case owner >= 0 && o != owner:
			return fmt.Errorf("job %s of %s in the page of %s", j.ID, benchOwnerSub(o), benchOwnerSub(owner))
		case status != "" && j.Status != status:
			return fmt.Errorf("job %s is %s in a page of %s jobs", j.ID, j.Status, status)
		case !j.Status.Terminal():
			return fmt.Errorf("job %s is %s; every seeded job has ended", j.ID, j.Status)
		}
	}
	return nil
}

// getList GETs a list page and decodes it; anything but a 200 is an error.
func getList(ctx context.Context, hc *http.Client, url, token string) (listAnswer, error) {
	var ans listAnswer
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return ans, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return ans, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return ans, err
	}
	if resp.StatusCode != http.StatusOK {
		return ans, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, &ans); err != nil {
		return ans, fmt.Errorf("decode the page: %w", err)
	}
	return ans, nil
}

// indexRunnerPath runs cfg.Jobs no-op jobs on fresh gateways without and
// with the indexer, alternately, and compares.
func indexRunnerPath(ctx context.Context, cfg config, l *launcher, logf func(string, ...any)) (*indexRunner, error) {
	r := &indexRunner{Jobs: cfg.Jobs, Rounds: 2}
	if cfg.Smoke {
		r.Rounds = 1
	}
	var offJobs, onJobs, offCPU, onCPU, onCPUIndexed, lag float64
	for round := range r.Rounds {
		for _, on := range []bool{false, true} {
			env := []string{"JOB_INDEXER=false"}
			if on {
				env = nil
			}
			err := func() error {
				sys, err := l.start(ctx, env)
				if err != nil {
					return err
				}
				defer sys.stop()
				logf("index: runner path, round %d of %d, indexer %s: %d no-op jobs", round+1, r.Rounds, onOff(on), cfg.Jobs)
				meter := startCPU(sys.PID)
				run, err := runJobs(ctx, sys, cfg.Jobs, cfg.EnqueueWorkers, noopInput, cfg.PhaseTimeout)
				if err != nil {
					return err
				}
				secs := run.last.Sub(run.start).Seconds()
				perSec := float64(run.succeeded) / secs
				cpuPerJob := run.cpu.gatewayCPU.Seconds() * 1e6 / float64(cfg.Jobs)
				if !on {
					offJobs, offCPU = offJobs+perSec, offCPU+cpuPerJob
					return nil
				}
				onJobs, onCPU = onJobs+perSec, onCPU+cpuPerJob
				nc, js, err := connectJS(sys.NATSURL, "jobwire-bench-index-lag")
				if err != nil {
					return err
				}
				defer nc.Close()
				if err := waitIndexed(ctx, js, cfg.PhaseTimeout, 0, logf); err != nil {
					return err
				}
				lag += time.Since(run.last).Seconds()
				onCPUIndexed += meter.stop().gatewayCPU.Seconds() * 1e6 / float64(cfg.Jobs)
				return nil
			}()
			if err != nil {
				return r, fmt.Errorf("index: runner path, indexer %s: %w", onOff(on), err)
			}
		}
	}
	n := float64(r.Rounds)
	r.OffJobsPerSec, r.OnJobsPerSec = offJobs/n, onJobs/n
	r.OffCPUPerJobUS, r.OnCPUPerJobUS, r.OnCPUPerJobIndexedUS = offCPU/n, onCPU/n, onCPUIndexed/n
	r.OnLagSeconds = lag / n
	r.Ratio = r.OnJobsPerSec / r.OffJobsPerSec
	return r, nil
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// every calls f every d until the returned function is called.
func every(d time.Duration, f func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				f()
			case <-done:
				return
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// natsTap watches the direct gets a gateway makes and their answers, on
// the tool's own connection (the dev server has no permissions), to say
// which request of a page takes the time: from the request's arrival at
// the tap to its answer's last message's.
type natsTap struct {
	sub, inbox *nats.Subscription
	ch         chan *nats.Msg
	quit, done chan struct{}
	reqs       map[string]*tappedReq // by reply subject
}

type tappedReq struct {
	kind       string
	start, end time.Time
}

// requestKind names a direct get by its stream and what it asks.
func requestKind(m *nats.Msg) string {
	rest := strings.TrimPrefix(m.Subject, "$JS.API.DIRECT.GET.")
	stream, subject, last := strings.Cut(rest, ".")
	switch {
	case last:
		return stream + " last of " + strings.Join(strings.SplitN(subject, ".", 4)[:min(3, strings.Count(subject, ".")+1)], ".")
	case strings.Contains(string(m.Data), `"multi_last"`):
		return stream + " multi_last"
	default:
		return stream + " batch"
	}
}

func startTap(nc *nats.Conn) (*natsTap, error) {
	t := &natsTap{ch: make(chan *nats.Msg, 1<<16), quit: make(chan struct{}), done: make(chan struct{}), reqs: map[string]*tappedReq{}}
	var err error
	if t.sub, err = nc.ChanSubscribe("$JS.API.DIRECT.GET.>", t.ch); err != nil {
		return nil, err
	}
	if t.inbox, err = nc.ChanSubscribe("_INBOX.>", t.ch); err != nil {
		_ = t.sub.Unsubscribe()
		return nil, err
	}
	go func() {
		defer close(t.done)
		for {
			var m *nats.Msg
			select {
			case m = <-t.ch:
			case <-t.quit:
				return
			}
			now := time.Now()
			if strings.HasPrefix(m.Subject, "$JS.API.") {
				t.reqs[m.Reply] = &tappedReq{kind: requestKind(m), start: now}
			} else if r, ok := t.reqs[m.Subject]; ok {
				r.end = now
			}
		}
	}()
	return t, nc.Flush()
}

// requestTime is one kind of request's count per page and time.
type requestTime struct {
	Kind    string  `json:"kind"`
	PerPage float64 `json:"per_page"`
	Latency latency `json:"latency"`
}

// stop ends the tap and summarizes what it saw over pages pages.
func (t *natsTap) stop(nc *nats.Conn, pages int) []requestTime {
	_ = nc.Flush()
	for deadline := time.Now().Add(5 * time.Second); len(t.ch) > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	_ = t.sub.Unsubscribe()
	_ = t.inbox.Unsubscribe()
	close(t.quit)
	<-t.done
	hs, counts := map[string]*hist{}, map[string]int{}
	for _, r := range t.reqs {
		if hs[r.kind] == nil {
			hs[r.kind] = &hist{}
		}
		counts[r.kind]++
		if !r.end.IsZero() {
			hs[r.kind].record(r.end.Sub(r.start))
		}
	}
	kinds := slices.Sorted(maps.Keys(hs))
	out := make([]requestTime, 0, len(kinds))
	for _, k := range kinds {
		out = append(out, requestTime{Kind: k, PerPage: float64(counts[k]) / float64(pages), Latency: hs[k].summary()})
	}
	return out
}
