package pki

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/storage"
)

// IssueRequest asks a role for a certificate and a new private key.
type IssueRequest struct {
	CommonName string
	AltNames   []string
	IPSANs     []string
	TTL        time.Duration
	// ExcludeCNFromSANs keeps a DNS common name out of the SANs.
	ExcludeCNFromSANs bool
}

// Issued is a new certificate. PrivateKey is set by Issue only: it is
// handed to the caller once and never stored.
type Issued struct {
	Certificate    string
	IssuingCA      string
	CAChain        []string
	PrivateKey     string
	PrivateKeyType string
	SerialNumber   string
	Expiration     time.Time
	Warnings       []string
}

// WriteRole creates or replaces a role: settings left out take a new
// role's defaults. A named issuer must exist.
func (e *Engine) WriteRole(ctx context.Context, name string, s RoleSettings) (Role, error) {
	r, err := newRole(name, s)
	if err != nil {
		return Role{}, err
	}
	if r.IssuerID != "" {
		if _, err := e.Issuer(ctx, r.IssuerID); err != nil {
			return Role{}, err
		}
	}
	doc, err := encodeRole(r)
	if err != nil {
		return Role{}, err
	}
	return r, e.store.PutPKIRole(ctx, name, doc, e.now())
}

// Role reads a role.
func (e *Engine) Role(ctx context.Context, name string) (Role, error) {
	if err := CheckRoleName(name); err != nil {
		return Role{}, ErrRoleNotFound
	}
	doc, err := e.store.PKIRole(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		return Role{}, ErrRoleNotFound
	}
	if err != nil {
		return Role{}, err
	}
	return decodeRole(name, doc)
}

// Roles lists role names.
func (e *Engine) Roles(ctx context.Context) ([]string, error) { return e.store.PKIRoleNames(ctx) }

// DeleteRole deletes a role; deleting a missing role is done.
func (e *Engine) DeleteRole(ctx context.Context, name string) error {
	err := e.store.DeletePKIRole(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	return err
}

// Issue generates a key of the role's type and a certificate for it.
func (e *Engine) Issue(ctx context.Context, roleName string, req IssueRequest) (Issued, error) {
	role, err := e.Role(ctx, roleName)
	if err != nil {
		return Issued{}, err
	}
	n, err := requestedNames(req.CommonName, req.AltNames, req.IPSANs, req.ExcludeCNFromSANs)
	if err != nil {
		return Issued{}, err
	}
	if err := runChecks(issueChecks, role, n); err != nil {
		return Issued{}, err
	}
	spec := KeySpec{role.KeyType, role.KeyBits}
	if spec.Type == KeyAny {
		spec = KeySpec{KeyEC, 256}
	}
	key, err := spec.Generate()
	if err != nil {
		return Issued{}, err
	}
	out, err := e.certify(ctx, role, n, key.Public(), req.TTL)
	if err != nil {
		return Issued{}, err
	}
	out.PrivateKey, out.PrivateKeyType, err = keyPEM(key)
	return out, err
}

// Sign certifies the key of a CSR, whose signature must verify, for the
// names it asks (common name, DNS and IP SANs), as the role allows. Like
// Issue, it writes a DNS common name as a SAN too.
func (e *Engine) Sign(ctx context.Context, roleName, csrPEM string, ttl time.Duration) (Issued, error) {
	role, err := e.Role(ctx, roleName)
	if err != nil {
		return Issued{}, err
	}
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		return Issued{}, err
	}
	ips := make([]string, len(csr.IPAddresses))
	for i, ip := range csr.IPAddresses {
		ips[i] = ip.String()
	}
	n, err := requestedNames(csr.Subject.CommonName, csr.DNSNames, ips, false)
	if err != nil {
		return Issued{}, err
	}
	n.Key, _ = SpecOf(csr.PublicKey)
	if err := runChecks(signChecks, role, n); err != nil {
		return Issued{}, err
	}
	return e.certify(ctx, role, n, csr.PublicKey, ttl)
}

