package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/jobwire/jobwire/shared/jobs"
)

// Another caller's job answers exactly as an unknown one, on every path.
func TestOthersJobsAreInvisible(t *testing.T) {
	t.Parallel()
	alice := startSystem(t)
	snap := alice.submit(t, "demo", `{"steps":1,"step_ms":0}`)
	alice.waitStatus(t, snap.ID, jobs.StatusSucceeded, 20*time.Second)
	unknown := jobs.NewID(time.Now())

	for _, other := range []*testSystem{alice.as(""), alice.as(token(t, "bob", false, time.Hour))} {
		for _, id := range []string{snap.ID, unknown} {
			var e struct{ Error jobs.Error }
			if r := other.do(t, "GET", "/api/jobs/"+id, "", "", nil, &e); r.StatusCode != 404 || e.Error.Message != "no job with id "+id {
				t.Errorf("GET %s as another caller: %d %+v", id, r.StatusCode, e)
			}
			if r := other.do(t, "POST", "/api/jobs/"+id+"/cancel", "", "", nil, &e); r.StatusCode != 404 {
				t.Errorf("cancel as another caller: %d", r.StatusCode)
			}
			if r := other.do(t, "GET", "/api/jobs/"+id+"/events", "", "", nil, &e); r.StatusCode != 404 {
				t.Errorf("SSE as another caller: %d", r.StatusCode)
			}
			if r := other.do(t, "GET", "/jobs/"+id, "", "", nil, nil); r.StatusCode != 404 {
				t.Errorf("page as another caller: %d", r.StatusCode)
			}
		}
		ws := dialWS(t, other)
		ws.send(`{"op":"watch","job_id":"` + snap.ID + `"}`)
		if m := ws.read(); m.Op != "error" || m.Code != "not_found" {
			t.Errorf("watch as another caller: %+v", m)
		}
		var list struct{ Jobs []jobs.Snapshot }
		other.do(t, "GET", "/api/jobs", "", "", nil, &list)
		if len(list.Jobs) != 0 {
			t.Errorf("another caller lists %d jobs", len(list.Jobs))
		}
	}
	// The owner and an admin see it.
	var list struct{ Jobs []jobs.Snapshot }
	alice.do(t, "GET", "/api/jobs", "", "", nil, &list)
	if len(list.Jobs) != 1 {
		t.Errorf("the owner lists %d jobs", len(list.Jobs))
	}
	admin := alice.as(token(t, "ops", true, time.Hour))
	if s, code := admin.get(t, snap.ID); code != 200 || s.Status != jobs.StatusSucceeded {
		t.Errorf("admin GET: %d %+v", code, s)
	}
}

