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
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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
	expectSynchronousCommit(t, withQueryParameter(storagetest.PostgresURL(t), "synchronous_commit=off"), "local")
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
			if _, err := db.Settings(ctx, "SHOW synchronous_commit", 1); err != nil {
				t.Fatal(err)
			}
			alterDatabase(t, u, "SET synchronous_commit = "+c.later)
			got, err := db.Settings(ctx, "SHOW synchronous_commit", 3) // one kept from before, two new
			if err != nil {
				t.Fatal(err)
			}
			fresh := 0
			for _, level := range got {
				if level == c.want {
					fresh++
				}
			}
			if fresh < 2 || slices.Contains(got, "off") {
				t.Errorf("after the database was set to %s: %v; want %s on the two new connections, off on none", c.later, got, c.want)
			}
		})
	}
}

// fsync off is the one setting no session can change: the server says at
// start that no commit is safe, on a cluster of its own started so.
func TestPostgresWithFsyncOffIsReported(t *testing.T) {
	c := startScratchCluster(t, "-F") // -F: fsync off
	var logs bytes.Buffer
	db, err := storage.Open(context.Background(), storage.Config{DatabaseURL: c.url}, slog.New(slog.NewTextHandler(&logs, nil)))
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

// A configuration reload reaches every session that has not set a value
// itself: postgresql.conf changed to synchronous_commit = off must not
// turn open connections unsynced. Each connection pins the level it found.
func TestPostgresCommitsStayFlushedAcrossAConfigReload(t *testing.T) {
	c := startScratchCluster(t)
	ctx := context.Background()
	db, err := storage.Open(ctx, storage.Config{DatabaseURL: c.url, PoolSize: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got, err := db.Settings(ctx, "SHOW synchronous_commit", 2); err != nil || got[0] != "on" || got[1] != "on" {
		t.Fatalf("before the reload: %v, %v", got, err)
	}
	conf, err := os.OpenFile(filepath.Join(c.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conf.WriteString("\nsynchronous_commit = off\n")
	conf.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.postmaster.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The reload is asynchronous: wait until a new session sees it.
	admin, err := sql.Open("postgres", c.url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		var level string
		if err := admin.QueryRowContext(ctx, "SHOW synchronous_commit").Scan(&level); err != nil {
			t.Fatal(err)
		}
		if level == "off" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the reload never took effect")
		}
		time.Sleep(20 * time.Millisecond)
	}
	got, err := db.Settings(ctx, "SHOW synchronous_commit", 2)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != "on" || got[1] != "on" {
		t.Errorf("after postgresql.conf was reloaded with off: %v; want the open connections still on", got)
	}
}

// scratchCluster is a PostgreSQL cluster of the test's own.
type scratchCluster struct {
	url, data  string
	postmaster *exec.Cmd
}

// startScratchCluster runs initdb into a temporary directory and starts
// postgres on it, as the postgres user, with the server options given.
// The postmaster is the test process's child, killed when the test ends or
// when the test process dies. It needs root and the PostgreSQL 15
// binaries (as CI has); elsewhere it skips.
func startScratchCluster(t *testing.T, opts ...string) *scratchCluster {
	t.Helper()
	bin := "/usr/lib/postgresql/15/bin"
	if os.Geteuid() != 0 {
		t.Skip("a PostgreSQL cluster of the test's own needs root (to run it as postgres)")
	}
	if _, err := os.Stat(bin + "/initdb"); err != nil {
		t.Skipf("no PostgreSQL 15 binaries: %v", err)
	}
	pg, err := user.Lookup("postgres")
	if err != nil {
		t.Skipf("no postgres user: %v", err)
	}
	uid, _ := strconv.ParseUint(pg.Uid, 10, 32)
	gid, _ := strconv.ParseUint(pg.Gid, 10, 32)
	asPostgres := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, Pdeathsig: syscall.SIGKILL}
		return cmd
	}
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	c := &scratchCluster{data: filepath.Join(dir, "data")}
	if out, err := asPostgres("initdb", "-D", c.data, "-A", "trust", "-U", "postgres", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	var logs bytes.Buffer
	c.postmaster = asPostgres("postgres", append([]string{"-D", c.data, "-p", port, "-k", dir, "-c", "listen_addresses=127.0.0.1"}, opts...)...)
	c.postmaster.Stdout, c.postmaster.Stderr = &logs, &logs
	if err := c.postmaster.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { c.postmaster.Wait(); close(exited) }()
	t.Cleanup(func() {
		c.postmaster.Process.Kill()
		<-exited
	})
	c.url = "postgres://postgres@127.0.0.1:" + port + "/postgres?sslmode=disable"
	probe, err := sql.Open("postgres", c.url)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	for deadline := time.Now().Add(30 * time.Second); probe.Ping() != nil; time.Sleep(50 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("postgres exited:\n%s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("postgres did not answer within 30s:\n%s", logs.String())
		}
	}
	return c
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
	got, err := db.Settings(ctx, "SHOW synchronous_commit", 3)
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
