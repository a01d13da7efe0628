package settings

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/jobwire/jobwire/internal/envflag"
	"go.opentelemetry.io/otel/trace"
)

func parseTracing(t *testing.T, env map[string]string) (Tracing, error) {
	t.Helper()
	s := envflag.New("test", func(k string) string { return env[k] }, io.Discard)
	var tr Tracing
	tr.Register(s, "jobwire-test")
	if err := s.Parse(nil); err != nil {
		t.Fatal(err)
	}
	tr.Check(s)
	return tr, s.Err()
}

// Tracing is off unless asked for, and goes where the OTEL_* variables say.
func TestTracingOnlyWhenAskedFor(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		env map[string]string
		on  bool
		url string
	}{
		{nil, false, DefaultTracesEndpoint},
		{map[string]string{"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}, false, DefaultTracesEndpoint},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true, DefaultTracesEndpoint},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}, true, "http://collector:4318/v1/traces"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://b/traces"}, true, "https://b/traces"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_TRACES_EXPORTER": "none"}, false, "http://a:4318/v1/traces"},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, false, DefaultTracesEndpoint},
	} {
		tr, err := parseTracing(t, c.env)
		if err != nil {
			t.Errorf("%v: %v", c.env, err)
		}
		if tr.On() != c.on || tr.URL() != c.url {
			t.Errorf("%v: on %v to %s, want %v to %s", c.env, tr.On(), tr.URL(), c.on, c.url)
		}
	}
	if tr, _ := parseTracing(t, nil); tr.ServiceName != "jobwire-test" {
		t.Errorf("default service name %q, want the command's", tr.ServiceName)
	}
}

func TestTracingMistakesReported(t *testing.T) {
	t.Parallel()
	for key, bad := range map[string]string{
		"OTEL_TRACES_EXPORTER":               "jaeger",
		"OTEL_EXPORTER_OTLP_ENDPOINT":        "collector:4318",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://x/",
		"OTEL_EXPORTER_OTLP_PROTOCOL":        "grpc",
		"OTEL_TRACES_SAMPLER":                "sometimes",
		"OTEL_SDK_DISABLED":                  "yes",
	} {
		if _, err := parseTracing(t, map[string]string{key: bad}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%s=%s: %v, want an error that quotes it", key, bad, err)
		}
	}
	_, err := parseTracing(t, map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"})
	if err == nil || !strings.Contains(err.Error(), "OTEL_TRACES_SAMPLER_ARG") {
		t.Errorf("a ratio of 2: %v, want an error naming OTEL_TRACES_SAMPLER_ARG", err)
	}
	if _, err := parseTracing(t, map[string]string{"OTEL_TRACES_SAMPLER": "TraceIdRatio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}); err != nil {
		t.Errorf("traceidratio 0.25: %v", err)
	}
}

// LOG_FORMAT and LOG_LEVEL pick the handler and the level; a traced
// logger names the trace of a line logged with a span's context.
func TestLogging(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := Logging{Format: "json", Level: "WARN"}.Logger(&buf, true)
	tid, _ := trace.TraceIDFromHex("0102030405060708090a0b0c0d0e0f10")
	sid, _ := trace.SpanIDFromHex("0102030405060708")
	ctx := trace.ContextWithSpanContext(t.Context(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	log.InfoContext(ctx, "below the level")
	log.With("job_id", "j1").WarnContext(ctx, "kept")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("%q: %v", buf.String(), err)
	}
	if line["msg"] != "kept" || line["job_id"] != "j1" || line["trace_id"] != tid.String() || line["span_id"] != sid.String() || line["level"] != slog.LevelWarn.String() {
		t.Errorf("logged %v", line)
	}

	var text bytes.Buffer
	Logging{Format: "text", Level: "debug"}.Logger(&text, false).DebugContext(ctx, "plain")
	if s := text.String(); !strings.Contains(s, "level=DEBUG msg=plain") || strings.Contains(s, "trace_id") {
		t.Errorf("text, untraced: %q", s)
	}

	s := envflag.New("test", func(k string) string { return map[string]string{"LOG_FORMAT": "yaml", "LOG_LEVEL": "verbose"}[k] }, io.Discard)
	var l Logging
	l.Register(s)
	_ = s.Parse(nil)
	l.Check(s)
	if err := s.Err(); err == nil || !strings.Contains(err.Error(), "LOG_FORMAT") || !strings.Contains(err.Error(), "LOG_LEVEL") {
		t.Errorf("bad LOG_FORMAT and LOG_LEVEL: %v", err)
	}
}
