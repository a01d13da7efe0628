package natsperm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/natsconn"
	"github.com/jobwire/jobwire/services/runner/jobtypes"
	"github.com/jobwire/jobwire/services/runner/worker"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
)

// configFile is the configuration under test.
const configFile = "../../deploy/nats/nats.conf"

// clusterConfigFile is a cluster node's (configFile plus routes), and
// clusterPassword the routes' password it reads from the environment.
const (
	clusterConfigFile = "../../deploy/nats/cluster.conf"
	clusterPassword   = "route-Secret-5e1b0c"
)

// The passwords the configuration reads from the environment. The
// gateway's starts with digits on purpose: the server parses an
// environment value like a config value.
var passwords = map[string]string{
	"gateway":  "0123abcdef0123456789abcdef0123456789abcdef01",
	"runner":   "runner-Secret-7f3a9c",
	"observer": "observer-Secret-c41d2e",
	"setup":    "setup-Secret-9b7e15",
}

func TestMain(m *testing.M) {
	// Set once for every test, so the tests may run in parallel
	// (t.Setenv forbids that).
	for user, pw := range passwords {
		os.Setenv("JOBWIRE_"+strings.ToUpper(user)+"_PASSWORD", pw)
	}
	os.Setenv("JOBWIRE_CLUSTER_PASSWORD", clusterPassword)
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) {
		if buildDir != "" {
			os.RemoveAll(buildDir)
		}
	}))
}

// startServer runs a server configured by configFile (with a free port, a
// temporary store and no monitoring port), shut down when the test ends.
func startServer(t testing.TB, change ...func(*server.Options)) *server.Server {
	t.Helper()
	opts, err := server.ProcessConfigFile(configFile)
	if err != nil {
		t.Fatalf("process %s: %v", configFile, err)
	}
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, 0
	opts.StoreDir = t.TempDir()
	opts.NoLog, opts.NoSigs = true, true
	for _, c := range change {
		c(opts)
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("nats server not ready in 10s")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// asyncErrors records a connection's asynchronous errors (permissions
// violations among them).
type asyncErrors struct {
	mu   sync.Mutex
	errs []error
	wake chan struct{}
}

func newAsyncErrors() *asyncErrors { return &asyncErrors{wake: make(chan struct{}, 1)} }

func (a *asyncErrors) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	a.mu.Lock()
	a.errs = append(a.errs, err)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *asyncErrors) all() []error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]error(nil), a.errs...)
}

// violation waits (up to 5s) for the server's permissions violation for
// op ("publish" or "subscription") on subject, and fails the test without
// it.
func (a *asyncErrors) violation(t testing.TB, op, subject string) {
	t.Helper()
	want := strings.ToLower(fmt.Sprintf("permissions violation for %s to %q", op, subject))
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for {
		for _, err := range a.all() {
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(strings.ToLower(err.Error()), want) {
				return
			}
		}
		select {
		case <-a.wake:
		case <-deadline.C:
			t.Fatalf("no permissions violation for %s to %q within 5s; async errors: %v", op, subject, a.all())
		}
	}
}

// none fails the test if the connection got any asynchronous error.
func (a *asyncErrors) none(t testing.TB, who string) {
	t.Helper()
	for _, err := range a.all() {
		t.Errorf("%s: unexpected asynchronous error: %v", who, err)
	}
}

// conn is a connection as one of the configuration's users.
type conn struct {
	*nats.Conn
	errs *asyncErrors
}

