package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/secrethub/secrethub/server"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// pemCert decodes the first PEM certificate of s.
func pemCert(t *testing.T, s string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		t.Fatalf("not PEM: %q", s)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pkiCA is a root and an intermediate made through the API.
type pkiCA struct {
	root, inter     *x509.Certificate
	rootID, interID string
}

// setupPKI generates an EC root and an intermediate signed by it.
func (n *node) setupPKI(token string) pkiCA {
	n.t.Helper()
	r := mustStatus(n.t, n.do("POST", "/v1/pki/ca/root/generate", token, `{"common_name":"Test Root","ttl":"8760h","key_type":"ec","key_bits":384}`), 200).Data(n.t)
	i := mustStatus(n.t, n.do("POST", "/v1/pki/ca/intermediate/generate", token, `{"common_name":"Test Intermediate","ttl":"4380h","key_type":"ec"}`), 200).Data(n.t)
	return pkiCA{root: pemCert(n.t, r["certificate"].(string)), inter: pemCert(n.t, i["certificate"].(string)),
		rootID: r["issuer_id"].(string), interID: i["issuer_id"].(string)}
}

// verifyLeaf checks a leaf chains to root through inter for usage.
func verifyLeaf(leaf, inter, root *x509.Certificate, dns string, usage x509.ExtKeyUsage) error {
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	inters.AddCert(inter)
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, DNSName: dns, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

// opensslVerify runs `openssl verify` on leaf with root as trust anchor
// and inter as untrusted chain; it skips only when openssl is missing.
func opensslVerify(t *testing.T, root, inter, leaf string) {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not installed")
	}
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	out, err := exec.Command(bin, "verify", "-CAfile", write("root.pem", root), "-untrusted", write("inter.pem", inter), write("leaf.pem", leaf)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), ": OK") {
		t.Fatalf("openssl verify: %v: %s", err, out)
	}
}

