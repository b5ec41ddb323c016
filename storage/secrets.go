package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Secret is the per-path record of a static secret (its metadata).
type Secret struct {
	ID             int64
	Path           string
	CurrentVersion int // 0 when only metadata was written
	MaxVersions    int // 0: the server default
	CASRequired    bool
	CustomMetadata map[string]string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// SecretVersion is one version of a static secret. Ciphertext is the
// barrier-sealed value, nil once destroyed (and not loaded by metadata reads).
type SecretVersion struct {
	Version    int
	Ciphertext []byte
	CreatedAt  time.Time
	DeletedAt  time.Time // zero: not deleted
	Destroyed  bool
}

// ErrCASRequired means the secret demands a check-and-set version and the
// write did not give one.
var ErrCASRequired = errors.New("storage: check-and-set parameter required for this secret")

// CASMismatchError reports a check-and-set version that is not the current one.
type CASMismatchError struct{ Current int }

func (e *CASMismatchError) Error() string {
	return fmt.Sprintf("storage: check-and-set mismatch, current version is %d", e.Current)
}

// Unwrap makes a mismatch match ErrConflict.
func (e *CASMismatchError) Unwrap() error { return ErrConflict }

// PutSecret describes a new version to write.
type PutSecret struct {
	Path string
	// CAS, when set, is the version the caller believes is current (0 for
	// "must not exist yet").
	CAS *int
	Now time.Time
	// DefaultMaxVersions applies when the secret sets no max_versions.
	DefaultMaxVersions int
	// Seal encrypts the value for the version number the write receives;
	// the version is part of the encryption's additional data.
	Seal func(version int) ([]byte, error)
	// MustExist makes the write fail with ErrNotFound instead of creating
	// the secret.
	MustExist bool
}

// PutResult is what a write reports back.
type PutResult struct {
	Version        int
	CustomMetadata map[string]string
}

// PutSecretVersion writes a new version in one transaction: bump the
// version (checking CAS atomically), store the ciphertext, prune versions
// beyond the limit.
func (db *DB) PutSecretVersion(ctx context.Context, p PutSecret) (PutResult, error) {
	var res PutResult
	err := db.inTx(ctx, func(tx querier) error {
		var (
			id          int64
			version     int
			maxVersions int
			casRequired bool
			custom      string
		)
		now := utc(p.Now)
		bump := `
			INSERT INTO secrets (path, current_version, max_versions, cas_required, custom_metadata, created_at, updated_at)
			VALUES ($1, 1, 0, FALSE, '{}', $2, $2)
			ON CONFLICT (path) DO UPDATE SET current_version = secrets.current_version + 1, updated_at = excluded.updated_at
			RETURNING id, current_version, max_versions, cas_required, custom_metadata`
		if p.MustExist {
			bump = `
			UPDATE secrets SET current_version = current_version + 1, updated_at = $2 WHERE path = $1
			RETURNING id, current_version, max_versions, cas_required, custom_metadata`
		}
		err := tx.QueryRowContext(ctx, bump, p.Path, now).Scan(&id, &version, &maxVersions, &casRequired, &custom)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		res.Version = version
		if res.CustomMetadata, err = customMetadata(custom); err != nil {
			return err
		}
		previous := version - 1
		switch {
		case p.CAS != nil && *p.CAS != previous:
			return &CASMismatchError{Current: previous}
		case p.CAS == nil && casRequired:
			return ErrCASRequired
		}
		ct, err := p.Seal(version)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO secret_versions (secret_id, version, ciphertext, created_at, destroyed) VALUES ($1, $2, $3, $4, FALSE)`,
			id, version, ct, now); err != nil {
			return err
		}
		keep := maxVersions
		if keep <= 0 {
			keep = p.DefaultMaxVersions
		}
		if keep > 0 && version > keep {
			_, err = tx.ExecContext(ctx, `DELETE FROM secret_versions WHERE secret_id = $1 AND version <= $2`, id, version-keep)
		}
		return err
	})
	if err != nil {
		return PutResult{}, err
	}
	return res, nil
}

// SecretVersionRead is one version together with its secret's current
// version and custom metadata.
type SecretVersionRead struct {
	CurrentVersion int
	CustomMetadata map[string]string
	SecretVersion
}

func customMetadata(raw string) (map[string]string, error) {
	var m map[string]string
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return nil, fmt.Errorf("storage: secret has corrupt custom metadata: %w", err)
	}
	return m, nil
}

// GetSecretVersion reads one version (0: the current one) in one round trip.
func (db *DB) GetSecretVersion(ctx context.Context, path string, version int) (SecretVersionRead, error) {
	var (
		r       SecretVersionRead
		deleted sql.NullTime
		custom  string
	)
	err := db.q().QueryRowContext(ctx, `
		SELECT s.current_version, s.custom_metadata, v.version, v.ciphertext, v.created_at, v.deleted_at, v.destroyed
		FROM secrets s JOIN secret_versions v ON v.secret_id = s.id
		WHERE s.path = $1 AND v.version = CASE WHEN $2 = 0 THEN s.current_version ELSE $2 END`,
		path, version,
	).Scan(&r.CurrentVersion, &custom, &r.Version, &r.Ciphertext, &r.CreatedAt, &deleted, &r.Destroyed)
	if err != nil {
		return SecretVersionRead{}, notFound(err)
	}
	r.CreatedAt, r.DeletedAt = r.CreatedAt.UTC(), timeOf(deleted)
	r.CustomMetadata, err = customMetadata(custom)
	return r, err
}

// MarkVersionsDeleted soft-deletes versions (at non-zero) or undeletes them
// (at zero). An empty versions list means the current version. Destroyed
// versions are left alone. ErrNotFound means the secret does not exist.
func (db *DB) MarkVersionsDeleted(ctx context.Context, path string, versions []int, at time.Time) error {
	return db.inTx(ctx, func(tx querier) error {
		id, current, err := secretIDTx(ctx, tx, path)
		if err != nil {
			return err
		}
		if len(versions) == 0 {
			versions = []int{current}
		}
		stmt := `UPDATE secret_versions SET deleted_at = $1 WHERE secret_id = $2 AND version = $3 AND NOT destroyed AND deleted_at IS NULL`
		if at.IsZero() {
			stmt = `UPDATE secret_versions SET deleted_at = $1 WHERE secret_id = $2 AND version = $3 AND NOT destroyed`
		}
		for _, v := range versions {
			if _, err := tx.ExecContext(ctx, stmt, nullTime(at), id, v); err != nil {
				return err
			}
		}
		return nil
	})
}

// DestroyVersions erases the ciphertext of versions for good.
func (db *DB) DestroyVersions(ctx context.Context, path string, versions []int) error {
	return db.inTx(ctx, func(tx querier) error {
		id, _, err := secretIDTx(ctx, tx, path)
		if err != nil {
			return err
		}
		for _, v := range versions {
			if _, err := tx.ExecContext(ctx,
				`UPDATE secret_versions SET ciphertext = NULL, destroyed = TRUE WHERE secret_id = $1 AND version = $2`, id, v); err != nil {
				return err
			}
		}
		return nil
	})
}

func secretIDTx(ctx context.Context, tx querier, path string) (id int64, current int, err error) {
	err = tx.QueryRowContext(ctx, `SELECT id, current_version FROM secrets WHERE path = $1`, path).Scan(&id, &current)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, ErrNotFound
	}
	return id, current, err
}

// SecretMetadata reads a secret's record and every kept version (without
// ciphertexts).
func (db *DB) SecretMetadata(ctx context.Context, path string) (Secret, []SecretVersion, error) {
	var (
		s      Secret
		custom string
	)
	err := db.q().QueryRowContext(ctx, `
		SELECT id, path, current_version, max_versions, cas_required, custom_metadata, created_at, updated_at
		FROM secrets WHERE path = $1`, path,
	).Scan(&s.ID, &s.Path, &s.CurrentVersion, &s.MaxVersions, &s.CASRequired, &custom, &s.CreatedAt, &s.UpdatedAt)
	if err != nil {
		return Secret{}, nil, notFound(err)
	}
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	if s.CustomMetadata, err = customMetadata(custom); err != nil {
		return Secret{}, nil, err
	}
	rows, err := db.q().QueryContext(ctx, `
		SELECT version, created_at, deleted_at, destroyed FROM secret_versions
		WHERE secret_id = $1 ORDER BY version`, s.ID)
	if err != nil {
		return Secret{}, nil, classify(err)
	}
	defer rows.Close()
	var versions []SecretVersion
	for rows.Next() {
		var (
			v       SecretVersion
			deleted sql.NullTime
		)
		if err := rows.Scan(&v.Version, &v.CreatedAt, &deleted, &v.Destroyed); err != nil {
			return Secret{}, nil, classify(err)
		}
		v.CreatedAt, v.DeletedAt = v.CreatedAt.UTC(), timeOf(deleted)
		versions = append(versions, v)
	}
	return s, versions, classify(rows.Err())
}

// SecretSettings changes a secret's metadata; nil fields stay as they are.
type SecretSettings struct {
	MaxVersions        *int
	CASRequired        *bool
	CustomMetadata     map[string]string // nil: unchanged
	CreateOnly         bool              // ErrConflict if the secret exists
	MustExist          bool              // ErrNotFound if it does not
	Now                time.Time
	DefaultMaxVersions int
}

// ConfigureSecret creates or updates a secret's metadata without writing a
// version, pruning versions if the limit went down.
func (db *DB) ConfigureSecret(ctx context.Context, path string, set SecretSettings) error {
	return db.inTx(ctx, func(tx querier) error {
		now := utc(set.Now)
		var id int64
		var maxVersions, current int
		onConflict := `DO UPDATE SET updated_at = excluded.updated_at`
		if set.CreateOnly {
			onConflict = `DO NOTHING`
		}
		upsert := `
			INSERT INTO secrets (path, current_version, max_versions, cas_required, custom_metadata, created_at, updated_at)
			VALUES ($1, 0, 0, FALSE, '{}', $2, $2)
			ON CONFLICT (path) ` + onConflict + `
			RETURNING id, current_version, max_versions`
		if set.MustExist {
			upsert = `UPDATE secrets SET updated_at = $2 WHERE path = $1 RETURNING id, current_version, max_versions`
		}
		err := tx.QueryRowContext(ctx, upsert, path, now).Scan(&id, &current, &maxVersions)
		switch {
		case errors.Is(err, sql.ErrNoRows) && set.MustExist:
			return ErrNotFound
		case errors.Is(err, sql.ErrNoRows):
			return ErrConflict
		}
		if err != nil {
			return err
		}
		if set.MaxVersions != nil {
			maxVersions = *set.MaxVersions
			if _, err := tx.ExecContext(ctx, `UPDATE secrets SET max_versions = $1 WHERE id = $2`, maxVersions, id); err != nil {
				return err
			}
		}
		if set.CASRequired != nil {
			if _, err := tx.ExecContext(ctx, `UPDATE secrets SET cas_required = $1 WHERE id = $2`, *set.CASRequired, id); err != nil {
				return err
			}
		}
		if set.CustomMetadata != nil {
			custom, err := json.Marshal(set.CustomMetadata)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE secrets SET custom_metadata = $1 WHERE id = $2`, string(custom), id); err != nil {
				return err
			}
		}
		keep := maxVersions
		if keep <= 0 {
			keep = set.DefaultMaxVersions
		}
		if keep > 0 && current > keep {
			_, err = tx.ExecContext(ctx, `DELETE FROM secret_versions WHERE secret_id = $1 AND version <= $2`, id, current-keep)
		}
		return err
	})
}

