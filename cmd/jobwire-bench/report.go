package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

// report is everything a run measured.
type report struct {
	Machine  machine       `json:"machine"`
	Settings settings      `json:"settings"`
	Submit   *submitResult `json:"submit,omitempty"`
	Runner   *runnerResult `json:"runner,omitempty"`
	Watch    *watchResult  `json:"watch,omitempty"`
	Fanout   *fanoutResult `json:"fanout,omitempty"`
	Memory   *memoryResult `json:"memory,omitempty"`
	Index    *indexResult  `json:"index,omitempty"`
	Rows     []row         `json:"table"`
	Targets  []target      `json:"targets"`
	Skipped  []string      `json:"skipped,omitempty"`
	Failures []string      `json:"failures,omitempty"`
	OK       bool          `json:"ok"`
}

// settings is what a reader needs to repeat the run.
type settings struct {
	System            string   `json:"system"`
	RunnerConcurrency int      `json:"runner_concurrency,omitempty"`
	FreshPerPhase     bool     `json:"fresh_gateway_per_phase"`
	Phases            []string `json:"phases"`
	DurationS         float64  `json:"window_seconds"`
	WarmupS           float64  `json:"warmup_seconds"`
	Concurrency       int      `json:"concurrency"`
	Jobs              int      `json:"jobs"`
	WatchRate         float64  `json:"watch_rate"`
	FanoutJobs        int      `json:"fanout_jobs"`
	Watchers          int      `json:"watchers"`
	StepMS            int      `json:"step_ms"`
	Idle              int      `json:"idle"`
	IndexJobs         int      `json:"index_jobs,omitempty"`
	IndexOwners       int      `json:"index_owners,omitempty"`
	Smoke             bool     `json:"smoke"`
	Args              []string `json:"args"`
}

func settingsOf(cfg config, args []string) settings {
	s := settings{
		System: "gateway --dev started by the tool (embedded NATS server, gateway and runner in one process)", RunnerConcurrency: cfg.RunnerConcurrency,
		FreshPerPhase: cfg.Fresh, Phases: cfg.Phases, DurationS: cfg.Duration.Seconds(), WarmupS: cfg.Warmup.Seconds(),
		Concurrency: cfg.Concurrency, Jobs: cfg.Jobs, WatchRate: cfg.WatchRate, FanoutJobs: cfg.FanoutJobs, Watchers: cfg.Watchers, StepMS: cfg.StepMS,
		Idle: cfg.Idle, Smoke: cfg.Smoke, Args: args,
	}
	if slices.Contains(cfg.Phases, phaseIndex) {
		s.IndexJobs, s.IndexOwners = cfg.IndexJobs, cfg.IndexOwners
	}
	if cfg.external() {
		s.System, s.RunnerConcurrency, s.FreshPerPhase = "running system at "+cfg.URL+" and "+cfg.NATSURL, 0, false
	}
	return s
}

// row is one line of the table; ratio is jobwire ÷ baseline.
type row struct {
	Measurement string   `json:"measurement"`
	Jobwire     string   `json:"jobwire"`
	Baseline    string   `json:"baseline"`
	Ratio       *float64 `json:"ratio,omitempty"`
	RatioOf     string   `json:"ratio_of,omitempty"`
	Notes       string   `json:"notes"`
}

// target is one goal of the issue and whether this run met it.
type target struct {
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	Result   string `json:"result"` // met, missed, or not measured
	// The issue-15 targets: the measured ratio (or, for the watcher
	// latency, the p99 in ms) and the bound it is held to.
	Value *float64 `json:"value,omitempty"`
	Bound string   `json:"bound,omitempty"`
}

func ratio(a, b float64) *float64 {
	if b == 0 || math.IsNaN(a/b) || math.IsInf(a/b, 0) {
		return nil
	}
	r := a / b
	return &r
}

