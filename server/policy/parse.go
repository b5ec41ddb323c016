package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // policies name IANA zones; the binary must not depend on the host's zoneinfo
	"unicode"

	"github.com/secrethub/secrethub/server/fault"
)

// Document is a policy as written and read over the API (runbook Phase 5.2).
type Document struct {
	Name     string         `json:"name"`
	Timezone string         `json:"timezone,omitempty"`
	Rules    []RuleDocument `json:"rules"`
}

// RuleDocument is one rule as written.
type RuleDocument struct {
	Path         string              `json:"path"`
	Capabilities []string            `json:"capabilities"`
	Effect       string              `json:"effect,omitempty"`
	Conditions   *ConditionsDocument `json:"conditions,omitempty"`
}

// ConditionsDocument is a rule's conditions as written. SourceIP is one
// CIDR or a list of them.
type ConditionsDocument struct {
	TimeOfDay  []int    `json:"time_of_day,omitempty"`
	DaysOfWeek []string `json:"days_of_week,omitempty"`
	SourceIP   []string `json:"source_ip,omitempty"`
}

// Limits on what a policy may hold.
const (
	MaxNameLength = 128
	MaxRules      = 1000
	MaxPathLength = 512
)

var days = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"} // time.Weekday order

// ParseDocument reads a policy document strictly: unknown fields and wrong
// types are errors that name the field (rules[2].conditions.source_ip, …).
// The result is not validated; Compile does that.
func ParseDocument(data []byte) (Document, error) {
	var doc Document
	top, err := object(data, "the policy")
	if err != nil {
		return doc, err
	}
	for key, raw := range top {
		switch key {
		case "name":
			err = field(raw, key, &doc.Name)
		case "timezone":
			err = field(raw, key, &doc.Timezone)
		case "rules":
			doc.Rules, err = parseRules(raw)
		default:
			err = fault.Invalidf("unknown field %q in the policy (fields: name, timezone, rules)", key)
		}
		if err != nil {
			return doc, err
		}
	}
	return doc, nil
}

func parseRules(raw json.RawMessage) ([]RuleDocument, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fault.Invalidf("rules must be a list of rules")
	}
	if len(items) > MaxRules {
		return nil, fault.Invalidf("rules: at most %d rules per policy", MaxRules)
	}
	rules := make([]RuleDocument, len(items))
	for i, item := range items {
		at := fmt.Sprintf("rules[%d]", i)
		fields, err := object(item, at)
		if err != nil {
			return nil, err
		}
		r := &rules[i]
		for key, raw := range fields {
			name := at + "." + key
			switch key {
			case "path":
				err = field(raw, name, &r.Path)
			case "capabilities":
				err = field(raw, name, &r.Capabilities)
			case "effect":
				err = field(raw, name, &r.Effect)
			case "conditions":
				r.Conditions, err = parseConditions(raw, name)
			default:
				err = fault.Invalidf("unknown field %q in %s (fields: path, capabilities, effect, conditions)", key, at)
			}
			if err != nil {
				return nil, err
			}
		}
	}
	return rules, nil
}

func parseConditions(raw json.RawMessage, at string) (*ConditionsDocument, error) {
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, nil
	}
	fields, err := object(raw, at)
	if err != nil {
		return nil, err
	}
	c := &ConditionsDocument{}
	for key, raw := range fields {
		name := at + "." + key
		switch key {
		case "time_of_day":
			if json.Unmarshal(raw, &c.TimeOfDay) != nil {
				return nil, fault.Invalidf("%s must be [start_hour, end_hour], hours 0-23", name)
			}
		case "days_of_week":
			err = field(raw, name, &c.DaysOfWeek)
		case "source_ip":
			var one string
			if json.Unmarshal(raw, &one) == nil {
				c.SourceIP = []string{one}
			} else if json.Unmarshal(raw, &c.SourceIP) != nil {
				return nil, fault.Invalidf("%s must be a CIDR or a list of CIDRs", name)
			}
		default:
			return nil, fault.Invalidf("unknown condition %q in %s (conditions: time_of_day, days_of_week, source_ip)", key, at)
		}
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

// object decodes a JSON object into its raw fields.
func object(data []byte, what string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		return nil, fault.Invalidf("%s must be a JSON object", what)
	}
	return m, nil
}

