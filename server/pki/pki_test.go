package pki

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"testing"
	"time"

	"github.com/secrethub/secrethub/storage"
)

// plainBarrier stores keys as they are and runs during each decrypt.
type plainBarrier struct{ during func() }

func (plainBarrier) Encrypt(_ string, p []byte) ([]byte, error) { return append([]byte{}, p...), nil }

func (b plainBarrier) Decrypt(_ context.Context, _ string, c []byte) ([]byte, error) {
	if b.during != nil {
		b.during()
	}
	return append([]byte{}, c...), nil
}

// selfSignedRow is an issuer row for a new P-256 root whose key
// plainBarrier "seals".
func selfSignedRow(t *testing.T, id string) storage.PKIIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := caTemplate("Test Root", big.NewInt(1), time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := marshalKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return storage.PKIIssuer{ID: id, CommonName: "Test Root", KeyType: KeyEC, KeyCiphertext: sealed, Certificate: certPEM(der)}
}

func TestSignerCache(t *testing.T) {
	cases := []struct {
		name       string
		sealDuring bool
		cached     bool
	}{
		{"a key decrypted while unsealed is cached", false, true},
		{"a key whose decrypt overlapped a seal is not cached", true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := &plainBarrier{}
			e := New(nil, b, nil)
			if c.sealDuring {
				b.during = e.Forget
			}
			row := selfSignedRow(t, "root")
			s, err := e.signerOf(context.Background(), row)
			if err != nil || s.key == nil {
				t.Fatalf("signerOf = %v, %v", s, err)
			}
			e.mu.Lock()
			_, cached := e.signers[row.ID]
			e.mu.Unlock()
			if cached != c.cached {
				t.Fatalf("cached = %v, want %v", cached, c.cached)
			}
		})
	}
}
