package server_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// putPolicy stores a policy document as root.
func (n *node) putPolicy(root, doc string) {
	n.t.Helper()
	mustStatus(n.t, n.do("POST", "/v1/policies", root, doc), 204)
}

// rolePolicies reads a role's policies.
func (n *node) rolePolicies(root, role string) []string {
	n.t.Helper()
	var out []string
	for _, p := range mustStatus(n.t, n.do("GET", "/v1/auth/approle/role/"+role, root, ""), 200).Data(n.t)["policies"].([]any) {
		out = append(out, p.(string))
	}
	return out
}

// mustJSON encodes v, failing the test on error.
func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A role's policies are what its logins get, so writing a role hands them
// out as creating a token does: only the caller's own policies (and
// default), unless the caller's token has root or the caller is allowed
// sudo, with the write, on the role.
func TestAppRoleRolesGrantOnlyTheCallersPolicies(t *testing.T) {
	eachEngine(t, func(t *testing.T, n *node) {
		_, root := n.initUnseal(1, 1)
		n.putPolicy(root, `{"name":"role-writer","rules":[{"path":"auth/approle/role/*","capabilities":["create","update","read"]}]}`)
		n.putPolicy(root, `{"name":"role-sudo","rules":[{"path":"auth/approle/role/*","capabilities":["create","update","read","sudo"]}]}`)
		n.putPolicy(root, `{"name":"role-creator-sudo","rules":[{"path":"auth/approle/role/*","capabilities":["create","sudo"]}]}`)
		n.putPolicy(root, `{"name":"role-creator","rules":[{"path":"auth/approle/role/*","capabilities":["create"]}]}`)
		n.putPolicy(root, `{"name":"role-updater-sudo","rules":[{"path":"auth/approle/role/*","capabilities":["update","sudo"]}]}`)
		n.putPolicy(root, `{"name":"sudo-elsewhere","rules":[{"path":"auth/approle/role/other","capabilities":["sudo"]}]}`)
		n.putPolicy(root, `{"name":"team","rules":[{"path":"team/*","capabilities":["read"]}]}`)
		writer, _ := n.createToken(root, `{"policies":["role-writer","team","sudo-elsewhere"]}`)
		sudoer, _ := n.createToken(root, `{"policies":["role-sudo"]}`)
		creator, _ := n.createToken(root, `{"policies":["role-creator-sudo"]}`)
		plainCreator, _ := n.createToken(root, `{"policies":["role-creator"]}`)
		updater, _ := n.createToken(root, `{"policies":["role-updater-sudo"]}`)
		admin, _ := n.createToken(root, `{"policies":["admin"]}`)

		write := func(token, role, policies string) response {
			return n.do("POST", "/v1/auth/approle/role/"+role, token, `{"policies":`+policies+`}`)
		}
		refused := []struct{ name, token, role, policies, policy string }{
			{"the admin policy", writer, "esc", `["admin"]`, "admin"},
			{"a policy the caller lacks, among its own", writer, "esc", `["team","role-sudo"]`, "role-sudo"},
			{"a policy the caller lacks, mixed-case", writer, "esc", `[" Role-Sudo"]`, "role-sudo"},
			{"a policy the caller lacks, as a comma-separated string", writer, "esc", `"team, admin"`, "admin"},
			{"a policy the caller lacks, as token_policies", writer, "esc", `["admin"]`, "admin"},
			{"the admin policy, with sudo on another role only", writer, "esc", `["admin"]`, "admin"},
			{"the admin policy, by a create-only caller without sudo", plainCreator, "esc", `["admin"]`, "admin"},
		}
		mustStatus(t, write(root, "existing", `["team"]`), 204)
		for _, c := range refused {
			t.Run(c.name+" is refused with 403 naming it", func(t *testing.T) {
				body := `{"policies":` + c.policies + `}`
				if strings.Contains(c.name, "token_policies") {
					body = `{"token_policies":` + c.policies + `}`
				}
				r := n.do("POST", "/v1/auth/approle/role/"+c.role, c.token, body)
				if r.Status != 403 || !strings.Contains(r.Errors(t)[0], `"`+c.policy+`" is not one`) {
					t.Fatalf("status %d, body %s; want 403 naming %s", r.Status, r.Body, c.policy)
				}
			})
		}
		t.Run("nothing refused was written", func(t *testing.T) {
			mustStatus(t, n.do("GET", "/v1/auth/approle/role/esc", root, ""), 404)
			if got := n.rolePolicies(root, "existing"); !slices.Equal(got, []string{"team"}) {
				t.Fatalf("existing role's policies = %q", got)
			}
		})

		allowed := []struct{ name, token, role, policies string }{
			{"the caller's own policies and default", writer, "own", `["team","default","role-writer"]`},
			{"the caller's own policy, mixed-case and padded", writer, "own-case", `[" Team "]`},
			{"only default", writer, "plain", `["default"]`},
			{"no policy", writer, "none", `[]`},
			{"any policy, with sudo on the role", sudoer, "sudo-made", `["admin","team"]`},
			{"any policy, by a create-and-sudo caller creating the role", creator, "created", `["admin"]`},
			{"any policy, by an update-and-sudo caller changing the role", updater, "existing", `["admin"]`},
			{"any policy, by an admin token (sudo everywhere)", admin, "admin-made", `["production","team"]`},
			{"any policy, by root", root, "root-made", `["admin"]`},
		}
		for _, c := range allowed {
			t.Run(c.name+" is allowed", func(t *testing.T) {
				mustStatus(t, write(c.token, c.role, c.policies), 204)
			})
		}
		t.Run("an update that leaves policies out grants nothing and is allowed", func(t *testing.T) {
			mustStatus(t, n.do("POST", "/v1/auth/approle/role/sudo-made", writer, `{"token_ttl":"2h"}`), 204)
		})
		t.Run("the stored names are lowercased", func(t *testing.T) {
			if got := n.rolePolicies(root, "own-case"); !slices.Equal(got, []string{"team"}) {
				t.Fatalf("policies = %q", got)
			}
		})
		t.Run("a login with a role the writer made carries only what the writer could give", func(t *testing.T) {
			roleID := mustStatus(t, n.do("GET", "/v1/auth/approle/role/own/role-id", root, ""), 200).Data(t)["role_id"].(string)
			secretID := mustStatus(t, n.do("POST", "/v1/auth/approle/role/own/secret-id", root, ""), 200).Data(t)["secret_id"].(string)
			a := mustStatus(t, n.do("POST", "/v1/auth/approle/login", "", `{"role_id":"`+roleID+`","secret_id":"`+secretID+`"}`), 200).Auth(t)
			var got []string
			for _, p := range a["policies"].([]any) {
				got = append(got, p.(string))
			}
			if !slices.Equal(got, []string{"default", "role-writer", "team"}) {
				t.Fatalf("login policies = %q", got)
			}
		})
		for _, c := range []struct{ name, policies, want string }{
			{"root", `["root"]`, "root policy"},
			{"ROOT", `["ROOT"]`, "root policy"},
			{" Root ", `[" Root "]`, "root policy"},
			{"a name with a space", `["my policy"]`, "policies: "},
			{"a name with a slash", `["ops/*"]`, "policies: "},
			{"an empty name in a list", `["team",""]`, "policies: "},
		} {
			t.Run("a policy named "+c.name+" is refused with 400, even for root", func(t *testing.T) {
				mustError(t, write(root, "bad", c.policies), 400, c.want)
			})
		}
	})
}

