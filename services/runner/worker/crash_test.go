package worker

import (
	"github.com/jobwire/jobwire/internal/natstest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/jobwire/jobwire/shared/jobs"
)

// buildRunner compiles the runner command into a temporary directory.
func buildRunner(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "runner")
	out, err := exec.Command("go", "build", "-o", bin, "..").CombinedOutput()
	if err != nil {
		t.Fatalf("go build services/runner: %v\n%s", err, out)
	}
	return bin
}

type runnerProc struct {
	cmd    *exec.Cmd
	stderr *natstest.LockedBuffer
}

func startRunnerProc(t *testing.T, bin, natsURL string) *runnerProc {
	t.Helper()
	p := &runnerProc{cmd: exec.Command(bin), stderr: &natstest.LockedBuffer{}}
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

// A runner process killed with SIGKILL mid-job: another runner gets the
// job after the ack wait, the attempt goes up, seq continues without gap
// or reuse, and the job succeeds exactly once.
func TestKilledRunnersJobIsRedelivered(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the runner binary")
	}
	t.Parallel()
	bin := buildRunner(t)
	e := newEnv(t)
	procs := []*runnerProc{startRunnerProc(t, bin, e.srv.ClientURL()), startRunnerProc(t, bin, e.srv.ClientURL())}

	id := e.submit("demo", `{"steps":30,"step_ms":100}`)
	e.waitEvent(id, "the job to run", func(ev jobs.Event) bool { return ev.Status == jobs.StatusRunning })
	var holder *runnerProc
	e.eventually("a runner to log that it started the job", func() (bool, string) {
		for _, p := range procs {
			if strings.Contains(p.stderr.String(), `msg="job started" job_id=`+id) {
				holder = p
			}
		}
		return holder != nil, ""
	})
	// Let it make some progress, then kill it without a chance to clean up.
	e.waitEvent(id, "10% progress", func(ev jobs.Event) bool { return ev.Percent != nil && *ev.Percent >= 10 })
	if err := holder.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}

	done := e.waitEnded(id)
	if done.Status != jobs.StatusSucceeded || done.Attempt != 2 {
		t.Errorf("finished %s, want succeeded at attempt 2", describe(done))
	}
	evs := e.history(id)
	checkSeqs(t, id, evs)
	var succeeded, started int
	lastAttempt := 0
	for _, ev := range evs {
		if ev.Attempt < lastAttempt {
			t.Fatalf("an event of attempt %d after attempt %d:\n%s", ev.Attempt, lastAttempt, describeAll(evs))
		}
		lastAttempt = ev.Attempt
		switch ev.Kind {
		case jobs.KindSucceeded:
			succeeded++
		case jobs.KindStarted:
			started++
		}
	}
	if succeeded != 1 || started != 2 {
		t.Fatalf("%d succeeded and %d started events, want 1 and 2:\n%s", succeeded, started, describeAll(evs))
	}
}
