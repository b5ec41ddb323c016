package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/server/policy"
	"github.com/secrethub/secrethub/storage"
)

// Errors AppRole callers branch on.
var (
	// ErrInvalidLogin is every failed AppRole login: unknown role_id or
	// secret_id, a pair that does not belong together, an expired or used-up
	// secret ID, a client outside its CIDRs. It never says which.
	ErrInvalidLogin = fault.New(fault.Denied, "invalid role_id or secret_id")
	// ErrRoleNotFound is returned for operations on a role that does not exist.
	ErrRoleNotFound = fault.New(fault.NotFound, "role not found")
	// ErrSecretIDNotFound is returned for a secret ID accessor the role does
	// not have (or whose secret ID has expired).
	ErrSecretIDNotFound = fault.New(fault.NotFound, "secret_id_accessor not found")
	// ErrRoleIDInUse is returned when a custom role_id belongs to another role.
	ErrRoleIDInUse = fault.New(fault.Conflict, "role_id is already in use")
)

// maxAppRoleTTL bounds every AppRole duration, far above any sensible
// setting and far below what a time.Duration or a column can hold.
const maxAppRoleTTL = 100 * 365 * 24 * time.Hour

// AppRoleStore is what the AppRole auth method needs from storage.
type AppRoleStore interface {
	WriteAppRoleRole(ctx context.Context, name string, now time.Time, apply func(r *storage.AppRoleRole, created bool) error) (storage.AppRoleRole, bool, error)
	AppRoleRoleByName(ctx context.Context, name string) (storage.AppRoleRole, error)
	AppRoleRoleNames(ctx context.Context) ([]string, error)
	DeleteAppRoleRole(ctx context.Context, name string) error
	CreateAppRoleSecretID(ctx context.Context, s storage.AppRoleSecretID) error
	AppRoleSecretIDAccessors(ctx context.Context, roleName string, now time.Time) ([]string, error)
	AppRoleSecretIDByAccessor(ctx context.Context, roleName, accessor string, now time.Time) (storage.AppRoleSecretID, error)
	DeleteAppRoleSecretID(ctx context.Context, roleName, accessor string) error
	AppRoleSecretIDByHash(ctx context.Context, hash, roleID string) (storage.AppRoleSecretID, storage.AppRoleRole, error)
	CompleteAppRoleLogin(ctx context.Context, l storage.AppRoleLogin) error
	DeleteExpiredAppRoleSecretIDs(ctx context.Context, now time.Time) (int, error)
}

var _ AppRoleStore = (*storage.DB)(nil)

// Role is an AppRole role as the rest of the server sees it.
type Role = storage.AppRoleRole

// AppRole is the AppRole auth method: roles, their secret IDs, and logins
// that trade a role_id and secret_id for a token.
type AppRole struct {
	store  AppRoleStore
	tokens *Tokens
	now    func() time.Time
}

// NewAppRole returns the AppRole method over store, issuing tokens through
// tokens. now is the clock (time.Now when nil).
func NewAppRole(store AppRoleStore, tokens *Tokens, now func() time.Time) *AppRole {
	if now == nil {
		now = time.Now
	}
	return &AppRole{store: store, tokens: tokens, now: now}
}

