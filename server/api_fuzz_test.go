package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/server"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// apiSeed is one request of FuzzAPI's seed corpus: a route by name, a
// method (empty: the route's first), what follows the route's fixed path,
// and a body. In the suffix and body, {{token}} and {{accessor}} stand for
// a fresh child of the root token and its accessor.
type apiSeed struct {
	route, method, suffix, body string
}

// apiSeeds are realistic requests for every route, and the bad values that
// once reached the database as a 500.
var apiSeeds = []apiSeed{
	{"sys.health", "GET", "", ""},
	{"sys.health", "HEAD", "", ""},
	{"sys.health", "GET", "?standbyok=true&perfstandbyok=true&activecode=200&sealedcode=503&uninitcode=501", ""},
	{"sys.health", "GET", "?activecode=429", ""},
	{"sys.health", "GET", "?sealedcode=abc", ""},
	{"sys.init-status", "GET", "", ""},
	{"sys.init", "POST", "", `{"secret_shares":5,"secret_threshold":3}`},
	{"sys.init", "PUT", "", `{"secret_shares":1,"secret_threshold":1,"stored_shares":0,"pgp_keys":null}`},
	{"sys.seal-status", "GET", "", ""},
	{"sys.unseal", "POST", "", `{"key":"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"}`},
	{"sys.unseal", "POST", "", `{"key":"ABEiM0RVZneImaq7zN3u/wARIjNEVWZ3iJmqu8zd7v8="}`},
	{"sys.unseal", "PUT", "", `{"reset":true}`},
	{"sys.unseal", "POST", "", `{"key":"\u0000"}`},
	{"sys.seal", "POST", "", ""},
	{"sys.rotate", "POST", "", ""},
	{"sys.key-status", "GET", "", ""},

	{"token.create", "POST", "", `{"policies":["default"],"ttl":"1h","explicit_max_ttl":"24h","num_uses":3,"renewable":true,"display_name":"web","meta":{"team":"ops"},"bound_cidrs":["127.0.0.1/32","::1"]}`},
	{"token.create", "PUT", "", `{"ttl":3600,"no_parent":true,"no_default_policy":false,"type":"service"}`},
	{"token.create", "POST", "", `{"num_uses":3000000000}`},
	{"token.create", "POST", "", `{"num_uses":-1,"ttl":-5}`},
	{"token.create", "POST", "", `{"display_name":"web\u0000app","meta":{"k\u0000":"v\u0000"},"policies":["default\u0000"]}`},
	{"token.create", "POST", "", `{"lease":"7d","explicit_max_ttl":"87600h","renewable":false}`},
	{"token.create-orphan", "POST", "", `{"policies":["default"],"ttl":"30m","num_uses":2,"display_name":"batch","meta":{"job":"nightly"}}`},
	{"token.create-orphan", "PUT", "", `{"num_uses":2147483648,"display_name":"\u0000"}`},
	{"token.lookup-self", "GET", "", ""},
	{"token.lookup", "POST", "", `{"token":"{{token}}"}`},
	{"token.lookup", "POST", "", `{"token":"s.\u0000"}`},
	{"token.lookup-accessor", "POST", "", `{"accessor":"{{accessor}}"}`},
	{"token.lookup-accessor", "POST", "", `{"accessor":"abc\u0000def"}`},
	{"token.renew-self", "POST", "", `{"increment":"1h"}`},
	{"token.renew-self", "POST", "", `{"increment":4000000000}`},
	{"token.renew", "POST", "", `{"token":"{{token}}","increment":3600}`},
	{"token.renew", "PUT", "", `{"token":"{{token}}","increment":"99999999999d"}`},
	{"token.renew-accessor", "POST", "", `{"accessor":"{{accessor}}","increment":"2h"}`},
	{"token.renew-accessor", "PUT", "", `{"accessor":"a\u0000","increment":1e400}`},
	{"token.revoke-self", "POST", "", ""},
	{"token.revoke", "POST", "", `{"token":"{{token}}"}`},
	{"token.revoke-accessor", "POST", "", `{"accessor":"{{accessor}}"}`},
	{"token.revoke-accessor", "POST", "", `{"accessor":"\u0000"}`},

	{"kv.list", "LIST", "app/", ""},
	{"kv.list", "LIST", "", ""},
	{"kv.read", "GET", "app?list=true", ""},
	{"kv.read", "GET", "app/db", ""},
	{"kv.read", "GET", "app/db?version=1", ""},
	{"kv.read", "GET", "app/db?version=3000000000", ""},
	{"kv.read", "GET", "app%00db", ""},
	{"kv.read", "GET", "app/%2e%2e/db", ""},
	{"kv.write", "POST", "app/db", `{"data":{"username":"admin","password":"hunter2"},"options":{"cas":3}}`},
	{"kv.write", "PUT", "app/new", `{"data":{"n":1.5e300,"big":123456789012345678901234567890,"nested":{"a":[1,null,true,"\u0000"]}}}`},
	{"kv.write", "POST", "app/db", `{"data":{"k":"v"},"options":{"cas":3000000000}}`},
	{"kv.delete", "DELETE", "app/tmp", ""},
	{"kv.metadata-list", "LIST", "app", ""},
	{"kv.metadata-read", "GET", "app/db", ""},
	{"kv.metadata-write", "POST", "app/db", `{"max_versions":5,"cas_required":false,"custom_metadata":{"owner":"ops"}}`},
	{"kv.metadata-write", "PUT", "app/db", `{"max_versions":3000000000,"custom_metadata":{"o\u0000":"\u0000"}}`},
	{"kv.metadata-delete", "DELETE", "app/tmp", ""},
	{"kv.delete-versions", "POST", "app/db", `{"versions":[1,2]}`},
	{"kv.undelete", "POST", "app/db", `{"versions":[1,2]}`},
	{"kv.undelete", "POST", "app/db", `{"versions":[3000000000]}`},
	{"kv.destroy", "POST", "app/db", `{"versions":[1]}`},
	{"kv.destroy", "PUT", "app/db", `{"versions":[-1,1.5]}`},
	{"kv.rollback", "POST", "app/db", `{"version":2}`},
	{"kv.rollback", "POST", "app/db", `{"version":3000000000}`},

	{"sys.audit-hash", "POST", "", `{"input":"s.some-token"}`},
	{"sys.audit-hash", "PUT", "", `{"input":5}`},
	{"sys.audit-events", "GET", "?since=2026-01-01&until=2030-01-01T00:00:00Z&path=/v1/secrets&decision=allow&limit=5", ""},
	{"sys.audit-events", "GET", "?since=yesterday&limit=-1&after=garbage", ""},
	{"sys.audit-verify", "GET", "", ""},
	{"sys.audit-prune", "POST", "", `{"before":"2000-01-01"}`},
	{"sys.audit-prune", "POST", "", `{"before":"never"}`},

	{"auth.admin-login", "POST", "", `{"username":"admin","password":"correct horse battery staple"}`},
	{"auth.admin-login", "POST", "", `{"username":"admin","password":"wrong"}`},
	{"auth.admin-login", "PUT", "", `{"username":"","password":""}`},
	{"auth.admin-login", "POST", "", `{"username":["admin"],"password":null,"extra":1}`},

	{"approle.role-write", "POST", "web", `{"role_name":"web","policies":["admin"],"token_ttl":86400}`},
	{"approle.role-write", "POST", "web", `{"policies":"a,b","token_max_ttl":"2h","secret_id_ttl":"10m","secret_id_num_uses":3,"secret_id_bound_cidrs":"10.0.0.0/8,127.0.0.1","token_bound_cidrs":["127.0.0.1/32"]}`},
	{"approle.role-write", "PUT", "bad%00name", `{"policies":[1],"token_ttl":-5,"secret_id_num_uses":3000000000}`},
	{"approle.role-write", "POST", "web", `{"role_name":"other"}`},
	{"approle.role-list", "LIST", "", ""},
	{"approle.role-read", "GET", "web", ""},
	{"approle.role-read", "GET", "nope", ""},
	{"approle.role-delete", "DELETE", "gone", ""},
	{"approle.role-id-read", "GET", "web/role-id", ""},
	{"approle.role-id-write", "POST", "web/role-id", `{"role_id":"custom-web-id"}`},
	{"approle.role-id-write", "POST", "web/role-id", `{"role_id":""}`},
	{"approle.secret-id-create", "POST", "web/secret-id", `{"metadata":"{\"host\":\"a\"}","cidr_list":"127.0.0.1/32","ttl":"5m","num_uses":1}`},
	{"approle.secret-id-create", "POST", "web/secret-id", `{"metadata":{"host":"b"},"num_uses":-1,"ttl":"forever"}`},
	{"approle.secret-id-list", "LIST", "web/secret-id", ""},
	{"approle.secret-id-lookup", "POST", "web/secret-id-accessor/lookup", `{"secret_id_accessor":"00000000-0000-0000-0000-000000000000"}`},
	{"approle.secret-id-lookup", "POST", "web/secret-id-accessor/lookup", `{}`},
	{"approle.secret-id-destroy", "POST", "web/secret-id-accessor/destroy", `{"secret_id_accessor":"nope\u0000"}`},
	{"approle.login", "POST", "", `{"role_id":"custom-web-id","secret_id":"00000000-0000-0000-0000-000000000000"}`},
	{"approle.login", "POST", "", `{"role_id":"","secret_id":""}`},
	{"approle.login", "PUT", "", `{"role_id":5}`},

	{"policy.write", "POST", "", `{"name":"production","rules":[{"path":"prod/*","capabilities":["read"],"effect":"allow","conditions":{"time_of_day":[0,23],"source_ip":"10.0.0.0/8"}}]}`},
	{"policy.write", "POST", "", `{"name":"read-only","rules":[{"path":"*","capabilities":["read"],"effect":"allow"}]}`},
	{"policy.write", "PUT", "", `{"name":"Bad Name","rules":[]}`},
	{"policy.write", "POST", "", `{"name":"p","timezone":"Mars/Base","rules":[{"path":"*","capabilities":["read"],"conditions":{"time_of_day":[25,1]}}]}`},
	{"policy.write", "POST", "", `{"name":"root","rules":[{"path":"*","capabilities":["read"]}]}`},
	{"policy.list", "GET", "", ""},
	{"policy.list", "LIST", "", ""},
	{"policy.simulate", "POST", "", `{"policies":["production"],"path":"prod/db","capability":"read","source_ip":"10.1.2.3","time":"2026-11-30T09:00:00Z"}`},
	{"policy.simulate", "POST", "", `{"token":"{{token}}","path":"sys/seal","capability":"sudo"}`},
	{"policy.simulate", "POST", "", `{"policies":["x"],"path":"","capability":"fly","source_ip":"999.1.1.1","time":"yesterday"}`},
	{"policy.read", "GET", "read-only", ""},
	{"policy.read", "GET", "admin", ""},
	{"policy.read", "GET", "nope%00", ""},
	{"policy.put", "PUT", "web", `{"rules":[{"path":"web/+/cfg","capabilities":["read","list"],"effect":"deny","conditions":{"days_of_week":["sat","sun"]}}]}`},
	{"policy.put", "PUT", "web", `{"name":"other","rules":[{"path":"*","capabilities":["read"]}]}`},
	{"policy.put", "POST", "default", `{"rules":[{"path":"*","capabilities":["sudo"]}]}`},
	{"policy.delete", "DELETE", "web", ""},
	{"policy.delete", "DELETE", "root", ""},
	{"pki.root-generate", "POST", "", `{"common_name":"Fuzz Root","ttl":"87600h","key_type":"ec","key_bits":256}`},
	{"pki.root-generate", "PUT", "", `{"common_name":"\u0000","key_type":"rsa","key_bits":3000000000,"ttl":-1}`},
	{"pki.intermediate-generate", "POST", "", `{"common_name":"Fuzz Intermediate","ttl":"43800h","key_type":"ed25519"}`},
	{"pki.intermediate-generate", "POST", "", `{"common_name":"I","key_type":"ec","issuer_id":"\u0000"}`},
	{"pki.intermediate-csr", "POST", "", `{"common_name":"Offline","key_type":"ec"}`},
	{"pki.intermediate-set-signed", "POST", "", `{"certificate":"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"}`},
	{"pki.issuer-list", "LIST", "", ""},
	{"pki.config-issuers-read", "GET", "", ""},
	{"pki.config-issuers-write", "POST", "", `{"default":"nope"}`},
	{"pki.config-urls-read", "GET", "", ""},
	{"pki.config-urls-write", "POST", "", `{"issuing_certificates":["https://ca.example.com/v1/pki/ca/pem"],"crl_distribution_points":"http://ca.example.com/v1/pki/crl","ocsp_servers":[]}`},
	{"pki.config-urls-write", "PUT", "", `{"ocsp_servers":["ftp://\u0000"],"issuing_certificates":[1],"enable_templating":true}`},
	{"pki.role-write", "POST", "web", `{"allowed_domains":"example.com","allow_subdomains":true,"key_type":"ec","ttl":"1h","max_ttl":"24h"}`},
	{"pki.role-write", "PUT", "bad%00name", `{"key_bits":3000000000,"allowed_domains":["\u0000"]}`},
	{"pki.role-list", "LIST", "", ""},
	{"pki.role-read", "GET", "web", ""},
	{"pki.role-delete", "DELETE", "gone", ""},
	{"pki.issue", "POST", "web", `{"common_name":"a.example.com","alt_names":"b.example.com","ip_sans":["10.0.0.1"],"ttl":"1h"}`},
	{"pki.issue", "POST", "web", `{"common_name":"\u0000.example.com","ip_sans":["::1%eth0"],"ttl":3000000000}`},
	{"pki.sign", "POST", "web", `{"csr":"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----"}`},
	{"pki.revoke", "POST", "", `{"serial_number":"01:02:03"}`},
	{"pki.cert-list", "LIST", "", ""},
	{"pki.cert-read", "GET", "01:02", ""},
	{"pki.tidy", "POST", "", `{"safety_buffer":"72h"}`},
	{"pki.ca-pem", "GET", "", ""},
	{"pki.ca-chain", "GET", "?issuer_id=%00", ""},
	{"pki.crl", "GET", "", ""},
	{"pki.crl-pem", "GET", "", ""},
	{"pki.ocsp-post", "POST", "", "\x30\x03\x02\x01\x00"},
	{"pki.ocsp-get", "GET", "MAMCAQA=", ""},
}

