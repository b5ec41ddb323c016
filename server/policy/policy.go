// Package policy decides whether a request may touch a resource. It is pure:
// no I/O, no clocks of its own, no globals that change. Deny is the default:
// a request is allowed only when some rule allows it and no matching rule
// denies it.
package policy

import "strings"

// Capability is a set of operations, as a bit mask.
type Capability uint8

// The capabilities a rule can grant or deny.
const (
	Create Capability = 1 << iota
	Read
	Update
	Delete
	List
	Sudo
)

// All is every capability.
const All = Create | Read | Update | Delete | List | Sudo

var capabilityNames = []struct {
	c    Capability
	name string
}{{Create, "create"}, {Read, "read"}, {Update, "update"}, {Delete, "delete"}, {List, "list"}, {Sudo, "sudo"}}

// String lists the capabilities in the set, comma separated.
func (c Capability) String() string {
	var parts []string
	for _, n := range capabilityNames {
		if c&n.c != 0 {
			parts = append(parts, n.name)
		}
	}
	return strings.Join(parts, ",")
}

// Names lists the capabilities in the set.
func (c Capability) Names() []string {
	var out []string
	for _, n := range capabilityNames {
		if c&n.c != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

// Rule grants (or, with Deny, refuses) capabilities on the resources its
// path pattern matches.
type Rule struct {
	Path         string
	Capabilities Capability
	Deny         bool
}

// Policy is a named list of rules.
type Policy struct {
	Name  string
	Rules []Rule
}

// Request is one authorization question.
type Request struct {
	// Resource is what the request touches: a bare secret path ("prod/db")
	// or an API path after /v1/ ("sys/seal", "auth/token/create").
	Resource string
	// Capability is the operation, possibly combined with Sudo.
	Capability Capability
}

// Decision is the answer, with the rule that decided it (if any).
type Decision struct {
	Allowed bool
	Policy  string // the deciding policy, empty when nothing matched
	Rule    int    // index of the deciding rule in that policy, -1 when none
}

// Evaluate decides req against the given policies: a matching deny rule for
// any requested capability wins; otherwise every requested capability must
// be granted by some matching allow rule; no match is a denial.
func Evaluate(policies []*Policy, req Request) Decision {
	granted := Capability(0)
	allow := Decision{Rule: -1}
	for _, p := range policies {
		if p == nil {
			continue
		}
		for i := range p.Rules {
			r := &p.Rules[i]
			if r.Capabilities&req.Capability == 0 || !Match(r.Path, req.Resource) {
				continue
			}
			if r.Deny {
				return Decision{Allowed: false, Policy: p.Name, Rule: i}
			}
			if granted&req.Capability != req.Capability {
				granted |= r.Capabilities
				allow = Decision{Allowed: true, Policy: p.Name, Rule: i}
			}
		}
	}
	if req.Capability == 0 || granted&req.Capability != req.Capability {
		return Decision{Rule: -1}
	}
	return allow
}

// Match reports whether a rule path matches a resource. A trailing "*"
// matches any remainder (including nothing); a "+" segment matches exactly
// one non-empty segment; everything else matches literally.
func Match(pattern, resource string) bool {
	atSegmentStart := true
	for len(pattern) > 0 {
		switch {
		case pattern == "*":
			return true
		case atSegmentStart && pattern[0] == '+' && (len(pattern) == 1 || pattern[1] == '/'):
			end := strings.IndexByte(resource, '/')
			if end < 0 {
				end = len(resource)
			}
			if end == 0 {
				return false
			}
			pattern, resource = pattern[1:], resource[end:]
			atSegmentStart = false
		default:
			if resource == "" || pattern[0] != resource[0] {
				return false
			}
			atSegmentStart = pattern[0] == '/'
			pattern, resource = pattern[1:], resource[1:]
		}
	}
	return resource == ""
}

// The built-in policies. "root" is attached only to root tokens and may do
// everything; "default" is attached to every token and lets it manage itself.
var (
	rootPolicy = &Policy{Name: "root", Rules: []Rule{{Path: "*", Capabilities: All}}}

	defaultPolicy = &Policy{Name: "default", Rules: []Rule{
		{Path: "auth/token/lookup-self", Capabilities: Read},
		{Path: "auth/token/renew-self", Capabilities: Update},
		{Path: "auth/token/revoke-self", Capabilities: Update},
	}}
)

// Builtin returns the built-in policy of that name, or nil. The policy is
// shared by every caller and must not be modified.
func Builtin(name string) *Policy {
	switch name {
	case rootPolicy.Name:
		return rootPolicy
	case defaultPolicy.Name:
		return defaultPolicy
	}
	return nil
}
