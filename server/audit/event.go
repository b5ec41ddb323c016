package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/secrethub/secrethub/storage"
)

// The decisions an event records.
const (
	DecisionAllow = "allow"
	DecisionDeny  = "deny"
	// DecisionNone: the request never reached a policy decision (public
	// routes, malformed requests, unknown routes, sealed).
	DecisionNone = "none"
)

// GenesisHash is the prev_hash of each node's first event.
var GenesisHash = strings.Repeat("0", 64)

// timeLayout is how times appear in canonical bytes and JSON lines.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// Event is one request as the audit log records it. Node, Seq, PrevHash and
// Hash are assigned by the Writer; Time, when zero, too.
type Event struct {
	Node          string
	Seq           int64
	Time          time.Time // UTC, microseconds
	RequestID     string
	ClientIP      string
	TokenAccessor string
	// TokenHMAC is Keys.HMAC of a presented token that did not
	// authenticate (so its owner can be searched for), else "".
	TokenHMAC  string
	AuthMethod string
	Operation  string // HTTP method
	Path       string // URL path
	Resource   string
	Capability string
	Policies   []string
	Decision   string // DecisionAllow, DecisionDeny or DecisionNone
	// RequestData is the request body passed through RedactJSON, or nil.
	RequestData json.RawMessage
	PrevHash    string
	Hash        string
	// Outcome is nil until the request's outcome is stored.
	Outcome *Outcome
}

// Outcome is how a request ended.
type Outcome struct {
	Status  int
	Error   string
	Latency time.Duration // stored in microseconds
	// MAC binds the outcome to its event's hash; "" when it was written
	// while sealed.
	MAC string
}

// maxStatus bounds Outcome.Status: HTTP statuses have three digits.
const maxStatus = 999

// clean makes s storable and unambiguous in canonical bytes: invalid UTF-8
// and NUL (which PostgreSQL text refuses) become U+FFFD.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

// stored validates e and converts it to its stored form, without the
// fields the writer assigns (node, seq, hashes, outcome MAC).
func (e Event) stored(now func() time.Time) (storage.AuditEvent, error) {
	switch e.Decision {
	case DecisionAllow, DecisionDeny, DecisionNone:
	default:
		return storage.AuditEvent{}, fmt.Errorf("audit: decision %q is not allow, deny or none", e.Decision)
	}
	if e.TokenHMAC != "" && !strings.HasPrefix(e.TokenHMAC, HMACPrefix) {
		return storage.AuditEvent{}, errors.New("audit: token_hmac must be an HMAC from Keys.HMAC")
	}
	var data string
	if len(e.RequestData) > 0 && !bytes.Equal(bytes.TrimSpace(e.RequestData), null) {
		var compact bytes.Buffer
		if err := json.Compact(&compact, e.RequestData); err != nil {
			return storage.AuditEvent{}, errors.New("audit: request_data is not JSON")
		}
		if !onlyHMACLeaves(compact.Bytes()) && !redactedSummary(compact.Bytes()) {
			return storage.AuditEvent{}, errors.New("audit: request_data has a string or number that is not an HMAC: pass the body through RedactJSON")
		}
		data = clean(compact.String())
	}
	at := e.Time
	if at.IsZero() {
		at = now()
	}
	policies := make([]string, len(e.Policies))
	for i, p := range e.Policies {
		policies[i] = clean(p)
	}
	s := storage.AuditEvent{
		Time: at.UTC().Truncate(time.Microsecond), RequestID: clean(e.RequestID), ClientIP: clean(e.ClientIP),
		TokenAccessor: clean(e.TokenAccessor), TokenHMAC: e.TokenHMAC, AuthMethod: clean(e.AuthMethod),
		Operation: clean(e.Operation), Path: clean(e.Path), Resource: clean(e.Resource),
		Capability: clean(e.Capability), Policies: policies, Decision: e.Decision, RequestData: data,
	}
	if e.Outcome != nil {
		o, err := e.Outcome.stored()
		if err != nil {
			return storage.AuditEvent{}, err
		}
		s.Outcome = &o
	}
	return s, nil
}

