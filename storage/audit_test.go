package storage_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// The audit part of the conformance suite, on both engines. Storage only
// keeps what server/audit computes, so the hashes here are placeholders.

func TestAuditConformance(t *testing.T) { runRawCases(t, auditCases) }

var auditCases = []rawCase{
	{"a batch stores every field, and an outcome lands only once", testAuditRoundTrip},
	{"batches of any size are stored whole and read back in pages", testAuditBatchSizes},
	{"a taken seq fails the whole batch and stores nothing", testAuditTakenSeq},
	{"the head is the last event and the highest checkpoint", testAuditHead},
	{"checkpoints page in (seq, kind) order and a repeated one is ignored", testAuditCheckpoints},
	{"listing filters and resumes after the last event it returned", testAuditList},
	{"the prune boundary stops before the first event at or after the time", testAuditPruneBoundary},
	{"a prune replaces events and checkpoints up to its boundary, only if the boundary is unchanged", testAuditPrune},
	{"rolling back to outcomes apart keeps every outcome", testAuditWholeEventsRollBack},
	{"awkward text and times round-trip exactly", testAuditAwkwardValues},
}

// testAuditAwkwardValues stores text that a batch's arrays must carry
// untouched (quotes, backslashes, braces, commas, the word NULL, non-ASCII,
// empty strings) and times on both sides of PostgreSQL's 2000 epoch.
func testAuditAwkwardValues(t *testing.T, db *storage.DB, raw *sql.DB) {
	awkward := []string{`say "hi" \ {a,b}`, "NULL", "", `\"`, "ünïcödé ✓", "a,b}{c", " spaced "}
	var events []storage.AuditEvent
	times := []time.Time{
		time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(2000, 1, 1, 0, 0, 0, 1000, time.UTC),
		time.Date(2261, 3, 4, 5, 6, 7, 890123000, time.FixedZone("X", -7*3600)),
	}
	for i, s := range awkward {
		e := auditEvent("n1", int64(i+1), times[i%len(times)])
		e.RequestID, e.Path, e.Resource, e.TokenHMAC, e.Policies = s, "/v1/"+s, s, s, []string{s}
		e.RequestData = `{"k":` + strconv.Quote(s) + `}`
		if i%2 == 0 {
			e.Outcome = &storage.AuditOutcome{Seq: e.Seq, Status: 400 + i, Error: s, LatencyMicros: int64(i) << 40, MAC: s}
		}
		events = append(events, e)
	}
	if err := db.AppendAudit(ctx(), storage.AuditBatch{Node: "n1", Events: events}); err != nil {
		t.Fatal(err)
	}
	apart := storage.AuditOutcome{Seq: 2, Status: 200, Error: awkward[0], LatencyMicros: 1 << 50, MAC: awkward[4]}
	if _, err := db.StoreAuditOutcomes(ctx(), "n1", []storage.AuditOutcome{apart}); err != nil {
		t.Fatal(err)
	}
	events[1].Outcome = &apart
	got, err := db.AuditEvents(ctx(), "n1", nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(events) {
		t.Fatalf("read back %d events, want %d", len(got), len(events))
	}
	for i := range events {
		want := events[i]
		want.Time = want.Time.UTC()
		if !reflect.DeepEqual(got[i], want) {
			t.Errorf("event %d:\n got %+v\nwant %+v", i+1, got[i], want)
		}
	}
}

// auditEvent makes event seq of node with placeholder chain values.
func auditEvent(node string, seq int64, at time.Time) storage.AuditEvent {
	return storage.AuditEvent{
		Node: node, Seq: seq, Time: at, RequestID: fmt.Sprint("req-", seq), ClientIP: "10.0.0.1",
		TokenAccessor: "acc-" + node, AuthMethod: "token", Operation: "GET",
		Path: fmt.Sprintf("/v1/secrets/static/%s/%d", node, seq), Resource: "res", Capability: "read",
		Policies: []string{"default"}, Decision: "allow",
		PrevHash: fmt.Sprint("prev-", seq), Hash: fmt.Sprint("hash-", seq),
	}
}

func appendEvents(t *testing.T, db *storage.DB, node string, from, to int64, at time.Time) {
	t.Helper()
	var evs []storage.AuditEvent
	for s := from; s <= to; s++ {
		evs = append(evs, auditEvent(node, s, at.Add(time.Duration(s)*time.Second)))
	}
	if err := db.AppendAudit(ctx(), storage.AuditBatch{Node: node, Events: evs}); err != nil {
		t.Fatalf("AppendAudit %s %d..%d: %v", node, from, to, err)
	}
}

func testAuditRoundTrip(t *testing.T, db *storage.DB, raw *sql.DB) {
	full := storage.AuditEvent{
		Node: "n1", Seq: 1, Time: t0, RequestID: "r1", ClientIP: "192.0.2.7", TokenAccessor: "acc",
		TokenHMAC: "hmac-sha256:ab", AuthMethod: "approle", Operation: "POST", Path: "/v1/secrets/static/a",
		Resource: "a", Capability: "create", Policies: []string{"p1", "p2"}, Decision: "allow",
		RequestData: `{"k":"hmac-sha256:cd","n":1}`, PrevHash: "zero", Hash: "h1",
	}
	complete := full
	complete.Seq, complete.PrevHash, complete.Hash, complete.RequestData, complete.Policies = 2, "h1", "h2", "", []string{}
	complete.Outcome = &storage.AuditOutcome{Seq: 2, Status: 403, Error: "permission denied", LatencyMicros: 17, MAC: "m2"}
	if err := db.AppendAudit(ctx(), storage.AuditBatch{Node: "n1", Events: []storage.AuditEvent{full, complete}}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, raw, `SELECT count(*) FROM `+auditTable(db, "events")+` WHERE request_data IS NULL AND seq = 2`); n != 1 {
		t.Fatalf("an event without request data should store NULL, found %d such rows", n)
	}
	if n := count(t, raw, `SELECT count(*) FROM `+auditTable(db, "events")+` WHERE seq = 2 AND status = 403 AND error = 'permission denied' AND latency_us = 17 AND outcome_mac = 'm2'`); n != 1 {
		t.Fatalf("an event stored whole should hold its outcome in its row, found %d such rows", n)
	}
	if n := count(t, raw, `SELECT count(*) FROM `+auditTable(db, "events")+` WHERE seq = 1 AND status IS NULL AND error IS NULL AND latency_us IS NULL AND outcome_mac IS NULL`); n != 1 {
		t.Fatalf("an event appended without its outcome should have NULL outcome columns, found %d such rows", n)
	}
	out := storage.AuditOutcome{Seq: 1, Status: 200, Error: "", LatencyMicros: 1234, MAC: "m1"}
	if applied, err := db.StoreAuditOutcomes(ctx(), "n1", []storage.AuditOutcome{out}); err != nil || applied != 1 {
		t.Fatalf("outcomes applied = %d, %v; want 1", applied, err)
	}
	if applied, err := db.StoreAuditOutcomes(ctx(), "n1", []storage.AuditOutcome{{Seq: 1, Status: 500, MAC: "x"}}); err != nil || applied != 0 {
		t.Fatalf("a second outcome for seq 1: applied = %d, %v; want 0 (the first stays)", applied, err)
	}
	got, err := db.AuditEvents(ctx(), "n1", nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	full.Outcome = &out
	if want := []storage.AuditEvent{full, complete}; !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	if got[0].Outcome.Status != 200 {
		t.Fatalf("a second outcome replaced the first: %+v", got[0].Outcome)
	}
	// An outcome stored apart for an event stored whole is a correction
	// (the request was not answered as its row says): it is the outcome
	// read back, and the row is left as it was.
	correction := storage.AuditOutcome{Seq: 2, Status: 503, Error: "refused", LatencyMicros: 0, MAC: "m2c"}
	if applied, err := db.StoreAuditOutcomes(ctx(), "n1", []storage.AuditOutcome{correction}); err != nil || applied != 1 {
		t.Fatalf("correction applied = %d, %v", applied, err)
	}
	got, err = db.AuditEvents(ctx(), "n1", nil, 10)
	if err != nil || len(got) != 2 || got[1].Outcome == nil || *got[1].Outcome != correction {
		t.Fatalf("after a correction: %+v, %v; want seq 2 with %+v", got, err, correction)
	}
	if n := count(t, raw, `SELECT count(*) FROM `+auditTable(db, "events")+` WHERE seq = 2 AND status = 403`); n != 1 {
		t.Fatalf("the correction changed the event's row (%d rows still say 403)", n)
	}
}

// auditTable names an audit table as a plain connection sees it.
func auditTable(db *storage.DB, name string) string {
	if db.Engine() == storage.Postgres {
		return "audit." + map[string]string{"events": "events", "outcomes": "outcomes", "chain": "hash_chain"}[name]
	}
	return map[string]string{"events": "audit_events", "outcomes": "audit_outcomes", "chain": "audit_hash_chain"}[name]
}

func testAuditBatchSizes(t *testing.T, db *storage.DB, raw *sql.DB) {
	next := int64(1)
	for _, size := range []int64{1, 37, 256, 300} {
		appendEvents(t, db, "n", next, next+size-1, t0)
		next += size
	}
	var outs []storage.AuditOutcome
	for s := int64(1); s < next; s += 2 {
		outs = append(outs, storage.AuditOutcome{Seq: s, Status: 200, LatencyMicros: s})
	}
	if applied, err := db.StoreAuditOutcomes(ctx(), "n", outs); err != nil || applied != int64(len(outs)) {
		t.Fatalf("outcomes applied = %d, %v; want %d", applied, err, len(outs))
	}
	var seqs []int64
	for after := (*int64)(nil); ; {
		page, err := db.AuditEvents(ctx(), "n", after, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			seqs = append(seqs, e.Seq)
			if hasOutcome := e.Outcome != nil; hasOutcome != (e.Seq%2 == 1) || (hasOutcome && e.Outcome.LatencyMicros != e.Seq) {
				t.Fatalf("event %d outcome = %+v", e.Seq, e.Outcome)
			}
		}
		after = &page[len(page)-1].Seq
	}
	if int64(len(seqs)) != next-1 {
		t.Fatalf("read %d events, want %d", len(seqs), next-1)
	}
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("event %d has seq %d: pages skipped or repeated", i+1, s)
		}
	}
	if n := count(t, raw, `SELECT count(*) FROM `+auditTable(db, "events")); int64(n) != next-1 {
		t.Fatalf("%d rows stored, want %d", n, next-1)
	}
}

