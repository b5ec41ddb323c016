package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secrethub/secrethub/storage"
)

// appendFor runs n goroutines appending and completing events until d has
// passed, and returns every seq they were given.
func appendFor(t *testing.T, w *Writer, n int, d time.Duration) []int64 {
	t.Helper()
	var (
		mu   sync.Mutex
		seqs []int64
		wg   sync.WaitGroup
		errs atomic.Int64
	)
	deadline := time.Now().Add(d)
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				seq, err := w.Append(ctx(), sample(g*1_000_000+i))
				if err != nil {
					errs.Add(1)
					return
				}
				w.Complete(seq, Outcome{Status: 200, Latency: time.Millisecond})
				mu.Lock()
				seqs = append(seqs, seq)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if errs.Load() > 0 {
		t.Fatalf("%d appenders failed", errs.Load())
	}
	slices.Sort(seqs)
	return seqs
}

// contiguous fails unless seqs are exactly from, from+1, ….
func contiguous(t *testing.T, seqs []int64, from int64) {
	t.Helper()
	for i, s := range seqs {
		if s != from+int64(i) {
			t.Fatalf("seq %d handed out where %d was due: a gap or a duplicate", s, from+int64(i))
		}
	}
}

func TestGroupCommitKeepsTheChainContiguousUnderConcurrentAppenders(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		w := newWriter(t, db, "n1", Options{})
		before := db.RoundTrips().Transactions
		seqs := appendFor(t, w, 64, 2*time.Second)
		txs := db.RoundTrips().Transactions - before
		closeWriter(t, w)
		if len(seqs) < 64 {
			t.Fatalf("only %d events in 2s", len(seqs))
		}
		contiguous(t, seqs, 1)
		if txs >= int64(len(seqs)) {
			t.Fatalf("%d transactions for %d events: appends were not committed together", txs, len(seqs))
		}
		t.Logf("%d events in %d transactions (appends and outcomes)", len(seqs), txs)
		if n := db.count(t, `SELECT count(*) FROM {events} AS e
			WHERE NOT EXISTS (SELECT 1 FROM {outcomes} AS o WHERE o.node = e.node AND o.seq = e.seq)`); n != 0 {
			t.Fatalf("%d events lack their outcome after Close", n)
		}
		rep := mustVerify(t, db, map[string]int64{"n1": int64(len(seqs))})
		if !rep.OK || rep.Events != int64(len(seqs)) || rep.Nodes[0].Unanchored != 0 {
			t.Fatalf("report %+v, problem %v", rep.Nodes, rep.Problem)
		}
	})
}

// refuse makes the store refuse inserts into one audit table ({events} or
// {outcomes}), the way a revoked privilege or a full disk would; the
// returned func lifts it.
func refuse(t *testing.T, db logDB, table string) func() {
	t.Helper()
	trigger := "refuse_" + strings.Trim(table, "{}")
	if db.Engine() == storage.Postgres {
		db.exec(t, `CREATE OR REPLACE FUNCTION audit.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN RAISE EXCEPTION 'audit store refuses writes'; END $$`)
		db.exec(t, `CREATE TRIGGER `+trigger+` BEFORE INSERT ON `+table+` FOR EACH ROW EXECUTE FUNCTION audit.refuse()`)
		return func() { db.exec(t, `DROP TRIGGER `+trigger+` ON `+table) }
	}
	db.exec(t, `CREATE TRIGGER `+trigger+` BEFORE INSERT ON `+table+` BEGIN SELECT RAISE(ABORT, 'audit store refuses writes'); END`)
	return func() { db.exec(t, `DROP TRIGGER `+trigger) }
}

func TestAFailedBatchLeavesTheHeadAndTheWriterRecoversByItself(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		w := newWriter(t, db, "n1", Options{})
		appendN(t, w, 5)
		headSeq, headHash := w.Head()
		lift := refuse(t, db, "{events}")
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = w.Append(ctx(), sample(100+i))
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("append %d while the store refuses: %v, want ErrUnavailable", i, err)
			}
			// A refusal is not a clash of seqs: no "another server with
			// this node name" report, no re-reading of the head.
			if !errors.Is(err, storage.ErrUnavailable) || errors.Is(err, storage.ErrConflict) {
				t.Fatalf("append %d while the store refuses: %v, want the store's refusal, not a conflict", i, err)
			}
		}
		if s, h := w.Head(); s != headSeq || h != headHash {
			t.Fatalf("a failed batch moved the head to %d", s)
		}
		if err := w.Record(ctx(), withOutcome(sample(200), 503)); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("record while the store refuses: %v", err)
		}
		lift()
		seq, err := w.Append(ctx(), sample(300))
		if err != nil || seq != headSeq+1 {
			t.Fatalf("append after the store is back = %d, %v; want seq %d", seq, err, headSeq+1)
		}
		w.Complete(seq, Outcome{Status: 200})
		closeWriter(t, w)
		if rep := mustVerify(t, db, map[string]int64{"n1": seq}); !rep.OK || rep.Events != seq {
			t.Fatalf("after recovery: %+v %v", rep.Nodes, rep.Problem)
		}
		if n := db.count(t, `SELECT count(*) FROM {events}`); n != seq {
			t.Fatalf("%d events stored, want %d: a refused batch left rows", n, seq)
		}
	})
}

// eventually polls cond for up to 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