// apiTarget is an initialized, unsealed node served in-process: requests
// go through the whole handler stack, parsed from the bytes a client would
// send.
type apiTarget struct {
	srv    *server.Server
	routes []server.RouteInfo
	root   string
	key    []byte
}

func newAPITarget(tb testing.TB, db *storage.DB) *apiTarget {
	tb.Helper()
	ctx := context.Background()
	srv, err := server.New(db, server.Config{AdminUsername: testAdminUser, AdminPasswordHash: testAdminHash})
	if err != nil {
		tb.Fatal(err)
	}
	res, err := srv.Initialize(ctx, 1, 1)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := srv.Unseal(ctx, res.Keys[0]); err != nil {
		tb.Fatal(err)
	}
	a := &apiTarget{srv: srv, routes: srv.Routes(), root: res.RootToken, key: res.Keys[0]}
	for _, w := range []struct{ path, body string }{
		{"app/db", `{"data":{"v":1}}`}, {"app/db", `{"data":{"v":2}}`}, {"app/db", `{"data":{"v":3}}`},
		{"app/tmp", `{"data":{"k":"v"}}`}, {"app/deep/x", `{"data":{"k":"v"}}`},
	} {
		if rec, _ := a.serve("POST", "/v1/secrets/static/"+w.path, a.root, []byte(w.body)); rec.Code != 200 {
			tb.Fatalf("writing %s: %d %s", w.path, rec.Code, rec.Body)
		}
	}
	return a
}

