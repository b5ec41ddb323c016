package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/secrethub/secrethub/server/audit"
	"github.com/secrethub/secrethub/server/auth"
	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/server/metrics"
	"github.com/secrethub/secrethub/server/policy"
	"github.com/secrethub/secrethub/server/seal"
)

// reqState is what the middleware learns about a request on its way in.
type reqState struct {
	id       string
	clientIP netip.Addr
	token    *auth.Token
	tokenID  string // the presented token, to echo in lookup-self
	// resource is what the route touches, normalized once by authorization.
	resource string
	// route is the matched route's template (the metrics' route label).
	route string
	// createOnly is set on a write allowed to create but not to update,
	// updateOnly on one allowed to update but not to create: the handler
	// must make the write itself fail if the target exists (or is gone) by
	// the time it runs.
	createOnly bool
	updateOnly bool
	// policies are the token's, resolved once by authorization.
	policies []*policy.Policy
	// body holds the request body once read (bodyRead), for routes whose
	// resource is named inside it, and for the audit event; bodyErr is why
	// it cannot be read (it is never read at all when its declared length
	// is over the limit).
	body     []byte
	bodyRead bool
	bodyErr  error

	// What the audit event records: when the request arrived (start on
	// the server's clock, began for latency), the capability asked, the
	// decision ("allow", "deny", or empty when authorization did not run),
	// how the token was obtained, the event's sequence number (0: none yet;
	// -1: recorded complete) and the error message answered, if any.
	start       time.Time
	began       time.Time
	capability  string
	decision    string
	authMethod  string
	auditSeq    int64
	auditFailed bool
	errMsg      string
}

type ctxKey struct{}

func stateOf(ctx context.Context) *reqState {
	if st, ok := ctx.Value(ctxKey{}).(*reqState); ok {
		return st
	}
	return &reqState{}
}

func requestID(ctx context.Context) string { return stateOf(ctx).id }

// callerToken is the authenticated token of the request (handlers behind
// authentication only).
func callerToken(ctx context.Context) auth.Token { return *stateOf(ctx).token }

// resourceOf is the normalized resource the request was authorized for.
func resourceOf(r *http.Request) string { return stateOf(r.Context()).resource }

func routeName(r *http.Request) string {
	if rt := mux.CurrentRoute(r); rt != nil {
		return rt.GetName()
	}
	return ""
}

// entry runs before routing: it names the request, bounds its time and
// body, recovers from panics without leaking a trace, and turns
// `GET ?list=true` into the LIST method.
func (s *Server) entry(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		st := &reqState{id: uuid.NewString(), clientIP: clientIP(r, s.cfg.TrustedProxies), start: s.now(), began: time.Now()}
		timeout := s.cfg.RequestTimeout
		if walksTheAuditLog[r.URL.Path] {
			timeout = max(timeout, auditWalkTimeout)
		}
		ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), ctxKey{}, st), timeout)
		defer cancel()
		r = r.WithContext(ctx)
		w := &responseWriter{ResponseWriter: rw}
		w.Header().Set("X-Request-Id", st.id)
		// Registered first, so it runs last: after the audit outcome, and
		// also for a request aborted with http.ErrAbortHandler.
		defer s.observe(r, st, w)
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					s.auditOutcome(st, w.status)
					panic(p)
				}
				s.logPanic(r, p)
				if w.status == 0 {
					// A read whose handler panicked while its event was
					// refused was not served for that reason first.
					if st.auditFailed {
						s.respondError(w, r, errAuditUnavailable)
					} else {
						s.respondError(w, r, errPanic)
					}
				}
			}
			s.auditOutcome(st, w.status)
		}()
		if r.ContentLength > s.cfg.MaxRequestBytes {
			// Refused unread: nothing (the audit event included) may read a
			// body declared too large, or a caller could make the node
			// buffer as much as it cares to send.
			st.bodyErr = errBodyTooLarge
			s.respondError(w, r, errBodyTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxRequestBytes)
		if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
			// r.URL.Query() drops what it cannot parse: a filter sent
			// with a bad escape would be ignored, not refused.
			s.respondError(w, r, errBadQuery)
			return
		}
		if r.Method == http.MethodGet && isTrue(r.URL.Query().Get("list")) {
			r.Method = "LIST"
		}
		next.ServeHTTP(w, r)
	})
}

var errPanic = errors.New("handler panicked")

// walksTheAuditLog are the routes that read every stored event (about
// 50,000 a second): they get auditWalkTimeout rather than the request
// timeout, so a log of some millions of events can still be verified and
// pruned through the API.
var walksTheAuditLog = map[string]bool{"/v1/sys/audit/verify": true, "/v1/sys/audit/prune": true}

const auditWalkTimeout = time.Hour

// errBadQuery refuses a query string that does not parse whole. It quotes
// nothing: what it would quote may be a value the caller sent.
var errBadQuery = fault.New(fault.Invalid, "the query string is not valid: a % not followed by two hex digits, or a ';' between parameters (use '&')")

// observe records an answered request in the metrics, under its route
// template (metrics.Unrouted when no route matched).
func (s *Server) observe(r *http.Request, st *reqState, w *responseWriter) {
	route := st.route
	if route == "" {
		route = metrics.Unrouted
	}
	denied := st.decision == audit.DecisionDeny && w.status == http.StatusForbidden
	s.metrics.ObserveRequest(r.Method, route, w.status, time.Since(st.began), denied)
}

