package storage_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/secrethub/secrethub/storage"
)

// The PKI part of the conformance suite, on both engines.

func TestPKIConformance(t *testing.T) { runCases(t, pkiCases) }

var pkiCases = []engineCase{
	{"the first issuer becomes the default; pending keys never do", testPKIIssuerDefault},
	{"a pending issuer is completed once", testPKICompleteIssuer},
	{"issuer expiries list only issuers with a certificate", testPKIIssuerExpiries},
	{"issuer certificates list only issuers with one, oldest first", testPKIIssuerCertificates},
	{"an intermediate, its record and the default change in one transaction", testPKICreateIntermediate},
	{"roles are put, read, listed and deleted", testPKIRoles},
	{"certificates round-trip and serials are unique", testPKICertificates},
	{"a revocation bumps the CRL number and lists the serial", testPKIRevoke},
	{"concurrent revocations each get their own CRL number", testPKIConcurrentRevoke},
	{"tidy removes expired certificates and names their issuers", testPKITidy},
	{"URL lists are set one by one, kept, cleared and read with the signing issuer", testPKIURLs},
	{"the signing read tells whether a serial was issued here and revoked", testPKISigningSerial},
	{"concurrent writes of different URL lists all hold", testPKIConcurrentURLWrites},
}

func issuer(id string, withCert bool) storage.PKIIssuer {
	i := storage.PKIIssuer{ID: id, CommonName: "CA " + id, KeyType: "ec", KeyCiphertext: []byte("sealed-" + id), CreatedAt: t0}
	if withCert {
		i.Certificate, i.NotAfter, i.CRLNumber, i.CRL, i.CRLNextUpdate = "PEM "+id, t0.Add(time.Hour), 1, []byte("crl1"), t0.Add(time.Hour)
	}
	return i
}

func testPKIIssuerDefault(t *testing.T, db *storage.DB) {
	if _, err := db.PKIIssuer(ctx(), ""); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("default before any issuer: %v", err)
	}
	for _, i := range []storage.PKIIssuer{issuer("pending", false), issuer("root", true), issuer("other", true)} {
		if err := db.CreatePKIIssuer(ctx(), i, false); err != nil {
			t.Fatal(err)
		}
	}
	def, err := db.PKIIssuer(ctx(), "")
	if err != nil || def.ID != "root" || string(def.KeyCiphertext) != "sealed-root" || def.CRLNumber != 1 || !def.NotAfter.Equal(t0.Add(time.Hour)) {
		t.Fatalf("default = %+v, %v", def, err)
	}
	if err := db.CreatePKIIssuer(ctx(), issuer("inter", true), true); err != nil {
		t.Fatal(err)
	}
	if def, _ := db.PKIIssuer(ctx(), ""); def.ID != "inter" {
		t.Fatalf("makeDefault did not move the default: %s", def.ID)
	}
	if err := db.SetDefaultPKIIssuer(ctx(), "pending"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a pending key became the default: %v", err)
	}
	if err := db.SetDefaultPKIIssuer(ctx(), "other"); err != nil {
		t.Fatal(err)
	}
	all, defID, err := db.PKIIssuers(ctx())
	if err != nil || len(all) != 4 || defID != "other" {
		t.Fatalf("PKIIssuers = %d issuers, default %q, %v", len(all), defID, err)
	}
	if err := db.CreatePKIIssuer(ctx(), issuer("root", true), false); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("duplicate issuer id: %v", err)
	}
}

func testPKICompleteIssuer(t *testing.T, db *storage.DB) {
	if err := db.CreatePKIIssuer(ctx(), issuer("p", false), false); err != nil {
		t.Fatal(err)
	}
	done := issuer("p", true)
	done.CAChain = "PEM root"
	if err := db.CompletePKIIssuer(ctx(), done); err != nil {
		t.Fatal(err)
	}
	got, err := db.PKIIssuer(ctx(), "")
	if err != nil || got.ID != "p" || got.Certificate != "PEM p" || got.CAChain != "PEM root" {
		t.Fatalf("completed = %+v, %v", got, err)
	}
	if err := db.CompletePKIIssuer(ctx(), done); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("completing twice: %v", err)
	}
}

