package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/secrethub/secrethub/server/auth"
	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/server/policy"
)

// roleResource names auth/approle/role/<name>[/<rest>] routes.
func roleResource(rest string) func(*http.Request) (string, error) {
	return func(r *http.Request) (string, error) {
		return "auth/approle/role/" + mux.Vars(r)["name"] + rest, nil
	}
}

// roleExists tells create from update for auth/approle/role/<name>.
func (s *Server) roleExists(ctx context.Context, resource string) (bool, error) {
	_, err := s.approle.Role(ctx, strings.TrimPrefix(resource, "auth/approle/role/"))
	if errors.Is(err, auth.ErrRoleNotFound) || fault.KindOf(err) == fault.Invalid {
		return false, nil
	}
	return err == nil, err
}

var (
	typeOfStrings   = reflect.TypeOf([]string(nil))
	typeOfStringMap = reflect.TypeOf(map[string]string(nil))
)

// stringList is a list given as a JSON list or as one comma-separated
// string, as Vault's clients send either.
type stringList []string

// UnmarshalJSON accepts ["a","b"] or "a,b".
func (l *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*l = nil
		for _, part := range strings.Split(one, ",") {
			if part = strings.TrimSpace(part); part != "" {
				*l = append(*l, part)
			}
		}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return &json.UnmarshalTypeError{Value: "value", Type: typeOfStrings}
	}
	*l = many
	return nil
}

// roleRequest is a role write. Besides the fields SecretHub uses it takes
// the standard fields Vault's clients send, accepting the values that mean
// what SecretHub does and refusing the rest with 400 (vaultRoleFields).
type roleRequest struct {
	RoleName           string      `json:"role_name"`
	RoleID             *string     `json:"role_id"`
	Policies           *stringList `json:"policies"`
	TokenPolicies      *stringList `json:"token_policies"`
	TokenTTL           *Duration   `json:"token_ttl"`
	TokenMaxTTL        *Duration   `json:"token_max_ttl"`
	TokenBoundCIDRs    *stringList `json:"token_bound_cidrs"`
	SecretIDTTL        *Duration   `json:"secret_id_ttl"`
	SecretIDNumUses    *int        `json:"secret_id_num_uses"`
	SecretIDBoundCIDRs *stringList `json:"secret_id_bound_cidrs"`

	BindSecretID         *bool     `json:"bind_secret_id"`
	TokenType            *string   `json:"token_type"`
	LocalSecretIDs       *bool     `json:"local_secret_ids"`
	TokenPeriod          *Duration `json:"token_period"`
	TokenNumUses         *int      `json:"token_num_uses"`
	TokenNoDefaultPolicy *bool     `json:"token_no_default_policy"`
	TokenExplicitMaxTTL  *Duration `json:"token_explicit_max_ttl"`
}

// vaultRoleFields checks the Vault fields SecretHub has no setting for:
// each may only be given with the value that describes what SecretHub
// does. It returns the token_max_ttl to use, token_explicit_max_ttl
// standing in for it (SecretHub's token_max_ttl is a hard cap, as Vault's
// explicit one is).
func (req *roleRequest) vaultRoleFields() (*Duration, error) {
	switch {
	case req.BindSecretID != nil && !*req.BindSecretID:
		return nil, fault.Invalidf("bind_secret_id: secret IDs are always required (only true is accepted)")
	case req.LocalSecretIDs != nil && *req.LocalSecretIDs:
		return nil, fault.Invalidf("local_secret_ids is not supported (only false is accepted)")
	case req.TokenPeriod != nil && *req.TokenPeriod != 0:
		return nil, fault.Invalidf("token_period is not supported: periodic tokens do not exist here (only 0 is accepted)")
	case req.TokenNumUses != nil && *req.TokenNumUses != 0:
		return nil, fault.Invalidf("token_num_uses is not supported (only 0 is accepted)")
	case req.TokenNoDefaultPolicy != nil && *req.TokenNoDefaultPolicy:
		return nil, fault.Invalidf("token_no_default_policy is not supported: login tokens always carry the default policy (only false is accepted)")
	}
	if req.TokenType != nil {
		switch *req.TokenType {
		case "", "default", "service":
		default:
			return nil, fault.Invalidf("token_type %q is not supported (only \"service\" or \"default\", which is service)", fault.Input(clip(*req.TokenType)))
		}
	}
	maxTTL := req.TokenMaxTTL
	if req.TokenExplicitMaxTTL != nil {
		if maxTTL != nil && *maxTTL != *req.TokenExplicitMaxTTL {
			return nil, fault.Invalidf("token_max_ttl and token_explicit_max_ttl differ: they are one setting here, give one or the same value")
		}
		maxTTL = req.TokenExplicitMaxTTL
	}
	return maxTTL, nil
}