// RoleSettings are the settable fields of a role; a nil field is left as
// stored (or at its default when the role is created), as a Vault role
// write that omits a field does. Durations are rounded up to whole seconds.
//
// WriteRole does not decide who may grant which policies: callers check
// that first (the HTTP layer allows only the caller's own policies, unless
// it has root or sudo on the role), on the list RolePolicies returns.
type RoleSettings struct {
	// Policies are normalized by RolePolicies.
	Policies *[]string
	// RoleID sets the role's role_id (see SetRoleID for what is valid); a
	// new role without one gets a random UUID.
	RoleID *string
	// TokenTTL 0: the token service's default TTL at login.
	TokenTTL *time.Duration
	// TokenMaxTTL 0: the token service's maximum TTL.
	TokenMaxTTL     *time.Duration
	TokenBoundCIDRs *[]string
	// SecretIDTTL 0: secret IDs never expire.
	SecretIDTTL *time.Duration
	// SecretIDNumUses 0: secret IDs can be used any number of times.
	SecretIDNumUses    *int
	SecretIDBoundCIDRs *[]string
	// CreateOnly refuses, with ErrPermissionDenied and inside the write's
	// transaction, to change a role that exists: for callers allowed to
	// create roles but not to update them.
	CreateOnly bool
	// UpdateOnly refuses, with ErrPermissionDenied and inside the write's
	// transaction, to create a role that does not exist: for callers
	// allowed to update roles but not to create them.
	UpdateOnly bool
}

// WriteRole creates the role called name (with a random role_id unless
// one is given) or updates it, reporting which. Each given setting is
// checked before anything is written; TokenTTL may not exceed a nonzero
// TokenMaxTTL once merged. ErrRoleIDInUse if the role_id is another
// role's.
func (a *AppRole) WriteRole(ctx context.Context, name string, set RoleSettings) (created bool, err error) {
	if err := checkRoleName(name); err != nil {
		return false, err
	}
	var (
		policies, tokenCIDRs, secretIDCIDRs []string
		ttl, maxTTL, secretIDTTL            time.Duration
	)
	if set.Policies != nil {
		if policies, err = RolePolicies(*set.Policies); err != nil {
			return false, err
		}
	}
	if set.RoleID != nil {
		if err := checkRoleID(*set.RoleID); err != nil {
			return false, err
		}
	}
	for _, d := range []struct {
		in    *time.Duration
		out   *time.Duration
		field string
	}{{set.TokenTTL, &ttl, "token_ttl"}, {set.TokenMaxTTL, &maxTTL, "token_max_ttl"}, {set.SecretIDTTL, &secretIDTTL, "secret_id_ttl"}} {
		if d.in == nil {
			continue
		}
		if *d.out, err = checkTTL(d.field, *d.in); err != nil {
			return false, err
		}
	}
	if set.SecretIDNumUses != nil {
		if err := checkNumUses("secret_id_num_uses", *set.SecretIDNumUses); err != nil {
			return false, err
		}
	}
	for _, l := range []struct {
		in    *[]string
		out   *[]string
		field string
	}{{set.TokenBoundCIDRs, &tokenCIDRs, "token_bound_cidrs"}, {set.SecretIDBoundCIDRs, &secretIDCIDRs, "secret_id_bound_cidrs"}} {
		if l.in == nil {
			continue
		}
		if *l.out, err = prefixes(l.field, *l.in); err != nil {
			return false, err
		}
	}

	_, created, err = a.store.WriteAppRoleRole(ctx, name, a.now(), func(r *storage.AppRoleRole, created bool) error {
		switch {
		case created && set.UpdateOnly, !created && set.CreateOnly:
			return ErrPermissionDenied
		case set.RoleID != nil:
			r.RoleID = *set.RoleID
		case created:
			r.RoleID = uuid.NewString()
		}
		if set.Policies != nil {
			r.Policies = policies
		}
		if set.TokenTTL != nil {
			r.TokenTTL = ttl
		}
		if set.TokenMaxTTL != nil {
			r.TokenMaxTTL = maxTTL
		}
		if set.TokenBoundCIDRs != nil {
			r.TokenBoundCIDRs = tokenCIDRs
		}
		if set.SecretIDTTL != nil {
			r.SecretIDTTL = secretIDTTL
		}
		if set.SecretIDNumUses != nil {
			r.SecretIDNumUses = *set.SecretIDNumUses
		}
		if set.SecretIDBoundCIDRs != nil {
			r.SecretIDBoundCIDRs = secretIDCIDRs
		}
		if r.TokenMaxTTL > 0 && r.TokenTTL > r.TokenMaxTTL {
			return fault.Invalidf("token_ttl must not be greater than token_max_ttl")
		}
		return nil
	})
	if errors.Is(err, storage.ErrConflict) {
		return false, ErrRoleIDInUse
	}
	return created, err
}