// ParseCSR decodes a PEM certificate request and checks its signature.
func ParseCSR(s string) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode([]byte(strings.TrimSpace(s)))
	if block == nil || (block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST") {
		return nil, fault.Invalidf("csr must be a PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fault.Invalidf("csr cannot be parsed: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fault.Invalidf("csr signature does not verify: %v", err)
	}
	return csr, nil
}

// requestedNames parses the names of an issue request or a CSR. The
// common name, when a DNS name, is also a SAN (clients match SANs, not the
// common name), unless excludeCN.
func requestedNames(cn string, alt, ips []string, excludeCN bool) (names, error) {
	n := names{CommonName: strings.TrimSpace(cn)}
	seen := map[string]bool{}
	add := func(name string) {
		name = strings.ToLower(strings.TrimSpace(name))
		if name != "" && !seen[name] {
			seen[name] = true
			n.DNSNames = append(n.DNSNames, name)
		}
	}
	if !excludeCN && validHostname(strings.ToLower(n.CommonName), true) {
		add(n.CommonName)
	}
	for _, a := range alt {
		add(a)
	}
	for _, raw := range ips {
		ip := net.ParseIP(strings.TrimSpace(raw))
		if ip == nil {
			return names{}, fault.Invalidf("ip_sans: %q is not an IP address", fault.Input(clip(raw)))
		}
		n.IPs = append(n.IPs, ip)
	}
	return n, nil
}

// certify signs a leaf for pub under the role's issuer, with the URLs of
// config/urls, and records it.
func (e *Engine) certify(ctx context.Context, role Role, n names, pub crypto.PublicKey, ttl time.Duration) (Issued, error) {
	iss, urls, err := e.signerFor(ctx, role.IssuerID)
	if err != nil {
		return Issued{}, err
	}
	now := e.now().UTC()
	notAfter, warnings, err := lifetime(role, iss.row.ID, iss.cert.NotAfter, now, ttl)
	if err != nil {
		return Issued{}, err
	}
	serial, err := newSerial()
	if err != nil {
		return Issued{}, err
	}
	usage := x509.KeyUsageDigitalSignature
	if _, isRSA := pub.(*rsa.PublicKey); isRSA {
		usage |= x509.KeyUsageKeyEncipherment
	}
	var ext []x509.ExtKeyUsage
	if role.ServerFlag {
		ext = append(ext, x509.ExtKeyUsageServerAuth)
	}
	if role.ClientFlag {
		ext = append(ext, x509.ExtKeyUsageClientAuth)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: n.CommonName},
		DNSNames: n.DNSNames, IPAddresses: n.IPs,
		NotBefore: now.Add(-backdate), NotAfter: notAfter,
		KeyUsage: usage, ExtKeyUsage: ext, BasicConstraintsValid: true,
	}
	publish(tmpl, urls)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, iss.cert, pub, iss.key)
	if err != nil {
		return Issued{}, fault.Invalidf("the certificate cannot be made: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return Issued{}, err
	}
	if err := e.record(ctx, iss.row.ID, cert); err != nil {
		return Issued{}, err
	}
	return Issued{
		Certificate: certPEM(der), IssuingCA: iss.chain[0], CAChain: iss.chain,
		SerialNumber: FormatSerial(serial), Expiration: cert.NotAfter.UTC(), Warnings: warnings,
	}, nil
}

// record stores a certificate issuerID signed.
func (e *Engine) record(ctx context.Context, issuerID string, cert *x509.Certificate) error {
	c, err := certRecord(issuerID, cert)
	if err != nil {
		return err
	}
	return e.store.CreatePKICertificate(ctx, c)
}

// certRecord is how a certificate issuerID signed is stored.
func certRecord(issuerID string, cert *x509.Certificate) (storage.PKICertificate, error) {
	sans := append([]string{}, cert.DNSNames...)
	for _, ip := range cert.IPAddresses {
		sans = append(sans, ip.String())
	}
	b, err := json.Marshal(sans)
	if err != nil {
		return storage.PKICertificate{}, err
	}
	return storage.PKICertificate{
		Serial: FormatSerial(cert.SerialNumber), IssuerID: issuerID, Subject: cert.Subject.String(), SANs: string(b),
		NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, Certificate: certPEM(cert.Raw),
	}, nil
}
