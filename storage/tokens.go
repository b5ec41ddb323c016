package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Token is a stored token. The token itself is never stored, only its hash.
type Token struct {
	Hash           string
	Accessor       string
	ParentAccessor string // empty for root and orphan tokens
	Policies       []string
	DisplayName    string
	// AuthMethod is how the token was obtained: "token" (created from
	// another token, or root), "approle" or "admin" (a login).
	AuthMethod     string
	Meta           map[string]string
	TTL            time.Duration
	ExplicitMaxTTL time.Duration
	Renewable      bool
	NumUses        int // uses left; 0 means unlimited
	BoundCIDRs     []string
	CreatedAt      time.Time
	ExpiresAt      time.Time // zero: never
	MaxExpiresAt   time.Time // zero: no hard limit
	// Spent is never stored: authentication sets it on the request that
	// took a limited token's last use (the token is deleted by then).
	Spent bool
}

const tokenColumns = `token_hash, accessor, parent_accessor, policies, display_name, meta, ttl_seconds,
	explicit_max_ttl_seconds, renewable, num_uses, bound_cidrs, created_at, expires_at, max_expires_at, auth_method`

// CreateToken stores a new token. ErrNotFound means its parent is gone
// (revoked, used up or expired and swept) while the child was being made.
func (db *DB) CreateToken(ctx context.Context, t Token) error {
	return db.inTx(ctx, func(tx querier) error { return insertToken(ctx, tx, t) })
}

func insertToken(ctx context.Context, tx querier, t Token) error {
	policies, err := json.Marshal(nonNil(t.Policies))
	if err != nil {
		return err
	}
	meta, err := json.Marshal(t.Meta)
	if err != nil {
		return err
	}
	if t.Meta == nil {
		meta = []byte("{}")
	}
	cidrs, err := json.Marshal(nonNil(t.BoundCIDRs))
	if err != nil {
		return err
	}
	var parent sql.NullString
	if t.ParentAccessor != "" {
		parent = sql.NullString{String: t.ParentAccessor, Valid: true}
	}
	method := t.AuthMethod
	if method == "" {
		method = "token" // made without a login: created from another token
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO tokens (`+tokenColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		t.Hash, t.Accessor, parent, string(policies), t.DisplayName, string(meta),
		int64(t.TTL/time.Second), int64(t.ExplicitMaxTTL/time.Second), t.Renewable, t.NumUses,
		string(cidrs), utc(t.CreatedAt), nullTime(t.ExpiresAt), nullTime(t.MaxExpiresAt), method)
	return err
}

// TokenByHash finds a token by the hash of its value: one round trip.
func (db *DB) TokenByHash(ctx context.Context, hash string) (Token, error) {
	return scanToken(db.q().QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE token_hash = $1`, hash))
}

