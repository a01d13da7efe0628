package jobtypes_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobwire/jobwire/services/runner/jobtypes"
	"github.com/jobwire/jobwire/services/runner/worker"
	"github.com/jobwire/jobwire/services/runner/worker/workertest"
	"github.com/jobwire/jobwire/shared/jobclient"
	"github.com/jobwire/jobwire/shared/jobs"
)

// execTypes loads an exec configuration written for the test, with its
// scripts beside it.
func execTypes(t *testing.T, config string, scripts map[string]string) ([]worker.JobType, string) {
	t.Helper()
	dir := t.TempDir()
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	config = strings.ReplaceAll(config, "$DIR", dir)
	path := filepath.Join(dir, "exec.json")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	types, err := jobtypes.LoadExec(path, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	return types, dir
}

// wantEnd waits for job id to end, fails the test unless it ended with
// status want, and returns its events and final state.
func wantEnd(t *testing.T, h *workertest.Harness, id string, want jobs.Status) ([]jobs.Event, jobs.Event) {
	t.Helper()
	events, final := h.Wait(id)
	if final.Status != want {
		t.Fatalf("job ended %s, want %s:%s", final.Status, want, workertest.Describe(events))
	}
	return events, final
}

func TestExecExampleRunsWithProgressLogsAndResult(t *testing.T) {
	t.Parallel()
	types, err := jobtypes.LoadExec("../../../examples/exec/jobwire-exec.json", os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	h := workertest.New(t, workertest.Config{}, types...)
	id := h.Submit("count", json.RawMessage(`{"steps":5,"pause_ms":10,"label":"goat"}`))
	events, done := wantEnd(t, h, id, jobs.StatusSucceeded)
	if string(done.Result) != `{"counted":5,"label":"goat"}` || done.Current != 5 || done.Total != 5 || *done.Percent != 100 || done.Stage != "counting" {
		t.Fatalf("final = %+v result %s", done, done.Result)
	}
	var logs []string
	for _, e := range events {
		if e.Kind == jobs.KindLog {
			logs = append(logs, e.Log)
		}
	}
	if len(logs) != 5 || logs[0] != "counted goat 1" || logs[4] != "counted goat 5" {
		t.Fatalf("log lines = %q", logs)
	}
	// The declared input is enforced at submit time (the gateway and
	// jobclient check it against the registered schema alike).
	for _, bad := range []string{`{"steps":0}`, `{"label":"a;b"}`, `{"extra":1}`, `{"steps":"5"}`} {
		if _, err := h.TrySubmit("count", json.RawMessage(bad)); !errors.Is(err, jobclient.ErrInvalidInput) {
			t.Errorf("input %s: %v, want invalid input", bad, err)
		}
	}
}

func TestExecPassesInputAsOneArgumentNeverThroughAShell(t *testing.T) {
	t.Parallel()
	types, dir := execTypes(t, `{"types": {"echo": {
		"description": "writes its argument and env to files", "program": "echo.sh",
		"args": ["{text}"], "env": {"TEXT": "{text}", "OUT": "$DIR"},
		"input": {"text": {"type": "string", "required": true}}}}}`,
		map[string]string{"echo.sh": "#!/bin/sh\nprintf '%s' \"$1\" > \"$OUT/arg\"\nprintf '%s' \"$TEXT\" > \"$OUT/env\"\nprintf '%s' \"$#\" > \"$OUT/argc\"\n"})
	h := workertest.New(t, workertest.Config{}, types...)
	hostile := `; touch pwned $(touch pwned2) "q" 'q' | & * \n`
	wantEnd(t, h, h.Submit("echo", map[string]string{"text": hostile}), jobs.StatusSucceeded)
	for file, want := range map[string]string{"arg": hostile, "env": hostile, "argc": "1"} {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q (%v), want %q", file, b, err, want)
		}
	}
	for _, f := range []string{"pwned", "pwned2"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("the input was run as a command: %s exists", f)
		}
	}
}

