package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

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
		if !onlyHMACLeaves(compact.Bytes()) {
			return storage.AuditEvent{}, errors.New("audit: request_data has a string that is not an HMAC: pass the body through RedactJSON")
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

// canonicalRequest is the request part as hashed (version 1).
type canonicalRequest struct {
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

// canonicalOutcome is an outcome as MAC'd (version 1).
type canonicalOutcome struct {
	V         int    `json:"v"`
	Status    int    `json:"status"`
	Error     string `json:"error"`
	LatencyUS int64  `json:"latency_us"`
}

// canonicalCheckpoint is a checkpoint as MAC'd (version 1).
type canonicalCheckpoint struct {
	V    int    `json:"v"`
	Node string `json:"node"`
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
	Kind string `json:"kind"`
}

// canonical encodes v as the package documents: compact JSON, no HTML
// escaping, no trailing newline.
func canonical(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// The canonical types hold only strings and integers.
		panic("audit: canonical encoding failed: " + err.Error())
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// requestBytes returns the canonical request part of a stored event, and
// false when a field holds what the writer never stores (invalid UTF-8 or
// NUL), which no canonical encoding could tell apart from its clean form.
func requestBytes(e *storage.AuditEvent) ([]byte, bool) {
	c := canonicalRequest{
		V: 1, Node: e.Node, Seq: e.Seq, Time: e.Time.UTC().Format(timeLayout), RequestID: e.RequestID,
		ClientIP: e.ClientIP, TokenAccessor: e.TokenAccessor, TokenHMAC: e.TokenHMAC, AuthMethod: e.AuthMethod,
		Operation: e.Operation, Path: e.Path, Resource: e.Resource, Capability: e.Capability,
		Policies: e.Policies, Decision: e.Decision,
	}
	if c.Policies == nil {
		c.Policies = []string{}
	}
	if e.RequestData != "" {
		c.RequestData = &e.RequestData
	}
	fields := append([]string{c.Node, c.RequestID, c.ClientIP, c.TokenAccessor, c.TokenHMAC, c.AuthMethod,
		c.Operation, c.Path, c.Resource, c.Capability, c.Decision, e.RequestData}, c.Policies...)
	for _, f := range fields {
		if clean(f) != f {
			return nil, false
		}
	}
	return canonical(c), true
}

// chainHash is hex(SHA-256(prev ‖ request)).
func chainHash(prev string, request []byte) string {
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write(request)
	return hex.EncodeToString(h.Sum(nil))
}

// outcomeBytes returns the canonical outcome.
func outcomeBytes(o storage.AuditOutcome) []byte {
	return canonical(canonicalOutcome{V: 1, Status: o.Status, Error: o.Error, LatencyUS: o.LatencyMicros})
}

// outcomeMAC binds an outcome to its event's hash; "" with nil keys.
func outcomeMAC(k *Keys, hash string, o storage.AuditOutcome) string {
	return k.mac([]byte(hash), outcomeBytes(o))
}

// checkpointMAC authenticates a checkpoint; "" with nil keys.
func checkpointMAC(k *Keys, c storage.AuditCheckpoint) string {
	return k.mac(canonical(canonicalCheckpoint{V: 1, Node: c.Node, Seq: c.Seq, Hash: c.Hash, Kind: c.Kind}))
}

// The kinds of checkpoint.
const (
	kindCheckpoint = "checkpoint"
	kindPrune      = "prune"
)

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
