package server

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/secrethub/secrethub/server/audit"
	"github.com/secrethub/secrethub/storage/storagetest"
)

func newEntryServer(t *testing.T, cfg Config) (*Server, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s, err := New(storagetest.SQLite(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, &logs
}

func TestEntryRecoversFromPanicsWithoutLeaking(t *testing.T) {
	s, logs := newEntryServer(t, Config{})
	const secret = "s.panicking-with-a-secret"

	t.Run("a panic before any output is a 500 with a request id and no detail", func(t *testing.T) {
		rec := httptest.NewRecorder()
		s.entry(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(secret) })).
			ServeHTTP(rec, httptest.NewRequest("GET", "/v1/anything", nil))
		if rec.Code != 500 || !strings.Contains(rec.Body.String(), `"errors"`) || rec.Header().Get("X-Request-Id") == "" {
			t.Fatalf("status %d, body %s, headers %v", rec.Code, rec.Body, rec.Header())
		}
		if strings.Contains(rec.Body.String(), secret) || strings.Contains(rec.Body.String(), "goroutine") {
			t.Fatalf("the response leaks the panic: %s", rec.Body)
		}
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("the log leaks the panic value:\n%s", logs)
		}
		if !strings.Contains(logs.String(), "panic of type string") {
			t.Fatalf("the panic was not logged:\n%s", logs)
		}
	})

	t.Run("a panic after the header went out writes nothing more", func(t *testing.T) {
		rec := httptest.NewRecorder()
		s.entry(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusAccepted)
			_, _ = w.Write([]byte("partial"))
			panic("late")
		})).ServeHTTP(rec, httptest.NewRequest("GET", "/v1/anything", nil))
		if rec.Code != http.StatusAccepted || rec.Body.String() != "partial" {
			t.Fatalf("status %d, body %q", rec.Code, rec.Body)
		}
	})

	t.Run("a runtime error's message is logged", func(t *testing.T) {
		rec := httptest.NewRecorder()
		s.entry(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
			var m map[string]int
			m["x"]++
		})).ServeHTTP(rec, httptest.NewRequest("GET", "/v1/anything", nil))
		if rec.Code != 500 || !strings.Contains(logs.String(), "assignment to entry in nil map") {
			t.Fatalf("status %d; log:\n%s", rec.Code, logs)
		}
	})
}

func TestEntryBoundsEveryRequestInTime(t *testing.T) {
	s, _ := newEntryServer(t, Config{RequestTimeout: 250 * time.Millisecond})
	left := func(method, path string) time.Duration {
		var left time.Duration
		s.entry(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			deadline, ok := r.Context().Deadline()
			if !ok {
				t.Fatal("the request context has no deadline")
			}
			left = time.Until(deadline)
		})).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, path, nil))
		return left
	}
	if d := left("GET", "/v1/anything"); d <= 0 || d > 250*time.Millisecond {
		t.Fatalf("time left = %v, want within the 250ms request timeout", d)
	}
	// Verifying or pruning reads the whole audit log: an hour, not the
	// request timeout, however large the log.
	for _, c := range []struct{ method, path string }{{"GET", "/v1/sys/audit/verify"}, {"POST", "/v1/sys/audit/prune"}} {
		if d := left(c.method, c.path); d <= auditWalkTimeout-time.Minute || d > auditWalkTimeout {
			t.Fatalf("%s %s: time left = %v, want about %v", c.method, c.path, d, auditWalkTimeout)
		}
	}
}

// refusingAudit is an audit log whose store refuses every event.
type refusingAudit struct{ nopAudit }

func (*refusingAudit) Start(context.Context, audit.Event) (audit.Pending, error) {
	return refusedPending{}, nil
}

// refusedPending is an event whose batch the store refused.
type refusedPending struct{}

func (refusedPending) Done(audit.Outcome) {}
func (refusedPending) Wait(context.Context) (int64, bool, error) {
	return 0, false, errors.New("audit store refuses writes")
}

// A read runs its handler while its event commits; if the handler panics
// and the event was refused, the answer is the 503 of an unserved request,
// not a 500.
func TestEntryAnswersAPanickingReadWhoseEventWasRefusedWith503(t *testing.T) {
	s, _ := newEntryServer(t, Config{})
	s.audit = &refusingAudit{}
	rec := httptest.NewRecorder()
	s.entry(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.serveRead(w, r, func(http.ResponseWriter, *http.Request) error { panic("s.read-handler-bug") })
	})).ServeHTTP(rec, httptest.NewRequest("GET", "/v1/secrets/static/app/db", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "audit log unavailable") {
		t.Fatalf("status %d, body %s", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), "s.read-handler-bug") {
		t.Fatalf("the response leaks the panic: %s", rec.Body)
	}
}
