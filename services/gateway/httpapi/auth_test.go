package httpapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// A verified token is remembered until it expires, and not a moment longer;
// a token that failed is never remembered.
func TestVerifiedTokensAreRememberedUntilTheyExpire(t *testing.T) {
	t.Parallel()
	const secret = "test-secret-that-is-long-enough-for-hs256"
	a, err := newAuthenticator(context.Background(), Config{JWTSecret: secret, AdminScope: "jobwire:admin"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	a.now = func() time.Time { return now }
	tok := signToken(t, jose.SigningKey{Algorithm: jose.HS256, Key: []byte(secret)}, claims{
		Claims: jwt.Claims{Subject: "carol", Expiry: jwt.NewNumericDate(now.Add(time.Minute)), IssuedAt: jwt.NewNumericDate(now)},
		Scope:  "jobs:read jobwire:admin",
	})
	for i := range 2 { // verified, then remembered
		p, err := a.verify(tok)
		if err != nil || p != (principal{Owner: "user:carol", Admin: true}) {
			t.Fatalf("use %d: %+v %v", i+1, p, err)
		}
	}
	if len(a.verified.m) != 1 {
		t.Fatalf("%d tokens remembered, want 1", len(a.verified.m))
	}
	now = now.Add(time.Minute + tokenLeeway + time.Second)
	if _, err := a.verify(tok); err == nil {
		t.Fatal("an expired token was accepted because it had been verified before")
	}

	// A forged token (carol's claims, the admin scope, another key) is
	// refused every time, also after the real one was remembered.
	now = time.Now()
	a.verified = verifiedTokens{}
	if _, err := a.verify(tok); err != nil {
		t.Fatal(err)
	}
	header, claims, _ := strings.Cut(tok, ".")
	claims, _, _ = strings.Cut(claims, ".")
	forged := header + "." + claims + ".AAAA"
	for range 2 {
		if _, err := a.verify(forged); err == nil {
			t.Fatal("a token with a bad signature was accepted")
		}
	}
	if len(a.verified.m) != 1 {
		t.Fatalf("%d tokens remembered, want only the real one", len(a.verified.m))
	}
}

// With JWT_JWKS_URL, keys the identity provider adds later are picked up:
// a token with an unknown key id makes the gateway fetch the key set again,
// at most once per jwksRefetchEvery, so unknown ids cannot flood the
// provider.
func TestJWKSURLPicksUpRotatedKeys(t *testing.T) {
	t.Parallel()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k1, k2 := newKey(), newKey()
	var mu sync.Mutex
	published := []jose.JSONWebKey{{Key: k1.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}
	var fetches atomic.Int64
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		mu.Lock()
		defer mu.Unlock()
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: published})
	}))
	defer idp.Close()

	a, err := newAuthenticator(context.Background(), Config{JWKSURL: idp.URL})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	a.now = func() time.Time { return now }
	sign := func(key *ecdsa.PrivateKey, kid string) string {
		return signToken(t, jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
			jwt.Claims{Subject: "dave", Expiry: jwt.NewNumericDate(now.Add(time.Hour))})
	}
	if _, err := a.verify(sign(k1, "k1")); err != nil || fetches.Load() != 1 {
		t.Fatalf("k1: %v after %d fetches", err, fetches.Load())
	}

	// The provider rotates: k2 appears. Right after the start-up fetch
	// the gateway does not ask again...
	mu.Lock()
	published = append(published, jose.JSONWebKey{Key: k2.Public(), KeyID: "k2", Algorithm: "ES256", Use: "sig"})
	mu.Unlock()
	if _, err := a.verify(sign(k2, "k2")); err == nil || fetches.Load() != 1 {
		t.Fatalf("k2 within %v of the last fetch: %v after %d fetches; want refused, no fetch", jwksRefetchEvery, err, fetches.Load())
	}
	// ...but later it does, once, and k2 works.
	now = now.Add(jwksRefetchEvery + time.Second)
	if _, err := a.verify(sign(k2, "k2")); err != nil || fetches.Load() != 2 {
		t.Fatalf("k2 later: %v after %d fetches; want accepted after 2", err, fetches.Load())
	}
	if n := len(a.verified.m); n != 1 {
		t.Errorf("%d tokens remembered after the fetch, want only k2's: a fetch forgets the others", n)
	}
	// A key id nobody published: refused, and no fetch right after the last.
	if _, err := a.verify(sign(newKey(), "k3")); err == nil || fetches.Load() != 2 {
		t.Fatalf("unknown k3: %v after %d fetches; want refused without a fetch", err, fetches.Load())
	}
}

// signToken makes a bearer token of claims c, signed with key.
func signToken(t *testing.T, key jose.SigningKey, c any) string {
	t.Helper()
	signer, err := jose.NewSigner(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}
