package httpapi

import (
	"net/http"
	"testing"
)

func TestClientAddress(t *testing.T) {
	t.Parallel()
	trusted, err := ParseProxies([]string{"10.0.0.0/8", "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	c := clientAddrs{trusted: trusted}
	for _, tc := range []struct {
		peer, xff, fwd, want string
	}{
		{"198.51.100.1:5000", "203.0.113.1", "", "198.51.100.1"},          // untrusted peer: headers ignored
		{"10.1.2.3:5000", "", "", "10.1.2.3"},                             // trusted, nothing forwarded
		{"10.1.2.3:5000", "203.0.113.1, 10.9.9.9", "", "203.0.113.1"},     // trusted hops skipped
		{"192.0.2.1:80", "203.0.113.1, 198.51.100.7", "", "198.51.100.7"}, // nearest untrusted counts
		{"10.1.2.3:5000", "nonsense", "", "10.1.2.3"},
		{"10.1.2.3:5000", "203.0.113.1", `for=198.51.100.2;proto=http, for="[2001:db8::7]:80"`, "2001:db8::/64"},
		{"[::ffff:10.1.2.3]:5000", "203.0.113.5", "", "203.0.113.5"}, // IPv4-mapped peer
		{"[2001:db8:aa:bb:1:2:3:4]:443", "", "", "2001:db8:aa:bb::/64"},
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.peer
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if tc.fwd != "" {
			r.Header.Set("Forwarded", tc.fwd)
		}
		if got := addrBlock(c.of(r)); got != tc.want {
			t.Errorf("peer %s, X-Forwarded-For %q, Forwarded %q: %s, want %s", tc.peer, tc.xff, tc.fwd, got, tc.want)
		}
	}
	if _, err := ParseProxies([]string{"not-an-ip"}); err == nil {
		t.Error("a bad TRUSTED_PROXIES entry was accepted")
	}
}
