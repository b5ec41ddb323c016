package server_test

import (
	"encoding/json"
	"slices"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

// vaultClient is the official Vault Go client pointed at the node, with no
// token and none of the VAULT_* environment.
func vaultClient(t *testing.T, n *node) *vault.Client {
	t.Helper()
	cfg := vault.DefaultConfig()
	cfg.Address = n.URL
	cfg.MaxRetries = 0
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.ClearToken()
	return c
}

// The official Vault client drives a fresh node through init, unseal,
// health, token and static secret operations (SPEC §1: Logical() must work).
func TestVaultClientDrivesTheServer(t *testing.T) {
	eachEngine(t, func(t *testing.T, n *node) {
		c := vaultClient(t, n)
		sys := c.Sys()

		h, err := sys.Health()
		if err != nil {
			t.Fatalf("health before init: %v", err)
		}
		if h.Initialized || !h.Sealed {
			t.Fatalf("health before init = %+v", h)
		}
		if ok, err := sys.InitStatus(); err != nil || ok {
			t.Fatalf("init status before init = %v, %v", ok, err)
		}

		init, err := sys.Init(&vault.InitRequest{SecretShares: 5, SecretThreshold: 3})
		if err != nil {
			t.Fatalf("init: %v", err)
		}
		if len(init.Keys) != 5 || len(init.KeysB64) != 5 || init.RootToken == "" {
			t.Fatalf("init = %+v", init)
		}
		for i, k := range init.Keys[:3] {
			st, err := sys.Unseal(k)
			if err != nil {
				t.Fatalf("unseal %d: %v", i+1, err)
			}
			if st.Sealed != (i < 2) || st.T != 3 || st.N != 5 {
				t.Fatalf("after key %d: %+v", i+1, st)
			}
		}

		h, err = sys.Health()
		if err != nil || !h.Initialized || h.Sealed || h.Version == "" || h.ClusterName == "" {
			t.Fatalf("health after unseal = %+v, %v", h, err)
		}
		st, err := sys.SealStatus()
		if err != nil || st.Sealed || !st.Initialized || st.Progress != 0 || st.Type != "shamir" {
			t.Fatalf("seal status = %+v, %v", st, err)
		}

		c.SetToken(init.RootToken)
		self, err := c.Auth().Token().LookupSelf()
		if err != nil {
			t.Fatalf("lookup-self: %v", err)
		}
		if pols, err := self.TokenPolicies(); err != nil || len(pols) != 1 || pols[0] != "root" {
			t.Fatalf("root token policies = %v, %v", pols, err)
		}

		t.Run("static secrets round-trip through Logical()", func(t *testing.T) {
			logical := c.Logical()
			w, err := logical.Write("secrets/static/app/db", map[string]any{
				"data": map[string]any{"username": "app", "password": "hunter2"},
			})
			if err != nil {
				t.Fatalf("write: %v", err)
			}
			if v, _ := w.Data["version"].(interface{ String() string }); v == nil || v.String() != "1" {
				t.Fatalf("write response data = %v", w.Data)
			}
			if _, err := logical.Write("secrets/static/app/cache", map[string]any{"data": map[string]any{"url": "redis://"}}); err != nil {
				t.Fatalf("second write: %v", err)
			}

			r, err := logical.Read("secrets/static/app/db")
			if err != nil || r == nil {
				t.Fatalf("read: %v, %v", r, err)
			}
			data, _ := r.Data["data"].(map[string]any)
			if data["password"] != "hunter2" || data["username"] != "app" {
				t.Fatalf("read data = %v", r.Data)
			}
			if r.RequestID == "" {
				t.Fatal("read response has no request_id")
			}

			l, err := logical.List("secrets/static/app")
			if err != nil || l == nil {
				t.Fatalf("list: %v, %v", l, err)
			}
			keys, _ := l.Data["keys"].([]any)
			if len(keys) != 2 || keys[0] != "cache" || keys[1] != "db" {
				t.Fatalf("list keys = %v", l.Data["keys"])
			}

			if _, err := logical.Delete("secrets/static/app/db"); err != nil {
				t.Fatalf("delete: %v", err)
			}
			if r, err := logical.Read("secrets/static/app/db"); err != nil || r != nil {
				t.Fatalf("read after delete = %v, %v; want nil, nil", r, err)
			}
		})

		t.Run("a token created by the client works for the client", func(t *testing.T) {
			ttl := "1h"
			created, err := c.Auth().Token().Create(&vault.TokenCreateRequest{
				Policies: []string{"default"}, TTL: ttl, DisplayName: "ci", Metadata: map[string]string{"team": "core"},
			})
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			if created.Auth == nil || created.Auth.ClientToken == "" || created.Auth.Accessor == "" ||
				created.Auth.LeaseDuration != 3600 || !created.Auth.Renewable {
				t.Fatalf("create auth = %+v", created.Auth)
			}
			child := vaultClient(t, n)
			child.SetToken(created.Auth.ClientToken)
			s, err := child.Auth().Token().LookupSelf()
			if err != nil {
				t.Fatalf("child lookup-self: %v", err)
			}
			if acc, _ := s.TokenAccessor(); acc != created.Auth.Accessor {
				t.Fatalf("child accessor = %q, want %q", acc, created.Auth.Accessor)
			}
			if _, err := child.Logical().Read("secrets/static/app/cache"); err == nil {
				t.Fatal("a default-only token read a secret")
			}
		})

		if err := sys.Seal(); err != nil {
			t.Fatalf("seal: %v", err)
		}
		if st, err := sys.SealStatus(); err != nil || !st.Sealed {
			t.Fatalf("seal status after seal = %+v, %v", st, err)
		}
	})
}

// The official Vault client sets up AppRole as Vault's documentation does
// (a role with Vault's own fields, its role ID, a secret ID, a login, then
// the login's token at work), and writes and reads the runbook's production
// policy through Logical().
func TestVaultClientDrivesAppRoleAndPolicies(t *testing.T) {
	eachEngine(t, func(t *testing.T, n *node) {
		_, root := n.initUnseal(1, 1)
		c := vaultClient(t, n)
		c.SetToken(root)
		logical := c.Logical()

		if _, err := logical.Write("auth/approle/role/web", map[string]any{
			"policies": "default", "token_ttl": "1h", "bind_secret_id": true,
		}); err != nil {
			t.Fatalf("role write: %v", err)
		}
		role, err := logical.Read("auth/approle/role/web")
		if err != nil || role == nil || role.Data["bind_secret_id"] != true || role.Data["token_ttl"] != json.Number("3600") {
			t.Fatalf("role read = %+v, %v", role, err)
		}
		idSecret, err := logical.Read("auth/approle/role/web/role-id")
		if err != nil || idSecret == nil {
			t.Fatalf("role-id read = %+v, %v", idSecret, err)
		}
		roleID, _ := idSecret.Data["role_id"].(string)
		sidSecret, err := logical.Write("auth/approle/role/web/secret-id", nil)
		if err != nil || sidSecret == nil {
			t.Fatalf("secret-id write = %+v, %v", sidSecret, err)
		}
		secretID, _ := sidSecret.Data["secret_id"].(string)
		if roleID == "" || secretID == "" || sidSecret.Data["secret_id_accessor"] == nil {
			t.Fatalf("role_id %q, secret-id data %v", roleID, sidSecret.Data)
		}

		login, err := vaultClient(t, n).Logical().Write("auth/approle/login", map[string]any{"role_id": roleID, "secret_id": secretID})
		if err != nil || login == nil || login.Auth == nil {
			t.Fatalf("login = %+v, %v", login, err)
		}
		a := login.Auth
		if a.ClientToken == "" || a.Accessor == "" || a.LeaseDuration != 3600 || !a.Renewable ||
			!slices.Equal(a.Policies, []string{"default"}) || a.Metadata["role_name"] != "web" {
			t.Fatalf("login auth = %+v", a)
		}
		machine := vaultClient(t, n)
		machine.SetToken(a.ClientToken)
		self, err := machine.Auth().Token().LookupSelf()
		if err != nil {
			t.Fatalf("lookup-self with the login token: %v", err)
		}
		if acc, _ := self.TokenAccessor(); acc != a.Accessor {
			t.Fatalf("lookup-self accessor = %q, want %q", acc, a.Accessor)
		}
		if pols, _ := self.TokenPolicies(); !slices.Equal(pols, []string{"default"}) {
			t.Fatalf("lookup-self policies = %q", pols)
		}
		if _, err := machine.Auth().Token().RenewSelf(0); err != nil {
			t.Fatalf("renew-self with the login token: %v", err)
		}
		if _, err := machine.Logical().Read("auth/approle/role/web/role-id"); err == nil {
			t.Fatal("a default-only login token read a role ID")
		}

		var doc map[string]any
		if err := json.Unmarshal([]byte(runbookPolicy(t, "production.json")), &doc); err != nil {
			t.Fatal(err)
		}
		if _, err := logical.Write("policies", doc); err != nil {
			t.Fatalf("policy write: %v", err)
		}
		read, err := logical.Read("policies/production")
		if err != nil || read == nil {
			t.Fatalf("policy read = %+v, %v", read, err)
		}
		rules, _ := read.Data["rules"].([]any)
		if read.Data["name"] != "production" || len(rules) != 1 {
			t.Fatalf("policy read data = %v", read.Data)
		}
		rule, _ := rules[0].(map[string]any)
		conditions, _ := rule["conditions"].(map[string]any)
		if rule["path"] != "prod/*" || conditions["source_ip"] == nil || conditions["time_of_day"] == nil {
			t.Fatalf("policy rule = %v", rule)
		}
	})
}