// keyForms are the ways a private key could leak: PEM, DER raw, hex, base64.
func keyForms(der []byte) []string {
	return append(secretForms(string(der)), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
}

// TestPKIRunbookPhase53 sends the runbook's Phase 5.3 bodies verbatim (no
// Content-Type, as curl -d does): an RSA-4096 root and an intermediate
// that chains to it. A leaf issued under them verifies with Go and
// openssl; no CA key (nor the leaf's) is stored or logged in the clear.
func TestPKIRunbookPhase53(t *testing.T) {
	rootBody, err := os.ReadFile("../testdata/runbook/phase5.3-root-ca.json")
	if err != nil {
		t.Fatal(err)
	}
	interBody, err := os.ReadFile("../testdata/runbook/phase5.3-intermediate-ca.json")
	if err != nil {
		t.Fatal(err)
	}
	eachStorage(t, func(t *testing.T, cfg storage.Config, open func() *storage.DB) {
		n := startNode(t, open(), server.Config{})
		_, root := n.initUnseal(1, 1)
		r := mustStatus(t, n.do("POST", "/v1/pki/ca/root/generate", root, string(rootBody)), 200).Data(t)
		rootCert := pemCert(t, r["certificate"].(string))
		if pub, ok := rootCert.PublicKey.(*rsa.PublicKey); !ok || pub.N.BitLen() != 4096 || rootCert.Subject.CommonName != "SecretHub Root CA" || !rootCert.IsCA {
			t.Fatalf("root: %T CN %q CA %v", rootCert.PublicKey, rootCert.Subject.CommonName, rootCert.IsCA)
		}
		if got := rootCert.NotAfter.Sub(rootCert.NotBefore); got < 87600*time.Hour || got > 87601*time.Hour {
			t.Fatalf("root lifetime %s, want 87600h", got)
		}
		if _, ok := r["private_key"]; ok {
			t.Fatal("root generate returned a private key")
		}
		i := mustStatus(t, n.do("POST", "/v1/pki/ca/intermediate/generate", root, string(interBody)), 200).Data(t)
		inter := pemCert(t, i["certificate"].(string))
		pool := x509.NewCertPool()
		pool.AddCert(rootCert)
		if _, err := inter.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Fatalf("intermediate does not chain to the root: %v", err)
		}
		if inter.Subject.CommonName != "SecretHub Intermediate CA" || !inter.IsCA {
			t.Fatalf("intermediate %q CA %v", inter.Subject.CommonName, inter.IsCA)
		}

		mustStatus(t, n.do("POST", "/v1/pki/roles/core", root, `{"allowed_domains":["secrethub.company.com"],"allow_bare_domains":true,"allow_subdomains":true,"server_flag":true,"client_flag":false,"key_type":"ec"}`), 200)
		leaf := mustStatus(t, n.do("POST", "/v1/pki/issue/core", root, `{"common_name":"core-1.secrethub.company.com","alt_names":"secrethub.company.com","ip_sans":["10.0.0.11"]}`), 200).Data(t)
		leafCert := pemCert(t, leaf["certificate"].(string))
		if err := verifyLeaf(leafCert, inter, rootCert, "secrethub.company.com", x509.ExtKeyUsageServerAuth); err != nil {
			t.Fatal(err)
		}
		opensslVerify(t, r["certificate"].(string), i["certificate"].(string), leaf["certificate"].(string))

		// Nothing holds a private key in the clear.
		var forms []string
		for _, id := range []string{r["issuer_id"].(string), i["issuer_id"].(string)} {
			der, err := n.srv.PKIIssuerKey(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			forms = append(forms, keyForms(der)...)
		}
		block, _ := pem.Decode([]byte(leaf["private_key"].(string)))
		forms = append(forms, keyForms(block.Bytes)...)
		stored, logs := storedBytes(t, cfg), n.logs.String()
		if !bytes.Contains(stored, []byte("SecretHub Intermediate CA")) {
			t.Fatal("the scan does not see the issuers")
		}
		for _, f := range forms {
			if bytes.Contains(stored, []byte(f)) {
				t.Fatal("the database holds a private key in the clear")
			}
			if strings.Contains(logs, f) {
				t.Fatal("the logs hold a private key in the clear")
			}
		}
		for _, path := range []string{"/v1/pki/ca/pem", "/v1/pki/ca_chain", "/v1/pki/crl/pem"} {
			if body := string(mustStatus(t, n.do("GET", path, "", ""), 200).Body); strings.Contains(body, "PRIVATE KEY") {
				t.Fatalf("%s answered a private key", path)
			}
		}
	})
}

// Role flags decide the leaf's extended key usages; SANs and IP SANs are
// in the certificate; names the role does not allow are refused.
func TestPKIIssueFollowsTheRole(t *testing.T) {
	eachEngine(t, func(t *testing.T, n *node) {
		_, root := n.initUnseal(1, 1)
		ca := n.setupPKI(root)
		mustStatus(t, n.do("POST", "/v1/pki/roles/web", root, `{"allowed_domains":"example.com","allow_subdomains":true,"server_flag":true,"client_flag":false,"key_type":"ec","max_ttl":"720h"}`), 200)
		mustStatus(t, n.do("POST", "/v1/pki/roles/agent", root, `{"allow_any_name":true,"allow_ip_sans":false,"server_flag":false,"client_flag":true,"key_type":"rsa","key_bits":2048}`), 200)

		web := mustStatus(t, n.do("POST", "/v1/pki/issue/web", root, `{"common_name":"www.example.com","alt_names":["api.example.com"],"ip_sans":"192.0.2.7,2001:db8::1","ttl":"24h"}`), 200).Data(t)
		leaf := pemCert(t, web["certificate"].(string))
		if !slices.Equal(leaf.DNSNames, []string{"www.example.com", "api.example.com"}) ||
			len(leaf.IPAddresses) != 2 || !leaf.IPAddresses[0].Equal(net.ParseIP("192.0.2.7")) || !leaf.IPAddresses[1].Equal(net.ParseIP("2001:db8::1")) {
			t.Fatalf("SANs %v, IPs %v", leaf.DNSNames, leaf.IPAddresses)
		}
		if err := verifyLeaf(leaf, ca.inter, ca.root, "api.example.com", x509.ExtKeyUsageServerAuth); err != nil {
			t.Fatalf("server leaf: %v", err)
		}
		if err := verifyLeaf(leaf, ca.inter, ca.root, "api.example.com", x509.ExtKeyUsageClientAuth); err == nil {
			t.Fatal("a server-only leaf verified for client auth")
		}
		if leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 || leaf.IsCA {
			t.Fatalf("key usage %v, CA %v", leaf.KeyUsage, leaf.IsCA)
		}
		if got := leaf.NotAfter.Sub(leaf.NotBefore); got > 25*time.Hour {
			t.Fatalf("ttl 24h gave a %s certificate", got)
		}
		chain := web["ca_chain"].([]any)
		if len(chain) != 2 || pemCert(t, chain[0].(string)).Subject.CommonName != "Test Intermediate" || web["private_key_type"] != "ec" {
			t.Fatalf("ca_chain %d, key type %v", len(chain), web["private_key_type"])
		}
		if !strings.Contains(web["serial_number"].(string), ":") || web["expiration"] == "" {
			t.Fatalf("serial %v, expiration %v", web["serial_number"], web["expiration"])
		}
		opensslVerify(t, certPEMOf(ca.root), certPEMOf(ca.inter), web["certificate"].(string))

		agent := mustStatus(t, n.do("POST", "/v1/pki/issue/agent", root, `{"common_name":"agent 7"}`), 200).Data(t)
		aLeaf := pemCert(t, agent["certificate"].(string))
		if _, ok := aLeaf.PublicKey.(*rsa.PublicKey); !ok || aLeaf.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
			t.Fatalf("agent leaf key %T usage %v", aLeaf.PublicKey, aLeaf.KeyUsage)
		}
		if err := verifyLeaf(aLeaf, ca.inter, ca.root, "", x509.ExtKeyUsageClientAuth); err != nil {
			t.Fatalf("client leaf: %v", err)
		}
		if err := verifyLeaf(aLeaf, ca.inter, ca.root, "", x509.ExtKeyUsageServerAuth); err == nil {
			t.Fatal("a client-only leaf verified for server auth")
		}

		// TTL above the role's max is capped, with a warning.
		capped := mustStatus(t, n.do("POST", "/v1/pki/issue/web", root, `{"common_name":"a.example.com","ttl":"2000h"}`), 200)
		if c := pemCert(t, capped.Data(t)["certificate"].(string)); c.NotAfter.Sub(c.NotBefore) > 721*time.Hour {
			t.Fatalf("max_ttl not applied: %s", c.NotAfter.Sub(c.NotBefore))
		}
		if w, _ := capped.JSON(t)["warnings"].([]any); len(w) == 0 {
			t.Fatal("a capped TTL gave no warning")
		}

		for _, c := range []struct{ name, path, body, want string }{
			{"a name outside the role", "/v1/pki/issue/web", `{"common_name":"www.example.org"}`, "not allowed"},
			{"a bare domain the role does not allow", "/v1/pki/issue/web", `{"common_name":"example.com"}`, "not allowed"},
			{"an alt name outside the role", "/v1/pki/issue/web", `{"common_name":"a.example.com","alt_names":["evil.com"]}`, "not allowed"},
			{"an IP SAN the role forbids", "/v1/pki/issue/agent", `{"common_name":"x","ip_sans":["10.0.0.1"]}`, "ip_sans"},
			{"an IP that is not one", "/v1/pki/issue/web", `{"common_name":"a.example.com","ip_sans":["10.0.0.300"]}`, "not an IP"},
			{"no common name", "/v1/pki/issue/web", `{}`, "common_name"},
			{"a bad ttl", "/v1/pki/issue/web", `{"common_name":"a.example.com","ttl":"soon"}`, "not a duration"},
			{"an unknown field", "/v1/pki/issue/web", `{"common_name":"a.example.com","use_pss":true}`, "unknown field"},
			{"an unknown key type", "/v1/pki/ca/root/generate", `{"common_name":"R","key_type":"dsa"}`, "key_type"},
			{"RSA key bits that do not exist", "/v1/pki/ca/root/generate", `{"common_name":"R","key_type":"rsa","key_bits":1024}`, "key_bits"},
			{"EC key bits that do not exist", "/v1/pki/roles/x", `{"key_type":"ec","key_bits":2048}`, "key_bits"},
			{"a root without a name", "/v1/pki/ca/root/generate", `{"key_type":"ec"}`, "common_name"},
			{"a role ttl above its max", "/v1/pki/roles/x", `{"ttl":"48h","max_ttl":"24h"}`, "max_ttl"},
			{"a role with a bad domain", "/v1/pki/roles/x", `{"allowed_domains":["bad domain"]}`, "allowed_domains"},
			{"a garbage serial", "/v1/pki/revoke", `{"serial_number":"zz:zz"}`, "serial"},
			{"a body that is not JSON", "/v1/pki/issue/web", `common_name=x`, "not valid JSON"},
		} {
			t.Run(c.name, func(t *testing.T) { mustError(t, n.do("POST", c.path, root, c.body), 400, c.want) })
		}
		for _, c := range []struct{ name, method, path, body string }{
			{"an unknown role", "POST", "/v1/pki/issue/nope", `{"common_name":"a.example.com"}`},
			{"an unknown issuer for an intermediate", "POST", "/v1/pki/ca/intermediate/generate", `{"common_name":"I","key_type":"ec","issuer_id":"nope"}`},
			{"an unknown issuer for a role", "POST", "/v1/pki/roles/y", `{"issuer_id":"nope"}`},
			{"an unknown serial", "POST", "/v1/pki/revoke", `{"serial_number":"01:02"}`},
			{"an unknown certificate", "GET", "/v1/pki/cert/01:02", ""},
			{"an unknown role read", "GET", "/v1/pki/roles/nope", ""},
		} {
			t.Run(c.name, func(t *testing.T) { mustStatus(t, n.do(c.method, c.path, root, c.body), 404).Errors(t) })
		}
	})
}

