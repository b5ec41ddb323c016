package storage

import (
	"bytes"
	"encoding/hex"
	"testing"
	"time"
)

func TestPGArrayBinaryLayout(t *testing.T) {
	empty := newPGArray(oidText, 0, 0)
	if got, want := hex.EncodeToString(empty.bytes()), "00000000"+"00000000"+"00000019"; got != want {
		t.Fatalf("empty text array = %s, want %s (no dimensions, no nulls, element type text)", got, want)
	}
	a := newPGArray(oidText, 2, 4)
	a.text("ab")
	a.null()
	want := "00000001" + "00000001" + "00000019" + "00000002" + "00000001" + // 1 dim, has nulls, text, 2 long from 1
		"00000002" + "6162" + "ffffffff"
	if got := hex.EncodeToString(a.bytes()); got != want {
		t.Fatalf("array = %s, want %s", got, want)
	}
	n := newPGArray(oidInt8, 1, 8)
	n.int8(-2)
	if got, want := n.bytes()[20:], []byte{0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe}; !bytes.Equal(got, want) {
		t.Fatalf("int8 element = %x, want %x", got, want)
	}
	ts := newPGArray(oidTimestamptz, 1, 8)
	ts.time(time.Date(2000, 1, 1, 1, 0, 0, 1999, time.FixedZone("CET", 3600))) // midnight UTC and 1.999 µs
	if got, want := ts.bytes()[20:], []byte{0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1}; !bytes.Equal(got, want) {
		t.Fatalf("timestamptz element = %x, want %x (µs since 2000-01-01 UTC, truncated)", got, want)
	}
}

func TestPGArrayRefusesAnElementOfAnotherType(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("a text element in a bigint array did not panic")
		}
	}()
	a := newPGArray(oidInt8, 1, 8)
	a.text("1")
}
