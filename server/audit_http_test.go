package server_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrethub/secrethub/server"
	"github.com/secrethub/secrethub/server/audit"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// auditedEvents closes the node's audit log (flushing outcomes) and
// returns every stored event, keyed by request id.
func auditedEvents(t *testing.T, n *node) map[string]audit.Event {
	t.Helper()
	if err := n.srv.Close(context.Background()); err != nil {
		t.Fatalf("closing the audit log: %v", err)
	}
	out := map[string]audit.Event{}
	var after audit.Cursor
	for {
		page, next, err := audit.List(context.Background(), n.db, audit.Filter{After: after, Limit: audit.MaxListLimit})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			if _, dup := out[e.RequestID]; dup {
				t.Fatalf("request %s has two events", e.RequestID)
			}
			out[e.RequestID] = e
		}
		if next == "" {
			return out
		}
		after = next
	}
}

// Every request to /v1, of every kind, produces exactly one event whose
// outcome is what the client saw.
func TestEveryRequestProducesOneEvent(t *testing.T) {
	eachEngine(t, func(t *testing.T, n *node) {
		type sent struct {
			r        response
			decision string
		}
		var log []sent
		do := func(method, path, token, body, decision string) response {
			r := n.do(method, path, token, body)
			log = append(log, sent{r, decision})
			return r
		}
		do("GET", "/v1/sys/health", "", "", "none")
		do("GET", "/v1/secrets/static/app/db", "s.whatever", "", "none") // sealed, before init
		init := do("POST", "/v1/sys/init", "", `{"secret_shares":1,"secret_threshold":1}`, "none").JSON(t)
		root := init["root_token"].(string)
		do("POST", "/v1/sys/unseal", "", `{"key":"`+init["keys"].([]any)[0].(string)+`"}`, "none")
		do("POST", "/v1/secrets/static/app/db", root, `{"data":{"password":"pg-secret"}}`, "allow")
		do("GET", "/v1/secrets/static/app/db", root, "", "allow")
		do("LIST", "/v1/secrets/static/app", root, "", "allow")
		missing := do("GET", "/v1/secrets/static/app/missing", root, "", "allow") // a read whose handler fails
		child := do("POST", "/v1/auth/token/create", root, `{"policies":["default"]}`, "allow").Auth(t)["client_token"].(string)
		do("GET", "/v1/secrets/static/app/db", child, "", "deny")
		do("GET", "/v1/secrets/static/app/db", "s.not-a-real-token", "", "deny")
		do("GET", "/v1/secrets/static/app/db", "", "", "deny")
		do("POST", "/v1/secrets/static/app/db", root, `{"data":`, "allow")
		do("GET", "/v1/secrets/static/a/../b", root, "", "none")
		do("GET", "/v1/no/such/route", root, "", "none")
		do("DELETE", "/v1/sys/seal-status", root, "", "none")
		do("POST", "/v1/secrets/static/big", root, `{"data":{"x":"`+strings.Repeat("a", 2<<20)+`"}}`, "none")
		do("DELETE", "/v1/secrets/static/app/db", root, "", "allow")
		do("POST", "/v1/sys/seal", root, "", "allow")
		do("GET", "/v1/secrets/static/app/db", root, "", "none") // sealed again

		events := auditedEvents(t, n)
		if len(events) != len(log) {
			t.Fatalf("%d requests, %d events", len(log), len(events))
		}
		for _, s := range log {
			id := s.r.Header.Get("X-Request-Id")
			e, ok := events[id]
			switch {
			case !ok:
				t.Fatalf("no event for request %s (status %d)", id, s.r.Status)
			case e.Outcome == nil || e.Outcome.Status != s.r.Status:
				t.Errorf("request %s answered %d, its event says %+v", id, s.r.Status, e.Outcome)
			case e.Decision != s.decision:
				t.Errorf("request %s (%s %s, %d): decision %q, want %q", id, e.Operation, e.Path, s.r.Status, e.Decision, s.decision)
			}
		}
		if e := events[missing.Header.Get("X-Request-Id")]; missing.Status != 404 || e.Outcome == nil || e.Outcome.Error == "" || e.Outcome.Latency <= 0 {
			t.Errorf("a read answered %d: its outcome %+v should say why, and how long it took", missing.Status, e.Outcome)
		}
		read := events[log[5].r.Header.Get("X-Request-Id")]
		if read.Resource != "app/db" || read.Capability != "read" || read.Operation != "GET" || read.Path != "/v1/secrets/static/app/db" ||
			read.TokenAccessor == "" || !slices.Equal(read.Policies, []string{"root"}) || read.AuthMethod != "token" || read.ClientIP != "127.0.0.1" {
			t.Errorf("a KV read's event = %+v", read)
		}
	})
}

