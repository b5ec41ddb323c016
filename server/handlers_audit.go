package server

import (
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/secrethub/secrethub/server/audit"
	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/server/seal"
)

// keysOrSealed returns the audit keys, which exist only while unsealed.
func (s *Server) keysOrSealed() (*audit.Keys, error) {
	k := s.auditKeys.Load()
	if k == nil {
		return nil, seal.ErrSealed
	}
	return k, nil
}

// handleAuditHash answers the HMAC an event would carry for input, so an
// operator can search the log for a token, a secret ID or a value.
func (s *Server) handleAuditHash(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Input *string `json:"input"`
	}
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Input == nil { // "" is a value like any other: its HMAC finds it
		return fault.Invalidf(`missing "input": the value to hash`)
	}
	k, err := s.keysOrSealed()
	if err != nil {
		return err
	}
	s.respondData(w, r, map[string]string{"hash": k.HMAC(*req.Input)})
	return nil
}

// timeParam reads an optional RFC 3339 time (or a date) query parameter.
func timeParam(r *http.Request, name string) (time.Time, error) {
	raw := r.URL.Query().Get(name)
	if raw == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, raw); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fault.Invalidf("%s must be an RFC 3339 time or a date (2026-11-30), got %q", name, fault.Input(clip(raw)))
}

// auditEventParams are the query parameters of GET /v1/sys/audit/events.
// actor is SPEC §7's name for the accessor filter.
var auditEventParams = []string{"since", "until", "path", "accessor", "actor", "decision", "node", "limit", "after"}

// handleAuditEvents lists events, a page at a time: ?since=&until=&path=
// &accessor= (or &actor=)&decision=&node=&limit=&after=<cursor>. A
// parameter it does not know, or one given twice, is refused: ignored, a
// misspelled filter would answer with every event as if they matched it.
func (s *Server) handleAuditEvents(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	for _, name := range slices.Sorted(maps.Keys(q)) {
		if !slices.Contains(auditEventParams, name) {
			return fault.Invalidf("unknown query parameter %v; the parameters are %s", fault.Input(clip(name)), strings.Join(auditEventParams, ", "))
		}
		if len(q[name]) > 1 {
			return fault.Invalidf("query parameter %s is given %d times; give it once", name, len(q[name]))
		}
	}
	accessor := q.Get("accessor")
	if actor := q.Get("actor"); actor != "" {
		if accessor != "" && accessor != actor {
			return fault.Invalidf("actor and accessor are the same filter (the token accessor) with different values; give one")
		}
		accessor = actor
	}
	f := audit.Filter{Path: q.Get("path"), Accessor: accessor, Decision: q.Get("decision"),
		Node: q.Get("node"), After: audit.Cursor(q.Get("after"))}
	switch f.Decision {
	case "", audit.DecisionAllow, audit.DecisionDeny, audit.DecisionNone:
	default: // no event could match: say so rather than answer with none
		return fault.Invalidf("decision must be allow, deny or none, got %v", fault.Input(clip(f.Decision)))
	}
	var err error
	if f.Since, err = timeParam(r, "since"); err != nil {
		return err
	}
	if f.Until, err = timeParam(r, "until"); err != nil {
		return err
	}
	if raw := q.Get("limit"); raw != "" {
		if f.Limit, err = strconv.Atoi(raw); err != nil {
			return fault.Invalidf("limit must be a number")
		}
	}
	events, next, err := audit.List(r.Context(), s.db, f)
	if err != nil {
		return err
	}
	if events == nil {
		events = []audit.Event{}
	}
	s.respondData(w, r, map[string]any{"events": events, "next": next})
	return nil
}

// handleAuditVerify recomputes every node's chain. This node's own head,
// which the writer holds in memory, also catches a tail cut off after the
// last checkpoint.
func (s *Server) handleAuditVerify(w http.ResponseWriter, r *http.Request) error {
	// Registered before the keys are read: a seal from here on ends it.
	ctx, done, err := s.auditWalks.start(r.Context())
	if err != nil {
		return err
	}
	defer done()
	k, err := s.keysOrSealed()
	if err != nil {
		return err
	}
	seq, hash := s.audit.Head()
	report, err := audit.Verify(ctx, s.db, k, audit.VerifyOptions{
		Live: map[string]audit.Live{s.cfg.NodeName: {Seq: seq, Hash: hash}}, Now: s.now(),
	})
	if err != nil {
		return walkError(ctx, err)
	}
	s.respondData(w, r, report)
	return nil
}

// handleAuditPrune deletes events before a date, leaving a checkpoint at
// each node's boundary so what remains still verifies.
func (s *Server) handleAuditPrune(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Before string `json:"before"`
	}
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	var (
		before time.Time
		parsed bool
	)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, req.Before); err == nil {
			before, parsed = t, true
			break
		}
	}
	if !parsed {
		return fault.Invalidf("before must be an RFC 3339 time or a date (2026-01-01)")
	}
	if before.After(s.now()) {
		// Everything checkpointed would go, up to the last few seconds: a
		// mistyped year must not empty the log.
		return fault.Invalidf("before (%s) is in the future: a prune removes the events before it; give a past time", before.UTC().Format(time.RFC3339))
	}
	// Registered before the keys are read: a seal from here on ends it.
	ctx, done, err := s.auditWalks.start(r.Context())
	if err != nil {
		return err
	}
	defer done()
	k, err := s.keysOrSealed()
	if err != nil {
		return err
	}
	removed, err := audit.Prune(ctx, s.db, k, before)
	err = walkError(ctx, err)
	if removed > 0 {
		s.log.Info("audit log pruned", "before", before.UTC().Format(time.RFC3339), "removed", removed,
			"by_accessor", callerToken(r.Context()).Accessor)
	}
	if err != nil {
		return err
	}
	s.respondData(w, r, map[string]any{"removed": removed})
	return nil
}