// policies returns the role's policies normalized (auth.RolePolicies), or
// nil when the write leaves them as they are. policies and token_policies
// are the same setting, as in Vault (a role read shows both): given
// together they must agree.
func (req *roleRequest) policies() (*[]string, error) {
	var out *[]string
	for _, l := range []*stringList{req.Policies, req.TokenPolicies} {
		if l == nil {
			continue
		}
		normalized, err := auth.RolePolicies(*l)
		if err != nil {
			return nil, err
		}
		if out != nil && !slices.Equal(*out, normalized) {
			return nil, fault.Invalidf("policies and token_policies differ: they are one setting, give one or the same list")
		}
		out = &normalized
	}
	return out, nil
}

func durationPtr(d *Duration) *time.Duration {
	if d == nil {
		return nil
	}
	v := time.Duration(*d)
	return &v
}

func listPtr(l *stringList) *[]string {
	if l == nil {
		return nil
	}
	v := []string(*l)
	return &v
}

func (s *Server) handleRoleWrite(w http.ResponseWriter, r *http.Request) error {
	name := mux.Vars(r)["name"]
	var req roleRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.RoleName != "" && req.RoleName != name {
		return fault.Invalidf("role_name %q does not match %q in the path", fault.Input(clip(req.RoleName)), fault.Input(clip(name)))
	}
	maxTTL, err := req.vaultRoleFields()
	if err != nil {
		return err
	}
	policies, err := req.policies()
	if err != nil {
		return err
	}
	if policies != nil {
		if err := s.checkRoleGrant(r, *policies); err != nil {
			return err
		}
	}
	st := stateOf(r.Context())
	_, err = s.approle.WriteRole(r.Context(), name, auth.RoleSettings{
		RoleID:   req.RoleID,
		Policies: policies, TokenTTL: durationPtr(req.TokenTTL), TokenMaxTTL: durationPtr(maxTTL),
		TokenBoundCIDRs: listPtr(req.TokenBoundCIDRs), SecretIDTTL: durationPtr(req.SecretIDTTL),
		SecretIDNumUses: req.SecretIDNumUses, SecretIDBoundCIDRs: listPtr(req.SecretIDBoundCIDRs),
		// Allowed to create, not to update (or the reverse): the write
		// itself refuses an existing (or a missing) role, in its own
		// transaction.
		CreateOnly: st.createOnly,
		UpdateOnly: st.updateOnly,
	})
	if err != nil {
		return err
	}
	s.log.Info("approle role written", "role", name, "by_accessor", callerToken(r.Context()).Accessor)
	respondNoContent(w)
	return nil
}

// checkRoleGrant applies token creation's rule to the policies a role
// write gives (normalized by auth.RolePolicies): a login with the role
// gets them, so a caller may only give policies its own token has, plus
// default, unless its token has root or it is allowed sudo, together with
// the write, on the role (auth/approle/role/<name>). Otherwise anyone
// allowed to write roles could make one with any policy and log in with it.
func (s *Server) checkRoleGrant(r *http.Request, policies []string) error {
	caller := callerToken(r.Context())
	if slices.Contains(caller.Policies, auth.RootPolicy) {
		return nil
	}
	i := slices.IndexFunc(policies, func(p string) bool {
		return p != auth.DefaultPolicy && !slices.Contains(caller.Policies, p)
	})
	if i < 0 {
		return nil
	}
	write := policy.Update
	if stateOf(r.Context()).createOnly {
		write = policy.Create
	}
	resource := resourceOf(r)
	if s.decide(r, resource, write|policy.Sudo).Allowed {
		return nil
	}
	return fault.Newf(fault.Denied, "permission denied: a role can only be given the default policy and policies "+
		"the caller's token has, unless the caller has sudo on "+resource+" (%v is not one of the caller's)", fault.Input(fault.Clip(policies[i], 128)))
}

