package httpapi

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/httprate"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/jobwire/jobwire/services/gateway/jobops"
	"github.com/prometheus/client_golang/prometheus"
)

// principal is who makes a request: the owner of the jobs they submit, and
// whether they may see every job.
type principal struct {
	Owner string // "user:<sub>" for a bearer token, "anon:<id>" for a browser session
	Admin bool
	// Addr is the client's address block (addrBlock) for an anonymous
	// session, whose limits also count per address; empty for a token.
	Addr string
}

// caller is p as the job rules know it.
func (p principal) caller() jobops.Caller { return jobops.Caller{Owner: p.Owner, Admin: p.Admin} }

type principalKey struct{}

func principalFrom(ctx context.Context) principal {
	p, _ := ctx.Value(principalKey{}).(principal)
	return p
}

// SessionCookie names the signed anonymous-session cookie.
const SessionCookie = "jobwire_session"

// authenticator identifies callers: a bearer JWT (HS256 with a shared
// secret, or RS256/ES256 with keys from a JWKS file or URL), or else a
// signed anonymous session cookie, made on first contact when anonymous
// sessions are on.
type authenticator struct {
	anonymous  bool
	sessionKey []byte
	hsKey      []byte
	jwks       atomic.Pointer[jose.JSONWebKeySet]
	issuer     string
	audience   string
	adminScope string
	verified   verifiedTokens
	now        func() time.Time // time.Now; tests move it

	// New anonymous sessions are rate limited per client address;
	// sessionsRefused (if set) counts the refusals.
	clients         clientAddrs
	newSessions     *httprate.RateLimiter
	sessionsRefused prometheus.Counter

	// With JWT_JWKS_URL, a token whose key id is unknown makes the
	// gateway fetch the key set again (the identity provider rotated its
	// keys), at most once per jwksRefetchEvery.
	jwksURL     string
	jwksMu      sync.Mutex
	jwksFetched time.Time
}

// jwksRefetchEvery is the shortest time between two fetches of the key
// set prompted by unknown key ids.
const jwksRefetchEvery = 30 * time.Second

// verifiedTokens remembers the bearer tokens that passed verification,
// until they expire, so a client that sends the same token with every
// request pays for the signature check once. Keys are hashes of tokens.
type verifiedTokens struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]verifiedToken
}

type verifiedToken struct {
	p       principal
	expires time.Time
}

// maxVerifiedTokens bounds the cache; when it is full, it starts over.
const maxVerifiedTokens = 10000

func (v *verifiedTokens) get(key [sha256.Size]byte, now time.Time) (principal, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	t, ok := v.m[key]
	if !ok || !now.Before(t.expires) {
		return principal{}, false
	}
	return t.p, true
}

func (v *verifiedTokens) clear() {
	v.mu.Lock()
	v.m = nil
	v.mu.Unlock()
}

func (v *verifiedTokens) put(key [sha256.Size]byte, p principal, expires time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil || len(v.m) >= maxVerifiedTokens {
		v.m = make(map[[sha256.Size]byte]verifiedToken)
	}
	v.m[key] = verifiedToken{p, expires}
}

func newAuthenticator(ctx context.Context, cfg Config) (*authenticator, error) {
	a := &authenticator{
		anonymous: cfg.AnonymousSessions, issuer: cfg.JWTIssuer, audience: cfg.JWTAudience, adminScope: cfg.AdminScope, now: time.Now,
		clients:     clientAddrs{trusted: cfg.TrustedProxies},
		newSessions: httprate.NewRateLimiter(int(max(cfg.NewSessionRate, 1)), time.Minute, onlyRetryAfter),
	}
	var err error
	if a.sessionKey, err = secret(cfg.SessionSecret, cfg.SessionSecretFile); err != nil {
		return nil, fmt.Errorf("SESSION_SECRET_FILE: %w", err)
	}
	if len(a.sessionKey) == 0 {
		a.sessionKey = make([]byte, 32) // sessions last as long as the process
		_, _ = rand.Read(a.sessionKey)
	}
	if a.hsKey, err = secret(cfg.JWTSecret, cfg.JWTSecretFile); err != nil {
		return nil, fmt.Errorf("JWT_HS256_SECRET_FILE: %w", err)
	}
	switch {
	case cfg.JWKSFile != "":
		b, err := os.ReadFile(cfg.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("JWT_JWKS_FILE: %w", err)
		}
		if err := a.setJWKS(b); err != nil {
			return nil, fmt.Errorf("JWT_JWKS_FILE: %w", err)
		}
	case cfg.JWKSURL != "":
		a.jwksURL, a.jwksFetched = cfg.JWKSURL, a.now()
		if err := a.fetchJWKS(ctx, cfg.JWKSURL); err != nil {
			return nil, fmt.Errorf("JWT_JWKS_URL: %w", err)
		}
	}
	return a, nil
}

