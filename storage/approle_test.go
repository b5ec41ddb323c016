package storage_test

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// The AppRole part of the conformance suite, on both engines. Each case
// also gets a second, plain connection to the same database to check rows
// no storage method reads back.

func TestAppRoleConformance(t *testing.T) { runRawCases(t, appRoleCases) }

var appRoleCases = []rawCase{
	{"roles round-trip every field and list in byte order", testRoleRoundTrip},
	{"an update sees the stored role, may change its role_id and keeps its creation time", testRoleUpdate},
	{"every write moves a role's updated_at forward, whatever the clock says", testRoleUpdatedAtMovesForward},
	{"a refused write stores nothing", testRoleRefusedWrite},
	{"concurrent creations of one role create it once", testRoleConcurrentCreate},
	{"a role_id belongs to one role at a time", testRoleIDUnique},
	{"deleting a role deletes its secret IDs", testRoleDeleteCascades},
	{"secret IDs round-trip and are found only within their role and before expiry", testSecretIDs},
	{"a secret ID cannot be created for a missing role", testSecretIDNeedsRole},
	{"the last use of a limited secret ID deletes it with the login", testSecretIDLastUse},
	{"a login stores its token and an approle_tokens row that goes with the token", testLoginRecords},
	{"a login whose secret ID is gone stores nothing", testLoginSecretIDGone},
	{"a login whose role changed since its read stores nothing", testLoginRoleChanged},
	{"the login read misses alike on a wrong secret ID and a wrong role_id, decoding nothing", testLoginReadMisses},
	{"concurrent logins on a 3-use secret ID: exactly 3 succeed", testConcurrentLogins},
	{"expired secret IDs are swept and others stay", testSweepSecretIDs},
}

// enginesWithRaw runs fn once per engine with a fresh, migrated database
// and a plain database/sql connection to it.
func enginesWithRaw(t *testing.T, fn func(t *testing.T, db *storage.DB, raw *sql.DB)) {
	t.Helper()
	open := func(t *testing.T, cfg storage.Config, driver, dsn string) {
		db := storagetest.Open(t, cfg)
		raw, err := sql.Open(driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { raw.Close() })
		fn(t, db, raw)
	}
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		open(t, storage.Config{DataDir: dir}, "sqlite", filepath.Join(dir, storage.SQLiteFile))
	})
	t.Run("postgres", func(t *testing.T) {
		url := storagetest.PostgresURL(t)
		open(t, storage.Config{DatabaseURL: url}, "postgres", url)
	})
}

