package storage_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/secrethub/secrethub/storage"
)

func list(urls ...string) *[]string { return &urls }

func testPKIURLs(t *testing.T, db *storage.DB) {
	if u, err := db.PKIURLs(ctx()); err != nil || fmt.Sprintf("%+v", u) != fmt.Sprintf("%+v", storage.PKIURLs{}) {
		t.Fatalf("URLs before any config: %+v, %v", u, err)
	}
	if err := db.CreatePKIIssuer(ctx(), issuer("pending", false), false); err != nil {
		t.Fatal(err)
	}
	if sg, err := db.PKISigningIssuer(ctx(), "pending", ""); err != nil || sg.Issuer.ID != "pending" || sg.URLs.OCSPServers != nil || sg.SerialIssued {
		t.Fatalf("an issuer without a config row: %+v, %v", sg, err)
	}
	if _, err := db.PKISigningIssuer(ctx(), "", ""); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the default issuer before there is one: %v", err)
	}

	crl := "https://ca.example.com/v1/pki/crl?a=1,b=2"
	got, err := db.UpdatePKIURLs(ctx(), storage.PKIURLsChange{CRLDistributionPoints: list(crl)})
	if err != nil || !slices.Equal(got.CRLDistributionPoints, []string{crl}) || got.IssuingCertificates != nil || got.OCSPServers != nil {
		t.Fatalf("first write: %+v, %v", got, err)
	}
	if err := db.CreatePKIIssuer(ctx(), issuer("root", true), false); err != nil {
		t.Fatal(err)
	}
	if def, err := db.PKIIssuer(ctx(), ""); err != nil || def.ID != "root" {
		t.Fatalf("URLs written first kept the first issuer from the default: %s, %v", def.ID, err)
	}

	issuing := []string{"http://ca.example.com/v1/pki/ca/pem", "http://backup.example.com/ca.der"}
	got, err = db.UpdatePKIURLs(ctx(), storage.PKIURLsChange{IssuingCertificates: &issuing, OCSPServers: list("http://ocsp.example.com")})
	want := storage.PKIURLs{IssuingCertificates: issuing, CRLDistributionPoints: []string{crl}, OCSPServers: []string{"http://ocsp.example.com"}}
	if err != nil || fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Fatalf("second write kept nothing or lost a list:\n got %+v\nwant %+v (%v)", got, want, err)
	}
	if err := db.CreatePKIIssuer(ctx(), issuer("inter", true), true); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", "inter", "root"} {
		sg, err := db.PKISigningIssuer(ctx(), id, "")
		i, u := sg.Issuer, sg.URLs
		wantID := id
		if id == "" {
			wantID = "inter"
		}
		if err != nil || i.ID != wantID || string(i.KeyCiphertext) != "sealed-"+wantID || fmt.Sprintf("%+v", u) != fmt.Sprintf("%+v", want) {
			t.Fatalf("signing issuer %q = %s with %+v, %v; want %s with %+v", id, i.ID, u, err, wantID, want)
		}
		if i.CRL != nil || i.Certificate != "PEM "+wantID || i.CRLNumber != 1 {
			t.Fatalf("signing issuer %q: CRL %q (signing never needs it), certificate %q, CRL number %d", id, i.CRL, i.Certificate, i.CRLNumber)
		}
	}
	if _, err := db.PKISigningIssuer(ctx(), "nope", ""); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("an unknown issuer: %v", err)
	}

	got, err = db.UpdatePKIURLs(ctx(), storage.PKIURLsChange{IssuingCertificates: list()})
	want.IssuingCertificates = nil
	if err != nil || fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Fatalf("an empty list did not clear only its own:\n got %+v\nwant %+v (%v)", got, want, err)
	}
	if u, err := db.PKIURLs(ctx()); err != nil || fmt.Sprintf("%+v", u) != fmt.Sprintf("%+v", want) {
		t.Fatalf("read back %+v, %v; want %+v", u, err, want)
	}
	if def, err := db.PKIIssuer(ctx(), ""); err != nil || def.ID != "inter" {
		t.Fatalf("a URL write moved the default: %s, %v", def.ID, err)
	}
}

func testPKIConcurrentURLWrites(t *testing.T, db *storage.DB) {
	const rounds = 10
	var wg sync.WaitGroup
	errs := make(chan error, 2*rounds)
	write := func(field func(string) storage.PKIURLsChange, host string) {
		defer wg.Done()
		for k := range rounds {
			if _, err := db.UpdatePKIURLs(ctx(), field(fmt.Sprintf("http://%s/%d", host, k))); err != nil {
				errs <- err
			}
		}
	}
	wg.Add(2)
	go write(func(u string) storage.PKIURLsChange { return storage.PKIURLsChange{OCSPServers: list(u)} }, "ocsp")
	go write(func(u string) storage.PKIURLsChange { return storage.PKIURLsChange{CRLDistributionPoints: list(u)} }, "crl")
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	u, err := db.PKIURLs(ctx())
	last := fmt.Sprint(rounds - 1)
	if err != nil || !slices.Equal(u.OCSPServers, []string{"http://ocsp/" + last}) || !slices.Equal(u.CRLDistributionPoints, []string{"http://crl/" + last}) {
		t.Fatalf("after concurrent writes: %+v, %v", u, err)
	}
}
