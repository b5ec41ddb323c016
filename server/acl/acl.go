// Package acl keeps the policies tokens refer to: the built-ins and the
// user-defined ones stored in the database, parsed once and cached in
// memory. A write on this node invalidates its cache entry at once; other
// nodes see the change when their entry's TTL runs out (cross-node
// invalidation comes with the cluster work).
package acl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/server/policy"
	"github.com/secrethub/secrethub/storage"
)

// DefaultTTL bounds how long a cached policy (or its absence) is trusted.
const DefaultTTL = 30 * time.Second

// MaxCached bounds the cache: beyond it, stale entries are dropped, and if
// none are stale nothing more is cached (lookups then go to storage).
const MaxCached = 10000

// Errors callers branch on.
var (
	ErrNotFound = fault.New(fault.NotFound, "policy not found")
	ErrBuiltin  = fault.New(fault.Invalid, "built-in policies (root, admin, default) cannot be written or deleted")
	ErrExists   = fault.New(fault.Conflict, "a policy of that name already exists")
)

// Store is what the ACL needs from storage.
type Store interface {
	PutPolicy(ctx context.Context, name, document string, now time.Time) (bool, error)
	CreatePolicy(ctx context.Context, name, document string, now time.Time) error
	UpdatePolicy(ctx context.Context, name, document string, now time.Time) error
	Policy(ctx context.Context, name string) (storage.PolicyRecord, error)
	PolicyNames(ctx context.Context) ([]string, error)
	DeletePolicy(ctx context.Context, name string) error
}

type entry struct {
	policy *policy.Policy // nil: no such policy
	loaded time.Time
}

// ACL resolves and manages policies. It is safe for concurrent use.
type ACL struct {
	store Store
	now   func() time.Time
	ttl   time.Duration

	mu    sync.RWMutex
	cache map[string]entry
	// generation counts writes; a lookup caches what it read only if no
	// write happened while it was reading, so an invalidation is never
	// undone by a slower, older read.
	generation uint64
}

