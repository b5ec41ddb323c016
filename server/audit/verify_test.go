package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// writeLog writes 30 events on node n1 with checkpoints at 10, 20 and 30;
// seq 15's request was refused (403).
func writeLog(t *testing.T, db logDB) {
	t.Helper()
	w := newWriter(t, db, "n1", Options{CheckpointEvery: 10, CheckpointInterval: time.Hour})
	for i := 1; i <= 30; i++ {
		seq, err := w.Append(ctx(), sample(i))
		if err != nil {
			t.Fatal(err)
		}
		status := 200
		if seq == 15 {
			status = 403
		}
		w.Complete(seq, Outcome{Status: status, Latency: time.Millisecond})
	}
	closeWriter(t, w)
}

// event reads node n1's stored event seq.
func event(t *testing.T, db logDB, seq int64) storage.AuditEvent {
	t.Helper()
	evs, err := db.AuditEvents(ctx(), "n1", new(seq-1), 1)
	if err != nil || len(evs) != 1 || evs[0].Seq != seq {
		t.Fatalf("event %d: %v %v", seq, evs, err)
	}
	return evs[0]
}

// rehash stores e with its hash recomputed, as someone who can write to the
// database but holds no key can do.
func rehash(t *testing.T, db logDB, e storage.AuditEvent) string {
	t.Helper()
	canon, _ := requestBytes(&e)
	e.Hash = chainHash(e.PrevHash, canon)
	db.exec(t, `UPDATE {events} SET path = $1, prev_hash = $2, hash = $3 WHERE node = 'n1' AND seq = $4`, e.Path, e.PrevHash, e.Hash, e.Seq)
	return e.Hash
}

// rewriteTail changes the path of node n1's event from, recomputes the
// hashes from there to the end (30) and deletes those events' outcomes,
// whose MACs would no longer match: what someone who can write to the
// database, but holds no key, can do to a tail no checkpoint covers.
func rewriteTail(t *testing.T, db logDB, from int64) {
	t.Helper()
	e := event(t, db, from)
	e.Path = "/v1/sys/innocent"
	prev := rehash(t, db, e)
	for s := from + 1; s <= 30; s++ {
		e := event(t, db, s)
		e.PrevHash = prev
		prev = rehash(t, db, e)
	}
	db.exec(t, `DELETE FROM {outcomes} WHERE node = 'n1' AND seq >= $1`, from)
}

// shift moves node n1's events from seq on by delta, with their outcomes,
// without ever holding two rows on one seq (the primary key is checked row
// by row).
func shift(t *testing.T, db logDB, from, delta int64) {
	t.Helper()
	for _, table := range []string{"{events}", "{outcomes}"} {
		db.exec(t, `UPDATE `+table+` SET seq = -seq WHERE node = 'n1' AND seq >= $1`, from)
		db.exec(t, `UPDATE `+table+` SET seq = -seq + $1 WHERE node = 'n1' AND seq < 0`, delta)
	}
}

