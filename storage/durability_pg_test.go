package storage_test

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"net/url"
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

func TestWithParameterOverridesTheURL(t *testing.T) {
	for dsn, want := range map[string]string{
		"postgres://db/sh?synchronous_commit=off&sslmode=disable": "postgres://db/sh?sslmode=disable&synchronous_commit=local",
		"host=db dbname=sh synchronous_commit=off":                "host=db dbname=sh synchronous_commit=off synchronous_commit=local",
	} {
		if got := storage.WithParameter(dsn, "synchronous_commit", "local"); got != want {
			t.Errorf("%s:\n got %s\nwant %s", dsn, got, want)
		}
	}
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