// routeIndex is the index of the named route in the route table.
func (a *apiTarget) routeIndex(tb testing.TB, name string) int {
	for i, rt := range a.routes {
		if rt.Name == name {
			return i
		}
	}
	tb.Fatalf("no route named %s", name)
	return 0
}

// serve sends one request as raw HTTP/1.1 bytes, so it reaches the handler
// exactly as net/http would parse it off the wire. ok is false when
// net/http itself would refuse the request before any handler runs.
func (a *apiTarget) serve(method, target, token string, body []byte) (rec *httptest.ResponseRecorder, ok bool) {
	if strings.ContainsAny(target, " \r\n") {
		return nil, false
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: secrethub.test\r\nContent-Length: %d\r\n", method, target, len(body))
	if token != "" {
		fmt.Fprintf(&b, "X-Vault-Token: %s\r\n", token)
	}
	b.WriteString("\r\n")
	b.Write(body)
	req, err := http.ReadRequest(bufio.NewReader(&b))
	if err != nil {
		return nil, false
	}
	req.RemoteAddr = "127.0.0.1:40000"
	rec = httptest.NewRecorder()
	a.srv.Handler().ServeHTTP(rec, req)
	return rec, true
}

// child creates a fresh child of the root token.
func (a *apiTarget) child(t *testing.T) (token, accessor string) {
	t.Helper()
	rec, _ := a.serve("POST", "/v1/auth/token/create", a.root, []byte(`{"ttl":"1h"}`))
	var out struct {
		Auth struct {
			ClientToken string `json:"client_token"`
			Accessor    string `json:"accessor"`
		} `json:"auth"`
	}
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &out) != nil || out.Auth.ClientToken == "" {
		t.Fatalf("creating a child token: %d %s", rec.Code, rec.Body)
	}
	return out.Auth.ClientToken, out.Auth.Accessor
}

