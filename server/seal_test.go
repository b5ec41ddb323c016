package server_test

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/server"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// initKeys initializes the node and returns the hex keys, base64 keys and
// root token, leaving the node sealed.
func (n *node) initKeys(shares, threshold int) (keys, keysB64 []string, root string) {
	n.t.Helper()
	body, _ := json.Marshal(map[string]int{"secret_shares": shares, "secret_threshold": threshold})
	r := mustStatus(n.t, n.do("POST", "/v1/sys/init", "", string(body)), 200)
	var out struct {
		Keys       []string `json:"keys"`
		KeysBase64 []string `json:"keys_base64"`
		RootToken  string   `json:"root_token"`
	}
	if err := json.Unmarshal(r.Body, &out); err != nil {
		n.t.Fatal(err)
	}
	return out.Keys, out.KeysBase64, out.RootToken
}

// unseal submits one key and returns the seal status it answers with.
func (n *node) unseal(key string) map[string]any {
	n.t.Helper()
	return mustStatus(n.t, n.do("POST", "/v1/sys/unseal", "", `{"key":"`+key+`"}`), 200).JSON(n.t)
}

// progressOf reads the unseal progress from seal-status.
func (n *node) progressOf() float64 {
	n.t.Helper()
	st := mustStatus(n.t, n.do("GET", "/v1/sys/seal-status", "", ""), 200).JSON(n.t)
	return st["progress"].(float64)
}

// After sys/seal every authenticated endpoint answers 503 "SecretHub is
// sealed", whatever the token, while the unauthenticated sys endpoints keep
// answering so operators can unseal.
func TestSealedNodeRefusesAllButSysEndpoints(t *testing.T) {
	eachEngine(t, func(t *testing.T, n *node) {
		keys, root := n.initUnseal(3, 2)
		mustStatus(t, n.do("POST", "/v1/secrets/static/app/db", root, `{"data":{"k":"v"}}`), 200)
		mustStatus(t, n.do("POST", "/v1/sys/seal", root, ""), 204)

		sealedCases := []struct{ method, path, token, body string }{
			{"GET", "/v1/secrets/static/app/db", root, ""},
			{"POST", "/v1/secrets/static/app/db", root, `{"data":{"k":"w"}}`},
			{"DELETE", "/v1/secrets/static/app/db", root, ""},
			{"LIST", "/v1/secrets/static/app", root, ""},
			{"GET", "/v1/secrets/static/app?list=true", root, ""},
			{"GET", "/v1/secrets/metadata/app/db", root, ""},
			{"POST", "/v1/secrets/rollback/app/db", root, `{"version":1}`},
			{"GET", "/v1/auth/token/lookup-self", root, ""},
			{"POST", "/v1/auth/token/create", root, `{}`},
			{"POST", "/v1/auth/token/revoke-self", root, ""},
			{"GET", "/v1/auth/token/lookup-self", "", ""},
			{"GET", "/v1/auth/token/lookup-self", "s.not-a-real-token", ""},
			{"POST", "/v1/sys/seal", root, ""},
			{"POST", "/v1/sys/rotate", root, ""},
			{"GET", "/v1/sys/key-status", root, ""},
		}
		for _, c := range sealedCases {
			t.Run(c.method+" "+c.path+" is refused as sealed", func(t *testing.T) {
				r := mustStatus(t, n.do(c.method, c.path, c.token, c.body), 503)
				if errs := r.Errors(t); len(errs) != 1 || errs[0] != "SecretHub is sealed" {
					t.Fatalf("errors = %q", errs)
				}
			})
		}

		t.Run("the unauthenticated sys endpoints still answer", func(t *testing.T) {
			h := mustStatus(t, n.do("GET", "/v1/sys/health", "", ""), 503).JSON(t)
			if h["sealed"] != true || h["initialized"] != true {
				t.Fatalf("health = %v", h)
			}
			st := mustStatus(t, n.do("GET", "/v1/sys/seal-status", "", ""), 200).JSON(t)
			if st["sealed"] != true || st["progress"] != 0.0 || st["t"] != 2.0 {
				t.Fatalf("seal-status = %v", st)
			}
			if init := mustStatus(t, n.do("GET", "/v1/sys/init", "", ""), 200).JSON(t); init["initialized"] != true {
				t.Fatalf("init status = %v", init)
			}
			if st := n.unseal(keys[0]); st["sealed"] != true || st["progress"] != 1.0 {
				t.Fatalf("first key after seal = %v", st)
			}
			if st := n.unseal(keys[1]); st["sealed"] != false {
				t.Fatalf("second key after seal = %v", st)
			}
			got := mustStatus(t, n.do("GET", "/v1/secrets/static/app/db", root, ""), 200).Data(t)
			if got["data"].(map[string]any)["k"] != "v" {
				t.Fatalf("secret after unseal = %v", got)
			}
		})
	})
}