func seconds(d time.Duration) int64 { return int64(d / time.Second) }

func (s *Server) handleRoleRead(w http.ResponseWriter, r *http.Request) error {
	role, err := s.approle.Role(r.Context(), mux.Vars(r)["name"])
	if err != nil {
		return err
	}
	s.respondData(w, r, map[string]any{
		"role_name": role.Name, "policies": nonNil(role.Policies), "token_policies": nonNil(role.Policies),
		"token_ttl": seconds(role.TokenTTL), "token_max_ttl": seconds(role.TokenMaxTTL),
		"token_bound_cidrs": nonNil(role.TokenBoundCIDRs), "secret_id_ttl": seconds(role.SecretIDTTL),
		"secret_id_num_uses": role.SecretIDNumUses, "secret_id_bound_cidrs": nonNil(role.SecretIDBoundCIDRs),
		// Vault's fields, with the one value each accepts on a write, so a
		// role read can be written back unchanged.
		"bind_secret_id": true, "local_secret_ids": false, "token_type": "default", "token_period": 0,
		"token_num_uses": 0, "token_no_default_policy": false, "token_explicit_max_ttl": seconds(role.TokenMaxTTL),
	})
	return nil
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func (s *Server) handleRoleDelete(w http.ResponseWriter, r *http.Request) error {
	name := mux.Vars(r)["name"]
	if err := s.approle.DeleteRole(r.Context(), name); err != nil && !errors.Is(err, auth.ErrRoleNotFound) {
		return err
	}
	s.log.Info("approle role deleted", "role", name, "by_accessor", callerToken(r.Context()).Accessor)
	respondNoContent(w)
	return nil
}

// respondKeys answers a LIST: data.keys, or 404 when there is nothing, as
// Vault does.
func (s *Server) respondKeys(w http.ResponseWriter, r *http.Request, keys []string) error {
	if len(keys) == 0 {
		return fault.New(fault.NotFound, "nothing to list")
	}
	s.respondData(w, r, map[string]any{"keys": keys})
	return nil
}

func (s *Server) handleRoleList(w http.ResponseWriter, r *http.Request) error {
	names, err := s.approle.ListRoles(r.Context())
	if err != nil {
		return err
	}
	return s.respondKeys(w, r, names)
}

func (s *Server) handleRoleIDRead(w http.ResponseWriter, r *http.Request) error {
	id, err := s.approle.RoleID(r.Context(), mux.Vars(r)["name"])
	if err != nil {
		return err
	}
	s.respondData(w, r, map[string]any{"role_id": id})
	return nil
}

func (s *Server) handleRoleIDWrite(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		RoleID string `json:"role_id"`
	}
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := s.approle.SetRoleID(r.Context(), mux.Vars(r)["name"], req.RoleID); err != nil {
		return err
	}
	respondNoContent(w)
	return nil
}

// secretIDMetadata is a secret ID's metadata: an object, or (as Vault's
// clients send it) a string holding a JSON object.
type secretIDMetadata map[string]string

// UnmarshalJSON accepts {"k":"v"} or "{\"k\":\"v\"}".
func (m *secretIDMetadata) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		if strings.TrimSpace(s) == "" {
			*m = nil
			return nil
		}
		b = []byte(s)
	}
	var obj map[string]string
	if err := json.Unmarshal(b, &obj); err != nil {
		return &json.UnmarshalTypeError{Value: "value", Type: typeOfStringMap}
	}
	*m = obj
	return nil
}

