package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jobwire/jobwire/internal/metrics/metricstest"
	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/shared/jobs"
	dto "github.com/prometheus/client_model/go"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

var metricsLine = regexp.MustCompile(`metrics server listening" addr=(\S+)`)

// execTypes are job types of the --dev runner for the metrics test: one
// that fails its first attempt and is retried, one that runs past its
// timeout.
const execTypes = `{"types": {
  "flaky":  {"description": "fails its first attempt", "program": "/bin/sh", "args": ["-c", "test \"$JOBWIRE_ATTEMPT\" -gt 1"], "max_attempts": 2},
  "sleepy": {"description": "runs past its timeout", "program": "/bin/sh", "args": ["-c", "exec /bin/sleep 30"], "timeout": "300ms", "kill_grace": "100ms"}
}}`

// TestMetricsAfterRealJobs runs the one-command mode with METRICS_ADDR
// (the gateway and its runner in one process, one /metrics), runs real
// jobs (a success, a failure, a retry, a timeout, a cancel, one watched
// over a WebSocket), scrapes /metrics and checks the counters and
// histograms moved as they should. On that scrape it also checks that no
// label value holds a job id, that docs/operations.md lists exactly the
// jobwire_ metrics, and that the dashboard and the alert rules only name
// metrics that exist.
func TestMetricsAfterRealJobs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	execConfig := filepath.Join(dir, "exec.json")
	if err := os.WriteFile(execConfig, []byte(execTypes), 0o600); err != nil {
		t.Fatal(err)
	}
	url, logs, stop := startDevWith(t, filepath.Join(dir, "data"), map[string]string{
		"METRICS_ADDR": "127.0.0.1:0", "EXEC_CONFIG": execConfig, "ACK_WAIT": "1s",
	})
	defer stop()
	m := metricsLine.FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no metrics address logged:\n%s", logs)
	}
	scrapeURL := "http://" + m[1] + "/metrics"
	sys := &testsys.System{URL: url}

	ids := map[string]string{}
	watched := sys.Submit(t, "demo", `{"steps":10,"step_ms":30}`)
	ids["watched"] = watched.ID
	wsEvents := watchOverWebSocket(t, sys, watched.ID)
	ids["ok"] = sys.Submit(t, "demo", `{"steps":2,"step_ms":1}`).ID
	ids["failed"] = sys.Submit(t, "demo", `{"steps":2,"step_ms":1,"fail_at_step":1}`).ID
	ids["flaky"] = sys.Submit(t, "flaky", `{}`).ID
	ids["sleepy"] = sys.Submit(t, "sleepy", `{}`).ID
	long := sys.Submit(t, "demo", `{"steps":10000,"step_ms":10}`)
	ids["canceled"] = long.ID
	sys.WaitFor(t, long.ID, "a heartbeat's worth of running", 20*time.Second, func(s jobs.Snapshot) bool { return s.Status == jobs.StatusRunning && s.Current >= 40 })
	if code, _ := sys.Cancel(t, long.ID, ""); code != http.StatusAccepted {
		t.Fatalf("cancel: %d", code)
	}
	if code, _ := sys.Call(t, "POST", "/api/jobs", "application/json", `{"type":"nosuch"}`, nil); code.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("unknown type: %d", code.StatusCode)
	}
	for name, status := range map[string]jobs.Status{"ok": jobs.StatusSucceeded, "failed": jobs.StatusFailed, "flaky": jobs.StatusSucceeded,
		"sleepy": jobs.StatusFailed, "canceled": jobs.StatusCanceled, "watched": jobs.StatusSucceeded} {
		sys.WaitStatus(t, ids[name], status, 30*time.Second)
	}
	if n := len(<-wsEvents); n < 2 {
		t.Fatalf("the WebSocket watcher got %d events", n)
	}

	want := []struct {
		name    string
		labels  []string
		value   float64 // exactly, or at least with atLeast
		atLeast bool
	}{
		{"jobwire_gateway_submissions_total", []string{"type", "demo", "outcome", "accepted"}, 4, false},
		{"jobwire_gateway_submissions_total", []string{"type", "flaky", "outcome", "accepted"}, 1, false},
		{"jobwire_gateway_submissions_total", []string{"type", "unknown", "outcome", "rejected", "reason", "unknown_type"}, 1, false},
		{"jobwire_gateway_http_requests_total", []string{"route", "/api/jobs", "method", "POST", "code", "202"}, 6, false},
		{"jobwire_gateway_http_requests_total", []string{"route", "/api/jobs/{id}/cancel", "method", "POST", "code", "202"}, 1, false},
		{"jobwire_gateway_http_requests_total", []string{"route", "/ws", "code", "101"}, 1, false},
		{"jobwire_gateway_http_request_duration_seconds", []string{"route", "/api/jobs/{id}"}, 1, true},
		{"jobwire_gateway_connections", []string{"transport", "websocket"}, 0, false},
		{"jobwire_gateway_sessions_closed_total", []string{"reason", "client"}, 1, false},
		{"jobwire_gateway_events_delivered_total", nil, 2, true},
		{"jobwire_gateway_events_received_total", nil, 1, true},
		{"jobwire_gateway_delivery_latency_seconds", nil, 1, true},
		{"jobwire_runner_jobs_started_total", []string{"type", "demo"}, 4, false},
		{"jobwire_runner_jobs_started_total", []string{"type", "flaky"}, 1, false},
		{"jobwire_runner_jobs_finished_total", []string{"type", "demo", "status", "succeeded"}, 2, false},
		{"jobwire_runner_jobs_finished_total", []string{"type", "demo", "status", "failed"}, 1, false},
		{"jobwire_runner_jobs_finished_total", []string{"type", "demo", "status", "canceled"}, 1, false},
		{"jobwire_runner_jobs_finished_total", []string{"type", "flaky", "status", "succeeded"}, 1, false},
		{"jobwire_runner_jobs_finished_total", []string{"type", "sleepy", "status", "failed"}, 1, false},
		{"jobwire_runner_attempts_total", []string{"type", "flaky", "outcome", "retried"}, 1, false},
		{"jobwire_runner_attempts_total", []string{"type", "flaky", "outcome", "succeeded"}, 1, false},
		{"jobwire_runner_timeouts_total", []string{"type", "sleepy"}, 1, false},
		{"jobwire_runner_cancels_total", []string{"type", "demo"}, 1, false},
		{"jobwire_runner_heartbeats_total", nil, 1, true},
		{"jobwire_runner_run_duration_seconds", []string{"type", "flaky"}, 2, false},
		{"jobwire_runner_run_duration_seconds", []string{"type", "demo"}, 4, false},
		{"jobwire_runner_queue_wait_seconds", []string{"type", "flaky"}, 1, false},
		{"jobwire_runner_jobs_running", nil, 0, false},
		{"jobwire_runner_queue_pending_jobs", []string{"type", "demo"}, 0, false},
		{"jobwire_runner_job_type_info", []string{"type", "sleepy"}, 1, false},
		{"jobwire_gateway_queue_newest_waiting_age_seconds", []string{"type", "flaky"}, 0, false},
		{"jobwire_nats_connected", []string{"connection", "gateway"}, 1, false},
		{"jobwire_nats_connected", []string{"connection", "runner"}, 1, false},
		{"jobwire_nats_reconnects_total", nil, 0, false},
	}
	var got metricstest.Families
	deadline := time.Now().Add(20 * time.Second)
	for {
		got = metricstest.Scrape(t, scrapeURL)
		var wrong []string
		for _, w := range want {
			v := got.Value(w.name, w.labels...)
			if !got.Has(w.name, w.labels...) || (w.atLeast && v < w.value) || (!w.atLeast && v != w.value) {
				wrong = append(wrong, fmt.Sprintf("%s%v = %v, want %v", w.name, w.labels, v, w.value))
			}
		}
		if len(wrong) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the jobs, the scrape shows:\n%s", strings.Join(wrong, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s := got.Sum("jobwire_runner_run_duration_seconds", "type", "sleepy"); s < 0.3 {
		t.Errorf("the sleepy job ran %vs by the histogram, want at least its 300ms timeout", s)
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_inuse_bytes", "process_resident_memory_bytes", "process_cpu_seconds_total"} {
		if !got.Has(name) {
			t.Errorf("no %s in the scrape", name)
		}
	}

	t.Run("no job id in any label", func(t *testing.T) {
		for _, lv := range got.LabelValues() {
			for _, id := range ids {
				if strings.Contains(lv, id) {
					t.Errorf("label value %s holds job id %s", lv, id)
				}
			}
		}
	})
	t.Run("docs list every metric", func(t *testing.T) {
		documented := metricstest.Documented(t, "../../docs/operations.md")
		for _, name := range got.Names("jobwire_") {
			d, ok := documented[name]
			if !ok {
				t.Errorf("%s is not in docs/operations.md", name)
				continue
			}
			if typ := strings.ToLower(got[name].GetType().String()); typ != d.Type {
				t.Errorf("docs/operations.md says %s is a %s; it is a %s", name, d.Type, typ)
			}
			if labels := labelNames(got[name]); !slices.Equal(labels, d.Labels) {
				t.Errorf("docs/operations.md gives %s the labels %v; it has %v", name, d.Labels, labels)
			}
		}
		for name := range documented {
			if got[name] == nil {
				t.Errorf("docs/operations.md lists %s; the scrape has no such metric", name)
			}
		}
	})
	t.Run("dashboard queries name scraped metrics", func(t *testing.T) {
		for _, q := range dashboardQueries(t) {
			checkNamesExist(t, "dashboard panel "+q.where, q.expr, got)
		}
	})
	t.Run("alert rules name scraped metrics", func(t *testing.T) {
		for _, r := range alertRules(t) {
			checkNamesExist(t, "alert "+r.Alert, r.Expr, got)
		}
	})
}

