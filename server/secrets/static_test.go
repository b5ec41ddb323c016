package secrets_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secrethub/secrethub/server/barrier"
	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/server/seal"
	"github.com/secrethub/secrethub/server/secrets"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

var t0 = time.Date(2026, 11, 29, 10, 0, 0, 123456789, time.UTC)

func bg() context.Context { return context.Background() }

// engine is the static engine over a real SQLite store, encrypting through
// a real, initialized and unsealed seal.
type engine struct {
	*secrets.Static
	db   *storage.DB
	seal *seal.Manager
	now  time.Time // the engine's clock, moved by the test
}

func newEngine(t *testing.T, maxVersions int) *engine {
	t.Helper()
	e := &engine{db: storagetest.SQLite(t), now: t0}
	clock := func() time.Time { return e.now }
	e.seal = seal.New(e.db, clock)
	res, err := e.seal.Init(bg(), 1, 1, storage.Token{Hash: "root-hash", Accessor: "root", Policies: []string{"root"}, CreatedAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.seal.Unseal(bg(), res.Keys[0]); err != nil {
		t.Fatal(err)
	}
	e.Static = secrets.NewStatic(e.db, e.seal, clock, maxVersions)
	return e
}

func (e *engine) put(t *testing.T, path string, data map[string]any) secrets.VersionInfo {
	t.Helper()
	v, err := e.Put(bg(), path, data, nil)
	if err != nil {
		t.Fatalf("Put(%q): %v", path, err)
	}
	return v
}

// value reads a version and returns its "v" field, or the error.
func (e *engine) value(path string, version int) (any, error) {
	got, err := e.Get(bg(), path, version)
	if err != nil {
		return nil, err
	}
	return got.Data["v"], nil
}

// raw opens a second, plain connection to the engine's SQLite file, for
// reading and changing rows behind the engine's back.
func (e *engine) raw(t *testing.T) *sql.DB {
	t.Helper()
	conn, err := sql.Open("sqlite", "file:"+e.db.Location()+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func val(v any) map[string]any { return map[string]any{"v": v} }

func TestPutAndGetVersions(t *testing.T) {
	e := newEngine(t, 0)
	v1 := e.put(t, "prod/db", val("one"))
	e.now = e.now.Add(time.Minute)
	v2 := e.put(t, "prod/db", val("two"))
	t.Run("writes number versions from 1 and stamp the clock's time", func(t *testing.T) {
		if v1.Version != 1 || v2.Version != 2 {
			t.Fatalf("versions %d, %d; want 1, 2", v1.Version, v2.Version)
		}
		if !v1.CreatedTime.Equal(t0.Truncate(time.Microsecond)) || !v2.CreatedTime.Equal(t0.Add(time.Minute).Truncate(time.Microsecond)) {
			t.Fatalf("created %v, %v", v1.CreatedTime, v2.CreatedTime)
		}
	})
	cases := []struct {
		name    string
		path    string
		version int
		want    any
		err     error
	}{
		{"version 0 reads the current version", "prod/db", 0, "two", nil},
		{"an old version stays readable", "prod/db", 1, "one", nil},
		{"the current version by number", "prod/db", 2, "two", nil},
		{"a version not written yet is not found", "prod/db", 3, nil, secrets.ErrNotFound},
		{"a path never written is not found", "prod/other", 0, nil, secrets.ErrNotFound},
		{"a path that is a prefix of a secret is not found", "prod", 0, nil, secrets.ErrNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := e.value(c.path, c.version)
			if !errors.Is(err, c.err) || got != c.want {
				t.Fatalf("Get(%q, %d) = %v, %v; want %v, %v", c.path, c.version, got, err, c.want, c.err)
			}
		})
	}
	t.Run("a negative version is refused", func(t *testing.T) {
		if _, err := e.Get(bg(), "prod/db", -1); fault.KindOf(err) != fault.Invalid {
			t.Fatalf("Get(-1) = %v, want Invalid", err)
		}
	})
	t.Run("a read reports the version's metadata", func(t *testing.T) {
		got, err := e.Get(bg(), "prod/db", 1)
		if err != nil || got.Version != 1 || !got.CreatedTime.Equal(v1.CreatedTime) || !got.DeletionTime.IsZero() || got.Destroyed {
			t.Fatalf("Get = %+v, %v", got.VersionInfo, err)
		}
	})
	t.Run("data that JSON cannot hold is refused", func(t *testing.T) {
		if _, err := e.Put(bg(), "prod/nan", val(math.Inf(1)), nil); fault.KindOf(err) != fault.Invalid {
			t.Fatalf("Put(+Inf) = %v, want Invalid", err)
		}
		if ok, _ := e.Exists(bg(), "prod/nan"); ok {
			t.Fatal("a refused write left a record")
		}
	})
}

func TestValuesRoundTripExactly(t *testing.T) {
	e := newEngine(t, 0)
	cases := []struct {
		name  string
		value any
	}{
		{"an integer beyond float64 precision keeps every digit", json.Number("9007199254740993")},
		{"a 20-digit integer keeps every digit", json.Number("12345678901234567890")},
		{"a long decimal keeps every digit", json.Number("3.14159265358979323846264338327950288")},
		{"a number beyond float64 range stays readable", json.Number("1e400")},
		{"a trailing zero in a decimal is kept", json.Number("1.10")},
		{"a negative zero is kept as written", json.Number("-0.0")},
		{"a number nested in objects and arrays keeps every digit", map[string]any{"list": []any{json.Number("18446744073709551617"), "x"}}},
		{"strings with quotes, unicode and newlines round-trip", "pa\"ss\nwörd ✓ \u0000"},
		{"booleans and null round-trip", []any{true, false, nil}},
		{"an empty object round-trips", map[string]any{}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := fmt.Sprintf("numbers/%d", i)
			want, err := json.Marshal(val(c.value))
			if err != nil {
				t.Fatal(err)
			}
			e.put(t, path, val(c.value))
			got, err := e.Get(bg(), path, 0)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if back, _ := json.Marshal(got.Data); !bytes.Equal(back, want) {
				t.Fatalf("read back %s, want %s", back, want)
			}
		})
	}
}

func TestCheckAndSet(t *testing.T) {
	cas := func(n int) *int { return &n }
	type step struct {
		cas  *int
		kind fault.Kind // 0: success
	}
	cases := []struct {
		name        string
		casRequired bool
		steps       []step
	}{
		{"cas 0 creates a secret that does not exist", false, []step{{cas(0), 0}}},
		{"cas 0 is refused once the secret exists", false, []step{{nil, 0}, {cas(0), fault.Conflict}}},
		{"cas equal to the current version writes", false, []step{{nil, 0}, {nil, 0}, {cas(2), 0}}},
		{"cas of an older version conflicts", false, []step{{nil, 0}, {nil, 0}, {cas(1), fault.Conflict}}},
		{"cas of a future version conflicts", false, []step{{nil, 0}, {cas(5), fault.Conflict}}},
		{"a negative cas is refused as invalid", false, []step{{cas(-1), fault.Invalid}}},
		{"a cas-required secret refuses a write without cas", true, []step{{nil, fault.Invalid}}},
		{"a cas-required secret accepts the right cas", true, []step{{cas(0), 0}, {cas(1), 0}}},
		{"a cas-required secret still checks the version", true, []step{{cas(0), 0}, {cas(0), fault.Conflict}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEngine(t, 0)
			if c.casRequired {
				yes := true
				if err := e.Configure(bg(), "app/key", secrets.Settings{CASRequired: &yes}); err != nil {
					t.Fatal(err)
				}
			}
			version, lastWritten := 0, -1
			for i, s := range c.steps {
				got, err := e.Put(bg(), "app/key", val(i), s.cas)
				if s.kind == 0 {
					if err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
					version, lastWritten = version+1, i
					if got.Version != version {
						t.Fatalf("step %d wrote version %d, want %d", i, got.Version, version)
					}
					continue
				}
				if fault.KindOf(err) != s.kind {
					t.Fatalf("step %d: %v, want a %v fault", i, err, s.kind)
				}
			}
			if version > 0 {
				if got, err := e.value("app/key", 0); err != nil || got != json.Number(fmt.Sprint(lastWritten)) {
					t.Fatalf("current value %v, %v: a refused write changed it", got, err)
				}
			}
		})
	}
	t.Run("a conflict names the current version", func(t *testing.T) {
		e := newEngine(t, 0)
		e.put(t, "app/key", val(1))
		e.put(t, "app/key", val(2))
		_, err := e.Put(bg(), "app/key", val(3), cas(1))
		if !strings.Contains(fault.Message(err), "current version is 2") {
			t.Fatalf("message %q does not name version 2", fault.Message(err))
		}
	})
	t.Run("the cas-required refusal is ErrCASRequired", func(t *testing.T) {
		e := newEngine(t, 0)
		yes := true
		if err := e.Configure(bg(), "app/key", secrets.Settings{CASRequired: &yes}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Put(bg(), "app/key", val(1), nil); !errors.Is(err, secrets.ErrCASRequired) {
			t.Fatalf("Put = %v, want ErrCASRequired", err)
		}
	})
}

func TestDeleteUndeleteDestroy(t *testing.T) {
	e := newEngine(t, 0)
	for i := 1; i <= 3; i++ {
		e.put(t, "app/key", val(i))
	}
	e.now = e.now.Add(time.Hour)
	if err := e.Delete(bg(), "app/key"); err != nil {
		t.Fatal(err)
	}
	t.Run("delete hides the current version", func(t *testing.T) {
		got, err := e.Get(bg(), "app/key", 0)
		if !errors.Is(err, secrets.ErrDeleted) || got.Data != nil {
			t.Fatalf("Get = %+v, %v; want ErrDeleted without data", got, err)
		}
		if got.Version != 3 || !got.DeletionTime.Equal(t0.Add(time.Hour).Truncate(time.Microsecond)) {
			t.Fatalf("deleted version info = %+v", got.VersionInfo)
		}
	})
	t.Run("a deleted version reads as not found for the API", func(t *testing.T) {
		_, err := e.Get(bg(), "app/key", 3)
		if fault.KindOf(err) != fault.NotFound {
			t.Fatalf("kind %v, want NotFound", fault.KindOf(err))
		}
	})
	t.Run("delete leaves older versions readable", func(t *testing.T) {
		if got, err := e.value("app/key", 2); err != nil || got != json.Number("2") {
			t.Fatalf("Get(2) = %v, %v", got, err)
		}
	})
	t.Run("undelete makes a version readable again", func(t *testing.T) {
		if err := e.Undelete(bg(), "app/key", []int{3}); err != nil {
			t.Fatal(err)
		}
		if got, err := e.value("app/key", 0); err != nil || got != json.Number("3") {
			t.Fatalf("Get = %v, %v", got, err)
		}
	})
	t.Run("deleting chosen versions hides only those", func(t *testing.T) {
		if err := e.DeleteVersions(bg(), "app/key", []int{1}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Get(bg(), "app/key", 1); !errors.Is(err, secrets.ErrDeleted) {
			t.Fatalf("Get(1) = %v, want ErrDeleted", err)
		}
		if _, err := e.Get(bg(), "app/key", 3); err != nil {
			t.Fatalf("Get(3) = %v", err)
		}
	})
	t.Run("destroy makes a version unreadable for good", func(t *testing.T) {
		if err := e.Destroy(bg(), "app/key", []int{2}); err != nil {
			t.Fatal(err)
		}
		got, err := e.Get(bg(), "app/key", 2)
		if !errors.Is(err, secrets.ErrDestroyed) || !got.Destroyed || got.Data != nil {
			t.Fatalf("Get(2) = %+v, %v; want ErrDestroyed", got, err)
		}
		if err := e.Undelete(bg(), "app/key", []int{2}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Get(bg(), "app/key", 2); !errors.Is(err, secrets.ErrDestroyed) {
			t.Fatalf("after undelete: %v, want still ErrDestroyed", err)
		}
	})
	t.Run("a destroyed version's ciphertext is erased from the database", func(t *testing.T) {
		var n int
		err := e.raw(t).QueryRow(`SELECT count(*) FROM secret_versions v JOIN secrets s ON s.id = v.secret_id
			WHERE s.path = 'app/key' AND v.version = 2 AND v.ciphertext IS NULL`).Scan(&n)
		if err != nil || n != 1 {
			t.Fatalf("destroyed rows with a NULL ciphertext: %d, %v", n, err)
		}
	})
	t.Run("deleting a path that does not exist is done", func(t *testing.T) {
		if err := e.Delete(bg(), "nothing/here"); err != nil {
			t.Fatalf("Delete = %v", err)
		}
	})
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"undeleting on a missing path is not found", func() error { return e.Undelete(bg(), "nothing/here", []int{1}) }},
		{"destroying on a missing path is not found", func() error { return e.Destroy(bg(), "nothing/here", []int{1}) }},
		{"deleting versions on a missing path is not found", func() error { return e.DeleteVersions(bg(), "nothing/here", []int{1}) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); !errors.Is(err, secrets.ErrNotFound) {
				t.Fatalf("got %v, want ErrNotFound", err)
			}
		})
	}
	for _, c := range []struct {
		name     string
		versions []int
	}{
		{"an empty version list is refused", nil},
		{"version 0 is refused", []int{1, 0}},
		{"a negative version is refused", []int{-2}},
		{"more than the limit of versions is refused", make([]int, secrets.MaxVersionsLimit+1)},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, op := range []func(context.Context, string, []int) error{e.DeleteVersions, e.Undelete, e.Destroy} {
				if err := op(bg(), "app/key", c.versions); fault.KindOf(err) != fault.Invalid {
					t.Fatalf("got %v, want Invalid", err)
				}
			}
		})
	}
}

