package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// profiler records CPU profiles of the gateway with `perf record -g`
// during the jobwire windows, when --perf-dir is given. The gateway has no
// pprof endpoint; a Go binary keeps frame pointers and symbols, so perf's
// call graphs are readable (`perf report -i <file> --no-children`).
type profiler struct {
	dir string
	pid int
	log func(string, ...any)
}

// start begins recording into <dir>/<name>.perf.data; the returned
// function stops it. Without --perf-dir, a pid or perf, it does nothing.
func (p *profiler) start(name string) (stop func()) {
	if p == nil || p.dir == "" || p.pid <= 0 {
		return func() {}
	}
	perf, err := exec.LookPath("perf")
	if err != nil {
		p.log("perf not found; no profile for %s", name)
		return func() {}
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		p.log("perf: %v", err)
		return func() {}
	}
	out := filepath.Join(p.dir, name+".perf.data")
	cmd := exec.Command(perf, "record", "-F", "499", "-g", "-p", strconv.Itoa(p.pid), "-o", out)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		p.log("perf record: %v", err)
		return func() {}
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	return func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		p.log("profile of the gateway: %s", out)
	}
}
