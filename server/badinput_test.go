package server_test

import (
	"io"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/secrethub/secrethub/server"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

var requestIDPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// mustRequestID fails unless the response carries a well-formed
// X-Request-Id, and returns it.
func mustRequestID(t *testing.T, r response) string {
	t.Helper()
	id := r.Header.Get("X-Request-Id")
	if !requestIDPattern.MatchString(id) {
		t.Fatalf("X-Request-Id = %q, want a UUID (status %d)", id, r.Status)
	}
	return id
}

// Bad requests get the right 4xx, an {"errors":[…]} body with a message
// saying what is wrong, and a request id; never a 5xx.
func TestBadRequestsGetAClear4xx(t *testing.T) {
	clk := newClock()
	storagetest.Engines(t, func(t *testing.T, db *storage.DB) {
		n := startNode(t, db, server.Config{Now: clk.Now})
		_, root := n.initUnseal(1, 1)
		mustStatus(t, n.do("POST", "/v1/secrets/static/app/db", root, `{"data":{"k":"v"}}`), 200)
		expired, _ := n.createToken(root, `{"ttl":"1m"}`)
		clk.Advance(2 * time.Minute)

		cases := []struct {
			name               string
			method, path, body string
			token              string
			status             int
			want               string
		}{
			{"malformed JSON is a 400", "POST", "/v1/secrets/static/app/db", `{"data":`, root, 400, "not valid JSON"},
			{"a JSON syntax error names its position", "POST", "/v1/secrets/static/app/db", `{"data":{"k" "v"}}`, root, 400, "at byte"},
			{"data after the JSON value is a 400", "POST", "/v1/secrets/static/app/db", `{"data":{}} {"data":{}}`, root, 400, "data after the JSON value"},
			{"a JSON array body is a 400", "POST", "/v1/secrets/static/app/db", `[1,2]`, root, 400, "must be a JSON object"},
			{"a string where init wants a number is a 400", "POST", "/v1/sys/init", `{"secret_shares":"5","secret_threshold":3}`, "", 400, `"secret_shares" must be a number`},
			{"a string where kv data wants an object is a 400", "POST", "/v1/secrets/static/app/db", `{"data":"v"}`, root, 400, `"data" must be an object`},
			{"a string cas is a 400", "POST", "/v1/secrets/static/app/db", `{"data":{},"options":{"cas":"1"}}`, root, 400, `"options.cas" must be a number`},
			{"a string num_uses is a 400", "POST", "/v1/auth/token/create", `{"num_uses":"3"}`, root, 400, `"num_uses" must be a number`},
			{"a bare string for policies is a 400", "POST", "/v1/auth/token/create", `{"policies":"default"}`, root, 400, `"policies" must be a list`},
			{"a TTL that is not a duration is a 400", "POST", "/v1/auth/token/create", `{"ttl":"forever"}`, root, 400, "is not a duration"},
			{"a negative TTL is a 400", "POST", "/v1/auth/token/create", `{"ttl":-5}`, root, 400, "is not a duration"},
			{"an unknown init field is a 400", "POST", "/v1/sys/init", `{"secret_shares":1,"secret_threshold":1,"shares":5}`, "", 400, `unknown field "shares"`},
			{"an unknown top-level kv field is a 400", "POST", "/v1/secrets/static/app/db", `{"data":{"k":"v"},"dta":{}}`, root, 400, `unknown field "dta"`},
			{"an unknown kv option is a 400", "POST", "/v1/secrets/static/app/db", `{"data":{"k":"v"},"options":{"check":1}}`, root, 400, `unknown field "check"`},
			{"an unknown token create field is a 400", "POST", "/v1/auth/token/create", `{"policy":["default"]}`, root, 400, `unknown field "policy"`},
			{"a kv write without data is a 400", "POST", "/v1/secrets/static/app/db", `{}`, root, 400, "no data provided"},
			{"a kv write with null data is a 400", "POST", "/v1/secrets/static/app/db", `{"data":null}`, root, 400, "no data provided"},
			{"a kv write with no body is a 400", "POST", "/v1/secrets/static/app/db", "", root, 400, "no data provided"},
			{"a negative cas is a 400", "POST", "/v1/secrets/static/app/db", `{"data":{},"options":{"cas":-1}}`, root, 400, "cas must be between 0 and"},
			{"a %2e%2e segment is a 400", "GET", "/v1/secrets/static/a/%2e%2e/b", "", root, 400, `".." segment`},
			{"a . segment is a 400", "POST", "/v1/secrets/static/a/./b", `{"data":{}}`, root, 400, `"." segment`},
			{"an empty segment is a 400", "GET", "/v1/secrets/static/a//b", "", root, 400, "empty segment"},
			{"a trailing slash on read is a 400", "GET", "/v1/secrets/static/app/", "", root, 400, "use LIST"},
			{"an empty secret path is a 400", "GET", "/v1/secrets/static/", "", root, 400, "secret path is empty"},
			{"a reserved first segment is a 400", "GET", "/v1/secrets/static/sys/x", "", root, 400, "reserved"},
			{"a reserved first segment in another case is a 400", "POST", "/v1/secrets/static/Auth/x", `{"data":{}}`, root, 400, "reserved"},
			{"a reserved first segment is refused on metadata too", "GET", "/v1/secrets/metadata/policies/x", "", root, 400, "reserved"},
			{"a newline in a path is a 400", "GET", "/v1/secrets/static/a%0Ab", "", root, 400, "control character"},
			{"a control character in a path is a 400", "POST", "/v1/secrets/static/a%01b", `{"data":{}}`, root, 400, "control character"},
			{"a path over the length limit is a 400", "GET", "/v1/secrets/static/" + strings.Repeat("a", 600), "", root, 400, "longer than"},
			{"a missing token is a 403", "GET", "/v1/secrets/static/app/db", "", "", 403, "missing client token"},
			{"an unknown token is a 403", "GET", "/v1/secrets/static/app/db", "", "s.AAAAAAAAAAAAAAAAAAAAAAAAAAAA", 403, "invalid or expired token"},
			{"a token without the s. prefix is a 403", "GET", "/v1/secrets/static/app/db", "", "hunter2", 403, "invalid or expired token"},
			{"an expired token is a 403", "GET", "/v1/auth/token/lookup-self", "", expired, 403, "invalid or expired token"},
			{"a query with a bad escape is a 400", "GET", "/v1/secrets/static/app/db?version=%zz", "", root, 400, "query string is not valid"},
			{"a query with a ';' is a 400", "GET", "/v1/sys/audit/events?path=/v1/sys/init;x=y", "", root, 400, "use '&'"},
			{"a bad pair beside good ones is a 400", "GET", "/v1/sys/audit/events?path=/v1/sys/init&x=%zz", "", root, 400, "query string is not valid"},
			{"an unknown decision filter is a 400", "GET", "/v1/sys/audit/events?decision=ALLOW", "", root, 400, "decision must be allow, deny or none"},
			{"audit-hash without input is a 400", "POST", "/v1/sys/audit-hash", `{}`, root, 400, `missing "input"`},
			{"audit-hash with a null input is a 400", "POST", "/v1/sys/audit-hash", `{"input":null}`, root, 400, `missing "input"`},
			{"a prune before a future date is a 400", "POST", "/v1/sys/audit/prune", `{"before":"2999-01-01"}`, root, 400, "is in the future"},
			{"a version that is not a number is a 400", "GET", "/v1/secrets/static/app/db?version=abc", "", root, 400, "version must be a non-negative integer"},
			{"a negative version is a 400", "GET", "/v1/secrets/static/app/db?version=-1", "", root, 400, "version must be a non-negative integer"},
			{"a version that does not exist is a 404", "GET", "/v1/secrets/static/app/db?version=9", "", root, 404, "not found"},
			{"a secret that does not exist is a 404", "GET", "/v1/secrets/static/app/nope", "", root, 404, "secret not found"},
			{"an unknown API route is a 404", "GET", "/v1/nope", "", root, 404, "no API route for /v1/nope"},
			{"an unknown sys route is a 404", "POST", "/v1/sys/nope", `{}`, "", 404, "no API route"},
			{"a path outside /v1 is a 404", "GET", "/v2/sys/health", "", "", 404, "no API route"},
			{"the root path is a 404", "GET", "/", "", "", 404, "no API route"},
			{"DELETE on health is a 405", "DELETE", "/v1/sys/health", "", "", 405, "method DELETE is not allowed"},
			{"GET on unseal is a 405", "GET", "/v1/sys/unseal", "", "", 405, "method GET is not allowed"},
			{"PATCH on a secret is a 405", "PATCH", "/v1/secrets/static/app/db", `{}`, root, 405, "method PATCH is not allowed"},
			{"GET on token create is a 405", "GET", "/v1/auth/token/create", "", root, 405, "not allowed"},
			{"a cas mismatch is a 409", "POST", "/v1/secrets/static/app/db", `{"data":{"k":"x"},"options":{"cas":5}}`, root, 409, "current version is 1"},
			{"cas 0 on an existing secret is a 409", "POST", "/v1/secrets/static/app/db", `{"data":{"k":"x"},"options":{"cas":0}}`, root, 409, "check-and-set"},
			{"a second init is a 400", "POST", "/v1/sys/init", `{"secret_shares":1,"secret_threshold":1}`, "", 400, "already initialized"},
			{"init with a threshold above the shares is a 400", "POST", "/v1/sys/init", `{"secret_shares":2,"secret_threshold":3}`, "", 400, "secret_threshold must be between"},
			{"init with PGP keys is a 400", "POST", "/v1/sys/init", `{"secret_shares":1,"secret_threshold":1,"pgp_keys":["x"]}`, "", 400, "PGP"},
			{"a custom token id is a 400", "POST", "/v1/auth/token/create", `{"id":"s.mine"}`, root, 400, "custom token IDs"},
			{"bad bound CIDRs are a 400", "POST", "/v1/auth/token/create", `{"bound_cidrs":["nowhere"]}`, root, 400, "bound_cidrs"},
			{"token lookup without a token is a 400", "POST", "/v1/auth/token/lookup", `{}`, root, 400, `missing "token"`},
			{"undelete without versions is a 400", "POST", "/v1/secrets/undelete/app/db", `{}`, root, 400, "versions is required"},
			{"destroy of version 0 is a 400", "POST", "/v1/secrets/destroy/app/db", `{"versions":[0]}`, root, 400, "between 1 and"},
			{"rollback without a version is a 400", "POST", "/v1/secrets/rollback/app/db", `{}`, root, 400, "version is required"},
			{"max_versions out of range is a 400", "POST", "/v1/secrets/metadata/app/db", `{"max_versions":100000}`, root, 400, "max_versions must be between"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := n.do(c.method, c.path, c.token, c.body)
				mustError(t, r, c.status, c.want)
				mustRequestID(t, r)
				if ct := r.Header.Get("Content-Type"); ct != "application/json" {
					t.Fatalf("Content-Type = %q", ct)
				}
			})
		}

		t.Run("a literal .. segment sent over raw TCP is a 400, not a redirect", func(t *testing.T) {
			for _, method := range []string{"GET", "DELETE"} {
				r := n.rawRequest(method, "/v1/secrets/static/a/../app/db", root)
				mustError(t, r, 400, `".." segment`)
				mustRequestID(t, r)
			}
			mustError(t, n.rawRequest("GET", "/v1/secrets/static/../static/app/db", root), 400, `".." segment`)
			mustError(t, n.rawRequest("GET", "/v1/secrets/../sys/health", root), 404, "no API route")
		})

		t.Run("a body over 1 MiB is a 413", func(t *testing.T) {
			big := `{"data":{"k":"` + strings.Repeat("x", server.DefaultMaxRequestBytes) + `"}}`
			for _, c := range []struct {
				name  string
				token string
				chunk bool
			}{
				{"with a Content-Length and no token", "", false},
				{"with a Content-Length", root, false},
				{"sent chunked without a Content-Length", root, true},
			} {
				t.Run(c.name, func(t *testing.T) {
					var body io.Reader = strings.NewReader(big)
					if c.chunk {
						body = io.MultiReader(strings.NewReader(big))
					}
					req := n.newRequest("POST", "/v1/secrets/static/app/big", body)
					if c.chunk {
						req.ContentLength = -1
					}
					if c.token != "" {
						req.Header.Set("X-Vault-Token", c.token)
					}
					r := n.send(req)
					mustError(t, r, 413, "larger than the limit")
					mustRequestID(t, r)
				})
			}
			mustStatus(t, n.do("GET", "/v1/secrets/static/app/big", root, ""), 404)
			justUnder := `{"data":{"k":"` + strings.Repeat("x", server.DefaultMaxRequestBytes-20) + `"}}`
			mustStatus(t, n.do("POST", "/v1/secrets/static/app/big", root, justUnder), 200)
		})

		t.Run("JSON sent as text/plain or form data is parsed", func(t *testing.T) {
			for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "application/json; charset=utf-8"} {
				req := n.newRequest("POST", "/v1/secrets/static/app/typed", strings.NewReader(`{"data":{"ct":"`+ct+`"}}`))
				req.Header.Set("Content-Type", ct)
				req.Header.Set("X-Vault-Token", root)
				mustStatus(t, n.send(req), 200)
				got := mustStatus(t, n.do("GET", "/v1/secrets/static/app/typed", root, ""), 200).Data(t)
				if got["data"].(map[string]any)["ct"] != ct {
					t.Fatalf("read back %v", got)
				}
			}
		})

		t.Run("a bearer token works like X-Vault-Token", func(t *testing.T) {
			req := n.newRequest("GET", "/v1/secrets/static/app/db", nil)
			req.Header.Set("Authorization", "Bearer "+root)
			mustStatus(t, n.send(req), 200)
			req.Header.Set("Authorization", "Basic "+root)
			mustError(t, n.send(req), 403, "missing client token")
		})

		t.Run("the LIST method and ?list=true answer the same", func(t *testing.T) {
			viaMethod := mustStatus(t, n.do("LIST", "/v1/secrets/static/app", root, ""), 200).Data(t)
			for _, path := range []string{"/v1/secrets/static/app?list=true", "/v1/secrets/static/app/?list=true", "/v1/secrets/static/app/?list=1"} {
				viaQuery := mustStatus(t, n.do("GET", path, root, ""), 200).Data(t)
				if !reflect.DeepEqual(viaMethod, viaQuery) {
					t.Fatalf("LIST = %v, GET %s = %v", viaMethod, path, viaQuery)
				}
			}
			if keys := viaMethod["keys"].([]any); len(keys) < 2 {
				t.Fatalf("keys = %v", keys)
			}
			mustStatus(t, n.do("GET", "/v1/secrets/static/app/db?list=false", root, ""), 200)
		})

		t.Run("every response carries its own request id, echoed in the envelope", func(t *testing.T) {
			seen := map[string]bool{}
			for _, c := range []struct {
				r        response
				envelope bool
			}{
				{n.do("GET", "/v1/secrets/static/app/db", root, ""), true},
				{n.do("GET", "/v1/auth/token/lookup-self", root, ""), true},
				{n.do("GET", "/v1/secrets/static/app?list=true", root, ""), true},
				{n.do("POST", "/v1/auth/token/create", root, `{"ttl":60}`), true},
				{n.do("GET", "/v1/sys/health", "", ""), false},
				{n.do("DELETE", "/v1/secrets/static/app/gone", root, ""), false},
				{n.do("GET", "/v1/nope", "", ""), false},
			} {
				id := mustRequestID(t, c.r)
				if seen[id] {
					t.Fatalf("request id %s used twice", id)
				}
				seen[id] = true
				if c.envelope {
					if got := mustStatus(t, c.r, 200).JSON(t)["request_id"]; got != id {
						t.Fatalf("envelope request_id = %v, header %s", got, id)
					}
				}
			}
		})
	})
}