// DeleteSecret removes a secret and every version. ErrNotFound if absent.
func (db *DB) DeleteSecret(ctx context.Context, path string) error {
	return db.inTx(ctx, func(tx querier) error {
		id, _, err := secretIDTx(ctx, tx, path)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM secret_versions WHERE secret_id = $1`, id); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM secrets WHERE id = $1`, id)
		return err
	})
}

// SecretExists reports whether a secret record exists at path: one round trip.
func (db *DB) SecretExists(ctx context.Context, path string) (bool, error) {
	var one int
	err := db.q().QueryRowContext(ctx, `SELECT 1 FROM secrets WHERE path = $1`, path).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, classify(err)
}

// SecretPaths lists the paths of every secret under prefix, in byte order.
func (db *DB) SecretPaths(ctx context.Context, prefix string) ([]string, error) {
	var (
		rows *sql.Rows
		err  error
	)
	if bound, ok := prefixUpperBound(prefix); ok && prefix != "" {
		rows, err = db.q().QueryContext(ctx,
			`SELECT path FROM secrets WHERE path >= $1 AND path < $2 ORDER BY path`, prefix, bound)
	} else {
		rows, err = db.q().QueryContext(ctx, `SELECT path FROM secrets WHERE path >= $1 ORDER BY path`, prefix)
	}
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, classify(err)
		}
		out = append(out, p)
	}
	return out, classify(rows.Err())
}
