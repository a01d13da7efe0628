package backoff

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// A loop's delays double from Base, stay within [d/2, d] of their step,
// stop growing at Max, and start over after Reset.
func TestBackoffGrowsToItsCap(t *testing.T) {
	b := Backoff{Base: 100 * time.Millisecond, Max: time.Second}
	for i, step := range []time.Duration{100, 200, 400, 800, 1000, 1000, 1000} {
		step *= time.Millisecond
		if d := b.Next(); d < step/2 || d > step {
			t.Errorf("failure %d: delay %v, want within [%v, %v]", i+1, d, step/2, step)
		}
	}
	if b.Failures() != 7 {
		t.Errorf("Failures() = %d, want 7", b.Failures())
	}
	b.Reset()
	if d := b.Next(); d > 100*time.Millisecond {
		t.Errorf("after Reset: delay %v, want at most 100ms", d)
	}
	var zero Backoff
	if d := zero.Next(); d < 50*time.Millisecond || d > 100*time.Millisecond {
		t.Errorf("zero Backoff's first delay %v, want within [50ms, 100ms]", d)
	}
}

func TestWaitEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := Backoff{Base: time.Hour, Max: time.Hour}
	if b.Wait(ctx) {
		t.Error("Wait on an ended context returned true")
	}
}

// The same warning again and again is logged once per Every, then with
// the number left out; a different warning is logged at once.
func TestWarnerRateLimitsRepeats(t *testing.T) {
	var buf bytes.Buffer
	w := Warner{Log: slog.New(slog.NewTextHandler(&buf, nil)), Every: time.Hour}
	for range 1000 {
		w.Warn("fetch failed", errors.New("no responders"))
	}
	w.Warn("fetch failed", errors.New("timeout"))
	if n := strings.Count(buf.String(), "\n"); n != 2 {
		t.Fatalf("%d lines for 1000 identical warnings and a different one, want 2:\n%s", n, buf.String())
	}
	buf.Reset()
	w = Warner{Log: slog.New(slog.NewTextHandler(&buf, nil)), Every: time.Nanosecond}
	w.Warn("fetch failed", errors.New("no responders"))
	w.at = time.Time{} // as if Every had passed
	w.suppressed = 41
	w.Warn("fetch failed", errors.New("no responders"))
	if !strings.Contains(buf.String(), "repeats_not_logged=41") {
		t.Errorf("a repeat after Every does not say how many were left out:\n%s", buf.String())
	}
}
