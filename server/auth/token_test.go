package auth_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secrethub/secrethub/server/auth"
	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

var t0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

func bg() context.Context { return context.Background() }

// fixture is a token service over a fresh SQLite store with a stored root token.
type fixture struct {
	db     *storage.DB
	now    time.Time // the token service's clock, moved by the test
	tokens *auth.Tokens
	root   auth.Issued
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{db: storagetest.SQLite(t), now: t0}
	f.tokens = auth.NewTokens(f.db, func() time.Time { return f.now })
	root, err := f.tokens.NewRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.db.CreateToken(bg(), root.Token); err != nil {
		t.Fatal(err)
	}
	f.root = root
	return f
}

// store saves a hand-made parent token so children can reference it.
func (f *fixture) store(t *testing.T, tok auth.Token) auth.Token {
	t.Helper()
	tok.Hash = auth.Hash("s.parent-" + tok.Accessor)
	if tok.CreatedAt.IsZero() {
		tok.CreatedAt = f.now
	}
	if err := f.db.CreateToken(bg(), tok); err != nil {
		t.Fatalf("storing parent %s: %v", tok.Accessor, err)
	}
	return tok
}

func (f *fixture) create(t *testing.T, parent auth.Token, req auth.CreateRequest) auth.Issued {
	t.Helper()
	issued, err := f.tokens.Create(bg(), parent, req, false)
	if err != nil {
		t.Fatalf("Create(%+v): %v", req, err)
	}
	return issued
}

func (f *fixture) authenticate(id string) (auth.Token, error) {
	return f.tokens.Authenticate(bg(), id, netip.MustParseAddr("127.0.0.1"))
}

// exists reports whether a token with this accessor is still stored.
func (f *fixture) exists(t *testing.T, accessor string) bool {
	t.Helper()
	_, err := f.db.TokenByAccessor(bg(), accessor)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

var (
	tokenFormat    = regexp.MustCompile(`^s\.[0-9A-Za-z]{32}$`)
	accessorFormat = regexp.MustCompile(`^[0-9A-Za-z]{24}$`)
)

func TestTokenFormat(t *testing.T) {
	f := newFixture(t)
	ids, accessors := map[string]bool{}, map[string]bool{}
	issued := []auth.Issued{f.root}
	for range 100 {
		issued = append(issued, f.create(t, f.root.Token, auth.CreateRequest{Policies: []string{"dev"}}))
	}
	for i, is := range issued {
		t.Run(fmt.Sprintf("token %d is s. and 32 base62 characters with a 24-character accessor", i), func(t *testing.T) {
			if !tokenFormat.MatchString(is.ID) {
				t.Fatalf("token %q does not look like s.<32 base62>", is.ID)
			}
			if !accessorFormat.MatchString(is.Token.Accessor) {
				t.Fatalf("accessor %q is not 24 base62 characters", is.Token.Accessor)
			}
			if is.Token.Hash != auth.Hash(is.ID) {
				t.Fatalf("stored hash %q is not Hash(id)", is.Token.Hash)
			}
			if ids[is.ID] || accessors[is.Token.Accessor] {
				t.Fatal("a token value or accessor repeats")
			}
			if strings.Contains(is.ID, is.Token.Accessor) {
				t.Fatal("the accessor is part of the token value")
			}
			ids[is.ID], accessors[is.Token.Accessor] = true, true
		})
	}
}

func TestHash(t *testing.T) {
	sum := sha256.Sum256([]byte("s.abc"))
	cases := []struct {
		name string
		in   string
		want string
	}{
		{"the hash is hex SHA-256 of the token", "s.abc", hex.EncodeToString(sum[:])},
		{"the hash of the empty string is SHA-256 of nothing", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := auth.Hash(c.in); got != c.want {
				t.Fatalf("Hash(%q) = %s, want %s", c.in, got, c.want)
			}
		})
	}
	t.Run("tokens differing in one character hash differently", func(t *testing.T) {
		if auth.Hash("s.abc") == auth.Hash("s.abd") {
			t.Fatal("collision")
		}
	})
}

func TestOnlyTheHashIsStored(t *testing.T) {
	f := newFixture(t)
	child := f.create(t, f.root.Token, auth.CreateRequest{Policies: []string{"dev"}, DisplayName: "ci"})
	stored, err := f.db.TokenByAccessor(bg(), child.Token.Accessor)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the stored row holds the hash of the token, not the token", func(t *testing.T) {
		if stored.Hash != auth.Hash(child.ID) || stored.Hash == child.ID {
			t.Fatalf("stored hash = %q", stored.Hash)
		}
	})
	t.Run("no token value appears anywhere in the database files", func(t *testing.T) {
		var files []byte
		for _, suffix := range []string{"", "-wal"} {
			b, err := os.ReadFile(f.db.Location() + suffix)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			files = append(files, b...)
		}
		if !bytes.Contains(files, []byte(child.Token.Accessor)) {
			t.Fatal("the accessor is not in the files either: the scan reads the wrong files")
		}
		for _, id := range []string{child.ID, f.root.ID} {
			if bytes.Contains(files, []byte(id[2:])) {
				t.Fatalf("token %s... is stored in the clear", id[:6])
			}
		}
	})
}

