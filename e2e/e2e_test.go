// Package e2e drives the real secrethub binary the way an operator does:
// started as a process, configured through the runbook's environment
// variables, and spoken to with curl and the secrethub CLI.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/secrethub/secrethub/storage/storagetest"
)

var (
	binary   string // the secrethub binary built for this test run
	repoRoot string
)

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Dir(filepath.Dir(file))
	dir, err := os.MkdirTemp("", "secrethub-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, v := range []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOFLAGS", "GOPROXY", "GOTOOLCHAIN"} {
		out, err := exec.Command("go", "env", v).Output()
		if err == nil && len(bytes.TrimSpace(out)) > 0 {
			goEnv = append(goEnv, v+"="+string(bytes.TrimSpace(out)))
		}
	}
	binary = filepath.Join(dir, "secrethub")
	// -trimpath as the Makefile builds: the compiled packages are then in
	// the cache for TestMakeRun's `make run`, which otherwise compiles the
	// whole tree again while other packages' tests load the machine, and
	// can run out its 90 seconds before the server answers.
	build := exec.Command("go", "build", "-trimpath", "-o", binary, ".")
	build.Dir = repoRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building secrethub with CGO_ENABLED=0: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is a running secrethub server.
type process struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string
	// http reaches addr (over HTTPS, it trusts the server's CA).
	http *http.Client
	logs *lockedBuffer
	done chan error
	// exited is set once Wait has returned: the process group may be gone
	// and its id reused, so it is no longer signalled.
	exited atomic.Bool
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

// goEnv keeps the Go tool's caches where they are when HOME moves, so
// `make run` under a test does not download every module again.
var goEnv []string

// baseEnv is a clean environment: nothing of the developer's SecretHub or
// Vault settings leaks into a test, and HOME is a fresh directory.
func baseEnv(t *testing.T) []string {
	return append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, goEnv...)
}

// start runs name with args and env in dir as a process group, and waits
// until the server answers sys/health on port.
func start(t *testing.T, dir, port string, env []string, name string, args ...string) *process {
	t.Helper()
	return launch(t, dir, "http://127.0.0.1:"+port, http.DefaultClient, env, name, args...)
}

// launch is start for a server at addr reached with hc.
func launch(t *testing.T, dir, addr string, hc *http.Client, env []string, name string, args ...string) *process {
	t.Helper()
	p := spawn(t, dir, addr, hc, env, name, args...)
	p.waitAnswering()
	return p
}

