package pki

import (
	"encoding/json"
	"regexp"
	"strings"
	"time"

	"github.com/secrethub/secrethub/server/fault"
)

// Default lifetimes of a role that sets none.
const (
	DefaultTTL    = 30 * 24 * time.Hour
	DefaultMaxTTL = 365 * 24 * time.Hour
)

// Role is what issue and sign under a role may do.
type Role struct {
	Name             string        `json:"-"`
	IssuerID         string        `json:"issuer_id"`
	AllowedDomains   []string      `json:"allowed_domains"`
	AllowSubdomains  bool          `json:"allow_subdomains"`
	AllowBareDomains bool          `json:"allow_bare_domains"`
	AllowAnyName     bool          `json:"allow_any_name"`
	AllowIPSANs      bool          `json:"allow_ip_sans"`
	ServerFlag       bool          `json:"server_flag"`
	ClientFlag       bool          `json:"client_flag"`
	KeyType          string        `json:"key_type"`
	KeyBits          int           `json:"key_bits"`
	TTL              time.Duration `json:"ttl"`
	MaxTTL           time.Duration `json:"max_ttl"`
}

// RoleSettings is a role write: nil fields take the default of a new role
// (Vault's: server and client flags on, IP SANs allowed, rsa 2048).
type RoleSettings struct {
	IssuerID         *string
	AllowedDomains   *[]string
	AllowSubdomains  *bool
	AllowBareDomains *bool
	AllowAnyName     *bool
	AllowIPSANs      *bool
	ServerFlag       *bool
	ClientFlag       *bool
	KeyType          *string
	KeyBits          *int
	TTL              *time.Duration
	MaxTTL           *time.Duration
}

// newRole applies settings to a new role's defaults and checks the result.
func newRole(name string, s RoleSettings) (Role, error) {
	r := Role{Name: name, AllowIPSANs: true, ServerFlag: true, ClientFlag: true, KeyType: KeyRSA}
	set := func(dst *bool, v *bool) {
		if v != nil {
			*dst = *v
		}
	}
	if s.IssuerID != nil {
		r.IssuerID = *s.IssuerID
	}
	if s.AllowedDomains != nil {
		r.AllowedDomains = *s.AllowedDomains
	}
	set(&r.AllowSubdomains, s.AllowSubdomains)
	set(&r.AllowBareDomains, s.AllowBareDomains)
	set(&r.AllowAnyName, s.AllowAnyName)
	set(&r.AllowIPSANs, s.AllowIPSANs)
	set(&r.ServerFlag, s.ServerFlag)
	set(&r.ClientFlag, s.ClientFlag)
	if s.KeyType != nil {
		r.KeyType = *s.KeyType
	}
	if s.KeyBits != nil {
		r.KeyBits = *s.KeyBits
	}
	if s.TTL != nil {
		r.TTL = *s.TTL
	}
	if s.MaxTTL != nil {
		r.MaxTTL = *s.MaxTTL
	}
	return r, r.check()
}

var roleName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// CheckRoleName refuses names that could not be a single path segment.
func CheckRoleName(name string) error {
	if !roleName.MatchString(name) {
		return fault.Invalidf("role name %q is not valid: use up to 128 letters, digits, '.', '_' or '-'", fault.Input(clip(name)))
	}
	return nil
}

func (r *Role) check() error {
	if err := CheckRoleName(r.Name); err != nil {
		return err
	}
	spec, err := KeySpec{r.KeyType, r.KeyBits}.Normalize(true)
	if err != nil {
		return err
	}
	r.KeyType, r.KeyBits = spec.Type, spec.Bits
	for i, d := range r.AllowedDomains {
		d = strings.ToLower(strings.TrimSpace(d))
		if !validHostname(d, false) {
			return fault.Invalidf("allowed_domains: %q is not a domain name", fault.Input(clip(d)))
		}
		r.AllowedDomains[i] = d
	}
	if r.MaxTTL == 0 {
		r.MaxTTL = DefaultMaxTTL
	}
	if r.TTL == 0 {
		r.TTL = min(DefaultTTL, r.MaxTTL)
	}
	if r.TTL > r.MaxTTL {
		return fault.Invalidf("ttl is longer than max_ttl")
	}
	if !r.ServerFlag && !r.ClientFlag {
		return fault.Invalidf("a role needs server_flag or client_flag: its certificates would be good for nothing")
	}
	return nil
}

// encodeRole is the stored document.
func encodeRole(r Role) (string, error) {
	b, err := json.Marshal(r)
	return string(b), err
}

func decodeRole(name, doc string) (Role, error) {
	r := Role{Name: name}
	err := json.Unmarshal([]byte(doc), &r)
	return r, err
}

var hostLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// validHostname reports whether name is a DNS name (lowercase), optionally
// with a leading "*." wildcard label.
func validHostname(name string, wildcard bool) bool {
	if wildcard {
		name = strings.TrimPrefix(name, "*.")
	}
	if name == "" || len(name) > 253 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if !hostLabel.MatchString(label) {
			return false
		}
	}
	return true
}
