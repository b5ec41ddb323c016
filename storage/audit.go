package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// AuditEvent is one stored audit event: its request part, chained to the
// node's previous event by PrevHash and Hash, and its outcome once written.
// Sensitive values arrive already HMAC'd; storage neither computes nor
// checks the chain (server/audit does both).
type AuditEvent struct {
	Node          string
	Seq           int64
	Time          time.Time
	RequestID     string
	ClientIP      string
	TokenAccessor string
	TokenHMAC     string
	AuthMethod    string
	Operation     string
	Path          string
	Resource      string
	Capability    string
	Policies      []string
	Decision      string
	// RequestData is JSON text, "" when the request carried none (NULL).
	RequestData string
	PrevHash    string
	Hash        string
	// Outcome is nil until the request's outcome is stored.
	Outcome *AuditOutcome
}

// AuditOutcome is how a request ended. Seq names its event when the
// outcome is written after the event (AuditBatch.Outcomes).
type AuditOutcome struct {
	Seq           int64
	Status        int
	Error         string
	LatencyMicros int64
	MAC           string
}

// AuditCheckpoint is a row of the hash chain table: a node's chain hash at
// seq, authenticated by MAC.
type AuditCheckpoint struct {
	Node      string
	Seq       int64
	Hash      string
	Kind      string
	CreatedAt time.Time
	MAC       string
}

// AuditHead is where a node's stored chain ends: its last event, and the
// checkpoint with the highest seq, a prune before a checkpoint at the same
// seq (it may lie beyond the last event when a prune removed every event,
// or when the tail was cut).
type AuditHead struct {
	Seq            int64 // 0: the node has no stored event
	Hash           string
	CheckpointSeq  int64 // 0: the node has no checkpoint
	CheckpointHash string
	CheckpointKind string
}

// AuditBatch is one group commit of a node's audit log, written in one
// transaction: new events (in seq order), outcomes of events already
// stored, and optionally a checkpoint.
type AuditBatch struct {
	Node       string
	Events     []AuditEvent
	Outcomes   []AuditOutcome
	Checkpoint *AuditCheckpoint
}

// AuditFilter selects events for listing, ordered by (time, node, seq).
type AuditFilter struct {
	Since, Until time.Time // [Since, Until); zero: unbounded
	PathPrefix   string    // paths starting with it
	Accessor     string    // exact token accessor
	Decision     string    // exact decision
	Node         string    // exact node
	// After, when AfterNode is set, resumes after the event
	// (AfterTime, AfterNode, AfterSeq).
	AfterTime time.Time
	AfterNode string
	AfterSeq  int64
	Limit     int
}

// The audit tables' names are the one difference between the engines'
// audit SQL: PostgreSQL keeps them in the audit schema the runbook asks
// for, SQLite (which has no schemas) names them with a prefix. Statements
// are written with {events} and {chain} and rewritten here.
var (
	pgAuditNames   = strings.NewReplacer("{events}", "audit.events", "{chain}", "audit.hash_chain")
	liteAuditNames = strings.NewReplacer("{events}", "audit_events", "{chain}", "audit_hash_chain")
)

func (db *DB) auditSQL(query string) string {
	if db.engine == Postgres {
		return pgAuditNames.Replace(query)
	}
	return liteAuditNames.Replace(query)
}

const auditEventColumns = `node, seq, time, request_id, client_ip, token_accessor, token_hmac, auth_method,
	operation, path, resource, capability, policies, decision, request_data, prev_hash, hash,
	status, error, latency_us, outcome_mac`

// auditEventWidth is the number of columns in auditEventColumns.
const auditEventWidth = 21

// auditChunk is the most rows one INSERT or UPDATE statement carries. A
// batch is cut into chunks whose sizes are powers of two, so only a few
// distinct statements exist to prepare (nine per kind), whatever the batch
// sizes.
const auditChunk = 256

// chunks cuts n into powers of two of at most auditChunk, largest first.
func chunks(n int) []int {
	var out []int
	for n > 0 {
		size := auditChunk
		for size > n {
			size /= 2
		}
		out = append(out, size)
		n -= size
	}
	return out
}

// placeholders writes rows groups of width numbered parameters, starting
// at $first, each wrapped by wrap (which receives the parameter names).
func placeholders(b *strings.Builder, rows, width, first int, wrap func(b *strings.Builder, params []string)) {
	params := make([]string, width)
	for r := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		for c := range width {
			params[c] = "$" + strconv.Itoa(first+r*width+c)
		}
		wrap(b, params)
	}
}

