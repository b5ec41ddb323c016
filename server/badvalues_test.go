package server_test

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/server"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// badValueCase is one request whose values a database column cannot hold,
// or that no caller could mean.
type badValueCase struct {
	name               string
	method, path, body string
	status             int
	want               string // in the first error message
}

// mustRefuseCleanly fails unless r is the wanted 4xx with an
// {"errors":[…]} body that says want and gives away nothing of the
// database: no SQL, no driver text, no SQLSTATE.
func mustRefuseCleanly(t *testing.T, r response, status int, want string) {
	t.Helper()
	mustError(t, r, status, want)
	mustRequestID(t, r)
	for _, leak := range []string{"pq:", "SQLSTATE", "sqlite", "INSERT", "SELECT", "UPDATE ", "22003", "22021", "internal error"} {
		if strings.Contains(string(r.Body), leak) {
			t.Fatalf("error body gives away %q: %s", leak, r.Body)
		}
	}
}

// Numbers beyond a 32-bit column and text with U+0000 are refused with a
// 400 on both engines: PostgreSQL rejects them (SQLSTATE 22003, 22021)
// where SQLite would store them, so they must never reach it as a 500. The
// same holds for negative numbers, fractions where whole numbers are
// wanted, oversized lists, nesting past the decoder's limit, and durations
// out of range.
func TestValuesNoColumnCanHoldAreA400(t *testing.T) {
	storagetest.Engines(t, func(t *testing.T, db *storage.DB) {
		n := startNode(t, db, server.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
		_, root := n.initUnseal(1, 1)
		for range 3 {
			mustStatus(t, n.do("POST", "/v1/secrets/static/app/db", root, `{"data":{"k":"v"}}`), 200)
		}
		child, _ := n.createToken(root, `{"ttl":"1h"}`)

		const overInt32 = "3000000000"
		versions := strings.TrimSuffix(strings.Repeat("1,", 200000), ",")
		cases := []badValueCase{
			// Past INTEGER (2^31-1): SQLSTATE 22003 on PostgreSQL.
			{"a version query beyond 32 bits", "GET", "/v1/secrets/static/app/db?version=" + overInt32, "", 400, "version"},
			{"a version query just past 2^31-1", "GET", "/v1/secrets/static/app/db?version=2147483648", "", 400, "version"},
			{"a version query beyond 64 bits", "GET", "/v1/secrets/static/app/db?version=9223372036854775808", "", 400, "version"},
			{"undelete of a version beyond 32 bits", "POST", "/v1/secrets/undelete/app/db", `{"versions":[` + overInt32 + `]}`, 400, "version"},
			{"destroy of a version beyond 32 bits after a good one", "POST", "/v1/secrets/destroy/app/db", `{"versions":[1,` + overInt32 + `]}`, 400, "version"},
			{"delete of a version beyond 32 bits", "POST", "/v1/secrets/delete/app/db", `{"versions":[` + overInt32 + `]}`, 400, "version"},
			{"rollback to a version beyond 32 bits", "POST", "/v1/secrets/rollback/app/db", `{"version":` + overInt32 + `}`, 400, "version"},
			{"a token with num_uses beyond 32 bits", "POST", "/v1/auth/token/create", `{"num_uses":` + overInt32 + `}`, 400, "num_uses"},
			{"an orphan token with num_uses just past 2^31-1", "POST", "/v1/auth/token/create-orphan", `{"num_uses":2147483648}`, 400, "num_uses"},
			{"a token with num_uses beyond 64 bits", "POST", "/v1/auth/token/create", `{"num_uses":9223372036854775808}`, 400, "num_uses"},
			{"a cas beyond 32 bits", "POST", "/v1/secrets/static/app/db", `{"data":{"k":"v"},"options":{"cas":` + overInt32 + `}}`, 400, "cas"},
			{"max_versions beyond 32 bits", "POST", "/v1/secrets/metadata/app/db", `{"max_versions":` + overInt32 + `}`, 400, "max_versions"},

			// Text with U+0000: SQLSTATE 22021 on PostgreSQL.
			{"a NUL in a token's display_name", "POST", "/v1/auth/token/create", `{"display_name":"web\u0000app"}`, 400, "display_name"},
			{"a NUL in a token meta value", "POST", "/v1/auth/token/create", `{"meta":{"team":"ops\u0000"}}`, 400, "meta"},
			{"a NUL in a token meta key", "POST", "/v1/auth/token/create", `{"meta":{"te\u0000am":"ops"}}`, 400, "meta"},
			{"a NUL in a policy name", "POST", "/v1/auth/token/create", `{"policies":["default\u0000"]}`, 400, "polic"},
			{"a NUL in a bound CIDR", "POST", "/v1/auth/token/create", `{"bound_cidrs":["127.0.0.1\u0000"]}`, 400, "bound_cidrs"},
			{"a NUL in an accessor to look up", "POST", "/v1/auth/token/lookup-accessor", `{"accessor":"abc\u0000def"}`, 400, "accessor"},
			{"a NUL in an accessor to revoke", "POST", "/v1/auth/token/revoke-accessor", `{"accessor":"abc\u0000def"}`, 400, "accessor"},
			{"a NUL in an accessor to renew", "POST", "/v1/auth/token/renew-accessor", `{"accessor":"abc\u0000def"}`, 400, "accessor"},
			{"a NUL in an orphan token's display_name", "POST", "/v1/auth/token/create-orphan", `{"display_name":"\u0000"}`, 400, "display_name"},
			{"a NUL in a custom_metadata key", "POST", "/v1/secrets/metadata/app/db", `{"custom_metadata":{"ow\u0000ner":"ops"}}`, 400, "custom_metadata"},
			{"a NUL in a custom_metadata value", "POST", "/v1/secrets/metadata/app/db", `{"custom_metadata":{"owner":"ops\u0000"}}`, 400, "custom_metadata"},
			{"a %00 in a secret path to read", "GET", "/v1/secrets/static/app%00db", "", 400, "control character"},
			{"a %00 in a secret path to write", "POST", "/v1/secrets/static/app/d%00b", `{"data":{"k":"v"}}`, 400, "control character"},
			{"a %00 in a prefix to list", "LIST", "/v1/secrets/static/app%00", "", 400, "control character"},
			{"a %00 in a secret path to delete", "DELETE", "/v1/secrets/static/%00", "", 400, "control character"},
			{"a %00 in a metadata path", "POST", "/v1/secrets/metadata/app/%00", `{"max_versions":3}`, 400, "control character"},
			{"a %00 in an undelete path", "POST", "/v1/secrets/undelete/app%00/db", `{"versions":[1]}`, 400, "control character"},
			{"a %00 in a version query", "GET", "/v1/secrets/static/app/db?version=%00", "", 400, "version"},
			{"a NUL in an unseal key", "POST", "/v1/sys/unseal", `{"key":"\u0000"}`, 400, "key"},
			{"a NUL in a TTL", "POST", "/v1/auth/token/create", `{"ttl":"1h\u0000"}`, 400, "not a duration"},

			// Negative numbers.
			{"a negative version to undelete", "POST", "/v1/secrets/undelete/app/db", `{"versions":[-1]}`, 400, "version"},
			{"a negative version to roll back to", "POST", "/v1/secrets/rollback/app/db", `{"version":-2}`, 400, "version"},
			{"a negative num_uses", "POST", "/v1/auth/token/create", `{"num_uses":-1}`, 400, "num_uses"},
			{"a negative max_versions", "POST", "/v1/secrets/metadata/app/db", `{"max_versions":-1}`, 400, "max_versions"},
			{"a negative renewal increment", "POST", "/v1/auth/token/renew-self", `{"increment":-1}`, 400, "not a duration"},
			{"a negative duration string", "POST", "/v1/auth/token/create", `{"explicit_max_ttl":"-1h"}`, 400, "not a duration"},

			// Fractions and exponents where whole numbers are wanted.
			{"a fractional num_uses", "POST", "/v1/auth/token/create", `{"num_uses":1.5}`, 400, `"num_uses" must be a number`},
			{"a fractional version to destroy", "POST", "/v1/secrets/destroy/app/db", `{"versions":[1.5]}`, 400, "must be a"},
			{"a version written as 2.0", "POST", "/v1/secrets/rollback/app/db", `{"version":2.0}`, 400, `"version" must be a number`},
			{"a cas written with an exponent", "POST", "/v1/secrets/static/app/db", `{"data":{},"options":{"cas":1e3}}`, 400, "cas"},
			{"a fractional version query", "GET", "/v1/secrets/static/app/db?version=1.5", "", 400, "version"},
			{"a version query with an exponent", "GET", "/v1/secrets/static/app/db?version=1e3", "", 400, "version"},
			{"a version too big for a float", "POST", "/v1/secrets/undelete/app/db", `{"versions":[1e400]}`, 400, "must be a"},

			// Sizes and shapes.
			{"200000 versions in one request", "POST", "/v1/secrets/destroy/app/db", `{"versions":[` + versions + `]}`, 400, "at most"},
			{"kv data nested past the decoder's depth limit", "POST", "/v1/secrets/static/app/deep", `{"data":{"k":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}}`, 400, "not valid JSON"},
			{"a versions object instead of a list", "POST", "/v1/secrets/undelete/app/db", `{"versions":{"1":true}}`, 400, `"versions" must be a list`},
			{"a raw NUL byte inside a JSON string", "POST", "/v1/auth/token/create", "{\"display_name\":\"a\x00b\"}", 400, "not valid JSON"},
			{"invalid UTF-8 in a secret path", "GET", "/v1/secrets/static/app%FFdb", "", 400, "not valid UTF-8"},
			{"a lone surrogate escape in a secret path", "GET", "/v1/secrets/static/app%ED%A0%80", "", 400, "not valid UTF-8"},

			// Renewal increments out of range.
			{"an increment past a century in seconds", "POST", "/v1/auth/token/renew-self", `{"increment":4000000000}`, 400, "not a duration"},
			{"an increment too big for a float", "POST", "/v1/auth/token/renew-self", `{"increment":1e400}`, 400, "not a duration"},
			{"an increment past time.Duration", "POST", "/v1/auth/token/renew-self", `{"increment":"9999999999h"}`, 400, "not a duration"},
			{"an increment as 2^63-1 seconds", "POST", "/v1/auth/token/renew-self", `{"increment":"9223372036854775807"}`, 400, "not a duration"},
			{"an increment of too many days", "POST", "/v1/auth/token/renew", `{"token":"` + child + `","increment":"99999999999d"}`, 400, "not a duration"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				mustRefuseCleanly(t, n.do(c.method, c.path, root, c.body), c.status, c.want)
			})
		}

		t.Run("nothing refused was stored", func(t *testing.T) {
			md := mustStatus(t, n.do("GET", "/v1/secrets/metadata/app/db", root, ""), 200).Data(t)
			if md["current_version"] != 3.0 || len(md["custom_metadata"].(map[string]any)) != 0 {
				t.Fatalf("metadata after refused writes = %v", md)
			}
			for _, v := range md["versions"].(map[string]any) {
				if v.(map[string]any)["destroyed"] != false || v.(map[string]any)["deletion_time"] != "" {
					t.Fatalf("a refused request changed a version: %v", md)
				}
			}
			mustStatus(t, n.do("GET", "/v1/secrets/static/app/deep", root, ""), 404)
		})

		t.Run("a literal invalid UTF-8 byte in the request target is a 400", func(t *testing.T) {
			mustRefuseCleanly(t, n.rawRequest("GET", "/v1/secrets/static/app\xffdb", root), 400, "not valid UTF-8")
		})

		t.Run("long header values are refused, never a 5xx", func(t *testing.T) {
			long := strings.Repeat("A", 64<<10)
			for _, h := range []struct{ name, value string }{
				{"X-Vault-Token", "s." + long},
				{"Authorization", "Bearer s." + long},
			} {
				req := n.newRequest("GET", "/v1/auth/token/lookup-self", nil)
				req.Header.Set(h.name, h.value)
				mustRefuseCleanly(t, n.send(req), 403, "invalid or expired token")
			}
			// A trusted proxy's forwarding chain of 10000 hops, then garbage.
			req := n.newRequest("GET", "/v1/auth/token/lookup-self", nil)
			req.Header.Set("X-Vault-Token", root)
			req.Header.Set("X-Forwarded-For", strings.Repeat("203.0.113.9, ", 10000)+long)
			mustStatus(t, n.send(req), 200)
			// Past net/http's 1 MiB header limit the answer is its own 431,
			// before any handler runs.
			req = n.newRequest("GET", "/v1/auth/token/lookup-self", nil)
			req.Header.Set("X-Vault-Token", root)
			req.Header.Set("X-Padding", strings.Repeat(long, 17))
			if r := n.send(req); r.Status != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("status %d for a header over 1 MiB, want 431", r.Status)
			}
		})
	})
}

