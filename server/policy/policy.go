// Package policy decides whether a request may touch a resource. It is pure:
// no I/O, no clocks of its own, no globals that change. Deny is the default:
// a request is allowed only when some rule allows it and no matching rule
// denies it.
package policy

import (
	"net/netip"
	"strings"
	"time"
)

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

// CapabilityNamed returns the capability a policy document calls name.
func CapabilityNamed(name string) (Capability, bool) {
	for _, n := range capabilityNames {
		if n.name == name {
			return n.c, true
		}
	}
	return 0, false
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
// path pattern matches, when its conditions hold.
type Rule struct {
	Path         string
	Capabilities Capability
	Deny         bool
	// Conditions, when set, must all hold for the rule to apply at all.
	Conditions *Conditions
}

// Conditions restrict when and from where a rule applies.
type Conditions struct {
	// TimeOfDay, when set, bounds the hour (0-23, inclusive; From > To
	// wraps past midnight) in the policy's time zone.
	TimeOfDay        bool
	FromHour, ToHour int
	// Days is a set of weekdays (bit n is time.Weekday(n)); 0 means any day.
	Days uint8
	// SourceIPs, when not empty, must contain the client's address.
	SourceIPs []netip.Prefix
}

// Condition names a condition kind, for explaining a denial.
type Condition uint8

// The condition kinds.
const (
	NoCondition Condition = iota
	TimeOfDay
	DaysOfWeek
	SourceIP
)

// String is the condition's name as written in a policy document.
func (c Condition) String() string {
	switch c {
	case TimeOfDay:
		return "time_of_day"
	case DaysOfWeek:
		return "days_of_week"
	case SourceIP:
		return "source_ip"
	}
	return ""
}

// failing returns the first condition that does not hold at t (already in
// the policy's time zone) for client, or NoCondition.
func (c *Conditions) failing(t time.Time, client netip.Addr) Condition {
	if c.TimeOfDay {
		h := t.Hour()
		in := c.FromHour <= h && h <= c.ToHour
		if c.FromHour > c.ToHour {
			in = h >= c.FromHour || h <= c.ToHour
		}
		if !in {
			return TimeOfDay
		}
	}
	if c.Days != 0 && c.Days&(1<<uint(t.Weekday())) == 0 {
		return DaysOfWeek
	}
	if len(c.SourceIPs) > 0 {
		in := false
		for _, p := range c.SourceIPs {
			if p.Contains(client) {
				in = true
				break
			}
		}
		if !in {
			return SourceIP
		}
	}
	return NoCondition
}

// Policy is a named list of rules.
type Policy struct {
	Name  string
	Rules []Rule
	// Location is the time zone conditions are read in (nil: UTC).
	Location *time.Location
}

// Request is one authorization question.
type Request struct {
	// Resource is what the request touches: a bare secret path ("prod/db")
	// or an API path after /v1/ ("sys/seal", "auth/token/create").
	Resource string
	// Capability is the operation, possibly combined with Sudo.
	Capability Capability
	// ClientIP and Time are what conditions are checked against.
	ClientIP netip.Addr
	Time     time.Time
}

// Decision is the answer, with the rule that decided it.
type Decision struct {
	Allowed bool
	// Policy and Rule name the deciding rule: the deny that matched, the
	// allow that completed the grant, or, for a denial caused by a failed
	// condition, the rule whose condition failed. Rule is -1 when none.
	Policy string
	Rule   int
	// Failed is the condition that kept a matching rule from applying,
	// when that is why the request was denied.
	Failed Condition
}

// Evaluate decides req against the given policies: a matching deny rule for
// any requested capability wins; otherwise every requested capability must
// be granted by some matching allow rule; no match is a denial. A rule whose
// conditions do not hold does not match.
func Evaluate(policies []*Policy, req Request) Decision {
	granted := Capability(0)
	allow := Decision{Rule: -1}
	failed := Decision{Rule: -1}
	for _, p := range policies {
		if p == nil {
			continue
		}
		for i := range p.Rules {
			r := &p.Rules[i]
			if r.Capabilities&req.Capability == 0 || !Match(r.Path, req.Resource) {
				continue
			}
			if r.Conditions != nil {
				if c := r.Conditions.failing(p.localTime(req.Time), req.ClientIP); c != NoCondition {
					// Only an allow kept from applying explains a denial; a
					// deny that does not apply explains nothing.
					if !r.Deny && failed.Failed == NoCondition {
						failed = Decision{Policy: p.Name, Rule: i, Failed: c}
					}
					continue
				}
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
		return failed
	}
	return allow
}

func (p *Policy) localTime(t time.Time) time.Time {
	if p.Location == nil {
		return t.UTC()
	}
	return t.In(p.Location)
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
// everything; "admin" may do everything too, including sudo operations, but
// what only root may do is enforced outside policies (only a root token can
// mint root tokens; no one can change a built-in policy); "default" is
// attached to every token and lets it manage itself.
var (
	rootPolicy = &Policy{Name: "root", Rules: []Rule{{Path: "*", Capabilities: All}}}

	adminPolicy = &Policy{Name: "admin", Rules: []Rule{{Path: "*", Capabilities: All}}}

	defaultPolicy = &Policy{Name: "default", Rules: []Rule{
		{Path: "auth/token/lookup-self", Capabilities: Read},
		{Path: "auth/token/renew-self", Capabilities: Update},
		{Path: "auth/token/revoke-self", Capabilities: Update},
	}}
)

// BuiltinNames lists the built-in policies, which cannot be written or deleted.
func BuiltinNames() []string { return []string{"admin", "default", "root"} }

// Builtin returns the built-in policy of that name, or nil. The policy is
// shared by every caller and must not be modified.
func Builtin(name string) *Policy {
	switch name {
	case rootPolicy.Name:
		return rootPolicy
	case adminPolicy.Name:
		return adminPolicy
	case defaultPolicy.Name:
		return defaultPolicy
	}
	return nil
}
