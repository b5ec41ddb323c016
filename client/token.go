package client

import (
	"context"
	"net/http"
	"time"
)

// Token is the auth/token API.
type Token struct{ c *Client }

// Token returns the auth/token API.
func (c *Client) Token() *Token { return &Token{c: c} }

// TokenAuth is the auth block of a response that issues or renews a token.
type TokenAuth struct {
	ClientToken   string            `json:"client_token"`
	Accessor      string            `json:"accessor"`
	Policies      []string          `json:"policies"`
	TokenPolicies []string          `json:"token_policies"`
	Metadata      map[string]string `json:"metadata"`
	// LeaseDuration is the token's remaining life in seconds (0: no expiry).
	LeaseDuration int    `json:"lease_duration"`
	Renewable     bool   `json:"renewable"`
	EntityID      string `json:"entity_id"`
	TokenType     string `json:"token_type"`
	Orphan        bool   `json:"orphan"`
	NumUses       int    `json:"num_uses"`
}

// TokenInfo is what a token lookup reports.
type TokenInfo struct {
	Accessor string `json:"accessor"`
	// CreationTime is Unix seconds.
	CreationTime int64 `json:"creation_time"`
	// CreationTTL, ExplicitMaxTTL and TTL are seconds; TTL is what remains.
	CreationTTL    int64             `json:"creation_ttl"`
	DisplayName    string            `json:"display_name"`
	EntityID       string            `json:"entity_id"`
	ExpireTime     Time              `json:"expire_time"`
	ExplicitMaxTTL int64             `json:"explicit_max_ttl"`
	ID             string            `json:"id,omitempty"`
	IssueTime      Time              `json:"issue_time"`
	Meta           map[string]string `json:"meta"`
	NumUses        int               `json:"num_uses"`
	Orphan         bool              `json:"orphan"`
	Path           string            `json:"path"`
	Policies       []string          `json:"policies"`
	Renewable      bool              `json:"renewable"`
	TTL            int64             `json:"ttl"`
	Type           string            `json:"type"`
	BoundCIDRs     []string          `json:"bound_cidrs"`
}

// TokenCreateRequest describes a new token. Zero fields take the server's
// defaults.
type TokenCreateRequest struct {
	Policies        []string
	Meta            map[string]string
	TTL             time.Duration
	ExplicitMaxTTL  time.Duration
	DisplayName     string
	NumUses         int
	Renewable       *bool
	NoParent        bool // an orphan token: it outlives its creator
	NoDefaultPolicy bool
	BoundCIDRs      []string
}

// tokenCreateBody is TokenCreateRequest on the wire, durations in seconds.
type tokenCreateBody struct {
	Policies        []string          `json:"policies,omitempty"`
	Meta            map[string]string `json:"meta,omitempty"`
	TTL             int64             `json:"ttl,omitempty"`
	ExplicitMaxTTL  int64             `json:"explicit_max_ttl,omitempty"`
	DisplayName     string            `json:"display_name,omitempty"`
	NumUses         int               `json:"num_uses,omitempty"`
	Renewable       *bool             `json:"renewable,omitempty"`
	NoParent        bool              `json:"no_parent,omitempty"`
	NoDefaultPolicy bool              `json:"no_default_policy,omitempty"`
	BoundCIDRs      []string          `json:"bound_cidrs,omitempty"`
}

// seconds rounds d up to whole seconds, so a positive duration never
// becomes "use the default".
func seconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// body is the request on the wire.
func (req TokenCreateRequest) body() tokenCreateBody {
	return tokenCreateBody{
		Policies: req.Policies, Meta: req.Meta, TTL: seconds(req.TTL), ExplicitMaxTTL: seconds(req.ExplicitMaxTTL),
		DisplayName: req.DisplayName, NumUses: req.NumUses, Renewable: req.Renewable,
		NoParent: req.NoParent, NoDefaultPolicy: req.NoDefaultPolicy, BoundCIDRs: req.BoundCIDRs,
	}
}