func testAuditTakenSeq(t *testing.T, db *storage.DB, raw *sql.DB) {
	appendEvents(t, db, "n", 1, 3, t0)
	recorded := auditEvent("n", 4, t0)
	recorded.Outcome = &storage.AuditOutcome{Status: 403, MAC: "m"}
	batch := storage.AuditBatch{Node: "n",
		Events:     []storage.AuditEvent{recorded, auditEvent("n", 3, t0)},
		Checkpoint: &storage.AuditCheckpoint{Node: "n", Seq: 4, Hash: "hash-4", Kind: "checkpoint", CreatedAt: t0, MAC: "m"},
	}
	if err := db.AppendAudit(ctx(), batch); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("appending a taken seq: %v, want ErrConflict", err)
	}
	if n := count(t, raw, `SELECT count(*) FROM `+auditTable(db, "events")+` WHERE seq = 4`); n != 0 {
		t.Fatalf("a failed batch left its event")
	}
	if n := count(t, raw, `SELECT count(*) FROM `+auditTable(db, "outcomes")); n != 0 {
		t.Fatalf("a failed batch left its outcome")
	}
	if n := count(t, raw, `SELECT count(*) FROM `+auditTable(db, "chain")); n != 0 {
		t.Fatalf("a failed batch left its checkpoint")
	}
}