// insertCopy stores e as a new row.
func insertCopy(t *testing.T, db logDB, e storage.AuditEvent) {
	t.Helper()
	if err := db.AppendAudit(ctx(), storage.AuditBatch{Node: "n1", Events: []storage.AuditEvent{e}}); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyNamesEachTamper(t *testing.T) {
	for _, c := range []struct {
		name   string
		tamper func(t *testing.T, db logDB)
		live   int64
		kind   Kind
		seq    int64
	}{
		{"an event's field changed", func(t *testing.T, db logDB) {
			db.exec(t, `UPDATE {events} SET path = '/v1/sys/innocent' WHERE node = 'n1' AND seq = 15`)
		}, 0, Modified, 15},
		{"an event's decision changed", func(t *testing.T, db logDB) {
			db.exec(t, `UPDATE {events} SET decision = 'allow' WHERE node = 'n1' AND seq = 30`)
			db.exec(t, `UPDATE {events} SET decision = 'deny' WHERE node = 'n1' AND seq = 1`)
		}, 0, Modified, 1},
		{"an event changed and its hash recomputed", func(t *testing.T, db logDB) {
			e := event(t, db, 15)
			e.Path = "/v1/sys/innocent"
			rehash(t, db, e)
		}, 0, Modified, 15},
		{"the chain rewritten from an event to the next checkpoint", func(t *testing.T, db logDB) {
			e := event(t, db, 15)
			e.Path = "/v1/sys/innocent"
			prev := rehash(t, db, e)
			for s := int64(16); s <= 20; s++ {
				e := event(t, db, s)
				e.PrevHash = prev
				prev = rehash(t, db, e)
			}
		}, 0, Modified, 15},
		{"the chain rewritten to the next checkpoint, outcome MACs removed", func(t *testing.T, db logDB) {
			prev := event(t, db, 14).Hash
			for s := int64(15); s <= 20; s++ {
				e := event(t, db, s)
				e.PrevHash = prev
				if s == 15 {
					e.Path = "/v1/sys/innocent"
				}
				prev = rehash(t, db, e)
			}
			db.exec(t, `UPDATE {outcomes} SET mac = '' WHERE node = 'n1' AND seq BETWEEN 15 AND 20`)
		}, 0, Modified, 11}, // the checkpoint at 20 no longer matches; the one at 10 still does: 11 to 20 are suspect
		{"an event deleted", func(t *testing.T, db logDB) {
			db.exec(t, `DELETE FROM {events} WHERE node = 'n1' AND seq = 15`)
		}, 0, Deleted, 15},
		{"an event deleted and the later ones renumbered", func(t *testing.T, db logDB) {
			db.exec(t, `DELETE FROM {events} WHERE node = 'n1' AND seq = 15`)
			db.exec(t, `DELETE FROM {outcomes} WHERE node = 'n1' AND seq = 15`)
			shift(t, db, 16, -1)
		}, 0, Deleted, 15},
		{"the first events deleted", func(t *testing.T, db logDB) {
			db.exec(t, `DELETE FROM {events} WHERE node = 'n1' AND seq <= 3`)
		}, 0, Deleted, 1},
		{"an event inserted with a valid hash, moving the later ones up", func(t *testing.T, db logDB) {
			forged := event(t, db, 15)
			forged.Path, forged.PrevHash, forged.Outcome = "/v1/sys/alibi", event(t, db, 14).Hash, nil
			canon, _ := requestBytes(&forged)
			forged.Hash = chainHash(forged.PrevHash, canon)
			shift(t, db, 15, 1)
			insertCopy(t, db, forged)
		}, 0, Inserted, 15},
		{"an event inserted with any hash, moving the later ones up", func(t *testing.T, db logDB) {
			forged := event(t, db, 15)
			forged.Path, forged.Hash, forged.Outcome = "/v1/sys/alibi", "f00d", nil
			shift(t, db, 15, 1)
			insertCopy(t, db, forged)
		}, 0, Inserted, 15},
		{"two events swapped", func(t *testing.T, db logDB) {
			db.exec(t, `UPDATE {events} SET seq = -1 WHERE node = 'n1' AND seq = 15`)
			db.exec(t, `UPDATE {events} SET seq = 15 WHERE node = 'n1' AND seq = 16`)
			db.exec(t, `UPDATE {events} SET seq = 16 WHERE node = 'n1' AND seq = -1`)
		}, 0, Reordered, 15},
		{"two distant events swapped", func(t *testing.T, db logDB) {
			db.exec(t, `UPDATE {events} SET seq = -1 WHERE node = 'n1' AND seq = 12`)
			db.exec(t, `UPDATE {events} SET seq = 12 WHERE node = 'n1' AND seq = 18`)
			db.exec(t, `UPDATE {events} SET seq = 18 WHERE node = 'n1' AND seq = -1`)
		}, 0, Reordered, 12},
		{"the tail cut below a checkpoint", func(t *testing.T, db logDB) {
			db.exec(t, `DELETE FROM {events} WHERE node = 'n1' AND seq > 25`)
		}, 0, Truncated, 26},
		{"the tail cut with its checkpoint, against the live head", func(t *testing.T, db logDB) {
			db.exec(t, `DELETE FROM {events} WHERE node = 'n1' AND seq > 25`)
			db.exec(t, `DELETE FROM {chain} WHERE node = 'n1' AND seq = 30`)
		}, 30, Truncated, 26},
		{"every event of a live node deleted", func(t *testing.T, db logDB) {
			db.exec(t, `DELETE FROM {events}`)
			db.exec(t, `DELETE FROM {chain}`)
		}, 30, Truncated, 1},
		{"an event planted far beyond the live head", func(t *testing.T, db logDB) {
			forged := event(t, db, 15)
			forged.Seq, forged.Path, forged.Outcome = 1_000_000, "/v1/sys/alibi", nil
			insertCopy(t, db, forged)
		}, 30, Inserted, 1_000_000},
		{"a checkpoint forged", func(t *testing.T, db logDB) {
			db.exec(t, `INSERT INTO {chain} (node, seq, hash, kind, created_at, mac) VALUES ('n1', 25, $1, 'checkpoint', $2, 'beef')`,
				event(t, db, 25).Hash, t0)
		}, 0, ForgedCheckpoint, 25},
		{"a checkpoint altered", func(t *testing.T, db logDB) {
			db.exec(t, `UPDATE {chain} SET hash = $1 WHERE node = 'n1' AND seq = 20`, event(t, db, 19).Hash)
		}, 0, ForgedCheckpoint, 20},
		{"a prune checkpoint forged to hide deleted events", func(t *testing.T, db logDB) {
			db.exec(t, `DELETE FROM {events} WHERE node = 'n1' AND seq <= 10`)
			db.exec(t, `INSERT INTO {chain} (node, seq, hash, kind, created_at, mac) VALUES ('n1', 10, $1, 'prune', $2, 'beef')`,
				"x", t0)
		}, 0, Deleted, 1},
		{"an event's policies made unreadable", func(t *testing.T, db logDB) {
			db.exec(t, `UPDATE {events} SET policies = 'x' WHERE node = 'n1' AND seq = 15`)
		}, 0, Modified, 15},
		{"an event's policies made null", func(t *testing.T, db logDB) {
			db.exec(t, `UPDATE {events} SET policies = 'null' WHERE node = 'n1' AND seq = 15`)
		}, 0, Modified, 15},
		{"an event's policies spelt otherwise", func(t *testing.T, db logDB) {
			db.exec(t, `UPDATE {events} SET policies = replace(policies, '","', '", "') WHERE node = 'n1' AND seq = 15`)
		}, 0, Modified, 15},
		{"an event planted at seq 0", func(t *testing.T, db logDB) {
			forged := event(t, db, 15)
			forged.Seq, forged.Path, forged.Outcome = 0, "/v1/sys/alibi", nil
			insertCopy(t, db, forged)
		}, 0, Inserted, 0},
		{"an event planted at a negative seq", func(t *testing.T, db logDB) {
			forged := event(t, db, 15)
			forged.Seq, forged.Path, forged.Outcome = -7, "/v1/sys/alibi", nil
			insertCopy(t, db, forged)
		}, 0, Inserted, -7},
		{"an event planted at the lowest seq there is", func(t *testing.T, db logDB) {
			forged := event(t, db, 15)
			forged.Seq, forged.Path, forged.Outcome = math.MinInt64, "/v1/sys/alibi", nil
			insertCopy(t, db, forged)
		}, 0, Inserted, math.MinInt64},
		{"a checkpoint planted at the lowest seq and kind there are", func(t *testing.T, db logDB) {
			db.exec(t, `INSERT INTO {chain} (node, seq, hash, kind, created_at, mac) VALUES ('n1', -9223372036854775808, 'x', '', $1, 'beef')`, t0)
		}, 0, ForgedCheckpoint, math.MinInt64},
		{"a checkpoint planted at a negative seq", func(t *testing.T, db logDB) {
			db.exec(t, `INSERT INTO {chain} (node, seq, hash, kind, created_at, mac) VALUES ('n1', -3, 'x', 'checkpoint', $1, 'beef')`, t0)
		}, 0, ForgedCheckpoint, -3},
		{"an event's time made infinite", func(t *testing.T, db logDB) {
			db.exec(t, `UPDATE {events} SET time = 'infinity' WHERE node = 'n1' AND seq = 15`)
		}, 0, Modified, 15},
		{"an event's request data made something other than JSON", func(t *testing.T, db logDB) {
			db.exec(t, `UPDATE {events} SET request_data = '{"a":' WHERE node = 'n1' AND seq = 15`)
		}, 0, Modified, 15},
		{"an outcome changed", func(t *testing.T, db logDB) {
			db.exec(t, `UPDATE {outcomes} SET status = 200 WHERE node = 'n1' AND seq = 15`)
		}, 0, OutcomeModified, 15},
		{"an outcome's error text changed", func(t *testing.T, db logDB) {
			db.exec(t, `UPDATE {outcomes} SET error = 'all fine' WHERE node = 'n1' AND seq = 7`)
		}, 0, OutcomeModified, 7},
	} {
		t.Run(c.name, func(t *testing.T) {
			engines(t, func(t *testing.T, db logDB) {
				writeLog(t, db)
				c.tamper(t, db)
				var live map[string]int64
				if c.live > 0 {
					live = map[string]int64{"n1": c.live}
				}
				rep := mustVerify(t, db, live)
				p := rep.Problem
				if rep.OK || p == nil || p.Kind != c.kind || p.Seq != c.seq || p.Node != "n1" {
					t.Fatalf("got %+v; want %s at seq %d", p, c.kind, c.seq)
				}
				if len(rep.Nodes) != 1 || rep.Nodes[0].Problem == nil || *rep.Nodes[0].Problem != *p {
					t.Fatalf("the node's report does not carry the problem: %+v", rep.Nodes)
				}
				t.Log(p)
			})
		})
	}
}

func TestVerifyPassesAnUntamperedLog(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		writeLog(t, db)
		rep := mustVerify(t, db, map[string]int64{"n1": 30})
		last := event(t, db, 30)
		want := NodeReport{Node: "n1", Events: 30, Last: 30, Checkpoints: 3, Anchored: 30, anchoredHash: last.Hash, lastTime: last.Time, latest: last.Time}
		if !rep.OK || rep.Problem != nil || rep.Events != 30 || len(rep.Nodes) != 1 || rep.Nodes[0] != want {
			t.Fatalf("report %+v, nodes %+v", rep, rep.Nodes)
		}
	})
}

// Events after the last checkpoint verify as a chain, but nothing vouches
// for them yet: they are counted, not failed. That includes one appended
// by someone who recomputed its hash.
func TestEventsAfterTheLastCheckpointAreCountedAsUnanchored(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		writeLog(t, db)
		extra := event(t, db, 30)
		extra.Seq, extra.PrevHash, extra.Outcome = 31, extra.Hash, nil
		canon, _ := requestBytes(&extra)
		extra.Hash = chainHash(extra.PrevHash, canon)
		insertCopy(t, db, extra)
		rep := mustVerify(t, db, map[string]int64{"n1": 30})
		if !rep.OK || rep.Nodes[0].Unanchored != 1 || rep.Nodes[0].Anchored != 30 || rep.Nodes[0].MissingOutcomes != 1 {
			t.Fatalf("%+v %v", rep.Nodes, rep.Problem)
		}
	})
}

func TestVerifyNeedsTheKeys(t *testing.T) {
	db := postgresLog(t)
	if _, err := Verify(ctx(), db, nil, VerifyOptions{}); !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("verify while sealed: %v", err)
	}
}

// Verify reads in pages; a log several pages long still verifies and a
// tamper on a page boundary is still named.
func TestVerifyReadsLongLogsInPages(t *testing.T) {
	db := postgresLog(t)
	// No checkpoints by time: only every 700 events, however slow the machine.
	w := newWriter(t, db, "n1", Options{CheckpointEvery: 700, CheckpointInterval: time.Hour})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 330 {
				seq, err := w.Append(ctx(), sample(g*1000+i))
				if err != nil {
					t.Error(err)
					return
				}
				w.Complete(seq, Outcome{Status: 200})
			}
		}()
	}
	wg.Wait()
	closeWriter(t, w)
	if rep := mustVerify(t, db, nil); !rep.OK || rep.Events != 2640 || rep.Nodes[0].Checkpoints != 4 {
		t.Fatalf("%+v %v", rep.Nodes, rep.Problem)
	}
	db.exec(t, `UPDATE {events} SET seq = -1 WHERE seq = 1000`)
	db.exec(t, `UPDATE {events} SET seq = 1000 WHERE seq = 1001`)
	db.exec(t, `UPDATE {events} SET seq = 1001 WHERE seq = -1`)
	if p := mustVerify(t, db, nil).Problem; p == nil || p.Kind != Reordered || p.Seq != 1000 {
		t.Fatalf("swap across a page boundary: %v", p)
	}
}