// count runs a SELECT count(*) on the plain connection.
func count(t *testing.T, raw *sql.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := raw.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

var webRole = storage.AppRoleRole{
	Name: "web", RoleID: "role-id-web", Policies: []string{"default", "web"},
	TokenTTL: time.Hour, TokenMaxTTL: 4 * time.Hour, TokenBoundCIDRs: []string{"10.0.0.0/8"},
	SecretIDTTL: 30 * time.Minute, SecretIDNumUses: 5, SecretIDBoundCIDRs: []string{"10.1.0.0/16", "192.168.0.1/32"},
	CreatedAt: t0, UpdatedAt: t0,
}

// putRole creates or replaces a role with every field of want.
func putRole(t *testing.T, db *storage.DB, want storage.AppRoleRole, now time.Time) (storage.AppRoleRole, bool) {
	t.Helper()
	got, created, err := db.WriteAppRoleRole(ctx(), want.Name, now, func(r *storage.AppRoleRole, _ bool) error {
		*r = want
		return nil
	})
	if err != nil {
		t.Fatalf("WriteAppRoleRole(%s): %v", want.Name, err)
	}
	return got, created
}

// named is webRole under another name, with a role_id of its own.
func named(name string) storage.AppRoleRole {
	r := webRole
	r.Name, r.RoleID = name, "role-id-"+name
	return r
}

func secretID(hash, role string) storage.AppRoleSecretID {
	return storage.AppRoleSecretID{
		Hash: "h-" + hash, Accessor: hash, RoleName: role, CIDRs: []string{}, Metadata: map[string]string{},
		CreatedAt: t0,
	}
}

func mustSecretID(t *testing.T, db *storage.DB, s storage.AppRoleSecretID) {
	t.Helper()
	if err := db.CreateAppRoleSecretID(ctx(), s); err != nil {
		t.Fatalf("CreateAppRoleSecretID(%s): %v", s.Accessor, err)
	}
}

// login completes a login with s as its role stands now.
func login(db *storage.DB, s storage.AppRoleSecretID, tokenAccessor string) error {
	r, err := db.AppRoleRoleByName(ctx(), s.RoleName)
	if err != nil {
		return err
	}
	return loginAs(db, s, r, tokenAccessor)
}

// loginAs completes a login with s as if the login had read role r.
func loginAs(db *storage.DB, s storage.AppRoleSecretID, r storage.AppRoleRole, tokenAccessor string) error {
	return db.CompleteAppRoleLogin(ctx(), storage.AppRoleLogin{
		SecretIDHash: s.Hash, SecretIDAccessor: s.Accessor, Limited: s.NumUses > 0,
		RoleName: r.Name, RoleID: r.RoleID, RoleUpdatedAt: r.UpdatedAt, Token: token(tokenAccessor, ""),
	})
}

func testRoleRoundTrip(t *testing.T, db *storage.DB, _ *sql.DB) {
	got, created := putRole(t, db, webRole, t0)
	if !created || fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", webRole) {
		t.Fatalf("write returned %+v (created %v), want %+v", got, created, webRole)
	}
	read, err := db.AppRoleRoleByName(ctx(), "web")
	if err != nil || fmt.Sprintf("%+v", read) != fmt.Sprintf("%+v", webRole) {
		t.Fatalf("read back:\n got %+v, %v\nwant %+v", read, err, webRole)
	}
	if _, err := db.AppRoleRoleByName(ctx(), "nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("missing role: %v, want ErrNotFound", err)
	}
	for _, name := range []string{"b", "B", "a.b", "a", "a-b", "_"} {
		putRole(t, db, named(name), t0)
	}
	names, err := db.AppRoleRoleNames(ctx())
	if want := []string{"B", "_", "a", "a-b", "a.b", "b", "web"}; err != nil || !slices.Equal(names, want) {
		t.Fatalf("names = %q, %v; want %q", names, err, want)
	}
}

func testRoleUpdate(t *testing.T, db *storage.DB, _ *sql.DB) {
	putRole(t, db, webRole, t0)
	later := t0.Add(time.Hour)
	stored := webRole
	stored.UpdatedAt = later
	got, created, err := db.WriteAppRoleRole(ctx(), "web", later, func(r *storage.AppRoleRole, created bool) error {
		if created || fmt.Sprintf("%+v", *r) != fmt.Sprintf("%+v", stored) {
			t.Errorf("apply saw %+v (created %v), want the stored role", *r, created)
		}
		r.Policies, r.TokenTTL, r.SecretIDNumUses = []string{"ops"}, 2*time.Hour, 0
		r.RoleID, r.CreatedAt = "new-role-id", later
		return nil
	})
	if err != nil || created {
		t.Fatalf("update: created %v, %v", created, err)
	}
	want := webRole
	want.Policies, want.TokenTTL, want.SecretIDNumUses, want.UpdatedAt = []string{"ops"}, 2*time.Hour, 0, later
	want.RoleID = "new-role-id"
	read, err := db.AppRoleRoleByName(ctx(), "web")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []storage.AppRoleRole{got, read} {
		if fmt.Sprintf("%+v", r) != fmt.Sprintf("%+v", want) {
			t.Fatalf("after update:\n got %+v\nwant %+v", r, want)
		}
	}
}

