package storage

import (
	"context"
	"database/sql"
	"time"
)

// SealConfig is how the root key was protected at initialization.
type SealConfig struct {
	Type            string
	SecretShares    int
	SecretThreshold int
	CreatedAt       time.Time
}

// Bootstrap is everything written by initialization, in one transaction, so
// a crash never leaves an initialized store without its root token.
type Bootstrap struct {
	Seal      SealConfig
	Keyring   []byte // barrier keyring, encrypted by the root key
	RootToken Token
}

// Initialize writes the seal configuration, the wrapped keyring and the root
// token. It returns ErrConflict if the store is already initialized (another
// node may have won the race).
func (db *DB) Initialize(ctx context.Context, b Bootstrap) error {
	return db.inTx(ctx, func(tx querier) error {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO seal_config (id, seal_type, secret_shares, secret_threshold, created_at) VALUES (1, $1, $2, $3, $4)`,
			b.Seal.Type, b.Seal.SecretShares, b.Seal.SecretThreshold, utc(b.Seal.CreatedAt)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO barrier_keyring (id, ciphertext, updated_at) VALUES (1, $1, $2)`,
			b.Keyring, utc(b.Seal.CreatedAt)); err != nil {
			return err
		}
		return insertToken(ctx, tx, b.RootToken)
	})
}

// SealConfig returns the stored seal configuration, or ErrNotFound when the
// store has not been initialized.
func (db *DB) SealConfig(ctx context.Context) (SealConfig, error) {
	var c SealConfig
	err := db.q().QueryRowContext(ctx,
		`SELECT seal_type, secret_shares, secret_threshold, created_at FROM seal_config WHERE id = 1`,
	).Scan(&c.Type, &c.SecretShares, &c.SecretThreshold, &c.CreatedAt)
	return c, notFound(err)
}

// Keyring returns the encrypted barrier keyring.
func (db *DB) Keyring(ctx context.Context) ([]byte, error) {
	var blob []byte
	err := db.q().QueryRowContext(ctx, `SELECT ciphertext FROM barrier_keyring WHERE id = 1`).Scan(&blob)
	return blob, notFound(err)
}

// SwapKeyring replaces the encrypted barrier keyring after a rotation, but
// only if it still is prev: two nodes rotating at once must not drop each
// other's new term. ErrConflict means someone else rotated first.
func (db *DB) SwapKeyring(ctx context.Context, prev, next []byte, now time.Time) error {
	res, err := db.q().ExecContext(ctx,
		`UPDATE barrier_keyring SET ciphertext = $1, updated_at = $2 WHERE id = 1 AND ciphertext = $3`, next, utc(now), prev)
	if err != nil {
		return classify(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrConflict
	}
	return nil
}

// utc normalizes times for storage: UTC, microsecond precision (what
// PostgreSQL keeps), so a value reads back equal on both engines.
func utc(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// nullTime stores the zero time as NULL.
func nullTime(t time.Time) sql.NullTime {
	if t.IsZero() {
		return sql.NullTime{}
	}
	return sql.NullTime{Time: utc(t), Valid: true}
}

// timeOf reads a nullable time back, NULL as the zero time.
func timeOf(n sql.NullTime) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return n.Time.UTC()
}