// An outcome stored apart corrects one stored with its event (whole) only
// as the writer writes corrections: under the same keys. One without a MAC
// standing in for an authenticated one, or an altered outcome in the row
// behind a correction, is named.
func TestACorrectionCannotHideTheOutcomeItCorrects(t *testing.T) {
	for _, c := range []struct {
		name   string
		tamper func(t *testing.T, db logDB)
	}{
		{"an outcome without a MAC put in front of a denial", func(t *testing.T, db logDB) {
			db.exec(t, `INSERT INTO {outcomes} (node, seq, status, error, latency_us, mac) VALUES ('n1', 1, 200, '', 5, '')`)
		}},
		{"the row's outcome altered behind a correction", func(t *testing.T, db logDB) {
			o := storage.AuditOutcome{Seq: 1, Status: 503, Error: unconfirmedError}
			o.MAC = outcomeMAC(testKeys, event(t, db, 1).Hash, o)
			if _, err := db.StoreAuditOutcomes(ctx(), "n1", []storage.AuditOutcome{o}); err != nil {
				t.Fatal(err)
			}
			db.exec(t, `UPDATE {events} SET status = 200 WHERE node = 'n1' AND seq = 1`)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			engines(t, func(t *testing.T, db logDB) {
				w := newWriter(t, db, "n1", Options{})
				if err := w.Record(ctx(), withOutcome(sample(1), 403)); err != nil {
					t.Fatal(err)
				}
				closeWriter(t, w)
				if rep := mustVerify(t, db, nil); !rep.OK {
					t.Fatalf("before the tamper: %+v", rep.Problem)
				}
				c.tamper(t, db)
				rep := mustVerify(t, db, nil)
				if p := rep.Problem; rep.OK || p == nil || p.Kind != OutcomeModified || p.Seq != 1 {
					t.Fatalf("got %+v; want %s at seq 1", p, OutcomeModified)
				}
				t.Log(rep.Problem)
			})
		})
	}
}

// Removing every checkpoint makes the whole log unanchored, and free to
// rewrite with recomputed hashes: nothing in the database proves that, but
// a node no checkpoint covers whose events began more than AnchorGrace ago
// is reported as a checkpoint overdue.
func TestUnanchoredEventsPastTheGraceAreReportedOverdue(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		writeLog(t, db)
		first := event(t, db, 1)
		db.exec(t, `DELETE FROM {chain}`)
		rewriteTail(t, db, 5)

		verify := func(now time.Time) Report {
			rep, err := Verify(ctx(), db, testKeys, VerifyOptions{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			return rep
		}
		rep := verify(first.Time.Add(AnchorGrace / 2))
		n := rep.Nodes[0]
		if !rep.OK || rep.CheckpointOverdue || n.CheckpointOverdue || n.Unanchored != 30 || !n.UnanchoredSince.Equal(first.Time) {
			t.Fatalf("within the grace: %+v", rep)
		}
		rep = verify(first.Time.Add(AnchorGrace + time.Second))
		n = rep.Nodes[0]
		if !rep.OK || !rep.CheckpointOverdue || !n.CheckpointOverdue || n.Unanchored != 30 || !n.UnanchoredSince.Equal(first.Time) {
			t.Fatalf("past the grace: %+v", rep)
		}
	})
}

// Unanchored events dated ahead of the verifier's clock could never grow
// old enough to be overdue, so forged ones would be dated so: those more
// than AnchorGrace ahead are reported overdue, on a node never covered and
// after a node's last checkpoint alike.
func TestUnanchoredEventsDatedAheadAreReportedOverdue(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		writeLog(t, db)
		verify := func(now time.Time) Report {
			rep, err := Verify(ctx(), db, testKeys, VerifyOptions{Now: now})
			if err != nil || !rep.OK {
				t.Fatalf("%+v, %v", rep, err)
			}
			return rep
		}
		db.exec(t, `DELETE FROM {chain} WHERE seq = 30`)
		tail := event(t, db, 21).Time
		if rep := verify(tail.Add(time.Minute)); rep.CheckpointOverdue || rep.Nodes[0].Unanchored != 10 {
			t.Fatalf("a tail a minute old: %+v", rep)
		}
		if rep := verify(tail.Add(-AnchorGrace / 2)); rep.CheckpointOverdue {
			t.Fatalf("a tail dated within the grace ahead: %+v", rep)
		}
		if rep := verify(tail.Add(-time.Hour)); !rep.CheckpointOverdue || !rep.Nodes[0].CheckpointOverdue {
			t.Fatalf("a tail dated an hour ahead: %+v", rep)
		}
		db.exec(t, `DELETE FROM {chain}`)
		if rep := verify(event(t, db, 1).Time.Add(-time.Hour)); !rep.CheckpointOverdue || rep.Nodes[0].Anchored != 0 {
			t.Fatalf("a node never covered, dated an hour ahead: %+v", rep)
		}
	})
}

// An untampered log whose last checkpoint covers every event has nothing
// overdue, however late it is verified.
func TestAnAnchoredLogIsNeverOverdue(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		writeLog(t, db)
		rep, err := Verify(ctx(), db, testKeys, VerifyOptions{Now: time.Now().Add(24 * time.Hour)})
		if err != nil || !rep.OK || rep.CheckpointOverdue || rep.Nodes[0].Unanchored != 0 || !rep.Nodes[0].UnanchoredSince.IsZero() {
			t.Fatalf("%+v, %v", rep, err)
		}
	})
}

// The head a running writer holds also catches a tail rewritten after its
// last checkpoint, with that checkpoint removed: the stored chain reaches
// the writer's seq with another hash.
func TestTheLiveHeadCatchesARewrittenTail(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		writeLog(t, db)
		head := event(t, db, 30).Hash
		db.exec(t, `DELETE FROM {chain} WHERE node = 'n1' AND seq = 30`)
		rewriteTail(t, db, 25)
		if rep := mustVerify(t, db, map[string]int64{"n1": 30}); !rep.OK {
			t.Fatalf("with the live seq alone the rewrite cannot show: %+v", rep.Problem)
		}
		rep, err := Verify(ctx(), db, testKeys, VerifyOptions{Live: map[string]Live{"n1": {Seq: 30, Hash: head}}})
		if err != nil {
			t.Fatal(err)
		}
		if p := rep.Problem; rep.OK || p == nil || p.Kind != Modified || p.Seq != 21 {
			t.Fatalf("got %+v; want %s at seq 21 (after the last checkpoint left, at 20)", p, Modified)
		}
		t.Log(rep.Problem)
	})
}

// writeSpreadLog writes node n1's events 1-30 ten at a time, three minutes
// apart by the writer's clock (checkpoints at 10, 20 and 30), starting
// from start.
func writeSpreadLog(t *testing.T, db logDB, start time.Time) {
	t.Helper()
	var mu sync.Mutex
	now := start
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	w := newWriter(t, db, "n1", Options{CheckpointEvery: 10, CheckpointInterval: time.Hour, Now: clock})
	for i := 1; i <= 30; i++ {
		seq, err := w.Append(ctx(), sample(i))
		if err != nil {
			t.Fatal(err)
		}
		w.Complete(seq, Outcome{Status: 200})
		if i%10 == 0 {
			mu.Lock()
			now = now.Add(3 * time.Minute)
			mu.Unlock()
		}
	}
	closeWriter(t, w)
}

// Unanchored events spanning more than AnchorGrace by their node's own
// clock are overdue however recent they are; a short tail, like the one a
// node that stopped abruptly leaves, is overdue only once older than
// StaleTail, so a node whose clock is behind the verifier's is not overdue
// for that alone.
func TestOverdueIsJudgedByTheNodesOwnClock(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		behind := time.Now().Add(-10 * time.Minute)
		writeSpreadLog(t, db, behind)
		rep, err := Verify(ctx(), db, testKeys, VerifyOptions{})
		if err != nil || !rep.OK || rep.CheckpointOverdue || rep.Nodes[0].Anchored != 30 {
			t.Fatalf("a node's clock ten minutes behind: %+v, %v", rep, err)
		}
		// Its last two checkpoints removed: events 11-30 span three minutes
		// with nothing vouching for them.
		db.exec(t, `DELETE FROM {chain} WHERE node = 'n1' AND seq > 10`)
		rep, err = Verify(ctx(), db, testKeys, VerifyOptions{Now: behind.Add(5 * time.Minute)})
		n := rep.Nodes[0]
		if err != nil || !rep.OK || !rep.CheckpointOverdue || !n.CheckpointOverdue || n.Anchored != 10 || n.Unanchored != 20 ||
			!n.UnanchoredSince.Equal(event(t, db, 11).Time) {
			t.Fatalf("two checkpoints removed: %+v, %v", rep, err)
		}
		// Only the last removed: a tail of ten events at one moment, like
		// a node that stopped abruptly, is not overdue.
		db.exec(t, `INSERT INTO {chain} (node, seq, hash, kind, created_at, mac) VALUES ('n1', 20, $1, 'checkpoint', $2, $3)`,
			event(t, db, 20).Hash, t0, checkpointMAC(testKeys, storage.AuditCheckpoint{Node: "n1", Seq: 20, Hash: event(t, db, 20).Hash, Kind: kindCheckpoint}))
		rep, err = Verify(ctx(), db, testKeys, VerifyOptions{})
		if n := rep.Nodes[0]; err != nil || !rep.OK || rep.CheckpointOverdue || n.Anchored != 20 || n.Unanchored != 10 {
			t.Fatalf("a short tail: %+v, %v", rep, err)
		}
		rep, err = Verify(ctx(), db, testKeys, VerifyOptions{Now: time.Now().Add(StaleTail)})
		if n := rep.Nodes[0]; err != nil || !rep.OK || !rep.CheckpointOverdue || n.Unanchored != 10 {
			t.Fatalf("a short tail past StaleTail: %+v, %v", rep, err)
		}
	})
}

