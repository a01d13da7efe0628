// Package natsembed starts an in-process NATS server with JetStream, for
// the one-command dev mode and for tests.
package natsembed

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Start runs a NATS server with JetStream storing in dir, listening on
// addr ("host:port"; port 0 or -1 picks a free one).
func Start(addr, dir string) (*server.Server, error) {
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
	s, err := server.NewServer(&server.Options{
		ServerName: "jobwire-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoLog:      true,
		NoSigs:     true,
	})
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

// Stop shuts s down and waits until it is gone.
func Stop(s *server.Server) {
	s.Shutdown()
	s.WaitForShutdown()
}
