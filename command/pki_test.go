package command

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/client"
)

func readPEMCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s is not PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// mustRun returns a runner of the command line against addr as token
// that fails the test on a non-zero exit and returns the output.
func mustRun(t *testing.T, addr, token string) func(args ...string) string {
	return func(args ...string) string {
		t.Helper()
		code, out, errOut := cli(t, addr, token, "", args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		return out
	}
}

// The whole PKI workflow through the CLI: CAs, a role, issue and sign with
// files in --out-dir (the private key 0600), listing, revoke and the CRL.
func TestPKICommands(t *testing.T) {
	srv := unsealedServer(t)
	root := srv.RootToken
	run := mustRun(t, srv.URL, root)
	caDir := t.TempDir()
	out := run("pki", "root", "generate", "--common-name", "CLI Root", "--ttl", "8760h", "--key-type", "ec", "--out-dir", caDir)
	if rowValue(t, out, "common_name") != "CLI Root" || rowValue(t, out, "is_default") != "true" {
		t.Fatalf("root generate:\n%s", out)
	}
	rootCert := readPEMCert(t, filepath.Join(caDir, "certificate.pem"))
	out = run("pki", "intermediate", "generate", "--common-name", "CLI Intermediate", "--key-type", "ec", "--out-dir", caDir)
	interCert := readPEMCert(t, filepath.Join(caDir, "certificate.pem"))
	if err := interCert.CheckSignatureFrom(rootCert); err != nil {
		t.Fatalf("intermediate not signed by the root: %v\n%s", err, out)
	}

	mustContain(t, "role create", run("pki", "role", "create", "web", "--allowed-domain", "example.com", "--allow-subdomains", "--key-type", "ec", "--client-flag=false"), "Success! PKI role web written.")
	if out := run("pki", "role", "read", "web"); rowValue(t, out, "client_flag") != "false" || !strings.Contains(rowValue(t, out, "allowed_domains"), "example.com") {
		t.Fatalf("role read:\n%s", out)
	}
	mustContain(t, "role list", run("pki", "role", "list"), "web")

	dir := filepath.Join(t.TempDir(), "tls")
	out = run("pki", "issue", "web", "--common-name", "www.example.com", "--ip-san", "10.0.0.1", "--out-dir", dir)
	serial := rowValue(t, out, "serial_number")
	leaf := readPEMCert(t, filepath.Join(dir, "certificate.pem"))
	if leaf.Subject.CommonName != "www.example.com" || len(leaf.IPAddresses) != 1 || leaf.CheckSignatureFrom(interCert) != nil {
		t.Fatalf("issued leaf: %v %v", leaf.Subject, leaf.IPAddresses)
	}
	st, err := os.Stat(filepath.Join(dir, "private_key.pem"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key file: %v, %v", st, err)
	}
	if strings.Contains(out, "PRIVATE KEY") {
		t.Fatal("issue printed the private key though it wrote it to a file")
	}
	chain, _ := os.ReadFile(filepath.Join(dir, "ca_chain.pem"))
	if strings.Count(string(chain), "BEGIN CERTIFICATE") != 2 {
		t.Fatalf("ca_chain.pem: %s", chain)
	}

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "api.example.com"}}, key)
	csrFile := filepath.Join(t.TempDir(), "api.csr")
	if err := os.WriteFile(csrFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	signDir := t.TempDir()
	run("pki", "sign", "web", "--csr", "@"+csrFile, "--ttl", "1h", "--out-dir", signDir)
	if c := readPEMCert(t, filepath.Join(signDir, "certificate.pem")); c.Subject.CommonName != "api.example.com" {
		t.Fatalf("signed: %v", c.Subject)
	}
	if _, err := os.Stat(filepath.Join(signDir, "private_key.pem")); !os.IsNotExist(err) {
		t.Fatal("sign wrote a private key file")
	}
	if code, _, errOut := cli(t, srv.URL, root, "", "pki", "issue", "web", "--common-name", "evil.org"); code == 0 || !strings.Contains(errOut, "not allowed") {
		t.Fatalf("a name outside the role: exit %d: %s", code, errOut)
	}

	mustContain(t, "list-certs", run("pki", "list-certs"), serial)
	mustContain(t, "revoke", run("pki", "revoke", serial), "Success! Certificate "+serial+" revoked")
	crlDir := t.TempDir()
	run("pki", "crl", "--out-dir", crlDir)
	b, _ := os.ReadFile(filepath.Join(crlDir, "crl.pem"))
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("crl.pem: %s", b)
	}
	crl, err := x509.ParseRevocationList(block.Bytes)
	if err != nil || len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Fatalf("CRL: %v, %v", crl, err)
	}
}