func (o Outcome) stored() (storage.AuditOutcome, error) {
	if o.Status < 0 || o.Status > maxStatus {
		return storage.AuditOutcome{}, fmt.Errorf("audit: status %d is not an HTTP status", o.Status)
	}
	return storage.AuditOutcome{Status: o.Status, Error: clean(o.Error), LatencyMicros: o.Latency.Microseconds()}, nil
}

// eventOf converts a stored event back.
func eventOf(s storage.AuditEvent) Event {
	e := Event{
		Node: s.Node, Seq: s.Seq, Time: s.Time, RequestID: s.RequestID, ClientIP: s.ClientIP,
		TokenAccessor: s.TokenAccessor, TokenHMAC: s.TokenHMAC, AuthMethod: s.AuthMethod, Operation: s.Operation,
		Path: s.Path, Resource: s.Resource, Capability: s.Capability, Policies: s.Policies, Decision: s.Decision,
		PrevHash: s.PrevHash, Hash: s.Hash,
	}
	if s.RequestData != "" {
		e.RequestData = json.RawMessage(s.RequestData)
	}
	if o := s.Outcome; o != nil {
		e.Outcome = &Outcome{Status: o.Status, Error: o.Error, Latency: time.Duration(o.LatencyMicros) * time.Microsecond, MAC: o.MAC}
	}
	return e
}

// The canonical encodings are written by hand rather than by
// encoding/json: they are a file format, so they must not change with the
// Go release that builds the binary, and the writer computes one per event
// on its hot path, where reflection cost a few microseconds and a dozen
// allocations each. FuzzCanonicalMatchesEncodingJSON holds them to what
// encoding/json writes (HTML escaping off) for the same objects.

// appendRequest appends the canonical request part of e (version 1).
func appendRequest(b []byte, e *storage.AuditEvent) []byte {
	b = append(b, `{"v":1,"node":`...)
	b = appendString(b, e.Node)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, e.Seq, 10)
	b = append(b, `,"time":"`...)
	b = e.Time.UTC().AppendFormat(b, timeLayout)
	b = append(b, `","request_id":`...)
	b = appendString(b, e.RequestID)
	b = append(b, `,"client_ip":`...)
	b = appendString(b, e.ClientIP)
	b = append(b, `,"token_accessor":`...)
	b = appendString(b, e.TokenAccessor)
	b = append(b, `,"token_hmac":`...)
	b = appendString(b, e.TokenHMAC)
	b = append(b, `,"auth_method":`...)
	b = appendString(b, e.AuthMethod)
	b = append(b, `,"operation":`...)
	b = appendString(b, e.Operation)
	b = append(b, `,"path":`...)
	b = appendString(b, e.Path)
	b = append(b, `,"resource":`...)
	b = appendString(b, e.Resource)
	b = append(b, `,"capability":`...)
	b = appendString(b, e.Capability)
	b = append(b, `,"policies":[`...)
	for i, p := range e.Policies {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, p)
	}
	b = append(b, `],"decision":`...)
	b = appendString(b, e.Decision)
	b = append(b, `,"request_data":`...)
	if e.RequestData == "" {
		b = append(b, "null"...)
	} else {
		b = appendString(b, e.RequestData)
	}
	return append(b, '}')
}

// appendOutcome appends the canonical outcome (version 1).
func appendOutcome(b []byte, o storage.AuditOutcome) []byte {
	b = append(b, `{"v":1,"status":`...)
	b = strconv.AppendInt(b, int64(o.Status), 10)
	b = append(b, `,"error":`...)
	b = appendString(b, o.Error)
	b = append(b, `,"latency_us":`...)
	b = strconv.AppendInt(b, o.LatencyMicros, 10)
	return append(b, '}')
}

