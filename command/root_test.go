package command

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/client"
)

func TestNormalizeArgs(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{"single-dash long flags get a second dash",
			[]string{"kv", "get", "-field=message", "-format=json", "test/hello"},
			[]string{"kv", "get", "--field=message", "--format=json", "test/hello"}},
		{"a single-dash long flag with a separate value is normalized too",
			[]string{"kv", "get", "-version", "2", "p"}, []string{"kv", "get", "--version", "2", "p"}},
		{"double-dash flags stay as they are",
			[]string{"--address=http://x:1", "status"}, []string{"--address=http://x:1", "status"}},
		{"a lone dash and one-letter shorthands stay",
			[]string{"-", "-h", "-v"}, []string{"-", "-h", "-v"}},
		{"negative numbers stay",
			[]string{"migrate", "down", "-1", "-2.5"}, []string{"migrate", "down", "-1", "-2.5"}},
		{"key=- reads stdin and is not a flag",
			[]string{"kv", "put", "p", "password=-", "user=-x"}, []string{"kv", "put", "p", "password=-", "user=-x"}},
		{"nothing after -- is touched",
			[]string{"-method=token", "--", "-field=x"}, []string{"--method=token", "--", "-field=x"}},
		{"a dash followed by a digit then letters is not a flag",
			[]string{"-1abc"}, []string{"-1abc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.in)
			if got := normalizeArgs(tt.in); !slices.Equal(got, tt.want) {
				t.Fatalf("normalizeArgs(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if !slices.Equal(tt.in, in) {
				t.Fatal("normalizeArgs changed its input")
			}
		})
	}
}

func TestVaultStyleFlagsWorkFromTheShell(t *testing.T) {
	srv := unsealedServer(t)
	kv := srv.Root(t).KV()
	ctx := context.Background()
	for _, msg := range []string{"first", "Hello Production!"} {
		if _, err := kv.Put(ctx, "test/hello", map[string]any{"message": msg}, client.KVPutOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("-field prints the raw value", func(t *testing.T) {
		code, out, errOut := cli(t, srv.URL, srv.RootToken, "", "kv", "get", "-field=message", "test/hello")
		if code != 0 || out != "Hello Production!\n" || errOut != "" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})
	t.Run("-version and -field together read an older version", func(t *testing.T) {
		code, out, _ := cli(t, srv.URL, srv.RootToken, "", "kv", "get", "-version=1", "-field=message", "test/hello")
		if code != 0 || out != "first\n" {
			t.Fatalf("exit %d, stdout %q", code, out)
		}
	})
	t.Run("-format=json prints parseable JSON", func(t *testing.T) {
		code, out, _ := cli(t, srv.URL, srv.RootToken, "", "kv", "get", "-format=json", "test/hello")
		var got client.KVSecret
		if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil {
			t.Fatalf("exit %d, %v: %s", code, err, out)
		}
		if got.Data["message"] != "Hello Production!" || got.Metadata.Version != 2 {
			t.Fatalf("json = %+v", got)
		}
	})
	t.Run("-address overrides SECRETHUB_ADDR", func(t *testing.T) {
		code, out, _ := cli(t, "http://127.0.0.1:1", srv.RootToken, "", "-address="+srv.URL, "kv", "get", "-field=message", "test/hello")
		if code != 0 || out != "Hello Production!\n" {
			t.Fatalf("exit %d, stdout %q", code, out)
		}
	})
}

func TestErrorsReachThePersonReadably(t *testing.T) {
	srv := unsealedServer(t)
	tests := []struct {
		name     string
		token    string
		args     []string
		wantErr  []string
		wantCode int
	}{
		{"an unknown flag points at --help", srv.RootToken, []string{"kv", "get", "-bogus=1", "x"},
			[]string{"unknown flag: --bogus", "secrethub kv get --help"}, 1},
		{"a missing argument shows the usage", srv.RootToken, []string{"kv", "get"},
			[]string{"accepts 1 arg(s), received 0", "Usage: secrethub kv get PATH"}, 1},
		{"a server refusal shows its code and message", "s.not-a-real-token", []string{"kv", "get", "test/x"},
			[]string{"Error: reading test/x: Code: 403. Errors: * permission denied"}, 1},
		{"a missing secret says where nothing was found", srv.RootToken, []string{"kv", "get", "test/missing"},
			[]string{"no value found at test/missing"}, 1},
		{"an unknown output format is refused", srv.RootToken, []string{"status", "-format=yaml"},
			[]string{`unknown output format "yaml"`}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := cli(t, srv.URL, tt.token, "", tt.args...)
			if code != tt.wantCode || out != "" {
				t.Fatalf("exit %d (want %d), stdout %q", code, tt.wantCode, out)
			}
			mustContain(t, "stderr", errOut, tt.wantErr...)
			if strings.Contains(errOut, "goroutine") || strings.Contains(errOut, ".go:") {
				t.Fatalf("stderr looks like a stack trace:\n%s", errOut)
			}
		})
	}
}

func TestTheTokenFileIsUsedWhenNoTokenIsInTheEnvironment(t *testing.T) {
	srv := unsealedServer(t)
	home := t.TempDir()
	t.Setenv("HOME", home)
	if _, err := writeTokenFile(srv.RootToken); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvToken, "")
	t.Setenv(EnvAddress, srv.URL)
	c := newConsole("")
	if code := run(context.Background(), []string{"token", "lookup", "-format=json"}, c.io); code != 0 {
		t.Fatalf("exit %d: %s", code, c.err)
	}
	mustContain(t, "lookup", c.out.String(), `"root"`)
}

func TestAConnectionDroppedMidRequestIsOneReadableLine(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer hs.Close()
	code, out, errOut := cli(t, hs.URL, "", "", "status")
	if code != 1 || out != "" || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.HasPrefix(errOut, "Error: ") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