// spawn runs name with args and env in dir as a process group, for a
// server that will answer at addr, without waiting for it.
func spawn(t *testing.T, dir, addr string, hc *http.Client, env []string, name string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &process{t: t, cmd: cmd, addr: addr, http: hc, logs: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := cmd.Wait()
		p.exited.Store(true)
		p.done <- err
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

// waitAnswering waits until the server answers sys/health, failing the
// test if it exits first.
func (p *process) waitAnswering() {
	p.t.Helper()
	deadline := time.Now().Add(90 * time.Second) // `make run` may compile first
	for time.Now().Before(deadline) {
		p.failIfExited()
		if resp, err := p.http.Get(p.addr + "/v1/sys/health"); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatalf("server did not answer on %s:\n%s", p.addr, p.logs)
}

// failIfExited fails the test if the server process has ended.
func (p *process) failIfExited() {
	p.t.Helper()
	select {
	case err := <-p.done:
		p.t.Fatalf("server exited early (%v):\n%s", err, p.logs)
	default:
	}
}

// startServer runs `secrethub server` with the given extra environment.
func startServer(t *testing.T, env ...string) *process {
	t.Helper()
	port := freePort(t)
	return start(t, t.TempDir(), port, append(append(baseEnv(t), "PORT="+port), env...), binary, "server")
}

// stop sends SIGTERM to the process group and expects the server to shut
// down cleanly: exit 0 when it was started directly, and its "stopped" log
// line in any case (make itself reports the signal as its own exit status).
func (p *process) stop() {
	p.t.Helper()
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	p.waitStopped()
}

// interrupt is stop by Ctrl-C: SIGINT to the process group, as a terminal
// sends it. For `make run` that is the signal to use: GNU make passes a
// SIGTERM it receives on to its child, so a SIGTERM to the whole group can
// reach the server twice, and a second signal ends it at once.
func (p *process) interrupt() {
	p.t.Helper()
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGINT)
	p.waitStopped()
}

// waitStopped expects the server, already told to stop, to exit as stop says.
func (p *process) waitStopped() {
	p.t.Helper()
	select {
	case err := <-p.done:
		if err != nil && p.cmd.Path == binary {
			p.t.Fatalf("server did not exit cleanly on SIGTERM: %v\n%s", err, p.logs)
		}
		p.done <- nil
	case <-time.After(30 * time.Second):
		p.t.Fatalf("server did not stop within 30s of SIGTERM\n%s", p.logs)
	}
	if !strings.Contains(p.logs.String(), "secrethub server stopped") {
		p.t.Fatalf("server did not report a clean shutdown:\n%s", p.logs)
	}
}

func (p *process) kill() {
	if !p.exited.Load() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// curl runs the real curl with args, returning stdout; it fails the test if
// curl itself fails (HTTP errors are still output).
func curl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("curl", append([]string{"-sS"}, args...)...).Output()
	if err != nil {
		t.Fatalf("curl %v: %v", args, err)
	}
	return string(out)
}

// cli runs the secrethub CLI against p with a fresh HOME and returns
// stdout, stderr and the exit code.
func (p *process) cli(t *testing.T, stdin, token string, args ...string) (string, string, int) {
	t.Helper()
	return p.run(t, t.TempDir(), stdin, token, args...)
}

// cliAt runs the CLI with HOME at home, so a login's token file is used by
// the commands that follow.
func (p *process) cliAt(t *testing.T, home, stdin string, args ...string) (string, string, int) {
	t.Helper()
	return p.run(t, home, stdin, "", args...)
}

func (p *process) run(t *testing.T, home, stdin, token string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}, goEnv...), "SECRETHUB_ADDR="+p.addr)
	if token != "" {
		cmd.Env = append(cmd.Env, "SECRETHUB_TOKEN="+token)
	}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not JSON (%v): %q", err, s)
	}
	return m
}

// TestMakeRun checks the README's first command on a fresh checkout: in a
// copy of the tree with no ./data, with no PORT or data directory set, it
// builds, serves on :4000 and keeps its data in SQLite under ./data.
func TestMakeRun(t *testing.T) {
	holdPort4000(t)
	if l, err := net.Listen("tcp", ":4000"); err != nil {
		t.Fatalf("port 4000 is in use, so `make run` cannot be checked on its default port: %v", err)
	} else {
		l.Close()
	}
	checkout := copyTree(t)
	p := start(t, checkout, "4000", baseEnv(t), "make", "-s", "run")
	resp, err := http.Get(p.addr + "/v1/sys/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotImplemented {
		t.Fatalf("health of a fresh server: status %d, want 501 (not initialized)", resp.StatusCode)
	}
	if _, err := os.Stat(filepath.Join(checkout, "data", "secrethub.db")); err != nil {
		t.Fatalf("make run did not keep its data in ./data/secrethub.db: %v", err)
	}
	logs := p.logs.String()
	if !strings.Contains(logs, "0.0.0.0:4000") || !strings.Contains(logs, "sqlite") {
		t.Fatalf("start-up line should name 0.0.0.0:4000 and sqlite:\n%s", logs)
	}
	p.interrupt()
}

// holdPort4000 takes a machine-wide lock for the test's use of port 4000,
// so two test runs on one machine (two checkouts) take turns rather than
// one finding the other's server there.
func holdPort4000(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "secrethub-e2e-port-4000.lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
}

