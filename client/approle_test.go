package client_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secrethub/secrethub/client"
	"github.com/secrethub/secrethub/client/clienttest"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

func ptr[T any](v T) *T { return &v }

func TestAppRoleRunbookPhase5_1(t *testing.T) {
	storagetest.Engines(t, func(t *testing.T, db *storage.DB) {
		srv := clienttest.Unsealed(t, db)
		ctx := context.Background()
		ar := srv.Root(t).AppRole()

		// The runbook's admin AppRole: policies ["admin"], token_ttl 86400.
		if err := ar.WriteRole(ctx, "admin", client.AppRoleWriteRequest{Policies: []string{"admin"}, TokenTTL: ptr(24 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		roleID, err := ar.RoleID(ctx, "admin")
		if err != nil || roleID == "" {
			t.Fatalf("role-id = %q, %v", roleID, err)
		}
		sid, err := ar.NewSecretID(ctx, "admin", client.SecretIDRequest{})
		if err != nil || sid.SecretID == "" || sid.Accessor == "" || sid.SecretID == sid.Accessor {
			t.Fatalf("secret-id = %+v, %v", sid, err)
		}
		a, err := srv.Client(t, "").AppRole().Login(ctx, roleID, sid.SecretID)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(a.ClientToken, "s.") || a.Accessor == "" || !slices.Contains(a.Policies, "admin") ||
			a.LeaseDuration != 86400 || !a.Renewable || a.Metadata["role_name"] != "admin" {
			t.Fatalf("login = %+v", a)
		}
		info, err := srv.Client(t, a.ClientToken).Token().LookupSelf(ctx)
		if err != nil || !slices.Contains(info.Policies, "admin") {
			t.Fatalf("the login's token looks up as %+v, %v", info, err)
		}
	})
}

func TestAppRoleRolesAndSecretIDs(t *testing.T) {
	srv := clienttest.Unsealed(t, storagetest.SQLite(t))
	ctx := context.Background()
	ar := srv.Root(t).AppRole()
	anon := srv.Client(t, "").AppRole()

	// The runbook's Phase 7.1 agent role, with every setting given.
	err := ar.WriteRole(ctx, "agents", client.AppRoleWriteRequest{
		Policies: []string{"agent-policy"}, TokenTTL: ptr(time.Hour), TokenMaxTTL: ptr(4 * time.Hour),
		SecretIDTTL: ptr(24 * time.Hour), SecretIDNumUses: ptr(10),
		SecretIDBoundCIDRs: []string{"127.0.0.0/8"}, TokenBoundCIDRs: []string{"127.0.0.1/32"},
	})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("a role reads back with its settings, TTLs in seconds", func(t *testing.T) {
		r, err := ar.ReadRole(ctx, "agents")
		if err != nil {
			t.Fatal(err)
		}
		if r.RoleName != "agents" || !slices.Equal(r.Policies, []string{"agent-policy"}) || r.TokenTTL != 3600 ||
			r.TokenMaxTTL != 14400 || r.SecretIDTTL != 86400 || r.SecretIDNumUses != 10 ||
			!slices.Equal(r.SecretIDBoundCIDRs, []string{"127.0.0.0/8"}) || !slices.Equal(r.TokenBoundCIDRs, []string{"127.0.0.1/32"}) {
			t.Fatalf("role = %+v", r)
		}
	})
	t.Run("a write changes only the settings it sets; an empty list clears one", func(t *testing.T) {
		if err := ar.WriteRole(ctx, "agents", client.AppRoleWriteRequest{TokenTTL: ptr(2 * time.Hour), TokenBoundCIDRs: []string{}}); err != nil {
			t.Fatal(err)
		}
		r, err := ar.ReadRole(ctx, "agents")
		if err != nil || r.TokenTTL != 7200 || !slices.Equal(r.Policies, []string{"agent-policy"}) || r.SecretIDNumUses != 10 ||
			len(r.TokenBoundCIDRs) != 0 || len(r.SecretIDBoundCIDRs) != 1 {
			t.Fatalf("role after a partial write = %+v, %v", r, err)
		}
	})
	t.Run("list names the roles", func(t *testing.T) {
		names, err := ar.ListRoles(ctx)
		if err != nil || !slices.Equal(names, []string{"agents"}) {
			t.Fatalf("list = %v, %v", names, err)
		}
	})
	t.Run("a role ID can be set and then logs in", func(t *testing.T) {
		if err := ar.SetRoleID(ctx, "agents", "agents-role-id-0001"); err != nil {
			t.Fatal(err)
		}
		if id, err := ar.RoleID(ctx, "agents"); err != nil || id != "agents-role-id-0001" {
			t.Fatalf("role-id = %q, %v", id, err)
		}
	})

	sid, err := ar.NewSecretID(ctx, "agents", client.SecretIDRequest{
		Metadata: map[string]string{"host": "app-01"}, CIDRList: []string{"127.0.0.1/32"}, TTL: time.Hour, NumUses: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("a secret ID takes its own TTL and use count", func(t *testing.T) {
		if sid.TTL != 3600 || sid.NumUses != 2 {
			t.Fatalf("secret-id = %+v", sid)
		}
	})
	t.Run("a secret ID is listed and looked up by its accessor, never by value", func(t *testing.T) {
		accessors, err := ar.ListSecretIDAccessors(ctx, "agents")
		if err != nil || !slices.Equal(accessors, []string{sid.Accessor}) {
			t.Fatalf("list = %v, %v", accessors, err)
		}
		info, err := ar.LookupSecretID(ctx, "agents", sid.Accessor)
		if err != nil {
			t.Fatal(err)
		}
		if info.Accessor != sid.Accessor || info.NumUses != 2 || info.TTL < 3590 || info.TTL > 3600 ||
			info.CreationTime.IsZero() || info.ExpirationTime.IsZero() ||
			!slices.Equal(info.CIDRList, []string{"127.0.0.1/32"}) || info.Metadata["host"] != "app-01" {
			t.Fatalf("lookup = %+v", info)
		}
	})
	t.Run("a login uses up a secret ID's uses", func(t *testing.T) {
		for i := range 2 {
			a, err := anon.Login(ctx, "agents-role-id-0001", sid.SecretID)
			if err != nil {
				t.Fatalf("login %d: %v", i+1, err)
			}
			if a.LeaseDuration != 7200 || !slices.Contains(a.Policies, "agent-policy") {
				t.Fatalf("login %d = %+v", i+1, a)
			}
		}
		_, err := anon.Login(ctx, "agents-role-id-0001", sid.SecretID)
		if !isStatus(err, 403) {
			t.Fatalf("a third login with a two-use secret ID: err = %v, want 403", err)
		}
	})
	t.Run("a destroyed secret ID no longer logs in", func(t *testing.T) {
		other, err := ar.NewSecretID(ctx, "agents", client.SecretIDRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if err := ar.DestroySecretID(ctx, "agents", other.Accessor); err != nil {
			t.Fatal(err)
		}
		if _, err := anon.Login(ctx, "agents-role-id-0001", other.SecretID); !isStatus(err, 403) {
			t.Fatalf("login with a destroyed secret ID: err = %v, want 403", err)
		}
		if _, err := ar.LookupSecretID(ctx, "agents", other.Accessor); !isStatus(err, 404) {
			t.Fatalf("lookup of a destroyed secret ID: err = %v, want 404", err)
		}
	})
	t.Run("a failed login says neither which part was wrong nor the secret ID", func(t *testing.T) {
		fresh, err := ar.NewSecretID(ctx, "agents", client.SecretIDRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, pair := range [][2]string{{"agents-role-id-0001", "wrong-secret-id-value"}, {"wrong-role-id", fresh.SecretID}} {
			_, err := anon.Login(ctx, pair[0], pair[1])
			if !isStatus(err, 403) || !strings.Contains(err.Error(), "invalid role_id or secret_id") || strings.Contains(err.Error(), pair[1]) {
				t.Fatalf("login %q: err = %v", pair[0], err)
			}
		}
		if _, err := anon.Login(ctx, "agents-role-id-0001", ""); err == nil || isStatus(err, 403) {
			t.Fatalf("an empty secret ID: err = %v, want a refusal before asking", err)
		}
	})
	t.Run("a deleted role is gone with its secret IDs", func(t *testing.T) {
		if err := ar.DeleteRole(ctx, "agents"); err != nil {
			t.Fatal(err)
		}
		if _, err := ar.ReadRole(ctx, "agents"); !isStatus(err, 404) {
			t.Fatalf("read after delete: err = %v, want 404", err)
		}
		if _, err := ar.ListRoles(ctx); !isStatus(err, 404) {
			t.Fatalf("list with no roles: err = %v, want 404", err)
		}
		if _, err := ar.ListSecretIDAccessors(ctx, "agents"); !isStatus(err, 404) {
			t.Fatalf("secret IDs of a deleted role: err = %v, want 404", err)
		}
	})
	t.Run("managing roles needs a token that may", func(t *testing.T) {
		tok, err := srv.Root(t).Token().Create(ctx, client.TokenCreateRequest{Policies: []string{"default"}})
		if err != nil {
			t.Fatal(err)
		}
		err = srv.Client(t, tok.ClientToken).AppRole().WriteRole(ctx, "sneaky", client.AppRoleWriteRequest{Policies: []string{"root"}})
		if !isStatus(err, 403) {
			t.Fatalf("write with the default policy only: err = %v, want 403", err)
		}
	})
}
