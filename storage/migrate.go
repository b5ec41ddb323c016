package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	mpostgres "github.com/golang-migrate/migrate/v4/database/postgres"
	msqlite "github.com/golang-migrate/migrate/v4/database/sqlite"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/lib/pq"

	"github.com/secrethub/secrethub/migrations"
)

// MigrationStatus describes the schema version of a database.
type MigrationStatus struct {
	// Current is the applied version, 0 when none is.
	Current uint
	// Dirty means a migration failed halfway and needs `migrate force`.
	Dirty bool
	// Latest is the newest version embedded in this binary.
	Latest uint
	// Pending lists embedded versions newer than Current.
	Pending []uint
}

// withMigrator runs fn with a golang-migrate instance over db. On PostgreSQL
// every change runs under an advisory lock, so several nodes starting at
// once apply each migration exactly once. On PostgreSQL it first makes sure
// a fresh database has a schema the tables can go in (ensureWritableSchema):
// golang-migrate creates its version table for every command, `migrate
// status` too, and `migrate up` reads the status first.
func (db *DB) withMigrator(ctx context.Context, fn func(m *migrate.Migrate) error) error {
	sub, err := fs.Sub(migrations.FS, string(db.engine))
	if err != nil {
		return fmt.Errorf("storage: migrations for %s: %w", db.engine, err)
	}
	src, err := iofs.New(sub, ".")
	if err != nil {
		return fmt.Errorf("storage: reading embedded migrations: %w", err)
	}
	defer src.Close()

	var drv database.Driver
	switch db.engine {
	case Postgres:
		conn, err := db.sql.Conn(ctx)
		if err != nil {
			return classify(err)
		}
		if err := ensureWritableSchema(ctx, conn); err != nil {
			conn.Close()
			return err
		}
		pg, err := mpostgres.WithConnection(ctx, conn, &mpostgres.Config{})
		if err != nil {
			conn.Close()
			return fmt.Errorf("storage: preparing migrations: %w", classify(err))
		}
		defer pg.Close() // returns the connection to the pool; the pool stays open
		drv = pg
	case SQLite:
		// The SQLite driver's Close would close our pool, so it is never called.
		lite, err := msqlite.WithInstance(db.sql, &msqlite.Config{})
		if err != nil {
			return fmt.Errorf("storage: preparing migrations: %w", classify(err))
		}
		drv = lite
	}
	m, err := migrate.NewWithInstance("iofs", src, string(db.engine), drv)
	if err != nil {
		return fmt.Errorf("storage: preparing migrations: %w", err)
	}
	return fn(m)
}

// MigrateUp applies every pending migration. It is what the server runs at start.
func (db *DB) MigrateUp(ctx context.Context) error {
	return db.withMigrator(ctx, func(m *migrate.Migrate) error {
		if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
			return fmt.Errorf("storage: applying migrations: %w", err)
		}
		return nil
	})
}

// MigrateDown rolls back n migrations; n <= 0 rolls back all of them.
func (db *DB) MigrateDown(ctx context.Context, n int) error {
	return db.withMigrator(ctx, func(m *migrate.Migrate) error {
		var err error
		if n <= 0 {
			err = m.Down()
		} else {
			err = m.Steps(-n)
		}
		if err != nil && !errors.Is(err, migrate.ErrNoChange) {
			return fmt.Errorf("storage: rolling back migrations: %w", err)
		}
		return nil
	})
}

// MigrateForce marks version as applied and clean without running anything,
// the way out of a dirty state after fixing a failed migration by hand.
// Version 0 records that no migration is applied; any other version must
// be one embedded in this binary.
func (db *DB) MigrateForce(ctx context.Context, version int) error {
	versions, err := EmbeddedVersions(db.engine)
	if err != nil {
		return err
	}
	if version != 0 && !slices.Contains(versions, uint(version)) {
		return fmt.Errorf("storage: %d is not a migration version of this binary (known: %v)", version, versions)
	}
	if version == 0 {
		version = -1 // golang-migrate's "no version"
	}
	return db.withMigrator(ctx, func(m *migrate.Migrate) error {
		return m.Force(version)
	})
}

