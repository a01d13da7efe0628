//go:build dockertest

package docker

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// projectPrefix starts the compose project name of every run of this
// test; the process id follows, so a later run finds (and removes) what a
// killed run left behind.
const projectPrefix = "jwclustertest"

// imagePrefix names the images the test builds. They are kept (and
// overwritten by the next run) so that the next run's build is warm.
const imagePrefix = "jobwire-clustertest"

// stack is one docker-compose project of docker-compose.yml.
type stack struct {
	t       *testing.T
	root    string   // the repository
	compose []string // "docker-compose" or "docker compose"
	project string
	env     []string
	// observerPassword is the NATS observer's.
	observerPassword string
}

// requireDocker skips the test without Docker and Compose, unless CI=true:
// then it fails.
func requireDocker(t *testing.T) []string {
	t.Helper()
	missing := func(what string, err error) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %s is not usable: %v", what, err)
		}
		t.Skipf("%s is not usable here: %v", what, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		missing("docker", fmt.Errorf("%w: %s", err, out))
	}
	if err := exec.CommandContext(ctx, "docker-compose", "version").Run(); err == nil {
		return []string{"docker-compose"}
	}
	if out, err := exec.CommandContext(ctx, "docker", "compose", "version").CombinedOutput(); err != nil {
		missing("docker-compose (or docker compose)", fmt.Errorf("%w: %s", err, out))
	}
	return []string{"docker", "compose"}
}

// newStack makes the project's settings: random passwords, this run's
// name, images built offline from goImage on scratch, every published
// port a free one on 127.0.0.1. Whatever it brings up is torn down when
// the test ends, also when it fails or is interrupted.
func newStack(t *testing.T, compose []string, goImage string) *stack {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{t: t, root: root, compose: compose, project: fmt.Sprintf("%s%d%s", projectPrefix, os.Getpid(), randomHex(3))}
	s.observerPassword = randomHex(16)
	s.env = append(os.Environ(),
		"GO_IMAGE="+goImage, "RUNTIME_IMAGE=scratch", "JOBWIRE_IMAGE_PREFIX="+imagePrefix, "JOBWIRE_TAG=latest",
		"JOBWIRE_GATEWAY_PASSWORD="+randomHex(16), "JOBWIRE_RUNNER_PASSWORD="+randomHex(16),
		"JOBWIRE_OBSERVER_PASSWORD="+s.observerPassword, "JOBWIRE_SETUP_PASSWORD="+randomHex(16),
		"JOBWIRE_CLUSTER_PASSWORD="+randomHex(16), "JOBWIRE_SESSION_SECRET="+randomHex(32),
		"SUBMIT_RATE=6000", "ADDR_SUBMIT_RATE=6000",
	)
	for _, p := range []string{"NATS_1_PORT", "NATS_2_PORT", "NATS_3_PORT", "NATS_1_MONITOR_PORT", "NATS_2_MONITOR_PORT", "NATS_3_MONITOR_PORT", "GATEWAY_1_PORT", "GATEWAY_2_PORT"} {
		s.env = append(s.env, p+"=") // empty: a free port
	}
	removeStale(t, compose)
	var once sync.Once
	down := func() { once.Do(s.down) }
	t.Cleanup(down)
	// Interrupted (Ctrl-C, the CI's kill): tear down, then exit.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	stop := make(chan struct{})
	t.Cleanup(func() { signal.Stop(sigs); close(stop) })
	go func() {
		select {
		case sig := <-sigs:
			fmt.Fprintf(os.Stderr, "%v: tearing down compose project %s\n", sig, s.project)
			down()
			os.Exit(1)
		case <-stop:
		}
	}()
	return s
}

// run runs a compose command of the project (bounded by ctx) and returns
// its output; a failure fails the test.
func (s *stack) run(ctx context.Context, args ...string) string {
	s.t.Helper()
	out, err := s.try(ctx, args...)
	if err != nil {
		s.t.Fatalf("%s %s: %v\n%s", strings.Join(s.compose, " "), strings.Join(args, " "), err, out)
	}
	return out
}

func (s *stack) try(ctx context.Context, args ...string) (string, error) {
	full := append(append(append([]string{}, s.compose[1:]...), "-p", s.project, "-f", filepath.Join(s.root, "docker-compose.yml")), args...)
	cmd := exec.CommandContext(ctx, s.compose[0], full...)
	cmd.Dir = s.root
	cmd.Env = s.env
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// down removes the project's containers, networks and volumes, then
// checks by label that nothing is left.
func (s *stack) down() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := s.try(ctx, "down", "-v", "--remove-orphans", "--timeout", "5"); err != nil {
		fmt.Fprintf(os.Stderr, "compose down %s: %v\n%s", s.project, err, out)
	}
	removeByLabel(ctx, s.project)
}

