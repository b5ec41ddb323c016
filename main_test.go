package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The binary's exit code is the command's: the test binary re-runs itself
// as secrethub (SECRETHUB_RUN_MAIN=1) and checks what a shell would see.
func TestMain(m *testing.M) {
	if os.Getenv("SECRETHUB_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func TestExitCodes(t *testing.T) {
	cases := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"help succeeds", []string{"--help"}, 0, "secrethub"},
		{"an unknown command fails", []string{"no-such-command"}, 1, "unknown command"},
		{"status of an unreachable server is an error, not 'sealed'", []string{"status", "--address", "http://127.0.0.1:1"}, 1, "Error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], c.args...)
			cmd.Env = []string{"SECRETHUB_RUN_MAIN=1", "HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != c.code || !strings.Contains(string(out), c.out) {
				t.Fatalf("exit %d, want %d; output:\n%s", code, c.code, out)
			}
		})
	}
}
