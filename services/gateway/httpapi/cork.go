package httpapi

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"time"
)

// corkedConn lets a watcher's writer send every frame it has ready with
// one write(2). coder/websocket flushes each message to its connection;
// while the writer holds the cork those bytes gather here, and uncork
// writes them at once. Writes from elsewhere (a pong, a close frame) go
// straight through when the cork is out, or join the gathered bytes in
// order when it is in.
type corkedConn struct {
	net.Conn
	timeout time.Duration // longest a write of what gathered may take
	mu      sync.Mutex
	corked  bool
	buf     *[]byte // from corkBufs while something is gathered
	// failed is the first write error. After it nothing more is written:
	// a write that timed out may have sent part of a frame, and a close
	// frame after that would reach the client as garbage.
	failed error
}

// corkLimit is the most gathered before it is written anyway.
const corkLimit = 64 << 10

var corkBufs = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

func (c *corkedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failed != nil {
		return 0, c.failed
	}
	if !c.corked {
		n, err := c.Conn.Write(p)
		c.failed = err
		return n, err
	}
	if c.buf == nil {
		c.buf = corkBufs.Get().(*[]byte)
	}
	*c.buf = append(*c.buf, p...)
	if len(*c.buf) >= corkLimit {
		if err := c.writeGathered(c.timeout); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// cork starts gathering.
func (c *corkedConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// uncork writes what was gathered, giving up after c.timeout, and lets
// later writes go straight through.
func (c *corkedConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	if c.failed != nil {
		return c.failed
	}
	if c.buf == nil {
		return nil
	}
	return c.writeGathered(c.timeout)
}

// Close sends what was gathered, if no write is under way (coder/websocket
// answers a client's close frame and closes the connection at once, so the
// answer may still sit here), then closes the connection. A write under
// way is not waited for: closing is what ends it.
func (c *corkedConn) Close() error {
	if c.mu.TryLock() {
		if c.failed == nil && c.buf != nil {
			_ = c.writeGathered(time.Second)
		}
		c.mu.Unlock()
	}
	return c.Conn.Close()
}

// writeGathered writes the gathered bytes, giving up after timeout, and
// returns the buffer to the pool; c.mu is held.
func (c *corkedConn) writeGathered(timeout time.Duration) error {
	b := c.buf
	c.buf = nil
	if timeout > 0 {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(timeout))
		defer func() { _ = c.Conn.SetWriteDeadline(time.Time{}) }()
	}
	_, err := c.Conn.Write(*b)
	if *b = (*b)[:0]; cap(*b) <= 2*corkLimit {
		corkBufs.Put(b)
	}
	c.failed = err
	return err
}

// corkingWriter hands the WebSocket library a corkedConn when it hijacks
// the connection; conn is set once Hijack has run.
type corkingWriter struct {
	http.ResponseWriter
	timeout time.Duration
	conn    *corkedConn
}

func (w *corkingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.conn = &corkedConn{Conn: nc, timeout: w.timeout}
	brw.Writer.Reset(w.conn)
	return w.conn, brw, nil
}
