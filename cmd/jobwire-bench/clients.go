package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// perSource is how many connections the tool opens from one source
// address at most: one address reaches about 28 k ports per destination,
// and TIME_WAIT of an earlier phase keeps some of them.
const perSource = 4000

// sourceIPs returns the loopback source addresses to spread n connections
// to target over: 127.0.0.1, 127.0.0.2, ... It returns nil (any address)
// when the target is not on loopback.
func sourceIPs(target string, n int) []net.IP {
	host := target
	if u, err := url.Parse(target); err == nil && u.Host != "" {
		host = u.Hostname()
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() || ip.To4() == nil {
		return nil
	}
	k := min(max((n+perSource-1)/perSource, 1), 250)
	ips := make([]net.IP, k)
	for i := range ips {
		ips[i] = net.IPv4(127, 0, 0, byte(1+i))
	}
	return ips
}

// pick returns the source address of connection i.
func pick(ips []net.IP, i int) net.IP {
	if len(ips) == 0 {
		return nil
	}
	return ips[i%len(ips)]
}

// wsDialer opens WebSockets to the gateway from several source addresses.
type wsDialer struct {
	url     string
	header  http.Header
	ips     []net.IP
	clients []*http.Client
}

func newWSDialer(sys *system, n int) *wsDialer {
	d := &wsDialer{url: sys.URL + "/ws", header: http.Header{"Authorization": {"Bearer " + sys.Token}}, ips: sourceIPs(sys.URL, n)}
	ips := d.ips
	if len(ips) == 0 {
		ips = []net.IP{nil}
	}
	for _, ip := range ips {
		nd := &net.Dialer{Timeout: 10 * time.Second}
		if ip != nil {
			nd.LocalAddr = &net.TCPAddr{IP: ip}
		}
		d.clients = append(d.clients, &http.Client{Transport: &http.Transport{DialContext: nd.DialContext, DisableCompression: true}})
	}
	return d
}

func (d *wsDialer) dial(ctx context.Context, i int) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, d.url, &websocket.DialOptions{HTTPClient: d.clients[i%len(d.clients)], HTTPHeader: d.header})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("websocket %d: %s: %w", i, resp.Status, err)
		}
		return nil, fmt.Errorf("websocket %d: %w", i, err)
	}
	c.SetReadLimit(1 << 20)
	return c, nil
}

// watch asks the gateway for a job's events on c.
func watch(ctx context.Context, c *websocket.Conn, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return c.Write(ctx, websocket.MessageText, []byte(`{"op":"watch","job_id":"`+id+`"}`))
}

// readFrames hands every text message of c to onMsg (the slice is reused)
// until c fails or ctx ends.
func readFrames(ctx context.Context, c *websocket.Conn, onMsg func([]byte, time.Time)) error {
	var buf bytes.Buffer
	for {
		typ, r, err := c.Reader(ctx)
		if err != nil {
			return err
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return err
		}
		if typ == websocket.MessageText {
			onMsg(buf.Bytes(), time.Now())
		}
	}
}

// eventPrefix starts every event frame: {"op":"event","job_id":...,"event":{...}}.
var eventPrefix = []byte(`{"op":"event",`)

// parallel runs f(0..n-1) with at most par running at once and returns
// the first error (the others still run to the end).
func parallel(ctx context.Context, n, par int, f func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range min(par, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}

// closedConn tells a connection closed on purpose from a failure.
func closedConn(err error) bool {
	return err == nil || errors.Is(err, context.Canceled) || errors.Is(err, net.ErrClosed) ||
		websocket.CloseStatus(err) == websocket.StatusNormalClosure || websocket.CloseStatus(err) == websocket.StatusGoingAway
}
