package pki

import (
	"net"
	"strings"
	"testing"
	"time"
)

var webRole = Role{Name: "web", AllowedDomains: []string{"example.com"}, AllowSubdomains: true, AllowIPSANs: true, KeyType: KeyEC, KeyBits: 256}

func TestCheckCommonName(t *testing.T) {
	bare := webRole
	bare.AllowBareDomains, bare.AllowSubdomains = true, false
	anyName := Role{Name: "any", AllowAnyName: true}
	cases := []struct {
		name string
		role Role
		cn   string
		ok   bool
	}{
		{"a subdomain is allowed with allow_subdomains", webRole, "www.example.com", true},
		{"a deep subdomain is allowed too", webRole, "a.b.example.com", true},
		{"a wildcard subdomain is allowed", webRole, "*.example.com", true},
		{"upper case is compared lower case", webRole, "WWW.Example.COM", true},
		{"the bare domain needs allow_bare_domains", webRole, "example.com", false},
		{"the bare domain is allowed with allow_bare_domains", bare, "example.com", true},
		{"a subdomain needs allow_subdomains", bare, "www.example.com", false},
		{"another domain is refused", webRole, "www.example.org", false},
		{"a suffix that is not a label boundary is refused", webRole, "badexample.com", false},
		{"a name that is not a DNS name is refused", webRole, "www example.com", false},
		{"an empty name is refused", anyName, "", false},
		{"any printable name passes allow_any_name", anyName, "Agent 7 (prod)", true},
		{"control characters never pass", anyName, "a\nb", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := checkCommonName(c.role, names{CommonName: c.cn}); (err == nil) != c.ok {
				t.Fatalf("checkCommonName(%q) = %v, want ok=%v", c.cn, err, c.ok)
			}
		})
	}
}

func TestCheckAltNames(t *testing.T) {
	cases := []struct {
		name string
		role Role
		alt  []string
		ok   bool
	}{
		{"no alt names pass", webRole, nil, true},
		{"allowed alt names pass", webRole, []string{"a.example.com", "b.example.com"}, true},
		{"one refused name refuses all", webRole, []string{"a.example.com", "evil.com"}, false},
		{"allow_any_name still needs DNS names in SANs", Role{AllowAnyName: true}, []string{"not a host"}, false},
		{"allow_any_name takes any DNS name", Role{AllowAnyName: true}, []string{"anything.test"}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := checkAltNames(c.role, names{DNSNames: c.alt}); (err == nil) != c.ok {
				t.Fatalf("checkAltNames(%v) = %v, want ok=%v", c.alt, err, c.ok)
			}
		})
	}
}

func TestCheckIPSANs(t *testing.T) {
	noIPs := webRole
	noIPs.AllowIPSANs = false
	ip := []net.IP{net.ParseIP("10.0.0.1")}
	cases := []struct {
		name string
		role Role
		ips  []net.IP
		ok   bool
	}{
		{"IPs pass with allow_ip_sans", webRole, ip, true},
		{"IPs are refused without allow_ip_sans", noIPs, ip, false},
		{"no IPs always pass", noIPs, nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := checkIPSANs(c.role, names{IPs: c.ips}); (err == nil) != c.ok {
				t.Fatalf("checkIPSANs = %v, want ok=%v", err, c.ok)
			}
		})
	}
}

func TestCheckKey(t *testing.T) {
	rsa3072 := Role{Name: "r", KeyType: KeyRSA, KeyBits: 3072}
	anyKey := Role{Name: "a", KeyType: KeyAny}
	cases := []struct {
		name string
		role Role
		key  KeySpec
		ok   bool
	}{
		{"the role's EC curve passes", webRole, KeySpec{KeyEC, 256}, true},
		{"another EC curve is refused", webRole, KeySpec{KeyEC, 384}, false},
		{"another key type is refused", webRole, KeySpec{KeyRSA, 2048}, false},
		{"a larger RSA key passes", rsa3072, KeySpec{KeyRSA, 4096}, true},
		{"a smaller RSA key is refused", rsa3072, KeySpec{KeyRSA, 2048}, false},
		{"any takes ed25519", anyKey, KeySpec{KeyEd25519, 0}, true},
		{"any still refuses weak RSA", anyKey, KeySpec{KeyRSA, 1024}, false},
		{"an unsupported key is refused", anyKey, KeySpec{}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := checkKey(c.role, names{Key: c.key}); (err == nil) != c.ok {
				t.Fatalf("checkKey(%+v) = %v, want ok=%v", c.key, err, c.ok)
			}
		})
	}
}