// secret is value, or the trimmed contents of file (for Kubernetes secrets).
func secret(value, file string) ([]byte, error) {
	if file == "" {
		return []byte(value), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return []byte(strings.TrimSpace(string(b))), nil
}

func (a *authenticator) setJWKS(b []byte) error {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return err
	}
	if len(set.Keys) == 0 {
		return errors.New("the key set has no keys")
	}
	a.jwks.Store(&set)
	return nil
}

func (a *authenticator) fetchJWKS(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	return a.setJWKS(b)
}

// refetchJWKS fetches the key set from JWT_JWKS_URL again, unless that
// was done less than jwksRefetchEvery ago; it reports whether it did. A
// failed fetch keeps the keys there were.
func (a *authenticator) refetchJWKS(now time.Time) bool {
	if a.jwksURL == "" {
		return false
	}
	a.jwksMu.Lock()
	defer a.jwksMu.Unlock()
	if now.Sub(a.jwksFetched) < jwksRefetchEvery {
		return false
	}
	a.jwksFetched = now
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if a.fetchJWKS(ctx, a.jwksURL) != nil {
		return false
	}
	a.verified.clear() // a key that was withdrawn no longer vouches for its tokens
	return true
}

// identify works out who sent r; it may set a new session cookie on w.
func (a *authenticator) identify(w http.ResponseWriter, r *http.Request) (principal, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		token, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return principal{}, errorf(http.StatusUnauthorized, "unauthenticated", "the Authorization header must be \"Bearer <token>\"")
		}
		return a.verify(strings.TrimSpace(token))
	}
	addr := addrBlock(a.clients.of(r))
	if c, err := r.Cookie(SessionCookie); err == nil {
		if id, ok := a.openSession(c.Value); ok {
			return principal{Owner: "anon:" + id, Addr: addr}, nil
		}
	}
	if !a.anonymous {
		return principal{}, errUnauthenticated
	}
	if a.newSessions.OnLimit(w, r, addr) { // sets Retry-After
		if a.sessionsRefused != nil {
			a.sessionsRefused.Inc()
		}
		return principal{}, errorf(http.StatusTooManyRequests, "too_many_sessions",
			"too many new sessions from your address; keep the session cookie between requests, or try again later")
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	sid := base64.RawURLEncoding.EncodeToString(id)
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: sid + "." + a.sign(sid), Path: "/",
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil,
		MaxAge: int((365 * 24 * time.Hour).Seconds()),
	})
	return principal{Owner: "anon:" + sid, Addr: addr}, nil
}

