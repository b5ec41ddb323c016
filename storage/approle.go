package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// AppRoleRole is a stored AppRole role: what a login with its role_id and
// one of its secret IDs is given.
type AppRoleRole struct {
	Name               string
	RoleID             string
	Policies           []string
	TokenTTL           time.Duration // 0: the token service's default
	TokenMaxTTL        time.Duration // 0: the system maximum
	TokenBoundCIDRs    []string
	SecretIDTTL        time.Duration // 0: secret IDs never expire
	SecretIDNumUses    int           // 0: secret IDs have unlimited uses
	SecretIDBoundCIDRs []string
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

// AppRoleSecretID is a stored secret ID. The secret ID itself is never
// stored, only its hash; the accessor names it everywhere else.
type AppRoleSecretID struct {
	Hash      string
	Accessor  string
	RoleName  string
	NumUses   int // uses left; 0 means unlimited
	CIDRs     []string
	Metadata  map[string]string
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
}

// AppRoleLogin is what a successful AppRole login writes: the use of its
// secret ID, the token it issues, and the record tying the two together.
type AppRoleLogin struct {
	SecretIDHash     string
	SecretIDAccessor string
	// Limited says the secret ID had a use count when the login read it.
	// Counts only go down, and a limited secret ID is deleted rather than
	// left at 0, so the read's answer still holds in the transaction.
	Limited  bool
	RoleName string
	// RoleID and RoleUpdatedAt are the role as the login read it; the login
	// is refused if the role has changed since (every change moves
	// updated_at forward), so a token never carries settings a committed
	// change has replaced.
	RoleID        string
	RoleUpdatedAt time.Time
	Token         Token
}

const appRoleColumns = `name, role_id, policies, token_ttl_seconds, token_max_ttl_seconds, token_bound_cidrs,
	secret_id_ttl_seconds, secret_id_num_uses, secret_id_bound_cidrs, created_at, updated_at`

const secretIDColumns = `secret_id_hash, accessor, role_name, num_uses, cidr_list, metadata, created_at, expires_at`

// roleRow receives a role's columns and decodes them.
type roleRow struct {
	r                          AppRoleRole
	policies, tokenCIDRs, sids string
	ttl, maxTTL, sidTTL        int64
}

func (x *roleRow) dest() []any {
	return []any{&x.r.Name, &x.r.RoleID, &x.policies, &x.ttl, &x.maxTTL, &x.tokenCIDRs,
		&x.sidTTL, &x.r.SecretIDNumUses, &x.sids, &x.r.CreatedAt, &x.r.UpdatedAt}
}

func (x *roleRow) role() (AppRoleRole, error) {
	r := x.r
	r.TokenTTL = time.Duration(x.ttl) * time.Second
	r.TokenMaxTTL = time.Duration(x.maxTTL) * time.Second
	r.SecretIDTTL = time.Duration(x.sidTTL) * time.Second
	r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	for _, f := range []struct {
		raw  string
		into *[]string
		what string
	}{{x.policies, &r.Policies, "policies"}, {x.tokenCIDRs, &r.TokenBoundCIDRs, "token bound CIDRs"}, {x.sids, &r.SecretIDBoundCIDRs, "secret ID bound CIDRs"}} {
		if err := json.Unmarshal([]byte(f.raw), f.into); err != nil {
			return AppRoleRole{}, fmt.Errorf("storage: AppRole role %s has corrupt %s: %w", r.Name, f.what, err)
		}
	}
	return r, nil
}

// secretIDRow receives a secret ID's columns and decodes them.
type secretIDRow struct {
	s           AppRoleSecretID
	cidrs, meta string
	expires     sql.NullTime
}

func (x *secretIDRow) dest() []any {
	return []any{&x.s.Hash, &x.s.Accessor, &x.s.RoleName, &x.s.NumUses, &x.cidrs, &x.meta, &x.s.CreatedAt, &x.expires}
}

func (x *secretIDRow) secretID() (AppRoleSecretID, error) {
	s := x.s
	s.CreatedAt, s.ExpiresAt = s.CreatedAt.UTC(), timeOf(x.expires)
	if err := json.Unmarshal([]byte(x.cidrs), &s.CIDRs); err != nil {
		return AppRoleSecretID{}, fmt.Errorf("storage: secret ID %s has corrupt CIDRs: %w", s.Accessor, err)
	}
	if err := json.Unmarshal([]byte(x.meta), &s.Metadata); err != nil {
		return AppRoleSecretID{}, fmt.Errorf("storage: secret ID %s has corrupt metadata: %w", s.Accessor, err)
	}
	return s, nil
}

// WriteAppRoleRole creates or updates the role called name in one
// transaction. apply receives the stored role, locked against concurrent
// writers until the transaction ends, or a new one with only Name and the
// times set when created is true, and changes it in place; an error from
// apply leaves the store untouched and is returned as it is. UpdatedAt is
// already set when apply runs: now, or just after the stored updated_at when
// that is not before now (a clock that stepped back, two writes in one
// microsecond), so every write moves a role's updated_at forward and a login
// can tell the role it read from a changed one. A role's creation time is
// kept whatever apply does; its role_id is what apply leaves. ErrConflict
// means the role_id is another role's.
func (db *DB) WriteAppRoleRole(ctx context.Context, name string, now time.Time,
	apply func(r *AppRoleRole, created bool) error) (role AppRoleRole, created bool, err error) {
	now = utc(now)
	err = db.inTx(ctx, func(tx querier) error {
		// Two rounds at most: a role created by another writer between our
		// update finding nothing and our insert is updated on the second.
		for range 2 {
			var row roleRow
			// The no-op update locks the row on PostgreSQL (SQLite
			// transactions already exclude each other).
			err := tx.QueryRowContext(ctx, `UPDATE approle_roles SET updated_at = updated_at WHERE name = $1 RETURNING `+appRoleColumns,
				name).Scan(row.dest()...)
			switch {
			case err == nil:
				if role, err = row.role(); err != nil {
					return err
				}
				stamp := now
				if !stamp.After(role.UpdatedAt) {
					stamp = role.UpdatedAt.Add(time.Microsecond)
				}
				role.UpdatedAt = stamp
				if err := apply(&role, false); err != nil {
					return err
				}
				role.Name, role.CreatedAt, role.UpdatedAt = name, row.r.CreatedAt.UTC(), stamp
				created = false
				return updateRole(ctx, tx, role)
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
			role = AppRoleRole{Name: name, CreatedAt: now, UpdatedAt: now}
			if err := apply(&role, true); err != nil {
				return err
			}
			role.Name, role.CreatedAt, role.UpdatedAt = name, now, now
			inserted, err := insertRole(ctx, tx, role)
			if err != nil || inserted {
				created = inserted
				return err
			}
		}
		return ErrConflict
	})
	if err != nil {
		return AppRoleRole{}, false, err
	}
	return role, created, nil
}

// roleLists encodes a role's list columns as JSON text.
func roleLists(r AppRoleRole) (policies, tokenCIDRs, secretIDCIDRs string, err error) {
	var enc [3][]byte
	for i, l := range [][]string{r.Policies, r.TokenBoundCIDRs, r.SecretIDBoundCIDRs} {
		if enc[i], err = json.Marshal(nonNil(l)); err != nil {
			return "", "", "", err
		}
	}
	return string(enc[0]), string(enc[1]), string(enc[2]), nil
}

// insertRole inserts r unless a role of that name exists, reporting which.
func insertRole(ctx context.Context, tx querier, r AppRoleRole) (bool, error) {
	policies, tokenCIDRs, sids, err := roleLists(r)
	if err != nil {
		return false, err
	}
	var name string
	err = tx.QueryRowContext(ctx, `INSERT INTO approle_roles (`+appRoleColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (name) DO NOTHING RETURNING name`,
		r.Name, r.RoleID, policies, int64(r.TokenTTL/time.Second), int64(r.TokenMaxTTL/time.Second), tokenCIDRs,
		int64(r.SecretIDTTL/time.Second), r.SecretIDNumUses, sids, r.CreatedAt, r.UpdatedAt).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// updateRole writes every setting of an existing role, its role_id included.
func updateRole(ctx context.Context, tx querier, r AppRoleRole) error {
	policies, tokenCIDRs, sids, err := roleLists(r)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE approle_roles SET role_id = $2, policies = $3, token_ttl_seconds = $4,
		token_max_ttl_seconds = $5, token_bound_cidrs = $6, secret_id_ttl_seconds = $7,
		secret_id_num_uses = $8, secret_id_bound_cidrs = $9, updated_at = $10 WHERE name = $1`,
		r.Name, r.RoleID, policies, int64(r.TokenTTL/time.Second), int64(r.TokenMaxTTL/time.Second), tokenCIDRs,
		int64(r.SecretIDTTL/time.Second), r.SecretIDNumUses, sids, r.UpdatedAt)
	return err
}

// AppRoleRoleByName reads one role: one round trip. ErrNotFound if absent.
func (db *DB) AppRoleRoleByName(ctx context.Context, name string) (AppRoleRole, error) {
	var row roleRow
	if err := db.q().QueryRowContext(ctx, `SELECT `+appRoleColumns+` FROM approle_roles WHERE name = $1`, name).Scan(row.dest()...); err != nil {
		return AppRoleRole{}, notFound(err)
	}
	return row.role()
}

// AppRoleRoleNames lists every role's name in byte order.
func (db *DB) AppRoleRoleNames(ctx context.Context) ([]string, error) {
	return sortedStrings(db.q().QueryContext(ctx, `SELECT name FROM approle_roles`))
}

// DeleteAppRoleRole deletes a role; its secret IDs go with it (the foreign
// key cascades). Tokens it issued live on. ErrNotFound if absent.
func (db *DB) DeleteAppRoleRole(ctx context.Context, name string) error {
	res, err := db.q().ExecContext(ctx, `DELETE FROM approle_roles WHERE name = $1`, name)
	return affected(res, err)
}

// CreateAppRoleSecretID stores a new secret ID. ErrNotFound means its role
// does not exist (or was deleted meanwhile).
func (db *DB) CreateAppRoleSecretID(ctx context.Context, s AppRoleSecretID) error {
	cidrs, err := json.Marshal(nonNil(s.CIDRs))
	if err != nil {
		return err
	}
	meta := []byte("{}")
	if s.Metadata != nil {
		if meta, err = json.Marshal(s.Metadata); err != nil {
			return err
		}
	}
	_, err = db.q().ExecContext(ctx, `INSERT INTO approle_secret_ids (`+secretIDColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		s.Hash, s.Accessor, s.RoleName, s.NumUses, string(cidrs), string(meta), utc(s.CreatedAt), nullTime(s.ExpiresAt))
	return classify(err)
}

// AppRoleSecretIDAccessors lists, in byte order, the accessors of a role's
// secret IDs that have not expired by now.
func (db *DB) AppRoleSecretIDAccessors(ctx context.Context, roleName string, now time.Time) ([]string, error) {
	return sortedStrings(db.q().QueryContext(ctx, `SELECT accessor FROM approle_secret_ids
		WHERE role_name = $1 AND (expires_at IS NULL OR expires_at > $2)`, roleName, utc(now)))
}

// AppRoleSecretIDByAccessor reads one of a role's secret IDs that has not
// expired by now. ErrNotFound if the role has no such secret ID.
func (db *DB) AppRoleSecretIDByAccessor(ctx context.Context, roleName, accessor string, now time.Time) (AppRoleSecretID, error) {
	var row secretIDRow
	err := db.q().QueryRowContext(ctx, `SELECT `+secretIDColumns+` FROM approle_secret_ids
		WHERE accessor = $1 AND role_name = $2 AND (expires_at IS NULL OR expires_at > $3)`,
		accessor, roleName, utc(now)).Scan(row.dest()...)
	if err != nil {
		return AppRoleSecretID{}, notFound(err)
	}
	return row.secretID()
}

// DeleteAppRoleSecretID deletes one of a role's secret IDs. ErrNotFound if
// the role has no such secret ID.
func (db *DB) DeleteAppRoleSecretID(ctx context.Context, roleName, accessor string) error {
	res, err := db.q().ExecContext(ctx, `DELETE FROM approle_secret_ids WHERE accessor = $1 AND role_name = $2`, accessor, roleName)
	return affected(res, err)
}

// AppRoleSecretIDByHash finds a secret ID by the hash of its value together
// with its role, if that role's role_id is roleID: the one read of a login.
// A wrong secret ID and a wrong role_id are the same miss, ErrNotFound,
// with nothing decoded. Expiry is the caller's to check.
func (db *DB) AppRoleSecretIDByHash(ctx context.Context, hash, roleID string) (AppRoleSecretID, AppRoleRole, error) {
	var (
		sid  secretIDRow
		role roleRow
	)
	err := db.q().QueryRowContext(ctx, `SELECT s.secret_id_hash, s.accessor, s.role_name, s.num_uses, s.cidr_list,
			s.metadata, s.created_at, s.expires_at,
			r.name, r.role_id, r.policies, r.token_ttl_seconds, r.token_max_ttl_seconds, r.token_bound_cidrs,
			r.secret_id_ttl_seconds, r.secret_id_num_uses, r.secret_id_bound_cidrs, r.created_at, r.updated_at
		FROM approle_secret_ids s JOIN approle_roles r ON r.name = s.role_name
		WHERE s.secret_id_hash = $1 AND r.role_id = $2`, hash, roleID).Scan(append(sid.dest(), role.dest()...)...)
	if err != nil {
		return AppRoleSecretID{}, AppRoleRole{}, notFound(err)
	}
	s, err := sid.secretID()
	if err != nil {
		return AppRoleSecretID{}, AppRoleRole{}, err
	}
	r, err := role.role()
	if err != nil {
		return AppRoleSecretID{}, AppRoleRole{}, err
	}
	return s, r, nil
}

// CompleteAppRoleLogin stores a login in one transaction. It first checks
// that the role is still as the login read it (same role_id and
// updated_at) and holds it so, then that the secret ID still exists,
// counting the use of a limited one (and deleting it on its last use, so it
// never rests at 0, which reads as unlimited); then it stores the token and
// records which role and secret ID issued it. ErrNotFound means the role
// changed or went, or the secret ID is gone (used up by a concurrent login,
// destroyed, or its role deleted); nothing is stored then.
//
// On PostgreSQL the checks lock: the role and an unlimited secret ID FOR
// SHARE, so logins do not queue behind each other but a role write, a
// role deletion or a secret ID's destruction waits for the login to commit,
// or the login waits for it and then finds the change. A limited secret ID
// is locked by its count's update. The role is locked first, in the order a
// role deletion cascades, so the two never deadlock. SQLite transactions
// exclude each other already.
func (db *DB) CompleteAppRoleLogin(ctx context.Context, l AppRoleLogin) error {
	forShare := ""
	if db.engine == Postgres {
		forShare = " FOR SHARE"
	}
	return db.inTx(ctx, func(tx querier) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM approle_roles WHERE name = $1 AND role_id = $2 AND updated_at = $3`+forShare,
			l.RoleName, l.RoleID, utc(l.RoleUpdatedAt)).Scan(&one)
		if err != nil {
			return notFound(err)
		}
		if l.Limited {
			var left int
			err := tx.QueryRowContext(ctx, `UPDATE approle_secret_ids SET num_uses = num_uses - 1
				WHERE secret_id_hash = $1 AND num_uses > 0 RETURNING num_uses`, l.SecretIDHash).Scan(&left)
			if err != nil {
				return notFound(err)
			}
			if left == 0 {
				if _, err := tx.ExecContext(ctx, `DELETE FROM approle_secret_ids WHERE secret_id_hash = $1`, l.SecretIDHash); err != nil {
					return err
				}
			}
		} else {
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM approle_secret_ids WHERE secret_id_hash = $1`+forShare, l.SecretIDHash).Scan(&one)
			if err != nil {
				return notFound(err)
			}
		}
		if err := insertToken(ctx, tx, l.Token); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO approle_tokens (token_accessor, role_name, secret_id_accessor, created_at)
			VALUES ($1, $2, $3, $4)`, l.Token.Accessor, l.RoleName, l.SecretIDAccessor, utc(l.Token.CreatedAt))
		return err
	})
}

// DeleteExpiredAppRoleSecretIDs deletes the secret IDs expired by now (at
// their expiry or after) and returns how many went.
func (db *DB) DeleteExpiredAppRoleSecretIDs(ctx context.Context, now time.Time) (int, error) {
	res, err := db.q().ExecContext(ctx, `DELETE FROM approle_secret_ids WHERE expires_at <= $1`, utc(now))
	if err != nil {
		return 0, classify(err)
	}
	n, err := res.RowsAffected()
	return int(n), classify(err)
}

// affected turns a statement that changed no row into ErrNotFound.
func affected(res sql.Result, err error) error {
	if err != nil {
		return classify(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return classify(err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// sortedStrings reads a one-column result into a slice in byte order,
// whatever collation the engine sorts text by.
func sortedStrings(rows *sql.Rows, err error) ([]string, error) {
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, classify(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(err)
	}
	slices.Sort(out)
	return out, nil
}