// countingReader yields up to limit bytes, counting those read.
type countingReader struct{ n, limit int64 }

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n >= c.limit {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), c.limit-c.n)]
	for i := range p {
		p[i] = 'x'
	}
	c.n += int64(len(p))
	return len(p), nil
}

// A body declared (Content-Length) larger than the limit is refused
// without reading any of it, with or without a token: the audit event of
// the refusal must not read it either, or a caller could make the node
// buffer hundreds of megabytes per request.
func TestADeclaredOversizedBodyIsRefusedUnread(t *testing.T) {
	n := startNode(t, storagetest.SQLite(t), server.Config{})
	_, root := n.initUnseal(1, 1)
	var ids []string
	for _, token := range []string{"", root} {
		// It declares 300 MiB and has 8: enough to see it read, not
		// enough to hurt the test when it is.
		body := &countingReader{limit: 8 << 20}
		req := httptest.NewRequest("POST", "/v1/secrets/static/app/huge", body)
		req.ContentLength = 300 << 20
		if token != "" {
			req.Header.Set("X-Vault-Token", token)
		}
		rec := httptest.NewRecorder()
		n.srv.Handler().ServeHTTP(rec, req)
		if rec.Code != 413 || !strings.Contains(rec.Body.String(), "larger than the limit") {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if body.n != 0 {
			t.Fatalf("the server read %d bytes of a body declared over the limit", body.n)
		}
		ids = append(ids, rec.Header().Get("X-Request-Id"))
	}
	events := auditedEvents(t, n)
	for _, id := range ids {
		ev, ok := events[id]
		if !ok || ev.Outcome == nil || ev.Outcome.Status != 413 || ev.RequestData != nil {
			t.Fatalf("event %+v (found %v), want status 413 and no request data", ev, ok)
		}
	}
}