// growingArchive commits more of node n1's events, with their checkpoint,
// once the walk has begun reading events: what a busy node does during a
// long verification.
type growingArchive struct {
	logDB
	grow func()
	once *sync.Once
}

func (g growingArchive) AuditEvents(ctx context.Context, node string, after *int64, limit int) ([]storage.AuditEvent, error) {
	g.once.Do(g.grow)
	return g.logDB.AuditEvents(ctx, node, after, limit)
}

// Verify walks each chain as it stood when it began: events committed
// meanwhile wait for the next verification, rather than ending the walk on
// a tail whose checkpoints it read too early.
func TestVerifyWalksTheLogAsItStoodWhenItBegan(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		writeLog(t, db)
		a := growingArchive{logDB: db, once: &sync.Once{}, grow: func() {
			w := newWriter(t, db, "n1", Options{CheckpointEvery: 5, CheckpointInterval: time.Hour})
			appendN(t, w, 5)
			closeWriter(t, w)
		}}
		rep, err := Verify(ctx(), a, testKeys, VerifyOptions{})
		if err != nil || !rep.OK || rep.Events != 30 || rep.Nodes[0].Last != 30 || rep.Nodes[0].Unanchored != 0 {
			t.Fatalf("%+v, %v", rep, err)
		}
		if rep := mustVerify(t, db, nil); !rep.OK || rep.Events != 35 {
			t.Fatalf("the next verification: %+v", rep)
		}
	})
}

// Rows altered into values the writer never stores (a time that is not a
// time, request data that is not JSON) are named by verify and still
// listed with the rest of the log, which a listing can page through.
func TestUnreadableRowsAreListedAndNamed(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		writeLog(t, db)
		db.exec(t, `UPDATE {events} SET time = '-infinity' WHERE node = 'n1' AND seq = 3`)
		db.exec(t, `UPDATE {events} SET request_data = 'not json' WHERE node = 'n1' AND seq = 4`)
		var all []Event
		for after := Cursor(""); ; {
			page, next, err := List(ctx(), db, Filter{After: after, Limit: 7})
			if err != nil {
				t.Fatalf("listing a log with unreadable rows: %v", err)
			}
			if _, err := json.Marshal(page); err != nil {
				t.Fatalf("a page with unreadable rows does not encode: %v", err)
			}
			all = append(all, page...)
			if next == "" {
				break
			}
			after = next
		}
		if len(all) != 30 {
			t.Fatalf("listed %d events, want 30", len(all))
		}
		if p := mustVerify(t, db, nil).Problem; p == nil || p.Kind != Modified || p.Seq != 3 {
			t.Fatalf("verify: %+v, want modified at seq 3", p)
		}
	})
}

// Empty request_data means what NULL means and hashes alike, but the
// writer never stores it: a row holding it was altered, and is named.
func TestEmptyRequestDataIsNamedAsModified(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		writeLog(t, db)
		if n := db.count(t, `SELECT count(*) FROM {events} WHERE request_data = ''`); n != 0 {
			t.Fatalf("the writer stored %d empty request_data values", n)
		}
		db.exec(t, `UPDATE {events} SET request_data = '' WHERE node = 'n1' AND seq = 6 AND request_data IS NULL`)
		if n := db.count(t, `SELECT count(*) FROM {events} WHERE request_data = ''`); n != 1 {
			t.Fatalf("the tamper changed %d rows, want 1", n)
		}
		p := mustVerify(t, db, nil).Problem
		if p == nil || p.Kind != Modified || p.Seq != 6 || !strings.Contains(p.Detail, "request_data") {
			t.Fatalf("verify: %+v, want modified at seq 6 naming request_data", p)
		}
	})
}

// SQLite orders and filters times as the text stored, so the same moment
// written in another form (another offset) moves an event in listings and
// past a prune's cut-off: verify names any time not in the writer's form,
// and a listing whose stored order goes backwards stops rather than page
// for ever.
func TestSQLiteTimesMustBeInTheWritersForm(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		if db.Engine() != storage.SQLite {
			t.Skip("PostgreSQL stores a timestamp, not text")
		}
		writeLog(t, db)
		// The first two events' moments in UTC+14: their text sorts after
		// every other's.
		for seq := int64(1); seq <= 2; seq++ {
			db.exec(t, `UPDATE {events} SET time = $1 WHERE node = 'n1' AND seq = $2`,
				event(t, db, seq).Time.In(time.FixedZone("", 14*3600)).Format("2006-01-02 15:04:05.999999999-07:00"), seq)
		}
		rep := mustVerify(t, db, nil)
		if p := rep.Problem; p == nil || p.Kind != Modified || p.Seq != 1 || !strings.Contains(p.String(), "form the writer stores") {
			t.Fatalf("verify: %+v, want modified at seq 1 for the time's form", p)
		}
		var err error
		pages := 0
		for after := Cursor(""); pages < 100; pages++ {
			var next Cursor
			if _, next, err = List(ctx(), db, Filter{After: after, Limit: 1}); err != nil || next == "" {
				break
			}
			after = next
		}
		if err == nil || !strings.Contains(err.Error(), "cannot be paged past node n1 seq 1") {
			t.Fatalf("after %d pages: %v; want a refusal to page past seq 1", pages, err)
		}
	})
}

// A writer that starts on events no checkpoint covers records so in its
// chain, first, and verify shows the range. A clean restart adopts
// nothing; a server stopped while sealed leaves what it took in; a stopped
// node's chain rewritten and stripped of its checkpoints is adopted whole,
// which is how that rewrite shows.
func TestAWriterAdoptsWhatItFindsUnanchoredAndVerifyShowsIt(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		writeLog(t, db) // 30 events, closed cleanly
		w := newWriter(t, db, "n1", Options{})
		appendN(t, w, 2)
		closeWriter(t, w)
		if n := mustVerify(t, db, nil).Nodes[0]; n.Adoptions != 0 || n.AdoptedEvents != 0 || n.LargestAdoption != nil {
			t.Fatalf("a clean restart adopted events: %+v", n)
		}

		sealed, err := NewWriter(ctx(), db, "n1", Options{}) // never given keys: no checkpoint
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, sealed, 3) // seqs 33 to 35
		closeWriter(t, sealed)
		sink := &syncBuffer{}
		w = newWriter(t, db, "n1", Options{Sink: sink})
		appendN(t, w, 1) // after the record (36): 37
		closeWriter(t, w)
		rep := mustVerify(t, db, nil)
		n := rep.Nodes[0]
		if a := n.LargestAdoption; !rep.OK || n.Adoptions != 1 || n.AdoptedEvents != 3 || a == nil ||
			a.From != 33 || a.To != 35 || a.Events != 3 || a.Seq != 36 || a.At.IsZero() || n.Anchored != 37 || n.Unanchored != 0 {
			t.Fatalf("after a sealed run: %+v (largest %+v) %v", n, n.LargestAdoption, rep.Problem)
		}
		if c := db.count(t, `SELECT count(*) FROM {events} WHERE node = 'n1' AND seq = 36 AND path = $1 AND resource = '33-35' AND operation = 'adopt' AND decision = 'none'`, AdoptionPath); c != 1 {
			t.Fatalf("%d adoption records at seq 36, want 1", c)
		}
		if !strings.Contains(sink.String(), `"`+AdoptionPath+`"`) {
			t.Fatalf("the sink has no adoption record:\n%s", sink.String())
		}
		// The record is an event of the chain: removing it, or changing
		// the range it names (hashes recomputed), is found like any other.
		rec := event(t, db, 36)
		rec.Resource = "35-35"
		rehashResource(t, db, rec)
		if p := mustVerify(t, db, nil).Problem; p == nil || p.Kind != Modified || p.Seq != 36 {
			t.Fatalf("a narrowed adoption record: %+v", p)
		}
		db.exec(t, `DELETE FROM {events} WHERE node = 'n1' AND seq = 36`)
		if p := mustVerify(t, db, nil).Problem; p == nil || p.Kind != Deleted || p.Seq != 36 {
			t.Fatalf("a removed adoption record: %+v", p)
		}
	})
}