// logPanic records a panic with its stack. Only runtime errors' messages are
// logged: any other panic value could carry request data.
func (s *Server) logPanic(r *http.Request, p any) {
	msg := fmt.Sprintf("panic of type %T", p)
	if re, ok := p.(runtime.Error); ok {
		msg = re.Error()
	}
	s.log.Error("panic serving request", "request_id", requestID(r.Context()), "method", r.Method,
		"route", routeName(r), "panic", msg, "stack", string(debug.Stack()))
}

// responseWriter remembers the status sent, so nothing is written twice.
type responseWriter struct {
	http.ResponseWriter
	status int
}

func (w *responseWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func isTrue(v string) bool {
	switch strings.ToLower(v) {
	case "true", "1", "yes":
		return true
	}
	return false
}

// guard wraps a route's handler with the seal gate, authentication and
// authorization its access entry asks for.
func (s *Server) guard(template string, a access, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stateOf(r.Context()).route = template
		var err error
		switch {
		case a.public:
		case a.login, a.published:
			if a.login {
				stateOf(r.Context()).authMethod = a.loginMethod
			}
			if s.seal.Sealed() {
				err = seal.ErrSealed
			}
		default:
			err = s.authorize(r, a)
		}
		if err == nil && a.readOnly() && !limitedUses(r) {
			// Its answer is held until its event is stored.
			s.serveRead(w, r, h)
			return
		}
		if err == nil {
			// No request reaches its handler before its event is stored,
			// nor takes one of its token's uses.
			err = s.auditRequest(r)
		}
		if err == nil {
			err = s.spendUse(r)
		}
		if err != nil {
			s.respondError(w, r, err)
			return
		}
		if err := h(w, r); err != nil {
			s.respondError(w, r, err)
		}
	})
}

// limitedUses tells whether the request's token has a limited number of
// uses: such a request takes one after its event is stored and before its
// handler runs, so it never overlaps the two (the handler may show the
// uses left).
func limitedUses(r *http.Request) bool {
	t := stateOf(r.Context()).token
	return t != nil && t.NumUses > 0
}

// spendUse takes one of the request's token's uses, if they are limited.
// The token may have run out since authorization checked it: then the
// request is refused as unauthenticated.
func (s *Server) spendUse(r *http.Request) error {
	if !limitedUses(r) {
		return nil
	}
	st := stateOf(r.Context())
	t, err := s.tokens.Spend(r.Context(), *st.token)
	if err != nil {
		return err
	}
	st.token = &t
	return nil
}

var errMissingToken = fault.New(fault.Denied, "permission denied: missing client token (send X-Vault-Token or Authorization: Bearer)")

// authorize checks, in order: unsealed, a valid token, and a policy
// decision for the route's resource and capability.
func (s *Server) authorize(r *http.Request, a access) error {
	if s.seal.Sealed() {
		return seal.ErrSealed
	}
	st := stateOf(r.Context())
	id := presentedToken(r)
	if id == "" {
		st.decision = audit.DecisionDeny
		return errMissingToken
	}
	// The token is checked now; a use is taken only once the request's
	// event is stored (spendUse), so a refused request costs none.
	tok, err := s.tokens.Check(r.Context(), id, st.clientIP)
	if err != nil {
		if fault.KindOf(err) == fault.Denied {
			st.decision = audit.DecisionDeny
		}
		return err
	}
	st.token, st.tokenID = &tok, id
	st.authMethod = tok.AuthMethod

	resource, err := a.resource(r)
	if err != nil {
		return err
	}
	st.resource = resource
	if st.policies, err = s.acl.Resolve(r.Context(), tok.Policies); err != nil {
		return err
	}
	withSudo := func(c policy.Capability) policy.Capability {
		if a.sudo {
			c |= policy.Sudo
		}
		return c
	}
	capability := withSudo(a.capability)
	var d policy.Decision
	if a.write {
		// Create and update may be granted differently; only then does it
		// matter whether the target exists, which costs a read, and the
		// event records the one the write needed. Granted (or refused)
		// alike, the write is recorded as an update, as Vault records a
		// write to a path that does not tell creating from updating.
		create, update := s.decide(r, resource, withSudo(policy.Create)), s.decide(r, resource, withSudo(policy.Update))
		capability, d = withSudo(policy.Update), update
		st.createOnly = create.Allowed && !update.Allowed
		st.updateOnly = update.Allowed && !create.Allowed
		if create.Allowed != update.Allowed {
			exists, err := a.exists(r.Context(), resource)
			if err != nil {
				st.capability = withSudo(policy.Create | policy.Update).String() // one of them
				return err
			}
			if !exists {
				capability, d = withSudo(policy.Create), create
			}
		}
	} else {
		d = s.decide(r, resource, capability)
	}
	st.capability = capability.String()
	if !d.Allowed {
		st.decision = audit.DecisionDeny
		return auth.ErrPermissionDenied
	}
	st.decision = audit.DecisionAllow
	return nil
}

// presentedToken reads X-Vault-Token, or else an Authorization bearer token.
func presentedToken(r *http.Request) string {
	if t := strings.TrimSpace(r.Header.Get("X-Vault-Token")); t != "" {
		return t
	}
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// decide asks the policy engine about the request's token (its policies
// resolved by authorization) for resource and capability, with the
// request's client address and the current time for conditions.
func (s *Server) decide(r *http.Request, resource string, c policy.Capability) policy.Decision {
	st := stateOf(r.Context())
	return policy.Evaluate(st.policies, policy.Request{Resource: resource, Capability: c, ClientIP: st.clientIP, Time: s.now()})
}
