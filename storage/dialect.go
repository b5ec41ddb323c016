package storage

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"

	"github.com/lib/pq"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Sentinel errors callers branch on. Every error leaving this package wraps
// one of them or is a programming error; none carries SQL text.
var (
	// ErrNotFound means the row asked for does not exist.
	ErrNotFound = errors.New("storage: not found")
	// ErrConflict means a uniqueness constraint or a check-and-set failed.
	ErrConflict = errors.New("storage: conflict")
	// ErrUnavailable means the database could not be reached or is busy;
	// retrying later may succeed.
	ErrUnavailable = errors.New("storage: database unavailable")
	// ErrInvalid means the database refused a value: a number out of its
	// column's range or text it cannot hold (PostgreSQL refuses NUL). Domain
	// checks should catch these first; this is the backstop.
	ErrInvalid = errors.New("storage: value cannot be stored")
	// ErrCheckpointTaken means an audit batch's events were stored but not
	// its checkpoint: a different row already stands at the checkpoint's
	// node, seq and kind (one the writer did not write).
	ErrCheckpointTaken = errors.New("storage: a different row stands where the checkpoint goes")
)

// classify wraps driver errors into the package's sentinels, dropping the
// driver's text where it could carry statement details.
func classify(err error) error {
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalid) ||
		errors.Is(err, ErrCheckpointTaken) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		switch code := string(pqErr.Code); {
		case code == "23505": // unique_violation
			return fmt.Errorf("%w: %s", ErrConflict, pqErr.Constraint)
		case code == "23503": // foreign_key_violation: the referenced row is gone
			return fmt.Errorf("%w: %s", ErrNotFound, pqErr.Constraint)
		case strings.HasPrefix(code, "22"): // data exception: out of range, bad encoding
			return fmt.Errorf("%w: %s", ErrInvalid, pqErr.Code.Name())
		case strings.HasPrefix(code, "08"), // connection exception
			strings.HasPrefix(code, "53"),    // insufficient resources
			strings.HasPrefix(code, "57"),    // operator intervention (shutdown, cancel)
			code == "40001", code == "40P01": // serialization failure, deadlock
			return fmt.Errorf("%w: %s", ErrUnavailable, pqErr.Code.Name())
		case code == "42501", // insufficient_privilege: the store refuses writes
			code == "P0001": // raise_exception: a trigger refuses them
			// The operator's own words (a grant, a trigger), for the log:
			// which table refuses, and why. Callers see only "unavailable".
			return fmt.Errorf("%w: %s: %s", ErrUnavailable, pqErr.Code.Name(), clip(pqErr.Message, 200))
		}
		return fmt.Errorf("storage: database error %s", pqErr.Code.Name())
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		switch liteErr.Code() {
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("%w: sqlite foreign key", ErrNotFound)
		case sqlite3.SQLITE_CONSTRAINT_TRIGGER: // a trigger refuses the write: not a clash of keys
			return fmt.Errorf("%w: a trigger refused the write", ErrUnavailable)
		}
		switch liteErr.Code() & 0xff {
		case sqlite3.SQLITE_CONSTRAINT:
			return fmt.Errorf("%w: sqlite constraint", ErrConflict)
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
			sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM:
			return fmt.Errorf("%w: sqlite code %d", ErrUnavailable, liteErr.Code())
		}
		return fmt.Errorf("storage: sqlite error code %d", liteErr.Code())
	}
	if isTransient(err) {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}

// isTransient reports whether err looks like the database being unreachable
// rather than a bad request.
func isTransient(err error) bool {
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		code := string(pqErr.Code)
		// 57P03 cannot_connect_now (starting up), 08* connection errors,
		// 53300 too_many_connections.
		return strings.HasPrefix(code, "08") || code == "57P03" || code == "53300"
	}
	return false
}

// describePostgresURL returns host:port/dbname for logs and errors.
func describePostgresURL(raw string) (string, error) {
	if strings.HasPrefix(raw, "postgres://") || strings.HasPrefix(raw, "postgresql://") {
		u, err := url.Parse(raw)
		if err != nil {
			return "", errors.New("storage: DATABASE_URL is not a valid URL")
		}
		host := u.Host
		if host == "" {
			host = "localhost"
		}
		return host + u.Path, nil
	}
	// key=value connection strings: report host and dbname only.
	var host, name string
	for _, kv := range strings.Fields(raw) {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "host":
			host = v
		case "dbname":
			name = v
		}
	}
	if host == "" && name == "" {
		return "", errors.New("storage: DATABASE_URL must be a postgres:// URL or a key=value connection string")
	}
	return host + "/" + name, nil
}

// redact removes the password of a connection URL from a message.
func redact(msg, rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "****")
		}
	}
	return msg
}

// prefixUpperBound returns the smallest string greater than every string
// that starts with prefix, so `path >= prefix AND path < bound` selects a
// prefix through the index. ok is false when no bound exists (all 0xff).
func prefixUpperBound(prefix string) (bound string, ok bool) {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}
