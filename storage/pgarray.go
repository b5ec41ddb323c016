package storage

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// pgArray builds a one-dimensional PostgreSQL array in the binary wire
// format, for a parameter sent as []byte (the connection sets lib/pq's
// binary_parameters, so a []byte travels in binary format and PostgreSQL
// reads it with the parameter type's receive function: array_recv here).
//
// The audit writer sends every batch as one array per column. In text
// form ({"a","b",NULL}) PostgreSQL parsed each array character by
// character and each element through its type's text input (timestamptz
// parsing a date string per row): about 8 µs of database CPU per event,
// and 4 µs more in this process quoting and escaping. In binary form an
// element is a length and its bytes, or an 8-byte integer.
//
// Layout: ndim, has-nulls flag, element type OID, then per dimension its
// length and lower bound (1), then per element a 4-byte length (-1 for
// NULL) and that many bytes. An empty array has no dimensions.
type pgArray struct {
	buf     []byte
	n       int32
	hasNull bool
	oid     uint32
}

// The element types the audit arrays carry (pg_type OIDs, fixed since
// PostgreSQL's first releases).
const (
	oidInt8        = 20
	oidInt4        = 23
	oidText        = 25
	oidTimestamptz = 1184
)

// arrayHeader is the size of a one-dimensional array's header.
const arrayHeader = 20

// newPGArray starts an array of oid elements with room for n of about size
// bytes each.
func newPGArray(oid uint32, n, size int) pgArray {
	return pgArray{oid: oid, buf: make([]byte, arrayHeader, arrayHeader+n*(4+size))}
}

func (a *pgArray) element(size int) {
	if a.n == math.MaxInt32 {
		panic("storage: array too long")
	}
	a.n++
	a.buf = binary.BigEndian.AppendUint32(a.buf, uint32(int32(size)))
}

func (a *pgArray) int8(v int64) {
	a.check(oidInt8)
	a.element(8)
	a.buf = binary.BigEndian.AppendUint64(a.buf, uint64(v))
}

func (a *pgArray) int4(v int32) {
	a.check(oidInt4)
	a.element(4)
	a.buf = binary.BigEndian.AppendUint32(a.buf, uint32(v))
}

// pgEpochMicros is PostgreSQL's timestamp epoch, 2000-01-01 UTC, in Unix
// microseconds: a timestamptz is a count of microseconds from it.
var pgEpochMicros = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()

// time appends t to the microsecond, dropping what is finer (as the text
// form of a timestamptz did).
func (a *pgArray) time(t time.Time) {
	a.check(oidTimestamptz)
	a.element(8)
	a.buf = binary.BigEndian.AppendUint64(a.buf, uint64(t.UnixMicro()-pgEpochMicros))
}

// text appends s, which must be valid UTF-8 without NUL bytes: PostgreSQL
// refuses anything else, as it does in text form.
func (a *pgArray) text(s string) {
	a.check(oidText)
	if int64(len(s)) > math.MaxInt32 {
		panic("storage: array element too long")
	}
	a.element(len(s))
	a.buf = append(a.buf, s...)
}

func (a *pgArray) null() {
	a.n++
	a.hasNull = true
	a.buf = binary.BigEndian.AppendUint32(a.buf, math.MaxUint32) // -1
}

// check panics if an element of the wrong type is added: PostgreSQL would
// read its bytes as the array's type.
func (a *pgArray) check(oid uint32) {
	if a.oid != oid {
		panic(fmt.Sprintf("storage: an element of type %d added to an array of type %d", oid, a.oid))
	}
}

// bytes fills in the header and returns the array.
func (a *pgArray) bytes() []byte {
	h := a.buf[:arrayHeader]
	binary.BigEndian.PutUint32(h[8:], a.oid)
	if a.n == 0 {
		binary.BigEndian.PutUint32(h[0:], 0) // no dimensions
		binary.BigEndian.PutUint32(h[4:], 0)
		return h[:12]
	}
	binary.BigEndian.PutUint32(h[0:], 1)
	var flags uint32
	if a.hasNull {
		flags = 1
	}
	binary.BigEndian.PutUint32(h[4:], flags)
	binary.BigEndian.PutUint32(h[12:], uint32(a.n))
	binary.BigEndian.PutUint32(h[16:], 1) // lower bound
	return a.buf
}