// Role reads a role. ErrRoleNotFound if there is none.
func (a *AppRole) Role(ctx context.Context, name string) (Role, error) {
	if err := checkRoleName(name); err != nil {
		return Role{}, err
	}
	r, err := a.store.AppRoleRoleByName(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		return Role{}, ErrRoleNotFound
	}
	return r, err
}

// ListRoles returns every role's name in byte order.
func (a *AppRole) ListRoles(ctx context.Context) ([]string, error) {
	return a.store.AppRoleRoleNames(ctx)
}

// DeleteRole deletes a role and all its secret IDs. Tokens it issued stay
// valid until they expire or are revoked, as in Vault.
func (a *AppRole) DeleteRole(ctx context.Context, name string) error {
	if err := checkRoleName(name); err != nil {
		return err
	}
	return roleMissing(a.store.DeleteAppRoleRole(ctx, name))
}

// RoleID returns a role's role_id.
func (a *AppRole) RoleID(ctx context.Context, name string) (string, error) {
	r, err := a.Role(ctx, name)
	return r.RoleID, err
}

// SetRoleID gives a role a custom role_id: 1 to 256 characters of valid
// UTF-8 without control characters, not used by any other role. It is a
// role write (the role's updated_at moves), so a login that read the old
// role_id is refused.
func (a *AppRole) SetRoleID(ctx context.Context, name, roleID string) error {
	if err := checkRoleName(name); err != nil {
		return err
	}
	if err := checkRoleID(roleID); err != nil {
		return err
	}
	_, _, err := a.store.WriteAppRoleRole(ctx, name, a.now(), func(r *storage.AppRoleRole, created bool) error {
		if created {
			return ErrRoleNotFound
		}
		r.RoleID = roleID
		return nil
	})
	if errors.Is(err, storage.ErrConflict) {
		return ErrRoleIDInUse
	}
	return err
}

// checkRoleID allows 1 to 256 characters of valid UTF-8 without control
// characters.
func checkRoleID(roleID string) error {
	if !validRoleID(roleID) {
		return fault.Invalidf("role_id must be 1 to 256 characters without control characters")
	}
	return nil
}

func validRoleID(roleID string) bool {
	return roleID != "" && len(roleID) <= 256 && utf8.ValidString(roleID) && !strings.ContainsFunc(roleID, unicode.IsControl)
}

// SecretIDRequest asks for a new secret ID. Zero values take the role's
// settings; TTL and NumUses may only tighten them, and CIDRs must lie
// within the role's secret_id_bound_cidrs when it has any.
type SecretIDRequest struct {
	Metadata map[string]string
	CIDRs    []string
	TTL      time.Duration
	NumUses  int
}

// SecretID is a freshly issued secret ID: the only moment its value is known.
type SecretID struct {
	ID       string
	Accessor string
	TTL      time.Duration // 0: never expires
	NumUses  int           // 0: unlimited
}

