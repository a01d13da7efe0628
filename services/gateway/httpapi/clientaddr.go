package httpapi

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// clientAddrs works out who a request comes from, for the limits on
// anonymous sessions. The TCP peer counts, unless it is a trusted proxy:
// then the forwarding headers it added are believed, read from the right
// (nearest hop) past any other trusted proxy. Without trusted proxies the
// headers are ignored, since any client can send them.
type clientAddrs struct {
	trusted []netip.Prefix
}

// ParseProxies reads TRUSTED_PROXIES: IP addresses or CIDR prefixes.
func ParseProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, err
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func (c clientAddrs) isTrusted(a netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// of is r's client address.
func (c clientAddrs) of(r *http.Request) netip.Addr {
	peer := parseHost(r.RemoteAddr)
	if !peer.IsValid() || !c.isTrusted(peer) {
		return peer
	}
	hops := forwardedFor(r.Header)
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a := parseHost(hops[i])
		if !a.IsValid() {
			break // garbage (or "unknown"): the last hop we could read counts
		}
		client = a
		if !c.isTrusted(a) {
			break
		}
	}
	return client
}

// forwardedFor lists the client addresses of the Forwarded header's "for="
// parameters (RFC 7239), or else of X-Forwarded-For, first hop first.
func forwardedFor(h http.Header) []string {
	var hops []string
	for _, line := range h.Values("Forwarded") {
		for elem := range strings.SplitSeq(line, ",") {
			for pair := range strings.SplitSeq(elem, ";") {
				k, v, _ := strings.Cut(strings.TrimSpace(pair), "=")
				if strings.EqualFold(k, "for") {
					hops = append(hops, strings.Trim(v, `"`))
				}
			}
		}
	}
	if len(hops) > 0 {
		return hops
	}
	for _, line := range h.Values("X-Forwarded-For") {
		for hop := range strings.SplitSeq(line, ",") {
			hops = append(hops, strings.TrimSpace(hop))
		}
	}
	return hops
}

// parseHost reads "1.2.3.4", "1.2.3.4:80", "2001:db8::1", "[2001:db8::1]"
// or "[2001:db8::1]:80".
func parseHost(s string) netip.Addr {
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// addrBlock is the unit the per-address limits count: an IPv4 address, or
// an IPv6 /64 (one customer's network: a single host can use a whole /64,
// so counting each IPv6 address alone would limit nothing).
func addrBlock(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