func TestOutcomesAreRetriedUntilStoredAndNeverLostSilently(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		errs := &errorLog{}
		w := newWriter(t, db, "n1", Options{OnError: errs.add})
		first, err := w.Append(ctx(), sample(1))
		if err != nil {
			t.Fatal(err)
		}
		lift := refuse(t, db, "{outcomes}")
		w.Complete(first, Outcome{Status: 200})
		eventually(t, "the failed outcome is reported", func() bool { return len(errs.all()) > 0 })
		second, err := w.Append(ctx(), sample(2))
		if err != nil {
			t.Fatalf("appends stopped while outcomes failed: %v", err)
		}
		w.Complete(second, Outcome{Status: 201})
		lift()
		eventually(t, "both outcomes are stored", func() bool {
			return db.count(t, `SELECT count(*) FROM {outcomes}`) == 2
		})

		third, err := w.Append(ctx(), sample(3))
		if err != nil {
			t.Fatal(err)
		}
		defer refuse(t, db, "{outcomes}")()
		w.Complete(third, Outcome{Status: 200})
		c, cancel := context.WithTimeout(ctx(), 300*time.Millisecond)
		defer cancel()
		if err := w.Close(c); err == nil || !strings.Contains(err.Error(), "1 outcome(s) unwritten") {
			t.Fatalf("close with an outcome it could not store: %v", err)
		}
		if last := errs.all()[len(errs.all())-1]; !strings.Contains(last.Error(), "1 outcome(s) unwritten") {
			t.Fatalf("the lost outcome was not reported: %v", last)
		}
	})
}

func withOutcome(e Event, status int) Event {
	e.Outcome = &Outcome{Status: status, Error: "refused", Latency: 10 * time.Microsecond}
	return e
}

func TestARestartedWriterContinuesTheChain(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		w := newWriter(t, db, "n1", Options{})
		appendN(t, w, 10)
		seq, hash := w.Head()
		closeWriter(t, w)
		w = newWriter(t, db, "n1", Options{})
		if s, h := w.Head(); s != seq || h != hash {
			t.Fatalf("restarted head = %d %s, want %d %s", s, h, seq, hash)
		}
		appendN(t, w, 5)
		closeWriter(t, w)
		if rep := mustVerify(t, db, map[string]int64{"n1": 15}); !rep.OK || rep.Events != 15 || rep.Nodes[0].Checkpoints != 2 {
			t.Fatalf("%+v %v", rep.Nodes, rep.Problem)
		}
	})
}

func TestNodesKeepTheirOwnChains(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		a, b := newWriter(t, db, "a", Options{}), newWriter(t, db, "b", Options{})
		var seqA, seqB []int64
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); seqA = appendFor(t, a, 16, time.Second) }()
		go func() { defer wg.Done(); seqB = appendFor(t, b, 16, time.Second) }()
		wg.Wait()
		contiguous(t, seqA, 1)
		contiguous(t, seqB, 1)
		closeWriter(t, a)
		closeWriter(t, b)
		rep := mustVerify(t, db, map[string]int64{"a": int64(len(seqA)), "b": int64(len(seqB))})
		if !rep.OK || len(rep.Nodes) != 2 || rep.Nodes[0].Events != int64(len(seqA)) || rep.Nodes[1].Events != int64(len(seqB)) {
			t.Fatalf("%+v %v", rep.Nodes, rep.Problem)
		}
	})
}

// A node whose store transaction is stuck must not hold up another node.
func TestANodeNeverWaitsOnAnother(t *testing.T) {
	db := postgresLog(t)
	release := holdInserts(t, db, `NEW.node = 'a'`)
	a, b := newWriter(t, db, "a", Options{}), newWriter(t, db, "b", Options{})
	aDone := make(chan error, 1)
	go func() {
		_, err := a.Append(ctx(), sample(1))
		aDone <- err
	}()
	time.Sleep(100 * time.Millisecond) // node a's batch is now stuck on the lock
	for i := range 20 {
		c, cancel := context.WithTimeout(ctx(), 5*time.Second)
		_, err := b.Append(c, sample(i))
		cancel()
		if err != nil {
			t.Fatalf("node b waited on node a: %v", err)
		}
	}
	select {
	case err := <-aDone:
		t.Fatalf("node a's append finished while its store was held: %v", err)
	default:
	}
	release()
	if err := <-aDone; err != nil {
		t.Fatalf("node a after the release: %v", err)
	}
}

func TestOutcomesAreBoundToTheirEvents(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		errs := &errorLog{}
		w := newWriter(t, db, "n1", Options{OnError: errs.add})
		seq, err := w.Append(ctx(), sample(1))
		if err != nil {
			t.Fatal(err)
		}
		w.Complete(seq, Outcome{Status: 403, Error: "permission denied", Latency: 1500 * time.Microsecond})
		if err := w.Record(ctx(), withOutcome(sample(2), 400)); err != nil {
			t.Fatal(err)
		}
		w.SetKeys(nil) // sealed
		sealedSeq, err := w.Append(ctx(), sample(3))
		if err != nil {
			t.Fatal(err)
		}
		w.Complete(sealedSeq, Outcome{Status: 503, Error: "SecretHub is sealed"})
		w.Complete(999, Outcome{Status: 200})
		w.Complete(seq, Outcome{Status: 200}) // a second outcome for one event
		closeWriter(t, w)

		evs, err := db.AuditEvents(ctx(), "n1", nil, 10)
		if err != nil || len(evs) != 3 {
			t.Fatalf("events = %v, %v", evs, err)
		}
		for _, c := range []struct {
			e       storage.AuditEvent
			status  int
			latency int64
			sealed  bool
		}{{evs[0], 403, 1500, false}, {evs[1], 400, 10, false}, {evs[2], 503, 0, true}} {
			o := c.e.Outcome
			if o == nil || o.Status != c.status || o.LatencyMicros != c.latency {
				t.Fatalf("seq %d outcome = %+v, want status %d latency %d", c.e.Seq, o, c.status, c.latency)
			}
			if want := outcomeMAC(testKeys, c.e.Hash, *o); (o.MAC == "") != c.sealed || (!c.sealed && o.MAC != want) {
				t.Fatalf("seq %d outcome MAC %q (sealed %t)", c.e.Seq, o.MAC, c.sealed)
			}
		}
		if got := errs.all(); len(got) != 2 || !strings.Contains(got[0].Error(), "seq 999") || !strings.Contains(got[1].Error(), "seq 1,") {
			t.Fatalf("outcomes for no awaiting event were not reported: %v", got)
		}
		rep := mustVerify(t, db, nil)
		if !rep.OK || rep.Nodes[0].UnauthenticatedOutcomes != 1 {
			t.Fatalf("%+v %v", rep.Nodes, rep.Problem)
		}
	})
}

