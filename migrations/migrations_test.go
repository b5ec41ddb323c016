package migrations_test

import (
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/migrations"
)

// Both engines must carry the same schema versions, each with an up and a
// down file, or an upgrade would mean different things on each.
func TestEnginesHaveTheSameVersionsWithUpAndDown(t *testing.T) {
	names := func(engine string) []string {
		entries, err := fs.ReadDir(migrations.FS, engine)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}
	pg, lite := names("postgres"), names("sqlite")
	if len(pg) == 0 {
		t.Fatal("no PostgreSQL migrations embedded")
	}
	if !slices.Equal(pg, lite) {
		t.Fatalf("migration files differ between engines:\npostgres %v\nsqlite   %v", pg, lite)
	}
	for _, name := range pg {
		base, ok := strings.CutSuffix(name, ".up.sql")
		if !ok {
			continue
		}
		if !slices.Contains(pg, base+".down.sql") {
			t.Errorf("%s has no down migration", name)
		}
	}
}
