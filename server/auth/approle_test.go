package auth_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrethub/secrethub/server/auth"
	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// approleFixture is the AppRole method over a fresh store, with a clock
// the test moves and a plain connection to the same database for checking
// what is stored.
type approleFixture struct {
	db      *storage.DB
	raw     *sql.DB
	now     time.Time
	tokens  *auth.Tokens
	approle *auth.AppRole
}

func newAppRoleFixture(t *testing.T, db *storage.DB, driver, dsn string) *approleFixture {
	t.Helper()
	raw, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	f := &approleFixture{db: db, raw: raw, now: t0}
	clock := func() time.Time { return f.now }
	f.tokens = auth.NewTokens(db, clock)
	f.tokens.DefaultTTL = 2 * time.Hour
	f.approle = auth.NewAppRole(db, f.tokens, clock)
	return f
}

// sqliteAppRole is a fixture over SQLite, for behaviour that does not
// depend on the engine.
func sqliteAppRole(t *testing.T) *approleFixture {
	db := storagetest.SQLite(t)
	return newAppRoleFixture(t, db, "sqlite", db.Location())
}

// approleEngines runs fn once per engine, each with its own fixture.
func approleEngines(t *testing.T, fn func(t *testing.T, f *approleFixture)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, sqliteAppRole(t)) })
	t.Run("postgres", func(t *testing.T) {
		url := storagetest.PostgresURL(t)
		fn(t, newAppRoleFixture(t, storagetest.Open(t, storage.Config{DatabaseURL: url}), "postgres", url))
	})
}

func ptr[T any](v T) *T { return &v }

