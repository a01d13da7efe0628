package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/jobwire/jobwire/internal/natstest"
	"github.com/jobwire/jobwire/services/runner/worker"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// testSystem is a whole jobwire: an embedded NATS server with JetStream,
// a gateway behind a real HTTP server, and (unless asked not to) a runner.
type testSystem struct {
	URL  string
	NATS *server.Server
	GW   *gateway
	nc   *nats.Conn

	// Requests go out as one caller: with a session cookie (jar), or with
	// header (e.g. a bearer token).
	jarOnce sync.Once
	client  *http.Client
	header  map[string]string
}

// httpClient is the caller's HTTP client, with its own cookie jar.
func (s *testSystem) httpClient() *http.Client {
	s.jarOnce.Do(func() {
		jar, _ := cookiejar.New(nil)
		s.client = &http.Client{Jar: jar}
	})
	return s.client
}

// as is the same system seen by another caller: a fresh session, or the
// given bearer token.
func (s *testSystem) as(token string) *testSystem {
	other := &testSystem{URL: s.URL, NATS: s.NATS, GW: s.GW, nc: s.nc}
	if token != "" {
		other.header = map[string]string{"Authorization": "Bearer " + token}
	}
	return other
}

// sameCaller makes s send requests as other does (same cookies, same token).
func (s *testSystem) sameCaller(other *testSystem) *testSystem {
	s.jarOnce.Do(func() {})
	s.client, s.header = other.httpClient(), other.header
	return s
}

// testJWTSecret signs the bearer tokens of tests.
const testJWTSecret = "test-secret-that-is-long-enough-for-hs256"

// token makes an HS256 bearer token for sub, an admin one if admin.
func token(t testing.TB, sub string, admin bool, ttl time.Duration) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(testJWTSecret)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := claims{Claims: jwt.Claims{Subject: sub, Expiry: jwt.NewNumericDate(time.Now().Add(ttl)), IssuedAt: jwt.NewNumericDate(time.Now())}}
	if admin {
		c.Scope = "jobs:read jobwire:admin"
	}
	tok, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type systemOption func(*systemOptions)

type systemOptions struct {
	log      *slog.Logger
	noRunner bool
	types    []worker.JobType
	cfg      func(*Config)
	dir      string
	sndbuf   int // socket send buffer of the gateway's connections; 0: the system's
}

func withoutRunner() systemOption { return func(o *systemOptions) { o.noRunner = true } }

// withLogger sends the system's logs to log.
func withLogger(log *slog.Logger) systemOption { return func(o *systemOptions) { o.log = log } }

// withTypes gives the system's runner these job types besides the built-in ones.
func withTypes(types ...worker.JobType) systemOption {
	return func(o *systemOptions) { o.types = append(o.types, types...) }
}

// withSendBuffer gives the gateway's connections a send buffer of n
// bytes, so a client that stops reading stalls the gateway's writes soon.
func withSendBuffer(n int) systemOption { return func(o *systemOptions) { o.sndbuf = n } }

// sendBufferListener sets the send buffer of every connection it accepts.
type sendBufferListener struct {
	net.Listener
	n int
}

func (l sendBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(l.n)
	}
	return c, err
}

func withConfig(f func(*Config)) systemOption {
	return func(o *systemOptions) { o.cfg = f }
}

