package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/secrethub/secrethub/storage/storagetest"
)

// TestAKilledServerKeepsTheEventOfEveryRequestItServed pulls the plug the
// way a process can: SIGKILL in the middle of a load of writes and reads.
// After a restart on the same storage, the log verifies (the events the
// killed run left after its last checkpoint are adopted, and shown as
// such), every request that was answered 2xx has its event, allowed, and
// every acknowledged write is there to read. That an answer never leaves
// before its event is stored is proven where the store can be made to
// refuse (server.TestAuditFailureRefusesRequestsAndRecovers): a kill lands
// in that window too rarely to show it here.
func TestAKilledServerKeepsTheEventOfEveryRequestItServed(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			env := []string{"SECRETHUB_DATA_DIR=" + t.TempDir(), "SECRETHUB_NODE_NAME=core-1"}
			if engine == "postgres" {
				env = []string{"DATABASE_URL=" + storagetest.PostgresURL(t), "DB_POOL_SIZE=5", "SECRETHUB_NODE_NAME=core-1"}
			}
			p := startServer(t, env...)
			init := decode(t, curl(t, "-X", "POST", p.addr+"/v1/sys/init", "-d", `{"secret_shares":1,"secret_threshold":1}`))
			key, root := init["keys"].([]any)[0].(string), init["root_token"].(string)
			curl(t, "-X", "POST", p.addr+"/v1/sys/unseal", "-d", `{"key":"`+key+`"}`)

			served, written, pending := loadUntilKilled(t, p, root)
			if len(served) < 20 {
				t.Fatalf("only %d requests were served before the kill", len(served))
			}

			p = startServer(t, env...)
			curl(t, "-X", "POST", p.addr+"/v1/sys/unseal", "-d", `{"key":"`+key+`"}`)
			out, errOut, code := p.cli(t, "", root, "audit", "verify", "-format=json")
			var rep struct {
				OK    bool `json:"ok"`
				Nodes []struct {
					Node          string `json:"node"`
					Adoptions     int64  `json:"adoptions"`
					AdoptedEvents int64  `json:"adopted_events"`
				} `json:"nodes"`
			}
			if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || !rep.OK || len(rep.Nodes) != 1 {
				t.Fatalf("audit verify after the kill: exit %d, %v: %s %s", code, err, out, errOut)
			}
			if n := rep.Nodes[0]; n.Adoptions > 1 {
				t.Errorf("one kill, %d adoptions: %+v", n.Adoptions, n)
			}
			t.Logf("%d requests served before the kill; after it: %+v", len(served), rep.Nodes[0])

			out, errOut, code = p.cli(t, "", root, "audit", "export", "--format", "jsonl")
			if code != 0 {
				t.Fatalf("audit export: exit %d: %s", code, errOut)
			}
			logged := map[string]string{} // request id → decision
			for line := range strings.Lines(out) {
				var e struct {
					RequestID string `json:"request_id"`
					Decision  string `json:"decision"`
				}
				if err := json.Unmarshal([]byte(line), &e); err != nil {
					t.Fatalf("export line %q: %v", line, err)
				}
				logged[e.RequestID] = e.Decision
			}
			for id, what := range served {
				if d, ok := logged[id]; !ok || d != "allow" {
					t.Errorf("%s (request %s) was served, but its event is %q (found: %v)", what, id, d, ok)
				}
			}
			for path, value := range written {
				got := decode(t, curl(t, "-H", "X-Vault-Token: "+root, p.addr+"/v1/secrets/static/"+path))
				data, _ := got["data"].(map[string]any)
				inner, _ := data["data"].(map[string]any)
				// The write in flight at the kill may have committed unanswered.
				if inner["n"] != value && inner["n"] != pending[path] {
					t.Errorf("%s: read %v after the restart; the last acknowledged write was %q, the one in flight %q", path, got, value, pending[path])
				}
			}
			p.stop()
		})
	}
}

// loadUntilKilled runs writers and readers against p until it has served
// some hundreds of requests, kills the server with SIGKILL while they are
// still sending, and returns the request id of every 2xx answer (with what
// the request was), the last value each acknowledged write stored, and the
// value of each key's last write sent.
func loadUntilKilled(t *testing.T, p *process, token string) (served, written, pending map[string]string) {
	t.Helper()
	served, written, pending = map[string]string{}, map[string]string{}, map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	stop := make(chan struct{})
	hc := &http.Client{Timeout: 10 * time.Second}
	for w := range 8 {
		wg.Go(func() {
			path := fmt.Sprintf("crash/key-%d", w%4)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var req *http.Request
				value := fmt.Sprintf("%d-%d", w, i)
				if w < 4 {
					mu.Lock()
					pending[path] = value
					mu.Unlock()
					req, _ = http.NewRequest("POST", p.addr+"/v1/secrets/static/"+path, strings.NewReader(`{"data":{"n":"`+value+`"}}`))
				} else {
					req, _ = http.NewRequest("GET", p.addr+"/v1/secrets/static/"+path, nil)
				}
				req.Header.Set("X-Vault-Token", token)
				resp, err := hc.Do(req)
				if err != nil {
					return // the server is gone: this was the request in flight
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					continue
				}
				mu.Lock()
				served[resp.Header.Get("X-Request-Id")] = req.Method + " " + path
				if req.Method == "POST" {
					written[path] = value
				}
				mu.Unlock()
			}
		})
	}
	// Until a few hundred requests were served, then kill mid-stream.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(served)
		mu.Unlock()
		if n >= 300 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	p.done <- nil
	close(stop)
	wg.Wait()
	return served, written, pending
}