// field decodes one field, naming it in the error.
func field(raw json.RawMessage, name string, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		want := "a string"
		if _, list := v.(*[]string); list {
			want = "a list of strings"
		}
		return fault.Invalidf("%s must be %s", name, want)
	}
	return nil
}

// ValidateName checks a policy name: 1-128 of a-z, 0-9, ".", "_", "-", and
// not "simulate", which names the simulation endpoint (POST
// /v1/policies/simulate) and so cannot also name a policy's resource.
func ValidateName(name string) error {
	if name == "" || len(name) > MaxNameLength {
		return fault.Invalidf("name must be 1 to %d characters", MaxNameLength)
	}
	if name == "simulate" {
		return fault.Invalidf("name \"simulate\" is reserved for /v1/policies/simulate")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fault.Invalidf("name %q may only hold lowercase letters, digits, '.', '_' and '-'", fault.Input(clip(name)))
		}
	}
	return nil
}

// Compile validates a document and builds the policy the evaluator uses.
// Every error is an Invalid fault naming the offending field.
func Compile(doc Document) (*Policy, error) {
	if err := ValidateName(doc.Name); err != nil {
		return nil, err
	}
	p := &Policy{Name: doc.Name}
	if doc.Timezone != "" {
		loc, err := time.LoadLocation(doc.Timezone)
		if err != nil || doc.Timezone == "Local" {
			return nil, fault.Invalidf("timezone %q is not an IANA time zone name (like \"UTC\" or \"Europe/Berlin\")", fault.Input(clip(doc.Timezone)))
		}
		p.Location = loc
	}
	if len(doc.Rules) == 0 {
		return nil, fault.Invalidf("rules: a policy needs at least one rule")
	}
	if len(doc.Rules) > MaxRules {
		return nil, fault.Invalidf("rules: at most %d rules per policy", MaxRules)
	}
	for i, rd := range doc.Rules {
		r, err := compileRule(rd, fmt.Sprintf("rules[%d]", i))
		if err != nil {
			return nil, err
		}
		p.Rules = append(p.Rules, r)
	}
	return p, nil
}

func compileRule(rd RuleDocument, at string) (Rule, error) {
	r := Rule{Path: rd.Path}
	if err := validatePath(rd.Path, at+".path"); err != nil {
		return r, err
	}
	if len(rd.Capabilities) == 0 {
		return r, fault.Invalidf("%s.capabilities: list at least one of create, read, update, delete, list, sudo", at)
	}
	for j, name := range rd.Capabilities {
		c, ok := CapabilityNamed(name)
		if !ok {
			return r, fault.Invalidf("%s.capabilities[%d]: unknown capability %q (create, read, update, delete, list, sudo)", at, j, fault.Input(clip(name)))
		}
		r.Capabilities |= c
	}
	switch rd.Effect {
	case "", "allow":
	case "deny":
		r.Deny = true
	default:
		return r, fault.Invalidf("%s.effect: unknown effect %q (allow or deny)", at, fault.Input(clip(rd.Effect)))
	}
	if rd.Conditions != nil {
		c, err := compileConditions(*rd.Conditions, at+".conditions")
		if err != nil {
			return r, err
		}
		r.Conditions = c
	}
	return r, nil
}