// NewSecretID issues a secret ID for the role; only its hash is stored.
func (a *AppRole) NewSecretID(ctx context.Context, roleName string, req SecretIDRequest) (SecretID, error) {
	role, err := a.Role(ctx, roleName)
	if err != nil {
		return SecretID{}, err
	}
	ttl, err := checkTTL("ttl", req.TTL)
	if err != nil {
		return SecretID{}, err
	}
	switch {
	case ttl == 0:
		ttl = role.SecretIDTTL
	case role.SecretIDTTL > 0 && ttl > role.SecretIDTTL:
		return SecretID{}, fault.Invalidf("ttl must not exceed the role's secret_id_ttl (%s)", role.SecretIDTTL)
	}
	if err := checkNumUses("num_uses", req.NumUses); err != nil {
		return SecretID{}, err
	}
	uses := req.NumUses
	switch {
	case uses == 0:
		uses = role.SecretIDNumUses
	case role.SecretIDNumUses > 0 && uses > role.SecretIDNumUses:
		return SecretID{}, fault.Invalidf("num_uses must not exceed the role's secret_id_num_uses (%d)", role.SecretIDNumUses)
	}
	cidrs, err := prefixes("cidr_list", req.CIDRs)
	if err != nil {
		return SecretID{}, err
	}
	if len(cidrs) == 0 {
		cidrs = role.SecretIDBoundCIDRs
	} else if err := within(cidrs, role.SecretIDBoundCIDRs); err != nil {
		return SecretID{}, err
	}
	for k, v := range req.Metadata {
		if k == "" || hasNUL(k) || hasNUL(v) {
			return SecretID{}, fault.Invalidf("metadata keys must be non-empty, and keys and values must not contain NUL characters")
		}
	}

	now := a.now().UTC()
	s := SecretID{ID: uuid.NewString(), Accessor: uuid.NewString(), TTL: ttl, NumUses: uses}
	stored := storage.AppRoleSecretID{
		Hash: Hash(s.ID), Accessor: s.Accessor, RoleName: role.Name, NumUses: uses,
		CIDRs: cidrs, Metadata: req.Metadata, CreatedAt: now,
	}
	if ttl > 0 {
		stored.ExpiresAt = now.Add(ttl)
	}
	if err := a.store.CreateAppRoleSecretID(ctx, stored); err != nil {
		return SecretID{}, roleMissing(err)
	}
	return s, nil
}

// SecretIDInfo describes a secret ID without its value.
type SecretIDInfo struct {
	Accessor  string
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
	NumUses   int       // uses left; 0: unlimited
	CIDRs     []string
	Metadata  map[string]string
}

// ListSecretIDAccessors lists the accessors of a role's unexpired secret
// IDs in byte order.
func (a *AppRole) ListSecretIDAccessors(ctx context.Context, roleName string) ([]string, error) {
	if _, err := a.Role(ctx, roleName); err != nil {
		return nil, err
	}
	return a.store.AppRoleSecretIDAccessors(ctx, roleName, a.now())
}

// LookupSecretID describes one of a role's unexpired secret IDs.
func (a *AppRole) LookupSecretID(ctx context.Context, roleName, accessor string) (SecretIDInfo, error) {
	if err := checkRoleName(roleName); err != nil {
		return SecretIDInfo{}, err
	}
	if err := checkAccessor(accessor); err != nil {
		return SecretIDInfo{}, err
	}
	s, err := a.store.AppRoleSecretIDByAccessor(ctx, roleName, accessor, a.now())
	if errors.Is(err, storage.ErrNotFound) {
		return SecretIDInfo{}, a.whichMissing(ctx, roleName)
	}
	if err != nil {
		return SecretIDInfo{}, err
	}
	return SecretIDInfo{
		Accessor: s.Accessor, CreatedAt: s.CreatedAt, ExpiresAt: s.ExpiresAt,
		NumUses: s.NumUses, CIDRs: s.CIDRs, Metadata: s.Metadata,
	}, nil
}

// DestroySecretID deletes one of a role's secret IDs by its accessor.
func (a *AppRole) DestroySecretID(ctx context.Context, roleName, accessor string) error {
	if err := checkRoleName(roleName); err != nil {
		return err
	}
	if err := checkAccessor(accessor); err != nil {
		return err
	}
	err := a.store.DeleteAppRoleSecretID(ctx, roleName, accessor)
	if errors.Is(err, storage.ErrNotFound) {
		return a.whichMissing(ctx, roleName)
	}
	return err
}

// whichMissing tells, after a secret ID was not found, whether its role is
// missing too.
func (a *AppRole) whichMissing(ctx context.Context, roleName string) error {
	if _, err := a.Role(ctx, roleName); err != nil {
		return err
	}
	return ErrSecretIDNotFound
}

