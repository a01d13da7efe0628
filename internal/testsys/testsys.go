// Package testsys starts a whole jobwire for tests: an embedded NATS
// server with JetStream, a gateway behind a real HTTP server and (unless
// asked not to) a runner with the built-in job types. A System sends
// requests as one caller and waits for jobs; everything stops when the
// test ends. It is the HTTP-level harness of the gateway's tests and of
// the tests of runner behaviour seen through the API.
package testsys

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/jobwire/jobwire/internal/settings"
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
	"github.com/jobwire/jobwire/services/gateway/httpapi"
	"github.com/jobwire/jobwire/services/runner/jobtypes"
	"github.com/jobwire/jobwire/services/runner/worker"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
)

// System is a whole jobwire, seen by one caller. Only URL is needed to
// send requests: &System{URL: url} is a caller of a gateway started
// otherwise.
type System struct {
	URL     string
	NATS    *server.Server
	GW      *httpapi.Gateway
	NC      *nats.Conn // the gateway's connection
	JS      jetstream.JetStream
	Streams *jobs.Streams
	// Runners are the system's runners (for their metrics).
	Runners []*worker.Runner
	stop    func()

	// Requests go out as one caller: with a session cookie (jar), or with
	// header (e.g. a bearer token).
	jarOnce sync.Once
	client  *http.Client
	header  map[string]string
}

// HTTPClient is the caller's HTTP client, with its own cookie jar.
func (s *System) HTTPClient() *http.Client {
	s.jarOnce.Do(func() {
		jar, _ := cookiejar.New(nil)
		s.client = &http.Client{Jar: jar}
	})
	return s.client
}

// As is the same system seen by another caller: a fresh session, or the
// given bearer token.
func (s *System) As(token string) *System {
	other := &System{URL: s.URL, NATS: s.NATS, GW: s.GW, NC: s.NC, JS: s.JS, Streams: s.Streams, Runners: s.Runners, stop: s.stop}
	if token != "" {
		other.header = map[string]string{"Authorization": "Bearer " + token}
	}
	return other
}

// Header is what this caller adds to every request (its bearer token).
func (s *System) Header() map[string]string { return s.header }

// SameCaller makes s send requests as other does (same cookies, same token).
func (s *System) SameCaller(other *System) *System {
	s.jarOnce.Do(func() {})
	s.client, s.header = other.HTTPClient(), other.header
	return s
}

// JWTSecret signs the bearer tokens of tests (Token); the system accepts them.
const JWTSecret = "test-secret-that-is-long-enough-for-hs256"

// Token makes an HS256 bearer token for sub, an admin one if admin.
func Token(t testing.TB, sub string, admin bool, ttl time.Duration) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(JWTSecret)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := struct {
		jwt.Claims
		Scope string `json:"scope,omitempty"`
	}{Claims: jwt.Claims{Subject: sub, Expiry: jwt.NewNumericDate(time.Now().Add(ttl)), IssuedAt: jwt.NewNumericDate(time.Now())}}
	if admin {
		c.Scope = "jobs:read jobwire:admin"
	}
	tok, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Option changes how Start starts the system.
type Option func(*options)

type options struct {
	log      *slog.Logger
	noRunner bool
	types    []worker.JobType
	cfg      func(*httpapi.Config)
	sndbuf   int // socket send buffer of the gateway's connections; 0: the system's
	natsOpts []nats.Option
	replicas int // JETSTREAM_REPLICAS; 0: 1
	runners  int // runners to start; 0: 1
	tp       trace.TracerProvider
	addr     string // listen address of the gateway; "": a free port
}

// WithTracerProvider traces the gateway and the runners with tp (e.g. an
// SDK provider on an in-memory exporter).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tp = tp }
}

// WithReplicas sets the system's JETSTREAM_REPLICAS (gateway and runners):
// on a cluster (StartOnURLs), every stream, bucket and consumer gets n
// copies.
func WithReplicas(n int) Option { return func(o *options) { o.replicas = n } }

// WithRunners starts n runners, each on a connection of its own.
func WithRunners(n int) Option { return func(o *options) { o.runners = n } }

// WithNATSOptions sets options of the gateway's NATS connection.
func WithNATSOptions(opts ...nats.Option) Option {
	return func(o *options) { o.natsOpts = append(o.natsOpts, opts...) }
}

