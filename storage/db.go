// Package storage is SecretHub's only door to the database. It speaks to
// PostgreSQL (through lib/pq) when a DATABASE_URL is configured and to an
// embedded SQLite file otherwise; the SQL is shared between the two engines
// wherever it is the same, and dialect.go holds what differs.
//
// storage knows nothing about encryption: secret material arrives already
// sealed by the barrier and leaves still sealed.
package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lib/pq"  // PostgreSQL driver, registered as "postgres"
	"modernc.org/sqlite" // pure-Go SQLite driver, registered as "sqlite"
)

// Engine names a database engine.
type Engine string

// The two supported engines.
const (
	Postgres Engine = "postgres"
	SQLite   Engine = "sqlite"
)

// Config says which database to open and how.
type Config struct {
	// DatabaseURL selects PostgreSQL when set (postgres://… or postgresql://…).
	DatabaseURL string
	// PoolSize is the maximum number of open connections (DB_POOL_SIZE).
	PoolSize int
	// DataDir holds the embedded SQLite file when DatabaseURL is empty.
	DataDir string
	// ConnectTimeout bounds how long Open keeps retrying an unreachable
	// PostgreSQL server before giving up.
	ConnectTimeout time.Duration
}

// DefaultPoolSize is used when Config.PoolSize is not positive.
const DefaultPoolSize = 20

// SQLiteFile is the file name of the embedded database inside DataDir.
const SQLiteFile = "secrethub.db"

// DB is an open database of either engine. It is safe for concurrent use.
type DB struct {
	sql       *sql.DB
	engine    Engine
	location  string
	dsn       string // PostgreSQL's, for connections kept outside the pool
	queries   atomic.Int64
	txs       atomic.Int64
	auditTxs  atomic.Int64
	stmts     sync.Map // SQL text → *sql.Stmt
	preparing sync.Map // SQL text → true while being prepared in the background
	// background tracks those preparations, so Close can wait for them
	// rather than race them for the database files; closing (under mu)
	// stops new ones.
	mu         sync.Mutex
	background sync.WaitGroup
	closing    bool
}

