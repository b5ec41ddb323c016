package pki

import (
	"context"
	"crypto/ed25519"
	"errors"
	"math/big"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/storage"
)

// OCSPValidity is how long an OCSP answer may be cached.
const OCSPValidity = time.Hour

// OCSP answers a DER OCSP request: good, revoked or unknown, signed by the
// certificate's issuer itself. A request for an issuer SecretHub does not
// hold gets the "unauthorized" answer RFC 6960 prescribes.
func (e *Engine) OCSP(ctx context.Context, der []byte) ([]byte, error) {
	req, err := ocsp.ParseRequest(der)
	if err != nil {
		return nil, fault.Invalidf("not an OCSP request: %v", err)
	}
	if !req.HashAlgorithm.Available() {
		return nil, fault.Invalidf("OCSP request uses an unsupported hash algorithm")
	}
	row, ok, err := e.ocspIssuer(ctx, req)
	if err != nil {
		return nil, err
	}
	if !ok {
		return ocsp.UnauthorizedErrorResponse, nil
	}
	s, err := e.signerOf(ctx, row)
	if err != nil {
		return nil, err
	}
	if _, ok := s.key.(ed25519.PrivateKey); ok {
		return nil, fault.Invalidf("OCSP is not available for Ed25519 issuers; use the CRL")
	}
	now := e.now().UTC().Truncate(time.Second)
	tmpl := ocsp.Response{
		SerialNumber: req.SerialNumber, Status: ocsp.Unknown, IssuerHash: req.HashAlgorithm,
		ThisUpdate: now, NextUpdate: now.Add(OCSPValidity),
	}
	c, err := e.issuedBy(ctx, row.ID, req.SerialNumber)
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return nil, err
	case !c.RevokedAt.IsZero():
		tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, c.RevokedAt.Truncate(time.Second), ocsp.Unspecified
	default:
		tmpl.Status = ocsp.Good
	}
	return ocsp.CreateResponse(s.cert, s.cert, tmpl, s.key)
}

// issuedBy reads the certificate issuerID issued with serial; ErrNotFound
// when there is none. Serials are positive: zero or a negative number
// (which FormatSerial would write as its absolute value) is never found.
func (e *Engine) issuedBy(ctx context.Context, issuerID string, serial *big.Int) (storage.PKICertificate, error) {
	if serial.Sign() < 1 {
		return storage.PKICertificate{}, storage.ErrNotFound
	}
	c, err := e.store.PKICertificate(ctx, FormatSerial(serial))
	if err == nil && c.IssuerID != issuerID {
		return storage.PKICertificate{}, storage.ErrNotFound
	}
	return c, err
}

// ocspIssuer reads the issuer req names, found by the index (rebuilt on a
// miss at most once per ocspRefresh); false when SecretHub holds none.
// Only that issuer's row is read.
func (e *Engine) ocspIssuer(ctx context.Context, req *ocsp.Request) (storage.PKIIssuer, bool, error) {
	found, ok := e.ocspIndex.find(req)
	if !ok {
		if err := e.ocspIndex.refresh(ctx, e.now, e.store.PKIIssuerCertificates); err != nil {
			return storage.PKIIssuer{}, false, err
		}
		if found, ok = e.ocspIndex.find(req); !ok {
			return storage.PKIIssuer{}, false, nil
		}
	}
	sg, err := e.store.PKISigningIssuer(ctx, found.id, "") // without its CRL
	row := sg.Issuer
	switch {
	case errors.Is(err, storage.ErrNotFound), err == nil && row.Certificate != found.certificate:
		// Not the issuer indexed (a database restored under this node):
		// the next request rebuilds the index.
		e.ocspIndex.invalidate()
		return storage.PKIIssuer{}, false, nil
	case err != nil:
		return storage.PKIIssuer{}, false, err
	}
	return row, true, nil
}