// gatedStore holds every batch until the test opens the gate: a store that
// is slow, not a fake one.
type gatedStore struct {
	Store
	gate chan struct{}
}

func (g gatedStore) AppendAudit(ctx context.Context, b storage.AuditBatch) error {
	<-g.gate
	return g.Store.AppendAudit(ctx, b)
}

func TestARequestThatGivesUpStillGetsAnOutcome(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		gate := make(chan struct{})
		w := newWriter(t, gatedStore{Store: db, gate: gate}, "n1", Options{})
		c, cancel := context.WithCancel(ctx())
		done := make(chan error, 1)
		go func() {
			_, err := w.Append(c, sample(1))
			done <- err
		}()
		time.Sleep(50 * time.Millisecond) // the batch is now at the gate
		cancel()
		if err := <-done; !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
			t.Fatalf("append whose context ended: %v", err)
		}
		close(gate)
		closeWriter(t, w)
		evs, err := db.AuditEvents(ctx(), "n1", nil, 10)
		if err != nil || len(evs) != 1 || evs[0].Outcome == nil || evs[0].Outcome.Error != abandonedError {
			t.Fatalf("events = %+v, %v; want one whose outcome says it was abandoned", evs, err)
		}
	})
}

func TestCheckpointsFollowCountTimeAndClose(t *testing.T) {
	checkpoints := func(t *testing.T, db logDB) []int64 {
		cps, err := db.AuditCheckpoints(ctx(), "n1", nil, 100)
		if err != nil {
			t.Fatal(err)
		}
		var seqs []int64
		for _, c := range cps {
			seqs = append(seqs, c.Seq)
		}
		return seqs
	}
	engines(t, func(t *testing.T, db logDB) {
		t.Run("every N events and at close", func(t *testing.T) {
			w := newWriter(t, db, "n1", Options{CheckpointEvery: 10, CheckpointInterval: time.Hour})
			appendN(t, w, 25)
			closeWriter(t, w)
			if got := checkpoints(t, db); !slices.Equal(got, []int64{10, 20, 25}) {
				t.Fatalf("checkpoints at %v", got)
			}
		})
		t.Run("none while sealed, then one covering everything", func(t *testing.T) {
			w := newWriter(t, db, "n1", Options{CheckpointEvery: 2, CheckpointInterval: 20 * time.Millisecond})
			w.SetKeys(nil)
			appendN(t, w, 5)
			time.Sleep(100 * time.Millisecond)
			if got := checkpoints(t, db); !slices.Equal(got, []int64{10, 20, 25}) {
				t.Fatalf("checkpoints while sealed: %v", got)
			}
			w.SetKeys(testKeys)
			eventually(t, "a checkpoint covers the events written while sealed", func() bool { return slices.Contains(checkpoints(t, db), 30) })
			closeWriter(t, w)
		})
		t.Run("after the interval without further events", func(t *testing.T) {
			w := newWriter(t, db, "n1", Options{CheckpointInterval: 20 * time.Millisecond})
			appendN(t, w, 3)
			eventually(t, "the interval brings a checkpoint", func() bool { return slices.Contains(checkpoints(t, db), 33) })
			closeWriter(t, w)
		})
		if rep := mustVerify(t, db, nil); !rep.OK || rep.Nodes[0].Unanchored != 0 || rep.Nodes[0].Events != 33 {
			t.Fatalf("%+v %v", rep.Nodes, rep.Problem)
		}
	})
}

// syncBuffer is a sink the test can read while the writer writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestNothingSensitiveReachesTheTablesOrTheSink(t *testing.T) {
	secrets := []string{"hunter22-password", "s.presentedButInvalidToken", "db-secret-value", "role-secret-id-0001"}
	engines(t, func(t *testing.T, db logDB) {
		sink := &syncBuffer{}
		w := newWriter(t, db, "n1", Options{Sink: sink})
		body := fmt.Sprintf(`{"data":{"password":%q,"nested":[%q]},"secret_id":%q,"ttl":60}`, secrets[0], secrets[2], secrets[3])
		ev := sample(1)
		ev.RequestData = RedactJSON([]byte(body), testKeys)
		ev.TokenHMAC = testKeys.HMAC(secrets[1])
		seq, err := w.Append(ctx(), ev)
		if err != nil {
			t.Fatal(err)
		}
		w.Complete(seq, Outcome{Status: 200})
		denied := withOutcome(sample(2), 403)
		denied.TokenHMAC, denied.Decision = testKeys.HMAC(secrets[1]), DecisionDeny
		if err := w.Record(ctx(), denied); err != nil {
			t.Fatal(err)
		}
		closeWriter(t, w)

		var stored strings.Builder
		for _, table := range []string{db.events, db.outcomes, db.chain} {
			rows, err := db.raw.Query(`SELECT * FROM ` + table)
			if err != nil {
				t.Fatal(err)
			}
			cols, _ := rows.Columns()
			for rows.Next() {
				vals := make([]any, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				if err := rows.Scan(ptrs...); err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&stored, "%s\n", vals)
			}
			rows.Close()
		}
		lines := sink.String()
		for _, s := range secrets {
			if strings.Contains(stored.String(), s) || strings.Contains(lines, s) {
				t.Fatalf("%q is stored or sunk in the clear", s)
			}
		}
		if !strings.Contains(stored.String(), testKeys.HMAC(secrets[0])) {
			t.Fatal("the redacted body was not stored")
		}
		var kinds []string
		sc := bufio.NewScanner(strings.NewReader(lines))
		for sc.Scan() {
			var l map[string]any
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatalf("sink line %q: %v", sc.Text(), err)
			}
			kinds = append(kinds, fmt.Sprintf("%v %v %v", l["type"], l["seq"], l["status"]))
		}
		slices.Sort(kinds) // outcome 1 may be written before or with event 2
		if want := []string{"event 1 <nil>", "event 2 403", "outcome 1 200"}; !slices.Equal(kinds, want) {
			t.Fatalf("sink lines %v, want %v", kinds, want)
		}
	})
}

