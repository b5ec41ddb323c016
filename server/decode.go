package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/secrethub/secrethub/server/fault"
)

// errBodyTooLarge is reported as 413.
var errBodyTooLarge = errors.New("request body is larger than the limit")

// decodeBody parses the JSON body into v whatever the Content-Type (the
// runbook's curl commands send none). An empty body leaves v untouched.
// Unknown fields are rejected: a misspelt field should fail loudly rather
// than silently fall back to a default.
func decodeBody(r *http.Request, v any) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	return decodeJSON(body, v)
}

// readBody reads the request body once; later calls return the same bytes,
// so authorization can look inside a body its handler decodes afterwards.
func readBody(r *http.Request) ([]byte, error) {
	st := stateOf(r.Context())
	switch {
	case st.bodyErr != nil:
		return nil, st.bodyErr
	case st.bodyRead:
		return st.body, nil
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			st.bodyErr = errBodyTooLarge
			return nil, errBodyTooLarge
		}
		return nil, fault.Invalidf("reading request body: %v", err)
	}
	st.body, st.bodyRead = body, true
	return body, nil
}

// decodeJSON is decodeBody on bytes already read.
func decodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return describeJSONError(err, body)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fault.Invalidf("request body has data after the JSON value")
	}
	return nil
}

func describeJSONError(err error, body []byte) error {
	var (
		syntax    *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		durErr    *durationError
		unmarshal *json.InvalidUnmarshalError
	)
	switch {
	case errors.As(err, &syntax):
		// The message quotes the offending character: the caller's, so
		// the audit log keeps it only as an HMAC.
		return fault.Invalidf("request body is not valid JSON: %v (at byte %d)", fault.Input(syntax.Error()), syntax.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fault.Invalidf("request body is not valid JSON: unexpected end of input (%d bytes)", len(body))
	case errors.As(err, &typeErr):
		// Value is "number 1.5" when the number itself did not fit: the
		// caller's value, which the audit log must get as an HMAC.
		got, what := "%s", any(typeErr.Value)
		if lit, ok := strings.CutPrefix(typeErr.Value, "number "); ok {
			got, what = "number %v", fault.Input(clip(lit))
		}
		field := typeErr.Field
		if field == "" {
			return fault.Invalidf("request body must be a JSON object, got "+got, what)
		}
		return fault.Invalidf("field %q must be %s, got "+got, field, jsonKind(typeErr.Type.Kind().String()), what)
	case errors.As(err, &durErr):
		return fault.Invalidf("%q"+durationHint, fault.Input(clip(durErr.value)))
	case errors.As(err, &unmarshal):
		return err // a programming error, reported as 500
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fault.Invalidf("unknown field %s in request body", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return fault.Invalidf("request body is not valid JSON: %v", err)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int64", "int32", "uint", "uint8", "uint32", "uint64", "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "a list"
	case "map", "struct":
		return "an object"
	}
	return "of type " + goKind
}

// Duration is a TTL in a request body: a number of seconds or a duration
// string ("90s", "30m", "24h", "87600h", "7d").
type Duration time.Duration

// durationError keeps what was sent where a duration belongs: the string,
// or the JSON text of anything else.
type durationError struct{ value string }

const durationHint = ` is not a duration: use seconds (3600) or a duration string ("1h", "30m", "7d")`

func (e *durationError) Error() string { return strconv.Quote(e.value) + durationHint }

// UnmarshalJSON accepts a number or a string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	raw := strings.TrimSpace(string(b))
	if raw == "null" {
		*d = 0
		return nil
	}
	if strings.HasPrefix(raw, `"`) {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return &durationError{value: raw}
		}
		v, err := ParseDuration(s)
		if err != nil {
			return &durationError{value: s}
		}
		*d = Duration(v)
		return nil
	}
	secs, err := strconv.ParseFloat(raw, 64)
	if err != nil || secs < 0 || secs > maxDurationSeconds {
		return &durationError{value: raw}
	}
	*d = Duration(time.Duration(secs * float64(time.Second)))
	return nil
}

// maxDurationSeconds keeps durations far from time.Duration overflow (~292 years).
const maxDurationSeconds = 100 * 365 * 24 * 3600

// ParseDuration parses seconds ("3600"), Go durations ("1h30m") and days ("7d").
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if secs, err := strconv.ParseInt(s, 10, 64); err == nil {
		if secs < 0 || secs > maxDurationSeconds {
			return 0, errors.New("out of range")
		}
		return time.Duration(secs) * time.Second, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n < 0 || n > maxDurationSeconds/86400 {
			return 0, errors.New("bad day count")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 || v > maxDurationSeconds*time.Second {
		return 0, errors.New("bad duration")
	}
	return v, nil
}

// intParam reads an optional non-negative integer query parameter.
func intParam(r *http.Request, name string) (int, error) {
	raw := r.URL.Query().Get(name)
	if raw == "" {
		return 0, nil
	}
	v, err := strconv.Atoi(raw)
	if err != nil || v < 0 {
		return 0, fault.Invalidf("query parameter %s must be a non-negative integer, got %q", name, fault.Input(clip(raw)))
	}
	return v, nil
}

// clip shortens caller input quoted in an error message.
func clip(s string) string { return fault.Clip(s, 64) }
