package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"
)

// ErrNodeNameInUse refuses a server whose node name a running server on
// the same PostgreSQL database already holds. Each node name has one audit
// chain, which only one writer can extend: two servers sharing a name
// would refuse each other's batches (and answer 503) for as long as both run.
var ErrNodeNameInUse = errors.New("storage: the node name is held by another running server")

// nodeClaimCheck is how often a claim's connection is checked, and
// nodeClaimPatience how long ClaimNodeName waits for a name in use: a
// server restarted at once may find its predecessor's session still
// ending, as PostgreSQL frees the lock only once it has read the goodbye.
const (
	nodeClaimCheck    = 10 * time.Second
	nodeClaimPatience = 5 * time.Second
)

// NodeClaim is a running server's hold on its node name: on PostgreSQL a
// session advisory lock, on a connection of its own outside the pool (so it
// takes none of DB_POOL_SIZE), which PostgreSQL frees when that session ends
// however the server ends. On SQLite it holds nothing: LockDataDir already
// keeps one server per database.
type NodeClaim struct {
	db   *DB
	pool *sql.DB // at most one connection: the claim's session
	name string
	key  int64
	log  *slog.Logger

	mu   sync.Mutex
	conn *sql.Conn // nil while the hold is lost
	stop chan struct{}
	done chan struct{}
}

// ClaimNodeName takes name for this server until Release, or fails with
// ErrNodeNameInUse if it is still held after a few seconds (saying where
// the holder connects from, when PostgreSQL shows it). While it runs, the
// claim's connection is checked every few seconds; if it breaks, the claim
// is taken again as soon as the database answers, and log says so (an
// error if another server took the name meanwhile).
//
// The claim's session asks PostgreSQL to probe its client within about
// half a minute (TCP keepalives), so the name of a server whose host lost
// power is free again once PostgreSQL notices, not hours later.
func (db *DB) ClaimNodeName(ctx context.Context, name string, log *slog.Logger) (*NodeClaim, error) {
	return db.claimNodeName(ctx, name, log, nodeClaimPatience, nodeClaimCheck)
}

func (db *DB) claimNodeName(ctx context.Context, name string, log *slog.Logger, patience, every time.Duration) (*NodeClaim, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &NodeClaim{db: db, name: name, key: nodeNameKey(name), log: log}
	if db.engine != Postgres {
		return c, nil
	}
	pool, err := sql.Open("postgres", db.dsn)
	if err != nil {
		return nil, classify(err)
	}
	pool.SetMaxOpenConns(1)
	c.pool = pool
	giveUp := time.Now().Add(patience)
	conn, err := c.take(ctx)
	for errors.Is(err, ErrNodeNameInUse) && time.Now().Before(giveUp) {
		select {
		case <-ctx.Done():
			pool.Close()
			return nil, err
		case <-time.After(250 * time.Millisecond):
		}
		conn, err = c.take(ctx)
	}
	if err != nil {
		pool.Close()
		return nil, err
	}
	c.conn, c.stop, c.done = conn, make(chan struct{}), make(chan struct{})
	go c.watch(every)
	return c, nil
}

// nodeNameKey is the advisory lock key of a node name: 64 bits of FNV-1a,
// under a prefix of its own so no other lock's key meets it.
func nodeNameKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("secrethub node name\x00"))
	h.Write([]byte(name))
	return int64(h.Sum64())
}

// take opens a session and locks the name in it: the session is the hold.
func (c *NodeClaim) take(ctx context.Context) (*sql.Conn, error) {
	conn, err := c.pool.Conn(ctx)
	if err != nil {
		return nil, classify(err)
	}
	var got bool
	// Keepalives every 5 s after 10 s idle, 3 unanswered probes or 30 s of
	// unacknowledged data end the session; the application name tells
	// operators looking at pg_stat_activity what the session is.
	err = conn.QueryRowContext(ctx, `SELECT set_config('application_name', $1, false) IS NOT NULL
		AND set_config('tcp_keepalives_idle', '10', false) IS NOT NULL
		AND set_config('tcp_keepalives_interval', '5', false) IS NOT NULL
		AND set_config('tcp_keepalives_count', '3', false) IS NOT NULL
		AND set_config('tcp_user_timeout', '30000', false) IS NOT NULL
		AND pg_try_advisory_lock($2)`, clip("secrethub node "+c.name, 63), c.key).Scan(&got)
	if err == nil && got {
		return conn, nil
	}
	discard(conn)
	if err != nil {
		return nil, classify(err)
	}
	return nil, c.inUse(ctx)
}

// inUse is ErrNodeNameInUse, with where the holder connects from when
// PostgreSQL shows it (it shows other roles' sessions only to some).
func (c *NodeClaim) inUse(ctx context.Context) error {
	var from string
	var since time.Time
	u := uint64(c.key)
	err := c.db.sql.QueryRowContext(ctx, `SELECT coalesce(host(a.client_addr), 'a local socket'), a.backend_start
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
		AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid AND a.backend_start IS NOT NULL`,
		int64(u>>32), int64(u&0xffffffff)).Scan(&from, &since)
	e := nameInUse{name: c.name}
	if err == nil {
		e.holder = fmt.Sprintf(" (its database session from %s began %s)", from, since.UTC().Format(time.RFC3339))
	}
	return e
}

// nameInUse is ErrNodeNameInUse for one name.
type nameInUse struct{ name, holder string }

func (e nameInUse) Error() string {
	return fmt.Sprintf("storage: node name %q is held by another running server%s", e.name, e.holder)
}

func (e nameInUse) Is(target error) bool { return target == ErrNodeNameInUse }

// watch checks the hold every interval and takes the name again after
// losing it, until Release.
func (c *NodeClaim) watch(every time.Duration) {
	defer close(c.done)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), every)
		c.check(ctx)
		cancel()
	}
}

// check pings a held claim's session, or tries to take a lost claim again.
func (c *NodeClaim) check(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		err := c.conn.PingContext(ctx)
		if err == nil {
			return
		}
		discard(c.conn)
		c.conn = nil
		c.log.Warn("lost the hold on this server's node name (its database session failed); taking it again",
			"node", c.name, "error", classify(err).Error())
	}
	conn, err := c.take(ctx)
	switch {
	case errors.Is(err, ErrNodeNameInUse):
		c.log.Error("another server took this server's node name while the hold was lost: give each server its own SECRETHUB_NODE_NAME",
			"node", c.name, "error", err.Error())
	case err != nil:
		c.log.Warn("taking the hold on this server's node name again failed; retrying", "node", c.name, "error", err.Error())
	default:
		c.conn = conn
		c.log.Info("holding this server's node name again", "node", c.name)
	}
}

// Held reports whether the claim holds its name now (always, on SQLite).
func (c *NodeClaim) Held() bool {
	if c.done == nil {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil
}

// Release gives the name up: the lock is dropped with the session it was
// taken in, which is closed.
func (c *NodeClaim) Release() {
	if c.done == nil {
		return
	}
	close(c.stop)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		discard(c.conn)
		c.conn = nil
	}
	c.pool.Close()
}

// discard closes a session instead of keeping it for reuse.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}

// clip shortens s to at most n bytes without splitting a UTF-8 sequence.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}
