package tracing

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// LogHandler wraps h so that a line logged with a context that carries a
// span (slog's InfoContext and the like) also carries trace_id and
// span_id: the keys to find the line's trace, and the trace's lines.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(LogAttrs(sc)...)
	}
	return h.Handler.Handle(ctx, r)
}

func (h logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{h.Handler.WithAttrs(attrs)}
}

func (h logHandler) WithGroup(name string) slog.Handler { return logHandler{h.Handler.WithGroup(name)} }

// LogAttrs are the attributes that name span context sc on a log line.
func LogAttrs(sc trace.SpanContext) []slog.Attr {
	return []slog.Attr{slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String())}
}

// AppendLogArgs appends sc's trace_id and span_id to args, as arguments
// of slog's Logger.With and the like; nothing when sc is not valid.
func AppendLogArgs(args []any, sc trace.SpanContext) []any {
	if !sc.IsValid() {
		return args
	}
	return append(args, "trace_id", sc.TraceID().String(), "span_id", sc.SpanID().String())
}
