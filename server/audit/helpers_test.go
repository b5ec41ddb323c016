package audit

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// logDB is a real database of one engine, with a second, plain connection
// for tampering the way someone with database access would.
type logDB struct {
	*storage.DB
	raw      *sql.DB
	events   string // the events table's name on this engine
	outcomes string // the outcomes table's name
	chain    string // the hash chain table's name
}

// engines runs fn once per engine, each with a fresh, migrated database.
func engines(t *testing.T, fn func(t *testing.T, db logDB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		db := storagetest.Open(t, storage.Config{DataDir: dir})
		dsn := (&url.URL{Scheme: "file", OmitHost: true, Path: filepath.Join(dir, storage.SQLiteFile),
			RawQuery: "_pragma=busy_timeout(10000)&_time_format=sqlite"}).String()
		fn(t, logDB{DB: db, raw: openRaw(t, "sqlite", dsn), events: "audit_events", outcomes: "audit_outcomes", chain: "audit_hash_chain"})
	})
	t.Run("postgres", func(t *testing.T) { fn(t, postgresLog(t)) })
}

func postgresLog(t testing.TB) logDB {
	u := storagetest.PostgresURL(t)
	db := storagetest.Open(t, storage.Config{DatabaseURL: u})
	return logDB{DB: db, raw: openRaw(t, "postgres", u), events: "audit.events", outcomes: "audit.outcomes", chain: "audit.hash_chain"}
}

func openRaw(t testing.TB, driver, dsn string) *sql.DB {
	raw, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

// sql rewrites {events}, {outcomes} and {chain} in query to this engine's
// table names.
func (db logDB) sql(query string) string {
	return strings.NewReplacer("{events}", db.events, "{outcomes}", db.outcomes, "{chain}", db.chain).Replace(query)
}

// exec runs SQL on the plain connection.
func (db logDB) exec(t testing.TB, query string, args ...any) {
	t.Helper()
	if _, err := db.raw.Exec(db.sql(query), args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func (db logDB) count(t testing.TB, query string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.raw.QueryRow(db.sql(query), args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func ctx() context.Context { return context.Background() }

// errorLog collects what a writer reports to OnError.
type errorLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errorLog) add(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

func (l *errorLog) all() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

// newWriter starts a writer with keys set that the test closes at its end.
func newWriter(t testing.TB, store Store, node string, opt Options) *Writer {
	t.Helper()
	if opt.OnError == nil {
		opt.OnError = func(err error) { t.Logf("OnError: %v", err) }
	}
	w, err := NewWriter(ctx(), store, node, opt)
	if err != nil {
		t.Fatal(err)
	}
	w.SetKeys(testKeys)
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(ctx(), 10*time.Second)
		defer cancel()
		_ = w.Close(c)
	})
	return w
}

// sample is an event as a handler would send it.
func sample(i int) Event {
	return Event{
		RequestID: fmt.Sprint("req-", i), ClientIP: "198.51.100.4", TokenAccessor: "acc-1234",
		AuthMethod: "token", Operation: "GET", Path: fmt.Sprint("/v1/secrets/static/app/", i),
		Resource: fmt.Sprint("app/", i), Capability: "read", Policies: []string{"default", "app"},
		Decision: DecisionAllow,
	}
}

// appendN appends n events and completes each with status 200.
func appendN(t testing.TB, w *Writer, n int) {
	t.Helper()
	for i := range n {
		seq, err := w.Append(ctx(), sample(i))
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		w.Complete(seq, Outcome{Status: 200, Latency: time.Millisecond})
	}
}

// closeWriter closes w, failing the test if that fails.
func closeWriter(t testing.TB, w *Writer) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx(), 10*time.Second)
	defer cancel()
	if err := w.Close(c); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// mustVerify verifies the log and returns the report, failing on errors.
func mustVerify(t testing.TB, a Archive, live map[string]int64) Report {
	t.Helper()
	opt := VerifyOptions{Live: map[string]Live{}}
	for n, seq := range live {
		opt.Live[n] = Live{Seq: seq}
	}
	rep, err := Verify(ctx(), a, testKeys, opt)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return rep
}