// copyTree copies what a fresh checkout would hold (tracked files and new,
// unignored ones, as they are in the working tree) to a temporary directory.
func copyTree(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "-C", repoRoot, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("listing the checkout: %v", err)
	}
	dst := t.TempDir()
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(repoRoot, name)
		info, err := os.Stat(src)
		if err != nil || info.IsDir() {
			continue // deleted in the working tree, or a submodule
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dst, name)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, data, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestRunbookWithCurlAndCLI follows the runbook's Phase 4 and 8.4 with the
// real binary and curl, on both engines, then restarts the server: it must
// come back initialized and sealed, and unsealing with the CLI brings the
// data back.
func TestRunbookWithCurlAndCLI(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			env := []string{"SECRETHUB_DATA_DIR=" + t.TempDir()}
			if engine == "postgres" {
				env = []string{"DATABASE_URL=" + storagetest.PostgresURL(t), "DB_POOL_SIZE=5"}
			}
			p := startServer(t, env...)
			base := p.addr

			// Phase 3.4 / 8.1: health before init.
			h := decode(t, curl(t, base+"/v1/sys/health"))
			if h["initialized"] != false || h["sealed"] != true || h["standby"] != false {
				t.Fatalf("health = %v", h)
			}

			// Phase 4.1, verbatim but for the host.
			init := decode(t, curl(t, "-X", "POST", base+"/v1/sys/init",
				"-H", "Content-Type: application/json",
				"-d", "@"+runbookBody("phase4.1-init.json")))
			keys := init["keys"].([]any)
			root := init["root_token"].(string)
			if len(keys) != 5 || len(init["keys_base64"].([]any)) != 5 || !strings.HasPrefix(root, "s.") {
				t.Fatalf("init = %v", init)
			}

			// Phase 4.2: three plain curl -d calls.
			for _, k := range keys[:3] {
				curl(t, "-X", "POST", base+"/v1/sys/unseal", "-d", `{"key": "`+k.(string)+`"}`)
			}
			st := decode(t, curl(t, base+"/v1/sys/seal-status"))
			if st["sealed"] != false || st["t"] != 3.0 || st["n"] != 5.0 || st["progress"] != 0.0 {
				t.Fatalf("seal-status = %v", st)
			}

			// Phase 8.4.
			curl(t, "-X", "POST", base+"/v1/secrets/static/test/hello", "-H", "X-Vault-Token: "+root,
				"-d", "@"+runbookBody("phase8.4-create-secret.json"))
			read := decode(t, curl(t, base+"/v1/secrets/static/test/hello", "-H", "X-Vault-Token: "+root))
			if read["data"].(map[string]any)["data"].(map[string]any)["message"] != "Hello Production!" {
				t.Fatalf("read = %v", read)
			}
			code := curl(t, "-o", "/dev/null", "-w", "%{http_code}", "-X", "DELETE", base+"/v1/secrets/static/test/hello", "-H", "X-Vault-Token: "+root)
			if code != "204" {
				t.Fatalf("delete status %s", code)
			}
			if code := curl(t, "-o", "/dev/null", "-w", "%{http_code}", base+"/v1/secrets/static/test/hello", "-H", "X-Vault-Token: "+root); code != "404" {
				t.Fatalf("read after delete: status %s", code)
			}

			// The CLI on the same server.
			if _, errOut, code := p.cli(t, "", root, "kv", "put", "app/db", "password=s3cr3t-value"); code != 0 {
				t.Fatalf("kv put exit %d: %s", code, errOut)
			}
			if out, _, code := p.cli(t, "", root, "kv", "get", "-field=password", "app/db"); code != 0 || strings.TrimSpace(out) != "s3cr3t-value" {
				t.Fatalf("kv get -field: exit %d, %q", code, out)
			}
			if _, _, code := p.cli(t, "", "", "status"); code != 0 {
				t.Fatalf("status of an unsealed node exited %d, want 0", code)
			}

			// Restart: initialized and sealed; the CLI unseals; data is back.
			p.stop()
			p = startServer(t, env...)
			if _, _, code := p.cli(t, "", "", "status"); code != 2 {
				t.Fatalf("status of a sealed node exited %d, want 2", code)
			}
			st = decode(t, curl(t, p.addr+"/v1/sys/seal-status"))
			if st["initialized"] != true || st["sealed"] != true {
				t.Fatalf("after restart: %v", st)
			}
			for _, k := range keys[2:5] {
				if _, errOut, code := p.cli(t, "", "", "operator", "unseal", k.(string)); code != 0 {
					t.Fatalf("operator unseal exit %d: %s", code, errOut)
				}
			}
			if out, _, _ := p.cli(t, "", root, "kv", "get", "-field=password", "app/db"); strings.TrimSpace(out) != "s3cr3t-value" {
				t.Fatalf("after restart and unseal: %q", out)
			}
			assertNoSecretsInLogs(t, p.logs.String(), root, "s3cr3t-value", "Hello Production!")
			for _, k := range keys {
				assertNoSecretsInLogs(t, p.logs.String(), k.(string))
			}
		})
	}
}

// runbookBody is the path of a request body copied from the runbook.
func runbookBody(name string) string { return filepath.Join(repoRoot, "testdata", "runbook", name) }

