package httpapi_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/metrics/metricstest"
	"github.com/jobwire/jobwire/internal/natsconn"
	"github.com/jobwire/jobwire/internal/testsys"
)

// gatewayMetrics gathers the gateway's figures.
func gatewayMetrics(t *testing.T, sys *testsys.System) metricstest.Families {
	t.Helper()
	return metricstest.Gather(t, sys.GW.Metrics())
}

// waitMetrics polls the gateway's figures until ok holds (they move just
// after what a client sees).
func waitMetrics(t *testing.T, sys *testsys.System, what string, ok func(metricstest.Families) (bool, string)) metricstest.Families {
	t.Helper()
	deadline := time.Now().Add(eventWait)
	for {
		m := gatewayMetrics(t, sys)
		done, state := ok(m)
		if done {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %s", what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The gateway's figures follow its clients: submissions by outcome,
// requests by route pattern, an open WebSocket and its watch, the events
// it delivered and how late, an SSE replay. No label value is a job id.
func TestGatewayMetricsFollowClients(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	ids := map[string]string{}

	// Submissions: accepted, replayed by Idempotency-Key, rejected.
	first := sys.Submit(t, "demo", `{"steps":1}`)
	ids["first"] = first.ID
	key := map[string]string{"Idempotency-Key": "k1"}
	for range 2 {
		if r := sys.Do(t, "POST", "/api/jobs", "application/json", `{"type":"demo","input":{"steps":1}}`, key, nil); r.StatusCode != http.StatusAccepted {
			t.Fatalf("submit with a key: %d", r.StatusCode)
		}
	}
	sys.Do(t, "POST", "/api/jobs", "application/json", `{"type":"demo","input":{"steps":2}}`, map[string]string{"Idempotency-Key": "k2"}, nil)
	for _, tc := range []struct{ body, key string }{
		{`{"type":"nosuch"}`, ""},
		{`{"type":"demo","input":{"steps":-1}}`, ""},
		{`{"type":"demo","input":{"steps":"x"}}`, ""},
		{`{"type":"demo","input":{"steps":1}}`, "k2"}, // the key of another body
	} {
		h := map[string]string{}
		if tc.key != "" {
			h["Idempotency-Key"] = tc.key
		}
		if r := sys.Do(t, "POST", "/api/jobs", "application/json", tc.body, h, nil); r.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("submit %s: %d, want 422", tc.body, r.StatusCode)
		}
	}

	// A WebSocket watching a job live, to its end.
	ws := dialWS(t, sys)
	snap := sys.Submit(t, "demo", `{"steps":5,"step_ms":20}`)
	ids["watched"] = snap.ID
	ws.send(`{"op":"watch","job_id":"` + snap.ID + `"}`)
	evs := ws.readUntilTerminal(snap.ID)
	m := waitMetrics(t, sys, "the watcher's figures", func(m metricstest.Families) (bool, string) {
		conns, watches, subs := m.Value("jobwire_gateway_connections", "transport", "websocket"), m.Value("jobwire_gateway_watches"), m.Value("jobwire_gateway_subscriptions")
		delivered := m.Value("jobwire_gateway_events_delivered_total")
		return conns == 1 && watches == 1 && subs == 1 && delivered >= float64(len(evs)),
			fmt.Sprintf("websockets %v, watches %v, subscriptions %v, delivered %v of %d", conns, watches, subs, delivered, len(evs))
	})
	// Every event but the first snapshot came live, and had its delay measured.
	if n := m.Value("jobwire_gateway_delivery_latency_seconds"); n < float64(len(evs)-1) {
		t.Errorf("%v delivery latencies observed for %d live events", n, len(evs)-1)
	}
	if s, n := m.Sum("jobwire_gateway_delivery_latency_seconds"), m.Value("jobwire_gateway_delivery_latency_seconds"); s <= 0 || s/n > 5 {
		t.Errorf("delivery latency: %v s over %v events", s, n)
	}
	if n := m.Value("jobwire_gateway_events_received_total"); n < float64(len(evs)-1) {
		t.Errorf("%v events received from NATS, the watcher got %d", n, len(evs))
	}

	// An SSE stream that resumes from seq 0: a replay of the whole job.
	msgs := readSSE(t, sys, "/api/jobs/"+snap.ID+"/events?after_seq=0", nil)
	ws.c.CloseNow()

	m = waitMetrics(t, sys, "the sessions to end", func(m metricstest.Families) (bool, string) {
		conns, watches := m.Value("jobwire_gateway_connections"), m.Value("jobwire_gateway_watches")
		closed := m.Value("jobwire_gateway_sessions_closed_total", "reason", "client")
		return conns == 0 && watches == 0 && closed == 2, fmt.Sprintf("connections %v, watches %v, sessions closed by the client %v", conns, watches, closed)
	})
	want := []struct {
		name   string
		labels []string
		value  float64
	}{
		{"jobwire_gateway_submissions_total", []string{"type", "demo", "outcome", "accepted"}, 4},
		{"jobwire_gateway_submissions_total", []string{"type", "demo", "outcome", "replayed"}, 1},
		{"jobwire_gateway_submissions_total", []string{"type", "unknown", "outcome", "rejected", "reason", "unknown_type"}, 1},
		{"jobwire_gateway_submissions_total", []string{"type", "demo", "outcome", "rejected", "reason", "invalid_input"}, 2},
		{"jobwire_gateway_submissions_total", []string{"type", "demo", "outcome", "rejected", "reason", "idempotency_key_reused"}, 1},
		{"jobwire_gateway_replay_events", []string{"reason", "resume"}, 1}, // one replay…
		{"jobwire_gateway_http_requests_total", []string{"route", "/api/jobs", "method", "POST", "code", "202"}, 5},
		{"jobwire_gateway_http_requests_total", []string{"route", "/api/jobs", "method", "POST", "code", "422"}, 4},
		{"jobwire_gateway_http_requests_total", []string{"route", "/ws", "method", "GET", "code", "101"}, 1},
		{"jobwire_gateway_http_requests_total", []string{"route", "/api/jobs/{id}/events", "method", "GET", "code", "200"}, 1},
		{"jobwire_gateway_events_delivered_total", nil, float64(len(evs) + len(msgs))},
		{"jobwire_gateway_http_request_duration_seconds", []string{"route", "/api/jobs", "method", "POST"}, 9},
		{"jobwire_gateway_http_request_duration_seconds", []string{"route", "/ws"}, 0}, // streams are left out
		{"jobwire_gateway_http_request_duration_seconds", []string{"route", "/api/jobs/{id}/events"}, 0},
	}
	for _, w := range want {
		if v := m.Value(w.name, w.labels...); v != w.value {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, v, w.value)
		}
	}
	if s := m.Sum("jobwire_gateway_replay_events", "reason", "resume"); int(s) != len(msgs) { // …of the whole history
		t.Errorf("the replay queued %v events, want the %d the stream sent", s, len(msgs))
	}

	// Requests are counted by route pattern: never a path with an id in it.
	sys.Get(t, snap.ID)
	sys.Get(t, first.ID)
	sys.Call(t, "GET", "/no/such/"+snap.ID, "", "", nil)
	sys.Call(t, "GET", "/api/no/such/"+snap.ID, "", "", nil)
	m = gatewayMetrics(t, sys)
	if v := m.Value("jobwire_gateway_http_requests_total", "route", "/api/jobs/{id}", "method", "GET", "code", "200"); v < 2 {
		t.Errorf("GET /api/jobs/{id}: %v requests counted, want at least 2", v)
	}
	for _, lv := range m.LabelValues() {
		for _, id := range ids {
			if strings.Contains(lv, id) {
				t.Errorf("label value %s holds a job id", lv)
			}
		}
	}
	for _, route := range labelValuesOf(m, "jobwire_gateway_http_requests_total", "route") {
		if route != "unmatched" && !strings.HasPrefix(route, "/") {
			t.Errorf("route label %q is not a pattern of routes.go", route)
		}
	}
	if routes := labelValuesOf(m, "jobwire_gateway_http_requests_total", "route"); !slices.Contains(routes, "unmatched") || !slices.Contains(routes, "/api/*") {
		t.Errorf("routes counted: %v, want unmatched paths as \"unmatched\" and \"/api/*\"", routes)
	}
	// The queue figure reads the stream: every registered type, 0 waiting.
	if !m.Has("jobwire_gateway_queue_newest_waiting_age_seconds", "type", "demo") {
		t.Errorf("no jobwire_gateway_queue_newest_waiting_age_seconds for type demo")
	}
}

// labelValuesOf lists the values label takes in metric name.
func labelValuesOf(m metricstest.Families, name, label string) []string {
	var out []string
	prefix := name + "{" + label + "}="
	for _, lv := range m.LabelValues() {
		if v, ok := strings.CutPrefix(lv, prefix); ok {
			out = append(out, v)
		}
	}
	return out
}

// A job that waits in the queue shows in the gateway's per-type age of
// the newest waiting job, also for a type no runner serves.
func TestGatewayShowsTheNewestWaitingJobPerType(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner())
	waitMetrics(t, sys, "nothing waits yet", func(m metricstest.Families) (bool, string) {
		n := m.Value("jobwire_gateway_queue_newest_waiting_age_seconds", "type", "demo")
		return m.Has("jobwire_gateway_queue_newest_waiting_age_seconds", "type", "demo") && n == 0, fmt.Sprint(n)
	})
	for range 3 {
		sys.Submit(t, "demo", `{"steps":1}`)
	}
	waitMetrics(t, sys, "the newest demo job waits", func(m metricstest.Families) (bool, string) {
		n := m.Value("jobwire_gateway_queue_newest_waiting_age_seconds", "type", "demo")
		return n > 0, fmt.Sprint(n)
	})
}

// Every jobwire_ metric the gateway and a runner register, with or
// without a series yet, is in docs/operations.md with its labels, and
// the document lists nothing else. (TestMetricsAfterRealJobs checks the
// same against a real scrape, and the metric types.)
func TestOperationsDocListsEveryMetric(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	registered := metricstest.Described(sys.GW.Metrics(), sys.Runners[0].Metrics(), natsconn.Metrics(sys.NC, "gateway"))
	documented := metricstest.Documented(t, "../../../docs/operations.md")
	for name, labels := range registered {
		d, ok := documented[name]
		switch {
		case !ok:
			t.Errorf("%s is registered but not in docs/operations.md", name)
		case !slices.Equal(d.Labels, labels):
			t.Errorf("docs/operations.md gives %s the labels %v; it has %v", name, d.Labels, labels)
		}
	}
	for name := range documented {
		if _, ok := registered[name]; !ok {
			t.Errorf("docs/operations.md lists %s, which nothing registers", name)
		}
	}
}
