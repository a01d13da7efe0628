package backoff

import (
	"log/slog"
	"sync"
	"time"
)

// Warner logs a retry loop's warnings, at most one per Every for as long
// as the same warning repeats: a loop that fails the same way for hours
// writes a line now and then (with how many it left out), not a flood.
// A different warning is logged at once.
type Warner struct {
	Log   *slog.Logger
	Every time.Duration // default 1 minute

	mu         sync.Mutex
	last       string    // the last warning logged
	at         time.Time // when it was logged
	suppressed int       // repeats of it left out since
}

// Warn logs msg with err unless the same msg and err were logged less
// than Every ago.
func (w *Warner) Warn(msg string, err error, args ...any) {
	key := msg
	if err != nil {
		key += ": " + err.Error()
	}
	every := w.Every
	if every <= 0 {
		every = time.Minute
	}
	w.mu.Lock()
	now := time.Now()
	if key == w.last && now.Sub(w.at) < every {
		w.suppressed++
		w.mu.Unlock()
		return
	}
	suppressed := 0
	if key == w.last {
		suppressed = w.suppressed // repeats of this very warning
	}
	w.last, w.at, w.suppressed = key, now, 0
	w.mu.Unlock()
	args = append(args, "err", err)
	if suppressed > 0 {
		args = append(args, "repeats_not_logged", suppressed)
	}
	w.Log.Warn(msg, args...)
}
