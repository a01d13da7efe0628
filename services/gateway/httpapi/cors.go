package httpapi

import (
	"net/http"
	"net/url"
	"strings"
)

// CORS for the pages of other origins that use jobwire.js: the origins of
// ALLOWED_ORIGINS may load the module and call the HTTP API with a bearer
// token. No response allows credentials, so a browser never lets another
// origin read what the session cookie would show: cookies are for the
// gateway's own pages, tokens are the cross-origin way. Other origins get
// no CORS headers at all, and their preflights are refused.

// corsAllowHeaders are the request headers jobwire.js (or any client) may send.
const corsAllowHeaders = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID, Accept"

// corsExposeHeaders are the response headers a client on another origin may read.
const corsExposeHeaders = "Location, Idempotent-Replayed, Retry-After, ETag"

// corsMaxAge is how long (seconds) a browser may keep a preflight's answer.
const corsMaxAge = "600"

// allowedOrigins is the set of ALLOWED_ORIGINS, as browsers send Origin:
// "scheme://host[:port]", lower case.
type allowedOrigins map[string]bool

func newAllowedOrigins(origins []string) allowedOrigins {
	set := allowedOrigins{}
	for _, o := range origins {
		set[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
	}
	return set
}

// crossOrigin is r's Origin when it is another origin than the gateway's
// own ("" for a same-origin request or one without Origin). Like
// http.CrossOriginProtection it believes Sec-Fetch-Site first: under the
// pages' Referrer-Policy no-referrer, a browser sends "Origin: null" with
// their own form posts.
func crossOrigin(r *http.Request) string {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return ""
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return ""
	}
	if u, err := url.Parse(o); err == nil && strings.EqualFold(u.Host, r.Host) {
		return ""
	}
	return o
}

// cors answers preflights and adds the CORS headers for allowed origins
// on the paths jobwire.js uses (/api/ and /static/). A state-changing
// request from another origin that carries the session cookie and no
// bearer token is refused, on any path: cross-origin callers use tokens.
// (Other origins' state changes are refused anyway, by crossOrigin.)
func cors(allowed allowedOrigins) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			corsPath := strings.HasPrefix(r.URL.Path, "/api/") || strings.HasPrefix(r.URL.Path, "/static/")
			if corsPath {
				h.Add("Vary", "Origin") // a cache must not hand one origin's answer to another
			}
			origin := crossOrigin(r)
			if origin == "" {
				next.ServeHTTP(w, r)
				return
			}
			if corsPath && allowed[strings.ToLower(origin)] {
				h.Set("Access-Control-Allow-Origin", origin)
				if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
					h.Add("Vary", "Access-Control-Request-Method, Access-Control-Request-Headers")
					h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
					h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
					h.Set("Access-Control-Max-Age", corsMaxAge)
					w.WriteHeader(http.StatusNoContent)
					return
				}
				h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
			}
			if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions && r.Header.Get("Authorization") == "" {
				if _, err := r.Cookie(SessionCookie); err == nil {
					writeError(w, errorf(http.StatusForbidden, "cross_origin", "requests from another origin must carry a bearer token, not the session cookie"))
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}
