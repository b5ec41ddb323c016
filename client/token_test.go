package client_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/secrethub/secrethub/client"
	"github.com/secrethub/secrethub/client/clienttest"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

func TestTokenLifecycle(t *testing.T) {
	storagetest.Engines(t, func(t *testing.T, db *storage.DB) {
		srv := clienttest.Unsealed(t, db)
		ctx := context.Background()
		root := srv.Root(t)
		no := false

		issued, err := root.Token().Create(ctx, client.TokenCreateRequest{
			Policies: []string{"admin"}, TTL: time.Hour, ExplicitMaxTTL: 2 * time.Hour,
			DisplayName: "ci", Meta: map[string]string{"team": "payments"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if issued.ClientToken == "" || issued.Accessor == "" || !issued.Renewable ||
			!slices.Contains(issued.Policies, "admin") || !slices.Contains(issued.Policies, "default") ||
			issued.LeaseDuration < 3590 || issued.LeaseDuration > 3600 || issued.Orphan {
			t.Fatalf("created = %+v", issued)
		}
		child := srv.Client(t, issued.ClientToken)

		t.Run("lookup-self describes the caller's own token", func(t *testing.T) {
			info, err := child.Token().LookupSelf(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.Accessor != issued.Accessor || info.DisplayName != "token-ci" || info.Meta["team"] != "payments" ||
				info.ExplicitMaxTTL != 7200 || info.CreationTTL != 3600 || info.ExpireTime.IsZero() || info.IssueTime.IsZero() {
				t.Fatalf("lookup-self = %+v", info)
			}
		})
		t.Run("lookup and lookup-accessor find the same token", func(t *testing.T) {
			byToken, err := root.Token().Lookup(ctx, issued.ClientToken)
			if err != nil {
				t.Fatal(err)
			}
			byAccessor, err := root.Token().LookupAccessor(ctx, issued.Accessor)
			if err != nil {
				t.Fatal(err)
			}
			if byToken.Accessor != issued.Accessor || byAccessor.Accessor != issued.Accessor || byAccessor.ID != "" {
				t.Fatalf("lookup = %+v, lookup-accessor = %+v", byToken, byAccessor)
			}
		})
		t.Run("renew-self and renew take an increment", func(t *testing.T) {
			a, err := child.Token().RenewSelf(ctx, 30*time.Minute)
			if err != nil || a.LeaseDuration < 1790 || a.LeaseDuration > 1800 || a.Accessor != issued.Accessor {
				t.Fatalf("renew-self = %+v, %v", a, err)
			}
			a, err = root.Token().Renew(ctx, issued.ClientToken, 0)
			if err != nil || a.LeaseDuration < 3590 {
				t.Fatalf("renew with the original TTL = %+v, %v", a, err)
			}
		})
		t.Run("renew-accessor extends the token an accessor names, without its value", func(t *testing.T) {
			a, err := root.Token().RenewAccessor(ctx, issued.Accessor, 90*time.Minute)
			if err != nil || a.Accessor != issued.Accessor || a.ClientToken != "" || a.LeaseDuration < 5390 || a.LeaseDuration > 5400 {
				t.Fatalf("renew-accessor = %+v, %v", a, err)
			}
			if _, err := root.Token().RenewAccessor(ctx, "no-such-accessor", 0); !isStatus(err, 404) {
				t.Fatalf("renew-accessor of an unknown accessor: err = %v, want 404", err)
			}
		})
		t.Run("create-orphan issues a token that outlives its creator", func(t *testing.T) {
			creator, err := root.Token().Create(ctx, client.TokenCreateRequest{Policies: []string{"root"}, TTL: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			orphan, err := srv.Client(t, creator.ClientToken).Token().CreateOrphan(ctx, client.TokenCreateRequest{TTL: time.Hour, DisplayName: "batch"})
			if err != nil || !orphan.Orphan || orphan.ClientToken == "" {
				t.Fatalf("create-orphan = %+v, %v", orphan, err)
			}
			if err := root.Token().RevokeAccessor(ctx, creator.Accessor); err != nil {
				t.Fatal(err)
			}
			info, err := srv.Client(t, orphan.ClientToken).Token().LookupSelf(ctx)
			if err != nil || !info.Orphan || info.DisplayName != "token-batch" {
				t.Fatalf("the orphan after its creator was revoked: %+v, %v", info, err)
			}
		})
		t.Run("a non-renewable token cannot be renewed", func(t *testing.T) {
			fixed, err := root.Token().Create(ctx, client.TokenCreateRequest{TTL: time.Hour, Renewable: &no})
			if err != nil || fixed.Renewable {
				t.Fatalf("create non-renewable = %+v, %v", fixed, err)
			}
			if _, err := root.Token().Renew(ctx, fixed.ClientToken, time.Minute); !isStatus(err, 400) {
				t.Fatalf("renew: err = %v, want 400", err)
			}
		})
		t.Run("revoke, revoke-accessor and revoke-self each end a token", func(t *testing.T) {
			var tokens []*client.TokenAuth
			for range 3 {
				a, err := root.Token().Create(ctx, client.TokenCreateRequest{NoParent: true})
				if err != nil {
					t.Fatal(err)
				}
				tokens = append(tokens, a)
			}
			if err := root.Token().Revoke(ctx, tokens[0].ClientToken); err != nil {
				t.Fatal(err)
			}
			if err := root.Token().RevokeAccessor(ctx, tokens[1].Accessor); err != nil {
				t.Fatal(err)
			}
			if err := srv.Client(t, tokens[2].ClientToken).Token().RevokeSelf(ctx); err != nil {
				t.Fatal(err)
			}
			for i, a := range tokens {
				if _, err := root.Token().LookupAccessor(ctx, a.Accessor); !isStatus(err, 404) {
					t.Fatalf("token %d after revocation: err = %v, want 404", i, err)
				}
				if _, err := srv.Client(t, a.ClientToken).Token().LookupSelf(ctx); !isStatus(err, 403) {
					t.Fatalf("token %d used after revocation: err = %v, want 403", i, err)
				}
			}
		})
		t.Run("revoking a parent revokes its child", func(t *testing.T) {
			parent, err := root.Token().Create(ctx, client.TokenCreateRequest{Policies: []string{"root"}, TTL: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			grandchild, err := srv.Client(t, parent.ClientToken).Token().Create(ctx, client.TokenCreateRequest{TTL: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			if err := root.Token().RevokeAccessor(ctx, parent.Accessor); err != nil {
				t.Fatal(err)
			}
			if _, err := srv.Client(t, grandchild.ClientToken).Token().LookupSelf(ctx); !isStatus(err, 403) {
				t.Fatalf("child of a revoked token: err = %v, want 403", err)
			}
		})
	})
}
