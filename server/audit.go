package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/secrethub/secrethub/server/audit"
	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/server/metrics"
)

// auditLog is what the server needs of the audit log. *audit.Writer is the
// only implementation in the binary; benchmarks plug in their own.
type auditLog interface {
	SetKeys(k *audit.Keys)
	Append(ctx context.Context, e audit.Event) (int64, error)
	Start(ctx context.Context, e audit.Event) (audit.Pending, error)
	Complete(seq int64, o audit.Outcome)
	Record(ctx context.Context, e audit.Event) error
	Head() (seq int64, hash string)
	Close(ctx context.Context) error
}

// errAuditUnavailable refuses a request whose event could not be stored.
var errAuditUnavailable = fault.New(fault.Unavailable, "audit log unavailable: the request was not served")

// auditMasterLabel names the audit master secret among the keys derived
// from the keyring.
const auditMasterLabel = "audit master"

// openAuditKeys derives the cluster's audit secret from the keyring and
// hands the audit keys to the audit log. Derived, not stored: there is no
// row that someone with database access could delete to have a new key
// made at the next unseal, which would leave the whole log unverifiable
// and make its genuine events look rewritten.
func (s *Server) openAuditKeys() error {
	master, err := s.seal.DeriveKey(auditMasterLabel)
	if err != nil {
		return err
	}
	keys := audit.NewKeys(master)
	clear(master)
	s.auditKeys.Store(keys)
	s.audit.SetKeys(keys)
	return nil
}

// closeAuditKeys drops the keys when the node seals.
func (s *Server) closeAuditKeys() {
	s.auditKeys.Store(nil)
	s.audit.SetKeys(nil)
	s.auditWalks.sealed()
}

// auditEvent describes the request so far: who asked for what and what
// authorization decided. Secrets in the body appear only as HMACs, and not
// at all while the node is sealed (no key to HMAC with).
func (s *Server) auditEvent(r *http.Request) audit.Event {
	st := stateOf(r.Context())
	e := audit.Event{
		Node: s.cfg.NodeName, Time: st.start, RequestID: st.id, Operation: r.Method,
		Path: r.URL.Path, Resource: st.resource, Capability: st.capability,
		Decision: st.decision, AuthMethod: st.authMethod,
	}
	if st.clientIP.IsValid() {
		e.ClientIP = st.clientIP.String()
	}
	if e.Decision == "" {
		e.Decision = audit.DecisionNone
	}
	keys := s.auditKeys.Load()
	if st.token != nil {
		e.TokenAccessor, e.Policies = st.token.Accessor, st.token.Policies
	} else if id := presentedToken(r); id != "" && keys != nil {
		e.TokenHMAC = keys.HMAC(id)
	}
	if keys != nil {
		if body, err := readBody(r); err == nil && len(body) > 0 {
			e.RequestData = audit.RedactJSON(body, keys)
		} else if err == nil && r.URL.RawQuery != "" {
			// A request without a body says what it wants in its query
			// (?version=2): recorded the same way, values HMAC'd, as
			// Vault records a GET's query parameters as request data.
			e.RequestData = audit.RedactJSON(queryJSON(r.URL.Query()), keys)
		}
	}
	return e
}

// queryJSON renders query parameters as a JSON object: a parameter given
// once as a string, one given more often as a list, names in order.
func queryJSON(q url.Values) []byte {
	obj := make(map[string]any, len(q))
	for name, values := range q {
		if len(values) == 1 {
			obj[name] = values[0]
		} else {
			obj[name] = values
		}
	}
	b, _ := json.Marshal(obj) // strings only: it cannot fail
	return b
}

// auditMessage is msg, the caller-facing message of err, as the audit log
// keeps it: the values the caller sent that it quotes (fault.Input) are
// replaced by their HMACs, as everywhere else in an event, or, while
// sealed, by a placeholder.
func (s *Server) auditMessage(msg string, err error) string {
	return fault.Redact(msg, fault.InputsOf(err), func(v string) string {
		if keys := s.auditKeys.Load(); keys != nil {
			return keys.HMAC(v)
		}
		return "(not recorded while sealed)"
	})
}

// auditPending is a request's auditSeq while its event is queued and its
// handler runs: not yet stored, so nothing may be sent, and no other event
// may be recorded for the request.
const auditPending = -2

// auditRequest durably records a request about to reach its handler: the
// fail-closed gate. The outcome follows when the handler is done.
func (s *Server) auditRequest(r *http.Request) error {
	seq, err := s.audit.Append(r.Context(), s.auditEvent(r))
	return s.audited(r, seq, err)
}