func TestAClosedWriterRefusesEventsAndReportsLateOutcomes(t *testing.T) {
	db := postgresLog(t)
	errs := &errorLog{}
	w := newWriter(t, db, "n1", Options{OnError: errs.add})
	seq, err := w.Append(ctx(), sample(1))
	if err != nil {
		t.Fatal(err)
	}
	closeWriter(t, w)
	if _, err := w.Append(ctx(), sample(2)); !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if err := w.Record(ctx(), withOutcome(sample(3), 400)); !errors.Is(err, ErrClosed) {
		t.Fatalf("record after close: %v", err)
	}
	w.Complete(seq, Outcome{Status: 200})
	got := errs.all()
	if len(got) != 2 || !strings.Contains(got[0].Error(), "outcome never came") || !errors.Is(got[1], ErrClosed) {
		t.Fatalf("reported %v; want the missing outcome at close, then the late one", got)
	}
}

// BenchmarkAppend measures group commit on PostgreSQL: 32 concurrent
// appenders, each waiting for its commit, as requests do.
func BenchmarkAppend(b *testing.B) {
	db := postgresLog(b)
	w := newWriter(b, db, "bench", Options{OnError: func(err error) { b.Error(err) }})
	b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0))) // RunParallel starts GOMAXPROCS × this
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			seq, err := w.Append(ctx(), sample(i))
			if err != nil {
				b.Error(err)
				return
			}
			w.Complete(seq, Outcome{Status: 200, Latency: time.Millisecond})
			i++
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(float64(b.N)/float64(db.RoundTrips().Transactions), "events/tx")
}

// gatedWriter blocks every Write until gate is closed: a sink that has
// stalled (a stuck pipe, a full disk).
type gatedWriter struct {
	gate chan struct{}
	syncBuffer
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	<-g.gate
	return g.syncBuffer.Write(p)
}

// A stalled sink does not stall appends: lines it cannot take are dropped
// and reported, once when dropping starts and once with the count when it
// catches up; what was queued is written, the rest is in the database.
func TestAStalledSinkNeverStallsAppends(t *testing.T) {
	db := postgresLog(t)
	errs := &errorLog{}
	sink := &gatedWriter{gate: make(chan struct{})}
	w := newWriter(t, db, "n1", Options{Sink: sink, OnError: errs.add})
	const n = sinkQueue + 300
	done := make(chan error, 1)
	go func() {
		for i := range n {
			seq, err := w.Append(ctx(), sample(i))
			if err != nil {
				done <- err
				return
			}
			w.Complete(seq, Outcome{Status: 200})
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("appends stalled behind a stalled sink")
	}
	if got := errs.all(); len(got) == 0 || !strings.Contains(got[0].Error(), "not keeping up") {
		t.Fatalf("dropping was not reported: %v", got)
	}
	close(sink.gate)
	eventually(t, "the sink catches up and says how much it dropped", func() bool {
		if _, err := w.Append(ctx(), sample(n)); err != nil {
			t.Fatal(err)
		}
		for _, err := range errs.all() {
			if strings.Contains(err.Error(), "caught up") {
				return true
			}
		}
		return false
	})
	closeWriter(t, w)
	events := strings.Count(sink.String(), `"type":"event"`)
	if events == 0 || events >= n {
		t.Fatalf("%d event lines reached the sink of %d events: want some, not all (the rest were dropped)", events, n+1)
	}
}

// lyingStore reports the first append as failed after storing it, as a
// commit whose confirmation was lost (a timeout, a dropped connection)
// looks to the writer.
type lyingStore struct {
	Store
	lied bool
}

func (l *lyingStore) AppendAudit(ctx context.Context, b storage.AuditBatch) error {
	if err := l.Store.AppendAudit(ctx, b); err != nil {
		return err
	}
	if !l.lied && len(b.Events) > 0 {
		l.lied = true
		return fmt.Errorf("%w: connection reset during commit", storage.ErrUnavailable)
	}
	return nil
}

// A batch reported failed that was stored all the same is found by
// re-reading the head: the next batch does not collide with it, and its
// requests (refused with 503) get outcomes that say so.
func TestAnUnconfirmedCommitIsSettledNotReused(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		errs := &errorLog{}
		w := newWriter(t, &lyingStore{Store: db}, "n1", Options{OnError: errs.add})
		if _, err := w.Append(ctx(), sample(1)); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("append whose commit did not confirm: %v, want ErrUnavailable", err)
		}
		seq, err := w.Append(ctx(), sample(2))
		if err != nil || seq != 2 {
			t.Fatalf("the next append = %d, %v; want seq 2 without a conflict", seq, err)
		}
		w.Complete(seq, Outcome{Status: 200})
		closeWriter(t, w)
		evs, err := db.AuditEvents(ctx(), "n1", nil, 10)
		if err != nil || len(evs) != 2 {
			t.Fatalf("events = %v, %v", evs, err)
		}
		if o := evs[0].Outcome; o == nil || o.Status != 503 || o.Error != unconfirmedError {
			t.Fatalf("the unconfirmed event's outcome = %+v, want 503 %q", o, unconfirmedError)
		}
		if rep := mustVerify(t, db, map[string]int64{"n1": 2}); !rep.OK {
			t.Fatalf("%+v %v", rep.Nodes, rep.Problem)
		}
		for _, err := range errs.all() {
			if strings.Contains(err.Error(), "conflict") {
				t.Fatalf("the writer reused a stored seq: %v", err)
			}
		}
	})
}

