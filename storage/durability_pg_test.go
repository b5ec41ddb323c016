package storage_test

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// A role or database with synchronous_commit off would answer commits
// before they are on disk, and fail-closed auditing would serve requests
// whose events a PostgreSQL crash takes back: the server's connections
// raise it to local. A stronger setting is the operator's and is kept;
// the default (on) is left alone.
func TestPostgresCommitsAreFlushedWhateverTheDatabaseSays(t *testing.T) {
	for set, want := range map[string]string{
		"":             "on",
		"off":          "local",
		"remote_apply": "remote_apply",
		"remote_write": "remote_write",
		"local":        "local",
	} {
		t.Run("set="+set, func(t *testing.T) {
			u := storagetest.PostgresURL(t)
			if set != "" {
				alterDatabase(t, u, "SET synchronous_commit = "+set)
			}
			logs := expectSynchronousCommit(t, u, want)
			warned := strings.Contains(logs, "synchronous_commit is off")
			if warned != (set == "off") {
				t.Errorf("database set to %q: warned = %v; log:\n%s", set, warned, logs)
			}
		})
	}
}

// The same when DATABASE_URL itself asks for off (lib/pq passes the
// parameter on to the server).
func TestPostgresCommitsAreFlushedWhateverTheURLSays(t *testing.T) {
	u, sep := storagetest.PostgresURL(t), "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	expectSynchronousCommit(t, u+sep+"synchronous_commit=off", "local")
}

// The setting is read on every connection the pool opens, not once at
// start: a database set to off while the server runs is met as connections
// are replaced, and one raised from off later is taken as it then is.
func TestPostgresCommitSettingIsReadOnEveryNewConnection(t *testing.T) {
	for _, c := range []struct{ start, later, want string }{
		{"", "off", "local"},
		{"off", "remote_apply", "remote_apply"},
	} {
		t.Run(c.start+"→"+c.later, func(t *testing.T) {
			ctx := context.Background()
			u := storagetest.PostgresURL(t)
			if c.start != "" {
				alterDatabase(t, u, "SET synchronous_commit = "+c.start)
			}
			db, err := storage.Open(ctx, storage.Config{DatabaseURL: u, PoolSize: 3}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Settings(ctx, "synchronous_commit", 1); err != nil {
				t.Fatal(err)
			}
			alterDatabase(t, u, "SET synchronous_commit = "+c.later)
			got, err := db.Settings(ctx, "synchronous_commit", 3) // one kept from before, two new
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(strings.Join(got, " ")+" ", c.want+" "); n < 2 || slices.Contains(got, "off") {
				t.Errorf("after the database was set to %s: %v; want %s on the two new connections, off on none", c.later, got, c.want)
			}
		})
	}
}

// fsync off is the one setting no session can change: the server says at
// start that no commit is safe, on a cluster of its own started so.
func TestPostgresWithFsyncOffIsReported(t *testing.T) {
	u := scratchCluster(t, "-F") // -F: fsync off
	var logs bytes.Buffer
	db, err := storage.Open(context.Background(), storage.Config{DatabaseURL: u}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if !strings.Contains(logs.String(), "fsync off") {
		t.Errorf("no warning for fsync off; log:\n%s", logs.String())
	}
	if strings.Contains(expectSynchronousCommit(t, storagetest.PostgresURL(t), "on"), "fsync off") {
		t.Error("the warning came for the test server, whose fsync is on")
	}
}

// scratchCluster starts a PostgreSQL cluster of its own (initdb into a
// temporary directory, run as the postgres user) with the server options
// given, and returns its URL; it is stopped when the test ends. It needs
// root and the PostgreSQL 15 binaries (as CI has); elsewhere it skips.
func scratchCluster(t *testing.T, opts ...string) string {
	t.Helper()
	bin := "/usr/lib/postgresql/15/bin"
	if os.Geteuid() != 0 {
		t.Skip("starting a PostgreSQL cluster of its own needs root (to run it as postgres)")
	}
	if _, err := os.Stat(bin + "/initdb"); err != nil {
		t.Skipf("no PostgreSQL 15 binaries: %v", err)
	}
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command("runuser", append([]string{"-u", "postgres", "--", bin + "/" + name}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
	}
	data := filepath.Join(dir, "data")
	run("initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	server := append([]string{"-p", port, "-k", dir, "-c", "listen_addresses=127.0.0.1"}, opts...)
	run("pg_ctl", "start", "-w", "-D", data, "-l", filepath.Join(dir, "log"), "-o", strings.Join(server, " "))
	t.Cleanup(func() { run("pg_ctl", "stop", "-m", "immediate", "-D", data) })
	return "postgres://postgres@127.0.0.1:" + port + "/postgres?sslmode=disable"
}

// expectSynchronousCommit opens dbURL with a pool of three and checks the
// setting on three connections held at once; it returns what Open logged.
func expectSynchronousCommit(t *testing.T, dbURL, want string) string {
	t.Helper()
	ctx := context.Background()
	var logs bytes.Buffer
	db, err := storage.Open(ctx, storage.Config{DatabaseURL: dbURL, PoolSize: 3}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.Settings(ctx, "synchronous_commit", 3)
	if err != nil {
		t.Fatal(err)
	}
	for i, level := range got {
		if level != want {
			t.Errorf("connection %d: synchronous_commit = %s; want %s", i, level, want)
		}
	}
	return logs.String()
}

// alterDatabase runs ALTER DATABASE <the URL's database> clause as the
// test server's administrator.
func alterDatabase(t *testing.T, dbURL, clause string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("postgres", storagetest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("ALTER DATABASE " + strings.TrimPrefix(u.Path, "/") + " " + clause); err != nil {
		t.Fatal(err)
	}
}