// New returns an ACL over store; ttl <= 0 means DefaultTTL.
func New(store Store, now func() time.Time, ttl time.Duration) *ACL {
	if now == nil {
		now = time.Now
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &ACL{store: store, now: now, ttl: ttl, cache: map[string]entry{}}
}

// Resolve returns the policies named, skipping names no policy has (a token
// may outlive a policy it was given). Built-ins never touch storage; others
// do only when their cache entry is missing or stale.
func (a *ACL) Resolve(ctx context.Context, names []string) ([]*policy.Policy, error) {
	out := make([]*policy.Policy, 0, len(names))
	for _, name := range names {
		if p := policy.Builtin(name); p != nil {
			out = append(out, p)
			continue
		}
		p, err := a.lookup(ctx, name)
		if err != nil {
			return nil, err
		}
		if p != nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// lookup returns a user-defined policy, nil if there is none.
func (a *ACL) lookup(ctx context.Context, name string) (*policy.Policy, error) {
	a.mu.RLock()
	e, ok := a.cache[name]
	gen := a.generation
	a.mu.RUnlock()
	if ok && a.now().Sub(e.loaded) < a.ttl {
		return e.policy, nil
	}
	p, err := a.load(ctx, name)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.generation != gen {
		return p, nil // a write raced this read: use it once, cache nothing
	}
	if len(a.cache) >= MaxCached {
		a.dropStaleLocked()
	}
	if len(a.cache) < MaxCached {
		a.cache[name] = entry{policy: p, loaded: a.now()}
	}
	return p, nil
}

// load reads and compiles a stored policy, nil if there is none.
func (a *ACL) load(ctx context.Context, name string) (*policy.Policy, error) {
	rec, err := a.store.Policy(ctx, name)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	p, err := compileStored(rec.Document)
	if err != nil {
		return nil, fmt.Errorf("acl: stored policy %q does not compile: %w", name, err)
	}
	return p, nil
}

func (a *ACL) dropStaleLocked() {
	now := a.now()
	for name, e := range a.cache {
		if now.Sub(e.loaded) >= a.ttl {
			delete(a.cache, name)
		}
	}
}

func compileStored(document string) (*policy.Policy, error) {
	doc, err := policy.ParseDocument([]byte(document))
	if err != nil {
		return nil, err
	}
	return policy.Compile(doc)
}

func (a *ACL) forget(name string) {
	a.mu.Lock()
	delete(a.cache, name)
	a.generation++
	a.mu.Unlock()
}

// Put validates and stores a policy document, replacing any policy of the
// same name, and reports whether it was new.
func (a *ACL) Put(ctx context.Context, doc policy.Document) (bool, error) {
	canonical, err := canonicalize(doc)
	if err != nil {
		return false, err
	}
	defer a.forget(doc.Name)
	return a.store.PutPolicy(ctx, doc.Name, canonical, a.now())
}

// Create stores a new policy; ErrExists if the name is taken, decided by
// the database so no concurrent writer is overwritten.
func (a *ACL) Create(ctx context.Context, doc policy.Document) error {
	canonical, err := canonicalize(doc)
	if err != nil {
		return err
	}
	defer a.forget(doc.Name)
	err = a.store.CreatePolicy(ctx, doc.Name, canonical, a.now())
	if errors.Is(err, storage.ErrConflict) {
		return ErrExists
	}
	return err
}

// canonicalize validates a document and returns the form it is stored in:
// what Get returns is exactly what is enforced.
func canonicalize(doc policy.Document) (string, error) {
	if policy.Builtin(doc.Name) != nil {
		return "", ErrBuiltin
	}
	p, err := policy.Compile(doc)
	if err != nil {
		return "", err
	}
	out, err := json.Marshal(policy.DocumentOf(p))
	return string(out), err
}

// Get returns a policy's document and whether it is built in.
func (a *ACL) Get(ctx context.Context, name string) (policy.Document, bool, error) {
	if p := policy.Builtin(name); p != nil {
		return policy.DocumentOf(p), true, nil
	}
	if err := policy.ValidateName(name); err != nil {
		return policy.Document{}, false, err
	}
	p, err := a.lookup(ctx, name)
	if err != nil {
		return policy.Document{}, false, err
	}
	if p == nil {
		return policy.Document{}, false, ErrNotFound
	}
	return policy.DocumentOf(p), false, nil
}

// Exists reports whether a policy of that name exists (built-ins
// included). It asks storage, not the cache: it decides whether a write
// creates or updates, which must not depend on another node's stale view.
func (a *ACL) Exists(ctx context.Context, name string) (bool, error) {
	if policy.Builtin(name) != nil {
		return true, nil
	}
	p, err := a.load(ctx, name)
	return p != nil, err
}

// Update replaces an existing policy; ErrNotFound if there is none (the
// write must not create, for a caller allowed to update but not create).
func (a *ACL) Update(ctx context.Context, doc policy.Document) error {
	canonical, err := canonicalize(doc)
	if err != nil {
		return err
	}
	defer a.forget(doc.Name)
	err = a.store.UpdatePolicy(ctx, doc.Name, canonical, a.now())
	if errors.Is(err, storage.ErrNotFound) {
		return ErrNotFound
	}
	return err
}

// List returns every policy name, built-ins included, sorted.
func (a *ACL) List(ctx context.Context) ([]string, error) {
	names, err := a.store.PolicyNames(ctx)
	if err != nil {
		return nil, err
	}
	names = append(names, policy.BuiltinNames()...)
	slices.Sort(names)
	return slices.Compact(names), nil
}

// Delete removes a user-defined policy; deleting one that does not exist
// is not an error. Tokens that name it simply stop getting its grants.
func (a *ACL) Delete(ctx context.Context, name string) error {
	if policy.Builtin(name) != nil {
		return ErrBuiltin
	}
	if err := policy.ValidateName(name); err != nil {
		return err
	}
	defer a.forget(name)
	err := a.store.DeletePolicy(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	return err
}