// rehashResource stores e's resource with its hash recomputed, as someone
// without the key can.
func rehashResource(t *testing.T, db logDB, e storage.AuditEvent) {
	t.Helper()
	canon, _ := requestBytes(&e)
	db.exec(t, `UPDATE {events} SET resource = $1, hash = $2 WHERE node = 'n1' AND seq = $3`, e.Resource, chainHash(e.PrevHash, canon), e.Seq)
}

func TestAStoppedNodesRewrittenChainIsAdoptedWholeAndShown(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		writeLog(t, db)
		db.exec(t, `DELETE FROM {chain}`)
		rewriteTail(t, db, 5)
		w := newWriter(t, db, "n1", Options{})
		appendN(t, w, 1)
		closeWriter(t, w)
		rep := mustVerify(t, db, nil)
		n := rep.Nodes[0]
		if a := n.LargestAdoption; !rep.OK || n.Adoptions != 1 || a == nil || a.From != 1 || a.To != 30 || a.Events != 30 {
			t.Fatalf("%+v (largest %+v) %v", n, n.LargestAdoption, rep.Problem)
		}
	})
}

// sealedRun appends n events with a writer that never gets keys: a server
// that ran sealed, leaving no checkpoint.
func sealedRun(t *testing.T, db logDB, n int) {
	t.Helper()
	w, err := NewWriter(ctx(), db, "n1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, w, n)
	closeWriter(t, w)
}

// restartAndForget restarts node n1 with keys, appends one event, stops
// it, and deletes every checkpoint up to seq through, as someone covering
// a rewrite would once the restarted writer's checkpoints stand.
func restartAndForget(t *testing.T, db logDB, through int64, opt Options) {
	t.Helper()
	w := newWriter(t, db, "n1", opt)
	appendN(t, w, 1)
	closeWriter(t, w)
	db.exec(t, `DELETE FROM {chain} WHERE node = 'n1' AND seq <= $1`, through)
}

func wantAdoption(t *testing.T, db logDB, adoptions, events, from, to int64) {
	t.Helper()
	rep := mustVerify(t, db, nil)
	n := rep.Nodes[0]
	a := n.LargestAdoption
	if !rep.OK || n.Adoptions != adoptions || n.AdoptedEvents != events || a == nil || a.From != from || a.To != to {
		t.Fatalf("want %d adoption(s) of %d events, the largest %d-%d; got %+v (largest %+v) %v", adoptions, events, from, to, n, a, rep.Problem)
	}
}

// Events rewritten under the checkpoint they end at: the last event's hash
// is not the checkpoint's, so the restarted writer adopts them, and
// deleting the old checkpoints afterwards shows the whole range.
func TestAChainRewrittenUnderItsLastCheckpointIsAdopted(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		writeLog(t, db)
		rewriteTail(t, db, 1) // checkpoints 10, 20, 30 kept
		restartAndForget(t, db, 30, Options{})
		wantAdoption(t, db, 1, 30, 1, 30)
		if n := db.count(t, `SELECT count(*) FROM {events} WHERE path = $1 AND resource = '1-30'`, AdoptionPath); n != 1 {
			t.Fatalf("the record should name what the writer could not vouch for, 1-30; found %d such records", n)
		}
	})
}

// A checkpoint planted at the head with the rewritten head's hash but no
// valid MAC is found out once the writer has keys: reported, and the
// chain before it recorded as adopted.
func TestAPlantedCheckpointAtTheHeadIsFoundOut(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		writeLog(t, db)
		db.exec(t, `DELETE FROM {chain}`)
		rewriteTail(t, db, 1)
		db.exec(t, `INSERT INTO {chain} (node, seq, hash, kind, created_at, mac) VALUES ('n1', 30, $1, 'checkpoint', $2, 'junk')`,
			event(t, db, 30).Hash, t0)
		errs := &errorLog{}
		restartAndForget(t, db, 30, Options{OnError: errs.add})
		wantAdoption(t, db, 1, 30, 1, 30)
		if e := errs.all(); len(e) != 1 || !strings.Contains(e[0].Error(), "seq 30") || !strings.Contains(e[0].Error(), "valid MAC") {
			t.Fatalf("the planted checkpoint was not reported: %v", e)
		}
	})
}

// An adoption record turned into an ordinary event (hashes recomputed)
// after its writer stopped does not vanish: the next start finds the chain
// rewritten under its last checkpoint and adopts it, record slot and all.
func TestAnErasedAdoptionRecordLeavesALargerOne(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		writeLog(t, db)
		sealedRun(t, db, 3) // 31-33
		w := newWriter(t, db, "n1", Options{})
		appendN(t, w, 1) // the record at 34, then 35
		closeWriter(t, w)
		rec := event(t, db, 34)
		rec.Path, rec.Operation, rec.Resource = "/v1/sys/health", "GET", ""
		canon, _ := requestBytes(&rec)
		prev := chainHash(rec.PrevHash, canon)
		db.exec(t, `UPDATE {events} SET path = $1, operation = $2, resource = $3, hash = $4 WHERE node = 'n1' AND seq = 34`,
			rec.Path, rec.Operation, rec.Resource, prev)
		next := event(t, db, 35)
		next.PrevHash = prev
		rehash(t, db, next)
		db.exec(t, `DELETE FROM {outcomes} WHERE node = 'n1' AND seq >= 34`)
		db.exec(t, `UPDATE {events} SET status = NULL, error = NULL, latency_us = NULL, outcome_mac = NULL WHERE node = 'n1' AND seq >= 34`)
		restartAndForget(t, db, 35, Options{})
		wantAdoption(t, db, 1, 35, 1, 35)
	})
}

// The range verify reports is the one it found unanchored, not the one the
// record names: a record that says 21-30 because a checkpoint at 20 was
// left standing shows as 1-30 once that checkpoint goes too.
func TestARecordsOwnRangeIsNotBelieved(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		writeLog(t, db)
		rewriteTail(t, db, 1)
		db.exec(t, `DELETE FROM {chain} WHERE node = 'n1' AND seq = 30`)
		restartAndForget(t, db, 30, Options{})
		if c := db.count(t, `SELECT count(*) FROM {events} WHERE path = $1 AND resource = '21-30'`, AdoptionPath); c != 1 {
			t.Fatalf("the writer should have recorded what it saw, 21-30; found %d such records", c)
		}
		wantAdoption(t, db, 1, 30, 1, 30)
	})
}

// Runs that end sealed, one after another, each adopt what the one before
// left: with no checkpoint between their records, verify counts one range,
// up to the last record, each event once.
func TestSuccessiveAdoptionsMakeOneRange(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		writeLog(t, db)     // checkpointed through 30
		sealedRun(t, db, 3) // 31-33
		sealedRun(t, db, 1) // its record at 34, then 35
		w := newWriter(t, db, "n1", Options{})
		appendN(t, w, 1) // its record at 36, then 37
		closeWriter(t, w)
		wantAdoption(t, db, 1, 5, 31, 35)
	})
}

// Records planted among rewritten events do not cut the rewrite into
// crash-sized adoptions: with no verified checkpoint between them and the
// restart's own record, they make one range with it.
func TestPlantedRecordsDoNotSplitARewrite(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		writeLog(t, db)
		db.exec(t, `DELETE FROM {chain}`)
		db.exec(t, `DELETE FROM {outcomes} WHERE node = 'n1'`)
		db.exec(t, `UPDATE {events} SET status = NULL, error = NULL, latency_us = NULL, outcome_mac = NULL WHERE node = 'n1'`)
		prev := GenesisHash
		for s := int64(1); s <= 30; s++ {
			e := event(t, db, s)
			e.PrevHash, e.Path = prev, "/v1/sys/innocent"
			if s%5 == 0 {
				e.Path, e.Operation, e.Resource, e.Decision = AdoptionPath, "adopt", "1-1", DecisionNone
			}
			canon, _ := requestBytes(&e)
			e.Hash = chainHash(prev, canon)
			db.exec(t, `UPDATE {events} SET path = $1, operation = $2, resource = $3, decision = $4, prev_hash = $5, hash = $6 WHERE node = 'n1' AND seq = $7`,
				e.Path, e.Operation, e.Resource, e.Decision, e.PrevHash, e.Hash, s)
			prev = e.Hash
		}
		restartAndForget(t, db, 0, Options{}) // its record at 31
		wantAdoption(t, db, 1, 30, 1, 30)
	})
}