// A role write's Vault fields: accepted with the values that describe what
// SecretHub does, refused otherwise; a role read can be written back.
func TestAppRoleRoleWriteTakesVaultsFields(t *testing.T) {
	eachEngine(t, func(t *testing.T, n *node) {
		_, root := n.initUnseal(1, 1)
		write := func(body string) response { return n.do("POST", "/v1/auth/approle/role/web", root, body) }
		accepted := []string{
			`{"bind_secret_id":true}`,
			`{"token_type":"default"}`, `{"token_type":"service"}`, `{"token_type":""}`,
			`{"local_secret_ids":false}`,
			`{"token_period":0}`, `{"token_period":"0s"}`,
			`{"token_num_uses":0}`,
			`{"token_no_default_policy":false}`,
			`{"token_explicit_max_ttl":"4h"}`,
			`{"token_max_ttl":"4h","token_explicit_max_ttl":14400}`,
			`{"policies":["Team"],"token_policies":"team"}`,
			`{"role_id":"web-role-id"}`,
		}
		for _, body := range accepted {
			t.Run(body+" is accepted", func(t *testing.T) { mustStatus(t, write(body), 204) })
		}
		role := mustStatus(t, n.do("GET", "/v1/auth/approle/role/web", root, ""), 200).Data(t)
		if role["token_max_ttl"] != 14400.0 || role["token_explicit_max_ttl"] != 14400.0 || role["bind_secret_id"] != true ||
			role["token_type"] != "default" || role["local_secret_ids"] != false || role["token_num_uses"] != 0.0 ||
			role["token_period"] != 0.0 || role["token_no_default_policy"] != false {
			t.Fatalf("role = %v", role)
		}
		if id := mustStatus(t, n.do("GET", "/v1/auth/approle/role/web/role-id", root, ""), 200).Data(t)["role_id"]; id != "web-role-id" {
			t.Fatalf("role_id = %v, want the one the role write set", id)
		}
		t.Run("a role read written back is accepted and changes nothing", func(t *testing.T) {
			raw := mustStatus(t, n.do("GET", "/v1/auth/approle/role/web", root, ""), 200).JSON(t)["data"]
			mustStatus(t, write(mustJSON(t, raw)), 204)
			again := mustStatus(t, n.do("GET", "/v1/auth/approle/role/web", root, ""), 200).Data(t)
			if a, b := mustJSON(t, again), mustJSON(t, role); a != b {
				t.Fatalf("after writing the read back:\n%s\nwant\n%s", a, b)
			}
		})

		refused := []struct{ body, want string }{
			{`{"bind_secret_id":false}`, "secret IDs are always required"},
			{`{"token_type":"batch"}`, "token_type"},
			{`{"token_type":"default-service"}`, "token_type"},
			{`{"local_secret_ids":true}`, "local_secret_ids"},
			{`{"token_period":"1h"}`, "token_period"},
			{`{"token_num_uses":3}`, "token_num_uses is not supported"},
			{`{"token_no_default_policy":true}`, "token_no_default_policy"},
			{`{"token_max_ttl":"4h","token_explicit_max_ttl":"5h"}`, "differ"},
			{`{"role_id":""}`, "role_id"},
			{`{"bind_secret_id":"yes"}`, "bind_secret_id"},
			{`{"period":"1h"}`, "unknown field"},
			{`{"policies":["a"],"token_policies":["b"]}`, "differ"},
		}
		for _, c := range refused {
			t.Run(c.body+" is refused with 400", func(t *testing.T) { mustError(t, write(c.body), 400, c.want) })
		}
		t.Run("a role_id another role has is refused with 409", func(t *testing.T) {
			mustStatus(t, n.do("POST", "/v1/auth/approle/role/other", root, `{"role_id":"other-id"}`), 204)
			mustError(t, write(`{"role_id":"other-id"}`), 409, "role_id is already in use")
			mustError(t, n.do("POST", "/v1/auth/approle/role/third", root, `{"role_id":"other-id"}`), 409, "role_id is already in use")
		})
		t.Run("a refused write changes nothing", func(t *testing.T) {
			if got := mustStatus(t, n.do("GET", "/v1/auth/approle/role/web", root, ""), 200).Data(t); mustJSON(t, got) != mustJSON(t, role) {
				t.Fatalf("role = %v", got)
			}
			mustStatus(t, n.do("GET", "/v1/auth/approle/role/third", root, ""), 404)
		})
	})
}

