package storage

import (
	"context"
	"database/sql"
	"log/slog"
	"strings"
	"time"
)

// ExplainAuditWrites returns PostgreSQL's plan, as JSON, for each
// statement that writes a batch of audit events or outcomes, with empty
// arrays for parameters.
func (db *DB) ExplainAuditWrites(ctx context.Context) ([]string, error) {
	var plans []string
	for _, st := range []struct {
		query  string
		params int
	}{{pgAppendEvents + " SELECT", 21}, {pgStoreOutcomes, 6}} {
		args := []any{"node-1"}
		for range st.params - 1 {
			args = append(args, "{}")
		}
		var plan string
		if err := db.sql.QueryRowContext(ctx, "EXPLAIN (COSTS OFF, FORMAT JSON) "+db.auditSQL(st.query), args...).Scan(&plan); err != nil {
			return nil, err
		}
		plans = append(plans, plan)
	}
	return plans, nil
}

// ClaimNodeNameNow is ClaimNodeName without waiting for a name in use, the
// claim checked every interval.
func (db *DB) ClaimNodeNameNow(ctx context.Context, name string, log *slog.Logger, every time.Duration) (*NodeClaim, error) {
	return db.claimNodeName(ctx, name, log, 0, every)
}

// EchoArray sends the values as a binary PostgreSQL array of typ (text,
// bigint, integer or timestamptz; nil elements are NULL) and returns
// what PostgreSQL read: each element as text (NULL as nil), in order.
func (db *DB) EchoArray(ctx context.Context, typ string, vals []any) ([]*string, error) {
	oid := map[string]uint32{"text": oidText, "bigint": oidInt8, "integer": oidInt4, "timestamptz": oidTimestamptz}[typ]
	a := newPGArray(oid, len(vals), 8)
	for _, v := range vals {
		switch v := v.(type) {
		case nil:
			a.null()
		case string:
			a.text(v)
		case int64:
			a.int8(v)
		case int32:
			a.int4(v)
		case time.Time:
			a.time(v)
		}
	}
	expr := "v::text"
	if typ == "timestamptz" { // in UTC, whatever the server's time zone
		expr = `to_char(v AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')`
	}
	rows, err := db.sql.QueryContext(ctx, `SELECT `+expr+` FROM unnest($1::`+typ+`[]) WITH ORDINALITY AS u(v, i) ORDER BY i`, a.bytes())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*string{}
	for rows.Next() {
		var s sql.NullString
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		if s.Valid {
			out = append(out, &s.String)
		} else {
			out = append(out, nil)
		}
	}
	return out, rows.Err()
}

// WithBinaryParameters is withBinaryParameters, for tests.
func WithBinaryParameters(dsn string) string { return withBinaryParameters(dsn) }

// Settings runs query (SHOW x on PostgreSQL, PRAGMA x on SQLite) on n
// pooled connections held at once, so each connection the pool opens is
// asked, and returns each one's answer.
func (db *DB) Settings(ctx context.Context, query string, n int) ([]string, error) {
	var out []string
	for range n {
		conn, err := db.sql.Conn(ctx)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		var v string
		if err := conn.QueryRowContext(ctx, query).Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// ExplainAuditEventBefore returns SQLite's query plan for AuditEventBefore.
func (db *DB) ExplainAuditEventBefore(ctx context.Context) (string, error) {
	rows, err := db.sql.QueryContext(ctx, "EXPLAIN QUERY PLAN "+db.auditSQL(auditEventBeforeSQL), "n", time.Now().UTC())
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			return "", err
		}
		plan = append(plan, detail)
	}
	return strings.Join(plan, "; "), rows.Err()
}
