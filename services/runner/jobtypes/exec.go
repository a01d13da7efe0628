package jobtypes

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jobwire/jobwire/services/runner/worker"
	"github.com/jobwire/jobwire/shared/jobs"
)

// ExecConfig is the operator's file of commands that run as jobs (EXEC_CONFIG).
// No shell is involved: the program is started directly, and each input
// value becomes one whole argument or one environment variable.
type ExecConfig struct {
	Types map[string]ExecType `json:"types"`
}

// ExecType is one command, runnable as a job type.
type ExecType struct {
	Description string `json:"description"`
	// Program is an absolute path, or a path relative to the config file.
	Program string `json:"program"`
	// Args are passed as separate arguments. An argument that is exactly
	// "{name}" is replaced by input field name (and left out when the
	// field is absent); "{name}" inside a longer argument is replaced in
	// place. Nothing else is interpreted.
	Args []string `json:"args"`
	// Input declares the accepted input fields; any other field is refused.
	Input map[string]ExecField `json:"input"`
	// Env sets environment variables from templates like Args.
	Env map[string]string `json:"env"`
	// EnvAllow names variables of the runner's own environment to pass on
	// (nothing else is inherited).
	EnvAllow []string `json:"env_allow"`
	// Timeout is the longest one attempt may run ("10m"; default: none).
	Timeout string `json:"timeout"`
	// KillGrace is how long the process group gets between SIGTERM and
	// SIGKILL on cancel or timeout (default 5s).
	KillGrace string `json:"kill_grace"`
	// MaxAttempts is how often a failing command is run (default 1: a
	// script is not retried unless the operator says it is safe).
	MaxAttempts int `json:"max_attempts"`
}

// ExecField is one accepted input field.
type ExecField struct {
	Type      string   `json:"type"` // "string", "integer", "number" or "boolean"
	Required  bool     `json:"required"`
	Default   any      `json:"default,omitempty"`
	Pattern   string   `json:"pattern,omitempty"`    // strings: a regular expression the whole value must match
	MaxLength int      `json:"max_length,omitempty"` // strings (default 1024)
	Min       *float64 `json:"min,omitempty"`        // numbers
	Max       *float64 `json:"max,omitempty"`        // numbers
	Enum      []string `json:"enum,omitempty"`       // strings: the allowed values
}

const (
	defaultKillGrace    = 5 * time.Second
	defaultFieldLength  = 1024
	stderrTailLines     = 20
	maxExecLineBytes    = 64 << 10
	execProtocolPrefix  = "::"
	resultFileEnvName   = "JOBWIRE_RESULT_FILE"
	execJobIDEnvName    = "JOBWIRE_JOB_ID"
	execAttemptEnvName  = "JOBWIRE_ATTEMPT"
	execTemplateMissing = "\x00missing"
)

var templateRef = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// LoadExec reads an exec configuration file and returns its job types.
// Every problem in the file is reported.
func LoadExec(path string, getenv func(string) string) ([]worker.JobType, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("exec config: %w", err)
	}
	var cfg ExecConfig
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("exec config %s: %w", path, err)
	}
	var types []worker.JobType
	var errs []error
	for name, et := range cfg.Types {
		jt, err := et.jobType(name, filepath.Dir(path), getenv)
		if err != nil {
			errs = append(errs, fmt.Errorf("exec config %s: type %s: %w", path, name, err))
			continue
		}
		types = append(types, jt)
	}
	if len(cfg.Types) == 0 {
		errs = append(errs, fmt.Errorf("exec config %s: no types", path))
	}
	return types, errors.Join(errs...)
}

// execSpec is an ExecType checked and ready to run.
type execSpec struct {
	ExecType
	program   string
	killGrace time.Duration
	patterns  map[string]*regexp.Regexp
	getenv    func(string) string
}