// Create issues a token, a child of the client's token unless NoParent
// (which needs sudo on auth/token/create).
func (t *Token) Create(ctx context.Context, req TokenCreateRequest) (*TokenAuth, error) {
	return t.c.auth(ctx, request{method: http.MethodPost, path: "auth/token/create", body: req.body()})
}

// CreateOrphan issues a token without a parent, which outlives the
// client's token, through auth/token/create-orphan: a policy can grant
// that path without granting sudo on auth/token/create.
func (t *Token) CreateOrphan(ctx context.Context, req TokenCreateRequest) (*TokenAuth, error) {
	return t.c.auth(ctx, request{method: http.MethodPost, path: "auth/token/create-orphan", body: req.body()})
}

// tokenBody names a token or an accessor and, for renewals, the increment.
type tokenBody struct {
	Token     string `json:"token,omitempty"`
	Accessor  string `json:"accessor,omitempty"`
	Increment int64  `json:"increment,omitempty"`
}

// LookupSelf describes the client's own token.
func (t *Token) LookupSelf(ctx context.Context) (*TokenInfo, error) {
	return t.lookup(ctx, request{method: http.MethodGet, path: "auth/token/lookup-self"})
}

// Lookup describes the token whose value is token.
func (t *Token) Lookup(ctx context.Context, token string) (*TokenInfo, error) {
	return t.lookup(ctx, request{method: http.MethodPost, path: "auth/token/lookup", body: tokenBody{Token: token}})
}

// LookupAccessor describes the token with this accessor.
func (t *Token) LookupAccessor(ctx context.Context, accessor string) (*TokenInfo, error) {
	return t.lookup(ctx, request{method: http.MethodPost, path: "auth/token/lookup-accessor", body: tokenBody{Accessor: accessor}})
}

func (t *Token) lookup(ctx context.Context, req request) (*TokenInfo, error) {
	var out TokenInfo
	if err := t.c.data(ctx, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RenewSelf extends the client's own token by increment (zero: its
// original TTL).
func (t *Token) RenewSelf(ctx context.Context, increment time.Duration) (*TokenAuth, error) {
	return t.c.auth(ctx, request{method: http.MethodPost, path: "auth/token/renew-self", body: tokenBody{Increment: seconds(increment)}})
}

// Renew extends the token whose value is token by increment (zero: its
// original TTL).
func (t *Token) Renew(ctx context.Context, token string, increment time.Duration) (*TokenAuth, error) {
	return t.c.auth(ctx, request{method: http.MethodPost, path: "auth/token/renew", body: tokenBody{Token: token, Increment: seconds(increment)}})
}

// RenewAccessor extends the token with this accessor by increment (zero:
// its original TTL), for whoever holds the accessor but not the token.
func (t *Token) RenewAccessor(ctx context.Context, accessor string, increment time.Duration) (*TokenAuth, error) {
	return t.c.auth(ctx, request{method: http.MethodPost, path: "auth/token/renew-accessor", body: tokenBody{Accessor: accessor, Increment: seconds(increment)}})
}

// RevokeSelf revokes the client's own token and its children.
func (t *Token) RevokeSelf(ctx context.Context) error {
	return t.c.do(ctx, request{method: http.MethodPost, path: "auth/token/revoke-self"}, nil)
}

// Revoke revokes the token whose value is token, and its children.
func (t *Token) Revoke(ctx context.Context, token string) error {
	return t.c.do(ctx, request{method: http.MethodPost, path: "auth/token/revoke", body: tokenBody{Token: token}}, nil)
}

// RevokeAccessor revokes the token with this accessor, and its children.
func (t *Token) RevokeAccessor(ctx context.Context, accessor string) error {
	return t.c.do(ctx, request{method: http.MethodPost, path: "auth/token/revoke-accessor", body: tokenBody{Accessor: accessor}}, nil)
}