// audited settles the gate: seq is the stored event's, or err says the
// event could not be stored and the request must not be served.
func (s *Server) audited(r *http.Request, seq int64, err error) error {
	st := stateOf(r.Context())
	s.countAuditWrite(err)
	if err != nil {
		st.auditSeq, st.auditFailed = 0, true
		// The fault's message is the caller's; the cause (the store's
		// error: a refused insert, a lost connection) is the operator's.
		cause := err.Error()
		if c := errors.Unwrap(err); c != nil {
			cause = c.Error()
		}
		// An outage refuses every request: one line a second says so, with
		// how many refusals it stands for (each is still counted in
		// secrethub_audit_write_failures_total and logged at debug level).
		if ok, held := s.refusalLog.allow(time.Now()); ok {
			s.log.Error("audit log refused an event; request not served", "request_id", st.id, "error", err.Error(),
				"cause", cause, "refused_since_last_line", held)
		}
		return errAuditUnavailable
	}
	st.auditSeq = seq
	return nil
}

// serveRead runs a read-only handler while its event commits and sends
// the answer only once the event is stored; if it cannot be, the answer is
// 503 and the handler's is dropped. The read's database work overlaps the
// audit commit instead of following it, and nothing is revealed or
// changed before the event is durable: a handler that only reads changes
// nothing, and what it writes is held here. An answer ready before the
// event's batch is cut is recorded in the event itself (stored whole).
func (s *Server) serveRead(w http.ResponseWriter, r *http.Request, h handlerFunc) {
	p, err := s.audit.Start(r.Context(), s.auditEvent(r))
	if err != nil {
		s.respondError(w, r, s.audited(r, 0, err))
		return
	}
	st := stateOf(r.Context())
	st.auditSeq = auditPending
	defer func() {
		if st.auditSeq == auditPending { // the handler panicked: settle its event first
			seq, _, err := p.Wait(r.Context())
			_ = s.audited(r, seq, err)
		}
	}()
	held := &heldResponse{header: http.Header{}}
	if err := h(held, r); err != nil {
		s.respondError(held, r, err)
	}
	p.Done(audit.Outcome{Status: held.code(), Error: st.errMsg, Latency: time.Since(st.began)})
	seq, whole, err := p.Wait(r.Context())
	if err := s.audited(r, seq, err); err != nil {
		s.respondError(w, r, err)
		return
	}
	if whole {
		st.auditSeq = -1 // recorded complete: nothing to complete later
	}
	held.sendTo(w)
}

// heldResponse keeps a handler's answer until it may be sent.
type heldResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (h *heldResponse) Header() http.Header { return h.header }

func (h *heldResponse) WriteHeader(code int) {
	if h.status == 0 {
		h.status = code
	}
}

func (h *heldResponse) Write(b []byte) (int, error) {
	h.WriteHeader(http.StatusOK)
	return h.body.Write(b)
}

// code is the status the answer is sent with.
func (h *heldResponse) code() int {
	if h.status == 0 {
		return http.StatusOK
	}
	return h.status
}

func (h *heldResponse) sendTo(w http.ResponseWriter) {
	for k, v := range h.header {
		w.Header()[k] = v
	}
	w.WriteHeader(h.code())
	_, _ = w.Write(h.body.Bytes()) // the client may be gone; nothing to do then
}

// auditRefusal records, before answering, a request that never reached a
// handler (denied, malformed, sealed, unknown). If that fails the caller
// must answer 503 instead.
func (s *Server) auditRefusal(r *http.Request, status int, msg string) error {
	st := stateOf(r.Context())
	if st.auditSeq != 0 || st.auditFailed || st.id == "" {
		return nil
	}
	e := s.auditEvent(r)
	e.Outcome = &audit.Outcome{Status: status, Error: msg, Latency: time.Since(st.began)}
	err := s.audit.Record(r.Context(), e)
	s.countAuditWrite(err)
	if err != nil {
		st.auditFailed = true
		s.log.Error("audit log refused an event", "request_id", st.id, "error", err.Error())
		return errAuditUnavailable
	}
	st.auditSeq = -1 // recorded complete: nothing to complete later
	// A refused request that authenticated still takes one of a limited
	// token's uses, as in Vault (so a limited token cannot probe its
	// policies without end) — but only now that its event is stored.
	// If the uses ran out meanwhile, the answer is an error anyway.
	_ = s.spendUse(r)
	return nil
}

// countAuditWrite counts a stored event, or a refused one.
func (s *Server) countAuditWrite(err error) {
	if err != nil {
		s.metrics.AuditWriteFailures.WithLabelValues(metrics.AuditFailureEvent).Inc()
		return
	}
	s.metrics.AuditEvents.Inc()
}

// auditOutcome completes the event of a request that reached its handler.
func (s *Server) auditOutcome(st *reqState, status int) {
	if st.auditSeq <= 0 {
		return
	}
	s.audit.Complete(st.auditSeq, audit.Outcome{Status: status, Error: st.errMsg, Latency: time.Since(st.began)})
}

// Close flushes the audit log (writing a final checkpoint) and stops it.
func (s *Server) Close(ctx context.Context) error { return s.audit.Close(ctx) }