func certPEMOf(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

// newCSR makes a CSR for cn and dns with a fresh P-256 key.
func newCSR(t testing.TB, cn string, dns ...string) (string, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: dns}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), der
}

func jsonString(s string) string {
	return `"` + strings.ReplaceAll(s, "\n", `\n`) + `"`
}

// sign/:role certifies a CSR's key for its names when the role allows
// them; a CSR whose signature does not verify, or that is not a CSR, is 400.
func TestPKISignChecksTheCSR(t *testing.T) {
	eachEngine(t, func(t *testing.T, n *node) {
		_, root := n.initUnseal(1, 1)
		ca := n.setupPKI(root)
		mustStatus(t, n.do("POST", "/v1/pki/roles/web", root, `{"allowed_domains":["example.com"],"allow_subdomains":true,"key_type":"ec"}`), 200)
		csr, der := newCSR(t, "svc.example.com", "svc.example.com", "alt.example.com")
		d := mustStatus(t, n.do("POST", "/v1/pki/sign/web", root, `{"csr":`+jsonString(csr)+`,"ttl":"1h"}`), 200).Data(t)
		leaf := pemCert(t, d["certificate"].(string))
		if err := verifyLeaf(leaf, ca.inter, ca.root, "alt.example.com", x509.ExtKeyUsageClientAuth); err != nil {
			t.Fatal(err)
		}
		if _, ok := d["private_key"]; ok {
			t.Fatal("sign returned a private key")
		}

		tampered := slices.Clone(der)
		tampered[len(tampered)-3] ^= 0xff // inside the signature
		bad := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered}))
		outside, _ := newCSR(t, "svc.example.org")
		rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
		rsaDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "r.example.com"}}, rsaKey)
		wrongKey := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: rsaDER}))
		for _, c := range []struct{ name, csr, want string }{
			{"a bad signature", bad, "signature"},
			{"garbage", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----", "cannot be parsed"},
			{"not PEM", "hello", "PEM"},
			{"a name outside the role", outside, "not allowed"},
			{"a key of another type than the role's", wrongKey, "requires ec"},
		} {
			t.Run(c.name, func(t *testing.T) {
				mustError(t, n.do("POST", "/v1/pki/sign/web", root, `{"csr":`+jsonString(c.csr)+`}`), 400, c.want)
			})
		}
	})
}

