package server_test

import (
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/server"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

const adminLoginBody = `{"username":"admin","password":"correct horse battery staple"}`

func adminNode(t *testing.T, db *storage.DB) *node {
	return startNode(t, db, server.Config{
		AdminUsername: testAdminUser, AdminPasswordHash: testAdminHash,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	})
}

func TestAdminLogin(t *testing.T) {
	storagetest.Engines(t, func(t *testing.T, db *storage.DB) {
		n := adminNode(t, db)
		n.initUnseal(1, 1)

		t.Run("the right password gives an admin token for 30 minutes", func(t *testing.T) {
			a := mustStatus(t, n.do("POST", "/v1/auth/admin/login", "", adminLoginBody), 200).Auth(t)
			tok := a["client_token"].(string)
			pols := a["policies"].([]any)
			if !slices.Contains(pols, any("admin")) || a["lease_duration"] != 1800.0 || !strings.HasPrefix(tok, "s.") {
				t.Fatalf("auth = %v", a)
			}
			mustStatus(t, n.do("POST", "/v1/secrets/static/admin/made", tok, `{"data":{"k":"v"}}`), 200)
			if self := mustStatus(t, n.do("GET", "/v1/auth/token/lookup-self", tok, ""), 200).Data(t); self["path"] != "auth/admin/login" {
				t.Fatalf("an admin login token looks up with path %v", self["path"])
			}
			mustStatus(t, n.do("POST", "/v1/policies", tok, `{"name":"web","rules":[{"path":"web/*","capabilities":["read"]}]}`), 204)
			mustError(t, n.do("POST", "/v1/auth/token/create", tok, `{"policies":["root"]}`), 403, "policies its parent has")
			if strings.Contains(n.logs.String(), testAdminPassword) || strings.Contains(n.logs.String(), tok) {
				t.Fatal("the password or the token reached the log")
			}
		})

		t.Run("every wrong credential gets the same answer", func(t *testing.T) {
			for _, body := range []string{
				`{"username":"admin","password":"wrong"}`,
				`{"username":"root","password":"correct horse battery staple"}`,
				`{"username":"","password":""}`,
				`{}`,
			} {
				r := n.do("POST", "/v1/auth/admin/login", "", body)
				mustError(t, r, 403, "invalid username or password")
				if strings.Contains(string(r.Body), "correct horse") {
					t.Fatal("an error repeats the password")
				}
			}
		})

		t.Run("repeated failures from one client are limited, other clients are not", func(t *testing.T) {
			from := func(ip, body string) response {
				req, _ := http.NewRequest("POST", n.URL+"/v1/auth/admin/login", strings.NewReader(body))
				req.Header.Set("X-Forwarded-For", ip) // the test's peer, 127.0.0.1, is a trusted proxy
				return n.send(req)
			}
			var last response
			for range 8 {
				last = from("10.9.9.9", `{"username":"admin","password":"guess"}`)
			}
			mustError(t, last, 429, "")
			if last.Header.Get("Retry-After") == "" {
				t.Fatal("a 429 without Retry-After")
			}
			mustError(t, from("10.9.9.9", adminLoginBody), 429, "")
			mustStatus(t, from("10.8.8.8", adminLoginBody), 200)
		})
	})
}

func TestAdminLoginIsOffWithoutSettings(t *testing.T) {
	n := startNode(t, storagetest.SQLite(t), server.Config{})
	n.initUnseal(1, 1)
	mustError(t, n.do("POST", "/v1/auth/admin/login", "", adminLoginBody), 404, "")
}

func TestConfigValidateNamesTheBadSetting(t *testing.T) {
	cases := []struct {
		name string
		cfg  server.Config
		want string
	}{
		{"a username without a hash", server.Config{AdminUsername: "admin"}, "ADMIN_PASSWORD_HASH"},
		{"a hash without a username", server.Config{AdminPasswordHash: testAdminHash}, "ADMIN_USERNAME"},
		{"a hash that is not bcrypt", server.Config{AdminUsername: "admin", AdminPasswordHash: "plaintext-password"}, "not a bcrypt hash"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "plaintext-password") {
				t.Fatalf("Validate = %v, want an error naming %s without the value", err, c.want)
			}
		})
	}
	if err := (server.Config{AdminUsername: "admin", AdminPasswordHash: testAdminHash}).Validate(); err != nil {
		t.Fatalf("a good configuration: %v", err)
	}
}
