package httpapi_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/jobwire/jobwire/internal/settings"
	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/services/gateway/httpapi"
	"github.com/jobwire/jobwire/shared/jobs"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Another caller's job answers exactly as an unknown one, on every path.
func TestOthersJobsAreInvisible(t *testing.T) {
	t.Parallel()
	alice := testsys.Start(t)
	snap := alice.Submit(t, "demo", `{"steps":1,"step_ms":0}`)
	alice.WaitStatus(t, snap.ID, jobs.StatusSucceeded, 20*time.Second)
	alice.WaitListed(t, snap.ID) // so that the lists below are the index's whole answer
	unknown := jobs.NewID(time.Now())

	for _, other := range []*testsys.System{alice.As(""), alice.As(testsys.Token(t, "bob", false, time.Hour))} {
		for _, id := range []string{snap.ID, unknown} {
			var e struct{ Error jobs.Error }
			if r := other.Do(t, "GET", "/api/jobs/"+id, "", "", nil, &e); r.StatusCode != 404 || e.Error.Message != "no job with id "+id {
				t.Errorf("GET %s as another caller: %d %+v", id, r.StatusCode, e)
			}
			if r := other.Do(t, "POST", "/api/jobs/"+id+"/cancel", "", "", nil, &e); r.StatusCode != 404 {
				t.Errorf("cancel as another caller: %d", r.StatusCode)
			}
			if r := other.Do(t, "GET", "/api/jobs/"+id+"/events", "", "", nil, &e); r.StatusCode != 404 {
				t.Errorf("SSE as another caller: %d", r.StatusCode)
			}
			if r := other.Do(t, "GET", "/jobs/"+id, "", "", nil, nil); r.StatusCode != 404 {
				t.Errorf("page as another caller: %d", r.StatusCode)
			}
		}
		ws := dialWS(t, other)
		ws.send(`{"op":"watch","job_id":"` + snap.ID + `"}`)
		if m := ws.read(); m.Op != "error" || m.Code != "not_found" {
			t.Errorf("watch as another caller: %+v", m)
		}
		var list struct{ Jobs []jobs.Snapshot }
		other.Do(t, "GET", "/api/jobs", "", "", nil, &list)
		if len(list.Jobs) != 0 {
			t.Errorf("another caller lists %d jobs", len(list.Jobs))
		}
	}
	// The owner and an admin see it.
	var list struct{ Jobs []jobs.Snapshot }
	alice.Do(t, "GET", "/api/jobs", "", "", nil, &list)
	if len(list.Jobs) != 1 {
		t.Errorf("the owner lists %d jobs", len(list.Jobs))
	}
	admin := alice.As(testsys.Token(t, "ops", true, time.Hour))
	if s, code := admin.Get(t, snap.ID); code != 200 || s.Status != jobs.StatusSucceeded {
		t.Errorf("admin GET: %d %+v", code, s)
	}
}

func TestBearerTokens(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	alice := sys.As(testsys.Token(t, "alice", false, time.Hour))
	snap := alice.Submit(t, "demo", `{"steps":1,"step_ms":0}`)
	if _, code := alice.Get(t, snap.ID); code != 200 {
		t.Fatalf("alice cannot read her job: %d", code)
	}
	// The same sub in another token is the same owner.
	if _, code := sys.As(testsys.Token(t, "alice", false, time.Minute)).Get(t, snap.ID); code != 200 {
		t.Fatalf("alice's second token: %d", code)
	}
	wrongKey := func() string {
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("some-other-secret-of-enough-length")}, nil)
		s, _ := jwt.Signed(signer).Claims(jwt.Claims{Subject: "alice", Expiry: jwt.NewNumericDate(time.Now().Add(time.Hour))}).Serialize()
		return s
	}()
	bad := map[string]string{
		"garbage":      "not-a-token",
		"wrong key":    wrongKey,
		"expired":      testsys.Token(t, "alice", false, -time.Hour),
		"alg none":     "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.",
		"not bearer":   "",
		"secret value": "SECRET-TOKEN-VALUE-123",
	}
	for name, tok := range bad {
		h := map[string]string{"Authorization": "Bearer " + tok}
		if name == "not bearer" {
			h["Authorization"] = "Basic YWxpY2U6cHc="
		}
		var e struct{ Error jobs.Error }
		r := sys.Do(t, "GET", "/api/jobs/"+snap.ID, "", "", h, &e)
		if r.StatusCode != 401 || e.Error.Code != "unauthenticated" || r.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: %d %+v", name, r.StatusCode, e)
		}
		if tok != "" && strings.Contains(e.Error.Message, tok) {
			t.Errorf("%s: the error repeats the token", name)
		}
	}
}