// An event stored whole whose commit did not confirm, or whose caller
// left while it committed, was not answered as its row says: an outcome
// stored apart corrects it, and that is what is read and verified.
func TestAnEventStoredWholeButNotAnsweredIsCorrected(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		t.Run("unconfirmed", func(t *testing.T) {
			w := newWriter(t, &lyingStore{Store: db}, "n1", Options{})
			if err := w.Record(ctx(), withOutcome(sample(1), 403)); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("record whose commit did not confirm: %v", err)
			}
			seq, err := w.Append(ctx(), sample(2))
			if err != nil {
				t.Fatal(err)
			}
			w.Complete(seq, Outcome{Status: 200})
			closeWriter(t, w)
			evs, err := db.AuditEvents(ctx(), "n1", nil, 10)
			if err != nil || len(evs) != 2 {
				t.Fatalf("events = %+v, %v", evs, err)
			}
			if o := evs[0].Outcome; o == nil || o.Status != 503 || o.Error != unconfirmedError {
				t.Fatalf("the refusal whose commit did not confirm reads %+v, want 503 %q", o, unconfirmedError)
			}
			if n := db.count(t, `SELECT count(*) FROM {events} WHERE seq = 1 AND status = 403`); n != 1 {
				t.Fatalf("the row of event 1 should still hold what it was stored with (%d)", n)
			}
			if rep := mustVerify(t, db, nil); !rep.OK || rep.Nodes[0].MissingOutcomes != 0 {
				t.Fatalf("verify: %+v", rep)
			}
		})
		t.Run("unconfirmed, then sealed before the correction", func(t *testing.T) {
			// The correction is MAC'd under the keys of the outcome it
			// corrects, though the node has no keys by the time it is
			// written: one without a MAC would read as a forgery.
			w := newWriter(t, &lyingStore{Store: db}, "n3", Options{})
			if err := w.Record(ctx(), withOutcome(sample(1), 403)); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("record whose commit did not confirm: %v", err)
			}
			w.SetKeys(nil)
			seq, err := w.Append(ctx(), sample(2))
			if err != nil {
				t.Fatal(err)
			}
			w.Complete(seq, Outcome{Status: 503})
			closeWriter(t, w)
			evs, err := db.AuditEvents(ctx(), "n3", nil, 10)
			if err != nil || len(evs) != 2 || evs[0].Outcome == nil || evs[0].Outcome.MAC == "" || evs[0].Outcome.Error != unconfirmedError {
				t.Fatalf("events = %+v, %v; want event 1 corrected under the keys it was stored with", evs, err)
			}
			if rep := mustVerify(t, db, nil); !rep.OK {
				t.Fatalf("verify: %+v", rep.Problem)
			}
		})
		t.Run("abandoned", func(t *testing.T) {
			s := steppedStore{Store: db, arrived: make(chan storage.AuditBatch), release: make(chan struct{})}
			w := newWriter(t, s, "n2", Options{})
			first, err := w.Start(ctx(), sample(1))
			if err != nil {
				t.Fatal(err)
			}
			<-s.arrived // batch 1 is at the store; what comes next waits for the cut
			c, cancel := context.WithCancel(ctx())
			p, err := w.Start(c, sample(2))
			if err != nil {
				t.Fatal(err)
			}
			p.Done(Outcome{Status: 200}) // before the cut: stored whole
			s.release <- struct{}{}
			second := <-s.arrived
			if second.Events[0].Outcome == nil {
				t.Fatal("event 2 was not cut whole")
			}
			done := make(chan error, 1)
			go func() {
				_, _, err := p.Wait(c)
				done <- err
			}()
			cancel() // the caller leaves while its event commits
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("wait whose context ended: %v", err)
			}
			s.release <- struct{}{}
			if seq, _, err := first.Wait(ctx()); err != nil {
				t.Fatal(err)
			} else {
				w.Complete(seq, Outcome{Status: 200})
			}
			closeWriter(t, w)
			evs, err := db.AuditEvents(ctx(), "n2", nil, 10)
			if err != nil || len(evs) != 2 || evs[1].Outcome == nil || evs[1].Outcome.Error != abandonedError {
				t.Fatalf("events = %+v, %v; want event 2 with an outcome saying it was abandoned", evs, err)
			}
			if n := db.count(t, `SELECT count(*) FROM {events} WHERE seq = 2 AND status = 200`); n != 1 {
				t.Fatalf("the row of event 2 should still hold what it was stored with (%d)", n)
			}
		})
	})
}

// The sink does not depend on the database: Close gives it time to write
// what is queued even when Close's context has already ended.
func TestCloseWritesTheQueuedSinkLinesAfterItsContextEnds(t *testing.T) {
	db := postgresLog(t)
	sink := &gatedWriter{gate: make(chan struct{})}
	w, err := NewWriter(ctx(), db, "n1", Options{Sink: sink, OnError: (&errorLog{}).add})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := w.Append(ctx(), sample(i)); err != nil {
			t.Fatal(err)
		}
	}
	ended, cancel := context.WithCancel(ctx())
	cancel()
	time.AfterFunc(200*time.Millisecond, func() { close(sink.gate) })
	_ = w.Close(ended) // outcomes were never completed: Close reports them
	if got := strings.Count(sink.String(), `"type":"event"`); got != 5 {
		t.Fatalf("%d of 5 event lines reached the sink", got)
	}
}