// `pki config urls` reads with no flags and sets the lists given with
// flags, keeping the others; an empty value clears one. Certificates
// issued afterwards carry the URLs; a bad URL fails naming it.
func TestPKIConfigURLsCommand(t *testing.T) {
	srv := unsealedServer(t)
	root := srv.RootToken
	run := mustRun(t, srv.URL, root)
	rows := func(out string) [3]string {
		return [3]string{rowValue(t, out, "issuing_certificates"), rowValue(t, out, "crl_distribution_points"), rowValue(t, out, "ocsp_servers")}
	}
	if got := rows(run("pki", "config", "urls")); got != [3]string{"n/a", "n/a", "n/a"} {
		t.Fatalf("URLs before any were set: %q", got)
	}

	issuing := []string{"https://ca.example.com/v1/pki/ca/pem", "https://ca2.example.com/v1/pki/ca/pem"}
	want := [3]string{`["https://ca.example.com/v1/pki/ca/pem","https://ca2.example.com/v1/pki/ca/pem"]`,
		`["https://ca.example.com/v1/pki/crl"]`, `["https://ca.example.com/v1/pki/ocsp"]`}
	out := run("pki", "config", "urls", "--issuing-certificates", issuing[0], "--issuing-certificates", issuing[1],
		"--crl-distribution-points", "https://ca.example.com/v1/pki/crl", "--ocsp-servers", "https://ca.example.com/v1/pki/ocsp")
	if got := rows(out); got != want {
		t.Fatalf("set printed %q, want %q", got, want)
	}
	if got := rows(run("pki", "config", "urls")); got != want {
		t.Fatalf("read printed %q, want %q", got, want)
	}

	run("pki", "root", "generate", "--common-name", "CLI Root", "--key-type", "ec")
	run("pki", "role", "create", "web", "--allow-any-name", "--key-type", "ec")
	dir := t.TempDir()
	run("pki", "issue", "web", "--common-name", "www.example.com", "--out-dir", dir)
	leaf := readPEMCert(t, filepath.Join(dir, "certificate.pem"))
	if !slices.Equal(leaf.IssuingCertificateURL, issuing) || !slices.Equal(leaf.CRLDistributionPoints, []string{"https://ca.example.com/v1/pki/crl"}) ||
		!slices.Equal(leaf.OCSPServer, []string{"https://ca.example.com/v1/pki/ocsp"}) {
		t.Fatalf("issued leaf: AIA %v, OCSP %v, CDP %v", leaf.IssuingCertificateURL, leaf.OCSPServer, leaf.CRLDistributionPoints)
	}

	want[2] = "n/a"
	if got := rows(run("pki", "config", "urls", "--ocsp-servers=")); got != want {
		t.Fatalf("clearing ocsp_servers printed %q, want %q", got, want)
	}
	var asJSON client.PKIURLs
	if err := json.Unmarshal([]byte(run("pki", "config", "urls", "-format=json")), &asJSON); err != nil ||
		!slices.Equal(asJSON.IssuingCertificates, issuing) || len(asJSON.OCSPServers) != 0 {
		t.Fatalf("-format=json: %+v, %v", asJSON, err)
	}

	code, _, errOut := cli(t, srv.URL, root, "", "pki", "config", "urls", "--crl-distribution-points", "ldap://ca.example.com/crl")
	if code == 0 || !strings.Contains(errOut, `crl_distribution_points[0]: "ldap://ca.example.com/crl"`) {
		t.Fatalf("a bad URL: exit %d: %s", code, errOut)
	}
	if got := rows(run("pki", "config", "urls")); got != want {
		t.Fatalf("a refused write changed the URLs to %q", got)
	}
}
