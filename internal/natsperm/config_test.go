package natsperm_test

import (
	"bufio"
	"flag"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

// Started from the file as it is, the server listens on loopback only:
// the client port and the monitoring port, which has no password.
func TestConfigListensOnLoopbackByDefault(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(o *server.Options) {
		opts, err := server.ProcessConfigFile(configFile)
		if err != nil {
			t.Fatal(err)
		}
		o.Host, o.HTTPHost, o.HTTPPort = opts.Host, opts.HTTPHost, -1 // the file's hosts, free ports
		if opts.HTTPPort == 0 {
			t.Error("the file sets no monitoring port (probes use /healthz)")
		}
	})
	for what, addr := range map[string]net.Addr{"client": s.Addr(), "monitoring": s.MonitorAddr()} {
		tcp, ok := addr.(*net.TCPAddr)
		if !ok || !tcp.IP.IsLoopback() {
			t.Errorf("%s port listens on %v, want loopback only", what, addr)
		}
	}
}

// Every nats-server command line deploy/nats/README.md shows is one the
// server accepts with this file, and -a opens the client port.
func TestDocumentedCommandLinesWork(t *testing.T) {
	t.Parallel()
	f, err := os.Open("../../deploy/nats/README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	found := 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		line, _, _ := strings.Cut(sc.Text(), "#")
		args := strings.Fields(line)
		if len(args) == 0 || args[0] != "nats-server" {
			continue
		}
		found++
		for i, a := range args {
			switch a {
			case "deploy/nats/nats.conf":
				args[i] = configFile
			case "deploy/nats/cluster.conf":
				args[i] = clusterConfigFile
			}
		}
		fs := flag.NewFlagSet("nats-server", flag.ContinueOnError)
		opts, err := server.ConfigureOptions(fs, args[1:], func() {}, func() {}, func() {})
		if err != nil {
			t.Errorf("%q: %v", line, err)
			continue
		}
		if strings.Contains(line, "-a 0.0.0.0") && opts.Host != "0.0.0.0" {
			t.Errorf("%q listens on %q, want 0.0.0.0", line, opts.Host)
		}
	}
	if found == 0 {
		t.Fatal("the README shows no nats-server command line")
	}
}

// cluster.conf is nats.conf (the same users) plus a cluster whose routes
// need a password, listening on every interface (containers).
func TestClusterConfig(t *testing.T) {
	t.Parallel()
	single, err := server.ProcessConfigFile(configFile)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(clusterConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(opts.Users) != len(single.Users) || len(opts.Users) == 0 {
		t.Errorf("cluster.conf has %d users, nats.conf %d", len(opts.Users), len(single.Users))
	}
	if opts.Host != "0.0.0.0" || opts.HTTPHost != "0.0.0.0" || opts.HTTPPort != 8222 {
		t.Errorf("listens on %s, monitoring on %s:%d; want every interface", opts.Host, opts.HTTPHost, opts.HTTPPort)
	}
	c := opts.Cluster
	if c.Name != "jobwire" || c.Port != 6222 || c.Username != "route" || c.Password != clusterPassword {
		t.Errorf("cluster %q on port %d, route user %q (password set: %v)", c.Name, c.Port, c.Username, c.Password == clusterPassword)
	}
	if !opts.JetStream {
		t.Error("JetStream is off")
	}
}
