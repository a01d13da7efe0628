package httpapi

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// countingConn counts the writes that reach the connection.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

func tcpPair(t *testing.T) (server *countingConn, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { s.Close(); client.Close() })
	return &countingConn{Conn: s}, client
}

func TestCorkedConnSendsWhatGatheredInOneWrite(t *testing.T) {
	t.Parallel()
	raw, client := tcpPair(t)
	c := &corkedConn{Conn: raw, timeout: time.Second}

	c.cork()
	for _, frame := range []string{"one ", "two ", "three "} {
		if _, err := c.Write([]byte(frame)); err != nil {
			t.Fatal(err)
		}
	}
	if n := raw.writes.Load(); n != 0 {
		t.Fatalf("%d writes reached the connection while corked", n)
	}
	if err := c.uncork(); err != nil {
		t.Fatal(err)
	}
	if n := raw.writes.Load(); n != 1 {
		t.Fatalf("uncork made %d writes, want 1", n)
	}
	// Uncorked, a write (a pong, a close frame) goes straight through.
	if _, err := c.Write([]byte("four")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("one two three four"))
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(client, got); err != nil || string(got) != "one two three four" {
		t.Fatalf("client read %q, %v", got, err)
	}

	// More than corkLimit gathered is written without waiting for uncork.
	c.cork()
	big := bytes.Repeat([]byte("x"), corkLimit/2+1)
	for range 2 {
		if _, err := c.Write(big); err != nil {
			t.Fatal(err)
		}
	}
	if n := raw.writes.Load(); n != 3 {
		t.Fatalf("%d writes after passing the cork limit, want 3", n)
	}
	if err := c.uncork(); err != nil || raw.writes.Load() != 3 {
		t.Fatalf("uncork with nothing gathered: %v, %d writes", err, raw.writes.Load())
	}
}

// A reader that takes nothing makes the uncorking write time out instead
// of blocking the watcher's writer for ever.
func TestCorkedConnUncorkTimesOut(t *testing.T) {
	t.Parallel()
	raw, _ := tcpPair(t)
	c := &corkedConn{Conn: raw, timeout: 200 * time.Millisecond}
	chunk := bytes.Repeat([]byte("y"), corkLimit-1)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) { // fill the socket buffers
		c.cork()
		if _, err := c.Write(chunk); err != nil {
			t.Fatal(err)
		}
		err := c.uncork()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
		if err != nil {
			t.Fatalf("uncork: %v, want a deadline error", err)
		}
	}
	t.Fatal("the socket never filled up")
}

// After a write failed (it may have sent part of a frame), the connection
// writes nothing more: no close frame after half a frame.
func TestCorkedConnWritesNothingAfterAFailure(t *testing.T) {
	t.Parallel()
	raw, client := tcpPair(t)
	c := &corkedConn{Conn: raw, timeout: time.Second}
	_ = client.Close()
	_ = raw.Conn.(*net.TCPConn).SetLinger(0)
	var err error
	for range 1000 { // until the closed peer makes a write fail
		if _, err = c.Write(bytes.Repeat([]byte("z"), 1024)); err != nil {
			break
		}
	}
	if err == nil {
		t.Fatal("writes to a closed peer kept succeeding")
	}
	before := raw.writes.Load()
	if _, err := c.Write([]byte("close frame")); err == nil || raw.writes.Load() != before {
		t.Fatalf("a write after a failure: %v, %d more writes reached the connection", err, raw.writes.Load()-before)
	}
	c.cork()
	if err := c.uncork(); err == nil {
		t.Fatal("uncork after a failure reported no error")
	}
}

// Closing the connection sends what was gathered first: coder/websocket
// answers a client's close frame and closes at once, while the writer may
// still hold the cork.
func TestCorkedConnCloseSendsWhatGathered(t *testing.T) {
	t.Parallel()
	raw, client := tcpPair(t)
	c := &corkedConn{Conn: raw, timeout: time.Second}
	c.cork()
	if _, err := c.Write([]byte("close reply")); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(client)
	if err != nil || string(got) != "close reply" {
		t.Fatalf("client read %q, %v; want the gathered bytes, then the end", got, err)
	}
}
