package server

import (
	"context"
	"errors"
	"testing"

	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/server/seal"
)

func TestAuditWalksAreBoundedAndEndWhenTheNodeSeals(t *testing.T) {
	var a auditWalks
	var dones []func()
	var ctxs []context.Context
	for range maxAuditWalks {
		ctx, done, err := a.start(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		ctxs, dones = append(ctxs, ctx), append(dones, done)
	}
	if _, _, err := a.start(context.Background()); !errors.Is(err, errAuditWalksBusy) || fault.RetryAfterOf(err) <= 0 {
		t.Fatalf("a walk past the limit: %v, want %v with a Retry-After", err, errAuditWalksBusy)
	}
	dones[0]()
	ctx, done, err := a.start(context.Background())
	if err != nil {
		t.Fatalf("a walk once one ended: %v", err)
	}
	defer done()
	if ctxs[0].Err() == nil {
		t.Fatal("an ended walk's context is still live")
	}

	a.sealed()
	for _, c := range []context.Context{ctxs[1], ctx} {
		if !errors.Is(context.Cause(c), seal.ErrSealed) {
			t.Fatalf("a walk under way when the node sealed: cause %v", context.Cause(c))
		}
		if err := walkError(c, c.Err()); !errors.Is(err, seal.ErrSealed) {
			t.Fatalf("its error reads %v, want %v", err, seal.ErrSealed)
		}
	}
	if err := walkError(ctxs[0], context.Canceled); !errors.Is(err, context.Canceled) {
		t.Fatalf("a walk ended otherwise reads %v", err)
	}
	dones[1]()
}
