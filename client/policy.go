package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Policies is the policies API under /v1/policies: named documents of
// rules that grant or deny capabilities on paths.
type Policies struct{ c *Client }

// Policy returns the policies API.
func (c *Client) Policy() *Policies { return &Policies{c: c} }

// PolicyDocument is a policy as it is written: a name and rules. Times in
// its conditions are in Timezone (an IANA name; empty means UTC).
type PolicyDocument struct {
	Name     string       `json:"name,omitempty"`
	Timezone string       `json:"timezone,omitempty"`
	Rules    []PolicyRule `json:"rules"`
}

// PolicyRule grants (effect "allow", the default) or refuses (effect
// "deny") capabilities on the resources its path pattern matches, when all
// its conditions hold.
type PolicyRule struct {
	// Path is a bare secret path ("prod/db") or an API path after /v1/
	// ("sys/seal"); a trailing "*" matches any remainder and a "+" segment
	// exactly one segment.
	Path string `json:"path"`
	// Capabilities are from create, read, update, delete, list and sudo.
	Capabilities []string `json:"capabilities"`
	// Effect is "allow" or "deny"; empty means allow.
	Effect     string            `json:"effect,omitempty"`
	Conditions *PolicyConditions `json:"conditions,omitempty"`
}

// PolicyConditions must all hold for a rule to apply.
type PolicyConditions struct {
	// TimeOfDay is [start, end], whole hours 0–23 inclusive; [22, 6]
	// wraps midnight. (A slice, not an array, so that a document with the
	// wrong number of hours reaches the server's check instead of being
	// padded or cut to two.)
	TimeOfDay []int `json:"time_of_day,omitempty"`
	// DaysOfWeek are from mon, tue, wed, thu, fri, sat and sun.
	DaysOfWeek []string `json:"days_of_week,omitempty"`
	// SourceIP are the CIDRs the client's address must be in.
	SourceIP CIDRList `json:"source_ip,omitempty"`
}

// CIDRList is a list of CIDRs that JSON may also spell as one string: a
// one-element list is written as a string, as the runbook writes it.
type CIDRList []string

// UnmarshalJSON accepts a string or a list of strings.
func (l *CIDRList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = CIDRList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("source_ip must be a CIDR or a list of CIDRs")
	}
	*l = many
	return nil
}

// MarshalJSON writes one CIDR as a string and several as a list.
func (l CIDRList) MarshalJSON() ([]byte, error) {
	if len(l) == 1 {
		return json.Marshal(l[0])
	}
	return json.Marshal([]string(l))
}

// PolicyInfo is a policy as read back: the document and whether it is one
// of the built-in policies (root, admin, default), which cannot be written
// or deleted.
type PolicyInfo struct {
	PolicyDocument
	Builtin bool `json:"builtin"`
}

func policyURL(name string) string { return "policies/" + url.PathEscape(name) }

// Write creates or replaces the policy named doc.Name.
func (p *Policies) Write(ctx context.Context, doc PolicyDocument) error {
	if doc.Name == "" {
		return errors.New("client: a policy to write needs a name")
	}
	return p.c.do(ctx, request{method: http.MethodPut, path: policyURL(doc.Name), body: doc}, nil)
}

// Read returns the policy called name; a missing one is an error matching
// ErrNotFound.
func (p *Policies) Read(ctx context.Context, name string) (*PolicyInfo, error) {
	var out PolicyInfo
	if err := p.c.data(ctx, request{method: http.MethodGet, path: policyURL(name)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// List returns the name of every policy, the built-in ones included.
func (p *Policies) List(ctx context.Context) ([]string, error) {
	return p.c.keys(ctx, "policies")
}

// Delete removes the policy called name; a policy that does not exist is
// not an error.
func (p *Policies) Delete(ctx context.Context, name string) error {
	return p.c.do(ctx, request{method: http.MethodDelete, path: policyURL(name)}, nil)
}

// PolicySimulateRequest asks whether a request would be allowed. Exactly
// one of Policies and Token says whose rules apply.
type PolicySimulateRequest struct {
	// Policies are policy names to evaluate together.
	Policies []string
	// Token is a token whose policies are evaluated.
	Token string
	// Path is the resource: a bare secret path or an API path after /v1/.
	Path string
	// Capability is one of create, read, update, delete, list and sudo.
	Capability string
	// SourceIP is the client address to assume (default: the caller's).
	SourceIP string
	// Time is the moment to assume (default: now).
	Time time.Time
}

// policySimulateBody is PolicySimulateRequest on the wire.
type policySimulateBody struct {
	Policies   []string `json:"policies,omitempty"`
	Token      string   `json:"token,omitempty"`
	Path       string   `json:"path"`
	Capability string   `json:"capability"`
	SourceIP   string   `json:"source_ip,omitempty"`
	Time       string   `json:"time,omitempty"`
}

// PolicySimulation is the decision a simulated request would get.
type PolicySimulation struct {
	Allowed bool `json:"allowed"`
	// Decision is "allow" or "deny".
	Decision string `json:"decision"`
	// Policy is the deciding policy, empty when no rule decided.
	Policy string `json:"policy"`
	// Rule is the deciding rule, nil when none matched.
	Rule *PolicySimulationRule `json:"rule"`
	// FailedCondition names the condition (time_of_day, days_of_week or
	// source_ip) that kept a rule from applying, if that is why.
	FailedCondition string `json:"failed_condition"`
	// Reason explains the decision in a sentence.
	Reason string `json:"reason"`
}

// PolicySimulationRule identifies the rule that decided a simulation.
type PolicySimulationRule struct {
	// Index is the rule's position in its policy, from 0.
	Index        int      `json:"index"`
	Path         string   `json:"path"`
	Capabilities []string `json:"capabilities"`
	Effect       string   `json:"effect"`
}

// Simulate evaluates req without performing it.
func (p *Policies) Simulate(ctx context.Context, req PolicySimulateRequest) (*PolicySimulation, error) {
	if (len(req.Policies) == 0) == (req.Token == "") {
		return nil, errors.New("client: a simulation needs either policies or a token, not both")
	}
	body := policySimulateBody{
		Policies: req.Policies, Token: req.Token, Path: req.Path, Capability: req.Capability, SourceIP: req.SourceIP,
	}
	if !req.Time.IsZero() {
		body.Time = req.Time.Format(time.RFC3339Nano)
	}
	var out PolicySimulation
	if err := p.c.data(ctx, request{method: http.MethodPost, path: "policies/simulate", body: body}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// keys calls LIST on path and returns data.keys.
func (c *Client) keys(ctx context.Context, path string) ([]string, error) {
	var out struct {
		Keys []string `json:"keys"`
	}
	if err := c.data(ctx, request{method: "LIST", path: path}, &out); err != nil {
		return nil, err
	}
	if out.Keys == nil {
		return nil, fmt.Errorf("client: LIST /v1/%s answered without keys", path)
	}
	return out.Keys, nil
}