func TestCreatePolicies(t *testing.T) {
	dev := auth.Token{Accessor: "dev-parent", Policies: []string{"default", "dev", "web"}}
	devNoDefault := auth.Token{Accessor: "bare-parent", Policies: []string{"dev"}}
	cases := []struct {
		name   string
		parent auth.Token
		req    auth.CreateRequest
		want   []string
		kind   fault.Kind // when an error is expected
	}{
		{"a root child without policies is a root token", auth.Token{}, auth.CreateRequest{}, []string{"root"}, 0},
		{"a root parent may grant any policy, and default is added", auth.Token{}, auth.CreateRequest{Policies: []string{"admin"}}, []string{"admin", "default"}, 0},
		{"no_default_policy leaves default off", auth.Token{}, auth.CreateRequest{Policies: []string{"admin"}, NoDefaultPolicy: true}, []string{"admin"}, 0},
		{"policy names are trimmed, deduplicated and sorted", auth.Token{}, auth.CreateRequest{Policies: []string{" web", "dev", "web ", "dev"}}, []string{"default", "dev", "web"}, 0},
		{"a root token gets no default policy added", auth.Token{}, auth.CreateRequest{Policies: []string{"root", "dev"}}, []string{"dev", "root"}, 0},
		{"a child may get a subset of its parent's policies", dev, auth.CreateRequest{Policies: []string{"web"}}, []string{"default", "web"}, 0},
		{"a child without policies inherits its parent's", dev, auth.CreateRequest{}, []string{"default", "dev", "web"}, 0},
		{"an inheriting child can drop default", dev, auth.CreateRequest{NoDefaultPolicy: true}, []string{"dev", "web"}, 0},
		{"a child of a parent without default still gets default", devNoDefault, auth.CreateRequest{}, []string{"default", "dev"}, 0},
		{"a child may not get a policy its parent lacks", dev, auth.CreateRequest{Policies: []string{"dev", "admin"}}, nil, fault.Denied},
		{"a non-root parent may not mint root tokens", dev, auth.CreateRequest{Policies: []string{"root"}}, nil, fault.Denied},
		{"an empty policy name is refused", auth.Token{}, auth.CreateRequest{Policies: []string{"dev", "  "}}, nil, fault.Invalid},
		{"a token left with no policy is refused", dev, auth.CreateRequest{Policies: []string{"default"}, NoDefaultPolicy: true}, nil, fault.Invalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			parent := f.root.Token
			if c.parent.Accessor != "" {
				parent = f.store(t, c.parent)
			}
			issued, err := f.tokens.Create(bg(), parent, c.req, false)
			if c.kind != 0 {
				if fault.KindOf(err) != c.kind {
					t.Fatalf("Create = %v, want a %v fault", err, c.kind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(issued.Token.Policies, c.want) {
				t.Fatalf("policies = %q, want %q", issued.Token.Policies, c.want)
			}
			if stored, _ := f.db.TokenByAccessor(bg(), issued.Token.Accessor); !slices.Equal(stored.Policies, c.want) {
				t.Fatalf("stored policies = %q, want %q", stored.Policies, c.want)
			}
		})
	}
}

func TestCreateOrphanNeedsSudo(t *testing.T) {
	f := newFixture(t)
	parent := f.create(t, f.root.Token, auth.CreateRequest{Policies: []string{"dev"}})
	t.Run("a child records its parent's accessor", func(t *testing.T) {
		child := f.create(t, parent.Token, auth.CreateRequest{})
		if child.Token.ParentAccessor != parent.Token.Accessor {
			t.Fatalf("ParentAccessor = %q, want %q", child.Token.ParentAccessor, parent.Token.Accessor)
		}
	})
	t.Run("no_parent without sudo is denied", func(t *testing.T) {
		_, err := f.tokens.Create(bg(), parent.Token, auth.CreateRequest{NoParent: true}, false)
		if fault.KindOf(err) != fault.Denied {
			t.Fatalf("Create = %v, want Denied", err)
		}
	})
	t.Run("no_parent with sudo makes an orphan", func(t *testing.T) {
		orphan, err := f.tokens.Create(bg(), parent.Token, auth.CreateRequest{NoParent: true}, true)
		if err != nil || orphan.Token.ParentAccessor != "" {
			t.Fatalf("Create = %+v, %v; want an orphan", orphan.Token, err)
		}
		if _, err := f.tokens.Revoke(bg(), parent.Token.Accessor); err != nil {
			t.Fatal(err)
		}
		if _, err := f.authenticate(orphan.ID); err != nil {
			t.Fatalf("revoking the creator revoked the orphan: %v", err)
		}
	})
	t.Run("an orphan still gets only its creator's policies", func(t *testing.T) {
		_, err := f.tokens.Create(bg(), parent.Token, auth.CreateRequest{NoParent: true, Policies: []string{"admin"}}, true)
		if fault.KindOf(err) != fault.Denied {
			t.Fatalf("Create = %v, want Denied", err)
		}
	})
}

func TestCreateValidation(t *testing.T) {
	cases := []struct {
		name string
		req  auth.CreateRequest
	}{
		{"a negative ttl is refused", auth.CreateRequest{TTL: -time.Second}},
		{"a negative explicit max ttl is refused", auth.CreateRequest{ExplicitMaxTTL: -time.Second}},
		{"a negative use count is refused", auth.CreateRequest{NumUses: -1}},
		{"a bound CIDR that is not one is refused", auth.CreateRequest{BoundCIDRs: []string{"10.0.0.0/8", "not-a-cidr"}}},
		{"a bound CIDR with a bad prefix length is refused", auth.CreateRequest{BoundCIDRs: []string{"10.0.0.0/33"}}},
		{"an empty meta key is refused", auth.CreateRequest{Meta: map[string]string{"": "x"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			if _, err := f.tokens.Create(bg(), f.root.Token, c.req, true); fault.KindOf(err) != fault.Invalid {
				t.Fatalf("Create = %v, want an Invalid fault", err)
			}
		})
	}
}

func TestCreateStoresWhatWasAsked(t *testing.T) {
	f := newFixture(t)
	no := false
	issued := f.create(t, f.root.Token, auth.CreateRequest{
		Policies: []string{"dev"}, Meta: map[string]string{"team": "payments"}, DisplayName: " ci ",
		Renewable: &no, NumUses: 4, BoundCIDRs: []string{"10.1.2.3", "192.168.7.9/16", " ", "::1"},
	})
	stored, err := f.db.TokenByAccessor(bg(), issued.Token.Accessor)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		got, want any
	}{
		{"the display name is prefixed with token-", stored.DisplayName, "token-ci"},
		{"meta is kept", stored.Meta["team"], "payments"},
		{"renewable false is kept", stored.Renewable, false},
		{"the use count is kept", stored.NumUses, 4},
		{"bound CIDRs are normalized and blanks dropped", strings.Join(stored.BoundCIDRs, " "), "10.1.2.3/32 192.168.0.0/16 ::1/128"},
		{"the creation time is the clock's", stored.CreatedAt, t0},
		{"the stored token is the one returned", fmt.Sprintf("%+v", stored), fmt.Sprintf("%+v", issued.Token)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
				t.Fatalf("got %v, want %v", c.got, c.want)
			}
		})
	}
	t.Run("an unnamed token is called token", func(t *testing.T) {
		if got := f.create(t, f.root.Token, auth.CreateRequest{}).Token.DisplayName; got != "token" {
			t.Fatalf("DisplayName = %q", got)
		}
	})
	t.Run("tokens are renewable unless asked otherwise", func(t *testing.T) {
		if !f.create(t, f.root.Token, auth.CreateRequest{Policies: []string{"dev"}}).Token.Renewable {
			t.Fatal("not renewable")
		}
	})
}

