package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/server/auth"
	"github.com/secrethub/secrethub/server/policy"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// A write authorized to create but not to update must not replace what
// exists by the time it runs, even if the target appeared after the
// authorization looked; one authorized to update but not to create must not
// create what vanished meanwhile. The handlers enforce it in the same
// transaction as the write; this drives them with the state authorization
// leaves behind.
func TestRestrictedWritesStayWithinTheirGrant(t *testing.T) {
	s, err := New(storagetest.SQLite(t), Config{})
	if err != nil {
		t.Fatal(err)
	}
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
	call := func(h handlerFunc, resource, body string, updateOnly bool) (*httptest.ResponseRecorder, error) {
		st := &reqState{id: "test", token: &root, resource: resource, createOnly: !updateOnly, updateOnly: updateOnly}
		r := httptest.NewRequest(http.MethodPost, "/v1/secrets/static/"+resource, strings.NewReader(body))
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, st))
		w := httptest.NewRecorder()
		return w, h(w, r)
	}
	if _, err := s.acl.Put(ctx, policyDoc(t, `{"name":"taken","rules":[{"path":"*","capabilities":["read"]}]}`)); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		h          handlerFunc
		resource   string
		body       string
		updateOnly bool
		denied     bool
	}{
		{"a new secret is created", s.handleKVWrite, "fresh", `{"data":{"k":"v"}}`, false, false},
		{"an existing secret is not replaced", s.handleKVWrite, "taken", `{"data":{"k":"other"}}`, false, true},
		{"a cas naming a version is an update and refused", s.handleKVWrite, "fresh2", `{"data":{"k":"v"},"options":{"cas":1}}`, false, true},
		{"new metadata is created", s.handleKVMetadataWrite, "meta-fresh", `{"max_versions":3}`, false, false},
		{"existing metadata is not changed", s.handleKVMetadataWrite, "taken", `{"max_versions":3}`, false, true},
		{"a new policy is created", s.handlePolicyWrite, "policies/fresh", `{"name":"fresh","rules":[{"path":"*","capabilities":["read"]}]}`, false, false},
		{"an existing policy is not replaced", s.handlePolicyWrite, "policies/taken", `{"name":"taken","rules":[{"path":"*","capabilities":["sudo"]}]}`, false, true},
		{"update-only: an existing secret is updated", s.handleKVWrite, "fresh", `{"data":{"k":"v2"}}`, true, false},
		{"update-only: a missing secret is not created", s.handleKVWrite, "vanished", `{"data":{"k":"v"}}`, true, true},
		{"update-only: missing metadata is not created", s.handleKVMetadataWrite, "vanished", `{"max_versions":3}`, true, true},
		{"update-only: a missing policy is not created", s.handlePolicyWrite, "policies/vanished", `{"name":"vanished","rules":[{"path":"*","capabilities":["read"]}]}`, true, true},
		{"update-only: an existing policy is updated", s.handlePolicyWrite, "policies/fresh", `{"name":"fresh","rules":[{"path":"*","capabilities":["list"]}]}`, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := call(c.h, c.resource, c.body, c.updateOnly)
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
	for _, missing := range []string{"vanished"} {
		if ok, _ := s.kv.Exists(ctx, missing); ok {
			t.Fatal("an update-only write created a secret")
		}
		if ok, _ := s.acl.Exists(ctx, missing); ok {
			t.Fatal("an update-only write created a policy")
		}
	}
	if d, _, _ := s.acl.Get(ctx, "taken"); d.Rules[0].Capabilities[0] != "read" {
		t.Fatalf("the existing policy changed: %+v", d)
	}
}

func policyDoc(t *testing.T, s string) policy.Document {
	t.Helper()
	d, err := policy.ParseDocument([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return d
}
