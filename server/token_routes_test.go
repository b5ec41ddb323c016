package server_test

import (
	"testing"
)

// Vault's create-orphan and renew-accessor routes, which the official
// client's CreateOrphan and RenewAccessor call.
func TestCreateOrphanAndRenewAccessor(t *testing.T) {
	eachEngine(t, func(t *testing.T, n *node) {
		_, root := n.initUnseal(1, 1)

		t.Run("create-orphan issues a token without a parent", func(t *testing.T) {
			parent, _ := n.createToken(root, `{"policies":["root"],"ttl":"1h"}`)
			a := mustStatus(t, n.do("POST", "/v1/auth/token/create-orphan", parent, `{"ttl":"2h"}`), 200).Auth(t)
			orphan := a["client_token"].(string)
			if a["orphan"] != true {
				t.Fatalf("auth = %v, want an orphan", a)
			}
			mustStatus(t, n.do("POST", "/v1/auth/token/revoke-self", parent, ""), 204)
			// Revoking the creator leaves the orphan alive, unlike a child.
			self := mustStatus(t, n.do("GET", "/v1/auth/token/lookup-self", orphan, ""), 200).Data(t)
			if self["orphan"] != true || self["ttl"].(float64) < 7100 {
				t.Fatalf("orphan after its creator was revoked = %v", self)
			}
		})

		t.Run("a default-only token may not call create-orphan", func(t *testing.T) {
			limited, _ := n.createToken(root, `{"policies":["default"]}`)
			mustError(t, n.do("POST", "/v1/auth/token/create-orphan", limited, `{}`), 403, "permission denied")
		})

		t.Run("renew-accessor renews another token without knowing its value", func(t *testing.T) {
			tok, acc := n.createToken(root, `{"ttl":"1h","explicit_max_ttl":"10h"}`)
			a := mustStatus(t, n.do("POST", "/v1/auth/token/renew-accessor", root, `{"accessor":"`+acc+`","increment":"5h"}`), 200).Auth(t)
			if a["client_token"] != "" || a["accessor"] != acc || a["lease_duration"].(float64) < 5*3600-5 {
				t.Fatalf("renew-accessor auth = %v", a)
			}
			self := mustStatus(t, n.do("GET", "/v1/auth/token/lookup-self", tok, ""), 200).Data(t)
			if self["ttl"].(float64) < 5*3600-5 {
				t.Fatalf("ttl after renew-accessor = %v", self["ttl"])
			}
			mustError(t, n.do("POST", "/v1/auth/token/renew-accessor", root, `{"accessor":"nope","increment":"1h"}`), 404, "token not found")
			mustError(t, n.do("POST", "/v1/auth/token/renew-accessor", root, `{}`), 400, "accessor")
		})
	})
}
