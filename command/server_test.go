package command

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secrethub/secrethub/client"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// runningServer is `secrethub server ARGS` running in-process.
type runningServer struct {
	console *console
	addr    net.Addr
	scheme  string // http or https
	stop    context.CancelFunc
	done    chan error
}

// startServerCommand runs the server command with args and waits until it
// listens. env replaces the settings' environment variables.
func startServerCommand(t *testing.T, env map[string]string, args ...string) *runningServer {
	t.Helper()
	cleanEnv(t)
	for k, v := range env {
		t.Setenv(k, v)
	}
	rs := &runningServer{console: newConsole(""), done: make(chan error, 1), scheme: "http"}
	listening := make(chan net.Addr, 1)
	cmd := NewCmdServer(&Factory{IO: rs.console.io}, func(ctx context.Context, o *ServerOptions) error {
		if o.Settings.TLSCertFile != "" {
			rs.scheme = "https"
		}
		o.Listening = func(a net.Addr) { listening <- a }
		return runServer(ctx, o)
	})
	cmd.SetArgs(normalizeArgs(args))
	ctx, cancel := context.WithCancel(context.Background())
	rs.stop = cancel
	go func() { rs.done <- cmd.ExecuteContext(ctx) }()
	select {
	case rs.addr = <-listening:
	case err := <-rs.done:
		t.Fatalf("server exited before listening: %v\n%s", err, rs.console.err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("server did not start listening within 20s")
	}
	t.Cleanup(func() { rs.shutdown(t) })
	return rs
}

// shutdown stands in for SIGTERM and waits for a clean exit.
func (rs *runningServer) shutdown(t *testing.T) {
	t.Helper()
	if rs.stop == nil {
		return
	}
	rs.stop()
	rs.stop = nil
	select {
	case err := <-rs.done:
		if err != nil {
			t.Fatalf("server exited with %v\n%s", err, rs.console.err)
		}
	case <-time.After(35 * time.Second):
		t.Fatal("server did not stop")
	}
}

func (rs *runningServer) url() string { return rs.scheme + "://" + rs.addr.String() }

// rootToken is the root token a dev server printed.
func (rs *runningServer) rootToken(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^Root Token: (s\.\S+)$`).FindStringSubmatch(rs.console.out.String())
	if m == nil {
		t.Fatalf("no root token in:\n%s", rs.console.out)
	}
	return m[1]
}

func TestServerCommandServesAndStopsCleanly(t *testing.T) {
	dataDir := t.TempDir()
	rs := startServerCommand(t, map[string]string{"SECRETHUB_NODE_NAME": "core-1"},
		"-listen-addr=127.0.0.1:0", "-data-dir="+dataDir)

	resp, err := http.Get(rs.url() + "/v1/sys/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotImplemented || !strings.Contains(string(body), `"hostname":"core-1"`) {
		t.Fatalf("health: %d %s", resp.StatusCode, body)
	}

	rs.shutdown(t)
	logs := rs.console.err.String()
	started := regexp.MustCompile(`(?m)^.*msg="secrethub server started".*$`).FindAllString(logs, -1)
	if len(started) != 1 {
		t.Fatalf("want one start-up line, got %d:\n%s", len(started), logs)
	}
	mustContain(t, "start-up line", started[0], "address="+rs.addr.String(), "scheme=http ", "storage=sqlite",
		"location="+filepath.Join(dataDir, "secrethub.db"), "node=core-1")
	mustContain(t, "logs", logs, `msg="shutting down"`, `msg="secrethub server stopped"`)
	if rs.console.out.Len() != 0 {
		t.Fatalf("a production server printed to stdout: %q", rs.console.out)
	}
}

func TestServerCommandWarnsAboutSettingsForLaterReleases(t *testing.T) {
	rs := startServerCommand(t, map[string]string{"SECRET_KEY_BASE": "very-secret-value", "AUTO_UNSEAL_ENABLED": "true"},
		"--listen-addr=127.0.0.1:0", "--data-dir="+t.TempDir())
	rs.shutdown(t)
	logs := rs.console.err.String()
	mustContain(t, "logs", logs, "setting=SECRET_KEY_BASE", "setting=AUTO_UNSEAL_ENABLED used_by=auto-unseal")
	if strings.Contains(logs, "very-secret-value") {
		t.Fatalf("a secret setting was logged:\n%s", logs)
	}
}

func TestServerCommandDevMode(t *testing.T) {
	// A DATABASE_URL in the environment must not pull dev mode onto a real database.
	rs := startServerCommand(t, map[string]string{"DATABASE_URL": "postgres://nobody:pw@127.0.0.1:1/prod"},
		"-dev", "-listen-addr=127.0.0.1:0")
	out := rs.console.out.String()
	mustContain(t, "dev output", out, "Never use", "export SECRETHUB_ADDR='"+rs.url()+"'", "Unseal Key: ")
	token := rs.rootToken(t)
	mustContain(t, "dev output", out, "export SECRETHUB_TOKEN='"+token+"'")

	c, err := client.New(rs.url(), token)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if h, err := c.Sys().Health(ctx); err != nil || h.StatusCode != http.StatusOK {
		t.Fatalf("dev health = %+v, %v", h, err)
	}
	if _, err := c.KV().Put(ctx, "dev/x", map[string]any{"k": "v"}, client.KVPutOptions{}); err != nil {
		t.Fatalf("writing with the printed root token: %v", err)
	}

	rs.shutdown(t)
	m := regexp.MustCompile(`location=(\S+)`).FindStringSubmatch(rs.console.err.String())
	if m == nil || !strings.Contains(rs.console.err.String(), "storage=sqlite") {
		t.Fatalf("no sqlite location in the logs:\n%s", rs.console.err)
	}
	if _, err := os.Stat(filepath.Dir(m[1])); !os.IsNotExist(err) {
		t.Fatalf("the dev data directory %s is still there: %v", filepath.Dir(m[1]), err)
	}
}

func TestServerCommandEnablesAdminLoginWithAHashFromHashPassword(t *testing.T) {
	const password = "runbook admin password"
	code, hash, errOut := cli(t, "", "", password+"\n", "operator", "hash-password", "--password-stdin")
	if code != 0 {
		t.Fatalf("hash-password: exit %d: %s", code, errOut)
	}
	hash = strings.TrimSpace(hash)
	rs := startServerCommand(t, map[string]string{
		"ADMIN_USERNAME": "admin", "ADMIN_PASSWORD_HASH": hash, "SECRETHUB_ADMIN_TOKEN_TTL": "45m",
	}, "-dev", "-listen-addr=127.0.0.1:0")

	code, out, errOut := cli(t, rs.url(), "", password+"\n", "login", "-method=admin", "username=admin")
	if code != 0 {
		t.Fatalf("login: exit %d: %s", code, errOut)
	}
	if rowValue(t, out, "token_duration") != "45m" || !strings.Contains(rowValue(t, out, "policies"), `"admin"`) {
		t.Fatalf("login output:\n%s", out)
	}
	rs.shutdown(t)
	logs := rs.console.err.String()
	if strings.Contains(logs, "setting=ADMIN_") || strings.Contains(logs, hash) {
		t.Fatalf("the admin settings were warned about or the hash was logged:\n%s", logs)
	}
}

func TestServerCommandKeepsTheConfiguredNumberOfVersions(t *testing.T) {
	rs := startServerCommand(t, map[string]string{"SECRETHUB_KV_MAX_VERSIONS": "5"}, "-dev", "-listen-addr=127.0.0.1:0", "-kv-max-versions=2")
	c, err := client.New(rs.url(), rs.rootToken(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 3 {
		if _, err := c.KV().Put(ctx, "app/db", map[string]any{"n": i}, client.KVPutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	m, err := c.KV().Metadata(ctx, "app/db")
	if err != nil {
		t.Fatal(err)
	}
	if m.CurrentVersion != 3 || m.OldestVersion != 2 || len(m.Versions) != 2 {
		t.Fatalf("after 3 writes with --kv-max-versions=2: current %d oldest %d, %d versions kept",
			m.CurrentVersion, m.OldestVersion, len(m.Versions))
	}
}

func TestServerCommandStartFailures(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	pki := newTestPKI(t)
	key, err := os.ReadFile(pki.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	keyLine := strings.Split(string(key), "\n")[1] // a line of the key's base64
	garbage := writeFile(t, "garbage.pem", "not a certificate")
	absent := filepath.Join(t.TempDir(), "absent.pem")
	const badTLS = `msg="cannot serve HTTPS"`
	const badAdmin = `msg="invalid admin login settings"`
	const notBcrypt = "$2b$12$not-a-real-hash-but-secret-looking"
	badCost := "$2b$99$" + strings.Repeat("a", 53)

	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantLog []string
		secret  string
	}{
		{"a port in use is one clear log line", nil,
			[]string{"--listen-addr=" + busy.Addr().String(), "--data-dir=" + t.TempDir()},
			[]string{`msg="cannot listen"`, "address=" + busy.Addr().String(), "address already in use"}, ""},
		{"an unreachable PostgreSQL is named without its password",
			map[string]string{"DATABASE_URL": "postgres://secrethub:hunter2@127.0.0.1:1/secrethub_prod?sslmode=disable",
				"SECRETHUB_DB_CONNECT_TIMEOUT": "1s"},
			nil, []string{`msg="cannot open the database"`, "127.0.0.1:1/secrethub_prod"}, "hunter2"},
		{"a TLS certificate without a key", map[string]string{"SECRETHUB_TLS_CERT_FILE": pki.CertFile}, nil,
			[]string{badTLS, "SECRETHUB_TLS_CERT_FILE is set but SECRETHUB_TLS_KEY_FILE is not"}, keyLine},
		{"a TLS key without a certificate, by flag", nil, []string{"--tls-key-file=" + pki.KeyFile},
			[]string{badTLS, "SECRETHUB_TLS_KEY_FILE is set but SECRETHUB_TLS_CERT_FILE is not"}, keyLine},
		{"a TLS certificate file that does not exist", nil, []string{"--tls-cert-file=" + absent, "--tls-key-file=" + pki.KeyFile},
			[]string{badTLS, "reading SECRETHUB_TLS_CERT_FILE", "absent.pem: no such file or directory"}, keyLine},
		{"a TLS key file that does not exist", map[string]string{"SECRETHUB_TLS_CERT_FILE": pki.CertFile, "SECRETHUB_TLS_KEY_FILE": absent}, nil,
			[]string{badTLS, "reading SECRETHUB_TLS_KEY_FILE", "absent.pem: no such file or directory"}, keyLine},
		{"a TLS certificate file that is not PEM", nil, []string{"--tls-cert-file=" + garbage, "--tls-key-file=" + pki.KeyFile},
			[]string{badTLS, "certificate " + garbage + " with key " + pki.KeyFile, "failed to find any PEM data in certificate input"}, keyLine},
		{"a TLS key that does not belong to the certificate", nil, []string{"--tls-cert-file=" + pki.CertFile, "--tls-key-file=" + pki.OtherKeyFile},
			[]string{badTLS, "private key does not match public key"}, keyLine},
		{"an admin password hash that is not bcrypt, without repeating it", map[string]string{"ADMIN_USERNAME": "admin", "ADMIN_PASSWORD_HASH": notBcrypt}, nil,
			[]string{badAdmin, "ADMIN_PASSWORD_HASH is not a bcrypt hash"}, "not-a-real-hash"},
		{"an admin password hash with an impossible cost", map[string]string{"ADMIN_USERNAME": "admin", "ADMIN_PASSWORD_HASH": badCost}, nil,
			[]string{badAdmin, "ADMIN_PASSWORD_HASH has a bcrypt cost outside 4 to 15"}, strings.Repeat("a", 53)},
		{"an admin user name without a hash", map[string]string{"ADMIN_USERNAME": "admin"}, nil,
			[]string{badAdmin, "ADMIN_USERNAME is set but ADMIN_PASSWORD_HASH is empty"}, ""},
		{"an admin password hash without a user name", map[string]string{"ADMIN_PASSWORD_HASH": notBcrypt}, nil,
			[]string{badAdmin, "ADMIN_PASSWORD_HASH is set but ADMIN_USERNAME is empty"}, "not-a-real-hash"},
		{"a TLS certificate and key swapped", nil, []string{"--tls-cert-file=" + pki.KeyFile, "--tls-key-file=" + pki.CertFile},
			[]string{badTLS, "PEM inputs may have been switched"}, keyLine},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cleanEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			t.Setenv("HOME", t.TempDir())
			dataDir := t.TempDir()
			t.Setenv("SECRETHUB_DATA_DIR", dataDir)
			t.Setenv("SECRETHUB_LISTEN_ADDR", "127.0.0.1:0")
			c := newConsole("")
			code := run(context.Background(), append([]string{"server"}, tt.args...), c.io)
			logs := c.err.String()
			if code != 1 {
				t.Fatalf("exit %d, want 1:\n%s", code, logs)
			}
			errorLines := regexp.MustCompile(`(?m)level=ERROR`).FindAllString(logs, -1)
			if len(errorLines) != 1 || strings.Contains(logs, "Error: ") {
				t.Fatalf("want exactly one error line:\n%s", logs)
			}
			mustContain(t, "logs", logs, tt.wantLog...)
			if tt.secret != "" && strings.Contains(logs, tt.secret) {
				t.Fatalf("a secret was logged:\n%s", logs)
			}
			if slices.Contains(tt.wantLog, badTLS) || slices.Contains(tt.wantLog, badAdmin) {
				if entries, _ := os.ReadDir(dataDir); len(entries) != 0 {
					t.Fatalf("the database was opened before the settings were checked: %v", entries)
				}
			}
		})
	}
}

// A request whose line and headers pass 64 KiB is refused by the HTTP
// server itself (431) and never reaches the audit log, which would keep
// its path.
func TestServerRefusesHugeRequestLines(t *testing.T) {
	var reached atomic.Bool
	hs := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Store(true) }), slog.New(slog.DiscardHandler))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = hs.Serve(l) }()
	t.Cleanup(func() { hs.Close() })
	for _, c := range []struct {
		path string
		want int
	}{
		{"/v1/secrets/static/" + strings.Repeat("a", 2000), http.StatusOK},
		{"/v1/secrets/static/" + strings.Repeat("a", 100<<10), http.StatusRequestHeaderFieldsTooLarge},
	} {
		reached.Store(false)
		resp, err := http.Get("http://" + l.Addr().String() + c.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if c.want == http.StatusOK {
			if !reached.Load() || resp.StatusCode != http.StatusOK {
				t.Fatalf("a %d-byte path did not reach the handler", len(c.path))
			}
			continue
		}
		if resp.StatusCode != c.want || reached.Load() {
			t.Fatalf("a %d-byte path: status %d (handler reached: %t), want %d", len(c.path), resp.StatusCode, reached.Load(), c.want)
		}
	}
}

func TestServerConnectionDeadlines(t *testing.T) {
	hs := newHTTPServer(http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	tests := []struct {
		name string
		got  time.Duration
		want time.Duration
	}{
		{"slow request headers are cut off after 10s", hs.ReadHeaderTimeout, 10 * time.Second},
		{"a whole request, body included, must arrive within 60s", hs.ReadTimeout, 60 * time.Second},
		{"an idle keep-alive connection is closed after 120s", hs.IdleTimeout, 120 * time.Second},
		{"responses have no write deadline, for agents' WebSocket connections", hs.WriteTimeout, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

// Two servers on one PostgreSQL database with the same node name would
// fight over that node's audit chain: the second refuses to start, in one
// log line that says why, and the name is free again once the first stops.
func TestServerCommandRefusesANodeNameInUse(t *testing.T) {
	env := map[string]string{"DATABASE_URL": storagetest.PostgresURL(t), "SECRETHUB_NODE_NAME": "core-1"}
	first := startServerCommand(t, env, "--listen-addr=127.0.0.1:0")

	c := newConsole("")
	// Bounded: a second server that did start would otherwise serve for ever.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code := run(ctx, []string{"server", "--listen-addr=127.0.0.1:0"}, c.io)
	logs := c.err.String()
	if code != 1 {
		t.Fatalf("second server with node name core-1: exit %d, want 1:\n%s", code, logs)
	}
	errorLines := regexp.MustCompile(`(?m)^.*level=ERROR.*$`).FindAllString(logs, -1)
	if len(errorLines) != 1 {
		t.Fatalf("want exactly one error line:\n%s", logs)
	}
	mustContain(t, "error line", errorLines[0], `msg="cannot claim the node name"`, "node=core-1",
		"held by another running server", "own SECRETHUB_NODE_NAME")
	if strings.Contains(logs, "secrethub server started") {
		t.Fatalf("the second server started:\n%s", logs)
	}

	first.shutdown(t)
	again := startServerCommand(t, env, "--listen-addr=127.0.0.1:0")
	again.shutdown(t)
}
