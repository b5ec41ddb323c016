package command

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/client"
	"github.com/secrethub/secrethub/client/clienttest"
)

// loginOptions are LoginOptions for this console against srv; the caller
// sets the token or stdin.
func (c *console) loginOptions(t *testing.T, srv *clienttest.Server) *LoginOptions {
	t.Helper()
	return &LoginOptions{
		Deps:    Deps{IO: c.io, Format: FormatTable},
		Method:  "token",
		Connect: func(token string) (*client.Client, error) { return client.New(srv.URL, token) },
	}
}

func TestLogin(t *testing.T) {
	srv := unsealedServer(t)
	ctx := context.Background()

	tests := []struct {
		name     string
		existing os.FileMode // mode of a token file already there, 0 for none
		stdin    string
		arg      string
	}{
		{"a token argument is checked and stored with mode 0600", 0, "", srv.RootToken},
		{"a token piped on stdin (not a terminal) is read from one line", 0, srv.RootToken + "\n", ""},
		{"an existing world-readable token file is narrowed to 0600 and replaced", 0o644, "", srv.RootToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			t.Setenv("HOME", home)
			t.Setenv(EnvToken, "")
			path := filepath.Join(home, TokenFileName)
			if tt.existing != 0 {
				if err := os.WriteFile(path, []byte("s.an-old-and-much-longer-token-than-the-new-one-xxxxxxxxxx\n"), tt.existing); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tt.existing); err != nil {
					t.Fatal(err)
				}
			}
			c := newConsole(tt.stdin)
			opts := c.loginOptions(t, srv)
			opts.Token = tt.arg
			if err := runLogin(ctx, opts); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Fatalf("token file mode %v, want 0600", fi.Mode().Perm())
			}
			b, err := os.ReadFile(path)
			if err != nil || string(b) != srv.RootToken+"\n" {
				t.Fatalf("token file holds %q, %v", b, err)
			}
			out := c.out.String()
			mustContain(t, "login output", out, "Success! You are now authenticated", path)
			if strings.Contains(out, srv.RootToken) || strings.Contains(c.err.String(), srv.RootToken) {
				t.Fatal("login printed the token")
			}
			if got, err := storedToken(); err != nil || got != srv.RootToken {
				t.Fatalf("later commands would use %q, %v", got, err)
			}
		})
	}

	t.Run("an invalid token is refused and nothing is written", func(t *testing.T) {
		home := t.TempDir()
		t.Setenv("HOME", home)
		c := newConsole("")
		opts := c.loginOptions(t, srv)
		opts.Token = "s.not-valid"
		err := runLogin(ctx, opts)
		if err == nil || !strings.Contains(err.Error(), "Code: 403") {
			t.Fatalf("err = %v", err)
		}
		if _, err := os.Stat(filepath.Join(home, TokenFileName)); !os.IsNotExist(err) {
			t.Fatalf("a token file was written: %v", err)
		}
	})
	t.Run("other methods are not available yet", func(t *testing.T) {
		t.Setenv("HOME", t.TempDir())
		code, _, errOut := cli(t, srv.URL, "", "", "login", "-method=approle")
		if code != 1 || !strings.Contains(errOut, `login method "approle" is not available yet`) {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
	t.Run("SECRETHUB_TOKEN taking precedence is pointed out", func(t *testing.T) {
		t.Setenv("HOME", t.TempDir())
		t.Setenv(EnvToken, "s.something-else")
		c := newConsole("")
		opts := c.loginOptions(t, srv)
		opts.Token = srv.RootToken
		if err := runLogin(ctx, opts); err != nil {
			t.Fatal(err)
		}
		mustContain(t, "stderr", c.err.String(), "SECRETHUB_TOKEN is set and takes precedence")
	})
}