// dummyRoleID stands in for the role_id when no secret ID matched, so a
// failed login compares as much as a successful one.
var dummyRoleID = sha256.Sum256([]byte("secrethub approle: no such secret_id"))

// Login trades a role_id and secret_id for a token. One read finds the
// secret ID by its hash joined with its role, if that role has this
// role_id: a wrong secret_id and a wrong role_id are the same index miss,
// with nothing decoded. The role_id is compared again in constant time
// (hashed first, so its length does not show either), as a second line of
// defence; then expiry and CIDRs are checked. One transaction checks that
// the role is unchanged and the secret ID still there, counts the use, and
// stores the token and the record of where it came from, so a login racing
// a role change or a secret ID's destruction never issues a token with
// what the change replaced. A login whose transaction finds such a change
// starts over once from the read, so it gets what the change left (the new
// policies) or a refusal (the secret ID or role gone), instead of failing
// for having been unlucky. Every refusal is ErrInvalidLogin.
func (a *AppRole) Login(ctx context.Context, roleID, secretID string, client netip.Addr) (Issued, Role, error) {
	issued, role, err := a.login(ctx, roleID, secretID, client)
	if errors.Is(err, errChangedSinceRead) {
		issued, role, err = a.login(ctx, roleID, secretID, client)
	}
	if errors.Is(err, errChangedSinceRead) {
		err = ErrInvalidLogin // changed again: give up rather than spin
	}
	return issued, role, err
}

// errChangedSinceRead is a login's transaction finding that its secret ID
// or role changed after the read.
var errChangedSinceRead = errors.New("approle: the secret ID or role changed since it was read")

// login is one attempt of Login.
func (a *AppRole) login(ctx context.Context, roleID, secretID string, client netip.Addr) (Issued, Role, error) {
	lookup := roleID
	if !validRoleID(lookup) {
		// No role has such a role_id, and PostgreSQL cannot even compare
		// some of these (NUL, invalid UTF-8): ask for one no role has,
		// down the same path.
		lookup = ""
	}
	sid, role, err := a.store.AppRoleSecretIDByHash(ctx, Hash(secretID), lookup)
	found := 1
	if errors.Is(err, storage.ErrNotFound) {
		found = 0
	} else if err != nil {
		return Issued{}, Role{}, err
	}
	want := dummyRoleID
	if found == 1 {
		want = sha256.Sum256([]byte(role.RoleID))
	}
	got := sha256.Sum256([]byte(roleID))
	if subtle.ConstantTimeCompare(got[:], want[:])&found != 1 {
		return Issued{}, Role{}, ErrInvalidLogin
	}
	now := a.now()
	if !sid.ExpiresAt.IsZero() && !now.Before(sid.ExpiresAt) {
		return Issued{}, Role{}, ErrInvalidLogin
	}
	// The role's current secret_id_bound_cidrs bind too, as in Vault: a role
	// tightened after a secret ID was issued binds its old secret IDs.
	if !cidrAllows(sid.CIDRs, client) || !cidrAllows(role.SecretIDBoundCIDRs, client) {
		return Issued{}, Role{}, ErrInvalidLogin
	}

	issued, err := a.tokens.NewOrphan(LoginRequest{
		AuthMethod: MethodAppRole, Policies: role.Policies, Meta: map[string]string{"role_name": role.Name},
		DisplayName: "approle-" + role.Name, TTL: role.TokenTTL, MaxTTL: role.TokenMaxTTL,
		BoundCIDRs: role.TokenBoundCIDRs,
	})
	if err != nil {
		return Issued{}, Role{}, err
	}
	err = a.store.CompleteAppRoleLogin(ctx, storage.AppRoleLogin{
		SecretIDHash: sid.Hash, SecretIDAccessor: sid.Accessor, Limited: sid.NumUses > 0,
		RoleName: role.Name, RoleID: role.RoleID, RoleUpdatedAt: role.UpdatedAt, Token: issued.Token,
	})
	if errors.Is(err, storage.ErrNotFound) {
		// Since the read: the secret ID was used up by a concurrent login
		// or destroyed, or the role was changed or deleted.
		return Issued{}, Role{}, errChangedSinceRead
	}
	if err != nil {
		return Issued{}, Role{}, err
	}
	return issued, role, nil
}

