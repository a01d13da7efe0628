package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jobwire/jobwire/internal/metrics/metricstest"
	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/services/gateway/httpapi"
	"github.com/jobwire/jobwire/shared/jobs"
)

// cookieless sends one request as a caller who keeps no cookie, and
// returns the status, the error code and Retry-After.
func cookieless(t *testing.T, sys *testsys.System, method, path, body string, header map[string]string) (int, string, string) {
	t.Helper()
	var e struct{ Error jobs.Error }
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	resp := sys.As("").Do(t, method, path, ct, body, header, &e)
	return resp.StatusCode, e.Error.Code, resp.Header.Get("Retry-After")
}

const demoJob = `{"type":"demo","input":{"steps":1}}`

// The issue: with SUBMIT_RATE=600, 700 cookieless POSTs all got 202, each
// as a new anonymous owner. Now the anonymous sessions of one address
// share ADDR_SUBMIT_RATE.
func TestCookielessSubmissionsAreLimitedPerAddress(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner(), testsys.WithConfig(func(c *httpapi.Config) { c.SubmitRate, c.AddrSubmitRate = 600, 5 }))
	for i := range 5 {
		if code, _, _ := cookieless(t, sys, "POST", "/api/jobs", demoJob, nil); code != http.StatusAccepted {
			t.Fatalf("cookieless submission %d: %d", i+1, code)
		}
	}
	if code, errCode, retry := cookieless(t, sys, "POST", "/api/jobs", demoJob, nil); code != 429 || errCode != "rate_limited" || retry == "" {
		t.Fatalf("6th cookieless submission: %d %s Retry-After=%q, want 429 rate_limited with Retry-After", code, errCode, retry)
	}
	if n := gatewayMetrics(t, sys).Value("jobwire_gateway_rate_limited_total", "limit", "submit_address"); n != 1 {
		t.Errorf("submissions refused per address: %v counted, want 1", n)
	}
	// A bearer token is limited per owner only.
	sys.As(testsys.Token(t, "bob", false, time.Hour)).Submit(t, "demo", `{"steps":1}`)
}

// Creating anonymous sessions is rate limited per client address; a
// caller who keeps its cookie, and a token, are not affected.
func TestNewSessionsAreRateLimitedPerAddress(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner(), testsys.WithConfig(func(c *httpapi.Config) { c.NewSessionRate = 3 }))
	kept := sys.As("")
	if r := kept.Do(t, "GET", "/api/jobs", "", "", nil, nil); r.StatusCode != 200 {
		t.Fatalf("first session: %d", r.StatusCode)
	}
	for range 2 {
		if code, _, _ := cookieless(t, sys, "GET", "/api/jobs", "", nil); code != 200 {
			t.Fatalf("new session within the rate: %d", code)
		}
	}
	code, errCode, retry := cookieless(t, sys, "GET", "/api/jobs", "", nil)
	if code != 429 || errCode != "too_many_sessions" || retry == "" {
		t.Fatalf("4th new session in a minute: %d %s Retry-After=%q", code, errCode, retry)
	}
	// X-Forwarded-For from an untrusted peer changes nothing.
	if code, _, _ := cookieless(t, sys, "GET", "/api/jobs", "", map[string]string{"X-Forwarded-For": "198.51.100.9"}); code != 429 {
		t.Fatalf("a made-up X-Forwarded-For got a new budget: %d", code)
	}
	if r := kept.Do(t, "GET", "/api/jobs", "", "", nil, nil); r.StatusCode != 200 {
		t.Fatalf("a kept session: %d", r.StatusCode)
	}
	if r := sys.As(testsys.Token(t, "bob", false, time.Hour)).Do(t, "GET", "/api/jobs", "", "", nil, nil); r.StatusCode != 200 {
		t.Fatalf("a token: %d", r.StatusCode)
	}
	if n := gatewayMetrics(t, sys).Value("jobwire_gateway_rate_limited_total", "limit", "new_session"); n != 2 {
		t.Errorf("new sessions refused: %v counted, want 2", n)
	}
}

