// Package auth issues and checks tokens. A token is "s." followed by random
// base62 characters; only its SHA-256 hash is stored, next to a public
// accessor that names it in logs, audit events and revocation calls.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"math/big"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/server/policy"
	"github.com/secrethub/secrethub/storage"
)

// Token is a stored token as the rest of the server sees it.
type Token = storage.Token

// Errors callers branch on.
var (
	// ErrInvalidToken covers unknown, expired, revoked, used-up and
	// CIDR-bound tokens alike, so a caller learns nothing about which.
	ErrInvalidToken = fault.New(fault.Denied, "permission denied: invalid or expired token")
	// ErrPermissionDenied is an authorization failure of a valid token.
	ErrPermissionDenied = fault.New(fault.Denied, "permission denied")
	// ErrNotRenewable is returned when renewing a non-renewable token.
	ErrNotRenewable = fault.New(fault.Invalid, "token is not renewable")
	// ErrTokenNotFound is returned by lookups (by value or accessor) of
	// missing or expired tokens.
	ErrTokenNotFound = fault.New(fault.NotFound, "token not found")
)

const (
	tokenPrefix    = "s."
	tokenRandLen   = 32
	accessorLength = 24
	base62         = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

	// RootPolicy is the policy only root tokens carry.
	RootPolicy = "root"
	// DefaultPolicy is attached to every other token unless asked not to.
	DefaultPolicy = "default"
)

// Store is what tokens need from storage.
type Store interface {
	CreateToken(ctx context.Context, t storage.Token) error
	TokenByHash(ctx context.Context, hash string) (storage.Token, error)
	TokenByAccessor(ctx context.Context, accessor string) (storage.Token, error)
	RenewToken(ctx context.Context, accessor string, expiresAt time.Time) error
	UseToken(ctx context.Context, accessor string) (int, error)
	RevokeTokenTree(ctx context.Context, accessor string) ([]string, error)
	ExpiredTokens(ctx context.Context, now time.Time, limit int) ([]string, error)
}

// Tokens issues, checks, renews and revokes tokens.
type Tokens struct {
	store Store
	now   func() time.Time
	// DefaultTTL applies when a create request gives none.
	DefaultTTL time.Duration
	// MaxTTL caps every non-root token's lifetime.
	MaxTTL time.Duration
}

// NewTokens returns a token service with Vault's defaults (768h).
func NewTokens(store Store, now func() time.Time) *Tokens {
	if now == nil {
		now = time.Now
	}
	return &Tokens{store: store, now: now, DefaultTTL: 768 * time.Hour, MaxTTL: 768 * time.Hour}
}

// Hash is how a token is stored and looked up.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func randomString(n int) (string, error) {
	var sb strings.Builder
	sb.Grow(n)
	limit := big.NewInt(int64(len(base62)))
	for range n {
		i, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return "", err
		}
		sb.WriteByte(base62[i.Int64()])
	}
	return sb.String(), nil
}

// The auth methods a token can be obtained by (Token.AuthMethod).
const (
	MethodToken   = "token"   // created from another token, or the root token
	MethodAppRole = "approle" // an AppRole login
	MethodAdmin   = "admin"   // an admin login
)

// newIdentity returns a fresh token value and accessor.
func newIdentity() (id, accessor string, err error) {
	r, err := randomString(tokenRandLen)
	if err != nil {
		return "", "", err
	}
	accessor, err = randomString(accessorLength)
	if err != nil {
		return "", "", err
	}
	return tokenPrefix + r, accessor, nil
}

// Issued is a freshly created token: the only moment its value is known.
type Issued struct {
	ID    string
	Token Token
}

// NewRoot makes (but does not store) a root token: the root policy, no
// expiry, no parent. Initialization stores it with the seal configuration.
func (s *Tokens) NewRoot() (Issued, error) {
	id, accessor, err := newIdentity()
	if err != nil {
		return Issued{}, err
	}
	return Issued{ID: id, Token: Token{
		Hash: Hash(id), Accessor: accessor, Policies: []string{RootPolicy},
		DisplayName: "root", AuthMethod: MethodToken, CreatedAt: s.now().UTC(),
	}}, nil
}

