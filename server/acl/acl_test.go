package acl_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/secrethub/secrethub/server/acl"
	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/server/policy"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

var bg = context.Background()

func doc(t *testing.T, s string) policy.Document {
	t.Helper()
	d, err := policy.ParseDocument([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func TestPoliciesAreWrittenReadListedAndDeleted(t *testing.T) {
	db := storagetest.SQLite(t)
	a := acl.New(db, nil, 0)
	created, err := a.Put(bg, doc(t, `{"name":"web","rules":[{"path":"web/*","capabilities":["read"]}]}`))
	if err != nil || !created {
		t.Fatalf("Put = %v, %v", created, err)
	}
	created, err = a.Put(bg, doc(t, `{"name":"web","rules":[{"path":"web/*","capabilities":["read","list"]}]}`))
	if err != nil || created {
		t.Fatalf("second Put = %v, %v; want a replacement", created, err)
	}
	got, builtin, err := a.Get(bg, "web")
	if err != nil || builtin || len(got.Rules) != 1 || !slices.Equal(got.Rules[0].Capabilities, []string{"read", "list"}) || got.Rules[0].Effect != "allow" {
		t.Fatalf("Get = %+v, %v, %v", got, builtin, err)
	}
	names, err := a.List(bg)
	if err != nil || !slices.Equal(names, []string{"admin", "default", "root", "web"}) {
		t.Fatalf("List = %v, %v", names, err)
	}
	if err := a.Delete(bg, "web"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Get(bg, "web"); !errors.Is(err, acl.ErrNotFound) {
		t.Fatalf("Get after delete = %v", err)
	}
	if err := a.Delete(bg, "web"); err != nil {
		t.Fatalf("deleting a missing policy: %v", err)
	}
}

func TestBuiltinsCannotBeChanged(t *testing.T) {
	a := acl.New(storagetest.SQLite(t), nil, 0)
	for _, name := range []string{"root", "admin", "default"} {
		if _, err := a.Put(bg, doc(t, `{"name":"`+name+`","rules":[{"path":"*","capabilities":["read"]}]}`)); !errors.Is(err, acl.ErrBuiltin) {
			t.Errorf("Put %s = %v, want ErrBuiltin", name, err)
		}
		if err := a.Delete(bg, name); !errors.Is(err, acl.ErrBuiltin) {
			t.Errorf("Delete %s = %v, want ErrBuiltin", name, err)
		}
		if d, builtin, err := a.Get(bg, name); err != nil || !builtin || d.Name != name {
			t.Errorf("Get %s = %+v, %v, %v", name, d, builtin, err)
		}
	}
}

func TestInvalidDocumentsAreRefusedAndNotStored(t *testing.T) {
	db := storagetest.SQLite(t)
	a := acl.New(db, nil, 0)
	_, err := a.Put(bg, doc(t, `{"name":"bad","rules":[{"path":"*","capabilities":["fly"]}]}`))
	if fault.KindOf(err) != fault.Invalid {
		t.Fatalf("Put = %v, want Invalid", err)
	}
	if names, _ := db.PolicyNames(bg); len(names) != 0 {
		t.Fatalf("an invalid policy was stored: %v", names)
	}
	if _, _, err := a.Get(bg, "Bad/Name"); fault.KindOf(err) != fault.Invalid {
		t.Fatalf("Get of an impossible name = %v, want Invalid", err)
	}
}

func TestResolveCachesAndInvalidates(t *testing.T) {
	db := storagetest.SQLite(t)
	c := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	node1 := acl.New(db, c.Now, 30*time.Second)
	node2 := acl.New(db, c.Now, 30*time.Second) // another node over the same database
	if _, err := node1.Put(bg, doc(t, `{"name":"web","rules":[{"path":"web/*","capabilities":["read"]}]}`)); err != nil {
		t.Fatal(err)
	}

	before := db.RoundTrips().Queries
	ps, err := node2.Resolve(bg, []string{"root", "default", "admin"})
	if err != nil || len(ps) != 3 || db.RoundTrips().Queries != before {
		t.Fatalf("built-ins: %d policies, %v, %d queries", len(ps), err, db.RoundTrips().Queries-before)
	}
	ps, err = node2.Resolve(bg, []string{"default", "web", "ghost"})
	if err != nil || len(ps) != 2 || ps[1].Name != "web" {
		t.Fatalf("Resolve = %v, %v; want default and web, the unknown name skipped", ps, err)
	}
	before = db.RoundTrips().Queries
	if _, err := node2.Resolve(bg, []string{"web", "ghost"}); err != nil || db.RoundTrips().Queries != before {
		t.Fatalf("a second resolve within the TTL touched storage (%d queries, %v)", db.RoundTrips().Queries-before, err)
	}

	// A change on node1 is seen by node1 at once...
	if _, err := node1.Put(bg, doc(t, `{"name":"web","rules":[{"path":"web/*","capabilities":["read"],"effect":"deny"}]}`)); err != nil {
		t.Fatal(err)
	}
	if ps, _ := node1.Resolve(bg, []string{"web"}); len(ps) != 1 || !ps[0].Rules[0].Deny {
		t.Fatal("node1 does not see its own change")
	}
	// ...and by node2 once its entry expires.
	if ps, _ := node2.Resolve(bg, []string{"web"}); ps[0].Rules[0].Deny {
		t.Fatal("node2 saw the change before its TTL ran out: the cache is not working")
	}
	c.now = c.now.Add(31 * time.Second)
	if ps, _ := node2.Resolve(bg, []string{"web"}); !ps[0].Rules[0].Deny {
		t.Fatal("node2 still uses the old policy after its TTL")
	}
	if err := node1.Delete(bg, "web"); err != nil {
		t.Fatal(err)
	}
	if ps, _ := node1.Resolve(bg, []string{"web"}); len(ps) != 0 {
		t.Fatal("a deleted policy still resolves on the node that deleted it")
	}
}

func TestCreateRefusesATakenName(t *testing.T) {
	a := acl.New(storagetest.SQLite(t), nil, 0)
	first := doc(t, `{"name":"web","rules":[{"path":"*","capabilities":["read"]}]}`)
	if err := a.Create(bg, first); err != nil {
		t.Fatal(err)
	}
	if err := a.Create(bg, doc(t, `{"name":"web","rules":[{"path":"*","capabilities":["sudo"]}]}`)); !errors.Is(err, acl.ErrExists) {
		t.Fatalf("second Create = %v, want ErrExists", err)
	}
	if got, _, _ := a.Get(bg, "web"); got.Rules[0].Capabilities[0] != "read" {
		t.Fatalf("a refused Create changed the policy: %+v", got)
	}
	if err := a.Create(bg, doc(t, `{"name":"admin","rules":[{"path":"*","capabilities":["read"]}]}`)); !errors.Is(err, acl.ErrBuiltin) {
		t.Fatalf("Create of a built-in = %v", err)
	}
}

func TestExists(t *testing.T) {
	a := acl.New(storagetest.SQLite(t), nil, 0)
	if _, err := a.Put(bg, doc(t, `{"name":"web","rules":[{"path":"*","capabilities":["read"]}]}`)); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"web": true, "root": true, "nope": false} {
		if got, err := a.Exists(bg, name); err != nil || got != want {
			t.Errorf("Exists(%q) = %v, %v", name, got, err)
		}
	}
}

// slowStore holds a policy read until released, so a write can land while
// an older read is in flight.
type slowStore struct {
	*storage.DB
	reading chan struct{}
	release chan struct{}
}

func (s *slowStore) Policy(ctx context.Context, name string) (storage.PolicyRecord, error) {
	rec, err := s.DB.Policy(ctx, name)
	if s.reading != nil {
		s.reading <- struct{}{}
		<-s.release
	}
	return rec, err
}

func TestAnInvalidationIsNotUndoneByAnOlderRead(t *testing.T) {
	db := storagetest.SQLite(t)
	writer := acl.New(db, nil, 0)
	if _, err := writer.Put(bg, doc(t, `{"name":"web","rules":[{"path":"web/*","capabilities":["read"]}]}`)); err != nil {
		t.Fatal(err)
	}
	slow := &slowStore{DB: db, reading: make(chan struct{}), release: make(chan struct{})}
	a := acl.New(slow, nil, time.Hour)
	done := make(chan []*policy.Policy)
	go func() {
		ps, _ := a.Resolve(bg, []string{"web"})
		done <- ps
	}()
	<-slow.reading // the old policy has been read, not cached yet
	slow.reading = nil
	if _, err := a.Put(bg, doc(t, `{"name":"web","rules":[{"path":"web/*","capabilities":["read"],"effect":"deny"}]}`)); err != nil {
		t.Fatal(err)
	}
	close(slow.release)
	<-done
	ps, err := a.Resolve(bg, []string{"web"})
	if err != nil || len(ps) != 1 || !ps[0].Rules[0].Deny {
		t.Fatalf("after the write, the cache still serves the policy read before it: %+v, %v", ps, err)
	}
}

func TestTheCacheIsBounded(t *testing.T) {
	c := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	db := storagetest.SQLite(t)
	a := acl.New(db, c.Now, time.Minute)
	names := make([]string, 0, acl.MaxCached+10)
	for i := range acl.MaxCached + 10 {
		names = append(names, fmt.Sprintf("ghost-%d", i))
	}
	if _, err := a.Resolve(bg, names); err != nil {
		t.Fatal(err)
	}
	// Full of fresh entries: one more name is read from storage every time.
	before := db.RoundTrips().Queries
	if _, err := a.Resolve(bg, []string{"another-ghost"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Resolve(bg, []string{"another-ghost"}); err != nil || db.RoundTrips().Queries-before != 2 {
		t.Fatalf("a full cache still cached a new name (%d queries, %v)", db.RoundTrips().Queries-before, err)
	}
	// Once the entries are stale, they make room.
	c.now = c.now.Add(2 * time.Minute)
	before = db.RoundTrips().Queries
	_, _ = a.Resolve(bg, []string{"another-ghost"})
	_, _ = a.Resolve(bg, []string{"another-ghost"})
	if db.RoundTrips().Queries-before != 1 {
		t.Fatalf("stale entries did not make room: %d queries for two lookups", db.RoundTrips().Queries-before)
	}
}

func TestUpdateNeverCreates(t *testing.T) {
	a := acl.New(storagetest.SQLite(t), nil, 0)
	if err := a.Update(bg, doc(t, `{"name":"web","rules":[{"path":"*","capabilities":["read"]}]}`)); !errors.Is(err, acl.ErrNotFound) {
		t.Fatalf("Update of a missing policy = %v, want ErrNotFound", err)
	}
	if ok, _ := a.Exists(bg, "web"); ok {
		t.Fatal("Update created the policy")
	}
	if _, err := a.Put(bg, doc(t, `{"name":"web","rules":[{"path":"*","capabilities":["read"]}]}`)); err != nil {
		t.Fatal(err)
	}
	if err := a.Update(bg, doc(t, `{"name":"web","rules":[{"path":"*","capabilities":["list"]}]}`)); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := a.Get(bg, "web"); got.Rules[0].Capabilities[0] != "list" {
		t.Fatalf("Update did not replace: %+v", got)
	}
}

func TestExistsAsksStorageNotTheCache(t *testing.T) {
	db := storagetest.SQLite(t)
	node1, node2 := acl.New(db, nil, time.Hour), acl.New(db, nil, time.Hour)
	if _, err := node1.Put(bg, doc(t, `{"name":"web","rules":[{"path":"*","capabilities":["read"]}]}`)); err != nil {
		t.Fatal(err)
	}
	if ps, _ := node2.Resolve(bg, []string{"web"}); len(ps) != 1 {
		t.Fatal("node2 did not load the policy")
	}
	if err := node1.Delete(bg, "web"); err != nil {
		t.Fatal(err)
	}
	if ok, err := node2.Exists(bg, "web"); err != nil || ok {
		t.Fatalf("Exists on node2 = %v, %v; it answered from its cache", ok, err)
	}
}