// check sends one request, as the root token, to the route at index
// route (modulo the table) with suffix after its fixed path, and fails on
// anything a client must never see: a 5xx, a body that is not JSON, an
// error without a message.
func (a *apiTarget) check(t *testing.T, route uint8, method, suffix string, body []byte) {
	t.Helper()
	rt := a.routes[int(route)%len(a.routes)]
	if !validMethod(method) {
		method = rt.Methods[0]
	}
	prefix, _, _ := strings.Cut(rt.Path, "{")
	target := prefix + suffix
	token := a.root
	if strings.Contains(target, "{{") || bytes.Contains(body, []byte("{{")) {
		tok, acc := a.child(t)
		r := strings.NewReplacer("{{token}}", tok, "{{accessor}}", acc)
		target, body = r.Replace(target), []byte(r.Replace(string(body)))
	}
	parsed, err := url.ParseRequestURI(target)
	if err != nil {
		return // net/http answers 400 itself
	}
	path := parsed.Path
	if path == "/v1/auth/token/revoke-self" {
		// The root token must survive every input.
		token, _ = a.child(t)
	}

	rec, ok := a.serve(method, target, token, body)
	if !ok {
		return
	}
	defer a.restore(t, path)

	got := rec.Body.Bytes()
	describe := func() string {
		return fmt.Sprintf("%s %q body %q: status %d, response %q", method, target, clipBytes(body), rec.Code, clipBytes(got))
	}
	if rec.Header().Get("X-Request-Id") == "" {
		t.Fatalf("no X-Request-Id: %s", describe())
	}
	healthOverride := path == "/v1/sys/health" && rec.Code == atoiOr(parsed.Query().Get("activecode"), -1)
	if rec.Code >= 500 && !healthOverride {
		t.Fatalf("server error: %s", describe())
	}
	if rec.Code == http.StatusNoContent || (method == "HEAD" && len(got) == 0) {
		return
	}
	if rt.Published && rec.Code == http.StatusOK {
		return // PEM, DER or an OCSP response: not JSON by design
	}
	if !json.Valid(got) {
		t.Fatalf("body is not JSON: %s", describe())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q: %s", ct, describe())
	}
	if rec.Code >= 400 && !healthOverride {
		var e struct {
			Errors []string `json:"errors"`
		}
		if json.Unmarshal(got, &e) != nil || len(e.Errors) == 0 || e.Errors[0] == "" {
			t.Fatalf("error without an {\"errors\":[…]} message: %s", describe())
		}
	}
}

