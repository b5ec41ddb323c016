package storagetest_test

import (
	"context"
	"database/sql"
	"net/url"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

func TestEnginesGiveFreshMigratedDatabases(t *testing.T) {
	seen := map[storage.Engine]bool{}
	storagetest.Engines(t, func(t *testing.T, db *storage.DB) {
		seen[db.Engine()] = true
		st, err := db.MigrationStatus(context.Background())
		if err != nil || st.Current != st.Latest || st.Current == 0 {
			t.Fatalf("not migrated: %+v, %v", st, err)
		}
		if paths, err := db.SecretPaths(context.Background(), ""); err != nil || len(paths) != 0 {
			t.Fatalf("not fresh: %v, %v", paths, err)
		}
	})
	if !seen[storage.SQLite] || !seen[storage.Postgres] {
		t.Fatalf("engines run: %v", seen)
	}
}

func TestPostgresDatabasesAreDroppedAfterTheTest(t *testing.T) {
	var name string
	t.Run("inner", func(t *testing.T) {
		u, err := url.Parse(storagetest.PostgresURL(t))
		if err != nil {
			t.Fatal(err)
		}
		name = strings.TrimPrefix(u.Path, "/")
	})
	admin, err := sql.Open("postgres", storagetest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var n int
	if err := admin.QueryRow(`SELECT count(*) FROM pg_database WHERE datname = $1`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("database %s still exists after its test ended", name)
	}
}