// LoginRequest describes the token an auth method (AppRole, admin login)
// hands out: an orphan with the method's policies and limits.
type LoginRequest struct {
	// AuthMethod names the login ("approle", "admin"): it is stored with
	// the token, for the audit log and lookups.
	AuthMethod  string
	Policies    []string
	Meta        map[string]string
	DisplayName string // e.g. "approle-web"; shown as token-<name>
	// TTL is the token's lifetime (DefaultTTL when zero); MaxTTL caps it and
	// its renewals (MaxTTL when zero or above it).
	TTL        time.Duration
	MaxTTL     time.Duration
	BoundCIDRs []string
}

// NewOrphan makes (but does not store) the token of a login: no parent,
// the default policy added, renewable up to its max TTL. The caller stores
// it, in the same transaction as whatever the login consumed.
func (s *Tokens) NewOrphan(req LoginRequest) (Issued, error) {
	if req.TTL < 0 || req.MaxTTL < 0 {
		return Issued{}, fault.Invalidf("token ttl and max ttl must not be negative")
	}
	asked := req.Policies
	if len(asked) == 0 {
		asked = []string{DefaultPolicy}
	}
	policies, err := s.childPolicies(Token{Policies: []string{RootPolicy}}, CreateRequest{Policies: asked})
	if err != nil {
		return Issued{}, err
	}
	if slices.Contains(policies, RootPolicy) {
		return Issued{}, fault.Invalidf("a login cannot issue root tokens")
	}
	cidrs, err := normalizeCIDRs(req.BoundCIDRs)
	if err != nil {
		return Issued{}, err
	}
	now := s.now().UTC()
	hardCap := s.MaxTTL
	if req.MaxTTL > 0 {
		hardCap = min(hardCap, req.MaxTTL)
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = s.DefaultTTL
	}
	ttl = min(ttl, hardCap)
	id, accessor, err := newIdentity()
	if err != nil {
		return Issued{}, err
	}
	return Issued{ID: id, Token: Token{
		Hash: Hash(id), Accessor: accessor, Policies: policies, Meta: req.Meta, AuthMethod: req.AuthMethod,
		DisplayName: displayName(req.DisplayName), TTL: ttl, ExplicitMaxTTL: req.MaxTTL,
		Renewable: true, BoundCIDRs: cidrs, CreatedAt: now,
		ExpiresAt: now.Add(ttl), MaxExpiresAt: now.Add(hardCap),
	}}, nil
}

// CreateRequest is what a caller may ask of a new token.
type CreateRequest struct {
	Policies        []string
	Meta            map[string]string
	DisplayName     string
	NoParent        bool
	NoDefaultPolicy bool
	Renewable       *bool
	TTL             time.Duration
	ExplicitMaxTTL  time.Duration
	NumUses         int
	BoundCIDRs      []string
}

