package natstest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/devstack"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// ClusterNATS is a cluster of embedded NATS servers with JetStream on
// loopback, routed to each other, each storing in a directory of its own.
// A test stops a node and starts it again on the same ports and storage,
// as a NATS node that crashed and came back.
type ClusterNATS struct {
	t     testing.TB
	nodes []*clusterNode
}

type clusterNode struct {
	opts *server.Options
	srv  *server.Server // nil while stopped
}

// Cluster starts n routed NATS servers with JetStream (named n0, n1, …)
// and waits until JetStream has a meta leader; the ones running when the
// test ends are shut down.
func Cluster(t testing.TB, n int) *ClusterNATS {
	t.Helper()
	c := &ClusterNATS{t: t}
	clientAddrs, routeAddrs := freeAddrs(t, n), freeAddrs(t, n)
	var routes []*url.URL
	for _, a := range routeAddrs {
		routes = append(routes, &url.URL{Scheme: "nats", Host: a})
	}
	for i := range n {
		opts, err := devstack.Options(clientAddrs[i], t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		opts.ServerName = fmt.Sprintf("n%d", i)
		host, port := splitAddr(t, routeAddrs[i])
		opts.Cluster = server.ClusterOpts{Name: "jobwire-test", Host: host, Port: port}
		opts.Routes = routes // a route to itself is ignored
		c.nodes = append(c.nodes, &clusterNode{opts: opts})
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			if nd.srv != nil {
				devstack.StopNATS(nd.srv)
			}
		}
	})
	for i := range c.nodes {
		c.Start(i)
	}
	c.WaitMetaLeader()
	return c
}

// freeAddrs finds n free loopback ports.
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var addrs []string
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	return addrs
}

func splitAddr(t testing.TB, addr string) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	var p int
	if _, err := fmt.Sscan(port, &p); err != nil {
		t.Fatal(err)
	}
	return host, p
}

// Size is how many nodes the cluster has.
func (c *ClusterNATS) Size() int { return len(c.nodes) }

// URLs are every node's client URL, comma separated, as NATS_URL takes
// them; they stay the same across restarts.
func (c *ClusterNATS) URLs() string {
	var urls []string
	for i := range c.nodes {
		urls = append(urls, c.URL(i))
	}
	return strings.Join(urls, ",")
}

// URL is node i's client URL.
func (c *ClusterNATS) URL(i int) string {
	o := c.nodes[i].opts
	return fmt.Sprintf("nats://%s:%d", o.Host, o.Port)
}

// Name is node i's server name.
func (c *ClusterNATS) Name(i int) string { return c.nodes[i].opts.ServerName }

// Index is the node whose server name is name, or -1.
func (c *ClusterNATS) Index(name string) int {
	for i, nd := range c.nodes {
		if nd.opts.ServerName == name {
			return i
		}
	}
	return -1
}

// Server is node i's running server (nil while it is stopped).
func (c *ClusterNATS) Server(i int) *server.Server { return c.nodes[i].srv }

// Stop shuts node i down, as a crash of that NATS node.
func (c *ClusterNATS) Stop(i int) {
	c.t.Helper()
	if nd := c.nodes[i]; nd.srv != nil {
		devstack.StopNATS(nd.srv)
		nd.srv = nil
	}
}

// Start starts node i (again) on its ports and storage.
func (c *ClusterNATS) Start(i int) {
	c.t.Helper()
	nd := c.nodes[i]
	if nd.srv != nil {
		return
	}
	// A copy: the server fills in options, and the next start must begin
	// from the same ones.
	opts := *nd.opts
	opts.Routes = append([]*url.URL(nil), nd.opts.Routes...)
	srv, err := devstack.Start(&opts)
	if err != nil {
		c.t.Fatalf("start nats node %d: %v", i, err)
	}
	nd.srv = srv
}

// WaitMetaLeader waits until the running nodes agree on a JetStream meta
// leader (streams can be created and changed then).
func (c *ClusterNATS) WaitMetaLeader() {
	c.t.Helper()
	// A leader is not enough: until it has heard from every running
	// peer, placing a replicated stream fails with "no suitable peers
	// for placement, peer offline" (seen on a loaded machine).
	c.poll("a JetStream meta leader that sees every running node", 30*time.Second, func() error {
		running := 0
		for _, nd := range c.nodes {
			if nd.srv != nil {
				running++
			}
		}
		for _, nd := range c.nodes {
			if nd.srv != nil && nd.srv.JetStreamIsLeader() {
				if peers := nd.srv.JetStreamClusterPeers(); len(peers) < running {
					return fmt.Errorf("the leader sees %d of %d running nodes", len(peers), running)
				}
				return nil
			}
		}
		return fmt.Errorf("no node leads")
	})
}

// StreamLeader is the node that leads stream now, as js sees it.
func (c *ClusterNATS) StreamLeader(js jetstream.JetStream, stream string) int {
	c.t.Helper()
	leader := -1
	c.poll("a leader of stream "+stream, 20*time.Second, func() error {
		info, err := streamInfo(js, stream)
		if err != nil {
			return err
		}
		if info.Cluster == nil || info.Cluster.Leader == "" {
			return fmt.Errorf("no leader")
		}
		leader = c.Index(info.Cluster.Leader)
		return nil
	})
	return leader
}

// WaitStreamCurrent waits until stream has a leader and every replica is
// online and current: losing any one node then keeps a majority that has
// every stored message.
func (c *ClusterNATS) WaitStreamCurrent(js jetstream.JetStream, stream string, timeout time.Duration) {
	c.t.Helper()
	c.poll("every replica of "+stream+" current", timeout, func() error {
		info, err := streamInfo(js, stream)
		if err != nil {
			return err
		}
		if info.Cluster == nil || info.Cluster.Leader == "" {
			return fmt.Errorf("no leader")
		}
		if want := info.Config.Replicas - 1; len(info.Cluster.Replicas) != want {
			return fmt.Errorf("%d of %d followers known", len(info.Cluster.Replicas), want)
		}
		for _, r := range info.Cluster.Replicas {
			if r.Offline || !r.Current {
				return fmt.Errorf("replica %s: offline %v, current %v, lag %d", r.Name, r.Offline, r.Current, r.Lag)
			}
		}
		return nil
	})
}

func streamInfo(js jetstream.JetStream, stream string) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	return s.CachedInfo(), nil
}

// poll calls f until it succeeds, failing the test after timeout.
func (c *ClusterNATS) poll(what string, timeout time.Duration, f func() error) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