// While the store refuses outcomes, their queue stays bounded: the excess
// is dropped and reported, once when dropping starts and once, with the
// count, when outcomes are stored again.
func TestTheOutcomeQueueIsBounded(t *testing.T) {
	db := postgresLog(t)
	errs := &errorLog{}
	w := newWriter(t, db, "n1", Options{OnError: errs.add, MaxQueuedOutcomes: 10})
	lift := refuse(t, db, "{outcomes}")
	for i := range 25 {
		seq, err := w.Append(ctx(), sample(i))
		if err != nil {
			t.Fatalf("appends must go on while outcomes are refused: %v", err)
		}
		w.Complete(seq, Outcome{Status: 200})
	}
	if n := w.queuedOutcomes(); n != 10 {
		t.Fatalf("%d outcomes queued, want the bound of 10", n)
	}
	lift()
	eventually(t, "the dropped outcomes are reported", func() bool {
		for _, err := range errs.all() {
			if strings.Contains(err.Error(), "15 outcome(s) were dropped") {
				return true
			}
		}
		return false
	})
	closeWriter(t, w)
	if n := db.count(t, `SELECT count(*) FROM {outcomes}`); n != 10 {
		t.Fatalf("%d outcomes stored, want the 10 that were queued", n)
	}
}

// Close returns soon after its context ends even with a commit stuck in
// the database (here, behind a lock): the commit is cancelled with it
// rather than left to run out its CommitTimeout.
func TestCloseDoesNotOutliveItsContext(t *testing.T) {
	db := postgresLog(t)
	holdInserts(t, db, `true`)
	w, err := NewWriter(ctx(), db, "n1", Options{CommitTimeout: time.Minute, OnError: (&errorLog{}).add})
	if err != nil {
		t.Fatal(err)
	}
	appended := make(chan error, 1)
	go func() {
		_, err := w.Append(ctx(), sample(1))
		appended <- err
	}()
	time.Sleep(200 * time.Millisecond) // the batch is now waiting on the lock
	c, cancel := context.WithTimeout(ctx(), 300*time.Millisecond)
	defer cancel()
	closed := make(chan struct{})
	go func() {
		_ = w.Close(c)
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close outlived its context by the commit timeout")
	}
	if err := <-appended; !errors.Is(err, ErrUnavailable) {
		t.Fatalf("the append cut short by Close: %v, want ErrUnavailable", err)
	}
}

// holdInserts makes inserts into {events} whose row meets cond (SQL on NEW)
// wait on an advisory lock the test holds, as a stuck transaction would;
// release lets them through (and so does the test's end).
func holdInserts(t *testing.T, db logDB, cond string) (release func()) {
	t.Helper()
	db.exec(t, `CREATE FUNCTION audit.hold() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF `+cond+` THEN PERFORM pg_advisory_xact_lock(4242); END IF; RETURN NEW; END $$`)
	db.exec(t, `CREATE TRIGGER hold BEFORE INSERT ON {events} FOR EACH ROW EXECUTE FUNCTION audit.hold()`)
	lock, err := db.raw.Conn(ctx())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() })
	if _, err := lock.ExecContext(ctx(), `SELECT pg_advisory_lock(4242)`); err != nil {
		t.Fatal(err)
	}
	return func() {
		if _, err := lock.ExecContext(ctx(), `SELECT pg_advisory_unlock(4242)`); err != nil {
			t.Fatal(err)
		}
	}
}

// steppedStore hands each batch with events to the test when it arrives,
// and stores it when the test says so.
type steppedStore struct {
	Store
	arrived chan storage.AuditBatch
	release chan struct{}
}

func (s steppedStore) AppendAudit(ctx context.Context, b storage.AuditBatch) error {
	if len(b.Events) > 0 {
		s.arrived <- b
		<-s.release
	}
	return s.Store.AppendAudit(ctx, b)
}

