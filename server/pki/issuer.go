package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/storage"
)

// Default lifetimes of CAs generated without a ttl.
const (
	DefaultRootTTL         = 10 * 365 * 24 * time.Hour
	DefaultIntermediateTTL = 5 * 365 * 24 * time.Hour
)

// backdate is how far before now certificates start, for clocks behind ours.
const backdate = 30 * time.Second

// CAParams describe a CA to generate.
type CAParams struct {
	CommonName string
	TTL        time.Duration // 0: the default for the kind of CA
	Key        KeySpec
	// IssuerID names the issuer that signs an intermediate ("" : the default).
	IssuerID string
}

// IssuerInfo describes an issuer; never its key.
type IssuerInfo struct {
	ID          string
	CommonName  string
	Certificate string   // PEM
	CAChain     []string // PEM, itself first, up to its root
	Serial      string
	NotAfter    time.Time
	IsDefault   bool
	KeyType     string
}

func (p CAParams) check(defaultTTL time.Duration) (CAParams, error) {
	p.CommonName = strings.TrimSpace(p.CommonName)
	if p.CommonName == "" || len(p.CommonName) > 64 || !printable(p.CommonName) {
		return p, fault.Invalidf("common_name is required: up to 64 printable characters")
	}
	if p.TTL == 0 {
		p.TTL = defaultTTL
	}
	var err error
	p.Key, err = p.Key.Normalize(false)
	return p, err
}

func caTemplate(cn string, serial *big.Int, notBefore, notAfter time.Time) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

// GenerateRoot creates a self-signed root CA. The first issuer becomes the
// default.
func (e *Engine) GenerateRoot(ctx context.Context, p CAParams) (IssuerInfo, error) {
	p, err := p.check(DefaultRootTTL)
	if err != nil {
		return IssuerInfo{}, err
	}
	key, err := p.Key.Generate()
	if err != nil {
		return IssuerInfo{}, err
	}
	serial, err := newSerial()
	if err != nil {
		return IssuerInfo{}, err
	}
	now := e.now().UTC()
	tmpl := caTemplate(p.CommonName, serial, now.Add(-backdate), now.Add(p.TTL))
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return IssuerInfo{}, err
	}
	return e.storeIssuer(ctx, p, key, der, nil, "")
}

// GenerateIntermediate creates an intermediate CA signed by p.IssuerID (or
// the default issuer), its lifetime capped by the signer's. The new
// intermediate becomes the default issuer, so roles that name none issue
// from it rather than from the root. Its certificate is recorded among the
// signer's, so it can be revoked, and carries the URLs of config/urls.
func (e *Engine) GenerateIntermediate(ctx context.Context, p CAParams) (IssuerInfo, []string, error) {
	p, err := p.check(DefaultIntermediateTTL)
	if err != nil {
		return IssuerInfo{}, nil, err
	}
	parent, urls, err := e.signerFor(ctx, p.IssuerID)
	if err != nil {
		return IssuerInfo{}, nil, err
	}
	key, err := p.Key.Generate()
	if err != nil {
		return IssuerInfo{}, nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return IssuerInfo{}, nil, err
	}
	now := e.now().UTC()
	notAfter, warnings, err := capToIssuer(now.Add(p.TTL), parent.row.ID, parent.cert.NotAfter, now)
	if err != nil {
		return IssuerInfo{}, nil, err
	}
	tmpl := caTemplate(p.CommonName, serial, now.Add(-backdate), notAfter)
	publish(tmpl, urls)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent.cert, key.Public(), parent.key)
	if err != nil {
		return IssuerInfo{}, nil, err
	}
	info, err := e.storeIssuer(ctx, p, key, der, parent.chain, parent.row.ID)
	return info, warnings, err
}

// storeIssuer seals key and stores the issuer with its first (empty) CRL.
// An intermediate (signedBy its parent's id) is stored with its
// certificate's record and becomes the default, in one transaction; a
// root (signedBy "") becomes the default only if there is none.
func (e *Engine) storeIssuer(ctx context.Context, p CAParams, key crypto.Signer, der []byte, above []string, signedBy string) (IssuerInfo, error) {
	id := uuid.NewString()
	sealed, err := e.sealKey(id, key)
	if err != nil {
		return IssuerInfo{}, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return IssuerInfo{}, err
	}
	row := storage.PKIIssuer{
		ID: id, CommonName: p.CommonName, KeyType: p.Key.Type, KeyCiphertext: sealed,
		Certificate: certPEM(der), CAChain: strings.Join(above, ""), NotAfter: cert.NotAfter, CreatedAt: e.now(),
	}
	if err := e.firstCRL(&row, cert, key); err != nil {
		return IssuerInfo{}, err
	}
	if signedBy == "" {
		err = e.store.CreatePKIIssuer(ctx, row, false)
	} else {
		var signed storage.PKICertificate
		if signed, err = certRecord(signedBy, cert); err == nil {
			err = e.store.CreatePKIIntermediate(ctx, row, signed)
		}
	}
	if err != nil {
		return IssuerInfo{}, err
	}
	e.ocspIndex.invalidate()
	return e.issuerInfo(ctx, row)
}

