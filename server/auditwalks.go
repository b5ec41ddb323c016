package server

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/server/seal"
)

// maxAuditWalks is how many verifications and prunes one node runs at once.
// Each reads the whole audit log, for up to an hour on a large one, and
// plain read on sys/audit/verify is enough to start one.
const maxAuditWalks = 2

// errAuditWalksBusy refuses a walk while maxAuditWalks run (429).
var errAuditWalksBusy = fault.New(fault.Limited, "this node is already verifying or pruning the audit log; try again when that ends")

// auditWalks tracks the verifications and prunes running on this node:
// it bounds their number and ends them when the node seals, since each
// works with the audit keys the seal takes away.
type auditWalks struct {
	mu      sync.Mutex
	running map[*context.CancelCauseFunc]struct{}
}

// start returns the context a walk runs under and the func that ends it,
// or errAuditWalksBusy.
func (a *auditWalks) start(ctx context.Context) (context.Context, func(), error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.running) >= maxAuditWalks {
		return nil, nil, fault.Limit(errAuditWalksBusy, 30*time.Second)
	}
	if a.running == nil {
		a.running = map[*context.CancelCauseFunc]struct{}{}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	key := &cancel
	a.running[key] = struct{}{}
	return ctx, func() {
		a.mu.Lock()
		delete(a.running, key)
		a.mu.Unlock()
		cancel(nil)
	}, nil
}

// sealed ends every walk under way: they fail with seal.ErrSealed.
func (a *auditWalks) sealed() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for cancel := range a.running {
		(*cancel)(seal.ErrSealed)
	}
}

// walkError is err as the caller should see it: seal.ErrSealed when the
// node sealed under the walk.
func walkError(ctx context.Context, err error) error {
	if err != nil && errors.Is(context.Cause(ctx), seal.ErrSealed) {
		return seal.ErrSealed
	}
	return err
}