func assertNoSecretsInLogs(t *testing.T, logs string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Fatalf("a secret appears in the server log:\n%s", logs)
		}
	}
}

// TestOperatorUnsealReadsStdin checks `operator unseal` without a key
// reads it from standard input (no echo on a terminal; here a pipe).
func TestOperatorUnsealReadsStdin(t *testing.T) {
	p := startServer(t, "SECRETHUB_DATA_DIR="+t.TempDir())
	init := decode(t, curl(t, "-X", "POST", p.addr+"/v1/sys/init", "-d", `{"secret_shares":1,"secret_threshold":1}`))
	key := init["keys"].([]any)[0].(string)
	if _, errOut, code := p.cli(t, key+"\n", "", "operator", "unseal"); code != 0 {
		t.Fatalf("operator unseal from stdin: exit %d: %s", code, errOut)
	}
	st := decode(t, curl(t, p.addr+"/v1/sys/seal-status"))
	if st["sealed"] != false {
		t.Fatalf("still sealed: %v", st)
	}
}

// TestServerStartupFailures: the runbook's "Core Won't Start" list (an
// unreachable database, a port in use, a missing variable) each end the
// process with one clear error line and a non-zero exit.
func TestServerStartupFailures(t *testing.T) {
	cases := []struct {
		name string
		env  func(t *testing.T) []string
		want string
	}{
		{"an unreachable database", func(t *testing.T) []string {
			return []string{"DATABASE_URL=postgres://secrethub@127.0.0.1:1/none?sslmode=disable", "SECRETHUB_DB_CONNECT_TIMEOUT=1s"}
		}, "127.0.0.1:1"},
		{"a port already in use", func(t *testing.T) []string {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return []string{"SECRETHUB_DATA_DIR=" + t.TempDir(), "SECRETHUB_LISTEN_ADDR=" + l.Addr().String()}
		}, "address already in use"},
		{"a required variable missing", func(t *testing.T) []string {
			return []string{"SECRETHUB_DATA_DIR=" + t.TempDir(), "ADMIN_USERNAME=admin"}
		}, "ADMIN_PASSWORD_HASH"},
		{"a data directory another server uses", func(t *testing.T) []string {
			data := t.TempDir()
			startServer(t, "SECRETHUB_DATA_DIR="+data)
			return []string{"SECRETHUB_DATA_DIR=" + data, "PORT=" + freePort(t)}
		}, "a secrethub server is running on this data directory"},
		{"a node name another server on the database uses", func(t *testing.T) []string {
			env := []string{"DATABASE_URL=" + storagetest.PostgresURL(t), "SECRETHUB_NODE_NAME=core-1"}
			startServer(t, env...)
			return append(env, "PORT="+freePort(t))
		}, `node name \"core-1\" is held by another running server`},
		{"half of the TLS settings", func(t *testing.T) []string {
			return []string{"SECRETHUB_DATA_DIR=" + t.TempDir(), "SECRETHUB_TLS_CERT_FILE=/opt/secrethub/tls/core.crt"}
		}, "SECRETHUB_TLS_KEY_FILE is not"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, "server")
			cmd.Dir = t.TempDir()
			cmd.Env = append(baseEnv(t), c.env(t)...)
			out, err := cmd.CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
				t.Fatalf("want a non-zero exit, got %v:\n%s", err, out)
			}
			if !strings.Contains(string(out), c.want) {
				t.Fatalf("output does not mention %q:\n%s", c.want, out)
			}
			if n := strings.Count(string(out), "level=ERROR"); n != 1 || !strings.Contains(errorLine(string(out)), c.want) {
				t.Fatalf("want one error line naming %q, got %d:\n%s", c.want, n, out)
			}
			if strings.Contains(string(out), "goroutine ") {
				t.Fatalf("a stack trace reached the operator:\n%s", out)
			}
		})
	}
}

// errorLine is the first line of out logged at level ERROR.
func errorLine(out string) string {
	for line := range strings.SplitSeq(out, "\n") {
		if strings.Contains(line, "level=ERROR") {
			return line
		}
	}
	return ""
}