// forgedNext is the event someone without the key could chain after seq-1.
func forgedNext(t *testing.T, db logDB, seq int64) storage.AuditEvent {
	t.Helper()
	prev := event(t, db, seq-1)
	e := storage.AuditEvent{Node: "n1", Seq: seq, Time: prev.Time, RequestID: "req-x", ClientIP: "198.51.100.4",
		TokenAccessor: "acc-1234", AuthMethod: "token", Operation: "GET", Path: "/v1/sys/health",
		Policies: []string{}, Decision: DecisionNone, PrevHash: prev.Hash}
	canon, _ := requestBytes(&e)
	e.Hash = chainHash(e.PrevHash, canon)
	return e
}

// rewriteForJump rewrites n1's whole chain, drops its checkpoints and
// outcomes, and plants a prune row at 31 with the hash of an event chained
// after 30, which it returns: a writer started now continues after 31.
func rewriteForJump(t *testing.T, db logDB) storage.AuditEvent {
	t.Helper()
	writeLog(t, db)
	db.exec(t, `DELETE FROM {chain}`)
	rewriteTail(t, db, 1)
	db.exec(t, `UPDATE {events} SET status = NULL, error = NULL, latency_us = NULL, outcome_mac = NULL WHERE node = 'n1'`)
	e31 := forgedNext(t, db, 31)
	db.exec(t, `INSERT INTO {chain} (node, seq, hash, kind, created_at, mac) VALUES ('n1', 31, $1, 'prune', $2, 'junk')`, e31.Hash, t0)
	return e31
}

// A checkpoint planted beyond the stored events makes a starting writer
// jump past it; once it has keys it finds the MAC forged and records the
// chain before it as adopted, so filling the gap and removing the row
// afterwards does not leave a log that verifies with nothing to show.
func TestAForgedJumpIsRecordedAsAnAdoption(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		e31 := rewriteForJump(t, db)
		errs := &errorLog{}
		w, err := NewWriter(ctx(), db, "n1", Options{OnError: errs.add})
		if err != nil {
			t.Fatal(err)
		}
		w.SetKeys(testKeys)
		appendN(t, w, 3) // the record at 32, then 33, 34
		closeWriter(t, w)
		insertCopy(t, db, e31)
		db.exec(t, `DELETE FROM {chain} WHERE node = 'n1' AND seq = 31`)
		wantAdoption(t, db, 1, 31, 1, 31)
		if e := errs.all(); len(e) != 1 || !strings.Contains(e[0].Error(), "seq 31") {
			t.Fatalf("the forged checkpoint was not reported once: %v", e)
		}
	})
}

// The jump stays to be checked across a head re-read while sealed (a
// commit held up until it times out): the forged row, removed meanwhile,
// is still found out at unseal.
func TestAForgedJumpIsCheckedAfterAReread(t *testing.T) {
	db := postgresLog(t)
	e31 := rewriteForJump(t, db)
	errs := &errorLog{}
	w, err := NewWriter(ctx(), db, "n1", Options{OnError: errs.add, CommitTimeout: 300 * time.Millisecond}) // sealed
	if err != nil {
		t.Fatal(err)
	}
	insertCopy(t, db, e31)
	db.exec(t, `DELETE FROM {chain} WHERE node = 'n1' AND seq = 31`)
	tx, err := db.raw.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`INSERT INTO audit.events (node, seq, time, request_id, client_ip, token_accessor, token_hmac, auth_method,
		operation, path, resource, capability, policies, decision, prev_hash, hash)
		SELECT node, 32, time, request_id, client_ip, token_accessor, token_hmac, auth_method,
		operation, path, resource, capability, policies, decision, hash, hash FROM audit.events WHERE node = 'n1' AND seq = 31`); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Append(ctx(), sample(1)); err == nil {
		t.Fatal("an append blocked by an uncommitted row at its seq succeeded")
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	appendN(t, w, 2) // sealed: 32, 33
	w.SetKeys(testKeys)
	appendN(t, w, 2) // the record at 34, then 35
	closeWriter(t, w)
	wantAdoption(t, db, 1, 33, 1, 33)
	if e := errs.all(); len(e) == 0 {
		t.Fatal("the forged checkpoint was not reported")
	}
}

// Unsealing checks a jumped-to checkpoint while the appender may already
// flush with the new keys: a checkpoint of the appender's must not slip in
// before the adoption that a forged one calls for. Here a request is
// served from inside the report of the forged row, with a checkpoint due
// at every batch.
func TestNoCheckpointSlipsInBeforeAForgedJumpsAdoption(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		e31 := rewriteForJump(t, db)
		var (
			w    *Writer
			once sync.Once
		)
		opt := Options{CheckpointEvery: 1, CheckpointInterval: time.Hour, OnError: func(err error) {
			if strings.Contains(err.Error(), "beyond the stored events") {
				once.Do(func() { appendN(t, w, 1) })
			}
		}}
		var err error
		if w, err = NewWriter(ctx(), db, "n1", opt); err != nil { // sealed: jumps past 31
			t.Fatal(err)
		}
		w.SetKeys(testKeys)
		appendN(t, w, 2)
		closeWriter(t, w)
		insertCopy(t, db, e31)
		db.exec(t, `DELETE FROM {chain} WHERE node = 'n1' AND seq = 31`)
		wantAdoption(t, db, 1, 31, 1, 31)
	})
}

// A head re-read (after a conflict) does not take a checkpoint row planted
// at the head for one of the writer's own: its last events still get a
// genuine checkpoint when it closes.
func TestAReReadDoesNotTakeAPlantedCheckpointForItsOwn(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		writeLog(t, db) // checkpoints at 10, 20, 30
		errs := &errorLog{}
		w := newWriter(t, db, "n1", Options{CheckpointEvery: 1000, CheckpointInterval: time.Hour, OnError: errs.add})
		appendN(t, w, 5) // 31-35, checkpointed at the latest by Close
		insertCopy(t, db, forgedNext(t, db, 36))
		if _, err := w.Append(ctx(), sample(99)); err == nil {
			t.Fatal("an append over a planted row succeeded")
		}
		db.exec(t, `DELETE FROM {events} WHERE node = 'n1' AND seq = 36`)
		db.exec(t, `INSERT INTO {chain} (node, seq, hash, kind, created_at, mac) VALUES ('n1', 35, $1, 'checkpoint', $2, 'junk')`,
			event(t, db, 35).Hash, t0)
		// The planted row stands where the final checkpoint goes: that is
		// said, and Close fails rather than end as if anchored.
		c, cancel := context.WithTimeout(ctx(), 500*time.Millisecond)
		defer cancel()
		if err := w.Close(c); err == nil {
			t.Fatal("Close succeeded though its final checkpoint could not be stored")
		}
		said := false
		for _, err := range errs.all() {
			said = said || strings.Contains(err.Error(), "already stands at seq 35")
		}
		if !said {
			t.Fatalf("the taken checkpoint was not reported: %v", errs.all())
		}
		db.exec(t, `DELETE FROM {chain} WHERE node = 'n1' AND mac = 'junk'`)
		// What it could not anchor, the next start adopts.
		restartAndForget(t, db, 0, Options{})
		wantAdoption(t, db, 1, 5, 31, 35)
	})
}

// A checkpoint whose place is taken does not undo its batch: the events
// are stored, the checkpoint is not, and the writer says so; a retry of a
// checkpoint that did commit is not mistaken for a taken place.
func TestATakenCheckpointPlaceKeepsTheEventsAndIsReported(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		writeLog(t, db)
		last := event(t, db, 30)
		own := storage.AuditCheckpoint{Node: "n1", Seq: 30, Hash: last.Hash, Kind: kindCheckpoint, CreatedAt: t0}
		own.MAC = checkpointMAC(testKeys, own)
		if err := db.AppendAudit(ctx(), storage.AuditBatch{Node: "n1", Checkpoint: &own}); err != nil {
			t.Fatalf("storing again the checkpoint that stands: %v", err)
		}
		e := forgedNext(t, db, 31)
		planted := storage.AuditCheckpoint{Node: "n1", Seq: 31, Hash: e.Hash, Kind: kindCheckpoint, CreatedAt: t0, MAC: "junk"}
		db.exec(t, `INSERT INTO {chain} (node, seq, hash, kind, created_at, mac) VALUES ('n1', 31, $1, 'checkpoint', $2, 'junk')`, e.Hash, t0)
		mine := planted
		mine.MAC = checkpointMAC(testKeys, mine)
		err := db.AppendAudit(ctx(), storage.AuditBatch{Node: "n1", Events: []storage.AuditEvent{e}, Checkpoint: &mine})
		if !errors.Is(err, storage.ErrCheckpointTaken) {
			t.Fatalf("a batch whose checkpoint place is taken: %v, want ErrCheckpointTaken", err)
		}
		if n := db.count(t, `SELECT count(*) FROM {events} WHERE node = 'n1' AND seq = 31`); n != 1 {
			t.Fatalf("the batch's event was not kept (%d rows)", n)
		}
	})
}