func TestBearerTokens(t *testing.T) {
	t.Parallel()
	sys := startSystem(t)
	alice := sys.as(token(t, "alice", false, time.Hour))
	snap := alice.submit(t, "demo", `{"steps":1,"step_ms":0}`)
	if _, code := alice.get(t, snap.ID); code != 200 {
		t.Fatalf("alice cannot read her job: %d", code)
	}
	// The same sub in another token is the same owner.
	if _, code := sys.as(token(t, "alice", false, time.Minute)).get(t, snap.ID); code != 200 {
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
		"expired":      token(t, "alice", false, -time.Hour),
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
		r := sys.do(t, "GET", "/api/jobs/"+snap.ID, "", "", h, &e)
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
	sys := startSystem(t, withConfig(func(c *Config) {
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
	carol := sys.as(sign("https://idp.example"))
	snap := carol.submit(t, "demo", `{"steps":1,"step_ms":0}`)
	if _, code := carol.get(t, snap.ID); code != 200 {
		t.Fatalf("ES256 token: %d", code)
	}
	if _, code := sys.as(sign("https://other.example")).get(t, snap.ID); code != 401 {
		t.Errorf("token of another issuer: %d", code)
	}
	// No anonymous sessions here: no token, no entry.
	if r := sys.do(t, "GET", "/api/jobs", "", "", nil, nil); r.StatusCode != 401 {
		t.Errorf("without a token: %d", r.StatusCode)
	}
	if _, code := sys.as(token(t, "carol", false, time.Hour)).get(t, snap.ID); code != 401 {
		t.Errorf("an HS256 token where only JWKS keys are configured: %d", code)
	}
}

func TestCrossOriginStateChangesRefused(t *testing.T) {
	t.Parallel()
	sys := startSystem(t, withoutRunner())
	body := `{"type":"demo","input":{"steps":1}}`
	for _, h := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site"},
		{"Origin": "http://evil.example"},
	} {
		var e struct{ Error jobs.Error }
		if r := sys.do(t, "POST", "/api/jobs", "application/json", body, h, &e); r.StatusCode != 403 || e.Error.Code != "cross_origin" {
			t.Errorf("POST with %v: %d %+v", h, r.StatusCode, e)
		}
		if r := sys.do(t, "POST", "/jobs", "application/x-www-form-urlencoded", "type=demo", h, nil); r.StatusCode != 403 {
			t.Errorf("form POST with %v: %d", h, r.StatusCode)
		}
	}
	if q, e := streamCounts(t, sys); q != 0 || e != 0 {
		t.Fatalf("refused requests stored %d requests, %d events", q, e)
	}
	same := map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": sys.URL}
	if r := sys.do(t, "POST", "/api/jobs", "application/json", body, same, nil); r.StatusCode != 202 {
		t.Errorf("same-origin POST: %d", r.StatusCode)
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	sys := startSystem(t, withoutRunner())
	for _, path := range []string{"/", "/jobs/" + jobs.NewID(time.Now()), "/static/job.js", "/api/jobs"} {
		r := sys.do(t, "GET", path, "", "", nil, nil)
		csp := r.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if r.Header.Get("X-Content-Type-Options") != "nosniff" || r.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: headers %v", path, r.Header)
		}
	}
	r := sys.as("").do(t, "GET", "/", "", "", nil, nil) // a first visit
	var session *http.Cookie
	for _, c := range r.Cookies() {
		if c.Name == sessionCookie {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Lax", session)
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	sys := startSystem(t, withoutRunner(), withConfig(func(c *Config) { c.SubmitRate, c.MaxConnsPerOwner, c.MaxJSONDepth = 3, 2, 8 }))
	for i := range 3 {
		sys.submit(t, "demo", `{"steps":1}`)
		_ = i
	}
	var e struct{ Error jobs.Error }
	r := sys.do(t, "POST", "/api/jobs", "application/json", `{"type":"demo","input":{"steps":1}}`, nil, &e)
	if r.StatusCode != 429 || e.Error.Code != "rate_limited" || r.Header.Get("Retry-After") == "" {
		t.Errorf("4th submission in a minute: %d %+v Retry-After=%q", r.StatusCode, e, r.Header.Get("Retry-After"))
	}
	sys.as("").submit(t, "demo", `{"steps":1}`) // another owner is not limited by the first

	deep := strings.Repeat("[", 9) + strings.Repeat("]", 9)
	r = sys.as("").do(t, "POST", "/api/jobs", "application/json", `{"type":"demo","input":`+deep+`}`, nil, &e)
	if r.StatusCode != 400 || !strings.Contains(e.Error.Message, "nests") {
		t.Errorf("input nested 9 deep: %d %+v", r.StatusCode, e)
	}

	dialWS(t, sys)
	dialWS(t, sys)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(sys.URL, "http")+"/ws", &websocket.DialOptions{HTTPClient: sys.httpClient()})
	if err == nil || resp == nil || resp.StatusCode != 429 {
		t.Errorf("third connection of one owner: %v %v", err, resp)
	}
	// A WebSocket message over 4 KiB closes the connection (1009).
	other := dialWS(t, sys.as(""))
	_ = other.c.Write(other.ct, websocket.MessageText, bytes.Repeat([]byte("x"), 5000))
	if _, _, err := other.next(); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Errorf("oversized message: %v", err)
	}
}

// No secret, token or cookie value ends up in the logs.
func TestSecretsStayOutOfLogs(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	sys := startSystem(t, withLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	tok := token(t, "dave", false, time.Hour)
	dave := sys.as(tok)
	snap := dave.submit(t, "demo", `{"steps":2,"step_ms":1}`)
	dave.waitStatus(t, snap.ID, jobs.StatusSucceeded, 20*time.Second)
	sys.do(t, "GET", "/api/jobs", "", "", map[string]string{"Authorization": "Bearer " + tok + "x"}, nil)
	r := sys.as("").do(t, "GET", "/", "", "", nil, nil) // a first visit: a new session cookie
	if len(cookieValues(r)) == 0 {
		t.Fatal("no session cookie was set")
	}
	sys.GW.live.CloseAll()
	for _, secret := range append([]string{tok, testJWTSecret, "test-session-secret"}, cookieValues(r)...) {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the logs contain a secret (%.12s…)", secret)
		}
	}
	if logs.String() == "" {
		t.Fatal("nothing was logged: the test proves nothing")
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
	sys := startSystem(t, withoutRunner())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(sys.URL, "http") + "/ws"
	_, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: sys.httpClient(), HTTPHeader: http.Header{"Origin": {"http://evil.example"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin WebSocket: %v %v", err, resp)
	}
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: sys.httpClient(), HTTPHeader: http.Header{"Origin": {sys.URL}}})
	if err != nil {
		t.Fatalf("same-origin WebSocket: %v", err)
	}
	_ = c.CloseNow()
}

// A verified token is remembered until it expires, and not a moment longer;
// a token that failed is never remembered.
func TestVerifiedTokensAreRememberedUntilTheyExpire(t *testing.T) {
	t.Parallel()
	a, err := newAuthenticator(context.Background(), Config{JWTSecret: testJWTSecret, AdminScope: "jobwire:admin"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	a.now = func() time.Time { return now }
	tok := token(t, "carol", true, time.Minute)
	for i := range 2 { // verified, then remembered
		p, err := a.verify(tok)
		if err != nil || p != (principal{Owner: "user:carol", Admin: true}) {
			t.Fatalf("use %d: %+v %v", i+1, p, err)
		}
	}
	if len(a.verified.m) != 1 {
		t.Fatalf("%d tokens remembered, want 1", len(a.verified.m))
	}
	now = now.Add(time.Minute + tokenLeeway + time.Second)
	if _, err := a.verify(tok); err == nil {
		t.Fatal("an expired token was accepted because it had been verified before")
	}

	// A forged token (carol's claims, the admin scope, another key) is
	// refused every time, also after the real one was remembered.
	now = time.Now()
	a.verified = verifiedTokens{}
	if _, err := a.verify(tok); err != nil {
		t.Fatal(err)
	}
	header, claims, _ := strings.Cut(tok, ".")
	claims, _, _ = strings.Cut(claims, ".")
	forged := header + "." + claims + ".AAAA"
	for range 2 {
		if _, err := a.verify(forged); err == nil {
			t.Fatal("a token with a bad signature was accepted")
		}
	}
	if len(a.verified.m) != 1 {
		t.Fatalf("%d tokens remembered, want only the real one", len(a.verified.m))
	}
}

// With JWT_JWKS_URL, keys the identity provider adds later are picked up:
// a token with an unknown key id makes the gateway fetch the key set again,
// at most once per jwksRefetchEvery, so unknown ids cannot flood the
// provider.
func TestJWKSURLPicksUpRotatedKeys(t *testing.T) {
	t.Parallel()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k1, k2 := newKey(), newKey()
	var mu sync.Mutex
	published := []jose.JSONWebKey{{Key: k1.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}
	var fetches atomic.Int64
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		mu.Lock()
		defer mu.Unlock()
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: published})
	}))
	defer idp.Close()

	a, err := newAuthenticator(context.Background(), Config{JWKSURL: idp.URL})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	a.now = func() time.Time { return now }
	sign := func(key *ecdsa.PrivateKey, kid string) string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := jwt.Signed(signer).Claims(jwt.Claims{Subject: "dave", Expiry: jwt.NewNumericDate(now.Add(time.Hour))}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if _, err := a.verify(sign(k1, "k1")); err != nil || fetches.Load() != 1 {
		t.Fatalf("k1: %v after %d fetches", err, fetches.Load())
	}

	// The provider rotates: k2 appears. Right after the start-up fetch
	// the gateway does not ask again...
	mu.Lock()
	published = append(published, jose.JSONWebKey{Key: k2.Public(), KeyID: "k2", Algorithm: "ES256", Use: "sig"})
	mu.Unlock()
	if _, err := a.verify(sign(k2, "k2")); err == nil || fetches.Load() != 1 {
		t.Fatalf("k2 within %v of the last fetch: %v after %d fetches; want refused, no fetch", jwksRefetchEvery, err, fetches.Load())
	}
	// ...but later it does, once, and k2 works.
	now = now.Add(jwksRefetchEvery + time.Second)
	if _, err := a.verify(sign(k2, "k2")); err != nil || fetches.Load() != 2 {
		t.Fatalf("k2 later: %v after %d fetches; want accepted after 2", err, fetches.Load())
	}
	if n := len(a.verified.m); n != 1 {
		t.Errorf("%d tokens remembered after the fetch, want only k2's: a fetch forgets the others", n)
	}
	// A key id nobody published: refused, and no fetch right after the last.
	if _, err := a.verify(sign(newKey(), "k3")); err == nil || fetches.Load() != 2 {
		t.Fatalf("unknown k3: %v after %d fetches; want refused without a fetch", err, fetches.Load())
	}
}
