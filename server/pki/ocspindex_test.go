package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// issuerReads counts the reads of issuers and certificates OCSP can make.
type issuerReads struct {
	Listings   int // PKIIssuers: every row, keys and CRLs included
	IndexLoads int // PKIIssuerCertificates: ids and certificates
	Rows       int // PKIIssuer: one row
	Statuses   int // PKICertificate: one certificate
}

// countingStore is a real SQLite store that counts issuerReads.
type countingStore struct {
	*storage.DB
	mu    sync.Mutex
	reads issuerReads
}

func (s *countingStore) count(f func(*issuerReads)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.reads)
}

// since is what was read since before.
func (s *countingStore) since(before issuerReads) issuerReads {
	s.mu.Lock()
	defer s.mu.Unlock()
	return issuerReads{
		Listings: s.reads.Listings - before.Listings, IndexLoads: s.reads.IndexLoads - before.IndexLoads,
		Rows: s.reads.Rows - before.Rows, Statuses: s.reads.Statuses - before.Statuses,
	}
}

func (s *countingStore) PKIIssuers(ctx context.Context) ([]storage.PKIIssuer, string, error) {
	s.count(func(r *issuerReads) { r.Listings++ })
	return s.DB.PKIIssuers(ctx)
}

func (s *countingStore) PKIIssuerCertificates(ctx context.Context) ([]storage.PKIIssuerCertificate, error) {
	s.count(func(r *issuerReads) { r.IndexLoads++ })
	return s.DB.PKIIssuerCertificates(ctx)
}

func (s *countingStore) PKIIssuer(ctx context.Context, id string) (storage.PKIIssuer, error) {
	s.count(func(r *issuerReads) { r.Rows++ })
	return s.DB.PKIIssuer(ctx, id)
}

func (s *countingStore) PKISigningIssuer(ctx context.Context, id, serial string) (storage.PKISigning, error) {
	s.count(func(r *issuerReads) { r.Rows++ })
	return s.DB.PKISigningIssuer(ctx, id, serial)
}

func (s *countingStore) PKICertificate(ctx context.Context, serial string) (storage.PKICertificate, error) {
	s.count(func(r *issuerReads) { r.Statuses++ })
	return s.DB.PKICertificate(ctx, serial)
}

// testClock is the engine's clock, moved by the test.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// ocspFixture is an engine on a counting store with a root and an
// intermediate it signed, and the first OCSP request (which builds the
// index) already answered.
type ocspFixture struct {
	e           *Engine
	store       *countingStore
	clock       *testClock
	root, inter *x509.Certificate
	rootID      string
}

func newOCSPFixture(t *testing.T) *ocspFixture {
	t.Helper()
	f := &ocspFixture{store: &countingStore{DB: storagetest.SQLite(t)}, clock: &testClock{t: time.Now()}}
	f.e = New(f.store, plainBarrier{}, f.clock.Now)
	root, err := f.e.GenerateRoot(context.Background(), CAParams{CommonName: "Root", Key: KeySpec{Type: KeyEC}})
	if err != nil {
		t.Fatal(err)
	}
	inter, _, err := f.e.GenerateIntermediate(context.Background(), CAParams{CommonName: "Inter", Key: KeySpec{Type: KeyEC}, IssuerID: root.ID})
	if err != nil {
		t.Fatal(err)
	}
	f.rootID, f.root, f.inter = root.ID, mustParseCert(t, root.Certificate), mustParseCert(t, inter.Certificate)
	if got := f.status(t, f.inter, f.root); got != ocsp.Good {
		t.Fatalf("the intermediate's status under the root: %d, want good", got)
	}
	return f
}

