package command

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/secrethub/secrethub/client"
	"github.com/secrethub/secrethub/client/clienttest"
	"github.com/secrethub/secrethub/storage/storagetest"
)

func TestOperatorInitAndUnseal(t *testing.T) {
	srv := clienttest.Start(t, storagetest.SQLite(t))
	ctx := context.Background()

	c := newConsole("")
	if err := runOperatorInit(ctx, &OperatorInitOptions{Deps: c.deps(t, srv, "", FormatTable), KeyShares: 3, KeyThreshold: 2}); err != nil {
		t.Fatal(err)
	}
	out := c.out.String()
	var hexKeys []string
	for i := 1; i <= 3; i++ {
		h := rowValue(t, out, "Unseal Key "+string(rune('0'+i)))
		b64 := rowValue(t, out, "Unseal Key "+string(rune('0'+i))+" (base64)")
		raw, err := hex.DecodeString(h)
		if err != nil {
			t.Fatalf("key %d is not hex: %q", i, h)
		}
		if fromB64, err := base64.StdEncoding.DecodeString(b64); err != nil || string(fromB64) != string(raw) {
			t.Fatalf("key %d: base64 %q does not match hex %q", i, b64, h)
		}
		hexKeys = append(hexKeys, h)
	}
	root := rowValue(t, out, "Initial Root Token")
	if !strings.HasPrefix(root, "s.") {
		t.Fatalf("root token %q", root)
	}
	mustContain(t, "init output", out, "3 key shares and a key threshold of 2", "secrethub operator unseal")

	t.Run("a key piped on stdin (not a terminal) counts as one share", func(t *testing.T) {
		c := newConsole(hexKeys[0] + "\n")
		if err := runOperatorUnseal(ctx, &OperatorUnsealOptions{Deps: c.deps(t, srv, "", FormatTable)}); err != nil {
			t.Fatal(err)
		}
		if rowValue(t, c.out.String(), "Unseal Progress") != "1/2" || rowValue(t, c.out.String(), "Sealed") != "true" {
			t.Fatalf("unseal output:\n%s", c.out)
		}
		if strings.Contains(c.out.String()+c.err.String(), hexKeys[0]) {
			t.Fatal("the unseal key was echoed")
		}
	})
	t.Run("-reset discards the progress", func(t *testing.T) {
		c := newConsole("")
		if err := runOperatorUnseal(ctx, &OperatorUnsealOptions{Deps: c.deps(t, srv, "", FormatJSON), Reset: true}); err != nil {
			t.Fatal(err)
		}
		var st client.SealStatus
		if err := json.Unmarshal(c.out.Bytes(), &st); err != nil || st.Progress != 0 || !st.Sealed {
			t.Fatalf("json %s: %v", c.out, err)
		}
	})
	t.Run("empty stdin is an error, not an empty key", func(t *testing.T) {
		c := newConsole("")
		err := runOperatorUnseal(ctx, &OperatorUnsealOptions{Deps: c.deps(t, srv, "", FormatTable)})
		if err == nil || !strings.Contains(err.Error(), "reading the unseal key") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a wrong key is the server's error", func(t *testing.T) {
		c := newConsole("")
		err := runOperatorUnseal(ctx, &OperatorUnsealOptions{Deps: c.deps(t, srv, "", FormatTable), Key: "not-a-key!"})
		if err == nil || !strings.Contains(err.Error(), "Code: 400") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("threshold keys as arguments unseal", func(t *testing.T) {
		c := newConsole("")
		d := c.deps(t, srv, "", FormatTable)
		for _, k := range hexKeys[1:] {
			c.out.Reset()
			if err := runOperatorUnseal(ctx, &OperatorUnsealOptions{Deps: d, Key: k}); err != nil {
				t.Fatal(err)
			}
		}
		if rowValue(t, c.out.String(), "Sealed") != "false" {
			t.Fatalf("after threshold:\n%s", c.out)
		}
	})
	t.Run("rotate and key-status show the new term", func(t *testing.T) {
		c := newConsole("")
		d := c.deps(t, srv, root, FormatTable)
		if err := runOperatorRotate(ctx, &OperatorRotateOptions{Deps: d}); err != nil {
			t.Fatal(err)
		}
		mustContain(t, "rotate output", c.out.String(), "Success! Rotated the barrier key.")
		if rowValue(t, c.out.String(), "Key Term") != "2" {
			t.Fatalf("rotate output:\n%s", c.out)
		}
		c.out.Reset()
		if err := runOperatorKeyStatus(ctx, &OperatorKeyStatusOptions{Deps: d}); err != nil {
			t.Fatal(err)
		}
		if rowValue(t, c.out.String(), "Key Term") != "2" {
			t.Fatalf("key-status output:\n%s", c.out)
		}
	})
	t.Run("seal needs a privileged token, then seals", func(t *testing.T) {
		c := newConsole("")
		err := runOperatorSeal(ctx, &OperatorSealOptions{Deps: c.deps(t, srv, "", FormatTable)})
		if err == nil || !strings.Contains(err.Error(), "Code: 403") {
			t.Fatalf("seal without a token: err = %v", err)
		}
		if err := runOperatorSeal(ctx, &OperatorSealOptions{Deps: c.deps(t, srv, root, FormatTable)}); err != nil {
			t.Fatal(err)
		}
		mustContain(t, "seal output", c.out.String(), "Success! SecretHub is sealed")
		st, err := srv.Client(t, "").Sys().SealStatus(ctx)
		if err != nil || !st.Sealed {
			t.Fatalf("after seal: %+v, %v", st, err)
		}
	})
	t.Run("init twice is refused", func(t *testing.T) {
		c := newConsole("")
		err := runOperatorInit(ctx, &OperatorInitOptions{Deps: c.deps(t, srv, "", FormatTable), KeyShares: 1, KeyThreshold: 1})
		if err == nil || !strings.Contains(err.Error(), "already initialized") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestOperatorInitFlagsFromTheShell(t *testing.T) {
	srv := clienttest.Start(t, storagetest.SQLite(t))
	code, out, errOut := cli(t, srv.URL, "", "", "operator", "init", "-key-shares=1", "-key-threshold=1", "-format=json")
	var res client.InitResponse
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil {
		t.Fatalf("exit %d, %v: %s %s", code, err, out, errOut)
	}
	if len(res.Keys) != 1 || len(res.KeysBase64) != 1 || res.RootToken == "" {
		t.Fatalf("init json = %+v", res)
	}
}

func TestOperatorGenerateSecret(t *testing.T) {
	seen := map[string]bool{}
	for range 2 {
		c := newConsole("")
		if err := runOperatorGenerateSecret(&OperatorGenerateSecretOptions{IO: c.io}); err != nil {
			t.Fatal(err)
		}
		line, ok := strings.CutSuffix(c.out.String(), "\n")
		if !ok || strings.Contains(line, "\n") {
			t.Fatalf("want one line, got %q", c.out)
		}
		raw, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(raw) != 64 {
			t.Fatalf("%q is not 64 bytes of base64 (%d, %v)", line, len(raw), err)
		}
		seen[line] = true
	}
	if len(seen) != 2 {
		t.Fatal("two runs printed the same secret")
	}
}

// checkAdminHash fails unless out is exactly one line holding a bcrypt
// hash of cost AdminPasswordCost that password matches.
func checkAdminHash(t *testing.T, out, password string) string {
	t.Helper()
	hash, ok := strings.CutSuffix(out, "\n")
	if !ok || strings.Contains(hash, "\n") {
		t.Fatalf("want one line, got %q", out)
	}
	if cost, err := bcrypt.Cost([]byte(hash)); err != nil || cost != 12 {
		t.Fatalf("hash %q: cost %d, %v; want cost 12", hash, cost, err)
	}
	if !strings.HasPrefix(hash, "$2a$12$") {
		t.Fatalf("hash %q is not a $2a$ bcrypt hash", hash)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)); err != nil {
		t.Fatalf("the printed hash does not verify the password: %v", err)
	}
	return hash
}

func TestOperatorHashPasswordFromStdin(t *testing.T) {
	tests := []struct {
		name     string
		flag     string
		stdin    string
		password string
	}{
		{"one line is hashed without its newline", "--password-stdin", "correct horse battery staple\n", "correct horse battery staple"},
		{"the Vault-style single-dash flag works too", "-password-stdin", "correct horse battery staple\n", "correct horse battery staple"},
		{"a Windows line ending is dropped", "--password-stdin", "pa55word\r\n", "pa55word"},
		{"input without a final newline is taken as it is", "--password-stdin", "pa55word", "pa55word"},
		{"spaces at either end are part of the password", "--password-stdin", "  spaced out  \n", "  spaced out  "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := cli(t, "", "", tt.stdin, "operator", "hash-password", tt.flag)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			checkAdminHash(t, out, tt.password)
			if strings.Contains(errOut, strings.TrimSpace(tt.password)) {
				t.Fatalf("the password was echoed: %q", errOut)
			}
		})
	}

	long := strings.Repeat("x", 73)
	refusals := []struct {
		name    string
		args    []string
		stdin   string
		wantErr string
	}{
		{"empty input", []string{"--password-stdin"}, "", "standard input holds no password"},
		{"an empty line", []string{"--password-stdin"}, "\n", "standard input holds no password"},
		{"two lines", []string{"--password-stdin"}, "first-secret\nsecond-secret\n", "more than one line"},
		{"a password bcrypt would cut short", []string{"--password-stdin"}, long + "\n", "longer than 72 bytes"},
		{"standard input that is not a terminal, without --password-stdin", nil, "piped-secret\n", "pipe it in with --password-stdin"},
		{"a password given as an argument", []string{"piped-secret"}, "", "takes no arguments"},
	}
	for _, tt := range refusals {
		t.Run(tt.name+" is refused with exit code 1 and no hash", func(t *testing.T) {
			code, out, errOut := cli(t, "", "", tt.stdin, append([]string{"operator", "hash-password"}, tt.args...)...)
			if code != 1 || out != "" {
				t.Fatalf("exit %d, stdout %q", code, out)
			}
			mustContain(t, "stderr", errOut, tt.wantErr)
			for _, secret := range []string{"first-secret", "second-secret", "piped-secret", long} {
				if strings.Contains(errOut, secret) {
					t.Fatalf("the password is in the error: %s", errOut)
				}
			}
		})
	}
}

func TestOperatorHashPasswordAsksTwiceOnATerminal(t *testing.T) {
	// answers scripts what a person types at the two hidden prompts.
	answers := func(typed ...string) (func(context.Context, string) (string, error), *[]string) {
		var prompts []string
		return func(_ context.Context, prompt string) (string, error) {
			prompts = append(prompts, prompt)
			next := typed[0]
			typed = typed[1:]
			return next, nil
		}, &prompts
	}

	t.Run("the same password twice is hashed, with a hint on stderr", func(t *testing.T) {
		c := newConsole("")
		read, prompts := answers("s3cret pass", "s3cret pass")
		err := runOperatorHashPassword(context.Background(), &OperatorHashPasswordOptions{IO: c.io, Interactive: true, ReadPassword: read})
		if err != nil {
			t.Fatal(err)
		}
		checkAdminHash(t, c.out.String(), "s3cret pass")
		if len(*prompts) != 2 || !strings.Contains((*prompts)[0], "will be hidden") {
			t.Fatalf("prompts = %q", *prompts)
		}
		mustContain(t, "stderr", c.err.String(), "ADMIN_PASSWORD_HASH", "single quotes")
	})
	t.Run("two different passwords are an error and nothing is printed", func(t *testing.T) {
		c := newConsole("")
		read, _ := answers("first-typed", "second-typed")
		err := runOperatorHashPassword(context.Background(), &OperatorHashPasswordOptions{IO: c.io, Interactive: true, ReadPassword: read})
		if err == nil || !strings.Contains(err.Error(), "do not match") {
			t.Fatalf("err = %v", err)
		}
		if c.out.Len() != 0 || strings.Contains(err.Error(), "first-typed") || strings.Contains(err.Error(), "second-typed") {
			t.Fatalf("stdout %q, err %v", c.out, err)
		}
	})
}