// TestRunbookPhases5And7WithCurlAndCLI: the runbook's AppRole and policy
// steps with curl on the real binary, on both engines, then the logins an
// operator and an agent use: AppRole through the CLI, admin with a password
// hashed by `operator hash-password`.
func TestRunbookPhases5And7WithCurlAndCLI(t *testing.T) {
	const password = "runbook admin password"
	hash := func() string {
		p := &process{addr: "http://127.0.0.1:1"}
		out, errOut, code := p.cli(t, password+"\n", "", "operator", "hash-password", "--password-stdin")
		if code != 0 || !strings.HasPrefix(out, "$2") {
			t.Fatalf("hash-password: exit %d, %q, %s", code, out, errOut)
		}
		return strings.TrimSpace(out)
	}()
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			env := []string{"SECRETHUB_DATA_DIR=" + t.TempDir()}
			if engine == "postgres" {
				env = []string{"DATABASE_URL=" + storagetest.PostgresURL(t)}
			}
			p := startServer(t, append(env, "ADMIN_USERNAME=admin", "ADMIN_PASSWORD_HASH="+hash)...)
			base := p.addr
			init := decode(t, curl(t, "-X", "POST", base+"/v1/sys/init", "-d", `{"secret_shares":1,"secret_threshold":1}`))
			root := init["root_token"].(string)
			curl(t, "-X", "POST", base+"/v1/sys/unseal", "-d", `{"key":"`+init["keys"].([]any)[0].(string)+`"}`)

			// 5.1 Create admin AppRole, get its RoleID, generate a SecretID.
			curl(t, "-X", "POST", base+"/v1/auth/approle/role/admin", "-H", "X-Vault-Token: "+root,
				"-d", "@"+runbookBody("phase5.1-approle-admin.json"))
			roleID := decode(t, curl(t, base+"/v1/auth/approle/role/admin/role-id", "-H", "X-Vault-Token: "+root))["data"].(map[string]any)["role_id"].(string)
			secretID := decode(t, curl(t, "-X", "POST", base+"/v1/auth/approle/role/admin/secret-id", "-H", "X-Vault-Token: "+root))["data"].(map[string]any)["secret_id"].(string)

			// 5.2 Create default policies.
			for _, f := range []string{"read-only.json", "production.json"} {
				code := curl(t, "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", base+"/v1/policies", "-H", "X-Vault-Token: "+root,
					"-d", "@"+filepath.Join(repoRoot, "testdata", "policies", f))
				if code != "204" {
					t.Fatalf("writing %s: status %s", f, code)
				}
			}

			// 7.1 Create AppRole for agents.
			if code := curl(t, "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", base+"/v1/auth/approle/role/agents",
				"-H", "X-Vault-Token: "+root, "-d", "@"+runbookBody("phase7.1-approle-agents.json")); code != "204" {
				t.Fatalf("creating the agents role: status %s", code)
			}

			// An operator logs in with the admin AppRole through the CLI.
			home := t.TempDir()
			out, errOut, code := p.cliAt(t, home, "", "login", "-method=approle", "role_id="+roleID, "secret_id="+secretID)
			if code != 0 {
				t.Fatalf("login -method=approle: exit %d: %s", code, errOut)
			}
			if strings.Contains(out+errOut, secretID) {
				t.Fatal("login printed the secret ID")
			}
			if out, errOut, code := p.cliAt(t, home, "", "token", "lookup", "-format=json"); code != 0 || !strings.Contains(out, `"admin"`) {
				t.Fatalf("token lookup after approle login: exit %d: %s %s", code, out, errOut)
			}
			if _, errOut, code := p.cliAt(t, home, "", "kv", "put", "prod/db", "password=pg-prod"); code != 0 {
				t.Fatalf("kv put with the admin approle token: exit %d: %s", code, errOut)
			}

			// Admin login with the hashed password, read from stdin.
			adminHome := t.TempDir()
			if _, errOut, code := p.cliAt(t, adminHome, password+"\n", "login", "-method=admin", "username=admin"); code != 0 {
				t.Fatalf("login -method=admin: exit %d: %s", code, errOut)
			}
			if out, _, code := p.cliAt(t, adminHome, "", "kv", "get", "-field=password", "prod/db"); code != 0 || strings.TrimSpace(out) != "pg-prod" {
				t.Fatalf("kv get as admin: exit %d, %q", code, out)
			}

			// production's source_ip condition holds the line on 127.0.0.1.
			curl(t, "-X", "POST", base+"/v1/auth/approle/role/prod-app", "-H", "X-Vault-Token: "+root, "-d", `{"policies":["production"]}`)
			prodRoleID := decode(t, curl(t, base+"/v1/auth/approle/role/prod-app/role-id", "-H", "X-Vault-Token: "+root))["data"].(map[string]any)["role_id"].(string)
			prodSecret := decode(t, curl(t, "-X", "POST", base+"/v1/auth/approle/role/prod-app/secret-id", "-H", "X-Vault-Token: "+root))["data"].(map[string]any)["secret_id"].(string)
			prodToken := decode(t, curl(t, "-X", "POST", base+"/v1/auth/approle/login", "-d", `{"role_id":"`+prodRoleID+`","secret_id":"`+prodSecret+`"}`))["auth"].(map[string]any)["client_token"].(string)
			if code := curl(t, "-o", "/dev/null", "-w", "%{http_code}", base+"/v1/secrets/static/prod/db", "-H", "X-Vault-Token: "+prodToken); code != "403" {
				t.Fatalf("production read from 127.0.0.1: status %s, want 403", code)
			}
			assertNoSecretsInLogs(t, p.logs.String(), secretID, prodSecret, password, root, prodToken, "pg-prod")
		})
	}
}