func testPKICreateIntermediate(t *testing.T, db *storage.DB) {
	if err := db.CreatePKIIssuer(ctx(), issuer("root", true), false); err != nil {
		t.Fatal(err)
	}
	if err := db.CreatePKICertificate(ctx(), cert("taken", "root", t0.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	err := db.CreatePKIIntermediate(ctx(), issuer("inter", true), cert("taken", "root", t0.Add(time.Hour)))
	if !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("an intermediate whose record conflicts: %v", err)
	}
	if _, err := db.PKIIssuer(ctx(), "inter"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the failed intermediate was stored: %v", err)
	}
	if def, err := db.PKIIssuer(ctx(), ""); err != nil || def.ID != "root" {
		t.Fatalf("the failed intermediate moved the default: %s, %v", def.ID, err)
	}
	if err := db.CreatePKIIntermediate(ctx(), issuer("inter", true), cert("inter-serial", "root", t0.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if def, err := db.PKIIssuer(ctx(), ""); err != nil || def.ID != "inter" {
		t.Fatalf("default after the intermediate: %s, %v", def.ID, err)
	}
	if c, err := db.PKICertificate(ctx(), "inter-serial"); err != nil || c.IssuerID != "root" {
		t.Fatalf("the intermediate's record: %+v, %v", c, err)
	}
}

func testPKIIssuerExpiries(t *testing.T, db *storage.DB) {
	if got, err := db.PKIIssuerExpiries(ctx()); err != nil || len(got) != 0 {
		t.Fatalf("expiries of no issuer: %v, %v", got, err)
	}
	later := issuer("later", true)
	later.NotAfter, later.CreatedAt = t0.Add(48*time.Hour), t0.Add(time.Second)
	for _, i := range []storage.PKIIssuer{issuer("pending", false), issuer("root", true), later} {
		if err := db.CreatePKIIssuer(ctx(), i, false); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.PKIIssuerExpiries(ctx())
	want := []storage.PKIIssuerExpiry{{ID: "root", NotAfter: t0.Add(time.Hour)}, {ID: "later", NotAfter: t0.Add(48 * time.Hour)}}
	if err != nil || len(got) != len(want) {
		t.Fatalf("expiries = %v, %v; want %v", got, err, want)
	}
	for i := range want {
		if got[i].ID != want[i].ID || !got[i].NotAfter.Equal(want[i].NotAfter) {
			t.Fatalf("expiries = %v, want %v", got, want)
		}
	}
}

func testPKIIssuerCertificates(t *testing.T, db *storage.DB) {
	if got, err := db.PKIIssuerCertificates(ctx()); err != nil || len(got) != 0 {
		t.Fatalf("certificates of no issuer: %v, %v", got, err)
	}
	later := issuer("later", true)
	later.CreatedAt = t0.Add(time.Second)
	for _, i := range []storage.PKIIssuer{later, issuer("pending", false), issuer("root", true)} {
		if err := db.CreatePKIIssuer(ctx(), i, false); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.PKIIssuerCertificates(ctx())
	want := []storage.PKIIssuerCertificate{{ID: "root", Certificate: "PEM root"}, {ID: "later", Certificate: "PEM later"}}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("certificates = %v, %v; want %v", got, err, want)
	}
	if err := db.CompletePKIIssuer(ctx(), issuer("pending", true)); err != nil {
		t.Fatal(err)
	}
	got, err = db.PKIIssuerCertificates(ctx())
	want = append([]storage.PKIIssuerCertificate{{ID: "pending", Certificate: "PEM pending"}}, want...)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("after the pending issuer was completed: %v, %v; want %v", got, err, want)
	}
}

func testPKIRoles(t *testing.T, db *storage.DB) {
	if err := db.PutPKIRole(ctx(), "web", `{"a":1}`, t0); err != nil {
		t.Fatal(err)
	}
	if err := db.PutPKIRole(ctx(), "web", `{"a":2}`, t0); err != nil {
		t.Fatal(err)
	}
	if err := db.PutPKIRole(ctx(), "api", `{}`, t0); err != nil {
		t.Fatal(err)
	}
	if doc, err := db.PKIRole(ctx(), "web"); err != nil || doc != `{"a":2}` {
		t.Fatalf("role = %q, %v", doc, err)
	}
	if names, err := db.PKIRoleNames(ctx()); err != nil || fmt.Sprint(names) != "[api web]" {
		t.Fatalf("names = %v, %v", names, err)
	}
	if err := db.DeletePKIRole(ctx(), "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PKIRole(ctx(), "web"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("deleted role: %v", err)
	}
	if err := db.DeletePKIRole(ctx(), "web"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("deleting twice: %v", err)
	}
}

func cert(serial, issuerID string, notAfter time.Time) storage.PKICertificate {
	return storage.PKICertificate{Serial: serial, IssuerID: issuerID, Subject: "CN=" + serial, SANs: `["a.example.com"]`,
		NotBefore: t0, NotAfter: notAfter, Certificate: "PEM " + serial}
}

func testPKICertificates(t *testing.T, db *storage.DB) {
	if err := db.CreatePKIIssuer(ctx(), issuer("ca", true), false); err != nil {
		t.Fatal(err)
	}
	in := cert("0a:0b", "ca", t0.Add(time.Hour))
	if err := db.CreatePKICertificate(ctx(), in); err != nil {
		t.Fatal(err)
	}
	if err := db.CreatePKICertificate(ctx(), in); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("duplicate serial: %v", err)
	}
	if err := db.CreatePKICertificate(ctx(), cert("0c", "nope", t0)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("unknown issuer: %v", err)
	}
	got, err := db.PKICertificate(ctx(), "0a:0b")
	if err != nil || fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", in) {
		t.Fatalf("round trip:\n got %+v\nwant %+v (%v)", got, in, err)
	}
	if serials, err := db.PKICertificateSerials(ctx()); err != nil || fmt.Sprint(serials) != "[0a:0b]" {
		t.Fatalf("serials = %v, %v", serials, err)
	}
}

// countingBuild records what it was asked to build.
func countingBuild(seen *[]int64, mu *sync.Mutex) storage.BuildCRL {
	return func(i storage.PKIIssuer, number int64, revoked []storage.PKIRevoked) ([]byte, time.Time, error) {
		mu.Lock()
		*seen = append(*seen, number)
		mu.Unlock()
		return []byte(fmt.Sprintf("crl %d %d", number, len(revoked))), t0.Add(72 * time.Hour), nil
	}
}

func testPKIRevoke(t *testing.T, db *storage.DB) {
	if err := db.CreatePKIIssuer(ctx(), issuer("ca", true), false); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"01", "02"} {
		if err := db.CreatePKICertificate(ctx(), cert(s, "ca", t0.Add(time.Hour))); err != nil {
			t.Fatal(err)
		}
	}
	var (
		seen []int64
		mu   sync.Mutex
	)
	build := countingBuild(&seen, &mu)
	if revoked, err := db.RevokePKICertificate(ctx(), "01", t0, build); err != nil || !revoked {
		t.Fatalf("revoke: %v %v", revoked, err)
	}
	if revoked, err := db.RevokePKICertificate(ctx(), "01", t0.Add(time.Hour), build); err != nil || revoked {
		t.Fatalf("second revoke: %v %v", revoked, err)
	}
	if _, err := db.RevokePKICertificate(ctx(), "99", t0, build); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("unknown serial: %v", err)
	}
	c, _ := db.PKICertificate(ctx(), "01")
	i, _ := db.PKIIssuer(ctx(), "ca")
	if !c.RevokedAt.Equal(t0) || i.CRLNumber != 2 || string(i.CRL) != "crl 2 1" || !i.CRLNextUpdate.Equal(t0.Add(72*time.Hour)) || fmt.Sprint(seen) != "[2]" {
		t.Fatalf("after revoke: cert %+v, issuer crl %d %q, builds %v", c, i.CRLNumber, i.CRL, seen)
	}
	if err := db.RebuildPKICRL(ctx(), "ca", build); err != nil {
		t.Fatal(err)
	}
	if i, _ := db.PKIIssuer(ctx(), "ca"); i.CRLNumber != 3 || string(i.CRL) != "crl 3 1" {
		t.Fatalf("rebuild: %d %q", i.CRLNumber, i.CRL)
	}
	failing := func(storage.PKIIssuer, int64, []storage.PKIRevoked) ([]byte, time.Time, error) {
		return nil, time.Time{}, errors.New("signing failed")
	}
	if _, err := db.RevokePKICertificate(ctx(), "02", t0, failing); err == nil {
		t.Fatal("a failed CRL build did not fail the revocation")
	}
	if c, _ := db.PKICertificate(ctx(), "02"); !c.RevokedAt.IsZero() {
		t.Fatal("a revocation whose CRL failed was kept")
	}
}

