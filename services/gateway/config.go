package main

import (
	"github.com/jobwire/jobwire/internal/settings"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jobwire/jobwire/internal/envflag"
	"github.com/jobwire/jobwire/internal/natsconn"
	"github.com/jobwire/jobwire/services/gateway/httpapi"
)

// Config is everything the gateway can be told: what its HTTP API
// depends on (httpapi.Config), and how the process starts. Each flag's
// default comes from an environment variable; the README lists them all.
type Config struct {
	httpapi.Config

	Dev         bool
	HTTPAddr    string
	NATSURL     string
	DataDir     string
	DevNATSAddr string
	Debug       settings.Debug   // where /debug/pprof/ listens
	Metrics     settings.Metrics // where /metrics listens
	Logging     settings.Logging
	Tracing     settings.Tracing // the OTEL_* variables
	// Runner is the --dev runner's settings.
	Runner settings.Runner

	// NATS credentials and TLS (deploy/nats).
	NATS natsconn.Auth
}

// parseConfig reads flags, with defaults from getenv, and reports every
// problem at once.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	var c Config
	var origins, proxies string
	s := envflag.New("gateway", getenv, stderr)
	s.Bool(&c.Dev, "dev", "DEV", "run everything in one process: embedded NATS server, gateway and runner")
	s.String(&c.HTTPAddr, "http-addr", "HTTP_ADDR", "127.0.0.1:8080", "HTTP listen address")
	s.String(&c.NATSURL, "nats-url", "NATS_URL", "", "NATS server URL(s), comma separated; required without --dev")
	s.String(&c.DataDir, "data-dir", "DATA_DIR", "./data", "--dev: where the embedded NATS server keeps its JetStream data")
	s.String(&c.DevNATSAddr, "nats-addr", "DEV_NATS_ADDR", "127.0.0.1:4222", "--dev: listen address of the embedded NATS server")
	s.Int(&c.MaxBodyBytes, "max-body-bytes", "MAX_BODY_BYTES", 1<<20, "largest accepted request body in bytes")
	c.Runner.Register(s, "runner-concurrency", "--dev: ")
	c.Retention.Register(s)
	c.TopologyMode.Register(s)
	s.Duration(&c.WriteTimeout, "write-timeout", "WRITE_TIMEOUT", 10*time.Second, "a WebSocket or SSE client that takes longer to accept one message is closed as too slow")
	s.Duration(&c.ReadHeaderTimeout, "read-header-timeout", "READ_HEADER_TIMEOUT", 10*time.Second, "a request whose headers take longer to arrive gets no answer and its connection is closed")
	s.Duration(&c.BodyReadTimeout, "body-read-timeout", "BODY_READ_TIMEOUT", 30*time.Second, "a request body that takes longer (after the headers) to arrive is refused with 408; WebSockets and SSE streams are not cut")
	s.Duration(&c.IdleTimeout, "idle-timeout", "IDLE_TIMEOUT", 2*time.Minute, "a kept-alive connection that sends no new request this long is closed")
	s.Int(&c.MaxHeaderBytes, "max-header-bytes", "MAX_HEADER_BYTES", 64<<10, "largest request header in bytes (then 431)")
	s.String(&origins, "allowed-origins", "ALLOWED_ORIGINS", "", "other origins (scheme://host[:port], comma separated) whose pages may use the gateway: WebSockets, CORS with bearer tokens, POSTs; same-origin always may")
	s.Bool(&c.AnonymousSessions, "anonymous-sessions", "ANONYMOUS_SESSIONS", "give callers without a token an anonymous session (signed cookie) that owns their jobs; on by default", true)
	s.String(&c.SessionSecret, "session-secret", "SESSION_SECRET", "", "key that signs session cookies (default: random per process, so sessions end on restart)")
	s.String(&c.SessionSecretFile, "session-secret-file", "SESSION_SECRET_FILE", "", "file holding SESSION_SECRET")
	s.String(&c.JWTSecret, "jwt-hs256-secret", "JWT_HS256_SECRET", "", "accept HS256 bearer tokens signed with this secret")
	s.String(&c.JWTSecretFile, "jwt-hs256-secret-file", "JWT_HS256_SECRET_FILE", "", "file holding JWT_HS256_SECRET")
	s.String(&c.JWKSFile, "jwt-jwks-file", "JWT_JWKS_FILE", "", "accept RS256/ES256 bearer tokens signed by keys in this JWKS file")
	s.String(&c.JWKSURL, "jwt-jwks-url", "JWT_JWKS_URL", "", "accept RS256/ES256 bearer tokens signed by keys from this JWKS URL (read at start, and again for an unknown key id, at most every 30s)")
	s.String(&c.JWTIssuer, "jwt-issuer", "JWT_ISSUER", "", "required iss of bearer tokens")
	s.String(&c.JWTAudience, "jwt-audience", "JWT_AUDIENCE", "", "required aud of bearer tokens")
	s.String(&c.AdminScope, "admin-scope", "ADMIN_SCOPE", "jobwire:admin", "a token with this in its scope, scp or roles claim sees every job")
	s.Int(&c.SubmitRate, "submit-rate", "SUBMIT_RATE", 600, "job submissions per owner per minute (then 429)")
	s.Int(&c.MaxConnsPerOwner, "max-conns-per-owner", "MAX_CONNS_PER_OWNER", 100, "open WebSocket and SSE connections per owner")
	s.String(&proxies, "trusted-proxies", "TRUSTED_PROXIES", "", "proxies (IPs or CIDRs, comma separated) whose Forwarded / X-Forwarded-For headers name the client; none by default: the TCP peer is the client")
	s.Int(&c.AddrSubmitRate, "addr-submit-rate", "ADDR_SUBMIT_RATE", 600, "job submissions per minute by all anonymous sessions of one client address (IPv4, or IPv6 /64)")
	s.Int(&c.AddrMaxConns, "addr-max-conns", "ADDR_MAX_CONNS", 200, "open WebSocket and SSE connections of all anonymous sessions of one client address")
	s.Int(&c.NewSessionRate, "new-session-rate", "NEW_SESSION_RATE", 60, "new anonymous sessions per client address per minute")
	s.Int(&c.MaxConns, "max-conns", "MAX_CONNS", 10000, "open WebSocket and SSE connections of the whole gateway")
	s.Int(&c.MaxJSONDepth, "max-json-depth", "MAX_JSON_DEPTH", 32, "deepest nesting accepted in a job's input")
	indexer := true
	s.Bool(&indexer, "job-indexer", "JOB_INDEXER", "keep the job index (lists and GET /api/stats) in this gateway, sharing the work with the other gateways; at least one must; on by default", true)
	c.Debug.Register(s)
	c.Metrics.Register(s)
	c.Logging.Register(s)
	c.Tracing.Register(s, "jobwire-gateway")
	c.NATS.RegisterFlags(s)
	if err := s.Parse(args); err != nil {
		return c, err
	}
	c.AllowedOrigins = splitList(origins)
	c.DisableIndexer = !indexer
	var err error
	if c.TrustedProxies, err = httpapi.ParseProxies(splitList(proxies)); err != nil {
		s.Errorf("TRUSTED_PROXIES %q: %v", proxies, err)
	}

	s.Check(c.Dev || c.NATSURL != "", "NATS_URL (--nats-url) is required unless --dev is given")
	s.Check(!c.Dev || c.NATSURL == "", "--dev runs its own NATS server: unset NATS_URL (--nats-url) or drop --dev")
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		s.Errorf("HTTP_ADDR %q: %v", c.HTTPAddr, err)
	}
	c.Debug.Check(s)
	c.Metrics.Check(s)
	c.Logging.Check(s)
	c.Tracing.Check(s)
	if _, _, err := net.SplitHostPort(c.DevNATSAddr); c.Dev && err != nil {
		s.Errorf("DEV_NATS_ADDR %q: %v", c.DevNATSAddr, err)
	}
	s.Check(c.MaxBodyBytes >= 1024, "MAX_BODY_BYTES must be at least 1024")
	c.Runner.Check(s)
	s.Check(c.SessionSecret == "" || c.SessionSecretFile == "", "set SESSION_SECRET or SESSION_SECRET_FILE, not both")
	s.Check(c.JWTSecret == "" || c.JWTSecretFile == "", "set JWT_HS256_SECRET or JWT_HS256_SECRET_FILE, not both")
	s.Check(c.JWKSFile == "" || c.JWKSURL == "", "set JWT_JWKS_FILE or JWT_JWKS_URL, not both")
	s.Check(c.AnonymousSessions || c.JWTSecret != "" || c.JWTSecretFile != "" || c.JWKSFile != "" || c.JWKSURL != "",
		"with ANONYMOUS_SESSIONS=false, configure bearer tokens (JWT_HS256_SECRET, JWT_JWKS_FILE or JWT_JWKS_URL)")
	if err := c.NATS.Validate(); err != nil {
		s.Errorf("%v", err)
	}
	s.Check(c.SubmitRate >= 1, "SUBMIT_RATE must be at least 1")
	s.Check(c.MaxConnsPerOwner >= 1, "MAX_CONNS_PER_OWNER must be at least 1")
	s.Check(c.AddrSubmitRate >= 1, "ADDR_SUBMIT_RATE must be at least 1")
	s.Check(c.AddrMaxConns >= 1, "ADDR_MAX_CONNS must be at least 1")
	s.Check(c.NewSessionRate >= 1, "NEW_SESSION_RATE must be at least 1")
	s.Check(c.MaxConns >= 1, "MAX_CONNS must be at least 1")
	s.Check(c.MaxJSONDepth >= 2 && c.MaxJSONDepth <= 1000, "MAX_JSON_DEPTH must be 2-1000")
	s.Check(c.WriteTimeout >= 100*time.Millisecond, "WRITE_TIMEOUT must be at least 100ms")
	s.Check(c.ReadHeaderTimeout >= 100*time.Millisecond, "READ_HEADER_TIMEOUT must be at least 100ms")
	s.Check(c.BodyReadTimeout >= 100*time.Millisecond, "BODY_READ_TIMEOUT must be at least 100ms")
	s.Check(c.IdleTimeout >= 100*time.Millisecond, "IDLE_TIMEOUT must be at least 100ms")
	s.Check(c.MaxHeaderBytes >= 4096 && c.MaxHeaderBytes <= 16<<20, "MAX_HEADER_BYTES must be 4096 to 16777216")
	c.Retention.Check(s)
	c.TopologyMode.Check(s)
	s.Check(!c.Dev || !c.TopologyMode.CheckOnly(), "--dev creates the streams itself: drop TOPOLOGY=check (--topology) or --dev")
	return c, s.Err()
}

// splitList splits a setting's list, separated by commas or spaces.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}
