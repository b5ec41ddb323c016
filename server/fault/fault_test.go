package fault_test

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/secrethub/secrethub/server/fault"
)

var (
	errMissing = fault.New(fault.NotFound, "secret not found")
	errGone    = fault.New(fault.NotFound, "secret version is deleted")
)

func TestIs(t *testing.T) {
	cases := []struct {
		name   string
		err    error
		target error
		want   bool
	}{
		{"a sentinel matches itself", errMissing, errMissing, true},
		{"a fault made anew with the same kind and message matches the sentinel", fault.New(fault.NotFound, "secret not found"), errMissing, true},
		{"a fault with a cause matches the sentinel of its kind and message", fault.Wrap(fault.NotFound, "secret not found", io.EOF), errMissing, true},
		{"a sentinel wrapped with %w still matches", fmt.Errorf("reading prod/db: %w", errMissing), errMissing, true},
		{"a fault of the same kind with another message does not match", errGone, errMissing, false},
		{"a fault of another kind with the same message does not match", fault.New(fault.Invalid, "secret not found"), errMissing, false},
		{"a fault does not match a plain error", errMissing, io.EOF, false},
		{"a plain error does not match a fault", io.EOF, errMissing, false},
		{"the cause of a wrapped fault is still found", fault.Wrap(fault.Unavailable, "database unavailable", io.EOF), io.EOF, true},
		{"a fault does not match a typed nil fault", errMissing, (*fault.Error)(nil), false},
		{"a fault does not match nil", errMissing, nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := errors.Is(c.err, c.target); got != c.want {
				t.Fatalf("errors.Is(%v, %v) = %v, want %v", c.err, c.target, got, c.want)
			}
		})
	}
}

func TestErrorAndUnwrap(t *testing.T) {
	cause := errors.New("pq: password authentication failed for user \"secrethub\"")
	wrapped := fault.Wrap(fault.Unavailable, "storage is unavailable", cause)
	cases := []struct {
		name    string
		err     error
		message string
		unwraps error
	}{
		{"a sentinel's text is its message", errMissing, "secret not found", nil},
		{"a wrapped fault's text is its message, never the cause's", wrapped, "storage is unavailable", cause},
		{"Invalidf formats its message", fault.Invalidf("version %d of %q", 3, "prod/db"), `version 3 of "prod/db"`, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.err.Error(); got != c.message {
				t.Fatalf("Error() = %q, want %q", got, c.message)
			}
			if got := errors.Unwrap(c.err); got != c.unwraps {
				t.Fatalf("Unwrap() = %v, want %v", got, c.unwraps)
			}
		})
	}
}

func TestKindOfAndMessage(t *testing.T) {
	cases := []struct {
		name    string
		err     error
		kind    fault.Kind
		message string
	}{
		{"nil is of no kind and has no message", nil, fault.Unknown, ""},
		{"a plain error is of no kind and has no message", io.EOF, fault.Unknown, ""},
		{"Invalidf makes an Invalid fault", fault.Invalidf("bad %s", "input"), fault.Invalid, "bad input"},
		{"New keeps its kind", fault.New(fault.Denied, "permission denied"), fault.Denied, "permission denied"},
		{"Wrap keeps its kind", fault.Wrap(fault.Conflict, "cas mismatch", io.EOF), fault.Conflict, "cas mismatch"},
		{"a fault wrapped with %w keeps its kind and message", fmt.Errorf("op: %w", fault.New(fault.Unavailable, "sealed")), fault.Unavailable, "sealed"},
		{"the outermost fault decides", fault.Wrap(fault.Invalid, "outer", fault.New(fault.NotFound, "inner")), fault.Invalid, "outer"},
		{"a plain error around a fault still finds the fault", fmt.Errorf("a: %w", fmt.Errorf("b: %w", errMissing)), fault.NotFound, "secret not found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := fault.KindOf(c.err); got != c.kind {
				t.Fatalf("KindOf = %v, want %v", got, c.kind)
			}
			if got := fault.Message(c.err); got != c.message {
				t.Fatalf("Message = %q, want %q", got, c.message)
			}
		})
	}
}

func TestNewMakesDistinctSentinels(t *testing.T) {
	a, b := fault.New(fault.Invalid, "x"), fault.New(fault.Invalid, "x")
	if a == b {
		t.Fatal("New returned the same pointer twice")
	}
	if !errors.Is(a, b) || !errors.Is(b, a) {
		t.Fatal("two sentinels of one kind and message do not match each other")
	}
}

func TestLimitCarriesItsWait(t *testing.T) {
	errBusy := fault.New(fault.Limited, "too many attempts")
	err := fmt.Errorf("login: %w", fault.Limit(errBusy, 90*time.Second))
	if got := fault.KindOf(err); got != fault.Limited {
		t.Fatalf("KindOf = %v, want Limited", got)
	}
	if got := fault.RetryAfterOf(err); got != 90*time.Second {
		t.Fatalf("RetryAfterOf = %v, want 1m30s", got)
	}
	if !errors.Is(err, errBusy) {
		t.Fatal("a limit does not match its sentinel")
	}
	if got := err.Error(); got != "login: too many attempts" {
		t.Fatalf("Error() = %q", got)
	}
	for _, other := range []error{nil, io.EOF, errMissing} {
		if got := fault.RetryAfterOf(other); got != 0 {
			t.Fatalf("RetryAfterOf(%v) = %v, want 0", other, got)
		}
	}
}

func TestClipCutsOnACharacterBoundary(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{
		{"short", 64, "short"},
		{"exactly", 7, "exactly"},
		{"abcdef", 3, "abc…"},
		{"aé", 2, "a…"}, // é is two bytes: not cut in half
		{"日本語", 4, "日…"},
		{"", 0, ""},
	} {
		got := fault.Clip(c.in, c.max)
		if got != c.want || !utf8.ValidString(got) {
			t.Errorf("Clip(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}

func TestInputsAreQuotedAndRemembered(t *testing.T) {
	err := fault.Invalidf("ttl %q is not a duration; %s neither", fault.Input(`s.secret"x`), fault.Input("two"))
	if got, want := err.Error(), `ttl "s.secret\"x" is not a duration; "two" neither`; got != want {
		t.Fatalf("message = %s, want %s", got, want)
	}
	if got := fault.InputsOf(err); !slices.Equal(got, []string{`s.secret"x`, "two"}) {
		t.Fatalf("inputs = %q", got)
	}
	outer := fault.Invalidf("policies: %v", err)
	if got := fault.InputsOf(fmt.Errorf("wrapped: %w", outer)); !slices.Equal(got, []string{`s.secret"x`, "two"}) {
		t.Fatalf("a fault quoting a fault lost its inputs: %q", got)
	}
	if fault.InputsOf(errors.New("plain")) != nil || fault.InputsOf(fault.Invalidf("no %s", "input")) != nil {
		t.Fatal("inputs found where none were given")
	}
}

func TestRedactReplacesEveryQuotedInput(t *testing.T) {
	hash := func(s string) string { return "H(" + s + ")" }
	msg := `name "ab" is not "abc", and "ab" again; ab unquoted stays`
	got := fault.Redact(msg, []string{"ab", "abc"}, hash)
	want := `name "H(ab)" is not "H(abc)", and "H(ab)" again; ab unquoted stays`
	if got != want {
		t.Fatalf("Redact = %s\nwant     %s", got, want)
	}
	if fault.Redact(msg, nil, hash) != msg {
		t.Fatal("Redact without inputs changed the message")
	}
}