// The audit tables and the file sink hold no plaintext secret: values,
// tokens, secret IDs, passwords and unseal keys appear only as HMACs, which
// sys/audit-hash reproduces for searching.
func TestAuditHoldsNoPlaintext(t *testing.T) {
	storagetest.Engines(t, func(t *testing.T, db *storage.DB) {
		var sink syncBuffer
		n := startNode(t, db, server.Config{AuditSink: &sink, AdminUsername: testAdminUser, AdminPasswordHash: testAdminHash})
		keys, root := n.initUnseal(1, 1)
		secretValue := "Audit-Canary-Value-9f2e"
		mustStatus(t, n.do("POST", "/v1/secrets/static/app/db", root, `{"data":{"password":"`+secretValue+`"}}`), 200)
		const secretNumber = "7391046285" // a secret can be a number (a PIN)
		mustStatus(t, n.do("POST", "/v1/secrets/static/app/pin", root, `{"data":{"pin":`+secretNumber+`}}`), 200)
		mustStatus(t, n.do("POST", "/v1/auth/approle/role/web", root, `{"policies":["default"]}`), 204)
		roleID := mustStatus(t, n.do("GET", "/v1/auth/approle/role/web/role-id", root, ""), 200).Data(t)["role_id"].(string)
		secretID := mustStatus(t, n.do("POST", "/v1/auth/approle/role/web/secret-id", root, ""), 200).Data(t)["secret_id"].(string)
		login := mustStatus(t, n.do("POST", "/v1/auth/approle/login", "", `{"role_id":"`+roleID+`","secret_id":"`+secretID+`"}`), 200).Auth(t)
		appToken := login["client_token"].(string)
		mustStatus(t, n.do("POST", "/v1/auth/admin/login", "", `{"username":"admin","password":"`+testAdminPassword+`"}`), 200)
		const badToken = "s.Not-A-Token-But-Secret-Anyway"
		mustError(t, n.do("GET", "/v1/secrets/static/app/db", badToken, ""), 403, "")

		// Secrets typed where they do not belong: the error tells the
		// caller what they sent, the audit log keeps only its HMAC. (Body
		// keys, like Vault's, are recorded as they are: values are HMAC'd.)
		const misplaced = "Misplaced-Canary-7c1d"
		// Numbers quoted by their refusals, long enough not to turn up by chance
		// in a hash or a time.
		const misplacedBits, misplacedShares = "409911735261", "306921774183"
		for _, c := range []struct{ method, path, body string }{
			{"POST", "/v1/auth/token/create", `{"ttl":"` + misplaced + `"}`},
			{"GET", "/v1/sys/audit/events?since=" + misplaced, ""},
			{"PUT", "/v1/policies/p", `{"rules":[{"path":"app/*","capabilities":["` + misplaced + `"]}]}`},
		} {
			mustError(t, n.do(c.method, c.path, root, c.body), 400, misplaced)
		}
		// Refusals that name what was asked for: a policy the caller may
		// not hand out, a format, a number.
		mustStatus(t, n.do("PUT", "/v1/policies/limited", root, `{"rules":[
			{"path":"auth/token/create","capabilities":["update"]},
			{"path":"policies/simulate","capabilities":["update"]},
			{"path":"auth/approle/role/*","capabilities":["create","update"]}]}`), 204)
		limited := mustStatus(t, n.do("POST", "/v1/auth/token/create", root, `{"policies":["limited"]}`), 200).Auth(t)["client_token"].(string)
		const misplacedName = "misplaced-canary-name-4b8e" // a policy name: lower case only
		for _, c := range []struct {
			path, body, token string
			status            int
			quoted            string
		}{
			{"/v1/auth/token/create", `{"policies":["` + misplaced + `"]}`, limited, 403, misplaced},
			{"/v1/auth/approle/role/x1", `{"policies":["` + misplacedName + `"]}`, limited, 403, misplacedName},
			{"/v1/policies/simulate", `{"policies":["` + misplacedName + `"],"path":"x","capability":"read"}`, limited, 403, misplacedName},
			{"/v1/pki/roles/r2", `{"allowed_domains":["example.com"],"key_type":"rsa","key_bits":` + misplacedBits + `}`, root, 400, misplacedBits},
			{"/v1/sys/init", `{"secret_shares":` + misplacedShares + `,"secret_threshold":1}`, "", 400, misplacedShares},
		} {
			mustError(t, n.do("POST", c.path, c.token, c.body), c.status, c.quoted)
		}
		// A syntax error quotes the character it stopped at: the first of
		// a secret typed without its quotes.
		mustError(t, n.do("POST", "/v1/auth/token/create", root, `{"ttl": Zq9-secret}`), 400, "invalid character 'Z'")
		const misplacedNumber = "5820417396.5" // quoted by the error that refuses it
		mustError(t, n.do("POST", "/v1/auth/token/create", root, `{"num_uses":`+misplacedNumber+`}`), 400, misplacedNumber)
		numberHash := mustStatus(t, n.do("POST", "/v1/sys/audit-hash", root, `{"input":"`+secretNumber+`"}`), 200).Data(t)["hash"].(string)
		misplacedHash := mustStatus(t, n.do("POST", "/v1/sys/audit-hash", root, `{"input":"`+misplaced+`"}`), 200).Data(t)["hash"].(string)
		hash := mustStatus(t, n.do("POST", "/v1/sys/audit-hash", root, `{"input":"`+badToken+`"}`), 200).Data(t)["hash"].(string)
		valueHash := mustStatus(t, n.do("POST", "/v1/sys/audit-hash", root, `{"input":"`+secretValue+`"}`), 200).Data(t)["hash"].(string)
		events := auditedEvents(t, n)

		var foundToken, foundValue, foundNumber bool
		for _, e := range events {
			foundToken = foundToken || e.TokenHMAC == hash
			foundValue = foundValue || bytes.Contains(e.RequestData, []byte(valueHash))
			foundNumber = foundNumber || bytes.Contains(e.RequestData, []byte(numberHash))
		}
		if !foundToken || !foundValue || !foundNumber {
			t.Fatalf("sys/audit-hash does not find the logged HMACs (token %v, value %v, number %v)", foundToken, foundValue, foundNumber)
		}

		raw := rawAuditRows(t, n.db)
		if !strings.Contains(raw, "/v1/secrets/static/app/db") {
			t.Fatal("the raw rows miss the events: the scan proves nothing")
		}
		dump := auditTablesText(t, n.db) + raw
		if got := strings.Count(dump, misplacedHash); got < 3 {
			t.Errorf("the misplaced value's HMAC is in %d places of the audit tables, want its 3 error messages at least", got)
		}
		for _, secret := range []string{secretValue, secretID, appToken, root, testAdminPassword, badToken, keys[0], misplaced, secretNumber, misplacedNumber, "character 'Z'",
			misplacedName, misplacedBits, misplacedShares} {
			if strings.Contains(dump, secret) {
				t.Errorf("the audit tables hold %q in the clear", secret)
			}
			if strings.Contains(sink.String(), secret) {
				t.Errorf("the audit sink carries %q in the clear", secret)
			}
		}
		if !strings.Contains(sink.String(), "/v1/secrets/static/app/db") || !strings.Contains(dump, "/v1/secrets/static/app/db") {
			t.Fatal("the sink or the dump misses the events: the scan proves nothing")
		}
	})
}