func testRoleUpdatedAtMovesForward(t *testing.T, db *storage.DB, _ *sql.DB) {
	putRole(t, db, webRole, t0)
	last := t0
	for i, now := range []time.Time{t0, t0, t0.Add(-time.Hour), t0.Add(time.Nanosecond), t0.Add(time.Minute)} {
		got, _ := putRole(t, db, webRole, now)
		read, err := db.AppRoleRoleByName(ctx(), "web")
		if err != nil || !got.UpdatedAt.After(last) || !read.UpdatedAt.Equal(got.UpdatedAt) {
			t.Fatalf("write %d at %v: updated_at %v (read %v, %v), want after %v", i, now, got.UpdatedAt, read.UpdatedAt, err, last)
		}
		last = got.UpdatedAt
	}
	if !last.Equal(t0.Add(time.Minute)) {
		t.Fatalf("a write at a clock ahead of updated_at stored %v, want its own time", last)
	}
}

func testRoleRefusedWrite(t *testing.T, db *storage.DB, _ *sql.DB) {
	refuse := errors.New("refused")
	_, _, err := db.WriteAppRoleRole(ctx(), "new", t0, func(r *storage.AppRoleRole, _ bool) error {
		r.RoleID = "x"
		return refuse
	})
	if !errors.Is(err, refuse) {
		t.Fatalf("refused creation: %v", err)
	}
	if _, err := db.AppRoleRoleByName(ctx(), "new"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a refused creation stored the role: %v", err)
	}
	putRole(t, db, webRole, t0)
	_, _, err = db.WriteAppRoleRole(ctx(), "web", t0.Add(time.Hour), func(r *storage.AppRoleRole, _ bool) error {
		r.Policies = []string{"changed"}
		return refuse
	})
	if !errors.Is(err, refuse) {
		t.Fatalf("refused update: %v", err)
	}
	if got, _ := db.AppRoleRoleByName(ctx(), "web"); fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", webRole) {
		t.Fatalf("a refused update changed the role (or its updated_at): %+v", got)
	}
}

func testRoleConcurrentCreate(t *testing.T, db *storage.DB, _ *sql.DB) {
	const writers = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
		errs    []error
	)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, c, err := db.WriteAppRoleRole(ctx(), "race", t0, func(r *storage.AppRoleRole, created bool) error {
				if created {
					r.RoleID = fmt.Sprint("role-id-", i)
				}
				r.SecretIDNumUses++
				return nil
			})
			mu.Lock()
			defer mu.Unlock()
			if c {
				created++
			}
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 || created != 1 {
		t.Fatalf("created %d times, errors %v; want one creation and no error", created, errs)
	}
	// Every writer's increment landed: none read a role another was changing.
	if r, _ := db.AppRoleRoleByName(ctx(), "race"); r.SecretIDNumUses != writers {
		t.Fatalf("secret_id_num_uses = %d after %d increments", r.SecretIDNumUses, writers)
	}
}

func testRoleIDUnique(t *testing.T, db *storage.DB, _ *sql.DB) {
	putRole(t, db, webRole, t0)
	if _, _, err := db.WriteAppRoleRole(ctx(), "other", t0, func(r *storage.AppRoleRole, _ bool) error {
		r.RoleID = webRole.RoleID
		return nil
	}); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("creating a role with a used role_id: %v, want ErrConflict", err)
	}
	putRole(t, db, named("other"), t0)
	setRoleID := func(name, roleID string, now time.Time) error {
		_, _, err := db.WriteAppRoleRole(ctx(), name, now, func(r *storage.AppRoleRole, _ bool) error {
			r.RoleID = roleID
			return nil
		})
		return err
	}
	if err := setRoleID("other", webRole.RoleID, t0.Add(time.Minute)); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("taking another role's role_id: %v, want ErrConflict", err)
	}
	if r, _ := db.AppRoleRoleByName(ctx(), "other"); r.RoleID != "role-id-other" || !r.UpdatedAt.Equal(t0) {
		t.Fatalf("after a refused role_id change: role_id %q, updated %v", r.RoleID, r.UpdatedAt)
	}
	if err := setRoleID("other", "custom", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if r, _ := db.AppRoleRoleByName(ctx(), "other"); r.RoleID != "custom" || !r.UpdatedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("after a role_id change: role_id %q, updated %v", r.RoleID, r.UpdatedAt)
	}
}