// WithoutRunner starts no runner; the built-in types are registered as a
// runner that ran once before would have, so the gateway accepts them.
func WithoutRunner() Option { return func(o *options) { o.noRunner = true } }

// WithLogger sends the system's logs to log.
func WithLogger(log *slog.Logger) Option { return func(o *options) { o.log = log } }

// WithTypes gives the system's runner these job types besides the built-in ones.
func WithTypes(types ...worker.JobType) Option {
	return func(o *options) { o.types = append(o.types, types...) }
}

// WithSendBuffer gives the gateway's connections a send buffer of n
// bytes, so a client that stops reading stalls the gateway's writes soon.
func WithSendBuffer(n int) Option { return func(o *options) { o.sndbuf = n } }

// WithAddr serves the gateway on addr (host:port), such as the address of
// a gateway the test stopped: a gateway restarted where its clients
// reconnect.
func WithAddr(addr string) Option { return func(o *options) { o.addr = addr } }

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

// WithConfig changes the gateway's configuration (see Config).
func WithConfig(f func(*httpapi.Config)) Option {
	return func(o *options) { o.cfg = f }
}

// Config is the gateway configuration of tests: Token's tokens and
// sessions work, and the limits are out of the way.
func Config() httpapi.Config {
	return httpapi.Config{
		AnonymousSessions: true, JWTSecret: JWTSecret, SessionSecret: "test-session-secret", AdminScope: "jobwire:admin",
		SubmitRate: 100000, MaxConnsPerOwner: 100, MaxJSONDepth: 32,
		AddrSubmitRate: 100000, AddrMaxConns: 100000, NewSessionRate: 100000, MaxConns: 100000,
		ReadHeaderTimeout: 10 * time.Second, BodyReadTimeout: 30 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 64 << 10,
		MaxBodyBytes: 1 << 20, WriteTimeout: 10 * time.Second,
		Retention: settings.Retention{EventsMaxAge: time.Hour, EventsMaxPerJob: 1000},
	}
}

// Logger logs warnings and errors to the test's log.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Start starts a whole system on a NATS server of its own.
func Start(t testing.TB, opts ...Option) *System {
	t.Helper()
	return StartOn(t, natstest.Server(t), opts...)
}

// StartOn starts a system on the NATS server ns (another gateway on the
// same server, or a server that the test restarts).
func StartOn(t testing.TB, ns *server.Server, opts ...Option) *System {
	t.Helper()
	sys := startOn(t, ns.ClientURL(), opts...)
	sys.NATS = ns
	return sys
}

// StartOnURLs starts a system on the NATS servers at urls (comma
// separated, as NATS_URL): the gateway's and the runners' connections know
// every one of them and move to another when theirs goes away. System.NATS
// is nil.
func StartOnURLs(t testing.TB, urls string, opts ...Option) *System {
	t.Helper()
	return startOn(t, urls, opts...)
}

