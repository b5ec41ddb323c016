package server_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/server"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// runbookPolicy reads a Phase 5.2 body kept verbatim in testdata/policies.
func runbookPolicy(t *testing.T, name string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "testdata", "policies", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// from sends a request as if its TCP peer were addr, through the whole
// handler stack (an address like 10.1.2.3 cannot be bound on a test host).
func (n *node) from(addr, method, path, token, body string) response {
	n.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.RemoteAddr = addr + ":40000"
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	rec := httptest.NewRecorder()
	n.srv.Handler().ServeHTTP(rec, req)
	return response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
}

// approleLogin creates a role with the given policies and logs in with it,
// returning the token.
func (n *node) approleLogin(root, role, policies string) string {
	n.t.Helper()
	mustStatus(n.t, n.do("POST", "/v1/auth/approle/role/"+role, root, `{"role_name":"`+role+`","policies":`+policies+`,"token_ttl":3600}`), 204)
	roleID := mustStatus(n.t, n.do("GET", "/v1/auth/approle/role/"+role+"/role-id", root, ""), 200).Data(n.t)["role_id"].(string)
	secretID := mustStatus(n.t, n.do("POST", "/v1/auth/approle/role/"+role+"/secret-id", root, ""), 200).Data(n.t)["secret_id"].(string)
	a := mustStatus(n.t, n.do("POST", "/v1/auth/approle/login", "", `{"role_id":"`+roleID+`","secret_id":"`+secretID+`"}`), 200).Auth(n.t)
	return a["client_token"].(string)
}

// The runbook's Phases 5.1, 5.2 and 7.1 with its exact bodies, then what
// the policies must mean: production reads prod/ only from 10.0.0.0/8
// (directly or through a trusted proxy), read-only reads all, writes none.
func TestRunbookPhases5And7(t *testing.T) {
	storagetest.Engines(t, func(t *testing.T, db *storage.DB) {
		n := startNode(t, db, server.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
		_, root := n.initUnseal(1, 1)
		mustStatus(t, n.do("POST", "/v1/secrets/static/prod/db", root, `{"data":{"password":"pg-prod"}}`), 200)

		// 5.1 Create admin AppRole, get its RoleID, generate a SecretID.
		mustStatus(t, n.do("POST", "/v1/auth/approle/role/admin", root, `{
    "role_name": "admin",
    "policies": ["admin"],
    "token_ttl": 86400
  }`), 204)
		roleID := mustStatus(t, n.do("GET", "/v1/auth/approle/role/admin/role-id", root, ""), 200).Data(t)["role_id"].(string)
		sid := mustStatus(t, n.do("POST", "/v1/auth/approle/role/admin/secret-id", root, ""), 200).Data(t)
		if roleID == "" || sid["secret_id"] == "" || sid["secret_id_accessor"] == "" {
			t.Fatalf("role_id %q, secret-id %v", roleID, sid)
		}
		login := mustStatus(t, n.do("POST", "/v1/auth/approle/login", "", `{"role_id":"`+roleID+`","secret_id":"`+sid["secret_id"].(string)+`"}`), 200).Auth(t)
		if !slices.Contains(login["policies"].([]any), any("admin")) || login["lease_duration"] != 86400.0 || login["renewable"] != true {
			t.Fatalf("admin login = %v", login)
		}
		if login["metadata"].(map[string]any)["role_name"] != "admin" {
			t.Fatalf("login metadata = %v", login["metadata"])
		}
		if self := mustStatus(t, n.do("GET", "/v1/auth/token/lookup-self", login["client_token"].(string), ""), 200).Data(t); self["path"] != "auth/approle/login" {
			t.Fatalf("an AppRole login token looks up with path %v", self["path"])
		}

		// 5.2 Create default policies.
		mustStatus(t, n.do("POST", "/v1/policies", root, runbookPolicy(t, "read-only.json")), 204)
		mustStatus(t, n.do("POST", "/v1/policies", root, runbookPolicy(t, "production.json")), 204)

		// 7.1 Create agent AppRole.
		mustStatus(t, n.do("POST", "/v1/auth/approle/role/agents", root, `{
    "role_name": "agents",
    "policies": ["agent-policy"],
    "token_ttl": 3600
  }`), 204)
		if role := mustStatus(t, n.do("GET", "/v1/auth/approle/role/agents", root, ""), 200).Data(t); role["token_ttl"] != 3600.0 {
			t.Fatalf("agents role = %v", role)
		}

		prod := n.approleLogin(root, "prod-app", `["production"]`)
		ro := n.approleLogin(root, "auditor", `["read-only"]`)

		t.Run("production reads prod/db from 10.0.0.0/8", func(t *testing.T) {
			got := mustStatus(t, n.from("10.1.2.3", "GET", "/v1/secrets/static/prod/db", prod, ""), 200).Data(t)
			if got["data"].(map[string]any)["password"] != "pg-prod" {
				t.Fatalf("read = %v", got)
			}
		})
		t.Run("production reads prod/db through a trusted proxy for 10.0.0.0/8", func(t *testing.T) {
			req, _ := http.NewRequest("GET", n.URL+"/v1/secrets/static/prod/db", nil)
			req.Header.Set("X-Vault-Token", prod)
			req.Header.Set("X-Forwarded-For", "10.200.0.9")
			mustStatus(t, n.send(req), 200)
		})
		t.Run("production never reads from 127.0.0.1", func(t *testing.T) {
			mustError(t, n.do("GET", "/v1/secrets/static/prod/db", prod, ""), 403, "permission denied")
		})
		t.Run("a spoofed X-Forwarded-For from an untrusted peer is ignored", func(t *testing.T) {
			req := httptest.NewRequest("GET", "/v1/secrets/static/prod/db", nil)
			req.RemoteAddr = "192.0.2.7:5000"
			req.Header.Set("X-Vault-Token", prod)
			req.Header.Set("X-Forwarded-For", "10.1.2.3")
			rec := httptest.NewRecorder()
			n.srv.Handler().ServeHTTP(rec, req)
			if rec.Code != 403 {
				t.Fatalf("status %d, want 403: %s", rec.Code, rec.Body)
			}
		})
		t.Run("production writes nothing, even from 10.0.0.0/8", func(t *testing.T) {
			mustError(t, n.from("10.1.2.3", "POST", "/v1/secrets/static/prod/db", prod, `{"data":{"x":"y"}}`), 403, "permission denied")
		})
		t.Run("production reads nothing outside prod/", func(t *testing.T) {
			mustStatus(t, n.do("POST", "/v1/secrets/static/dev/db", root, `{"data":{"k":"v"}}`), 200)
			mustError(t, n.from("10.1.2.3", "GET", "/v1/secrets/static/dev/db", prod, ""), 403, "permission denied")
		})
		t.Run("read-only reads everything", func(t *testing.T) {
			mustStatus(t, n.do("GET", "/v1/secrets/static/prod/db", ro, ""), 200)
			mustStatus(t, n.do("GET", "/v1/secrets/static/dev/db", ro, ""), 200)
			mustStatus(t, n.do("GET", "/v1/policies/production", ro, ""), 200)
		})
		t.Run("read-only writes, deletes and lists nothing", func(t *testing.T) {
			mustError(t, n.do("POST", "/v1/secrets/static/prod/db", ro, `{"data":{"x":"y"}}`), 403, "permission denied")
			mustError(t, n.do("POST", "/v1/secrets/static/new/one", ro, `{"data":{"x":"y"}}`), 403, "permission denied")
			mustError(t, n.do("DELETE", "/v1/secrets/static/prod/db", ro, ""), 403, "permission denied")
			mustError(t, n.do("POST", "/v1/policies", ro, `{"name":"mine","rules":[{"path":"*","capabilities":["sudo"]}]}`), 403, "permission denied")
			mustError(t, n.do("LIST", "/v1/secrets/static/prod/", ro, ""), 403, "permission denied")
		})
		t.Run("the admin policy's login token administers but cannot mint root", func(t *testing.T) {
			admin := login["client_token"].(string)
			mustStatus(t, n.do("POST", "/v1/policies", admin, `{"name":"ops","rules":[{"path":"ops/*","capabilities":["read"]}]}`), 204)
			mustStatus(t, n.do("POST", "/v1/sys/rotate", admin, ""), 204)
			mustError(t, n.do("POST", "/v1/auth/token/create", admin, `{"policies":["root"]}`), 403, "")
		})
		t.Run("simulate explains production's decisions", func(t *testing.T) {
			allow := mustStatus(t, n.do("POST", "/v1/policies/simulate", root, `{"policies":["production"],"path":"prod/db","capability":"read","source_ip":"10.1.2.3"}`), 200).Data(t)
			if allow["allowed"] != true || allow["policy"] != "production" || allow["rule"].(map[string]any)["path"] != "prod/*" {
				t.Fatalf("simulate from 10.1.2.3 = %v", allow)
			}
			deny := mustStatus(t, n.do("POST", "/v1/policies/simulate", root, `{"token":"`+prod+`","path":"prod/db","capability":"read","source_ip":"127.0.0.1"}`), 200).Data(t)
			if deny["allowed"] != false || deny["failed_condition"] != "source_ip" || !strings.Contains(deny["reason"].(string), "source_ip") {
				t.Fatalf("simulate from 127.0.0.1 = %v", deny)
			}
		})
		t.Run("a changed policy is enforced at once on this node", func(t *testing.T) {
			mustStatus(t, n.do("PUT", "/v1/policies/production", root, `{"rules":[{"path":"prod/*","capabilities":["read"],"effect":"deny"}]}`), 204)
			mustError(t, n.from("10.1.2.3", "GET", "/v1/secrets/static/prod/db", prod, ""), 403, "permission denied")
		})
	})
}
