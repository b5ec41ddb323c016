package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"
	"unicode"

	"github.com/gorilla/mux"

	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/server/policy"
)

// policyResource names /v1/policies/<name> routes.
func policyResource(r *http.Request) (string, error) {
	name := mux.Vars(r)["name"]
	if err := policy.ValidateName(name); err != nil {
		return "", err
	}
	return "policies/" + name, nil
}

// policyResourceFromBody names POST /v1/policies by the name in its body.
// A body that names no valid policy is decided as the collection,
// "policies": a caller without rights learns nothing about their input,
// and one with rights gets the parse error from the handler.
func policyResourceFromBody(r *http.Request) (string, error) {
	doc, err := policyDocument(r)
	if errors.Is(err, errBodyTooLarge) {
		return "", err
	}
	if err != nil || policy.ValidateName(doc.Name) != nil {
		return "policies", nil
	}
	return "policies/" + doc.Name, nil
}

// policyDocument parses the request body as a policy document.
func policyDocument(r *http.Request) (policy.Document, error) {
	body, err := readBody(r)
	if err != nil {
		return policy.Document{}, err
	}
	return policy.ParseDocument(body)
}

// policyExists tells create from update for policies/<name> resources.
func (s *Server) policyExists(ctx context.Context, resource string) (bool, error) {
	return s.acl.Exists(ctx, strings.TrimPrefix(resource, "policies/"))
}

// handlePolicyWrite creates or replaces a policy: POST /v1/policies (name
// in the body) or PUT|POST /v1/policies/<name> (a name in the body must
// match).
func (s *Server) handlePolicyWrite(w http.ResponseWriter, r *http.Request) error {
	doc, err := policyDocument(r)
	if err != nil {
		return err
	}
	if name, ok := mux.Vars(r)["name"]; ok {
		if doc.Name != "" && doc.Name != name {
			return fault.Invalidf("name %q in the body does not match %q in the path", fault.Input(clip(doc.Name)), name)
		}
		doc.Name = name
	}
	st := stateOf(r.Context())
	switch {
	case st.createOnly:
		err = s.acl.Create(r.Context(), doc)
	case st.updateOnly:
		err = s.acl.Update(r.Context(), doc)
	default:
		_, err = s.acl.Put(r.Context(), doc)
	}
	if err != nil {
		return deniedOnRace(st, err)
	}
	s.log.Info("policy written", "policy", doc.Name, "by_accessor", callerToken(r.Context()).Accessor)
	respondNoContent(w)
	return nil
}

func (s *Server) handlePolicyList(w http.ResponseWriter, r *http.Request) error {
	names, err := s.acl.List(r.Context())
	if err != nil {
		return err
	}
	s.respondData(w, r, map[string]any{"keys": names})
	return nil
}

// policyOut is a policy as read back.
type policyOut struct {
	policy.Document
	Builtin bool `json:"builtin"`
}

func (s *Server) handlePolicyRead(w http.ResponseWriter, r *http.Request) error {
	doc, builtin, err := s.acl.Get(r.Context(), mux.Vars(r)["name"])
	if err != nil {
		return err
	}
	s.respondData(w, r, policyOut{Document: doc, Builtin: builtin})
	return nil
}

func (s *Server) handlePolicyDelete(w http.ResponseWriter, r *http.Request) error {
	name := mux.Vars(r)["name"]
	if err := s.acl.Delete(r.Context(), name); err != nil {
		return err
	}
	s.log.Info("policy deleted", "policy", name, "by_accessor", callerToken(r.Context()).Accessor)
	respondNoContent(w)
	return nil
}

type simulateRequest struct {
	Policies []string `json:"policies"`
	Token    string   `json:"token"`
	Path     string   `json:"path"`
	// Capability is one capability or several joined by commas
	// ("update,sudo", as a sudo route asks).
	Capability string `json:"capability"`
	SourceIP   string `json:"source_ip"`
	Time       string `json:"time"`
}

// maxSimulatedPolicies bounds how many policies one simulation names.
const maxSimulatedPolicies = 64

type simulatedRule struct {
	Index        int      `json:"index"`
	Path         string   `json:"path"`
	Capabilities []string `json:"capabilities"`
	Effect       string   `json:"effect"`
}

type simulateResponse struct {
	Allowed         bool           `json:"allowed"`
	Decision        string         `json:"decision"`
	Policy          string         `json:"policy"`
	Rule            *simulatedRule `json:"rule"`
	FailedCondition string         `json:"failed_condition"`
	Reason          string         `json:"reason"`
}

// handlePolicySimulate answers what a decision would be, and why, for some
// policies (or a token's) on a resource, from an address, at a time.
func (s *Server) handlePolicySimulate(w http.ResponseWriter, r *http.Request) error {
	var req simulateRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	q, names, err := s.simulation(r, req)
	if err != nil {
		return err
	}
	policies, err := s.acl.Resolve(r.Context(), names)
	if err != nil {
		return err
	}
	d := policy.Evaluate(policies, q)
	s.respondData(w, r, explain(d, policies, q, req.Capability))
	return nil
}