// num formats n with thousands separators.
func num(n float64) string {
	s := fmt.Sprintf("%.0f", n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func msf(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/1024) }

// build fills in the table and the targets from the results.
func (r *report) build() {
	r.Rows, r.Targets = nil, nil
	if s := r.Submit; s != nil {
		r.Rows = append(r.Rows,
			row{fmt.Sprintf("submit, closed loop, %d clients: throughput", s.Concurrency),
				num(s.Jobwire.PerSec) + " jobs/s", num(s.Raw.PerSec) + " msg/s", ratio(s.Jobwire.PerSec, s.Raw.PerSec), "",
				fmt.Sprintf("POST /api/jobs (%d B body, bearer JWT) vs JetStream sync publish of %d B; a submit stores 1 message (the request, which is the queued event); the runner runs the jobs meanwhile; gateway process %.2f vs %.2f cores, tool %.2f vs %.2f",
					s.BodyBytes, s.BodyBytes, s.JobwireCPU.GatewayCores, s.RawCPU.GatewayCores, s.JobwireCPU.ToolCores, s.RawCPU.ToolCores)},
			row{"submit, closed loop: latency p50 / p99 / p99.9",
				fmt.Sprintf("%s / %s / %s ms", msf(s.Jobwire.Latency.P50MS), msf(s.Jobwire.Latency.P99MS), msf(s.Jobwire.Latency.P999MS)),
				fmt.Sprintf("%s / %s / %s ms", msf(s.Raw.Latency.P50MS), msf(s.Raw.Latency.P99MS), msf(s.Raw.Latency.P999MS)),
				ratio(s.Jobwire.Latency.P50MS, s.Raw.Latency.P50MS), "p50", ""},
			row{fmt.Sprintf("submit, open loop at %s/s: latency p50 / p99", num(s.Rate)),
				fmt.Sprintf("%s / %s ms", msf(s.JobwireOpen.Latency.P50MS), msf(s.JobwireOpen.Latency.P99MS)),
				fmt.Sprintf("%s / %s ms", msf(s.RawOpen.Latency.P50MS), msf(s.RawOpen.Latency.P99MS)),
				ratio(s.JobwireOpen.Latency.P50MS, s.RawOpen.Latency.P50MS), "p50",
				fmt.Sprintf("rate = %s; latency from the moment each request was due; completed %s vs %s /s, skipped %d vs %d",
					rateOrigin(r.Settings, s), num(s.JobwireOpen.PerSec), num(s.RawOpen.PerSec), s.JobwireOpen.Skipped, s.RawOpen.Skipped)},
		)
		if s.Parked.Ops > 0 {
			r.Rows = append(r.Rows,
				row{"submit, closed loop, runner idle: throughput",
					num(s.Parked.PerSec) + " jobs/s", num(s.Raw.PerSec) + " msg/s", ratio(s.Parked.PerSec, s.Raw.PerSec), "",
					fmt.Sprintf("a job type no runner serves (%s, the demo schema, %d B body), so only the submit path runs; gateway process %.2f cores, tool %.2f; p50 / p99 / p99.9 %s / %s / %s ms",
						s.ParkedType, s.ParkedBodyBytes, s.ParkedCPU.GatewayCores, s.ParkedCPU.ToolCores, msf(s.Parked.Latency.P50MS), msf(s.Parked.Latency.P99MS), msf(s.Parked.Latency.P999MS))},
				row{fmt.Sprintf("submit, open loop at %s/s, runner idle: latency p50 / p99", num(s.Rate)),
					fmt.Sprintf("%s / %s ms", msf(s.ParkedOpen.Latency.P50MS), msf(s.ParkedOpen.Latency.P99MS)),
					fmt.Sprintf("%s / %s ms", msf(s.RawOpen.Latency.P50MS), msf(s.RawOpen.Latency.P99MS)),
					ratio(s.ParkedOpen.Latency.P50MS, s.RawOpen.Latency.P50MS), "p50",
					fmt.Sprintf("as above; completed %s/s, skipped %d", num(s.ParkedOpen.PerSec), s.ParkedOpen.Skipped)},
			)
		}
		if s.GoSubmit.Ops > 0 {
			r.Rows = append(r.Rows,
				row{fmt.Sprintf("Go submit (jobs.Enqueue), %d goroutines: throughput", s.Concurrency),
					num(s.GoSubmit.PerSec) + " jobs/s", num(s.Raw.PerSec) + " msg/s", ratio(s.GoSubmit.PerSec, s.Raw.PerSec), "",
					fmt.Sprintf("what jobclient.Submit stores, on the tool's connection, type %s (no runner); one fenced write per job; gateway process %.2f cores, tool %.2f; p50 / p99 %s / %s ms",
						s.ParkedType, s.GoSubmitCPU.GatewayCores, s.GoSubmitCPU.ToolCores, msf(s.GoSubmit.Latency.P50MS), msf(s.GoSubmit.Latency.P99MS))})
		}
		if s.Batch.Ops > 0 && s.RawAsync.Ops > 0 {
			r.Rows = append(r.Rows,
				row{fmt.Sprintf("batch submit (jobs.EnqueueMany, %d per batch, %d goroutines): throughput", s.BatchSize, s.BatchWorkers),
					num(s.BatchJobsS) + " jobs/s", num(s.RawAsyncMsgS) + " msg/s", ratio(s.BatchJobsS, s.RawAsyncMsgS), "",
					fmt.Sprintf("what POST /api/jobs:batch and jobclient.SubmitMany store, type %s; baseline: JetStream async publish of as many messages of the request's size, awaited per batch; batch p50 %s ms vs %s ms",
						s.ParkedType, msf(s.Batch.Latency.P50MS), msf(s.RawAsync.Latency.P50MS))})
		}
		r.Targets = append(r.Targets,
			issueGoal("HTTP submit ÷ JetStream sync publish", s.Jobwire.PerSec/s.Raw.PerSec, true, 0.4,
				fmt.Sprintf("%.0f %% (%s vs %s /s)", 100*s.Jobwire.PerSec/s.Raw.PerSec, num(s.Jobwire.PerSec), num(s.Raw.PerSec))),
			goal("submit p50 ≤ 2 ms at half the maximum rate", s.JobwireOpen.Latency.P50MS <= 2,
				fmt.Sprintf("p50 %s ms at %s/s", msf(s.JobwireOpen.Latency.P50MS), num(s.Rate))),
		)
		if s.GoSubmit.Ops > 0 {
			r.Targets = append(r.Targets, issueGoal("Go submit ÷ JetStream sync publish", s.GoSubmit.PerSec/s.Raw.PerSec, true, 0.6,
				fmt.Sprintf("%.0f %% (%s vs %s /s)", 100*s.GoSubmit.PerSec/s.Raw.PerSec, num(s.GoSubmit.PerSec), num(s.Raw.PerSec))))
		}
		if s.Batch.Ops > 0 && s.RawAsyncMsgS > 0 {
			r.Targets = append(r.Targets, issueGoal("batch submit ÷ JetStream async publish", s.BatchJobsS/s.RawAsyncMsgS, true, 0.4,
				fmt.Sprintf("%.0f %% (%s jobs/s vs %s msg/s)", 100*s.BatchJobsS/s.RawAsyncMsgS, num(s.BatchJobsS), num(s.RawAsyncMsgS))))
		}
	}
	if s := r.Runner; s != nil {
		r.Rows = append(r.Rows, row{"runner: no-op jobs end to end",
			num(s.JobsPerSec) + " jobs/s", num(s.RawPerSec) + " msg/s", ratio(s.JobsPerSec, s.RawPerSec), "",
			fmt.Sprintf("%s jobs: jobs.Enqueue (%d goroutines, %s/s) → final event stored, %s; baseline: fetch (batch %d) + msg.Ack of %s pre-published %d B messages on a work queue; gateway process %.2f vs %.2f cores",
				num(float64(s.Jobs)), s.EnqueueWorkers, num(s.EnqueuePerSec), runnerConcurrency(r.Settings), s.RawBatch, num(float64(s.RawMsgs)), s.RawPayloadBytes, s.CPU.GatewayCores, s.RawCPU.GatewayCores)})
		r.Targets = append(r.Targets, issueGoal("no-op jobs ÷ fetch + ack", s.JobsPerSec/s.RawPerSec, true, 0.2,
			fmt.Sprintf("%.1f %% (%s vs %s /s)", 100*s.JobsPerSec/s.RawPerSec, num(s.JobsPerSec), num(s.RawPerSec))))
	}
	if w := r.Watch; w != nil {
		r.Rows = append(r.Rows, row{fmt.Sprintf("submit → final seen by a watcher, open loop at %s jobs/s: p50 / p99 / max", num(w.Rate)),
			fmt.Sprintf("%s / %s / %s ms", msf(w.WSFinal.P50MS), msf(w.WSFinal.P99MS), msf(w.WSFinal.MaxMS)),
			fmt.Sprintf("%s / %s / %s ms", msf(w.RawFinal.P50MS), msf(w.RawFinal.P99MS), msf(w.RawFinal.MaxMS)),
			ratio(w.WSFinal.P99MS, w.RawFinal.P99MS), "p99",
			fmt.Sprintf("no-op demo jobs by POST /api/jobs, timed from the moment each was due to its final event on a WebSocket watching every job (watch_all); %d jobs, %d finals missing; the same finals on a plain NATS subscriber of jobs.<id>.progress: %s / %s ms; final event made (its time, set by the runner): %s / %s ms; submit answered: %s / %s ms; gateway process %.2f cores, %.0f µs per job; baseline: JetStream sync publish at the same rate, due → the stream's republished copy at a subscriber (%.2f cores)",
				w.Submit.Ops, w.Missing, msf(w.NATSFin.P50MS), msf(w.NATSFin.P99MS), msf(w.Made.P50MS), msf(w.Made.P99MS),
				msf(w.Submit.Latency.P50MS), msf(w.Submit.Latency.P99MS), w.CPU.GatewayCores, w.CPUPerUS, w.RawCPU.GatewayCores)})
		t := issueGoal(fmt.Sprintf("submit → final seen by a watcher at %s jobs/s (open loop), p99 in ms", num(w.Rate)), w.WSFinal.P99MS, false, 5,
			fmt.Sprintf("p99 %s ms (raw publish → republish p99 %s ms)", msf(w.WSFinal.P99MS), msf(w.RawFinal.P99MS)))
		if w.Rate != 500 {
			t.Result += " (not at 500 jobs/s)"
		}
		r.Targets = append(r.Targets, t)
	}
	if f := r.Fanout; f != nil {
		j, n := f.Jobwire, f.Raw
		r.Rows = append(r.Rows,
			row{fmt.Sprintf("fan-out, %d watchers × %d jobs: events delivered", f.Watchers, f.Jobs),
				num(j.PerSec) + " events/s", num(n.PerSec) + " events/s", ratio(j.PerSec, n.PerSec), "",
				fmt.Sprintf("WebSockets vs plain NATS subscribers (one connection each); the jobs produced %s vs %s events/s; delivered %.1f %% vs %.1f %% of produced × watchers; seq gaps %d vs %d",
					num(j.ProducedPerSec), num(n.ProducedPerSec), 100*j.Completeness, 100*n.Completeness, j.Gaps, n.Gaps)},
			row{"fan-out: latency p50 / p99 (event time → received)",
				fmt.Sprintf("%s / %s ms", msf(j.Latency.P50MS), msf(j.Latency.P99MS)),
				fmt.Sprintf("%s / %s ms", msf(n.Latency.P50MS), msf(n.Latency.P99MS)),
				ratio(j.Latency.P99MS, n.Latency.P99MS), "p99",
				fmt.Sprintf("the tool's own single NATS subscriber got the same events at p50 / p99 %s / %s ms vs %s / %s ms (runner publish → NATS server → client)",
					msf(j.SourceLatency.P50MS), msf(j.SourceLatency.P99MS), msf(n.SourceLatency.P50MS), msf(n.SourceLatency.P99MS))},
		)
		if j.CPUPerEventUS > 0 && n.CPUPerEventUS > 0 {
			r.Rows = append(r.Rows, row{"fan-out: gateway process CPU per delivered event",
				fmt.Sprintf("%.1f µs", j.CPUPerEventUS), fmt.Sprintf("%.1f µs", n.CPUPerEventUS), ratio(j.CPUPerEventUS, n.CPUPerEventUS), "",
				fmt.Sprintf("%.2f vs %.2f cores (NATS server, gateway and runner share the process); tool %.2f vs %.2f cores", j.CPU.GatewayCores, n.CPU.GatewayCores, j.CPU.ToolCores, n.CPU.ToolCores)})
		}
		if j.CPUPerEventUS > 0 && n.CPUPerEventUS > 0 {
			r.Targets = append(r.Targets, issueGoal("fan-out gateway CPU per delivered event ÷ plain NATS subscribers'", j.CPUPerEventUS/n.CPUPerEventUS, false, 0.5,
				fmt.Sprintf("%.2f (%.1f vs %.1f µs)", j.CPUPerEventUS/n.CPUPerEventUS, j.CPUPerEventUS, n.CPUPerEventUS)))
		}
		share := goal("fan-out ≥ 25 % of the plain-NATS delivered rate", j.PerSec/n.PerSec >= 0.25,
			fmt.Sprintf("%.0f %% (%s vs %s events/s)", 100*j.PerSec/n.PerSec, num(j.PerSec), num(n.PerSec)))
		if j.Completeness >= 0.99 && n.Completeness >= 0.99 {
			share.Measured += " at the same offered load: both delivered all the jobs produced"
		}
		r.Targets = append(r.Targets, share)
		t := goal("fan-out p99 ≤ 5 ms at 10k events/s", j.Latency.P99MS <= 5,
			fmt.Sprintf("p99 %s ms at %s events/s", msf(j.Latency.P99MS), num(j.PerSec)))
		if j.PerSec < 9000 || j.PerSec > 11000 {
			t.Result = "not measured here (the rate is not about 10k/s)"
		}
		r.Targets = append(r.Targets, t)
	}
	if m := r.Memory; m != nil && m.Jobwire.After.RSS > 0 {
		j, n := m.Jobwire, m.Raw
		base := "–"
		if n.After.RSS > 0 {
			base = fmt.Sprintf("%s (marginal %s)", kib(n.PerWatcher), kib(n.Marginal))
		}
		note := fmt.Sprintf("WebSocket watching one finished job vs NATS connection with one subscription; gateway process RSS %s → %s MiB vs %s → %s MiB",
			num(float64(j.Before.RSS)/(1<<20)), num(float64(j.After.RSS)/(1<<20)), num(float64(n.Before.RSS)/(1<<20)), num(float64(n.After.RSS)/(1<<20)))
		if !r.Settings.FreshPerPhase {
			note += "; not a fresh gateway: memory it already held is reused, so the figures are too low"
		}
		r.Rows = append(r.Rows, row{fmt.Sprintf("memory: RSS per idle watcher, %s watchers", num(float64(m.Idle))),
			fmt.Sprintf("%s (marginal %s)", kib(j.PerWatcher), kib(j.Marginal)), base, ratio(j.PerWatcher, n.PerWatcher), "", note})
		if j.HeapError == "" && n.HeapError == "" && j.HeapWith.LiveMiB > 0 {
			r.Rows = append(r.Rows, row{"memory: live heap + stacks per idle watcher",
				fmt.Sprintf("%s + %s", kib(j.HeapPerWatcher), kib(j.StacksPerWatcher)),
				fmt.Sprintf("%s + %s", kib(n.HeapPerWatcher), kib(n.StacksPerWatcher)),
				ratio(j.HeapPerWatcher+j.StacksPerWatcher, n.HeapPerWatcher+n.StacksPerWatcher), "",
				fmt.Sprintf("after a collection, with all connections open and after they closed (gctrace, 1 MiB resolution): heap %d → %d MiB, stacks %d → %d MiB vs heap %d → %d MiB, stacks %d → %d MiB",
					j.HeapWithout.LiveMiB, j.HeapWith.LiveMiB, j.HeapWithout.StacksMiB, j.HeapWith.StacksMiB,
					n.HeapWithout.LiveMiB, n.HeapWith.LiveMiB, n.HeapWithout.StacksMiB, n.HeapWith.StacksMiB)})
		} else {
			why := j.HeapError
			if why == "" {
				why = n.HeapError
			}
			r.Skipped = append(r.Skipped, fmt.Sprintf("memory: no heap figure (%s); RSS only", why))
		}
		t := goal("≤ 32 KiB per idle watcher at 10k watchers", j.PerWatcher <= 32*1024,
			fmt.Sprintf("%s at %s watchers", kib(j.PerWatcher), num(float64(m.Idle))))
		switch {
		case !r.Settings.FreshPerPhase:
			t.Result = "not measured (not a fresh gateway)"
		case m.Idle < 10000:
			t.Result += fmt.Sprintf(" (at %s, not 10k)", num(float64(m.Idle)))
		}
		r.Targets = append(r.Targets, t)
	}
	if x := r.Index; x != nil {
		rows, targets := indexRows(x)
		r.Rows, r.Targets = append(r.Rows, rows...), append(r.Targets, targets...)
	}
}

// indexRows are the job index's lines of the table and its targets.
func indexRows(x *indexResult) ([]row, []target) {
	var rows []row
	var targets []target
	if x.SeedSeconds > 0 {
		rows = append(rows, row{fmt.Sprintf("index: seeding %s jobs of %s owners", num(float64(x.Jobs)), num(float64(x.Owners))),
			num(x.SeedJobsPerSec) + " jobs/s", "–", nil, "",
			fmt.Sprintf("each job's request, final event (fenced on it) and end record, straight on NATS with async publishes (%s msg/s, ≤ %d in flight), the indexer's consumer paused; gateway process %.2f cores",
				num(x.SeedMsgsPerSec), x.SeedInFlight, x.SeedCPU.GatewayCores)})
	}
	if x.IndexSeconds > 0 {
		var store []string
		for _, s := range x.Store {
			store = append(store, fmt.Sprintf("%s %s msgs, %.0f B per job", s.Stream, num(float64(s.Msgs)), float64(s.Bytes)/float64(x.Jobs)))
		}
		rows = append(rows, row{fmt.Sprintf("index: the indexer catching up on %s jobs", num(float64(x.Jobs))),
			fmt.Sprintf("%s jobs/s (%s events/s)", num(x.IndexJobsPerSec), num(x.IndexEventsPerSec)), "–", nil, "",
			fmt.Sprintf("consumer jobwire_indexer's first delivery after its resume → nothing pending or unacked, %.1f s; gateway process %.2f cores, %.0f µs CPU per job, RSS %s MiB seeded → %s MiB indexed (peak %s); %s",
				x.IndexSeconds, x.IndexCPU.GatewayCores, x.IndexCPUPerJobUS, num(float64(x.MemSeeded.RSS)/(1<<20)), num(float64(x.MemIndexed.RSS)/(1<<20)),
				num(float64(x.MemIndexed.HWM)/(1<<20)), strings.Join(store, "; "))})
	}
	// The goals, at each number of clients: the unfiltered owner's page,
	// and the slowest page with a status filter.
	unfiltered, filtered := map[int]*pageCase{}, map[int]*pageCase{}
	var clients []int
	for i := range x.Pages {
		p := &x.Pages[i]
		if p.HTTP.Samples == 0 {
			continue
		}
		rows = append(rows, row{fmt.Sprintf("list page, %s, %d clients, %s jobs stored: p50 / p90 / p99 / max", p.Name, p.Clients, num(float64(x.Jobs))),
			fmt.Sprintf("%s / %s / %s / %s ms", msf(p.HTTP.P50MS), msf(p.HTTP.P90MS), msf(p.HTTP.P99MS), msf(p.HTTP.MaxMS)),
			fmt.Sprintf("%s / %s / %s / %s ms", msf(p.Direct.P50MS), msf(p.Direct.P90MS), msf(p.Direct.P99MS), msf(p.Direct.MaxMS)),
			ratio(p.HTTP.P99MS, p.Direct.P99MS), "p99",
			fmt.Sprintf("`%s` from %d clients, %d requests (%s/s) after %d unmeasured, each answer checked; %.1f jobs and %.2f NATS requests (direct gets) per page (at most %d); baseline: jobindex.Reader.Page on the tool's own NATS connection, the same reads without HTTP; gateway process %.2f cores, %.0f µs CPU per page%s",
				p.Query, p.Clients, p.Requests, num(p.HTTPPerS), warmupPages(p.Requests), p.JobsPerPage, p.RequestsPerPage, p.MaxPerPage, p.HTTPCPU.GatewayCores, p.CPUPerPageUS, breakdown(p.Breakdown))})
		if !slices.Contains(clients, p.Clients) {
			clients = append(clients, p.Clients)
		}
		switch {
		case p.Query == fmt.Sprintf("GET /api/jobs?limit=%d", indexLimit) && !p.Admin:
			unfiltered[p.Clients] = p
		case strings.Contains(p.Query, "status=") && (filtered[p.Clients] == nil || p.HTTP.P99MS > filtered[p.Clients].HTTP.P99MS):
			filtered[p.Clients] = p
		}
	}
	at := fmt.Sprintf("at %s jobs", num(float64(x.Jobs)))
	for _, n := range clients {
		if p := unfiltered[n]; p != nil {
			targets = append(targets,
				boundGoal(16, fmt.Sprintf("list page p99 (owner, no filter, %d clients), ms", n), p.HTTP.P99MS, false, 20, fmt.Sprintf("p99 %s ms %s", msf(p.HTTP.P99MS), at)),
				boundGoal(16, fmt.Sprintf("NATS requests per page (no filter, %d clients)", n), p.RequestsPerPage, false, float64(p.MaxPerPage),
					fmt.Sprintf("%.2f %s: constant in the jobs stored", p.RequestsPerPage, at)))
		}
		if p := filtered[n]; p != nil {
			targets = append(targets,
				boundGoal(16, fmt.Sprintf("list page p99 (owner, status filter, %d clients), ms", n), p.HTTP.P99MS, false, 20, fmt.Sprintf("p99 %s ms (%s) %s", msf(p.HTTP.P99MS), p.Name, at)),
				boundGoal(16, fmt.Sprintf("NATS requests per page (status filter, %d clients)", n), p.RequestsPerPage, false, float64(p.MaxPerPage),
					fmt.Sprintf("%.2f (%s) %s: a final status reads its own list", p.RequestsPerPage, p.Name, at)))
		}
	}
	if rn := x.Runner; rn != nil && rn.OffJobsPerSec > 0 {
		rows = append(rows, row{"runner: no-op jobs end to end, indexer on vs off",
			num(rn.OnJobsPerSec) + " jobs/s", num(rn.OffJobsPerSec) + " jobs/s (JOB_INDEXER=false)", ratio(rn.OnJobsPerSec, rn.OffJobsPerSec), "",
			fmt.Sprintf("%s jobs by jobs.Enqueue, the mean of %d rounds on fresh gateways; gateway CPU per job %.0f vs %.0f µs (%.0f µs until the indexer had caught up, %.1f s after the last job ended); the indexer shares the gateway's cores with the runner",
				num(float64(rn.Jobs)), rn.Rounds, rn.OnCPUPerJobUS, rn.OffCPUPerJobUS, rn.OnCPUPerJobIndexedUS, rn.OnLagSeconds)})
		targets = append(targets, boundGoal(16, "no-op jobs with the indexer ÷ without", rn.Ratio, true, 0.5,
			fmt.Sprintf("%.2f (%s vs %s jobs/s)", rn.Ratio, num(rn.OnJobsPerSec), num(rn.OffJobsPerSec))))
	}
	return rows, targets
}

// breakdown says what each kind of NATS request of a page took.
func breakdown(rs []requestTime) string {
	if len(rs) == 0 {
		return ""
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%.1f × %s %s / %s ms", r.PerPage, r.Kind, msf(r.Latency.P50MS), msf(r.Latency.P99MS))
	}
	return "; NATS requests, request → last answer at a tap, p50 / p99: " + strings.Join(parts, ", ")
}

func runnerConcurrency(s settings) string {
	if s.RunnerConcurrency == 0 {
		return "the running system's runners"
	}
	return fmt.Sprintf("RUNNER_CONCURRENCY=%d", s.RunnerConcurrency)
}

func rateOrigin(s settings, r *submitResult) string {
	if r.Jobwire.PerSec > 0 && math.Abs(r.Rate-r.Jobwire.PerSec/2) < 1 {
		return "half the closed-loop jobwire maximum"
	}
	return "--rate"
}

func goal(name string, met bool, measured string) target {
	t := target{Goal: name, Measured: measured, Result: "missed"}
	if met {
		t.Result = "met"
	}
	return t
}

// issueGoal is a target of issue 15: value against bound ("≥ 0.6", "≤ 5").
func issueGoal(name string, value float64, atLeast bool, bound float64, measured string) target {
	return boundGoal(15, name, value, atLeast, bound, measured)
}

// boundGoal is a target of an issue: value against bound.
func boundGoal(issue int, name string, value float64, atLeast bool, bound float64, measured string) target {
	met := value <= bound
	op := "≤"
	if atLeast {
		met, op = value >= bound, "≥"
	}
	t := goal(fmt.Sprintf("%s (issue %d)", name, issue), met, measured)
	t.Value, t.Bound = &value, fmt.Sprintf("%s %g", op, bound)
	return t
}

// markdown writes the report as the table and the targets.
func (r *report) markdown(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "## jobwire vs raw NATS\n\n")
	fmt.Fprintf(w, "- machine: %d CPUs (GOMAXPROCS %d), %s, %s MiB RAM, %s\n", m.NumCPU, m.GOMAXPROCS, m.CPUModel, num(float64(m.MemTotalMiB)), m.GoVersion)
	fmt.Fprintf(w, "- kernel: %s\n", m.Kernel)
	if m.NATSServer != "" {
		fmt.Fprintf(w, "- nats-server: %s\n", m.NATSServer)
	}
	fmt.Fprintf(w, "- system: %s", r.Settings.System)
	if r.Settings.RunnerConcurrency > 0 {
		fmt.Fprintf(w, ", RUNNER_CONCURRENCY=%d", r.Settings.RunnerConcurrency)
	}
	if r.Settings.FreshPerPhase {
		fmt.Fprintf(w, ", a fresh gateway per phase")
	}
	fmt.Fprintf(w, "\n- windows: %gs after %gs warm-up; the tool and the system share the machine\n", r.Settings.DurationS, r.Settings.WarmupS)
	if r.Submit != nil {
		fmt.Fprintf(w, "- while submissions are measured, the gateway's in-process runner also runs the submitted jobs\n")
	}
	fmt.Fprintf(w, "\n| measurement | jobwire | raw NATS baseline | ratio | notes |\n|---|---|---|---|---|\n")
	for _, x := range r.Rows {
		rt := "–"
		if x.Ratio != nil {
			rt = fmt.Sprintf("%.2f", *x.Ratio)
			if x.RatioOf != "" {
				rt += " (" + x.RatioOf + ")"
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", x.Measurement, x.Jobwire, x.Baseline, rt, x.Notes)
	}
	fmt.Fprintf(w, "\nratio = jobwire ÷ baseline (for latency and memory, above 1 is worse)\n")
	if len(r.Targets) > 0 {
		fmt.Fprintf(w, "\n| target | value | bound | measured | result |\n|---|---|---|---|---|\n")
		for _, t := range r.Targets {
			v := "–"
			if t.Value != nil {
				v = fmt.Sprintf("%.2f", *t.Value)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", t.Goal, v, cmp.Or(t.Bound, "–"), t.Measured, t.Result)
		}
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "\nskipped: %s\n", s)
	}
	if len(r.Failures) > 0 {
		fmt.Fprintf(w, "\n**FAILED**\n\n")
		for _, f := range r.Failures {
			fmt.Fprintf(w, "- %s\n", strings.ReplaceAll(f, "\n", "\n  "))
		}
	}
}

func (r *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
