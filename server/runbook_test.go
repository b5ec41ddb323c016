package server_test

import (
	"encoding/json"
	"testing"
)

// The runbook's Phase 4 (initialize 5/3, unseal with three keys sent as
// plain curl -d bodies, check seal-status) and Phase 8.4 (create, read and
// delete test/hello), verbatim, on both engines.
func TestRunbookPhase4AndPhase8_4(t *testing.T) {
	eachEngine(t, func(t *testing.T, n *node) {
		health := mustStatus(t, n.do("GET", "/v1/sys/health", "", ""), 501).JSON(t)
		if health["initialized"] != false || health["sealed"] != true || health["standby"] != false {
			t.Fatalf("health before init = %v", health)
		}

		// 4.1 Initialize. The runbook sends Content-Type: application/json
		// here; n.do sends none, as bodies are parsed whatever the type.
		r := mustStatus(t, n.do("POST", "/v1/sys/init", "", `{
    "secret_shares": 5,
    "secret_threshold": 3
  }`), 200)
		var init struct {
			Keys       []string `json:"keys"`
			KeysBase64 []string `json:"keys_base64"`
			RootToken  string   `json:"root_token"`
		}
		if err := json.Unmarshal(r.Body, &init); err != nil {
			t.Fatal(err)
		}
		if len(init.Keys) != 5 || len(init.KeysBase64) != 5 || len(init.RootToken) < 26 || init.RootToken[:2] != "s." {
			t.Fatalf("init response = %s", r.Body)
		}

		// 4.2 Unseal with three keys; progress counts up, then unsealed.
		for i, k := range init.Keys[:3] {
			st := mustStatus(t, n.do("POST", "/v1/sys/unseal", "", `{"key": "`+k+`"}`), 200).JSON(t)
			wantSealed := i < 2
			if st["sealed"] != wantSealed {
				t.Fatalf("after key %d: %v", i+1, st)
			}
		}
		st := mustStatus(t, n.do("GET", "/v1/sys/seal-status", "", ""), 200).JSON(t)
		for k, want := range map[string]any{"sealed": false, "t": 3.0, "n": 5.0, "progress": 0.0} {
			if st[k] != want {
				t.Fatalf("seal-status %s = %v, want %v (%v)", k, st[k], want, st)
			}
		}
		mustStatus(t, n.do("GET", "/v1/sys/health", "", ""), 200)

		// 8.4 Create, read, delete.
		root := init.RootToken
		w := mustStatus(t, n.do("POST", "/v1/secrets/static/test/hello", root, `{"data": {"message": "Hello Production!"}}`), 200).JSON(t)
		if w["data"].(map[string]any)["version"] != 1.0 {
			t.Fatalf("write = %v", w)
		}
		got := mustStatus(t, n.do("GET", "/v1/secrets/static/test/hello", root, ""), 200).JSON(t)
		data := got["data"].(map[string]any)
		if data["data"].(map[string]any)["message"] != "Hello Production!" {
			t.Fatalf("read = %v", got)
		}
		if data["metadata"].(map[string]any)["version"] != 1.0 {
			t.Fatalf("metadata = %v", data["metadata"])
		}
		mustStatus(t, n.do("DELETE", "/v1/secrets/static/test/hello", root, ""), 204)
		mustStatus(t, n.do("GET", "/v1/secrets/static/test/hello", root, ""), 404).Errors(t)
	})
}