func testConfig() Config {
	return Config{
		AnonymousSessions: true, JWTSecret: testJWTSecret, SessionSecret: "test-session-secret", AdminScope: "jobwire:admin",
		SubmitRate: 100000, MaxConnsPerOwner: 100, MaxJSONDepth: 32,
		AddrSubmitRate: 100000, AddrMaxConns: 100000, NewSessionRate: 100000, MaxConns: 100000,
		ReadHeaderTimeout: 10 * time.Second, BodyReadTimeout: 30 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 64 << 10,
		HTTPAddr: "127.0.0.1:0", MaxBodyBytes: 1 << 20, RunnerConcurrency: 4, AckWait: 5 * time.Second, WriteTimeout: 10 * time.Second,
		EventsMaxAge: time.Hour, EventsMaxPerJob: 1000,
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startSystem starts a whole system; everything stops when the test ends.
func startSystem(t testing.TB, opts ...systemOption) *testSystem {
	t.Helper()
	var o systemOptions
	for _, opt := range opts {
		opt(&o)
	}
	ns := natstest.Server(t)
	return startOn(t, ns, o)
}

func startOn(t testing.TB, ns *server.Server, o systemOptions) *testSystem {
	t.Helper()
	cfg := testConfig()
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	log := o.log
	if log == nil {
		log = testLogger(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	nc := natstest.Connect(t, ns)
	gw, err := newGateway(ctx, nc, cfg, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	if o.noRunner {
		registerBuiltinTypes(t, gw)
	} else {
		startRunnerWith(t, ctx, &wg, ns, log, cfg.Topology(), o.types...)
	}
	hs := httptest.NewUnstartedServer(nil)
	hs.Config = newHTTPServer(cfg, gw.Handler()) // as run configures it
	if o.sndbuf > 0 {
		hs.Listener = sendBufferListener{hs.Listener, o.sndbuf}
	}
	hs.Start()
	t.Cleanup(func() {
		cancel()
		gw.live.CloseAll()
		hs.Close()
		gw.Close()
		wg.Wait()
	})
	return &testSystem{URL: hs.URL, NATS: ns, GW: gw, nc: nc}
}

// startRunner runs a runner with the built-in types until ctx ends.
func startRunner(t testing.TB, ctx context.Context, wg *sync.WaitGroup, ns *server.Server, log *slog.Logger, extra ...worker.JobType) {
	t.Helper()
	startRunnerWith(t, ctx, wg, ns, log, testConfig().Topology(), extra...)
}

// startRunnerWith is startRunner with the stream settings the gateway uses.
func startRunnerWith(t testing.TB, ctx context.Context, wg *sync.WaitGroup, ns *server.Server, log *slog.Logger, topo jobs.Topology, extra ...worker.JobType) {
	t.Helper()
	rnc := natstest.Connect(t, ns)
	types := append(worker.BuiltinTypes(), extra...)
	r, err := worker.New(ctx, rnc, worker.Config{Concurrency: 4, AckWait: 5 * time.Second, ShutdownGrace: time.Second, Logger: log, Topology: topo}, types...)
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { _ = r.Run(ctx) })
}

// do sends a request and decodes a JSON answer into out (if not nil).
func (s *testSystem) do(t testing.TB, method, path, contentType, body string, header map[string]string, out any) *http.Response {
	t.Helper()
	resp, b := s.call(t, method, path, contentType, body, header)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %q: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp
}

// call sends a request as this caller and returns the answer with its whole body.
func (s *testSystem) call(t testing.TB, method, path, contentType, body string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range s.header {
		req.Header.Set(k, v)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := s.httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// submit posts a job and expects 202.
func (s *testSystem) submit(t testing.TB, typ, input string) jobs.Snapshot {
	t.Helper()
	var snap jobs.Snapshot
	body := `{"type":` + mustJSON(typ) + `,"input":` + input + `}`
	resp := s.do(t, "POST", "/api/jobs", "application/json", body, nil, &snap)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submit: status %d, body %+v", resp.StatusCode, snap)
	}
	return snap
}

// get reads a job's snapshot.
func (s *testSystem) get(t testing.TB, id string) (jobs.Snapshot, int) {
	t.Helper()
	var snap jobs.Snapshot
	resp := s.do(t, "GET", "/api/jobs/"+id, "", "", nil, &snap)
	return snap, resp.StatusCode
}

// waitStatus polls a job until it reaches want, failing after timeout.
func (s *testSystem) waitStatus(t testing.TB, id string, want jobs.Status, timeout time.Duration) jobs.Snapshot {
	t.Helper()
	return s.waitFor(t, id, "status "+string(want), timeout, func(snap jobs.Snapshot) bool { return snap.Status == want })
}

// waitFor polls job id until its snapshot satisfies ok.
func (s *testSystem) waitFor(t testing.TB, id, what string, timeout time.Duration, ok func(jobs.Snapshot) bool) jobs.Snapshot {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		snap, code := s.get(t, id)
		if code == http.StatusOK && ok(snap) {
			return snap
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: want %s within %v, have %d %+v", id, what, timeout, code, snap)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// registerBuiltinTypes registers the built-in types as a runner that ran
// once before would have, so a system without a runner accepts them.
func registerBuiltinTypes(t testing.TB, gw *gateway) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, jt := range worker.BuiltinTypes() {
		info, err := jt.Info()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(info)
		if _, err := gw.streams.Types.Put(ctx, info.Type, b); err != nil {
			t.Fatal(err)
		}
	}
}

// history reads every stored event of job id, oldest first.
func (s *testSystem) history(t testing.TB, id string) []jobs.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := s.GW.streams.Events.Info(ctx, jetstream.WithSubjectFilter(jobs.EventSubject(id)))
	if err != nil {
		t.Fatal(err)
	}
	n := info.State.Subjects[jobs.EventSubject(id)]
	cons, err := s.GW.streams.Events.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{jobs.EventSubject(id)}})
	if err != nil {
		t.Fatal(err)
	}
	var evs []jobs.Event
	for uint64(len(evs)) < n {
		m, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			t.Fatalf("history of %s: read %d of %d events: %v", id, len(evs), n, err)
		}
		var ev jobs.Event
		if err := json.Unmarshal(m.Data(), &ev); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// checkSeqs fails unless evs have seq 1, 2, 3, … with no gap or repeat.
func checkSeqs(t testing.TB, evs []jobs.Event) {
	t.Helper()
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d; history: %v", i, e.Seq, kinds(evs))
		}
	}
}

func kinds(evs []jobs.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = fmt.Sprintf("%d:%s/a%d", e.Seq, e.Kind, e.Attempt)
	}
	return out
}