func testRoleDeleteCascades(t *testing.T, db *storage.DB, raw *sql.DB) {
	putRole(t, db, webRole, t0)
	putRole(t, db, named("keep"), t0)
	mustSecretID(t, db, secretID("w1", "web"))
	mustSecretID(t, db, secretID("w2", "web"))
	mustSecretID(t, db, secretID("k1", "keep"))
	if err := db.DeleteAppRoleRole(ctx(), "web"); err != nil {
		t.Fatal(err)
	}
	if n := count(t, raw, `SELECT count(*) FROM approle_secret_ids WHERE role_name = 'web'`); n != 0 {
		t.Fatalf("%d secret IDs of the deleted role remain", n)
	}
	if _, _, err := db.AppRoleSecretIDByHash(ctx(), "h-w1", "role-id-web"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("secret ID of a deleted role: %v, want ErrNotFound", err)
	}
	if _, _, err := db.AppRoleSecretIDByHash(ctx(), "h-k1", "role-id-keep"); err != nil {
		t.Fatalf("another role's secret ID went too: %v", err)
	}
	if err := db.DeleteAppRoleRole(ctx(), "web"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
}

func testSecretIDs(t *testing.T, db *storage.DB, _ *sql.DB) {
	putRole(t, db, webRole, t0)
	putRole(t, db, named("other"), t0)
	full := storage.AppRoleSecretID{
		Hash: "h-full", Accessor: "full", RoleName: "web", NumUses: 3, CIDRs: []string{"10.1.2.0/24"},
		Metadata: map[string]string{"host": "app-1"}, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour),
	}
	forever := secretID("forever", "web")
	mustSecretID(t, db, full)
	mustSecretID(t, db, forever)
	mustSecretID(t, db, secretID("elsewhere", "other"))
	if err := db.CreateAppRoleSecretID(ctx(), full); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("duplicate secret ID: %v, want ErrConflict", err)
	}

	s, r, err := db.AppRoleSecretIDByHash(ctx(), "h-full", webRole.RoleID)
	if err != nil || fmt.Sprintf("%+v", s) != fmt.Sprintf("%+v", full) || fmt.Sprintf("%+v", r) != fmt.Sprintf("%+v", webRole) {
		t.Fatalf("by hash:\n got %+v %+v, %v\nwant %+v %+v", s, r, err, full, webRole)
	}
	if s, err := db.AppRoleSecretIDByAccessor(ctx(), "web", "full", t0); err != nil || fmt.Sprintf("%+v", s) != fmt.Sprintf("%+v", full) {
		t.Fatalf("by accessor: %+v, %v", s, err)
	}
	if _, _, err := db.AppRoleSecretIDByHash(ctx(), "full", webRole.RoleID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("an accessor found a secret ID as if it were a hash: %v", err)
	}
	if _, err := db.AppRoleSecretIDByAccessor(ctx(), "web", "elsewhere", t0); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("another role's secret ID by accessor: %v, want ErrNotFound", err)
	}
	if got, err := db.AppRoleSecretIDAccessors(ctx(), "web", t0); err != nil || !slices.Equal(got, []string{"forever", "full"}) {
		t.Fatalf("accessors = %q, %v", got, err)
	}
	expired := t0.Add(time.Hour)
	if got, _ := db.AppRoleSecretIDAccessors(ctx(), "web", expired); !slices.Equal(got, []string{"forever"}) {
		t.Fatalf("accessors at expiry = %q, want only the unexpiring one", got)
	}
	if _, err := db.AppRoleSecretIDByAccessor(ctx(), "web", "full", expired); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("an expired secret ID by accessor: %v, want ErrNotFound", err)
	}
	if got, err := db.AppRoleSecretIDAccessors(ctx(), "nobody", t0); err != nil || len(got) != 0 {
		t.Fatalf("accessors of a role without secret IDs = %q, %v", got, err)
	}
	if err := db.DeleteAppRoleSecretID(ctx(), "other", "full"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("deleting through another role: %v, want ErrNotFound", err)
	}
	if err := db.DeleteAppRoleSecretID(ctx(), "web", "full"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.AppRoleSecretIDByHash(ctx(), "h-full", webRole.RoleID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("deleted secret ID: %v", err)
	}
	if err := db.DeleteAppRoleSecretID(ctx(), "web", "full"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
}

func testSecretIDNeedsRole(t *testing.T, db *storage.DB, raw *sql.DB) {
	if err := db.CreateAppRoleSecretID(ctx(), secretID("x", "missing")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("secret ID for a missing role: %v, want ErrNotFound", err)
	}
	if n := count(t, raw, `SELECT count(*) FROM approle_secret_ids`); n != 0 {
		t.Fatalf("%d secret IDs stored", n)
	}
}

func testSecretIDLastUse(t *testing.T, db *storage.DB, _ *sql.DB) {
	putRole(t, db, webRole, t0)
	s := secretID("twice", "web")
	s.NumUses = 2
	mustSecretID(t, db, s)
	if err := login(db, s, "t1"); err != nil {
		t.Fatal(err)
	}
	if got, _, err := db.AppRoleSecretIDByHash(ctx(), s.Hash, webRole.RoleID); err != nil || got.NumUses != 1 {
		t.Fatalf("after one use: %+v, %v; want 1 left", got, err)
	}
	if err := login(db, s, "t2"); err != nil {
		t.Fatal(err)
	}
	// Gone at once, never resting at 0 (which reads as unlimited).
	if got, _, err := db.AppRoleSecretIDByHash(ctx(), s.Hash, webRole.RoleID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("after the last use: %+v, %v; want ErrNotFound", got, err)
	}
	if err := login(db, s, "t3"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("third use: %v, want ErrNotFound", err)
	}
	unlimited := secretID("unlimited", "web")
	mustSecretID(t, db, unlimited)
	for i := range 3 {
		if err := login(db, unlimited, fmt.Sprint("u", i)); err != nil {
			t.Fatalf("unlimited use %d: %v", i, err)
		}
	}
	if got, _, err := db.AppRoleSecretIDByHash(ctx(), unlimited.Hash, webRole.RoleID); err != nil || got.NumUses != 0 {
		t.Fatalf("unlimited secret ID after uses: %+v, %v", got, err)
	}
}

func testLoginRecords(t *testing.T, db *storage.DB, raw *sql.DB) {
	putRole(t, db, webRole, t0)
	s := secretID("sid", "web")
	mustSecretID(t, db, s)
	if err := login(db, s, "tok"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.TokenByAccessor(ctx(), "tok"); err != nil {
		t.Fatalf("login token not stored: %v", err)
	}
	var role, sidAccessor string
	var created time.Time
	err := raw.QueryRow(`SELECT role_name, secret_id_accessor, created_at FROM approle_tokens WHERE token_accessor = $1`, "tok").
		Scan(&role, &sidAccessor, &created)
	if err != nil || role != "web" || sidAccessor != "sid" || !created.Equal(t0) {
		t.Fatalf("approle_tokens row = %q %q %v, %v", role, sidAccessor, created, err)
	}
	if _, err := db.RevokeTokenTree(ctx(), "tok"); err != nil {
		t.Fatal(err)
	}
	if n := count(t, raw, `SELECT count(*) FROM approle_tokens WHERE token_accessor = $1`, "tok"); n != 0 {
		t.Fatal("the approle_tokens row outlived its token")
	}
}

func testLoginSecretIDGone(t *testing.T, db *storage.DB, raw *sql.DB) {
	putRole(t, db, webRole, t0)
	for _, uses := range []int{0, 1} {
		s := secretID(fmt.Sprint("gone", uses), "web")
		s.NumUses = uses
		mustSecretID(t, db, s)
		if err := db.DeleteAppRoleSecretID(ctx(), "web", s.Accessor); err != nil {
			t.Fatal(err)
		}
		if err := login(db, s, fmt.Sprint("t", uses)); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("login with a deleted secret ID (num_uses %d): %v, want ErrNotFound", uses, err)
		}
	}
	if n := count(t, raw, `SELECT count(*) FROM tokens`) + count(t, raw, `SELECT count(*) FROM approle_tokens`); n != 0 {
		t.Fatalf("a refused login stored %d rows", n)
	}
}

func testLoginRoleChanged(t *testing.T, db *storage.DB, raw *sql.DB) {
	putRole(t, db, webRole, t0)
	for i, change := range []struct {
		name string
		fn   func(r *storage.AppRoleRole)
	}{
		{"policies", func(r *storage.AppRoleRole) { r.Policies = []string{"other"} }},
		{"role_id", func(r *storage.AppRoleRole) { r.RoleID = "role-id-new" }},
		{"nothing but updated_at", func(*storage.AppRoleRole) {}},
	} {
		for _, uses := range []int{0, 2} {
			s := secretID(fmt.Sprint("changed", i, uses), "web")
			s.NumUses = uses
			mustSecretID(t, db, s)
			read, err := db.AppRoleRoleByName(ctx(), "web")
			if err != nil {
				t.Fatal(err)
			}
			// Written at the very time of the read: updated_at moves anyway.
			if _, _, err := db.WriteAppRoleRole(ctx(), "web", read.UpdatedAt, func(r *storage.AppRoleRole, _ bool) error {
				change.fn(r)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if err := loginAs(db, s, read, fmt.Sprint("t", i, uses)); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("login after a change of %s (num_uses %d): %v, want ErrNotFound", change.name, uses, err)
			}
			if got, _ := db.AppRoleSecretIDByAccessor(ctx(), "web", s.Accessor, t0); got.NumUses != uses {
				t.Fatalf("a refused login used the secret ID: %d uses left, want %d", got.NumUses, uses)
			}
		}
	}
	s := secretID("deleted", "web")
	mustSecretID(t, db, s)
	read, _ := db.AppRoleRoleByName(ctx(), "web")
	if err := db.DeleteAppRoleRole(ctx(), "web"); err != nil {
		t.Fatal(err)
	}
	if err := loginAs(db, s, read, "t-deleted"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("login after the role's deletion: %v, want ErrNotFound", err)
	}
	if n := count(t, raw, `SELECT count(*) FROM tokens`) + count(t, raw, `SELECT count(*) FROM approle_tokens`); n != 0 {
		t.Fatalf("refused logins stored %d rows", n)
	}
}

func testLoginReadMisses(t *testing.T, db *storage.DB, raw *sql.DB) {
	putRole(t, db, webRole, t0)
	putRole(t, db, named("other"), t0)
	mustSecretID(t, db, secretID("sid", "web"))
	if _, _, err := db.AppRoleSecretIDByHash(ctx(), "h-sid", webRole.RoleID); err != nil {
		t.Fatalf("the right pair: %v", err)
	}
	// A role whose columns do not decode: a read that found its row would
	// fail to decode it rather than miss.
	if _, err := raw.Exec(`UPDATE approle_roles SET policies = 'not json' WHERE name = 'web'`); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.AppRoleSecretIDByHash(ctx(), "h-sid", webRole.RoleID); err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the right pair on a corrupt role: %v, want a decoding error", err)
	}
	for _, c := range []struct{ name, hash, roleID string }{
		{"a wrong secret ID", "h-nope", webRole.RoleID},
		{"a wrong role_id", "h-sid", "role-id-nope"},
		{"another role's role_id", "h-sid", "role-id-other"},
		{"both wrong", "h-nope", "role-id-nope"},
	} {
		before := db.RoundTrips()
		_, _, err := db.AppRoleSecretIDByHash(ctx(), c.hash, c.roleID)
		after := db.RoundTrips()
		if !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("%s: %v, want ErrNotFound without decoding the row", c.name, err)
		}
		if q, tx := after.Queries-before.Queries, after.Transactions-before.Transactions; q != 1 || tx != 0 {
			t.Fatalf("%s: %d statements and %d transactions, want 1 and 0", c.name, q, tx)
		}
	}
}