func TestJWKSTokens(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}
	b, _ := json.Marshal(set)
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	sys := testsys.Start(t, testsys.WithConfig(func(c *httpapi.Config) {
		c.JWTSecret, c.JWKSFile, c.AnonymousSessions, c.JWTIssuer = "", path, false, "https://idp.example"
	}))
	sign := func(iss string) string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := jwt.Signed(signer).Claims(jwt.Claims{Subject: "carol", Issuer: iss, Expiry: jwt.NewNumericDate(time.Now().Add(time.Hour))}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	carol := sys.As(sign("https://idp.example"))
	snap := carol.Submit(t, "demo", `{"steps":1,"step_ms":0}`)
	if _, code := carol.Get(t, snap.ID); code != 200 {
		t.Fatalf("ES256 token: %d", code)
	}
	if _, code := sys.As(sign("https://other.example")).Get(t, snap.ID); code != 401 {
		t.Errorf("token of another issuer: %d", code)
	}
	// No anonymous sessions here: no token, no entry.
	if r := sys.Do(t, "GET", "/api/jobs", "", "", nil, nil); r.StatusCode != 401 {
		t.Errorf("without a token: %d", r.StatusCode)
	}
	if _, code := sys.As(testsys.Token(t, "carol", false, time.Hour)).Get(t, snap.ID); code != 401 {
		t.Errorf("an HS256 token where only JWKS keys are configured: %d", code)
	}
}

func TestCrossOriginStateChangesRefused(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner())
	body := `{"type":"demo","input":{"steps":1}}`
	for _, h := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site"},
		{"Origin": "http://evil.example"},
	} {
		var e struct{ Error jobs.Error }
		if r := sys.Do(t, "POST", "/api/jobs", "application/json", body, h, &e); r.StatusCode != 403 || e.Error.Code != "cross_origin" {
			t.Errorf("POST with %v: %d %+v", h, r.StatusCode, e)
		}
		if r := sys.Do(t, "POST", "/jobs", "application/x-www-form-urlencoded", "type=demo", h, nil); r.StatusCode != 403 {
			t.Errorf("form POST with %v: %d", h, r.StatusCode)
		}
	}
	if q, e := sys.StreamCounts(t); q != 0 || e != 0 {
		t.Fatalf("refused requests stored %d requests, %d events", q, e)
	}
	same := map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": sys.URL}
	if r := sys.Do(t, "POST", "/api/jobs", "application/json", body, same, nil); r.StatusCode != 202 {
		t.Errorf("same-origin POST: %d", r.StatusCode)
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner())
	for _, path := range []string{"/", "/jobs/" + jobs.NewID(time.Now()), "/static/job.js", "/api/jobs"} {
		r := sys.Do(t, "GET", path, "", "", nil, nil)
		csp := r.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if r.Header.Get("X-Content-Type-Options") != "nosniff" || r.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: headers %v", path, r.Header)
		}
	}
	r := sys.As("").Do(t, "GET", "/", "", "", nil, nil) // a first visit
	var session *http.Cookie
	for _, c := range r.Cookies() {
		if c.Name == httpapi.SessionCookie {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Lax", session)
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner(), testsys.WithConfig(func(c *httpapi.Config) { c.SubmitRate, c.MaxConnsPerOwner, c.MaxJSONDepth = 3, 2, 8 }))
	for i := range 3 {
		sys.Submit(t, "demo", `{"steps":1}`)
		_ = i
	}
	var e struct{ Error jobs.Error }
	r := sys.Do(t, "POST", "/api/jobs", "application/json", `{"type":"demo","input":{"steps":1}}`, nil, &e)
	if r.StatusCode != 429 || e.Error.Code != "rate_limited" || r.Header.Get("Retry-After") == "" {
		t.Errorf("4th submission in a minute: %d %+v Retry-After=%q", r.StatusCode, e, r.Header.Get("Retry-After"))
	}
	sys.As("").Submit(t, "demo", `{"steps":1}`) // another owner is not limited by the first

	deep := strings.Repeat("[", 9) + strings.Repeat("]", 9)
	r = sys.As("").Do(t, "POST", "/api/jobs", "application/json", `{"type":"demo","input":`+deep+`}`, nil, &e)
	if r.StatusCode != 400 || !strings.Contains(e.Error.Message, "nests") {
		t.Errorf("input nested 9 deep: %d %+v", r.StatusCode, e)
	}

	dialWS(t, sys)
	dialWS(t, sys)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(sys.URL, "http")+"/ws", &websocket.DialOptions{HTTPClient: sys.HTTPClient()})
	if err == nil || resp == nil || resp.StatusCode != 429 {
		t.Errorf("third connection of one owner: %v %v", err, resp)
	}
	// A WebSocket message over 4 KiB closes the connection (1009).
	other := dialWS(t, sys.As(""))
	_ = other.c.Write(other.ct, websocket.MessageText, bytes.Repeat([]byte("x"), 5000))
	if _, _, err := other.next(); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Errorf("oversized message: %v", err)
	}
}

