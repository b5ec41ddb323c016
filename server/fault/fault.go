// Package fault gives domain errors a kind the HTTP layer can report without
// guessing: bad input, missing, conflicting, forbidden, rate-limited or
// unavailable. A
// fault's message is written for the API caller and never holds a secret.
package fault

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind classifies an error for the API.
type Kind int

// The kinds, each with its HTTP status in server/respond.go.
const (
	Unknown     Kind = iota // not a fault: an internal error
	Invalid                 // 400: the request is malformed or not allowed as asked
	Denied                  // 403: missing/invalid token or permission denied
	NotFound                // 404
	Conflict                // 409: check-and-set or a competing change
	Unavailable             // 503: sealed, or a dependency is down
	Limited                 // 429: too many attempts; see RetryAfter
)

// Error is a classified error with a caller-facing message.
type Error struct {
	Kind Kind
	Msg  string
	// Err is an optional underlying cause, kept for logs and errors.Is.
	Err error
	// RetryAfter is how long a Limited caller should wait before trying again.
	RetryAfter time.Duration
	// Inputs are the caller's values that Msg quotes (see Input).
	Inputs []string
}

func (e *Error) Error() string { return e.Msg }

// Unwrap exposes the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is makes a fault match a sentinel created by New with the same kind and
// message, also when it was made anew or carries a cause (Wrap), so callers
// can write errors.Is(err, secrets.ErrNotFound). Faults of one kind with
// different messages stay distinct.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t != nil && t.Kind == e.Kind && t.Msg == e.Msg
}

// New returns a sentinel fault.
func New(kind Kind, msg string) *Error { return &Error{Kind: kind, Msg: msg} }

// Invalidf reports bad input. Arguments of type Input are quoted and
// remembered as the caller's values; a fault among the arguments passes
// its own Inputs on.
func Invalidf(format string, args ...any) error { return Newf(Invalid, format, args...) }

// Newf is a fault of kind with a formatted message, its Input arguments
// remembered as Invalidf's are.
func Newf(kind Kind, format string, args ...any) error {
	var inputs []string
	for _, a := range args {
		switch v := a.(type) {
		case Input:
			inputs = append(inputs, string(v))
		case error:
			inputs = append(inputs, InputsOf(v)...)
		}
	}
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...), Inputs: inputs}
}

// Input is a value the caller sent, quoted in a fault's message. The
// caller is shown it (it is theirs), but the audit log records its HMAC
// instead, as it does every other value of a request: a secret pasted into
// the wrong field must not reach the log in the clear through the error
// that rejects it. Whatever the verb, it prints as Go's %q does.
type Input string

// Number is a number the caller sent, quoted in a fault's message as an
// Input: the audit log records numbers from a body by their HMAC too.
func Number[N ~int | ~int64](n N) Input { return Input(strconv.FormatInt(int64(n), 10)) }

// Format prints the value quoted.
func (in Input) Format(f fmt.State, _ rune) {
	_, _ = io.WriteString(f, strconv.Quote(string(in)))
}

// InputsOf returns the caller's values quoted in the outermost fault's
// message.
func InputsOf(err error) []string {
	var f *Error
	if errors.As(err, &f) {
		return f.Inputs
	}
	return nil
}

// Redact returns msg with each of inputs, where msg quotes it, replaced by
// hash of it, quoted: how an error message that repeats what the caller
// sent is kept in the audit log. Longer values go first, so a value that
// contains another is replaced whole.
func Redact(msg string, inputs []string, hash func(string) string) string {
	if len(inputs) == 0 {
		return msg
	}
	sorted := slices.Clone(inputs)
	slices.SortFunc(sorted, func(a, b string) int { return len(b) - len(a) })
	for _, in := range sorted {
		msg = strings.ReplaceAll(msg, strconv.Quote(in), strconv.Quote(hash(in)))
	}
	return msg
}

// Wrap classifies cause under kind with a caller-facing message.
func Wrap(kind Kind, msg string, cause error) error {
	return &Error{Kind: kind, Msg: msg, Err: cause}
}

// Limit refuses a caller for d, reported with the message of sentinel (a
// Limited fault), so errors.Is(err, sentinel) still holds.
func Limit(sentinel *Error, d time.Duration) error {
	return &Error{Kind: Limited, Msg: sentinel.Msg, RetryAfter: d}
}

// RetryAfterOf returns the wait of the outermost fault in err's chain, zero
// when there is none.
func RetryAfterOf(err error) time.Duration {
	var f *Error
	if errors.As(err, &f) {
		return f.RetryAfter
	}
	return 0
}

// KindOf returns the kind of the outermost fault in err's chain.
func KindOf(err error) Kind {
	var f *Error
	if errors.As(err, &f) {
		return f.Kind
	}
	return Unknown
}

// Message returns the caller-facing message of the outermost fault.
func Message(err error) string {
	var f *Error
	if errors.As(err, &f) {
		return f.Msg
	}
	return ""
}

// Clip shortens what a caller sent to at most max bytes, cut on a
// character boundary and marked with "…", so an error message that quotes
// it stays short and valid UTF-8 whatever was sent.
func Clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
