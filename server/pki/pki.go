// Package pki is SecretHub's certificate authority: issuers (root and
// intermediate CAs) whose private keys are stored only sealed by the
// barrier, roles that say what may be issued, issue and sign, revocation,
// CRLs and OCSP. It has no HTTP: the server's handlers call it.
package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"sync"
	"time"

	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/storage"
)

// Errors callers branch on.
var (
	ErrRoleNotFound   = fault.New(fault.NotFound, "no such PKI role")
	ErrIssuerNotFound = fault.New(fault.NotFound, "no such issuer")
	ErrNoIssuer       = fault.New(fault.NotFound, "no default issuer: generate a root CA first (POST /v1/pki/ca/root/generate)")
	ErrCertNotFound   = fault.New(fault.NotFound, "no certificate with that serial number")
)

// Store is what the engine needs from storage.
type Store interface {
	CreatePKIIssuer(ctx context.Context, i storage.PKIIssuer, makeDefault bool) error
	CreatePKIIntermediate(ctx context.Context, i storage.PKIIssuer, signed storage.PKICertificate) error
	CompletePKIIssuer(ctx context.Context, i storage.PKIIssuer) error
	SetDefaultPKIIssuer(ctx context.Context, id string) error
	PKIIssuer(ctx context.Context, id string) (storage.PKIIssuer, error)
	PKIIssuers(ctx context.Context) ([]storage.PKIIssuer, string, error)
	PKIIssuerExpiries(ctx context.Context) ([]storage.PKIIssuerExpiry, error)
	PKIIssuerCertificates(ctx context.Context) ([]storage.PKIIssuerCertificate, error)
	PKISigningIssuer(ctx context.Context, id, serial string) (storage.PKISigning, error)
	UpdatePKIURLs(ctx context.Context, change storage.PKIURLsChange) (storage.PKIURLs, error)
	PKIURLs(ctx context.Context) (storage.PKIURLs, error)
	PutPKIRole(ctx context.Context, name, document string, now time.Time) error
	PKIRole(ctx context.Context, name string) (string, error)
	PKIRoleNames(ctx context.Context) ([]string, error)
	DeletePKIRole(ctx context.Context, name string) error
	CreatePKICertificate(ctx context.Context, c storage.PKICertificate) error
	PKICertificate(ctx context.Context, serial string) (storage.PKICertificate, error)
	PKICertificateSerials(ctx context.Context) ([]string, error)
	RevokePKICertificate(ctx context.Context, serial string, at time.Time, build storage.BuildCRL) (bool, error)
	RebuildPKICRL(ctx context.Context, issuerID string, build storage.BuildCRL) error
	DeleteExpiredPKICertificates(ctx context.Context, before time.Time) (int, []string, error)
}

// Barrier encrypts and decrypts values bound to a storage path.
type Barrier interface {
	Encrypt(path string, plaintext []byte) ([]byte, error)
	Decrypt(ctx context.Context, path string, ciphertext []byte) ([]byte, error)
}

// Engine is the PKI secrets engine.
type Engine struct {
	store   Store
	barrier Barrier
	now     func() time.Time

	// signers caches decrypted issuer keys by issuer id, checked against
	// the stored ciphertext; Forget empties it when the node seals and
	// moves epoch on, so a key decrypted before the seal is not cached after.
	mu      sync.Mutex
	signers map[string]*signer
	epoch   uint64
	// lastDefault is the id the default issuer had at the last signing
	// read: its cached certificate's serial is asked about with the next.
	lastDefault string

	// ocspIndex finds the issuer an OCSP request names. It holds no key,
	// so Forget leaves it.
	ocspIndex issuerIndex
}

// New returns the engine.
func New(store Store, b Barrier, now func() time.Time) *Engine {
	if now == nil {
		now = time.Now
	}
	return &Engine{store: store, barrier: b, now: now, signers: map[string]*signer{}}
}

// Forget drops every decrypted key from memory (the node is sealing).
func (e *Engine) Forget() {
	e.mu.Lock()
	defer e.mu.Unlock()
	clear(e.signers)
	e.epoch++
}

// signer is an issuer ready to sign: its certificate, its chain as PEM
// (itself first) and its private key.
type signer struct {
	row   storage.PKIIssuer
	cert  *x509.Certificate
	chain []string
	key   crypto.Signer
}

