package pki

import (
	"context"
	"crypto"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"sync"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/secrethub/secrethub/storage"
)

// ocspRefresh is how often, at most, an OCSP request naming an issuer the
// index lacks rebuilds it: an issuer made on another node is found within
// this, and a flood of requests for unknown issuers costs one light query
// per interval, not one per request.
const ocspRefresh = 5 * time.Second

// ocspHashes are the hash algorithms an OCSP request can name (those
// golang.org/x/crypto/ocsp parses); the index holds each issuer under each.
var ocspHashes = []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512}

// issuerIndex finds the issuer an OCSP request names by its hash
// algorithm, issuer key hash and issuer name hash, without reading issuer
// rows. It holds certificates, never keys, so sealing leaves it be.
type issuerIndex struct {
	rebuild sync.Mutex // one rebuild at a time; those waiting reuse its result

	mu    sync.Mutex
	byKey map[issuerKeyHash][]indexedIssuer
	// checkedAt is when the last rebuild began; zero makes the next miss
	// rebuild whenever the last one was.
	checkedAt time.Time
	// gen moves on each invalidate, so a rebuild that overlapped one (and
	// may have missed its issuer) leaves checkedAt zero.
	gen uint64
}

type issuerKeyHash struct {
	hash    crypto.Hash
	keyHash string
}

type indexedIssuer struct {
	nameHash    string
	id          string
	certificate string // PEM: a hit checks the row it reads still has it
}

// find returns the issuer req names, the oldest when several match.
func (x *issuerIndex) find(req *ocsp.Request) (indexedIssuer, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, i := range x.byKey[issuerKeyHash{req.HashAlgorithm, string(req.IssuerKeyHash)}] {
		if i.nameHash == string(req.IssuerNameHash) {
			return i, true
		}
	}
	return indexedIssuer{}, false
}

// invalidate makes the next miss rebuild the index at once: this node has
// created or completed an issuer.
func (x *issuerIndex) invalidate() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.checkedAt = time.Time{}
	x.gen++
}

// refresh rebuilds the index from load unless a rebuild began less than
// ocspRefresh before now (by the clock now reads) and nothing was
// invalidated since. A failed rebuild counts too, keeping the old index, so
// a failing database is not asked once per request either.
func (x *issuerIndex) refresh(ctx context.Context, now func() time.Time, load func(context.Context) ([]storage.PKIIssuerCertificate, error)) error {
	x.rebuild.Lock()
	defer x.rebuild.Unlock()
	at := now()
	x.mu.Lock()
	due := x.checkedAt.IsZero() || at.Before(x.checkedAt) || at.Sub(x.checkedAt) >= ocspRefresh
	gen := x.gen
	x.mu.Unlock()
	if !due {
		return nil
	}
	byKey, err := buildIssuerIndex(ctx, load)
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.gen == gen {
		x.checkedAt = at
	}
	if err != nil {
		return err
	}
	x.byKey = byKey
	return nil
}

func buildIssuerIndex(ctx context.Context, load func(context.Context) ([]storage.PKIIssuerCertificate, error)) (map[issuerKeyHash][]indexedIssuer, error) {
	rows, err := load(ctx)
	if err != nil {
		return nil, err
	}
	byKey := map[issuerKeyHash][]indexedIssuer{}
	for _, row := range rows {
		cert, err := parseCertPEM(row.Certificate)
		if err != nil {
			return nil, fmt.Errorf("pki: issuer %s: %w", row.ID, err)
		}
		key, err := publicKeyBits(cert.RawSubjectPublicKeyInfo)
		if err != nil {
			return nil, fmt.Errorf("pki: issuer %s: %w", row.ID, err)
		}
		for _, h := range ocspHashes {
			k := issuerKeyHash{h, string(digest(h, key))}
			byKey[k] = append(byKey[k], indexedIssuer{nameHash: string(digest(h, cert.RawSubject)), id: row.ID, certificate: row.Certificate})
		}
	}
	return byKey, nil
}

// publicKeyBits is the subjectPublicKey BIT STRING of a certificate's
// SubjectPublicKeyInfo: what RFC 6960's issuerKeyHash hashes.
func publicKeyBits(spkiDER []byte) ([]byte, error) {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spkiDER, &spki); err != nil {
		return nil, fmt.Errorf("public key info: %w", err)
	}
	return spki.PublicKey.RightAlign(), nil
}

func digest(h crypto.Hash, b []byte) []byte {
	d := h.New()
	d.Write(b)
	return d.Sum(nil)
}
