package storage_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// runbookRole creates a login role as the runbook's step 1.1 does, with
// the database PostgresURL made: ALL PRIVILEGES on the database, and the
// audit schema created by the administrator and granted to it. grantPublic
// adds CREATE on public; asOwner makes it the database's owner instead.
// It returns the role's URL for that database and an administrator's
// connection to it; the role is dropped when the test ends. Each setup
// statement runs as the administrator; "migrate" there migrates the
// database as the administrator (its owner would do the same).
func runbookRole(t *testing.T, setup ...string) (roleURL string, admin *sql.DB) {
	t.Helper()
	ctx := context.Background()
	var b [5]byte
	_, _ = rand.Read(b[:])
	role := "secrethub_test_role_" + hex.EncodeToString(b[:])
	cluster, err := sql.Open("postgres", storagetest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cluster.Close() })
	if _, err := cluster.ExecContext(ctx, `CREATE USER `+role+` WITH PASSWORD 'pw'`); err != nil {
		t.Fatal(err)
	}
	// Registered before the database's own cleanup, so it runs after it.
	t.Cleanup(func() {
		if _, err := cluster.ExecContext(context.Background(), `DROP ROLE IF EXISTS `+role); err != nil {
			t.Errorf("dropping role %s: %v", role, err)
		}
	})
	dbURL := storagetest.PostgresURL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	admin, err = sql.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	for _, q := range append([]string{
		`GRANT ALL PRIVILEGES ON DATABASE ` + name + ` TO ` + role,
		`CREATE SCHEMA audit`,
		`GRANT ALL ON SCHEMA audit TO ` + role,
	}, setup...) {
		q = strings.NewReplacer("{role}", role, "{db}", name).Replace(q)
		if q == "migrate" {
			storagetest.Open(t, storage.Config{DatabaseURL: dbURL})
			continue
		}
		if _, err := admin.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	u.User = url.UserPassword(role, "pw")
	return u.String(), admin
}

