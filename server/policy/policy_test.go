package policy_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secrethub/secrethub/server/policy"
)

func TestMatch(t *testing.T) {
	cases := []struct {
		name              string
		pattern, resource string
		want              bool
	}{
		// Literal paths.
		{"a literal path matches itself", "prod/db", "prod/db", true},
		{"a literal path does not match a longer resource", "prod/db", "prod/db2", false},
		{"a literal path does not match a shorter resource", "prod/db", "prod/d", false},
		{"a literal path does not match the folder below it", "prod/db", "prod/db/", false},
		{"a literal path does not match its parent", "prod/db", "prod", false},
		{"literal matching is case-sensitive", "prod/db", "Prod/db", false},
		{"an empty pattern matches only the empty resource", "", "", true},
		{"an empty pattern does not match a resource", "", "a", false},
		{"a literal pattern does not match the empty resource", "a", "", false},
		{"a star that is not trailing is a literal character", "prod/*/db", "prod/x/db", false},
		{"a star that is not trailing matches a literal star", "prod/*/db", "prod/*/db", true},
		// Trailing star.
		{"a lone star matches the empty resource", "*", "", true},
		{"a lone star matches a deep path", "*", "a/b/c/d", true},
		{"a lone star matches an API path", "*", "sys/seal", true},
		{"a folder star matches a secret in the folder", "prod/*", "prod/db", true},
		{"a folder star matches a deeply nested secret", "prod/*", "prod/a/b/c", true},
		{"a folder star matches the folder itself with its slash", "prod/*", "prod/", true},
		{"a folder star does not match the folder without its slash", "prod/*", "prod", false},
		{"a folder star does not match a sibling sharing the prefix", "prod/*", "production/db", false},
		{"a folder star does not match the folder deeper in a path", "prod/*", "dev/prod/db", false},
		{"a mid-segment star matches a longer segment", "prod*", "production", true},
		{"a mid-segment star matches the bare prefix", "prod*", "prod", true},
		{"a mid-segment star crosses segments", "prod*", "prod/db", true},
		{"a mid-segment star does not match a shorter resource", "prod*", "pro", false},
		{"a mid-segment star does not match the prefix elsewhere", "prod*", "dev-prod", false},
		{"a star after a partial segment matches the rest of it", "prod/db*", "prod/db-replica", true},
		// Plus segments.
		{"a lone plus matches one segment", "+", "prod", true},
		{"a lone plus does not match the empty resource", "+", "", false},
		{"a lone plus does not match two segments", "+", "prod/db", false},
		{"a lone plus does not match a lone slash", "+", "/", false},
		{"a leading plus matches any first segment", "+/db", "prod/db", true},
		{"a leading plus does not match an empty first segment", "+/db", "/db", false},
		{"a leading plus does not match two segments", "+/db", "prod/x/db", false},
		{"a middle plus matches one segment", "prod/+/password", "prod/api/password", true},
		{"a middle plus does not match an empty segment", "prod/+/password", "prod//password", false},
		{"a middle plus does not match two segments", "prod/+/password", "prod/api/v2/password", false},
		{"the literal after a middle plus still has to match", "prod/+/password", "prod/api/passwords", false},
		{"a trailing plus matches one last segment", "prod/+", "prod/api", true},
		{"a trailing plus does not match an empty last segment", "prod/+", "prod/", false},
		{"a trailing plus does not match a deeper path", "prod/+", "prod/api/key", false},
		{"a trailing plus does not match the parent", "prod/+", "prod", false},
		{"plus then star matches a path two segments deep", "+/*", "a/b/c", true},
		{"plus then star matches a folder with its slash", "+/*", "a/", true},
		{"plus then star does not match a single segment", "+/*", "a", false},
		{"plus then star does not match an empty first segment", "+/*", "/x", false},
		{"two pluses match exactly two segments", "+/+", "a/b", true},
		{"two pluses do not match three segments", "+/+", "a/b/c", false},
		{"plus in the middle then star matches deeper paths", "prod/+/*", "prod/a/b", true},
		{"plus matches a reserved API segment", "sys/+", "sys/seal", true},
		{"a plus that ends a segment is a literal character", "a+", "a+", true},
		{"a plus that ends a segment does not match other text", "a+", "ab", false},
		{"a plus that starts a longer segment is a literal character", "+a", "+a", true},
		{"a plus that starts a longer segment does not act as a glob", "+a", "xa", false},
		{"a plus inside a later segment is literal", "a/+b", "a/xb", false},
		{"a plus followed by a star is a literal plus", "+*", "+x", true},
		{"a plus followed by a star does not match one segment", "+*", "ax", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := policy.Match(c.pattern, c.resource); got != c.want {
				t.Fatalf("Match(%q, %q) = %v, want %v", c.pattern, c.resource, got, c.want)
			}
		})
	}
}