// TokenByAccessor finds a token by its accessor.
func (db *DB) TokenByAccessor(ctx context.Context, accessor string) (Token, error) {
	return scanToken(db.q().QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE accessor = $1`, accessor))
}

func scanToken(row *sql.Row) (Token, error) {
	var (
		t                  Token
		parent             sql.NullString
		policies, meta     string
		cidrs              string
		ttl, maxTTL        int64
		expires, maxExpire sql.NullTime
	)
	err := row.Scan(&t.Hash, &t.Accessor, &parent, &policies, &t.DisplayName, &meta, &ttl, &maxTTL,
		&t.Renewable, &t.NumUses, &cidrs, &t.CreatedAt, &expires, &maxExpire, &t.AuthMethod)
	if err != nil {
		return Token{}, notFound(err)
	}
	t.ParentAccessor = parent.String
	t.TTL, t.ExplicitMaxTTL = time.Duration(ttl)*time.Second, time.Duration(maxTTL)*time.Second
	t.CreatedAt = t.CreatedAt.UTC()
	t.ExpiresAt, t.MaxExpiresAt = timeOf(expires), timeOf(maxExpire)
	if err := json.Unmarshal([]byte(policies), &t.Policies); err != nil {
		return Token{}, fmt.Errorf("storage: token %s has corrupt policies: %w", t.Accessor, err)
	}
	if err := json.Unmarshal([]byte(meta), &t.Meta); err != nil {
		return Token{}, fmt.Errorf("storage: token %s has corrupt metadata: %w", t.Accessor, err)
	}
	if err := json.Unmarshal([]byte(cidrs), &t.BoundCIDRs); err != nil {
		return Token{}, fmt.Errorf("storage: token %s has corrupt bound CIDRs: %w", t.Accessor, err)
	}
	return t, nil
}

// RenewToken moves a token's expiry. Descendants are capped at the new
// expiry in the same transaction, so a renewal that shortens a token's life
// never leaves a child outliving it.
func (db *DB) RenewToken(ctx context.Context, accessor string, expiresAt time.Time) error {
	return db.inTx(ctx, func(tx querier) error {
		res, err := tx.ExecContext(ctx, `UPDATE tokens SET expires_at = $1 WHERE accessor = $2`, nullTime(expiresAt), accessor)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		if expiresAt.IsZero() {
			return nil
		}
		_, err = tx.ExecContext(ctx, descendants+`
			UPDATE tokens SET expires_at = $2
			WHERE accessor IN (SELECT accessor FROM tree WHERE accessor <> $1)
			  AND (expires_at IS NULL OR expires_at > $2)`, accessor, utc(expiresAt))
		return err
	})
}

// descendants is a CTE naming a token ($1) and every token below it.
const descendants = `
	WITH RECURSIVE tree(accessor) AS (
		SELECT accessor FROM tokens WHERE accessor = $1
		UNION
		SELECT t.accessor FROM tokens t JOIN tree ON t.parent_accessor = tree.accessor
	)`

// UseToken consumes one use of a limited-use token and returns the uses
// left. Counting the last use deletes the token (and its children) in the
// same transaction, so no concurrent request can ever see a used-up token
// as one with unlimited uses. ErrNotFound means the token is gone or used up.
func (db *DB) UseToken(ctx context.Context, accessor string) (int, error) {
	var left int
	err := db.inTx(ctx, func(tx querier) error {
		err := tx.QueryRowContext(ctx,
			`UPDATE tokens SET num_uses = num_uses - 1 WHERE accessor = $1 AND num_uses > 0 RETURNING num_uses`,
			accessor).Scan(&left)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil || left > 0 {
			return err
		}
		_, err = deleteTree(ctx, tx, accessor)
		return err
	})
	return left, err
}

// RevokeTokenTree deletes a token and all its descendants, returning the
// accessors removed (empty if the token did not exist).
func (db *DB) RevokeTokenTree(ctx context.Context, accessor string) ([]string, error) {
	var revoked []string
	err := db.inTx(ctx, func(tx querier) (err error) {
		revoked, err = deleteTree(ctx, tx, accessor)
		return err
	})
	return revoked, err
}

// deleteTree deletes a token; the parent_accessor foreign key cascades to
// its descendants. The accessors are read first, for reporting: on
// PostgreSQL a child committed between the two statements is still
// deleted (by the cascade) but not listed.
func deleteTree(ctx context.Context, tx querier, accessor string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, descendants+` SELECT accessor FROM tree`, accessor)
	if err != nil {
		return nil, err
	}
	var revoked []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			rows.Close()
			return nil, err
		}
		revoked = append(revoked, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(revoked) == 0 {
		return nil, err
	}
	_, err = tx.ExecContext(ctx, `DELETE FROM tokens WHERE accessor = $1`, accessor)
	return revoked, err
}

// ExpiredTokens lists accessors of tokens whose expiry is before now.
func (db *DB) ExpiredTokens(ctx context.Context, now time.Time, limit int) ([]string, error) {
	rows, err := db.q().QueryContext(ctx,
		`SELECT accessor FROM tokens WHERE expires_at IS NOT NULL AND expires_at < $1 ORDER BY expires_at LIMIT $2`,
		utc(now), limit)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, classify(err)
		}
		out = append(out, a)
	}
	return out, classify(rows.Err())
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
