package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// machine describes where the figures were measured.
type machine struct {
	NumCPU      int    `json:"num_cpu"`
	GOMAXPROCS  int    `json:"gomaxprocs"`
	GoVersion   string `json:"go_version"`
	Kernel      string `json:"kernel"`
	CPUModel    string `json:"cpu_model,omitempty"`
	MemTotalMiB int64  `json:"mem_total_mib,omitempty"`
	NATSServer  string `json:"nats_server,omitempty"`
	NoFileSoft  uint64 `json:"nofile_soft"`
	NoFileHard  uint64 `json:"nofile_hard"`
}

func describeMachine() machine {
	m := machine{NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/version"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if kb, ok := procField("/proc/meminfo", "MemTotal"); ok {
		m.MemTotalMiB = kb / 1024
	}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil {
		m.NoFileSoft, m.NoFileHard = rl.Cur, rl.Max
	}
	return m
}

// raiseFileLimit sets the soft RLIMIT_NOFILE to the hard limit; a gateway
// started afterwards inherits it. It returns the soft limit in force.
func raiseFileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 1024
	}
	if rl.Cur < rl.Max {
		want := rl
		want.Cur = rl.Max
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) == nil {
			rl = want
		}
	}
	return rl.Cur
}

// procField reads a "Name:   value kB" line of a /proc status-like file.
func procField(path, name string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != name {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			return 0, false
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		return n, err == nil
	}
	return 0, false
}

// memSample is a process's resident memory, in bytes.
type memSample struct {
	RSS     int64 `json:"rss_bytes"`
	RSSAnon int64 `json:"rss_anon_bytes"`
	HWM     int64 `json:"rss_peak_bytes"`
	Threads int64 `json:"threads"`
}

func readMem(pid int) (memSample, error) {
	path := fmt.Sprintf("/proc/%d/status", pid)
	rss, ok := procField(path, "VmRSS")
	if !ok {
		return memSample{}, fmt.Errorf("no VmRSS in %s", path)
	}
	anon, _ := procField(path, "RssAnon")
	hwm, _ := procField(path, "VmHWM")
	threads, _ := procField(path, "Threads")
	return memSample{RSS: rss * 1024, RSSAnon: anon * 1024, HWM: hwm * 1024, Threads: threads}, nil
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat;
// it is 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuTime is the user+system CPU time a process has used so far.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after it are plain.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter measures the CPU used by the gateway (when its pid is known)
// and by this tool over a window.
type cpuMeter struct {
	pid      int
	start    time.Time
	gw, self time.Duration
	gwOK     bool
}

func startCPU(pid int) *cpuMeter {
	m := &cpuMeter{pid: pid, start: time.Now(), self: selfCPU()}
	if pid > 0 {
		if d, err := cpuTime(pid); err == nil {
			m.gw, m.gwOK = d, true
		}
	}
	return m
}

// cpuUse is CPU time over a window, in cores (1.0 = one core busy).
type cpuUse struct {
	GatewayCores float64 `json:"gateway_cores,omitempty"`
	ToolCores    float64 `json:"tool_cores"`
	gatewayCPU   time.Duration
}

func (m *cpuMeter) stop() cpuUse {
	wall := time.Since(m.start).Seconds()
	u := cpuUse{ToolCores: (selfCPU() - m.self).Seconds() / wall}
	if m.gwOK {
		if d, err := cpuTime(m.pid); err == nil {
			u.gatewayCPU = d - m.gw
			u.GatewayCores = u.gatewayCPU.Seconds() / wall
		}
	}
	return u
}
