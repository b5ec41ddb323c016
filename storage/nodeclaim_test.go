package storage_test

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// A node name is held by one server at a time on PostgreSQL: a second
// claim is refused, naming the holder's session, until the first ends.
func TestNodeNameClaimIsExclusiveOnPostgres(t *testing.T) {
	ctx := context.Background()
	url := storagetest.PostgresURL(t)
	db := storagetest.Open(t, storage.Config{DatabaseURL: url})
	other := storagetest.Open(t, storage.Config{DatabaseURL: url}) // another server's pool
	raw := rawPostgres(t, url)
	first, err := db.ClaimNodeName(ctx, "core-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = other.ClaimNodeNameNow(ctx, "core-1", nil, time.Minute)
	if !errors.Is(err, storage.ErrNodeNameInUse) {
		t.Fatalf("second claim of core-1: %v, want ErrNodeNameInUse", err)
	}
	for _, want := range []string{`"core-1"`, "is held by another running server (its database session from 127.0.0.1 began 20"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if n := heldNodeLocks(t, raw); n != 1 {
		t.Fatalf("%d advisory locks held, want 1 (a refused claim must hold none)", n)
	}
	second, err := other.ClaimNodeName(ctx, "core-2", nil)
	if err != nil {
		t.Fatalf("claiming another name: %v", err)
	}
	defer second.Release()
	if !first.Held() || !second.Held() {
		t.Fatal("claims do not report themselves held")
	}

	// A claim waits a little for the name: a server restarted at once
	// finds it free as soon as its predecessor's session has ended.
	go func() {
		time.Sleep(300 * time.Millisecond)
		first.Release()
	}()
	again, err := other.ClaimNodeName(ctx, "core-1", nil)
	if err != nil {
		t.Fatalf("claiming core-1 while it is released: %v", err)
	}
	again.Release()
	if st := db.Stats(); st.InUse != 0 {
		t.Fatalf("%d connections still in use after Release", st.InUse)
	}
}

// A claim whose session ends under it (a restarted database, a cut
// connection) takes the name again; if another server took it meanwhile,
// that is logged as an error.
func TestNodeNameClaimIsTakenAgainAfterItsSessionEnds(t *testing.T) {
	ctx := context.Background()
	url := storagetest.PostgresURL(t)
	db := storagetest.Open(t, storage.Config{DatabaseURL: url})
	raw := rawPostgres(t, url)
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	claim, err := db.ClaimNodeNameNow(ctx, "core-1", log, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer claim.Release()

	terminateClaimSession(t, raw, "core-1")
	waitFor(t, "the claim to be taken again", func() bool {
		return strings.Contains(logs.String(), "holding this server's node name again") && claim.Held()
	})
	if !strings.Contains(logs.String(), "lost the hold on this server's node name") {
		t.Fatalf("the loss was not logged:\n%s", logs)
	}
	if _, err := db.ClaimNodeNameNow(ctx, "core-1", nil, time.Minute); !errors.Is(err, storage.ErrNodeNameInUse) {
		t.Fatalf("claim after the hold was taken again: %v, want ErrNodeNameInUse", err)
	}

	// Now another server takes the name before this one can.
	other := storagetest.Open(t, storage.Config{DatabaseURL: url})
	terminateClaimSession(t, raw, "core-1")
	var taken *storage.NodeClaim
	waitFor(t, "the other server to take the name", func() bool {
		taken, err = other.ClaimNodeNameNow(ctx, "core-1", nil, time.Minute)
		return err == nil
	})
	defer taken.Release()
	waitFor(t, "the usurped claim to log an error", func() bool {
		return strings.Contains(logs.String(), "level=ERROR") && strings.Contains(logs.String(), "another server took this server's node name")
	})
	if claim.Held() {
		t.Fatal("a claim whose name another server holds reports itself held")
	}
}

// The claim's session is a connection of its own: a pool of one (DB_POOL_SIZE=1)
// still serves while the name is held.
func TestNodeNameClaimTakesNoneOfThePool(t *testing.T) {
	db := storagetest.Open(t, storage.Config{DatabaseURL: storagetest.PostgresURL(t), PoolSize: 1})
	claim, err := db.ClaimNodeName(context.Background(), "core-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer claim.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := db.AuditHead(ctx, "core-1"); err != nil {
		t.Fatalf("a query with the name held by a pool of one: %v", err)
	}
}

// On SQLite a claim holds nothing: the data directory's lock already keeps
// one server per database file.
func TestNodeNameClaimOnSQLiteHoldsNothing(t *testing.T) {
	db := storagetest.SQLite(t)
	for range 2 {
		c, err := db.ClaimNodeName(context.Background(), "core-1", nil)
		if err != nil {
			t.Fatal(err)
		}
		if !c.Held() {
			t.Fatal("an SQLite claim reports itself not held")
		}
		defer c.Release()
	}
}

// heldNodeLocks counts the advisory locks granted in db's database.
func heldNodeLocks(t *testing.T, raw *sql.DB) int {
	t.Helper()
	var n int
	if err := raw.QueryRow(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// terminateClaimSession ends the database session holding node's name.
func terminateClaimSession(t *testing.T, raw *sql.DB, node string) {
	t.Helper()
	var ok bool
	if err := raw.QueryRow(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE application_name = $1 AND datname = current_database()`, "secrethub node "+node).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminating the claim's session: %v %v", ok, err)
	}
}

// rawPostgres is a pool of its own on url, for looking at locks and sessions.
func rawPostgres(t *testing.T, url string) *sql.DB {
	t.Helper()
	raw, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
