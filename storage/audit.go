package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// AuditEvent is one stored audit event: its request part, chained to the
// node's previous event by PrevHash and Hash, and its outcome once written
// (in the event's own row when known as it was appended, else in a table
// of its own, read back joined).
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
	// Superseded is the outcome stored with the event (whole) when one
	// stored apart corrects it; nil otherwise.
	Superseded *AuditOutcome
	// Unreadable, when set, says which stored column could not be read
	// back as the writer stores it (policies that are not a JSON list): the
	// row was altered, and the event cannot verify.
	Unreadable string
}

// AuditOutcome is how a request ended. Seq names its event when the
// outcome is written after the event (StoreAuditOutcomes).
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
	CheckpointMAC  string
}

// AuditBatch is one group commit of a node's audit log, written in one
// transaction: new events (in seq order; those that carry an Outcome are
// stored whole, the outcome in the event's row) and optionally a
// checkpoint.
type AuditBatch struct {
	Node       string
	Events     []AuditEvent
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
	// MaxBytes, when positive, ends the page early: once the events kept
	// take MaxBytes (by Size, an estimate), no more are kept (the driver
	// may still receive, and discard, the rest of the LIMIT).
	MaxBytes int
}

// The audit tables' names are the one difference between the engines'
// audit SQL: PostgreSQL keeps them in the audit schema the runbook asks
// for, SQLite (which has no schemas) names them with a prefix. Statements
// are written with {events}, {outcomes} and {chain} and rewritten here.
var (
	pgAuditNames = strings.NewReplacer("{events}", "audit.events", "{outcomes}", "audit.outcomes", "{chain}", "audit.hash_chain",
		"{etime}", "e.time", "{node as text}", "node", "{and seq is whole}", "", "{and e.key is whole}", "",
		"{and chain key is whole}", "", "{+node}", "node")
	// SQLite compares times as the text stored: an event's time is read
	// as that text, which must be in the one form the writer stores. Its
	// columns take a value of any type: reads of a node's chain take only
	// rows with a whole seq ({and seq is whole}; text sorts after every
	// number, so a seq altered into text would otherwise end the chain, or
	// repeat a page for ever), AuditMistypedRow finds the others and names
	// node names stored as BLOBs, and scanAuditEvents notes any other column
	// of a type the writer never stores there. The list of nodes takes a
	// name stored as a BLOB for the text it holds ({node as text}).
	liteAuditNames = strings.NewReplacer("{events}", "audit_events", "{outcomes}", "audit_outcomes", "{chain}", "audit_hash_chain",
		"{etime}", "CASE WHEN typeof(e.time) = 'text' THEN e.time END", "{node as text}", "CAST(node AS TEXT)",
		"{and seq is whole}", " AND typeof(seq) = 'integer'",
		"{and e.key is whole}", " AND typeof(e.seq) = 'integer' AND typeof(e.node) = 'text'",
		"{and chain key is whole}", " AND typeof(seq) = 'integer' AND typeof(kind) = 'text'", "{+node}", "+node")
)

func (db *DB) auditSQL(query string) string {
	cache, names := &liteAuditSQL, liteAuditNames
	if db.engine == Postgres {
		cache, names = &pgAuditSQL, pgAuditNames
	}
	if q, ok := cache.Load(query); ok {
		return q.(string)
	}
	q := names.Replace(query)
	cache.Store(query, q)
	return q
}

// pgAuditSQL and liteAuditSQL remember rewritten statements: the audit
// writer builds the same few on every batch. The statements are made of
// constants and chunk sizes (powers of two), so the caches stay small.
var pgAuditSQL, liteAuditSQL sync.Map

// auditEventInsertColumns are the columns of the events table: the
// request part of an event, its seq and its chain hashes, and the outcome
// of an event stored whole (NULL when it comes later, in the outcomes
// table).
const auditEventInsertColumns = `node, seq, time, request_id, client_ip, token_accessor, token_hmac, auth_method,
	operation, path, resource, capability, policies, decision, request_data, prev_hash, hash,
	status, error, latency_us, outcome_mac`

// auditEventWidth is the number of columns in auditEventInsertColumns.
const auditEventWidth = 21

// auditEventColumns reads an event with its outcome from either place:
// events e, outcomes o.
const auditEventColumns = `e.node, e.seq, {etime}, e.request_id, e.client_ip, e.token_accessor, e.token_hmac,
	e.auth_method, e.operation, e.path, e.resource, e.capability, e.policies, e.decision, e.request_data,
	e.prev_hash, e.hash, e.status, e.error, e.latency_us, e.outcome_mac, o.status, o.error, o.latency_us, o.mac`