func TestRollback(t *testing.T) {
	e := newEngine(t, 0)
	first := map[string]any{"user": "app", "port": json.Number("5432"), "ratio": json.Number("0.10000000000000000001")}
	e.put(t, "app/db", first)
	e.put(t, "app/db", val("second"))
	e.put(t, "app/db", val("third"))

	got, err := e.Rollback(bg(), "app/db", 1)
	t.Run("rollback writes the old data as a new version", func(t *testing.T) {
		if err != nil || got.Version != 4 {
			t.Fatalf("Rollback = %+v, %v; want version 4", got, err)
		}
		cur, err := e.Get(bg(), "app/db", 0)
		if err != nil {
			t.Fatal(err)
		}
		back, _ := json.Marshal(cur.Data)
		want, _ := json.Marshal(first)
		if !bytes.Equal(back, want) {
			t.Fatalf("current data %s, want %s", back, want)
		}
	})
	t.Run("rollback keeps the versions in between", func(t *testing.T) {
		if v, err := e.value("app/db", 3); err != nil || v != "third" {
			t.Fatalf("Get(3) = %v, %v", v, err)
		}
	})
	if err := e.DeleteVersions(bg(), "app/db", []int{2}); err != nil {
		t.Fatal(err)
	}
	if err := e.Destroy(bg(), "app/db", []int{3}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		path    string
		version int
		kind    fault.Kind
	}{
		{"rolling back to a deleted version is refused", "app/db", 2, fault.Invalid},
		{"rolling back to a destroyed version is refused", "app/db", 3, fault.Invalid},
		{"rolling back to version 0 is refused", "app/db", 0, fault.Invalid},
		{"rolling back to a version never written is not found", "app/db", 99, fault.NotFound},
		{"rolling back a missing secret is not found", "app/none", 1, fault.NotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := e.Rollback(bg(), c.path, c.version); fault.KindOf(err) != c.kind {
				t.Fatalf("Rollback = %v, want a %v fault", err, c.kind)
			}
		})
	}
	t.Run("rollback works on a cas-required secret", func(t *testing.T) {
		yes := true
		if err := e.Configure(bg(), "app/db", secrets.Settings{CASRequired: &yes}); err != nil {
			t.Fatal(err)
		}
		if got, err := e.Rollback(bg(), "app/db", 4); err != nil || got.Version != 5 {
			t.Fatalf("Rollback = %+v, %v", got, err)
		}
	})
}