func testConcurrentLogins(t *testing.T, db *storage.DB, raw *sql.DB) {
	putRole(t, db, webRole, t0)
	s := secretID("three", "web")
	s.NumUses = 3
	mustSecretID(t, db, s)
	const logins = 12
	errs := make([]error, logins)
	var wg sync.WaitGroup
	for i := range logins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = login(db, s, fmt.Sprint("c", i))
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, storage.ErrNotFound):
			t.Fatalf("a login failed otherwise than ErrNotFound: %v", err)
		}
	}
	if ok != 3 || count(t, raw, `SELECT count(*) FROM approle_tokens`) != 3 || count(t, raw, `SELECT count(*) FROM approle_secret_ids`) != 0 {
		t.Fatalf("%d of %d logins succeeded, want exactly 3, each with its record and the secret ID gone after", ok, logins)
	}
}

func testSweepSecretIDs(t *testing.T, db *storage.DB, _ *sql.DB) {
	putRole(t, db, webRole, t0)
	soon, late, never := secretID("soon", "web"), secretID("late", "web"), secretID("never", "web")
	soon.ExpiresAt, late.ExpiresAt = t0.Add(time.Minute), t0.Add(time.Hour)
	for _, s := range []storage.AppRoleSecretID{soon, late, never} {
		mustSecretID(t, db, s)
	}
	if n, err := db.DeleteExpiredAppRoleSecretIDs(ctx(), t0.Add(time.Minute)); err != nil || n != 1 { // at its expiry
		t.Fatalf("swept %d, %v; want 1", n, err)
	}
	if got, _ := db.AppRoleSecretIDAccessors(ctx(), "web", t0); !slices.Equal(got, []string{"late", "never"}) {
		t.Fatalf("left after the sweep: %q", got)
	}
	if n, err := db.DeleteExpiredAppRoleSecretIDs(ctx(), t0.Add(24*time.Hour)); err != nil || n != 1 {
		t.Fatalf("second sweep: %d, %v; want 1", n, err)
	}
}