func TestCreateTTL(t *testing.T) {
	const h = time.Hour
	short := auth.Token{Accessor: "short-parent", Policies: []string{"dev"}, ExpiresAt: t0.Add(1 * h), MaxExpiresAt: t0.Add(3 * h)}
	cases := []struct {
		name          string
		parent        *auth.Token // nil: the root token
		req           auth.CreateRequest
		sudo          bool
		ttl           time.Duration
		expires, hard time.Duration // from t0; -1: never
	}{
		{"a root child of root without a ttl never expires", nil, auth.CreateRequest{}, false, 0, -1, -1},
		{"a root child of root with a ttl expires", nil, auth.CreateRequest{TTL: h}, false, h, h, 768 * h},
		{"a root child of root with only an explicit max expires at it", nil, auth.CreateRequest{ExplicitMaxTTL: 2 * h}, false, 2 * h, 2 * h, 2 * h},
		{"a non-root child of root gets the default ttl", nil, auth.CreateRequest{Policies: []string{"dev"}}, false, 768 * h, 768 * h, 768 * h},
		{"a ttl above the maximum is capped", nil, auth.CreateRequest{Policies: []string{"dev"}, TTL: 10000 * h}, false, 768 * h, 768 * h, 768 * h},
		{"an explicit max caps the ttl and the hard limit", nil, auth.CreateRequest{Policies: []string{"dev"}, TTL: 5 * h, ExplicitMaxTTL: 2 * h}, false, 2 * h, 2 * h, 2 * h},
		{"an explicit max above the maximum does not raise it", nil, auth.CreateRequest{Policies: []string{"dev"}, TTL: h, ExplicitMaxTTL: 1000 * h}, false, h, h, 768 * h},
		{"a child never outlives its parent's expiry", &short, auth.CreateRequest{TTL: 2 * h}, false, h, h, 3 * h},
		{"a child's hard limit is its parent's", &short, auth.CreateRequest{ExplicitMaxTTL: 10 * h}, false, h, h, 3 * h},
		{"a shorter child keeps its own ttl", &short, auth.CreateRequest{TTL: 30 * time.Minute}, false, 30 * time.Minute, 30 * time.Minute, 3 * h},
		{"an orphan is not bound by its creator's expiry", &short, auth.CreateRequest{NoParent: true, TTL: 5 * h}, true, 5 * h, 5 * h, 768 * h},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			parent := f.root.Token
			if c.parent != nil {
				parent = f.store(t, *c.parent)
			}
			issued, err := f.tokens.Create(bg(), parent, c.req, c.sudo)
			if err != nil {
				t.Fatal(err)
			}
			at := func(d time.Duration) time.Time {
				if d < 0 {
					return time.Time{}
				}
				return t0.Add(d)
			}
			tok := issued.Token
			if tok.TTL != c.ttl || !tok.ExpiresAt.Equal(at(c.expires)) || !tok.MaxExpiresAt.Equal(at(c.hard)) {
				t.Fatalf("ttl %v expires %v max %v; want ttl %v expires %v max %v",
					tok.TTL, tok.ExpiresAt, tok.MaxExpiresAt, c.ttl, at(c.expires), at(c.hard))
			}
		})
	}
	t.Run("the default ttl can be configured", func(t *testing.T) {
		f := newFixture(t)
		f.tokens.DefaultTTL = 90 * time.Minute
		if tok := f.create(t, f.root.Token, auth.CreateRequest{Policies: []string{"dev"}}).Token; tok.TTL != 90*time.Minute {
			t.Fatalf("TTL = %v, want 90m", tok.TTL)
		}
	})
}

