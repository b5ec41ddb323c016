package server

import (
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/secrethub/secrethub/server/auth"
	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/server/policy"
)

// tokenCreateRequest accepts the fields Vault's client sends; features
// SecretHub does not have must be left empty.
type tokenCreateRequest struct {
	ID              string            `json:"id"`
	Policies        []string          `json:"policies"`
	Meta            map[string]string `json:"meta"`
	Lease           Duration          `json:"lease"`
	TTL             Duration          `json:"ttl"`
	ExplicitMaxTTL  Duration          `json:"explicit_max_ttl"`
	Period          Duration          `json:"period"`
	NoParent        bool              `json:"no_parent"`
	NoDefaultPolicy bool              `json:"no_default_policy"`
	DisplayName     string            `json:"display_name"`
	NumUses         int               `json:"num_uses"`
	Renewable       *bool             `json:"renewable"`
	Type            string            `json:"type"`
	EntityAlias     string            `json:"entity_alias"`
	BoundCIDRs      []string          `json:"bound_cidrs"`
}

func (s *Server) handleTokenCreate(w http.ResponseWriter, r *http.Request) error {
	return s.createToken(w, r, false)
}

func (s *Server) handleTokenCreateOrphan(w http.ResponseWriter, r *http.Request) error {
	return s.createToken(w, r, true)
}

// createToken issues a child of the caller's token, or an orphan.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request, orphan bool) error {
	var req tokenCreateRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	switch {
	case req.ID != "":
		return fault.Invalidf("custom token IDs are not supported")
	case req.Period != 0:
		return fault.Invalidf("periodic tokens are not supported")
	case req.Type != "" && req.Type != "service":
		return fault.Invalidf("token type %q is not supported (only \"service\")", fault.Input(clip(req.Type)))
	case req.EntityAlias != "":
		return fault.Invalidf("entity aliases are not supported")
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = req.Lease
	}
	parent := callerToken(r.Context())
	// An orphan needs sudo on auth/token/create, or an allowed call to
	// auth/token/create-orphan, whose route grants exactly that.
	canOrphan := orphan || s.decide(r, "auth/token/create", policy.Update|policy.Sudo).Allowed
	issued, err := s.tokens.Create(r.Context(), parent, auth.CreateRequest{
		Policies: req.Policies, Meta: req.Meta, DisplayName: req.DisplayName,
		NoParent: req.NoParent || orphan, NoDefaultPolicy: req.NoDefaultPolicy, Renewable: req.Renewable,
		TTL: time.Duration(ttl), ExplicitMaxTTL: time.Duration(req.ExplicitMaxTTL),
		NumUses: req.NumUses, BoundCIDRs: req.BoundCIDRs,
	}, canOrphan)
	if err != nil {
		return err
	}
	s.respondAuth(w, r, s.authFor(issued.ID, issued.Token))
	return nil
}

// authFor is the auth block describing a token whose value is id.
func (s *Server) authFor(id string, t auth.Token) *authBlock {
	return &authBlock{
		ClientToken: id, Accessor: t.Accessor,
		Policies: t.Policies, TokenPolicies: t.Policies, Metadata: t.Meta,
		LeaseDuration: s.leaseSeconds(t),
		Renewable:     t.Renewable && !t.ExpiresAt.IsZero(),
		TokenType:     "service", Orphan: t.ParentAccessor == "", NumUses: t.NumUses,
	}
}

// leaseSeconds is the lease of a token just issued or renewed, rounded to
// the second: the moments since it was stamped must not report a one-hour
// token as 3599 seconds, as truncating would.
func (s *Server) leaseSeconds(t auth.Token) int {
	if t.ExpiresAt.IsZero() {
		return 0
	}
	return int(max(t.ExpiresAt.Sub(s.now()), 0).Round(time.Second) / time.Second)
}