func TestLifetime(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	role := Role{TTL: 24 * time.Hour, MaxTTL: 48 * time.Hour}
	far := now.Add(1000 * time.Hour)
	cases := []struct {
		name      string
		requested time.Duration
		issuerEnd time.Time
		want      time.Time
		warnings  int
		expired   bool
	}{
		{"no ttl takes the role's", 0, far, now.Add(24 * time.Hour), 0, false},
		{"a ttl within max_ttl is kept", 36 * time.Hour, far, now.Add(36 * time.Hour), 0, false},
		{"a ttl above max_ttl is capped", 100 * time.Hour, far, now.Add(48 * time.Hour), 1, false},
		{"the issuer's expiry caps everything", 36 * time.Hour, now.Add(time.Hour), now.Add(time.Hour), 1, false},
		{"an issuer that expired refuses", 36 * time.Hour, now.Add(-time.Hour), time.Time{}, 0, true},
		{"an issuer that expires this instant refuses", 36 * time.Hour, now, time.Time{}, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, w, err := lifetime(role, "iss-1", c.issuerEnd, now, c.requested)
			if c.expired {
				if err == nil || !strings.Contains(err.Error(), "issuer iss-1 expired at "+c.issuerEnd.Format(time.RFC3339)) {
					t.Fatalf("lifetime = %s, %v; want an error naming the issuer's expiry", got, err)
				}
				return
			}
			if err != nil || !got.Equal(c.want) || len(w) != c.warnings {
				t.Fatalf("lifetime = %s %v %v, want %s with %d warnings", got, w, err, c.want, c.warnings)
			}
		})
	}
}

func TestKeySpecNormalize(t *testing.T) {
	cases := []struct {
		in       KeySpec
		allowAny bool
		want     KeySpec
		err      string
	}{
		{KeySpec{}, false, KeySpec{KeyRSA, 2048}, ""},
		{KeySpec{KeyRSA, 4096}, false, KeySpec{KeyRSA, 4096}, ""},
		{KeySpec{KeyRSA, 1024}, false, KeySpec{}, "RSA size"},
		{KeySpec{KeyEC, 0}, false, KeySpec{KeyEC, 256}, ""},
		{KeySpec{KeyEC, 521}, false, KeySpec{KeyEC, 521}, ""},
		{KeySpec{KeyEC, 4096}, false, KeySpec{}, "EC curve"},
		{KeySpec{KeyEd25519, 0}, false, KeySpec{KeyEd25519, 0}, ""},
		{KeySpec{KeyEd25519, 4096}, false, KeySpec{}, "ed25519"},
		{KeySpec{KeyAny, 0}, false, KeySpec{}, "only for roles"},
		{KeySpec{KeyAny, 0}, true, KeySpec{KeyAny, 0}, ""},
		{KeySpec{"dsa", 0}, false, KeySpec{}, "not supported"},
	}
	for _, c := range cases {
		got, err := c.in.Normalize(c.allowAny)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Normalize(%+v) = %v, want an error about %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("Normalize(%+v) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

func TestSerials(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		n, err := newSerial()
		if err != nil {
			t.Fatal(err)
		}
		if n.Sign() <= 0 || n.BitLen() > 127 || len(n.Bytes()) != 16 {
			t.Fatalf("serial %x: sign %d, %d bits", n, n.Sign(), n.BitLen())
		}
		s := FormatSerial(n)
		if len(s) != 16*3-1 || seen[s] {
			t.Fatalf("serial %q malformed or repeated", s)
		}
		seen[s] = true
		norm, back, err := ParseSerial(strings.ToUpper(strings.ReplaceAll(s, ":", "-")))
		if err != nil || norm != s || back.Cmp(n) != 0 {
			t.Fatalf("ParseSerial round trip: %q %v %v", norm, back, err)
		}
	}
	for _, bad := range []string{"", "zz", "1", strings.Repeat("ab", 40)} {
		if _, _, err := ParseSerial(bad); err == nil {
			t.Errorf("ParseSerial(%q) accepted", bad)
		}
	}
}