// appendCheckpoint appends the canonical checkpoint (version 1).
func appendCheckpoint(b []byte, c storage.AuditCheckpoint) []byte {
	b = append(b, `{"v":1,"node":`...)
	b = appendString(b, c.Node)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, c.Seq, 10)
	b = append(b, `,"hash":`...)
	b = appendString(b, c.Hash)
	b = append(b, `,"kind":`...)
	b = appendString(b, c.Kind)
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string: '"' and '\\' escaped with a
// backslash; backspace, form feed, newline, carriage return and tab as
// \b \f \n \r \t; other bytes below 0x20 as \u00xx (lower-case hex);
// U+2028 and U+2029 as \u2028 and \u2029; each invalid UTF-8 byte as
// \ufffd; everything else (including <, > and &) as it is.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// storable reports whether every string of e's request part is what the
// writer stores (valid UTF-8 without NUL): a field that is not could not
// be told apart from its clean form in canonical bytes.
func storable(e *storage.AuditEvent) bool {
	if e.Unreadable != "" {
		return false
	}
	for _, f := range [...]string{e.Node, e.RequestID, e.ClientIP, e.TokenAccessor, e.TokenHMAC, e.AuthMethod,
		e.Operation, e.Path, e.Resource, e.Capability, e.Decision, e.RequestData} {
		if clean(f) != f {
			return false
		}
	}
	for _, p := range e.Policies {
		if clean(p) != p {
			return false
		}
	}
	return true
}

// requestBytes returns the canonical request part of a stored event, and
// false when a field holds what the writer never stores (invalid UTF-8 or
// NUL), which no canonical encoding could tell apart from its clean form.
func requestBytes(e *storage.AuditEvent) ([]byte, bool) {
	if !storable(e) {
		return nil, false
	}
	return appendRequest(nil, e), true
}

// chainHash is hex(SHA-256(prev ‖ request)).
func chainHash(prev string, request []byte) string {
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write(request)
	return hex.EncodeToString(h.Sum(nil))
}

// eventHash is chainHash(prev, the request part of e), for an event whose
// fields are clean, computed in scratch (returned grown, for reuse).
func eventHash(scratch []byte, prev string, e *storage.AuditEvent) (string, []byte) {
	scratch = appendRequest(append(scratch[:0], prev...), e)
	sum := sha256.Sum256(scratch)
	return hex.EncodeToString(sum[:]), scratch
}

// outcomeBytes returns the canonical outcome.
func outcomeBytes(o storage.AuditOutcome) []byte { return appendOutcome(nil, o) }

// outcomeMAC binds an outcome to its event's hash; "" with nil keys.
func outcomeMAC(k *Keys, hash string, o storage.AuditOutcome) string {
	return k.mac([]byte(hash), outcomeBytes(o))
}

// checkpointMAC authenticates a checkpoint; "" with nil keys.
func checkpointMAC(k *Keys, c storage.AuditCheckpoint) string {
	return k.mac(appendCheckpoint(nil, c))
}

// The kinds of checkpoint.
const (
	kindCheckpoint = "checkpoint"
	kindPrune      = "prune"
)

// AdoptionPath is the path of the event a writer appends, before any other,
// when it starts on a chain whose last events no checkpoint covers (left by
// a run that stopped abruptly or while sealed, or put there by someone
// with access to the database): it continues from them and its checkpoints
// will vouch for them as found. The event records it (operation "adopt",
// decision none, status 0, Resource "<from>-<to>": the range as the writer
// saw it; verify reckons the range from the checkpoints it verified) in the
// chain itself, so removing or changing it breaks the chain like any
// event, and in the sink. No request can have this path: request paths
// begin with /.
const AdoptionPath = "audit:adopted"

// adoptionEvent is the record of a writer adopting seqs from to to; the
// writer dates it when it stores it.
func adoptionEvent(from, to int64) storage.AuditEvent {
	return storage.AuditEvent{
		Operation: "adopt", Path: AdoptionPath,
		Resource: fmt.Sprintf("%d-%d", from, to), Policies: []string{}, Decision: DecisionNone,
		Outcome: &storage.AuditOutcome{},
	}
}