func allow(path string, c policy.Capability) policy.Rule {
	return policy.Rule{Path: path, Capabilities: c}
}

func deny(path string, c policy.Capability) policy.Rule {
	return policy.Rule{Path: path, Capabilities: c, Deny: true}
}

func pol(name string, rules ...policy.Rule) *policy.Policy {
	return &policy.Policy{Name: name, Rules: rules}
}

func TestEvaluate(t *testing.T) {
	var (
		prodRead  = pol("prod-read", allow("prod/*", policy.Read|policy.List))
		prodWrite = pol("prod-write", allow("prod/db", policy.Create|policy.Update))
		noSecret  = pol("no-secret", deny("prod/secret", policy.All))
		noDelete  = pol("no-delete", deny("prod/*", policy.Delete))
		split     = pol("split", allow("app/+/config", policy.Read), allow("app/*", policy.Update))
		operator  = pol("operator", allow("sys/rotate", policy.Update), allow("sys/*", policy.Sudo))
		updater   = pol("updater", allow("sys/rotate", policy.Update))
		sudoer    = pol("sudoer", allow("sys/rotate", policy.Update|policy.Sudo))
		anything  = pol("anything", allow("*", policy.All))
		scoped    = pol("scoped", allow("prod/*", policy.Read))
	)
	cases := []struct {
		name     string
		policies []*policy.Policy
		resource string
		cap      policy.Capability
		want     policy.Decision
	}{
		{"no policies deny", nil, "prod/db", policy.Read, policy.Decision{Rule: -1}},
		{"an empty policy list denies", []*policy.Policy{}, "prod/db", policy.Read, policy.Decision{Rule: -1}},
		{"only nil policies deny", []*policy.Policy{nil, nil}, "prod/db", policy.Read, policy.Decision{Rule: -1}},
		{"a policy without rules denies", []*policy.Policy{pol("empty")}, "prod/db", policy.Read, policy.Decision{Rule: -1}},
		{"nil policies are skipped before a granting one", []*policy.Policy{nil, prodRead}, "prod/db", policy.Read, policy.Decision{Allowed: true, Policy: "prod-read", Rule: 0}},
		{"a matching allow rule grants its capability", []*policy.Policy{prodRead}, "prod/db", policy.Read, policy.Decision{Allowed: true, Policy: "prod-read", Rule: 0}},
		{"an allow rule does not grant a capability it lacks", []*policy.Policy{prodRead}, "prod/db", policy.Update, policy.Decision{Rule: -1}},
		{"an allow rule does not grant on a path it does not match", []*policy.Policy{prodRead}, "dev/db", policy.Read, policy.Decision{Rule: -1}},
		{"the empty resource is not under a folder star", []*policy.Policy{prodRead}, "", policy.List, policy.Decision{Rule: -1}},
		{"the empty resource is under a lone star", []*policy.Policy{anything}, "", policy.List, policy.Decision{Allowed: true, Policy: "anything", Rule: 0}},
		{"capabilities granted by two policies combine", []*policy.Policy{prodRead, prodWrite}, "prod/db", policy.Read | policy.Update, policy.Decision{Allowed: true, Policy: "prod-write", Rule: 0}},
		{"capabilities granted by two rules of one policy combine", []*policy.Policy{split}, "app/web/config", policy.Read | policy.Update, policy.Decision{Allowed: true, Policy: "split", Rule: 1}},
		{"a partial grant alone is a denial", []*policy.Policy{split}, "app/web/other", policy.Read | policy.Update, policy.Decision{Rule: -1}},
		{"a deny in a later policy beats an allow", []*policy.Policy{prodRead, noSecret}, "prod/secret", policy.Read, policy.Decision{Policy: "no-secret", Rule: 0}},
		{"a deny in an earlier policy beats an allow", []*policy.Policy{noSecret, prodRead}, "prod/secret", policy.Read, policy.Decision{Policy: "no-secret", Rule: 0}},
		{"a deny beats the built-in root policy", []*policy.Policy{policy.Builtin("root"), noSecret}, "prod/secret", policy.Read, policy.Decision{Policy: "no-secret", Rule: 0}},
		{"a deny for another path does not block", []*policy.Policy{prodRead, noSecret}, "prod/db", policy.Read, policy.Decision{Allowed: true, Policy: "prod-read", Rule: 0}},
		{"a deny for another capability does not block", []*policy.Policy{prodRead, noDelete}, "prod/db", policy.Read, policy.Decision{Allowed: true, Policy: "prod-read", Rule: 0}},
		{"a deny for the capability asked blocks", []*policy.Policy{anything, noDelete}, "prod/db", policy.Delete, policy.Decision{Policy: "no-delete", Rule: 0}},
		{"a deny of one of several requested capabilities blocks", []*policy.Policy{anything, noDelete}, "prod/db", policy.Read | policy.Delete, policy.Decision{Policy: "no-delete", Rule: 0}},
		{"sudo is required when asked for", []*policy.Policy{updater}, "sys/rotate", policy.Update | policy.Sudo, policy.Decision{Rule: -1}},
		{"a rule with sudo grants a sudo request", []*policy.Policy{sudoer}, "sys/rotate", policy.Update | policy.Sudo, policy.Decision{Allowed: true, Policy: "sudoer", Rule: 0}},
		{"sudo from a glob rule combines with the operation", []*policy.Policy{operator}, "sys/rotate", policy.Update | policy.Sudo, policy.Decision{Allowed: true, Policy: "operator", Rule: 1}},
		{"sudo alone does not grant the operation", []*policy.Policy{operator}, "sys/seal", policy.Update | policy.Sudo, policy.Decision{Rule: -1}},
		{"a request for no capability is denied", []*policy.Policy{anything}, "prod/db", 0, policy.Decision{Rule: -1}},
		{"root may read any secret", []*policy.Policy{policy.Builtin("root")}, "prod/db", policy.Read, policy.Decision{Allowed: true, Policy: "root", Rule: 0}},
		{"root may seal with sudo", []*policy.Policy{policy.Builtin("root")}, "sys/seal", policy.Update | policy.Sudo, policy.Decision{Allowed: true, Policy: "root", Rule: 0}},
		{"root may do everything at once", []*policy.Policy{policy.Builtin("root")}, "policies/admin", policy.All, policy.Decision{Allowed: true, Policy: "root", Rule: 0}},
		{"root may list the top level", []*policy.Policy{policy.Builtin("root")}, "", policy.List, policy.Decision{Allowed: true, Policy: "root", Rule: 0}},
		{"default with another policy grants that policy's paths", []*policy.Policy{policy.Builtin("default"), scoped}, "prod/db", policy.Read, policy.Decision{Allowed: true, Policy: "scoped", Rule: 0}},
		{"default with another policy still grants lookup-self", []*policy.Policy{policy.Builtin("default"), scoped}, "auth/token/lookup-self", policy.Read, policy.Decision{Allowed: true, Policy: "default", Rule: 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := policy.Evaluate(c.policies, policy.Request{Resource: c.resource, Capability: c.cap})
			if got != c.want {
				t.Fatalf("Evaluate(%q, %s) = %+v, want %+v", c.resource, c.cap, got, c.want)
			}
		})
	}
}

