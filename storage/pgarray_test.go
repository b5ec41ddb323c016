package storage

import (
	"testing"
	"time"
)

func TestPGArrayText(t *testing.T) {
	var empty pgArray
	if got := empty.String(); got != "{}" {
		t.Fatalf("empty array = %q", got)
	}
	var a pgArray
	a.text(`plain`)
	a.text(`say "hi" \ bye`)
	a.null()
	a.text(``)
	a.text(`""\\`)
	a.time(time.Date(2026, 11, 29, 10, 0, 0, 123456789, time.FixedZone("CET", 3600)))
	want := `{"plain","say \"hi\" \\ bye",NULL,"","\"\"\\\\","2026-11-29 09:00:00.123456Z"}`
	if got := a.String(); got != want {
		t.Fatalf("array = %s, want %s", got, want)
	}
	if got := a.String(); got != want {
		t.Fatalf("second String = %s, want %s (it must not close the array twice)", got, want)
	}
	var n pgArray
	n.int(-1)
	n.int(42)
	if got := n.String(); got != "{-1,42}" {
		t.Fatalf("int array = %s", got)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("adding to an ended array did not panic")
		}
	}()
	n.int(7)
}
