package httpapi

import (
	"fmt"
	"net/http"
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

// onlyRetryAfter makes a rate limiter set Retry-After when it refuses, and
// no X-RateLimit-* headers (those describe the owner's submissions).
var onlyRetryAfter = httprate.WithResponseHeaders(httprate.ResponseHeaders{RetryAfter: "Retry-After"})

// newSubmitLimit allows each owner perOwner submissions a minute, and all
// anonymous sessions of one client address perAddr together (else each
// cookieless request, a new session, would have a budget of its own); past
// that, 429 with Retry-After.
func newSubmitLimit(perOwner, perAddr int, m *httpMetrics) func(http.Handler) http.Handler {
	owners := httprate.NewRateLimiter(perOwner, time.Minute)
	addrs := httprate.NewRateLimiter(perAddr, time.Minute, onlyRetryAfter) // X-RateLimit-* stay the owner's
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := principalFrom(r.Context())
			if owners.OnLimit(w, r, p.Owner) { // sets Retry-After
				m.submitOwner.Inc()
				writeError(w, errorf(http.StatusTooManyRequests, "rate_limited", "too many submissions; at most %d a minute", perOwner))
				return
			}
			if p.Addr != "" && addrs.OnLimit(w, r, p.Addr) {
				m.submitAddr.Inc()
				writeError(w, errorf(http.StatusTooManyRequests, "rate_limited", "too many submissions from your address; at most %d a minute without a token", perAddr))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// watchSlots bounds the open watch connections (WebSockets and SSE
// streams): per owner, per client address for anonymous sessions, and for
// the whole gateway.
type watchSlots struct {
	mu                      sync.Mutex
	perOwner, perAddr, most int
	owners, addrs           map[string]int
	open                    int
	m                       *httpMetrics // counts the refusals
}

func newWatchSlots(perOwner, perAddr, most int, m *httpMetrics) *watchSlots {
	return &watchSlots{perOwner: perOwner, perAddr: perAddr, most: most, owners: map[string]int{}, addrs: map[string]int{}, m: m}
}

// acquire takes a connection for p, or tells which limit is reached.
func (s *watchSlots) acquire(p principal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.open >= s.most:
		s.m.connsGateway.Inc()
		return errGatewayFull
	case s.owners[p.Owner] >= s.perOwner:
		s.m.connsOwner.Inc()
		return errTooManyConns
	case p.Addr != "" && s.addrs[p.Addr] >= s.perAddr:
		s.m.connsAddr.Inc()
		return errTooManyConnsFromAddr
	}
	s.open++
	s.owners[p.Owner]++
	if p.Addr != "" {
		s.addrs[p.Addr]++
	}
	return nil
}

// release gives back what acquire took.
func (s *watchSlots) release(p principal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open--
	decrement(s.owners, p.Owner)
	if p.Addr != "" {
		decrement(s.addrs, p.Addr)
	}
}

func decrement(m map[string]int, key string) {
	if m[key]--; m[key] <= 0 {
		delete(m, key)
	}
}