func TestList(t *testing.T) {
	e := newEngine(t, 0)
	for _, p := range []string{"a", "b/c", "b/d/e", "b/d/f", "bc", "z/y/x/w"} {
		e.put(t, p, val(p))
	}
	if err := e.Configure(bg(), "m/only", secrets.Settings{}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		prefix string
		want   []string
	}{
		{"the top level lists secrets and folders", "", []string{"a", "b/", "bc", "m/", "z/"}},
		{"a folder lists its secrets and subfolders", "b/", []string{"c", "d/"}},
		{"a nested folder lists its secrets", "b/d/", []string{"e", "f"}},
		{"a deep path shows one level at a time", "z/", []string{"y/"}},
		{"a secret with only metadata is listed", "m/", []string{"only"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := e.List(bg(), c.prefix)
			if err != nil || !slices.Equal(got, c.want) {
				t.Fatalf("List(%q) = %q, %v; want %q", c.prefix, got, err, c.want)
			}
		})
	}
	for _, prefix := range []string{"nothing/", "a/", "b/c/"} {
		t.Run(fmt.Sprintf("an empty folder %q is not found", prefix), func(t *testing.T) {
			if got, err := e.List(bg(), prefix); !errors.Is(err, secrets.ErrNotFound) {
				t.Fatalf("List(%q) = %q, %v; want ErrNotFound", prefix, got, err)
			}
		})
	}
	t.Run("a deleted secret is gone from its folder", func(t *testing.T) {
		if err := e.DeleteAll(bg(), "b/c"); err != nil {
			t.Fatal(err)
		}
		if got, err := e.List(bg(), "b/"); err != nil || !slices.Equal(got, []string{"d/"}) {
			t.Fatalf("List = %q, %v", got, err)
		}
	})
}

