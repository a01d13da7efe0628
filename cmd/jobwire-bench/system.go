package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// system is one jobwire under test.
type system struct {
	URL     string // base URL without the trailing slash
	NATSURL string
	Token   string
	PID     int // the gateway's process id; 0 if unknown
	// secret signs more tokens (per-owner ones); "" for a running system.
	secret string

	cmd     *exec.Cmd
	waitErr chan error
	dir     string
	logPath string
	keep    bool
	scraper *scraper // --scrape-metrics
	log     func(format string, args ...any)
}

// launcher starts gateways (or hands out the running one with --url).
type launcher struct {
	cfg    config
	tmp    string // temporary directory of the whole run
	bin    string
	secret string
	token  string
	n      int
	shared *system // the running system (--url), or the one kept with --fresh=false
	log    func(format string, args ...any)
}

func newLauncher(ctx context.Context, cfg config, log func(string, ...any)) (*launcher, error) {
	l := &launcher{cfg: cfg, log: log}
	if cfg.external() {
		token := cfg.Token
		if token == "" {
			var err error
			if token, err = mintToken(cfg.JWTSecret); err != nil {
				return nil, err
			}
		}
		l.shared = &system{URL: strings.TrimSuffix(cfg.URL, "/"), NATSURL: cfg.NATSURL, Token: token, PID: cfg.GatewayPID, secret: cfg.JWTSecret}
		return l, nil
	}
	tmp, err := os.MkdirTemp("", "jobwire-bench-")
	if err != nil {
		return nil, err
	}
	l.tmp = tmp
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	l.secret = hex.EncodeToString(b)
	if l.token, err = mintToken(l.secret); err != nil {
		l.close()
		return nil, err
	}
	l.bin = cfg.GatewayBin
	if l.bin == "" {
		if l.bin, err = buildGateway(ctx, cfg.ModuleDir, tmp, nil); err != nil {
			l.close()
			return nil, err
		}
	}
	return l, nil
}

// close removes the temporary directory unless asked to keep it.
func (l *launcher) close() {
	if l.shared != nil && l.shared.cmd != nil {
		l.shared.stop()
	}
	if l.tmp == "" {
		return
	}
	if l.cfg.Keep {
		l.log("kept %s (gateway logs and data)", l.tmp)
		return
	}
	_ = os.RemoveAll(l.tmp)
}

// system returns the system for the next phase: a fresh gateway, or the
// shared one. release must be called when the phase is done. A fresh
// gateway gets extraEnv ("KEY=value"; GODEBUG values are added to ours).
func (l *launcher) system(ctx context.Context, extraEnv ...string) (sys *system, release func(), err error) {
	if l.shared != nil {
		return l.shared, func() {}, nil
	}
	sys, err = l.start(ctx, extraEnv)
	if err != nil {
		return nil, nil, err
	}
	if !l.cfg.Fresh {
		l.shared = sys
		return sys, func() {}, nil
	}
	return sys, sys.stop, nil
}

// buildGateway builds ./services/gateway of the module in moduleDir (or
// of the current directory) into dir, with extra go build flags.
func buildGateway(ctx context.Context, moduleDir, dir string, flags []string) (string, error) {
	if moduleDir == "" {
		out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
		if err != nil {
			return "", fmt.Errorf("find the module (go env GOMOD): %w", err)
		}
		gomod := strings.TrimSpace(string(out))
		if gomod == "" || gomod == os.DevNull {
			return "", errors.New("not inside the jobwire module: run from the repository or pass --module-dir or --gateway-bin")
		}
		moduleDir = filepath.Dir(gomod)
	}
	if _, err := os.Stat(filepath.Join(moduleDir, "services", "gateway")); err != nil {
		return "", fmt.Errorf("%s has no services/gateway: pass --module-dir or --gateway-bin", moduleDir)
	}
	bin := filepath.Join(dir, "gateway")
	bctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	args := append([]string{"build"}, flags...)
	cmd := exec.CommandContext(bctx, "go", append(args, "-o", bin, "./services/gateway")...)
	cmd.Dir = moduleDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./services/gateway: %w\n%s", err, out)
	}
	return bin, nil
}

// mintToken makes an HS256 bearer token for subject "bench" with the
// admin scope, valid for an hour.
func mintToken(secret string) (string, error) { return mintTokenFor(secret, "bench", true) }

// mintTokenFor makes an HS256 bearer token for subject sub (the jobwire
// owner "user:<sub>"), with the admin scope if admin, valid for an hour.
func mintTokenFor(secret, sub string, admin bool) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(secret)}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("token signer: %w", err)
	}
	now := time.Now()
	b := jwt.Signed(signer).Claims(jwt.Claims{Subject: sub, IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Hour))})
	if admin {
		b = b.Claims(map[string]any{"scope": "jobwire:admin"})
	}
	return b.Serialize()
}

