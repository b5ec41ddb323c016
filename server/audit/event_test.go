package audit

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/secrethub/secrethub/storage"
)

var t0 = time.Date(2026, 11, 29, 10, 0, 0, 123456789, time.UTC)

// The canonical encodings are a file format: whoever re-implements
// verification reads them from the package documentation, and stored
// chains must verify forever. These pinned bytes and hashes change only
// with a new version number.
func TestCanonicalEncodingsAreStable(t *testing.T) {
	data := `{"password":"hmac-sha256:ab","n":1}`
	ev := storage.AuditEvent{
		Node: "node-1", Seq: 42, Time: t0.Truncate(time.Microsecond), RequestID: "req<1>&", ClientIP: "192.0.2.1",
		TokenAccessor: "acc", TokenHMAC: "", AuthMethod: "approle", Operation: "POST", Path: "/v1/secrets/static/é",
		Resource: "é", Capability: "create", Policies: []string{"a", "b"}, Decision: "allow", RequestData: data,
	}
	empty := ev
	empty.Policies, empty.RequestData = nil, ""
	for _, c := range []struct {
		name  string
		bytes []byte
		want  string
	}{
		{"a request part with every field", mustRequestBytes(t, ev),
			`{"v":1,"node":"node-1","seq":42,"time":"2026-11-29T10:00:00.123456Z","request_id":"req<1>&","client_ip":"192.0.2.1",` +
				`"token_accessor":"acc","token_hmac":"","auth_method":"approle","operation":"POST","path":"/v1/secrets/static/é",` +
				`"resource":"é","capability":"create","policies":["a","b"],"decision":"allow",` +
				`"request_data":"{\"password\":\"hmac-sha256:ab\",\"n\":1}"}`},
		{"a request part without policies or data", mustRequestBytes(t, empty),
			`{"v":1,"node":"node-1","seq":42,"time":"2026-11-29T10:00:00.123456Z","request_id":"req<1>&","client_ip":"192.0.2.1",` +
				`"token_accessor":"acc","token_hmac":"","auth_method":"approle","operation":"POST","path":"/v1/secrets/static/é",` +
				`"resource":"é","capability":"create","policies":[],"decision":"allow","request_data":null}`},
		{"an outcome", outcomeBytes(storage.AuditOutcome{Seq: 42, Status: 403, Error: "permission denied", LatencyMicros: 1500}),
			`{"v":1,"status":403,"error":"permission denied","latency_us":1500}`},
		{"a checkpoint", appendCheckpoint(nil, storage.AuditCheckpoint{Node: "node-1", Seq: 42, Hash: "ff", Kind: "prune"}),
			`{"v":1,"node":"node-1","seq":42,"hash":"ff","kind":"prune"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if string(c.bytes) != c.want {
				t.Fatalf("canonical bytes changed:\n got %s\nwant %s", c.bytes, c.want)
			}
		})
	}
	// The hash of the first sample after the genesis hash, computed once
	// with `printf '%s%s' "$(printf '0%.0s' {1..64})" "$canonical" | sha256sum`.
	const pinned = "5f36cf194e7910009955c77726b136c5a3d8fa128dbf114c7e06d2ff9582e68b"
	if got := chainHash(GenesisHash, mustRequestBytes(t, ev)); got != pinned {
		t.Fatalf("chain hash changed: %s", got)
	}
	// The writer's way, in a reused buffer holding something else first.
	if got, _ := eventHash([]byte("leftover bytes of an earlier event"), GenesisHash, &ev); got != pinned {
		t.Fatalf("eventHash differs from chainHash: %s", got)
	}
}

func mustRequestBytes(t *testing.T, e storage.AuditEvent) []byte {
	t.Helper()
	b, ok := requestBytes(&e)
	if !ok {
		t.Fatalf("requestBytes refused a clean event %+v", e)
	}
	return b
}

func TestEveryFieldOfTheRequestPartIsHashed(t *testing.T) {
	base := storage.AuditEvent{Node: "n", Seq: 1, Time: t0, RequestID: "r", ClientIP: "ip", TokenAccessor: "a",
		TokenHMAC: "hmac-sha256:00", AuthMethod: "m", Operation: "GET", Path: "/p", Resource: "res", Capability: "read",
		Policies: []string{"p"}, Decision: "allow", RequestData: `{"a":1}`}
	h := chainHash(GenesisHash, mustRequestBytes(t, base))
	for name, change := range map[string]func(e *storage.AuditEvent){
		"node":           func(e *storage.AuditEvent) { e.Node = "m" },
		"seq":            func(e *storage.AuditEvent) { e.Seq = 2 },
		"time":           func(e *storage.AuditEvent) { e.Time = e.Time.Add(time.Microsecond) },
		"request id":     func(e *storage.AuditEvent) { e.RequestID = "s" },
		"client ip":      func(e *storage.AuditEvent) { e.ClientIP = "ip2" },
		"token accessor": func(e *storage.AuditEvent) { e.TokenAccessor = "b" },
		"token hmac":     func(e *storage.AuditEvent) { e.TokenHMAC = "hmac-sha256:01" },
		"auth method":    func(e *storage.AuditEvent) { e.AuthMethod = "n" },
		"operation":      func(e *storage.AuditEvent) { e.Operation = "PUT" },
		"path":           func(e *storage.AuditEvent) { e.Path = "/q" },
		"resource":       func(e *storage.AuditEvent) { e.Resource = "other" },
		"capability":     func(e *storage.AuditEvent) { e.Capability = "update" },
		"policies":       func(e *storage.AuditEvent) { e.Policies = []string{"p", "q"} },
		"decision":       func(e *storage.AuditEvent) { e.Decision = "deny" },
		"request data":   func(e *storage.AuditEvent) { e.RequestData = `{"a":2}` },
		"no request data": func(e *storage.AuditEvent) {
			e.RequestData = ""
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := base
			e.Policies = append([]string(nil), base.Policies...)
			change(&e)
			if chainHash(GenesisHash, mustRequestBytes(t, e)) == h {
				t.Fatalf("changing the %s left the hash unchanged", name)
			}
		})
	}
	t.Run("the previous hash", func(t *testing.T) {
		if chainHash(strings.Repeat("1", 64), mustRequestBytes(t, base)) == h {
			t.Fatal("the previous hash is not part of the chain hash")
		}
	})
}

// Values the canonical JSON could not tell apart from their cleaned form
// are cleaned before they are stored, and refused when read back.
func TestUncleanTextIsCleanedOnWriteAndRefusedOnRead(t *testing.T) {
	for _, in := range []string{"bad\xffbyte", "nul\x00byte"} {
		s, err := Event{Path: in, Decision: DecisionNone}.stored(time.Now)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(s.Path, "\uFFFD") || strings.Contains(s.Path, "\x00") || strings.Contains(s.Path, "\xff") {
			t.Errorf("path %q stored as %q", in, s.Path)
		}
		raw := storage.AuditEvent{Path: in, Decision: DecisionNone}
		if _, ok := requestBytes(&raw); ok {
			t.Errorf("a stored path %q was given canonical bytes", in)
		}
	}
}

func TestEventsAreRefusedWhenTheyCouldCarryPlaintext(t *testing.T) {
	for _, c := range []struct {
		name string
		ev   Event
	}{
		{"an unknown decision", Event{Decision: "maybe"}},
		{"request data with a clear string", Event{Decision: DecisionAllow, RequestData: json.RawMessage(`{"password":"hunter22"}`)}},
		{"request data with a clear string in an array", Event{Decision: DecisionAllow, RequestData: json.RawMessage(`{"a":["hmac-sha256:00","x"]}`)}},
		{"request data with a clear duplicate key", Event{Decision: DecisionAllow, RequestData: json.RawMessage(`{"a":"hmac-sha256:00","a":"x"}`)}},
		{"request data with a clear number", Event{Decision: DecisionAllow, RequestData: json.RawMessage(`{"pin":4921}`)}},
		{"request data shaped like a summary with more", Event{Decision: DecisionAllow, RequestData: json.RawMessage(`{"truncated":true,"bytes":9,"body":"hmac-sha256:00","pin":4921}`)}},
		{"request data shaped like a summary with a clear body", Event{Decision: DecisionAllow, RequestData: json.RawMessage(`{"truncated":true,"bytes":9,"body":"hunter22"}`)}},
		{"request data that is not JSON", Event{Decision: DecisionAllow, RequestData: json.RawMessage(`{"a":`)}},
		{"a token hmac that is the token", Event{Decision: DecisionDeny, TokenHMAC: "s.abcdefgh"}},
		{"an impossible status", Event{Decision: DecisionNone, Outcome: &Outcome{Status: 1000}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := c.ev.stored(time.Now); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	ok := Event{Decision: DecisionAllow, RequestData: json.RawMessage(` {"k" : ["hmac-sha256:00", true, null, {"x":"hmac-sha256:11"}]} `)}
	s, err := ok.stored(time.Now)
	if err != nil || s.RequestData != `{"k":["hmac-sha256:00",true,null,{"x":"hmac-sha256:11"}]}` {
		t.Fatalf("redacted data stored as %q, %v; want it compacted", s.RequestData, err)
	}
	if s, _ := (Event{Decision: DecisionAllow, RequestData: json.RawMessage("null")}).stored(time.Now); s.RequestData != "" {
		t.Fatalf("null data stored as %q, want none", s.RequestData)
	}
}

func TestEventJSONIsFlatAndHasOutcomeFieldsOnlyWithAnOutcome(t *testing.T) {
	e := Event{Node: "n", Seq: 3, Time: t0, Path: "/v1/x", Decision: DecisionAllow, RequestData: json.RawMessage(`{"a":1}`)}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["time"] != "2026-11-29T10:00:00.123456Z" || m["seq"] != 3.0 || m["request_data"].(map[string]any)["a"] != 1.0 {
		t.Fatalf("event JSON = %s", b)
	}
	if _, ok := m["status"]; ok {
		t.Fatalf("an event without outcome has a status: %s", b)
	}
	e.Outcome = &Outcome{Status: 204, Latency: 2500 * time.Microsecond, MAC: "m"}
	b, _ = json.Marshal(e)
	m = nil
	_ = json.Unmarshal(b, &m)
	if m["status"] != 204.0 || m["latency_us"] != 2500.0 || m["outcome_mac"] != "m" || m["error"] != "" {
		t.Fatalf("event JSON with outcome = %s", b)
	}
}

// The objects the canonical encodings are, as encoding/json sees them: the
// reference the hand-written encoders are held to.
type (
	jsonRequest struct {
		V             int      `json:"v"`
		Node          string   `json:"node"`
		Seq           int64    `json:"seq"`
		Time          string   `json:"time"`
		RequestID     string   `json:"request_id"`
		ClientIP      string   `json:"client_ip"`
		TokenAccessor string   `json:"token_accessor"`
		TokenHMAC     string   `json:"token_hmac"`
		AuthMethod    string   `json:"auth_method"`
		Operation     string   `json:"operation"`
		Path          string   `json:"path"`
		Resource      string   `json:"resource"`
		Capability    string   `json:"capability"`
		Policies      []string `json:"policies"`
		Decision      string   `json:"decision"`
		RequestData   *string  `json:"request_data"`
	}
	jsonOutcome struct {
		V         int    `json:"v"`
		Status    int    `json:"status"`
		Error     string `json:"error"`
		LatencyUS int64  `json:"latency_us"`
	}
	jsonCheckpoint struct {
		V    int    `json:"v"`
		Node string `json:"node"`
		Seq  int64  `json:"seq"`
		Hash string `json:"hash"`
		Kind string `json:"kind"`
	}
)

// viaEncodingJSON is v as encoding/json writes it: compact, HTML escaping
// off, no trailing newline.
func viaEncodingJSON(t *testing.T, v any) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// The hand-written encoders write what encoding/json writes for the same
// objects, whatever the strings hold (escapes, control bytes, U+2028,
// invalid UTF-8, HTML characters) and whatever the numbers.
func FuzzCanonicalMatchesEncodingJSON(f *testing.F) {
	f.Add("node-1", "req<1>&", "/v1/secrets/static/é", "p1", `{"a":"hmac-sha256:00"}`, int64(42), 403, int64(1500))
	f.Add("\x00\x01\x1f\x7f", "\b\f\n\r\t\"\\", "\u2028\u2029\u2027", "\xff\xfe", "", int64(-1), -5, int64(0))
	f.Add("é\xc3", "\xe2\x80", "\U0001F600", "", "null", int64(1<<62), 999, int64(-1<<63))
	f.Fuzz(func(t *testing.T, s1, s2, s3, s4, data string, seq int64, status int, latency int64) {
		e := storage.AuditEvent{
			Node: s1, Seq: seq, Time: t0.Add(time.Duration(seq % 1e15)), RequestID: s2, ClientIP: s3,
			TokenAccessor: s4, TokenHMAC: s1 + s2, AuthMethod: s3, Operation: s4, Path: s2 + s3,
			Resource: s3, Capability: s1, Policies: []string{s1, s4, ""}, Decision: s2, RequestData: data,
		}
		if seq%3 == 0 {
			e.Policies = nil
		}
		ref := jsonRequest{
			V: 1, Node: e.Node, Seq: e.Seq, Time: e.Time.UTC().Format(timeLayout), RequestID: e.RequestID,
			ClientIP: e.ClientIP, TokenAccessor: e.TokenAccessor, TokenHMAC: e.TokenHMAC, AuthMethod: e.AuthMethod,
			Operation: e.Operation, Path: e.Path, Resource: e.Resource, Capability: e.Capability,
			Policies: e.Policies, Decision: e.Decision,
		}
		if ref.Policies == nil {
			ref.Policies = []string{}
		}
		if e.RequestData != "" {
			ref.RequestData = &e.RequestData
		}
		if got, want := string(appendRequest(nil, &e)), viaEncodingJSON(t, ref); got != want {
			t.Fatalf("request part:\n got %s\nwant %s", got, want)
		}
		o := storage.AuditOutcome{Status: status, Error: s2 + data, LatencyMicros: latency}
		if got, want := string(appendOutcome(nil, o)), viaEncodingJSON(t, jsonOutcome{1, status, o.Error, latency}); got != want {
			t.Fatalf("outcome:\n got %s\nwant %s", got, want)
		}
		c := storage.AuditCheckpoint{Node: s1, Seq: seq, Hash: s4, Kind: s3}
		if got, want := string(appendCheckpoint(nil, c)), viaEncodingJSON(t, jsonCheckpoint{1, s1, seq, s4, s3}); got != want {
			t.Fatalf("checkpoint:\n got %s\nwant %s", got, want)
		}
	})
}
