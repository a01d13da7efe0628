// Package backoff spaces out the attempts of a retry loop: each delay
// doubles, up to a cap, with jitter so that many clients failing together
// do not retry in step.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Delay is how long to wait after attempt (1-based) failed: base doubled
// per attempt after the first, at most maxDelay, with "equal jitter": a
// random point in the upper half, so it lies in [d/2, d].
func Delay(base, maxDelay time.Duration, attempt int) time.Duration {
	d := max(base, 0)
	maxDelay = max(maxDelay, d)
	for i := 1; i < attempt && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	return d/2 + rand.N(d/2+1)
}

// Backoff gives the successive delays of one retry loop. The zero value
// waits between 50ms and 100ms first, and at most 30s.
type Backoff struct {
	Base    time.Duration // delay after the first failure (default 100ms)
	Max     time.Duration // the longest delay (default 30s)
	attempt int
}

// Next is the delay to wait after one more failure.
func (b *Backoff) Next() time.Duration {
	b.attempt++
	base, maxDelay := b.Base, b.Max
	if base <= 0 {
		base = 100 * time.Millisecond
	}
	if maxDelay <= 0 {
		maxDelay = 30 * time.Second
	}
	return Delay(base, maxDelay, b.attempt)
}

// Reset starts again from the base delay, after a success.
func (b *Backoff) Reset() { b.attempt = 0 }

// Failures is how many failures followed the last success.
func (b *Backoff) Failures() int { return b.attempt }

// Wait sleeps for the next delay. It returns false, at once, when ctx
// ends first.
func (b *Backoff) Wait(ctx context.Context) bool {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