func TestAuthenticate(t *testing.T) {
	f := newFixture(t)
	tok := f.create(t, f.root.Token, auth.CreateRequest{Policies: []string{"dev"}, TTL: time.Hour})
	bound := f.create(t, f.root.Token, auth.CreateRequest{Policies: []string{"dev"}, BoundCIDRs: []string{"10.0.0.0/8", "2001:db8::/32"}})
	revoked := f.create(t, f.root.Token, auth.CreateRequest{Policies: []string{"dev"}})
	if _, err := f.tokens.Revoke(bg(), revoked.Token.Accessor); err != nil {
		t.Fatal(err)
	}
	unknown := "s." + strings.Repeat("A", 32)
	cases := []struct {
		name   string
		id     string
		client string
		after  time.Duration
		ok     bool
	}{
		{"a live token authenticates", tok.ID, "127.0.0.1", 0, true},
		{"a token authenticates one nanosecond before it expires", tok.ID, "127.0.0.1", time.Hour - 1, true},
		{"a token is invalid the moment it expires", tok.ID, "127.0.0.1", time.Hour, false},
		{"an expired token is invalid", tok.ID, "127.0.0.1", 2 * time.Hour, false},
		{"the root token never expires", f.root.ID, "127.0.0.1", 100 * 365 * 24 * time.Hour, true},
		{"an unknown token is invalid", unknown, "127.0.0.1", 0, false},
		{"a revoked token is invalid", revoked.ID, "127.0.0.1", 0, false},
		{"the empty string is invalid", "", "127.0.0.1", 0, false},
		{"a bare prefix is invalid", "s.", "127.0.0.1", 0, false},
		{"a value without the prefix is invalid", tok.ID[2:], "127.0.0.1", 0, false},
		{"the token's hash is not a token", tok.Token.Hash, "127.0.0.1", 0, false},
		{"the accessor is not a token", tok.Token.Accessor, "127.0.0.1", 0, false},
		{"an oversized value is invalid", "s." + strings.Repeat("x", 10000), "127.0.0.1", 0, false},
		{"a CIDR-bound token authenticates from inside its range", bound.ID, "10.9.8.7", 0, true},
		{"a CIDR-bound token authenticates from its IPv6 range", bound.ID, "2001:db8::1", 0, true},
		{"an IPv4-mapped IPv6 client is matched as IPv4", bound.ID, "::ffff:10.1.1.1", 0, true},
		{"a CIDR-bound token is invalid from outside its range", bound.ID, "192.168.1.1", 0, false},
		{"a CIDR-bound token is invalid from an unknown address", bound.ID, "", 0, false},
		{"an unbound token authenticates from an unknown address", tok.ID, "", 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f.now = t0.Add(c.after)
			var client netip.Addr
			if c.client != "" {
				client = netip.MustParseAddr(c.client)
			}
			got, err := f.tokens.Authenticate(bg(), c.id, client)
			if !c.ok {
				if !errors.Is(err, auth.ErrInvalidToken) {
					t.Fatalf("Authenticate = %+v, %v; want ErrInvalidToken", got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if got.Hash != auth.Hash(c.id) {
				t.Fatalf("Authenticate returned another token: %+v", got)
			}
		})
	}
	t.Run("every failure carries the same message", func(t *testing.T) {
		f.now = t0
		_, a := f.authenticate(unknown)
		_, b := f.tokens.Authenticate(bg(), bound.ID, netip.MustParseAddr("192.168.1.1"))
		if a.Error() != b.Error() || fault.KindOf(a) != fault.Denied {
			t.Fatalf("messages differ or not Denied: %q vs %q", a, b)
		}
	})
}

func TestNumUses(t *testing.T) {
	f := newFixture(t)
	limited := f.create(t, f.root.Token, auth.CreateRequest{Policies: []string{"dev"}, NumUses: 3})
	child := f.create(t, limited.Token, auth.CreateRequest{})

	t.Run("lookups and refused attempts do not consume uses", func(t *testing.T) {
		if _, err := f.tokens.Lookup(bg(), limited.ID); err != nil {
			t.Fatal(err)
		}
		bound := f.create(t, f.root.Token, auth.CreateRequest{Policies: []string{"dev"}, NumUses: 1, BoundCIDRs: []string{"10.0.0.0/8"}})
		if _, err := f.tokens.Authenticate(bg(), bound.ID, netip.MustParseAddr("192.168.0.1")); !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatal(err)
		}
		if got, err := f.tokens.Authenticate(bg(), bound.ID, netip.MustParseAddr("10.0.0.1")); err != nil || got.NumUses != 0 {
			t.Fatalf("in-range use after a refused one: %+v, %v", got, err)
		}
	})
	for want := 2; want >= 0; want-- {
		t.Run(fmt.Sprintf("a use leaves %d", want), func(t *testing.T) {
			got, err := f.authenticate(limited.ID)
			if err != nil || got.NumUses != want {
				t.Fatalf("Authenticate = uses %d, %v; want %d", got.NumUses, err, want)
			}
		})
	}
	t.Run("the last use revoked the token and its children", func(t *testing.T) {
		if f.exists(t, limited.Token.Accessor) || f.exists(t, child.Token.Accessor) {
			t.Fatal("the used-up token or its child is still stored")
		}
		if _, err := f.authenticate(limited.ID); !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("a fourth use: %v, want ErrInvalidToken", err)
		}
	})
}