// auditTablesText renders every row of the audit tables as text.
func auditTablesText(t *testing.T, db *storage.DB) string {
	t.Helper()
	var out strings.Builder
	var after audit.Cursor
	for {
		page, next, err := audit.List(context.Background(), db, audit.Filter{After: after, Limit: audit.MaxListLimit})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			b, _ := json.Marshal(e)
			out.Write(b)
			out.WriteByte('\n')
		}
		if next == "" {
			break
		}
		after = next
	}
	return out.String()
}

// Fail-closed on real PostgreSQL: when audit inserts fail, a write is
// refused with 503 and does not happen; when they work again, so does the
// service, without a restart.
func TestAuditFailureRefusesRequestsAndRecovers(t *testing.T) {
	url := storagetest.PostgresURL(t)
	n := startNode(t, storagetest.Open(t, storage.Config{DatabaseURL: url}), server.Config{})
	_, root := n.initUnseal(1, 1)
	mustStatus(t, n.do("POST", "/v1/secrets/static/app/db", root, `{"data":{"v":"before"}}`), 200)
	limited, _ := n.createToken(root, `{"policies":["default"],"num_uses":2}`)

	admin, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	exec := func(q string) {
		t.Helper()
		if _, err := admin.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	exec(`CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'audit store refuses writes'; END $$ LANGUAGE plpgsql`)
	exec(`CREATE TRIGGER refuse_audit BEFORE INSERT ON audit.events FOR EACH ROW EXECUTE FUNCTION refuse_audit()`)

	mustError(t, n.do("POST", "/v1/secrets/static/app/db", root, `{"data":{"v":"during"}}`), 503, "audit")
	// The operator's log says why: the store's own error.
	if !regexp.MustCompile(`msg="audit log refused an event; request not served".* cause=".*audit store refuses writes`).MatchString(n.logs.String()) {
		t.Fatalf("the refusal's log line does not give the store's error:\n%s", n.logs)
	}
	mustError(t, n.do("POST", "/v1/secrets/static/app/new", root, `{"data":{"v":"during"}}`), 503, "audit")
	mustError(t, n.do("GET", "/v1/secrets/static/app/db", "", ""), 503, "audit")
	// Reads run while their event commits, but their answer is held: a
	// refused event means nothing of it is sent.
	for _, path := range []string{"/v1/secrets/static/app/db", "/v1/secrets/metadata/app/db", "/v1/secrets/static/app?list=true", "/v1/auth/token/lookup-self"} {
		r := n.do("GET", path, root, "")
		mustError(t, r, 503, "audit")
		if body := string(r.Body); strings.Contains(body, "before") || strings.Contains(body, "current_version") || strings.Contains(body, `"db"`) {
			t.Fatalf("GET %s refused for the audit log still answered with what it read: %s", path, body)
		}
	}
	// Seven refusals, at most a second apart in all: one error line a
	// second stands for them, not one each.
	if lines := strings.Count(n.logs.String(), `msg="audit log refused an event; request not served"`); lines < 1 || lines > 2 {
		t.Fatalf("%d refusal lines for seven refused requests, want one a second:\n%s", lines, n.logs)
	}

	var version int
	if err := admin.QueryRow(`SELECT current_version FROM secrets WHERE path = 'app/db'`).Scan(&version); err != nil || version != 1 {
		t.Fatalf("a refused write changed the secret: version %d, %v", version, err)
	}
	var exists bool
	if err := admin.QueryRow(`SELECT EXISTS (SELECT 1 FROM secrets WHERE path = 'app/new')`).Scan(&exists); err != nil || exists {
		t.Fatalf("a refused write created a secret: %v, %v", exists, err)
	}

	// Refused requests take none of a limited token's uses.
	for range 3 {
		mustError(t, n.do("GET", "/v1/auth/token/lookup-self", limited, ""), 503, "audit")
	}

	exec(`DROP TRIGGER refuse_audit ON audit.events`)
	if d := mustStatus(t, n.do("GET", "/v1/auth/token/lookup-self", limited, ""), 200).Data(t); d["num_uses"] != 1.0 {
		t.Fatalf("after the outage and one served request, num_uses = %v, want 1 of 2", d["num_uses"])
	}
	mustStatus(t, n.do("POST", "/v1/secrets/static/app/db", root, `{"data":{"v":"after"}}`), 200)
	got := mustStatus(t, n.do("GET", "/v1/secrets/static/app/db", root, ""), 200).Data(t)
	if got["data"].(map[string]any)["v"] != "after" {
		t.Fatalf("after recovery: %v", got)
	}
	report := mustStatus(t, n.do("GET", "/v1/sys/audit/verify", root, ""), 200).Data(t)
	if report["ok"] != true {
		t.Fatalf("the chain does not verify after the outage: %v", report)
	}
}

// The verify endpoint passes an untampered log and names a modified event.
func TestAuditVerifyThroughTheAPI(t *testing.T) {
	eachEngine(t, func(t *testing.T, n *node) {
		_, root := n.initUnseal(1, 1)
		for i := range 20 {
			mustStatus(t, n.do("POST", fmt.Sprintf("/v1/secrets/static/app/s%d", i), root, `{"data":{"k":"v"}}`), 200)
		}
		report := mustStatus(t, n.do("GET", "/v1/sys/audit/verify", root, ""), 200).Data(t)
		if report["ok"] != true || report["events"].(float64) < 22 {
			t.Fatalf("an untampered log: %v", report)
		}
		// Someone with database access rewrites where an event went.
		table := "audit.events"
		if n.db.Engine() == storage.SQLite {
			table = "audit_events"
		}
		rawExec(t, n.db, `UPDATE `+table+` SET path = '/v1/elsewhere' WHERE seq = 10`)
		report = mustStatus(t, n.do("GET", "/v1/sys/audit/verify", root, ""), 200).Data(t)
		problem, _ := report["problem"].(map[string]any)
		if report["ok"] != false || problem["kind"] != "modified" || problem["seq"] != 10.0 {
			t.Fatalf("a modified event: %v", report)
		}
		mustError(t, n.do("POST", "/v1/sys/audit/prune", root, `{"before":"never"}`), 400, "before")
	})
}

// The event list filters by token accessor under either name (accessor,
// or actor as SPEC §7 calls it), and refuses a parameter it does not know
// rather than ignore it and answer with every event.
func TestAuditEventsFilterByActor(t *testing.T) {
	eachEngine(t, func(t *testing.T, n *node) {
		_, root := n.initUnseal(1, 1)
		child, accessor := n.createToken(root, `{"policies":["default"]}`)
		mustStatus(t, n.do("GET", "/v1/auth/token/lookup-self", child, ""), 200)
		mustError(t, n.do("GET", "/v1/secrets/static/app/db", child, ""), 403, "")
		for _, query := range []string{"actor=" + accessor, "accessor=" + accessor, "actor=" + accessor + "&accessor=" + accessor} {
			events := mustStatus(t, n.do("GET", "/v1/sys/audit/events?"+query, root, ""), 200).Data(t)["events"].([]any)
			var paths []string
			for _, e := range events {
				e := e.(map[string]any)
				if e["token_accessor"] != accessor {
					t.Fatalf("?%s: an event of accessor %v: %v", query, e["token_accessor"], e)
				}
				paths = append(paths, e["path"].(string))
			}
			if want := []string{"/v1/auth/token/lookup-self", "/v1/secrets/static/app/db"}; !slices.Equal(paths, want) {
				t.Fatalf("?%s: paths %v, want %v", query, paths, want)
			}
		}
		for query, want := range map[string]string{
			"actr=" + accessor:                      `unknown query parameter "actr"`,
			"actor=" + accessor + "&accessor=other": "actor and accessor",
			"path=/v1/a&path=/v1/b":                 "path is given 2 times",
		} {
			mustError(t, n.do("GET", "/v1/sys/audit/events?"+query, root, ""), 400, want)
		}
	})
}

// rawExec runs SQL on db behind SecretHub's back, as someone with access
// to the database alone could.
func rawExec(t *testing.T, db *storage.DB, query string) {
	t.Helper()
	conn := rawConn(t, db)
	defer conn.Close()
	if _, err := conn.Exec(query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// rawConn opens db's database directly, not through SecretHub.
func rawConn(t *testing.T, db *storage.DB) *sql.DB {
	t.Helper()
	driver, dsn := "sqlite", db.Location()
	if db.Engine() == storage.Postgres {
		u, err := url.Parse(storagetest.AdminURL())
		if err != nil {
			t.Fatal(err)
		}
		_, name, _ := strings.Cut(db.Location(), "/")
		u.Path = "/" + name
		driver, dsn = "postgres", u.String()
	}
	conn, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// rawAuditRows is every column of every row of the audit tables as stored,
// including what listing does not show (an outcome in an event's row that
// a correction superseded).
func rawAuditRows(t *testing.T, db *storage.DB) string {
	t.Helper()
	conn := rawConn(t, db)
	defer conn.Close()
	tables := []string{"audit_events", "audit_outcomes", "audit_hash_chain"}
	if db.Engine() == storage.Postgres {
		tables = []string{"audit.events", "audit.outcomes", "audit.hash_chain"}
	}
	var out strings.Builder
	for _, table := range tables {
		rows, err := conn.Query(`SELECT * FROM ` + table)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				out.Write(v)
				out.WriteByte('\t')
			}
			out.WriteByte('\n')
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return out.String()
}

// Concurrent requests on one node keep one contiguous chain that verifies.
func TestConcurrentRequestsKeepTheChainWhole(t *testing.T) {
	eachEngine(t, func(t *testing.T, n *node) {
		_, root := n.initUnseal(1, 1)
		const workers = 64
		deadline := time.Now().Add(2 * time.Second)
		var wg sync.WaitGroup
		var mu sync.Mutex
		sent := 0
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; time.Now().Before(deadline); i++ {
					req, _ := http.NewRequest("POST", fmt.Sprintf("%s/v1/secrets/static/w%d/%d", n.URL, w, i%5), strings.NewReader(`{"data":{"k":"v"}}`))
					req.Header.Set("X-Vault-Token", root)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					resp.Body.Close()
					if resp.StatusCode != 200 {
						t.Errorf("status %d", resp.StatusCode)
						return
					}
					mu.Lock()
					sent++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		report := mustStatus(t, n.do("GET", "/v1/sys/audit/verify", root, ""), 200).Data(t)
		if report["ok"] != true {
			t.Fatalf("after %d concurrent writes: %v", sent, report)
		}
		nodes := report["nodes"].([]any)
		if len(nodes) != 1 || nodes[0].(map[string]any)["last"].(float64) != nodes[0].(map[string]any)["events"].(float64) {
			t.Fatalf("the chain has gaps: %v", nodes)
		}
		if int(report["events"].(float64)) < sent {
			t.Fatalf("%d requests, %d events", sent, int(report["events"].(float64)))
		}
	})
}

// A prune over several nodes prunes those whose logs verify, refuses those
// that do not, and says both: every refused node is named and the count is
// not lost in the 409.
func TestAPartialPruneSaysWhatItPruned(t *testing.T) {
	db := storagetest.SQLite(t)
	a := startNode(t, db, server.Config{NodeName: "a"})
	keys, root := a.initUnseal(1, 1)
	b := startNode(t, db, server.Config{NodeName: "b"})
	b.unseal(keys[0])
	d := startNode(t, db, server.Config{NodeName: "d"})
	d.unseal(keys[0])
	for i := range 5 {
		for _, n := range []*node{a, b, d} {
			mustStatus(t, n.do("POST", fmt.Sprintf("/v1/secrets/static/x/s%d", i), root, `{"data":{"k":"v"}}`), 200)
		}
	}
	// Each node's events are anchored by the checkpoint it writes as it stops.
	for _, n := range []*node{a, b, d} {
		if err := n.srv.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	rawExec(t, db, `UPDATE audit_events SET path = '/v1/elsewhere' WHERE node IN ('a', 'd') AND seq = 3`)
	c := startNode(t, db, server.Config{NodeName: "c"})
	c.unseal(keys[0])
	r := c.do("POST", "/v1/sys/audit/prune", root, `{"before":"`+time.Now().UTC().Format(time.RFC3339Nano)+`"}`)
	mustError(t, r, 409, "node a")
	if msg := r.Errors(t)[0]; !strings.Contains(msg, "node d") || !strings.Contains(msg, "event(s) were pruned on the nodes whose logs verify") {
		t.Fatalf("a partial prune's answer does not say what it pruned: %q", msg)
	}
	if left, err := db.AuditEvents(context.Background(), "b", nil, 100); err != nil || len(left) != 0 {
		t.Fatalf("node b kept %d events (%v); its log verifies, so the prune should have removed them", len(left), err)
	}
	if kept, err := db.AuditEvents(context.Background(), "a", nil, 100); err != nil || len(kept) < 5 {
		t.Fatalf("node a has %d events left (%v): the evidence of its tampering is gone", len(kept), err)
	}
}

// sys/audit-hash needs an input, and hashes an empty one like any other:
// an empty value in a body is recorded as its HMAC.
func TestAuditHashOfTheEmptyValue(t *testing.T) {
	n := startNode(t, storagetest.SQLite(t), server.Config{})
	_, root := n.initUnseal(1, 1)
	empty := mustStatus(t, n.do("POST", "/v1/sys/audit-hash", root, `{"input":""}`), 200).Data(t)["hash"].(string)
	other := mustStatus(t, n.do("POST", "/v1/sys/audit-hash", root, `{"input":"x"}`), 200).Data(t)["hash"].(string)
	if !strings.HasPrefix(empty, audit.HMACPrefix) || empty == other {
		t.Fatalf("hash of the empty value %q (of x: %q)", empty, other)
	}
	mustError(t, n.do("POST", "/v1/sys/audit-hash", root, ``), 400, `missing "input"`)
}

// A request without a body says what it wants in its query: which version
// a read asked for is recorded, its values HMAC'd like a body's.
func TestAQueryIsRecordedAsRequestData(t *testing.T) {
	storagetest.Engines(t, func(t *testing.T, db *storage.DB) {
		n := startNode(t, db, server.Config{})
		_, root := n.initUnseal(1, 1)
		mustStatus(t, n.do("POST", "/v1/secrets/static/app/db", root, `{"data":{"k":"v"}}`), 200)
		const canary = "Query-Canary-31d9"
		read := mustRequestID(t, mustStatus(t, n.do("GET", "/v1/secrets/static/app/db?version=1", root, ""), 200))
		refused := mustRequestID(t, n.do("GET", "/v1/sys/audit/events?path=a&path="+canary, root, ""))
		hash := func(v string) string {
			return mustStatus(t, n.do("POST", "/v1/sys/audit-hash", root, `{"input":"`+v+`"}`), 200).Data(t)["hash"].(string)
		}
		one, canaryHash, aHash := hash("1"), hash(canary), hash("a")
		events := auditedEvents(t, n)
		if got, want := string(events[read].RequestData), `{"version":"`+one+`"}`; got != want {
			t.Fatalf("the read's request data is %s, want %s", got, want)
		}
		if got, want := string(events[refused].RequestData), `{"path":["`+aHash+`","`+canaryHash+`"]}`; got != want {
			t.Fatalf("the refused list's request data is %s, want %s", got, want)
		}
		if dump := auditTablesText(t, db) + rawAuditRows(t, db); strings.Contains(dump, canary) {
			t.Fatal("a query value reached the audit tables in the clear")
		}
	})
}

// The audit key is derived from the keyring, not stored: nothing someone
// with database access removes (core_keys is emptied here, as it once held
// the key) makes an unseal use another key, so the log still verifies and
// a value still hashes as it did.
func TestTheAuditKeyCannotBeReplacedThroughTheDatabase(t *testing.T) {
	storagetest.Engines(t, func(t *testing.T, db *storage.DB) {
		n := startNode(t, db, server.Config{NodeName: "core-1"})
		keys, root := n.initUnseal(1, 1)
		mustStatus(t, n.do("POST", "/v1/secrets/static/app/db", root, `{"data":{"v":"x"}}`), 200)
		hash := func() string {
			return mustStatus(t, n.do("POST", "/v1/sys/audit-hash", root, `{"input":"canary"}`), 200).Data(t)["hash"].(string)
		}
		before := hash()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.srv.Close(ctx); err != nil { // writes the final checkpoint
			t.Fatal(err)
		}
		n = startNode(t, db, server.Config{NodeName: "core-1"})
		raw := rawConn(t, db)
		defer raw.Close()
		if _, err := raw.Exec(`DELETE FROM core_keys`); err != nil {
			t.Fatal(err)
		}
		mustStatus(t, n.do("POST", "/v1/sys/unseal", "", `{"key":"`+keys[0]+`"}`), 200)
		if after := hash(); after != before {
			t.Fatalf("the audit key changed across a restart: %s, then %s", before, after)
		}
		if v := mustStatus(t, n.do("GET", "/v1/sys/audit/verify", root, ""), 200).Data(t); v["ok"] != true {
			t.Fatalf("verify after a restart: %v", v)
		}
		var rows int
		if err := raw.QueryRow(`SELECT count(*) FROM core_keys`).Scan(&rows); err != nil || rows != 0 {
			t.Fatalf("%d rows in core_keys (%v): the audit key is stored again", rows, err)
		}
	})
}

// A token's auth method is what it was made by, not what its display name
// or metadata (which whoever creates a token chooses) look like: a created
// token dressed as an admin or AppRole login is audited and looked up as a
// created token, while real logins keep their methods.
func TestAuthMethodCannotBeDressedUp(t *testing.T) {
	storagetest.Engines(t, func(t *testing.T, db *storage.DB) {
		n := startNode(t, db, server.Config{AdminUsername: testAdminUser, AdminPasswordHash: testAdminHash})
		_, root := n.initUnseal(1, 1)
		dressed := map[string]string{
			"admin":   `{"display_name":"admin-spoof","policies":["default"]}`,
			"approle": `{"meta":{"role_name":"web"},"policies":["default"]}`,
		}
		accessors := map[string]string{}
		for as, body := range dressed {
			tok, acc := n.createToken(root, body)
			accessors[acc] = "token"
			path := mustStatus(t, n.do("GET", "/v1/auth/token/lookup-self", tok, ""), 200).Data(t)["path"]
			if path != "auth/token/create" {
				t.Errorf("a created token dressed as %s looks up with path %v, want auth/token/create", as, path)
			}
		}
		mustStatus(t, n.do("POST", "/v1/auth/approle/role/web", root, `{"policies":["default"]}`), 204)
		roleID := mustStatus(t, n.do("GET", "/v1/auth/approle/role/web/role-id", root, ""), 200).Data(t)["role_id"].(string)
		secretID := mustStatus(t, n.do("POST", "/v1/auth/approle/role/web/secret-id", root, ""), 200).Data(t)["secret_id"].(string)
		app := mustStatus(t, n.do("POST", "/v1/auth/approle/login", "", `{"role_id":"`+roleID+`","secret_id":"`+secretID+`"}`), 200).Auth(t)
		admin := mustStatus(t, n.do("POST", "/v1/auth/admin/login", "", `{"username":"admin","password":"`+testAdminPassword+`"}`), 200).Auth(t)
		for method, a := range map[string]map[string]any{"approle": app, "admin": admin} {
			accessors[a["accessor"].(string)] = method
			path := mustStatus(t, n.do("GET", "/v1/auth/token/lookup-self", a["client_token"].(string), ""), 200).Data(t)["path"]
			if path != "auth/"+method+"/login" {
				t.Errorf("a %s login's token looks up with path %v", method, path)
			}
		}
		failed := n.do("POST", "/v1/auth/admin/login", "", `{"username":"admin","password":"wrong"}`)
		mustStatus(t, failed, 403)
		seen := map[string]bool{}
		logins := 0
		for _, e := range auditedEvents(t, n) {
			// A login's own event names its method, whether it succeeded
			// or not: filtering on admin finds the admin logins too.
			if method, ok := strings.CutSuffix(strings.TrimPrefix(e.Path, "/v1/auth/"), "/login"); ok {
				logins++
				if e.AuthMethod != method {
					t.Errorf("a login at %s (status %+v) audited with auth method %q, want %q", e.Path, e.Outcome, e.AuthMethod, method)
				}
			}
			if want, ok := accessors[e.TokenAccessor]; ok && e.Path == "/v1/auth/token/lookup-self" {
				seen[e.TokenAccessor] = true
				if e.AuthMethod != want {
					t.Errorf("token %s audited with auth method %q, want %q", e.TokenAccessor, e.AuthMethod, want)
				}
			}
		}
		if len(seen) != len(accessors) || logins != 3 {
			t.Fatalf("found the lookups of %d of %d tokens and %d of 3 logins in the audit log", len(seen), len(accessors), logins)
		}
	})
}

// A node restarted after a run that ended sealed finds that run's events
// unanchored and vouches for them as adopted; the verify report says how
// many and which, so a long adopted range (a stopped node's chain
// rewritten in the database) is seen rather than silently vouched for.
func TestARestartReportsTheEventsItAdopted(t *testing.T) {
	storagetest.Engines(t, func(t *testing.T, db *storage.DB) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n := startNode(t, db, server.Config{NodeName: "core-1"})
		keys, root := n.initUnseal(1, 1)
		if err := n.srv.Close(ctx); err != nil {
			t.Fatal(err)
		}
		n = startNode(t, db, server.Config{NodeName: "core-1"}) // stays sealed
		for range 3 {
			mustStatus(t, n.do("GET", "/v1/sys/seal-status", "", ""), 200)
		}
		if err := n.srv.Close(ctx); err != nil {
			t.Fatal(err)
		}
		n = startNode(t, db, server.Config{NodeName: "core-1"})
		mustStatus(t, n.do("POST", "/v1/sys/unseal", "", `{"key":"`+keys[0]+`"}`), 200)
		// The adoption rides with the first batch after the unseal: this
		// request's, stored before it is answered.
		mustStatus(t, n.do("GET", "/v1/sys/seal-status", "", ""), 200)
		report := mustStatus(t, n.do("GET", "/v1/sys/audit/verify", root, ""), 200).Data(t)
		nodes, _ := report["nodes"].([]any)
		if report["ok"] != true || len(nodes) != 1 {
			t.Fatalf("verify: %v", report)
		}
		node := nodes[0].(map[string]any)
		largest, _ := node["largest_adoption"].(map[string]any)
		if node["adoptions"] != 1.0 || node["adopted_events"] != 3.0 || largest["events"] != 3.0 ||
			largest["to"].(float64)-largest["from"].(float64) != 2 || largest["at"] == "" {
			t.Fatalf("the sealed run's three events are not reported as adopted: %v", node)
		}
		// The record is an event of the log, listed like any other.
		list := mustStatus(t, n.do("GET", "/v1/sys/audit/events?path=audit:", root, ""), 200).Data(t)
		events, _ := list["events"].([]any)
		if len(events) != 1 || events[0].(map[string]any)["path"] != audit.AdoptionPath ||
			events[0].(map[string]any)["seq"] != largest["seq"] {
			t.Fatalf("the adoption record is not listed: %v", list)
		}
	})
}

// A write's event records the capability it needed where the token's
// policies grant create and update differently: create for a target that
// did not exist, update for one that did, for a write refused as well as
// for one allowed. Granted (or refused) alike, it is recorded as an update,
// as Vault does for paths that do not tell the two apart.
func TestAWriteRecordsTheCapabilityItUsed(t *testing.T) {
	n := startNode(t, storagetest.SQLite(t), server.Config{})
	_, root := n.initUnseal(1, 1)
	n.putPolicy(root, `{"name":"creator","rules":[{"path":"new/*","capabilities":["create"]}]}`)
	creator, _ := n.createToken(root, `{"policies":["creator"]}`)
	type want struct {
		r          response
		capability string
	}
	var sent []want
	do := func(token, path string, status int, capability string) {
		r := mustStatus(t, n.do("POST", "/v1/secrets/static/"+path, token, `{"data":{"k":"v"}}`), status)
		sent = append(sent, want{r, capability})
	}
	do(creator, "new/a", 200, "create")
	do(creator, "new/a", 403, "update")
	do(root, "app/b", 200, "update")
	do(root, "app/b", 200, "update")
	do(creator, "app/b", 403, "update")
	do(creator, "app/c", 403, "update")
	n.putPolicy(root, `{"name":"updater","rules":[{"path":"upd/*","capabilities":["update"]}]}`)
	updater, _ := n.createToken(root, `{"policies":["updater"]}`)
	do(root, "upd/x", 200, "update")
	do(updater, "upd/x", 200, "update")
	do(updater, "upd/y", 403, "create")
	events := auditedEvents(t, n)
	for _, s := range sent {
		e := events[s.r.Header.Get("X-Request-Id")]
		if e.Capability != s.capability {
			t.Errorf("%s %s answered %d: capability %q, want %q", e.Operation, e.Path, s.r.Status, e.Capability, s.capability)
		}
	}
}