// auditEventsJoined is the FROM clause that goes with auditEventColumns.
const auditEventsJoined = `{events} AS e LEFT JOIN {outcomes} AS o ON o.node = e.node AND o.seq = e.seq`

// auditOutcomeWidth is the number of parameters one outcome row takes
// (the node is shared by every row of a statement).
const auditOutcomeWidth = 5

// auditChunk is the most rows one INSERT statement carries. A batch is cut
// into chunks whose sizes are powers of two, so only a few distinct
// statements exist to prepare (nine per kind), whatever the batch sizes.
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

// AppendAudit writes a batch in one transaction. On PostgreSQL that is a
// single statement, one round trip, whatever the batch's size. ErrConflict
// means an event's (node, seq) is taken: another writer uses the node's
// name. ErrCheckpointTaken means the events were stored but the checkpoint
// was not, its place taken by another row.
func (db *DB) AppendAudit(ctx context.Context, b AuditBatch) error {
	db.auditTxs.Add(1)
	if db.engine == Postgres {
		db.txs.Add(1) // a statement on its own is a transaction
		return classify(db.writeAuditBatchPG(ctx, auditPool{db}, b))
	}
	return db.appendAuditLite(ctx, b)
}

// writeAuditBatchPG writes a batch in one statement whatever its size:
// the rows travel as arrays, one per column, which unnest turns back into
// rows (see unnestFrom), and a data-modifying WITH clause inserts the
// checkpoint with them. Only two statements exist (with or without a
// checkpoint).
func (db *DB) writeAuditBatchPG(ctx context.Context, q querier, b AuditBatch) error {
	a := newEventArrays(len(b.Events))
	for _, e := range b.Events {
		if err := a.add(e); err != nil {
			return err
		}
	}
	args := a.args(b.Node)
	query := pgAppendEvents
	if c := b.Checkpoint; c != nil {
		i := len(args)
		args = append(args, c.Seq, c.Hash, c.Kind, utc(c.CreatedAt), c.MAC)
		query += fmt.Sprintf(`
		INSERT INTO {chain} (node, seq, hash, kind, created_at, mac) VALUES ($1, $%d, $%d, $%d, $%d, $%d)
		ON CONFLICT (node, seq, kind) DO NOTHING`, i+1, i+2, i+3, i+4, i+5)
	} else {
		query += ` SELECT`
	}
	res, err := q.ExecContext(ctx, db.auditSQL(query), args...)
	if err != nil || b.Checkpoint == nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err // the statement's own count is the checkpoint's insert
	}
	return db.checkpointStands(ctx, q, *b.Checkpoint)
}

// checkpointStands is nil when the row at c's node, seq and kind, which an
// insert of c found taken, is c (a retry of a commit that did happen), and
// ErrCheckpointTaken when it is another.
func (db *DB) checkpointStands(ctx context.Context, q querier, c AuditCheckpoint) error {
	var hash, mac string
	err := q.QueryRowContext(ctx, db.auditSQL(`SELECT hash, mac FROM {chain} WHERE node = $1 AND seq = $2 AND kind = $3`),
		c.Node, c.Seq, c.Kind).Scan(&hash, &mac)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return ErrCheckpointTaken // there a moment ago, gone now: not ours either
	case err != nil:
		return err
	case hash != c.Hash || mac != c.MAC:
		return ErrCheckpointTaken
	}
	return nil
}

// The PostgreSQL statements that write a batch of events (followed by the
// checkpoint's insert, or by SELECT) and a group of outcomes, whatever
// their number: node, then one array per column.
var (
	pgAppendEvents = `WITH events AS (INSERT INTO {events} (` + auditEventInsertColumns + `)
		SELECT $1, ` + unnestFrom(2, "bigint", "timestamptz", "text", "text", "text", "text", "text", "text", "text", "text",
		"text", "text", "text", "text", "text", "text", "integer", "text", "bigint", "text") + `)`
	pgStoreOutcomes = `INSERT INTO {outcomes} (node, seq, status, error, latency_us, mac)
		SELECT $1, ` + unnestFrom(2, "bigint", "integer", "text", "bigint", "text") + `
		ON CONFLICT (node, seq) DO NOTHING`
)

// unnestFrom is the select list that turns array parameters $first,
// $first+1, … (of the element types given) back into rows: one unnest per
// array, in the select list, where PostgreSQL steps through them together
// row by row. The same arrays in FROM (unnest(a, b, …)) give the same rows,
// but PostgreSQL first copies each array into a store of its own with at
// least 16 kB of bookkeeping: for the 20 columns of an event that was over
// 300 kB per statement, which glibc gave back to the kernel after every
// batch (a brk shrink and a TLB flush on every core), and twice the
// database CPU of the whole statement.
func unnestFrom(first int, types ...string) string {
	var b strings.Builder
	for i, t := range types {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "unnest($%d::%s[])", first+i, t)
	}
	return b.String()
}