// AppendAudit writes a batch in one transaction and reports how many of
// its outcomes found their event still without one. ErrConflict means an
// event's (node, seq) is taken: another writer uses the node's name.
func (db *DB) AppendAudit(ctx context.Context, b AuditBatch) (outcomes int64, err error) {
	db.auditTxs.Add(1)
	err = db.inTx(ctx, func(tx querier) error {
		outcomes = 0
		rest := b.Events
		for _, n := range chunks(len(rest)) {
			if err := db.insertAuditEvents(ctx, tx, rest[:n]); err != nil {
				return err
			}
			rest = rest[n:]
		}
		left := b.Outcomes
		if len(left) > 0 && db.engine == Postgres {
			// A prepared UPDATE's generic plan is made once, while the
			// table is small (a sequential scan), and kept until the next
			// ANALYZE; the table meanwhile grows by every event. Planning
			// the outcome updates afresh each time keeps them on the
			// primary key.
			if _, err := tx.ExecContext(ctx, `SET LOCAL plan_cache_mode = force_custom_plan`); err != nil {
				return err
			}
		}
		for _, n := range chunks(len(left)) {
			applied, err := db.updateAuditOutcomes(ctx, tx, b.Node, left[:n])
			if err != nil {
				return err
			}
			outcomes += applied
			left = left[n:]
		}
		if b.Checkpoint != nil {
			return db.insertAuditCheckpoint(ctx, tx, *b.Checkpoint)
		}
		return nil
	})
	return outcomes, err
}

func (db *DB) insertAuditEvents(ctx context.Context, tx querier, events []AuditEvent) error {
	var q strings.Builder
	q.WriteString(`INSERT INTO {events} (` + auditEventColumns + `) VALUES `)
	placeholders(&q, len(events), auditEventWidth, 1, func(b *strings.Builder, params []string) {
		b.WriteString("(" + strings.Join(params, ", ") + ")")
	})
	args := make([]any, 0, len(events)*auditEventWidth)
	for _, e := range events {
		policies, err := json.Marshal(nonNil(e.Policies))
		if err != nil {
			return err
		}
		var (
			status, latency sql.NullInt64
			errText, mac    sql.NullString
		)
		if o := e.Outcome; o != nil {
			status = sql.NullInt64{Int64: int64(o.Status), Valid: true}
			errText = sql.NullString{String: o.Error, Valid: true}
			latency = sql.NullInt64{Int64: o.LatencyMicros, Valid: true}
			mac = sql.NullString{String: o.MAC, Valid: true}
		}
		args = append(args, e.Node, e.Seq, utc(e.Time), e.RequestID, e.ClientIP, e.TokenAccessor, e.TokenHMAC,
			e.AuthMethod, e.Operation, e.Path, e.Resource, e.Capability, string(policies), e.Decision,
			sql.NullString{String: e.RequestData, Valid: e.RequestData != ""}, e.PrevHash, e.Hash,
			status, errText, latency, mac)
	}
	_, err := tx.ExecContext(ctx, db.auditSQL(q.String()), args...)
	return err
}

