package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/secrethub/secrethub/server/auth"
	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// What a caller typed; none of it may reach the log of a refused request.
const (
	typedUsername = "alice-typed-her-p4ssw0rd-here"
	typedPassword = "hunter2-s3cret-value"
	typedSecretID = "0b4d5e6f-typed-secret-id"
)

func TestRespondErrorLogsRefusalsWithoutWhatWasTyped(t *testing.T) {
	// quoting wraps a fault the way careless code might: with the typed
	// user name in the text.
	quoting := func(f error) error { return fmt.Errorf("login as %q with %q: %w", typedUsername, typedSecretID, f) }
	cases := []struct {
		name, route string
		err         error
		status      int
		level       string
	}{
		{"a wrong admin password is info", "auth.admin-login", quoting(auth.ErrInvalidAdminLogin), 403, "INFO"},
		{"a wrong secret ID is info", "approle.login", quoting(fault.New(fault.Denied, "invalid role_id or secret_id")), 403, "INFO"},
		{"a blocked client is a warning", "auth.admin-login", quoting(fault.Limit(auth.ErrTooManyAttempts, time.Minute)), 429, "WARN"},
		{"a paused admin login is a warning", "auth.admin-login", quoting(fault.Limit(auth.ErrAdminLoginPaused, time.Minute)), 429, "WARN"},
		{"a busy login is a warning", "approle.login", quoting(fault.Limit(auth.ErrLoginBusy, 3*time.Second)), 429, "WARN"},
		{"a malformed login stays at debug", "auth.admin-login", quoting(fault.Invalidf("bad body")), 400, "DEBUG"},
		{"a denial elsewhere stays at debug", "kv.read", auth.ErrPermissionDenied, 403, "DEBUG"},
		{"a value rejected elsewhere is not logged", "kv.write", fault.Invalidf("ttl %v is not a duration", fault.Input(typedPassword)), 400, "DEBUG"},
		{"a wrap elsewhere is not logged", "kv.write", quoting(fault.Invalidf("bad body")), 400, "DEBUG"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			s, err := New(storagetest.SQLite(t), Config{Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			if err != nil {
				t.Fatal(err)
			}
			router := mux.NewRouter()
			router.Name(c.route).Path("/v1/login").HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if _, err := readBody(r); err != nil {
					t.Fatal(err)
				}
				s.respondError(w, r, c.err)
			})
			body := fmt.Sprintf(`{"username":%q,"password":%q,"secret_id":%q}`, typedUsername, typedPassword, typedSecretID)
			st := &reqState{id: "req-7", clientIP: netip.MustParseAddr("203.0.113.9")}
			r := httptest.NewRequestWithContext(context.WithValue(context.Background(), ctxKey{}, st), http.MethodPost, "/v1/login", strings.NewReader(body))
			w := httptest.NewRecorder()
			router.ServeHTTP(w, r)

			if w.Code != c.status {
				t.Fatalf("status %d, want %d", w.Code, c.status)
			}
			var line map[string]any
			if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
				t.Fatalf("want one JSON log line, got %q: %v", logs.String(), err)
			}
			for key, want := range map[string]any{
				"level": c.level, "msg": "request failed", "route": c.route, "client_ip": "203.0.113.9",
				"request_id": "req-7", "status": float64(c.status),
			} {
				if line[key] != want {
					t.Errorf("%s = %v, want %v (line %s)", key, line[key], want, logs.String())
				}
			}
			for _, typed := range []string{typedUsername, typedPassword, typedSecretID, "p4ssw0rd"} {
				if strings.Contains(logs.String(), typed) {
					t.Fatalf("the log holds %q, which the caller typed: %s", typed, logs.String())
				}
			}
		})
	}
}
