package storage

import (
	"context"
	"runtime"
	"testing"

	"modernc.org/sqlite"
)

// Every SQLite connection must sync each commit (synchronous=FULL, 2): the
// audit log promises an event is durable before its request is served, and
// WAL mode's NORMAL would let a power cut take back answered commits.
// Several connections are held at once so each one the pool opens is seen.
func TestSQLiteCommitsAreSyncedOnEveryConnection(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, Config{DataDir: t.TempDir(), PoolSize: 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for pragma, want := range map[string]string{"synchronous": "2", "journal_mode": "wal"} { // 2: FULL
		got, err := db.Settings(ctx, "PRAGMA "+pragma, 4)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range got {
			if v != want {
				t.Errorf("connection %d: %s = %s; want %s", i, pragma, v, want)
			}
		}
	}
}

// SQLite syncs with fdatasync once a database is open (on Linux, where
// the switch exists): the library's default, fsync, also flushes the
// file's timestamps, through the journal on ext4.
func TestSQLiteSyncsWithFdatasync(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the switch is honored on Linux (and some BSDs); tested there")
	}
	db, err := Open(context.Background(), Config{DataDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if !sqlite.FdatasyncEnabled() {
		t.Fatal("SQLite commits with fsync")
	}
}