func TestBuiltinDefaultGrantsExactlySelfManagement(t *testing.T) {
	granted := map[string]policy.Capability{
		"auth/token/lookup-self": policy.Read,
		"auth/token/renew-self":  policy.Update,
		"auth/token/revoke-self": policy.Update,
	}
	resources := []string{
		"auth/token/lookup-self", "auth/token/renew-self", "auth/token/revoke-self",
		"auth/token/lookup", "auth/token/create", "auth/token/revoke", "auth/token/revoke-accessor",
		"auth/token/lookup-self/x", "auth/token/lookup-selfish", "auth/token", "auth/approle/login",
		"sys/seal", "sys/rotate", "sys/health", "policies/default", "prod/db", "", "*",
	}
	caps := []policy.Capability{policy.Create, policy.Read, policy.Update, policy.Delete, policy.List, policy.Sudo}
	for _, r := range resources {
		for _, c := range caps {
			want := granted[r] == c
			verb := "denies"
			if want {
				verb = "allows"
			}
			t.Run(fmt.Sprintf("default %s %s on %q", verb, c, r), func(t *testing.T) {
				got := policy.Evaluate([]*policy.Policy{policy.Builtin("default")}, policy.Request{Resource: r, Capability: c})
				if got.Allowed != want {
					t.Fatalf("Evaluate = %+v, want allowed %v", got, want)
				}
			})
		}
	}
	t.Run("default does not grant sudo on its own paths", func(t *testing.T) {
		got := policy.Evaluate([]*policy.Policy{policy.Builtin("default")}, policy.Request{Resource: "auth/token/renew-self", Capability: policy.Update | policy.Sudo})
		if got.Allowed {
			t.Fatalf("Evaluate = %+v", got)
		}
	})
}

