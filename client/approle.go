package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"
)

// AppRole is the AppRole auth method under /v1/auth/approle: machines log
// in with a role ID (which names a role) and a secret ID (which proves
// they may use it), and receive a token with the role's policies.
type AppRole struct{ c *Client }

// AppRole returns the AppRole API.
func (c *Client) AppRole() *AppRole { return &AppRole{c: c} }

// AppRoleRole is a role's settings as read back; TTLs are in seconds, and
// 0 means the server's default (for a TTL) or unlimited (for a use count).
type AppRoleRole struct {
	RoleName           string   `json:"role_name"`
	Policies           []string `json:"policies"`
	TokenTTL           int64    `json:"token_ttl"`
	TokenMaxTTL        int64    `json:"token_max_ttl"`
	SecretIDTTL        int64    `json:"secret_id_ttl"`
	SecretIDNumUses    int      `json:"secret_id_num_uses"`
	SecretIDBoundCIDRs []string `json:"secret_id_bound_cidrs"`
	TokenBoundCIDRs    []string `json:"token_bound_cidrs"`
}

// AppRoleWriteRequest creates a role or changes one. A nil field keeps the
// role's current value (a new role's default); a non-nil empty list clears
// it.
type AppRoleWriteRequest struct {
	// Policies are attached to every token a login issues.
	Policies []string
	// TokenTTL and TokenMaxTTL bound the tokens a login issues.
	TokenTTL    *time.Duration
	TokenMaxTTL *time.Duration
	// SecretIDTTL is how long a new secret ID stays valid (0: forever).
	SecretIDTTL *time.Duration
	// SecretIDNumUses is how many logins a new secret ID allows (0: any).
	SecretIDNumUses *int
	// SecretIDBoundCIDRs are where logins may come from.
	SecretIDBoundCIDRs []string
	// TokenBoundCIDRs are where issued tokens may be used from.
	TokenBoundCIDRs []string
}

// appRoleWriteBody is AppRoleWriteRequest on the wire, TTLs in seconds.
type appRoleWriteBody struct {
	RoleName           string    `json:"role_name"`
	Policies           *[]string `json:"policies,omitempty"`
	TokenTTL           *int64    `json:"token_ttl,omitempty"`
	TokenMaxTTL        *int64    `json:"token_max_ttl,omitempty"`
	SecretIDTTL        *int64    `json:"secret_id_ttl,omitempty"`
	SecretIDNumUses    *int      `json:"secret_id_num_uses,omitempty"`
	SecretIDBoundCIDRs *[]string `json:"secret_id_bound_cidrs,omitempty"`
	TokenBoundCIDRs    *[]string `json:"token_bound_cidrs,omitempty"`
}

// listField sends a list that is set, even empty, and leaves out a nil one.
func listField(l []string) *[]string {
	if l == nil {
		return nil
	}
	return &l
}

// secondsField sends a TTL that is set, rounded up to whole seconds.
func secondsField(d *time.Duration) *int64 {
	if d == nil {
		return nil
	}
	s := seconds(*d)
	return &s
}

func roleURL(name string, sub ...string) string {
	p := "auth/approle/role/" + url.PathEscape(name)
	for _, s := range sub {
		p += "/" + s
	}
	return p
}

// WriteRole creates the role called name or changes the settings req sets.
func (a *AppRole) WriteRole(ctx context.Context, name string, req AppRoleWriteRequest) error {
	body := appRoleWriteBody{
		RoleName: name, Policies: listField(req.Policies),
		TokenTTL: secondsField(req.TokenTTL), TokenMaxTTL: secondsField(req.TokenMaxTTL),
		SecretIDTTL: secondsField(req.SecretIDTTL), SecretIDNumUses: req.SecretIDNumUses,
		SecretIDBoundCIDRs: listField(req.SecretIDBoundCIDRs), TokenBoundCIDRs: listField(req.TokenBoundCIDRs),
	}
	return a.c.do(ctx, request{method: http.MethodPost, path: roleURL(name), body: body}, nil)
}

