package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"testing"

	"github.com/secrethub/secrethub/server/fault"
)

// FuzzParseRequestPEM feeds arbitrary text to the CSR and certificate
// decoders behind sign and set-signed: they must refuse with a 400 fault
// (never panic) or return something that parsed.
func FuzzParseRequestPEM(f *testing.F) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "a.example.com"}}, key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})))
	f.Add("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		if csr, err := ParseCSR(s); err == nil {
			if csr.CheckSignature() != nil {
				t.Fatal("ParseCSR accepted a CSR whose signature does not verify")
			}
		} else if fault.KindOf(err) != fault.Invalid {
			t.Fatalf("ParseCSR error is not a 400 fault: %v", err)
		}
		if certs, err := ParseCertificates(s); err == nil && len(certs) == 0 {
			t.Fatal("ParseCertificates returned nothing without an error")
		} else if err != nil && fault.KindOf(err) != fault.Invalid {
			t.Fatalf("ParseCertificates error is not a 400 fault: %v", err)
		}
		if _, _, err := ParseSerial(s); err != nil && fault.KindOf(err) != fault.Invalid {
			t.Fatalf("ParseSerial error is not a 400 fault: %v", err)
		}
	})
}
