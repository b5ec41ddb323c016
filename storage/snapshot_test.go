package storage_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

func TestSnapshotSaveAndRestoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	src := storagetest.SQLite(t)
	if _, err := src.PutPolicy(ctx, "before", `{"name":"before"}`, now); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "backup.db")
	if err := src.Snapshot(ctx, file); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(file); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot file: %v, mode %v; want mode 0600", err, info.Mode().Perm())
	}
	// Written after the snapshot: must not come back.
	if _, err := src.PutPolicy(ctx, "after", `{"name":"after"}`, now); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	// A data directory with a database of its own, whose write-ahead log
	// must not leak into the restored one.
	old := storagetest.Open(t, storage.Config{DataDir: dir})
	if _, err := old.PutPolicy(ctx, "overwritten", `{"name":"overwritten"}`, now); err != nil {
		t.Fatal(err)
	}
	old.Close()
	if _, err := storage.RestoreSnapshot(ctx, dir, file); err != nil {
		t.Fatal(err)
	}
	restored := storagetest.Open(t, storage.Config{DataDir: dir})
	names, err := restored.PolicyNames(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"before"}) {
		t.Fatalf("restored policies = %v, want [before]", names)
	}
}

// TestRestoreKeepsThePreviousDatabase: the replaced database, with the
// write-ahead log a server killed mid-run leaves behind, is renamed to
// secrethub.db.pre-restore-<time> and opens as the data it held.
func TestRestoreKeepsThePreviousDatabase(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	file := filepath.Join(t.TempDir(), "backup.db")
	if err := storagetest.SQLite(t).Snapshot(ctx, file); err != nil {
		t.Fatal(err)
	}
	// A database still open, its last write in the write-ahead log, copied
	// as a crash would leave it: closing would fold the log in.
	live := t.TempDir()
	old := storagetest.Open(t, storage.Config{DataDir: live})
	if _, err := old.PutPolicy(ctx, "only-before-restore", `{"name":"only-before-restore"}`, now); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		data, err := os.ReadFile(filepath.Join(live, storage.SQLiteFile+suffix))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, storage.SQLiteFile+suffix), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	before := time.Now().UTC().Truncate(time.Second)
	previous, err := storage.RestoreSnapshot(ctx, dir, file)
	if err != nil {
		t.Fatal(err)
	}
	stamp, ok := strings.CutPrefix(filepath.Base(previous), storage.SQLiteFile+".pre-restore-")
	if filepath.Dir(previous) != dir || !ok {
		t.Fatalf("previous database kept as %q, want %s/%s.pre-restore-<time>", previous, dir, storage.SQLiteFile)
	}
	if at, err := time.Parse("20060102T150405Z", stamp); err != nil || at.Before(before) || at.After(time.Now().UTC()) {
		t.Fatalf("pre-restore time %q (%v): want the UTC time of the restore", stamp, err)
	}
	// Opened under its own name again, with its log, it is the old data.
	reopened := t.TempDir()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Rename(previous+suffix, filepath.Join(reopened, storage.SQLiteFile+suffix)); err != nil {
			t.Fatalf("the previous database's %q file: %v", suffix, err)
		}
	}
	names, err := storagetest.Open(t, storage.Config{DataDir: reopened}).PolicyNames(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"only-before-restore"}) {
		t.Fatalf("the kept database holds policies %v, want [only-before-restore]", names)
	}
	// And nothing of it leaks into the restored database.
	names, err = storagetest.Open(t, storage.Config{DataDir: dir}).PolicyNames(ctx)
	if err != nil || len(names) != 0 {
		t.Fatalf("restored policies = %v (%v), want none", names, err)
	}
}

