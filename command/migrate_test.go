package command

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// migrateCLI runs `secrethub migrate ARGS` with the given environment.
func migrateCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	return cliWithEnv(t, env, append([]string{"migrate"}, args...)...)
}

// cliWithEnv runs `secrethub ARGS` with only the given SecretHub
// environment and a fresh HOME, returning the exit code, stdout and stderr.
func cliWithEnv(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	cleanEnv(t)
	for k, v := range env {
		t.Setenv(k, v)
	}
	t.Setenv("HOME", t.TempDir())
	c := newConsole("")
	code := run(context.Background(), args, c.io)
	return code, c.out.String(), c.err.String()
}

func TestMigrateOnAFreshSQLiteDirectory(t *testing.T) {
	versions, err := storage.EmbeddedVersions(storage.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	latest := versions[len(versions)-1]
	all := strings.Trim(fmt.Sprint(versions), "[]")
	dir := t.TempDir()
	dirFlag := "--data-dir=" + dir

	steps := []struct {
		name        string
		args        []string
		wantCurrent string
		wantPending string
		wantMsg     string
	}{
		{"status shows nothing applied and everything pending", []string{"status", dirFlag}, "0", all, ""},
		{"up applies every migration", []string{"up", dirFlag}, strconv.Itoa(int(latest)), "none",
			fmt.Sprintf("Success! The schema went from version 0 to version %d.", latest)},
		{"up again has nothing to do", []string{"up", dirFlag}, strconv.Itoa(int(latest)), "none",
			fmt.Sprintf("Success! Nothing to do: the schema stays at version %d.", latest)},
		{"down rolls back one migration", []string{"down", dirFlag}, strconv.Itoa(int(latest) - 1), strconv.Itoa(int(latest)), ""},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			code, out, errOut := migrateCLI(t, nil, st.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if rowValue(t, out, "Current Version") != st.wantCurrent || rowValue(t, out, "Pending") != st.wantPending ||
				rowValue(t, out, "Dirty") != "false" || rowValue(t, out, "Latest Version") != strconv.Itoa(int(latest)) ||
				rowValue(t, out, "Storage Type") != "sqlite" || rowValue(t, out, "Location") != filepath.Join(dir, storage.SQLiteFile) {
				t.Fatalf("migrate %s output:\n%s", st.args[0], out)
			}
			mustContain(t, "stdout", out, st.wantMsg)
		})
	}
	t.Run("the data directory comes from the environment too", func(t *testing.T) {
		code, out, errOut := migrateCLI(t, map[string]string{"SECRETHUB_DATA_DIR": dir}, "status", "-format=json")
		var view migrationView
		if err := json.Unmarshal([]byte(out), &view); code != 0 || err != nil {
			t.Fatalf("exit %d, %v: %s %s", code, err, out, errOut)
		}
		if view.Location != filepath.Join(dir, storage.SQLiteFile) || view.CurrentVersion != latest-1 {
			t.Fatalf("status = %+v", view)
		}
	})
	t.Run("and from a config file", func(t *testing.T) {
		cfg := writeFile(t, "secrethub.toml", fmt.Sprintf("secrethub_data_dir = %q\n", dir))
		code, out, errOut := migrateCLI(t, nil, "up", "--config", cfg)
		if code != 0 || rowValue(t, out, "Current Version") != strconv.Itoa(int(latest)) {
			t.Fatalf("exit %d: %s %s", code, out, errOut)
		}
	})
	t.Run("down with a bad count is refused", func(t *testing.T) {
		code, _, errOut := migrateCLI(t, nil, "down", "zero", dirFlag)
		if code != 1 || !strings.Contains(errOut, "N must be a positive whole number") {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
}

func TestMigrateForce(t *testing.T) {
	versions, err := storage.EmbeddedVersions(storage.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	latest := strconv.Itoa(int(versions[len(versions)-1]))
	dirFlag := "--data-dir=" + t.TempDir()
	if code, _, errOut := migrateCLI(t, nil, "up", dirFlag); code != 0 {
		t.Fatalf("up: exit %d: %s", code, errOut)
	}

	steps := []struct {
		name        string
		args        []string
		wantCode    int
		wantCurrent string
		wantMsg     string
	}{
		{"force 0 records that no migration is applied", []string{"0"}, 0, "0",
			"Success! The schema went from version " + latest + " to version 0."},
		{"force to the latest version records it again", []string{latest}, 0, latest,
			"Success! The schema went from version 0 to version " + latest + "."},
		{"a version this binary does not have is refused by storage, clearly", []string{"999"}, 1, "",
			"Error: cannot force the schema to version 999: storage: 999 is not a migration version of this binary"},
		{"a negative version is refused", []string{"--", "-1"}, 1, "", `VERSION must be a migration version, or 0 for none applied, got "-1"`},
		{"a version that is not a number is refused", []string{"latest"}, 1, "", `VERSION must be a migration version`},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			code, out, errOut := migrateCLI(t, nil, append([]string{"force", dirFlag}, st.args...)...)
			if code != st.wantCode {
				t.Fatalf("exit %d, want %d: %s %s", code, st.wantCode, out, errOut)
			}
			if st.wantCode != 0 {
				mustContain(t, "stderr", errOut, st.wantMsg)
				return
			}
			mustContain(t, "stdout", out, st.wantMsg)
			if rowValue(t, out, "Current Version") != st.wantCurrent || rowValue(t, out, "Dirty") != "false" {
				t.Fatalf("force output:\n%s", out)
			}
		})
	}
}

func TestMigrateOnPostgreSQL(t *testing.T) {
	url := storagetest.PostgresURL(t)
	env := map[string]string{"DATABASE_URL": url}
	code, out, errOut := migrateCLI(t, env, "up")
	if code != 0 || rowValue(t, out, "Storage Type") != "postgres" || rowValue(t, out, "Pending") != "none" {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	if strings.Contains(out+errOut, "postgres://") {
		t.Fatalf("the database URL was printed:\n%s%s", out, errOut)
	}
	code, out, errOut = migrateCLI(t, env, "down", "--all")
	if code != 0 || rowValue(t, out, "Current Version") != "0" {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
}
