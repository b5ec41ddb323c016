package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// ErrNotEmbedded refuses snapshots of PostgreSQL, which has its own tools.
var ErrNotEmbedded = errors.New("storage: snapshots are of the embedded SQLite store; back PostgreSQL up with pg_dump $DATABASE_URL (runbook: Backup Procedures)")

// ErrDataDirInUse means a server holds the data directory's lock.
var ErrDataDirInUse = errors.New("a secrethub server is running on this data directory")

// lockFile is the file in the data directory a server holds a lock on.
const lockFile = "secrethub.lock"

// LockDataDir takes the data directory's exclusive lock, held by a running
// server (so a second server, or a restore, is refused while it runs) and
// released by unlock or when the process ends, however it ends.
func LockDataDir(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("storage: creating data directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("storage: opening %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (%s is locked)", ErrDataDirInUse, path)
		}
		return nil, fmt.Errorf("storage: locking %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// Snapshot writes a consistent copy of the embedded database to path while
// it stays in use (VACUUM INTO reads one snapshot of the database). The
// file is created with mode 0600 and must not exist yet; it holds only
// what the database holds: secrets stay encrypted by the barrier.
func (db *DB) Snapshot(ctx context.Context, path string) error {
	if db.engine != SQLite {
		return ErrNotEmbedded
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("storage: %s already exists; name a new file", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".snapshot-*")
	if err != nil {
		return fmt.Errorf("storage: creating the snapshot: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	// VACUUM INTO fills an empty file, keeping its 0600 mode.
	if _, err := db.sql.ExecContext(ctx, "VACUUM INTO ?", tmp.Name()); err != nil {
		return fmt.Errorf("storage: writing the snapshot: %w", err)
	}
	if err := syncFile(tmp.Name()); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("storage: naming the snapshot %s: %w", path, err)
	}
	return nil
}

// RestoreSnapshot replaces the embedded database in dataDir with the
// snapshot file, which must be a sound SecretHub database. No server may
// run on dataDir meanwhile (its lock is taken). The replacement is atomic:
// the new file is complete on disk before it takes the old one's name.
// The restored data unseals with the keys it was initialized with. The
// new file gets the owner and mode of the database it replaces (of the
// data directory, and 0600, when there is none): run as root, it is
// chowned; run as another user than that owner, the restore is refused
// with ErrWrongOwner before anything changes. The replaced database is
// not deleted: previous names where it was kept (see moveAside), "" when
// dataDir had none.
func RestoreSnapshot(ctx context.Context, dataDir, file string) (previous string, err error) {
	unlock, err := LockDataDir(dataDir)
	if err != nil {
		return "", err
	}
	defer unlock()
	if err := checkSnapshot(ctx, file); err != nil {
		return "", err
	}
	target := filepath.Join(dataDir, SQLiteFile)
	owner, mode, err := restoredOwner(dataDir, target)
	if err != nil {
		return "", err
	}
	// Run as root, the restore must leave nothing the server, running as
	// the data's owner, cannot open: the lock file is new when the data
	// directory is.
	if os.Geteuid() == 0 {
		if err := os.Chown(filepath.Join(dataDir, lockFile), owner.uid, owner.gid); err != nil {
			return "", fmt.Errorf("storage: restoring: %w", err)
		}
	}
	restored, err := copySnapshot(dataDir, file, owner, mode)
	if err != nil {
		return "", err
	}
	defer os.Remove(restored)
	// The old database, with the write-ahead log that must not be replayed
	// into the restored one, is kept whole under another name.
	previous, err = moveAside(target, time.Now())
	if err != nil {
		return "", err
	}
	if err := syncFile(dataDir); err != nil {
		return previous, err
	}
	if err := os.Rename(restored, target); err != nil {
		return previous, fmt.Errorf("storage: replacing %s (the previous database is %s): %w", target, previous, err)
	}
	return previous, syncFile(dataDir)
}

// copySnapshot copies file to a new temporary file in dataDir, owned by
// owner with mode, complete on disk, and returns its name.
func copySnapshot(dataDir, file string, owner fileOwner, mode os.FileMode) (string, error) {
	tmp, err := os.CreateTemp(dataDir, ".restore-*")
	if err != nil {
		return "", fmt.Errorf("storage: restoring: %w", err)
	}
	err = giveOwner(tmp, owner, dataDir)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = copyFrom(tmp, file)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		if errors.Is(err, ErrWrongOwner) {
			return "", err
		}
		return "", fmt.Errorf("storage: copying the snapshot into %s: %w", dataDir, err)
	}
	return tmp.Name(), nil
}

// copyFrom appends the content of the file named src to dst.
func copyFrom(dst io.Writer, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(dst, f)
	return err
}

// sqliteFileSuffixes name a SQLite database's files: the database, its
// write-ahead log and the log's shared-memory index.
var sqliteFileSuffixes = []string{"", "-wal", "-shm"}

// moveAside renames the database target and its -wal and -shm files, those
// that exist, to target.pre-restore-<UTC time> (and its -wal, -shm), which
// opens as the database did. It returns that name, "" when there was
// nothing to move. A rename that fails undoes the ones before it.
func moveAside(target string, now time.Time) (string, error) {
	kept := target + ".pre-restore-" + now.UTC().Format("20060102T150405Z")
	var present []string
	for _, suffix := range sqliteFileSuffixes {
		if _, err := os.Lstat(kept + suffix); err == nil {
			return "", fmt.Errorf("storage: %s already exists; restore again in a second", kept+suffix)
		}
		switch _, err := os.Lstat(target + suffix); {
		case err == nil:
			present = append(present, suffix)
		case !errors.Is(err, os.ErrNotExist):
			return "", fmt.Errorf("storage: %w", err)
		}
	}
	if len(present) == 0 {
		return "", nil
	}
	for i, suffix := range present {
		if err := os.Rename(target+suffix, kept+suffix); err != nil {
			for _, done := range present[:i] {
				_ = os.Rename(kept+done, target+done)
			}
			return "", fmt.Errorf("storage: keeping the previous database as %s: %w", kept, err)
		}
	}
	return kept, nil
}

// restoredOwner is the owner and mode the restored database takes: those
// of the database it replaces, else the data directory's owner and 0600.
func restoredOwner(dataDir, target string) (fileOwner, os.FileMode, error) {
	mode := os.FileMode(0o600)
	info, err := os.Stat(target)
	if errors.Is(err, os.ErrNotExist) {
		info, err = os.Stat(dataDir)
	} else if err == nil {
		mode = info.Mode().Perm()
	}
	if err != nil {
		return fileOwner{}, 0, fmt.Errorf("storage: restoring: %w", err)
	}
	owner, err := ownerOf(info)
	return owner, mode, err
}

// checkSnapshot opens file read-only and checks it is an intact SQLite
// database carrying SecretHub's schema.
func checkSnapshot(ctx context.Context, file string) error {
	if _, err := os.Stat(file); err != nil {
		return fmt.Errorf("storage: snapshot: %w", err)
	}
	q := url.Values{}
	q.Set("mode", "ro")
	dsn := (&url.URL{Scheme: "file", OmitHost: true, Path: filepath.ToSlash(file), RawQuery: q.Encode()}).String()
	sdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return fmt.Errorf("storage: opening the snapshot %s: %w", file, err)
	}
	defer sdb.Close()
	var verdict string
	if err := sdb.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&verdict); err != nil {
		return fmt.Errorf("storage: %s is not a SQLite database: %w", file, err)
	}
	if verdict != "ok" {
		return fmt.Errorf("storage: the snapshot %s is damaged: %s", file, verdict)
	}
	var tables int
	if err := sdb.QueryRowContext(ctx,
		"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('schema_migrations', 'seal_config')").Scan(&tables); err != nil || tables != 2 {
		return fmt.Errorf("storage: %s is not a SecretHub snapshot (no SecretHub schema)", file)
	}
	return nil
}

// syncFile flushes a file or directory to disk.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("storage: syncing %s: %w", path, err)
	}
	return nil
}
