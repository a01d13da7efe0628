package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	// The gateway's heaviest dependencies, imported so that `go test ./...`
	// compiles them (in this test's mode, -race or not) before TestSmoke
	// builds the gateway: its build then finds them in the build cache.
	_ "github.com/jobwire/jobwire/internal/devstack"
	_ "github.com/jobwire/jobwire/services/runner/jobtypes"
)

// TestSmoke runs the tool's --smoke mode in-process against a gateway it
// builds (or JOBWIRE_BENCH_GATEWAY_BIN): every phase, index too, must run
// end to end, with no error and with figures, or the test fails.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the gateway nine times; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := os.Getenv("JOBWIRE_BENCH_GATEWAY_BIN")
	if bin == "" {
		var flags []string
		if raceEnabled {
			flags = append(flags, "-race")
		}
		start := time.Now()
		var err error
		if bin, err = buildGateway(ctx, "", dir, flags); err != nil {
			t.Fatal(err)
		}
		t.Logf("built the gateway in %v", time.Since(start).Round(time.Millisecond))
	}

	jsonPath := filepath.Join(dir, "smoke.json")
	var stdout, stderr bytes.Buffer
	start := time.Now()
	err := run(ctx, []string{"--smoke", "--phases", strings.Join(allPhases, ","), "--gateway-bin", bin, "--json", jsonPath}, &stdout, &stderr)
	t.Logf("smoke run took %v", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("smoke run failed: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"| measurement | jobwire | raw NATS baseline | ratio | notes |",
		"submit, closed loop", "submit, open loop", "runner: no-op jobs end to end",
		"submit → final seen by a watcher, open loop at 100 jobs/s",
		"fan-out, 10 watchers × 3 jobs", "memory: RSS per idle watcher, 50 watchers",
		"index: the indexer catching up on 2,000 jobs", "list page, owner, status=failed, 8 clients, 2,000 jobs stored",
		"runner: no-op jobs end to end, indexer on vs off", "list page p99 (owner, no filter, 8 clients), ms (issue 16)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the table lacks %q:\n%s", want, out)
		}
	}

	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	switch {
	case !rep.OK || len(rep.Failures) > 0:
		t.Errorf("report not ok: %v", rep.Failures)
	case rep.Submit == nil || rep.Submit.Jobwire.PerSec <= 0 || rep.Submit.Raw.PerSec <= 0 || rep.Submit.JobwireOpen.Ops == 0 || rep.Submit.RawOpen.Ops == 0:
		t.Errorf("submit figures missing: %+v", rep.Submit)
	case rep.Runner == nil || rep.Runner.Succeeded != 200 || rep.Runner.RawAcked != 200:
		t.Errorf("runner figures missing: %+v", rep.Runner)
	case rep.Watch == nil || rep.Watch.WSFinal.Samples == 0 || rep.Watch.NATSFin.Samples == 0 || rep.Watch.RawFinal.Samples == 0 || rep.Watch.Missing != 0:
		t.Errorf("watch figures missing: %+v", rep.Watch)
	case rep.Fanout == nil || rep.Fanout.Jobwire.Delivered == 0 || rep.Fanout.Raw.Delivered == 0 || rep.Fanout.Jobwire.Latency.Samples == 0:
		t.Errorf("fan-out figures missing: %+v", rep.Fanout)
	case rep.Memory == nil || rep.Memory.Jobwire.After.RSS == 0 || rep.Memory.Raw.After.RSS == 0:
		t.Errorf("memory figures missing: %+v", rep.Memory)
	case rep.Index == nil || rep.Index.IndexJobsPerSec <= 0 || rep.Index.AllPositions != 2000 || len(rep.Index.Pages) != 4 || rep.Index.Runner == nil || rep.Index.Runner.Ratio <= 0:
		t.Errorf("index figures missing: %+v", rep.Index)
	case rep.Machine.NumCPU == 0 || rep.Machine.GoVersion == "":
		t.Errorf("machine missing: %+v", rep.Machine)
	}
	if rep.Index != nil {
		// Every seeded job has ended: each page is the list's last
		// position and its entries, whatever the filter.
		for _, p := range rep.Index.Pages {
			if p.RequestsPerPage != 2 {
				t.Errorf("%s (%s): %.2f NATS requests per page, want 2", p.Query, p.Name, p.RequestsPerPage)
			}
		}
	}
}

// TestSmokeFailsWhenTheSystemIsBroken: a gateway that cannot start must
// make the run fail, not pass quietly.
func TestSmokeFailsWhenTheSystemIsBroken(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, []string{"--smoke", "--quiet", "--gateway-bin", "/bin/false"}, &stdout, &stderr)
	if err == nil {
		t.Fatalf("run succeeded with a gateway that exits at once:\n%s", stdout.String())
	}
	if !strings.Contains(stdout.String(), "FAILED") {
		t.Errorf("the table does not say FAILED:\n%s", stdout.String())
	}
}

func TestConfigRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--phases", "nope"},
		{"--url", "http://127.0.0.1:1"},
		{"--token", "x"},
		{"--fanout-jobs", "1001"},
		{"--watch-rate", "0"},
		{"--index-owners", "0"},
		{"--index-jobs", "100", "--index-owners", "10"}, // fewer than a page per owner
		{"extra"},
	} {
		if _, err := parseConfig(args, &bytes.Buffer{}); err == nil {
			t.Errorf("%q: accepted", args)
		}
	}
	cfg, err := parseConfig([]string{"--smoke", "--watchers", "7"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Watchers != 7 || cfg.Jobs != 200 || cfg.Idle != 50 || cfg.Duration != time.Second || cfg.WatchRate != 100 || cfg.IndexJobs != 2000 || cfg.IndexOwners != 20 {
		t.Errorf("smoke sizes: %+v", cfg)
	}
	if slices.Contains(cfg.Phases, phaseIndex) {
		t.Errorf("the index phase (a million jobs) runs by default: %v", cfg.Phases)
	}
}
