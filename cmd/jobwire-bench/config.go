package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Phase names, in the order they run.
const (
	phaseSubmit = "submit"
	phaseRunner = "runner"
	phaseWatch  = "watch"
	phaseFanout = "fanout"
	phaseMemory = "memory"
	phaseIndex  = "index"
)

var allPhases = []string{phaseSubmit, phaseRunner, phaseWatch, phaseFanout, phaseMemory, phaseIndex}

// defaultPhases run without --phases: all but index, which seeds a
// million jobs and takes minutes (--phases index).
var defaultPhases = []string{phaseSubmit, phaseRunner, phaseWatch, phaseFanout, phaseMemory}

// config is every setting of a run. All flags are defined in parseConfig.
type config struct {
	// The system under test: started here (default) or already running.
	URL        string // --url: a running gateway, e.g. http://127.0.0.1:8080
	NATSURL    string // --nats-url: its NATS server
	Token      string // --token: bearer JWT for the running gateway
	JWTSecret  string // --jwt-secret: mint the token for a running gateway instead
	GatewayPID int    // --gateway-pid: a running gateway's pid, for RSS and CPU figures

	GatewayBin        string // --gateway-bin: skip the build
	ModuleDir         string // --module-dir: where to build ./services/gateway
	RunnerConcurrency int    // --runner-concurrency: RUNNER_CONCURRENCY of the started gateway
	Fresh             bool   // --fresh: a new gateway (empty data dir) for every phase
	// ScrapeMetrics: serve the gateway's metrics (METRICS_ADDR) and scrape
	// them this often during the run; 0: metrics not served.
	ScrapeMetrics time.Duration
	Keep          bool     // --keep: keep the temporary directory (gateway logs, data)
	GatewayEnv    []string // --gateway-env: more KEY=value settings of the started gateway

	Phases       []string
	Duration     time.Duration // per measured window
	Warmup       time.Duration // before each closed-loop window
	Settle       time.Duration // quiet time before RSS readings
	PhaseTimeout time.Duration // bound on every wait inside a phase

	Concurrency    int           // submit: closed-loop clients
	Rate           float64       // submit: open-loop rate; 0 means half the measured maximum
	Jobs           int           // runner: jobs run end to end
	EnqueueWorkers int           // runner: goroutines calling jobs.Enqueue
	FetchBatch     int           // runner baseline: messages per Fetch
	WatchRate      float64       // watch: open-loop submits per second
	FanoutJobs     int           // fanout: jobs every watcher watches
	Watchers       int           // fanout: WebSocket watchers (and NATS subscribers)
	StepMS         int           // fanout: step_ms of the jobs
	Idle           int           // memory: idle watchers
	IndexJobs      int           // index: jobs seeded
	IndexOwners    int           // index: owners they are spread over
	IndexRequests  int           // index: list requests per case
	IndexClients   []int         // index: concurrent list clients; each page case is measured at each
	IndexTimeout   time.Duration // index: longest wait for the indexer to catch up

	JSONPath string // --json: write every figure here
	PerfDir  string // --perf-dir: record a perf profile of the gateway per phase
	Smoke    bool
	Quiet    bool
}

func (c config) external() bool { return c.URL != "" }

