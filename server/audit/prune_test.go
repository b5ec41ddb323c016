package audit

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/storage"
)

// writeTimedLog writes events 1..n on node n1, event i at t0 + i seconds,
// with a checkpoint every 10 events and at the end.
func writeTimedLog(t *testing.T, db logDB, n int) {
	t.Helper()
	w := newWriter(t, db, "n1", Options{CheckpointEvery: 10, CheckpointInterval: time.Hour})
	appendTimed(t, w, 1, n)
	closeWriter(t, w)
}

func appendTimed(t *testing.T, w *Writer, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		e := sample(i)
		e.Time = t0.Add(time.Duration(i) * time.Second)
		seq, err := w.Append(ctx(), e)
		if err != nil || seq != int64(i) {
			t.Fatalf("append %d = %d, %v", i, seq, err)
		}
		w.Complete(seq, Outcome{Status: 200})
	}
}

func TestPruneKeepsTheRemainderVerifiable(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		writeTimedLog(t, db, 30)
		// Events 1..24 are older than 25s; a checkpoint vouches up to 20.
		removed, err := Prune(ctx(), db, testKeys, t0.Add(25*time.Second))
		if err != nil || removed != 20 {
			t.Fatalf("prune = %d, %v; want 20 removed (up to the last checkpoint before the cut)", removed, err)
		}
		rep := mustVerify(t, db, map[string]int64{"n1": 30})
		if n := rep.Nodes[0]; !rep.OK || n.PrunedThrough != 20 || n.Events != 10 || n.Anchored != 30 {
			t.Fatalf("after the prune: %+v %v", rep.Nodes, rep.Problem)
		}
		if removed, err := Prune(ctx(), db, testKeys, t0.Add(25*time.Second)); err != nil || removed != 0 {
			t.Fatalf("pruning again = %d, %v; want nothing", removed, err)
		}
	})
}

func TestATamperNextToThePruneBoundaryIsCaught(t *testing.T) {
	for _, c := range []struct {
		name   string
		tamper string
		kind   Kind
		seq    int64
	}{
		{"the first remaining event modified", `UPDATE {events} SET path = '/v1/x' WHERE seq = 21`, Modified, 21},
		{"the first remaining event deleted", `DELETE FROM {events} WHERE seq = 21`, Deleted, 21},
		{"the prune checkpoint removed", `DELETE FROM {chain} WHERE kind = 'prune'`, Deleted, 1},
		{"the prune checkpoint moved past an event", `UPDATE {chain} SET seq = 22 WHERE kind = 'prune'`, Deleted, 1},
		{"a pruned event put back", `INSERT INTO {events} (node, seq, time, request_id, client_ip, token_accessor, token_hmac,
			auth_method, operation, path, resource, capability, policies, decision, request_data, prev_hash, hash)
			SELECT node, 20, time, request_id, client_ip, token_accessor, token_hmac,
			auth_method, operation, path, resource, capability, policies, decision, request_data, prev_hash, hash FROM {events} WHERE seq = 21`, Inserted, 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			engines(t, func(t *testing.T, db logDB) {
				writeTimedLog(t, db, 30)
				if _, err := Prune(ctx(), db, testKeys, t0.Add(25*time.Second)); err != nil {
					t.Fatal(err)
				}
				db.exec(t, c.tamper)
				if p := mustVerify(t, db, nil).Problem; p == nil || p.Kind != c.kind || p.Seq != c.seq {
					t.Fatalf("got %v; want %s at seq %d", p, c.kind, c.seq)
				}
			})
		})
	}
}

// An event moved in the database to a seq before every other, with a time
// after the cut-off, leaves nothing before the node's first event from
// then on: the prune must still say that the node's log fails
// verification, not pass over it as if it had nothing to prune.
func TestPruneReportsAnEventMovedBeforeTheOthers(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		writeTimedLog(t, db, 30)
		db.exec(t, `UPDATE {events} SET seq = -5 WHERE seq = 27`)
		removed, err := Prune(ctx(), db, testKeys, t0.Add(25*time.Second))
		if !errors.Is(err, ErrTampered) || removed != 0 {
			t.Fatalf("prune = %d, %v; want ErrTampered and nothing removed", removed, err)
		}
		if n := db.count(t, `SELECT count(*) FROM {events}`); n != 30 {
			t.Fatalf("%d events left", n)
		}
	})
}

func TestPruneRefusesToDestroyEvidence(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		writeTimedLog(t, db, 30)
		db.exec(t, `UPDATE {events} SET path = '/v1/x' WHERE seq = 5`)
		removed, err := Prune(ctx(), db, testKeys, t0.Add(25*time.Second))
		if !errors.Is(err, ErrTampered) || removed != 0 {
			t.Fatalf("prune over a tampered event = %d, %v; want ErrTampered and nothing removed", removed, err)
		}
		if n := db.count(t, `SELECT count(*) FROM {events}`); n != 30 {
			t.Fatalf("%d events left", n)
		}
		if p := mustVerify(t, db, nil).Problem; p == nil || p.Seq != 5 {
			t.Fatalf("the evidence is gone: %v", p)
		}
	})
}

func TestAWriterContinuesAfterEverythingWasPruned(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		writeTimedLog(t, db, 30)
		if removed, err := Prune(ctx(), db, testKeys, t0.Add(time.Hour)); err != nil || removed != 30 {
			t.Fatalf("prune everything = %d, %v", removed, err)
		}
		w := newWriter(t, db, "n1", Options{})
		if seq, _ := w.Head(); seq != 30 {
			t.Fatalf("head after pruning everything = %d, want 30", seq)
		}
		appendTimed(t, w, 31, 35)
		closeWriter(t, w)
		rep := mustVerify(t, db, map[string]int64{"n1": 35})
		if n := rep.Nodes[0]; !rep.OK || n.PrunedThrough != 30 || n.Events != 5 {
			t.Fatalf("%+v %v", rep.Nodes, rep.Problem)
		}
	})
}

func TestPruneNeedsTheKeys(t *testing.T) {
	db := postgresLog(t)
	if _, err := Prune(ctx(), db, nil, t0); !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("prune while sealed: %v", err)
	}
}

// plantBeforePrune plants a prune row with a forged MAC at the place a
// prune is about to write its own.
type plantBeforePrune struct {
	logDB
	t *testing.T
}

func (p plantBeforePrune) PruneAudit(ctx context.Context, cp storage.AuditCheckpoint) (int64, error) {
	p.exec(p.t, `INSERT INTO {chain} (node, seq, hash, kind, created_at, mac) VALUES ($1, $2, $3, 'prune', $4, 'junk')`, cp.Node, cp.Seq, cp.Hash, t0)
	return p.logDB.PruneAudit(ctx, cp)
}

// A prune does not take a planted row for its own checkpoint: it is
// refused and undone.
func TestAPruneDoesNotTakeAPlantedRowForItsOwn(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		writeTimedLog(t, db, 30)
		removed, err := Prune(ctx(), plantBeforePrune{db, t}, testKeys, t0.Add(25*time.Second))
		if err == nil || fault.KindOf(err) != fault.Conflict {
			t.Fatalf("Prune with a planted row in its checkpoint's place: removed %d, %v; want a conflict", removed, err)
		}
		if n := db.count(t, `SELECT count(*) FROM {events} WHERE node = 'n1'`); n != 30 {
			t.Fatalf("%d events left, want all 30: the refused prune must be undone", n)
		}
	})
}