// tokenData is the lookup response, shaped as Vault's.
type tokenData struct {
	Accessor       string            `json:"accessor"`
	CreationTime   int64             `json:"creation_time"`
	CreationTTL    int64             `json:"creation_ttl"`
	DisplayName    string            `json:"display_name"`
	EntityID       string            `json:"entity_id"`
	ExpireTime     *string           `json:"expire_time"`
	ExplicitMaxTTL int64             `json:"explicit_max_ttl"`
	ID             string            `json:"id,omitempty"`
	IssueTime      string            `json:"issue_time"`
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

func (s *Server) tokenData(id string, t auth.Token) tokenData {
	d := tokenData{
		Accessor: t.Accessor, CreationTime: t.CreatedAt.Unix(), CreationTTL: int64(t.TTL / time.Second),
		DisplayName: t.DisplayName, ExplicitMaxTTL: int64(t.ExplicitMaxTTL / time.Second), ID: id,
		IssueTime: t.CreatedAt.UTC().Format(time.RFC3339Nano), Meta: t.Meta, NumUses: t.NumUses,
		Orphan: t.ParentAccessor == "", Path: "auth/token/create", Policies: t.Policies,
		Renewable: t.Renewable && !t.ExpiresAt.IsZero(), TTL: int64(s.tokens.TTLRemaining(t) / time.Second),
		Type: "service", BoundCIDRs: t.BoundCIDRs,
	}
	switch {
	case t.AuthMethod != auth.MethodToken:
		d.Path = "auth/" + t.AuthMethod + "/login" // where a login token came from, as Vault reports it
	case slices.Contains(t.Policies, auth.RootPolicy) && t.ParentAccessor == "":
		d.Path = "auth/token/root"
	}
	if !t.ExpiresAt.IsZero() {
		e := t.ExpiresAt.UTC().Format(time.RFC3339Nano)
		d.ExpireTime = &e
	}
	return d
}

func (s *Server) handleTokenLookupSelf(w http.ResponseWriter, r *http.Request) error {
	st := stateOf(r.Context())
	s.respondData(w, r, s.tokenData(st.tokenID, *st.token))
	return nil
}

type tokenRequest struct {
	Token     string   `json:"token"`
	Accessor  string   `json:"accessor"`
	Increment Duration `json:"increment"`
}

// decodeTokenRequest reads {"token"} or {"accessor"}, whichever field is required.
func decodeTokenRequest(r *http.Request, field string) (tokenRequest, error) {
	var req tokenRequest
	if err := decodeBody(r, &req); err != nil {
		return req, err
	}
	if (field == "token" && req.Token == "") || (field == "accessor" && req.Accessor == "") {
		return req, fault.Invalidf("missing %q in request body", field)
	}
	return req, nil
}

func (s *Server) handleTokenLookup(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeTokenRequest(r, "token")
	if err != nil {
		return err
	}
	t, err := s.tokens.Lookup(r.Context(), req.Token)
	if err != nil {
		return err
	}
	s.respondData(w, r, s.tokenData(req.Token, t))
	return nil
}

func (s *Server) handleTokenLookupAccessor(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeTokenRequest(r, "accessor")
	if err != nil {
		return err
	}
	t, err := s.tokens.LookupAccessor(r.Context(), req.Accessor)
	if err != nil {
		return err
	}
	s.respondData(w, r, s.tokenData("", t))
	return nil
}

func (s *Server) handleTokenRenewSelf(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeTokenRequest(r, "")
	if err != nil {
		return err
	}
	st := stateOf(r.Context())
	return s.renew(w, r, *st.token, st.tokenID, req.Increment)
}

// renew extends t by increment and answers with its auth block; id is the
// token's value when the caller presented it, empty otherwise.
func (s *Server) renew(w http.ResponseWriter, r *http.Request, t auth.Token, id string, increment Duration) error {
	t, err := s.tokens.Renew(r.Context(), t, time.Duration(increment))
	if err != nil {
		return err
	}
	s.respondAuth(w, r, s.authFor(id, t))
	return nil
}

func (s *Server) handleTokenRenew(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeTokenRequest(r, "token")
	if err != nil {
		return err
	}
	t, err := s.tokens.Lookup(r.Context(), req.Token)
	if err != nil {
		return err
	}
	return s.renew(w, r, t, req.Token, req.Increment)
}

func (s *Server) handleTokenRenewAccessor(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeTokenRequest(r, "accessor")
	if err != nil {
		return err
	}
	t, err := s.tokens.LookupAccessor(r.Context(), req.Accessor)
	if err != nil {
		return err
	}
	return s.renew(w, r, t, "", req.Increment)
}

func (s *Server) handleTokenRevokeSelf(w http.ResponseWriter, r *http.Request) error {
	err := s.revoke(w, r, callerToken(r.Context()).Accessor)
	if errors.Is(err, auth.ErrTokenNotFound) {
		// The token authenticated this very request, so it is gone only
		// because that was its last use (or a concurrent revoke): it is as
		// revoked as the caller asked.
		respondNoContent(w)
		return nil
	}
	return err
}

func (s *Server) handleTokenRevoke(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeTokenRequest(r, "token")
	if err != nil {
		return err
	}
	accessor, err := s.tokens.AccessorOf(r.Context(), req.Token)
	if err != nil {
		return err
	}
	return s.revoke(w, r, accessor)
}

func (s *Server) handleTokenRevokeAccessor(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeTokenRequest(r, "accessor")
	if err != nil {
		return err
	}
	return s.revoke(w, r, req.Accessor)
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request, accessor string) error {
	revoked, err := s.tokens.Revoke(r.Context(), accessor)
	if err != nil {
		return err
	}
	s.log.Info("tokens revoked", "accessor", accessor, "count", len(revoked), "by_accessor", callerToken(r.Context()).Accessor)
	respondNoContent(w)
	return nil
}
