package pki

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/storage"
)

// Limits on the publication URLs: every certificate signed carries all of
// them, so a list stays short.
const (
	MaxURLs      = 8   // per list
	MaxURLLength = 512 // bytes per URL
)

// URLs reads where certificates say their issuer, CRLs and OCSP responder
// are published.
func (e *Engine) URLs(ctx context.Context) (storage.PKIURLs, error) { return e.store.PKIURLs(ctx) }

// SetURLs checks and stores the lists change names (an empty one clears
// it), keeps the others, and returns them all. Every certificate signed
// afterwards, on any node, carries them: issuance reads them with its
// issuer. Certificates signed before keep what they were given.
func (e *Engine) SetURLs(ctx context.Context, change storage.PKIURLsChange) (storage.PKIURLs, error) {
	var err error
	if change.IssuingCertificates, err = checkURLList("issuing_certificates", change.IssuingCertificates); err != nil {
		return storage.PKIURLs{}, err
	}
	if change.CRLDistributionPoints, err = checkURLList("crl_distribution_points", change.CRLDistributionPoints); err != nil {
		return storage.PKIURLs{}, err
	}
	if change.OCSPServers, err = checkURLList("ocsp_servers", change.OCSPServers); err != nil {
		return storage.PKIURLs{}, err
	}
	return e.store.UpdatePKIURLs(ctx, change)
}

// checkURLList checks a list a write names (nil: not named) and returns
// it with each URL trimmed; an error names the field, the bad URL and its
// place in the list.
func checkURLList(field string, list *[]string) (*[]string, error) {
	if list == nil {
		return nil, nil
	}
	if len(*list) > MaxURLs {
		return nil, fault.Invalidf("%s: %d URLs; at most %d fit in every certificate", field, len(*list), MaxURLs)
	}
	out := make([]string, 0, len(*list))
	for k, raw := range *list {
		u := strings.TrimSpace(raw)
		if err := checkURL(u); err != nil {
			return nil, fault.Invalidf("%s[%d]: %q %s", field, k, fault.Input(clip(withoutPassword(raw))), err.Error())
		}
		out = append(out, u)
	}
	return &out, nil
}

// withoutPassword is raw with the password of its user information, if
// any, masked: error messages reach logs and the audit log in the clear.
func withoutPassword(raw string) string {
	if u, err := url.Parse(strings.TrimSpace(raw)); err == nil && u.User != nil {
		return u.Redacted()
	}
	return raw
}

// checkURL refuses what is not an absolute http or https URL a client can
// fetch, or cannot be written into a certificate: URIs there are ASCII
// (IA5String), so other characters must be percent-encoded.
func checkURL(s string) error {
	switch {
	case s == "":
		return errors.New("is empty: give an absolute http or https URL")
	case len(s) > MaxURLLength:
		return fmt.Errorf("is longer than %d bytes", MaxURLLength)
	case strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r >= 0x7f }) >= 0:
		return errors.New("has spaces, control or non-ASCII characters: percent-encode them")
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return errors.New("is not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("is not an absolute http or https URL")
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return errors.New("has no host: give an absolute URL such as https://ca.example.com/v1/pki/crl")
	case u.User != nil:
		return errors.New("carries user information, which does not belong in a certificate")
	}
	return nil
}

// publish writes the URLs into a certificate about to be signed.
func publish(tmpl *x509.Certificate, u storage.PKIURLs) {
	tmpl.IssuingCertificateURL = u.IssuingCertificates
	tmpl.OCSPServer = u.OCSPServers
	tmpl.CRLDistributionPoints = u.CRLDistributionPoints
}