func testAuditHead(t *testing.T, db *storage.DB, raw *sql.DB) {
	if h, err := db.AuditHead(ctx(), "n"); err != nil || h != (storage.AuditHead{}) {
		t.Fatalf("head of an empty log = %+v, %v", h, err)
	}
	appendEvents(t, db, "n", 1, 5, t0)
	appendEvents(t, db, "other", 1, 9, t0)
	cp := storage.AuditCheckpoint{Node: "n", Seq: 3, Hash: "hash-3", Kind: "checkpoint", CreatedAt: t0, MAC: "m"}
	if err := db.AppendAudit(ctx(), storage.AuditBatch{Node: "n", Checkpoint: &cp}); err != nil {
		t.Fatal(err)
	}
	h, err := db.AuditHead(ctx(), "n")
	want := storage.AuditHead{Seq: 5, Hash: "hash-5", CheckpointSeq: 3, CheckpointHash: "hash-3", CheckpointKind: "checkpoint", CheckpointMAC: "m"}
	if err != nil || h != want {
		t.Fatalf("head = %+v, %v; want %+v", h, err, want)
	}
}

func testAuditCheckpoints(t *testing.T, db *storage.DB, raw *sql.DB) {
	var want []storage.AuditCheckpoint
	for _, c := range []struct {
		seq  int64
		kind string
	}{{2, "prune"}, {2, "checkpoint"}, {7, "checkpoint"}, {11, "checkpoint"}} {
		cp := storage.AuditCheckpoint{Node: "n", Seq: c.seq, Hash: fmt.Sprint("h", c.seq), Kind: c.kind, CreatedAt: t0, MAC: "m-" + c.kind}
		for range 2 {
			if err := db.AppendAudit(ctx(), storage.AuditBatch{Node: "n", Checkpoint: &cp}); err != nil {
				t.Fatalf("checkpoint %d %s: %v", c.seq, c.kind, err)
			}
		}
		want = append(want, cp)
	}
	want[0], want[1] = want[1], want[0] // "checkpoint" < "prune"
	var got []storage.AuditCheckpoint
	for after := (*storage.AuditCheckpoint)(nil); ; {
		page, err := db.AuditCheckpoints(ctx(), "n", after, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		after = &page[0]
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("checkpoints:\n got %+v\nwant %+v", got, want)
	}
	if nodes, err := db.AuditNodes(ctx()); err != nil || !reflect.DeepEqual(nodes, []string{"n"}) {
		t.Fatalf("nodes = %v, %v", nodes, err)
	}
}

func testAuditList(t *testing.T, db *storage.DB, raw *sql.DB) {
	// Two nodes, interleaved in time: a at t0+1s, +3s, ...; b at t0+2s, +4s, ...
	for s := int64(1); s <= 5; s++ {
		a, b := auditEvent("a", s, t0.Add(time.Duration(2*s-1)*time.Second)), auditEvent("b", s, t0.Add(time.Duration(2*s)*time.Second))
		if s == 3 {
			b.Decision, b.TokenAccessor = "deny", "acc-x"
		}
		for _, e := range []storage.AuditEvent{a, b} {
			if err := db.AppendAudit(ctx(), storage.AuditBatch{Node: e.Node, Events: []storage.AuditEvent{e}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	ids := func(evs []storage.AuditEvent) string {
		s := ""
		for _, e := range evs {
			s += fmt.Sprintf("%s%d ", e.Node, e.Seq)
		}
		return s
	}
	for _, c := range []struct {
		name string
		f    storage.AuditFilter
		want string
	}{
		{"everything, in time order", storage.AuditFilter{}, "a1 b1 a2 b2 a3 b3 a4 b4 a5 b5 "},
		{"a half-open time range", storage.AuditFilter{Since: t0.Add(3 * time.Second), Until: t0.Add(6 * time.Second)}, "a2 b2 a3 "},
		{"a path prefix", storage.AuditFilter{PathPrefix: "/v1/secrets/static/b/"}, "b1 b2 b3 b4 b5 "},
		{"an accessor", storage.AuditFilter{Accessor: "acc-x"}, "b3 "},
		{"a decision", storage.AuditFilter{Decision: "deny"}, "b3 "},
		{"a node and a limit", storage.AuditFilter{Node: "a", Limit: 2}, "a1 a2 "},
		{"after a position", storage.AuditFilter{AfterTime: t0.Add(4 * time.Second), AfterNode: "b", AfterSeq: 2}, "a3 b3 a4 b4 a5 b5 "},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.f.Limit == 0 {
				c.f.Limit = 100
			}
			got, err := db.ListAuditEvents(ctx(), c.f)
			if err != nil || ids(got) != c.want {
				t.Fatalf("got %q, %v; want %q", ids(got), err, c.want)
			}
		})
	}
}

func testAuditPruneBoundary(t *testing.T, db *storage.DB, raw *sql.DB) {
	appendEvents(t, db, "n", 1, 10, t0) // event s at t0 + s seconds
	// Event 7 is older than event 6: a request that began earlier but
	// reached the log later.
	if _, err := raw.Exec(`UPDATE `+auditTable(db, "events")+` SET time = $1 WHERE seq = 7`, t0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		before time.Time
		want   int64
	}{
		{t0.Add(6 * time.Second), 5},
		{t0.Add(8 * time.Second), 7},
		{t0.Add(time.Hour), 10},
	} {
		seq, hash, err := db.AuditPruneBoundary(ctx(), "n", c.before)
		if err != nil || seq != c.want || hash != fmt.Sprint("hash-", c.want) {
			t.Errorf("boundary before %v = %d %q, %v; want %d", c.before.Sub(t0), seq, hash, err, c.want)
		}
	}
	if _, _, err := db.AuditPruneBoundary(ctx(), "n", t0.Add(time.Second)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("nothing older than the first event: %v, want ErrNotFound", err)
	}
	for _, c := range []struct {
		node   string
		before time.Time
		want   bool
	}{{"n", t0.Add(time.Second), false}, {"n", t0.Add(time.Second + time.Microsecond), true}, {"other", t0.Add(time.Hour), false}} {
		if got, err := db.AuditEventBefore(ctx(), c.node, c.before); err != nil || got != c.want {
			t.Errorf("an event of %s before %v: %v, %v; want %v", c.node, c.before.Sub(t0), got, err, c.want)
		}
	}
}

func testAuditPrune(t *testing.T, db *storage.DB, raw *sql.DB) {
	appendEvents(t, db, "n", 1, 10, t0)
	appendEvents(t, db, "m", 1, 3, t0)
	for _, s := range []int64{4, 8} {
		cp := storage.AuditCheckpoint{Node: "n", Seq: s, Hash: fmt.Sprint("hash-", s), Kind: "checkpoint", CreatedAt: t0, MAC: "m"}
		if err := db.AppendAudit(ctx(), storage.AuditBatch{Node: "n", Checkpoint: &cp}); err != nil {
			t.Fatal(err)
		}
	}
	prune := storage.AuditCheckpoint{Node: "n", Seq: 6, Hash: "hash-6", Kind: "prune", CreatedAt: t0, MAC: "pm"}
	stale := prune
	stale.Hash = "something else"
	if _, err := db.PruneAudit(ctx(), stale); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("prune against a changed boundary: %v, want ErrConflict", err)
	}
	removed, err := db.PruneAudit(ctx(), prune)
	if err != nil || removed != 6 {
		t.Fatalf("prune = %d, %v; want 6 removed", removed, err)
	}
	if evs, _ := db.AuditEvents(ctx(), "n", nil, 100); len(evs) != 4 || evs[0].Seq != 7 {
		t.Fatalf("after the prune node n keeps %d events from %v", len(evs), evs)
	}
	if n := count(t, raw, `SELECT count(*) FROM `+auditTable(db, "events")+` WHERE node = 'm'`); n != 3 {
		t.Fatalf("pruning node n touched node m: %d events left", n)
	}
	cps, err := db.AuditCheckpoints(ctx(), "n", nil, 10)
	if err != nil || len(cps) != 2 || cps[0] != prune || cps[1].Seq != 8 {
		t.Fatalf("checkpoints after the prune = %+v, %v; want the prune at 6 and the checkpoint at 8", cps, err)
	}
	if _, err := db.PruneAudit(ctx(), prune); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("pruning again at a removed event: %v, want ErrConflict", err)
	}
	if h, _ := db.AuditHead(ctx(), "n"); h.Seq != 10 || h.CheckpointSeq != 8 {
		t.Fatalf("head after the prune = %+v", h)
	}
}

// Audit batches, like every write, must complete on a one-connection pool.
func TestAuditWritesCompleteOnAOneConnectionPool(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			cfg := storage.Config{DataDir: t.TempDir(), PoolSize: 1}
			if engine == "postgres" {
				cfg = storage.Config{DatabaseURL: storagetest.PostgresURL(t), PoolSize: 1}
			}
			c, cancel := context.WithTimeout(ctx(), 20*time.Second)
			defer cancel()
			db := storagetest.Open(t, cfg)
			for i := range int64(3) { // the first round runs unprepared, later ones prepared
				cp := storage.AuditCheckpoint{Node: "n", Seq: i + 1, Hash: "h", Kind: "checkpoint", CreatedAt: t0, MAC: "m"}
				recorded := auditEvent("n", i+1, t0)
				recorded.Outcome = &storage.AuditOutcome{Status: 400}
				if err := db.AppendAudit(c, storage.AuditBatch{Node: "n", Events: []storage.AuditEvent{recorded}, Checkpoint: &cp}); err != nil {
					t.Fatalf("round %d AppendAudit: %v", i, err)
				}
				if _, err := db.StoreAuditOutcomes(c, "n", []storage.AuditOutcome{{Seq: i + 1, Status: 200}}); err != nil {
					t.Fatalf("round %d StoreAuditOutcomes: %v", i, err)
				}
				if _, err := db.PruneAudit(c, storage.AuditCheckpoint{Node: "n", Seq: i + 1, Hash: auditEvent("n", i+1, t0).Hash, Kind: "prune", CreatedAt: t0, MAC: "m"}); err != nil {
					t.Fatalf("round %d PruneAudit: %v", i, err)
				}
				time.Sleep(50 * time.Millisecond) // let background preparation run
			}
		})
	}
}

