package pki

import (
	"net"
	"strings"
	"time"

	"github.com/secrethub/secrethub/server/fault"
)

// names is what a certificate is asked to hold.
type names struct {
	CommonName string
	DNSNames   []string // alt names; the common name is added when it is a DNS name
	IPs        []net.IP
	Key        KeySpec // the public key to certify
}

// check is one issuance rule: it refuses a request the role does not
// allow, with a message for the caller. issueChecks and signChecks compose
// them; each is tested alone.
type check func(role Role, req names) error

var (
	issueChecks = []check{checkCommonName, checkAltNames, checkIPSANs}
	signChecks  = []check{checkCommonName, checkAltNames, checkIPSANs, checkKey}
)

func runChecks(checks []check, role Role, req names) error {
	for _, c := range checks {
		if err := c(role, req); err != nil {
			return err
		}
	}
	return nil
}

// allowedName reports whether the role lets a certificate name the DNS
// name (lowercase; "*.x" wildcards count as subdomains of x).
func allowedName(role Role, name string) bool {
	if !validHostname(name, true) {
		return false
	}
	if role.AllowAnyName {
		return true
	}
	for _, d := range role.AllowedDomains {
		if role.AllowBareDomains && name == d {
			return true
		}
		if role.AllowSubdomains && strings.HasSuffix(name, "."+d) {
			return true
		}
	}
	return false
}

// checkCommonName: a common name is required and, unless the role allows
// any name, must be an allowed DNS name. With allow_any_name it may be any
// short printable text (a person's or service's name).
func checkCommonName(role Role, req names) error {
	cn := req.CommonName
	switch {
	case cn == "":
		return fault.Invalidf("common_name is required")
	case role.AllowAnyName && len(cn) <= 64 && printable(cn):
		return nil
	case !allowedName(role, strings.ToLower(cn)):
		return fault.Invalidf("common_name %q is not allowed by role %s", fault.Input(clip(cn)), role.Name)
	}
	return nil
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// checkAltNames: every DNS subject alternative name must be allowed.
func checkAltNames(role Role, req names) error {
	for _, n := range req.DNSNames {
		if !allowedName(role, strings.ToLower(n)) {
			return fault.Invalidf("alt_names: %q is not allowed by role %s", fault.Input(clip(n)), role.Name)
		}
	}
	return nil
}

// checkIPSANs: IP subject alternative names need allow_ip_sans.
func checkIPSANs(role Role, req names) error {
	if len(req.IPs) > 0 && !role.AllowIPSANs {
		return fault.Invalidf("ip_sans are not allowed by role %s", role.Name)
	}
	return nil
}

// checkKey: a CSR's key must be of the role's type, RSA at least the
// role's size and EC on the role's curve; a role of type "any" takes every
// supported key.
func checkKey(role Role, req names) error {
	k := req.Key
	switch {
	case k.Type == "":
		return fault.Invalidf("the CSR's public key is of a type SecretHub does not certify (use rsa, ec or ed25519)")
	case role.KeyType == KeyAny:
		if k.Type == KeyRSA && k.Bits < 2048 {
			return fault.Invalidf("the CSR's RSA key has %d bits; at least 2048 are required", k.Bits)
		}
		return nil
	case k.Type != role.KeyType:
		return fault.Invalidf("the CSR's key is %s; role %s requires %s", k.Type, role.Name, role.KeyType)
	case k.Type == KeyRSA && k.Bits < role.KeyBits:
		return fault.Invalidf("the CSR's RSA key has %d bits; role %s requires at least %d", k.Bits, role.Name, role.KeyBits)
	case k.Type == KeyEC && k.Bits != role.KeyBits:
		return fault.Invalidf("the CSR's EC key is P-%d; role %s requires P-%d", k.Bits, role.Name, role.KeyBits)
	}
	return nil
}

// lifetime is a leaf's validity: the requested TTL (or the role's),
// capped by the role's max_ttl and by the issuer's own expiry. It returns
// the warnings that explain a cap, and refuses when the issuer has expired.
func lifetime(role Role, issuerID string, issuerNotAfter, now time.Time, requested time.Duration) (time.Time, []string, error) {
	var warnings []string
	ttl := requested
	if ttl <= 0 {
		ttl = role.TTL
	}
	if ttl > role.MaxTTL {
		warnings = append(warnings, "ttl "+ttl.String()+" is above the role's max_ttl; capped to "+role.MaxTTL.String())
		ttl = role.MaxTTL
	}
	notAfter, capped, err := capToIssuer(now.Add(ttl), issuerID, issuerNotAfter, now)
	return notAfter, append(warnings, capped...), err
}

// capToIssuer caps a certificate's end at its issuer's expiry, with a
// warning, and refuses when nothing of the validity is left: an expired
// issuer cannot make a certificate valid now.
func capToIssuer(notAfter time.Time, issuerID string, issuerNotAfter, now time.Time) (time.Time, []string, error) {
	if !issuerNotAfter.After(now) {
		return time.Time{}, nil, fault.Invalidf("issuer %s expired at %s: it can no longer issue", issuerID, issuerNotAfter.UTC().Format(time.RFC3339))
	}
	if notAfter.After(issuerNotAfter) {
		return issuerNotAfter, []string{"ttl reaches past the issuer's expiry; capped to " + issuerNotAfter.UTC().Format(time.RFC3339)}, nil
	}
	return notAfter, nil, nil
}