func mustParseCert(t *testing.T, pemText string) *x509.Certificate {
	t.Helper()
	c, err := parseCertPEM(pemText)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ask sends the engine a SHA-1 OCSP request for cert's serial under issuer.
func (f *ocspFixture) ask(t *testing.T, cert, issuer *x509.Certificate) []byte {
	t.Helper()
	req, err := ocsp.CreateRequest(cert, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := f.e.OCSP(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// status is the status of cert in an answer that issuer signed.
func (f *ocspFixture) status(t *testing.T, cert, issuer *x509.Certificate) int {
	t.Helper()
	resp, err := ocsp.ParseResponseForCert(f.ask(t, cert, issuer), cert, issuer)
	if err != nil {
		t.Fatalf("OCSP for serial %v under %s: %v", cert.SerialNumber, issuer.Subject.CommonName, err)
	}
	return resp.Status
}

// mustBeUnauthorized asks for cert under issuer and wants RFC 6960's
// answer for an issuer SecretHub does not hold.
func (f *ocspFixture) mustBeUnauthorized(t *testing.T, cert, issuer *x509.Certificate) {
	t.Helper()
	if resp := f.ask(t, cert, issuer); !bytes.Equal(resp, ocsp.UnauthorizedErrorResponse) {
		t.Fatalf("OCSP under %s answered %x, want unauthorized", issuer.Subject.CommonName, resp)
	}
}

// stranger is a root CA's row and certificate that no engine has seen.
func stranger(t *testing.T, id string) (storage.PKIIssuer, *x509.Certificate) {
	t.Helper()
	row := selfSignedRow(t, id)
	row.CreatedAt = time.Now()
	return row, mustParseCert(t, row.Certificate)
}

func TestOCSPReadsOneIssuerRowPerRequest(t *testing.T) {
	f := newOCSPFixture(t)
	before := f.store.since(issuerReads{})
	const n = 20
	for range n {
		if got := f.status(t, f.inter, f.root); got != ocsp.Good {
			t.Fatalf("status %d, want good", got)
		}
	}
	want := issuerReads{Rows: n, Statuses: n}
	if got := f.store.since(before); got != want {
		t.Fatalf("%d requests for a known issuer read %+v, want %+v (no listing, no index rebuild)", n, got, want)
	}
	if got := f.store.since(issuerReads{}); got.IndexLoads != 1 || got.Listings != 0 {
		t.Fatalf("since the engine started: %+v, want one index load and no listing", got)
	}
}

func TestOCSPRebuildsAtMostOncePerIntervalForUnknownIssuers(t *testing.T) {
	f := newOCSPFixture(t)
	_, unknown := stranger(t, "unknown")
	const n = 20
	req, err := ocsp.CreateRequest(unknown, unknown, nil)
	if err != nil {
		t.Fatal(err)
	}
	// flood sends n requests naming the unknown issuer at once.
	flood := func() {
		answers, errs := make([][]byte, n), make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				answers[i], errs[i] = f.e.OCSP(context.Background(), req)
			}()
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil || !bytes.Equal(answers[i], ocsp.UnauthorizedErrorResponse) {
				t.Fatalf("a request for an unknown issuer answered %x, %v; want unauthorized", answers[i], errs[i])
			}
		}
	}
	before := f.store.since(issuerReads{})
	flood()
	if got := f.store.since(before); got != (issuerReads{}) {
		t.Fatalf("%d requests for an unknown issuer right after a rebuild read %+v, want nothing", n, got)
	}
	f.clock.Advance(ocspRefresh)
	flood()
	f.clock.Advance(ocspRefresh - time.Second)
	flood()
	if got, want := f.store.since(before), (issuerReads{IndexLoads: 1}); got != want {
		t.Fatalf("%d requests for an unknown issuer, over one refresh interval after the first, read %+v, want %+v", 2*n, got, want)
	}
}

func TestOCSPFindsAnIssuerFromAnotherNodeAfterTheInterval(t *testing.T) {
	f := newOCSPFixture(t)
	row, other := stranger(t, "made-elsewhere")
	if err := f.store.CreatePKIIssuer(context.Background(), row, false); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(ocspRefresh - time.Second)
	f.mustBeUnauthorized(t, other, other)
	f.clock.Advance(time.Second)
	if got := f.status(t, other, other); got != ocsp.Unknown {
		t.Fatalf("the other node's root asked about its own serial: status %d, want unknown (not issued by it)", got)
	}
	if got := f.status(t, f.inter, f.root); got != ocsp.Good {
		t.Fatalf("the first root after the rebuild: status %d, want good", got)
	}
}

func TestOCSPNoticesAnIssuerIDGivenToAnotherCertificate(t *testing.T) {
	f := newOCSPFixture(t)
	restored := storagetest.SQLite(t)
	row, other := stranger(t, f.rootID)
	if err := restored.CreatePKIIssuer(context.Background(), row, false); err != nil {
		t.Fatal(err)
	}
	f.store.DB = restored // a database restored under the running node
	before := f.store.since(issuerReads{})
	f.mustBeUnauthorized(t, f.inter, f.root)
	if got := f.status(t, other, other); got != ocsp.Unknown {
		t.Fatalf("the certificate now under the root's id, asked about its own serial: status %d, want unknown", got)
	}
	if got := f.store.since(before); got.IndexLoads != 1 {
		t.Fatalf("read %+v, want the index rebuilt once within the refresh interval", got)
	}
}

func TestOCSPFindsIssuersMadeHereAtOnce(t *testing.T) {
	cases := []struct {
		name string
		make func(t *testing.T, f *ocspFixture) *x509.Certificate
	}{
		{"a generated root", func(t *testing.T, f *ocspFixture) *x509.Certificate {
			info, err := f.e.GenerateRoot(context.Background(), CAParams{CommonName: "Second Root", Key: KeySpec{Type: KeyEC}})
			if err != nil {
				t.Fatal(err)
			}
			return mustParseCert(t, info.Certificate)
		}},
		{"a generated intermediate", func(t *testing.T, f *ocspFixture) *x509.Certificate {
			info, _, err := f.e.GenerateIntermediate(context.Background(), CAParams{CommonName: "Sibling", Key: KeySpec{Type: KeyEC}, IssuerID: f.rootID})
			if err != nil {
				t.Fatal(err)
			}
			return mustParseCert(t, info.Certificate)
		}},
		{"an intermediate completed by set-signed", func(t *testing.T, f *ocspFixture) *x509.Certificate {
			return setSignedIntermediate(t, f.e)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newOCSPFixture(t)
			made := c.make(t, f)
			before := f.store.since(issuerReads{})
			if got := f.status(t, made, made); got != ocsp.Unknown {
				t.Fatalf("the new issuer asked about its own serial: status %d, want unknown", got)
			}
			if got := f.store.since(before); got.IndexLoads != 1 {
				t.Fatalf("finding it read %+v, want one index load", got)
			}
		})
	}
}

// setSignedIntermediate makes a pending intermediate's CSR, signs it with
// an offline root and completes it with SetSigned.
func setSignedIntermediate(t *testing.T, e *Engine) *x509.Certificate {
	t.Helper()
	csrPEM, id, err := e.IntermediateCSR(context.Background(), CAParams{CommonName: "Offline Inter", Key: KeySpec{Type: KeyEC}})
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(csrPEM))
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	offlineRow, offline := stranger(t, "offline")
	offlineKey, err := parseKey(offlineRow.KeyCiphertext)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := newSerial()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := caTemplate("Offline Inter", serial, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	der, err := x509.CreateCertificate(rand.Reader, tmpl, offline, csr.PublicKey, offlineKey)
	if err != nil {
		t.Fatal(err)
	}
	info, err := e.SetSigned(context.Background(), id, certPEM(der)+offlineRow.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	return mustParseCert(t, info.Certificate)
}

func TestOCSPChecksTheIssuerNameHash(t *testing.T) {
	f := newOCSPFixture(t)
	cases := []struct {
		name   string
		hash   crypto.Hash
		change func(r *ocsp.Request)
		want   int // -1: unauthorized
	}{
		{"a SHA-1 request naming the root is answered", crypto.SHA1, func(*ocsp.Request) {}, ocsp.Good},
		{"a SHA-256 request naming the root is answered", crypto.SHA256, func(*ocsp.Request) {}, ocsp.Good},
		{"the root's key hash with another name hash is unauthorized", crypto.SHA256, func(r *ocsp.Request) {
			r.IssuerNameHash = digest(crypto.SHA256, f.inter.RawSubject)
		}, -1},
		{"the root's name hash with another key hash is unauthorized", crypto.SHA256, func(r *ocsp.Request) {
			r.IssuerKeyHash = digest(crypto.SHA256, []byte("another key"))
		}, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			der, err := ocsp.CreateRequest(f.inter, f.root, &ocsp.RequestOptions{Hash: c.hash})
			if err != nil {
				t.Fatal(err)
			}
			req, err := ocsp.ParseRequest(der)
			if err != nil {
				t.Fatal(err)
			}
			c.change(req)
			if der, err = req.Marshal(); err != nil {
				t.Fatal(err)
			}
			resp, err := f.e.OCSP(context.Background(), der)
			if err != nil {
				t.Fatal(err)
			}
			if c.want == -1 {
				if !bytes.Equal(resp, ocsp.UnauthorizedErrorResponse) {
					t.Fatalf("answered %x, want unauthorized", resp)
				}
				return
			}
			parsed, err := ocsp.ParseResponseForCert(resp, f.inter, f.root)
			if err != nil || parsed.Status != c.want {
				t.Fatalf("answer %+v, %v; want status %d", parsed, err, c.want)
			}
		})
	}
}

// Issuing with a warm signer cache is one issuer read that also answers
// whether the issuer's own certificate is revoked: no separate status read.
// A cold cache reads the status apart, once.
func TestIssuanceAsksAboutItsIssuerInTheSameRead(t *testing.T) {
	f := newOCSPFixture(t)
	ctx := context.Background()
	anyName := true
	if _, err := f.e.WriteRole(ctx, "web", RoleSettings{AllowAnyName: &anyName, KeyType: ptrTo(KeyEC)}); err != nil {
		t.Fatal(err)
	}
	f.e.Forget() // a cold cache, as after an unseal
	issue := func() issuerReads {
		before := f.store.since(issuerReads{})
		if _, err := f.e.Issue(ctx, "web", IssueRequest{CommonName: "a.example.com"}); err != nil {
			t.Fatal(err)
		}
		return f.store.since(before)
	}
	if got := issue(); got.Rows != 1 || got.Statuses != 1 {
		t.Fatalf("a cold issuance read %+v; want one issuer row and one status", got)
	}
	for range 3 {
		if got := issue(); got.Rows != 1 || got.Statuses != 0 {
			t.Fatalf("a warm issuance read %+v; want one issuer row and no separate status", got)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }
