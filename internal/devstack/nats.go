// Package devstack starts jobwire's embedded NATS server with JetStream:
// the server of the gateway's --dev mode, and the one place that starts
// NATS servers for tests (internal/natstest, workertest). (The --dev
// mode's in-process runner is wired in the gateway's run.go: the runner's
// own tests start their servers here, so this package cannot import it.)
package devstack

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// StartNATS runs a NATS server with JetStream storing in dir, listening on
// addr ("host:port"; port 0 or -1 picks a free one).
func StartNATS(addr, dir string) (*server.Server, error) {
	opts, err := Options(addr, dir)
	if err != nil {
		return nil, err
	}
	return Start(opts)
}

// Options are an embedded server's options: JetStream storing in dir,
// clients on addr ("host:port"; port 0 or -1 picks a free one), no logs,
// no signal handlers. Callers may add to them (a cluster's routes) before
// Start.
func Options(addr, dir string) (*server.Options, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("nats address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("nats address %q: bad port", addr)
	}
	if port == 0 {
		port = -1
	}
	return &server.Options{
		ServerName: "jobwire-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoLog:      true,
		NoSigs:     true,
	}, nil
}

// Start runs a server with opts (see Options), creating its storage
// directory, and waits until it accepts clients.
func Start(opts *server.Options) (*server.Server, error) {
	if err := os.MkdirAll(opts.StoreDir, 0o755); err != nil {
		return nil, err
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, err
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, errors.New("embedded nats server did not become ready in 10s")
	}
	return s, nil
}

// StopNATS shuts s down and waits until it is gone.
func StopNATS(s *server.Server) {
	s.Shutdown()
	s.WaitForShutdown()
}

// StartTempNATS runs a NATS server with JetStream on a free loopback port,
// storing in a new temporary directory. stop shuts it down and removes the
// directory. For examples and test helpers that have no testing.T.
func StartTempNATS() (s *server.Server, stop func(), err error) {
	dir, err := os.MkdirTemp("", "jobwire-nats-")
	if err != nil {
		return nil, nil, err
	}
	if s, err = StartNATS("127.0.0.1:-1", dir); err != nil {
		_ = os.RemoveAll(dir)
		return nil, nil, err
	}
	return s, func() { StopNATS(s); _ = os.RemoveAll(dir) }, nil
}
