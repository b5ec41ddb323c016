package command

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/client"
	"github.com/secrethub/secrethub/client/clienttest"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// console is what a person at a terminal would see: fake streams with
// stdin preset.
type console struct {
	io  *IOStreams
	out *bytes.Buffer
	err *bytes.Buffer
}

func newConsole(stdin string) *console {
	c := &console{out: &bytes.Buffer{}, err: &bytes.Buffer{}}
	c.io = &IOStreams{In: strings.NewReader(stdin), Out: c.out, ErrOut: c.err}
	return c
}

// deps are Deps for this console talking to srv with token.
func (c *console) deps(t *testing.T, srv *clienttest.Server, token, format string) Deps {
	t.Helper()
	cl := srv.Client(t, token)
	return Deps{IO: c.io, Format: format, Client: func() (*client.Client, error) { return cl, nil }}
}

// unsealedServer is a real Core on SQLite, initialized and unsealed.
func unsealedServer(t *testing.T) *clienttest.Server {
	t.Helper()
	return clienttest.Unsealed(t, storagetest.SQLite(t))
}

// cli runs the whole command line (argument normalization, flags, exit
// codes) against addr, as a person at a shell would, with HOME in a
// temporary directory and the token in SECRETHUB_TOKEN.
func cli(t *testing.T, addr, token, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return cliEnv(t, nil, addr, token, stdin, args...)
}

// cliEnv is cli with more environment variables; the client's TLS
// variables are unset unless env sets them.
func cliEnv(t *testing.T, env map[string]string, addr, token, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Setenv("HOME", t.TempDir())
	t.Setenv(EnvToken, token)
	t.Setenv(EnvAddress, addr)
	t.Setenv(EnvCACert, "")
	t.Setenv(EnvSkipVerify, "")
	for k, v := range env {
		t.Setenv(k, v)
	}
	c := newConsole(stdin)
	code = run(context.Background(), args, c.io)
	return code, c.out.String(), c.err.String()
}

// mustContain fails unless s contains every one of want.
func mustContain(t *testing.T, what, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Fatalf("%s does not contain %q:\n%s", what, w, s)
		}
	}
}

// rowValue returns the value of the table row whose first column is key.
func rowValue(t *testing.T, table, key string) string {
	t.Helper()
	for _, line := range strings.Split(table, "\n") {
		// Columns are at least two spaces apart, so "Unseal Key 1" does not
		// match "Unseal Key 1 (base64)".
		if strings.HasPrefix(line, key+"  ") {
			return strings.TrimSpace(strings.TrimPrefix(line, key))
		}
	}
	t.Fatalf("no row %q in:\n%s", key, table)
	return ""
}
