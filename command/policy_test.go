package command

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/client"
)

// runbookPolicy is the path of a Phase 5.2 policy body in testdata.
func runbookPolicy(name string) string {
	return filepath.Join("..", "testdata", "policies", name+".json")
}

func TestPolicyCommandsFollowRunbookPhase5_2(t *testing.T) {
	srv := unsealedServer(t)
	root := srv.RootToken

	for _, name := range []string{"read-only", "production"} {
		code, out, errOut := cli(t, srv.URL, root, "", "policy", "write", name, runbookPolicy(name))
		if code != 0 {
			t.Fatalf("policy write %s: exit %d: %s", name, code, errOut)
		}
		mustContain(t, "policy write output", out, "Success! Uploaded policy: "+name)
	}

	t.Run("policy list shows the runbook's policies beside the built-in ones", func(t *testing.T) {
		code, out, errOut := cli(t, srv.URL, root, "", "policy", "list")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{"\nadmin\n", "\ndefault\n", "\nproduction\n", "\nread-only\n", "\nroot\n"} {
			mustContain(t, "policy list", "\n"+out, want)
		}
	})
	t.Run("policy read shows the rule with its conditions", func(t *testing.T) {
		code, out, errOut := cli(t, srv.URL, root, "", "policy", "read", "production")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if rowValue(t, out, "name") != "production" || rowValue(t, out, "builtin") != "false" || rowValue(t, out, "timezone") != "UTC (default)" {
			t.Fatalf("policy read:\n%s", out)
		}
		mustContain(t, "policy read", out, "====== Rules ======", "prod/*", "read", "allow", "time_of_day=0-23 source_ip=10.0.0.0/8")
	})
	t.Run("policy read -format=json writes back through policy write -", func(t *testing.T) {
		code, out, errOut := cli(t, srv.URL, root, "", "policy", "read", "-format=json", "read-only")
		var doc client.PolicyInfo
		if err := json.Unmarshal([]byte(out), &doc); code != 0 || err != nil || doc.Name != "read-only" || len(doc.Rules) != 1 {
			t.Fatalf("exit %d, %v: %s %s", code, err, out, errOut)
		}
		code, _, errOut = cli(t, srv.URL, root, out, "policy", "write", "read-only-copy", "-")
		if code == 0 {
			t.Fatal("a document named read-only was written as read-only-copy")
		}
		mustContain(t, "stderr", errOut, `named "read-only", but NAME is "read-only-copy"`)
		code, _, errOut = cli(t, srv.URL, root, out, "policy", "write", "read-only", "-")
		if code != 0 {
			t.Fatalf("writing back: exit %d: %s", code, errOut)
		}
	})

	simulations := []struct {
		name     string
		sourceIP string
		want     map[string]string
	}{
		{"policy simulate allows production from 10.1.2.3", "10.1.2.3",
			map[string]string{"decision": "allow", "policy": "production", "rule": "#0: allow read on prod/*", "failed_condition": "n/a"}},
		{"policy simulate denies production from 127.0.0.1 on its source_ip condition, and still exits 0", "127.0.0.1",
			map[string]string{"decision": "deny", "policy": "production", "failed_condition": "source_ip"}},
	}
	for _, tt := range simulations {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := cli(t, srv.URL, root, "", "policy", "simulate", "-policy=production",
				"-path=prod/db", "-capability=read", "-source-ip="+tt.sourceIP, "-time=2026-01-05T09:30:00Z")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for k, v := range tt.want {
				if got := rowValue(t, out, k); got != v {
					t.Fatalf("%s = %q, want %q in:\n%s", k, got, v, out)
				}
			}
			if rowValue(t, out, "reason") == "" {
				t.Fatalf("no reason:\n%s", out)
			}
		})
	}
	t.Run("policy simulate -format=json gives the server's answer", func(t *testing.T) {
		code, out, errOut := cli(t, srv.URL, root, "", "policy", "simulate", "-format=json", "-policy=read-only", "-policy=production",
			"-path=prod/db", "-capability=update")
		var sim client.PolicySimulation
		if err := json.Unmarshal([]byte(out), &sim); code != 0 || err != nil || sim.Allowed || sim.Decision != "deny" || sim.Rule != nil {
			t.Fatalf("exit %d, %v: %s %s", code, err, out, errOut)
		}
	})
	t.Run("policy simulate -token - reads the token from stdin and evaluates its policies", func(t *testing.T) {
		tok, err := srv.Root(t).Token().Create(t.Context(), client.TokenCreateRequest{Policies: []string{"read-only"}})
		if err != nil {
			t.Fatal(err)
		}
		code, out, errOut := cli(t, srv.URL, root, tok.ClientToken+"\n", "policy", "simulate", "-token", "-", "-path=anything/at/all", "-capability=read")
		if code != 0 || rowValue(t, out, "decision") != "allow" || rowValue(t, out, "policy") != "read-only" {
			t.Fatalf("exit %d:\n%s%s", code, out, errOut)
		}
		if strings.Contains(out+errOut, tok.ClientToken) {
			t.Fatal("the token was printed")
		}
	})
	t.Run("policy simulate with an unknown token fails without showing it", func(t *testing.T) {
		const bogus = "s.NotARealTokenButLongEnough1234"
		code, out, errOut := cli(t, srv.URL, root, "", "policy", "simulate", "-token="+bogus, "-path=prod/db", "-capability=read")
		if code != 1 || strings.Contains(out+errOut, bogus) {
			t.Fatalf("exit %d:\n%s%s", code, out, errOut)
		}
	})

	refusals := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"policy simulate without policies or a token", []string{"policy", "simulate", "-path=prod/db", "-capability=read"},
			"give either -policy (repeatable) or -token"},
		{"policy simulate with both policies and a token", []string{"policy", "simulate", "-policy=a", "-token=t", "-path=p", "-capability=read"},
			"give either -policy (repeatable) or -token, not both"},
		{"policy simulate without a path", []string{"policy", "simulate", "-policy=production", "-capability=read"}, "-path is required"},
		{"policy simulate without a capability", []string{"policy", "simulate", "-policy=production", "-path=prod/db"}, "-capability is required"},
		{"policy simulate with an unknown capability", []string{"policy", "simulate", "-policy=production", "-path=prod/db", "-capability=fly"},
			`capability "fly" is not one`},
		{"policy simulate with a source address that is not an IP", []string{"policy", "simulate", "-policy=production", "-path=p", "-capability=read", "-source-ip=10.0.0.0/8"},
			"-source-ip must be an IP address"},
		{"policy simulate with a time that is not RFC 3339", []string{"policy", "simulate", "-policy=production", "-path=p", "-capability=read", "-time=tomorrow"},
			"-time must be RFC 3339"},
		{"policy write of a file that does not exist", []string{"policy", "write", "x", "no-such-file.json"}, "no-such-file.json"},
		{"policy write of a built-in policy", []string{"policy", "write", "admin", runbookPolicy("read-only")}, `named "read-only", but NAME is "admin"`},
		{"policy read of a policy that does not exist", []string{"policy", "read", "nothing-here"}, "no policy named nothing-here"},
		{"policy write without a file", []string{"policy", "write", "x"}, "accepts 2 arg(s)"},
	}
	for _, tt := range refusals {
		t.Run(tt.name+" is an error with exit code 1", func(t *testing.T) {
			code, out, errOut := cli(t, srv.URL, root, "", tt.args...)
			if code != 1 || out != "" {
				t.Fatalf("exit %d, stdout %q", code, out)
			}
			mustContain(t, "stderr", errOut, tt.wantErr)
		})
	}

	documents := []struct {
		name    string
		body    string
		wantErr string
	}{
		{"a misspelt field is refused by its name", "{\n  \"rules\": [\n    {\"path\": \"x\", \"capabilites\": [\"read\"]}\n  ]\n}",
			`json: unknown field "capabilites"`},
		{"a syntax error is shown at its line and column", "{\n  \"rules\": [\n    {\"path\": \"x\",, }\n  ]\n}", "line 3, column 18"},
		{"a document without rules is refused", `{"name": "x"}`, `it has no "rules" list`},
		{"an empty file is refused", "", "it is empty"},
		{"two documents in one file are refused", `{"rules": []} {"rules": []}`, "there is more after the JSON document"},
		{"a document the server finds wrong is the server's error", `{"rules": [{"path": "x", "capabilities": ["fly"]}]}`, "Code: 400"},
	}
	for _, tt := range documents {
		t.Run("policy write: "+tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "p.json")
			if err := os.WriteFile(file, []byte(tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			code, _, errOut := cli(t, srv.URL, root, "", "policy", "write", "x", file)
			if code != 1 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			mustContain(t, "stderr", errOut, tt.wantErr)
		})
	}

	t.Run("policy delete removes a policy", func(t *testing.T) {
		code, out, errOut := cli(t, srv.URL, root, "", "policy", "delete", "read-only")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		mustContain(t, "stdout", out, "Success! Deleted policy: read-only")
		if _, err := srv.Root(t).Policy().Read(t.Context(), "read-only"); !strings.Contains(errString(err), "Code: 404") {
			t.Fatalf("read after delete: %v", err)
		}
	})
}

// errString is err's message, or "" for nil.
func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