// Open connects to the configured database. For PostgreSQL it retries with
// backoff until ConnectTimeout while the server is unreachable, then returns
// an error that names the host (never the password).
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*DB, error) {
	if cfg.PoolSize <= 0 {
		cfg.PoolSize = DefaultPoolSize
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.DatabaseURL != "" {
		return openPostgres(ctx, cfg, log)
	}
	return openSQLite(ctx, cfg)
}

func openPostgres(ctx context.Context, cfg Config, log *slog.Logger) (*DB, error) {
	where, err := describePostgresURL(cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	dsn := withBinaryParameters(cfg.DatabaseURL)
	connector, err := pq.NewConnector(dsn)
	if err != nil {
		return nil, fmt.Errorf("storage: DATABASE_URL for %s is not usable: %s", where, redact(err.Error(), cfg.DatabaseURL))
	}
	sdb := sql.OpenDB(&durableConnector{Connector: connector, log: log})
	sdb.SetMaxOpenConns(cfg.PoolSize)
	sdb.SetMaxIdleConns(cfg.PoolSize)
	sdb.SetConnMaxIdleTime(10 * time.Minute)
	sdb.SetConnMaxLifetime(time.Hour)

	timeout := cfg.ConnectTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	deadline := time.Now().Add(timeout)
	backoff := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = sdb.PingContext(pingCtx)
		cancel()
		if err == nil {
			break
		}
		if !isTransient(err) || time.Now().Add(backoff).After(deadline) {
			sdb.Close()
			return nil, fmt.Errorf("storage: cannot reach PostgreSQL at %s after %d attempt(s): %s", where, attempt, redact(err.Error(), cfg.DatabaseURL))
		}
		log.Warn("database unreachable, retrying", "database", where, "attempt", attempt, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			sdb.Close()
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	return &DB{sql: sdb, engine: Postgres, location: where, dsn: dsn}, nil
}

// withBinaryParameters turns on lib/pq's binary_parameters, whatever the
// URL says: a statement with parameters then travels in one network round
// trip instead of a prepare followed by an execute, and a []byte parameter
// travels in binary form, which the audit writer's batches (binary arrays,
// see pgArray) need: sent as text, PostgreSQL would refuse every batch.
// A URL that cannot be parsed is left for lib/pq to report.
func withBinaryParameters(dsn string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return dsn
		}
		q := u.Query()
		q.Set("binary_parameters", "yes")
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " binary_parameters=yes" // key=value form: the last setting wins
}

func openSQLite(ctx context.Context, cfg Config) (*DB, error) {
	dir := cfg.DataDir
	if dir == "" {
		dir = "data"
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("storage: creating data directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, SQLiteFile)
	// Create the file ourselves so it is never world-readable, whatever the umask.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("storage: opening %s: %w", path, err)
	}
	f.Close()

	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	// FULL: every commit is on disk before it returns. In WAL mode NORMAL
	// syncs only at checkpoints, so a power cut (or a pulled plug) could
	// lose commits already answered: a read served because its audit event
	// was committed, or a secret written and acknowledged. Fail-closed
	// auditing means an event is durable before its request is served.
	q.Add("_pragma", "synchronous(FULL)")
	// And sync with fdatasync, as SQLite's own Linux builds do: as durable,
	// without flushing the file's timestamps with every commit. This
	// library's default is fsync; on a journaling ext4, KV reads and writes
	// ran 12–30 % faster (docs/architecture.md). Process-wide; unavailable
	// (and left off) on macOS and Windows.
	_, _ = sqlite.Fdatasync(true)
	q.Set("_time_format", "sqlite")
	// Writers take the lock at BEGIN, so two writers never deadlock upgrading
	// from a read lock; they queue on busy_timeout instead.
	q.Set("_txlock", "immediate")
	// Built as a URL so a directory name with ?, # or % cannot change
	// which file is opened or how.
	dsn := (&url.URL{Scheme: "file", OmitHost: true, Path: filepath.ToSlash(path), RawQuery: q.Encode()}).String()
	sdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("storage: opening %s: %w", path, err)
	}
	pool := cfg.PoolSize
	sdb.SetMaxOpenConns(pool)
	sdb.SetMaxIdleConns(pool)
	if err := sdb.PingContext(ctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("storage: opening %s: %w", path, err)
	}
	return &DB{sql: sdb, engine: SQLite, location: path}, nil
}

// Engine reports which engine this database runs on.
func (db *DB) Engine() Engine { return db.engine }

// Location describes where the data lives without any credential: the
// SQLite file path, or host:port/dbname for PostgreSQL.
func (db *DB) Location() string { return db.location }

// Stats reports the connection pool's statistics (for the pool
// utilization metric).
func (db *DB) Stats() sql.DBStats { return db.sql.Stats() }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error { return classify(db.sql.PingContext(ctx)) }

// Close waits for background statement preparation, then closes every
// pooled connection.
func (db *DB) Close() error {
	db.mu.Lock()
	db.closing = true
	db.mu.Unlock()
	db.background.Wait()
	return db.sql.Close()
}

// RoundTrips counts the statements run outside transactions and the
// transactions run, since the database was opened. Tests use it to hold the
// hot paths to their budget of database round trips.
type RoundTrips struct {
	Queries      int64
	Transactions int64
	// AuditBatches counts the audit log's group commits, which are also
	// counted in Transactions: a request's own budget is Transactions
	// minus AuditBatches.
	AuditBatches int64
}

// RoundTrips returns the counters.
func (db *DB) RoundTrips() RoundTrips {
	return RoundTrips{Queries: db.queries.Load(), Transactions: db.txs.Load(), AuditBatches: db.auditTxs.Load()}
}

// querier runs statements, outside or inside a transaction.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// prepared returns the statement for query, preparing it on first use.
// database/sql then keeps it prepared per pooled connection, so SQLite does
// not parse the SQL again and PostgreSQL runs it with one Bind/Execute.
// Every statement in this package is a constant, so the cache is bounded.
func (db *DB) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := db.stmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := db.sql.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := db.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// q returns the pool as a querier that counts every statement as a round trip.
func (db *DB) q() querier { return poolQuerier{db} }

// poolQuerier runs prepared statements on the pool, counting each.
type poolQuerier struct{ db *DB }

func (p poolQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	p.db.queries.Add(1)
	st, err := p.db.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (p poolQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	p.db.queries.Add(1)
	st, err := p.db.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (p poolQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	p.db.queries.Add(1)
	st, err := p.db.prepared(ctx, query)
	if err != nil {
		// A Row cannot carry an error built here; running the query
		// unprepared reports the same failure through Scan.
		return p.db.sql.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// txQuerier runs prepared statements inside one transaction.
type txQuerier struct {
	db *DB
	tx *sql.Tx
}

// stmt returns the cached statement bound to the transaction's connection.
// A statement not cached yet runs unprepared this time and is prepared in
// the background: preparing it here would wait for a second pooled
// connection while this transaction holds one, which deadlocks a small pool.
func (t txQuerier) stmt(ctx context.Context, query string) *sql.Stmt {
	if st, ok := t.db.stmts.Load(query); ok {
		return t.tx.StmtContext(ctx, st.(*sql.Stmt))
	}
	if _, busy := t.db.preparing.LoadOrStore(query, true); !busy {
		t.db.mu.Lock()
		defer t.db.mu.Unlock()
		if t.db.closing {
			t.db.preparing.Delete(query)
			return nil
		}
		t.db.background.Add(1)
		go func() {
			defer t.db.background.Done()
			defer t.db.preparing.Delete(query)
			_, _ = t.db.prepared(context.Background(), query)
		}()
	}
	return nil
}

func (t txQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

func (t txQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, query, args...)
}

func (t txQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}

// inTx runs fn in one transaction, committing if fn returns nil.
func (db *DB) inTx(ctx context.Context, fn func(tx querier) error) error {
	db.txs.Add(1)
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return classify(err)
	}
	if err := fn(txQuerier{db: db, tx: tx}); err != nil {
		_ = tx.Rollback()
		return classify(err)
	}
	return classify(tx.Commit())
}

// notFound turns sql.ErrNoRows into ErrNotFound and classifies the rest.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return classify(err)
}
