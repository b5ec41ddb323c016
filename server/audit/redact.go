package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
)

// maxRedactDepth bounds the nesting RedactJSON follows; deeper documents
// are summarized rather than walked on an attacker's terms.
const maxRedactDepth = 256

// MaxRedactedBytes bounds a redacted body. Every string becomes a 77-byte
// HMAC, so a 1 MiB body of short strings would grow twentyfold (and cost
// a quarter of a million HMACs), from anyone, since refused requests are
// audited too. Past the bound (or maxRedactDepth) redaction stops and the
// event records a summary instead:
// {"truncated":true,"bytes":N,"body":"<HMAC of the body>"}.
const MaxRedactedBytes = 64 << 10

var null = json.RawMessage("null")

// RedactJSON returns body with every string and number value, at any
// depth, replaced by its k.HMAC (a number's as written: 4921 becomes the
// HMAC of "4921"), since a secret value may be a number (a PIN) as well as
// a string; object keys, booleans and nulls stay and the order is kept.
// Invalid JSON, trailing data or nil keys (sealed) give null: nothing of
// the body is recorded then. A body whose redaction would pass
// MaxRedactedBytes, or that nests deeper than 256 levels (a handler may
// still take it, so what it held must stay findable), gives a summary with
// the HMAC of the whole body.
func RedactJSON(body []byte, k *Keys) json.RawMessage {
	if k == nil {
		return null
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var out bytes.Buffer
	if err := redactValue(dec, &out, k, 0); errors.Is(err, errTooBig) || errors.Is(err, errTooDeep) {
		var sum bytes.Buffer
		sum.WriteString(`{"truncated":true,"bytes":` + strconv.Itoa(len(body)) + `,"body":`)
		writeString(&sum, k.HMAC(string(body)))
		sum.WriteByte('}')
		return sum.Bytes()
	} else if err != nil {
		return null
	}
	if _, err := dec.Token(); err != io.EOF {
		return null
	}
	return out.Bytes()
}

var (
	errTooDeep = errors.New("audit: JSON nested too deeply")
	errTooBig  = errors.New("audit: redacted body too big")
)

func redactValue(dec *json.Decoder, out *bytes.Buffer, k *Keys, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch v := tok.(type) {
	case json.Delim:
		if depth >= maxRedactDepth {
			return errTooDeep
		}
		open, end := byte(v), byte(']')
		if v == '{' {
			end = '}'
		}
		out.WriteByte(open)
		for i := 0; dec.More(); i++ {
			if i > 0 {
				out.WriteByte(',')
			}
			if open == '{' {
				key, err := dec.Token()
				if err != nil {
					return err
				}
				writeString(out, key.(string))
				out.WriteByte(':')
			}
			if err := redactValue(dec, out, k, depth+1); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return err
		}
		out.WriteByte(end)
	case string:
		writeString(out, k.HMAC(v))
	case json.Number:
		writeString(out, k.HMAC(v.String()))
	case bool:
		if v {
			out.WriteString("true")
		} else {
			out.WriteString("false")
		}
	case nil:
		out.WriteString("null")
	}
	if out.Len() > MaxRedactedBytes {
		return errTooBig // stop now: no more HMACs for this body
	}
	return nil
}

// writeString writes s as a JSON string.
func writeString(out *bytes.Buffer, s string) {
	b, _ := json.Marshal(s) // a string always marshals
	out.Write(b)
}

// redactedSummary reports whether data is RedactJSON's summary of a body
// too big to redact: its one number is the body's size.
func redactedSummary(data []byte) bool {
	var sum struct {
		Truncated *bool   `json:"truncated"`
		Bytes     *int64  `json:"bytes"`
		Body      *string `json:"body"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(&sum) == nil && sum.Truncated != nil && *sum.Truncated &&
		sum.Bytes != nil && *sum.Bytes > 0 && sum.Body != nil && strings.HasPrefix(*sum.Body, HMACPrefix)
}

// onlyHMACLeaves reports whether every string value in the JSON document
// data is an HMAC and no value is a number: the writer's check that a
// request body was redacted.
func onlyHMACLeaves(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	inObject := []bool{false}
	expectKey := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				inObject = append(inObject, v == '{')
				expectKey = v == '{'
			default:
				inObject = inObject[:len(inObject)-1]
				expectKey = inObject[len(inObject)-1]
			}
			continue
		case string:
			if !expectKey && !strings.HasPrefix(v, HMACPrefix) {
				return false
			}
		case json.Number:
			return false // RedactJSON hides numbers too
		}
		if inObject[len(inObject)-1] {
			expectKey = !expectKey
		}
	}
}