// parseConfig reads the flags. --smoke replaces the sizes with small ones
// unless they are given explicitly.
func parseConfig(args []string, stderr io.Writer) (config, error) {
	c := config{IndexClients: []int{1, 8}}
	var phases string
	fs := flag.NewFlagSet("jobwire-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.URL, "url", "", "measure a running gateway at this base URL instead of starting one (needs --nats-url and --token or --jwt-secret)")
	fs.StringVar(&c.NATSURL, "nats-url", "", "with --url: the NATS server of that system")
	fs.StringVar(&c.Token, "token", "", "with --url: bearer JWT to use (admin scope, so watchers may see the bench jobs)")
	fs.StringVar(&c.JWTSecret, "jwt-secret", "", "with --url: mint an HS256 token with this secret instead of --token")
	fs.IntVar(&c.GatewayPID, "gateway-pid", 0, "with --url: the gateway's process id, for its RSS and CPU time (optional)")
	fs.StringVar(&c.GatewayBin, "gateway-bin", "", "gateway binary to start (default: go build ./services/gateway into a temporary directory)")
	fs.StringVar(&c.ModuleDir, "module-dir", "", "jobwire module directory to build the gateway in (default: the module of the current directory)")
	fs.IntVar(&c.RunnerConcurrency, "runner-concurrency", 64, "RUNNER_CONCURRENCY of the started gateway's in-process runner")
	fs.BoolVar(&c.Fresh, "fresh", true, "start a new gateway with an empty data directory for every phase (only without --url)")
	fs.DurationVar(&c.ScrapeMetrics, "scrape-metrics", 0, "serve the started gateway's Prometheus metrics (METRICS_ADDR) and scrape /metrics this often while it runs, as Prometheus would (e.g. 1s; 0: metrics not served)")
	fs.BoolVar(&c.Keep, "keep", false, "keep the temporary directory with the gateway logs and data")
	fs.Func("gateway-env", "KEY=value: a setting of the started gateway (repeat the flag for more), e.g. OTEL_TRACES_EXPORTER=otlp", func(kv string) error {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("want KEY=value, not %q", kv)
		}
		c.GatewayEnv = append(c.GatewayEnv, kv)
		return nil
	})
	fs.StringVar(&phases, "phases", strings.Join(defaultPhases, ","), "measurements to run, comma separated: "+strings.Join(allPhases, ", ")+" (index is not in the default: it seeds --index-jobs jobs)")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "length of each measured window")
	fs.DurationVar(&c.Warmup, "warmup", time.Second, "unmeasured load before each closed-loop window")
	fs.DurationVar(&c.Settle, "settle", 3*time.Second, "quiet time before each RSS reading")
	fs.DurationVar(&c.PhaseTimeout, "phase-timeout", 3*time.Minute, "longest wait for anything inside a phase (jobs to finish, queue to drain, connections)")
	fs.IntVar(&c.Concurrency, "concurrency", 64, "submit: concurrent clients (keep-alive connections) of the closed-loop runs")
	fs.Float64Var(&c.Rate, "rate", 0, "submit: requests per second of the open-loop runs (default: half the measured jobwire maximum)")
	fs.IntVar(&c.Jobs, "jobs", 20000, "runner: jobs enqueued and run to the end (and messages for fetch+ack)")
	fs.IntVar(&c.EnqueueWorkers, "enqueue-workers", 128, "runner: goroutines calling jobs.Enqueue")
	fs.IntVar(&c.FetchBatch, "fetch-batch", 100, "runner baseline: messages per pull-consumer Fetch")
	fs.Float64Var(&c.WatchRate, "watch-rate", 500, "watch: no-op jobs submitted per second (open loop), each timed until its final event reaches a WebSocket watcher")
	fs.IntVar(&c.FanoutJobs, "fanout-jobs", 10, "fanout: jobs that every watcher watches")
	fs.IntVar(&c.Watchers, "watchers", 100, "fanout: WebSocket watchers, and as many plain NATS subscribers for the baseline")
	fs.IntVar(&c.StepMS, "step-ms", 5, "fanout: step_ms of the demo jobs that produce the events")
	fs.IntVar(&c.Idle, "idle", 1000, "memory: idle watchers, each on its own finished job (and as many idle NATS subscribers)")
	fs.IntVar(&c.IndexJobs, "index-jobs", 1_000_000, "index: jobs seeded straight on NATS (request, final event, end record) before the list pages are measured")
	fs.IntVar(&c.IndexOwners, "index-owners", 1000, "index: owners the seeded jobs are spread over (user:bench-0000 …)")
	fs.IntVar(&c.IndexRequests, "index-requests", 2000, "index: GET /api/jobs requests per case (and as many direct jobindex reads for the baseline)")
	fs.Func("index-clients", "index: concurrent list clients, comma separated: each page case is measured with each number (default 1,8)", func(v string) error {
		c.IndexClients = nil
		for f := range strings.SplitSeq(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || n > 1000 {
				return fmt.Errorf("%q is not a number of clients (1-1000)", f)
			}
			c.IndexClients = append(c.IndexClients, n)
		}
		return nil
	})
	fs.DurationVar(&c.IndexTimeout, "index-timeout", 30*time.Minute, "index: longest wait for the seeding and for the indexer to catch up")
	fs.StringVar(&c.JSONPath, "json", "", "also write every figure as JSON to this file")
	fs.StringVar(&c.PerfDir, "perf-dir", "", "record a CPU profile of the gateway (perf record -g) during each jobwire window into this directory")
	fs.BoolVar(&c.Smoke, "smoke", false, "a short run (1s windows, 200 jobs, watch at 100/s, 10 watchers, 50 idle; index: 2000 jobs, 20 owners, 100 requests from 8 clients) that fails if any phase does")
	fs.BoolVar(&c.Quiet, "quiet", false, "no progress lines on stderr")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.Smoke {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		smoke := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		smoke("duration", func() { c.Duration = time.Second })
		smoke("warmup", func() { c.Warmup = 200 * time.Millisecond })
		smoke("settle", func() { c.Settle = 500 * time.Millisecond })
		smoke("phase-timeout", func() { c.PhaseTimeout = 30 * time.Second })
		smoke("concurrency", func() { c.Concurrency = 16 })
		smoke("jobs", func() { c.Jobs = 200 })
		smoke("enqueue-workers", func() { c.EnqueueWorkers = 16 })
		smoke("watch-rate", func() { c.WatchRate = 100 })
		smoke("fanout-jobs", func() { c.FanoutJobs = 3 })
		smoke("watchers", func() { c.Watchers = 10 })
		smoke("idle", func() { c.Idle = 50 })
		smoke("runner-concurrency", func() { c.RunnerConcurrency = 16 })
		smoke("index-jobs", func() { c.IndexJobs = 2000 })
		smoke("index-owners", func() { c.IndexOwners = 20 })
		smoke("index-requests", func() { c.IndexRequests = 100 })
		smoke("index-clients", func() { c.IndexClients = []int{8} })
		smoke("index-timeout", func() { c.IndexTimeout = time.Minute })
	}

	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	for p := range strings.SplitSeq(phases, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		check(slices.Contains(allPhases, p), "--phases: unknown phase %q (known: %s)", p, strings.Join(allPhases, ", "))
		if !slices.Contains(c.Phases, p) {
			c.Phases = append(c.Phases, p)
		}
	}
	slices.SortFunc(c.Phases, func(a, b string) int { return slices.Index(allPhases, a) - slices.Index(allPhases, b) })
	check(len(c.Phases) > 0, "--phases: nothing to run")
	if c.external() {
		check(c.NATSURL != "", "--url needs --nats-url")
		check(c.Token != "" || c.JWTSecret != "", "--url needs --token or --jwt-secret")
		check(c.GatewayBin == "", "--gateway-bin starts a gateway; it cannot be combined with --url")
		check(len(c.GatewayEnv) == 0, "--gateway-env sets up a started gateway; it cannot be combined with --url")
	} else {
		check(c.NATSURL == "" && c.Token == "" && c.JWTSecret == "" && c.GatewayPID == 0,
			"--nats-url, --token, --jwt-secret and --gateway-pid go with --url")
	}
	check(c.RunnerConcurrency >= 1 && c.RunnerConcurrency <= 10000, "--runner-concurrency must be 1-10000")
	check(c.ScrapeMetrics == 0 || (!c.external() && c.ScrapeMetrics >= 100*time.Millisecond), "--scrape-metrics must be at least 100ms, and only for a gateway the tool starts")
	check(c.Duration >= 100*time.Millisecond && c.Duration <= time.Hour, "--duration must be 100ms-1h")
	check(c.Warmup >= 0 && c.Warmup <= 10*time.Minute, "--warmup must be 0-10m")
	check(c.Settle >= 0 && c.Settle <= time.Minute, "--settle must be 0-1m")
	check(c.PhaseTimeout >= time.Second && c.PhaseTimeout <= time.Hour, "--phase-timeout must be 1s-1h")
	check(c.Concurrency >= 1 && c.Concurrency <= 10000, "--concurrency must be 1-10000")
	check(c.Rate >= 0 && c.Rate <= 1e6, "--rate must be 0-1000000")
	check(c.Jobs >= 1 && c.Jobs <= 10_000_000, "--jobs must be 1-10000000")
	check(c.EnqueueWorkers >= 1 && c.EnqueueWorkers <= 10000, "--enqueue-workers must be 1-10000")
	check(c.FetchBatch >= 1 && c.FetchBatch <= 10000, "--fetch-batch must be 1-10000")
	check(c.WatchRate >= 1 && c.WatchRate <= 100000, "--watch-rate must be 1-100000")
	check(c.FanoutJobs >= 1 && c.FanoutJobs <= 1000, "--fanout-jobs must be 1-1000 (a connection may watch at most 1000 jobs)")
	check(c.Watchers >= 1 && c.Watchers <= 100000, "--watchers must be 1-100000")
	check(c.StepMS >= 1 && c.StepMS <= 1000, "--step-ms must be 1-1000")
	check(c.Idle >= 1 && c.Idle <= 100000, "--idle must be 1-100000")
	check(c.IndexOwners >= 1 && c.IndexOwners <= 10000, "--index-owners must be 1-10000")
	check(c.IndexJobs >= 50*c.IndexOwners && c.IndexJobs <= 10_000_000, "--index-jobs must be at least 50 per owner (a full page each) and at most 10000000")
	check(c.IndexRequests >= 1 && c.IndexRequests <= 1_000_000, "--index-requests must be 1-1000000")
	check(c.IndexTimeout >= time.Second && c.IndexTimeout <= 6*time.Hour, "--index-timeout must be 1s-6h")
	return c, errors.Join(errs...)
}
