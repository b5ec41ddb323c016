package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Audit is the audit log API under /v1/sys/audit: reading events a page at
// a time, hashing a value the way events carry it, verifying the hash
// chains and pruning old events.
type Audit struct{ c *Client }

// Audit returns the audit log API.
func (c *Client) Audit() *Audit { return &Audit{c: c} }

// The decisions an audit event records.
const (
	AuditDecisionAllow = "allow"
	AuditDecisionDeny  = "deny"
	// AuditDecisionNone: the request never reached a policy decision
	// (public routes, malformed requests, unknown routes, sealed).
	AuditDecisionNone = "none"
)

// AuditTimeLayout is how the API writes event times: RFC 3339 in UTC with
// exactly six fractional digits.
const AuditTimeLayout = "2006-01-02T15:04:05.000000Z"

// AuditEvent is one request as the audit log records it, shaped like the
// API's JSON. Fields the server adds later are ignored here but kept in
// Raw. Nothing in an event is plaintext that was secret: tokens that did
// not authenticate and every string in a request body appear only as
// HMACs ("hmac-sha256:…", see Audit.Hash).
type AuditEvent struct {
	// Node and Seq place the event in its node's hash chain.
	Node string `json:"node"`
	Seq  int64  `json:"seq"`
	// Time is when the request arrived.
	Time          Time   `json:"time"`
	RequestID     string `json:"request_id"`
	ClientIP      string `json:"client_ip"`
	TokenAccessor string `json:"token_accessor"`
	// TokenHMAC is the HMAC of a presented token that did not
	// authenticate, else "".
	TokenHMAC  string `json:"token_hmac"`
	AuthMethod string `json:"auth_method"`
	// Operation is the HTTP method; Path the URL path.
	Operation  string   `json:"operation"`
	Path       string   `json:"path"`
	Resource   string   `json:"resource"`
	Capability string   `json:"capability"`
	Policies   []string `json:"policies"`
	// Decision is AuditDecisionAllow, AuditDecisionDeny or AuditDecisionNone.
	Decision string `json:"decision"`
	// RequestData is the request body with every string replaced by its
	// HMAC, or JSON null when there was none.
	RequestData json.RawMessage `json:"request_data"`
	PrevHash    string          `json:"prev_hash"`
	Hash        string          `json:"hash"`
	// The outcome: nil until the request's outcome is stored.
	Status     *int    `json:"status,omitempty"`
	Error      *string `json:"error,omitempty"`
	LatencyUS  *int64  `json:"latency_us,omitempty"`
	OutcomeMAC *string `json:"outcome_mac,omitempty"`

	// Raw is the event's JSON object exactly as the server sent it
	// (compact), unknown fields included; set by UnmarshalJSON.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes an event and keeps its JSON text in Raw.
func (e *AuditEvent) UnmarshalJSON(b []byte) error {
	type plain AuditEvent
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	var raw bytes.Buffer
	if err := json.Compact(&raw, b); err != nil {
		return err
	}
	*e = AuditEvent(p)
	e.Raw = raw.Bytes()
	return nil
}

// HasOutcome reports whether the event's outcome (status, error, latency)
// has been stored.
func (e *AuditEvent) HasOutcome() bool { return e.Status != nil }

// AuditFilter selects events. Zero fields select everything.
type AuditFilter struct {
	// Since and Until bound the event time: [Since, Until).
	Since, Until time.Time
	// Path selects URL paths starting with it (such as /v1/secrets/).
	Path string
	// Accessor, Decision and Node must match exactly.
	Accessor string
	Decision string
	Node     string
	// Limit is the page size: 0 for the server's default (100), at most
	// AuditMaxPage.
	Limit int
	// After is the cursor a previous page returned, "" for the first page.
	After string
}

// AuditMaxPage is the largest page the server gives.
const AuditMaxPage = 1000

// query is f as the query string of sys/audit/events.
func (f AuditFilter) query() url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.UTC().Format(time.RFC3339Nano))
	}
	set("path", f.Path)
	set("accessor", f.Accessor)
	set("decision", f.Decision)
	set("node", f.Node)
	set("after", f.After)
	if f.Limit != 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q
}

