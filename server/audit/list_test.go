package audit

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestListPagesThroughEveryEventInTimeOrder(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		a := newWriter(t, db, "a", Options{})
		b := newWriter(t, db, "b", Options{})
		var want []string
		for i := 1; i <= 25; i++ {
			w, node := a, "a"
			if i%2 == 0 {
				w, node = b, "b"
			}
			e := sample(i)
			e.Time = t0.Add(time.Duration(i/2) * time.Second) // pairs share a time
			if i%5 == 0 {
				e.Decision = DecisionDeny
			}
			seq, err := w.Append(ctx(), e)
			if err != nil {
				t.Fatal(err)
			}
			w.Complete(seq, Outcome{Status: 200})
			want = append(want, fmt.Sprintf("%s%d", node, seq))
		}
		closeWriter(t, a)
		closeWriter(t, b)
		// Within one time, node a sorts before node b; event i=2k (node b)
		// shares its time with i=2k+1 (node a).
		for k := 1; 2*k+1 <= 25; k++ {
			want[2*k-1], want[2*k] = want[2*k], want[2*k-1]
		}
		var got []string
		var cursor Cursor
		pages := 0
		for {
			evs, next, err := List(ctx(), db, Filter{After: cursor, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, e := range evs {
				got = append(got, fmt.Sprintf("%s%d", e.Node, e.Seq))
				if e.Outcome == nil || e.Outcome.Status != 200 {
					t.Fatalf("event %s/%d listed without its outcome", e.Node, e.Seq)
				}
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if pages != 3 || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%d pages:\n got %v\nwant %v", pages, got, want)
		}
		denied, _, err := List(ctx(), db, Filter{Decision: DecisionDeny, Node: "a"})
		if err != nil || len(denied) != 3 {
			t.Fatalf("denied on node a = %d, %v; want 3 (i = 5, 15, 25)", len(denied), err)
		}
	})
}

func TestListRefusesBadCursorsAndLimits(t *testing.T) {
	db := postgresLog(t)
	for _, f := range []Filter{{After: "%%%"}, {After: Cursor("bm90IGEgY3Vyc29y")}, {Limit: MaxListLimit + 1}, {Limit: -1}} {
		if _, _, err := List(ctx(), db, f); err == nil {
			t.Errorf("List(%+v) accepted", f)
		}
	}
	if _, _, err := List(ctx(), db, Filter{After: "%%%"}); !errors.Is(err, ErrInvalidCursor) {
		t.Fatalf("a bad cursor: %v", err)
	}
}

// Large request bodies cut pages short of Limit, so no answer holds more
// than about MaxPageBytes, and paging still reaches every event once.
func TestListBoundsPagesBySize(t *testing.T) {
	engines(t, func(t *testing.T, db logDB) {
		w := newWriter(t, db, "a", Options{})
		// 780 string values, each stored as its ~80-byte HMAC: just under
		// MaxRedactedBytes, the most one event's request data can take.
		raw := `{"v":[` + strings.TrimSuffix(strings.Repeat(`"x",`, 780), ",") + `]}`
		body := RedactJSON([]byte(raw), testKeys)
		if len(body) < 60<<10 || strings.Contains(string(body), "truncated") {
			t.Fatalf("the redacted body is %d bytes: %.100s", len(body), body)
		}
		const n = 150
		for i := 1; i <= n; i++ {
			e := sample(i)
			e.RequestData = body
			seq, err := w.Append(ctx(), e)
			if err != nil {
				t.Fatal(err)
			}
			w.Complete(seq, Outcome{Status: 200})
		}
		closeWriter(t, w)
		seen := map[int64]bool{}
		var cursor Cursor
		for pages := 1; ; pages++ {
			evs, next, err := List(ctx(), db, Filter{After: cursor, Limit: MaxListLimit})
			if err != nil {
				t.Fatal(err)
			}
			size := 0
			for _, e := range evs {
				if seen[e.Seq] {
					t.Fatalf("event %d listed twice", e.Seq)
				}
				seen[e.Seq] = true
				size += len(e.RequestData)
			}
			if size > MaxPageBytes+len(body) {
				t.Fatalf("page %d holds %d bytes of request data, past the %d bound", pages, size, MaxPageBytes)
			}
			if next == "" {
				if pages < 3 {
					t.Fatalf("%d events of 60 KiB came in %d page(s): pages are not bounded by size", n, pages)
				}
				break
			}
			cursor = next
		}
		if len(seen) != n {
			t.Fatalf("paging reached %d of %d events", len(seen), n)
		}
	})
}

// A cursor comes back from the caller: whatever it holds, decoding it
// either fails with ErrInvalidCursor or gives a position that encodes to a
// cursor decoding to the same position.
func FuzzCursor(f *testing.F) {
	f.Add(string(cursorAt(time.Date(2026, 11, 29, 10, 0, 0, 123000, time.UTC), "core-1", 42)))
	f.Add(string(cursorAt(time.UnixMicro(-1), "a|b", -7)))
	f.Add("")
	f.Add("MXwwfDB8")     // "1|0|0|": no node
	f.Add("MnwwfDB8bg")   // version 2
	f.Add("!!not-base64") // not base64url
	f.Fuzz(func(t *testing.T, c string) {
		at, node, seq, err := Cursor(c).position()
		if err != nil {
			if !errors.Is(err, ErrInvalidCursor) {
				t.Fatalf("position(%q) = %v, want ErrInvalidCursor", c, err)
			}
			return
		}
		if node == "" {
			t.Fatalf("position(%q) accepted an empty node", c)
		}
		at2, node2, seq2, err := cursorAt(at, node, seq).position()
		if err != nil || !at2.Equal(at) || node2 != node || seq2 != seq {
			t.Fatalf("%q decodes to (%v, %q, %d), which round-trips to (%v, %q, %d, %v)", c, at, node, seq, at2, node2, seq2, err)
		}
	})
}