// role writes a role, failing the test on error.
func (f *approleFixture) role(t *testing.T, name string, set auth.RoleSettings) auth.Role {
	t.Helper()
	if _, err := f.approle.WriteRole(bg(), name, set); err != nil {
		t.Fatalf("WriteRole(%s): %v", name, err)
	}
	r, err := f.approle.Role(bg(), name)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (f *approleFixture) secretID(t *testing.T, role string, req auth.SecretIDRequest) auth.SecretID {
	t.Helper()
	s, err := f.approle.NewSecretID(bg(), role, req)
	if err != nil {
		t.Fatalf("NewSecretID(%s): %v", role, err)
	}
	return s
}

var client = netip.MustParseAddr("10.1.2.3")

func (f *approleFixture) login(roleID, secretID string) (auth.Issued, error) {
	issued, _, err := f.approle.Login(bg(), roleID, secretID, client)
	return issued, err
}

func (f *approleFixture) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := f.raw.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

var uuidFormat = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestWriteRole(t *testing.T) {
	t.Run("creating a role applies the defaults and a random role_id", func(t *testing.T) {
		f := sqliteAppRole(t)
		created, err := f.approle.WriteRole(bg(), "web", auth.RoleSettings{})
		if err != nil || !created {
			t.Fatalf("WriteRole = %v, %v; want created", created, err)
		}
		r, _ := f.approle.Role(bg(), "web")
		want := auth.Role{Name: "web", RoleID: r.RoleID, Policies: []string{}, TokenBoundCIDRs: []string{},
			SecretIDBoundCIDRs: []string{}, CreatedAt: t0, UpdatedAt: t0}
		if fmt.Sprintf("%+v", r) != fmt.Sprintf("%+v", want) {
			t.Fatalf("role = %+v, want %+v", r, want)
		}
		other := f.role(t, "other", auth.RoleSettings{})
		if !uuidFormat.MatchString(r.RoleID) || r.RoleID == other.RoleID {
			t.Fatalf("role_ids %q and %q are not two random UUIDs", r.RoleID, other.RoleID)
		}
	})

	t.Run("an update changes only the settings it gives and keeps the role_id", func(t *testing.T) {
		f := sqliteAppRole(t)
		before := f.role(t, "web", auth.RoleSettings{
			Policies: ptr([]string{"web"}), TokenTTL: ptr(time.Hour), TokenMaxTTL: ptr(4 * time.Hour),
			TokenBoundCIDRs: ptr([]string{"10.0.0.0/8"}), SecretIDTTL: ptr(time.Minute), SecretIDNumUses: ptr(3),
			SecretIDBoundCIDRs: ptr([]string{"10.1.0.0/16"}),
		})
		f.now = t0.Add(time.Hour)
		created, err := f.approle.WriteRole(bg(), "web", auth.RoleSettings{TokenTTL: ptr(2 * time.Hour), SecretIDBoundCIDRs: ptr([]string{})})
		if err != nil || created {
			t.Fatalf("update = %v, %v", created, err)
		}
		after, _ := f.approle.Role(bg(), "web")
		want := before
		want.TokenTTL, want.SecretIDBoundCIDRs, want.UpdatedAt = 2*time.Hour, []string{}, f.now
		if fmt.Sprintf("%+v", after) != fmt.Sprintf("%+v", want) {
			t.Fatalf("after update:\n got %+v\nwant %+v", after, want)
		}
	})

	valid := []struct {
		name string
		role string
		set  auth.RoleSettings
		want func(auth.Role) bool
	}{
		{"policy names are trimmed, deduplicated and sorted", "web", auth.RoleSettings{Policies: ptr([]string{" web", "ops", "web "})},
			func(r auth.Role) bool { return slices.Equal(r.Policies, []string{"ops", "web"}) }},
		{"policy names are lowercased, as Vault does", "web", auth.RoleSettings{Policies: ptr([]string{" Admin", "WEB", "web", "Prod-1.x_y"})},
			func(r auth.Role) bool { return slices.Equal(r.Policies, []string{"admin", "prod-1.x_y", "web"}) }},
		{"a new role takes a given role_id", "web", auth.RoleSettings{RoleID: ptr("web-role-id")},
			func(r auth.Role) bool { return r.RoleID == "web-role-id" }},
		{"durations are rounded up to whole seconds", "web", auth.RoleSettings{TokenTTL: ptr(1500 * time.Millisecond), SecretIDTTL: ptr(time.Nanosecond)},
			func(r auth.Role) bool { return r.TokenTTL == 2*time.Second && r.SecretIDTTL == time.Second }},
		{"bare addresses and unmasked CIDRs are stored as canonical CIDRs", "web",
			auth.RoleSettings{TokenBoundCIDRs: ptr([]string{"10.1.2.3", " ", "10.1.2.3/8"}), SecretIDBoundCIDRs: ptr([]string{"::1"})},
			func(r auth.Role) bool {
				return slices.Equal(r.TokenBoundCIDRs, []string{"10.1.2.3/32", "10.0.0.0/8"}) && slices.Equal(r.SecretIDBoundCIDRs, []string{"::1/128"})
			}},
		{"a 128-character name of every allowed kind is accepted", strings.Repeat("aZ0._-", 21) + "ab", auth.RoleSettings{},
			func(r auth.Role) bool { return len(r.Name) == 128 }},
		{"limits at their maximum are accepted", "web",
			auth.RoleSettings{TokenMaxTTL: ptr(100 * 365 * 24 * time.Hour), SecretIDNumUses: ptr(math.MaxInt32)},
			func(r auth.Role) bool {
				return r.TokenMaxTTL == 100*365*24*time.Hour && r.SecretIDNumUses == math.MaxInt32
			}},
	}
	for _, c := range valid {
		t.Run(c.name, func(t *testing.T) {
			if r := sqliteAppRole(t).role(t, c.role, c.set); !c.want(r) {
				t.Fatalf("role = %+v", r)
			}
		})
	}

	tooLong := 100*365*24*time.Hour + time.Second
	refused := []struct {
		name string
		role string
		set  auth.RoleSettings
	}{
		{"an empty role name is refused", "", auth.RoleSettings{}},
		{"a 129-character role name is refused", strings.Repeat("a", 129), auth.RoleSettings{}},
		{"a role name with a slash is refused", "a/b", auth.RoleSettings{}},
		{"a role name with a space is refused", "a b", auth.RoleSettings{}},
		{"a role name with a non-ASCII letter is refused", "rôle", auth.RoleSettings{}},
		{"a role name with NUL is refused", "a\x00", auth.RoleSettings{}},
		{"the role name . is refused", ".", auth.RoleSettings{}},
		{"the role name .. is refused", "..", auth.RoleSettings{}},
		{"an empty policy name is refused", "web", auth.RoleSettings{Policies: ptr([]string{"web", " "})}},
		{"a policy name with NUL is refused", "web", auth.RoleSettings{Policies: ptr([]string{"we\x00b"})}},
		{"the root policy is refused", "web", auth.RoleSettings{Policies: ptr([]string{"root"})}},
		{"the root policy in capitals is refused", "web", auth.RoleSettings{Policies: ptr([]string{"ROOT"})}},
		{"the root policy padded and mixed-case is refused", "web", auth.RoleSettings{Policies: ptr([]string{" Root "})}},
		{"a policy name with a space inside is refused", "web", auth.RoleSettings{Policies: ptr([]string{"my policy"})}},
		{"a policy name with a slash is refused", "web", auth.RoleSettings{Policies: ptr([]string{"ops/*"})}},
		{"a policy name with a non-ASCII letter is refused", "web", auth.RoleSettings{Policies: ptr([]string{"pölicy"})}},
		{"a 129-character policy name is refused", "web", auth.RoleSettings{Policies: ptr([]string{strings.Repeat("p", 129)})}},
		{"an empty role_id is refused", "web", auth.RoleSettings{RoleID: ptr("")}},
		{"a role_id with a control character is refused", "web", auth.RoleSettings{RoleID: ptr("a\tb")}},
		{"a negative token_ttl is refused", "web", auth.RoleSettings{TokenTTL: ptr(-time.Second)}},
		{"a token_max_ttl over 100 years is refused", "web", auth.RoleSettings{TokenMaxTTL: ptr(tooLong)}},
		{"a negative secret_id_ttl is refused", "web", auth.RoleSettings{SecretIDTTL: ptr(-time.Second)}},
		{"a secret_id_ttl over 100 years is refused", "web", auth.RoleSettings{SecretIDTTL: ptr(tooLong)}},
		{"a negative secret_id_num_uses is refused", "web", auth.RoleSettings{SecretIDNumUses: ptr(-1)}},
		{"a secret_id_num_uses past 32 bits is refused", "web", auth.RoleSettings{SecretIDNumUses: ptr(math.MaxInt32 + 1)}},
		{"a token_bound_cidrs entry that is not a CIDR is refused", "web", auth.RoleSettings{TokenBoundCIDRs: ptr([]string{"nope"})}},
		{"a secret_id_bound_cidrs entry with a bad mask is refused", "web", auth.RoleSettings{SecretIDBoundCIDRs: ptr([]string{"10.0.0.0/33"})}},
		{"a token_ttl above the token_max_ttl is refused", "web", auth.RoleSettings{TokenTTL: ptr(2 * time.Hour), TokenMaxTTL: ptr(time.Hour)}},
	}
	for _, c := range refused {
		t.Run(c.name+" and nothing is stored", func(t *testing.T) {
			f := sqliteAppRole(t)
			if _, err := f.approle.WriteRole(bg(), c.role, c.set); fault.KindOf(err) != fault.Invalid {
				t.Fatalf("WriteRole = %v, want an Invalid fault", err)
			}
			if names, _ := f.approle.ListRoles(bg()); len(names) != 0 {
				t.Fatalf("roles after a refused write: %q", names)
			}
		})
	}

	t.Run("a create-only write creates a role but refuses to change one", func(t *testing.T) {
		f := sqliteAppRole(t)
		created, err := f.approle.WriteRole(bg(), "web", auth.RoleSettings{CreateOnly: true, Policies: ptr([]string{"web"})})
		if err != nil || !created {
			t.Fatalf("create-only creation = %v, %v", created, err)
		}
		before, _ := f.approle.Role(bg(), "web")
		_, err = f.approle.WriteRole(bg(), "web", auth.RoleSettings{CreateOnly: true, Policies: ptr([]string{"ops"})})
		if !errors.Is(err, auth.ErrPermissionDenied) {
			t.Fatalf("create-only update = %v, want ErrPermissionDenied", err)
		}
		if after, _ := f.approle.Role(bg(), "web"); fmt.Sprintf("%+v", after) != fmt.Sprintf("%+v", before) {
			t.Fatalf("a refused create-only write changed the role: %+v", after)
		}
	})

	t.Run("an update-only write updates a role but refuses to create one", func(t *testing.T) {
		f := sqliteAppRole(t)
		_, err := f.approle.WriteRole(bg(), "web", auth.RoleSettings{UpdateOnly: true, Policies: ptr([]string{"web"})})
		if !errors.Is(err, auth.ErrPermissionDenied) {
			t.Fatalf("update-only creation = %v, want ErrPermissionDenied", err)
		}
		if names, _ := f.approle.ListRoles(bg()); len(names) != 0 {
			t.Fatalf("a refused update-only write created %q", names)
		}
		f.role(t, "web", auth.RoleSettings{Policies: ptr([]string{"web"})})
		created, err := f.approle.WriteRole(bg(), "web", auth.RoleSettings{UpdateOnly: true, Policies: ptr([]string{"ops"})})
		if err != nil || created {
			t.Fatalf("update-only update = %v, %v", created, err)
		}
		if r, _ := f.approle.Role(bg(), "web"); !slices.Equal(r.Policies, []string{"ops"}) {
			t.Fatalf("after an update-only update: %+v", r)
		}
	})

	t.Run("an update may change the role_id, but not to another role's", func(t *testing.T) {
		f := sqliteAppRole(t)
		before := f.role(t, "web", auth.RoleSettings{})
		other := f.role(t, "other", auth.RoleSettings{RoleID: ptr("other-id")})
		if _, err := f.approle.WriteRole(bg(), "web", auth.RoleSettings{RoleID: ptr("other-id"), Policies: ptr([]string{"ops"})}); !errors.Is(err, auth.ErrRoleIDInUse) {
			t.Fatalf("taking another role's role_id = %v, want ErrRoleIDInUse", err)
		}
		if _, err := f.approle.WriteRole(bg(), "new", auth.RoleSettings{RoleID: ptr("other-id")}); !errors.Is(err, auth.ErrRoleIDInUse) {
			t.Fatalf("creating a role with another role's role_id = %v, want ErrRoleIDInUse", err)
		}
		if after, _ := f.approle.Role(bg(), "web"); fmt.Sprintf("%+v", after) != fmt.Sprintf("%+v", before) {
			t.Fatalf("a refused role_id change changed the role: %+v", after)
		}
		if _, err := f.approle.WriteRole(bg(), "web", auth.RoleSettings{RoleID: ptr("web-id")}); err != nil {
			t.Fatal(err)
		}
		if r, _ := f.approle.Role(bg(), "web"); r.RoleID != "web-id" {
			t.Fatalf("role_id after the change = %q", r.RoleID)
		}
		if r, _ := f.approle.Role(bg(), "other"); r.RoleID != other.RoleID {
			t.Fatalf("the other role's role_id changed: %q", r.RoleID)
		}
	})

	t.Run("an update that lifts token_ttl above the stored token_max_ttl is refused and changes nothing", func(t *testing.T) {
		f := sqliteAppRole(t)
		before := f.role(t, "web", auth.RoleSettings{TokenMaxTTL: ptr(time.Hour), Policies: ptr([]string{"web"})})
		_, err := f.approle.WriteRole(bg(), "web", auth.RoleSettings{TokenTTL: ptr(2 * time.Hour), Policies: ptr([]string{"ops"})})
		if fault.KindOf(err) != fault.Invalid {
			t.Fatalf("WriteRole = %v, want an Invalid fault", err)
		}
		if after, _ := f.approle.Role(bg(), "web"); fmt.Sprintf("%+v", after) != fmt.Sprintf("%+v", before) {
			t.Fatalf("a refused update changed the role: %+v", after)
		}
	})
}

func TestRoleReadsAndDeletes(t *testing.T) {
	f := sqliteAppRole(t)
	t.Run("roles are listed in byte order", func(t *testing.T) {
		if names, err := f.approle.ListRoles(bg()); err != nil || len(names) != 0 {
			t.Fatalf("no roles yet: %q, %v", names, err)
		}
		for _, n := range []string{"web", "Agents", "admin", "_x"} {
			f.role(t, n, auth.RoleSettings{})
		}
		if names, err := f.approle.ListRoles(bg()); err != nil || !slices.Equal(names, []string{"Agents", "_x", "admin", "web"}) {
			t.Fatalf("ListRoles = %q, %v", names, err)
		}
	})
	t.Run("RoleID returns the role's role_id", func(t *testing.T) {
		r, _ := f.approle.Role(bg(), "web")
		if id, err := f.approle.RoleID(bg(), "web"); err != nil || id != r.RoleID || id == "" {
			t.Fatalf("RoleID = %q, %v; want %q", id, err, r.RoleID)
		}
	})
	missing := []struct {
		name string
		call func() error
	}{
		{"Role", func() error { _, err := f.approle.Role(bg(), "missing"); return err }},
		{"RoleID", func() error { _, err := f.approle.RoleID(bg(), "missing"); return err }},
		{"SetRoleID", func() error { return f.approle.SetRoleID(bg(), "missing", "free") }},
		{"DeleteRole", func() error { return f.approle.DeleteRole(bg(), "missing") }},
		{"NewSecretID", func() error { _, err := f.approle.NewSecretID(bg(), "missing", auth.SecretIDRequest{}); return err }},
		{"ListSecretIDAccessors", func() error { _, err := f.approle.ListSecretIDAccessors(bg(), "missing"); return err }},
		{"LookupSecretID", func() error { _, err := f.approle.LookupSecretID(bg(), "missing", "acc"); return err }},
		{"DestroySecretID", func() error { return f.approle.DestroySecretID(bg(), "missing", "acc") }},
	}
	for _, c := range missing {
		t.Run(c.name+" on a missing role is ErrRoleNotFound", func(t *testing.T) {
			if err := c.call(); !errors.Is(err, auth.ErrRoleNotFound) || fault.KindOf(err) != fault.NotFound {
				t.Fatalf("got %v, want ErrRoleNotFound", err)
			}
		})
	}
	t.Run("deleting a role deletes it and its secret IDs", func(t *testing.T) {
		r := f.role(t, "doomed", auth.RoleSettings{})
		s := f.secretID(t, "doomed", auth.SecretIDRequest{})
		if err := f.approle.DeleteRole(bg(), "doomed"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.approle.Role(bg(), "doomed"); !errors.Is(err, auth.ErrRoleNotFound) {
			t.Fatalf("Role after delete: %v", err)
		}
		if n := f.count(t, `SELECT count(*) FROM approle_secret_ids WHERE role_name = 'doomed'`); n != 0 {
			t.Fatalf("%d secret IDs outlived their role", n)
		}
		// A new role of the same name does not revive the old secret ID.
		f.role(t, "doomed", auth.RoleSettings{})
		if err := f.approle.SetRoleID(bg(), "doomed", r.RoleID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.login(r.RoleID, s.ID); !errors.Is(err, auth.ErrInvalidLogin) {
			t.Fatalf("login with a deleted role's secret ID: %v", err)
		}
	})
	t.Run("an invalid role name is refused before storage", func(t *testing.T) {
		if _, err := f.approle.Role(bg(), "a/b"); fault.KindOf(err) != fault.Invalid {
			t.Fatalf("Role(a/b) = %v, want an Invalid fault", err)
		}
	})
}

func TestSetRoleID(t *testing.T) {
	f := sqliteAppRole(t)
	web := f.role(t, "web", auth.RoleSettings{})
	f.role(t, "other", auth.RoleSettings{})
	s := f.secretID(t, "web", auth.SecretIDRequest{})

	t.Run("a custom role_id replaces the generated one for logins", func(t *testing.T) {
		if err := f.approle.SetRoleID(bg(), "web", "web-role-id"); err != nil {
			t.Fatal(err)
		}
		if id, _ := f.approle.RoleID(bg(), "web"); id != "web-role-id" {
			t.Fatalf("role_id = %q", id)
		}
		if _, err := f.login("web-role-id", s.ID); err != nil {
			t.Fatalf("login with the custom role_id: %v", err)
		}
		if _, err := f.login(web.RoleID, s.ID); !errors.Is(err, auth.ErrInvalidLogin) {
			t.Fatalf("login with the replaced role_id: %v, want ErrInvalidLogin", err)
		}
	})
	t.Run("setting a role's own role_id again is allowed", func(t *testing.T) {
		if err := f.approle.SetRoleID(bg(), "web", "web-role-id"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("another role's role_id is a Conflict", func(t *testing.T) {
		err := f.approle.SetRoleID(bg(), "other", "web-role-id")
		if !errors.Is(err, auth.ErrRoleIDInUse) || fault.KindOf(err) != fault.Conflict || err.Error() != "role_id is already in use" {
			t.Fatalf("SetRoleID = %v, want ErrRoleIDInUse", err)
		}
	})
	for _, c := range []struct {
		name, id string
		ok       bool
	}{
		{"a 256-character role_id is accepted", strings.Repeat("x", 256), true},
		{"a role_id with non-ASCII letters is accepted", "rôle-ïd", true},
		{"an empty role_id is refused", "", false},
		{"a 257-character role_id is refused", strings.Repeat("x", 257), false},
		{"a role_id with NUL is refused", "a\x00b", false},
		{"a role_id with a newline is refused", "a\nb", false},
		{"a role_id with a C1 control character is refused", "a\u0085b", false},
		{"a role_id that is not UTF-8 is refused", "a\xffb", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := f.approle.SetRoleID(bg(), "other", c.id)
			if c.ok != (err == nil) || !c.ok && fault.KindOf(err) != fault.Invalid {
				t.Fatalf("SetRoleID = %v", err)
			}
		})
	}
}

func TestNewSecretID(t *testing.T) {
	type limits struct {
		ttl   time.Duration
		uses  int
		cidrs []string
	}
	cases := []struct {
		name string
		role limits
		req  auth.SecretIDRequest
		want limits
		bad  bool
	}{
		{"without limits a secret ID never expires and has unlimited uses", limits{}, auth.SecretIDRequest{}, limits{}, false},
		{"a secret ID takes the role's limits by default", limits{time.Hour, 5, []string{"10.0.0.0/8"}}, auth.SecretIDRequest{},
			limits{time.Hour, 5, []string{"10.0.0.0/8"}}, false},
		{"a request may tighten the role's limits", limits{time.Hour, 5, []string{"10.0.0.0/8"}},
			auth.SecretIDRequest{TTL: 10 * time.Minute, NumUses: 2, CIDRs: []string{"10.1.2.3", "10.2.0.0/16"}},
			limits{10 * time.Minute, 2, []string{"10.1.2.3/32", "10.2.0.0/16"}}, false},
		{"a request may set limits a role leaves open", limits{}, auth.SecretIDRequest{TTL: 2 * time.Hour, NumUses: 7, CIDRs: []string{"192.168.0.0/24"}},
			limits{2 * time.Hour, 7, []string{"192.168.0.0/24"}}, false},
		{"a request ttl above the role's is refused", limits{ttl: time.Hour}, auth.SecretIDRequest{TTL: 2 * time.Hour}, limits{}, true},
		{"a request num_uses above the role's is refused", limits{uses: 5}, auth.SecretIDRequest{NumUses: 6}, limits{}, true},
		{"a request CIDR outside the role's is refused", limits{cidrs: []string{"10.0.0.0/8"}}, auth.SecretIDRequest{CIDRs: []string{"11.0.0.0/8"}}, limits{}, true},
		{"a request CIDR wider than the role's is refused", limits{cidrs: []string{"10.0.0.0/8"}}, auth.SecretIDRequest{CIDRs: []string{"10.0.0.0/7"}}, limits{}, true},
		{"a request CIDR that does not parse is refused", limits{}, auth.SecretIDRequest{CIDRs: []string{"10.0.0.0/40"}}, limits{}, true},
		{"a negative ttl is refused", limits{}, auth.SecretIDRequest{TTL: -time.Second}, limits{}, true},
		{"a negative num_uses is refused", limits{}, auth.SecretIDRequest{NumUses: -1}, limits{}, true},
		{"a num_uses past 32 bits is refused", limits{}, auth.SecretIDRequest{NumUses: math.MaxInt32 + 1}, limits{}, true},
		{"metadata with NUL is refused", limits{}, auth.SecretIDRequest{Metadata: map[string]string{"k": "v\x00"}}, limits{}, true},
		{"metadata with an empty key is refused", limits{}, auth.SecretIDRequest{Metadata: map[string]string{"": "v"}}, limits{}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := sqliteAppRole(t)
			f.role(t, "web", auth.RoleSettings{SecretIDTTL: &c.role.ttl, SecretIDNumUses: &c.role.uses, SecretIDBoundCIDRs: &c.role.cidrs})
			s, err := f.approle.NewSecretID(bg(), "web", c.req)
			if c.bad {
				if fault.KindOf(err) != fault.Invalid {
					t.Fatalf("NewSecretID = %+v, %v; want an Invalid fault", s, err)
				}
				if n := f.count(t, `SELECT count(*) FROM approle_secret_ids`); n != 0 {
					t.Fatalf("a refused request stored %d secret IDs", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.TTL != c.want.ttl || s.NumUses != c.want.uses {
				t.Fatalf("secret ID ttl %v uses %d, want %v and %d", s.TTL, s.NumUses, c.want.ttl, c.want.uses)
			}
			info, err := f.approle.LookupSecretID(bg(), "web", s.Accessor)
			if err != nil {
				t.Fatal(err)
			}
			wantExpiry := time.Time{}
			if c.want.ttl > 0 {
				wantExpiry = t0.Add(c.want.ttl)
			}
			if !info.ExpiresAt.Equal(wantExpiry) || info.NumUses != c.want.uses || !slices.Equal(info.CIDRs, nonNil(c.want.cidrs)) {
				t.Fatalf("stored %+v, want expiry %v, %d uses, CIDRs %q", info, wantExpiry, c.want.uses, c.want.cidrs)
			}
		})
	}
	t.Run("a secret ID and its accessor are distinct random UUIDs", func(t *testing.T) {
		f := sqliteAppRole(t)
		f.role(t, "web", auth.RoleSettings{})
		seen := map[string]bool{}
		for range 20 {
			s := f.secretID(t, "web", auth.SecretIDRequest{})
			for _, v := range []string{s.ID, s.Accessor} {
				if !uuidFormat.MatchString(v) || seen[v] {
					t.Fatalf("%q is not a fresh UUID", v)
				}
				seen[v] = true
			}
		}
	})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func TestSecretIDAccessors(t *testing.T) {
	f := sqliteAppRole(t)
	f.role(t, "web", auth.RoleSettings{})
	f.role(t, "other", auth.RoleSettings{})
	f.now = t0.Add(time.Minute)
	full := f.secretID(t, "web", auth.SecretIDRequest{Metadata: map[string]string{"host": "app-1"}, CIDRs: []string{"10.1.0.0/16"}, TTL: time.Hour, NumUses: 4})
	plain := f.secretID(t, "web", auth.SecretIDRequest{})
	elsewhere := f.secretID(t, "other", auth.SecretIDRequest{})

	t.Run("a role's accessors are listed in byte order, and only its own", func(t *testing.T) {
		want := []string{full.Accessor, plain.Accessor}
		slices.Sort(want)
		if got, err := f.approle.ListSecretIDAccessors(bg(), "web"); err != nil || !slices.Equal(got, want) {
			t.Fatalf("accessors = %q, %v; want %q", got, err, want)
		}
	})
	t.Run("a lookup describes the secret ID without its value", func(t *testing.T) {
		got, err := f.approle.LookupSecretID(bg(), "web", full.Accessor)
		want := auth.SecretIDInfo{Accessor: full.Accessor, CreatedAt: f.now, ExpiresAt: f.now.Add(time.Hour), NumUses: 4,
			CIDRs: []string{"10.1.0.0/16"}, Metadata: map[string]string{"host": "app-1"}}
		if err != nil || fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
			t.Fatalf("lookup = %+v, %v\nwant %+v", got, err, want)
		}
	})
	for _, c := range []struct {
		name, role, accessor string
	}{
		{"an unknown accessor is ErrSecretIDNotFound", "web", "00000000-0000-4000-8000-000000000000"},
		{"another role's accessor is ErrSecretIDNotFound", "web", elsewhere.Accessor},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := f.approle.LookupSecretID(bg(), c.role, c.accessor); !errors.Is(err, auth.ErrSecretIDNotFound) {
				t.Fatalf("LookupSecretID = %v", err)
			}
			if err := f.approle.DestroySecretID(bg(), c.role, c.accessor); !errors.Is(err, auth.ErrSecretIDNotFound) {
				t.Fatalf("DestroySecretID = %v", err)
			}
		})
	}
	t.Run("an accessor with NUL is refused as input", func(t *testing.T) {
		if _, err := f.approle.LookupSecretID(bg(), "web", "a\x00"); fault.KindOf(err) != fault.Invalid {
			t.Fatalf("LookupSecretID = %v, want an Invalid fault", err)
		}
	})
	t.Run("an expired secret ID is neither listed nor looked up", func(t *testing.T) {
		f.now = t0.Add(time.Minute + time.Hour)
		defer func() { f.now = t0.Add(time.Minute) }()
		if got, _ := f.approle.ListSecretIDAccessors(bg(), "web"); !slices.Equal(got, []string{plain.Accessor}) {
			t.Fatalf("accessors = %q", got)
		}
		if _, err := f.approle.LookupSecretID(bg(), "web", full.Accessor); !errors.Is(err, auth.ErrSecretIDNotFound) {
			t.Fatalf("LookupSecretID = %v", err)
		}
	})
	t.Run("a destroyed secret ID no longer logs in", func(t *testing.T) {
		roleID, _ := f.approle.RoleID(bg(), "web")
		if err := f.approle.DestroySecretID(bg(), "web", plain.Accessor); err != nil {
			t.Fatal(err)
		}
		if _, err := f.login(roleID, plain.ID); !errors.Is(err, auth.ErrInvalidLogin) {
			t.Fatalf("login = %v, want ErrInvalidLogin", err)
		}
		if err := f.approle.DestroySecretID(bg(), "web", plain.Accessor); !errors.Is(err, auth.ErrSecretIDNotFound) {
			t.Fatalf("second destroy = %v", err)
		}
	})
}

func TestAppRoleLogin(t *testing.T) {
	approleEngines(t, func(t *testing.T, f *approleFixture) {
		web := f.role(t, "web", auth.RoleSettings{
			Policies: ptr([]string{"web", "ops"}), TokenTTL: ptr(time.Hour), TokenMaxTTL: ptr(4 * time.Hour),
			TokenBoundCIDRs: ptr([]string{"10.0.0.0/8"}),
		})
		s := f.secretID(t, "web", auth.SecretIDRequest{})

		t.Run("a login issues an orphan token with the role's policies, limits and name", func(t *testing.T) {
			issued, role, err := f.approle.Login(bg(), web.RoleID, s.ID, client)
			if err != nil {
				t.Fatal(err)
			}
			tok := issued.Token
			if tok.ParentAccessor != "" || !slices.Equal(tok.Policies, []string{"default", "ops", "web"}) ||
				tok.DisplayName != "token-approle-web" || tok.Meta["role_name"] != "web" || len(tok.Meta) != 1 ||
				tok.TTL != time.Hour || !tok.ExpiresAt.Equal(t0.Add(time.Hour)) || !tok.MaxExpiresAt.Equal(t0.Add(4*time.Hour)) ||
				!tok.Renewable || !slices.Equal(tok.BoundCIDRs, []string{"10.0.0.0/8"}) {
				t.Fatalf("token = %+v", tok)
			}
			if role.Name != "web" || role.RoleID != web.RoleID {
				t.Fatalf("role = %+v", role)
			}
			stored, err := f.db.TokenByHash(bg(), auth.Hash(issued.ID))
			if err != nil || stored.Accessor != tok.Accessor {
				t.Fatalf("stored token = %+v, %v", stored, err)
			}
			if _, err := f.tokens.Authenticate(bg(), issued.ID, client); err != nil {
				t.Fatalf("the login token does not authenticate: %v", err)
			}
			if _, err := f.tokens.Authenticate(bg(), issued.ID, netip.MustParseAddr("192.168.1.1")); !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("token_bound_cidrs do not bind the token: %v", err)
			}
		})

		t.Run("the approle_tokens row names the role and secret ID and goes when the token is revoked", func(t *testing.T) {
			issued, err := f.login(web.RoleID, s.ID)
			if err != nil {
				t.Fatal(err)
			}
			var role, accessor string
			err = f.raw.QueryRow(`SELECT role_name, secret_id_accessor FROM approle_tokens WHERE token_accessor = $1`, issued.Token.Accessor).Scan(&role, &accessor)
			if err != nil || role != "web" || accessor != s.Accessor {
				t.Fatalf("approle_tokens row = %q %q, %v", role, accessor, err)
			}
			if _, err := f.tokens.Revoke(bg(), issued.Token.Accessor); err != nil {
				t.Fatal(err)
			}
			if n := f.count(t, `SELECT count(*) FROM approle_tokens WHERE token_accessor = $1`, issued.Token.Accessor); n != 0 {
				t.Fatal("the approle_tokens row outlived its token")
			}
		})

		t.Run("a login is one read and one transaction", func(t *testing.T) {
			before := f.db.RoundTrips()
			if _, err := f.login(web.RoleID, s.ID); err != nil {
				t.Fatal(err)
			}
			after := f.db.RoundTrips()
			if q, tx := after.Queries-before.Queries, after.Transactions-before.Transactions; q != 1 || tx != 1 {
				t.Fatalf("a login took %d statements and %d transactions, want 1 and 1", q, tx)
			}
		})

		t.Run("a wrong secret_id and a wrong role_id cost the same: one read that misses", func(t *testing.T) {
			for _, c := range []struct{ name, roleID, secretID string }{
				{"wrong secret_id", web.RoleID, "00000000-0000-4000-8000-000000000000"},
				{"wrong role_id", "00000000-0000-4000-8000-000000000000", s.ID},
				{"a role_id no role can have", "a\x00b", s.ID},
			} {
				before := f.db.RoundTrips()
				if _, err := f.login(c.roleID, c.secretID); !errors.Is(err, auth.ErrInvalidLogin) {
					t.Fatalf("%s: %v, want ErrInvalidLogin", c.name, err)
				}
				after := f.db.RoundTrips()
				if q, tx := after.Queries-before.Queries, after.Transactions-before.Transactions; q != 1 || tx != 0 {
					t.Fatalf("%s: %d statements and %d transactions, want 1 and 0", c.name, q, tx)
				}
			}
		})

		t.Run("a role without token_ttl gives the token service's default", func(t *testing.T) {
			f.role(t, "plain", auth.RoleSettings{})
			id, _ := f.approle.RoleID(bg(), "plain")
			issued, err := f.login(id, f.secretID(t, "plain", auth.SecretIDRequest{}).ID)
			if err != nil || issued.Token.TTL != f.tokens.DefaultTTL || !slices.Equal(issued.Token.Policies, []string{"default"}) {
				t.Fatalf("token = %+v, %v; want ttl %v and the default policy", issued.Token, err, f.tokens.DefaultTTL)
			}
		})

		other := f.role(t, "other", auth.RoleSettings{})
		otherSecret := f.secretID(t, "other", auth.SecretIDRequest{})
		expiring := f.secretID(t, "web", auth.SecretIDRequest{TTL: time.Minute})
		bound := f.secretID(t, "web", auth.SecretIDRequest{CIDRs: []string{"192.168.0.0/24", "2001:db8::/32"}})
		destroyed := f.secretID(t, "web", auth.SecretIDRequest{})
		if err := f.approle.DestroySecretID(bg(), "web", destroyed.Accessor); err != nil {
			t.Fatal(err)
		}
		f.role(t, "gone", auth.RoleSettings{})
		gone, _ := f.approle.Role(bg(), "gone")
		goneSecret := f.secretID(t, "gone", auth.SecretIDRequest{})
		if err := f.approle.DeleteRole(bg(), "gone"); err != nil {
			t.Fatal(err)
		}
		f.role(t, "tightened", auth.RoleSettings{SecretIDBoundCIDRs: ptr([]string{"10.0.0.0/8"})})
		tightened, _ := f.approle.Role(bg(), "tightened")
		tightenedSecret := f.secretID(t, "tightened", auth.SecretIDRequest{})
		f.role(t, "tightened", auth.RoleSettings{SecretIDBoundCIDRs: ptr([]string{"10.9.0.0/16"})})

		refused := []struct {
			name             string
			roleID, secretID string
			client           netip.Addr
			at               time.Duration // after t0
		}{
			{"a wrong role_id with a right secret_id is refused", "00000000-0000-4000-8000-000000000000", s.ID, client, 0},
			{"a right role_id with a wrong secret_id is refused", web.RoleID, "00000000-0000-4000-8000-000000000000", client, 0},
			{"another role's role_id with this role's secret_id is refused", other.RoleID, s.ID, client, 0},
			{"this role's role_id with another role's secret_id is refused", web.RoleID, otherSecret.ID, client, 0},
			{"role_id and secret_id swapped are refused", s.ID, web.RoleID, client, 0},
			{"an empty role_id and secret_id are refused", "", "", client, 0},
			{"a role_id with NUL is refused", "a\x00b", s.ID, client, 0},
			{"a role_id that is not UTF-8 is refused", "a\xffb", s.ID, client, 0},
			{"a 257-character role_id is refused", strings.Repeat("x", 257), s.ID, client, 0},
			{"a secret ID is refused at its expiry", web.RoleID, expiring.ID, client, time.Minute},
			{"a CIDR-bound secret ID is refused from outside", web.RoleID, bound.ID, client, 0},
			{"a CIDR-bound secret ID is refused without a client address", web.RoleID, bound.ID, netip.Addr{}, 0},
			{"a role's tightened secret_id_bound_cidrs bind its older secret IDs", tightened.RoleID, tightenedSecret.ID, client, 0},
			{"a destroyed secret ID is refused", web.RoleID, destroyed.ID, client, 0},
			{"a deleted role's secret ID is refused", gone.RoleID, goneSecret.ID, client, 0},
		}
		for _, c := range refused {
			t.Run(c.name+" with ErrInvalidLogin and nothing stored", func(t *testing.T) {
				f.now = t0.Add(c.at)
				defer func() { f.now = t0 }()
				tokens := f.count(t, `SELECT count(*) FROM tokens`)
				issued, role, err := f.approle.Login(bg(), c.roleID, c.secretID, c.client)
				if !errors.Is(err, auth.ErrInvalidLogin) || fault.KindOf(err) != fault.Denied || err.Error() != "invalid role_id or secret_id" {
					t.Fatalf("Login = %v, want ErrInvalidLogin", err)
				}
				if issued.ID != "" || role.Name != "" {
					t.Fatalf("a refused login returned %+v, %+v", issued, role)
				}
				for _, v := range []string{c.roleID, c.secretID} {
					if v != "" && strings.Contains(fmt.Sprintf("%+v", err), v) {
						t.Fatal("the error repeats a credential")
					}
				}
				if n := f.count(t, `SELECT count(*) FROM tokens`); n != tokens {
					t.Fatalf("a refused login stored %d tokens", n-tokens)
				}
			})
		}

		t.Run("a secret ID is accepted just before its expiry", func(t *testing.T) {
			f.now = t0.Add(time.Minute - time.Second)
			defer func() { f.now = t0 }()
			if _, err := f.login(web.RoleID, expiring.ID); err != nil {
				t.Fatalf("Login = %v", err)
			}
		})
		for _, addr := range []string{"192.168.0.7", "::ffff:192.168.0.7", "2001:db8::1"} {
			t.Run("a CIDR-bound secret ID is accepted from inside at "+addr, func(t *testing.T) {
				if _, _, err := f.approle.Login(bg(), web.RoleID, bound.ID, netip.MustParseAddr(addr)); err != nil {
					t.Fatalf("Login = %v", err)
				}
			})
		}

		t.Run("a secret ID is refused once its uses are spent, and then gone", func(t *testing.T) {
			twice := f.secretID(t, "web", auth.SecretIDRequest{NumUses: 2})
			for i := range 2 {
				if _, err := f.login(web.RoleID, twice.ID); err != nil {
					t.Fatalf("use %d: %v", i+1, err)
				}
			}
			if _, err := f.login(web.RoleID, twice.ID); !errors.Is(err, auth.ErrInvalidLogin) {
				t.Fatalf("third use: %v, want ErrInvalidLogin", err)
			}
			if _, err := f.approle.LookupSecretID(bg(), "web", twice.Accessor); !errors.Is(err, auth.ErrSecretIDNotFound) {
				t.Fatalf("a used-up secret ID is still stored: %v", err)
			}
		})

		t.Run("concurrent logins on a 3-use secret ID: exactly 3 succeed", func(t *testing.T) {
			three := f.secretID(t, "web", auth.SecretIDRequest{NumUses: 3})
			const logins = 16
			errs := make([]error, logins)
			var wg sync.WaitGroup
			for i := range logins {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[i] = f.login(web.RoleID, three.ID)
				}()
			}
			wg.Wait()
			ok := 0
			for _, err := range errs {
				switch {
				case err == nil:
					ok++
				case !errors.Is(err, auth.ErrInvalidLogin):
					t.Fatalf("a login failed otherwise than ErrInvalidLogin: %v", err)
				}
			}
			if ok != 3 {
				t.Fatalf("%d of %d logins succeeded, want exactly 3", ok, logins)
			}
			if n := f.count(t, `SELECT count(*) FROM approle_tokens WHERE secret_id_accessor = $1`, three.Accessor); n != 3 {
				t.Fatalf("%d tokens recorded for the secret ID, want 3", n)
			}
		})

		t.Run("nothing of a secret ID is stored in the clear", func(t *testing.T) {
			issued, err := f.login(web.RoleID, s.ID)
			if err != nil {
				t.Fatal(err)
			}
			var hash string
			if err := f.raw.QueryRow(`SELECT secret_id_hash FROM approle_secret_ids WHERE accessor = $1`, s.Accessor).Scan(&hash); err != nil || hash != auth.Hash(s.ID) {
				t.Fatalf("secret_id_hash = %q, %v; want SHA-256 of the secret ID", hash, err)
			}
			seen := false
			for _, table := range []string{"approle_secret_ids", "approle_tokens", "tokens", "approle_roles"} {
				f.eachValue(t, table, func(column, value string) {
					seen = seen || strings.Contains(value, s.Accessor)
					for _, secret := range []string{s.ID, strings.ReplaceAll(s.ID, "-", ""), issued.ID} {
						if strings.Contains(value, secret) {
							t.Fatalf("%s.%s holds a secret in the clear", table, column)
						}
					}
				})
			}
			if !seen {
				t.Fatal("the accessor was found nowhere: the scan reads nothing")
			}
		})

		t.Run("the sweep removes expired secret IDs only", func(t *testing.T) {
			f.now = t0.Add(time.Minute)
			defer func() { f.now = t0 }()
			if n, err := f.approle.RemoveExpiredSecretIDs(bg()); err != nil || n != 1 {
				t.Fatalf("swept %d, %v; want the one expired secret ID", n, err)
			}
			if n := f.count(t, `SELECT count(*) FROM approle_secret_ids WHERE accessor = $1`, expiring.Accessor); n != 0 {
				t.Fatal("the expired secret ID is still stored")
			}
			if _, err := f.login(web.RoleID, s.ID); err != nil {
				t.Fatalf("an unexpiring secret ID was swept: %v", err)
			}
		})
	})
}

// eachValue calls fn with every column of every row of table, as text.
func (f *approleFixture) eachValue(t *testing.T, table string, fn func(column, value string)) {
	t.Helper()
	rows, err := f.raw.Query(`SELECT * FROM ` + table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	columns, _ := rows.Columns()
	for rows.Next() {
		values := make([]any, len(columns))
		ptrs := make([]any, len(columns))
		for i := range values {
			ptrs[i] = &values[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range values {
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			fn(columns[i], fmt.Sprint(v))
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestAppRoleStorageFailuresAreNotInvalidLogins(t *testing.T) {
	f := sqliteAppRole(t)
	web := f.role(t, "web", auth.RoleSettings{})
	s := f.secretID(t, "web", auth.SecretIDRequest{})
	f.db.Close()
	cases := []struct {
		name string
		call func() error
	}{
		{"Login reports the storage error", func() error { _, err := f.login(web.RoleID, s.ID); return err }},
		{"Role reports the storage error", func() error { _, err := f.approle.Role(bg(), "web"); return err }},
		{"WriteRole reports the storage error", func() error { _, err := f.approle.WriteRole(bg(), "web", auth.RoleSettings{}); return err }},
		{"LookupSecretID reports the storage error", func() error { _, err := f.approle.LookupSecretID(bg(), "web", s.Accessor); return err }},
		{"RemoveExpiredSecretIDs reports the storage error", func() error { _, err := f.approle.RemoveExpiredSecretIDs(bg()); return err }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if err == nil || errors.Is(err, auth.ErrInvalidLogin) || errors.Is(err, auth.ErrRoleNotFound) || errors.Is(err, auth.ErrSecretIDNotFound) {
				t.Fatalf("got %v, want the storage error", err)
			}
		})
	}
}

// A login that found a row decodes it; a login that misses decodes
// nothing, whichever part was wrong. A role whose stored policies do not
// decode shows the difference.
func TestAppRoleLoginMissDecodesNothing(t *testing.T) {
	approleEngines(t, func(t *testing.T, f *approleFixture) {
		web := f.role(t, "web", auth.RoleSettings{Policies: ptr([]string{"web"})})
		s := f.secretID(t, "web", auth.SecretIDRequest{})
		if _, err := f.raw.Exec(`UPDATE approle_roles SET policies = 'not json' WHERE name = 'web'`); err != nil {
			t.Fatal(err)
		}
		if _, err := f.login(web.RoleID, s.ID); err == nil || errors.Is(err, auth.ErrInvalidLogin) {
			t.Fatalf("the right pair on a corrupt role: %v, want the decoding error", err)
		}
		for _, c := range []struct{ name, roleID, secretID string }{
			{"wrong role_id", "00000000-0000-4000-8000-000000000000", s.ID},
			{"wrong secret_id", web.RoleID, "00000000-0000-4000-8000-000000000000"},
		} {
			if _, err := f.login(c.roleID, c.secretID); !errors.Is(err, auth.ErrInvalidLogin) {
				t.Fatalf("%s on a corrupt role: %v, want ErrInvalidLogin (a miss, nothing decoded)", c.name, err)
			}
		}
	})
}

// hookStore runs afterRead between a login's read and its transaction.
type hookStore struct {
	*storage.DB
	afterRead func()
}

func (h *hookStore) AppRoleSecretIDByHash(ctx context.Context, hash, roleID string) (storage.AppRoleSecretID, storage.AppRoleRole, error) {
	s, r, err := h.DB.AppRoleSecretIDByHash(ctx, hash, roleID)
	if h.afterRead != nil {
		h.afterRead()
	}
	return s, r, err
}

// A change committed between a login's read and its transaction is never
// ignored: the login starts over once, and then either gets what the change
// left (new policies, new token CIDRs) or is refused (secret ID or role
// gone); no token carries what the change replaced. The test clock stands
// still, so the change has the very timestamp of the role read.
func TestAppRoleLoginAfterAChangeSinceItsRead(t *testing.T) {
	approleEngines(t, func(t *testing.T, f *approleFixture) {
		hooked := &hookStore{DB: f.db}
		racing := auth.NewAppRole(hooked, f.tokens, func() time.Time { return f.now })
		cases := []struct {
			name   string
			uses   int
			change func(t *testing.T, sid auth.SecretID)
			// retried: the second attempt logs in with what the change
			// left; else the login is refused.
			retried bool
		}{
			{"the secret ID destroyed", 0, func(t *testing.T, sid auth.SecretID) {
				if err := f.approle.DestroySecretID(bg(), "web", sid.Accessor); err != nil {
					t.Error(err)
				}
			}, false},
			{"a limited secret ID destroyed", 2, func(t *testing.T, sid auth.SecretID) {
				if err := f.approle.DestroySecretID(bg(), "web", sid.Accessor); err != nil {
					t.Error(err)
				}
			}, false},
			{"the role's policies changed", 0, func(t *testing.T, _ auth.SecretID) {
				if _, err := f.approle.WriteRole(bg(), "web", auth.RoleSettings{Policies: ptr([]string{"reduced"})}); err != nil {
					t.Error(err)
				}
			}, true},
			{"the role's token_bound_cidrs changed", 2, func(t *testing.T, _ auth.SecretID) {
				if _, err := f.approle.WriteRole(bg(), "web", auth.RoleSettings{TokenBoundCIDRs: ptr([]string{"10.9.0.0/16"})}); err != nil {
					t.Error(err)
				}
			}, true},
			{"the role_id changed", 0, func(t *testing.T, _ auth.SecretID) {
				if err := f.approle.SetRoleID(bg(), "web", "new-"+fmt.Sprint(time.Now().UnixNano())); err != nil {
					t.Error(err)
				}
			}, false},
			{"the role deleted", 0, func(t *testing.T, _ auth.SecretID) {
				if err := f.approle.DeleteRole(bg(), "web"); err != nil {
					t.Error(err)
				}
			}, false},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				f.role(t, "web", auth.RoleSettings{Policies: ptr([]string{"full"})})
				defer func() { _ = f.approle.DeleteRole(bg(), "web") }()
				roleID, _ := f.approle.RoleID(bg(), "web")
				sid := f.secretID(t, "web", auth.SecretIDRequest{NumUses: c.uses})
				reads := 0
				hooked.afterRead = func() {
					if reads++; reads == 1 { // the change lands once, after the first read
						c.change(t, sid)
					}
				}
				defer func() { hooked.afterRead = nil }()
				tokens := f.count(t, `SELECT count(*) FROM tokens`)
				issued, _, err := racing.Login(bg(), roleID, sid.ID, client)
				if c.retried {
					if err != nil || reads != 2 {
						t.Fatalf("login after %d reads = %v; want it to start over once and succeed", reads, err)
					}
					if stale := slices.Equal(issued.Token.Policies, []string{"default", "full"}) && c.name == "the role's policies changed"; stale ||
						(c.name == "the role's token_bound_cidrs changed" && !slices.Equal(issued.Token.BoundCIDRs, []string{"10.9.0.0/16"})) {
						t.Fatalf("the login's token carries what the change replaced: %+v", issued.Token)
					}
					return
				}
				if !errors.Is(err, auth.ErrInvalidLogin) {
					t.Fatalf("login = %+v, %v; want ErrInvalidLogin", issued.Token, err)
				}
				if n := f.count(t, `SELECT count(*) FROM tokens`); n != tokens {
					t.Fatalf("the refused login stored %d tokens", n-tokens)
				}
				if c.uses > 0 {
					if info, err := f.approle.LookupSecretID(bg(), "web", sid.Accessor); err == nil && info.NumUses != c.uses {
						t.Fatalf("the refused login used the secret ID: %d uses left", info.NumUses)
					}
				}
			})
		}
		t.Run("a login after the change gets the new policies", func(t *testing.T) {
			f.role(t, "web", auth.RoleSettings{Policies: ptr([]string{"full"})})
			roleID, _ := f.approle.RoleID(bg(), "web")
			sid := f.secretID(t, "web", auth.SecretIDRequest{})
			f.role(t, "web", auth.RoleSettings{Policies: ptr([]string{"reduced"})})
			issued, _, err := racing.Login(bg(), roleID, sid.ID, client)
			if err != nil || !slices.Equal(issued.Token.Policies, []string{"default", "reduced"}) {
				t.Fatalf("login = %+v, %v", issued.Token, err)
			}
		})
	})
}

// Logins racing a policy change and a secret ID's destruction: once the
// change has returned, no token with the old policies (or from the
// destroyed secret ID) appears any more, and every login either succeeds or
// is ErrInvalidLogin (no deadlock, no other error).
func TestAppRoleLoginsRacingChanges(t *testing.T) {
	approleEngines(t, func(t *testing.T, f *approleFixture) {
		for round := range 5 {
			role := fmt.Sprint("race", round)
			f.role(t, role, auth.RoleSettings{Policies: ptr([]string{"old"})})
			roleID, _ := f.approle.RoleID(bg(), role)
			kept := f.secretID(t, role, auth.SecretIDRequest{})
			doomed := f.secretID(t, role, auth.SecretIDRequest{})
			oldTokens := func() int {
				return f.count(t, `SELECT count(*) FROM tokens WHERE policies LIKE '%"old"%'`)
			}
			doomedTokens := func() int {
				return f.count(t, `SELECT count(*) FROM approle_tokens WHERE secret_id_accessor = $1`, doomed.Accessor)
			}

			stop := make(chan struct{})
			errs := make(chan error, 64)
			var wg sync.WaitGroup
			for i := range 6 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					sid := kept.ID
					if i%2 == 1 {
						sid = doomed.ID
					}
					for {
						select {
						case <-stop:
							return
						default:
						}
						if _, err := f.login(roleID, sid); err != nil && !errors.Is(err, auth.ErrInvalidLogin) {
							errs <- err
							return
						}
					}
				}()
			}
			time.Sleep(20 * time.Millisecond)
			if _, err := f.approle.WriteRole(bg(), role, auth.RoleSettings{Policies: ptr([]string{"new"})}); err != nil {
				t.Fatal(err)
			}
			afterChange := oldTokens()
			if err := f.approle.DestroySecretID(bg(), role, doomed.Accessor); err != nil {
				t.Fatal(err)
			}
			afterDestroy := doomedTokens()
			time.Sleep(20 * time.Millisecond)
			close(stop)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("a racing login failed otherwise than ErrInvalidLogin: %v", err)
			}
			if n := oldTokens(); n != afterChange {
				t.Fatalf("round %d: %d tokens with the old policies appeared after the change returned", round, n-afterChange)
			}
			if n := doomedTokens(); n != afterDestroy {
				t.Fatalf("round %d: %d tokens from the destroyed secret ID appeared after its destruction returned", round, n-afterDestroy)
			}
		}
	})
}