func TestBuiltinRootAllowsEverything(t *testing.T) {
	for _, r := range []string{"", "prod/db", "sys/seal", "sys/rotate", "auth/token/create", "a/b/c/d/e/f", "policies/root"} {
		for c := policy.Capability(1); c <= policy.All; c++ {
			t.Run(fmt.Sprintf("root allows %s on %q", c, r), func(t *testing.T) {
				if got := policy.Evaluate([]*policy.Policy{policy.Builtin("root")}, policy.Request{Resource: r, Capability: c}); !got.Allowed {
					t.Fatalf("Evaluate = %+v", got)
				}
			})
		}
	}
}

func TestBuiltin(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want string // the policy's name, empty for none
	}{
		{"root is built in", "root", "root"},
		{"default is built in", "default", "default"},
		{"admin is built in", "admin", "admin"},
		{"an unknown name is no policy", "web", ""},
		{"built-in names are case-sensitive", "Root", ""},
		{"the empty name is no policy", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := policy.Builtin(c.in)
			switch {
			case c.want == "" && got != nil:
				t.Fatalf("Builtin(%q) = %v, want none", c.in, got)
			case c.want != "" && (got == nil || got.Name != c.want || len(got.Rules) == 0):
				t.Fatalf("Builtin(%q) = %v, want the %s policy", c.in, got, c.want)
			}
		})
	}
	if policy.Builtin("root") != policy.Builtin("root") {
		t.Fatal("a built-in policy is rebuilt on every call")
	}
}

func TestCapabilityNames(t *testing.T) {
	cases := []struct {
		name string
		c    policy.Capability
		want []string
	}{
		{"the empty set has no names", 0, nil},
		{"a single capability has its name", policy.Read, []string{"read"}},
		{"sudo is named sudo", policy.Sudo, []string{"sudo"}},
		{"names come in a fixed order whatever the bits", policy.List | policy.Create, []string{"create", "list"}},
		{"all capabilities are named in order", policy.All, []string{"create", "read", "update", "delete", "list", "sudo"}},
		{"bits beyond the known capabilities are ignored", policy.Read | 1<<7, []string{"read"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.c.Names(); !slices.Equal(got, c.want) {
				t.Fatalf("Names() = %q, want %q", got, c.want)
			}
			if got, want := c.c.String(), strings.Join(c.want, ","); got != want {
				t.Fatalf("String() = %q, want %q", got, want)
			}
		})
	}
}

