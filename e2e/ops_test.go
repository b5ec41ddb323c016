package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-migrate/migrate/v4/database"

	"github.com/secrethub/secrethub/client/clienttest"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// waitForLog waits until the server has logged want n times in all.
func (p *process) waitForLog(want string, n int) {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(p.logs.String(), want) < n {
		if time.Now().After(deadline) {
			p.t.Fatalf("the server did not log %q (%d times):\n%s", want, n, p.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// signal sends sig to the server process.
func (p *process) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestHTTPSWithACustomCAAndCertificateReloadOnSIGHUP: the real binary
// serves HTTPS with a certificate from a private CA; the CLI talks to it
// with --ca-cert (and refuses without it); SIGHUP swaps in a new
// certificate written over the same files, and a broken one is refused
// while the current one keeps serving.
func TestHTTPSWithACustomCAAndCertificateReloadOnSIGHUP(t *testing.T) {
	ca := clienttest.NewCA(t)
	first, second := ca.IssueServer(t, 24*time.Hour), ca.IssueServer(t, 48*time.Hour)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	copyFile(t, first.CertFile, certFile)
	copyFile(t, first.KeyFile, keyFile)

	caPEM, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	tlsConfig := &tls.Config{RootCAs: roots}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig}}
	port := freePort(t)
	env := append(baseEnv(t), "PORT="+port, "SECRETHUB_DATA_DIR="+t.TempDir(),
		"SECRETHUB_TLS_CERT_FILE="+certFile, "SECRETHUB_TLS_KEY_FILE="+keyFile)
	p := launch(t, t.TempDir(), "https://127.0.0.1:"+port, hc, env, binary, "server")

	served := func() *big.Int {
		t.Helper()
		conn, err := tls.Dial("tcp", "127.0.0.1:"+port, tlsConfig)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber
	}
	if got := served(); got.Cmp(first.Cert.SerialNumber) != 0 {
		t.Fatalf("serving serial %v, want the first certificate's %v", got, first.Cert.SerialNumber)
	}

	// The CLI over HTTPS: refused without the CA, fine with it.
	if _, errOut, code := p.cli(t, "", "", "status"); code != 1 || !strings.Contains(errOut, "certificate signed by unknown authority") {
		t.Fatalf("status without the CA: exit %d, %s", code, errOut)
	}
	init := decode(t, curl(t, "--cacert", ca.CertFile, "-X", "POST", p.addr+"/v1/sys/init", "-d", `{"secret_shares":1,"secret_threshold":1}`))
	key, root := init["keys"].([]any)[0].(string), init["root_token"].(string)
	if _, errOut, code := p.cli(t, "", "", "--ca-cert", ca.CertFile, "operator", "unseal", key); code != 0 {
		t.Fatalf("operator unseal over HTTPS: exit %d: %s", code, errOut)
	}
	if _, errOut, code := p.cli(t, "", root, "--ca-cert", ca.CertFile, "kv", "put", "app/tls", "value=over-https"); code != 0 {
		t.Fatalf("kv put over HTTPS: exit %d: %s", code, errOut)
	}
	if out, errOut, code := p.cli(t, "", root, "--ca-cert", ca.CertFile, "kv", "get", "-field=value", "app/tls"); code != 0 || strings.TrimSpace(out) != "over-https" {
		t.Fatalf("kv get over HTTPS: exit %d, %q, %s", code, out, errOut)
	}
	if _, errOut, code := p.cli(t, "", "", "--tls-skip-verify", "status"); code != 0 {
		t.Fatalf("status with --tls-skip-verify: exit %d: %s", code, errOut)
	}
	if got := certExpiryMetric(t, p); got != first.Cert.NotAfter.Unix() {
		t.Fatalf("secrethub_tls_cert_expiry_seconds = %d, want the first certificate's %d", got, first.Cert.NotAfter.Unix())
	}

	// New files, SIGHUP: new handshakes get the second certificate.
	copyFile(t, second.CertFile, certFile)
	copyFile(t, second.KeyFile, keyFile)
	p.signal(syscall.SIGHUP)
	p.waitForLog("TLS certificate reloaded", 1)
	if got := served(); got.Cmp(second.Cert.SerialNumber) != 0 {
		t.Fatalf("after SIGHUP serving serial %v, want the second certificate's %v", got, second.Cert.SerialNumber)
	}
	if got := certExpiryMetric(t, p); got != second.Cert.NotAfter.Unix() {
		t.Fatalf("after SIGHUP secrethub_tls_cert_expiry_seconds = %d, want %d", got, second.Cert.NotAfter.Unix())
	}

	// A key that does not match: refused, the second certificate stays.
	copyFile(t, first.KeyFile, keyFile)
	p.signal(syscall.SIGHUP)
	p.waitForLog("TLS certificate not reloaded; keeping the current one", 1)
	if got := served(); got.Cmp(second.Cert.SerialNumber) != 0 {
		t.Fatalf("after a failed reload serving serial %v, want %v still", got, second.Cert.SerialNumber)
	}
	assertNoSecretsInLogs(t, p.logs.String(), root, key, "over-https")
	p.stop()
}

// certExpiryMetric reads secrethub_tls_cert_expiry_seconds from /metrics.
func certExpiryMetric(t *testing.T, p *process) int64 {
	t.Helper()
	resp, err := p.http.Get(p.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "secrethub_tls_cert_expiry_seconds "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return int64(f)
		}
	}
	t.Fatalf("no secrethub_tls_cert_expiry_seconds in /metrics:\n%s", body)
	return 0
}

// TestSIGTERMDrainsARequestInFlight: a request whose body is still
// arriving when SIGTERM comes is answered; then the server exits 0.
func TestSIGTERMDrainsARequestInFlight(t *testing.T) {
	// Audit lines on stdout tell when the request has reached its handler.
	p := startServer(t, "SECRETHUB_DATA_DIR="+t.TempDir(), "SECRETHUB_AUDIT_FILE=-")
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.addr, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"secret_shares":1,"secret_threshold":1}`
	half := len(body) / 2
	if _, err := io.WriteString(conn, "POST /v1/sys/init HTTP/1.1\r\nHost: secrethub\r\nContent-Length: "+
		strconv.Itoa(len(body))+"\r\n\r\n"+body[:half]); err != nil {
		t.Fatal(err)
	}
	// Once its audit event is stored, the request is in its handler,
	// which is reading the body; stop the server meanwhile.
	p.waitForLog(`"path":"/v1/sys/init"`, 1)
	p.signal(syscall.SIGTERM)
	p.waitForLog(`msg="shutting down"`, 1)
	if _, err := io.WriteString(conn, body[half:]); err != nil {
		t.Fatalf("%v\n%s", err, p.logs)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the request in flight was cut off: %v\n%s", err, p.logs)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(out), "root_token") {
		t.Fatalf("the request in flight got %d %s", resp.StatusCode, out)
	}
	p.waitStopped()
}

// TestSnapshotSaveRestoreUnsealSameSecrets: a snapshot saved while the
// server runs, restored after it stops, unseals with the same keys and
// holds the secrets as they were when it was taken, with an audit log that
// still verifies.
func TestSnapshotSaveRestoreUnsealSameSecrets(t *testing.T) {
	data := t.TempDir()
	p := startServer(t, "SECRETHUB_DATA_DIR="+data)
	init := decode(t, curl(t, "-X", "POST", p.addr+"/v1/sys/init", "-d", `{"secret_shares":3,"secret_threshold":2}`))
	keys, root := init["keys"].([]any), init["root_token"].(string)
	for _, k := range keys[:2] {
		curl(t, "-X", "POST", p.addr+"/v1/sys/unseal", "-d", `{"key":"`+k.(string)+`"}`)
	}
	kv := func(p *process, args ...string) (string, int) {
		t.Helper()
		out, _, code := p.cli(t, "", root, append([]string{"kv"}, args...)...)
		return strings.TrimSpace(out), code
	}
	if _, code := kv(p, "put", "app/db", "password=before-snapshot"); code != 0 {
		t.Fatalf("kv put exit %d", code)
	}

	file := filepath.Join(t.TempDir(), "secrethub.snap")
	if out, errOut, code := p.cli(t, "", "", "operator", "snapshot", "save", file, "--data-dir", data); code != 0 || !strings.Contains(out, "Success!") {
		t.Fatalf("snapshot save while running: exit %d: %s %s", code, out, errOut)
	}
	kv(p, "put", "app/db", "password=after-snapshot")
	kv(p, "put", "app/new", "k=v")
	if _, errOut, code := p.cli(t, "", "", "operator", "snapshot", "restore", file, "--data-dir", data); code == 0 || !strings.Contains(errOut, "server is running") {
		t.Fatalf("restore while the server runs: exit %d: %s", code, errOut)
	}
	p.stop()

	if out, errOut, code := p.cli(t, "", "", "operator", "snapshot", "restore", file, "--data-dir", data); code != 0 {
		t.Fatalf("snapshot restore: exit %d: %s %s", code, out, errOut)
	}
	p = startServer(t, "SECRETHUB_DATA_DIR="+data)
	for _, k := range keys[1:] {
		if _, errOut, code := p.cli(t, "", "", "operator", "unseal", k.(string)); code != 0 {
			t.Fatalf("unseal the restored data: exit %d: %s", code, errOut)
		}
	}
	if out, code := kv(p, "get", "-field=password", "app/db"); code != 0 || out != "before-snapshot" {
		t.Fatalf("restored app/db: exit %d, %q; want the value at snapshot time", code, out)
	}
	if _, code := kv(p, "get", "app/new"); code == 0 {
		t.Fatal("a secret written after the snapshot survived the restore")
	}
	if out, errOut, code := p.cli(t, "", root, "audit", "verify"); code != 0 {
		t.Fatalf("audit verify after restore: exit %d: %s %s", code, out, errOut)
	}
	p.stop()
}

// TestSnapshotRestoreByAnotherUserIsRefused: a restore run by neither root
// nor the data's owner would leave a database the server, running as that
// owner, cannot open; it is refused with the command to use instead, and
// the database stays as it was.
func TestSnapshotRestoreByAnotherUserIsRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running the CLI as another user needs root")
	}
	const nobody, owner = 65534, 4242
	// Everything the other user touches must be reachable by it, which
	// t.TempDir's directories are not.
	work, err := os.MkdirTemp("", "secrethub-owner-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	if err := os.Chmod(work, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(work, "secrethub")
	if err := os.Link(binary, bin); err != nil {
		t.Fatal(err)
	}
	data, snap := filepath.Join(work, "data"), filepath.Join(work, "backup.snap")
	asRoot := func(args ...string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = baseEnv(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	asRoot("migrate", "up", "--data-dir", data)
	asRoot("operator", "snapshot", "save", snap, "--data-dir", data)
	db := filepath.Join(data, "secrethub.db")
	// The other user may write the directory and read the snapshot; the
	// database belongs to the server's user.
	for path, uid := range map[string]int{data: nobody, snap: nobody, db: owner} {
		if err := os.Chown(path, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	before, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "operator", "snapshot", "restore", snap, "--data-dir", data)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + work}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("restore as another user: %v, want exit 1:\n%s", err, out)
	}
	for _, want := range []string{"belongs to uid 4242", "runs as uid 65534", "sudo -u secrethub secrethub operator snapshot restore"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the refusal does not say %q:\n%s", want, out)
		}
	}
	after, err := os.ReadFile(db)
	if err != nil || !bytes.Equal(after, before) {
		t.Fatalf("the refused restore changed the database (%v)", err)
	}
	if left, _ := filepath.Glob(filepath.Join(data, ".restore-*")); len(left) != 0 {
		t.Fatalf("the refused restore left %v behind", left)
	}
}

// TestSIGHUPDuringStartupIsNotFatal: `systemctl reload` while the server
// is still starting (here: migrations waiting for the advisory lock
// another node holds) must not end it; the reload is applied once it
// serves.
func TestSIGHUPDuringStartupIsNotFatal(t *testing.T) {
	dbURL := storagetest.PostgresURL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	// The lock golang-migrate takes (database.Postgres.Lock) on the
	// default schema and migrations table.
	lockID, err := database.GenerateAdvisoryLockId(strings.TrimPrefix(u.Path, "/"), "public", "schema_migrations")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pg, err := sql.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	// Advisory locks belong to a session: one connection takes and frees it.
	conn, err := pg.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", lockID); err != nil {
		t.Fatal(err)
	}

	port := freePort(t)
	p := spawn(t, t.TempDir(), "http://127.0.0.1:"+port, http.DefaultClient,
		append(baseEnv(t), "PORT="+port, "DATABASE_URL="+dbURL), binary, "server")
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting int
		if err := pg.QueryRowContext(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
			WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = $1`, strings.TrimPrefix(u.Path, "/")).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		p.failIfExited()
		if time.Now().After(deadline) {
			t.Fatalf("the server never waited for the migration lock:\n%s", p.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}

	p.signal(syscall.SIGHUP)
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock($1)", lockID); err != nil {
		t.Fatal(err)
	}
	p.waitAnswering()
	p.waitForLog("SIGHUP received; serving plain HTTP", 1)
	p.stop()
}