// eventArrays are event rows as PostgreSQL arrays, one per column of
// auditEventInsertColumns after node, for unnest.
type eventArrays struct {
	seqs, times, ids, ips, accessors, hmacs, methods, ops, paths, resources, capabilities, policies, decisions, data,
	prevs, hashes, statuses, errs, latencies, macs pgArray
}

// newEventArrays makes room for n events of typical sizes, so that most
// batches build each array without growing it again.
func newEventArrays(n int) eventArrays {
	text := func(size int) pgArray { return newPGArray(oidText, n, size) }
	return eventArrays{
		seqs: newPGArray(oidInt8, n, 8), times: newPGArray(oidTimestamptz, n, 8),
		ids: text(36), ips: text(16), accessors: text(24), hmacs: text(76), methods: text(8), ops: text(8),
		paths: text(32), resources: text(32), capabilities: text(8), policies: text(16), decisions: text(8),
		data: text(16), prevs: text(64), hashes: text(64),
		statuses: newPGArray(oidInt4, n, 4), errs: text(4), latencies: newPGArray(oidInt8, n, 8), macs: text(64),
	}
}

func (a *eventArrays) add(e AuditEvent) error {
	p, err := json.Marshal(nonNil(e.Policies))
	if err != nil {
		return err
	}
	if o := e.Outcome; o != nil && (o.Status < math.MinInt32 || o.Status > math.MaxInt32) {
		return fmt.Errorf("storage: audit event %d: status %d is out of range", e.Seq, o.Status)
	}
	a.seqs.int8(e.Seq)
	a.times.time(e.Time)
	a.ids.text(e.RequestID)
	a.ips.text(e.ClientIP)
	a.accessors.text(e.TokenAccessor)
	a.hmacs.text(e.TokenHMAC)
	a.methods.text(e.AuthMethod)
	a.ops.text(e.Operation)
	a.paths.text(e.Path)
	a.resources.text(e.Resource)
	a.capabilities.text(e.Capability)
	a.policies.text(string(p))
	a.decisions.text(e.Decision)
	if e.RequestData == "" {
		a.data.null()
	} else {
		a.data.text(e.RequestData)
	}
	a.prevs.text(e.PrevHash)
	a.hashes.text(e.Hash)
	if o := e.Outcome; o != nil {
		a.statuses.int4(int32(o.Status))
		a.errs.text(o.Error)
		a.latencies.int8(o.LatencyMicros)
		a.macs.text(o.MAC)
	} else {
		a.statuses.null()
		a.errs.null()
		a.latencies.null()
		a.macs.null()
	}
	return nil
}

// args are node and the arrays, the parameters of pgAppendEvents.
func (a *eventArrays) args(node string) []any {
	return []any{node, a.seqs.bytes(), a.times.bytes(), a.ids.bytes(), a.ips.bytes(), a.accessors.bytes(),
		a.hmacs.bytes(), a.methods.bytes(), a.ops.bytes(), a.paths.bytes(), a.resources.bytes(), a.capabilities.bytes(),
		a.policies.bytes(), a.decisions.bytes(), a.data.bytes(), a.prevs.bytes(), a.hashes.bytes(), a.statuses.bytes(),
		a.errs.bytes(), a.latencies.bytes(), a.macs.bytes()}
}

// outcomeArrays are outcome rows as PostgreSQL arrays, one per column
// (seq, status, error, latency_us, mac), for unnest.
type outcomeArrays struct{ seqs, statuses, errors, latencies, macs pgArray }

func newOutcomeArrays(n int) outcomeArrays {
	return outcomeArrays{seqs: newPGArray(oidInt8, n, 8), statuses: newPGArray(oidInt4, n, 4),
		errors: newPGArray(oidText, n, 8), latencies: newPGArray(oidInt8, n, 8), macs: newPGArray(oidText, n, 64)}
}

func (a *outcomeArrays) add(o AuditOutcome) error {
	if o.Status < math.MinInt32 || o.Status > math.MaxInt32 {
		return fmt.Errorf("storage: audit outcome %d: status %d is out of range", o.Seq, o.Status)
	}
	a.seqs.int8(o.Seq)
	a.statuses.int4(int32(o.Status))
	a.errors.text(o.Error)
	a.latencies.int8(o.LatencyMicros)
	a.macs.text(o.MAC)
	return nil
}

func (a *outcomeArrays) args() []any {
	return []any{a.seqs.bytes(), a.statuses.bytes(), a.errors.bytes(), a.latencies.bytes(), a.macs.bytes()}
}

