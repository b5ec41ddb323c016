package server

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/secrethub/secrethub/server/fault"
)

func TestLimitedFaultIs429WithRetryAfter(t *testing.T) {
	errBusy := fault.New(fault.Limited, "too many failed login attempts")
	cases := []struct {
		name  string
		wait  time.Duration
		after string
	}{
		{"a whole number of seconds is sent as is", 90 * time.Second, "90"},
		{"a fraction of a second is rounded up", 1500 * time.Millisecond, "2"},
		{"a wait under a second is sent as one second", 10 * time.Millisecond, "1"},
		{"a fault without a wait still asks for one second", 0, "1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &Server{log: slog.New(slog.DiscardHandler)}
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodPost, "/v1/auth/admin/login", nil)
			s.respondError(w, r, fmt.Errorf("admin login: %w", fault.Limit(errBusy, c.wait)))

			if w.Code != http.StatusTooManyRequests {
				t.Fatalf("status = %d, want 429", w.Code)
			}
			if got := w.Header().Get("Retry-After"); got != c.after {
				t.Fatalf("Retry-After = %q, want %q", got, c.after)
			}
			var body errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if len(body.Errors) != 1 || body.Errors[0] != errBusy.Msg {
				t.Fatalf("errors = %q, want [%q]", body.Errors, errBusy.Msg)
			}
		})
	}
}

func TestOtherFaultsHaveNoRetryAfter(t *testing.T) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/v1/auth/admin/login", nil)
	s.respondError(w, r, fault.New(fault.Denied, "invalid username or password"))
	if w.Code != http.StatusForbidden {
		t.Fatalf("status = %d, want 403", w.Code)
	}
	if got := w.Header().Get("Retry-After"); got != "" {
		t.Fatalf("Retry-After = %q on a 403", got)
	}
}
