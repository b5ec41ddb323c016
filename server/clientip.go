package server

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/secrethub/secrethub/server/policy"
)

// clientIP is the address policies and CIDR bindings see: the TCP peer,
// unless the peer is a trusted proxy, in which case the right-most
// X-Forwarded-For hop that is not itself a trusted proxy. Headers from
// untrusted peers are ignored, so a client cannot spoof its address.
func clientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := remoteAddr(r)
	if !isTrusted(peer, trusted) {
		return peer
	}
	values := r.Header.Values("X-Forwarded-For")
	if len(values) == 0 {
		return peer
	}
	hops := strings.Split(strings.Join(values, ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		if strings.TrimSpace(hops[i]) == "" {
			continue
		}
		hop, ok := parseHop(hops[i])
		if !ok {
			// A hop that is no address ("unknown", garbage) ends what can
			// be believed. The client is then unknown: it matches no CIDR.
			// Answering with the proxy's own (trusted, often internal)
			// address would hand every client the proxy's rights.
			return netip.Addr{}
		}
		if !isTrusted(hop, trusted) {
			return hop
		}
		peer = hop
	}
	return peer
}

// parseHop reads one X-Forwarded-For entry: an address, possibly with a
// port ("1.2.3.4:5555") or in brackets ("[2001:db8::1]", "[2001:db8::1]:443").
// An IPv6 zone ("fe80::1%eth0") is dropped: it names an interface of some
// host up the chain, means nothing here, and is text of any length the
// client chose, which would reach the logs and the audit log as its address.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil && strings.HasPrefix(s, "[") {
		return a.Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}

func remoteAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParseCIDRList parses a comma- or space-separated list of CIDRs or bare
// addresses (SECRETHUB_TRUSTED_PROXIES).
func ParseCIDRList(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		p, err := policy.ParsePrefix(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}
