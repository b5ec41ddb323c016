package server_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/server"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// publicRoutes is every route served without a token (and while sealed):
// exactly what an operator needs to initialize, unseal and health-check.
var publicRoutes = map[string][]string{
	"/v1/sys/health":      {"GET", "HEAD"},
	"/v1/sys/init":        {"GET", "POST", "PUT"},
	"/v1/sys/seal-status": {"GET"},
	"/v1/sys/unseal":      {"POST", "PUT"},
}

// loginRoutes need no token (they are how a caller gets one) but, unlike
// the public sys endpoints, answer only while unsealed.
var loginRoutes = map[string][]string{
	"/v1/auth/admin/login":   {"POST", "PUT"},
	"/v1/auth/approle/login": {"POST", "PUT"},
}

// publishedRoutes need no token (CA certificates, CRLs and OCSP are for
// anyone) but answer only while unsealed: a CRL may need signing.
var publishedRoutes = map[string][]string{
	"/v1/pki/ca/pem":            {"GET"},
	"/v1/pki/ca_chain":          {"GET"},
	"/v1/pki/crl":               {"GET"},
	"/v1/pki/crl/pem":           {"GET"},
	"/v1/pki/ocsp":              {"POST"},
	"/v1/pki/ocsp/{request:.+}": {"GET"},
}

// concrete turns a route template into a path that matches it: a secret
// path variable becomes app/db, any other variable a single segment.
func concrete(template string) string {
	return routeVar.ReplaceAllStringFunc(template, func(v string) string {
		if strings.HasPrefix(v, "{path") {
			return "app/db"
		}
		return "web"
	})
}

var routeVar = regexp.MustCompile(`\{[^}]*\}`)

// Every route the router serves has an authorization entry, and the only
// public ones are the unauthenticated sys endpoints.
func TestEveryRouteIsAuthorized(t *testing.T) {
	srv, err := server.New(storagetest.SQLite(t), server.Config{})
	if err != nil {
		t.Fatal(err)
	}
	routes := srv.Routes()
	if len(routes) < 20 {
		t.Fatalf("walked only %d routes", len(routes))
	}
	public, logins, published := map[string][]string{}, map[string][]string{}, map[string][]string{}
	for _, rt := range routes {
		if !rt.HasAccess {
			t.Errorf("route %s (%v %s) has no usable authorization entry", rt.Name, rt.Methods, rt.Path)
		}
		if rt.Name == "" || len(rt.Methods) == 0 {
			t.Errorf("route %s is unnamed or matches every method", rt.Path)
		}
		if rt.Public {
			public[rt.Path] = append(public[rt.Path], rt.Methods...)
		}
		if rt.Login {
			logins[rt.Path] = append(logins[rt.Path], rt.Methods...)
		}
		if rt.Published {
			published[rt.Path] = append(published[rt.Path], rt.Methods...)
		}
	}
	for _, set := range []struct {
		kind      string
		got, want map[string][]string
	}{{"public", public, publicRoutes}, {"login", logins, loginRoutes}, {"published", published, publishedRoutes}} {
		for path, methods := range set.got {
			slices.Sort(methods)
			if want, ok := set.want[path]; !ok || !slices.Equal(methods, want) {
				t.Errorf("%s route %s %v, want only %v", set.kind, path, methods, set.want)
			}
		}
		for path := range set.want {
			if _, ok := set.got[path]; !ok {
				t.Errorf("%s is not a %s route", path, set.kind)
			}
		}
	}
}

// Walking the router and calling each route shows the gate really guards
// it: sealed → 503, no token → 403, a default-only token → 403 except on
// the token's own self-service routes.
func TestEveryGuardedRouteRefusesWithoutAuthorization(t *testing.T) {
	selfService := map[string]bool{"token.lookup-self": true, "token.renew-self": true, "token.revoke-self": true}
	eachEngine(t, func(t *testing.T, n *node) {
		routes := n.srv.Routes()
		each := func(fn func(t *testing.T, rt server.RouteInfo, method, path string)) {
			for _, rt := range routes {
				for _, m := range rt.Methods {
					fn(t, rt, m, concrete(rt.Path))
				}
			}
		}

		each(func(t *testing.T, rt server.RouteInfo, method, path string) {
			r := n.do(method, path, "", "")
			switch {
			case rt.Public && r.Status == 403:
				t.Errorf("public %s %s asked for a token: %s", method, path, r.Body)
			case !rt.Public && r.Status != 503:
				t.Errorf("sealed: %s %s = %d, want 503", method, path, r.Status)
			}
		})

		_, root := n.initUnseal(1, 1)
		each(func(t *testing.T, rt server.RouteInfo, method, path string) {
			if r := n.do(method, path, "", ""); !rt.Public && !rt.Login && !rt.Published {
				mustError(t, r, 403, "missing client token")
			}
		})

		tok, _ := n.createToken(root, `{"policies":["default"]}`)
		each(func(t *testing.T, rt server.RouteInfo, method, path string) {
			if rt.Public || rt.Login || rt.Published || rt.Name == "token.revoke-self" {
				return
			}
			r := n.do(method, path, tok, "")
			if selfService[rt.Name] {
				mustStatus(t, r, 200)
				return
			}
			mustError(t, r, 403, "permission denied")
		})
		mustStatus(t, n.do("POST", "/v1/auth/token/revoke-self", tok, ""), 204)
	})
}