func testAuditWholeEventsRollBack(t *testing.T, db *storage.DB, raw *sql.DB) {
	whole := auditEvent("n1", 1, t0)
	whole.Outcome = &storage.AuditOutcome{Seq: 1, Status: 200, Error: "", LatencyMicros: 9, MAC: "m1"}
	apart := auditEvent("n1", 2, t0)
	if err := db.AppendAudit(ctx(), storage.AuditBatch{Node: "n1", Events: []storage.AuditEvent{whole, apart}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.StoreAuditOutcomes(ctx(), "n1", []storage.AuditOutcome{{Seq: 2, Status: 404, Error: "no such secret", LatencyMicros: 3, MAC: "m2"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.MigrateDown(ctx(), 2); err != nil { // 000007, then 000006: outcomes back in their own table
		t.Fatal(err)
	}
	if n := count(t, raw, `SELECT count(*) FROM `+auditTable(db, "outcomes")+` WHERE (seq = 1 AND status = 200 AND latency_us = 9 AND mac = 'm1')
		OR (seq = 2 AND status = 404 AND error = 'no such secret' AND mac = 'm2')`); n != 2 {
		t.Fatalf("after rolling back, %d of the 2 outcomes are in the outcomes table", n)
	}
	if err := db.MigrateUp(ctx()); err != nil {
		t.Fatal(err)
	}
	got, err := db.AuditEvents(ctx(), "n1", nil, 10)
	if err != nil || len(got) != 2 || got[0].Outcome == nil || got[0].Outcome.MAC != "m1" || got[1].Outcome == nil || got[1].Outcome.MAC != "m2" {
		t.Fatalf("after migrating up again: %+v, %v", got, err)
	}
}

// A batch's arrays are unnested in the select list (a ProjectSet), not in
// FROM (a Function Scan), which copies every array into a tuplestore of
// its own first: for an event's 20 columns that was twice the database
// CPU of the whole statement.
func TestAuditBatchesUnnestWithoutFunctionScans(t *testing.T) {
	db := storagetest.Postgres(t)
	plans, err := db.ExplainAuditWrites(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, plan := range plans {
		if !strings.Contains(plan, `"Node Type": "ProjectSet"`) || strings.Contains(plan, `"Function Scan"`) {
			t.Errorf("plan unnests in FROM, or not at all:\n%s", plan)
		}
	}
}

// On SQLite, whether a node has an event older than a time is answered from
// the time index, which stops at the first such event (or finds none at
// once), never by reading every event of the node by its key.
func TestAuditEventBeforeUsesTheTimeIndexOnSQLite(t *testing.T) {
	db := storagetest.SQLite(t)
	plan, err := db.ExplainAuditEventBefore(ctx())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan, "audit_events_time_index") {
		t.Fatalf("plan %q does not use the time index", plan)
	}
}