// RemoveExpiredSecretIDs deletes expired secret IDs and returns how many
// went; the server runs it periodically.
func (a *AppRole) RemoveExpiredSecretIDs(ctx context.Context) (int, error) {
	return a.store.DeleteExpiredAppRoleSecretIDs(ctx, a.now())
}

// roleMissing turns storage's ErrNotFound into ErrRoleNotFound.
func roleMissing(err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return ErrRoleNotFound
	}
	return err
}

// checkRoleName allows 1 to 128 characters of A-Z, a-z, 0-9, '.', '_' and
// '-', but not "." or "..", which URL clients rewrite as path steps.
func checkRoleName(name string) error {
	ok := name != "" && len(name) <= 128 && name != "." && name != ".."
	for _, c := range name {
		if !ok {
			break
		}
		ok = c < utf8.RuneSelf && (c == '.' || c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z')
	}
	if !ok {
		return fault.Invalidf("role name must be 1 to 128 characters of A-Z, a-z, 0-9, '.', '_' and '-' (and not . or ..)")
	}
	return nil
}

// RolePolicies normalizes the policy names a role write gives: each is
// trimmed and lowercased (as Vault does), must be a valid policy name, and
// must not be root, since no login issues root tokens; the list is
// deduplicated and sorted. "ROOT" and " Admin" are root and admin, not new
// names that happen to match nothing.
func RolePolicies(in []string) ([]string, error) {
	out := []string{}
	for _, p := range in {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == RootPolicy {
			return nil, fault.Invalidf("a role cannot grant the root policy")
		}
		if err := policy.ValidateName(p); err != nil {
			return nil, fault.Invalidf("policies: %s", err) // passes err's inputs on
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out, nil
}

// checkTTL refuses negative and absurd durations and rounds the rest up to
// whole seconds, as they are stored.
func checkTTL(field string, d time.Duration) (time.Duration, error) {
	if d < 0 || d > maxAppRoleTTL {
		return 0, fault.Invalidf("%s must be between 0 and %s", field, maxAppRoleTTL)
	}
	return (d + time.Second - 1).Truncate(time.Second), nil
}

func checkNumUses(field string, n int) error {
	if n < 0 || n > math.MaxInt32 {
		return fault.Invalidf("%s must be between 0 (unlimited) and %d", field, math.MaxInt32)
	}
	return nil
}

// prefixes parses a list of CIDRs or bare IP addresses into canonical
// CIDRs, skipping blank entries.
func prefixes(field string, in []string) ([]string, error) {
	out := []string{}
	for _, c := range in {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		p, err := parsePrefix(c)
		if err != nil {
			return nil, fault.Invalidf("%s: %q is not a CIDR or IP address", field, fault.Input(fault.Clip(c, 64)))
		}
		out = append(out, p.String())
	}
	return out, nil
}

// within checks that every CIDR in inner lies inside one of outer's, when
// outer has any.
func within(inner, outer []string) error {
	if len(outer) == 0 {
		return nil
	}
	for _, c := range inner {
		q := netip.MustParsePrefix(c)
		inside := false
		for _, o := range outer {
			p, err := netip.ParsePrefix(o)
			inside = inside || err == nil && p.Bits() <= q.Bits() && p.Contains(q.Addr())
		}
		if !inside {
			return fault.Invalidf("cidr_list: %q is not within the role's secret_id_bound_cidrs", fault.Input(fault.Clip(c, 64)))
		}
	}
	return nil
}