func (e *Engine) sealKey(id string, key crypto.Signer) ([]byte, error) {
	der, err := marshalKey(key)
	if err != nil {
		return nil, err
	}
	defer clear(der)
	return e.barrier.Encrypt(keyPath(id), der)
}

// firstCRL gives a new issuer its CRL number 1, listing nothing.
func (e *Engine) firstCRL(row *storage.PKIIssuer, cert *x509.Certificate, key crypto.Signer) error {
	der, next, err := e.signCRL(cert, key, 1, nil)
	if err != nil {
		return err
	}
	row.CRLNumber, row.CRL, row.CRLNextUpdate = 1, der, next
	return nil
}

func (e *Engine) issuerInfo(ctx context.Context, row storage.PKIIssuer) (IssuerInfo, error) {
	def, err := e.store.PKIIssuer(ctx, "")
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return IssuerInfo{}, err
	}
	return infoOf(row, def.ID)
}

// infoOf describes a stored issuer that has a certificate.
func infoOf(row storage.PKIIssuer, defaultID string) (IssuerInfo, error) {
	cert, err := parseCertPEM(row.Certificate)
	if err != nil {
		return IssuerInfo{}, err
	}
	return IssuerInfo{
		ID: row.ID, CommonName: row.CommonName, Certificate: row.Certificate,
		CAChain: append([]string{row.Certificate}, splitPEM(row.CAChain)...), Serial: FormatSerial(cert.SerialNumber),
		NotAfter: cert.NotAfter.UTC(), IsDefault: row.ID == defaultID, KeyType: row.KeyType,
	}, nil
}

// IntermediateCSR generates a key for an intermediate signed elsewhere (an
// offline root) and returns its CSR and the pending issuer's id; the key
// waits, sealed, for set-signed.
func (e *Engine) IntermediateCSR(ctx context.Context, p CAParams) (csrPEM, id string, err error) {
	if p, err = p.check(DefaultIntermediateTTL); err != nil {
		return "", "", err
	}
	key, err := p.Key.Generate()
	if err != nil {
		return "", "", err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: p.CommonName}}, key)
	if err != nil {
		return "", "", err
	}
	id = uuid.NewString()
	sealed, err := e.sealKey(id, key)
	if err != nil {
		return "", "", err
	}
	err = e.store.CreatePKIIssuer(ctx, storage.PKIIssuer{
		ID: id, CommonName: p.CommonName, KeyType: p.Key.Type, KeyCiphertext: sealed, CreatedAt: e.now(),
	}, false)
	if err != nil {
		return "", "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), id, nil
}

// SetSigned completes a pending intermediate: bundle is its certificate
// (PEM), optionally followed by the certificates above it. The certificate
// must be a CA able to sign certificates and CRLs, with a subject key
// identifier (CRLs name it) and not expired, for the key issuerID's
// CSR was made with (any pending key when issuerID is ""), and signed by the
// next certificate of the bundle when there is one. It becomes the default.
func (e *Engine) SetSigned(ctx context.Context, issuerID, bundle string) (IssuerInfo, error) {
	certs, err := ParseCertificates(bundle)
	if err != nil {
		return IssuerInfo{}, err
	}
	leaf := certs[0]
	switch {
	case !leaf.IsCA || leaf.KeyUsage&x509.KeyUsageCertSign == 0 || leaf.KeyUsage&x509.KeyUsageCRLSign == 0:
		return IssuerInfo{}, fault.Invalidf("certificate is not a CA that may sign certificates and CRLs (basic constraints CA, key usage certSign and cRLSign)")
	case len(leaf.SubjectKeyId) == 0:
		return IssuerInfo{}, fault.Invalidf("certificate has no subject key identifier, which its CRLs must name: sign it with one (openssl: subjectKeyIdentifier=hash)")
	case !e.now().Before(leaf.NotAfter):
		return IssuerInfo{}, fault.Invalidf("certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	case len(certs) > 1 && leaf.CheckSignatureFrom(certs[1]) != nil:
		return IssuerInfo{}, fault.Invalidf("the certificate is not signed by the next certificate of the bundle")
	}
	row, key, err := e.pendingFor(ctx, issuerID, leaf)
	if err != nil {
		return IssuerInfo{}, err
	}
	var above strings.Builder
	for _, c := range certs[1:] {
		above.WriteString(certPEM(c.Raw))
	}
	row.Certificate, row.CAChain, row.NotAfter = certPEM(leaf.Raw), above.String(), leaf.NotAfter
	if err := e.firstCRL(&row, leaf, key); err != nil {
		return IssuerInfo{}, err
	}
	if err := e.store.CompletePKIIssuer(ctx, row); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return IssuerInfo{}, fault.Invalidf("issuer %s already has a certificate", row.ID)
		}
		return IssuerInfo{}, err
	}
	e.ocspIndex.invalidate()
	return e.issuerInfo(ctx, row)
}

