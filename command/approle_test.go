package command

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/client"
)

func TestAppRoleCommandsFollowRunbookPhase5_1(t *testing.T) {
	srv := unsealedServer(t)
	root := srv.RootToken

	code, out, errOut := cli(t, srv.URL, root, "", "approle", "role", "create", "admin", "-policy=admin", "-token-ttl=86400")
	if code != 0 {
		t.Fatalf("role create: exit %d: %s", code, errOut)
	}
	mustContain(t, "role create output", out, "Success! Role admin written.")

	code, out, errOut = cli(t, srv.URL, root, "", "approle", "role-id", "admin")
	if code != 0 {
		t.Fatalf("role-id: exit %d: %s", code, errOut)
	}
	roleID := rowValue(t, out, "role_id")

	code, out, errOut = cli(t, srv.URL, root, "", "approle", "secret-id", "admin")
	if code != 0 {
		t.Fatalf("secret-id: exit %d: %s", code, errOut)
	}
	secretID, accessor := rowValue(t, out, "secret_id"), rowValue(t, out, "secret_id_accessor")
	if roleID == "" || secretID == "" || accessor == "" || secretID == accessor {
		t.Fatalf("role_id %q, secret-id output:\n%s", roleID, out)
	}

	// Log in and look the token up from the same home directory, with no
	// SECRETHUB_TOKEN: the lookup uses the token the login stored.
	home := t.TempDir()
	env := map[string]string{"HOME": home}
	code, out, errOut = cliEnv(t, env, srv.URL, "", "", "login", "-method=approle", "role_id="+roleID, "secret_id="+secretID)
	if code != 0 {
		t.Fatalf("login: exit %d: %s", code, errOut)
	}
	mustContain(t, "login output", out, "Success! You are now authenticated. The token was stored in "+filepath.Join(home, TokenFileName))
	if rowValue(t, out, "token_duration") != "24h" || !strings.Contains(rowValue(t, out, "policies"), `"admin"`) {
		t.Fatalf("login output:\n%s", out)
	}
	token := tokenFile(t)
	if strings.Contains(out+errOut, token) || strings.Contains(out+errOut, secretID) {
		t.Fatalf("the login printed the token or the secret ID:\n%s%s", out, errOut)
	}

	code, out, errOut = cliEnv(t, env, srv.URL, "", "", "token", "lookup")
	if code != 0 {
		t.Fatalf("token lookup: exit %d: %s", code, errOut)
	}
	if !strings.Contains(rowValue(t, out, "policies"), `"admin"`) || rowValue(t, out, "creation_ttl") != "24h" {
		t.Fatalf("token lookup after the AppRole login:\n%s", out)
	}
}