// A restarted node (a new server over the same database, reopened) comes
// up initialized and sealed, and the same keys bring the data back.
func TestRestartedNodeIsSealedAndUnsealsToTheSameData(t *testing.T) {
	eachStorage(t, func(t *testing.T, _ storage.Config, open func() *storage.DB) {
		first := open()
		n := startNode(t, first, server.Config{})
		keys, root := n.initUnseal(5, 3)
		mustStatus(t, n.do("POST", "/v1/secrets/static/app/db", root, `{"data":{"password":"before restart"}}`), 200)
		n.http.Close()

		for _, restart := range []struct {
			name string
			db   func() *storage.DB
		}{
			{"a new server over the same open database", func() *storage.DB { return first }},
			{"a new server over the reopened database", func() *storage.DB { first.Close(); return open() }},
		} {
			t.Run(restart.name+" is sealed until unsealed, then serves the data", func(t *testing.T) {
				n := startNode(t, restart.db(), server.Config{})
				st := mustStatus(t, n.do("GET", "/v1/sys/seal-status", "", ""), 200).JSON(t)
				if st["initialized"] != true || st["sealed"] != true || st["t"] != 3.0 || st["n"] != 5.0 {
					t.Fatalf("seal-status after restart = %v", st)
				}
				mustError(t, n.do("GET", "/v1/secrets/static/app/db", root, ""), 503, "sealed")
				mustError(t, n.do("POST", "/v1/sys/init", "", `{"secret_shares":1,"secret_threshold":1}`), 400, "already initialized")
				for _, k := range keys[2:] {
					n.unseal(k)
				}
				got := mustStatus(t, n.do("GET", "/v1/secrets/static/app/db", root, ""), 200).Data(t)
				if got["data"].(map[string]any)["password"] != "before restart" {
					t.Fatalf("secret after restart = %v", got)
				}
			})
		}
	})
}

// Unsealing checks its input: shares from another cluster fail and reset
// the progress, reset:true discards progress, hex and base64 both work, the
// same share twice counts once, and malformed keys are a 400.
func TestUnsealValidatesKeyShares(t *testing.T) {
	otherKeys, otherB64, _ := startNode(t, storagetest.SQLite(t), server.Config{}).initKeys(5, 3)
	eachEngine(t, func(t *testing.T, n *node) {
		mustError(t, n.do("POST", "/v1/sys/unseal", "", `{"key":"`+otherKeys[0]+`"}`), 400, "not initialized")
		keys, keysB64, root := n.initKeys(5, 3)

		t.Run("shares of another cluster fail with 400 and reset progress", func(t *testing.T) {
			n.unseal(otherKeys[0])
			n.unseal(otherKeys[1])
			mustError(t, n.do("POST", "/v1/sys/unseal", "", `{"key":"`+otherKeys[2]+`"}`), 400, "unseal failed")
			if p := n.progressOf(); p != 0 {
				t.Fatalf("progress after failed unseal = %v", p)
			}
		})
		t.Run("a mix of our shares and a foreign one fails with 400", func(t *testing.T) {
			n.unseal(keys[0])
			n.unseal(keys[1])
			mustError(t, n.do("POST", "/v1/sys/unseal", "", `{"key":"`+otherB64[3]+`"}`), 400, "unseal failed")
			if p := n.progressOf(); p != 0 {
				t.Fatalf("progress after failed unseal = %v", p)
			}
		})
		t.Run("reset discards the progress", func(t *testing.T) {
			if st := n.unseal(keys[0]); st["progress"] != 1.0 || st["nonce"] == "" {
				t.Fatalf("after one key: %v", st)
			}
			st := mustStatus(t, n.do("POST", "/v1/sys/unseal", "", `{"reset":true}`), 200).JSON(t)
			if st["progress"] != 0.0 || st["sealed"] != true {
				t.Fatalf("after reset: %v", st)
			}
		})
		t.Run("the same share twice does not advance the progress", func(t *testing.T) {
			n.unseal(keys[0])
			if st := n.unseal(keys[0]); st["progress"] != 1.0 {
				t.Fatalf("after a duplicate: %v", st)
			}
			if st := n.unseal(keysB64[0]); st["progress"] != 1.0 {
				t.Fatalf("after the duplicate in base64: %v", st)
			}
			mustStatus(t, n.do("POST", "/v1/sys/unseal", "", `{"reset":true}`), 200)
		})
		for _, c := range []struct{ name, body, want string }{
			{"an empty key", `{"key":""}`, "missing unseal key"},
			{"a key that is neither hex nor base64", `{"key":"not a key!"}`, "neither hex nor base64"},
			{"a hex key of the wrong length", `{"key":"` + keys[0][:20] + `"}`, "must decode to 33 bytes"},
			{"a base64 key of the wrong length", `{"key":"` + base64.StdEncoding.EncodeToString([]byte("short")) + `"}`, "must decode to 33 bytes"},
			{"a number instead of a key", `{"key":33}`, `"key" must be a string`},
			{"seal migration", `{"migrate":true}`, "not supported"},
		} {
			t.Run(c.name+" is a 400 that keeps progress", func(t *testing.T) {
				n.unseal(keys[0])
				mustError(t, n.do("POST", "/v1/sys/unseal", "", c.body), 400, c.want)
				if p := n.progressOf(); p != 1 {
					t.Fatalf("progress = %v, want 1", p)
				}
				mustStatus(t, n.do("POST", "/v1/sys/unseal", "", `{"reset":true}`), 200)
			})
		}
		t.Run("hex and base64 shares combine into an unseal", func(t *testing.T) {
			n.unseal(keys[2])
			n.unseal(keysB64[3])
			raw, _ := hex.DecodeString(keys[4])
			if st := n.unseal(base64.RawURLEncoding.EncodeToString(raw)); st["sealed"] != false {
				t.Fatalf("after three keys: %v", st)
			}
			mustStatus(t, n.do("GET", "/v1/auth/token/lookup-self", root, ""), 200)
			if st := n.unseal(strings.ToUpper(keys[0])); st["sealed"] != false {
				t.Fatalf("a key for an unsealed node: %v", st)
			}
		})
	})
}