func testPKIConcurrentRevoke(t *testing.T, db *storage.DB) {
	if err := db.CreatePKIIssuer(ctx(), issuer("ca", true), false); err != nil {
		t.Fatal(err)
	}
	const n = 8
	for i := range n {
		if err := db.CreatePKICertificate(ctx(), cert(fmt.Sprintf("%02x", i+1), "ca", t0.Add(time.Hour))); err != nil {
			t.Fatal(err)
		}
	}
	var (
		seen []int64
		mu   sync.Mutex
		wg   sync.WaitGroup
	)
	build := countingBuild(&seen, &mu)
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := db.RevokePKICertificate(ctx(), fmt.Sprintf("%02x", i+1), t0, build)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	i, _ := db.PKIIssuer(ctx(), "ca")
	if i.CRLNumber != n+1 || string(i.CRL) != fmt.Sprintf("crl %d %d", n+1, n) {
		t.Fatalf("after %d concurrent revocations: number %d, crl %q, builds %v", n, i.CRLNumber, i.CRL, seen)
	}
}

func testPKITidy(t *testing.T, db *storage.DB) {
	for _, id := range []string{"a", "b"} {
		if err := db.CreatePKIIssuer(ctx(), issuer(id, true), false); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []storage.PKICertificate{cert("01", "a", t0), cert("02", "a", t0), cert("03", "b", t0.Add(48*time.Hour))} {
		if err := db.CreatePKICertificate(ctx(), c); err != nil {
			t.Fatal(err)
		}
	}
	n, issuers, err := db.DeleteExpiredPKICertificates(ctx(), t0.Add(time.Hour))
	if err != nil || n != 2 || fmt.Sprint(issuers) != "[a]" {
		t.Fatalf("tidy = %d %v %v", n, issuers, err)
	}
	if serials, _ := db.PKICertificateSerials(ctx()); fmt.Sprint(serials) != "[03]" {
		t.Fatalf("left: %v", serials)
	}
}

func testPKISigningSerial(t *testing.T, db *storage.DB) {
	if err := db.CreatePKIIssuer(ctx(), issuer("ca", true), false); err != nil {
		t.Fatal(err)
	}
	if err := db.CreatePKICertificate(ctx(), cert("0a:01", "ca", t0.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", "ca"} {
		sg, err := db.PKISigningIssuer(ctx(), id, "0a:01")
		if err != nil || sg.Issuer.ID != "ca" || !sg.SerialIssued || !sg.SerialRevokedAt.IsZero() {
			t.Fatalf("issuer %q, a live serial: %+v, %v", id, sg, err)
		}
		if sg, err := db.PKISigningIssuer(ctx(), id, "0a:02"); err != nil || sg.SerialIssued {
			t.Fatalf("issuer %q, a serial never issued here: %+v, %v", id, sg, err)
		}
	}
	var (
		seen []int64
		mu   sync.Mutex
	)
	if _, err := db.RevokePKICertificate(ctx(), "0a:01", t0, countingBuild(&seen, &mu)); err != nil {
		t.Fatal(err)
	}
	sg, err := db.PKISigningIssuer(ctx(), "", "0a:01")
	if err != nil || !sg.SerialIssued || !sg.SerialRevokedAt.Equal(t0) {
		t.Fatalf("a revoked serial: %+v, %v; want revoked at %s", sg, err, t0)
	}
}
