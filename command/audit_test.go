package command

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/secrethub/secrethub/client"
	"github.com/secrethub/secrethub/client/clienttest"
	"github.com/secrethub/secrethub/server"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// auditScene is a log with old events (written three days ago by a node
// since restarted) and new ones, up to until.
type auditScene struct {
	db  *storage.DB
	srv *clienttest.Server
	// cut lies between the old events and the new; until after the last
	// event of the scene (later CLI calls add events of their own).
	cut, until time.Time
	// old and all count the events before cut and before until.
	old, all int
}

// newAuditScene writes: on the old node a secret; on the restarted node
// the secret "pg-secret" (allowed) and a read with a bogus token (denied).
func newAuditScene(t *testing.T) *auditScene {
	t.Helper()
	ctx := context.Background()
	db := storagetest.SQLite(t)
	past := func() time.Time { return time.Now().Add(-72 * time.Hour) }
	old := clienttest.UnsealedWith(t, db, server.Config{Now: past})
	if _, err := old.Root(t).KV().Put(ctx, "app/old", map[string]any{"v": "x"}, client.KVPutOptions{}); err != nil {
		t.Fatal(err)
	}
	srv := old.Restart(t, server.Config{})
	root := srv.Root(t)
	if _, err := root.KV().Put(ctx, "app/db", map[string]any{"password": "pg-secret"}, client.KVPutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Client(t, "s.bogus-token").KV().Get(ctx, "app/db", 0); err == nil {
		t.Fatal("a bogus token read a secret")
	}
	time.Sleep(2 * time.Millisecond)
	sc := &auditScene{db: db, srv: srv, cut: time.Now().Add(-24 * time.Hour), until: time.Now().Truncate(time.Microsecond)}
	time.Sleep(2 * time.Millisecond)
	sc.old = len(waitOutcomes(t, root, client.AuditFilter{Until: sc.cut}))
	sc.all = len(waitOutcomes(t, root, client.AuditFilter{Until: sc.until}))
	if sc.old != 1 || sc.all != 3 {
		t.Fatalf("scene: %d old events, %d in all", sc.old, sc.all)
	}
	return sc
}

// waitOutcomes waits until every event f selects has its outcome (they
// are stored after the answer) and returns the events.
func waitOutcomes(t *testing.T, c *client.Client, f client.AuditFilter) []client.AuditEvent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var events []client.AuditEvent
		err := c.Audit().EachEvent(context.Background(), f, func(e client.AuditEvent) error {
			events = append(events, e)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(events, func(e client.AuditEvent) bool { return !e.HasOutcome() }) {
			return events
		}
		if time.Now().After(deadline) {
			t.Fatal("outcomes were not stored within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cli runs `secrethub audit ARGS` with the root token.
func (sc *auditScene) cli(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	return cli(t, sc.srv.URL, sc.srv.RootToken, stdin, append([]string{"audit"}, args...)...)
}

// stamp is --until at t.
func stamp(t time.Time) string { return "--until=" + t.UTC().Format(time.RFC3339Nano) }

func regexpMatch(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }

// regexpFind returns the first group of pattern in s.
func regexpFind(t *testing.T, pattern, s string) string {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("%s not in:\n%s", pattern, s)
	}
	return m[1]
}

// jsonEvents decodes `audit list -format=json`.
func jsonEvents(t *testing.T, out string) []client.AuditEvent {
	t.Helper()
	var events []client.AuditEvent
	if err := json.Unmarshal([]byte(out), &events); err != nil {
		t.Fatalf("not a JSON array of events: %v\n%s", err, out)
	}
	return events
}

func TestAuditListShowsAPageOrEveryPage(t *testing.T) {
	sc := newAuditScene(t)

	code, out, errOut := sc.cli(t, "", "list", stamp(sc.until), "--path=/v1/secrets/")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2+3 || !regexpMatch(`^Time +Node +Seq +Status +Decision +Method +Path +Accessor$`, lines[0]) {
		t.Fatalf("want a header, its dashes and 3 rows:\n%s", out)
	}
	if !regexpMatch(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z +test-node +\d+ +403 +deny +GET +/v1/secrets/static/app/db +n/a$`, lines[4]) {
		t.Fatalf("the denied read's row: %q", lines[4])
	}
	if strings.Contains(out, "More events follow") {
		t.Fatalf("a single page announced more:\n%s", out)
	}

	t.Run("one page, then the next with --after", func(t *testing.T) {
		code, out, errOut := sc.cli(t, "", "list", stamp(sc.until), "--limit=1")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		after := regexpFind(t, `--after=(\S+) for the next page`, out)
		code, out2, errOut := sc.cli(t, "", "list", stamp(sc.until), "--limit=1", "-format=json", "--after="+after)
		events := jsonEvents(t, out2)
		if code != 0 || len(events) != 1 || events[0].Seq != 2 {
			t.Fatalf("second page: exit %d, %+v: %s", code, events, errOut)
		}
		mustContain(t, "stderr of a JSON page", errOut, "More events follow")
	})
	t.Run("--all follows every cursor", func(t *testing.T) {
		code, out, errOut := sc.cli(t, "", "list", stamp(sc.until), "--limit=2", "--all", "-format=json")
		if events := jsonEvents(t, out); code != 0 || len(events) != sc.all {
			t.Fatalf("exit %d, %d events, want %d: %s", code, len(events), sc.all, errOut)
		}
	})
	t.Run("--all without --until stops at its start, though each page is an event", func(t *testing.T) {
		done := make(chan struct{})
		var (
			code        int
			out, errOut string
		)
		started := time.Now()
		go func() {
			defer close(done)
			code, out, errOut = sc.cli(t, "", "list", "--limit=1", "--all", "-format=json")
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("list --all --limit=1 is still paging after 30 s")
		}
		events := jsonEvents(t, out)
		if code != 0 || len(events) < sc.all {
			t.Fatalf("exit %d, %d events, want %d at least: %s", code, len(events), sc.all, errOut)
		}
		for _, e := range events {
			if e.Time.After(started) {
				t.Fatalf("an event from after the command started was listed: %+v", e)
			}
		}
	})
	t.Run("filters", func(t *testing.T) {
		code, out, _ := sc.cli(t, "", "list", stamp(sc.until), "--decision=deny", "-format=json")
		events := jsonEvents(t, out)
		if code != 0 || len(events) != 1 || events[0].Decision != "deny" || events[0].TokenHMAC == "" {
			t.Fatalf("deny: %+v", events)
		}
		code, out, _ = sc.cli(t, "", "list", "--since=24h", stamp(sc.until), "--all", "-format=json")
		if events := jsonEvents(t, out); code != 0 || len(events) != sc.all-sc.old {
			t.Fatalf("--since=24h: %d events, want %d", len(events), sc.all-sc.old)
		}
		code, out, _ = sc.cli(t, "", "list", "--node=elsewhere")
		if code != 0 || strings.TrimSpace(out) != "No audit events match." {
			t.Fatalf("no match: exit %d: %q", code, out)
		}
	})
	for _, bad := range [][]string{{"--decision=maybe"}, {"--since=yesterday"}, {"--since=3600"}, {"--limit=0"}, {"--limit=1001"},
		{"--since=2026-05-02", "--until=2026-05-01"}} {
		if code, _, errOut := sc.cli(t, "", append([]string{"list"}, bad...)...); code != 1 || !strings.Contains(errOut, "--") {
			t.Fatalf("list %v: exit %d: %s", bad, code, errOut)
		}
	}
}

func TestAuditExportStreamsEveryEvent(t *testing.T) {
	sc := newAuditScene(t)

	// What the API itself answers, to compare the JSON lines with.
	req, _ := http.NewRequest(http.MethodGet, sc.srv.URL+"/v1/sys/audit/events?limit=1000&until="+sc.until.UTC().Format(time.RFC3339Nano), nil)
	req.Header.Set("X-Vault-Token", sc.srv.RootToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var api struct {
		Data struct {
			Events []json.RawMessage `json:"events"`
		} `json:"data"`
	}
	err = json.NewDecoder(resp.Body).Decode(&api)
	resp.Body.Close()
	if err != nil || len(api.Data.Events) != sc.all {
		t.Fatalf("the API listed %d events, want %d: %v", len(api.Data.Events), sc.all, err)
	}

	t.Run("jsonl: one event a line as the API returns it, through pages", func(t *testing.T) {
		code, out, errOut := sc.cli(t, "", "export", "--format", "jsonl", stamp(sc.until))
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != sc.all {
			t.Fatalf("%d lines, want %d:\n%s", len(lines), sc.all, out)
		}
		for i, line := range lines {
			var obj map[string]any
			if err := json.Unmarshal([]byte(line), &obj); err != nil {
				t.Fatalf("line %d is not a JSON object: %v", i+1, err)
			}
			if line != string(api.Data.Events[i]) {
				t.Fatalf("line %d:\n%s\nthe API:\n%s", i+1, line, api.Data.Events[i])
			}
		}
		if strings.Contains(out, "pg-secret") {
			t.Fatal("the export carries a secret in the clear")
		}
		mustContain(t, "stderr", errOut, "Exported "+strconv.Itoa(sc.all)+" audit events.")
		// The default format is jsonl.
		if _, out2, _ := sc.cli(t, "", "export", stamp(sc.until)); out2 != out {
			t.Fatal("export without --format is not the jsonl export")
		}
	})
	t.Run("csv: a header and a row an event with every field", func(t *testing.T) {
		code, out, errOut := sc.cli(t, "", "export", "-format=csv", stamp(sc.until))
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1+sc.all || !slices.Equal(rows[0], auditCSVHeader) {
			t.Fatalf("%d rows, header %v", len(rows), rows[0])
		}
		var keys map[string]json.RawMessage
		_ = json.Unmarshal(api.Data.Events[0], &keys)
		for k := range keys {
			if !slices.Contains(auditCSVHeader, k) {
				t.Fatalf("the API's field %q has no column", k)
			}
		}
		col := func(row []string, name string) string { return row[slices.Index(auditCSVHeader, name)] }
		var write []string
		for _, r := range rows[1:] {
			if col(r, "path") == "/v1/secrets/static/app/db" && col(r, "decision") == "allow" {
				write = r
			}
		}
		var data map[string]any
		if write == nil || col(write, "policies") != "root" || col(write, "status") != "200" ||
			json.Unmarshal([]byte(col(write, "request_data")), &data) != nil || len(col(write, "hash")) != 64 {
			t.Fatalf("the write's row: %q", write)
		}
	})
	t.Run("--since and --until select by time", func(t *testing.T) {
		_, recent, _ := sc.cli(t, "", "export", "--since=24h", stamp(sc.until))
		_, old, _ := sc.cli(t, "", "export", "--until=24h")
		if n := strings.Count(recent, "\n"); n != sc.all-sc.old {
			t.Fatalf("--since 24h: %d events, want %d", n, sc.all-sc.old)
		}
		if n := strings.Count(old, "\n"); n != sc.old {
			t.Fatalf("--until 24h: %d events, want %d", n, sc.old)
		}
	})
	t.Run("--output creates a file only its owner reads, and never overwrites one", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.csv")
		code, out, errOut := sc.cli(t, "", "export", "--format=csv", "--output", path, stamp(sc.until))
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		mustContain(t, "stdout", out, "Success! Exported "+strconv.Itoa(sc.all)+" audit events to "+path)
		info, err := os.Stat(path)
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("export file: %v, %v", info.Mode(), err)
		}
		_, stdout, _ := sc.cli(t, "", "export", "--format=csv", stamp(sc.until))
		if b, _ := os.ReadFile(path); string(b) != stdout {
			t.Fatal("the file differs from the same export on stdout")
		}
		code, _, errOut = sc.cli(t, "", "export", "--output", path)
		if code != 1 || !strings.Contains(errOut, "exists") {
			t.Fatalf("overwriting: exit %d: %s", code, errOut)
		}
	})
	t.Run("a failed export leaves no file behind", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.jsonl")
		code, _, errOut := cli(t, sc.srv.URL, "s.bogus-token", "", "audit", "export", "--output", path)
		if code != 1 || !strings.Contains(errOut, "403") {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the partial export is still there: %v", err)
		}
	})
	t.Run("a refused export writes nothing to stdout, not even a header", func(t *testing.T) {
		for _, format := range []string{"csv", "jsonl"} {
			code, out, errOut := cli(t, sc.srv.URL, "s.bogus-token", "", "audit", "export", "--format", format)
			if code != 1 || out != "" || !strings.Contains(errOut, "403") {
				t.Fatalf("%s: exit %d, stdout %q: %s", format, code, out, errOut)
			}
		}
	})
	t.Run("an export that finds nothing is a header alone in csv, nothing in jsonl", func(t *testing.T) {
		code, out, errOut := sc.cli(t, "", "export", "--format=csv", "--node=elsewhere", stamp(sc.until))
		rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if code != 0 || err != nil || len(rows) != 1 || !slices.Equal(rows[0], auditCSVHeader) {
			t.Fatalf("exit %d, rows %q, %v: %s", code, rows, err, errOut)
		}
		if code, out, errOut := sc.cli(t, "", "export", "--node=elsewhere", stamp(sc.until)); code != 0 || out != "" {
			t.Fatalf("jsonl: exit %d, %q: %s", code, out, errOut)
		}
	})
	t.Run("the table|json output format is refused, with the reason", func(t *testing.T) {
		code, out, errOut := sc.cli(t, "", "export", "-format=json")
		if code != 1 || out != "" || !strings.Contains(errOut, "its --format is the export format") {
			t.Fatalf("exit %d: %s%s", code, out, errOut)
		}
	})
}

// tamper runs SQL on the SQLite file under the server, as someone with
// write access to the database could.
func tamper(t *testing.T, db *storage.DB, stmt string, args ...any) {
	t.Helper()
	conn, err := sql.Open("sqlite", "file:"+db.Location()+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	res, err := conn.Exec(stmt, args...)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%s changed %d rows", stmt, n)
	}
}

func TestAuditVerifyExitsTwoOnTampering(t *testing.T) {
	sc := newAuditScene(t)

	code, out, errOut := sc.cli(t, "", "verify")
	if code != 0 || rowValue(t, out, "result") != "OK" {
		t.Fatalf("clean log: exit %d:\n%s%s", code, out, errOut)
	}
	mustContain(t, "verify", out, "====== Nodes ======")
	if !regexpMatch(`(?m)^test-node +\d+ +\d+ +0 +\d+ +\d+ +\d+ +\S+ +n/a +\d+ +0 +n/a$`, out) {
		t.Fatalf("no counts for test-node:\n%s", out)
	}

	tamper(t, sc.db, `UPDATE audit_events SET path = '/v1/nothing-to-see' WHERE node = 'test-node' AND seq = 2`)
	code, out, errOut = sc.cli(t, "", "verify")
	if code != 2 {
		t.Fatalf("tampered log: exit %d, want 2:\n%s%s", code, out, errOut)
	}
	if rowValue(t, out, "result") != "FAILED: modified" || rowValue(t, out, "kind") != "modified" ||
		rowValue(t, out, "node") != "test-node" || rowValue(t, out, "seq") != "2" || rowValue(t, out, "detail") == "" {
		t.Fatalf("the problem is not named:\n%s", out)
	}
	if errOut != "" {
		t.Fatalf("stderr: %s", errOut)
	}
	code, out, _ = sc.cli(t, "", "verify", "-format=json")
	var rep client.AuditReport
	if err := json.Unmarshal([]byte(out), &rep); code != 2 || err != nil || rep.OK || rep.Problem == nil || rep.Problem.Seq != 2 {
		t.Fatalf("JSON: exit %d, %v: %s", code, err, out)
	}

	// An error is not a verdict: exit 1.
	if code, _, errOut := cli(t, sc.srv.URL, "s.bogus-token", "", "audit", "verify"); code != 1 || !strings.Contains(errOut, "403") {
		t.Fatalf("without a valid token: exit %d: %s", code, errOut)
	}
}

// A log that verifies while a node's checkpoint is overdue exits 3 and says
// which node and since when; the verdict comes from the server.
func TestAuditVerifyExitsThreeWhenACheckpointIsOverdue(t *testing.T) {
	since := time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)
	report := client.AuditReport{OK: true, Events: 40, CheckpointOverdue: true, Nodes: []client.AuditNodeReport{
		{Node: "core-1", Events: 30, Last: 30, Checkpoints: 3, Anchored: 30, Adoptions: 2, AdoptedEvents: 7,
			LargestAdoption: &client.AuditAdoption{From: 21, To: 25, Events: 5, At: since.Add(time.Hour)}},
		{Node: "core-2", Events: 10, Last: 10, Unanchored: 10, UnanchoredSince: since, CheckpointOverdue: true},
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/sys/audit/verify" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"data": report})
	}))
	t.Cleanup(srv.Close)

	code, out, errOut := cli(t, srv.URL, "s.token", "", "audit", "verify")
	if code != 3 || errOut != "" {
		t.Fatalf("exit %d, want 3:\n%s%s", code, out, errOut)
	}
	mustContain(t, "verify", rowValue(t, out, "result"), "OK, but a checkpoint is overdue")
	if !regexpMatch(`(?m)^core-2 +10 +10 +0 +0 +0 +10 +2026-11-28T09:30:00Z +n/a +0 +0 +checkpoint overdue`, out) ||
		!regexpMatch(`(?m)^core-1 +30 +30 +0 +3 +30 +0 +n/a +7 in 2 \(longest: seq 21-25, adopted 2026-11-28T10:30:00Z\) +0 +0 +n/a$`, out) {
		t.Fatalf("the overdue node is not shown:\n%s", out)
	}
	code, out, _ = cli(t, srv.URL, "s.token", "", "audit", "verify", "-format=json")
	var got client.AuditReport
	if err := json.Unmarshal([]byte(out), &got); code != 3 || err != nil || !got.OK || !got.CheckpointOverdue ||
		!got.Nodes[1].UnanchoredSince.Equal(since) || got.Nodes[0].UnanchoredSince != (time.Time{}) {
		t.Fatalf("JSON: exit %d, %v: %s", code, err, out)
	}
}

func TestAuditPruneAsksUnlessYes(t *testing.T) {
	sc := newAuditScene(t)

	code, _, errOut := sc.cli(t, "", "prune", "--before=24h")
	if code != 1 || !strings.Contains(errOut, "confirm with --yes") {
		t.Fatalf("without a terminal or --yes: exit %d: %s", code, errOut)
	}
	if code, _, errOut := sc.cli(t, "", "prune"); code != 1 || !strings.Contains(errOut, "--before is required") {
		t.Fatalf("without --before: exit %d: %s", code, errOut)
	}

	c := newConsole("")
	opts := &AuditPruneOptions{Deps: c.deps(t, sc.srv, sc.srv.RootToken, ""), Before: sc.cut, Interactive: true}
	var asked string
	opts.Confirm = func(_ context.Context, prompt string) (bool, error) { asked = prompt; return false, nil }
	if err := runAuditPrune(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "nothing was pruned") {
		t.Fatalf("declined: %v", err)
	}
	mustContain(t, "prompt", asked, sc.cut.UTC().Format(time.RFC3339Nano), "cannot be undone")
	if n := len(waitOutcomes(t, sc.srv.Root(t), client.AuditFilter{Until: sc.cut})); n != sc.old {
		t.Fatalf("declining removed events: %d of %d left", n, sc.old)
	}

	code, out, errOut := sc.cli(t, "", "prune", "--before="+sc.cut.UTC().Format(time.RFC3339Nano), "--yes")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	mustContain(t, "prune", out, "Success! Removed "+strconv.Itoa(sc.old)+" audit events older than")
	if code, out, _ := sc.cli(t, "", "verify"); code != 0 || rowValue(t, out, "result") != "OK" {
		t.Fatalf("after pruning: exit %d:\n%s", code, out)
	}

	opts.Confirm = func(context.Context, string) (bool, error) { return true, nil }
	opts.Format = FormatJSON
	if err := runAuditPrune(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	var res struct {
		Removed *int64 `json:"removed"`
	}
	if err := json.Unmarshal(c.out.Bytes(), &res); err != nil || res.Removed == nil || *res.Removed != 0 {
		t.Fatalf("confirmed again, as JSON: %s", c.out)
	}
}

func TestAuditHashMatchesWhatEventsCarry(t *testing.T) {
	sc := newAuditScene(t)
	var write client.AuditEvent
	for _, e := range waitOutcomes(t, sc.srv.Root(t), client.AuditFilter{Path: "/v1/secrets/static/app/db", Decision: "allow"}) {
		write = e
	}
	var body struct {
		Data map[string]string `json:"data"`
	}
	if err := json.Unmarshal(write.RequestData, &body); err != nil || body.Data["password"] == "" {
		t.Fatalf("request_data %s: %v", write.RequestData, err)
	}

	code, out, errOut := sc.cli(t, "", "hash", "pg-secret")
	if code != 0 || out != body.Data["password"]+"\n" {
		t.Fatalf("exit %d: %q, the event carries %q: %s", code, out, body.Data["password"], errOut)
	}
	code, out, _ = sc.cli(t, "pg-secret\n", "hash", "-")
	if code != 0 || out != body.Data["password"]+"\n" {
		t.Fatalf("from stdin: exit %d: %q", code, out)
	}
	if code, _, errOut := sc.cli(t, "\n", "hash", "-"); code != 1 || !strings.Contains(errOut, "empty") {
		t.Fatalf("an empty value: exit %d: %s", code, errOut)
	}
	code, out, _ = sc.cli(t, "", "hash", "-format=json", "s.bogus-token")
	var res map[string]string
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil {
		t.Fatalf("JSON: exit %d: %s", code, out)
	}
	denied := waitOutcomes(t, sc.srv.Root(t), client.AuditFilter{Decision: "deny", Until: sc.until})
	if len(denied) != 1 || denied[0].TokenHMAC != res["hash"] {
		t.Fatalf("hash of the bogus token %s; denied events %+v", res["hash"], denied)
	}
}

func TestAuditListEscapesWhatATerminalWouldAct(t *testing.T) {
	srv := unsealedServer(t)
	// Anyone can put an escape sequence into an event's path.
	resp, err := http.Get(srv.URL + "/v1/%1b%5d0;pwned%07/%E2%80%AEtxt.exe")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	code, out, errOut := cli(t, srv.URL, srv.RootToken, "", "audit", "list")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.ContainsAny(out, "\x1b\x07\u202e") {
		t.Fatalf("the table passes control characters through: %q", out)
	}
	mustContain(t, "table", out, `/v1/\x1b]0;pwned\x07/\u202etxt.exe`)
}

func TestConfirmTakesOnlyYes(t *testing.T) {
	for in, want := range map[string]bool{"y\n": true, "YES\r\n": true, " yes ": true, "n\n": false, "\n": false, "sure\n": false} {
		c := newConsole(in)
		got, err := c.io.Confirm(context.Background(), "Go on? ")
		if err != nil || got != want || c.err.String() != "Go on? " {
			t.Errorf("%q: %v, %v (stderr %q); want %v", in, got, err, c.err, want)
		}
	}
	if _, err := newConsole("").io.Confirm(context.Background(), "Go on? "); err == nil {
		t.Error("no answer at all counted as one")
	}
}

func TestAuditTimeFlags(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 30, 15, 500, time.UTC)
	for raw, want := range map[string]time.Time{
		"2026-05-01T12:00:00Z":      time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC),
		"2026-05-01T14:00:00+02:00": time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC),
		"2026-05-01":                time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC),
		"90m":                       time.Date(2026, 5, 10, 11, 0, 15, 0, time.UTC),
		"7d":                        time.Date(2026, 5, 3, 12, 30, 15, 0, time.UTC),
	} {
		got, err := timeFlag("since", raw, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("%s: %v, %v; want %v", raw, got, err, want)
		}
	}
	for _, raw := range []string{"", "3600", "yesterday", "-1h", "2026-13-01"} {
		if _, err := timeFlag("since", raw, now); err == nil {
			t.Errorf("%q was accepted", raw)
		}
	}
}

// Without --until, list and export stop at the command's start; a --since
// at or after it is refused with a message about --since, not about an
// --until the user never gave.
func TestAuditFilterDefaultsUntilToNow(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 30, 15, 0, time.UTC)
	f, err := (&auditFilterFlags{since: "2026-05-01"}).resolve(now)
	if err != nil || !f.Until.Equal(now) {
		t.Fatalf("until = %v, %v; want %v", f.Until, err, now)
	}
	if _, err := (&auditFilterFlags{since: "2026-06-01"}).resolve(now); err == nil ||
		!strings.Contains(err.Error(), "not in the past") || strings.Contains(err.Error(), "--until (") {
		t.Fatalf("a future --since alone: %v", err)
	}
	if _, err := (&auditFilterFlags{since: "2026-06-01", until: "2026-05-01"}).resolve(now); err == nil ||
		!strings.Contains(err.Error(), "must be before --until") {
		t.Fatalf("--since after --until: %v", err)
	}
}

// The log's times are the server's: with --until left out, list reads up
// to the server's now, so a server whose clock runs ahead of this machine's
// still shows its newest events.
func TestAuditListReadsUpToTheServersClock(t *testing.T) {
	ahead := func() time.Time { return time.Now().Add(time.Hour) }
	srv := clienttest.UnsealedWith(t, storagetest.SQLite(t), server.Config{Now: ahead})
	if _, err := srv.Root(t).KV().Put(context.Background(), "app/ahead", map[string]any{"v": "x"}, client.KVPutOptions{}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli(t, srv.URL, srv.RootToken, "", "audit", "list", "--path=/v1/secrets/static/app/ahead")
	if code != 0 || !strings.Contains(out, "/v1/secrets/static/app/ahead") {
		t.Fatalf("exit %d, the write by a server an hour ahead is not listed:\n%s%s", code, out, errOut)
	}
	code, _, errOut = cli(t, srv.URL, srv.RootToken, "", "audit", "list", "--since=30m")
	if code != 0 {
		t.Fatalf("--since 30m by a server an hour ahead: exit %d: %s", code, errOut)
	}
}
