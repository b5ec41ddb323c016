package command

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/secrethub/secrethub/client"
	"github.com/secrethub/secrethub/client/clienttest"
	"github.com/secrethub/secrethub/server"
	"github.com/secrethub/secrethub/storage/storagetest"
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
	t.Run("an unknown method is refused", func(t *testing.T) {
		code, _, errOut := cli(t, srv.URL, "", "", "login", "-method=github")
		if code != 1 || !strings.Contains(errOut, `unknown login method "github": use token, approle or admin`) {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
	t.Run("-no-store checks a token without storing it", func(t *testing.T) {
		code, out, errOut := cli(t, srv.URL, "", "", "login", "-no-store", srv.RootToken)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		mustContain(t, "stdout", out, "Success! The token is valid. It was not stored (-no-store).")
		if _, err := os.Stat(filepath.Join(os.Getenv("HOME"), TokenFileName)); !os.IsNotExist(err) {
			t.Fatalf("a token file was written: %v", err)
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

// tokenFile returns the content of the token file in the current HOME,
// and fails unless it has mode 0600.
func tokenFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(os.Getenv("HOME"), TokenFileName)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no token file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// adminServer is a Core on SQLite with admin login for "admin" and
// password, hashed at bcrypt's lowest cost to keep tests quick.
func adminServer(t *testing.T, password string) *clienttest.Server {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return clienttest.UnsealedWith(t, storagetest.SQLite(t), server.Config{AdminUsername: "admin", AdminPasswordHash: string(hash)})
}

func TestAdminLoginCommand(t *testing.T) {
	const password = "  correct horse battery staple"
	srv := adminServer(t, password)

	t.Run("a password from stdin logs in and stores the admin token without printing it", func(t *testing.T) {
		code, out, errOut := cli(t, srv.URL, "", password+"\n", "login", "-method=admin", "username=admin")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		token := tokenFile(t)
		mustContain(t, "stdout", out, "Success! You are now authenticated. The token was stored in")
		if rowValue(t, out, "token_duration") != "30m" || !strings.Contains(rowValue(t, out, "policies"), `"admin"`) ||
			rowValue(t, out, "token_accessor") == "" {
			t.Fatalf("login output:\n%s", out)
		}
		if strings.Contains(out+errOut, token) || strings.Contains(out+errOut, strings.TrimSpace(password)) {
			t.Fatalf("the token or the password was printed:\n%s%s", out, errOut)
		}
		info, err := srv.Client(t, token).Token().LookupSelf(t.Context())
		if err != nil || !slices.Contains(info.Policies, "admin") {
			t.Fatalf("the stored token looks up as %+v, %v", info, err)
		}
	})
	t.Run("-no-store prints the token and stores nothing", func(t *testing.T) {
		code, out, errOut := cli(t, srv.URL, "", password+"\n", "login", "-method=admin", "-no-store", "username=admin")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if !strings.HasPrefix(rowValue(t, out, "token"), "s.") {
			t.Fatalf("no token in:\n%s", out)
		}
		if _, err := os.Stat(filepath.Join(os.Getenv("HOME"), TokenFileName)); !os.IsNotExist(err) {
			t.Fatalf("a token file was written: %v", err)
		}
	})
	t.Run("-format=json gives the auth block with the token, and stores it", func(t *testing.T) {
		code, out, errOut := cli(t, srv.URL, "", password+"\n", "login", "-method=admin", "-format=json", "username=admin")
		var a client.TokenAuth
		if err := json.Unmarshal([]byte(out), &a); code != 0 || err != nil {
			t.Fatalf("exit %d, %v: %s %s", code, err, out, errOut)
		}
		if a.ClientToken == "" || a.ClientToken != tokenFile(t) {
			t.Fatalf("json token %q, stored %q", a.ClientToken, tokenFile(t))
		}
	})

	refusals := []struct {
		name    string
		stdin   string
		args    []string
		wantErr string
		secret  string
	}{
		{"a password on the command line", password + "\n", []string{"username=admin", "password=hunter2-on-the-line"},
			"password= is refused on the command line", "hunter2-on-the-line"},
		{"a wrong password", "hunter2-wrong\n", []string{"username=admin"}, "invalid username or password", "hunter2-wrong"},
		{"no password on stdin", "", []string{"username=admin"}, "reading the password: nothing to read on standard input", ""},
		{"no user name", password + "\n", nil, "-method=admin needs username=NAME", ""},
		{"an unknown key", password + "\n", []string{"username=admin", "user=admin"}, `argument 2 has the unknown key "user": -method=admin takes username`, ""},
		{"a key that may be a secret", password + "\n", []string{"username=admin", "s.Hunter2Token=x"}, "argument 2 has an unknown key", "s.Hunter2Token"},
		{"an argument that is not KEY=VALUE", password + "\n", []string{"hunter2-bare"}, "argument 1 is not KEY=VALUE", "hunter2-bare"},
		{"a user name given twice", password + "\n", []string{"username=admin", "username=root"}, "username is given twice", ""},
	}
	for _, tt := range refusals {
		t.Run(tt.name+" is refused with exit code 1, nothing stored and no secret shown", func(t *testing.T) {
			code, out, errOut := cli(t, srv.URL, "", tt.stdin, append([]string{"login", "-method=admin"}, tt.args...)...)
			if code != 1 || out != "" {
				t.Fatalf("exit %d, stdout %q", code, out)
			}
			mustContain(t, "stderr", errOut, tt.wantErr)
			if tt.secret != "" && strings.Contains(errOut, tt.secret) {
				t.Fatalf("the secret is in the error: %s", errOut)
			}
			if _, err := os.Stat(filepath.Join(os.Getenv("HOME"), TokenFileName)); !os.IsNotExist(err) {
				t.Fatalf("a token file was written: %v", err)
			}
		})
	}
	t.Run("a server without an admin user says so", func(t *testing.T) {
		plain := unsealedServer(t)
		code, _, errOut := cli(t, plain.URL, "", password+"\n", "login", "-method=admin", "username=admin")
		if code != 1 || !strings.Contains(errOut, "Code: 404") || !strings.Contains(errOut, "admin login is not enabled") {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
}
