package pki

import (
	"slices"
	"strings"
	"testing"
)

func TestCheckURLList(t *testing.T) {
	long := "https://ca.example.com/" + strings.Repeat("a", MaxURLLength-len("https://ca.example.com/"))
	many := make([]string, MaxURLs+1)
	for k := range many {
		many[k] = "http://ca.example.com/" + string(rune('a'+k))
	}
	cases := []struct {
		name    string
		urls    []string
		want    []string // the stored list when accepted
		wantErr string   // a part of the 400 when refused
	}{
		{"an empty list is accepted (it clears)", []string{}, []string{}, ""},
		{"http and https URLs are accepted", []string{"http://ca.example.com/v1/pki/ca/pem", "https://ca.example.com:8200/v1/pki/crl"},
			[]string{"http://ca.example.com/v1/pki/ca/pem", "https://ca.example.com:8200/v1/pki/crl"}, ""},
		{"surrounding spaces are trimmed", []string{"  http://ocsp.example.com  "}, []string{"http://ocsp.example.com"}, ""},
		{"an upper-case scheme is an http URL", []string{"HTTP://ca.example.com/crl"}, []string{"HTTP://ca.example.com/crl"}, ""},
		{"an IP host with a query is accepted", []string{"http://[2001:db8::1]/v1/pki/crl?issuer_id=x"}, []string{"http://[2001:db8::1]/v1/pki/crl?issuer_id=x"}, ""},
		{"a URL of the longest length is accepted", []string{long}, []string{long}, ""},
		{"as many URLs as allowed are accepted", many[:MaxURLs], many[:MaxURLs], ""},
		{"one URL more than allowed is refused", many, nil, "at most 8"},
		{"a longer URL is refused", []string{long + "a"}, nil, "longer than 512"},
		{"an empty URL is refused, naming its place", []string{"http://ca.example.com", " "}, nil, `test[1]: " " is empty`},
		{"another scheme is refused", []string{"ldap://ca.example.com/cn=crl"}, nil, `test[0]: "ldap://ca.example.com/cn=crl" is not an absolute http or https URL`},
		{"a relative URL is refused", []string{"/v1/pki/crl"}, nil, "is not an absolute http or https URL"},
		{"a URL without a host is refused", []string{"http:///v1/pki/crl"}, nil, "has no host"},
		{"an opaque URL is refused", []string{"http:ca.example.com"}, nil, "has no host"},
		{"a port without a host is refused", []string{"http://:80/crl"}, nil, "has no host"},
		{"credentials are refused", []string{"https://user:pw@ca.example.com/crl"}, nil, "user information"},
		{"a space inside is refused", []string{"http://ca.example.com/my crl"}, nil, "percent-encode"},
		{"a newline is refused", []string{"http://ca.example.com/\ncrl"}, nil, "percent-encode"},
		{"non-ASCII is refused (a certificate holds ASCII URIs)", []string{"http://bücher.example/crl"}, nil, "percent-encode"},
		{"a bad port is refused", []string{"http://ca.example.com:port/crl"}, nil, "is not a URL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := checkURLList("test", &c.urls)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("checkURLList(%q) = %v, %v; want an error with %q", c.urls, got, err, c.wantErr)
				}
				return
			}
			if err != nil || got == nil || !slices.Equal(*got, c.want) {
				t.Fatalf("checkURLList(%q) = %v, %v; want %q", c.urls, got, err, c.want)
			}
		})
	}
	if got, err := checkURLList("test", nil); got != nil || err != nil {
		t.Fatalf("a list not named = %v, %v; want it left out", got, err)
	}
}

// A URL refused for carrying user information is named without its
// password: the message reaches the caller, the log and the audit log.
func TestCheckURLListNeverQuotesAPassword(t *testing.T) {
	list := []string{"https://ca.example.com/crl", "https://admin:hunter22@ca.example.com/crl"}
	_, err := checkURLList("crl_distribution_points", &list)
	if err == nil || strings.Contains(err.Error(), "hunter22") || !strings.Contains(err.Error(), "admin:xxxxx@ca.example.com") {
		t.Fatalf("error = %v; want the URL named with its password masked", err)
	}
}