func startOn(t testing.TB, urls string, opts ...Option) *System {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	cfg := Config()
	cfg.TracerProvider = o.tp
	if o.replicas > 0 {
		cfg.Retention.Replicas = int64(o.replicas)
	}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	log := o.log
	if log == nil {
		log = Logger(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	nc := natstest.ConnectURL(t, urls, o.natsOpts...)
	gw, err := httpapi.New(ctx, nc, cfg, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	sys := &System{GW: gw, NC: nc}
	if sys.JS, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	if sys.Streams, err = cfg.Topology().CreateOrUpdate(ctx, sys.JS); err != nil { // what the gateway made
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	if o.noRunner {
		registerBuiltinTypes(t, sys.Streams.Types)
	} else {
		for range max(o.runners, 1) {
			sys.Runners = append(sys.Runners, startRunner(t, ctx, &wg, urls, log, cfg.Topology(), o.tp, o.types...))
		}
	}
	hs := httptest.NewUnstartedServer(nil)
	hs.Config = httpapi.NewHTTPServer(cfg, gw.Handler()) // as the gateway's run configures it
	if o.addr != "" {
		hs.Listener.Close()
		hs.Listener = listenAgain(t, o.addr)
	}
	if o.sndbuf > 0 {
		hs.Listener = sendBufferListener{hs.Listener, o.sndbuf}
	}
	hs.Start()
	sys.stop = sync.OnceFunc(func() {
		cancel()
		gw.Live().CloseAll()
		hs.Close()
		gw.Close()
		wg.Wait()
	})
	t.Cleanup(sys.stop)
	sys.URL = hs.URL
	return sys
}

// listenAgain listens on addr, trying again for a while when a closing
// listener still holds it.
func listenAgain(t testing.TB, addr string) net.Listener {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := net.Listen("tcp", addr)
		if err == nil {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("listen on %s again: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops the system's gateway and runners now (a test that kills a
// gateway); it also runs when the test ends.
func (s *System) Stop() { s.stop() }

// StartRunner runs a runner with the built-in types and extra on ns
// until ctx ends; wg tracks it.
func StartRunner(t testing.TB, ctx context.Context, wg *sync.WaitGroup, ns *server.Server, log *slog.Logger, extra ...worker.JobType) {
	t.Helper()
	startRunner(t, ctx, wg, ns.ClientURL(), log, Config().Topology(), nil, extra...)
}

// startRunner is StartRunner on the servers at urls with the stream
// settings the gateway uses; it returns the runner.
func startRunner(t testing.TB, ctx context.Context, wg *sync.WaitGroup, urls string, log *slog.Logger, topo jobs.Topology, tp trace.TracerProvider, extra ...worker.JobType) *worker.Runner {
	t.Helper()
	rnc := natstest.ConnectURL(t, urls, nats.MaxReconnects(-1))
	types := append(jobtypes.Builtin(), extra...)
	r, err := worker.New(ctx, rnc, worker.Config{Concurrency: 4, AckWait: 5 * time.Second, ShutdownGrace: time.Second, Logger: log, Topology: topo, TracerProvider: tp}, types...)
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { _ = r.Run(ctx) })
	return r
}

// Do sends a request and decodes a JSON answer into out (if not nil).
func (s *System) Do(t testing.TB, method, path, contentType, body string, header map[string]string, out any) *http.Response {
	t.Helper()
	resp, b := s.Call(t, method, path, contentType, body, header)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %q: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp
}

// Call sends a request as this caller and returns the answer with its whole body.
func (s *System) Call(t testing.TB, method, path, contentType, body string, header map[string]string) (*http.Response, []byte) {
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
	resp, err := s.HTTPClient().Do(req)
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

// Submit posts a job and expects 202.
func (s *System) Submit(t testing.TB, typ, input string) jobs.Snapshot {
	t.Helper()
	return s.SubmitBody(t, `{"type":`+MustJSON(typ)+`,"input":`+input+`}`)
}

// SubmitBody posts a job's whole body (with run_at, priority …) and
// expects 202.
func (s *System) SubmitBody(t testing.TB, body string) jobs.Snapshot {
	t.Helper()
	var snap jobs.Snapshot
	resp := s.Do(t, "POST", "/api/jobs", "application/json", body, nil, &snap)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submit: status %d, body %+v", resp.StatusCode, snap)
	}
	return snap
}

// Get reads a job's snapshot.
func (s *System) Get(t testing.TB, id string) (jobs.Snapshot, int) {
	t.Helper()
	var snap jobs.Snapshot
	resp := s.Do(t, "GET", "/api/jobs/"+id, "", "", nil, &snap)
	return snap, resp.StatusCode
}

// Cancel asks to cancel a job (body: its JSON body, or "" for none) and
// returns the status code and the job's snapshot.
func (s *System) Cancel(t testing.TB, id, body string) (int, jobs.Snapshot) {
	t.Helper()
	var snap jobs.Snapshot
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	resp := s.Do(t, "POST", "/api/jobs/"+id+"/cancel", ct, body, nil, &snap)
	return resp.StatusCode, snap
}

// WaitStatus polls a job until it reaches want, failing after timeout.
func (s *System) WaitStatus(t testing.TB, id string, want jobs.Status, timeout time.Duration) jobs.Snapshot {
	t.Helper()
	return s.WaitFor(t, id, "status "+string(want), timeout, func(snap jobs.Snapshot) bool { return snap.Status == want })
}

// WaitFor polls job id until its snapshot satisfies ok.
func (s *System) WaitFor(t testing.TB, id, what string, timeout time.Duration, ok func(jobs.Snapshot) bool) jobs.Snapshot {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		snap, code := s.Get(t, id)
		if code == http.StatusOK && ok(snap) {
			return snap
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: want %s within %v, have %d %+v", id, what, timeout, code, snap)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitListed polls the caller's job list (GET /api/jobs) until it holds
// every one of ids: the job index is kept asynchronously, a few
// milliseconds behind the 202.
func (s *System) WaitListed(t testing.TB, ids ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var page struct{ Jobs []jobs.Snapshot }
		s.Do(t, "GET", "/api/jobs?limit=500", "", "", nil, &page)
		listed := map[string]bool{}
		for _, j := range page.Jobs {
			listed[j.ID] = true
		}
		missing := 0
		for _, id := range ids {
			if !listed[id] {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d jobs not listed within 10s", missing, len(ids))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// MustJSON is v as JSON.
func MustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// registerBuiltinTypes registers the built-in types as a runner that ran
// once before would have, so a system without a runner accepts them.
func registerBuiltinTypes(t testing.TB, types jetstream.KeyValue) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, jt := range jobtypes.Builtin() {
		info, err := jt.Info()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(info)
		if _, err := types.Put(ctx, info.Type, b); err != nil {
			t.Fatal(err)
		}
	}
}

// History reads every stored event of job id, oldest first.
func (s *System) History(t testing.TB, id string) []jobs.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := s.Streams.Events.Info(ctx, jetstream.WithSubjectFilter(jobs.JobSubjects(id)))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, count := range info.State.Subjects {
		n += count
	}
	cons, err := s.Streams.Events.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{jobs.JobSubjects(id)}})
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

// StreamCounts returns how many requests and events the jobs stream
// holds.
func (s *System) StreamCounts(t testing.TB) (queue, events uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	count := func(filter string) (n uint64) {
		info, err := s.Streams.Events.Info(ctx, jetstream.WithSubjectFilter(filter))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range info.State.Subjects {
			n += c
		}
		return n
	}
	return count(jobs.AllQueue), count(jobs.AllEvents)
}

// UnsettledRequests returns how many job requests the runners' consumers
// have not settled (not delivered yet, or delivered and not acked), and
// how many runners' consumers there are.
func (s *System) UnsettledRequests(t testing.TB) (n uint64, consumers int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list := s.Streams.Events.ListConsumers(ctx)
	for info := range list.Info() {
		if strings.HasPrefix(info.Name, "runners_") {
			consumers++
			n += info.NumPending + uint64(info.NumAckPending)
		}
	}
	if err := list.Err(); err != nil {
		t.Fatal(err)
	}
	return n, consumers
}

// CheckSeqs fails unless evs have seq 1, 2, 3, … with no gap or repeat.
func CheckSeqs(t testing.TB, evs []jobs.Event) {
	t.Helper()
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d; history: %v", i, e.Seq, Kinds(evs))
		}
	}
}

// Kinds describes a history in short: seq, kind and attempt of each event.
func Kinds(evs []jobs.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = fmt.Sprintf("%d:%s/a%d", e.Seq, e.Kind, e.Attempt)
	}
	return out
}

// LockedBuffer is natstest.LockedBuffer, for the tests that use testsys.
type LockedBuffer = natstest.LockedBuffer

// JSONLogLines parses what a logger with LOG_FORMAT=json wrote: it fails
// the test unless every line is one JSON object with time, level and msg,
// and unless every line about a job (one with job_id) also names its type
// and attempt (or, before the job's state is read, its delivery).
func JSONLogLines(t testing.TB, log string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for l := range strings.Lines(log) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("a log line that is not JSON: %q: %v", l, err)
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := m[k]; !ok {
				t.Errorf("a log line without %s: %q", k, l)
			}
		}
		if _, job := m["job_id"]; job {
			_, attempt := m["attempt"]
			_, delivery := m["delivery"]
			if _, typ := m["type"]; !typ || !attempt && !delivery {
				t.Errorf("a line about a job without its type and attempt: %q", l)
			}
		}
		lines = append(lines, m)
	}
	return lines
}
