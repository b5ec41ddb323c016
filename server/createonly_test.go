package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/server/auth"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// A write authorized to create but not to update must not replace what
// exists by the time it runs, even if the target appeared after the
// authorization looked. The handlers enforce it in the same transaction as
// the write; this drives them with the state authorization leaves behind.
func TestCreateOnlyWritesNeverReplace(t *testing.T) {
	s := New(storagetest.SQLite(t), Config{})
	ctx := context.Background()
	res, err := s.Initialize(ctx, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Unseal(ctx, res.Keys[0]); err != nil {
		t.Fatal(err)
	}
	root, err := s.tokens.Lookup(ctx, res.RootToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.kv.Put(ctx, "taken", map[string]any{"k": "v"}, nil); err != nil {
		t.Fatal(err)
	}
	call := func(h handlerFunc, resource, body string) (*httptest.ResponseRecorder, error) {
		st := &reqState{id: "test", token: &root, resource: resource, createOnly: true}
		r := httptest.NewRequest(http.MethodPost, "/v1/secrets/static/"+resource, strings.NewReader(body))
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, st))
		w := httptest.NewRecorder()
		return w, h(w, r)
	}
	cases := []struct {
		name     string
		h        handlerFunc
		resource string
		body     string
		denied   bool
	}{
		{"a new secret is created", s.handleKVWrite, "fresh", `{"data":{"k":"v"}}`, false},
		{"an existing secret is not replaced", s.handleKVWrite, "taken", `{"data":{"k":"other"}}`, true},
		{"a cas naming a version is an update and refused", s.handleKVWrite, "fresh2", `{"data":{"k":"v"},"options":{"cas":1}}`, true},
		{"new metadata is created", s.handleKVMetadataWrite, "meta-fresh", `{"max_versions":3}`, false},
		{"existing metadata is not changed", s.handleKVMetadataWrite, "taken", `{"max_versions":3}`, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := call(c.h, c.resource, c.body)
			if c.denied != errors.Is(err, auth.ErrPermissionDenied) || (!c.denied && err != nil) {
				t.Fatalf("err = %v, denied wanted: %v", err, c.denied)
			}
		})
	}
	if v, err := s.kv.Get(ctx, "taken", 0); err != nil || v.Data["k"] != "v" || v.Version != 1 {
		t.Fatalf("the existing secret changed: %+v, %v", v, err)
	}
	if m, err := s.kv.Metadata(ctx, "taken"); err != nil || m.MaxVersions != 0 {
		t.Fatalf("the existing metadata changed: %+v, %v", m, err)
	}
}