// No secret, token or cookie value ends up in the logs, in either
// LOG_FORMAT, with tracing on (trace ids are logged then); JSON logs are
// one object per line, and lines about a job name it, its type and
// attempt, and its trace.
func TestSecretsStayOutOfLogs(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			var logs testsys.LockedBuffer
			tp := sdktrace.NewTracerProvider()
			t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			log := settings.Logging{Format: format, Level: "debug"}.Logger(&logs, true)
			sys := testsys.Start(t, testsys.WithLogger(log), testsys.WithTracerProvider(tp))
			tok := testsys.Token(t, "dave", false, time.Hour)
			dave := sys.As(tok)
			snap := dave.Submit(t, "demo", `{"steps":2,"step_ms":1}`)
			dave.WaitStatus(t, snap.ID, jobs.StatusSucceeded, 20*time.Second)
			sys.Do(t, "GET", "/api/jobs", "", "", map[string]string{"Authorization": "Bearer " + tok + "x"}, nil)
			r := sys.As("").Do(t, "GET", "/", "", "", nil, nil) // a first visit: a new session cookie
			if len(cookieValues(r)) == 0 {
				t.Fatal("no session cookie was set")
			}
			sys.GW.Live().CloseAll()
			for _, secret := range append([]string{tok, testsys.JWTSecret, "test-session-secret"}, cookieValues(r)...) {
				if strings.Contains(logs.String(), secret) {
					t.Errorf("the logs contain a secret (%.12s…)", secret)
				}
			}
			if logs.String() == "" {
				t.Fatal("nothing was logged: the test proves nothing")
			}
			if format != "json" {
				return
			}
			var traced bool
			for _, line := range testsys.JSONLogLines(t, logs.String()) {
				if line["job_id"] == snap.ID && line["msg"] == "job started" {
					traced = line["type"] == "demo" && line["attempt"] == 1.0 && line["trace_id"] != nil && line["span_id"] != nil
				}
			}
			if !traced {
				t.Errorf("no line \"job started\" of job %s with its type, attempt 1 and trace:\n%s", snap.ID, logs.String())
			}
		})
	}
}

func cookieValues(r *http.Response) []string {
	var out []string
	for _, c := range r.Cookies() {
		out = append(out, c.Value)
	}
	return out
}

func TestWebSocketFromAnotherOriginRefused(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(sys.URL, "http") + "/ws"
	_, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: sys.HTTPClient(), HTTPHeader: http.Header{"Origin": {"http://evil.example"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin WebSocket: %v %v", err, resp)
	}
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: sys.HTTPClient(), HTTPHeader: http.Header{"Origin": {sys.URL}}})
	if err != nil {
		t.Fatalf("same-origin WebSocket: %v", err)
	}
	_ = c.CloseNow()
}