// Behind a trusted proxy, the forwarded address counts: IPv4 addresses
// one by one, IPv6 per /64.
func TestTrustedProxyForwardsTheClientAddress(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner(), testsys.WithConfig(func(c *httpapi.Config) {
		c.NewSessionRate = 1
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	}))
	for _, c := range []struct {
		header, value string
		want          int
	}{
		{"X-Forwarded-For", "203.0.113.7", 200},
		{"X-Forwarded-For", "203.0.113.7", 429},
		{"X-Forwarded-For", "203.0.113.8, 127.0.0.1", 200},    // a second trusted hop is skipped
		{"X-Forwarded-For", "203.0.113.7, 203.0.113.99", 200}, // the nearest untrusted hop counts
		{"Forwarded", `for="[2001:db8:1:2::1]:4711";proto=https`, 200},
		{"Forwarded", `for="[2001:db8:1:2::ffff]"`, 429}, // same /64
		{"Forwarded", `For="[2001:db8:1:3::1]"`, 200},    // another /64
	} {
		if code, _, _ := cookieless(t, sys, "GET", "/api/jobs", "", map[string]string{c.header: c.value}); code != c.want {
			t.Errorf("%s: %s → %d, want %d", c.header, c.value, code, c.want)
		}
	}
}

// dialStatus opens a WebSocket as a caller without cookies (plus header)
// and returns the HTTP status of the refusal, or 101.
func dialStatus(t *testing.T, sys *testsys.System, header http.Header) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(sys.URL, "http")+"/ws", &websocket.DialOptions{HTTPClient: &http.Client{}, HTTPHeader: header})
	if err == nil {
		t.Cleanup(func() { _ = c.CloseNow() })
		return http.StatusSwitchingProtocols, ""
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// The issue: 1,000 cookieless WebSockets were all accepted. Now the
// anonymous sessions of one address share ADDR_MAX_CONNS, and the whole
// gateway has MAX_CONNS.
func TestCookielessWebSocketsAreLimitedPerAddress(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner(), testsys.WithConfig(func(c *httpapi.Config) { c.AddrMaxConns, c.MaxConns = 3, 5 }))
	for i := range 3 {
		if code, _ := dialStatus(t, sys, nil); code != http.StatusSwitchingProtocols {
			t.Fatalf("cookieless WebSocket %d: %d", i+1, code)
		}
	}
	if code, retry := dialStatus(t, sys, nil); code != 429 || retry == "" {
		t.Fatalf("4th cookieless WebSocket: %d Retry-After=%q, want 429 with Retry-After", code, retry)
	}
	// Tokens are not limited per address, but by the whole gateway's cap.
	bob := http.Header{"Authorization": {"Bearer " + testsys.Token(t, "bob", false, time.Hour)}}
	for i := range 2 {
		if code, _ := dialStatus(t, sys, bob); code != http.StatusSwitchingProtocols {
			t.Fatalf("bob's WebSocket %d: %d", i+1, code)
		}
	}
	if code, retry := dialStatus(t, sys, bob); code != 429 || retry == "" {
		t.Fatalf("a WebSocket past MAX_CONNS: %d Retry-After=%q", code, retry)
	}
	// The server counts a socket once its handler runs, just after the
	// client has its 101: wait (bounded) for the figures.
	waitMetrics(t, sys, "1 refused per address, 1 for the gateway, 5 open", func(m metricstest.Families) (bool, string) {
		a, g, c := m.Value("jobwire_gateway_rate_limited_total", "limit", "connections_address"), m.Value("jobwire_gateway_rate_limited_total", "limit", "connections_gateway"),
			m.Value("jobwire_gateway_connections", "transport", "websocket")
		return a == 1 && g == 1 && c == 5, fmt.Sprintf("refused per address %v, for the gateway %v, open %v", a, g, c)
	})
	snap := sys.As(testsys.Token(t, "bob", false, time.Hour)).Submit(t, "demo", `{"steps":1}`)
	var e struct{ Error jobs.Error }
	r := sys.As(testsys.Token(t, "bob", false, time.Hour)).Do(t, "GET", "/api/jobs/"+snap.ID+"/events", "", "", nil, &e)
	if r.StatusCode != 429 || e.Error.Code != "too_many_connections" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("an SSE stream past MAX_CONNS: %d %+v", r.StatusCode, e)
	}
}
