package storage_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// The conformance suite: every behaviour the rest of SecretHub relies on,
// checked identically against SQLite and a real PostgreSQL.

var t0 = time.Date(2026, 11, 29, 10, 0, 0, 123456000, time.UTC)

// Each case gets a fresh database of each engine.
func TestConformance(t *testing.T) { runCases(t, conformanceCases) }

// engineCase is one storage behaviour, checked on every engine.
type engineCase struct {
	name string
	run  func(t *testing.T, db *storage.DB)
}

// runCases runs each case on a fresh database of each engine.
func runCases(t *testing.T, cases []engineCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { storagetest.Engines(t, c.run) })
	}
}

// rawCase is an engineCase that also checks rows through raw, a plain
// connection to the same database (for columns no method reads back).
type rawCase struct {
	name string
	run  func(t *testing.T, db *storage.DB, raw *sql.DB)
}

// runRawCases runs each case on a fresh database of each engine.
func runRawCases(t *testing.T, cases []rawCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { enginesWithRaw(t, c.run) })
	}
}

var conformanceCases = []engineCase{
	{"initialization happens once and keeps its keyring", testInitialize},
	{"a keyring swap only succeeds against the current keyring", testSwapKeyring},
	{"tokens round-trip every field", testTokenRoundTrip},
	{"revoking a token removes its whole subtree", testRevokeTree},
	{"limited-use tokens run out and vanish on the last use", testUseToken},
	{"shortening a token's life caps its descendants", testRenewCapsDescendants},
	{"expired tokens are listed", testExpiredTokens},
	{"secret versions count up and read back", testSecretVersions},
	{"check-and-set is enforced atomically", testCheckAndSet},
	{"concurrent writers each get their own version", testConcurrentWrites},
	{"old versions are pruned beyond the limit", testPruning},
	{"soft delete, undelete and destroy", testDeleteUndeleteDestroy},
	{"metadata settings and deletion", testMetadata},
	{"listing is by byte prefix, existence is exact", testSecretPaths},
	{"policies are created, replaced, listed and deleted", testPolicies},
}

func ctx() context.Context { return context.Background() }

func testInitialize(t *testing.T, db *storage.DB) {
	if _, err := db.SealConfig(ctx()); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("SealConfig before init: got %v, want ErrNotFound", err)
	}
	boot := storage.Bootstrap{
		Seal:      storage.SealConfig{Type: "shamir", SecretShares: 5, SecretThreshold: 3, CreatedAt: t0},
		Keyring:   []byte("wrapped keyring"),
		RootToken: storage.Token{Hash: "roothash", Accessor: "rootacc", Policies: []string{"root"}, CreatedAt: t0},
	}
	if err := db.Initialize(ctx(), boot); err != nil {
		t.Fatalf("Initialize: %v", err)
	}
	if err := db.Initialize(ctx(), boot); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("second Initialize: got %v, want ErrConflict", err)
	}
	cfg, err := db.SealConfig(ctx())
	if err != nil || cfg.SecretShares != 5 || cfg.SecretThreshold != 3 || cfg.Type != "shamir" || !cfg.CreatedAt.Equal(t0) {
		t.Fatalf("SealConfig = %+v, %v", cfg, err)
	}
	blob, err := db.Keyring(ctx())
	if err != nil || string(blob) != "wrapped keyring" {
		t.Fatalf("Keyring = %q, %v", blob, err)
	}
	if _, err := db.TokenByHash(ctx(), "roothash"); err != nil {
		t.Fatalf("root token not stored with the bootstrap: %v", err)
	}
}

func testSwapKeyring(t *testing.T, db *storage.DB) {
	testInitialize(t, db)
	if err := db.SwapKeyring(ctx(), []byte("stale"), []byte("next"), t0); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("swap against a stale keyring: got %v, want ErrConflict", err)
	}
	if err := db.SwapKeyring(ctx(), []byte("wrapped keyring"), []byte("next"), t0); err != nil {
		t.Fatalf("swap: %v", err)
	}
	if blob, _ := db.Keyring(ctx()); string(blob) != "next" {
		t.Fatalf("keyring after swap = %q", blob)
	}
}

func token(hash, parent string) storage.Token {
	return storage.Token{
		Hash: "h-" + hash, Accessor: hash, ParentAccessor: parent,
		Policies: []string{"default"}, CreatedAt: t0, TTL: time.Hour,
		ExpiresAt: t0.Add(time.Hour), Renewable: true,
	}
}

