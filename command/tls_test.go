package command

import (
	"crypto/tls"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/secrethub/secrethub/client/clienttest"
)

// testPKI is a private CA and a server certificate it signed for
// 127.0.0.1 and localhost, as PEM files.
type testPKI struct {
	CAFile   string
	CertFile string
	KeyFile  string
	// OtherKeyFile is a key that does not belong to CertFile.
	OtherKeyFile string
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	ca := clienttest.NewCA(t)
	server := ca.IssueServer(t, time.Hour)
	return testPKI{
		CAFile:       ca.CertFile,
		CertFile:     server.CertFile,
		KeyFile:      server.KeyFile,
		OtherKeyFile: ca.IssueServer(t, time.Hour).KeyFile,
	}
}

func TestServerCommandServesHTTPSWithACertificateAndKey(t *testing.T) {
	pki := newTestPKI(t)
	rs := startServerCommand(t, map[string]string{"SECRETHUB_TLS_CERT_FILE": pki.CertFile, "SECRETHUB_TLS_KEY_FILE": pki.KeyFile},
		"-listen-addr=127.0.0.1:0", "-data-dir="+t.TempDir())
	if !strings.HasPrefix(rs.url(), "https://") {
		t.Fatalf("url %s", rs.url())
	}

	// The server is new: not initialized, so sealed, so status exits 2.
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
		wantErr  []string
	}{
		{"status with --ca-cert trusts the server", nil, []string{"--ca-cert", pki.CAFile}, 2, nil},
		{"status with SECRETHUB_CACERT trusts the server", map[string]string{EnvCACert: pki.CAFile}, nil, 2, nil},
		{"status with a Vault-style -ca-cert=FILE trusts the server", nil, []string{"-ca-cert=" + pki.CAFile}, 2, nil},
		{"status without the CA refuses the certificate, clearly", nil, nil, 1,
			[]string{"Error: reading the seal status", "x509: certificate signed by unknown authority",
				"give the CA's PEM file with --ca-cert or SECRETHUB_CACERT"}},
		{"status with --tls-skip-verify works without the CA", nil, []string{"-tls-skip-verify"}, 2, nil},
		{"status with SECRETHUB_SKIP_VERIFY=true works without the CA", map[string]string{EnvSkipVerify: "true"}, nil, 2, nil},
		{"--tls-skip-verify=false beats SECRETHUB_SKIP_VERIFY", map[string]string{EnvSkipVerify: "1"}, []string{"-tls-skip-verify=false"}, 1,
			[]string{"certificate signed by unknown authority"}},
		{"--ca-cert beats SECRETHUB_CACERT", map[string]string{EnvCACert: filepath.Join(t.TempDir(), "absent.pem")},
			[]string{"-ca-cert", pki.CAFile}, 2, nil},
		{"a CA file that does not exist is named", map[string]string{EnvCACert: filepath.Join(t.TempDir(), "absent.pem")}, nil, 1,
			[]string{"Error: client: reading the CA certificates", "absent.pem"}},
		{"a CA file without certificates is named", nil, []string{"--ca-cert", pki.KeyFile}, 1,
			[]string{filepath.Base(pki.KeyFile) + " holds no PEM certificate"}},
		{"a SECRETHUB_SKIP_VERIFY that is not a boolean is refused", map[string]string{EnvSkipVerify: "sometimes"}, nil, 1,
			[]string{`SECRETHUB_SKIP_VERIFY must be true or false, got "sometimes"`}},
		{"plain HTTP to the HTTPS port is refused", nil, []string{"--address", "http://" + rs.addr.String()}, 1,
			[]string{"Client sent an HTTP request to an HTTPS server"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := cliEnv(t, tt.env, rs.url(), "", "", append([]string{"status"}, tt.args...)...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d: %s %s", code, tt.wantCode, out, errOut)
			}
			mustContain(t, "stderr", errOut, tt.wantErr...)
			if tt.wantCode == 2 && rowValue(t, out, "Sealed") != "true" {
				t.Fatalf("status output:\n%s", out)
			}
		})
	}

	t.Run("TLS before 1.2 is refused", func(t *testing.T) {
		conn, err := tls.Dial("tcp", rs.addr.String(), &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11})
		if err == nil {
			conn.Close()
			t.Fatal("a TLS 1.1 handshake succeeded")
		}
	})
	t.Run("the start-up line says https", func(t *testing.T) {
		rs.shutdown(t)
		started := regexp.MustCompile(`(?m)^.*msg="secrethub server started".*$`).FindString(rs.console.err.String())
		mustContain(t, "start-up line", started, "address="+rs.addr.String(), "scheme=https")
	})
}

func TestServerCommandDevModeOverHTTPS(t *testing.T) {
	pki := newTestPKI(t)
	rs := startServerCommand(t, nil, "-dev", "-listen-addr=127.0.0.1:0", "-tls-cert-file="+pki.CertFile, "-tls-key-file="+pki.KeyFile)
	mustContain(t, "dev output", rs.console.out.String(), "export SECRETHUB_ADDR='https://"+rs.addr.String()+"'")
	code, out, errOut := cli(t, rs.url(), "", "", "status", "-ca-cert="+pki.CAFile)
	if code != 0 || rowValue(t, out, "Sealed") != "false" {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	code, out, errOut = cli(t, rs.url(), rs.rootToken(t), "", "kv", "put", "-ca-cert="+pki.CAFile, "app/db", "user=app")
	if code != 0 {
		t.Fatalf("kv put over HTTPS: exit %d: %s %s", code, out, errOut)
	}
	resp, err := http.Get("http://" + rs.addr.String() + "/v1/sys/health")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP got %d, want Go's 400 for HTTP to an HTTPS server", resp.StatusCode)
		}
	}
}

func TestServerSettingsReadTLSFilesFromAConfigFile(t *testing.T) {
	for name, content := range map[string]string{
		"server.yaml": "SECRETHUB_TLS_CERT_FILE: /etc/secrethub/tls.crt\nsecrethub_tls_key_file: /etc/secrethub/tls.key\n",
		"server.toml": "SECRETHUB_TLS_CERT_FILE = \"/etc/secrethub/tls.crt\"\nsecrethub_tls_key_file = \"/etc/secrethub/tls.key\"\n",
	} {
		t.Run("a "+filepath.Ext(name)[1:]+" file names the certificate and key", func(t *testing.T) {
			s, err := resolveServerSettings(t, nil, "--config", writeFile(t, name, content))
			if err != nil {
				t.Fatal(err)
			}
			if s.TLSCertFile != "/etc/secrethub/tls.crt" || s.TLSKeyFile != "/etc/secrethub/tls.key" {
				t.Fatalf("cert %q key %q", s.TLSCertFile, s.TLSKeyFile)
			}
		})
	}
	t.Run("flags beat the file and the environment", func(t *testing.T) {
		cfg := writeFile(t, "server.yaml", "SECRETHUB_TLS_CERT_FILE: /from/file.crt\n")
		s, err := resolveServerSettings(t, map[string]string{"SECRETHUB_TLS_KEY_FILE": "/from/env.key"},
			"--config", cfg, "-tls-cert-file=/from/flag.crt", "-tls-key-file=/from/flag.key")
		if err != nil {
			t.Fatal(err)
		}
		if s.TLSCertFile != "/from/flag.crt" || s.TLSKeyFile != "/from/flag.key" {
			t.Fatalf("cert %q key %q", s.TLSCertFile, s.TLSKeyFile)
		}
	})
}