// An outcome offered before the event's batch is cut is stored in the
// event's row, and Wait says so; one offered after the cut is not, and
// goes to Complete as for an Append. Both verify.
func TestAnOutcomeReadyBeforeTheCutIsStoredWithItsEvent(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		s := steppedStore{Store: db, arrived: make(chan storage.AuditBatch), release: make(chan struct{})}
		sink := &syncBuffer{}
		w := newWriter(t, s, "n1", Options{Sink: sink})
		late, err := w.Start(ctx(), sample(1))
		if err != nil {
			t.Fatal(err)
		}
		first := <-s.arrived // cut: seq 1 is on its way to the store
		late.Done(Outcome{Status: 200, Latency: time.Millisecond})
		early, err := w.Start(ctx(), sample(2))
		if err != nil {
			t.Fatal(err)
		}
		early.Done(Outcome{Status: 404, Error: "no such secret", Latency: 2 * time.Millisecond})
		s.release <- struct{}{}
		second := <-s.arrived
		s.release <- struct{}{}
		if first.Events[0].Outcome != nil {
			t.Fatalf("an outcome offered after the cut travelled with its event: %+v", first.Events[0].Outcome)
		}
		if o := second.Events[0].Outcome; o == nil || o.Status != 404 || o.MAC == "" {
			t.Fatalf("the outcome offered before the cut: %+v, want status 404 with a MAC", o)
		}
		seq1, whole1, err1 := late.Wait(ctx())
		seq2, whole2, err2 := early.Wait(ctx())
		if err1 != nil || err2 != nil || seq1 != 1 || seq2 != 2 || whole1 || !whole2 {
			t.Fatalf("waits: (%d, %v, %v) and (%d, %v, %v); want (1, false) and (2, true)", seq1, whole1, err1, seq2, whole2, err2)
		}
		w.Complete(seq1, Outcome{Status: 200, Latency: time.Millisecond})
		closeWriter(t, w)
		if n := db.count(t, `SELECT count(*) FROM {events} WHERE seq = 2 AND status = 404 AND error = 'no such secret' AND latency_us = 2000`); n != 1 {
			t.Fatalf("event 2 should hold its outcome, found %d such rows", n)
		}
		if n := db.count(t, `SELECT count(*) FROM {outcomes}`); n != 1 {
			t.Fatalf("%d outcomes stored apart; want only event 1's", n)
		}
		rep := mustVerify(t, db, nil)
		if !rep.OK || rep.Nodes[0].MissingOutcomes != 0 || rep.Nodes[0].UnauthenticatedOutcomes != 0 {
			t.Fatalf("verify: %+v", rep)
		}
		// The sink: event 2's line carries its outcome; only event 1's
		// outcome has a line of its own.
		var lines []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(sink.String()), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("sink line %q: %v", l, err)
			}
			lines = append(lines, m)
		}
		if len(lines) != 3 || lines[1]["type"] != "event" || lines[1]["seq"] != 2.0 || lines[1]["status"] != 404.0 ||
			lines[1]["outcome_mac"] == "" || lines[2]["type"] != "outcome" || lines[2]["seq"] != 1.0 {
			t.Fatalf("sink lines: %v", lines)
		}
		// The outcome in the row is bound to its event like any other.
		db.exec(t, `UPDATE {events} SET status = 200, error = '' WHERE seq = 2`)
		if p := mustVerify(t, db, nil).Problem; p == nil || p.Kind != OutcomeModified || p.Seq != 2 {
			t.Fatalf("a changed outcome in an event's row: %v, want %s at seq 2", p, OutcomeModified)
		}
	})
}

// Offers racing the cuts of concurrent requests lose nothing: every event
// ends with exactly one outcome, whole or apart, and the chain verifies.
func TestOffersRacingTheCutsLeaveOneOutcomePerEvent(t *testing.T) {
	db := postgresLog(t)
	w := newWriter(t, db, "n1", Options{})
	var wg sync.WaitGroup
	var wholes atomic.Int64
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				p, err := w.Start(ctx(), sample(g*1000+i))
				if err != nil {
					t.Error(err)
					return
				}
				if i%5 != 0 { // some requests never offer (a handler that panicked)
					p.Done(Outcome{Status: 200 + i, Latency: time.Duration(i) * time.Microsecond})
				}
				seq, whole, err := p.Wait(ctx())
				if err != nil {
					t.Error(err)
					return
				}
				if whole {
					wholes.Add(1)
					continue
				}
				w.Complete(seq, Outcome{Status: 200 + i, Latency: time.Duration(i) * time.Microsecond})
			}
		}()
	}
	wg.Wait()
	closeWriter(t, w)
	rep := mustVerify(t, db, nil)
	if !rep.OK || rep.Events != 32*40 || rep.Nodes[0].MissingOutcomes != 0 {
		t.Fatalf("verify: %+v", rep)
	}
	if n := db.count(t, `SELECT count(*) FROM {events} e JOIN {outcomes} o ON o.node = e.node AND o.seq = e.seq WHERE e.status IS NOT NULL`); n != 0 {
		t.Fatalf("%d events have an outcome in their row and another apart", n)
	}
	if n := db.count(t, `SELECT count(*) FROM {events} WHERE status IS NOT NULL`); n != wholes.Load() {
		t.Fatalf("%d events stored whole, but Wait said so for %d", n, wholes.Load())
	}
	t.Logf("%d of %d events stored whole", wholes.Load(), 32*40)
}

// A writer must continue from a checkpoint beyond the stored events (a
// prune of everything leaves one) before it has keys to check it; once it
// has them, a forged one is reported, and an authentic one is not.
func TestAWriterReportsAForgedCheckpointItContinuedFrom(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		w := newWriter(t, db, "n1", Options{})
		appendN(t, w, 10)
		closeWriter(t, w)
		if _, err := Prune(ctx(), db, testKeys, time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		var authentic errorLog
		w = newWriter(t, db, "n1", Options{OnError: authentic.add})
		if s, _ := w.Head(); s != 10 {
			t.Fatalf("after a prune of everything the head is %d, want 10", s)
		}
		closeWriter(t, w)
		if errs := authentic.all(); len(errs) != 0 {
			t.Fatalf("an authentic prune checkpoint was reported: %v", errs)
		}

		db.exec(t, `INSERT INTO {chain} (node, seq, hash, kind, created_at, mac) VALUES ('n1', 1000000, $1, 'prune', $2, 'junk')`,
			strings.Repeat("ab", 32), t0)
		var forged errorLog
		w, err := NewWriter(ctx(), db, "n1", Options{OnError: forged.add})
		if err != nil {
			t.Fatal(err)
		}
		defer closeWriter(t, w)
		if s, _ := w.Head(); s != 1000000 {
			t.Fatalf("head %d: the writer should continue after the checkpoint, whoever wrote it", s)
		}
		if errs := forged.all(); len(errs) != 0 {
			t.Fatalf("reported before there were keys to check with: %v", errs)
		}
		w.SetKeys(testKeys)
		errs := forged.all()
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "does not carry a valid MAC") || !strings.Contains(errs[0].Error(), "seq 1000000") {
			t.Fatalf("the forged checkpoint was not reported: %v", errs)
		}
		w.SetKeys(testKeys) // once is enough
		if n := len(forged.all()); n != 1 {
			t.Fatalf("reported %d times", n)
		}
	})
}