// Values at the edge of what the columns hold, and input Go's JSON decoder
// repairs rather than refuses (invalid UTF-8 and lone surrogates become
// U+FFFD), are accepted alike on both engines.
func TestValuesAtTheEdgeAreAccepted(t *testing.T) {
	storagetest.Engines(t, func(t *testing.T, db *storage.DB) {
		n := startNode(t, db, server.Config{})
		_, root := n.initUnseal(1, 1)
		mustStatus(t, n.do("POST", "/v1/secrets/static/app/db", root, `{"data":{"k":"v"}}`), 200)

		cases := []struct {
			name               string
			method, path, body string
			status             int
		}{
			{"a version query of 2^31-1 that does not exist", "GET", "/v1/secrets/static/app/db?version=2147483647", "", 404},
			{"undelete of version 2^31-1", "POST", "/v1/secrets/undelete/app/db", `{"versions":[2147483647]}`, 204},
			{"destroy of version 2^31-1", "POST", "/v1/secrets/destroy/app/db", `{"versions":[2147483647]}`, 204},
			{"rollback to version 2^31-1", "POST", "/v1/secrets/rollback/app/db", `{"version":2147483647}`, 404},
			{"a token with num_uses 2^31-1", "POST", "/v1/auth/token/create", `{"num_uses":2147483647}`, 200},
			{"a token whose display_name has invalid UTF-8", "POST", "/v1/auth/token/create", "{\"display_name\":\"web\xffapp\"}", 200},
			{"a token whose meta has a lone surrogate", "POST", "/v1/auth/token/create", `{"meta":{"k":"\ud800"}}`, 200},
			{"kv data with NUL in keys and values", "POST", "/v1/secrets/static/app/nul", `{"data":{"a\u0000b":"c\u0000d"}}`, 200},
			{"kv data nested 5000 deep", "POST", "/v1/secrets/static/app/deep", `{"data":{"k":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}}`, 200},
			{"custom_metadata with invalid UTF-8", "POST", "/v1/secrets/metadata/app/db", "{\"custom_metadata\":{\"owner\":\"\xfe\"}}", 204},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := n.do(c.method, c.path, root, c.body)
				mustStatus(t, r, c.status)
				if c.status >= 400 {
					r.Errors(t)
				}
			})
		}

		t.Run("NUL in kv data reads back exactly", func(t *testing.T) {
			d := mustStatus(t, n.do("GET", "/v1/secrets/static/app/nul", root, ""), 200).Data(t)["data"].(map[string]any)
			if d["a\x00b"] != "c\x00d" {
				t.Fatalf("read back %q", d)
			}
		})
		t.Run("deeply nested kv data reads back", func(t *testing.T) {
			r := mustStatus(t, n.do("GET", "/v1/secrets/static/app/deep", root, ""), 200)
			if !strings.Contains(string(r.Body), strings.Repeat("[", 5000)) {
				t.Fatalf("nesting lost: %.200s", r.Body)
			}
		})
		t.Run("repaired text reads back as U+FFFD", func(t *testing.T) {
			md := mustStatus(t, n.do("GET", "/v1/secrets/metadata/app/db", root, ""), 200).Data(t)
			if got := md["custom_metadata"].(map[string]any)["owner"]; got != "\uFFFD" {
				t.Fatalf("custom_metadata owner = %q", got)
			}
		})
	})
}