// updateAuditOutcomes sets the outcomes of a node's events in one
// statement; an event that already has an outcome keeps it. Each row of
// the VALUES list names the whole primary key (node, seq): a constant
// "node = $1" would invite PostgreSQL, before it has statistics, to read
// every event of the node rather than look each one up.
func (db *DB) updateAuditOutcomes(ctx context.Context, tx querier, node string, outs []AuditOutcome) (int64, error) {
	var q strings.Builder
	q.WriteString(`UPDATE {events} AS e
		SET status = v.column3, error = v.column4, latency_us = v.column5, outcome_mac = v.column6
		FROM (VALUES `)
	placeholders(&q, len(outs), 5, 2, func(b *strings.Builder, p []string) {
		b.WriteString("(CAST($1 AS TEXT), CAST(" + p[0] + " AS BIGINT), CAST(" + p[1] + " AS INTEGER), CAST(" + p[2] +
			" AS TEXT), CAST(" + p[3] + " AS BIGINT), CAST(" + p[4] + " AS TEXT))")
	})
	q.WriteString(`) AS v WHERE e.node = v.column1 AND e.seq = v.column2 AND e.status IS NULL`)
	args := make([]any, 0, 1+len(outs)*5)
	args = append(args, node)
	for _, o := range outs {
		args = append(args, o.Seq, o.Status, o.Error, o.LatencyMicros, o.MAC)
	}
	res, err := tx.ExecContext(ctx, db.auditSQL(q.String()), args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (db *DB) insertAuditCheckpoint(ctx context.Context, tx querier, c AuditCheckpoint) error {
	_, err := tx.ExecContext(ctx, db.auditSQL(`INSERT INTO {chain} (node, seq, hash, kind, created_at, mac)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (node, seq, kind) DO NOTHING`),
		c.Node, c.Seq, c.Hash, c.Kind, utc(c.CreatedAt), c.MAC)
	return err
}

// AuditHead reads where a node's stored chain ends.
func (db *DB) AuditHead(ctx context.Context, node string) (AuditHead, error) {
	var h AuditHead
	err := db.q().QueryRowContext(ctx, db.auditSQL(`SELECT seq, hash FROM {events} WHERE node = $1 ORDER BY seq DESC LIMIT 1`),
		node).Scan(&h.Seq, &h.Hash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return AuditHead{}, classify(err)
	}
	err = db.q().QueryRowContext(ctx, db.auditSQL(`SELECT seq, hash, kind FROM {chain} WHERE node = $1 ORDER BY seq DESC, kind DESC LIMIT 1`),
		node).Scan(&h.CheckpointSeq, &h.CheckpointHash, &h.CheckpointKind)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return AuditHead{}, classify(err)
	}
	return h, nil
}

// AuditNodes lists every node with a stored event or checkpoint, by name.
func (db *DB) AuditNodes(ctx context.Context) ([]string, error) {
	rows, err := db.q().QueryContext(ctx, db.auditSQL(`SELECT node FROM {events} UNION SELECT node FROM {chain} ORDER BY node`))
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, classify(err)
		}
		out = append(out, n)
	}
	return out, classify(rows.Err())
}

// AuditEvents returns up to limit of a node's events after seq, in seq order.
func (db *DB) AuditEvents(ctx context.Context, node string, after int64, limit int) ([]AuditEvent, error) {
	rows, err := db.q().QueryContext(ctx, db.auditSQL(`SELECT `+auditEventColumns+` FROM {events}
		WHERE node = $1 AND seq > $2 ORDER BY seq LIMIT $3`), node, after, limit)
	if err != nil {
		return nil, classify(err)
	}
	return scanAuditEvents(rows)
}

// AuditCheckpoints returns up to limit of a node's checkpoints after
// (seq, kind), in that order.
func (db *DB) AuditCheckpoints(ctx context.Context, node string, afterSeq int64, afterKind string, limit int) ([]AuditCheckpoint, error) {
	rows, err := db.q().QueryContext(ctx, db.auditSQL(`SELECT node, seq, hash, kind, created_at, mac FROM {chain}
		WHERE node = $1 AND (seq, kind) > ($2, $3) ORDER BY seq, kind LIMIT $4`), node, afterSeq, afterKind, limit)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []AuditCheckpoint
	for rows.Next() {
		var c AuditCheckpoint
		if err := rows.Scan(&c.Node, &c.Seq, &c.Hash, &c.Kind, &c.CreatedAt, &c.MAC); err != nil {
			return nil, classify(err)
		}
		c.CreatedAt = c.CreatedAt.UTC()
		out = append(out, c)
	}
	return out, classify(rows.Err())
}

// AuditPruneBoundary finds the last event of node a prune before the given
// time may remove: the one just before the node's first event at or after
// it, so no event from that time on is ever removed even when times and
// seqs disagree slightly. ErrNotFound means there is nothing to remove.
func (db *DB) AuditPruneBoundary(ctx context.Context, node string, before time.Time) (seq int64, hash string, err error) {
	err = db.q().QueryRowContext(ctx, db.auditSQL(`SELECT seq, hash FROM {events} WHERE node = $1
		AND seq < COALESCE((SELECT MIN(seq) FROM {events} WHERE node = $1 AND time >= $2), 9223372036854775807)
		ORDER BY seq DESC LIMIT 1`), node, utc(before)).Scan(&seq, &hash)
	return seq, hash, notFound(err)
}