func TestExecNonZeroExitFailsWithStderrTail(t *testing.T) {
	t.Parallel()
	types, _ := execTypes(t, `{"types": {"fails": {"description": "exits 3", "program": "fail.sh", "max_attempts": 2}}}`,
		map[string]string{"fail.sh": "#!/bin/sh\necho working\necho 'disk full' >&2\nexit 3\n"})
	h := workertest.New(t, workertest.Config{}, types...)
	_, done := wantEnd(t, h, h.Submit("fails", json.RawMessage(`{}`)), jobs.StatusFailed)
	if done.Error.Code != "exit_status" || !strings.Contains(done.Error.Message, "exit status 3") ||
		!strings.Contains(done.Error.Message, "disk full") || done.Attempt != 2 {
		t.Fatalf("final = %+v", done)
	}
}

// processGone reports whether pid has exited (a zombie counts as gone).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(fields) > 0 && fields[0] == "Z"
}

func waitPIDFile(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(path); err == nil && strings.HasSuffix(string(b), "\n") {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never written", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitGone(t *testing.T, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) still runs", what, pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestExecCancelStopsTheWholeProcessGroup(t *testing.T) {
	t.Parallel()
	types, dir := execTypes(t, `{"types": {"sleepy": {"description": "sleeps with a child",
		"program": "sleepy.sh", "env": {"OUT": "$DIR"}, "env_allow": ["PATH"], "kill_grace": "2s"}}}`,
		map[string]string{"sleepy.sh": "#!/bin/sh\nsleep 300 &\necho $! > \"$OUT/child.tmp\" && mv \"$OUT/child.tmp\" \"$OUT/child\"\nwait\n"})
	h := workertest.New(t, workertest.Config{}, types...)
	id := h.Submit("sleepy", json.RawMessage(`{}`))
	child := waitPIDFile(t, filepath.Join(dir, "child"))
	h.Cancel(id, "enough")
	_, done := wantEnd(t, h, id, jobs.StatusCanceled)
	if !strings.Contains(done.Error.Message, "enough") {
		t.Errorf("final = %+v", done)
	}
	waitGone(t, child, "the script's child")
}

func TestExecTimeoutKillsAProcessThatIgnoresSIGTERM(t *testing.T) {
	t.Parallel()
	types, dir := execTypes(t, `{"types": {"stubborn": {"description": "ignores SIGTERM",
		"program": "stubborn.sh", "env": {"OUT": "$DIR"}, "env_allow": ["PATH"], "timeout": "300ms", "kill_grace": "200ms"}}}`,
		map[string]string{"stubborn.sh": "#!/bin/sh\ntrap '' TERM\necho $$ > \"$OUT/pid.tmp\" && mv \"$OUT/pid.tmp\" \"$OUT/pid\"\nwhile :; do sleep 0.05; done\n"})
	h := workertest.New(t, workertest.Config{}, types...)
	id := h.Submit("stubborn", json.RawMessage(`{}`))
	pid := waitPIDFile(t, filepath.Join(dir, "pid"))
	_, done := wantEnd(t, h, id, jobs.StatusFailed)
	if done.Error.Code != "timeout" {
		t.Fatalf("final = %+v", done)
	}
	waitGone(t, pid, "the script that ignores SIGTERM")
}

func TestExecConfigErrorsAreReportedTogether(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "exec.json")
	cfg := `{"types": {
		"a.b": {"program": "/bin/true"},
		"nothere": {"program": "missing.sh"},
		"badtemplate": {"program": "/bin/true", "args": ["{nope}"]},
		"badfield": {"program": "/bin/true", "input": {"x": {"type": "object"}}, "timeout": "soon"}}}`
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := jobtypes.LoadExec(path, os.Getenv)
	if err == nil {
		t.Fatal("a bad exec config loaded")
	}
	for _, want := range []string{"a.b", "missing.sh", `"nope"`, "input x", "timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
	if err := os.WriteFile(path, []byte(`{"types": `), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := jobtypes.LoadExec(path, os.Getenv); err == nil {
		t.Fatal("truncated config loaded")
	}
}
