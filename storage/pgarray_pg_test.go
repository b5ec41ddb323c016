package storage_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// The audit writer sends its batches to PostgreSQL as binary arrays:
// PostgreSQL must read back exactly what was built, element by element.
func TestPGArraysReadBackExactly(t *testing.T) {
	db := storagetest.Postgres(t)
	long := strings.Repeat("x", 100_000)
	cases := []struct {
		typ  string
		vals []any
		want []string // "<NULL>" for NULL
	}{
		{"text", []any{"plain", "", `say "hi" \ {a,b}`, "NULL", nil, "ünïcödé ✓", long},
			[]string{"plain", "", `say "hi" \ {a,b}`, "NULL", "<NULL>", "ünïcödé ✓", long}},
		{"bigint", []any{int64(0), int64(-1), int64(math.MaxInt64), int64(math.MinInt64), nil},
			[]string{"0", "-1", "9223372036854775807", "-9223372036854775808", "<NULL>"}},
		{"integer", []any{int32(200), int32(math.MinInt32), nil, int32(math.MaxInt32)},
			[]string{"200", "-2147483648", "<NULL>", "2147483647"}},
		{"timestamptz", []any{
			time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.UTC),
			time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
			time.Date(2026, 11, 29, 22, 30, 0, 123456789, time.FixedZone("CET", 3600)),
			time.Date(1969, 7, 20, 20, 17, 40, 500, time.UTC),
			nil},
			[]string{"1999-12-31 23:59:59.999999", "2000-01-01 00:00:00.000000", "2026-11-29 21:30:00.123456",
				"1969-07-20 20:17:40.000000", "<NULL>"}},
		{"text", nil, nil},
		{"bigint", []any{}, nil},
	}
	for _, c := range cases {
		got, err := db.EchoArray(context.Background(), c.typ, c.vals)
		if err != nil {
			t.Fatalf("%s array %v: %v", c.typ, c.vals, err)
		}
		if len(got) != len(c.want) {
			t.Fatalf("%s array: read back %d elements, want %d", c.typ, len(got), len(c.want))
		}
		for i, w := range c.want {
			g := "<NULL>"
			if got[i] != nil {
				g = *got[i]
			}
			if g != w {
				t.Errorf("%s array element %d = %.40q, want %.40q", c.typ, i, g, w)
			}
		}
	}
}

// An outcome status beyond the integer column's range is refused with an
// error, before anything is sent (as the text form's overflow was).
func TestAuditStatusOutOfRangeIsAnError(t *testing.T) {
	db := storagetest.Postgres(t)
	e := auditEvent("n1", 1, time.Now())
	e.Outcome = &storage.AuditOutcome{Seq: 1, Status: math.MaxInt32 + 1, MAC: "m"}
	if err := db.AppendAudit(context.Background(), storage.AuditBatch{Node: "n1", Events: []storage.AuditEvent{e}}); err == nil {
		t.Fatal("an event with status 2^31 was stored")
	}
	e.Outcome = nil
	if err := db.AppendAudit(context.Background(), storage.AuditBatch{Node: "n1", Events: []storage.AuditEvent{e}}); err != nil {
		t.Fatalf("the batch after a refused one: %v", err)
	}
	if _, err := db.StoreAuditOutcomes(context.Background(), "n1", []storage.AuditOutcome{{Seq: 1, Status: math.MinInt32 - 1, MAC: "m"}}); err == nil {
		t.Fatal("an outcome with status -2^31-1 was stored")
	}
}
