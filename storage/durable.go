package storage

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
)

// durableConnector opens PostgreSQL connections that commit durably, as
// fail-closed auditing needs: a request is served only once its audit
// event is on disk. PostgreSQL's default (synchronous_commit on) flushes
// the WAL before a commit returns; a role, database, URL or options set to
// off do not, so a connection that reads off sets local for its session
// (flushed on this server; no standby waited for, which off never did),
// and every connection pins its level (pinCommitLevel).
// Any other level (on, remote_write, remote_apply, local) is the
// operator's and is kept. It is checked on every connection the pool
// opens, not once at start, so a setting changed while the server runs is
// met as each connection is replaced (at least hourly).
//
// fsync off, which no session can change, makes every commit unsafe: that
// is logged, not refused, as test and scratch clusters run so on purpose.
type durableConnector struct {
	driver.Connector
	log *slog.Logger
	// raised and unsafe make each warning once per Open.
	raised, unsafe atomic.Bool
}

func (c *durableConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.settle(ctx, conn); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// pinCommitLevel reads synchronous_commit and fsync and sets
// synchronous_commit for the session: local where it was off, else what it
// was. Set by the session, the level no longer follows postgresql.conf: a
// reload to off reaches every session that has not set its own, and would
// leave open connections unsynced for up to their hour. (A reload that
// raises the level reaches each connection as the pool replaces it.)
const pinCommitLevel = `SELECT current_setting('synchronous_commit'), current_setting('fsync'),
	set_config('synchronous_commit', CASE current_setting('synchronous_commit') WHEN 'off' THEN 'local' ELSE current_setting('synchronous_commit') END, false)`

// settle reads the connection's commit settings and pins
// synchronous_commit, raised from off to local.
func (c *durableConnector) settle(ctx context.Context, conn driver.Conn) error {
	q, ok := conn.(driver.QueryerContext)
	if !ok {
		return errors.New("storage: the PostgreSQL driver's connection cannot run statements directly")
	}
	rows, err := q.QueryContext(ctx, pinCommitLevel, nil)
	if err != nil {
		return err
	}
	row := make([]driver.Value, 3)
	err = rows.Next(row)
	rows.Close()
	if errors.Is(err, io.EOF) {
		err = errors.New("no row")
	}
	if err != nil {
		return fmt.Errorf("storage: reading synchronous_commit: %w", err)
	}
	level, fsync := settingText(row[0]), settingText(row[1])
	if fsync == "off" && c.unsafe.CompareAndSwap(false, true) {
		c.log.Warn("PostgreSQL runs with fsync off: no commit is safe from a crash of its host, audit events included (set fsync = on in postgresql.conf)")
	}
	if level == "off" && c.raised.CompareAndSwap(false, true) {
		c.log.Warn("PostgreSQL's synchronous_commit is off for SecretHub's connections (by role, database, URL or options); each sets it to local, so every commit (each audit event first) is on disk before it is answered")
	}
	return nil
}

// settingText is a text column's value as lib/pq hands it over.
func settingText(v driver.Value) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return fmt.Sprint(v)
}