// gatewayEnv is the environment of a started gateway: a few variables of
// ours that do not change jobwire's configuration, then the settings.
func (l *launcher) gatewayEnv(dir string, extra []string) []string {
	var env []string
	godebug := os.Getenv("GODEBUG")
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "PATH", "HOME", "TMPDIR", "GOGC", "GOMEMLIMIT", "GOMAXPROCS", "GORACE":
			env = append(env, kv)
		}
	}
	for _, kv := range append(slices.Clone(l.cfg.GatewayEnv), extra...) {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			godebug = strings.Trim(godebug+","+v, ",")
			continue
		}
		env = append(env, kv)
	}
	if godebug != "" {
		env = append(env, "GODEBUG="+godebug)
	}
	return append(env,
		"DATA_DIR="+dir,
		"DEV_NATS_ADDR=127.0.0.1:0",
		"HTTP_ADDR=127.0.0.1:0",
		"JWT_HS256_SECRET="+l.secret,
		"SUBMIT_RATE=100000000",
		"MAX_CONNS_PER_OWNER=1000000",
		"RUNNER_CONCURRENCY="+strconv.Itoa(l.cfg.RunnerConcurrency),
	)
}

// start runs `gateway --dev` with a data directory of its own and waits
// until it has printed its addresses and answers /readyz.
func (l *launcher) start(ctx context.Context, extraEnv []string) (*system, error) {
	l.n++
	dir := filepath.Join(l.tmp, fmt.Sprintf("system-%d", l.n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "gateway.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own copy
	cmd := exec.Command(l.bin, "--dev")
	if l.cfg.ScrapeMetrics > 0 {
		extraEnv = append(extraEnv, "METRICS_ADDR=127.0.0.1:0")
	}
	cmd.Env = l.gatewayEnv(dir, extraEnv)
	cmd.Dir = dir
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start gateway: %w", err)
	}
	s := &system{Token: l.token, secret: l.secret, PID: cmd.Process.Pid, cmd: cmd, waitErr: make(chan error, 1), dir: dir, logPath: logPath, keep: l.cfg.Keep, log: l.log}

	type addrs struct{ http, nats string }
	found := make(chan addrs, 1)
	go func() {
		var a addrs
		sent := false
		sc := bufio.NewScanner(stdout)
		for sc.Scan() && !sent {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, "jobwire is running: "); ok {
				a.http = strings.TrimSuffix(strings.TrimSpace(rest), "/")
			}
			if rest, ok := strings.CutPrefix(line, "NATS: "); ok {
				a.nats, _, _ = strings.Cut(strings.TrimSpace(rest), " ")
			}
			if a.http != "" && a.nats != "" {
				found <- a
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() { s.waitErr <- cmd.Wait() }()

	timer := time.NewTimer(60 * time.Second)
	defer timer.Stop()
	select {
	case a := <-found:
		s.URL, s.NATSURL = a.http, a.nats
	case err := <-s.waitErr:
		s.waitErr <- err
		return nil, fmt.Errorf("gateway exited before it was ready: %v%s", err, s.logTail())
	case <-timer.C:
		s.stop()
		return nil, fmt.Errorf("gateway printed no addresses in 60s%s", s.logTail())
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
	if err := s.waitReady(ctx, 30*time.Second); err != nil {
		s.stop()
		return nil, err
	}
	if l.cfg.ScrapeMetrics > 0 {
		url, err := s.metricsURL(ctx, 10*time.Second)
		if err != nil {
			s.stop()
			return nil, err
		}
		s.scraper = startScraper(url, l.cfg.ScrapeMetrics)
		l.log("gateway %d: scraping %s every %v", l.n, url, l.cfg.ScrapeMetrics)
	}
	l.log("gateway %d: %s, %s, pid %d", l.n, s.URL, s.NATSURL, s.PID)
	return s, nil
}

func (s *system) waitReady(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gateway not ready after %v (last: %v)%s", limit, err, s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop ends a started gateway: SIGTERM, then SIGKILL after 10s. It keeps
// the data directory only with --keep.
func (s *system) stop() {
	if s.cmd == nil {
		return
	}
	cmd := s.cmd
	s.cmd = nil
	if s.scraper != nil {
		s.log("%s", s.scraper.stop())
		s.scraper = nil
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.waitErr:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-s.waitErr
	}
	if !s.keep {
		_ = os.RemoveAll(filepath.Join(s.dir, "nats"))
	}
}

// alive reports whether a started gateway is still running.
func (s *system) alive() bool {
	if s.cmd == nil {
		return true
	}
	select {
	case err := <-s.waitErr:
		s.waitErr <- err
		return false
	default:
		return true
	}
}

// logTail is the end of a started gateway's log, for error messages.
func (s *system) logTail() string {
	if s.logPath == "" {
		return ""
	}
	b, err := os.ReadFile(s.logPath)
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "\ngateway log (end):\n" + string(b)
}