// line is an event or an outcome as JSON: the sink's lines, and the form
// Event.MarshalJSON gives the API.
type line struct {
	Type          string          `json:"type,omitempty"`
	Node          string          `json:"node"`
	Seq           int64           `json:"seq"`
	Time          string          `json:"time,omitempty"`
	RequestID     *string         `json:"request_id,omitempty"`
	ClientIP      *string         `json:"client_ip,omitempty"`
	TokenAccessor *string         `json:"token_accessor,omitempty"`
	TokenHMAC     *string         `json:"token_hmac,omitempty"`
	AuthMethod    *string         `json:"auth_method,omitempty"`
	Operation     *string         `json:"operation,omitempty"`
	Path          *string         `json:"path,omitempty"`
	Resource      *string         `json:"resource,omitempty"`
	Capability    *string         `json:"capability,omitempty"`
	Policies      *[]string       `json:"policies,omitempty"`
	Decision      *string         `json:"decision,omitempty"`
	RequestData   json.RawMessage `json:"request_data,omitempty"`
	PrevHash      *string         `json:"prev_hash,omitempty"`
	Hash          *string         `json:"hash,omitempty"`
	Status        *int            `json:"status,omitempty"`
	Error         *string         `json:"error,omitempty"`
	LatencyUS     *int64          `json:"latency_us,omitempty"`
	OutcomeMAC    *string         `json:"outcome_mac,omitempty"`
}

// eventLine is the JSON object of a stored event, with its outcome's
// fields when it has one.
func eventLine(kind string, s storage.AuditEvent) line {
	policies := s.Policies
	if policies == nil {
		policies = []string{}
	}
	l := line{
		Type: kind, Node: s.Node, Seq: s.Seq, Time: s.Time.UTC().Format(timeLayout), RequestID: &s.RequestID,
		ClientIP: &s.ClientIP, TokenAccessor: &s.TokenAccessor, TokenHMAC: &s.TokenHMAC, AuthMethod: &s.AuthMethod,
		Operation: &s.Operation, Path: &s.Path, Resource: &s.Resource, Capability: &s.Capability,
		Policies: &policies, Decision: &s.Decision, RequestData: null, PrevHash: &s.PrevHash, Hash: &s.Hash,
	}
	if s.RequestData != "" {
		l.RequestData = json.RawMessage(s.RequestData)
	}
	if o := s.Outcome; o != nil {
		l.Status, l.Error, l.LatencyUS, l.OutcomeMAC = &o.Status, &o.Error, &o.LatencyMicros, &o.MAC
	}
	return l
}

// outcomeLine is the JSON object of an outcome written after its event.
func outcomeLine(node string, o storage.AuditOutcome) line {
	return line{Type: "outcome", Node: node, Seq: o.Seq, Status: &o.Status, Error: &o.Error, LatencyUS: &o.LatencyMicros, OutcomeMAC: &o.MAC}
}

// MarshalJSON writes the event as one flat object with snake_case names,
// times as RFC 3339 UTC with microseconds, the latency as latency_us, and
// the outcome's fields only once it has one: the form the API lists, the
// export writes and the file sink carries.
func (e Event) MarshalJSON() ([]byte, error) {
	s := storage.AuditEvent{
		Node: e.Node, Seq: e.Seq, Time: e.Time, RequestID: e.RequestID, ClientIP: e.ClientIP,
		TokenAccessor: e.TokenAccessor, TokenHMAC: e.TokenHMAC, AuthMethod: e.AuthMethod, Operation: e.Operation,
		Path: e.Path, Resource: e.Resource, Capability: e.Capability, Policies: e.Policies, Decision: e.Decision,
		RequestData: string(e.RequestData), PrevHash: e.PrevHash, Hash: e.Hash,
	}
	if string(e.RequestData) == "null" {
		s.RequestData = ""
	}
	if o := e.Outcome; o != nil {
		s.Outcome = &storage.AuditOutcome{Seq: e.Seq, Status: o.Status, Error: o.Error, LatencyMicros: o.Latency.Microseconds(), MAC: o.MAC}
	}
	return json.Marshal(eventLine("", s))
}
