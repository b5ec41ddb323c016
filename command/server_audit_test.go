package command

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secrethub/secrethub/client"
)

// readAuditLines parses the audit file's JSON lines.
func readAuditLines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for i, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", i+1, err, line)
		}
		out = append(out, m)
	}
	return out
}

func TestServerCommandWritesTheAuditFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	rs := startServerCommand(t, map[string]string{"SECRETHUB_AUDIT_FILE": path}, "--dev", "-listen-addr=127.0.0.1:0")
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("audit file: %v, %v", info, err)
	}
	c, err := client.New(rs.url(), rs.rootToken(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.KV().Put(ctx, "app/db", map[string]any{"password": "file-secret-value"}, client.KVPutOptions{}); err != nil {
		t.Fatal(err)
	}
	// Lines arrive while the server runs, as each batch commits.
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if bytes.Contains(b, []byte(`"path":"/v1/secrets/static/app/db"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the write's event did not reach the file:\n%s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := c.KV().Get(ctx, "app/db", 0); err != nil {
		t.Fatal(err)
	}
	rs.shutdown(t)

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("file-secret-value")) || bytes.Contains(b, []byte(rs.rootToken(t))) {
		t.Fatalf("the audit file carries a secret in the clear:\n%s", b)
	}
	events, outcomes := map[float64]map[string]any{}, map[float64]bool{}
	for _, l := range readAuditLines(t, b) {
		switch l["type"] {
		case "event":
			events[l["seq"].(float64)] = l
			if _, ok := l["status"]; ok {
				outcomes[l["seq"].(float64)] = true
			}
		case "outcome":
			outcomes[l["seq"].(float64)] = true
		default:
			t.Fatalf("a line of type %v", l["type"])
		}
	}
	if len(events) != 2 {
		t.Fatalf("%d events, want the write and the read", len(events))
	}
	// Shutdown stored every outcome, the read's included, after the
	// HTTP server had stopped.
	for seq, e := range events {
		if !outcomes[seq] {
			t.Fatalf("no outcome for %v %v", e["operation"], e["path"])
		}
	}
	mustContain(t, "logs", rs.console.err.String(), `msg="secrethub server stopped"`)
}

func TestServerCommandWritesAuditLinesToStdout(t *testing.T) {
	rs := startServerCommand(t, nil, "-audit-file=-", "-listen-addr=127.0.0.1:0", "-data-dir="+t.TempDir())
	resp, err := http.Get(rs.url() + "/v1/sys/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	rs.shutdown(t)
	lines := readAuditLines(t, rs.console.out.Bytes())
	if len(lines) == 0 || lines[0]["type"] != "event" || lines[0]["path"] != "/v1/sys/health" {
		t.Fatalf("stdout: %s", rs.console.out)
	}
}

func TestServerCommandRefusesAnAuditFileOthersCanRead(t *testing.T) {
	cleanEnv(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(path, []byte("earlier line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	c := newConsole("")
	code := run(context.Background(), []string{"server", "--audit-file=" + path, "--listen-addr=127.0.0.1:0", "--data-dir=" + dataDir}, c.io)
	logs := strings.TrimSpace(c.err.String())
	if code != 1 || strings.Count(logs, "\n") != 0 {
		t.Fatalf("exit %d, want 1 and one log line:\n%s", code, logs)
	}
	mustContain(t, "log line", logs, "level=ERROR", "cannot use the audit file", "mode 0644", "chmod 600")
	info, err := os.Stat(path)
	if b, _ := os.ReadFile(path); err != nil || info.Mode().Perm() != 0o644 || string(b) != "earlier line\n" {
		t.Fatalf("the file was changed: %v %q", info.Mode(), b)
	}
	if entries, _ := os.ReadDir(dataDir); len(entries) != 0 {
		t.Fatalf("the database was touched: %v", entries)
	}
}

// A FIFO is not a file the audit sink can keep: refused at once, whether
// or not anything reads it (opening one nobody reads used to wait for ever,
// before the server listened or logged a line).
func TestServerCommandRefusesAFIFOAsTheAuditFileAtOnce(t *testing.T) {
	cleanEnv(t)
	path := filepath.Join(t.TempDir(), "audit.fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	done := make(chan struct{})
	var (
		code int
		logs string
	)
	go func() {
		defer close(done)
		c := newConsole("")
		code = run(context.Background(), []string{"server", "--audit-file=" + path, "--listen-addr=127.0.0.1:0", "--data-dir=" + t.TempDir()}, c.io)
		logs = c.err.String()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the server is still opening a FIFO nobody reads after 10 s")
	}
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, logs)
	}
	mustContain(t, "log line", logs, "level=ERROR", "cannot use the audit file", path)
}

func TestServerSettingsAuditFile(t *testing.T) {
	cfg := writeFile(t, "server.yaml", "secrethub_audit_file: /from/file.jsonl\n")
	for _, tt := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, nil, ""},
		{nil, []string{"--config", cfg}, "/from/file.jsonl"},
		{map[string]string{"SECRETHUB_AUDIT_FILE": "-"}, []string{"--config", cfg}, "-"},
		{map[string]string{"SECRETHUB_AUDIT_FILE": "-"}, []string{"-audit-file=/from/flag.jsonl"}, "/from/flag.jsonl"},
	} {
		s, err := resolveServerSettings(t, tt.env, tt.args...)
		if err != nil || s.AuditFile != tt.want {
			t.Fatalf("env %v args %v: %q, %v; want %q", tt.env, tt.args, s.AuditFile, err, tt.want)
		}
	}
	if !strings.Contains(settingsHelp(), "SECRETHUB_AUDIT_FILE") {
		t.Fatal("the setting is not in the help")
	}
}
