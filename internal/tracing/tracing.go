// Package tracing starts jobwire's OpenTelemetry tracing: a tracer
// provider that exports spans over OTLP/HTTP, or the no-op provider when
// tracing is off, and a log handler that adds a line's trace to it.
// internal/settings decides from the OTEL_* variables whether and where
// to trace; the packages that make spans take a trace.TracerProvider and
// skip all tracing work, with one branch, when it is off (Enabled).
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/jobwire/jobwire/internal/backoff"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Config is where and how spans go.
type Config struct {
	// Endpoint is the OTLP/HTTP traces URL, e.g.
	// http://otel-collector:4318/v1/traces.
	Endpoint    string
	ServiceName string
	Sampler     sdktrace.Sampler
}

// Provider is a tracer provider with its shutdown. The zero value is off.
type Provider struct {
	tp *sdktrace.TracerProvider // nil: off
}

// TracerProvider is what the traced packages take: the SDK's provider, or
// the no-op one when tracing is off.
func (p Provider) TracerProvider() trace.TracerProvider {
	if p.tp == nil {
		return noop.NewTracerProvider()
	}
	return p.tp
}

// On reports whether spans are made and exported.
func (p Provider) On() bool { return p.tp != nil }

// Shutdown exports the spans still buffered and stops the exporter, as
// long as ctx allows. Nothing to do when off.
func (p Provider) Shutdown(ctx context.Context) error {
	if p.tp == nil {
		return nil
	}
	return p.tp.Shutdown(ctx)
}

// FlushTimeout bounds Flush.
const FlushTimeout = 5 * time.Second

// Flush shuts p down on a service's exit (see Shutdown), waiting at most
// FlushTimeout even when ctx has ended, and logs a failure.
func (p Provider) Flush(ctx context.Context, log *slog.Logger) {
	if p.tp == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), FlushTimeout)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		log.Warn("tracing: spans not exported on exit", "err", err)
	}
}

// Start makes a provider that batches spans and exports them over
// OTLP/HTTP to cfg.Endpoint. It does not connect yet: an unreachable
// collector costs the spans it should have received (logged as warnings
// on log, at most one a minute while it repeats), never a failure of the
// service.
//
// The OpenTelemetry SDK reads some OTEL_* variables from the process
// environment by itself, not through the service's configuration: the
// exporter's OTEL_EXPORTER_OTLP_(TRACES_)HEADERS, _TIMEOUT, _COMPRESSION,
// _CERTIFICATE, _CLIENT_CERTIFICATE and _CLIENT_KEY, the batching
// OTEL_BSP_*, and the resource's OTEL_RESOURCE_ATTRIBUTES. What Config
// holds (endpoint, service name, sampler) is passed explicitly and wins.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (Provider, error) {
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.Endpoint))
	if err != nil {
		return Provider{}, fmt.Errorf("trace exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithFromEnv(), // OTEL_RESOURCE_ATTRIBUTES (and OTEL_SERVICE_NAME, overridden below)
		resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", cfg.ServiceName)))
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return Provider{}, fmt.Errorf("trace resource: %w", err)
	}
	warn := &backoff.Warner{Log: log}
	// The SDK reports export failures through this process-wide handler,
	// and logs the rest through its process-wide logger: both to the
	// service's log, in its format (not as plain lines on stderr).
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { warn.Warn("tracing", err) }))
	otel.SetLogger(logr.FromSlogHandler(log.With("component", "opentelemetry").Handler()))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res), sdktrace.WithSampler(cfg.Sampler))
	endpoint := cfg.Endpoint
	if u, err := url.Parse(endpoint); err == nil {
		endpoint = u.Redacted() // no password in the log
	}
	log.Info("tracing on", "endpoint", endpoint, "service", cfg.ServiceName, "sampler", cfg.Sampler.Description())
	return Provider{tp: tp}, nil
}

// Enabled reports whether tp makes spans at all: false for nil and for
// the no-op provider, so a hot path pays one branch when tracing is off
// (even the no-op tracer's Start allocates a context).
func Enabled(tp trace.TracerProvider) bool {
	if tp == nil {
		return false
	}
	_, off := tp.(noop.TracerProvider)
	return !off
}

// Samplers names the values of OTEL_TRACES_SAMPLER.
var Samplers = []string{"always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"}

// Sampler is the sampler OTEL_TRACES_SAMPLER (name) and
// OTEL_TRACES_SAMPLER_ARG (arg) name, as the OpenTelemetry specification
// defines them; an empty name is parentbased_always_on (a trace the
// caller samples is sampled, a new one always).
func Sampler(name, arg string) (sdktrace.Sampler, error) {
	name = strings.ToLower(strings.TrimSpace(name))
	ratio := 1.0
	if arg = strings.TrimSpace(arg); arg != "" && strings.HasSuffix(name, "traceidratio") {
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return nil, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG %q: want a ratio from 0 to 1", arg)
		}
		ratio = r
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), nil
	}
	return nil, fmt.Errorf("OTEL_TRACES_SAMPLER %q: want one of %s", name, strings.Join(Samplers, ", "))
}