// sign/:role writes a CSR's DNS common name as a SAN, as issue does: a
// CSR that names its host only in the subject gets a certificate clients
// accept for that host.
func TestPKISignPutsTheCommonNameInSANs(t *testing.T) {
	eachEngine(t, func(t *testing.T, n *node) {
		_, root := n.initUnseal(1, 1)
		ca := n.setupPKI(root)
		mustStatus(t, n.do("POST", "/v1/pki/roles/web", root, `{"allowed_domains":["example.com"],"allow_subdomains":true,"key_type":"ec"}`), 200)
		for _, c := range []struct {
			name, cn string
			dns      []string
			want     []string
		}{
			{"a CSR with only a common name", "svc.example.com", nil, []string{"svc.example.com"}},
			{"a CSR with a common name and other DNS names", "svc.example.com", []string{"alt.example.com"}, []string{"svc.example.com", "alt.example.com"}},
			{"a common name repeated among the DNS names is written once", "svc.example.com", []string{"svc.example.com"}, []string{"svc.example.com"}},
		} {
			t.Run(c.name, func(t *testing.T) {
				csr, _ := newCSR(t, c.cn, c.dns...)
				leaf := pemCert(t, mustStatus(t, n.do("POST", "/v1/pki/sign/web", root, `{"csr":`+jsonString(csr)+`}`), 200).Data(t)["certificate"].(string))
				if !slices.Equal(leaf.DNSNames, c.want) {
					t.Fatalf("DNS SANs %v, want %v", leaf.DNSNames, c.want)
				}
				if err := verifyLeaf(leaf, ca.inter, ca.root, c.cn, x509.ExtKeyUsageServerAuth); err != nil {
					t.Fatal(err)
				}
			})
		}
		// The common name is checked against the role as a SAN is.
		csr, _ := newCSR(t, "svc.example.org", "svc.example.com")
		mustError(t, n.do("POST", "/v1/pki/sign/web", root, `{"csr":`+jsonString(csr)+`}`), 400, "not allowed")
	})
}

// An issuer past its expiry refuses to issue, sign or make an
// intermediate (400 naming its expiry) rather than write certificates
// that end before they begin.
func TestPKIExpiredIssuerRefuses(t *testing.T) {
	storagetest.Engines(t, func(t *testing.T, db *storage.DB) {
		clock := newClock()
		n := startNode(t, db, server.Config{Now: clock.Now})
		_, root := n.initUnseal(1, 1)
		ca := mustStatus(t, n.do("POST", "/v1/pki/ca/root/generate", root, `{"common_name":"Short Root","ttl":"2h","key_type":"ec"}`), 200).Data(t)
		mustStatus(t, n.do("POST", "/v1/pki/roles/web", root, `{"allowed_domains":["example.com"],"allow_subdomains":true,"key_type":"ec"}`), 200)
		clock.Advance(3 * time.Hour)
		csr, _ := newCSR(t, "svc.example.com")
		want := "expired at " + ca["expiration"].(string)
		for _, c := range []struct{ name, path, body string }{
			{"issue", "/v1/pki/issue/web", `{"common_name":"a.example.com"}`},
			{"sign", "/v1/pki/sign/web", `{"csr":` + jsonString(csr) + `}`},
			{"intermediate generate", "/v1/pki/ca/intermediate/generate", `{"common_name":"Late Intermediate","key_type":"ec"}`},
		} {
			t.Run(c.name+" is refused", func(t *testing.T) { mustError(t, n.do("POST", c.path, root, c.body), 400, want) })
		}
		mustStatus(t, n.do("LIST", "/v1/pki/certs", root, ""), 404) // nothing was recorded
	})
}

// A revoked intermediate refuses to issue, sign or make an intermediate
// (400 naming it); its parent still issues.
func TestPKIRevokedIssuerRefuses(t *testing.T) {
	eachEngine(t, func(t *testing.T, n *node) {
		_, root := n.initUnseal(1, 1)
		ca := n.setupPKI(root)
		mustStatus(t, n.do("POST", "/v1/pki/roles/web", root, `{"allowed_domains":["example.com"],"allow_subdomains":true,"key_type":"ec"}`), 200)
		mustStatus(t, n.do("POST", "/v1/pki/roles/from-root", root, `{"issuer_id":"`+ca.rootID+`","allow_any_name":true,"key_type":"ec"}`), 200)
		mustStatus(t, n.do("POST", "/v1/pki/issue/web", root, `{"common_name":"before.example.com"}`), 200)
		mustStatus(t, n.do("POST", "/v1/pki/revoke", root, `{"serial_number":"`+fmt.Sprintf("%x", ca.inter.SerialNumber.Bytes())+`"}`), 200)
		csr, _ := newCSR(t, "svc.example.com")
		want := "issuer " + ca.interID + " is revoked"
		for _, c := range []struct{ name, path, body string }{
			{"issue", "/v1/pki/issue/web", `{"common_name":"after.example.com"}`},
			{"sign", "/v1/pki/sign/web", `{"csr":` + jsonString(csr) + `}`},
			{"intermediate generate", "/v1/pki/ca/intermediate/generate", `{"common_name":"Child","key_type":"ec","issuer_id":"` + ca.interID + `"}`},
		} {
			t.Run(c.name+" is refused", func(t *testing.T) { mustError(t, n.do("POST", c.path, root, c.body), 400, want) })
		}
		mustStatus(t, n.do("POST", "/v1/pki/issue/from-root", root, `{"common_name":"root-leaf.example.com"}`), 200)
		// Its CRL still publishes.
		l, err := x509.ParseRevocationList(mustStatus(t, n.do("GET", "/v1/pki/crl?issuer_id="+ca.interID, "", ""), 200).Body)
		if err != nil || l.CheckSignatureFrom(ca.inter) != nil {
			t.Fatalf("the revoked intermediate's CRL: %v", err)
		}
	})
}

