package audit

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/storage"
)

// Page sizes for List: a page holds at most Limit events, and stops early
// once its events take MaxPageBytes (request bodies can be large), so an
// answer never holds more than a few MiB.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
	MaxPageBytes     = 4 << 20
)

// ErrInvalidCursor: a cursor List did not make.
var ErrInvalidCursor = fault.New(fault.Invalid, "invalid audit cursor")

// Cursor marks where a page of List ended; pass it back as Filter.After for
// the next page. It is opaque; "" means the start (or, returned, the end).
type Cursor string

// Filter selects events for List.
type Filter struct {
	Since, Until time.Time // [Since, Until); zero: unbounded
	Path         string    // URL paths starting with it
	Accessor     string    // exact token accessor
	Decision     string    // exact decision
	Node         string    // exact node
	After        Cursor
	Limit        int // DefaultListLimit when 0, at most MaxListLimit
}

// List returns a page of events matching f, ordered by time, then node
// and seq, and the cursor of the next page ("" when this is the last).
func List(ctx context.Context, a Archive, f Filter) ([]Event, Cursor, error) {
	limit := f.Limit
	switch {
	case limit == 0:
		limit = DefaultListLimit
	case limit < 0 || limit > MaxListLimit:
		return nil, "", fault.Invalidf("limit must be between 1 and %d", MaxListLimit)
	}
	sf := storage.AuditFilter{Since: f.Since, Until: f.Until, PathPrefix: f.Path, Accessor: f.Accessor,
		Decision: f.Decision, Node: f.Node, Limit: limit + 1, MaxBytes: MaxPageBytes}
	if f.After != "" {
		var err error
		if sf.AfterTime, sf.AfterNode, sf.AfterSeq, err = f.After.position(); err != nil {
			return nil, "", err
		}
	}
	rows, err := a.ListAuditEvents(ctx, sf)
	if err != nil {
		return nil, "", err
	}
	// More follow when the extra event asked for came back, or may follow
	// when storage stopped reading at MaxPageBytes (the next page may then
	// be empty).
	size := 0
	for _, r := range rows {
		size += r.Size()
	}
	more := size >= MaxPageBytes
	if len(rows) > limit {
		rows, more = rows[:limit], true
	}
	var next Cursor
	if n := len(rows); more && n > 0 {
		last := rows[n-1]
		// Pages follow the stored order, which only an altered time column
		// (text SQLite compares) can make disagree with the times read: a
		// cursor that does not move forward would page for ever.
		// (Compared as the cursor carries it, to the microsecond.)
		if sf.AfterNode != "" && !after(last.Time.Truncate(time.Microsecond), last.Node, last.Seq, sf.AfterTime, sf.AfterNode, sf.AfterSeq) {
			return nil, "", fault.Newf(fault.Conflict, "the audit log cannot be paged past node %s seq %d: its stored time was altered (audit verify names it)", last.Node, last.Seq)
		}
		next = cursorAt(last.Time, last.Node, last.Seq)
	}
	out := make([]Event, len(rows))
	for i, r := range rows {
		out[i] = eventOf(r)
	}
	return out, next, nil
}

// after reports whether position (t, node, seq) comes after (t0, node0, seq0).
func after(t time.Time, node string, seq int64, t0 time.Time, node0 string, seq0 int64) bool {
	if c := t.Compare(t0); c != 0 {
		return c > 0
	}
	if c := strings.Compare(node, node0); c != 0 {
		return c > 0
	}
	return seq > seq0
}

// cursorAt encodes a position: "1|<unix µs>|<seq>|<node>", base64url.
func cursorAt(t time.Time, node string, seq int64) Cursor {
	raw := "1|" + strconv.FormatInt(t.UnixMicro(), 10) + "|" + strconv.FormatInt(seq, 10) + "|" + node
	return Cursor(base64.RawURLEncoding.EncodeToString([]byte(raw)))
}

func (c Cursor) position() (time.Time, string, int64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(string(c))
	if err != nil {
		return time.Time{}, "", 0, ErrInvalidCursor
	}
	parts := strings.SplitN(string(raw), "|", 4)
	if len(parts) != 4 || parts[0] != "1" || parts[3] == "" {
		return time.Time{}, "", 0, ErrInvalidCursor
	}
	micros, err1 := strconv.ParseInt(parts[1], 10, 64)
	seq, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil {
		return time.Time{}, "", 0, ErrInvalidCursor
	}
	return time.UnixMicro(micros).UTC(), parts[3], seq, nil
}