// num_uses 0 means "unlimited" in storage, so a limited-use token must
// never rest there: storage deletes it in the transaction that counts its
// last use. Before that, concurrent requests exceeded the limit (6 of 12
// on a 5-use token).
func TestUsedUpTokenIsNeverUnlimited(t *testing.T) {
	t.Run("a token whose last use was counted does not authenticate", func(t *testing.T) {
		f := newFixture(t)
		tok := f.create(t, f.root.Token, auth.CreateRequest{Policies: []string{"dev"}, NumUses: 1})
		// Another request's Authenticate has counted the last use and has not revoked yet.
		if left, err := f.db.UseToken(bg(), tok.Token.Accessor); err != nil || left != 0 {
			t.Fatalf("UseToken = %d, %v", left, err)
		}
		if got, err := f.authenticate(tok.ID); !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("Authenticate = %+v, %v; want ErrInvalidToken", got, err)
		}
	})
	t.Run("concurrent uses never exceed the count", func(t *testing.T) {
		f := newFixture(t)
		tok := f.create(t, f.root.Token, auth.CreateRequest{Policies: []string{"dev"}, NumUses: 5})
		var ok atomic.Int32
		var wg sync.WaitGroup
		for range 12 {
			wg.Go(func() {
				_, err := f.authenticate(tok.ID)
				switch {
				case err == nil:
					ok.Add(1)
				case !errors.Is(err, auth.ErrInvalidToken):
					t.Errorf("Authenticate: %v", err)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 5 {
			t.Fatalf("%d of 12 concurrent uses succeeded on a 5-use token", ok.Load())
		}
	})
}

func TestRenew(t *testing.T) {
	const h = time.Hour
	cases := []struct {
		name      string
		req       auth.CreateRequest
		after     time.Duration
		increment time.Duration
		expires   time.Duration // from t0
		err       error
	}{
		{"renewing without an increment extends by the original ttl", auth.CreateRequest{TTL: h}, 30 * time.Minute, 0, 90 * time.Minute, nil},
		{"renewing with an increment extends from now", auth.CreateRequest{TTL: h}, 30 * time.Minute, 3 * h, 3*h + 30*time.Minute, nil},
		{"a renewal may shorten the remaining life", auth.CreateRequest{TTL: 10 * h}, 0, h, h, nil},
		{"renewal stops at the explicit max", auth.CreateRequest{TTL: h, ExplicitMaxTTL: 2 * h}, 90 * time.Minute, 5 * h, 2 * h, nil},
		{"renewal stops at the system max", auth.CreateRequest{TTL: h}, 0, 1000 * h, 768 * h, nil},
		{"a non-renewable token is refused", auth.CreateRequest{TTL: h, Renewable: new(bool)}, 0, h, 0, auth.ErrNotRenewable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			c.req.Policies = []string{"dev"}
			tok := f.create(t, f.root.Token, c.req)
			f.now = f.now.Add(c.after)
			got, err := f.tokens.Renew(bg(), tok.Token, c.increment)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("Renew = %v, want %v", err, c.err)
				}
				if stored, _ := f.db.TokenByAccessor(bg(), tok.Token.Accessor); !stored.ExpiresAt.Equal(tok.Token.ExpiresAt) {
					t.Fatal("a refused renewal changed the stored expiry")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := t0.Add(c.expires)
			if !got.ExpiresAt.Equal(want) {
				t.Fatalf("ExpiresAt = %v, want %v", got.ExpiresAt, want)
			}
			if stored, _ := f.db.TokenByAccessor(bg(), tok.Token.Accessor); !stored.ExpiresAt.Equal(want) {
				t.Fatalf("stored ExpiresAt = %v, want %v", stored.ExpiresAt, want)
			}
		})
	}
	t.Run("a negative increment is refused", func(t *testing.T) {
		f := newFixture(t)
		tok := f.create(t, f.root.Token, auth.CreateRequest{Policies: []string{"dev"}})
		if _, err := f.tokens.Renew(bg(), tok.Token, -time.Second); fault.KindOf(err) != fault.Invalid {
			t.Fatalf("Renew = %v, want Invalid", err)
		}
	})
	t.Run("a token without expiry is returned unchanged", func(t *testing.T) {
		f := newFixture(t)
		got, err := f.tokens.Renew(bg(), f.root.Token, time.Hour)
		if err != nil || !got.ExpiresAt.IsZero() {
			t.Fatalf("Renew(root) = %+v, %v", got, err)
		}
	})
	t.Run("renewing a revoked token reports it missing", func(t *testing.T) {
		f := newFixture(t)
		tok := f.create(t, f.root.Token, auth.CreateRequest{Policies: []string{"dev"}})
		if _, err := f.tokens.Revoke(bg(), tok.Token.Accessor); err != nil {
			t.Fatal(err)
		}
		if _, err := f.tokens.Renew(bg(), tok.Token, 0); !errors.Is(err, auth.ErrTokenNotFound) {
			t.Fatalf("Renew = %v, want ErrTokenNotFound", err)
		}
	})
	t.Run("a child's renewal stops at its parent's current expiry", func(t *testing.T) {
		f := newFixture(t)
		parent := f.create(t, f.root.Token, auth.CreateRequest{Policies: []string{"dev"}, TTL: 10 * h})
		child := f.create(t, parent.Token, auth.CreateRequest{TTL: h})
		if _, err := f.tokens.Renew(bg(), parent.Token, 2*h); err != nil {
			t.Fatal(err)
		}
		got, err := f.tokens.Renew(bg(), child.Token, 5*h)
		if err != nil || !got.ExpiresAt.Equal(t0.Add(2*h)) {
			t.Fatalf("child Renew = %v, %v; want expiry at the parent's %v", got.ExpiresAt, err, t0.Add(2*h))
		}
	})
}

func TestRevoke(t *testing.T) {
	// root ─┬─ a ─┬─ a1 ── a1x
	//       │     └─ a2
	//       └─ b
	f := newFixture(t)
	mk := func(parent auth.Issued) auth.Issued {
		return f.create(t, parent.Token, auth.CreateRequest{Policies: []string{"dev"}})
	}
	a := mk(f.root)
	a1, a2, b := mk(a), mk(a), mk(f.root)
	a1x := mk(a1)

	revoked, err := f.tokens.Revoke(bg(), a.Token.Accessor)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("revoking a token returns it and every descendant", func(t *testing.T) {
		want := []string{a.Token.Accessor, a1.Token.Accessor, a2.Token.Accessor, a1x.Token.Accessor}
		slices.Sort(want)
		slices.Sort(revoked)
		if !slices.Equal(revoked, want) {
			t.Fatalf("revoked %q, want %q", revoked, want)
		}
	})
	for _, c := range []struct {
		name string
		tok  auth.Issued
		live bool
	}{
		{"the revoked token no longer authenticates", a, false},
		{"its child no longer authenticates", a1, false},
		{"its grandchild no longer authenticates", a1x, false},
		{"its sibling subtree still authenticates", b, true},
		{"its parent still authenticates", f.root, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.authenticate(c.tok.ID)
			if (err == nil) != c.live {
				t.Fatalf("Authenticate = %v, want live %v", err, c.live)
			}
		})
	}
	t.Run("revoking an unknown accessor reports it missing", func(t *testing.T) {
		if _, err := f.tokens.Revoke(bg(), "no-such-accessor"); !errors.Is(err, auth.ErrTokenNotFound) {
			t.Fatalf("Revoke = %v, want ErrTokenNotFound", err)
		}
	})
	t.Run("revoking twice reports the second as missing", func(t *testing.T) {
		if _, err := f.tokens.Revoke(bg(), a.Token.Accessor); !errors.Is(err, auth.ErrTokenNotFound) {
			t.Fatalf("Revoke = %v, want ErrTokenNotFound", err)
		}
	})
}

func TestRevokeExpired(t *testing.T) {
	const h = time.Hour
	f := newFixture(t)
	create := func(parent auth.Token, ttl time.Duration) auth.Issued {
		return f.create(t, parent, auth.CreateRequest{Policies: []string{"dev"}, TTL: ttl})
	}
	// A parent renewed to a shorter life than its child: when the parent
	// expires the child goes with it although its own expiry is later.
	parent := create(f.root.Token, 10*h)
	child := create(parent.Token, 8*h)
	if _, err := f.tokens.Renew(bg(), parent.Token, h); err != nil {
		t.Fatal(err)
	}
	long := create(f.root.Token, 5*h)
	forever := f.create(t, f.root.Token, auth.CreateRequest{})
	var batch []auth.Issued
	for range 130 { // more than one batch of 100
		batch = append(batch, create(f.root.Token, 30*time.Minute))
	}

	f.now = f.now.Add(2 * h)
	n, err := f.tokens.RevokeExpired(bg())
	if err != nil {
		t.Fatal(err)
	}
	t.Run("every expired token and its descendants are counted", func(t *testing.T) {
		if want := len(batch) + 2; n != want {
			t.Fatalf("RevokeExpired = %d, want %d", n, want)
		}
	})
	t.Run("expired tokens are gone, past one batch", func(t *testing.T) {
		for _, tok := range append(batch, parent) {
			if f.exists(t, tok.Token.Accessor) {
				t.Fatalf("expired token %s still stored", tok.Token.Accessor)
			}
		}
	})
	t.Run("an unexpired child of an expired parent is gone", func(t *testing.T) {
		if f.exists(t, child.Token.Accessor) {
			t.Fatal("child of an expired parent still stored")
		}
	})
	t.Run("unexpired and never-expiring tokens stay", func(t *testing.T) {
		for _, tok := range []auth.Issued{long, forever, f.root} {
			if !f.exists(t, tok.Token.Accessor) {
				t.Fatalf("token %s was removed", tok.Token.Accessor)
			}
		}
	})
	t.Run("a second sweep finds nothing", func(t *testing.T) {
		if n, err := f.tokens.RevokeExpired(bg()); n != 0 || err != nil {
			t.Fatalf("RevokeExpired = %d, %v", n, err)
		}
	})
}

func TestLookup(t *testing.T) {
	f := newFixture(t)
	tok := f.create(t, f.root.Token, auth.CreateRequest{Policies: []string{"dev"}, TTL: time.Hour, NumUses: 2})
	t.Run("a live token is found without consuming a use", func(t *testing.T) {
		for range 3 {
			got, err := f.tokens.Lookup(bg(), tok.ID)
			if err != nil || got.Accessor != tok.Token.Accessor || got.NumUses != 2 {
				t.Fatalf("Lookup = %+v, %v", got, err)
			}
		}
	})
	t.Run("a live token is found by accessor", func(t *testing.T) {
		got, err := f.tokens.LookupAccessor(bg(), tok.Token.Accessor)
		if err != nil || got.Hash != tok.Token.Hash {
			t.Fatalf("LookupAccessor = %+v, %v", got, err)
		}
	})
	t.Run("an unknown accessor is not found", func(t *testing.T) {
		if _, err := f.tokens.LookupAccessor(bg(), "nope"); !errors.Is(err, auth.ErrTokenNotFound) {
			t.Fatalf("LookupAccessor = %v", err)
		}
	})
	t.Run("a well-formed unknown token is not found", func(t *testing.T) {
		if _, err := f.tokens.Lookup(bg(), "s."+strings.Repeat("z", 32)); !errors.Is(err, auth.ErrTokenNotFound) {
			t.Fatalf("Lookup = %v", err)
		}
	})
	for _, garbage := range []string{"", "s.", "garbage", tok.ID[2:], "s." + strings.Repeat("a", 300)} {
		t.Run(fmt.Sprintf("malformed value %.12q is not found without a database round trip", garbage), func(t *testing.T) {
			before := f.db.RoundTrips()
			if _, err := f.tokens.Lookup(bg(), garbage); !errors.Is(err, auth.ErrTokenNotFound) {
				t.Fatalf("Lookup = %v, want ErrTokenNotFound", err)
			}
			if _, err := f.authenticate(garbage); !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("Authenticate = %v, want ErrInvalidToken", err)
			}
			if after := f.db.RoundTrips(); after != before {
				t.Fatalf("round trips went from %+v to %+v", before, after)
			}
		})
	}
	t.Run("an expired token is not found by value or accessor", func(t *testing.T) {
		f.now = f.now.Add(time.Hour)
		if _, err := f.tokens.Lookup(bg(), tok.ID); !errors.Is(err, auth.ErrTokenNotFound) {
			t.Fatalf("Lookup = %v", err)
		}
		if _, err := f.tokens.LookupAccessor(bg(), tok.Token.Accessor); !errors.Is(err, auth.ErrTokenNotFound) {
			t.Fatalf("LookupAccessor = %v", err)
		}
	})
}