// removeByLabel removes whatever of compose project name is left.
func removeByLabel(ctx context.Context, project string) {
	label := "label=com.docker.compose.project=" + project
	for _, kind := range [][]string{{"container", "rm", "-f", "-v"}, {"network", "rm"}, {"volume", "rm", "-f"}} {
		list := []string{kind[0], "ls", "-q", "--filter", label}
		if kind[0] == "container" {
			list = append(list, "-a")
		}
		out, err := exec.CommandContext(ctx, "docker", list...).Output()
		if err != nil || len(bytes.TrimSpace(out)) == 0 {
			continue
		}
		args := append(append([]string{}, kind...), strings.Fields(string(out))...)
		if out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// removeStale tears down projects of earlier runs whose process is gone
// (a run killed by SIGKILL cannot clean up after itself).
func removeStale(t *testing.T, compose []string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seen := map[string]bool{}
	for _, kind := range []string{"container", "network", "volume"} {
		args := []string{kind, "ls", "--format", `{{.Label "com.docker.compose.project"}}`}
		if kind == "container" {
			args = append(args, "-a")
		}
		out, err := exec.CommandContext(ctx, "docker", args...).Output()
		if err != nil {
			continue
		}
		for _, p := range strings.Fields(string(out)) {
			seen[p] = true
		}
	}
	for p := range seen {
		rest, ok := strings.CutPrefix(p, projectPrefix)
		if !ok || len(rest) < 7 {
			continue
		}
		pid, err := strconv.Atoi(rest[:len(rest)-6])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil && runtime.GOOS == "linux" {
			continue // that run is still going
		}
		t.Logf("removing compose project %s left by an earlier run", p)
		removeByLabel(ctx, p)
	}
}

// container is the id of service's container.
func (s *stack) container(ctx context.Context, service string) string {
	s.t.Helper()
	id := strings.TrimSpace(s.run(ctx, "ps", "-q", service))
	if id == "" {
		s.t.Fatalf("no container of %s", service)
	}
	return id
}

// port is the 127.0.0.1 address that service's port is published on
// (it changes when the container starts again).
func (s *stack) port(ctx context.Context, service string, port int) (string, error) {
	out, err := s.try(ctx, "port", service, strconv.Itoa(port))
	if err != nil {
		return "", fmt.Errorf("port %s %d: %v: %s", service, port, err, out)
	}
	addr := strings.TrimSpace(out)
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		return "", fmt.Errorf("port %s %d: %q is not on 127.0.0.1", service, port, addr)
	}
	return addr, nil
}

// docker runs a docker command (bounded by ctx); a failure fails the test.
func docker(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// waitHealthy waits until every container of services is running and
// healthy.
func (s *stack) waitHealthy(ctx context.Context, services ...string) {
	s.t.Helper()
	for _, svc := range services {
		id := s.container(ctx, svc)
		for {
			out, _ := exec.CommandContext(ctx, "docker", "inspect", "--format", "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}", id).Output()
			if strings.TrimSpace(string(out)) == "running healthy" {
				break
			}
			if ctx.Err() != nil {
				logs, _ := s.try(context.Background(), "logs", "--tail", "30", svc)
				s.t.Fatalf("%s is not healthy (%s)\n%s", svc, strings.TrimSpace(string(out)), logs)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
}

// goImage makes the Go build image from this machine's Go and module
// cache (deploy/docker/local-go-image.sh) unless it exists. Its tag names
// the Go version and go.sum, so an unchanged image (and the build cache
// that starts from it) is reused.
func goImage(t *testing.T, ctx context.Context, root string) string {
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(append(sum, runtime.Version()...))
	tag := "jobwire-go:local-" + hex.EncodeToString(h[:6])
	if exec.CommandContext(ctx, "docker", "image", "inspect", tag).Run() == nil {
		return tag
	}
	cmd := exec.CommandContext(ctx, filepath.Join(root, "deploy/docker/local-go-image.sh"), tag)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("local-go-image.sh: %v\n%s", err, out)
	}
	return tag
}

// streamLeader is the server leading stream name, from the monitoring
// port of any node that hosts it ("" if none answers).
func streamLeader(ctx context.Context, monitors []string, name string) string {
	for _, m := range monitors {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m+"/jsz?acc=JOBWIRE&streams=true", nil)
		c := http.Client{Timeout: 2 * time.Second}
		resp, err := c.Do(req)
		if err != nil {
			continue
		}
		var jsz struct {
			Accounts []struct {
				Streams []struct {
					Name    string `json:"name"`
					Cluster struct {
						Leader string `json:"leader"`
					} `json:"cluster"`
				} `json:"stream_detail"`
			} `json:"account_details"`
		}
		err = json.NewDecoder(resp.Body).Decode(&jsz)
		resp.Body.Close()
		if err != nil {
			continue
		}
		for _, a := range jsz.Accounts {
			for _, st := range a.Streams {
				if st.Name == name && st.Cluster.Leader != "" {
					return st.Cluster.Leader
				}
			}
		}
	}
	return ""
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