// restore undoes what an input may do to the node that later inputs rely
// on: a sealed node is unsealed again, and a root token that stopped
// working is a failure of its own.
func (a *apiTarget) restore(t *testing.T, path string) {
	t.Helper()
	if path == "/v1/sys/seal" {
		if _, err := a.srv.Unseal(context.Background(), a.key); err != nil {
			t.Fatalf("unsealing again: %v", err)
		}
	}
	if strings.Contains(path, "revoke") {
		if rec, _ := a.serve("GET", "/v1/auth/token/lookup-self", a.root, nil); rec.Code != 200 {
			t.Fatalf("the root token stopped working after a request to %s: %d %s", path, rec.Code, rec.Body)
		}
	}
}

// validMethod reports whether m is an HTTP token net/http accepts as a method.
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func atoiOr(s string, def int) int {
	if v, err := strconv.Atoi(s); err == nil {
		return v
	}
	return def
}

func clipBytes(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// FuzzAPI sends arbitrary requests to every route of one unsealed node over
// SQLite: whatever the route, method, path and body, the answer is never a
// 5xx, its body is JSON, and an error says what went wrong. With
// SECRETHUB_FUZZ_ENGINE=postgres the node runs on PostgreSQL instead, which
// refuses values SQLite stores (slower; each fuzz worker makes a database).
func FuzzAPI(f *testing.F) {
	db := storagetest.SQLite
	if os.Getenv("SECRETHUB_FUZZ_ENGINE") == "postgres" {
		db = storagetest.Postgres
	}
	a := newAPITarget(f, db(f))
	seeded := map[string]bool{}
	for _, s := range apiSeeds {
		seeded[s.route] = true
	}
	for _, rt := range a.routes {
		if !seeded[rt.Name] {
			f.Fatalf("route %s has no seed in apiSeeds", rt.Name)
		}
	}
	for _, s := range apiSeeds {
		f.Add(uint8(a.routeIndex(f, s.route)), s.method, s.suffix, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, route uint8, method, suffix string, body []byte) {
		a.check(t, route, method, suffix, body)
	})
}

// The seed corpus of FuzzAPI replayed on PostgreSQL, which refuses values
// SQLite stores: FuzzAPI's seeds run on SQLite with every go test.
func TestAPISeedsOnPostgres(t *testing.T) {
	a := newAPITarget(t, storagetest.Postgres(t))
	for i, s := range apiSeeds {
		t.Run(fmt.Sprintf("%02d %s %s %s", i, s.route, s.method, s.suffix), func(t *testing.T) {
			a.check(t, uint8(a.routeIndex(t, s.route)), s.method, s.suffix, []byte(s.body))
		})
	}
}