// keyPath is the barrier's additional data for an issuer's key: a key
// copied to another issuer's row does not decrypt.
func keyPath(id string) string { return "pki/issuers/" + id + "/key" }

// signerFor loads an issuer (the default one for "") with its key, for
// signing certificates, and the URLs they must carry, read in the same
// query: a URL change on any node reaches the next certificate. It refuses
// a pending or revoked issuer.
func (e *Engine) signerFor(ctx context.Context, id string) (*signer, storage.PKIURLs, error) {
	guess := e.cachedSerial(id)
	sg, err := e.store.PKISigningIssuer(ctx, id, guess)
	switch {
	case errors.Is(err, storage.ErrNotFound) && id == "":
		return nil, sg.URLs, ErrNoIssuer
	case errors.Is(err, storage.ErrNotFound):
		return nil, sg.URLs, ErrIssuerNotFound
	case err != nil:
		return nil, sg.URLs, err
	case sg.Issuer.Certificate == "":
		return nil, sg.URLs, fault.Invalidf("issuer %s has no certificate yet: its CSR must be signed and given to set-signed", sg.Issuer.ID)
	}
	s, err := e.signerOf(ctx, sg.Issuer)
	if err != nil {
		return nil, sg.URLs, err
	}
	if id == "" {
		e.mu.Lock()
		e.lastDefault = sg.Issuer.ID
		e.mu.Unlock()
	}
	serial := FormatSerial(s.cert.SerialNumber)
	if guess != serial {
		// The read asked about another certificate (nothing cached yet,
		// or the issuer changed): ask about this one.
		return s, sg.URLs, e.checkNotRevoked(ctx, s)
	}
	if !sg.SerialRevokedAt.IsZero() {
		return nil, sg.URLs, revokedIssuer(s, serial, sg.SerialRevokedAt)
	}
	return s, sg.URLs, nil
}

// cachedSerial is the serial of the certificate of the issuer id names
// ("" : the default as last read), as cached, or "" if none is.
func (e *Engine) cachedSerial(id string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if id == "" {
		id = e.lastDefault
	}
	if s := e.signers[id]; s != nil {
		return FormatSerial(s.cert.SerialNumber)
	}
	return ""
}

// checkNotRevoked refuses an issuer whose own certificate, made here by
// its parent, has been revoked: what it signs would not verify anyway.
// The check reads storage each time, as another node may have revoked it.
func (e *Engine) checkNotRevoked(ctx context.Context, s *signer) error {
	c, err := e.store.PKICertificate(ctx, FormatSerial(s.cert.SerialNumber))
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil // a root, or an intermediate signed elsewhere
	case err != nil:
		return err
	case !c.RevokedAt.IsZero():
		return revokedIssuer(s, c.Serial, c.RevokedAt)
	}
	return nil
}

func revokedIssuer(s *signer, serial string, at time.Time) error {
	return fault.Invalidf("issuer %s is revoked (its certificate %s was revoked at %s): it can no longer issue",
		s.row.ID, serial, at.UTC().Format(time.RFC3339))
}

// signerOf decrypts and parses row's key, or reuses the cached one. The
// decrypt runs without e.mu; if Forget runs meanwhile, the key serves this
// call but is not cached.
func (e *Engine) signerOf(ctx context.Context, row storage.PKIIssuer) (*signer, error) {
	e.mu.Lock()
	cached, epoch := e.signers[row.ID], e.epoch
	e.mu.Unlock()
	if cached != nil && bytes.Equal(cached.row.KeyCiphertext, row.KeyCiphertext) && cached.row.Certificate == row.Certificate {
		return cached, nil
	}
	der, err := e.barrier.Decrypt(ctx, keyPath(row.ID), row.KeyCiphertext)
	if err != nil {
		return nil, err
	}
	key, err := parseKey(der)
	clear(der)
	if err != nil {
		return nil, err
	}
	cert, err := parseCertPEM(row.Certificate)
	if err != nil {
		return nil, err
	}
	s := &signer{row: row, cert: cert, chain: append([]string{row.Certificate}, splitPEM(row.CAChain)...), key: key}
	s.row.CRL = nil // the cache keeps what signing needs, not CRLs
	e.mu.Lock()
	if e.epoch == epoch { // no seal since the decrypt began
		e.signers[row.ID] = s
	}
	e.mu.Unlock()
	return s, nil
}
