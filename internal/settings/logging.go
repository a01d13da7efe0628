package settings

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/jobwire/jobwire/internal/envflag"
	"github.com/jobwire/jobwire/internal/tracing"
)

// Logging is how a command writes its log (to stderr): LOG_FORMAT and
// LOG_LEVEL.
type Logging struct {
	Format string // text (key=value pairs) or json (one object per line)
	Level  string // the least severe level written: debug, info, warn or error
}

// Register defines LOG_FORMAT and LOG_LEVEL.
func (l *Logging) Register(s *envflag.Set) {
	s.String(&l.Format, "log-format", "LOG_FORMAT", "text", "log lines as text (key=value pairs) or json (one object per line)")
	s.String(&l.Level, "log-level", "LOG_LEVEL", "info", "the least severe log level written: debug, info, warn or error")
}

// Check records what is wrong with l in s.
func (l Logging) Check(s *envflag.Set) {
	s.Check(l.Format == "text" || l.Format == "json", fmt.Sprintf("LOG_FORMAT must be text or json, not %q", l.Format))
	if _, ok := logLevels[strings.ToLower(l.Level)]; !ok {
		s.Errorf("LOG_LEVEL must be debug, info, warn or error, not %q", l.Level)
	}
}

var logLevels = map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}

// Logger makes the logger l asks for, writing to w. With traced, a line
// logged with a context that carries a span also names its trace
// (trace_id, span_id).
func (l Logging) Logger(w io.Writer, traced bool) *slog.Logger {
	opts := &slog.HandlerOptions{Level: logLevels[strings.ToLower(l.Level)]}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if l.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	if traced {
		h = tracing.LogHandler(h)
	}
	return slog.New(h)
}
