package httpapi

import (
	"net/netip"
	"time"

	"github.com/jobwire/jobwire/internal/settings"
	"go.opentelemetry.io/otel/trace"
)

// Config is what the gateway's HTTP API can be told (the gateway's
// config.go reads it from flags and the environment).
type Config struct {
	settings.Retention // of the streams: the gateway creates or checks them too
	// TopologyMode says whether New creates the streams and buckets or
	// only checks them (TOPOLOGY=check: jobwire-setup makes them).
	TopologyMode settings.TopologyMode

	MaxBodyBytes   int64
	AllowedOrigins []string
	WriteTimeout   time.Duration

	// Slow or huge requests (NewHTTPServer).
	ReadHeaderTimeout time.Duration
	BodyReadTimeout   time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int64

	// Who may do what (docs/security.md).
	AnonymousSessions bool
	SessionSecret     string
	SessionSecretFile string
	JWTSecret         string
	JWTSecretFile     string
	JWKSFile          string
	JWKSURL           string
	JWTIssuer         string
	JWTAudience       string
	AdminScope        string

	// Limits.
	SubmitRate       int64 // submissions per owner per minute
	MaxConnsPerOwner int64 // WebSocket and SSE connections per owner
	MaxJSONDepth     int64

	// DisableIndexer leaves the job index to other gateways (JOB_INDEXER=false).
	DisableIndexer bool

	// Limits on anonymous sessions per client address (an IPv4 address or
	// an IPv6 /64), and on the whole gateway (docs/security.md).
	TrustedProxies []netip.Prefix // whose Forwarded / X-Forwarded-For is believed
	AddrSubmitRate int64          // submissions per minute by the anonymous sessions of one address
	AddrMaxConns   int64          // WebSocket and SSE connections of the anonymous sessions of one address
	NewSessionRate int64          // new anonymous sessions per address per minute
	MaxConns       int64          // WebSocket and SSE connections, whole gateway

	// TracerProvider makes the spans of submits and of final events'
	// delivery (nil or the no-op provider: no tracing; the gateway's run
	// sets it from the OTEL_* variables).
	TracerProvider trace.TracerProvider
}