// AppRole transactions, like every other, must not wait for a second
// pooled connection while they hold one.
func TestAppRoleWritesCompleteOnAOneConnectionPool(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			cfg := storage.Config{DataDir: t.TempDir(), PoolSize: 1}
			if engine == "postgres" {
				cfg = storage.Config{DatabaseURL: storagetest.PostgresURL(t), PoolSize: 1}
			}
			db := storagetest.Open(t, cfg)
			for i := range 3 { // the first round runs unprepared, later ones prepared
				r := named(fmt.Sprint("r", i))
				putRole(t, db, r, t0)
				putRole(t, db, r, t0) // the update path
				s := secretID(fmt.Sprint("s", i), r.Name)
				s.NumUses = 1
				mustSecretID(t, db, s)
				if err := login(db, s, fmt.Sprint("t", i)); err != nil {
					t.Fatalf("round %d login: %v", i, err)
				}
				time.Sleep(50 * time.Millisecond) // let background preparation run
			}
		})
	}
}

// A role another writer creates between WriteAppRoleRole finding none and
// inserting its own is updated, not refused. PostgreSQL only: SQLite
// writers queue at BEGIN, so the window does not exist there.
func TestAppRoleWriteMeetsARoleCreatedMeanwhile(t *testing.T) {
	db, raw := postgresWithRaw(t)
	other, err := raw.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback()
	if _, err := other.Exec(`INSERT INTO approle_roles (name, role_id, policies, token_ttl_seconds, token_max_ttl_seconds,
		token_bound_cidrs, secret_id_ttl_seconds, secret_id_num_uses, secret_id_bound_cidrs, created_at, updated_at)
		VALUES ('race', 'theirs', '[]', 0, 0, '[]', 0, 0, '[]', $1, $1)`, t0); err != nil {
		t.Fatal(err)
	}
	type result struct {
		role    storage.AppRoleRole
		created bool
		err     error
	}
	done := make(chan result, 1)
	go func() {
		r, created, err := db.WriteAppRoleRole(ctx(), "race", t0.Add(time.Minute), func(r *storage.AppRoleRole, created bool) error {
			if created {
				r.RoleID = "ours"
			}
			r.SecretIDNumUses++
			return nil
		})
		done <- result{r, created, err}
	}()
	// Commit the other creation once our insert waits on it.
	waitForLockWait(t, raw, nil)
	if err := other.Commit(); err != nil {
		t.Fatal(err)
	}
	got := <-done
	if got.err != nil || got.created || got.role.RoleID != "theirs" || got.role.SecretIDNumUses != 1 {
		t.Fatalf("write = %+v, created %v, %v; want an update of the other writer's role", got.role, got.created, got.err)
	}
}