// connectAs connects as user with the password of the configuration and
// its private inbox prefix, through natsconn.Auth as the services do.
func connectAs(t testing.TB, s *server.Server, user string) conn {
	t.Helper()
	auth := natsconn.Auth{User: user, Password: passwords[user], InboxPrefix: "_INBOX_" + user}
	opts, err := auth.Options()
	if err != nil {
		t.Fatal(err)
	}
	errs := newAsyncErrors()
	opts = append(opts, nats.Name("natsperm-"+user), nats.ErrorHandler(errs.handler))
	nc, err := nats.Connect(s.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return conn{nc, errs}
}

// testContext ends after d or with the test.
func testContext(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// logWriter sends a slog text handler's lines to the test log.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// startRunner runs a runner of the built-in job types as user "runner"
// until the test ends.
func startRunner(t testing.TB, s *server.Server) (*worker.Runner, conn) {
	t.Helper()
	r, rn := newRunner(t, s)
	run(t, r)
	return r, rn
}

// runnerAckWait is short, so that a job of a second or more heartbeats
// (acks "in progress") several times before its final ack.
const runnerAckWait = time.Second

// jetStreamAs connects as user (connectAs) and opens JetStream on it.
func jetStreamAs(t testing.TB, s *server.Server, user string) (conn, jetstream.JetStream) {
	t.Helper()
	c := connectAs(t, s, user)
	js, err := jetstream.New(c.Conn)
	if err != nil {
		t.Fatal(err)
	}
	return c, js
}

// setUpTopology does what jobwire-setup does, as user "setup": it creates
// or updates the streams and buckets (idempotent, so any test helper may
// call it again).
func setUpTopology(t testing.TB, s *server.Server) {
	t.Helper()
	su, js := jetStreamAs(t, s, "setup")
	if _, err := (jobs.Topology{}).CreateOrUpdate(testContext(t, 10*time.Second), js); err != nil {
		t.Fatalf("CreateOrUpdate as setup: %v", err)
	}
	su.errs.none(t, "setup")
}

// newRunner makes a runner of the built-in job types as user "runner",
// once the topology is set up: it checks the streams (TOPOLOGY=check),
// creates its consumer, and registers the types.
func newRunner(t testing.TB, s *server.Server) (*worker.Runner, conn) {
	t.Helper()
	setUpTopology(t, s)
	rn := connectAs(t, s, "runner")
	log := slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	r, err := worker.New(testContext(t, 10*time.Second), rn.Conn, worker.Config{
		Concurrency: 2, ShutdownGrace: 100 * time.Millisecond, ProgressInterval: 10 * time.Millisecond, Logger: log,
		AckWait: runnerAckWait, CheckTopology: true,
	}, jobtypes.Builtin()...)
	if err != nil {
		t.Fatalf("worker.New as runner: %v", err)
	}
	return r, rn
}

// run runs r until the test ends.
func run(t testing.TB, r *worker.Runner) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// gatewaySide plays the gateway's part on the gateway user's connection,
// with the same calls services/gateway makes.
type gatewaySide struct {
	conn
	js      jetstream.JetStream
	streams *jobs.Streams
}

// startGateway connects as user "gateway" once the topology is set up,
// and checks the streams as the gateway does with TOPOLOGY=check.
func startGateway(t testing.TB, s *server.Server) *gatewaySide {
	t.Helper()
	setUpTopology(t, s)
	gw := connectAs(t, s, "gateway")
	js, err := jetstream.New(gw.Conn)
	if err != nil {
		t.Fatal(err)
	}
	streams, err := jobs.Topology{}.Check(testContext(t, 10*time.Second), js)
	if err != nil {
		t.Fatalf("Check as gateway: %v", err)
	}
	return &gatewaySide{conn: gw, js: js, streams: streams}
}

// enqueue stores a demo job as the gateway does (jobs.Enqueue).
func (g *gatewaySide) enqueue(t testing.TB, id string, input jobtypes.DemoInput) jobs.Event {
	t.Helper()
	in, _ := json.Marshal(input)
	ev, err := jobs.Enqueue(testContext(t, 5*time.Second), g.js, jobs.Request{ID: id, Type: "demo", Input: in, CreatedAt: time.Now(), Owner: "alice"})
	if err != nil {
		t.Fatalf("Enqueue as gateway: %v", err)
	}
	return ev
}

// untilEnd reads events from sub until the job's terminal event and
// returns them all.
func untilEnd(t testing.TB, sub *nats.Subscription, d time.Duration) []jobs.Event {
	t.Helper()
	deadline := time.Now().Add(d)
	var evs []jobs.Event
	for {
		m, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			t.Fatalf("after %d events: %v", len(evs), err)
		}
		var ev jobs.Event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatalf("event on %s: %v", m.Subject, err)
		}
		evs = append(evs, ev)
		if ev.Status.Terminal() {
			return evs
		}
	}
}

// waitFor polls cond every 10ms until it holds, for up to d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// streamMsgs is how many messages stream holds, read from the server
// itself (no user may read every stream's state).
func streamMsgs(t testing.TB, s *server.Server, stream string) uint64 {
	t.Helper()
	return streamState(t, s, stream).Msgs
}

// unsettledRequests is how many job requests the runners' consumers have
// not settled (not delivered yet, or not acked), read from the server
// itself; the stream keeps settled requests, as the jobs' first events.
func unsettledRequests(t testing.TB, s *server.Server) uint64 {
	t.Helper()
	jsz, err := s.Jsz(&server.JSzOptions{Accounts: true, Streams: true, Consumer: true})
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, a := range jsz.AccountDetails {
		for _, sd := range a.Streams {
			for _, c := range sd.Consumer {
				if sd.Name == jobs.Stream && strings.HasPrefix(c.Name, "runners_") {
					n += c.NumPending + uint64(c.NumAckPending)
				}
			}
		}
	}
	return n
}

// streamState is the state of stream, read from the server itself.
func streamState(t testing.TB, s *server.Server, stream string) server.StreamState {
	t.Helper()
	jsz, err := s.Jsz(&server.JSzOptions{Accounts: true, Streams: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range jsz.AccountDetails {
		for _, sd := range a.Streams {
			if sd.Name == stream {
				return sd.State
			}
		}
	}
	t.Fatalf("no stream %s", stream)
	return server.StreamState{}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