func (et ExecType) jobType(name, dir string, getenv func(string) string) (worker.JobType, error) {
	var errs []error
	spec := &execSpec{ExecType: et, killGrace: defaultKillGrace, patterns: map[string]*regexp.Regexp{}, getenv: getenv}
	if err := jobs.ValidateType(name); err != nil {
		errs = append(errs, err)
	}
	spec.program = et.Program
	if spec.program != "" && !filepath.IsAbs(spec.program) {
		spec.program = filepath.Join(dir, spec.program)
	}
	if abs, err := filepath.Abs(spec.program); err == nil {
		spec.program = abs // the program runs in a fresh working directory
	}
	if st, err := os.Stat(spec.program); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		errs = append(errs, fmt.Errorf("program %q is not an executable file", et.Program))
	}
	var timeout time.Duration
	if et.Timeout != "" {
		d, err := time.ParseDuration(et.Timeout)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("timeout %q is not a positive duration", et.Timeout))
		}
		timeout = d
	}
	if et.KillGrace != "" {
		d, err := time.ParseDuration(et.KillGrace)
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("kill_grace %q is not a duration", et.KillGrace))
		}
		spec.killGrace = d
	}
	for fname, f := range et.Input {
		switch f.Type {
		case "string", "integer", "number", "boolean":
		default:
			errs = append(errs, fmt.Errorf("input %s: type must be string, integer, number or boolean", fname))
		}
		if f.Pattern != "" {
			re, err := regexp.Compile("^(?:" + f.Pattern + ")$")
			if err != nil {
				errs = append(errs, fmt.Errorf("input %s: pattern: %w", fname, err))
			}
			spec.patterns[fname] = re
		}
	}
	templates := slices.Concat(et.Args, slices.Collect(maps.Values(et.Env)))
	for _, tmpl := range templates {
		for _, m := range templateRef.FindAllStringSubmatch(tmpl, -1) {
			if _, ok := et.Input[m[1]]; !ok {
				errs = append(errs, fmt.Errorf("template %q names input %q, which is not declared", tmpl, m[1]))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return worker.JobType{}, err
	}
	return worker.JobType{
		Name:         name,
		Description:  et.Description,
		InputSchema:  et.schema(),
		ExampleInput: et.example(),
		Timeout:      timeout,
		Retry:        worker.RetryPolicy{MaxAttempts: max(et.MaxAttempts, 1)},
		Handler:      spec.run,
	}, nil
}

// schema is the JSON Schema the gateway checks inputs against.
func (et ExecType) schema() string {
	props := map[string]any{}
	var required []string
	for name, f := range et.Input {
		p := map[string]any{"type": f.Type}
		switch f.Type {
		case "string":
			p["maxLength"] = cmp.Or(f.MaxLength, defaultFieldLength)
			if f.Pattern != "" {
				p["pattern"] = "^(?:" + f.Pattern + ")$"
			}
			if len(f.Enum) > 0 {
				p["enum"] = f.Enum
			}
		case "integer", "number":
			if f.Min != nil {
				p["minimum"] = *f.Min
			}
			if f.Max != nil {
				p["maximum"] = *f.Max
			}
		}
		props[name] = p
		if f.Required {
			required = append(required, name)
		}
	}
	s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		s["required"] = required
	}
	b, _ := json.Marshal(s)
	return string(b)
}

func (et ExecType) example() map[string]any {
	ex := map[string]any{}
	for name, f := range et.Input {
		if f.Default != nil {
			ex[name] = f.Default
		}
	}
	return ex
}

// values checks the input (again: the gateway did already) and returns
// each field's value as the text passed to the program.
func (s *execSpec) values(input json.RawMessage) (map[string]string, error) {
	raw := map[string]json.RawMessage{}
	if len(input) > 0 && string(input) != "null" {
		if err := json.Unmarshal(input, &raw); err != nil {
			return nil, worker.Permanent("invalid_input", "input must be a JSON object")
		}
	}
	out := map[string]string{}
	for name := range raw {
		if _, ok := s.Input[name]; !ok {
			return nil, worker.Permanent("invalid_input", fmt.Sprintf("input field %q is not accepted", name))
		}
	}
	for name, f := range s.Input {
		v, ok := raw[name]
		if !ok && f.Default != nil {
			v, _ = json.Marshal(f.Default)
			ok = true
		}
		if !ok {
			if f.Required {
				return nil, worker.Permanent("invalid_input", fmt.Sprintf("input field %q is required", name))
			}
			continue
		}
		text, err := fieldText(f, v)
		if err == nil && f.Type == "string" && s.patterns[name] != nil && !s.patterns[name].MatchString(text) {
			err = errors.New("does not match the allowed pattern")
		}
		if err != nil {
			return nil, worker.Permanent("invalid_input", fmt.Sprintf("input field %q: %v", name, err))
		}
		out[name] = text
	}
	return out, nil
}

func fieldText(f ExecField, v json.RawMessage) (string, error) {
	switch f.Type {
	case "string":
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", errors.New("must be a string")
		}
		if len(s) > cmp.Or(f.MaxLength, defaultFieldLength) || strings.ContainsRune(s, 0) {
			return "", errors.New("is too long or contains NUL")
		}
		if len(f.Enum) > 0 && !slices.Contains(f.Enum, s) {
			return "", fmt.Errorf("must be one of %v", f.Enum)
		}
		return s, nil
	case "boolean":
		var b bool
		if err := json.Unmarshal(v, &b); err != nil {
			return "", errors.New("must be true or false")
		}
		return strconv.FormatBool(b), nil
	default:
		var n float64
		if err := json.Unmarshal(v, &n); err != nil {
			return "", errors.New("must be a number")
		}
		if f.Type == "integer" && n != float64(int64(n)) {
			return "", errors.New("must be a whole number")
		}
		if (f.Min != nil && n < *f.Min) || (f.Max != nil && n > *f.Max) {
			return "", errors.New("is out of range")
		}
		return strconv.FormatFloat(n, 'f', -1, 64), nil
	}
}

// expand fills a template; a template that is exactly one missing field
// yields execTemplateMissing.
func expand(tmpl string, vals map[string]string) string {
	if m := templateRef.FindStringSubmatch(tmpl); m != nil && m[0] == tmpl {
		if v, ok := vals[m[1]]; ok {
			return v
		}
		return execTemplateMissing
	}
	return templateRef.ReplaceAllStringFunc(tmpl, func(ref string) string {
		return vals[ref[1:len(ref)-1]]
	})
}