// simulation turns a simulate request into the question and policy names.
func (s *Server) simulation(r *http.Request, req simulateRequest) (policy.Request, []string, error) {
	var q policy.Request
	switch {
	case req.Path == "":
		return q, nil, fault.Invalidf("path is required: the resource to decide on (prod/db, sys/seal, …)")
	case req.Token != "" && len(req.Policies) > 0:
		return q, nil, fault.Invalidf("give policies or token, not both")
	case req.Token == "" && len(req.Policies) == 0:
		return q, nil, fault.Invalidf("give policies (a list of names) or token")
	}
	var c policy.Capability
	for _, name := range strings.Split(req.Capability, ",") {
		one, ok := policy.CapabilityNamed(strings.TrimSpace(name))
		if !ok {
			return q, nil, fault.Invalidf("capability %q is not one (or a comma-separated list) of create, read, update, delete, list, sudo", fault.Input(clip(req.Capability)))
		}
		c |= one
	}
	if strings.HasPrefix(req.Path, "/") || strings.ContainsFunc(req.Path, unicode.IsSpace) {
		return q, nil, fault.Invalidf("path %q: name a resource without a leading \"/\" (prod/db, sys/seal)", fault.Input(clip(req.Path)))
	}
	q = policy.Request{Resource: req.Path, Capability: c, ClientIP: stateOf(r.Context()).clientIP, Time: s.now()}
	if req.SourceIP != "" {
		ip, err := netip.ParseAddr(req.SourceIP)
		if err != nil {
			return q, nil, fault.Invalidf("source_ip %q is not an IP address", fault.Input(clip(req.SourceIP)))
		}
		q.ClientIP = ip.Unmap()
	}
	if req.Time != "" {
		at, err := time.Parse(time.RFC3339, req.Time)
		if err != nil {
			return q, nil, fault.Invalidf("time %q is not an RFC 3339 time (2026-11-30T09:00:00Z)", fault.Input(clip(req.Time)))
		}
		q.Time = at
	}
	// A simulation reveals what it names: a token's validity and policies
	// need the right to look tokens up; a policy's rules, the right to
	// read it.
	names := req.Policies
	if req.Token != "" {
		if !s.decide(r, "auth/token/lookup", policy.Update).Allowed {
			return q, nil, fault.New(fault.Denied, "permission denied: simulating for a token needs update on auth/token/lookup")
		}
		t, err := s.tokens.Lookup(r.Context(), req.Token)
		if err != nil {
			return q, nil, err
		}
		names = t.Policies
	}
	if len(req.Policies) > maxSimulatedPolicies {
		return q, nil, fault.Invalidf("at most %d policies per simulation", maxSimulatedPolicies)
	}
	for _, name := range req.Policies {
		if err := policy.ValidateName(name); err != nil {
			return q, nil, err
		}
		if !s.decide(r, "policies/"+name, policy.Read).Allowed {
			return q, nil, fault.Newf(fault.Denied, "permission denied: simulating policy %v needs read on that policy (its path under policies/)", fault.Input(name))
		}
	}
	return q, names, nil
}

func explain(d policy.Decision, policies []*policy.Policy, q policy.Request, capName string) simulateResponse {
	out := simulateResponse{Allowed: d.Allowed, Decision: "deny", Policy: d.Policy, FailedCondition: d.Failed.String()}
	if d.Allowed {
		out.Decision = "allow"
	}
	var rule *policy.Rule
	for _, p := range policies {
		if p.Name == d.Policy && d.Rule >= 0 && d.Rule < len(p.Rules) {
			rule = &p.Rules[d.Rule]
		}
	}
	if rule != nil {
		effect := "allow"
		if rule.Deny {
			effect = "deny"
		}
		out.Rule = &simulatedRule{Index: d.Rule, Path: rule.Path, Capabilities: rule.Capabilities.Names(), Effect: effect}
	}
	switch {
	case d.Allowed:
		out.Reason = fmt.Sprintf("rule %d of policy %q (path %q) allows %s on %q", d.Rule, d.Policy, rule.Path, capName, q.Resource)
	case d.Failed != policy.NoCondition:
		out.Reason = fmt.Sprintf("rule %d of policy %q matches %q, but its %s condition does not hold, and no other rule allows %s", d.Rule, d.Policy, q.Resource, d.Failed, capName)
	case rule != nil:
		out.Reason = fmt.Sprintf("rule %d of policy %q (path %q) denies %s on %q", d.Rule, d.Policy, rule.Path, capName, q.Resource)
	default:
		out.Reason = fmt.Sprintf("no rule of these policies allows %s on %q", capName, q.Resource)
	}
	return out
}