// A running writer that finds its chain changed under it (a row put after
// its head, or its own rows rewritten) refuses to extend it, rather than
// continue from the stored end and vouch for it with its next checkpoint;
// it resumes once the chain ends at its own last event again.
func TestAWriterRefusesAChainChangedUnderIt(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		errs, notices := &errorLog{}, &errorLog{}
		w := newWriter(t, db, "n1", Options{OnError: errs.add, CheckpointInterval: 20 * time.Millisecond,
			OnNotice: func(msg string) { notices.add(errors.New(msg)) }})
		appendN(t, w, 5)
		eventually(t, "a checkpoint at seq 5", func() bool {
			return db.count(t, `SELECT count(*) FROM {chain} WHERE node = 'n1' AND seq = 5`) == 1
		})
		headSeq, headHash := w.Head()
		// A copy of the head as the next event, chained to it: what a
		// forger puts after the head so that the writer takes it on.
		forge := func(seq int64) {
			db.exec(t, `INSERT INTO {events} (node, seq, time, request_id, client_ip, token_accessor, token_hmac, auth_method,
				operation, path, resource, capability, policies, decision, prev_hash, hash)
				SELECT node, seq + 1, time, request_id, client_ip, token_accessor, token_hmac, auth_method,
				operation, '/v1/forged', resource, capability, policies, decision, hash, hash FROM {events} WHERE node = 'n1' AND seq = $1`, seq)
		}
		diverged := func() int {
			n := 0
			for _, err := range errs.all() {
				if strings.Contains(err.Error(), "no longer ends where this writer left it") {
					n++
				}
			}
			return n
		}

		forge(5)
		for i := range 3 {
			if _, err := w.Append(ctx(), sample(10+i)); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("append %d after a row was put after the head: %v, want ErrUnavailable", i, err)
			}
		}
		time.Sleep(100 * time.Millisecond) // checkpoints would be due
		if n := diverged(); n != 1 {
			t.Fatalf("the divergence was reported %d times, want once: %v", n, errs.all())
		}
		if s, h := w.Head(); s != headSeq || h != headHash {
			t.Fatalf("the writer took on the forged row: head %d", s)
		}
		if n := db.count(t, `SELECT count(*) FROM {chain} WHERE node = 'n1' AND seq > 5`); n != 0 {
			t.Fatalf("%d checkpoints vouch for rows the writer did not write", n)
		}
		if rep := mustVerify(t, db, map[string]int64{"n1": headSeq}); rep.OK {
			t.Fatalf("verify passed a row put after the live head: %+v", rep.Nodes)
		}

		db.exec(t, `DELETE FROM {events} WHERE node = 'n1' AND seq = 6`)
		seq, err := w.Append(ctx(), sample(20))
		if err != nil || seq != 6 {
			t.Fatalf("append once the forged row is gone = %d, %v; want seq 6", seq, err)
		}
		w.Complete(seq, Outcome{Status: 200})
		if !strings.Contains(fmt.Sprint(notices.all()), "appending resumes") || strings.Contains(fmt.Sprint(errs.all()), "appending resumes") {
			t.Fatalf("the resumption was not reported as a notice (not an error): notices %v, errors %v", notices.all(), errs.all())
		}

		// Its own last row rewritten, and a row after it to make it look.
		db.exec(t, `UPDATE {events} SET hash = $1 WHERE node = 'n1' AND seq = 6`, strings.Repeat("cd", 32))
		forge(6)
		for range 2 {
			if _, err := w.Append(ctx(), sample(30)); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("append after the head was rewritten: %v, want ErrUnavailable", err)
			}
		}
		if n := diverged(); n != 2 {
			t.Fatalf("the rewritten head was reported %d times in all, want 2: %v", n, errs.all())
		}
		if s, _ := w.Head(); s != 6 {
			t.Fatalf("head %d, want 6", s)
		}
	})
}

// A store that refuses checkpoints (a lock, a permission or a trigger on
// the hash chain) does not refuse the requests: after a checkpoint fails,
// checkpoints are retried on their own, and events keep committing. Once
// the store takes checkpoints again, the next one covers everything.
func TestARefusedCheckpointDoesNotRefuseRequests(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		errs := &errorLog{}
		w := newWriter(t, db, "n1", Options{OnError: errs.add, CheckpointInterval: 30 * time.Millisecond, CheckpointEvery: 5})
		appendN(t, w, 5)
		lift := refuse(t, db, "{chain}")
		failed := 0
		for i := range 40 {
			seq, err := w.Append(ctx(), sample(100+i))
			if err != nil {
				failed++
				continue
			}
			w.Complete(seq, Outcome{Status: 200})
			time.Sleep(5 * time.Millisecond)
		}
		if failed > 1 {
			t.Fatalf("%d of 40 appends refused while only checkpoints were: at most the one batch that carried one may fail", failed)
		}
		if !strings.Contains(fmt.Sprint(errs.all()), "storing the checkpoint") {
			t.Fatalf("the refused checkpoints were not reported: %v", errs.all())
		}
		lift()
		head, _ := w.Head()
		eventually(t, "a checkpoint covering the head", func() bool {
			return db.count(t, `SELECT count(*) FROM {chain} WHERE node = 'n1' AND seq >= $1`, head) > 0
		})
		closeWriter(t, w)
		if rep := mustVerify(t, db, nil); !rep.OK || rep.Nodes[0].Unanchored != 0 {
			t.Fatalf("after checkpoints came back: %+v %v", rep.Nodes, rep.Problem)
		}
	})
}