func testTokenRoundTrip(t *testing.T, db *storage.DB) {
	in := storage.Token{
		Hash: "abc", Accessor: "acc1", ParentAccessor: "", Policies: []string{"default", "web"},
		DisplayName: "token-ci", AuthMethod: "approle", Meta: map[string]string{"team": "payments"},
		TTL: 90 * time.Minute, ExplicitMaxTTL: 10 * time.Hour, Renewable: true, NumUses: 3,
		BoundCIDRs: []string{"10.0.0.0/8"}, CreatedAt: t0,
		ExpiresAt: t0.Add(90 * time.Minute), MaxExpiresAt: t0.Add(10 * time.Hour),
	}
	if err := db.CreateToken(ctx(), in); err != nil {
		t.Fatal(err)
	}
	for _, get := range []func() (storage.Token, error){
		func() (storage.Token, error) { return db.TokenByHash(ctx(), "abc") },
		func() (storage.Token, error) { return db.TokenByAccessor(ctx(), "acc1") },
	} {
		got, err := get()
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", in) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, in)
		}
	}
	if _, err := db.TokenByHash(ctx(), "nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("unknown token: %v", err)
	}
	if err := db.CreateToken(ctx(), in); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("duplicate token: got %v, want ErrConflict", err)
	}
	later := t0.Add(3 * time.Hour)
	if err := db.RenewToken(ctx(), "acc1", later); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.TokenByAccessor(ctx(), "acc1"); !got.ExpiresAt.Equal(later) {
		t.Fatalf("renewed expiry = %v", got.ExpiresAt)
	}
	if err := db.RenewToken(ctx(), "missing", later); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("renew missing: %v", err)
	}
}

func testRevokeTree(t *testing.T, db *storage.DB) {
	// root ─┬─ a ─── a1
	//       └─ b
	// other
	for _, tk := range []storage.Token{token("root", ""), token("a", "root"), token("a1", "a"), token("b", "root"), token("other", "")} {
		if err := db.CreateToken(ctx(), tk); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.RevokeTokenTree(ctx(), "a")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"a", "a1"}) {
		t.Fatalf("revoked %v, want [a a1]", got)
	}
	got, _ = db.RevokeTokenTree(ctx(), "root")
	slices.Sort(got)
	if !slices.Equal(got, []string{"b", "root"}) {
		t.Fatalf("revoked %v, want [b root]", got)
	}
	if _, err := db.TokenByAccessor(ctx(), "other"); err != nil {
		t.Fatalf("unrelated token was revoked: %v", err)
	}
	if got, err := db.RevokeTokenTree(ctx(), "nobody"); err != nil || len(got) != 0 {
		t.Fatalf("revoking a missing token: %v, %v", got, err)
	}
	if err := db.CreateToken(ctx(), token("orphaned", "root")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("creating a child of a revoked token: %v, want ErrNotFound", err)
	}
}

func testUseToken(t *testing.T, db *storage.DB) {
	tk, child := token("limited", ""), token("child", "limited")
	tk.NumUses = 2
	for _, x := range []storage.Token{tk, child} {
		if err := db.CreateToken(ctx(), x); err != nil {
			t.Fatal(err)
		}
	}
	if left, err := db.UseToken(ctx(), "limited"); err != nil || left != 1 {
		t.Fatalf("first use = %d, %v; want 1 left", left, err)
	}
	if got, err := db.TokenByAccessor(ctx(), "limited"); err != nil || got.NumUses != 1 {
		t.Fatalf("after one use: %+v, %v", got, err)
	}
	if left, err := db.UseToken(ctx(), "limited"); err != nil || left != 0 {
		t.Fatalf("last use = %d, %v; want 0 left", left, err)
	}
	// The last use deletes the token and its children at once: it never
	// rests at num_uses 0, which would read as "unlimited".
	for _, a := range []string{"limited", "child"} {
		if _, err := db.TokenByAccessor(ctx(), a); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("%s after the last use: %v, want ErrNotFound", a, err)
		}
	}
	if _, err := db.UseToken(ctx(), "limited"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("third use: %v, want ErrNotFound", err)
	}
}

