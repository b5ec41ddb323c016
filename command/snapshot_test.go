package command

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// snapshotCLI runs `secrethub operator snapshot ARGS` with the given environment.
func snapshotCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	return cliWithEnv(t, env, append([]string{"operator", "snapshot"}, args...)...)
}

func TestOperatorSnapshotSaveAndRestore(t *testing.T) {
	src := t.TempDir()
	if code, _, errOut := migrateCLI(t, nil, "up", "--data-dir="+src); code != 0 {
		t.Fatalf("migrate up: exit %d: %s", code, errOut)
	}
	file := filepath.Join(t.TempDir(), "backup.snap")
	code, out, errOut := snapshotCLI(t, map[string]string{"SECRETHUB_DATA_DIR": src}, "save", file)
	if code != 0 || !strings.Contains(out, "Success! Snapshot of "+filepath.Join(src, "secrethub.db")+" saved to "+file) {
		t.Fatalf("save: exit %d: %s %s", code, out, errOut)
	}
	dst := t.TempDir()
	code, out, errOut = snapshotCLI(t, nil, "restore", file, "--data-dir="+dst)
	if code != 0 || !strings.Contains(out, "Success! Restored") {
		t.Fatalf("restore: exit %d: %s %s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dst, "secrethub.db")); err != nil {
		t.Fatalf("restore wrote no database: %v", err)
	}
	if strings.Contains(out, "previous database") {
		t.Fatalf("restore into an empty directory names a previous database: %s", out)
	}
	// Again, over the database just restored: it is kept, and said where.
	code, out, errOut = snapshotCLI(t, nil, "restore", file, "--data-dir="+dst)
	kept, _ := filepath.Glob(filepath.Join(dst, "secrethub.db.pre-restore-*"))
	if code != 0 || len(kept) != 1 || !strings.Contains(out, "The previous database was kept as "+kept[0]) {
		t.Fatalf("restore over a database: exit %d, kept %v: %s %s", code, kept, out, errOut)
	}
}

func TestOperatorSnapshotRefusals(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"PostgreSQL is backed up with pg_dump", map[string]string{"DATABASE_URL": "postgres://secrethub@127.0.0.1:1/x"},
			[]string{"save", filepath.Join(t.TempDir(), "pg.snap")}, "pg_dump $DATABASE_URL"},
		{"a data directory without a database is named", nil,
			[]string{"save", filepath.Join(t.TempDir(), "none.snap"), "--data-dir=" + filepath.Join(t.TempDir(), "empty")}, "no SecretHub database in"},
		{"a missing snapshot file is named", nil,
			[]string{"restore", filepath.Join(t.TempDir(), "absent.snap"), "--data-dir=" + t.TempDir()}, "absent.snap"},
		{"FILE is required", nil, []string{"save"}, "accepts 1 arg"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, errOut := snapshotCLI(t, c.env, c.args...)
			if code == 0 || !strings.Contains(errOut, c.want) {
				t.Fatalf("exit %d, stderr %q; want a failure mentioning %q", code, errOut, c.want)
			}
		})
	}
}
