package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// connect opens a NATS connection of the tool, from source address src
// (nil: any).
func connect(url, name string, src net.IP) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name(name), nats.Timeout(10 * time.Second), nats.MaxReconnects(0)}
	if src != nil {
		opts = append(opts, nats.SetCustomDialer(&net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: src}}))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", url, err)
	}
	return nc, nil
}

// connectJS is connect plus a JetStream handle on the connection.
func connectJS(url, name string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := connect(url, name, nil)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// scratchStream creates (afresh) a stream of the tool's own; the returned
// function deletes it.
func scratchStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, func(), error) {
	_ = js.DeleteStream(ctx, cfg.Name) // a leftover of an interrupted run
	s, err := js.CreateStream(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("create scratch stream %s: %w", cfg.Name, err)
	}
	return s, func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = js.DeleteStream(dctx, cfg.Name)
	}, nil
}

// waitDrained waits until the runners' consumers on JOBS have nothing
// waiting and nothing in flight, i.e. every job request has been run and
// acked, so a phase does not measure the last one's backlog. It returns
// how long that took.
func waitDrained(ctx context.Context, js jetstream.JetStream, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last uint64
	for {
		s, err := js.Stream(ctx, jobs.Stream)
		if err == nil {
			var left uint64
			list := s.ListConsumers(ctx)
			for info := range list.Info() {
				left += info.NumPending + uint64(info.NumAckPending)
			}
			if err = list.Err(); err == nil && left == 0 {
				return time.Since(start), nil
			}
			last = left
		}
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return time.Since(start), fmt.Errorf("job queue not drained after %v (%d job requests left)", limit, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