func TestStorageFailuresAreNotReportedAsMissingTokens(t *testing.T) {
	f := newFixture(t)
	tok := f.create(t, f.root.Token, auth.CreateRequest{Policies: []string{"dev"}})
	f.db.Close()
	cases := []struct {
		name string
		call func() error
	}{
		{"Authenticate reports the storage error", func() error { _, err := f.authenticate(tok.ID); return err }},
		{"Lookup reports the storage error", func() error { _, err := f.tokens.Lookup(bg(), tok.ID); return err }},
		{"LookupAccessor reports the storage error", func() error {
			_, err := f.tokens.LookupAccessor(bg(), tok.Token.Accessor)
			return err
		}},
		{"Create reports the storage error", func() error {
			_, err := f.tokens.Create(bg(), f.root.Token, auth.CreateRequest{}, false)
			return err
		}},
		{"Revoke reports the storage error", func() error { _, err := f.tokens.Revoke(bg(), tok.Token.Accessor); return err }},
		{"Renew reports the storage error", func() error { _, err := f.tokens.Renew(bg(), tok.Token, 0); return err }},
		{"RevokeExpired reports the storage error", func() error { _, err := f.tokens.RevokeExpired(bg()); return err }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if err == nil || errors.Is(err, auth.ErrTokenNotFound) || errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("got %v, want the storage error", err)
			}
		})
	}
	t.Run("a malformed value is still refused without touching storage", func(t *testing.T) {
		if _, err := f.tokens.Lookup(bg(), "garbage"); !errors.Is(err, auth.ErrTokenNotFound) {
			t.Fatalf("Lookup = %v, want ErrTokenNotFound", err)
		}
	})
}