// Create issues a child of parent (or an orphan with NoParent, which needs
// sudo). A non-root parent can only hand out a subset of its own policies.
func (s *Tokens) Create(ctx context.Context, parent Token, req CreateRequest, sudo bool) (Issued, error) {
	isRootParent := slices.Contains(parent.Policies, RootPolicy)
	if req.NoParent && !sudo {
		return Issued{}, fault.New(fault.Denied, "permission denied: creating an orphan token (no_parent) needs root or sudo")
	}
	if req.TTL < 0 || req.ExplicitMaxTTL < 0 {
		return Issued{}, fault.Invalidf("ttl and explicit_max_ttl must not be negative")
	}
	if req.NumUses < 0 || req.NumUses > math.MaxInt32 {
		return Issued{}, fault.Invalidf("num_uses must be between 0 (unlimited) and %d", math.MaxInt32)
	}
	if hasNUL(req.DisplayName) {
		return Issued{}, fault.Invalidf("display_name must not contain NUL characters")
	}
	policies, err := s.childPolicies(parent, req)
	if err != nil {
		return Issued{}, err
	}
	cidrs, err := normalizeCIDRs(req.BoundCIDRs)
	if err != nil {
		return Issued{}, err
	}
	for k, v := range req.Meta {
		if k == "" {
			return Issued{}, fault.Invalidf("meta keys must not be empty")
		}
		if hasNUL(k) || hasNUL(v) {
			return Issued{}, fault.Invalidf("meta keys and values must not contain NUL characters")
		}
	}

	now := s.now().UTC()
	t := Token{
		Policies: policies, Meta: req.Meta, DisplayName: displayName(req.DisplayName), AuthMethod: MethodToken,
		ExplicitMaxTTL: req.ExplicitMaxTTL, NumUses: req.NumUses, BoundCIDRs: cidrs,
		CreatedAt: now, Renewable: true,
	}
	if req.Renewable != nil {
		t.Renewable = *req.Renewable
	}
	if !req.NoParent {
		t.ParentAccessor = parent.Accessor
	}
	// A root child of a root token without a TTL lives until revoked, as in Vault.
	neverExpires := isRootParent && parent.ExpiresAt.IsZero() && slices.Contains(policies, RootPolicy) &&
		req.TTL == 0 && req.ExplicitMaxTTL == 0
	if !neverExpires {
		ttl := req.TTL
		if ttl == 0 {
			ttl = s.DefaultTTL
		}
		hardCap := s.MaxTTL
		if req.ExplicitMaxTTL > 0 {
			hardCap = min(hardCap, req.ExplicitMaxTTL)
		}
		t.MaxExpiresAt = now.Add(hardCap)
		if !parent.MaxExpiresAt.IsZero() && !req.NoParent && parent.MaxExpiresAt.Before(t.MaxExpiresAt) {
			t.MaxExpiresAt = parent.MaxExpiresAt
		}
		t.TTL = min(ttl, t.MaxExpiresAt.Sub(now))
		t.ExpiresAt = now.Add(t.TTL)
		// A child never outlives its parent: Vault revokes children when the
		// parent expires; capping the expiry makes that hold without waiting
		// for the expiry sweep.
		if !req.NoParent && !parent.ExpiresAt.IsZero() && parent.ExpiresAt.Before(t.ExpiresAt) {
			t.ExpiresAt = parent.ExpiresAt
			t.TTL = t.ExpiresAt.Sub(now)
		}
	}

	id, accessor, err := newIdentity()
	if err != nil {
		return Issued{}, err
	}
	t.Hash, t.Accessor = Hash(id), accessor
	if err := s.store.CreateToken(ctx, t); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			// The parent was revoked or used up (possibly by this very
			// request's last use) before its child could be stored.
			return Issued{}, ErrInvalidToken
		}
		return Issued{}, err
	}
	return Issued{ID: id, Token: t}, nil
}