func (a *authenticator) sign(sid string) string {
	m := hmac.New(sha256.New, a.sessionKey)
	m.Write([]byte(sid))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (a *authenticator) openSession(v string) (string, bool) {
	sid, sig, ok := strings.Cut(v, ".")
	if !ok || len(sid) != 22 || !hmac.Equal([]byte(sig), []byte(a.sign(sid))) {
		return "", false
	}
	return sid, true
}

// tokenLeeway is the clock skew allowed when checking exp and nbf.
const tokenLeeway = 30 * time.Second

// claims are the JWT claims jobwire reads.
type claims struct {
	jwt.Claims
	Scope string   `json:"scope,omitempty"`
	Scp   []string `json:"scp,omitempty"`
	Roles []string `json:"roles,omitempty"`
}

// verify checks a bearer token, or finds it among those verified before;
// its errors never repeat the token.
func (a *authenticator) verify(token string) (principal, error) {
	key := sha256.Sum256([]byte(token))
	now := a.now()
	if p, ok := a.verified.get(key, now); ok {
		return p, nil
	}
	p, expires, err := a.verifyToken(token, now)
	if err == nil {
		a.verified.put(key, p, expires)
	}
	return p, err
}

// verifyToken checks a bearer token's signature and claims at now, and
// returns who it names and when it stops being valid.
func (a *authenticator) verifyToken(token string, now time.Time) (principal, time.Time, error) {
	invalid := func(why string) (principal, time.Time, error) {
		return principal{}, time.Time{}, errorf(http.StatusUnauthorized, "unauthenticated", "invalid bearer token: %s", why)
	}
	var algs []jose.SignatureAlgorithm
	if len(a.hsKey) > 0 {
		algs = append(algs, jose.HS256)
	}
	if a.jwks.Load() != nil {
		algs = append(algs, jose.RS256, jose.ES256)
	}
	if len(algs) == 0 {
		return invalid("this gateway accepts no bearer tokens (no JWT key configured)")
	}
	tok, err := jwt.ParseSigned(token, algs)
	if err != nil || len(tok.Headers) != 1 {
		return invalid("malformed, or signed with an algorithm this gateway does not accept")
	}
	var key any = a.hsKey
	if tok.Headers[0].Algorithm != string(jose.HS256) {
		keys := a.jwks.Load().Key(tok.Headers[0].KeyID)
		if len(keys) == 0 && a.refetchJWKS(now) {
			keys = a.jwks.Load().Key(tok.Headers[0].KeyID)
		}
		if len(keys) == 0 {
			return invalid("unknown key id")
		}
		key = keys[0].Key
	}
	var c claims
	if err := tok.Claims(key, &c); err != nil {
		return invalid("bad signature")
	}
	exp := jwt.Expected{Issuer: a.issuer, Time: now}
	if a.audience != "" {
		exp.AnyAudience = jwt.Audience{a.audience}
	}
	if err := c.ValidateWithLeeway(exp, tokenLeeway); err != nil {
		return invalid("expired, not yet valid, or for another issuer or audience")
	}
	if c.Expiry == nil {
		return invalid("it has no expiry (exp)")
	}
	if c.Subject == "" || len(c.Subject) > 200 {
		return invalid("no usable subject (sub)")
	}
	admin := a.adminScope != "" && (slices.Contains(strings.Fields(c.Scope), a.adminScope) ||
		slices.Contains(c.Scp, a.adminScope) || slices.Contains(c.Roles, a.adminScope))
	return principal{Owner: "user:" + c.Subject, Admin: admin}, c.Expiry.Time().Add(tokenLeeway), nil
}

// requireAuth identifies the caller of every request it wraps.
func requireAuth(a *authenticator) func(http.Handler) http.Handler {
	return authenticate(a.identify)
}

// allowAnyone is requireAuth for the pages: they hold no data (their
// scripts fetch it as the caller), so a caller the gateway cannot identify
// (no anonymous sessions here, no token yet) still gets them, with no
// principal, and signs in with a token there.
func allowAnyone(a *authenticator) func(http.Handler) http.Handler {
	return authenticate(func(w http.ResponseWriter, r *http.Request) (principal, error) {
		p, err := a.identify(w, r)
		if ae := (*apiError)(nil); errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
			return principal{}, nil
		}
		return p, err
	})
}

// The WebSocket subprotocols of GET /ws. A browser cannot set headers on a
// WebSocket, so a page offers its bearer token as a subprotocol of its own,
// wsBearerPrefix + token, next to wsSubprotocol, which the server answers
// with (a browser drops a connection whose server picks none it offered).
const (
	wsSubprotocol  = "jobwire"
	wsBearerPrefix = "jobwire.bearer."
)

// requireAuthWebSocket is requireAuth for GET /ws: without an
// Authorization header, a bearer token offered as a subprotocol
// (wsBearerPrefix) is verified exactly as the header's would be.
func requireAuthWebSocket(a *authenticator) func(http.Handler) http.Handler {
	return authenticate(func(w http.ResponseWriter, r *http.Request) (principal, error) {
		if r.Header.Get("Authorization") == "" {
			if token, ok := subprotocolToken(r); ok {
				return a.verify(token)
			}
		}
		return a.identify(w, r)
	})
}

// subprotocolToken is the bearer token among r's WebSocket subprotocols.
func subprotocolToken(r *http.Request) (string, bool) {
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(h, ",") {
			if token, ok := strings.CutPrefix(strings.TrimSpace(p), wsBearerPrefix); ok {
				return token, true
			}
		}
	}
	return "", false
}

// authenticate identifies the caller of every request it wraps with identify.
func authenticate(identify func(http.ResponseWriter, *http.Request) (principal, error)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, err := identify(w, r)
			if err != nil {
				if ae := (*apiError)(nil); errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
					w.Header().Set("WWW-Authenticate", `Bearer realm="jobwire"`)
				}
				writeError(w, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
		})
	}
}