func TestTTLRemaining(t *testing.T) {
	tokens := auth.NewTokens(nil, func() time.Time { return t0 })
	cases := []struct {
		name    string
		expires time.Time
		want    time.Duration
	}{
		{"a token without expiry has no remaining ttl", time.Time{}, 0},
		{"the remaining ttl is truncated to whole seconds", t0.Add(90*time.Second + 900*time.Millisecond), 90 * time.Second},
		{"an expired token has none left", t0.Add(-time.Minute), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := tokens.TTLRemaining(auth.Token{ExpiresAt: c.expires}); got != c.want {
				t.Fatalf("TTLRemaining = %v, want %v", got, c.want)
			}
		})
	}
}

func TestNewRoot(t *testing.T) {
	tokens := auth.NewTokens(nil, func() time.Time { return t0 })
	root, err := tokens.NewRoot()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		ok   bool
	}{
		{"a root token carries only the root policy", slices.Equal(root.Token.Policies, []string{auth.RootPolicy})},
		{"a root token never expires", root.Token.ExpiresAt.IsZero() && root.Token.MaxExpiresAt.IsZero() && root.Token.TTL == 0},
		{"a root token has no parent", root.Token.ParentAccessor == ""},
		{"a root token is stored by hash", root.Token.Hash == auth.Hash(root.ID)},
		{"a root token is named root", root.Token.DisplayName == "root"},
		{"a root token is created now", root.Token.CreatedAt.Equal(t0)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !c.ok {
				t.Fatalf("root token: %+v", root.Token)
			}
		})
	}
}

