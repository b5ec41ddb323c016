// Package storagetest gives tests real databases of both engines: a fresh
// PostgreSQL database (created on the server named by
// SECRETHUB_TEST_DATABASE_URL and dropped afterwards) or a fresh SQLite file.
// Nothing is mocked.
package storagetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"github.com/secrethub/secrethub/storage"
)

// DefaultAdminURL is the local PostgreSQL 15 every development machine and CI runs.
const DefaultAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL is the server tests create their databases on.
func AdminURL() string {
	if u := os.Getenv("SECRETHUB_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultAdminURL
}

// Engines runs fn as a subtest once per engine, each with its own fresh,
// migrated database.
func Engines(t *testing.T, fn func(t *testing.T, db *storage.DB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t)) })
}

// EngineConfigs runs fn once per engine with a storage.Config pointing at a
// fresh, empty database (not migrated), for tests that start the server.
func EngineConfigs(t *testing.T, fn func(t *testing.T, cfg storage.Config)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, storage.Config{DataDir: t.TempDir()}) })
	t.Run("postgres", func(t *testing.T) { fn(t, storage.Config{DatabaseURL: PostgresURL(t)}) })
}

// SQLite opens a migrated SQLite database in a temporary directory.
func SQLite(t testing.TB) *storage.DB {
	t.Helper()
	return Open(t, storage.Config{DataDir: t.TempDir()})
}

// Postgres creates a database, migrates it, and drops it when the test ends.
func Postgres(t testing.TB) *storage.DB {
	t.Helper()
	return Open(t, storage.Config{DatabaseURL: PostgresURL(t)})
}

// Open opens and migrates the database cfg names, closing it when the test
// ends. Opening the same cfg again is how a test restarts a node.
func Open(t testing.TB, cfg storage.Config) *storage.DB {
	t.Helper()
	ctx := context.Background()
	cfg.ConnectTimeout = 5 * time.Second
	db, err := storage.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("open %s: %v", cfg.DataDir, err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.MigrateUp(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}

// PostgresURL creates an empty database and returns its URL; the database
// is dropped (connections forced out) when the test ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	admin, err := sql.Open("postgres", AdminURL())
	if err != nil {
		t.Fatalf("SECRETHUB_TEST_DATABASE_URL: %v", err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		t.Fatalf("PostgreSQL at %s is not answering (start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start): %v",
			AdminURL(), err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "secrethub_test_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		drop, err := sql.Open("postgres", AdminURL())
		if err != nil {
			return
		}
		defer drop.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := drop.ExecContext(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Logf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(AdminURL())
	if err != nil {
		t.Fatalf("SECRETHUB_TEST_DATABASE_URL is not a URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}
