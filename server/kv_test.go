package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// kvData reads a secret (optionally a version) and returns its data.
func (n *node) kvData(token, path string) map[string]any {
	n.t.Helper()
	return mustStatus(n.t, n.do("GET", "/v1/secrets/static/"+path, token, ""), 200).Data(n.t)["data"].(map[string]any)
}

// kvWrite writes data and returns the new version.
func (n *node) kvWrite(token, path, body string) int {
	n.t.Helper()
	return int(mustStatus(n.t, n.do("POST", "/v1/secrets/static/"+path, token, body), 200).Data(n.t)["version"].(float64))
}

// kvMetadata reads a secret's metadata.
func (n *node) kvMetadata(token, path string) map[string]any {
	n.t.Helper()
	return mustStatus(n.t, n.do("GET", "/v1/secrets/metadata/"+path, token, ""), 200).Data(n.t)
}

// versionMeta is one version's entry in a metadata response.
func versionMeta(t *testing.T, meta map[string]any, v int) map[string]any {
	t.Helper()
	vm, ok := meta["versions"].(map[string]any)[strconv.Itoa(v)].(map[string]any)
	if !ok {
		t.Fatalf("metadata has no version %d: %v", v, meta["versions"])
	}
	return vm
}

// Static secrets behave as Vault's KV v2 through HTTP (SPEC §5).
func TestStaticSecretSemantics(t *testing.T) {
	eachEngine(t, func(t *testing.T, n *node) {
		_, root := n.initUnseal(1, 1)

		t.Run("each write is a new version and old versions stay readable", func(t *testing.T) {
			for i := 1; i <= 3; i++ {
				if v := n.kvWrite(root, "versions/a", fmt.Sprintf(`{"data":{"n":%d}}`, i)); v != i {
					t.Fatalf("write %d got version %d", i, v)
				}
			}
			if got := n.kvData(root, "versions/a")["n"]; got != 3.0 {
				t.Fatalf("latest = %v", got)
			}
			got := mustStatus(t, n.do("GET", "/v1/secrets/static/versions/a?version=2", root, ""), 200).Data(t)
			if got["data"].(map[string]any)["n"] != 2.0 || got["metadata"].(map[string]any)["version"] != 2.0 {
				t.Fatalf("version 2 = %v", got)
			}
			meta := got["metadata"].(map[string]any)
			if meta["created_time"] == "" || meta["deletion_time"] != "" || meta["destroyed"] != false {
				t.Fatalf("version 2 metadata = %v", meta)
			}
		})

		t.Run("cas 0 creates only a new secret and a stale cas is a 409", func(t *testing.T) {
			if v := n.kvWrite(root, "cas/a", `{"data":{"k":1},"options":{"cas":0}}`); v != 1 {
				t.Fatalf("cas 0 on a new secret wrote version %d", v)
			}
			mustError(t, n.do("POST", "/v1/secrets/static/cas/a", root, `{"data":{"k":2},"options":{"cas":0}}`), 409, "check-and-set")
			if v := n.kvWrite(root, "cas/a", `{"data":{"k":2},"options":{"cas":1}}`); v != 2 {
				t.Fatalf("cas 1 wrote version %d", v)
			}
			mustError(t, n.do("POST", "/v1/secrets/static/cas/a", root, `{"data":{"k":3},"options":{"cas":1}}`), 409, "current version is 2")
			if got := n.kvData(root, "cas/a")["k"]; got != 2.0 {
				t.Fatalf("a refused write changed the data: %v", got)
			}
		})

		t.Run("a soft delete hides the version until undeleted", func(t *testing.T) {
			n.kvWrite(root, "del/a", `{"data":{"k":"one"}}`)
			n.kvWrite(root, "del/a", `{"data":{"k":"two"}}`)
			mustStatus(t, n.do("DELETE", "/v1/secrets/static/del/a", root, ""), 204)
			mustError(t, n.do("GET", "/v1/secrets/static/del/a", root, ""), 404, "deleted")
			if got := mustStatus(t, n.do("GET", "/v1/secrets/static/del/a?version=1", root, ""), 200).Data(t)["data"].(map[string]any)["k"]; got != "one" {
				t.Fatalf("version 1 after deleting 2 = %v", got)
			}
			if vm := versionMeta(t, n.kvMetadata(root, "del/a"), 2); vm["deletion_time"] == "" || vm["destroyed"] != false {
				t.Fatalf("deleted version metadata = %v", vm)
			}
			mustStatus(t, n.do("POST", "/v1/secrets/undelete/del/a", root, `{"versions":[2]}`), 204)
			if got := n.kvData(root, "del/a")["k"]; got != "two" {
				t.Fatalf("after undelete = %v", got)
			}
			mustStatus(t, n.do("POST", "/v1/secrets/delete/del/a", root, `{"versions":[1]}`), 204)
			mustError(t, n.do("GET", "/v1/secrets/static/del/a?version=1", root, ""), 404, "deleted")
			mustError(t, n.do("POST", "/v1/secrets/undelete/del/nope", root, `{"versions":[1]}`), 404, "not found")
		})

		t.Run("a destroyed version is gone for good", func(t *testing.T) {
			n.kvWrite(root, "destroy/a", `{"data":{"k":"one"}}`)
			n.kvWrite(root, "destroy/a", `{"data":{"k":"two"}}`)
			mustStatus(t, n.do("POST", "/v1/secrets/destroy/destroy/a", root, `{"versions":[1]}`), 204)
			mustError(t, n.do("GET", "/v1/secrets/static/destroy/a?version=1", root, ""), 404, "destroyed")
			if vm := versionMeta(t, n.kvMetadata(root, "destroy/a"), 1); vm["destroyed"] != true {
				t.Fatalf("destroyed version metadata = %v", vm)
			}
			mustStatus(t, n.do("POST", "/v1/secrets/undelete/destroy/a", root, `{"versions":[1]}`), 204)
			mustError(t, n.do("GET", "/v1/secrets/static/destroy/a?version=1", root, ""), 404, "destroyed")
			mustError(t, n.do("POST", "/v1/secrets/rollback/destroy/a", root, `{"version":1}`), 400, "deleted or destroyed")
			if got := n.kvData(root, "destroy/a")["k"]; got != "two" {
				t.Fatalf("latest after destroying 1 = %v", got)
			}
		})

		t.Run("metadata settings prune versions and enforce cas", func(t *testing.T) {
			for i := 1; i <= 5; i++ {
				n.kvWrite(root, "meta/a", fmt.Sprintf(`{"data":{"n":%d}}`, i))
			}
			mustStatus(t, n.do("POST", "/v1/secrets/metadata/meta/a", root,
				`{"max_versions":2,"cas_required":true,"custom_metadata":{"owner":"core"}}`), 204)
			meta := n.kvMetadata(root, "meta/a")
			if meta["max_versions"] != 2.0 || meta["cas_required"] != true || meta["current_version"] != 5.0 || meta["oldest_version"] != 4.0 {
				t.Fatalf("metadata = %v", meta)
			}
			if len(meta["versions"].(map[string]any)) != 2 || meta["custom_metadata"].(map[string]any)["owner"] != "core" {
				t.Fatalf("metadata versions = %v, custom = %v", meta["versions"], meta["custom_metadata"])
			}
			mustError(t, n.do("GET", "/v1/secrets/static/meta/a?version=3", root, ""), 404, "not found")
			mustError(t, n.do("POST", "/v1/secrets/static/meta/a", root, `{"data":{"n":6}}`), 400, "check-and-set parameter required")
			w := mustStatus(t, n.do("POST", "/v1/secrets/static/meta/a", root, `{"data":{"n":6},"options":{"cas":5}}`), 200).JSON(t)["data"].(map[string]any)
			if w["version"] != 6.0 || w["custom_metadata"].(map[string]any)["owner"] != "core" {
				t.Fatalf("cas write = %v, want version 6 with the secret's custom metadata", w)
			}
			read := mustStatus(t, n.do("GET", "/v1/secrets/static/meta/a", root, ""), 200).JSON(t)["data"].(map[string]any)
			if read["metadata"].(map[string]any)["custom_metadata"].(map[string]any)["owner"] != "core" {
				t.Fatalf("a read does not report the custom metadata: %v", read["metadata"])
			}
			if meta := n.kvMetadata(root, "meta/a"); meta["oldest_version"] != 5.0 {
				t.Fatalf("after a write over the limit, oldest = %v", meta["oldest_version"])
			}
			mustStatus(t, n.do("DELETE", "/v1/secrets/metadata/meta/a", root, ""), 204)
			mustError(t, n.do("GET", "/v1/secrets/metadata/meta/a", root, ""), 404, "not found")
			mustError(t, n.do("GET", "/v1/secrets/static/meta/a?version=6", root, ""), 404, "not found")
			if v := n.kvWrite(root, "meta/a", `{"data":{"n":1}}`); v != 1 {
				t.Fatalf("a write after metadata delete starts over at %d", v)
			}
		})

		t.Run("metadata can be written before any version", func(t *testing.T) {
			mustStatus(t, n.do("POST", "/v1/secrets/metadata/pre/a", root, `{"cas_required":true}`), 204)
			mustError(t, n.do("POST", "/v1/secrets/static/pre/a", root, `{"data":{"k":1}}`), 400, "check-and-set parameter required")
			if v := n.kvWrite(root, "pre/a", `{"data":{"k":1},"options":{"cas":0}}`); v != 1 {
				t.Fatalf("first version = %d", v)
			}
		})

		t.Run("rollback writes the old data as a new version", func(t *testing.T) {
			n.kvWrite(root, "roll/a", `{"data":{"k":"one"}}`)
			n.kvWrite(root, "roll/a", `{"data":{"k":"two"}}`)
			got := mustStatus(t, n.do("POST", "/v1/secrets/rollback/roll/a", root, `{"version":1}`), 200).Data(t)
			if got["version"] != 3.0 {
				t.Fatalf("rollback = %v", got)
			}
			if v := n.kvData(root, "roll/a")["k"]; v != "one" {
				t.Fatalf("after rollback = %v", v)
			}
			if v := mustStatus(t, n.do("GET", "/v1/secrets/static/roll/a?version=2", root, ""), 200).Data(t)["data"].(map[string]any)["k"]; v != "two" {
				t.Fatalf("version 2 after rollback = %v", v)
			}
			mustError(t, n.do("POST", "/v1/secrets/rollback/roll/a", root, `{"version":9}`), 404, "not found")
			mustError(t, n.do("POST", "/v1/secrets/rollback/roll/nope", root, `{"version":1}`), 404, "not found")
		})

		t.Run("LIST shows names and folders one level down", func(t *testing.T) {
			for _, p := range []string{"tree/a", "tree/b/c", "tree/b/d/e", "tree/f", "treehouse/x"} {
				n.kvWrite(root, p, `{"data":{"k":"v"}}`)
			}
			for _, c := range []struct {
				path string
				want []string
			}{
				{"tree", []string{"a", "b/", "f"}},
				{"tree/", []string{"a", "b/", "f"}},
				{"tree/b", []string{"c", "d/"}},
				{"tree/b/d", []string{"e"}},
			} {
				keys := mustStatus(t, n.do("LIST", "/v1/secrets/static/"+c.path, root, ""), 200).Data(t)["keys"].([]any)
				var got []string
				for _, k := range keys {
					got = append(got, k.(string))
				}
				if !slices.Equal(got, c.want) {
					t.Errorf("LIST %s = %v, want %v", c.path, got, c.want)
				}
			}
			top := mustStatus(t, n.do("LIST", "/v1/secrets/static/", root, ""), 200).Data(t)["keys"].([]any)
			if !slices.Contains(top, any("tree/")) || !slices.Contains(top, any("treehouse/")) {
				t.Errorf("LIST of the root = %v", top)
			}
			if meta := mustStatus(t, n.do("LIST", "/v1/secrets/metadata/tree/b", root, ""), 200).Data(t)["keys"].([]any); len(meta) != 2 {
				t.Errorf("LIST on metadata = %v", meta)
			}
			mustError(t, n.do("LIST", "/v1/secrets/static/tree/nothing", root, ""), 404, "not found")
			mustError(t, n.do("LIST", "/v1/secrets/static/tree/a", root, ""), 404, "not found")
		})

		t.Run("numbers read back exactly as written", func(t *testing.T) {
			numbers := []string{"12345678901234567891", "0.10000000000000000555", "1e400", "-0", "3"}
			n.kvWrite(root, "numbers/a", `{"data":{"n":[`+strings.Join(numbers, ",")+`]}}`)
			r := mustStatus(t, n.do("GET", "/v1/secrets/static/numbers/a", root, ""), 200)
			if want := `"n":[` + strings.Join(numbers, ",") + `]`; !strings.Contains(string(r.Body), want) {
				t.Fatalf("read back %s, want it to contain %s", r.Body, want)
			}
			mustStatus(t, n.do("POST", "/v1/secrets/rollback/numbers/a", root, `{"version":1}`), 200)
		})

		t.Run("concurrent writers each get their own version", func(t *testing.T) {
			const writers = 16
			versions := make([]int, writers)
			errs := make([]error, writers)
			var wg sync.WaitGroup
			for i := range writers {
				wg.Go(func() { versions[i], errs[i] = writeVersion(n.URL, root, "busy/a", i) })
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			slices.Sort(versions)
			for i, v := range versions {
				if v != i+1 {
					t.Fatalf("versions = %v, want 1..%d each once", versions, writers)
				}
			}
			if meta := n.kvMetadata(root, "busy/a"); meta["current_version"] != float64(writers) {
				t.Fatalf("current_version = %v", meta["current_version"])
			}
		})
	})
}

// writeVersion writes {"writer": i} to path and returns the new version;
// unlike node.do it is safe to call off the test goroutine.
func writeVersion(baseURL, token, path string, i int) (int, error) {
	req, err := http.NewRequest("POST", baseURL+"/v1/secrets/static/"+path, strings.NewReader(fmt.Sprintf(`{"data":{"writer":%d}}`, i)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Vault-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Version int `json:"version"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		return 0, fmt.Errorf("writer %d: status %d, decode error %v", i, resp.StatusCode, err)
	}
	return out.Data.Version, nil
}
