// Package natstest gives tests a real NATS server with JetStream.
package natstest

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/devstack"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Server starts an embedded NATS server with JetStream in a temporary
// directory; it is shut down when the test ends.
func Server(t testing.TB) *server.Server {
	t.Helper()
	return ServerIn(t, t.TempDir())
}

// ServerIn is Server with a given storage directory, for restart tests.
func ServerIn(t testing.TB, dir string) *server.Server {
	t.Helper()
	s, err := devstack.StartNATS("127.0.0.1:-1", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { devstack.StopNATS(s) })
	return s
}

// Connect opens a client connection to s, closed when the test ends.
func Connect(t testing.TB, s *server.Server, opts ...nats.Option) *nats.Conn {
	t.Helper()
	return ConnectURL(t, s.ClientURL(), opts...)
}

// ConnectURL opens a client connection to the servers at urls (comma
// separated), closed when the test ends.
func ConnectURL(t testing.TB, urls string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(urls, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// LostAnswers is a real JetStream publisher whose next Lose successful
// answers are lost on the way back: the message is stored, the caller
// sees a timeout. For tests of what a writer does when it cannot know
// whether its write landed.
type LostAnswers struct {
	jetstream.Publisher
	Lose     atomic.Int64 // successful answers to lose
	FailNext atomic.Int64 // failed answers to lose, once a success was lost
	lost     atomic.Bool
}

// Publish publishes for real, then maybe loses the answer.
func (l *LostAnswers) Publish(ctx context.Context, subject string, data []byte, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	return l.maybeLose(l.Publisher.Publish(ctx, subject, data, opts...))
}

// PublishMsg publishes for real, then maybe loses the answer.
func (l *LostAnswers) PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	return l.maybeLose(l.Publisher.PublishMsg(ctx, m, opts...))
}

func (l *LostAnswers) maybeLose(ack *jetstream.PubAck, err error) (*jetstream.PubAck, error) {
	switch {
	case err == nil && l.Lose.Add(-1) >= 0:
		l.lost.Store(true)
		return nil, context.DeadlineExceeded
	case err != nil && l.lost.Load() && l.FailNext.Add(-1) >= 0:
		return nil, context.DeadlineExceeded
	}
	return ack, err
}

// Restartable is an embedded server that a test stops and starts again on
// the same address and storage, as a restarted NATS server would be.
type Restartable struct {
	t    testing.TB
	addr string
	dir  string
	srv  *server.Server
}

// NewRestartable starts a server on a free loopback port in a temporary
// directory; the one running when the test ends is shut down.
func NewRestartable(t testing.TB) *Restartable {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	r := &Restartable{t: t, addr: addr, dir: t.TempDir()}
	r.start()
	t.Cleanup(func() { devstack.StopNATS(r.srv) })
	return r
}

// Server is the server running now.
func (r *Restartable) Server() *server.Server { return r.srv }

// URL is the server's client URL; it stays the same across restarts.
func (r *Restartable) URL() string { return "nats://" + r.addr }

// Restart shuts the server down and starts it again on its storage.
func (r *Restartable) Restart() {
	r.t.Helper()
	devstack.StopNATS(r.srv)
	r.start()
}

func (r *Restartable) start() {
	r.t.Helper()
	srv, err := devstack.StartNATS(r.addr, r.dir)
	if err != nil {
		r.t.Fatal(err)
	}
	r.srv = srv
}

// Consumers is how many consumers stream has now, besides the gateways'
// indexer (jobs.IndexerConsumer, made once by the set-up).
func Consumers(t testing.TB, stream jetstream.Stream) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := 0
	names := stream.ConsumerNames(ctx)
	for name := range names.Name() {
		if name != jobs.IndexerConsumer {
			n++
		}
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// LockedBuffer is a bytes.Buffer that a system under test (its logs, a
// process's output) and the test may use at once.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Reset empties the buffer.
func (l *LockedBuffer) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Reset()
}

// Lines counts the lines written so far.
func (l *LockedBuffer) Lines() int { return strings.Count(l.String(), "\n") }