// writeAuditBatch writes a batch with multi-row INSERTs, for SQLite.
func (db *DB) writeAuditBatch(ctx context.Context, tx querier, b AuditBatch) error {
	rest := b.Events
	for _, n := range chunks(len(rest)) {
		if err := db.insertAuditEvents(ctx, tx, rest[:n]); err != nil {
			return err
		}
		rest = rest[n:]
	}
	if b.Checkpoint != nil {
		return db.insertAuditCheckpoint(ctx, tx, *b.Checkpoint)
	}
	return nil
}

// appendAuditLite writes a batch in a transaction on SQLite. A checkpoint
// whose place is taken by another row does not undo the events: they are
// committed, and ErrCheckpointTaken says the checkpoint is not.
func (db *DB) appendAuditLite(ctx context.Context, b AuditBatch) error {
	var taken error
	err := db.inTx(ctx, func(tx querier) error {
		taken = nil
		if err := db.writeAuditBatch(ctx, tx, b); err != nil {
			return err
		}
		if b.Checkpoint != nil {
			taken = db.checkpointStands(ctx, tx, *b.Checkpoint)
			if !errors.Is(taken, ErrCheckpointTaken) {
				return taken
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return taken
}

func (db *DB) insertAuditEvents(ctx context.Context, tx querier, events []AuditEvent) error {
	var q strings.Builder
	q.WriteString(`INSERT INTO {events} (` + auditEventInsertColumns + `) VALUES `)
	placeholders(&q, len(events), auditEventWidth, 1, func(b *strings.Builder, params []string) {
		b.WriteString("(" + strings.Join(params, ", ") + ")")
	})
	args := make([]any, 0, len(events)*auditEventWidth)
	for _, e := range events {
		policies, err := json.Marshal(nonNil(e.Policies))
		if err != nil {
			return err
		}
		args = append(args, e.Node, e.Seq, utc(e.Time), e.RequestID, e.ClientIP, e.TokenAccessor, e.TokenHMAC,
			e.AuthMethod, e.Operation, e.Path, e.Resource, e.Capability, string(policies), e.Decision,
			sql.NullString{String: e.RequestData, Valid: e.RequestData != ""}, e.PrevHash, e.Hash)
		if o := e.Outcome; o != nil {
			args = append(args, o.Status, o.Error, o.LatencyMicros, o.MAC)
		} else {
			args = append(args, nil, nil, nil, nil)
		}
	}
	_, err := tx.ExecContext(ctx, db.auditSQL(q.String()), args...)
	return err
}

// insertAuditOutcomes inserts a node's outcomes in one statement and
// returns how many were new: an event that has an outcome row keeps it.
// Its text depends on len(outs): callers pass chunks (powers of two).
func (db *DB) insertAuditOutcomes(ctx context.Context, tx querier, node string, outs []AuditOutcome) (int64, error) {
	var q strings.Builder
	q.WriteString(`INSERT INTO {outcomes} (node, seq, status, error, latency_us, mac) VALUES `)
	placeholders(&q, len(outs), auditOutcomeWidth, 2, func(b *strings.Builder, p []string) {
		b.WriteString("($1, " + strings.Join(p, ", ") + ")")
	})
	q.WriteString(` ON CONFLICT (node, seq) DO NOTHING`)
	args := make([]any, 0, 1+len(outs)*auditOutcomeWidth)
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

// StoreAuditOutcomes writes the outcomes of a node's stored events apart
// from the batches that append events, in one transaction, and returns how
// many were new: an event that has an outcome keeps it. It does not check
// that the events exist; the caller writes outcomes only for committed
// events. On PostgreSQL that is one statement whatever the count (arrays
// and unnest, as for events); a statement whose text depended on the
// count would be parsed and planned anew for most groups.
func (db *DB) StoreAuditOutcomes(ctx context.Context, node string, outs []AuditOutcome) (stored int64, err error) {
	if len(outs) == 0 {
		return 0, nil
	}
	db.auditTxs.Add(1)
	if db.engine == Postgres {
		db.txs.Add(1) // a statement on its own is a transaction
		a := newOutcomeArrays(len(outs))
		for _, o := range outs {
			if err := a.add(o); err != nil {
				return 0, err
			}
		}
		res, err := auditPool{db}.ExecContext(ctx, db.auditSQL(pgStoreOutcomes), append([]any{node}, a.args()...)...)
		if err != nil {
			return 0, classify(err)
		}
		n, err := res.RowsAffected()
		return n, classify(err)
	}
	err = db.inTx(ctx, func(tx querier) error {
		stored = 0
		left := outs
		for _, n := range chunks(len(left)) {
			applied, err := db.insertAuditOutcomes(ctx, tx, node, left[:n])
			if err != nil {
				return err
			}
			stored += applied
			left = left[n:]
		}
		return nil
	})
	return stored, err
}

// auditPool runs the audit log's own statements on the pool, prepared,
// without counting them as the requests' queries (RoundTrips counts them
// as audit batches).
type auditPool struct{ db *DB }

func (p auditPool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := p.db.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (p auditPool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := p.db.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (p auditPool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := p.db.prepared(ctx, query)
	if err != nil {
		return p.db.sql.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

func (db *DB) insertAuditCheckpoint(ctx context.Context, tx querier, c AuditCheckpoint) error {
	_, err := tx.ExecContext(ctx, db.auditSQL(`INSERT INTO {chain} (node, seq, hash, kind, created_at, mac)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (node, seq, kind) DO NOTHING`),
		c.Node, c.Seq, c.Hash, c.Kind, utc(c.CreatedAt), c.MAC)
	return err
}

// AuditHead reads where a node's stored chain ends. The checkpoint is read
// first: a batch commits its events with its checkpoint, so one committed
// between the two reads adds events past the checkpoint read, never a
// checkpoint past the events read (which would look like a cut tail).
func (db *DB) AuditHead(ctx context.Context, node string) (AuditHead, error) {
	var h AuditHead
	err := db.q().QueryRowContext(ctx, db.auditSQL(`SELECT seq, hash, kind, mac FROM {chain} WHERE node = $1{and chain key is whole} ORDER BY seq DESC, kind DESC LIMIT 1`),
		node).Scan(&h.CheckpointSeq, &h.CheckpointHash, &h.CheckpointKind, &h.CheckpointMAC)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return AuditHead{}, classify(err)
	}
	err = db.q().QueryRowContext(ctx, db.auditSQL(`SELECT seq, hash FROM {events} WHERE node = $1{and seq is whole} ORDER BY seq DESC LIMIT 1`),
		node).Scan(&h.Seq, &h.Hash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return AuditHead{}, classify(err)
	}
	return h, nil
}

// AuditNodes lists every node with a stored event or checkpoint, by name
// in byte order.
func (db *DB) AuditNodes(ctx context.Context) ([]string, error) {
	return sortedStrings(db.q().QueryContext(ctx, db.auditSQL(`SELECT {node as text} FROM {events} UNION SELECT {node as text} FROM {chain}`)))
}

// AuditMistyped is a row of the audit tables whose node or seq is not
// stored as the writer stores it (text, a whole number): another value to
// every read of a node's chain, which never finds the row.
type AuditMistyped struct {
	Table    string // events, outcomes, or chain
	Node     string // as text
	Seq      int64  // as a whole number, when SeqWhole
	SeqWhole bool
	NodeType string // SQLite's names of the stored values' types
	SeqType  string
	KindType string // text outside the chain table, which has no kind
}

// AuditMistypedRow finds a row of the audit tables whose node name is not
// stored as text or whose seq is not a whole number (or, in the chain,
// whose kind is not text). Only SQLite, whose
// columns take a value of any type, can hold one: a BLOB with the bytes of
// a node's name is another value than the name, and a seq made text sorts
// after every number. It reads every row's node and seq (the tables'
// primary keys), once per verification.
func (db *DB) AuditMistypedRow(ctx context.Context) (AuditMistyped, bool, error) {
	if db.engine == Postgres {
		return AuditMistyped{}, false, nil
	}
	var m AuditMistyped
	var seq any
	q := func(table, kind string) string {
		return `SELECT '` + table + `', CAST(node AS TEXT), seq, typeof(node), typeof(seq), ` + kind + ` FROM {` + table + `}
			WHERE typeof(node) <> 'text' OR typeof(seq) <> 'integer' OR ` + kind + ` <> 'text'`
	}
	err := db.q().QueryRowContext(ctx, db.auditSQL(q("events", "'text'")+` UNION ALL `+q("outcomes", "'text'")+
		` UNION ALL `+q("chain", `typeof(kind)`)+` LIMIT 1`)).
		Scan(&m.Table, &m.Node, &seq, &m.NodeType, &m.SeqType, &m.KindType)
	if errors.Is(err, sql.ErrNoRows) {
		return AuditMistyped{}, false, nil
	}
	if err != nil {
		return AuditMistyped{}, false, classify(err)
	}
	m.Seq, m.SeqWhole = seq.(int64)
	return m, true, nil
}

// AuditEvents returns up to limit of a node's events after seq *after (nil:
// from the first, whatever its seq), in seq order.
func (db *DB) AuditEvents(ctx context.Context, node string, after *int64, limit int) ([]AuditEvent, error) {
	query, args := `SELECT `+auditEventColumns+` FROM `+auditEventsJoined+`
		WHERE e.node = $1{and e.key is whole} ORDER BY e.seq LIMIT $2`, []any{node, limit}
	if after != nil {
		query, args = `SELECT `+auditEventColumns+` FROM `+auditEventsJoined+`
		WHERE e.node = $1{and e.key is whole} AND e.seq > $3 ORDER BY e.seq LIMIT $2`, append(args, *after)
	}
	rows, err := db.q().QueryContext(ctx, db.auditSQL(query), args...)
	if err != nil {
		return nil, classify(err)
	}
	return scanAuditEvents(rows, 0)
}

// AuditCheckpoints returns up to limit of a node's checkpoints after
// (after.Seq, after.Kind) (nil: from the first), in that order.
func (db *DB) AuditCheckpoints(ctx context.Context, node string, after *AuditCheckpoint, limit int) ([]AuditCheckpoint, error) {
	query, args := `SELECT node, seq, hash, kind, created_at, mac FROM {chain}
		WHERE node = $1{and chain key is whole} ORDER BY seq, kind LIMIT $2`, []any{node, limit}
	if after != nil {
		query, args = `SELECT node, seq, hash, kind, created_at, mac FROM {chain}
		WHERE node = $1{and chain key is whole} AND (seq, kind) > ($3, $4) ORDER BY seq, kind LIMIT $2`, append(args, after.Seq, after.Kind)
	}
	rows, err := db.q().QueryContext(ctx, db.auditSQL(query), args...)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []AuditCheckpoint
	for rows.Next() {
		var (
			c  AuditCheckpoint
			at eventTime
		)
		if err := rows.Scan(&c.Node, &c.Seq, &c.Hash, &c.Kind, &at, &c.MAC); err != nil {
			return nil, classify(err)
		}
		// The MAC does not cover the time, which is for people: a value
		// altered into something that is not a time reads as none, rather
		// than fail every verification of every node.
		if at.bad == "" {
			c.CreatedAt = at.t
		}
		out = append(out, c)
	}
	return out, classify(rows.Err())
}

// AuditPruneBoundary finds the last event of node a prune before the given
// time may remove: the one just before the node's first event at or after
// it, so no event from that time on is ever removed even when times and
// seqs disagree slightly. ErrNotFound means there is nothing to remove.
func (db *DB) AuditPruneBoundary(ctx context.Context, node string, before time.Time) (seq int64, hash string, err error) {
	err = db.q().QueryRowContext(ctx, db.auditSQL(`SELECT seq, hash FROM {events} WHERE node = $1{and seq is whole}
		AND seq < COALESCE((SELECT MIN(seq) FROM {events} WHERE node = $1{and seq is whole} AND time >= $2), 9223372036854775807)
		ORDER BY seq DESC LIMIT 1`), node, utc(before)).Scan(&seq, &hash)
	return seq, hash, notFound(err)
}

const auditEventBeforeSQL = `SELECT EXISTS (SELECT 1 FROM {events} WHERE {+node} = $1 AND time < $2)`

// AuditEventBefore reports whether node has an event older than before.
// SQLite is kept ({+node}: a unary plus, no index) from choosing the
// primary key, which would read every event of the node, over the time
// index, which stops at the first older event (or finds none at once where
// every event is newer, as on a retention run with nothing to prune).
func (db *DB) AuditEventBefore(ctx context.Context, node string, before time.Time) (bool, error) {
	var found bool
	err := db.q().QueryRowContext(ctx, db.auditSQL(auditEventBeforeSQL),
		node, utc(before)).Scan(&found)
	return found, classify(err)
}

// PruneAudit removes a node's events (and their outcomes) up to and
// including cp.Seq and its older checkpoints, and writes cp (kind "prune") in their place, in one
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
		if _, err := tx.ExecContext(ctx, db.auditSQL(`DELETE FROM {outcomes} WHERE node = $1 AND seq <= $2`), cp.Node, cp.Seq); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, db.auditSQL(`DELETE FROM {chain} WHERE node = $1 AND seq < $2`), cp.Node, cp.Seq); err != nil {
			return err
		}
		if err := db.insertAuditCheckpoint(ctx, tx, cp); err != nil {
			return err
		}
		// A row someone else put at the prune's place must not pass for
		// it: the prune is undone, as when the boundary moved.
		if err := db.checkpointStands(ctx, tx, cp); err != nil {
			if errors.Is(err, ErrCheckpointTaken) {
				return fmt.Errorf("%w: %w", ErrConflict, err)
			}
			return err
		}
		return nil
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
		where = append(where, "e.time >= "+arg(utc(f.Since)))
	}
	if !f.Until.IsZero() {
		where = append(where, "e.time < "+arg(utc(f.Until)))
	}
	if f.PathPrefix != "" {
		where = append(where, "e.path >= "+arg(f.PathPrefix))
		if bound, ok := prefixUpperBound(f.PathPrefix); ok {
			where = append(where, "e.path < "+arg(bound))
		}
	}
	if f.Accessor != "" {
		where = append(where, "e.token_accessor = "+arg(f.Accessor))
	}
	if f.Decision != "" {
		where = append(where, "e.decision = "+arg(f.Decision))
	}
	if f.Node != "" {
		where = append(where, "e.node = "+arg(f.Node))
	}
	if f.AfterNode != "" {
		where = append(where, "(e.time, e.node, e.seq) > ("+arg(utc(f.AfterTime))+", "+arg(f.AfterNode)+", "+arg(f.AfterSeq)+")")
	}
	q := `SELECT ` + auditEventColumns + ` FROM ` + auditEventsJoined + ` WHERE TRUE{and e.key is whole}`
	if len(where) > 0 {
		q += ` AND ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY e.time, e.node, e.seq LIMIT ` + arg(f.Limit)
	rows, err := db.q().QueryContext(ctx, db.auditSQL(q), args...)
	if err != nil {
		return nil, classify(err)
	}
	return scanAuditEvents(rows, f.MaxBytes)
}

// Size is roughly how many bytes e takes in memory and in an answer, to
// bound pages of events by size as well as by count.
func (e AuditEvent) Size() int {
	n := 128 + len(e.Node) + len(e.RequestID) + len(e.ClientIP) + len(e.TokenAccessor) + len(e.TokenHMAC) +
		len(e.AuthMethod) + len(e.Operation) + len(e.Path) + len(e.Resource) + len(e.Capability) +
		len(e.Decision) + len(e.RequestData) + len(e.PrevHash) + len(e.Hash)
	for _, p := range e.Policies {
		n += len(p) + 3
	}
	if o := e.Outcome; o != nil {
		n += 32 + len(o.Error) + len(o.MAC)
	}
	return n
}

// scanAuditEvents reads events until rows end or, when maxBytes is
// positive, until those read take maxBytes.
func scanAuditEvents(rows *sql.Rows, maxBytes int) ([]AuditEvent, error) {
	defer rows.Close()
	var (
		out   []AuditEvent
		total int
		r     eventRow
	)
	cols := r.columns()
	for maxBytes <= 0 || total < maxBytes {
		if !rows.Next() {
			break
		}
		r = eventRow{}
		if err := rows.Scan(cols...); err != nil {
			return nil, classify(err)
		}
		e, policies, data := r.e, r.policies, r.data
		e.Time, e.Unreadable = r.at.t, r.at.bad
		if r.wrong != "" {
			e.Unreadable = r.wrong + " column holds a value of a type the writer never stores there"
		}
		e.RequestData = data.String
		// Altered in the database: verification names it; a listing still
		// shows the rest of the event, and of the log.
		if err := json.Unmarshal([]byte(policies), &e.Policies); err != nil {
			e.Policies, e.Unreadable = nil, "policies column is not a JSON list of names"
		} else if again, _ := json.Marshal(nonNil(e.Policies)); string(again) != policies {
			// null, or the same names spaced or escaped otherwise: read
			// alike, hashed alike, but never what the writer stores.
			e.Unreadable = "policies column is not in the form the writer stores"
		}
		if e.RequestData != "" && !json.Valid([]byte(e.RequestData)) {
			quoted, _ := json.Marshal(e.RequestData) // shown as the text it is
			e.RequestData, e.Unreadable = string(quoted), "request_data column is not JSON"
		}
		if data.Valid && data.String == "" && e.Unreadable == "" {
			// Means what NULL means, so it hashes alike; but the writer
			// stores NULL for none, so the row was altered.
			e.Unreadable = "request_data column is empty text, where the writer stores NULL"
		}
		// An outcome stored apart for an event stored whole corrects the
		// one in its row: the request was not answered as that one says
		// (its commit did not confirm, or its caller left).
		if e.Outcome = r.apart.outcome(e.Seq); e.Outcome == nil {
			e.Outcome = r.whole.outcome(e.Seq)
		} else {
			e.Superseded = r.whole.outcome(e.Seq) // for verification to check
		}
		out = append(out, e)
		total += e.Size()
	}
	return out, classify(rows.Err())
}

// sqliteTime is the form the SQLite driver stores times in (always UTC
// here), which is also how SQLite orders and compares them.
const sqliteTime = "2006-01-02 15:04:05.999999999-07:00"

// eventTime reads an event's time column: a time from PostgreSQL (whose
// 'infinity' arrives as text), the stored text from SQLite. A value that is
// not a time, or not in the form the writer stores, was altered: bad says
// so, for verification to name the event, rather than fail the whole read.
type eventTime struct {
	t   time.Time
	bad string
}

func (et *eventTime) Scan(v any) error {
	switch x := v.(type) {
	case time.Time:
		et.t = x.UTC()
	case string:
		et.parse(x)
	case []byte:
		et.parse(string(x))
	default:
		et.bad = "time column is not a time"
	}
	return nil
}

func (et *eventTime) parse(s string) {
	t, err := time.Parse(sqliteTime, s)
	if err != nil {
		et.bad = "time column is not a time"
		return
	}
	et.t = t.UTC()
	// The writer stores microseconds, which is all the chain hashes: a
	// finer digit would change where the row sorts, not its hash.
	if et.t.Format(sqliteTime) != s || et.t.Nanosecond()%1000 != 0 {
		et.bad = "time column is not in the form the writer stores"
	}
}

// eventRow is one row of auditEventColumns as read; wrong names the first
// column whose value is of a type the writer never stores there (only
// SQLite's columns take one: a BLOB where text belongs, text where a number
// does), for verification to name the event.
type eventRow struct {
	e            AuditEvent
	at           eventTime
	policies     string
	data         sql.NullString
	whole, apart nullOutcome
	wrong        string
}

// columns returns the Scan destinations of auditEventColumns, in order,
// pointing into r.
func (r *eventRow) columns() []any {
	c := func(name string, dst any) any { return typedColumn{name: name, dst: dst, wrong: &r.wrong} }
	e := &r.e
	return []any{c("node", &e.Node), c("seq", &e.Seq), &r.at, c("request_id", &e.RequestID), c("client_ip", &e.ClientIP),
		c("token_accessor", &e.TokenAccessor), c("token_hmac", &e.TokenHMAC), c("auth_method", &e.AuthMethod),
		c("operation", &e.Operation), c("path", &e.Path), c("resource", &e.Resource), c("capability", &e.Capability),
		c("policies", &r.policies), c("decision", &e.Decision), c("request_data", &r.data), c("prev_hash", &e.PrevHash),
		c("hash", &e.Hash), c("status", &r.whole.status), c("error", &r.whole.err), c("latency_us", &r.whole.latency),
		c("outcome_mac", &r.whole.mac), c("outcome status", &r.apart.status), c("outcome error", &r.apart.err),
		c("outcome latency_us", &r.apart.latency), c("outcome mac", &r.apart.mac)}
}

// typedColumn scans a column into dst (*string, *sql.NullString, *int64 or
// *sql.NullInt64) whatever the value's type, noting name in *wrong (if
// nothing is noted yet) when the type is not the one the writer stores:
// text (a BLOB's bytes are kept as its text), or a whole number.
type typedColumn struct {
	name  string
	dst   any
	wrong *string
}

func (c typedColumn) Scan(v any) error {
	ok := true
	switch d := c.dst.(type) {
	case *string:
		switch x := v.(type) {
		case string:
			*d = x
		case []byte:
			*d, ok = string(x), false
		default:
			*d, ok = fmt.Sprint(x), false
		}
	case *sql.NullString:
		switch x := v.(type) {
		case nil:
			*d = sql.NullString{}
		case string:
			*d = sql.NullString{String: x, Valid: true}
		case []byte:
			*d, ok = sql.NullString{String: string(x), Valid: true}, false
		default:
			*d, ok = sql.NullString{String: fmt.Sprint(x), Valid: true}, false
		}
	case *int64:
		*d, ok = v.(int64)
	case *sql.NullInt64:
		switch x := v.(type) {
		case nil:
			*d = sql.NullInt64{}
		case int64:
			*d = sql.NullInt64{Int64: x, Valid: true}
		default:
			*d, ok = sql.NullInt64{Valid: true}, false
		}
	default:
		return fmt.Errorf("storage: cannot scan into %T", c.dst)
	}
	if !ok && *c.wrong == "" {
		*c.wrong = c.name
	}
	return nil
}

// nullOutcome is an outcome's columns as read, NULL when there is none.
type nullOutcome struct {
	status, latency sql.NullInt64
	err, mac        sql.NullString
}

func (n nullOutcome) outcome(seq int64) *AuditOutcome {
	if !n.status.Valid {
		return nil
	}
	return &AuditOutcome{Seq: seq, Status: int(n.status.Int64), Error: n.err.String, LatencyMicros: n.latency.Int64, MAC: n.mac.String}
}