func compileConditions(cd ConditionsDocument, at string) (*Conditions, error) {
	c := &Conditions{}
	if cd.TimeOfDay != nil {
		if len(cd.TimeOfDay) != 2 {
			return nil, fault.Invalidf("%s.time_of_day must be [start_hour, end_hour]", at)
		}
		for j, h := range cd.TimeOfDay {
			if h < 0 || h > 23 {
				return nil, fault.Invalidf("%s.time_of_day[%d]: hour %v is outside 0-23", at, j, fault.Number(h))
			}
		}
		c.TimeOfDay, c.FromHour, c.ToHour = true, cd.TimeOfDay[0], cd.TimeOfDay[1]
	}
	if cd.DaysOfWeek != nil {
		if len(cd.DaysOfWeek) == 0 {
			return nil, fault.Invalidf("%s.days_of_week: list at least one day", at)
		}
		for j, d := range cd.DaysOfWeek {
			n := slices.Index(days, strings.ToLower(d))
			if n < 0 {
				return nil, fault.Invalidf("%s.days_of_week[%d]: unknown day %q (mon, tue, wed, thu, fri, sat, sun)", at, j, fault.Input(clip(d)))
			}
			c.Days |= 1 << uint(n)
		}
	}
	if cd.SourceIP != nil {
		if len(cd.SourceIP) == 0 {
			return nil, fault.Invalidf("%s.source_ip: list at least one CIDR", at)
		}
		for j, s := range cd.SourceIP {
			p, err := ParsePrefix(s)
			if err != nil {
				return nil, fault.Invalidf("%s.source_ip[%d]: %q is not a CIDR or IP address", at, j, fault.Input(clip(s)))
			}
			c.SourceIPs = append(c.SourceIPs, p)
		}
	}
	return c, nil
}

// ParsePrefix reads a CIDR or a bare address (as a one-address prefix).
// IPv4-mapped IPv6 prefixes are turned into IPv4 ones, because client
// addresses are compared unmapped: "::ffff:10.0.0.0/104" is 10.0.0.0/8.
// Every CIDR SecretHub accepts (policies, bound CIDRs, trusted proxies)
// goes through here, so all of them mean the same thing.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("%s covers more than the IPv4-mapped range", s)
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// validatePath checks a rule path: non-empty, printable, no leading slash,
// "*" only at the end, "+" only as a whole segment.
func validatePath(path, at string) error {
	switch {
	case path == "":
		return fault.Invalidf("%s is empty", at)
	case len(path) > MaxPathLength:
		return fault.Invalidf("%s is longer than %d bytes", at, MaxPathLength)
	case strings.HasPrefix(path, "/"):
		return fault.Invalidf("%s %q starts with \"/\": paths are written without it (prod/*, sys/seal)", at, fault.Input(clip(path)))
	case strings.HasPrefix(path, "v1/"), strings.HasPrefix(path, "secrets/static/"):
		return fault.Invalidf("%s %q: name secrets by their bare path (prod/db) and other APIs by their path after /v1/ (sys/seal)", at, fault.Input(clip(path)))
	}
	for _, r := range path {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar {
			return fault.Invalidf("%s contains a space, control character or invalid UTF-8", at)
		}
	}
	if i := strings.IndexByte(path, '*'); i >= 0 && i != len(path)-1 {
		return fault.Invalidf("%s %q: \"*\" may only end a path", at, fault.Input(clip(path)))
	}
	for _, seg := range strings.Split(path, "/") {
		if strings.Contains(seg, "+") && seg != "+" {
			return fault.Invalidf("%s %q: \"+\" must be a whole segment (prod/+/password)", at, fault.Input(clip(path)))
		}
	}
	return nil
}

// DocumentOf is the written form of a policy, built-ins included.
func DocumentOf(p *Policy) Document {
	doc := Document{Name: p.Name, Rules: []RuleDocument{}}
	if p.Location != nil {
		doc.Timezone = p.Location.String()
	}
	for _, r := range p.Rules {
		rd := RuleDocument{Path: r.Path, Capabilities: r.Capabilities.Names(), Effect: "allow"}
		if r.Deny {
			rd.Effect = "deny"
		}
		if c := r.Conditions; c != nil {
			cd := &ConditionsDocument{}
			if c.TimeOfDay {
				cd.TimeOfDay = []int{c.FromHour, c.ToHour}
			}
			for n, d := range days {
				if c.Days&(1<<uint(n)) != 0 {
					cd.DaysOfWeek = append(cd.DaysOfWeek, d)
				}
			}
			for _, ip := range c.SourceIPs {
				cd.SourceIP = append(cd.SourceIP, ip.String())
			}
			rd.Conditions = cd
		}
		doc.Rules = append(doc.Rules, rd)
	}
	return doc
}

// clip shortens caller input quoted in an error message.
func clip(s string) string { return fault.Clip(s, 64) }
