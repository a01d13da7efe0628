package main

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-chi/httprate"
)

// securityHeaders are sent with every response: the pages use no inline
// script or style, are never framed, and leak no referrer.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for k, v := range fixedHeaders {
			h[k] = v // shared, never modified: Set and Add replace it
		}
		next.ServeHTTP(w, r)
	})
}

// fixedHeaders are the security headers, made once rather than per response.
var fixedHeaders = http.Header{
	"Content-Security-Policy": {"default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"},
	"X-Content-Type-Options":  {"nosniff"},
	"X-Frame-Options":         {"DENY"},
	"Referrer-Policy":         {"no-referrer"},
}

// newCrossOriginProtection refuses state-changing requests (POST) that a
// browser sends from another origin (CSRF), using Sec-Fetch-Site and
// Origin. Requests without them (curl, services) pass; so do the allowed
// origins.
func newCrossOriginProtection(origins []string) (*http.CrossOriginProtection, error) {
	cop := http.NewCrossOriginProtection()
	for _, o := range origins {
		if err := cop.AddTrustedOrigin(o); err != nil {
			return nil, fmt.Errorf("ALLOWED_ORIGINS: %w", err)
		}
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errorf(http.StatusForbidden, "cross_origin", "cross-origin requests that change state are refused"))
	}))
	return cop, nil
}

// newSubmitLimit allows each owner perMinute submissions a minute; past
// that, 429 with Retry-After.
func newSubmitLimit(perMinute int) func(http.Handler) http.Handler {
	return httprate.Limit(perMinute, time.Minute,
		httprate.WithKeyFuncs(func(r *http.Request) (string, error) {
			return principalFrom(r.Context()).Owner, nil
		}),
		httprate.WithLimitHandler(func(w http.ResponseWriter, r *http.Request) {
			if w.Header().Get("Retry-After") == "" {
				w.Header().Set("Retry-After", strconv.Itoa(60))
			}
			writeError(w, errorf(http.StatusTooManyRequests, "rate_limited", "too many submissions; at most %d a minute", perMinute))
		}))
}

// jsonDepth is how deeply b's arrays and objects nest.
func jsonDepth(b []byte) int {
	depth, deepest, inString, escaped := 0, 0, false, false
	for _, c := range b {
		switch {
		case escaped:
			escaped = false
		case inString:
			switch c {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// ownerCounter bounds the open connections of each owner.
type ownerCounter struct {
	mu    sync.Mutex
	limit int
	n     map[string]int
}

func newOwnerCounter(limit int) *ownerCounter {
	return &ownerCounter{limit: limit, n: map[string]int{}}
}

// acquire takes one connection for owner; false when owner has the most.
func (c *ownerCounter) acquire(owner string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[owner] >= c.limit {
		return false
	}
	c.n[owner]++
	return true
}

func (c *ownerCounter) release(owner string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[owner]--; c.n[owner] <= 0 {
		delete(c.n, owner)
	}
}

var errTooManyConns = errorf(http.StatusTooManyRequests, "too_many_connections", "this owner has too many open watch connections")