// MigrationStatus reports the applied and the embedded schema versions.
func (db *DB) MigrationStatus(ctx context.Context) (MigrationStatus, error) {
	var st MigrationStatus
	err := db.withMigrator(ctx, func(m *migrate.Migrate) error {
		v, dirty, err := m.Version()
		if err != nil && !errors.Is(err, migrate.ErrNilVersion) {
			return fmt.Errorf("storage: reading schema version: %w", err)
		}
		st.Current, st.Dirty = v, dirty
		return nil
	})
	if err != nil {
		return st, err
	}
	versions, err := EmbeddedVersions(db.engine)
	if err != nil {
		return st, err
	}
	for _, v := range versions {
		if v > st.Current {
			st.Pending = append(st.Pending, v)
		}
		st.Latest = max(st.Latest, v)
	}
	return st, nil
}

// EmbeddedVersions lists the migration versions compiled in for engine.
func EmbeddedVersions(engine Engine) ([]uint, error) {
	entries, err := fs.ReadDir(migrations.FS, string(engine))
	if err != nil {
		return nil, fmt.Errorf("storage: listing migrations: %w", err)
	}
	seen := map[uint]bool{}
	var out []uint
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		if !ok {
			continue
		}
		v, err := strconv.ParseUint(num, 10, 32)
		if err != nil || seen[uint(v)] {
			continue
		}
		seen[uint(v)] = true
		out = append(out, uint(v))
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// ensureWritableSchema makes sure a fresh database's tables have a schema
// to go in. From PostgreSQL 15 on, a role given a database as the runbook's
// step 1.1 does (GRANT ALL PRIVILEGES ON DATABASE) may create schemas in it
// but not tables in public, where the default search path ("$user",
// public) puts them. Then, on a database where the search path finds no
// migrations table yet (tables found there, wherever they are, are used as
// they are: a role with data rights only keeps working), the schema named
// after the role is created when the search path names it: the tables go
// there, and the runbook's `psql $DATABASE_URL -c "\dt"`, run as the role,
// lists them. Where that cannot help, the error says what is missing.
func ensureWritableSchema(ctx context.Context, conn *sql.Conn) error {
	var (
		schema                        sql.NullString
		writable, migrated, mayCreate bool
		role, searchPath              string
	)
	err := conn.QueryRowContext(ctx, `SELECT current_schema(), COALESCE(has_schema_privilege(current_schema(), 'CREATE'), false),
		to_regclass('schema_migrations') IS NOT NULL, current_user, current_setting('search_path'),
		has_database_privilege(current_database(), 'CREATE')`).Scan(&schema, &writable, &migrated, &role, &searchPath, &mayCreate)
	if err != nil || writable || migrated {
		return classify(err)
	}
	if mayCreate && namesOwnSchema(searchPath, role) {
		// Nodes starting at once may race to create it: the loser's
		// duplicate_schema means it is there.
		_, err := conn.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS `+pq.QuoteIdentifier(role))
		var pqErr *pq.Error
		if err != nil && !(errors.As(err, &pqErr) && (pqErr.Code == "42P06" || pqErr.Code == "23505")) {
			return fmt.Errorf("storage: creating schema %q for the tables: %w", role, classify(err))
		}
		// A session that lost that race can keep the search path it
		// resolved before the schema existed (seen on PostgreSQL 15):
		// setting the path to itself makes it resolve it again.
		if _, err := conn.ExecContext(ctx, `SELECT set_config('search_path', current_setting('search_path'), false)`); err != nil {
			return classify(err)
		}
		// Where the path puts another schema first (public, "$user"),
		// the tables would still go there: say so below.
		if err := conn.QueryRowContext(ctx, `SELECT current_schema(), COALESCE(has_schema_privilege(current_schema(), 'CREATE'), false)`).
			Scan(&schema, &writable); err != nil || writable {
			return classify(err)
		}
	}
	if !schema.Valid {
		return fmt.Errorf("storage: no schema of role %q's search path (%s) exists: create one it may create tables in", role, searchPath)
	}
	return fmt.Errorf("storage: role %q may not create tables in schema %q (from PostgreSQL 15 on, public is the database owner's): "+
		"GRANT CREATE ON SCHEMA %s TO %s, or make %s the database's owner",
		role, schema.String, pq.QuoteIdentifier(schema.String), pq.QuoteIdentifier(role), pq.QuoteIdentifier(role))
}

// namesOwnSchema reports whether a search_path setting names the role's
// own schema: "$user", or the role's name.
func namesOwnSchema(searchPath, role string) bool {
	for _, s := range strings.Split(searchPath, ",") {
		s = strings.TrimSpace(s)
		if s == `"$user"` || s == "$user" || s == role || s == pq.QuoteIdentifier(role) {
			return true
		}
	}
	return false
}