// Events returns one page of the events f selects, ordered by time, node
// and seq, and the cursor of the next page ("" after the last page).
func (a *Audit) Events(ctx context.Context, f AuditFilter) ([]AuditEvent, string, error) {
	var out struct {
		Events *[]AuditEvent `json:"events"`
		Next   string        `json:"next"`
	}
	req := request{method: http.MethodGet, path: "sys/audit/events", query: f.query()}
	if err := a.c.data(ctx, req, &out); err != nil {
		return nil, "", err
	}
	if out.Events == nil {
		return nil, "", errors.New("client: GET /v1/sys/audit/events answered without events")
	}
	return *out.Events, out.Next, nil
}

// EachEvent calls fn with every event f selects, in order, following the
// cursors from f.After to the last page; f.Limit is the page size (0:
// AuditMaxPage). A page too large to read (ErrResponseTooLarge: events
// with big request bodies) is asked for again in halves. It stops at the
// first error, from the server or from fn.
func (a *Audit) EachEvent(ctx context.Context, f AuditFilter, fn func(AuditEvent) error) error {
	if f.Limit == 0 {
		f.Limit = AuditMaxPage
	}
	for {
		page, next, err := a.Events(ctx, f)
		if errors.Is(err, ErrResponseTooLarge) && f.Limit > 1 {
			f.Limit /= 2
			continue
		}
		if err != nil {
			return err
		}
		for _, e := range page {
			if err := fn(e); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		f.After = next
	}
}

// Hash returns the HMAC that audit events carry for input (a token, a
// secret ID, a secret value), to search the log for it.
func (a *Audit) Hash(ctx context.Context, input string) (string, error) {
	body := struct {
		Input string `json:"input"`
	}{input}
	var out struct {
		Hash string `json:"hash"`
	}
	if err := a.c.data(ctx, request{method: http.MethodPost, path: "sys/audit-hash", body: body}, &out); err != nil {
		return "", err
	}
	if out.Hash == "" {
		return "", errors.New("client: POST /v1/sys/audit-hash answered without a hash")
	}
	return out.Hash, nil
}

// The kinds of problem AuditReport names.
const (
	AuditModified         = "modified"
	AuditDeleted          = "deleted"
	AuditInserted         = "inserted"
	AuditReordered        = "reordered"
	AuditTruncated        = "truncated"
	AuditForgedCheckpoint = "forged-checkpoint"
	AuditOutcomeModified  = "outcome-modified"
)

// AuditProblem is the first thing wrong with a node's chain.
type AuditProblem struct {
	// Kind is one of the Audit* kinds above (or one a newer server adds).
	Kind   string `json:"kind"`
	Node   string `json:"node"`
	Seq    int64  `json:"seq"`
	Detail string `json:"detail"`
}

// String reads "modified at node core-1 seq 42: its content does not
// match its hash".
func (p AuditProblem) String() string {
	return fmt.Sprintf("%s at node %s seq %d: %s", p.Kind, p.Node, p.Seq, p.Detail)
}

// AuditNodeReport is what verification found on one node's chain. The walk
// stops at a problem, so the counts cover the chain up to it.
type AuditNodeReport struct {
	Node string `json:"node"`
	// Events is how many stored events were checked.
	Events int64 `json:"events"`
	// PrunedThrough is the seq the chain starts after (0: not pruned).
	PrunedThrough int64 `json:"pruned_through"`
	// Last is the seq of the last event checked.
	Last int64 `json:"last"`
	// Checkpoints is how many checkpoints verified and matched the chain.
	Checkpoints int64 `json:"checkpoints"`
	// Anchored is the last seq a checkpoint vouches for; Unanchored counts
	// the events after it, which verify as a chain but are settled only by
	// the next checkpoint.
	Anchored   int64 `json:"anchored"`
	Unanchored int64 `json:"unanchored"`
	// UnanchoredSince is the time of the first unanchored event.
	// CheckpointOverdue: the unanchored events span more than two minutes,
	// or began more than an hour ago (two minutes for a node no checkpoint
	// ever covered): the node was sealed while requests came in, or
	// stopped abruptly and has not run unsealed since, or checkpoints were
	// removed.
	UnanchoredSince   time.Time `json:"unanchored_since,omitzero"`
	CheckpointOverdue bool      `json:"checkpoint_overdue"`
	// Adoptions counts the ranges of events a server found unanchored when
	// it started under the node's name and vouched for as it found them;
	// AdoptedEvents is their total, LargestAdoption the longest range. A
	// few seconds' worth follow an abrupt stop (or a stop while sealed);
	// a long range is what a stopped node's rewritten chain looks like.
	Adoptions       int64          `json:"adoptions"`
	AdoptedEvents   int64          `json:"adopted_events"`
	LargestAdoption *AuditAdoption `json:"largest_adoption,omitempty"`
	// UnauthenticatedOutcomes were written while sealed (no MAC).
	UnauthenticatedOutcomes int64 `json:"unauthenticated_outcomes"`
	// MissingOutcomes are of requests in flight, or lost in a crash.
	MissingOutcomes int64         `json:"missing_outcomes"`
	Problem         *AuditProblem `json:"problem,omitempty"`
}

// AuditAdoption is a range of events adopted at a server's start: seqs
// From through To, recorded by the event at Seq, written at At.
type AuditAdoption struct {
	From   int64     `json:"from"`
	To     int64     `json:"to"`
	Events int64     `json:"events"`
	Seq    int64     `json:"seq"`
	At     time.Time `json:"at"`
}

// AuditReport is the answer of sys/audit/verify.
type AuditReport struct {
	// OK is true when every node's chain verifies.
	OK bool `json:"ok"`
	// Events is how many stored events were checked, on all nodes.
	Events int64             `json:"events"`
	Nodes  []AuditNodeReport `json:"nodes"`
	// Problem is the first problem of the first node (by name) with one.
	Problem *AuditProblem `json:"problem,omitempty"`
	// CheckpointOverdue is true when a node's is: the log verifies, but
	// nothing vouches for some of its events.
	CheckpointOverdue bool `json:"checkpoint_overdue"`
}

// Verify recomputes every node's hash chain on the server and reports the
// first problem of each. A tampered log is a report with OK false, not an
// error; errors are for a server that could not verify (sealed, denied).
// The server reads every event (about 50,000 a second), so the client's
// timeouts do not apply: only ctx bounds it.
func (a *Audit) Verify(ctx context.Context) (*AuditReport, error) {
	var out AuditReport
	if err := a.c.data(ctx, request{method: http.MethodGet, path: "sys/audit/verify", long: true}, &out); err != nil {
		return nil, err
	}
	if !out.OK && out.Problem == nil {
		// A report that fails must say why; trust no other reading.
		return nil, errors.New("client: GET /v1/sys/audit/verify answered not ok without naming a problem")
	}
	return &out, nil
}

// Prune removes the events older than before that a checkpoint vouches
// for, on every node, leaving what remains verifiable, and returns how
// many were removed. It needs sudo on sys/audit/prune. Like Verify, it
// is bounded by ctx only.
func (a *Audit) Prune(ctx context.Context, before time.Time) (int64, error) {
	if before.IsZero() {
		return 0, errors.New("client: pruning needs a time to prune before")
	}
	body := struct {
		Before string `json:"before"`
	}{before.UTC().Format(time.RFC3339Nano)}
	var out struct {
		Removed *int64 `json:"removed"`
	}
	if err := a.c.data(ctx, request{method: http.MethodPost, path: "sys/audit/prune", body: body, long: true}, &out); err != nil {
		return 0, err
	}
	if out.Removed == nil {
		return 0, errors.New("client: POST /v1/sys/audit/prune answered without a count")
	}
	return *out.Removed, nil
}