// A policy on pki/cert/<serial> names the serial as stored; a request
// that writes it in another case or with other separators reaches the
// same resource; a malformed serial is denied, or 400 for a caller allowed
// to read it.
func TestPKICertReadPolicyNormalizesTheSerial(t *testing.T) {
	n := startNode(t, storagetest.SQLite(t), server.Config{})
	_, root := n.initUnseal(1, 1)
	n.setupPKI(root)
	mustStatus(t, n.do("POST", "/v1/pki/roles/web", root, `{"allow_any_name":true,"key_type":"ec"}`), 200)
	serial := mustStatus(t, n.do("POST", "/v1/pki/issue/web", root, `{"common_name":"a.example.com"}`), 200).Data(t)["serial_number"].(string)
	other := mustStatus(t, n.do("POST", "/v1/pki/issue/web", root, `{"common_name":"b.example.com"}`), 200).Data(t)["serial_number"].(string)
	mustStatus(t, n.do("PUT", "/v1/policies/one-cert", root, `{"rules":[{"path":"pki/cert/`+serial+`","capabilities":["read"]}]}`), 204)
	reader, _ := n.createToken(root, `{"policies":["one-cert"]}`)
	for _, c := range []struct {
		name, serial string
		status       int
	}{
		{"the stored form is allowed", serial, 200},
		{"upper case is the same resource", strings.ToUpper(serial), 200},
		{"hyphens are the same resource", strings.ReplaceAll(serial, ":", "-"), 200},
		{"no separators is the same resource", strings.ReplaceAll(serial, ":", ""), 200},
		{"another certificate is denied", other, 403},
		{"a malformed serial is denied before it is parsed", "01:0g", 403},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := mustStatus(t, n.do("GET", "/v1/pki/cert/"+c.serial, reader, ""), c.status)
			if c.status == 200 && r.Data(t)["serial_number"] != serial {
				t.Fatalf("read %v", r.Data(t))
			}
		})
	}
	mustError(t, n.do("GET", "/v1/pki/cert/01:0g", root, ""), 400, "not a serial")
}

// OCSP answers unknown for a serial SecretHub cannot have issued: zero or
// negative, even when its absolute value is a revoked or live serial.
func TestPKIOCSPUnknownForNonPositiveSerials(t *testing.T) {
	n := startNode(t, storagetest.SQLite(t), server.Config{})
	_, root := n.initUnseal(1, 1)
	ca := n.setupPKI(root)
	mustStatus(t, n.do("POST", "/v1/pki/roles/web", root, `{"allow_any_name":true,"key_type":"ec"}`), 200)
	leafOf := func(cn string) *x509.Certificate {
		return pemCert(t, mustStatus(t, n.do("POST", "/v1/pki/issue/web", root, `{"common_name":"`+cn+`"}`), 200).Data(t)["certificate"].(string))
	}
	live, revoked := leafOf("live.example.com"), leafOf("revoked.example.com")
	mustStatus(t, n.do("POST", "/v1/pki/revoke", root, `{"serial_number":"`+fmt.Sprintf("%x", revoked.SerialNumber.Bytes())+`"}`), 200)
	for _, c := range []struct {
		name   string
		serial *big.Int
		want   int
	}{
		{"a live serial is good", live.SerialNumber, ocsp.Good},
		{"a revoked serial is revoked", revoked.SerialNumber, ocsp.Revoked},
		{"the negative of a live serial is unknown", new(big.Int).Neg(live.SerialNumber), ocsp.Unknown},
		{"the negative of a revoked serial is unknown", new(big.Int).Neg(revoked.SerialNumber), ocsp.Unknown},
		{"zero is unknown", big.NewInt(0), ocsp.Unknown},
	} {
		t.Run(c.name, func(t *testing.T) {
			asked := *live
			asked.SerialNumber = c.serial
			req, err := ocsp.CreateRequest(&asked, ca.inter, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := ocsp.ParseResponse(mustStatus(t, n.do("POST", "/v1/pki/ocsp", "", string(req)), 200).Body, ca.inter)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != c.want || resp.SerialNumber.Cmp(c.serial) != 0 {
				t.Fatalf("status %d for serial %v, want %d for %v", resp.Status, resp.SerialNumber, c.want, c.serial)
			}
		})
	}
}

// issue takes the Vault fields format, private_key_format and
// exclude_cn_from_sans when they ask for what SecretHub does; other values
// and unknown fields are 400.
func TestPKIIssueVaultFields(t *testing.T) {
	n := startNode(t, storagetest.SQLite(t), server.Config{})
	_, root := n.initUnseal(1, 1)
	n.setupPKI(root)
	mustStatus(t, n.do("POST", "/v1/pki/roles/web", root, `{"allowed_domains":["example.com"],"allow_subdomains":true,"key_type":"ec"}`), 200)
	for _, c := range []struct {
		name, fields string
		sans         []string // for 200
		status       int
		want         string // for 400
	}{
		{"no Vault fields: the common name is a SAN", ``, []string{"cn.example.com", "alt.example.com"}, 200, ""},
		{"format pem", `,"format":"pem"`, []string{"cn.example.com", "alt.example.com"}, 200, ""},
		{"private_key_format pkcs8", `,"private_key_format":"pkcs8"`, []string{"cn.example.com", "alt.example.com"}, 200, ""},
		{"exclude_cn_from_sans keeps the common name out", `,"exclude_cn_from_sans":true`, []string{"alt.example.com"}, 200, ""},
		{"format der is refused", `,"format":"der"`, nil, 400, "format"},
		{"format pem_bundle is refused", `,"format":"pem_bundle"`, nil, 400, "format"},
		{"private_key_format der is refused", `,"private_key_format":"der"`, nil, 400, "private_key_format"},
		{"an unknown field is refused", `,"use_pss":true`, nil, 400, "use_pss"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := n.do("POST", "/v1/pki/issue/web", root, `{"common_name":"cn.example.com","alt_names":"alt.example.com"`+c.fields+`}`)
			if c.status == 400 {
				mustError(t, r, 400, c.want)
				return
			}
			d := mustStatus(t, r, 200).Data(t)
			leaf := pemCert(t, d["certificate"].(string))
			if !slices.Equal(leaf.DNSNames, c.sans) || leaf.Subject.CommonName != "cn.example.com" {
				t.Fatalf("CN %q, SANs %v; want SANs %v", leaf.Subject.CommonName, leaf.DNSNames, c.sans)
			}
			if block, _ := pem.Decode([]byte(d["private_key"].(string))); block == nil || block.Type != "PRIVATE KEY" {
				t.Fatal("the private key is not PKCS #8 PEM")
			}
		})
	}
}