// PruneAudit removes a node's events up to and including cp.Seq and its
// older checkpoints, and writes cp (kind "prune") in their place, in one
// transaction. ErrConflict means the event at cp.Seq is gone or no longer
// has cp.Hash: the log changed since the caller checked it.
func (db *DB) PruneAudit(ctx context.Context, cp AuditCheckpoint) (removed int64, err error) {
	err = db.inTx(ctx, func(tx querier) error {
		var hash string
		err := tx.QueryRowContext(ctx, db.auditSQL(`SELECT hash FROM {events} WHERE node = $1 AND seq = $2`),
			cp.Node, cp.Seq).Scan(&hash)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && hash != cp.Hash) {
			return ErrConflict
		}
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, db.auditSQL(`DELETE FROM {events} WHERE node = $1 AND seq <= $2`), cp.Node, cp.Seq)
		if err != nil {
			return err
		}
		if removed, err = res.RowsAffected(); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, db.auditSQL(`DELETE FROM {chain} WHERE node = $1 AND seq < $2`), cp.Node, cp.Seq); err != nil {
			return err
		}
		return db.insertAuditCheckpoint(ctx, tx, cp)
	})
	return removed, err
}

// ListAuditEvents returns events matching f in (time, node, seq) order.
// The statement is assembled from a fixed set of conditions, so only a
// bounded number of distinct statements is ever prepared.
func (db *DB) ListAuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if !f.Since.IsZero() {
		where = append(where, "time >= "+arg(utc(f.Since)))
	}
	if !f.Until.IsZero() {
		where = append(where, "time < "+arg(utc(f.Until)))
	}
	if f.PathPrefix != "" {
		where = append(where, "path >= "+arg(f.PathPrefix))
		if bound, ok := prefixUpperBound(f.PathPrefix); ok {
			where = append(where, "path < "+arg(bound))
		}
	}
	if f.Accessor != "" {
		where = append(where, "token_accessor = "+arg(f.Accessor))
	}
	if f.Decision != "" {
		where = append(where, "decision = "+arg(f.Decision))
	}
	if f.Node != "" {
		where = append(where, "node = "+arg(f.Node))
	}
	if f.AfterNode != "" {
		where = append(where, "(time, node, seq) > ("+arg(utc(f.AfterTime))+", "+arg(f.AfterNode)+", "+arg(f.AfterSeq)+")")
	}
	q := `SELECT ` + auditEventColumns + ` FROM {events}`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY time, node, seq LIMIT ` + arg(f.Limit)
	rows, err := db.q().QueryContext(ctx, db.auditSQL(q), args...)
	if err != nil {
		return nil, classify(err)
	}
	return scanAuditEvents(rows)
}

func scanAuditEvents(rows *sql.Rows) ([]AuditEvent, error) {
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		var (
			e               AuditEvent
			policies        string
			data            sql.NullString
			status, latency sql.NullInt64
			errText, mac    sql.NullString
		)
		if err := rows.Scan(&e.Node, &e.Seq, &e.Time, &e.RequestID, &e.ClientIP, &e.TokenAccessor, &e.TokenHMAC,
			&e.AuthMethod, &e.Operation, &e.Path, &e.Resource, &e.Capability, &policies, &e.Decision, &data,
			&e.PrevHash, &e.Hash, &status, &errText, &latency, &mac); err != nil {
			return nil, classify(err)
		}
		e.Time = e.Time.UTC()
		e.RequestData = data.String
		if err := json.Unmarshal([]byte(policies), &e.Policies); err != nil {
			return nil, fmt.Errorf("storage: audit event %s/%d has corrupt policies: %w", e.Node, e.Seq, err)
		}
		if status.Valid {
			e.Outcome = &AuditOutcome{Seq: e.Seq, Status: int(status.Int64), Error: errText.String,
				LatencyMicros: latency.Int64, MAC: mac.String}
		}
		out = append(out, e)
	}
	return out, classify(rows.Err())
}

// CoreKey returns a cluster-wide key as stored (encrypted by the barrier).
// ErrNotFound means it has not been created yet.
func (db *DB) CoreKey(ctx context.Context, name string) ([]byte, error) {
	var blob []byte
	err := db.q().QueryRowContext(ctx, `SELECT ciphertext FROM core_keys WHERE name = $1`, name).Scan(&blob)
	return blob, notFound(err)
}

// CreateCoreKey stores a cluster-wide key once. ErrConflict means it exists
// already (another node created it first): read that one instead.
func (db *DB) CreateCoreKey(ctx context.Context, name string, ciphertext []byte, now time.Time) error {
	_, err := db.q().ExecContext(ctx, `INSERT INTO core_keys (name, ciphertext, created_at) VALUES ($1, $2, $3)`,
		name, ciphertext, utc(now))
	return classify(err)
}
