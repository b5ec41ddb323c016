package client_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/secrethub/secrethub/client"
	"github.com/secrethub/secrethub/client/clienttest"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// productionPolicy is the runbook's Phase 5.2 production policy.
func productionPolicy() client.PolicyDocument {
	return client.PolicyDocument{Name: "production", Rules: []client.PolicyRule{{
		Path: "prod/*", Capabilities: []string{"read"}, Effect: "allow",
		Conditions: &client.PolicyConditions{TimeOfDay: []int{0, 23}, SourceIP: client.CIDRList{"10.0.0.0/8"}},
	}}}
}

func TestPolicyLifecycle(t *testing.T) {
	storagetest.Engines(t, func(t *testing.T, db *storage.DB) {
		srv := clienttest.Unsealed(t, db)
		ctx := context.Background()
		pol := srv.Root(t).Policy()

		if err := pol.Write(ctx, productionPolicy()); err != nil {
			t.Fatal(err)
		}
		t.Run("a written policy reads back as written, not built in", func(t *testing.T) {
			got, err := pol.Read(ctx, "production")
			if err != nil {
				t.Fatal(err)
			}
			want := productionPolicy()
			gotJSON, _ := json.Marshal(got.PolicyDocument)
			wantJSON, _ := json.Marshal(want)
			if got.Builtin || string(gotJSON) != string(wantJSON) {
				t.Fatalf("read back %s (builtin %v), want %s", gotJSON, got.Builtin, wantJSON)
			}
		})
		t.Run("list names every policy, the built-in ones included", func(t *testing.T) {
			names, err := pol.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"admin", "default", "production", "root"} {
				if !slices.Contains(names, want) {
					t.Fatalf("list = %v, lacks %q", names, want)
				}
			}
		})
		t.Run("a built-in policy reads as built in and cannot be written", func(t *testing.T) {
			got, err := pol.Read(ctx, "default")
			if err != nil || !got.Builtin {
				t.Fatalf("read default = %+v, %v", got, err)
			}
			err = pol.Write(ctx, client.PolicyDocument{Name: "admin", Rules: []client.PolicyRule{{Path: "*", Capabilities: []string{"read"}}}})
			if !isStatus(err, 400) && !isStatus(err, 403) {
				t.Fatalf("overwriting admin: err = %v, want 400 or 403", err)
			}
		})
		t.Run("a write replaces the whole document", func(t *testing.T) {
			doc := client.PolicyDocument{Name: "production", Timezone: "Europe/Berlin", Rules: []client.PolicyRule{
				{Path: "prod/+/password", Capabilities: []string{"read", "list"}},
				{Path: "prod/root", Capabilities: []string{"read"}, Effect: "deny",
					Conditions: &client.PolicyConditions{DaysOfWeek: []string{"sat", "sun"}, SourceIP: client.CIDRList{"10.0.0.0/8", "192.168.0.0/16"}}},
			}}
			if err := pol.Write(ctx, doc); err != nil {
				t.Fatal(err)
			}
			got, err := pol.Read(ctx, "production")
			if err != nil || got.Timezone != "Europe/Berlin" || len(got.Rules) != 2 ||
				!slices.Equal(got.Rules[1].Conditions.SourceIP, []string{"10.0.0.0/8", "192.168.0.0/16"}) {
				t.Fatalf("read back %+v, %v", got, err)
			}
			if err := pol.Write(ctx, productionPolicy()); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("a document the server refuses is a 400", func(t *testing.T) {
			bad := []client.PolicyDocument{
				{Name: "bad", Rules: []client.PolicyRule{{Path: "x/*", Capabilities: []string{"fly"}}}},
				{Name: "bad", Rules: []client.PolicyRule{{Path: "x/*", Capabilities: []string{"read"}, Conditions: &client.PolicyConditions{TimeOfDay: []int{9}}}}},
				{Name: "Bad Name", Rules: []client.PolicyRule{{Path: "x/*", Capabilities: []string{"read"}}}},
			}
			for _, doc := range bad {
				if err := pol.Write(ctx, doc); !isStatus(err, 400) {
					t.Fatalf("write %+v: err = %v, want 400", doc, err)
				}
			}
		})

		simulations := []struct {
			name   string
			req    client.PolicySimulateRequest
			allow  bool
			policy string
			failed string
		}{
			{"production allows reading prod/ from 10.1.2.3",
				client.PolicySimulateRequest{Policies: []string{"production"}, Path: "prod/db", Capability: "read", SourceIP: "10.1.2.3"},
				true, "production", ""},
			{"production denies reading prod/ from 127.0.0.1, naming the source_ip condition",
				client.PolicySimulateRequest{Policies: []string{"production"}, Path: "prod/db", Capability: "read", SourceIP: "127.0.0.1"},
				false, "production", "source_ip"},
			{"production grants no writes",
				client.PolicySimulateRequest{Policies: []string{"production"}, Path: "prod/db", Capability: "update", SourceIP: "10.1.2.3",
					Time: time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)},
				false, "", ""},
		}
		for _, tt := range simulations {
			t.Run(tt.name, func(t *testing.T) {
				sim, err := pol.Simulate(ctx, tt.req)
				if err != nil {
					t.Fatal(err)
				}
				wantDecision := map[bool]string{true: "allow", false: "deny"}[tt.allow]
				if sim.Allowed != tt.allow || sim.Decision != wantDecision || sim.Policy != tt.policy ||
					sim.FailedCondition != tt.failed || sim.Reason == "" {
					t.Fatalf("simulation = %+v", sim)
				}
				if tt.allow && (sim.Rule == nil || sim.Rule.Index != 0 || sim.Rule.Path != "prod/*" || sim.Rule.Effect != "allow") {
					t.Fatalf("deciding rule = %+v", sim.Rule)
				}
			})
		}
		t.Run("a token's policies can be simulated", func(t *testing.T) {
			tok, err := srv.Root(t).Token().Create(ctx, client.TokenCreateRequest{Policies: []string{"production"}})
			if err != nil {
				t.Fatal(err)
			}
			sim, err := pol.Simulate(ctx, client.PolicySimulateRequest{Token: tok.ClientToken, Path: "prod/db", Capability: "read", SourceIP: "10.9.9.9"})
			if err != nil || !sim.Allowed || sim.Policy != "production" {
				t.Fatalf("simulation = %+v, %v", sim, err)
			}
		})
		t.Run("a simulation needs policies or a token, not both", func(t *testing.T) {
			for _, req := range []client.PolicySimulateRequest{
				{Path: "prod/db", Capability: "read"},
				{Policies: []string{"production"}, Token: "s.x", Path: "prod/db", Capability: "read"},
			} {
				if _, err := pol.Simulate(ctx, req); err == nil {
					t.Fatalf("simulate %+v: no error", req)
				}
			}
		})
		t.Run("a deleted policy is gone, and deleting it again is no error", func(t *testing.T) {
			if err := pol.Delete(ctx, "production"); err != nil {
				t.Fatal(err)
			}
			if _, err := pol.Read(ctx, "production"); !isStatus(err, 404) {
				t.Fatalf("read after delete: err = %v, want 404", err)
			}
			if err := pol.Delete(ctx, "production"); err != nil {
				t.Fatalf("second delete: %v", err)
			}
		})
		t.Run("a token whose policies grant nothing on policies/ is refused", func(t *testing.T) {
			tok, err := srv.Root(t).Token().Create(ctx, client.TokenCreateRequest{Policies: []string{"default"}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := srv.Client(t, tok.ClientToken).Policy().List(ctx); !isStatus(err, 403) {
				t.Fatalf("list with the default policy only: err = %v, want 403", err)
			}
		})
	})
}

func TestCIDRListReadsOneOrMany(t *testing.T) {
	tests := []struct {
		name string
		json string
		want []string
		out  string
	}{
		{"one CIDR as a string, as the runbook writes it", `"10.0.0.0/8"`, []string{"10.0.0.0/8"}, `"10.0.0.0/8"`},
		{"a list of one is written back as a string", `["10.0.0.0/8"]`, []string{"10.0.0.0/8"}, `"10.0.0.0/8"`},
		{"a list of several stays a list", `["10.0.0.0/8","192.168.0.0/16"]`, []string{"10.0.0.0/8", "192.168.0.0/16"}, `["10.0.0.0/8","192.168.0.0/16"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l client.CIDRList
			if err := json.Unmarshal([]byte(tt.json), &l); err != nil || !slices.Equal(l, tt.want) {
				t.Fatalf("unmarshal = %v, %v", l, err)
			}
			if b, err := json.Marshal(l); err != nil || string(b) != tt.out {
				t.Fatalf("marshal = %s, %v", b, err)
			}
		})
	}
	t.Run("a number is refused", func(t *testing.T) {
		var l client.CIDRList
		if err := json.Unmarshal([]byte(`10`), &l); err == nil {
			t.Fatal("no error")
		}
	})
}