func TestExists(t *testing.T) {
	e := newEngine(t, 0)
	check := func(t *testing.T, path string, want bool) {
		t.Helper()
		if got, err := e.Exists(bg(), path); err != nil || got != want {
			t.Fatalf("Exists(%q) = %v, %v; want %v", path, got, err, want)
		}
	}
	t.Run("a path never written does not exist", func(t *testing.T) { check(t, "app/key", false) })
	e.put(t, "app/key", val(1))
	t.Run("a written secret exists", func(t *testing.T) { check(t, "app/key", true) })
	t.Run("a folder of a secret does not exist as a secret", func(t *testing.T) { check(t, "app", false) })
	if err := e.Delete(bg(), "app/key"); err != nil {
		t.Fatal(err)
	}
	t.Run("a soft-deleted secret still exists", func(t *testing.T) { check(t, "app/key", true) })
	if err := e.Configure(bg(), "app/meta", secrets.Settings{}); err != nil {
		t.Fatal(err)
	}
	t.Run("a secret with only metadata exists", func(t *testing.T) { check(t, "app/meta", true) })
	if err := e.DeleteAll(bg(), "app/key"); err != nil {
		t.Fatal(err)
	}
	t.Run("a secret deleted with its metadata no longer exists", func(t *testing.T) { check(t, "app/key", false) })
}

