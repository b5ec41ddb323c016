package server

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("2001:db8:ff::/48")}
	cases := []struct {
		name      string
		peer      string
		forwarded []string
		want      string // "" for an unknown client
	}{
		{"an untrusted peer is the client", "203.0.113.9:4000", nil, "203.0.113.9"},
		{"an untrusted peer's header is ignored", "203.0.113.9:4000", []string{"10.9.9.9"}, "203.0.113.9"},
		{"a trusted peer without a header is the client", "10.0.0.5:4000", nil, "10.0.0.5"},
		{"a trusted peer's header names the client", "10.0.0.5:4000", []string{"203.0.113.9"}, "203.0.113.9"},
		{"the right-most untrusted hop wins", "10.0.0.5:4000", []string{"198.51.100.1, 203.0.113.9, 10.0.0.7"}, "203.0.113.9"},
		{"several header lines are one list", "10.0.0.5:4000", []string{"198.51.100.1", "203.0.113.9"}, "203.0.113.9"},
		{"a chain of trusted hops ends at its first address", "10.0.0.5:4000", []string{"10.0.0.8, 10.0.0.7"}, "10.0.0.8"},
		{"a hop with a port", "10.0.0.5:4000", []string{"203.0.113.9:5555"}, "203.0.113.9"},
		{"a bracketed IPv6 hop", "10.0.0.5:4000", []string{"[2001:db8::1]"}, "2001:db8::1"},
		{"a bracketed IPv6 hop with a port", "10.0.0.5:4000", []string{"[2001:db8::1]:443"}, "2001:db8::1"},
		{"a hop's IPv6 zone is dropped", "10.0.0.5:4000", []string{"fe80::1%ZONE-CANARY-22"}, "fe80::1"},
		{"a bracketed hop's IPv6 zone is dropped", "10.0.0.5:4000", []string{"[fe80::1%eth0]:443"}, "fe80::1"},
		{"an IPv4-mapped hop is read as IPv4", "10.0.0.5:4000", []string{"::ffff:203.0.113.9"}, "203.0.113.9"},
		{"\"unknown\" is no client, not the proxy", "10.0.0.5:4000", []string{"unknown"}, ""},
		{"garbage is no client, not the proxy", "10.0.0.5:4000", []string{"203.0.113.9, not-an-ip"}, ""},
		{"an obfuscated identifier is no client", "10.0.0.5:4000", []string{"_hidden"}, ""},
		{"empty entries are skipped", "10.0.0.5:4000", []string{"203.0.113.9, , "}, "203.0.113.9"},
		{"an IPv6 proxy in range is trusted", "[2001:db8:ff::2]:4000", []string{"203.0.113.9"}, "203.0.113.9"},
		{"an IPv6 peer out of range is the client", "[2001:db8:1::2]:4000", []string{"10.0.0.9"}, "2001:db8:1::2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v1/sys/health", nil)
			r.RemoteAddr = c.peer
			for _, v := range c.forwarded {
				r.Header.Add("X-Forwarded-For", v)
			}
			got := clientIP(r, trusted)
			if (c.want == "" && got.IsValid()) || (c.want != "" && got.String() != c.want) {
				t.Fatalf("clientIP = %v, want %q", got, c.want)
			}
		})
	}
}
