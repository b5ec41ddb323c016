package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/storage"
)

// envelope is the Vault-compatible success body.
type envelope struct {
	RequestID     string     `json:"request_id"`
	LeaseID       string     `json:"lease_id"`
	Renewable     bool       `json:"renewable"`
	LeaseDuration int        `json:"lease_duration"`
	Data          any        `json:"data"`
	WrapInfo      any        `json:"wrap_info"`
	Warnings      []string   `json:"warnings"`
	Auth          *authBlock `json:"auth"`
}

// authBlock is the "auth" part of a response that issues a token.
type authBlock struct {
	ClientToken   string            `json:"client_token"`
	Accessor      string            `json:"accessor"`
	Policies      []string          `json:"policies"`
	TokenPolicies []string          `json:"token_policies"`
	Metadata      map[string]string `json:"metadata"`
	LeaseDuration int               `json:"lease_duration"`
	Renewable     bool              `json:"renewable"`
	EntityID      string            `json:"entity_id"`
	TokenType     string            `json:"token_type"`
	Orphan        bool              `json:"orphan"`
	NumUses       int               `json:"num_uses"`
}

type errorBody struct {
	Errors []string `json:"errors"`
}

// writeJSON writes v with status; encoding errors can only be programming
// errors and are logged.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		s.log.Error("writing response", "request_id", requestID(r.Context()), "error", err)
	}
}

// respondData answers 200 with the envelope around data.
func (s *Server) respondData(w http.ResponseWriter, r *http.Request, data any, warnings ...string) {
	s.writeJSON(w, r, http.StatusOK, envelope{RequestID: requestID(r.Context()), Data: data, Warnings: warnings})
}

// respondAuth answers 200 with a newly issued token in the auth block.
func (s *Server) respondAuth(w http.ResponseWriter, r *http.Request, a *authBlock) {
	s.writeJSON(w, r, http.StatusOK, envelope{RequestID: requestID(r.Context()), Auth: a})
}

// respondNoContent answers 204.
func respondNoContent(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }

// respondError turns err into a status and {"errors":[…]}. Faults carry a
// message meant for the caller; anything else is an internal error whose
// details go to the log only, under the request id.
func (s *Server) respondError(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := s.classify(r.Context(), err)
	// A request that never reached a handler is recorded now, complete;
	// if the audit log cannot take it, the answer is 503 instead.
	// The audit log keeps the message with the caller's values HMAC'd.
	recorded := s.auditMessage(msg, err)
	if auditErr := s.auditRefusal(r, status, recorded); auditErr != nil {
		err = auditErr
		status, msg = s.classify(r.Context(), err)
		recorded = msg
	}
	stateOf(r.Context()).errMsg = recorded
	route := routeName(r)
	// Internal errors are the server's fault and always logged; an
	// unreachable store is worth a warning, and so is a rate limit (someone
	// is guessing, or the login is overloaded); a denied login is
	// information an operator watches for. The rest (bad input, denied,
	// sealed) is the caller's business and only visible at debug level.
	level, detail := slog.LevelDebug, err.Error()
	// A refusal (4xx) is logged as the audit log keeps it: the caller-facing
	// message with the caller's quoted values HMAC'd, never the full error.
	// A wrap could quote what was typed (people type passwords as user
	// names), and a value rejected from the wrong field may be a secret.
	if status < http.StatusInternalServerError {
		detail = recorded
	}
	switch {
	case status == http.StatusInternalServerError:
		level = slog.LevelError
	case errors.Is(err, storage.ErrUnavailable), status == http.StatusTooManyRequests:
		level = slog.LevelWarn
	case status == http.StatusForbidden && loginRoutes[route]:
		level = slog.LevelInfo
	}
	s.log.Log(r.Context(), level, "request failed", "request_id", requestID(r.Context()), "method", r.Method,
		"route", route, "client_ip", stateOf(r.Context()).clientIP.String(), "status", status, "error", detail)
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", retryAfterSeconds(fault.RetryAfterOf(err)))
	}
	s.writeJSON(w, r, status, errorBody{Errors: []string{msg}})
}

// methodNotAllowed is answered 405.
type methodNotAllowed struct{ method, path string }

func (e methodNotAllowed) Error() string {
	return "method " + e.method + " is not allowed on " + e.path
}

// loginRoutes are the public routes that check credentials; their denials
// are logged at info level.
var loginRoutes = map[string]bool{"auth.admin-login": true, "approle.login": true}

func (s *Server) classify(ctx context.Context, err error) (int, string) {
	switch {
	case errors.Is(err, errBodyTooLarge):
		return http.StatusRequestEntityTooLarge, "request body is larger than the limit"
	case errors.As(err, new(methodNotAllowed)):
		return http.StatusMethodNotAllowed, err.Error()
	case errors.Is(err, storage.ErrUnavailable):
		return http.StatusServiceUnavailable, "storage is unavailable; try again"
	case errors.Is(err, storage.ErrInvalid):
		return http.StatusBadRequest, "a value in the request is out of range or contains a character that cannot be stored"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "request was cancelled or timed out"
	}
	switch fault.KindOf(err) {
	case fault.Invalid:
		return http.StatusBadRequest, fault.Message(err)
	case fault.Denied:
		return http.StatusForbidden, fault.Message(err)
	case fault.NotFound:
		return http.StatusNotFound, fault.Message(err)
	case fault.Conflict:
		return http.StatusConflict, fault.Message(err)
	case fault.Unavailable:
		return http.StatusServiceUnavailable, fault.Message(err)
	case fault.Limited:
		return http.StatusTooManyRequests, fault.Message(err)
	}
	return http.StatusInternalServerError, "internal error; the server log has details under request id " + requestID(ctx)
}

// retryAfterSeconds is a Retry-After value: whole seconds, rounded up, at
// least 1 so a client never retries at once.
func retryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(max(1, int64((d+time.Second-1)/time.Second)), 10)
}
