package storage

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// PolicyRecord is a user-defined policy as stored: its JSON document.
type PolicyRecord struct {
	Name      string
	Document  string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// PutPolicy creates or replaces a policy and reports whether it was new.
func (db *DB) PutPolicy(ctx context.Context, name, document string, now time.Time) (created bool, err error) {
	var createdAt time.Time
	now = utc(now)
	err = db.q().QueryRowContext(ctx, `
		INSERT INTO policies (name, document, created_at, updated_at) VALUES ($1, $2, $3, $3)
		ON CONFLICT (name) DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at
		RETURNING created_at`, name, document, now).Scan(&createdAt)
	if err != nil {
		return false, classify(err)
	}
	return createdAt.Equal(now), nil
}

// CreatePolicy stores a new policy; ErrConflict if the name is taken.
func (db *DB) CreatePolicy(ctx context.Context, name, document string, now time.Time) error {
	var got string
	err := db.q().QueryRowContext(ctx, `
		INSERT INTO policies (name, document, created_at, updated_at) VALUES ($1, $2, $3, $3)
		ON CONFLICT (name) DO NOTHING RETURNING name`, name, document, utc(now)).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrConflict
	}
	return classify(err)
}

// UpdatePolicy replaces an existing policy; ErrNotFound if there is none.
func (db *DB) UpdatePolicy(ctx context.Context, name, document string, now time.Time) error {
	res, err := db.q().ExecContext(ctx, `UPDATE policies SET document = $2, updated_at = $3 WHERE name = $1`, name, document, utc(now))
	if err != nil {
		return classify(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// Policy reads one policy; ErrNotFound if there is none by that name.
func (db *DB) Policy(ctx context.Context, name string) (PolicyRecord, error) {
	var p PolicyRecord
	err := db.q().QueryRowContext(ctx,
		`SELECT name, document, created_at, updated_at FROM policies WHERE name = $1`, name,
	).Scan(&p.Name, &p.Document, &p.CreatedAt, &p.UpdatedAt)
	if err != nil {
		return PolicyRecord{}, notFound(err)
	}
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	return p, nil
}

// PolicyNames lists every stored policy's name in byte order.
func (db *DB) PolicyNames(ctx context.Context) ([]string, error) {
	return sortedStrings(db.q().QueryContext(ctx, `SELECT name FROM policies`))
}

// DeletePolicy removes a policy; ErrNotFound if there was none.
func (db *DB) DeletePolicy(ctx context.Context, name string) error {
	res, err := db.q().ExecContext(ctx, `DELETE FROM policies WHERE name = $1`, name)
	if err != nil {
		return classify(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}
