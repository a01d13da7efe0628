package natsperm_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/jobwire/jobwire/internal/metrics/metricstest"
	"github.com/jobwire/jobwire/internal/natstest"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jobwire/jobwire/shared/jobclient"
	"github.com/jobwire/jobwire/shared/jobs"
)

// TestServicesWithRoles runs the real gateway and runner programs, built
// from this module, as users "gateway" and "runner" (credentials from
// NATS_USER, NATS_PASSWORD_FILE and NATS_INBOX_PREFIX) with TOPOLOGY=check,
// started before the set-up step: they wait, saying what is missing, until
// jobwire-setup (run as user "setup", twice: the second run changes
// nothing) has made the streams. Then it drives them over HTTP: job
// types, submit with an Idempotency-Key, state, list, the SSE replay of a
// job's events, cancel of a running job, and a scrape of both programs'
// metrics while a job waits (the queue figures read the stream and the
// consumer as these users). An observer watches with jobclient. No
// program may log a permissions violation.
func TestServicesWithRoles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the gateway and the runner")
	}
	t.Parallel()
	bin := buildServices(t)
	s := startServer(t)
	dir := t.TempDir()
	env := func(user string) []string {
		file := filepath.Join(dir, user+".password")
		if err := os.WriteFile(file, []byte(passwords[user]+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return []string{"NATS_URL=" + s.ClientURL(), "NATS_USER=" + user, "NATS_PASSWORD_FILE=" + file, "NATS_INBOX_PREFIX=_INBOX_" + user}
	}
	runner := launchProgram(t, filepath.Join(bin, "runner"), append(env("runner"), "TOPOLOGY=check", "RUNNER_CONCURRENCY=1", "METRICS_ADDR=127.0.0.1:0"), regexp.MustCompile(`jobwire runner: running`))
	gateway := launchProgram(t, filepath.Join(bin, "gateway"), append(env("gateway"), "HTTP_ADDR=127.0.0.1:0", "TOPOLOGY=check", "METRICS_ADDR=127.0.0.1:0"),
		regexp.MustCompile(`jobwire is running: (http://\S+)/`))
	for name, p := range map[string]*program{"gateway": gateway, "runner": runner} {
		waitFor(t, 10*time.Second, name+" says the streams are missing", func() bool {
			log := p.stderr.String()
			return strings.Contains(log, "stream JOBS is missing") && strings.Contains(log, "jobwire-setup")
		})
	}
	setup := func() string {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, "jobwire-setup"), "--timeout", "20s")
		cmd.Env = env("setup")
		var stderr natstest.LockedBuffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("jobwire-setup: %v\n%s%s", err, out, stderr.String())
		}
		if strings.Contains(strings.ToLower(stderr.String()), "permissions violation") {
			t.Errorf("jobwire-setup logged a permissions violation:\n%s", stderr.String())
		}
		return string(out)
	}
	if out := setup(); strings.Count(out, ": created\n") != 8 {
		t.Fatalf("jobwire-setup's first run:\n%s\nwant 8 streams and buckets created", out)
	}
	if out := setup(); strings.Count(out, ": unchanged\n") != 8 {
		t.Fatalf("jobwire-setup's second run:\n%s\nwant all 8 unchanged", out)
	}
	runner.waitReady(t, 20*time.Second)
	gateway.waitReady(t, 20*time.Second)
	base := gateway.match[1]

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	call := func(method, path, body string, header ...string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	submit := func(input string) jobs.Snapshot {
		t.Helper()
		code, b := call("POST", "/api/jobs", `{"type":"demo","input":`+input+`}`, "Idempotency-Key", "key-"+input)
		var snap jobs.Snapshot
		if code != http.StatusAccepted || json.Unmarshal(b, &snap) != nil {
			t.Fatalf("submit: %d %s", code, b)
		}
		return snap
	}
	waitStatus := func(id string, want jobs.Status) {
		t.Helper()
		waitFor(t, 20*time.Second, "job "+id+" "+string(want), func() bool {
			code, b := call("GET", "/api/jobs/"+id, "")
			var snap jobs.Snapshot
			return code == http.StatusOK && json.Unmarshal(b, &snap) == nil && snap.Status == want
		})
	}

	waitFor(t, 10*time.Second, "gateway ready", func() bool { code, _ := call("GET", "/readyz", ""); return code == http.StatusOK })
	if code, b := call("GET", "/api/job-types", ""); code != http.StatusOK || !bytes.Contains(b, []byte(`"demo"`)) {
		t.Fatalf("job types: %d %s", code, b)
	}
	job := submit(`{"steps":3,"step_ms":60}`)
	if again := submit(`{"steps":3,"step_ms":60}`); again.ID != job.ID {
		t.Fatalf("the same Idempotency-Key made job %s after %s", again.ID, job.ID)
	}
	waitStatus(job.ID, jobs.StatusSucceeded)
	// The list and the statistics, from the index the gateway keeps as
	// user "gateway" (a few milliseconds behind), and the runner found
	// as a NATS service.
	waitFor(t, 10*time.Second, "the job in the list", func() bool {
		code, b := call("GET", "/api/jobs", "")
		return code == http.StatusOK && bytes.Contains(b, []byte(job.ID))
	})
	waitFor(t, 10*time.Second, "the job counted", func() bool {
		code, b := call("GET", "/api/stats", "")
		return code == http.StatusOK && bytes.Contains(b, []byte(`"succeeded":1`))
	})
	// A delayed job and a recurring schedule: message schedules in
	// JOBS_TIMERS, fired into the gateway's timers consumer.
	code, b := call("POST", "/api/jobs", `{"type":"demo","input":{"steps":1,"step_ms":1},"delay":"500ms"}`)
	var delayed jobs.Snapshot
	if code != http.StatusAccepted || json.Unmarshal(b, &delayed) != nil || delayed.Status != jobs.StatusScheduled {
		t.Fatalf("delayed submit: %d %s", code, b)
	}
	waitStatus(delayed.ID, jobs.StatusSucceeded)
	code, b = call("POST", "/api/schedules", `{"type":"demo","input":{"steps":1,"step_ms":1},"every":"1s"}`)
	var sched struct{ ID string }
	if code != http.StatusCreated || json.Unmarshal(b, &sched) != nil {
		t.Fatalf("create schedule: %d %s", code, b)
	}
	waitFor(t, 15*time.Second, "a job of the schedule", func() bool {
		code, b := call("GET", "/api/jobs", "")
		return code == http.StatusOK && bytes.Contains(b, []byte(`"schedule_id":"`+sched.ID+`"`))
	})
	if code, b := call("DELETE", "/api/schedules/"+sched.ID, ""); code != http.StatusNoContent {
		t.Fatalf("delete schedule: %d %s", code, b)
	}
	code, sse := call("GET", "/api/jobs/"+job.ID+"/events?after_seq=0", "")
	n := 0
	for _, line := range strings.Split(string(sse), "\n") {
		if strings.HasPrefix(line, "data: ") {
			n++
		}
	}
	if code != http.StatusOK || n < 4 || !bytes.Contains(sse, []byte(`"status":"succeeded"`)) {
		t.Fatalf("SSE replay: %d, %d events: %s", code, n, sse)
	}

	ob := connectAs(t, s, "observer")
	c, err := jobclient.New(ob.Conn)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for ev, err := range c.Watch(testContext(t, 10*time.Second), job.ID, 0) {
		if err != nil {
			t.Fatalf("observer's watch: %v", err)
		}
		seqs = append(seqs, ev.Seq)
	}
	if len(seqs) != n || seqs[0] != 1 {
		t.Fatalf("observer's watch: seqs %v, want the %d events the SSE replay had", seqs, n)
	}

	long := submit(`{"steps":10000,"step_ms":10}`)
	waitStatus(long.ID, jobs.StatusRunning)
	// The runner runs one job at a time: this one waits.
	waiting := submit(`{"steps":10000,"step_ms":11}`)
	runnerMetrics, gatewayMetrics := metricsURL(t, runner), metricsURL(t, gateway)
	waitFor(t, 20*time.Second, "the queue figures of the waiting job", func() bool {
		r, g := metricstest.Scrape(t, runnerMetrics), metricstest.Scrape(t, gatewayMetrics)
		return r.Value("jobwire_runner_queue_pending_jobs", "type", "demo") == 1 && r.Has("jobwire_runner_queue_oldest_pending_age_seconds", "type", "demo") &&
			g.Value("jobwire_gateway_queue_newest_waiting_age_seconds", "type", "demo") > 0
	})
	r, g := metricstest.Scrape(t, runnerMetrics), metricstest.Scrape(t, gatewayMetrics)
	if n, m := r.Value("jobwire_runner_queue_read_errors_total"), g.Value("jobwire_gateway_queue_read_errors_total"); n != 0 || m != 0 {
		t.Errorf("queue readings failed: %v in the runner, %v in the gateway", n, m)
	}
	for _, id := range []string{long.ID, waiting.ID} {
		if code, b := call("POST", "/api/jobs/"+id+"/cancel", `{"reason":"enough"}`); code != http.StatusAccepted {
			t.Fatalf("cancel: %d %s", code, b)
		}
		waitStatus(id, jobs.StatusCanceled)
	}

	gateway.stop(t)
	runner.stop(t)
	for name, p := range map[string]*program{"gateway": gateway, "runner": runner} {
		if log := p.stderr.String(); strings.Contains(strings.ToLower(log), "permissions violation") {
			t.Errorf("%s logged a permissions violation:\n%s", name, log)
		}
	}
	ob.errs.none(t, "observer")
}

