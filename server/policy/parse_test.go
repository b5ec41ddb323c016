package policy_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/server/policy"
)

// The runbook's Phase 5.2 bodies, verbatim.
const (
	readOnlyDoc = `{
    "name": "read-only",
    "rules": [
      {
        "path": "*",
        "capabilities": ["read"],
        "effect": "allow"
      }
    ]
  }`
	productionDoc = `{
    "name": "production",
    "rules": [
      {
        "path": "prod/*",
        "capabilities": ["read"],
        "effect": "allow",
        "conditions": {
          "time_of_day": [0, 23],
          "source_ip": "10.0.0.0/8"
        }
      }
    ]
  }`
)

func compile(t *testing.T, doc string) *policy.Policy {
	t.Helper()
	d, err := policy.ParseDocument([]byte(doc))
	if err != nil {
		t.Fatalf("ParseDocument: %v", err)
	}
	p, err := policy.Compile(d)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

func TestRunbookPoliciesCompile(t *testing.T) {
	ro := compile(t, readOnlyDoc)
	if ro.Name != "read-only" || len(ro.Rules) != 1 || ro.Rules[0].Capabilities != policy.Read || ro.Rules[0].Conditions != nil {
		t.Fatalf("read-only = %+v", ro)
	}
	prod := compile(t, productionDoc)
	c := prod.Rules[0].Conditions
	if c == nil || !c.TimeOfDay || c.FromHour != 0 || c.ToHour != 23 || len(c.SourceIPs) != 1 || c.SourceIPs[0].String() != "10.0.0.0/8" {
		t.Fatalf("production conditions = %+v", c)
	}
}

func TestBadDocumentsNameTheField(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		want string
	}{
		{"not an object", `[1,2]`, "must be a JSON object"},
		{"not JSON", `{"name":`, "must be a JSON object"},
		{"an unknown top-level field", `{"name":"p","rules":[{"path":"*","capabilities":["read"]}],"rulez":[]}`, `unknown field "rulez"`},
		{"a missing name", `{"rules":[{"path":"*","capabilities":["read"]}]}`, "name must be 1 to"},
		{"an uppercase name", `{"name":"Prod","rules":[{"path":"*","capabilities":["read"]}]}`, "lowercase"},
		{"a name with a slash", `{"name":"a/b","rules":[{"path":"*","capabilities":["read"]}]}`, "lowercase"},
		{"a name that is a number", `{"name":5,"rules":[]}`, "name must be a string"},
		{"no rules", `{"name":"p","rules":[]}`, "at least one rule"},
		{"rules not a list", `{"name":"p","rules":{"path":"*"}}`, "rules must be a list"},
		{"a rule not an object", `{"name":"p","rules":["*"]}`, "rules[0] must be a JSON object"},
		{"an unknown rule field", `{"name":"p","rules":[{"path":"*","capabilities":["read"],"effct":"deny"}]}`, `unknown field "effct" in rules[0]`},
		{"an empty path", `{"name":"p","rules":[{"path":"","capabilities":["read"]}]}`, "rules[0].path is empty"},
		{"a path with a leading slash", `{"name":"p","rules":[{"path":"/prod/*","capabilities":["read"]}]}`, `rules[0].path "/prod/*" starts with "/"`},
		{"a path with the API prefix", `{"name":"p","rules":[{"path":"secrets/static/prod/*","capabilities":["read"]}]}`, "bare path"},
		{"a star inside a path", `{"name":"p","rules":[{"path":"prod/*/db","capabilities":["read"]}]}`, `"*" may only end a path`},
		{"a plus inside a segment", `{"name":"p","rules":[{"path":"prod/a+b","capabilities":["read"]}]}`, `"+" must be a whole segment`},
		{"a space in a path", `{"name":"p","rules":[{"path":"prod db","capabilities":["read"]}]}`, "space"},
		{"no capabilities", `{"name":"p","rules":[{"path":"*","capabilities":[]}]}`, "rules[0].capabilities: list at least one"},
		{"an unknown capability", `{"name":"p","rules":[{"path":"*","capabilities":["read","wrte"]}]}`, `rules[0].capabilities[1]: unknown capability "wrte"`},
		{"capabilities not a list", `{"name":"p","rules":[{"path":"*","capabilities":"read"}]}`, "rules[0].capabilities must be a list of strings"},
		{"an unknown effect", `{"name":"p","rules":[{"path":"*","capabilities":["read"],"effect":"maybe"}]}`, `rules[0].effect: unknown effect "maybe"`},
		{"an unknown condition", `{"name":"p","rules":[{"path":"*","capabilities":["read"],"conditions":{"weekday":"mon"}}]}`, `unknown condition "weekday" in rules[0].conditions`},
		{"an hour above 23", `{"name":"p","rules":[{"path":"*","capabilities":["read"],"conditions":{"time_of_day":[9,24]}}]}`, `rules[0].conditions.time_of_day[1]: hour "24" is outside 0-23`},
		{"a negative hour", `{"name":"p","rules":[{"path":"*","capabilities":["read"],"conditions":{"time_of_day":[-1,5]}}]}`, `time_of_day[0]: hour "-1"`},
		{"one hour only", `{"name":"p","rules":[{"path":"*","capabilities":["read"],"conditions":{"time_of_day":[9]}}]}`, "time_of_day must be [start_hour, end_hour]"},
		{"hours as strings", `{"name":"p","rules":[{"path":"*","capabilities":["read"],"conditions":{"time_of_day":["9","17"]}}]}`, "time_of_day must be [start_hour, end_hour]"},
		{"an unknown day", `{"name":"p","rules":[{"path":"*","capabilities":["read"],"conditions":{"days_of_week":["mon","funday"]}}]}`, `days_of_week[1]: unknown day "funday"`},
		{"no days", `{"name":"p","rules":[{"path":"*","capabilities":["read"],"conditions":{"days_of_week":[]}}]}`, "days_of_week: list at least one day"},
		{"a bad CIDR", `{"name":"p","rules":[{"path":"*","capabilities":["read"],"conditions":{"source_ip":"10.0.0.0/33"}}]}`, `source_ip[0]: "10.0.0.0/33" is not a CIDR`},
		{"a bad CIDR in a list", `{"name":"p","rules":[{"path":"*","capabilities":["read"],"conditions":{"source_ip":["10.0.0.0/8","nope"]}}]}`, `source_ip[1]: "nope"`},
		{"a CIDR as a number", `{"name":"p","rules":[{"path":"*","capabilities":["read"],"conditions":{"source_ip":10}}]}`, "source_ip must be a CIDR or a list"},
		{"the reserved name simulate", `{"name":"simulate","rules":[{"path":"*","capabilities":["read"]}]}`, "reserved"},
		{"an IPv4-mapped prefix wider than the mapped range", `{"name":"p","rules":[{"path":"*","capabilities":["read"],"conditions":{"source_ip":"::ffff:0:0/95"}}]}`, "source_ip[0]"},
		{"an unknown time zone", `{"name":"p","timezone":"Mars/Olympus","rules":[{"path":"*","capabilities":["read"]}]}`, `timezone "Mars/Olympus"`},
		{"the Local time zone", `{"name":"p","timezone":"Local","rules":[{"path":"*","capabilities":["read"]}]}`, `timezone "Local"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := policy.ParseDocument([]byte(c.doc))
			if err == nil {
				_, err = policy.Compile(d)
			}
			if fault.KindOf(err) != fault.Invalid || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v, want an Invalid fault mentioning %q", err, c.want)
			}
		})
	}
}

func TestDocumentsRoundTrip(t *testing.T) {
	doc := `{"name":"ops","timezone":"Europe/Berlin","rules":[
		{"path":"prod/+/password","capabilities":["read","list"],"effect":"allow",
		 "conditions":{"time_of_day":[22,6],"days_of_week":["sat","Sun"],"source_ip":["10.0.0.0/8","2001:db8::1"]}},
		{"path":"prod/secret","capabilities":["read"],"effect":"deny"}]}`
	p := compile(t, doc)
	again, err := policy.Compile(policy.DocumentOf(p))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(policy.DocumentOf(again), policy.DocumentOf(p)) {
		t.Fatalf("round trip changed the policy:\n%+v\n%+v", policy.DocumentOf(again), policy.DocumentOf(p))
	}
	out, _ := json.Marshal(policy.DocumentOf(p))
	for _, want := range []string{`"timezone":"Europe/Berlin"`, `"days_of_week":["sun","sat"]`, `"source_ip":["10.0.0.0/8","2001:db8::1/128"]`, `"effect":"deny"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("document %s lacks %s", out, want)
		}
	}
	for _, name := range policy.BuiltinNames() {
		if _, err := policy.Compile(policy.DocumentOf(policy.Builtin(name))); err != nil {
			t.Errorf("built-in %s does not compile from its own document: %v", name, err)
		}
	}
}

// FuzzParseDocument: any input either fails with an Invalid fault or
// compiles to a policy whose document compiles to the same document.
func FuzzParseDocument(f *testing.F) {
	for _, seed := range []string{readOnlyDoc, productionDoc, `{}`, `{"name":"a","rules":[{"path":"+","capabilities":["sudo"],"effect":"deny","conditions":{"days_of_week":["mon"]}}]}`, `{"name":"x","timezone":"UTC","rules":[{"path":"a/+/*","capabilities":["create"]}]}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := policy.ParseDocument(data)
		if err == nil {
			var p *policy.Policy
			p, err = policy.Compile(d)
			if err == nil {
				again, err := policy.Compile(policy.DocumentOf(p))
				if err != nil {
					t.Fatalf("a compiled policy's document does not compile: %v", err)
				}
				if !reflect.DeepEqual(policy.DocumentOf(again), policy.DocumentOf(p)) {
					t.Fatal("document round trip changed the policy")
				}
				return
			}
		}
		if fault.KindOf(err) != fault.Invalid || err.Error() == "" {
			t.Fatalf("error %v is not an Invalid fault with a message", err)
		}
	})
}