func TestNewTokensDefaults(t *testing.T) {
	tokens := auth.NewTokens(nil, nil)
	cases := []struct {
		name string
		ok   bool
	}{
		{"the default ttl is Vault's 768h", tokens.DefaultTTL == 768*time.Hour},
		{"the maximum ttl is Vault's 768h", tokens.MaxTTL == 768*time.Hour},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !c.ok {
				t.Fatalf("defaults: %+v", tokens)
			}
		})
	}
	t.Run("without a clock the wall clock is used", func(t *testing.T) {
		before := time.Now()
		root, err := tokens.NewRoot()
		if err != nil {
			t.Fatal(err)
		}
		if c := root.Token.CreatedAt; c.Before(before.Add(-time.Second)) || c.After(time.Now().Add(time.Second)) {
			t.Fatalf("CreatedAt = %v, want about %v", c, before)
		}
	})
}

func TestChildrenOfVanishedOrExpiringParents(t *testing.T) {
	t.Run("a one-use root token cannot mint a child with its last use", func(t *testing.T) {
		f := newFixture(t)
		oneUse := f.create(t, f.root.Token, auth.CreateRequest{Policies: []string{"root"}, NumUses: 1})
		parent, err := f.authenticate(oneUse.ID) // spends the last use
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.tokens.Create(bg(), parent, auth.CreateRequest{}, true); !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("Create under a used-up parent = %v, want ErrInvalidToken", err)
		}
	})
	t.Run("a revoked parent cannot have children", func(t *testing.T) {
		f := newFixture(t)
		parent := f.create(t, f.root.Token, auth.CreateRequest{Policies: []string{"dev"}})
		if _, err := f.tokens.Revoke(bg(), parent.Token.Accessor); err != nil {
			t.Fatal(err)
		}
		if _, err := f.tokens.Create(bg(), parent.Token, auth.CreateRequest{}, false); !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("Create under a revoked parent = %v, want ErrInvalidToken", err)
		}
	})
	t.Run("a root child of an expiring root token expires with it", func(t *testing.T) {
		f := newFixture(t)
		parent := f.create(t, f.root.Token, auth.CreateRequest{Policies: []string{"root"}, TTL: time.Hour})
		child := f.create(t, parent.Token, auth.CreateRequest{Policies: []string{"root"}})
		if child.Token.ExpiresAt.IsZero() || child.Token.ExpiresAt.After(parent.Token.ExpiresAt) {
			t.Fatalf("child expires %v, parent %v", child.Token.ExpiresAt, parent.Token.ExpiresAt)
		}
	})
}

func TestNewOrphan(t *testing.T) {
	const h = time.Hour
	cases := []struct {
		name           string
		req            auth.LoginRequest
		ttl, hardLimit time.Duration
		policies       []string
		refused        bool
	}{
		{"a login token gets its ttl and the default policy", auth.LoginRequest{Policies: []string{"agent"}, TTL: h}, h, 768 * h, []string{"agent", "default"}, false},
		{"no ttl means the default ttl", auth.LoginRequest{Policies: []string{"agent"}}, 768 * h, 768 * h, []string{"agent", "default"}, false},
		{"the max ttl caps the ttl and renewals", auth.LoginRequest{Policies: []string{"agent"}, TTL: 5 * h, MaxTTL: 2 * h}, 2 * h, 2 * h, []string{"agent", "default"}, false},
		{"a max ttl above the system's does not raise it", auth.LoginRequest{TTL: h, MaxTTL: 9999 * h}, h, 768 * h, []string{"default"}, false},
		{"a login cannot issue root tokens", auth.LoginRequest{Policies: []string{"root"}}, 0, 0, nil, true},
		{"a negative ttl is refused", auth.LoginRequest{TTL: -h}, 0, 0, nil, true},
		{"a bad bound CIDR is refused", auth.LoginRequest{BoundCIDRs: []string{"10.0.0.0/33"}}, 0, 0, nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			got, err := f.tokens.NewOrphan(c.req)
			if c.refused {
				if fault.KindOf(err) != fault.Invalid {
					t.Fatalf("NewOrphan = %+v, %v; want an Invalid fault", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tok := got.Token
			if tok.ParentAccessor != "" || !tok.Renewable || !slices.Equal(tok.Policies, c.policies) ||
				!tok.ExpiresAt.Equal(t0.Add(c.ttl)) || !tok.MaxExpiresAt.Equal(t0.Add(c.hardLimit)) || tok.Hash != auth.Hash(got.ID) {
				t.Fatalf("token = %+v", tok)
			}
			if f.exists(t, tok.Accessor) {
				t.Fatal("NewOrphan stored the token; the login's transaction must")
			}
			if err := f.db.CreateToken(bg(), tok); err != nil {
				t.Fatal(err)
			}
			if _, err := f.authenticate(got.ID); err != nil {
				t.Fatalf("the stored login token does not authenticate: %v", err)
			}
		})
	}
}
