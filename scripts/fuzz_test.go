package scripts_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeGo stands in for go test -fuzz, one behaviour per FAKE_GO: a pass,
// Go 1.26's deadline race (the message, no input written), a real finding
// that mentions the deadline (an input written), and a plain failure.
const fakeGo = `#!/bin/sh
case "$FAKE_GO" in
pass) echo "ok"; exit 0 ;;
race) printf -- '--- FAIL: FuzzThing (1.00s)\n    context deadline exceeded\n'; exit 1 ;;
finding)
	mkdir -p pkg/testdata/fuzz/FuzzThing && echo 'go test fuzz v1' > pkg/testdata/fuzz/FuzzThing/0123abcd
	printf -- '--- FAIL: FuzzThing (1.00s)\n    context deadline exceeded\n    Failing input written to testdata/fuzz/FuzzThing/0123abcd\n'; exit 1 ;;
*) printf -- '--- FAIL: FuzzThing (1.00s)\n    panic: boom\n'; exit 1 ;;
esac
`

func TestFuzzScriptForgivesOnlyGosDeadlineRace(t *testing.T) {
	bash := needTool(t, "bash")
	script, err := os.ReadFile("fuzz.sh")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		mode    string
		wantErr bool
		stderr  string
	}{
		{"pass", false, ""},
		{"race", false, "go.dev/issue/75804"},
		{"finding", true, "FAIL: ./pkg FuzzThing"},
		{"panic", true, "FAIL: ./pkg FuzzThing"},
	}
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			root := t.TempDir()
			for name, body := range map[string]string{
				"scripts/fuzz.sh":   string(script),
				"pkg/thing_test.go": "package pkg\n\nimport \"testing\"\n\nfunc FuzzThing(f *testing.F) {}\n",
				"bin/go":            fakeGo,
			} {
				path := filepath.Join(root, name)
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command(bash, filepath.Join(root, "scripts/fuzz.sh"), "1s")
			cmd.Env = append(os.Environ(), "PATH="+filepath.Join(root, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"), "FAKE_GO="+c.mode)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if (err != nil) != c.wantErr {
				t.Fatalf("fuzz.sh with %s: err %v, want failure %v\nstdout:\n%s\nstderr:\n%s", c.mode, err, c.wantErr, out, stderr.String())
			}
			if !strings.Contains(string(out), "== ./pkg FuzzThing") {
				t.Errorf("the target was not run: %s", out)
			}
			if !strings.Contains(stderr.String(), c.stderr) {
				t.Errorf("stderr %q, want it to contain %q", stderr.String(), c.stderr)
			}
		})
	}
}