// pendingFor finds the pending key that cert certifies.
func (e *Engine) pendingFor(ctx context.Context, issuerID string, cert *x509.Certificate) (storage.PKIIssuer, crypto.Signer, error) {
	var candidates []storage.PKIIssuer
	if issuerID != "" {
		row, err := e.store.PKIIssuer(ctx, issuerID)
		if errors.Is(err, storage.ErrNotFound) {
			return storage.PKIIssuer{}, nil, ErrIssuerNotFound
		}
		if err != nil {
			return storage.PKIIssuer{}, nil, err
		}
		candidates = append(candidates, row)
	} else {
		rows, _, err := e.store.PKIIssuers(ctx)
		if err != nil {
			return storage.PKIIssuer{}, nil, err
		}
		candidates = rows
	}
	for _, row := range candidates {
		if row.Certificate != "" {
			continue
		}
		der, err := e.barrier.Decrypt(ctx, keyPath(row.ID), row.KeyCiphertext)
		if err != nil {
			return storage.PKIIssuer{}, nil, err
		}
		key, err := parseKey(der)
		clear(der)
		if err != nil {
			return storage.PKIIssuer{}, nil, err
		}
		if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); ok && pub.Equal(cert.PublicKey) {
			return row, key, nil
		}
	}
	return storage.PKIIssuer{}, nil, fault.Invalidf("the certificate is not for the key of a pending intermediate CSR")
}

// Issuers lists the issuers that have certificates.
func (e *Engine) Issuers(ctx context.Context) ([]IssuerInfo, error) {
	rows, def, err := e.store.PKIIssuers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]IssuerInfo, 0, len(rows))
	for _, row := range rows {
		if row.Certificate == "" {
			continue // a pending CSR's key
		}
		info, err := infoOf(row, def)
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}

// Expiries lists each issuer that has a certificate with its expiry; it
// is light enough for every metrics scrape.
func (e *Engine) Expiries(ctx context.Context) ([]storage.PKIIssuerExpiry, error) {
	return e.store.PKIIssuerExpiries(ctx)
}

// Issuer describes one issuer ("" : the default).
func (e *Engine) Issuer(ctx context.Context, id string) (IssuerInfo, error) {
	row, err := e.store.PKIIssuer(ctx, id)
	switch {
	case errors.Is(err, storage.ErrNotFound) && id == "":
		return IssuerInfo{}, ErrNoIssuer
	case errors.Is(err, storage.ErrNotFound):
		return IssuerInfo{}, ErrIssuerNotFound
	case err != nil:
		return IssuerInfo{}, err
	case row.Certificate == "":
		return IssuerInfo{}, fault.Invalidf("issuer %s has no certificate yet", row.ID)
	}
	return e.issuerInfo(ctx, row)
}

// SetDefault makes an issuer the default.
func (e *Engine) SetDefault(ctx context.Context, id string) error {
	err := e.store.SetDefaultPKIIssuer(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return ErrIssuerNotFound
	}
	return err
}

// ParseCertificates decodes one or more PEM certificates; anything else in
// the text is refused.
func ParseCertificates(bundle string) ([]*x509.Certificate, error) {
	rest := bytes.TrimSpace([]byte(bundle))
	var certs []*x509.Certificate
	for len(rest) > 0 {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil || block.Type != "CERTIFICATE" {
			return nil, fault.Invalidf("certificate must be PEM CERTIFICATE blocks")
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fault.Invalidf("certificate cannot be parsed: %v", err)
		}
		certs = append(certs, c)
		rest = bytes.TrimSpace(rest)
	}
	if len(certs) == 0 {
		return nil, fault.Invalidf("certificate is required (PEM)")
	}
	return certs, nil
}

func parseCertPEM(s string) (*x509.Certificate, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("pki: stored certificate is not PEM")
	}
	return x509.ParseCertificate(block.Bytes)
}

// splitPEM splits concatenated PEM blocks, each re-encoded on its own.
func splitPEM(s string) []string {
	var out []string
	rest := []byte(s)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return out
		}
		out = append(out, string(pem.EncodeToMemory(block)))
	}
}