// run is the handler of an exec type.
func (s *execSpec) run(ctx context.Context, job *worker.Job) (any, error) {
	vals, err := s.values(job.Input)
	if err != nil {
		return nil, err
	}
	var args []string
	for _, a := range s.Args {
		if v := expand(a, vals); v != execTemplateMissing {
			args = append(args, v)
		}
	}
	dir, err := os.MkdirTemp("", "jobwire-exec-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	resultFile := filepath.Join(dir, ".jobwire-result.json")

	cmd := exec.Command(s.program, args...)
	cmd.Dir = dir
	cmd.Env = []string{
		execJobIDEnvName + "=" + job.ID,
		execAttemptEnvName + "=" + strconv.Itoa(job.Attempt),
		resultFileEnvName + "=" + resultFile,
	}
	for _, k := range s.EnvAllow {
		if v := s.getenv(k); v != "" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	for k, tmpl := range s.Env {
		if v := expand(tmpl, vals); v != execTemplateMissing {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its own group, killed as a whole
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, worker.Permanent("exec_failed", fmt.Sprintf("cannot start %s: %v", filepath.Base(s.program), err))
	}
	stopKiller := s.killOnDone(ctx, cmd.Process.Pid)

	var result json.RawMessage
	tail := &lineTail{max: stderrTailLines}
	var wg sync.WaitGroup
	wg.Go(func() { result = readProtocol(stdout, job.Progress) })
	wg.Go(func() {
		scanLines(stderr, func(line string) {
			tail.add(line)
			job.Progress.Log(line)
		})
	})
	wg.Wait()
	waitErr := cmd.Wait()
	stopKiller()

	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	if waitErr != nil {
		var exit *exec.ExitError
		if errors.As(waitErr, &exit) {
			return nil, &jobs.Error{Code: "exit_status", Message: fmt.Sprintf("%s exited with %s%s", filepath.Base(s.program), exit.ProcessState, tail.text())}
		}
		return nil, waitErr
	}
	if b, err := os.ReadFile(resultFile); err == nil && len(bytes.TrimSpace(b)) > 0 {
		if !json.Valid(b) {
			return nil, worker.Permanent("bad_result", "the result file is not valid JSON")
		}
		result = bytes.TrimSpace(b)
	}
	if result == nil {
		return nil, nil
	}
	return result, nil
}

// killOnDone stops the whole process group when ctx ends: SIGTERM, then
// SIGKILL after the grace period. The returned function ends the watch.
func (s *execSpec) killOnDone(ctx context.Context, pid int) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		t := time.NewTimer(s.killGrace)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
		}
		// Also after a clean exit of the leader: children it left behind die.
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}()
	return func() { close(done); <-finished }
}

// readProtocol turns the program's stdout into progress: lines starting
// with "::" are commands, every other line is a log line. It returns the
// value of the last "::result" line.
//
//	::progress <percent> [message]
//	::count <current> <total>
//	::stage <text>
//	::message <text>
//	::result <json>
func readProtocol(r io.Reader, p *worker.Progress) (result json.RawMessage) {
	scanLines(r, func(line string) {
		cmd, ok := strings.CutPrefix(line, execProtocolPrefix)
		if !ok {
			p.Log(line)
			return
		}
		verb, rest, _ := strings.Cut(cmd, " ")
		rest = strings.TrimSpace(rest)
		switch verb {
		case "progress":
			pct, msg, _ := strings.Cut(rest, " ")
			if f, err := strconv.ParseFloat(pct, 64); err == nil {
				p.Percent(f)
				if msg = strings.TrimSpace(msg); msg != "" {
					p.Message(msg)
				}
				return
			}
		case "count":
			cur, tot, _ := strings.Cut(rest, " ")
			c, err1 := strconv.ParseInt(cur, 10, 64)
			t, err2 := strconv.ParseInt(strings.TrimSpace(tot), 10, 64)
			if err1 == nil && err2 == nil {
				p.Count(c, t)
				return
			}
		case "stage":
			p.Stage(rest)
			return
		case "message":
			p.Message(rest)
			return
		case "result":
			if json.Valid([]byte(rest)) {
				result = json.RawMessage(rest)
				return
			}
		}
		p.Log(line) // not a command we understand: keep it visible
	})
	return result
}

// scanLines calls f for each line of r (long lines are cut), then drains r.
func scanLines(r io.Reader, f func(string)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxExecLineBytes)
	for sc.Scan() {
		f(sc.Text())
	}
	_, _ = io.Copy(io.Discard, r)
}

// lineTail keeps the last lines written to it.
type lineTail struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func (t *lineTail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	if len(t.lines) > t.max {
		t.lines = t.lines[1:]
	}
}

func (t *lineTail) text() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 0 {
		return ""
	}
	return "; stderr: " + strings.Join(t.lines, "\n")
}