// TestRunbookPhase53WithCurl runs the runbook's PKI commands with curl on
// the real binary: an RSA-4096 root and an intermediate that chains to it,
// published without a token; then a leaf issued through the CLI verifies
// with openssl (skipped only when openssl is missing).
func TestRunbookPhase53WithCurl(t *testing.T) {
	p := startServer(t, "SECRETHUB_DATA_DIR="+t.TempDir())
	base := p.addr
	init := decode(t, curl(t, "-X", "POST", base+"/v1/sys/init", "-d", `{"secret_shares":1,"secret_threshold":1}`))
	root := init["root_token"].(string)
	curl(t, "-X", "POST", base+"/v1/sys/unseal", "-d", `{"key":"`+init["keys"].([]any)[0].(string)+`"}`)

	// 5.3, verbatim but for the host and token.
	rootCA := decode(t, curl(t, "-X", "POST", base+"/v1/pki/ca/root/generate", "-H", "X-Vault-Token: "+root,
		"-d", "@"+runbookBody("phase5.3-root-ca.json")))["data"].(map[string]any)
	interCA := decode(t, curl(t, "-X", "POST", base+"/v1/pki/ca/intermediate/generate", "-H", "X-Vault-Token: "+root,
		"-d", "@"+runbookBody("phase5.3-intermediate-ca.json")))["data"].(map[string]any)
	dir := t.TempDir()
	write := func(name, body string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	rootPEM := write("root.pem", rootCA["certificate"].(string))
	interPEM := write("inter.pem", interCA["certificate"].(string))
	if published := curl(t, base+"/v1/pki/ca/pem"); published != interCA["certificate"].(string) {
		t.Fatalf("ca/pem without a token is not the intermediate: %q", published)
	}

	if _, errOut, code := p.cli(t, "", root, "pki", "role", "create", "core", "--allowed-domain", "secrethub.company.com", "--allow-subdomains"); code != 0 {
		t.Fatalf("pki role create: exit %d: %s", code, errOut)
	}
	out := filepath.Join(dir, "tls")
	if _, errOut, code := p.cli(t, "", root, "pki", "issue", "core", "--common-name", "core-1.secrethub.company.com", "--out-dir", out); code != 0 {
		t.Fatalf("pki issue: exit %d: %s", code, errOut)
	}
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not installed")
	}
	res, err := exec.Command(openssl, "x509", "-in", rootPEM, "-noout", "-text").CombinedOutput()
	if err != nil || !strings.Contains(string(res), "Public-Key: (4096 bit)") || !strings.Contains(string(res), "SecretHub Root CA") {
		t.Fatalf("root CA: %v\n%s", err, res)
	}
	for _, args := range [][]string{
		{"verify", "-CAfile", rootPEM, interPEM},
		{"verify", "-CAfile", rootPEM, "-untrusted", interPEM, filepath.Join(out, "certificate.pem")},
	} {
		if res, err := exec.Command(openssl, args...).CombinedOutput(); err != nil || !strings.Contains(string(res), ": OK") {
			t.Fatalf("openssl %v: %v\n%s", args, err, res)
		}
	}
	key, err := os.ReadFile(filepath.Join(out, "private_key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecretsInLogs(t, p.logs.String(), root, string(key))
}