func TestMetadataAndPruning(t *testing.T) {
	e := newEngine(t, 3)
	for i := 1; i <= 5; i++ {
		e.put(t, "app/key", val(i))
		e.now = e.now.Add(time.Second)
	}
	m, err := e.Metadata(bg(), "app/key")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("only the configured number of versions is kept", func(t *testing.T) {
		var kept []int
		for _, v := range m.Versions {
			kept = append(kept, v.Version)
		}
		if !slices.Equal(kept, []int{3, 4, 5}) || m.OldestVersion != 3 || m.CurrentVersion != 5 {
			t.Fatalf("kept %v oldest %d current %d; want [3 4 5], 3, 5", kept, m.OldestVersion, m.CurrentVersion)
		}
	})
	t.Run("a pruned version is not found", func(t *testing.T) {
		if _, err := e.Get(bg(), "app/key", 2); !errors.Is(err, secrets.ErrNotFound) {
			t.Fatalf("Get(2) = %v", err)
		}
	})
	t.Run("metadata records creation and update times", func(t *testing.T) {
		if !m.CreatedTime.Equal(t0.Truncate(time.Microsecond)) || !m.UpdatedTime.Equal(t0.Add(4*time.Second).Truncate(time.Microsecond)) || m.Path != "app/key" {
			t.Fatalf("metadata %+v", m)
		}
	})
	t.Run("settings are stored and lowering max versions prunes", func(t *testing.T) {
		two, yes := 2, true
		err := e.Configure(bg(), "app/key", secrets.Settings{MaxVersions: &two, CASRequired: &yes, CustomMetadata: map[string]string{"owner": "payments"}})
		if err != nil {
			t.Fatal(err)
		}
		m, err := e.Metadata(bg(), "app/key")
		if err != nil || m.MaxVersions != 2 || !m.CASRequired || m.CustomMetadata["owner"] != "payments" || len(m.Versions) != 2 || m.OldestVersion != 4 {
			t.Fatalf("Metadata = %+v, %v", m, err)
		}
	})
	t.Run("a missing secret has no metadata", func(t *testing.T) {
		if _, err := e.Metadata(bg(), "app/none"); !errors.Is(err, secrets.ErrNotFound) {
			t.Fatalf("Metadata = %v", err)
		}
	})
	for _, c := range []struct {
		name string
		set  secrets.Settings
	}{
		{"a negative max_versions is refused", secrets.Settings{MaxVersions: ptr(-1)}},
		{"a max_versions above the limit is refused", secrets.Settings{MaxVersions: ptr(secrets.MaxVersionsLimit + 1)}},
		{"an empty custom metadata key is refused", secrets.Settings{CustomMetadata: map[string]string{"": "x"}}},
		{"a custom metadata key over 128 bytes is refused", secrets.Settings{CustomMetadata: map[string]string{strings.Repeat("k", 129): "x"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := e.Configure(bg(), "app/key", c.set); fault.KindOf(err) != fault.Invalid {
				t.Fatalf("Configure = %v, want Invalid", err)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestDeleteAll(t *testing.T) {
	e := newEngine(t, 0)
	e.put(t, "app/key", val(1))
	e.put(t, "app/key", val(2))
	if err := e.DeleteAll(bg(), "app/key"); err != nil {
		t.Fatal(err)
	}
	t.Run("every version is gone", func(t *testing.T) {
		for _, v := range []int{0, 1, 2} {
			if _, err := e.Get(bg(), "app/key", v); !errors.Is(err, secrets.ErrNotFound) {
				t.Fatalf("Get(%d) = %v", v, err)
			}
		}
	})
	t.Run("deleting a missing secret is done", func(t *testing.T) {
		if err := e.DeleteAll(bg(), "app/key"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("writing again starts over at version 1", func(t *testing.T) {
		if v := e.put(t, "app/key", val(3)); v.Version != 1 {
			t.Fatalf("version %d, want 1", v.Version)
		}
	})
}

func TestCiphertextIsBoundToPathAndVersion(t *testing.T) {
	e := newEngine(t, 0)
	e.put(t, "prod/db", val("hunter2-prod-v1"))
	e.put(t, "prod/db", val("hunter2-prod-v2"))
	e.put(t, "dev/db", val("hunter2-dev-v1"))
	conn := e.raw(t)

	t.Run("no value is stored in the clear", func(t *testing.T) {
		rows, err := conn.Query(`SELECT ciphertext FROM secret_versions`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			var ct []byte
			if err := rows.Scan(&ct); err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(ct, []byte("hunter2")) {
				t.Fatalf("ciphertext holds the value in the clear: %q", ct)
			}
			n++
		}
		if n != 3 {
			t.Fatalf("scanned %d versions, want 3", n)
		}
	})
	// copyVersion overwrites one version's ciphertext with another's.
	copyVersion := func(t *testing.T, fromPath string, fromVersion int, toPath string, toVersion int) {
		t.Helper()
		res, err := conn.Exec(`UPDATE secret_versions SET ciphertext = (
				SELECT v.ciphertext FROM secret_versions v JOIN secrets s ON s.id = v.secret_id WHERE s.path = $1 AND v.version = $2)
			WHERE secret_id = (SELECT id FROM secrets WHERE path = $3) AND version = $4`, fromPath, fromVersion, toPath, toVersion)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("copied onto %d rows, want 1", n)
		}
	}
	cases := []struct {
		name        string
		fromPath    string
		fromVersion int
		toPath      string
		toVersion   int
	}{
		{"a ciphertext copied to another path does not decrypt", "prod/db", 1, "dev/db", 1},
		{"a ciphertext copied to another version of its path does not decrypt", "prod/db", 1, "prod/db", 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			copyVersion(t, c.fromPath, c.fromVersion, c.toPath, c.toVersion)
			got, err := e.Get(bg(), c.toPath, c.toVersion)
			if !errors.Is(err, barrier.ErrDecrypt) || got.Data != nil {
				t.Fatalf("Get(%q, %d) = %v, %v; want ErrDecrypt", c.toPath, c.toVersion, got.Data, err)
			}
		})
	}
	t.Run("the original still decrypts where it belongs", func(t *testing.T) {
		if v, err := e.value("prod/db", 1); err != nil || v != "hunter2-prod-v1" {
			t.Fatalf("Get = %v, %v", v, err)
		}
	})
}

func TestSealedEngineRefusesAndChangesNothing(t *testing.T) {
	e := newEngine(t, 0)
	e.put(t, "app/key", val("before"))
	e.seal.Seal()
	cases := []struct {
		name string
		call func() error
	}{
		{"a write is refused as sealed", func() error { _, err := e.Put(bg(), "app/key", val("after"), nil); return err }},
		{"a read is refused as sealed", func() error { _, err := e.Get(bg(), "app/key", 0); return err }},
		{"a rollback is refused as sealed", func() error { _, err := e.Rollback(bg(), "app/key", 1); return err }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); !errors.Is(err, seal.ErrSealed) {
				t.Fatalf("got %v, want ErrSealed", err)
			}
		})
	}
	t.Run("a refused write left no version behind", func(t *testing.T) {
		m, err := e.Metadata(bg(), "app/key")
		if err != nil || m.CurrentVersion != 1 || len(m.Versions) != 1 {
			t.Fatalf("Metadata = %+v, %v; want only version 1", m, err)
		}
	})
}