// A revoked serial is in the issuer's CRL (a new, higher CRL number) and
// OCSP answers revoked for it and good for a live one, by POST and GET.
func TestPKIRevocationReachesCRLAndOCSP(t *testing.T) {
	eachEngine(t, func(t *testing.T, n *node) {
		_, root := n.initUnseal(1, 1)
		ca := n.setupPKI(root)
		mustStatus(t, n.do("POST", "/v1/pki/roles/web", root, `{"allowed_domains":["example.com"],"allow_subdomains":true,"key_type":"ec"}`), 200)
		issue := func(cn string) (string, *x509.Certificate) {
			d := mustStatus(t, n.do("POST", "/v1/pki/issue/web", root, `{"common_name":"`+cn+`"}`), 200).Data(t)
			return d["serial_number"].(string), pemCert(t, d["certificate"].(string))
		}
		revokedSerial, revoked := issue("old.example.com")
		_, live := issue("new.example.com")

		crl := func() *x509.RevocationList {
			r := mustStatus(t, n.do("GET", "/v1/pki/crl", "", ""), 200)
			if ct := r.Header.Get("Content-Type"); ct != "application/pkix-crl" {
				t.Fatalf("CRL content type %q", ct)
			}
			l, err := x509.ParseRevocationList(r.Body)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.CheckSignatureFrom(ca.inter); err != nil {
				t.Fatalf("CRL not signed by the intermediate: %v", err)
			}
			return l
		}
		before := crl()
		if len(before.RevokedCertificateEntries) != 0 || !before.NextUpdate.After(time.Now()) {
			t.Fatalf("fresh CRL: %d entries, next update %s", len(before.RevokedCertificateEntries), before.NextUpdate)
		}

		d := mustStatus(t, n.do("POST", "/v1/pki/revoke", root, `{"serial_number":"`+strings.ToUpper(revokedSerial)+`"}`), 200).Data(t)
		if d["revocation_time"] == "" {
			t.Fatalf("revoke answered %v", d)
		}
		after := crl()
		if after.Number.Cmp(before.Number) <= 0 || len(after.RevokedCertificateEntries) != 1 ||
			after.RevokedCertificateEntries[0].SerialNumber.Cmp(revoked.SerialNumber) != 0 {
			t.Fatalf("CRL after revoke: number %v (was %v), entries %v", after.Number, before.Number, after.RevokedCertificateEntries)
		}
		pemCRL := mustStatus(t, n.do("GET", "/v1/pki/crl/pem", "", ""), 200).Body
		if block, _ := pem.Decode(pemCRL); block == nil || block.Type != "X509 CRL" {
			t.Fatalf("crl/pem: %s", pemCRL)
		}
		// Revoking twice changes nothing.
		mustStatus(t, n.do("POST", "/v1/pki/revoke", root, `{"serial_number":"`+revokedSerial+`"}`), 200)
		if again := crl(); again.Number.Cmp(after.Number) != 0 {
			t.Fatalf("a second revoke rebuilt the CRL: %v", again.Number)
		}

		ask := func(cert *x509.Certificate, viaGet bool) *ocsp.Response {
			req, err := ocsp.CreateRequest(cert, ca.inter, nil)
			if err != nil {
				t.Fatal(err)
			}
			var r response
			if viaGet {
				r = n.do("GET", "/v1/pki/ocsp/"+base64.StdEncoding.EncodeToString(req), "", "")
			} else {
				r = n.do("POST", "/v1/pki/ocsp", "", string(req))
			}
			mustStatus(t, r, 200)
			resp, err := ocsp.ParseResponseForCert(r.Body, cert, ca.inter)
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}
		for _, viaGet := range []bool{false, true} {
			if got := ask(revoked, viaGet); got.Status != ocsp.Revoked || got.RevokedAt.IsZero() {
				t.Fatalf("OCSP for the revoked serial: status %d", got.Status)
			}
			if got := ask(live, viaGet); got.Status != ocsp.Good {
				t.Fatalf("OCSP for a live serial: status %d", got.Status)
			}
		}
		mustError(t, n.do("POST", "/v1/pki/ocsp", "", "garbage"), 400, "OCSP")

		// The stored record and the listing.
		c := mustStatus(t, n.do("GET", "/v1/pki/cert/"+revokedSerial, root, ""), 200).Data(t)
		if c["revocation_time"] == "" || c["issuer_id"] != ca.interID || !strings.Contains(c["subject"].(string), "old.example.com") {
			t.Fatalf("cert read: %v", c)
		}
		keys := mustStatus(t, n.do("LIST", "/v1/pki/certs", root, ""), 200).Data(t)["keys"].([]any)
		if !slices.Contains(keys, any(revokedSerial)) || len(keys) != 3 { // the intermediate and 2 leaves
			t.Fatalf("certs: %v", keys)
		}
	})
}

// pendingCSR asks for an intermediate's CSR: the pending issuer's id and
// the request.
func (n *node) pendingCSR(token string) (string, *x509.CertificateRequest) {
	n.t.Helper()
	d := mustStatus(n.t, n.do("POST", "/v1/pki/ca/intermediate/csr", token, `{"common_name":"Offline Issued","key_type":"ec"}`), 200).Data(n.t)
	block, _ := pem.Decode([]byte(d["csr"].(string)))
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		n.t.Fatal(err)
	}
	return d["issuer_id"].(string), csr
}

// offlineRoot is a root CA SecretHub never holds.
type offlineRoot struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newOfflineRoot(t *testing.T) offlineRoot {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Offline Root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return offlineRoot{cert, key}
}