// ReadRole returns the settings of the role called name; a missing role is
// an error matching ErrNotFound.
func (a *AppRole) ReadRole(ctx context.Context, name string) (*AppRoleRole, error) {
	var out AppRoleRole
	if err := a.c.data(ctx, request{method: http.MethodGet, path: roleURL(name)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListRoles returns the names of all roles. With none, the server answers
// 404 as Vault does: an error matching ErrNotFound.
func (a *AppRole) ListRoles(ctx context.Context) ([]string, error) {
	return a.c.keys(ctx, "auth/approle/role")
}

// DeleteRole removes the role called name with its secret IDs.
func (a *AppRole) DeleteRole(ctx context.Context, name string) error {
	return a.c.do(ctx, request{method: http.MethodDelete, path: roleURL(name)}, nil)
}

// RoleID returns the role ID of the role called name: the public half of
// its login credentials.
func (a *AppRole) RoleID(ctx context.Context, name string) (string, error) {
	var out struct {
		RoleID string `json:"role_id"`
	}
	if err := a.c.data(ctx, request{method: http.MethodGet, path: roleURL(name, "role-id")}, &out); err != nil {
		return "", err
	}
	return out.RoleID, nil
}

// SetRoleID replaces the role ID of the role called name.
func (a *AppRole) SetRoleID(ctx context.Context, name, roleID string) error {
	body := struct {
		RoleID string `json:"role_id"`
	}{roleID}
	return a.c.do(ctx, request{method: http.MethodPost, path: roleURL(name, "role-id"), body: body}, nil)
}

// SecretIDRequest qualifies a new secret ID; zero fields take the role's
// settings.
type SecretIDRequest struct {
	// Metadata is recorded with the secret ID and on the tokens it issues.
	Metadata map[string]string
	// CIDRList narrows where logins with this secret ID may come from.
	CIDRList []string
	// TTL is how long the secret ID stays valid.
	TTL time.Duration
	// NumUses is how many logins it allows.
	NumUses int
}

// secretIDBody is SecretIDRequest on the wire.
type secretIDBody struct {
	Metadata map[string]string `json:"metadata,omitempty"`
	CIDRList []string          `json:"cidr_list,omitempty"`
	TTL      int64             `json:"ttl,omitempty"`
	NumUses  int               `json:"num_uses,omitempty"`
}

// SecretID is a newly generated secret ID. Its value is shown once: the
// server keeps only a hash; the accessor names it afterwards.
type SecretID struct {
	SecretID string `json:"secret_id"`
	Accessor string `json:"secret_id_accessor"`
	// TTL is in seconds (0: it does not expire).
	TTL int64 `json:"secret_id_ttl"`
	// NumUses is how many logins it allows (0: any number).
	NumUses int `json:"secret_id_num_uses"`
}

// NewSecretID generates a secret ID for the role called name.
func (a *AppRole) NewSecretID(ctx context.Context, name string, req SecretIDRequest) (*SecretID, error) {
	body := secretIDBody{Metadata: req.Metadata, CIDRList: req.CIDRList, TTL: seconds(req.TTL), NumUses: req.NumUses}
	var out SecretID
	if err := a.c.data(ctx, request{method: http.MethodPost, path: roleURL(name, "secret-id"), body: body}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListSecretIDAccessors returns the accessors of the role's live secret
// IDs. With none, or no such role, the server answers 404: an error
// matching ErrNotFound.
func (a *AppRole) ListSecretIDAccessors(ctx context.Context, name string) ([]string, error) {
	return a.c.keys(ctx, roleURL(name, "secret-id"))
}

// SecretIDInfo describes a secret ID, never its value.
type SecretIDInfo struct {
	Accessor       string            `json:"secret_id_accessor"`
	CreationTime   Time              `json:"creation_time"`
	ExpirationTime Time              `json:"expiration_time"`
	NumUses        int               `json:"secret_id_num_uses"`
	TTL            int64             `json:"secret_id_ttl"`
	CIDRList       []string          `json:"cidr_list"`
	Metadata       map[string]string `json:"metadata"`
}

// accessorBody names a secret ID by its accessor.
type accessorBody struct {
	Accessor string `json:"secret_id_accessor"`
}

// LookupSecretID describes the role's secret ID with this accessor.
func (a *AppRole) LookupSecretID(ctx context.Context, name, accessor string) (*SecretIDInfo, error) {
	var out SecretIDInfo
	req := request{method: http.MethodPost, path: roleURL(name, "secret-id-accessor", "lookup"), body: accessorBody{accessor}}
	if err := a.c.data(ctx, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DestroySecretID invalidates the role's secret ID with this accessor.
func (a *AppRole) DestroySecretID(ctx context.Context, name, accessor string) error {
	req := request{method: http.MethodPost, path: roleURL(name, "secret-id-accessor", "destroy"), body: accessorBody{accessor}}
	return a.c.do(ctx, req, nil)
}

// Login exchanges a role ID and a secret ID for a token. It needs no token
// of its own. A wrong pair is a 403 that does not say which part was wrong.
func (a *AppRole) Login(ctx context.Context, roleID, secretID string) (*TokenAuth, error) {
	if roleID == "" || secretID == "" {
		return nil, errors.New("client: an AppRole login needs both a role ID and a secret ID")
	}
	body := struct {
		RoleID   string `json:"role_id"`
		SecretID string `json:"secret_id"`
	}{roleID, secretID}
	return a.c.auth(ctx, request{method: http.MethodPost, path: "auth/approle/login", body: body})
}
