package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
)

// buildRunner compiles the runner command into a temporary directory.
func buildRunner(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "runner")
	out, err := exec.Command("go", "build", "-o", bin, "../runner").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ../runner: %v\n%s", err, out)
	}
	return bin
}

type runnerProc struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
}

func startRunnerProc(t *testing.T, bin, natsURL string) *runnerProc {
	t.Helper()
	p := &runnerProc{cmd: exec.Command(bin), stderr: &lockedBuffer{}}
	p.cmd.Env = append(os.Environ(), "NATS_URL="+natsURL, "ACK_WAIT=2s", "RUNNER_CONCURRENCY=1", "SHUTDOWN_GRACE=1s")
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		_ = p.cmd.Wait()
	})
	return p
}

// A runner killed with SIGKILL mid-job: another runner gets the job after
// the ack wait, the attempt goes up, seq continues without gap or reuse,
// and the job succeeds exactly once.
func TestKilledRunnersJobIsRedelivered(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the runner binary")
	}
	t.Parallel()
	sys := startSystem(t, withoutRunner())
	bin := buildRunner(t)
	procs := []*runnerProc{startRunnerProc(t, bin, sys.NATS.ClientURL()), startRunnerProc(t, bin, sys.NATS.ClientURL())}

	snap := sys.submit(t, "demo", `{"steps":30,"step_ms":100}`)
	sys.waitStatus(t, snap.ID, jobs.StatusRunning, 30*time.Second)
	var holder *runnerProc
	deadline := time.Now().Add(10 * time.Second)
	for holder == nil {
		for _, p := range procs {
			if strings.Contains(p.stderr.String(), `msg="job started" job_id=`+snap.ID) {
				holder = p
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no runner logged that it started the job")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Let it make some progress, then kill it without a chance to clean up.
	for deadline := time.Now().Add(10 * time.Second); ; {
		s, _ := sys.get(t, snap.ID)
		if s.Percent != nil && *s.Percent >= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the job made no progress")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := holder.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}

	done := sys.waitStatus(t, snap.ID, jobs.StatusSucceeded, 60*time.Second)
	if done.Attempt != 2 {
		t.Errorf("finished at attempt %d, want 2", done.Attempt)
	}
	evs := sys.history(t, snap.ID)
	checkSeqs(t, evs)
	var succeeded, started int
	lastAttempt := 0
	for _, e := range evs {
		if e.Attempt < lastAttempt {
			t.Fatalf("an event of attempt %d after attempt %d: %v", e.Attempt, lastAttempt, kinds(evs))
		}
		lastAttempt = e.Attempt
		switch e.Kind {
		case jobs.KindSucceeded:
			succeeded++
		case jobs.KindStarted:
			started++
		}
	}
	if succeeded != 1 || started != 2 {
		t.Fatalf("%d succeeded and %d started events, want 1 and 2: %v", succeeded, started, kinds(evs))
	}
}