func takenReports(errs *errorLog) (n int) {
	for _, err := range errs.all() {
		if strings.Contains(err.Error(), "did not write already stands") {
			n++
		}
	}
	return n
}

// Rows planted at every seq ahead take every checkpoint's place: that is
// reported on the ticker, not once per request, as for a refused one.
func TestTakenPlacesAreNotReportedPerRequest(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		writeLog(t, db)
		errs := &errorLog{}
		w := newWriter(t, db, "n1", Options{CheckpointInterval: 50 * time.Millisecond, OnError: errs.add})
		for s := 31; s <= 400; s++ {
			db.exec(t, `INSERT INTO {chain} (node, seq, hash, kind, created_at, mac) VALUES ('n1', $1, 'x', 'checkpoint', $2, 'junk')`, s, t0)
		}
		appendN(t, w, 1)
		time.Sleep(120 * time.Millisecond) // a checkpoint came due, and found its place taken
		before := takenReports(errs)
		appendN(t, w, 100)
		if n := takenReports(errs) - before; n > 10 {
			t.Fatalf("%d taken-place reports for 100 requests: one per batch, not per tick", n)
		}
		c, cancel := context.WithTimeout(ctx(), 300*time.Millisecond)
		defer cancel()
		_ = w.Close(c) // its final checkpoint's place is taken too
	})
}

// A server started and stopped with keys but without a single request
// still checks what it started on: a planted checkpoint at the head is
// reported and the chain before it recorded as adopted.
func TestAStartAndStopChecksAPlantedAnchor(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		writeLog(t, db)
		db.exec(t, `DELETE FROM {chain} WHERE node = 'n1' AND seq = 30`)
		rewriteTail(t, db, 21)
		db.exec(t, `INSERT INTO {chain} (node, seq, hash, kind, created_at, mac) VALUES ('n1', 30, $1, 'checkpoint', $2, 'junk')`, event(t, db, 30).Hash, t0)
		errs := &errorLog{}
		w := newWriter(t, db, "n1", Options{OnError: errs.add})
		_ = w.Close(ctx())
		if !strings.Contains(fmt.Sprint(errs.all()), "valid MAC") {
			t.Fatalf("the planted checkpoint was not reported: %v", errs.all())
		}
		if n := db.count(t, `SELECT count(*) FROM {events} WHERE node = 'n1' AND path = $1`, AdoptionPath); n != 1 {
			t.Fatalf("%d adoption records, want 1", n)
		}
	})
}

// The same for a forged jump: its adoption is recorded before the stop.
func TestAStartAndStopRecordsAForgedJumpsAdoption(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		rewriteForJump(t, db)
		errs := &errorLog{}
		w := newWriter(t, db, "n1", Options{OnError: errs.add})
		_ = w.Close(ctx())
		if n := db.count(t, `SELECT count(*) FROM {events} WHERE node = 'n1' AND path = $1`, AdoptionPath); n != 1 {
			t.Fatalf("%d adoption records, want 1; reports: %v", n, errs.all())
		}
	})
}

// A stop that cannot store the adoption record it owes (here an event
// planted where the record goes) fails Close, rather than end as if all
// were settled.
func TestAStopThatCannotStoreItsAdoptionFails(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		writeLog(t, db)
		db.exec(t, `DELETE FROM {chain} WHERE node = 'n1' AND seq = 30`)
		db.exec(t, `INSERT INTO {chain} (node, seq, hash, kind, created_at, mac) VALUES ('n1', 30, $1, 'checkpoint', $2, 'junk')`, event(t, db, 30).Hash, t0)
		w := newWriter(t, db, "n1", Options{OnError: func(error) {}})
		insertCopy(t, db, forgedNext(t, db, 31)) // where the record would go
		c, cancel := context.WithTimeout(ctx(), 500*time.Millisecond)
		defer cancel()
		err := w.Close(c)
		if err == nil || !strings.Contains(err.Error(), "record of adopting") {
			t.Fatalf("Close = %v, want an error saying the adoption record was not stored", err)
		}
	})
}

// A value altered into something that cannot be read as what the writer
// stores is named as a change to its event, never a failed verification
// that would hide every other result. A checkpoint's time (which its MAC
// does not cover) made something else does not fail anything.
func TestVerifyNamesValuesOfAnotherType(t *testing.T) {
	columns := "node, seq, time, request_id, client_ip, token_accessor, token_hmac, auth_method, operation, path, resource, capability, policies, decision, request_data, prev_hash, hash"
	copyOf15 := func(node, seq string) string {
		return `INSERT INTO {events} (` + columns + `) SELECT ` + node + `, ` + seq + strings.TrimPrefix(columns, "node, seq") + ` FROM {events} WHERE node = 'n1' AND seq = 15`
	}
	for _, c := range []struct {
		name    string
		sqlite  bool // SQLite only: PostgreSQL's column types refuse it
		tamper  string
		problem bool
		kind    Kind
		seq     int64
	}{
		{"checkpoint times made infinite", false, `UPDATE {chain} SET created_at = 'infinity'`, false, "", 0},
		{"checkpoint times made text", true, `UPDATE {chain} SET created_at = 'yesterday'`, false, "", 0},
		{"an accessor stored as a BLOB", true, `UPDATE {events} SET token_accessor = CAST(token_accessor AS BLOB) WHERE seq = 15`, true, Modified, 15},
		{"a path stored as a BLOB", true, `UPDATE {events} SET path = CAST(path AS BLOB) WHERE seq = 15`, true, Modified, 15},
		{"an outcome's status made text", true, `UPDATE {outcomes} SET status = 'abc' WHERE seq = 15`, true, Modified, 15},
		{"an outcome's latency made text", true, `UPDATE {outcomes} SET latency_us = 'zz' WHERE seq = 15`, true, Modified, 15},
		{"an event's seq made a fraction", true, `UPDATE {events} SET seq = 15.5 WHERE seq = 15`, true, "", 0},
		{"an event's seq made text", true, `UPDATE {events} SET seq = 'abc' WHERE seq = 15`, true, "", 0},
		{"a copy planted under the node's name as a BLOB", true, copyOf15(`CAST(node AS BLOB)`, `seq`), true, "", 0},
		{"a copy planted at a fractional seq", true, copyOf15(`node`, `15.5`), true, "", 0},
		{"a checkpoint's seq made text", true, `UPDATE {chain} SET seq = 'abc' WHERE seq = 10`, true, "", 0},
		{"the last checkpoint's seq made a fraction", true, `UPDATE {chain} SET seq = 30.5 WHERE seq = 30`, true, "", 0},
		{"an outcome's seq made text", true, `UPDATE {outcomes} SET seq = 'abc' WHERE seq = 15`, true, "", 0},
		{"an event's status made text", true, `UPDATE {events} SET status = 'abc' WHERE seq = 14`, true, Modified, 14},
		{"an event's time stored as a BLOB", true, `UPDATE {events} SET time = CAST(time AS BLOB) WHERE seq = 14`, true, Modified, 14},
		{"the last checkpoint's kind stored as a BLOB", true, `UPDATE {chain} SET kind = CAST(kind AS BLOB) WHERE seq = 30`, true, Inserted, 30},
		{"an earlier checkpoint's kind stored as a BLOB", true, `UPDATE {chain} SET kind = CAST(kind AS BLOB) WHERE seq = 10`, true, "", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			engines(t, func(t *testing.T, db logDB) {
				if c.sqlite && db.events != "audit_events" {
					t.Skip("PostgreSQL's column types refuse it")
				}
				writeLog(t, db)
				if !c.problem {
					db.exec(t, `UPDATE {events} SET path = '/v1/sys/innocent' WHERE node = 'n1' AND seq = 29`)
				}
				db.exec(t, c.tamper)
				// Bounded: a row the reads cannot place must not make
				// them page for ever.
				c2, cancel := context.WithTimeout(ctx(), 30*time.Second)
				defer cancel()
				rep, err := Verify(c2, db, testKeys, VerifyOptions{})
				if err != nil {
					t.Fatalf("verify: %v", err)
				}
				p := rep.Problem
				if !c.problem {
					// Only the change to event 29 is found: the
					// verification did not fail.
					if p == nil || p.Kind != Modified || p.Seq != 29 {
						t.Fatalf("got %v; want modified at seq 29", p)
					}
					return
				}
				if rep.OK || p == nil || (c.kind == "" && p.Seq > 15) || (c.kind != "" && (p.Kind != c.kind || p.Seq != c.seq)) {
					t.Fatalf("got %v; want a problem at or before seq 15 (%s %d)", p, c.kind, c.seq)
				}
				t.Log(p)
			})
		})
	}
}