var metricsLine = regexp.MustCompile(`metrics server listening" addr=(\S+)`)

// metricsURL is where p serves its metrics (METRICS_ADDR), read from its log.
func metricsURL(t *testing.T, p *program) string {
	t.Helper()
	m := metricsLine.FindStringSubmatch(p.stderr.String())
	if m == nil {
		t.Fatalf("%s logged no metrics address:\n%s", p.cmd.Path, p.stderr)
	}
	return "http://" + m[1] + "/metrics"
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// buildServices builds the gateway, the runner and jobwire-setup once per
// test binary.
func buildServices(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildErr = err
			return
		}
		if buildDir, buildErr = os.MkdirTemp("", "jobwire-natsperm-"); buildErr != nil {
			return
		}
		cmd := exec.Command(goTool, "build", "-o", buildDir+string(filepath.Separator), "./services/gateway", "./services/runner", "./cmd/jobwire-setup")
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

// program is a running service process.
type program struct {
	cmd     *exec.Cmd
	stderr  *natstest.LockedBuffer
	matched chan []string // the start-up line's submatches, once
	match   []string      // set by waitReady
	done    chan error
	once    sync.Once
}

// launchProgram runs path with exactly env, watching its stdout for a line
// that matches ready (see waitReady). It is stopped when the test ends.
func launchProgram(t *testing.T, path string, env []string, ready *regexp.Regexp) *program {
	t.Helper()
	p := &program{cmd: exec.Command(path), stderr: &natstest.LockedBuffer{}, matched: make(chan []string, 1), done: make(chan error, 1)}
	p.cmd.Env = env
	p.cmd.Stderr = p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := ready.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case p.matched <- m:
				default:
				}
			}
		}
		p.done <- p.cmd.Wait()
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// waitReady waits up to d for the start-up line.
func (p *program) waitReady(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case p.match = <-p.matched:
	case err := <-p.done:
		p.done <- err
		t.Fatalf("%s exited: %v\n%s", p.cmd.Path, err, p.stderr)
	case <-time.After(d):
		t.Fatalf("%s did not start in %v:\n%s", p.cmd.Path, d, p.stderr)
	}
}

// stop sends SIGTERM and waits (15s, then SIGKILL) for a clean exit.
func (p *program) stop(t *testing.T) {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.done:
			if err != nil {
				t.Errorf("%s: %v\n%s", p.cmd.Path, err, p.stderr)
			}
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
			t.Errorf("%s did not stop in 15s", p.cmd.Path)
		}
	})
}
