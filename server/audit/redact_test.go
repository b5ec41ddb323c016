package audit

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestRedactJSON(t *testing.T) {
	h := testKeys.HMAC
	for _, c := range []struct {
		name, in, want string
	}{
		{"a flat object keeps its keys and hides its values",
			`{"password":"hunter22","user":"ann"}`,
			`{"password":"` + h("hunter22") + `","user":"` + h("ann") + `"}`},
		{"numbers are hidden as written, booleans and nulls stay",
			`{"pin":4921,"f":1.50,"e":-2e3,"ok":true,"no":false,"x":null}`,
			`{"pin":"` + h("4921") + `","f":"` + h("1.50") + `","e":"` + h("-2e3") + `","ok":true,"no":false,"x":null}`},
		{"numbers in lists and at the top", `[7,{"a":[0]}]`, `["` + h("7") + `",{"a":["` + h("0") + `"]}]`},
		{"strings at any depth are hidden, order kept",
			` {"data": {"b": ["s1", {"deep": "s2"}], "a": "s3"}} `,
			`{"data":{"b":["` + h("s1") + `",{"deep":"` + h("s2") + `"}],"a":"` + h("s3") + `"}}`},
		{"a top-level string", `"s.secret-token"`, `"` + h("s.secret-token") + `"`},
		{"duplicate keys are both kept and both hidden", `{"a":"x","a":"y"}`, `{"a":"` + h("x") + `","a":"` + h("y") + `"}`},
		{"escapes are decoded before hashing", `{"a":"\u0068i"}`, `{"a":"` + h("hi") + `"}`},
		{"empty containers", `{"a":[],"b":{}}`, `{"a":[],"b":{}}`},
		{"invalid JSON is null", `{"password":"hunter22"`, `null`},
		{"trailing data is null", `{"a":"x"} {"b":"hunter22"}`, `null`},
		{"an empty body is null", ``, `null`},
		{"nesting beyond the limit is summarized", strings.Repeat("[", maxRedactDepth+1) + strings.Repeat("]", maxRedactDepth+1),
			`{"truncated":true,"bytes":514,"body":"` + h(strings.Repeat("[", maxRedactDepth+1)+strings.Repeat("]", maxRedactDepth+1)) + `"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := string(RedactJSON([]byte(c.in), testKeys)); got != c.want {
				t.Fatalf("got  %s\nwant %s", got, c.want)
			}
		})
	}
	t.Run("nil keys (sealed) give null", func(t *testing.T) {
		if got := string(RedactJSON([]byte(`{"a":"b"}`), nil)); got != "null" {
			t.Fatalf("got %s", got)
		}
	})
	t.Run("nesting up to the limit is kept", func(t *testing.T) {
		in := strings.Repeat("[", maxRedactDepth) + strings.Repeat("]", maxRedactDepth)
		if got := string(RedactJSON([]byte(in), testKeys)); got != in {
			t.Fatalf("got %.40s…", got)
		}
	})
}

// FuzzRedactJSON: whatever the body, RedactJSON returns null or JSON whose
// string values are all HMACs, with no number and none of the body's string
// values of four bytes or more, and which the writer accepts as request
// data (it refuses numbers).
func FuzzRedactJSON(f *testing.F) {
	for _, seed := range []string{
		`{"password":"hunter22"}`, `["a","bbbb",1,true,null]`, `{"a":{"b":{"c":"secret"}}}`, `"top"`,
		`{"k":"\u00e9\ud83d\ude00"}`, `{"a":"x","a":"hmac-sha256:00"}`, `{"hmac-sha256:ab":"hmac-sha256:ab"}`, `1e999`, `{`,
		`{"data":{"pin":"1234","pad":` + strings.Repeat("[", 300) + strings.Repeat("]", 300) + `}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		out := RedactJSON(body, testKeys)
		if string(out) == "null" {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON out of %q: %s", body, out)
		}
		in := stringValues(body)
		for _, v := range stringValues(out) {
			if !strings.HasPrefix(v, HMACPrefix) {
				t.Fatalf("string value %q left in clear (body %q)", v, body)
			}
			for _, s := range in {
				if len(s) >= 4 && v == s {
					t.Fatalf("body value %q appears in the output", s)
				}
			}
		}
		if !onlyHMACLeaves(out) && !redactedSummary(out) {
			t.Fatalf("the writer would refuse the redacted body %s", out)
		}
	})
}

// stringValues lists every string in value position (not object keys).
func stringValues(doc []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var out []string
	var walk func() bool
	walk = func() bool {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		switch v := tok.(type) {
		case json.Delim:
			for dec.More() {
				if v == '{' {
					if _, err := dec.Token(); err != nil {
						return false
					}
				}
				if !walk() {
					return false
				}
			}
			_, err := dec.Token()
			return err == nil
		case string:
			out = append(out, v)
		}
		return true
	}
	walk()
	return out
}

// A body whose redaction would be huge (short strings each become a 77-byte
// HMAC) is recorded as a summary: its size and the HMAC of the whole body,
// which still matches the body by sys/audit-hash, and passes the writer.
func TestRedactJSONSummarizesWhatWouldBeHuge(t *testing.T) {
	for name, body := range map[string]string{
		"short strings": `[` + strings.TrimSuffix(strings.Repeat(`"a",`, 50000), ",") + `]`,
		"numbers":       `[` + strings.TrimSuffix(strings.Repeat(`12345678,`, 20000), ",") + `]`,
	} {
		t.Run(name, func(t *testing.T) {
			got := RedactJSON([]byte(body), testKeys)
			var sum struct {
				Truncated bool   `json:"truncated"`
				Bytes     int    `json:"bytes"`
				Body      string `json:"body"`
			}
			if err := json.Unmarshal(got, &sum); err != nil || !sum.Truncated || sum.Bytes != len(body) || sum.Body != testKeys.HMAC(body) {
				t.Fatalf("redacting a %d-byte body gave %d bytes: %.200s", len(body), len(got), got)
			}
			e := sample(1)
			e.RequestData = got
			if _, err := e.stored(time.Now); err != nil {
				t.Fatalf("the writer refuses the summary: %v", err)
			}
		})
	}
	small := `{"password":"hunter2","n":[1,2]}`
	if got := string(RedactJSON([]byte(small), testKeys)); strings.Contains(got, "truncated") || !strings.Contains(got, testKeys.HMAC("hunter2")) {
		t.Fatalf("a small body was summarized: %s", got)
	}
}
