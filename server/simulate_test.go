package server_test

import (
	"testing"

	"github.com/secrethub/secrethub/server"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// A simulation reveals only what its caller may see, and asks what a real
// request asks.
func TestSimulateRevealsOnlyWhatTheCallerMayRead(t *testing.T) {
	storagetest.Engines(t, func(t *testing.T, db *storage.DB) {
		n := startNode(t, db, server.Config{})
		_, root := n.initUnseal(1, 1)
		for _, p := range []string{
			`{"name":"simulator","rules":[{"path":"policies/simulate","capabilities":["update"]},{"path":"policies/ops","capabilities":["read"]}]}`,
			`{"name":"ops","rules":[{"path":"sys/seal","capabilities":["sudo"]}]}`,
			`{"name":"secret-policy","rules":[{"path":"vault/*","capabilities":["read"]}]}`,
		} {
			mustStatus(t, n.do("POST", "/v1/policies", root, p), 204)
		}
		sim, _ := n.createToken(root, `{"policies":["simulator"]}`)

		mustError(t, n.do("POST", "/v1/policies/simulate", sim, `{"token":"`+root+`","path":"sys/seal","capability":"update,sudo"}`), 403, "auth/token/lookup")
		mustError(t, n.do("POST", "/v1/policies/simulate", sim, `{"policies":["secret-policy"],"path":"vault/x","capability":"read"}`), 403, `simulating policy "secret-policy" needs read on that policy`)
		mustError(t, n.do("POST", "/v1/policies/simulate", sim, `{"policies":["Not A Name"],"path":"x","capability":"read"}`), 400, "lowercase")

		// sudo alone is granted, but a sudo route asks for update and sudo.
		got := mustStatus(t, n.do("POST", "/v1/policies/simulate", sim, `{"policies":["ops"],"path":"sys/seal","capability":"update,sudo"}`), 200).Data(t)
		if got["allowed"] != false {
			t.Fatalf("update+sudo on sys/seal with a sudo-only policy = %v, want deny", got)
		}
		got = mustStatus(t, n.do("POST", "/v1/policies/simulate", sim, `{"policies":["ops"],"path":"sys/seal","capability":"sudo"}`), 200).Data(t)
		if got["allowed"] != true {
			t.Fatalf("sudo alone = %v", got)
		}
		mustError(t, n.do("POST", "/v1/policies/simulate", sim, `{"policies":["ops"],"path":"/v1/sys/seal","capability":"sudo"}`), 400, "leading")
	})
}