// The runbook's step 1.1, followed word for word on PostgreSQL 15 or later
// (where only the database's owner may create tables in public), leaves
// the role able to create schemas: the server migrates into the schema
// named after the role, which the default search path puts first, so the
// runbook's `\dt` run as the role lists the tables; three nodes starting at
// once all get there, and a restart finds them.
func TestTheRunbooksDatabaseSetupMigrates(t *testing.T) {
	roleURL, admin := runbookRole(t)
	ctx := context.Background()
	// `secrethub migrate up` reads the status first, on the fresh database.
	first, err := storage.Open(ctx, storage.Config{DatabaseURL: roleURL, ConnectTimeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := first.MigrationStatus(ctx); err != nil || st.Current != 0 {
		t.Fatalf("status of the fresh database: %+v, %v", st, err)
	}
	first.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := storage.Open(ctx, storage.Config{DatabaseURL: roleURL, ConnectTimeout: 5 * time.Second}, nil)
			if err != nil {
				errs <- err
				return
			}
			defer db.Close()
			errs <- db.MigrateUp(ctx)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a node could not migrate: %v", err)
		}
	}
	db := storagetest.Open(t, storage.Config{DatabaseURL: roleURL}) // a restart
	if st, err := db.MigrationStatus(ctx); err != nil || st.Current != st.Latest || st.Dirty {
		t.Fatalf("migration status %+v, %v", st, err)
	}
	u, err := url.Parse(roleURL)
	if err != nil {
		t.Fatal(err)
	}
	role := u.User.Username()
	var tables []string
	rows, err := admin.QueryContext(ctx, `SELECT table_schema || '.' || table_name FROM information_schema.tables
		WHERE table_schema IN ($1, 'public') ORDER BY 1`, role)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, s)
	}
	for _, want := range []string{role + ".secret_versions", role + ".policies", role + ".schema_migrations"} {
		if !strings.Contains(strings.Join(tables, " "), want) {
			t.Errorf("no table %s among %v", want, tables)
		}
	}
	// What `psql $DATABASE_URL -c "\dt"` shows: the tables the role's own
	// search path finds first.
	asRole, err := sql.Open("postgres", roleURL)
	if err != nil {
		t.Fatal(err)
	}
	defer asRole.Close()
	var visible bool
	if err := asRole.QueryRowContext(ctx, `SELECT pg_table_is_visible('secret_versions'::regclass)`).Scan(&visible); err != nil || !visible {
		t.Fatalf("secret_versions visible on the role's search path: %v, %v", visible, err)
	}
	var audit int
	if err := asRole.QueryRowContext(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'audit'
		AND table_name IN ('events', 'hash_chain')`).Scan(&audit); err != nil || audit != 2 {
		t.Fatalf("audit.events and audit.hash_chain: %d found, %v", audit, err)
	}
}

// Where public is writable (granted, or the role owns the database) the
// tables go there, as before; where the role may neither create tables
// there nor create schemas, the error names the missing grant.
func TestMigrationsSayWhichGrantIsMissing(t *testing.T) {
	ctx := context.Background()
	t.Run("public granted", func(t *testing.T) {
		roleURL, admin := runbookRole(t, `GRANT CREATE ON SCHEMA public TO {role}`)
		storagetest.Open(t, storage.Config{DatabaseURL: roleURL})
		var schema string
		if err := admin.QueryRowContext(ctx, `SELECT table_schema FROM information_schema.tables WHERE table_name = 'secret_versions'`).Scan(&schema); err != nil || schema != "public" {
			t.Fatalf("secret_versions is in %q, %v; want public", schema, err)
		}
	})
	// Tables the database's owner migrated are used where they are, by a
	// role with data rights only (which may create nothing) as by the
	// runbook's role (which could create a schema of its own, and must
	// not: its empty tables would hide the real ones).
	for name, grants := range map[string][]string{
		"owner migrated, data rights only":   {`REVOKE CREATE ON DATABASE {db} FROM {role}`},
		"owner migrated, the runbook's role": nil,
	} {
		t.Run(name, func(t *testing.T) {
			roleURL, admin := runbookRole(t, append([]string{"migrate",
				`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public, audit TO {role}`}, grants...)...)
			db := storagetest.Open(t, storage.Config{DatabaseURL: roleURL})
			if st, err := db.MigrationStatus(ctx); err != nil || st.Current != st.Latest {
				t.Fatalf("status %+v, %v", st, err)
			}
			var schemas int
			if err := admin.QueryRowContext(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'secrethub_test_role_%'`).Scan(&schemas); err != nil || schemas != 0 {
				t.Fatalf("%d schemas named after the role were created (%v)", schemas, err)
			}
		})
	}
	t.Run("a search path without the role's schema, naming none that exists", func(t *testing.T) {
		roleURL, _ := runbookRole(t, `ALTER ROLE {role} IN DATABASE {db} SET search_path = app`)
		db, err := storage.Open(ctx, storage.Config{DatabaseURL: roleURL, ConnectTimeout: 5 * time.Second}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.MigrateUp(ctx); err == nil || !strings.Contains(err.Error(), "no schema of role") {
			t.Fatalf("migrate = %v; want an error saying no schema of the search path exists", err)
		}
	})
	t.Run("a search path putting public before the role's schema", func(t *testing.T) {
		roleURL, _ := runbookRole(t, `ALTER ROLE {role} IN DATABASE {db} SET search_path = public, "$user"`)
		db, err := storage.Open(ctx, storage.Config{DatabaseURL: roleURL, ConnectTimeout: 5 * time.Second}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.MigrateUp(ctx); err == nil || !strings.Contains(err.Error(), `GRANT CREATE ON SCHEMA "public" TO`) {
			t.Fatalf("migrate = %v; want an error naming the grant", err)
		}
	})
	t.Run("no right to create schemas", func(t *testing.T) {
		roleURL, _ := runbookRole(t, `REVOKE CREATE ON DATABASE {db} FROM {role}`)
		db, err := storage.Open(ctx, storage.Config{DatabaseURL: roleURL, ConnectTimeout: 5 * time.Second}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		err = db.MigrateUp(ctx)
		if err == nil || !strings.Contains(err.Error(), `GRANT CREATE ON SCHEMA "public" TO`) || strings.Contains(err.Error(), "pw") {
			t.Fatalf("migrate = %v; want an error naming the grant (and no password)", err)
		}
	})
}