type secretIDRequest struct {
	Metadata secretIDMetadata `json:"metadata"`
	CIDRList stringList       `json:"cidr_list"`
	TTL      Duration         `json:"ttl"`
	NumUses  int              `json:"num_uses"`
}

func (s *Server) handleSecretIDCreate(w http.ResponseWriter, r *http.Request) error {
	var req secretIDRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	name := mux.Vars(r)["name"]
	sid, err := s.approle.NewSecretID(r.Context(), name, auth.SecretIDRequest{
		Metadata: req.Metadata, CIDRs: req.CIDRList, TTL: time.Duration(req.TTL), NumUses: req.NumUses,
	})
	if err != nil {
		return err
	}
	s.log.Info("approle secret id issued", "role", name, "secret_id_accessor", sid.Accessor, "by_accessor", callerToken(r.Context()).Accessor)
	s.respondData(w, r, map[string]any{
		"secret_id": sid.ID, "secret_id_accessor": sid.Accessor,
		"secret_id_ttl": seconds(sid.TTL), "secret_id_num_uses": sid.NumUses,
	})
	return nil
}

func (s *Server) handleSecretIDList(w http.ResponseWriter, r *http.Request) error {
	accessors, err := s.approle.ListSecretIDAccessors(r.Context(), mux.Vars(r)["name"])
	if err != nil {
		return err
	}
	return s.respondKeys(w, r, accessors)
}

type secretIDAccessorRequest struct {
	SecretIDAccessor string `json:"secret_id_accessor"`
}

func decodeSecretIDAccessor(r *http.Request) (string, error) {
	var req secretIDAccessorRequest
	if err := decodeBody(r, &req); err != nil {
		return "", err
	}
	if req.SecretIDAccessor == "" {
		return "", fault.Invalidf("missing \"secret_id_accessor\" in request body")
	}
	return req.SecretIDAccessor, nil
}

func (s *Server) handleSecretIDLookup(w http.ResponseWriter, r *http.Request) error {
	accessor, err := decodeSecretIDAccessor(r)
	if err != nil {
		return err
	}
	info, err := s.approle.LookupSecretID(r.Context(), mux.Vars(r)["name"], accessor)
	if err != nil {
		return err
	}
	ttl := int64(0)
	if !info.ExpiresAt.IsZero() {
		ttl = seconds(max(info.ExpiresAt.Sub(s.now()), 0))
	}
	s.respondData(w, r, map[string]any{
		"secret_id_accessor": info.Accessor, "creation_time": formatTime(info.CreatedAt),
		"expiration_time": formatTime(info.ExpiresAt), "secret_id_num_uses": info.NumUses,
		"secret_id_ttl": ttl, "cidr_list": nonNil(info.CIDRs), "metadata": info.Metadata,
	})
	return nil
}

func (s *Server) handleSecretIDDestroy(w http.ResponseWriter, r *http.Request) error {
	accessor, err := decodeSecretIDAccessor(r)
	if err != nil {
		return err
	}
	if err := s.approle.DestroySecretID(r.Context(), mux.Vars(r)["name"], accessor); err != nil {
		return err
	}
	respondNoContent(w)
	return nil
}

type appRoleLoginRequest struct {
	RoleID   string `json:"role_id"`
	SecretID string `json:"secret_id"`
}

// handleAppRoleLogin exchanges a role_id and secret_id for a token with the
// role's policies. Every failure is the same 403, whichever part was wrong.
func (s *Server) handleAppRoleLogin(w http.ResponseWriter, r *http.Request) error {
	var req appRoleLoginRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	issued, role, err := s.approle.Login(r.Context(), req.RoleID, req.SecretID, stateOf(r.Context()).clientIP)
	if err != nil {
		return err
	}
	s.log.Info("approle login", "role", role.Name, "accessor", issued.Token.Accessor)
	s.respondAuth(w, r, s.authFor(issued.ID, issued.Token))
	return nil
}