// A caller allowed to update roles but not to create them is authorized
// while the role exists; if the role is deleted before the write runs, the
// write must not create it. The request is sent with Expect: 100-continue:
// the server asks for the body only once authorization has passed and the
// handler reads it, so the deletion lands exactly in between.
func TestAppRoleUpdateOnlyWriteDoesNotCreateADeletedRole(t *testing.T) {
	eachEngine(t, func(t *testing.T, n *node) {
		_, root := n.initUnseal(1, 1)
		n.putPolicy(root, `{"name":"role-updater","rules":[{"path":"auth/approle/role/*","capabilities":["update"]}]}`)
		updater, _ := n.createToken(root, `{"policies":["role-updater"]}`)
		mustStatus(t, n.do("POST", "/v1/auth/approle/role/web", root, `{"token_ttl":"1h"}`), 204)

		t.Run("an update-only caller updates an existing role", func(t *testing.T) {
			mustStatus(t, n.do("POST", "/v1/auth/approle/role/web", updater, `{"token_ttl":"2h"}`), 204)
		})
		t.Run("an update-only caller cannot create a role", func(t *testing.T) {
			mustStatus(t, n.do("POST", "/v1/auth/approle/role/new", updater, `{"token_ttl":"2h"}`), 403)
		})
		t.Run("an update-only write racing the role's deletion does not create it", func(t *testing.T) {
			body := `{"token_ttl":"3h"}`
			r := n.afterAuthorization("POST", "/v1/auth/approle/role/web", updater, body, func() {
				mustStatus(t, n.do("DELETE", "/v1/auth/approle/role/web", root, ""), 204)
			})
			if r.Status != 403 {
				t.Fatalf("status %d, body %s; want 403", r.Status, r.Body)
			}
			mustStatus(t, n.do("GET", "/v1/auth/approle/role/web", root, ""), 404)
		})
	})
}

// afterAuthorization sends a request with Expect: 100-continue, runs
// between once the server asks for the body (authorization has passed and
// the handler is reading it), then sends the body and returns the answer.
func (n *node) afterAuthorization(method, path, token, body string, between func()) response {
	n.t.Helper()
	conn, err := net.Dial("tcp", n.http.Listener.Addr().String())
	if err != nil {
		n.t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	head := method + " " + path + " HTTP/1.1\r\nHost: secrethub.test\r\nConnection: close\r\nExpect: 100-continue\r\n" +
		"X-Vault-Token: " + token + "\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	if _, err := io.WriteString(conn, head); err != nil {
		n.t.Fatal(err)
	}
	rd := bufio.NewReader(conn)
	line, err := rd.ReadString('\n')
	if err != nil {
		n.t.Fatal(err)
	}
	if !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		n.t.Fatalf("the server answered %q before asking for the body", strings.TrimSpace(line))
	}
	if blank, err := rd.ReadString('\n'); err != nil || blank != "\r\n" {
		n.t.Fatalf("after 100 Continue: %q, %v", blank, err)
	}
	between()
	if _, err := io.WriteString(conn, body); err != nil {
		n.t.Fatal(err)
	}
	resp, err := http.ReadResponse(rd, nil)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}
