package pki

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"math/big"
	"time"

	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/storage"
)

// CRL timing: a CRL is good for CRLLifetime, and a read rebuilds one that
// has less than crlRefresh left, so readers always get one valid for a day.
const (
	CRLLifetime = 72 * time.Hour
	crlRefresh  = 24 * time.Hour
	// DefaultTidyBuffer keeps certificates this long past their expiry.
	DefaultTidyBuffer = 72 * time.Hour
)

// CertInfo is a stored certificate.
type CertInfo struct {
	storage.PKICertificate
}

func (e *Engine) signCRL(cert *x509.Certificate, key crypto.Signer, number int64, revoked []storage.PKIRevoked) ([]byte, time.Time, error) {
	now := e.now().UTC()
	tmpl := &x509.RevocationList{
		Number: big.NewInt(number), ThisUpdate: now.Add(-backdate), NextUpdate: now.Add(CRLLifetime),
	}
	for _, r := range revoked {
		_, n, err := ParseSerial(r.Serial)
		if err != nil {
			return nil, time.Time{}, err
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: n, RevocationTime: r.RevokedAt})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, cert, key)
	return der, tmpl.NextUpdate, err
}

// builder signs an issuer's CRL inside storage's transaction.
func (e *Engine) builder(ctx context.Context) storage.BuildCRL {
	return func(row storage.PKIIssuer, number int64, revoked []storage.PKIRevoked) ([]byte, time.Time, error) {
		s, err := e.signerOf(ctx, row)
		if err != nil {
			return nil, time.Time{}, err
		}
		return e.signCRL(s.cert, s.key, number, revoked)
	}
}

// Revoke revokes a certificate and rebuilds its issuer's CRL at once.
// Revoking a revoked certificate changes nothing and reports its time.
func (e *Engine) Revoke(ctx context.Context, serial string) (time.Time, error) {
	norm, _, err := ParseSerial(serial)
	if err != nil {
		return time.Time{}, err
	}
	if _, err := e.store.RevokePKICertificate(ctx, norm, e.now(), e.builder(ctx)); errors.Is(err, storage.ErrNotFound) {
		return time.Time{}, ErrCertNotFound
	} else if err != nil {
		return time.Time{}, err
	}
	c, err := e.Certificate(ctx, norm)
	return c.RevokedAt, err
}

// Certificate reads a stored certificate.
func (e *Engine) Certificate(ctx context.Context, serial string) (CertInfo, error) {
	norm, _, err := ParseSerial(serial)
	if err != nil {
		return CertInfo{}, err
	}
	c, err := e.store.PKICertificate(ctx, norm)
	if errors.Is(err, storage.ErrNotFound) {
		return CertInfo{}, ErrCertNotFound
	}
	return CertInfo{c}, err
}

// Serials lists the stored certificates' serials.
func (e *Engine) Serials(ctx context.Context) ([]string, error) {
	return e.store.PKICertificateSerials(ctx)
}

// Tidy deletes certificates expired for longer than buffer, then rebuilds
// the CRLs that listed any (an expired certificate needs no revocation
// entry). It returns how many went.
func (e *Engine) Tidy(ctx context.Context, buffer time.Duration) (int, error) {
	if buffer < 0 {
		return 0, fault.Invalidf("safety_buffer cannot be negative")
	}
	n, issuers, err := e.store.DeleteExpiredPKICertificates(ctx, e.now().Add(-buffer))
	if err != nil {
		return 0, err
	}
	for _, id := range issuers {
		if err := e.store.RebuildPKICRL(ctx, id, e.builder(ctx)); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return n, err
		}
	}
	return n, nil
}

// CRL returns the issuer's current CRL as DER ("" : the default issuer),
// rebuilding it first when it is close to its next update.
func (e *Engine) CRL(ctx context.Context, issuerID string) ([]byte, error) {
	row, err := e.store.PKIIssuer(ctx, issuerID)
	switch {
	case errors.Is(err, storage.ErrNotFound) && issuerID == "":
		return nil, ErrNoIssuer
	case errors.Is(err, storage.ErrNotFound), err == nil && row.Certificate == "":
		return nil, ErrIssuerNotFound
	case err != nil:
		return nil, err
	}
	if row.CRL != nil && e.now().Before(row.CRLNextUpdate.Add(-crlRefresh)) {
		return row.CRL, nil
	}
	if err := e.store.RebuildPKICRL(ctx, row.ID, e.builder(ctx)); err != nil {
		return nil, err
	}
	row, err = e.store.PKIIssuer(ctx, row.ID)
	return row.CRL, err
}