func testRenewCapsDescendants(t *testing.T, db *storage.DB) {
	// parent ─ child ─ grandchild, and an unrelated token.
	parent, child, grand, other := token("parent", ""), token("child", "parent"), token("grand", "child"), token("other", "")
	for _, x := range []storage.Token{parent, child, grand, other} {
		x.ExpiresAt = t0.Add(10 * time.Hour)
		if err := db.CreateToken(ctx(), x); err != nil {
			t.Fatal(err)
		}
	}
	shorter := t0.Add(2 * time.Hour)
	if err := db.RenewToken(ctx(), "parent", shorter); err != nil {
		t.Fatal(err)
	}
	for a, want := range map[string]time.Time{"parent": shorter, "child": shorter, "grand": shorter, "other": t0.Add(10 * time.Hour)} {
		got, err := db.TokenByAccessor(ctx(), a)
		if err != nil || !got.ExpiresAt.Equal(want) {
			t.Errorf("%s expires %v (%v), want %v", a, got.ExpiresAt, err, want)
		}
	}
	// Lengthening the parent leaves the children where they were.
	if err := db.RenewToken(ctx(), "parent", t0.Add(20*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.TokenByAccessor(ctx(), "child"); !got.ExpiresAt.Equal(shorter) {
		t.Errorf("child expiry moved to %v when the parent was extended", got.ExpiresAt)
	}
}

func testExpiredTokens(t *testing.T, db *storage.DB) {
	soon, late, never := token("soon", ""), token("late", ""), token("never", "")
	soon.ExpiresAt = t0.Add(time.Minute)
	late.ExpiresAt = t0.Add(time.Hour)
	never.ExpiresAt = time.Time{}
	for _, tk := range []storage.Token{soon, late, never} {
		if err := db.CreateToken(ctx(), tk); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.ExpiredTokens(ctx(), t0.Add(2*time.Minute), 10)
	if err != nil || !slices.Equal(got, []string{"soon"}) {
		t.Fatalf("expired = %v, %v", got, err)
	}
	got, _ = db.ExpiredTokens(ctx(), t0.Add(2*time.Hour), 10)
	if !slices.Equal(got, []string{"soon", "late"}) {
		t.Fatalf("expired later = %v", got)
	}
}

func put(t *testing.T, db *storage.DB, path, value string, cas *int) (int, error) {
	t.Helper()
	res, err := db.PutSecretVersion(ctx(), storage.PutSecret{
		Path: path, CAS: cas, Now: t0, DefaultMaxVersions: 10,
		Seal: func(v int) ([]byte, error) { return []byte(fmt.Sprintf("%s#%d", value, v)), nil },
	})
	return res.Version, err
}

func mustPut(t *testing.T, db *storage.DB, path, value string) int {
	t.Helper()
	v, err := put(t, db, path, value, nil)
	if err != nil {
		t.Fatalf("put %s: %v", path, err)
	}
	return v
}

func testSecretVersions(t *testing.T, db *storage.DB) {
	for want := 1; want <= 3; want++ {
		if v := mustPut(t, db, "app/db", fmt.Sprintf("v%d", want)); v != want {
			t.Fatalf("version = %d, want %d", v, want)
		}
	}
	latest, err := db.GetSecretVersion(ctx(), "app/db", 0)
	if err != nil || latest.Version != 3 || latest.CurrentVersion != 3 || string(latest.Ciphertext) != "v3#3" || !latest.CreatedAt.Equal(t0) {
		t.Fatalf("latest = %+v, %v", latest, err)
	}
	first, err := db.GetSecretVersion(ctx(), "app/db", 1)
	if err != nil || first.Version != 1 || first.CurrentVersion != 3 || string(first.Ciphertext) != "v1#1" {
		t.Fatalf("version 1 = %+v, %v", first, err)
	}
	if _, err := db.GetSecretVersion(ctx(), "app/db", 9); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("missing version: %v", err)
	}
	if _, err := db.GetSecretVersion(ctx(), "app/nothing", 0); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("missing secret: %v", err)
	}
}

func testCheckAndSet(t *testing.T, db *storage.DB) {
	zero, one := 0, 1
	if _, err := put(t, db, "cas", "a", &zero); err != nil {
		t.Fatalf("cas=0 on a new secret: %v", err)
	}
	_, err := put(t, db, "cas", "b", &zero)
	var mismatch *storage.CASMismatchError
	if !errors.As(err, &mismatch) || mismatch.Current != 1 || !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("cas=0 on an existing secret: %v", err)
	}
	if v, err := put(t, db, "cas", "b", &one); err != nil || v != 2 {
		t.Fatalf("cas=1: %d, %v", v, err)
	}
	if _, err := db.PutSecretVersion(ctx(), storage.PutSecret{Path: "nowhere", Now: t0, DefaultMaxVersions: 10, MustExist: true,
		Seal: func(int) ([]byte, error) { return []byte("x"), nil }}); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a must-exist write of a missing secret: %v, want ErrNotFound", err)
	}
	if ok, _ := db.SecretExists(ctx(), "nowhere"); ok {
		t.Fatal("a must-exist write created the secret")
	}
	if got, err := db.PutSecretVersion(ctx(), storage.PutSecret{Path: "cas", CAS: &one, Now: t0, DefaultMaxVersions: 10, MustExist: true,
		Seal: func(int) ([]byte, error) { return []byte("x"), nil }}); err == nil || got.Version != 0 {
		t.Fatalf("a must-exist write with a stale cas: %+v, %v", got, err)
	}
	if got, _ := db.GetSecretVersion(ctx(), "cas", 0); got.Version != 2 {
		t.Fatalf("a failed cas must not consume a version: current %d", got.Version)
	}
	required := true
	if err := db.ConfigureSecret(ctx(), "cas", storage.SecretSettings{CASRequired: &required, Now: t0, DefaultMaxVersions: 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := put(t, db, "cas", "c", nil); !errors.Is(err, storage.ErrCASRequired) {
		t.Fatalf("write without cas on cas_required: %v", err)
	}
}

func testConcurrentWrites(t *testing.T, db *storage.DB) {
	const writers = 8
	var wg sync.WaitGroup
	versions := make([]int, writers)
	errs := make([]error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			versions[i], errs[i] = put(t, db, "race", "x", nil)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(versions)
	for i, v := range versions {
		if v != i+1 {
			t.Fatalf("versions = %v, want 1..%d each once", versions, writers)
		}
	}
}

func testPruning(t *testing.T, db *storage.DB) {
	for range 13 {
		mustPut(t, db, "pruned", "x")
	}
	_, versions, err := db.SecretMetadata(ctx(), "pruned")
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) != 10 || versions[0].Version != 4 || versions[9].Version != 13 {
		t.Fatalf("kept %d versions from %d, want 10 from 4", len(versions), versions[0].Version)
	}
	three := 3
	if err := db.ConfigureSecret(ctx(), "pruned", storage.SecretSettings{MaxVersions: &three, Now: t0, DefaultMaxVersions: 10}); err != nil {
		t.Fatal(err)
	}
	_, versions, _ = db.SecretMetadata(ctx(), "pruned")
	if len(versions) != 3 || versions[0].Version != 11 {
		t.Fatalf("after max_versions=3: %d versions from %d", len(versions), versions[0].Version)
	}
}

func testDeleteUndeleteDestroy(t *testing.T, db *storage.DB) {
	mustPut(t, db, "d", "one")
	mustPut(t, db, "d", "two")
	del := t0.Add(time.Minute)
	if err := db.MarkVersionsDeleted(ctx(), "d", nil, del); err != nil {
		t.Fatal(err)
	}
	got, _ := db.GetSecretVersion(ctx(), "d", 0)
	if !got.DeletedAt.Equal(del) {
		t.Fatalf("latest not soft-deleted: %+v", got)
	}
	if got, _ := db.GetSecretVersion(ctx(), "d", 1); !got.DeletedAt.IsZero() {
		t.Fatal("deleting the latest version touched version 1")
	}
	if err := db.MarkVersionsDeleted(ctx(), "d", []int{2}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.GetSecretVersion(ctx(), "d", 2); !got.DeletedAt.IsZero() || string(got.Ciphertext) != "two#2" {
		t.Fatalf("undelete: %+v", got)
	}
	if err := db.DestroyVersions(ctx(), "d", []int{1}); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.GetSecretVersion(ctx(), "d", 1); !got.Destroyed || got.Ciphertext != nil {
		t.Fatalf("destroy kept data: %+v", got)
	}
	if err := db.MarkVersionsDeleted(ctx(), "d", []int{1}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.GetSecretVersion(ctx(), "d", 1); !got.Destroyed {
		t.Fatal("undelete revived a destroyed version")
	}
	if err := db.MarkVersionsDeleted(ctx(), "nothing", nil, del); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("delete on a missing secret: %v", err)
	}
}

func testMetadata(t *testing.T, db *storage.DB) {
	mustPut(t, db, "m", "x")
	seven := 7
	custom := map[string]string{"owner": "team-a"}
	if err := db.ConfigureSecret(ctx(), "m", storage.SecretSettings{MaxVersions: &seven, CustomMetadata: custom, Now: t0, DefaultMaxVersions: 10}); err != nil {
		t.Fatal(err)
	}
	s, versions, err := db.SecretMetadata(ctx(), "m")
	if err != nil || s.MaxVersions != 7 || s.CustomMetadata["owner"] != "team-a" || s.CurrentVersion != 1 || len(versions) != 1 {
		t.Fatalf("metadata = %+v %+v, %v", s, versions, err)
	}
	if versions[0].Ciphertext != nil {
		t.Fatal("metadata read loaded ciphertext")
	}
	if r, err := db.GetSecretVersion(ctx(), "m", 0); err != nil || r.CustomMetadata["owner"] != "team-a" {
		t.Fatalf("a version read does not carry the custom metadata: %+v, %v", r.CustomMetadata, err)
	}
	res, err := db.PutSecretVersion(ctx(), storage.PutSecret{Path: "m", Now: t0, DefaultMaxVersions: 10,
		Seal: func(int) ([]byte, error) { return []byte("x"), nil }})
	if err != nil || res.Version != 2 || res.CustomMetadata["owner"] != "team-a" {
		t.Fatalf("a write does not report the custom metadata: %+v, %v", res, err)
	}
	if err := db.ConfigureSecret(ctx(), "only-meta", storage.SecretSettings{Now: t0, DefaultMaxVersions: 10, CreateOnly: true}); err != nil {
		t.Fatal(err)
	}
	if err := db.ConfigureSecret(ctx(), "only-meta", storage.SecretSettings{Now: t0, DefaultMaxVersions: 10, CreateOnly: true}); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("a create-only configure of an existing secret: %v, want ErrConflict", err)
	}
	if err := db.ConfigureSecret(ctx(), "no-meta", storage.SecretSettings{Now: t0, DefaultMaxVersions: 10, MustExist: true}); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a must-exist configure of a missing secret: %v, want ErrNotFound", err)
	}
	if err := db.ConfigureSecret(ctx(), "only-meta", storage.SecretSettings{Now: t0, DefaultMaxVersions: 10, MustExist: true}); err != nil {
		t.Fatalf("a must-exist configure of an existing secret: %v", err)
	}
	if _, err := db.GetSecretVersion(ctx(), "only-meta", 0); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("metadata-only secret has a version: %v", err)
	}
	if err := db.DeleteSecret(ctx(), "m"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.SecretMetadata(ctx(), "m"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if err := db.DeleteSecret(ctx(), "m"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func testSecretPaths(t *testing.T, db *storage.DB) {
	for _, p := range []string{"prod/db", "prod/api/key", "prod0", "prod-x", "dev/db", "produce"} {
		mustPut(t, db, p, "x")
	}
	got, err := db.SecretPaths(ctx(), "prod/")
	if err != nil || !slices.Equal(got, []string{"prod/api/key", "prod/db"}) {
		t.Fatalf("prod/ = %v, %v", got, err)
	}
	all, _ := db.SecretPaths(ctx(), "")
	if len(all) != 6 {
		t.Fatalf("all = %v", all)
	}
	for path, want := range map[string]bool{"prod/db": true, "prod": false, "prod/": false, "nothing": false} {
		if got, err := db.SecretExists(ctx(), path); err != nil || got != want {
			t.Errorf("SecretExists(%q) = %v, %v; want %v", path, got, err, want)
		}
	}
}

// Transactions must never wait for a second pooled connection while they
// hold one: with a pool of one, every write path still completes.
func TestWritesCompleteOnAOneConnectionPool(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			cfg := storage.Config{DataDir: t.TempDir(), PoolSize: 1}
			if engine == "postgres" {
				cfg = storage.Config{DatabaseURL: storagetest.PostgresURL(t), PoolSize: 1}
			}
			c, cancel := context.WithTimeout(ctx(), 20*time.Second)
			defer cancel()
			db, err := storage.Open(c, cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.MigrateUp(c); err != nil {
				t.Fatal(err)
			}
			for i := range 3 { // the first round runs unprepared, later ones prepared
				if err := db.CreateToken(c, token(fmt.Sprint("p", i), "")); err != nil {
					t.Fatalf("round %d CreateToken: %v", i, err)
				}
				if _, err := db.PutSecretVersion(c, storage.PutSecret{Path: "one/pool", Now: t0, DefaultMaxVersions: 10,
					Seal: func(int) ([]byte, error) { return []byte("x"), nil }}); err != nil {
					t.Fatalf("round %d PutSecretVersion: %v", i, err)
				}
				if _, err := db.RevokeTokenTree(c, fmt.Sprint("p", i)); err != nil {
					t.Fatalf("round %d RevokeTokenTree: %v", i, err)
				}
				time.Sleep(50 * time.Millisecond) // let background preparation run
			}
		})
	}
}

func testPolicies(t *testing.T, db *storage.DB) {
	if _, err := db.Policy(ctx(), "web"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("missing policy: %v", err)
	}
	created, err := db.PutPolicy(ctx(), "web", `{"v":1}`, t0)
	if err != nil || !created {
		t.Fatalf("first put = %v, %v; want created", created, err)
	}
	created, err = db.PutPolicy(ctx(), "web", `{"v":2}`, t0.Add(time.Minute))
	if err != nil || created {
		t.Fatalf("second put = %v, %v; want replaced", created, err)
	}
	p, err := db.Policy(ctx(), "web")
	if err != nil || p.Document != `{"v":2}` || !p.CreatedAt.Equal(t0) || !p.UpdatedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("policy = %+v, %v", p, err)
	}
	if err := db.CreatePolicy(ctx(), "api", `{}`, t0); err != nil {
		t.Fatal(err)
	}
	if err := db.CreatePolicy(ctx(), "api", `{"other":1}`, t0); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("creating a taken name: %v, want ErrConflict", err)
	}
	if p, _ := db.Policy(ctx(), "api"); p.Document != `{}` {
		t.Fatalf("a refused create changed the policy: %q", p.Document)
	}
	if names, err := db.PolicyNames(ctx()); err != nil || !slices.Equal(names, []string{"api", "web"}) {
		t.Fatalf("names = %v, %v", names, err)
	}
	if err := db.UpdatePolicy(ctx(), "api", `{"v":3}`, t0); err != nil {
		t.Fatal(err)
	}
	if err := db.UpdatePolicy(ctx(), "nobody", `{}`, t0); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("updating a missing policy: %v, want ErrNotFound", err)
	}
	if err := db.DeletePolicy(ctx(), "web"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeletePolicy(ctx(), "web"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestMigrationsGoDownAndUpAgain(t *testing.T) {
	storagetest.Engines(t, func(t *testing.T, db *storage.DB) {
		st, err := db.MigrationStatus(ctx())
		if err != nil || st.Current != st.Latest || st.Dirty || len(st.Pending) != 0 {
			t.Fatalf("status after up = %+v, %v", st, err)
		}
		if err := db.MigrateDown(ctx(), 0); err != nil {
			t.Fatal(err)
		}
		st, _ = db.MigrationStatus(ctx())
		if st.Current != 0 || len(st.Pending) == 0 {
			t.Fatalf("status after down = %+v", st)
		}
		if err := db.MigrateUp(ctx()); err != nil {
			t.Fatal(err)
		}
		mustPut(t, db, "after/remigrate", "x")
		if err := db.MigrateForce(ctx(), 99); err == nil {
			t.Fatal("forcing a version this binary does not have was accepted")
		}
		if err := db.MigrateForce(ctx(), int(st.Latest)); err != nil {
			t.Fatalf("forcing the latest version: %v", err)
		}
		if st, _ := db.MigrationStatus(ctx()); st.Current != st.Latest || st.Dirty {
			t.Fatalf("after force: %+v", st)
		}
	})
}

func TestConcurrentMigrationsApplyOnce(t *testing.T) {
	url := storagetest.PostgresURL(t)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := storage.Open(ctx(), storage.Config{DatabaseURL: url}, nil)
			if err != nil {
				errs[i] = err
				return
			}
			defer db.Close()
			errs[i] = db.MigrateUp(ctx())
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("a node failed to migrate alongside the others: %v", err)
		}
	}
}