// TestRestoreAsRootGivesTheDatabaseToItsOwner: root runs the restore (as
// `systemctl stop` then restore implies) on data the server's user owns;
// the server, running as that user, must be able to open what it finds.
func TestRestoreAsRootGivesTheDatabaseToItsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown to another user needs root; TestDecideOwner covers the decision")
	}
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "backup.db")
	if err := storagetest.SQLite(t).Snapshot(ctx, file); err != nil {
		t.Fatal(err)
	}
	owned := func(t *testing.T, path string, uid, gid int, mode os.FileMode) {
		t.Helper()
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		st := info.Sys().(*syscall.Stat_t)
		if int(st.Uid) != uid || int(st.Gid) != gid || info.Mode().Perm() != mode {
			t.Fatalf("%s: uid %d gid %d mode %04o; want uid %d gid %d mode %04o",
				filepath.Base(path), st.Uid, st.Gid, info.Mode().Perm(), uid, gid, mode)
		}
	}
	t.Run("the restored file takes the replaced database's owner and mode", func(t *testing.T) {
		dir := t.TempDir()
		storagetest.Open(t, storage.Config{DataDir: dir}).Close()
		db := filepath.Join(dir, storage.SQLiteFile)
		if err := os.Chown(db, 4242, 4343); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(db, 0o640); err != nil {
			t.Fatal(err)
		}
		if _, err := storage.RestoreSnapshot(ctx, dir, file); err != nil {
			t.Fatal(err)
		}
		owned(t, db, 4242, 4343, 0o640)
	})
	t.Run("without a database the data directory's owner is taken", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Chown(dir, 4242, 4343); err != nil {
			t.Fatal(err)
		}
		if _, err := storage.RestoreSnapshot(ctx, dir, file); err != nil {
			t.Fatal(err)
		}
		owned(t, filepath.Join(dir, storage.SQLiteFile), 4242, 4343, 0o600)
		owned(t, filepath.Join(dir, "secrethub.lock"), 4242, 4343, 0o600)
	})
}

func TestSnapshotRefusals(t *testing.T) {
	ctx := context.Background()
	t.Run("saving over an existing file is refused", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "exists.db")
		if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := storagetest.SQLite(t).Snapshot(ctx, file); err == nil || !strings.Contains(err.Error(), "already exists") {
			t.Fatalf("Snapshot over a file: %v", err)
		}
		if data, _ := os.ReadFile(file); string(data) != "keep me" {
			t.Fatal("the existing file was changed")
		}
	})
	t.Run("PostgreSQL points at pg_dump", func(t *testing.T) {
		err := storagetest.Postgres(t).Snapshot(ctx, filepath.Join(t.TempDir(), "pg.db"))
		if !errors.Is(err, storage.ErrNotEmbedded) || !strings.Contains(err.Error(), "pg_dump") {
			t.Fatalf("Snapshot on PostgreSQL: %v", err)
		}
	})
	t.Run("restoring while a server holds the data directory is refused", func(t *testing.T) {
		dir := t.TempDir()
		file := filepath.Join(t.TempDir(), "backup.db")
		if err := storagetest.SQLite(t).Snapshot(ctx, file); err != nil {
			t.Fatal(err)
		}
		unlock, err := storage.LockDataDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer unlock()
		if _, err := storage.RestoreSnapshot(ctx, dir, file); !errors.Is(err, storage.ErrDataDirInUse) {
			t.Fatalf("RestoreSnapshot while locked: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, storage.SQLiteFile)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a refused restore wrote the database: %v", err)
		}
	})
	t.Run("a file that is not a SecretHub database is refused", func(t *testing.T) {
		for name, content := range map[string]string{"text": "not a database", "empty": ""} {
			file := filepath.Join(t.TempDir(), name)
			if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if _, err := storage.RestoreSnapshot(ctx, dir, file); err == nil {
				t.Fatalf("restoring a %s file succeeded", name)
			}
			if _, err := os.Stat(filepath.Join(dir, storage.SQLiteFile)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a refused restore wrote the database: %v", err)
			}
		}
	})
}

func TestDataDirLockIsExclusive(t *testing.T) {
	dir := t.TempDir()
	unlock, err := storage.LockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := storage.LockDataDir(dir); !errors.Is(err, storage.ErrDataDirInUse) {
		t.Fatalf("second lock: %v, want ErrDataDirInUse", err)
	}
	unlock()
	again, err := storage.LockDataDir(dir)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	again()
}
