package settings

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/jobwire/jobwire/internal/envflag"
	"github.com/jobwire/jobwire/internal/tracing"
)

// Tracing is whether and where a service sends traces: the standard
// OpenTelemetry variables (no flags), read here like every other setting.
// Tracing is off unless OTEL_TRACES_EXPORTER=otlp or an OTLP endpoint is
// set (the specification's default exporter is otlp; jobwire's is none,
// so a deployment without a collector pays nothing), and off whenever
// OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none. Spans go over
// OTLP/HTTP (http/protobuf) only.
//
// The SDK reads a few more OTEL_* variables from the process environment
// by itself (see tracing.Start): headers, timeouts, TLS files, batching
// and OTEL_RESOURCE_ATTRIBUTES.
type Tracing struct {
	Disabled       string // OTEL_SDK_DISABLED
	Exporter       string // OTEL_TRACES_EXPORTER: otlp, none or empty
	Endpoint       string // OTEL_EXPORTER_OTLP_ENDPOINT: base URL, traces go to <it>/v1/traces
	TracesEndpoint string // OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: the traces URL itself
	Protocol       string // OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL
	ServiceName    string // OTEL_SERVICE_NAME
	Sampler        string // OTEL_TRACES_SAMPLER
	SamplerArg     string // OTEL_TRACES_SAMPLER_ARG
}

// DefaultTracesEndpoint is where spans go when tracing is on and no
// endpoint is set: a collector beside the process.
const DefaultTracesEndpoint = "http://localhost:4318/v1/traces"

// Register reads the OTEL_* variables; service is the default service
// name (jobwire-gateway, jobwire-runner).
func (t *Tracing) Register(s *envflag.Set, service string) {
	s.Env(&t.Disabled, "OTEL_SDK_DISABLED", "false")
	s.Env(&t.Exporter, "OTEL_TRACES_EXPORTER", "")
	s.Env(&t.Endpoint, "OTEL_EXPORTER_OTLP_ENDPOINT", "")
	s.Env(&t.TracesEndpoint, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	s.Env(&t.Protocol, "OTEL_EXPORTER_OTLP_PROTOCOL", "")
	s.Env(&t.Protocol, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", t.Protocol)
	s.Env(&t.ServiceName, "OTEL_SERVICE_NAME", service)
	s.Env(&t.Sampler, "OTEL_TRACES_SAMPLER", "")
	s.Env(&t.SamplerArg, "OTEL_TRACES_SAMPLER_ARG", "")
}

// On reports whether t asks for traces.
func (t Tracing) On() bool {
	if strings.EqualFold(t.Disabled, "true") {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(t.Exporter)) {
	case "otlp":
		return true
	case "":
		return t.Endpoint != "" || t.TracesEndpoint != ""
	}
	return false // none (or a mistake Check reports)
}

// URL is where spans go when tracing is on.
func (t Tracing) URL() string {
	switch {
	case t.TracesEndpoint != "":
		return t.TracesEndpoint
	case t.Endpoint != "":
		return strings.TrimRight(t.Endpoint, "/") + "/v1/traces"
	}
	return DefaultTracesEndpoint
}

// Check records what is wrong with t in s. Settings that do not matter
// while tracing is off are checked all the same, so a mistake shows
// before tracing is turned on.
func (t Tracing) Check(s *envflag.Set) {
	s.Check(strings.EqualFold(t.Disabled, "true") || strings.EqualFold(t.Disabled, "false"), fmt.Sprintf("OTEL_SDK_DISABLED must be true or false, not %q", t.Disabled))
	switch strings.ToLower(strings.TrimSpace(t.Exporter)) {
	case "", "otlp", "none":
	default:
		s.Errorf("OTEL_TRACES_EXPORTER must be otlp or none, not %q (jobwire has no other exporter built in)", t.Exporter)
	}
	s.Check(t.Protocol == "" || t.Protocol == "http/protobuf", fmt.Sprintf("OTLP protocol %q: jobwire sends traces over http/protobuf only", t.Protocol))
	for _, e := range [][2]string{{"OTEL_EXPORTER_OTLP_ENDPOINT", t.Endpoint}, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", t.TracesEndpoint}} {
		if u, err := url.Parse(e[1]); e[1] != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
			s.Errorf("%s %q: want an http:// or https:// URL", e[0], e[1])
		}
	}
	s.Check(t.ServiceName != "", "OTEL_SERVICE_NAME must not be empty")
	if _, err := tracing.Sampler(t.Sampler, t.SamplerArg); err != nil {
		s.Errorf("%v", err)
	}
}

// Start starts tracing if t asks for it (see tracing.Start); the
// provider's Shutdown flushes it. When off, the provider is the no-op one.
func (t Tracing) Start(ctx context.Context, log *slog.Logger) (tracing.Provider, error) {
	if !t.On() {
		return tracing.Provider{}, nil
	}
	sampler, err := tracing.Sampler(t.Sampler, t.SamplerArg)
	if err != nil {
		return tracing.Provider{}, err
	}
	return tracing.Start(ctx, tracing.Config{Endpoint: t.URL(), ServiceName: t.ServiceName, Sampler: sampler}, log)
}