// signCA certifies csr's key as an intermediate CA until notAfter (DER).
func (o offlineRoot) signCA(t *testing.T, csr *x509.CertificateRequest, notAfter time.Time) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: csr.Subject,
		NotBefore: notAfter.Add(-48 * time.Hour), NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, o.cert, csr.PublicKey, o.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// withoutSKID re-signs a certificate the root made without its subject
// key identifier extension, which Go always writes for a CA.
func (o offlineRoot) withoutSKID(t *testing.T, der []byte) []byte {
	t.Helper()
	var c struct {
		TBS    asn1.RawValue
		SigAlg pkix.AlgorithmIdentifier
		Sig    asn1.BitString
	}
	var tbs struct {
		Version    int `asn1:"optional,explicit,default:0,tag:0"`
		Serial     *big.Int
		SigAlg     pkix.AlgorithmIdentifier
		Issuer     asn1.RawValue
		Validity   asn1.RawValue
		Subject    asn1.RawValue
		PublicKey  asn1.RawValue
		Extensions []pkix.Extension `asn1:"optional,explicit,tag:3"`
	}
	if _, err := asn1.Unmarshal(der, &c); err != nil {
		t.Fatal(err)
	}
	if _, err := asn1.Unmarshal(c.TBS.FullBytes, &tbs); err != nil {
		t.Fatal(err)
	}
	tbs.Extensions = slices.DeleteFunc(tbs.Extensions, func(e pkix.Extension) bool { return e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 14}) })
	raw, err := asn1.Marshal(tbs)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(raw)
	sig, err := ecdsa.SignASN1(rand.Reader, o.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	c.TBS, c.Sig = asn1.RawValue{FullBytes: raw}, asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}
	out, err := asn1.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// set-signed refuses, with 400, a certificate SecretHub could not issue
// under: one without a subject key identifier (its CRLs must name it) or
// one that has expired. The pending key stays usable.
func TestPKISetSignedRefusesUnusableCertificates(t *testing.T) {
	eachEngine(t, func(t *testing.T, n *node) {
		_, root := n.initUnseal(1, 1)
		_, csr := n.pendingCSR(root)
		off := newOfflineRoot(t)
		good := off.signCA(t, csr, time.Now().Add(24*time.Hour))
		noSKID := off.withoutSKID(t, good)
		if c, err := x509.ParseCertificate(noSKID); err != nil || len(c.SubjectKeyId) != 0 || c.CheckSignatureFrom(off.cert) != nil {
			t.Fatalf("the certificate without SKID is not what the test needs: %v", err)
		}
		for _, c := range []struct {
			name string
			der  []byte
			want string
		}{
			{"a certificate without a subject key identifier", noSKID, "subject key identifier"},
			{"an expired certificate", off.signCA(t, csr, time.Now().Add(-time.Hour)), "expired at"},
		} {
			t.Run(c.name+" is refused", func(t *testing.T) {
				cert, _ := x509.ParseCertificate(c.der)
				mustError(t, n.do("POST", "/v1/pki/ca/intermediate/set-signed", root, `{"certificate":`+jsonString(certPEMOf(cert))+`}`), 400, c.want)
			})
		}
		inter, _ := x509.ParseCertificate(good)
		mustStatus(t, n.do("POST", "/v1/pki/ca/intermediate/set-signed", root, `{"certificate":`+jsonString(certPEMOf(inter)+certPEMOf(off.cert))+`}`), 200)
	})
}

// The offline-root flow: a CSR from SecretHub, signed by a root it never
// holds, imported with set-signed, then issuing.
func TestPKIOfflineRootIntermediate(t *testing.T) {
	eachEngine(t, func(t *testing.T, n *node) {
		_, root := n.initUnseal(1, 1)
		pendingID, csr := n.pendingCSR(root)
		off := newOfflineRoot(t)
		offRoot := off.cert
		inter, _ := x509.ParseCertificate(off.signCA(t, csr, time.Now().Add(24*time.Hour)))
		bundle := certPEMOf(inter) + certPEMOf(offRoot)

		mustError(t, n.do("POST", "/v1/pki/ca/intermediate/set-signed", root, `{"certificate":`+jsonString(certPEMOf(offRoot))+`}`), 400, "pending")
		mustError(t, n.do("POST", "/v1/pki/ca/intermediate/set-signed", root, `{"certificate":"nope"}`), 400, "PEM")
		s := mustStatus(t, n.do("POST", "/v1/pki/ca/intermediate/set-signed", root, `{"certificate":`+jsonString(bundle)+`}`), 200).Data(t)
		if s["issuer_id"] != pendingID || s["is_default"] != true {
			t.Fatalf("set-signed: %v", s)
		}
		mustStatus(t, n.do("POST", "/v1/pki/roles/web", root, `{"allowed_domains":["example.com"],"allow_subdomains":true,"key_type":"ec"}`), 200)
		leaf := pemCert(t, mustStatus(t, n.do("POST", "/v1/pki/issue/web", root, `{"common_name":"a.example.com","ttl":"100h"}`), 200).Data(t)["certificate"].(string))
		if err := verifyLeaf(leaf, inter, offRoot, "a.example.com", x509.ExtKeyUsageServerAuth); err != nil {
			t.Fatal(err)
		}
		if !leaf.NotAfter.Equal(inter.NotAfter) {
			t.Fatalf("leaf outlives its issuer: %s > %s", leaf.NotAfter, inter.NotAfter)
		}
		chain := string(mustStatus(t, n.do("GET", "/v1/pki/ca_chain", "", ""), 200).Body)
		if strings.Count(chain, "BEGIN CERTIFICATE") != 2 {
			t.Fatalf("ca_chain: %s", chain)
		}
	})
}