// benchPolicies is ten policies of twenty rules each, a mix of literal,
// folder-star and plus patterns, as a busy token might carry.
func benchPolicies() []*policy.Policy {
	policies := make([]*policy.Policy, 10)
	for p := range policies {
		rules := make([]policy.Rule, 20)
		for r := range rules {
			var path string
			switch r % 4 {
			case 0:
				path = fmt.Sprintf("team%d/app%d/config", p, r)
			case 1:
				path = fmt.Sprintf("team%d/app%d/*", p, r)
			case 2:
				path = fmt.Sprintf("team%d/+/db%d", p, r)
			default:
				path = fmt.Sprintf("shared/+/key%d/*", r)
			}
			rules[r] = policy.Rule{Path: path, Capabilities: policy.Read | policy.List, Deny: r == 19}
			if r%3 == 0 { // a third of the rules carry every kind of condition
				rules[r].Conditions = &policy.Conditions{
					TimeOfDay: true, FromHour: 6, ToHour: 22, Days: 0b0111110,
					SourceIPs: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("10.0.0.0/8")},
				}
			}
		}
		policies[p] = &policy.Policy{Name: fmt.Sprintf("team%d", p), Rules: rules, Location: berlin}
	}
	return policies
}

var (
	berlin, _ = time.LoadLocation("Europe/Berlin")
	benchIP   = netip.MustParseAddr("10.20.30.40")
	benchTime = time.Date(2026, 11, 30, 11, 0, 0, 0, time.UTC) // a Monday
)

// benchRequests are answered against conditions too (client address and time).
var benchRequests = []policy.Request{
	{Resource: "team9/app17/secret", Capability: policy.Read, ClientIP: benchIP, Time: benchTime},                          // allowed by the last policy
	{Resource: "team3/web/db18", Capability: policy.Read, ClientIP: benchIP, Time: benchTime},                              // allowed mid-way
	{Resource: "nobody/has/this", Capability: policy.Read, ClientIP: benchIP, Time: benchTime},                             // denied: no match anywhere
	{Resource: "shared/x/key19/y", Capability: policy.Read, ClientIP: benchIP, Time: benchTime},                            // denied by a deny rule
	{Resource: "team0/app1/z", Capability: policy.Update, ClientIP: benchIP, Time: benchTime},                              // denied: wrong capability
	{Resource: "shared/x/key3/y/z", Capability: policy.Read, ClientIP: benchIP, Time: benchTime},                           // allowed via plus and star
	{Resource: "team5/app4/config", Capability: policy.Update, ClientIP: benchIP, Time: benchTime},                         // denied
	{Resource: "team2/app0/config", Capability: policy.Read, ClientIP: netip.MustParseAddr("172.16.0.1"), Time: benchTime}, // a condition fails
}

func BenchmarkEvaluate(b *testing.B) {
	policies := benchPolicies()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		policy.Evaluate(policies, benchRequests[i%len(benchRequests)])
	}
}

func TestEvaluateDoesNotAllocate(t *testing.T) {
	policies := benchPolicies()
	for _, req := range benchRequests {
		t.Run(fmt.Sprintf("evaluating %s on %q allocates nothing", req.Capability, req.Resource), func(t *testing.T) {
			if n := testing.AllocsPerRun(100, func() { policy.Evaluate(policies, req) }); n != 0 {
				t.Fatalf("Evaluate allocates %v times per call", n)
			}
		})
	}
}

func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"prod/*", "prod/db"}, {"+/+", "a/b"}, {"prod/+/password", "prod//password"},
		{"+/*", "a"}, {"*", ""}, {"", ""}, {"a+", "a+"}, {"+", "/"}, {"prod*", "production"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, resource string) {
		got := policy.Match(pattern, resource)
		if !policy.Match("*", resource) {
			t.Fatalf("Match(\"*\", %q) = false", resource)
		}
		if !policy.Match(pattern, pattern) {
			t.Fatalf("Match(%q, %q) = false: a pattern must match its own text", pattern, pattern)
		}
		if !strings.ContainsAny(pattern, "+*") && got != (pattern == resource) {
			t.Fatalf("Match(%q, %q) = %v for a pattern without globs", pattern, resource, got)
		}
		if !strings.ContainsAny(pattern, "+*") && !policy.Match(pattern+"*", pattern+resource) {
			t.Fatalf("Match(%q, %q) = false: a trailing star must match any remainder", pattern+"*", pattern+resource)
		}
	})
}