func (s *Tokens) childPolicies(parent Token, req CreateRequest) ([]string, error) {
	isRootParent := slices.Contains(parent.Policies, RootPolicy)
	policies := req.Policies
	if len(policies) == 0 {
		policies = parent.Policies
	}
	var out []string
	for _, p := range policies {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fault.Invalidf("policy names must not be empty")
		}
		if hasNUL(p) {
			return nil, fault.Invalidf("policy names must not contain NUL characters")
		}
		if !isRootParent && !slices.Contains(parent.Policies, p) {
			return nil, fault.Newf(fault.Denied, "permission denied: a token can only be given policies its parent has (%v is not one)", fault.Input(fault.Clip(p, 128)))
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	if !req.NoDefaultPolicy && !slices.Contains(out, RootPolicy) && !slices.Contains(out, DefaultPolicy) {
		out = append(out, DefaultPolicy)
	}
	if req.NoDefaultPolicy {
		out = slices.DeleteFunc(out, func(p string) bool { return p == DefaultPolicy })
	}
	if len(out) == 0 {
		return nil, fault.Invalidf("a token needs at least one policy")
	}
	slices.Sort(out)
	return out, nil
}

func hasNUL(s string) bool { return strings.IndexByte(s, 0) >= 0 }

// checkAccessor refuses accessors no token can have before they reach
// storage (PostgreSQL cannot even compare text containing NUL).
func checkAccessor(accessor string) error {
	if accessor == "" || len(accessor) > 256 || hasNUL(accessor) {
		return fault.Invalidf("accessor must be 1 to 256 characters without NUL")
	}
	return nil
}

func displayName(name string) string {
	name = strings.TrimSpace(name)
	if name == "" {
		return "token"
	}
	return "token-" + name
}

func normalizeCIDRs(in []string) ([]string, error) {
	var out []string
	for _, c := range in {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		p, err := parsePrefix(c)
		if err != nil {
			return nil, fault.Invalidf("bound_cidrs: %q is not a CIDR or IP address", fault.Input(fault.Clip(c, 64)))
		}
		out = append(out, p.String())
	}
	return out, nil
}

// parsePrefix reads a CIDR or a bare address the way every CIDR in
// SecretHub is read.
func parsePrefix(s string) (netip.Prefix, error) { return policy.ParsePrefix(s) }

// Authenticate finds the live token id names, usable from client, and
// takes one of its uses if they are limited (Check, then Spend).
func (s *Tokens) Authenticate(ctx context.Context, id string, client netip.Addr) (Token, error) {
	t, err := s.Check(ctx, id, client)
	if err != nil {
		return Token{}, err
	}
	return s.Spend(ctx, t)
}

// Check finds the live token id names, usable from client, without taking
// a use: the server checks first and spends once the request's audit event
// is stored, so a request refused for the audit log costs no use.
func (s *Tokens) Check(ctx context.Context, id string, client netip.Addr) (Token, error) {
	if !looksLikeToken(id) {
		return Token{}, ErrInvalidToken
	}
	t, err := s.store.TokenByHash(ctx, Hash(id))
	if errors.Is(err, storage.ErrNotFound) {
		return Token{}, ErrInvalidToken
	}
	if err != nil {
		return Token{}, err
	}
	if !s.live(t) || !cidrAllows(t.BoundCIDRs, client) {
		return Token{}, ErrInvalidToken
	}
	return t, nil
}

// Spend takes one use of a checked token whose uses are limited and returns
// it with the uses left; other tokens are returned as they are.
// ErrInvalidToken means its uses ran out since the check.
func (s *Tokens) Spend(ctx context.Context, t Token) (Token, error) {
	if t.NumUses <= 0 {
		return t, nil
	}
	left, err := s.store.UseToken(ctx, t.Accessor)
	if errors.Is(err, storage.ErrNotFound) {
		return Token{}, ErrInvalidToken
	}
	if err != nil {
		return Token{}, err
	}
	// On the last use the store has already deleted the token: this
	// request is its final one.
	t.NumUses, t.Spent = left, left == 0
	return t, nil
}

func looksLikeToken(id string) bool {
	return strings.HasPrefix(id, tokenPrefix) && len(id) > len(tokenPrefix) && len(id) <= 256
}

func (s *Tokens) live(t Token) bool {
	return t.ExpiresAt.IsZero() || s.now().Before(t.ExpiresAt)
}

func cidrAllows(cidrs []string, client netip.Addr) bool {
	if len(cidrs) == 0 {
		return true
	}
	client = client.Unmap()
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(c); err == nil && p.Contains(client) {
			return true
		}
	}
	return false
}

// Lookup finds a live token by its value without consuming a use.
func (s *Tokens) Lookup(ctx context.Context, id string) (Token, error) {
	if !looksLikeToken(id) {
		return Token{}, ErrTokenNotFound
	}
	t, err := s.store.TokenByHash(ctx, Hash(id))
	if errors.Is(err, storage.ErrNotFound) || (err == nil && !s.live(t)) {
		return Token{}, ErrTokenNotFound
	}
	return t, err
}