// Publication needs no token but an unsealed node; tidy drops what
// expired; the default issuer can be changed.
func TestPKIPublicationSealedTidyAndDefault(t *testing.T) {
	storagetest.Engines(t, func(t *testing.T, db *storage.DB) {
		clock := newClock()
		n := startNode(t, db, server.Config{Now: clock.Now})
		_, root := n.initUnseal(1, 1)
		mustError(t, n.do("GET", "/v1/pki/ca/pem", "", ""), 404, "no default issuer")
		ca := n.setupPKI(root)
		if got := pemCert(t, string(mustStatus(t, n.do("GET", "/v1/pki/ca/pem", "", ""), 200).Body)); !got.Equal(ca.inter) {
			t.Fatal("ca/pem is not the default (newest intermediate) issuer")
		}
		mustStatus(t, n.do("POST", "/v1/pki/config/issuers", root, `{"default":"`+ca.rootID+`"}`), 200)
		if got := pemCert(t, string(mustStatus(t, n.do("GET", "/v1/pki/ca/pem", "", ""), 200).Body)); !got.Equal(ca.root) {
			t.Fatal("ca/pem did not follow the default issuer")
		}
		if got := pemCert(t, string(mustStatus(t, n.do("GET", "/v1/pki/ca/pem?issuer_id="+ca.interID, "", ""), 200).Body)); !got.Equal(ca.inter) {
			t.Fatal("?issuer_id= was not followed")
		}
		issuers := mustStatus(t, n.do("LIST", "/v1/pki/issuers", root, ""), 200).Data(t)["keys"].([]any)
		if len(issuers) != 2 {
			t.Fatalf("issuers: %v", issuers)
		}
		mustStatus(t, n.do("POST", "/v1/pki/config/issuers", root, `{"default":"`+ca.interID+`"}`), 200)
		mustStatus(t, n.do("POST", "/v1/pki/config/issuers", root, `{"default":"nope"}`), 404)

		mustStatus(t, n.do("POST", "/v1/pki/roles/web", root, `{"allow_any_name":true,"key_type":"ec"}`), 200)
		serial := mustStatus(t, n.do("POST", "/v1/pki/issue/web", root, `{"common_name":"short.example.com","ttl":"1h"}`), 200).Data(t)["serial_number"].(string)
		mustStatus(t, n.do("POST", "/v1/pki/revoke", root, `{"serial_number":"`+serial+`"}`), 200)
		if n := mustStatus(t, n.do("POST", "/v1/pki/tidy", root, `{}`), 200).Data(t)["removed"]; n != 0.0 {
			t.Fatalf("tidy within the safety buffer removed %v", n)
		}
		clock.Advance(2 * time.Hour)
		if n := mustStatus(t, n.do("POST", "/v1/pki/tidy", root, `{"safety_buffer":0}`), 200).Data(t)["removed"]; n != 1.0 {
			t.Fatalf("tidy removed %v, want 1", n)
		}
		mustStatus(t, n.do("GET", "/v1/pki/cert/"+serial, root, ""), 404)
		l, err := x509.ParseRevocationList(mustStatus(t, n.do("GET", "/v1/pki/crl", "", ""), 200).Body)
		if err != nil || len(l.RevokedCertificateEntries) != 0 {
			t.Fatalf("CRL after tidy: %v, %v", l, err)
		}

		mustStatus(t, n.do("POST", "/v1/sys/seal", root, ""), 204)
		for _, p := range []string{"/v1/pki/ca/pem", "/v1/pki/ca_chain", "/v1/pki/crl", "/v1/pki/crl/pem"} {
			mustError(t, n.do("GET", p, "", ""), 503, "sealed")
		}
	})
}

// A token whose policy grants update on pki/issue/web issues from role web
// and nothing else: not from another role, not a CA, not a revocation;
// what it issues still chains to the CA. Resources are as docs/pki.md says.
func TestPKIAPolicyScopedToOneRole(t *testing.T) {
	n := startNode(t, storagetest.SQLite(t), server.Config{})
	_, root := n.initUnseal(1, 1)
	ca := n.setupPKI(root)
	for _, role := range []string{"web", "db"} {
		mustStatus(t, n.do("POST", "/v1/pki/roles/"+role, root, `{"allowed_domains":"`+role+`.example.com","allow_subdomains":true,"key_type":"ec"}`), 200)
	}
	mustStatus(t, n.do("POST", "/v1/policies", root, `{"name":"web-certs","rules":[
		{"path":"pki/issue/web","capabilities":["update"]},
		{"path":"pki/roles/web","capabilities":["read"]}]}`), 204)
	tok, _ := n.createToken(root, `{"policies":["web-certs"]}`)

	issued := mustStatus(t, n.do("POST", "/v1/pki/issue/web", tok, `{"common_name":"api.web.example.com"}`), 200).Data(t)
	leaf := pemCert(t, issued["certificate"].(string))
	if err := verifyLeaf(leaf, ca.inter, ca.root, "api.web.example.com", x509.ExtKeyUsageServerAuth); err != nil {
		t.Fatalf("the scoped token's certificate does not verify: %v", err)
	}
	mustStatus(t, n.do("GET", "/v1/pki/roles/web", tok, ""), 200)
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/pki/issue/db", `{"common_name":"x.db.example.com"}`},
		{"GET", "/v1/pki/roles/db", ""},
		{"POST", "/v1/pki/roles/web", `{"allowed_domains":"example.com","allow_subdomains":true}`},
		{"POST", "/v1/pki/revoke", `{"serial_number":"` + issued["serial_number"].(string) + `"}`},
		{"POST", "/v1/pki/ca/intermediate/generate", `{"common_name":"Rogue CA","key_type":"ec"}`},
		{"POST", "/v1/pki/sign/web", `{"csr":"-"}`},
		{"GET", "/v1/pki/cert/" + issued["serial_number"].(string), ""},
	} {
		mustError(t, n.do(c.method, c.path, tok, c.body), 403, "permission denied")
	}
}