func TestAppRoleCommands(t *testing.T) {
	srv := unsealedServer(t)
	root := srv.RootToken

	t.Run("role list with no roles is empty, not an error", func(t *testing.T) {
		code, out, errOut := cli(t, srv.URL, root, "", "approle", "role", "list", "-format=json")
		if code != 0 || strings.TrimSpace(out) != "[]" {
			t.Fatalf("exit %d: %q %s", code, out, errOut)
		}
	})

	// The runbook's Phase 7.1 agent role, with every flag.
	code, _, errOut := cli(t, srv.URL, root, "", "approle", "role", "create", "agents", "-policy=agent-policy", "-policy=reader",
		"-token-ttl=1h", "-token-max-ttl=4h", "-secret-id-ttl=7d", "-secret-id-num-uses=5",
		"-secret-id-bound-cidr=127.0.0.0/8", "-token-bound-cidr=127.0.0.1/32")
	if code != 0 {
		t.Fatalf("role create: exit %d: %s", code, errOut)
	}

	t.Run("role read shows the settings with durations and zero values explained", func(t *testing.T) {
		code, out, errOut := cli(t, srv.URL, root, "", "approle", "role", "read", "agents")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		want := map[string]string{
			"role_name": "agents", "policies": `["agent-policy","reader"]`, "token_ttl": "1h", "token_max_ttl": "4h",
			"secret_id_ttl": "168h", "secret_id_num_uses": "5", "secret_id_bound_cidrs": `["127.0.0.0/8"]`,
			"token_bound_cidrs": `["127.0.0.1/32"]`,
		}
		for k, v := range want {
			if got := rowValue(t, out, k); got != v {
				t.Fatalf("%s = %q, want %q in:\n%s", k, got, v, out)
			}
		}
	})
	t.Run("role create of an existing role changes only the flags given", func(t *testing.T) {
		code, _, errOut := cli(t, srv.URL, root, "", "approle", "role", "write", "agents", "-token-ttl=2h", "-token-bound-cidr=")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		r, err := srv.Root(t).AppRole().ReadRole(t.Context(), "agents")
		if err != nil || r.TokenTTL != 7200 || r.TokenMaxTTL != 14400 || len(r.Policies) != 2 || len(r.TokenBoundCIDRs) != 0 || r.SecretIDNumUses != 5 {
			t.Fatalf("role = %+v, %v", r, err)
		}
	})
	t.Run("role list names the roles", func(t *testing.T) {
		code, out, errOut := cli(t, srv.URL, root, "", "approle", "role", "list")
		if code != 0 || !strings.Contains(out, "\nagents\n") {
			t.Fatalf("exit %d:\n%s%s", code, out, errOut)
		}
	})
	t.Run("role-id -set replaces the role ID", func(t *testing.T) {
		code, out, errOut := cli(t, srv.URL, root, "", "approle", "role-id", "agents", "-set=agents-fixed-role-id")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		mustContain(t, "stdout", out, "Success! Set the role ID of role agents.")
		code, out, _ = cli(t, srv.URL, root, "", "approle", "role-id", "agents", "-format=json")
		var got map[string]string
		if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil || got["role_id"] != "agents-fixed-role-id" {
			t.Fatalf("exit %d, %v: %s", code, err, out)
		}
	})

	var sid client.SecretID
	t.Run("secret-id takes its own CIDRs, TTL, uses and metadata", func(t *testing.T) {
		code, out, errOut := cli(t, srv.URL, root, "", "approle", "secret-id", "agents", "-cidr=127.0.0.1/32",
			"-ttl=1h", "-num-uses=3", "-metadata=host=app-01", "-format=json")
		if err := json.Unmarshal([]byte(out), &sid); code != 0 || err != nil {
			t.Fatalf("exit %d, %v: %s %s", code, err, out, errOut)
		}
		if sid.SecretID == "" || sid.Accessor == "" || sid.TTL != 3600 || sid.NumUses != 3 {
			t.Fatalf("secret-id = %+v", sid)
		}
	})
	t.Run("secret-id lookup describes it by accessor, without its value", func(t *testing.T) {
		code, out, errOut := cli(t, srv.URL, root, "", "approle", "secret-id", "lookup", "agents", sid.Accessor)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if rowValue(t, out, "secret_id_accessor") != sid.Accessor || rowValue(t, out, "secret_id_num_uses") != "3" ||
			rowValue(t, out, "cidr_list") != `["127.0.0.1/32"]` || rowValue(t, out, "metadata") != `{"host":"app-01"}` ||
			rowValue(t, out, "expiration_time") == "n/a" || strings.Contains(out, sid.SecretID) {
			t.Fatalf("lookup:\n%s", out)
		}
	})
	t.Run("secret-id create reaches a role named like a subcommand", func(t *testing.T) {
		if code, _, errOut := cli(t, srv.URL, root, "", "approle", "role", "create", "list", "-policy=default"); code != 0 {
			t.Fatalf("creating role list: exit %d: %s", code, errOut)
		}
		code, out, errOut := cli(t, srv.URL, root, "", "approle", "secret-id", "create", "list", "-num-uses=2", "-format=json")
		var got client.SecretID
		if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil || got.SecretID == "" || got.NumUses != 2 {
			t.Fatalf("exit %d, %v: %s %s", code, err, out, errOut)
		}
		code, out, errOut = cli(t, srv.URL, root, "", "approle", "secret-id", "list", "list")
		if code != 0 || !strings.Contains(out, "\n"+got.Accessor+"\n") {
			t.Fatalf("the secret ID was not made for role list: exit %d:\n%s%s", code, out, errOut)
		}
	})
	t.Run("secret-id list shows the accessors", func(t *testing.T) {
		code, out, errOut := cli(t, srv.URL, root, "", "approle", "secret-id", "list", "agents")
		if code != 0 || !strings.Contains(out, "\n"+sid.Accessor+"\n") {
			t.Fatalf("exit %d:\n%s%s", code, out, errOut)
		}
	})

	logins := []struct {
		name  string
		value func(t *testing.T) string
		stdin string
	}{
		{"login reads secret_id=- from stdin", func(*testing.T) string { return "-" }, sid.SecretID + "\n"},
		{"login reads secret_id=@FILE", func(t *testing.T) string {
			file := filepath.Join(t.TempDir(), "secret-id")
			if err := os.WriteFile(file, []byte(sid.SecretID+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return "@" + file
		}, ""},
	}
	for _, tt := range logins {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := cli(t, srv.URL, "", tt.stdin, "login", "-method=approle", "role_id=agents-fixed-role-id", "secret_id="+tt.value(t))
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			info, err := srv.Client(t, tokenFile(t)).Token().LookupSelf(t.Context())
			if err != nil || !slices.Contains(info.Policies, "agent-policy") || info.Meta["role_name"] != "agents" {
				t.Fatalf("the stored token looks up as %+v, %v", info, err)
			}
			if strings.Contains(out+errOut, sid.SecretID) {
				t.Fatal("the secret ID was printed")
			}
		})
	}
	t.Run("login -no-store -format=json hands the token to a script", func(t *testing.T) {
		code, out, errOut := cli(t, srv.URL, "", "", "login", "-method=approle", "-no-store", "-format=json",
			"role_id=agents-fixed-role-id", "secret_id="+sid.SecretID)
		var a client.TokenAuth
		if err := json.Unmarshal([]byte(out), &a); code != 0 || err != nil || !strings.HasPrefix(a.ClientToken, "s.") {
			t.Fatalf("exit %d, %v: %s %s", code, err, out, errOut)
		}
		if _, err := os.Stat(filepath.Join(os.Getenv("HOME"), TokenFileName)); !os.IsNotExist(err) {
			t.Fatalf("a token file was written: %v", err)
		}
	})

	refusals := []struct {
		name    string
		stdin   string
		args    []string
		wantErr string
		secret  string
	}{
		{"login with the used-up secret ID", "", []string{"login", "-method=approle", "role_id=agents-fixed-role-id", "secret_id=" + sid.SecretID},
			"invalid role_id or secret_id", sid.SecretID},
		{"login with a wrong secret ID", "", []string{"login", "-method=approle", "role_id=agents-fixed-role-id", "secret_id=hunter2-secret-id"},
			"invalid role_id or secret_id", "hunter2-secret-id"},
		{"login without a secret ID", "", []string{"login", "-method=approle", "role_id=agents-fixed-role-id"},
			"-method=approle needs secret_id=VALUE", ""},
		{"login with a secret ID file that does not exist", "", []string{"login", "-method=approle", "role_id=r", "secret_id=@/nonexistent/secret-id"},
			"reading secret_id: open /nonexistent/secret-id", ""},
		{"login with an empty stdin for secret_id=-", "", []string{"login", "-method=approle", "role_id=r", "secret_id=-"},
			"reading secret_id: nothing to read on standard input", ""},
		{"login with both values from stdin", "a\nb\n", []string{"login", "-method=approle", "role_id=-", "secret_id=-"},
			"standard input can be read only once", ""},
		{"login with a password", "", []string{"login", "-method=approle", "role_id=r", "password=hunter2-pw"},
			"password= is refused", "hunter2-pw"},
		{"role create with a TTL that is not a duration", "", []string{"approle", "role", "create", "x", "-token-ttl=soon"},
			"-token-ttl must be seconds or a duration", ""},
		{"role create with negative uses", "", []string{"approle", "role", "create", "x", "-secret-id-num-uses=-1"},
			"-secret-id-num-uses must be 0 (unlimited) or more", ""},
		{"role read of a role that does not exist", "", []string{"approle", "role", "read", "ghost"}, "no role named ghost", ""},
		{"secret-id for a role that does not exist", "", []string{"approle", "secret-id", "ghost"}, "no role named ghost", ""},
		{"secret-id list of a role that does not exist", "", []string{"approle", "secret-id", "list", "ghost"}, "no role named ghost", ""},
		{"secret-id lookup of an unknown accessor", "", []string{"approle", "secret-id", "lookup", "agents", "no-such-accessor"},
			"no secret ID with accessor no-such-accessor for role agents", ""},
		{"secret-id with a malformed metadata flag", "", []string{"approle", "secret-id", "agents", "-metadata=hunter2-meta"},
			"-metadata value 1 is not KEY=VALUE", "hunter2-meta"},
	}
	for _, tt := range refusals {
		t.Run(tt.name+" is refused with exit code 1", func(t *testing.T) {
			token := root
			if tt.args[0] == "login" {
				token = ""
			}
			code, out, errOut := cli(t, srv.URL, token, tt.stdin, tt.args...)
			if code != 1 || out != "" {
				t.Fatalf("exit %d, stdout %q, stderr %s", code, out, errOut)
			}
			mustContain(t, "stderr", errOut, tt.wantErr)
			if tt.secret != "" && strings.Contains(errOut, tt.secret) {
				t.Fatalf("the secret is in the error: %s", errOut)
			}
		})
	}

	t.Run("secret-id destroy ends a secret ID, and the list no longer shows it", func(t *testing.T) {
		fresh, err := srv.Root(t).AppRole().NewSecretID(t.Context(), "agents", client.SecretIDRequest{})
		if err != nil {
			t.Fatal(err)
		}
		code, out, errOut := cli(t, srv.URL, root, "", "approle", "secret-id", "destroy", "agents", fresh.Accessor)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		mustContain(t, "stdout", out, "Success! Destroyed the secret ID with accessor "+fresh.Accessor+".")
		code, out, errOut = cli(t, srv.URL, root, "", "approle", "secret-id", "list", "agents", "-format=json")
		var accessors []string
		if err := json.Unmarshal([]byte(out), &accessors); code != 0 || err != nil || slices.Contains(accessors, fresh.Accessor) {
			t.Fatalf("exit %d, %v: %q %s", code, err, out, errOut)
		}
	})
	t.Run("role delete removes the role", func(t *testing.T) {
		code, out, errOut := cli(t, srv.URL, root, "", "approle", "role", "delete", "agents")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		mustContain(t, "stdout", out, "Success! Deleted role agents.")
		if _, err := srv.Root(t).AppRole().ReadRole(t.Context(), "agents"); err == nil {
			t.Fatal("the role is still there")
		}
	})
}