// A login that read a secret ID and its role, then meets a destruction of
// the secret ID or a change of the role still uncommitted, waits for it and
// is refused once it commits: it never issues a token the committed change
// has taken away. PostgreSQL only: SQLite transactions exclude each other,
// so neither can be in flight while the other runs.
func TestAppRoleLoginWaitsForAConcurrentChange(t *testing.T) {
	for _, c := range []struct {
		name   string
		uses   int
		change string
	}{
		{"a destruction of an unlimited secret ID", 0, `DELETE FROM approle_secret_ids WHERE accessor = 'sid'`},
		{"a destruction of a limited secret ID", 3, `DELETE FROM approle_secret_ids WHERE accessor = 'sid'`},
		{"a change of the role's policies", 0, `UPDATE approle_roles SET policies = '["other"]', updated_at = updated_at + interval '1 microsecond' WHERE name = 'web'`},
		{"a change of the role's role_id", 0, `UPDATE approle_roles SET role_id = 'new', updated_at = updated_at + interval '1 microsecond' WHERE name = 'web'`},
		{"a deletion of the role", 0, `DELETE FROM approle_roles WHERE name = 'web'`},
	} {
		t.Run(c.name, func(t *testing.T) {
			db, raw := postgresWithRaw(t)
			putRole(t, db, webRole, t0)
			s := secretID("sid", "web")
			s.NumUses = c.uses
			mustSecretID(t, db, s)
			read, err := db.AppRoleRoleByName(ctx(), "web")
			if err != nil {
				t.Fatal(err)
			}

			other, err := raw.Begin()
			if err != nil {
				t.Fatal(err)
			}
			defer other.Rollback()
			if _, err := other.Exec(c.change); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- loginAs(db, s, read, "tok") }()
			waitForLockWait(t, raw, done)
			if err := other.Commit(); err != nil {
				t.Fatal(err)
			}
			if err := <-done; !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("login = %v, want ErrNotFound", err)
			}
			if n := count(t, raw, `SELECT count(*) FROM tokens`); n != 0 {
				t.Fatalf("the login stored %d tokens", n)
			}
		})
	}
}

// postgresWithRaw opens a fresh PostgreSQL test database and a plain
// connection to it (closed when the test ends).
func postgresWithRaw(t *testing.T) (*storage.DB, *sql.DB) {
	t.Helper()
	url := storagetest.PostgresURL(t)
	db := storagetest.Open(t, storage.Config{DatabaseURL: url})
	raw, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return db, raw
}

// waitForLockWait returns once a statement of the test database waits on a
// lock, failing the test if none does in time or if done (when not nil)
// reports first: the statement under test ran without waiting.
func waitForLockWait(t *testing.T, raw *sql.DB, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for count(t, raw, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`) == 0 {
		select {
		case err := <-done:
			t.Fatalf("finished (%v) without waiting for the uncommitted change", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("never waited for the uncommitted change")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