// On SQLite a row whose node name is stored as a BLOB is another node's to
// every read by node, yet a listing shows it as the named node's: verify
// names it, under that node, even when no other row of that node exists.
func TestVerifyNamesANodeNameStoredAsABlob(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		if db.events != "audit_events" {
			t.Skip("PostgreSQL's column types refuse it")
		}
		writeLog(t, db)
		columns := "seq, time, request_id, client_ip, token_accessor, token_hmac, auth_method, operation, path, resource, capability, policies, decision, request_data, prev_hash, hash"
		db.exec(t, `INSERT INTO {events} (node, `+columns+`) SELECT CAST('n9' AS BLOB), `+columns+` FROM {events} WHERE node = 'n1' AND seq = 15`)
		rep := mustVerify(t, db, nil)
		if rep.OK || len(rep.Nodes) != 2 || rep.Nodes[1].Node != "n9" || rep.Nodes[1].Problem == nil ||
			rep.Nodes[1].Problem.Kind != Inserted || rep.Nodes[1].Problem.Seq != 15 || rep.Problem != rep.Nodes[1].Problem {
			t.Fatalf("report %+v, problem %v", rep.Nodes, rep.Problem)
		}
		if rep.Nodes[0].Problem != nil {
			t.Fatalf("n1's own chain is whole: %v", rep.Nodes[0].Problem)
		}
		// A node known only by such a row (here an outcome) gets a report
		// of its own, in its place among the others.
		db.exec(t, `DELETE FROM {events} WHERE node = CAST('n9' AS BLOB)`)
		db.exec(t, `INSERT INTO {outcomes} (node, seq, status, error, latency_us, mac) VALUES (CAST('n5' AS BLOB), 3, 200, '', 1, '')`)
		rep = mustVerify(t, db, nil)
		if rep.OK || len(rep.Nodes) != 2 || rep.Nodes[1].Node != "n5" || rep.Nodes[1].Problem == nil || rep.Nodes[1].Problem.Seq != 3 {
			t.Fatalf("report %+v, problem %v", rep.Nodes, rep.Problem)
		}
	})
}

// BenchmarkVerify measures how fast a stored chain is verified, on each
// engine: 20,000 events (appended by 64 concurrent requests, so in group
// commits as a busy node writes them) with their checkpoints, read back in
// pages and rehashed. It reports events verified a second.
func BenchmarkVerify(b *testing.B) {
	for _, e := range []struct {
		name string
		open func(testing.TB) *storage.DB
	}{{"sqlite", storagetest.SQLite}, {"postgres", storagetest.Postgres}} {
		b.Run(e.name, func(b *testing.B) {
			db := e.open(b)
			const events, appenders = 20_000, 64
			w := newWriter(b, db, "bench", Options{})
			var wg sync.WaitGroup
			for a := range appenders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := a; i < events; i += appenders {
						seq, err := w.Append(ctx(), sample(i))
						if err != nil {
							b.Error(err)
							return
						}
						w.Complete(seq, Outcome{Status: 200, Latency: time.Millisecond})
					}
				}()
			}
			wg.Wait()
			closeWriter(b, w)
			start := time.Now()
			for b.Loop() {
				rep := mustVerify(b, db, nil)
				if !rep.OK || rep.Events != events {
					b.Fatalf("verified %d events, ok %v: %v", rep.Events, rep.OK, rep.Problem)
				}
			}
			b.ReportMetric(float64(events*b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}

// On SQLite, rows whose key is of a type the writer never stores (a seq
// made text or a fraction, a node name stored as a BLOB) are left out of
// listings, which page on that key: each listed event appears once, and
// verification names the rows. A prune over such a log refuses, rather
// than fail on the row.
func TestMistypedKeysNeitherRepeatInListingsNorFailAPrune(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		if db.events != "audit_events" {
			t.Skip("PostgreSQL's column types refuse it")
		}
		writeLog(t, db)
		db.exec(t, `UPDATE {events} SET seq = 'abc' WHERE seq = 5`)
		db.exec(t, `UPDATE {events} SET node = CAST(node AS BLOB) WHERE seq = 14`)
		db.exec(t, `UPDATE {events} SET seq = 15.5 WHERE seq = 15`)
		seen := map[int64]bool{}
		for after := Cursor(""); ; {
			page, next, err := List(ctx(), db, Filter{After: after, Limit: 7})
			if err != nil {
				t.Fatalf("listing: %v", err)
			}
			for _, e := range page {
				if seen[e.Seq] {
					t.Fatalf("event %d listed twice", e.Seq)
				}
				seen[e.Seq] = true
			}
			if next == "" {
				break
			}
			after = next
		}
		if len(seen) != 27 {
			t.Fatalf("listed %d events, want the 27 with whole keys", len(seen))
		}
		if rep := mustVerify(t, db, nil); rep.OK {
			t.Fatal("the log verified")
		}
		e16 := event(t, db, 16)
		if _, err := Prune(ctx(), db, testKeys, e16.Time); !errors.Is(err, ErrTampered) {
			t.Fatalf("prune = %v, want ErrTampered", err)
		}
	})
}

// stuckArchive answers every read of a page with the first page again: a
// store whose order cannot place a row. Verification must fail, not loop.
type stuckArchive struct{ logDB }

func (s stuckArchive) AuditEvents(ctx context.Context, node string, _ *int64, limit int) ([]storage.AuditEvent, error) {
	return s.logDB.AuditEvents(ctx, node, nil, limit)
}

func (s stuckArchive) AuditCheckpoints(ctx context.Context, node string, _ *storage.AuditCheckpoint, limit int) ([]storage.AuditCheckpoint, error) {
	return s.logDB.AuditCheckpoints(ctx, node, nil, limit)
}

func TestAPageThatDoesNotAdvanceFailsVerification(t *testing.T) {
	db := postgresLog(t)
	w := newWriter(t, db, "n1", Options{CheckpointEvery: 10, CheckpointInterval: time.Hour})
	appendN(t, w, pageSize+5)
	closeWriter(t, w)
	c, cancel := context.WithTimeout(ctx(), time.Minute)
	defer cancel()
	if _, err := Verify(c, stuckArchive{db}, testKeys, VerifyOptions{}); !errors.Is(err, errNoProgress) {
		t.Fatalf("verify over a store that repeats its first page: %v, want errNoProgress", err)
	}
}

// On SQLite a time is stored as text; the writer stores microseconds, all
// the chain hashes. A finer digit added to one hashes alike but moves the
// row past the microsecond a listing's cursor holds: verify names it, and a
// listing that meets it says so (409) rather than page on it for ever.
func TestASubMicrosecondTimeIsNamedAndStopsPaging(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		if db.events != "audit_events" {
			t.Skip("PostgreSQL stores microseconds")
		}
		writeLog(t, db)
		e := event(t, db, 12)
		db.exec(t, `UPDATE {events} SET time = $1 WHERE node = 'n1' AND seq = 12`,
			e.Time.Add(999*time.Nanosecond).UTC().Format("2006-01-02 15:04:05.999999999-07:00"))
		if p := mustVerify(t, db, nil).Problem; p == nil || p.Kind != Modified || p.Seq != 12 {
			t.Errorf("verify: %v, want modified at seq 12", p)
		}
		after := Cursor("")
		for range 100 {
			_, next, err := List(ctx(), db, Filter{After: after, Limit: 1})
			if err != nil {
				if fault.KindOf(err) != fault.Conflict {
					t.Fatalf("listing: %v, want a conflict", err)
				}
				return
			}
			if next == "" {
				return // paged past it
			}
			after = next
		}
		t.Fatal("100 pages of one event from a log of 30")
	})
}