// watchOverWebSocket watches job id over /ws as sys's caller, on a
// goroutine of its own; the channel gets the events up to the job's end.
func watchOverWebSocket(t *testing.T, sys *testsys.System, id string) <-chan []jobs.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(sys.URL, "http")+"/ws", &websocket.DialOptions{HTTPClient: sys.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"op":"watch","job_id":"`+id+`"}`)); err != nil {
		t.Fatal(err)
	}
	out := make(chan []jobs.Event, 1)
	go func() {
		defer c.CloseNow()
		var evs []jobs.Event
		defer func() { out <- evs }()
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			var m struct {
				Event jobs.Event `json:"event"`
			}
			if json.Unmarshal(b, &m) != nil {
				return
			}
			evs = append(evs, m.Event)
			if m.Event.Status.Terminal() {
				_ = c.Close(websocket.StatusNormalClosure, "")
				return
			}
		}
	}()
	return out
}

// labelNames are the label names of a family's series, sorted, without
// the histogram's le.
func labelNames(f *dto.MetricFamily) []string {
	var out []string
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if !slices.Contains(out, l.GetName()) {
				out = append(out, l.GetName())
			}
		}
	}
	slices.Sort(out)
	return out
}

type query struct{ where, expr string }

// dashboard is the part of the Grafana dashboard the test reads.
type dashboard struct {
	Panels []struct {
		ID      int    `json:"id"`
		Type    string `json:"type"`
		Title   string `json:"title"`
		GridPos struct{ X, Y, W, H int }
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

const dashboardFile = "../../deploy/grafana/jobwire.json"

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// dashboardQueries are every PromQL expression of the dashboard: the
// panels' targets and the variables' label_values() queries.
func dashboardQueries(t *testing.T) []query {
	t.Helper()
	d := readDashboard(t)
	var out []query
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, query{fmt.Sprintf("%q %s", p.Title, tg.RefID), tg.Expr})
		}
	}
	for _, v := range d.Templating.List {
		if inner, ok := strings.CutPrefix(v.Definition, "label_values("); ok {
			metric, _, _ := strings.Cut(inner, ",")
			out = append(out, query{"variable " + v.Name, strings.TrimSpace(metric)})
		}
	}
	if len(out) < 20 {
		t.Fatalf("%s: only %d queries found", dashboardFile, len(out))
	}
	return out
}

type alertRule struct {
	Alert string `yaml:"alert"`
	Expr  string `yaml:"expr"`
}

func alertRules(t *testing.T) []alertRule {
	t.Helper()
	b, err := os.ReadFile("../../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	var out []alertRule
	for _, g := range file.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) < 4 {
		t.Fatalf("alerts.yml: %d rules", len(out))
	}
	return out
}

// checkNamesExist fails unless every metric expr names is in the scrape
// (a histogram's _bucket, _sum and _count series by the histogram).
func checkNamesExist(t *testing.T, where, expr string, scrape metricstest.Families) {
	t.Helper()
	names := metricNames(expr)
	if len(names) == 0 {
		t.Errorf("%s: no metric found in %q", where, expr)
	}
	for _, name := range names {
		if scrape[name] != nil {
			continue
		}
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if f := scrape[base]; base != name && f != nil && f.GetType() == dto.MetricType_HISTOGRAM {
			continue
		}
		t.Errorf("%s names %s, which no service exports (query %q)", where, name, expr)
	}
}

// promqlWords are PromQL's keywords and aggregation operators (which may
// stand before their "by (…)"): the words of an expression that are not
// metrics.
var promqlWords = []string{"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "inf", "nan",
	"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"}

// metricNames are the metric names a PromQL expression (with Grafana's
// $variables) selects: every identifier that is not in a string, a label
// matcher {…}, a range […], a grouping list (by (…), on (…) …), a
// function's name or a keyword.
func metricNames(expr string) []string {
	var names []string
	skipList := false // the next (…) lists labels
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(expr) && expr[j] != c {
				if expr[j] == '\\' {
					j++
				}
				j++
			}
			i = j + 1
		case c == '{' || c == '[':
			end := map[byte]byte{'{': '}', '[': ']'}[c]
			j := strings.IndexByte(expr[i:], end)
			if j < 0 {
				return append(names, "unbalanced "+string(c))
			}
			i += j + 1
		case c == '(' && skipList:
			j := strings.IndexByte(expr[i:], ')')
			if j < 0 {
				return append(names, "unbalanced (")
			}
			i += j + 1
			skipList = false
		case c == '$':
			j := i + 1
			for j < len(expr) && (isWordByte(expr[j])) {
				j++
			}
			i = j
		case isWordByte(c) && (c < '0' || c > '9'):
			j := i
			for j < len(expr) && (isWordByte(expr[j]) || expr[j] == ':') {
				j++
			}
			word := expr[i:j]
			k := j
			for k < len(expr) && expr[k] == ' ' {
				k++
			}
			call := k < len(expr) && expr[k] == '('
			switch {
			case slices.Contains([]string{"by", "without", "on", "ignoring", "group_left", "group_right"}, strings.ToLower(word)):
				skipList = true
			case slices.Contains(promqlWords, strings.ToLower(word)), call:
			default:
				if !slices.Contains(names, word) {
					names = append(names, word)
				}
			}
			i = j
		case c >= '0' && c <= '9':
			j := i
			for j < len(expr) && (isWordByte(expr[j]) || expr[j] == '.') {
				j++ // a number, or a duration like 5m
			}
			i = j
		default:
			i++
		}
	}
	return names
}

func isWordByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// The extraction of metric names from PromQL finds what it must and
// nothing else.
func TestMetricNamesOfPromQL(t *testing.T) {
	t.Parallel()
	for expr, want := range map[string][]string{
		`sum by (type) (rate(jobwire_runner_jobs_finished_total{status="failed",type=~"$type"}[$__rate_interval]))`:     {"jobwire_runner_jobs_finished_total"},
		`histogram_quantile(0.99, sum by (le, route) (rate(jobwire_gateway_http_request_duration_seconds_bucket[5m])))`: {"jobwire_gateway_http_request_duration_seconds_bucket"},
		`max by (type) (a_x) > 0 unless on (type) max by (type) (b_y)`:                                                  {"a_x", "b_y"},
		`process_resident_memory_bytes and on (instance, job) jobwire_nats_connected == 0`:                              {"process_resident_memory_bytes", "jobwire_nats_connected"},
		`sum(rate(x_total[15m])) > 1/60 and y offset 5m`:                                                                {"x_total", "y"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%q) = %q, want %q", expr, got, want)
		}
	}
}

// The dashboard is valid Grafana dashboard JSON: it passes a strict JSON
// Schema of the part of Grafana's dashboard model it uses, its panel ids
// are unique, and its panels sit on Grafana's 24-column grid without
// overlapping.
func TestDashboardIsValidGrafanaJSON(t *testing.T) {
	t.Parallel()
	c := jsonschema.NewCompiler()
	schema, err := c.Compile("../../deploy/grafana/dashboard.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := schema.Validate(doc); err != nil {
		t.Fatalf("%s does not fit the dashboard schema: %v", dashboardFile, err)
	}
	// The schema is strict: a misspelt property fails.
	bad := map[string]any{}
	b, _ := json.Marshal(doc)
	_ = json.Unmarshal(b, &bad)
	bad["panels"].([]any)[1].(map[string]any)["gridpos"] = map[string]any{"x": 0}
	if err := schema.Validate(bad); err == nil {
		t.Errorf("the schema accepts a panel with a misspelt gridPos")
	}

	d := readDashboard(t)
	seen := map[int]bool{}
	type cell struct{ x, y int }
	used := map[cell]string{}
	for _, p := range d.Panels {
		if seen[p.ID] {
			t.Errorf("panel id %d is used twice", p.ID)
		}
		seen[p.ID] = true
		g := p.GridPos
		if g.X+g.W > 24 {
			t.Errorf("panel %q spans columns %d-%d of 24", p.Title, g.X, g.X+g.W)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, taken := used[cell{x, y}]; taken {
					t.Fatalf("panels %q and %q overlap at column %d, row %d", other, p.Title, x, y)
				}
				used[cell{x, y}] = p.Title
			}
		}
	}
}