// AccessorOf finds a token's accessor by its value, live or expired, so an
// expired token not yet swept can still be revoked by value.
func (s *Tokens) AccessorOf(ctx context.Context, id string) (string, error) {
	if !looksLikeToken(id) {
		return "", ErrTokenNotFound
	}
	t, err := s.store.TokenByHash(ctx, Hash(id))
	if errors.Is(err, storage.ErrNotFound) {
		return "", ErrTokenNotFound
	}
	return t.Accessor, err
}

// LookupAccessor finds a live token by its accessor.
func (s *Tokens) LookupAccessor(ctx context.Context, accessor string) (Token, error) {
	if err := checkAccessor(accessor); err != nil {
		return Token{}, err
	}
	t, err := s.store.TokenByAccessor(ctx, accessor)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && !s.live(t)) {
		return Token{}, ErrTokenNotFound
	}
	return t, err
}

// Renew extends a token's life by increment (its original TTL when zero),
// never past its hard limit. Tokens without expiry are returned unchanged,
// and so is a token whose last use was the renewal itself: like Vault, the
// request is served, and the token is gone after it.
func (s *Tokens) Renew(ctx context.Context, t Token, increment time.Duration) (Token, error) {
	if increment < 0 {
		return Token{}, fault.Invalidf("increment must not be negative")
	}
	if t.ExpiresAt.IsZero() || t.Spent {
		return t, nil
	}
	if !t.Renewable {
		return Token{}, ErrNotRenewable
	}
	if increment == 0 {
		increment = t.TTL
	}
	now := s.now().UTC()
	expires := now.Add(increment)
	if !t.MaxExpiresAt.IsZero() && expires.After(t.MaxExpiresAt) {
		expires = t.MaxExpiresAt
	}
	if t.ParentAccessor != "" {
		// Renewal cannot carry a child past its parent's current expiry.
		parent, err := s.store.TokenByAccessor(ctx, t.ParentAccessor)
		if errors.Is(err, storage.ErrNotFound) {
			return Token{}, ErrTokenNotFound
		}
		if err != nil {
			return Token{}, err
		}
		if !parent.ExpiresAt.IsZero() && expires.After(parent.ExpiresAt) {
			expires = parent.ExpiresAt
		}
	}
	if err := s.store.RenewToken(ctx, t.Accessor, expires); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return Token{}, ErrTokenNotFound
		}
		return Token{}, err
	}
	t.ExpiresAt = expires
	return t, nil
}

// Revoke removes the token with this accessor and all its descendants.
func (s *Tokens) Revoke(ctx context.Context, accessor string) ([]string, error) {
	if err := checkAccessor(accessor); err != nil {
		return nil, err
	}
	revoked, err := s.store.RevokeTokenTree(ctx, accessor)
	if err != nil {
		return nil, err
	}
	if len(revoked) == 0 {
		return nil, ErrTokenNotFound
	}
	return revoked, nil
}

// RevokeExpired revokes expired tokens with their descendants, in batches,
// and returns how many tokens went away.
func (s *Tokens) RevokeExpired(ctx context.Context) (int, error) {
	total := 0
	for {
		accessors, err := s.store.ExpiredTokens(ctx, s.now(), 100)
		if err != nil || len(accessors) == 0 {
			return total, err
		}
		for _, a := range accessors {
			revoked, err := s.store.RevokeTokenTree(ctx, a)
			if err != nil {
				return total, err
			}
			total += len(revoked)
		}
	}
}

// TTLRemaining is how long the token has left, zero for tokens without expiry.
func (s *Tokens) TTLRemaining(t Token) time.Duration {
	if t.ExpiresAt.IsZero() {
		return 0
	}
	return max(t.ExpiresAt.Sub(s.now()), 0).Truncate(time.Second)
}
