package command

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrethub/secrethub/client"
)

func TestTokenCommands(t *testing.T) {
	srv := unsealedServer(t)
	ctx := context.Background()

	// token create parses its flags from the command line.
	code, out, errOut := cli(t, srv.URL, srv.RootToken, "", "token", "create", "-policy=admin", "-policy=ops",
		"-ttl=2h", "-explicit-max-ttl=720h", "-display-name=ci", "-num-uses=5", "-metadata=team=payments")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	token, accessor := rowValue(t, out, "token"), rowValue(t, out, "token_accessor")
	if !strings.HasPrefix(token, "s.") || accessor == "" || rowValue(t, out, "token_duration") != "2h" ||
		rowValue(t, out, "token_policies") != `["admin","default","ops"]` {
		t.Fatalf("create output:\n%s", out)
	}
	info, err := srv.Root(t).Token().LookupAccessor(ctx, accessor)
	if err != nil || info.NumUses != 5 || info.DisplayName != "token-ci" || info.Meta["team"] != "payments" || info.ExplicitMaxTTL != 720*3600 {
		t.Fatalf("created token = %+v, %v", info, err)
	}

	t.Run("token create flags that are off by default are sent when given", func(t *testing.T) {
		code, out, errOut := cli(t, srv.URL, srv.RootToken, "", "token", "create", "-orphan", "-renewable=false",
			"-no-default-policy", "-policy=ops", "-format=json")
		var a client.TokenAuth
		if err := json.Unmarshal([]byte(out), &a); code != 0 || err != nil {
			t.Fatalf("exit %d, %v: %s %s", code, err, out, errOut)
		}
		if !a.Orphan || a.Renewable || len(a.Policies) != 1 || a.Policies[0] != "ops" {
			t.Fatalf("created = %+v", a)
		}
	})
	t.Run("token create -orphan asks auth/token/create-orphan, as Vault's CLI does", func(t *testing.T) {
		proxy := newPathRecorder(t, srv.URL)
		code, out, errOut := cli(t, proxy.url, srv.RootToken, "", "token", "create", "-orphan", "-format=json")
		var a client.TokenAuth
		if err := json.Unmarshal([]byte(out), &a); code != 0 || err != nil || !a.Orphan {
			t.Fatalf("exit %d, %v: %s %s", code, err, out, errOut)
		}
		code, _, errOut = cli(t, proxy.url, srv.RootToken, "", "token", "create")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		want := []string{"/v1/auth/token/create-orphan", "/v1/auth/token/create"}
		if got := proxy.paths(); !slices.Equal(got, want) {
			t.Fatalf("paths asked = %v, want %v", got, want)
		}
	})
	t.Run("a bad -ttl is refused before asking the server", func(t *testing.T) {
		code, _, errOut := cli(t, srv.URL, srv.RootToken, "", "token", "create", "-ttl=soon")
		if code != 1 || !strings.Contains(errOut, "-ttl must be seconds or a duration") {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})

	lookups := []struct {
		name string
		opts TokenLookupOptions
	}{
		{"lookup without arguments describes the caller's token", TokenLookupOptions{}},
		{"lookup of a token value describes that token", TokenLookupOptions{Token: token}},
		{"lookup -accessor describes the token with that accessor", TokenLookupOptions{Accessor: accessor}},
	}
	for _, tt := range lookups {
		t.Run(tt.name, func(t *testing.T) {
			c := newConsole("")
			caller := srv.RootToken
			if tt.opts.Token == "" && tt.opts.Accessor == "" {
				caller = token
			}
			opts := tt.opts
			opts.Deps = c.deps(t, srv, caller, FormatTable)
			if err := runTokenLookup(ctx, &opts); err != nil {
				t.Fatal(err)
			}
			out := c.out.String()
			if rowValue(t, out, "accessor") != accessor || rowValue(t, out, "display_name") != "token-ci" {
				t.Fatalf("lookup output:\n%s", out)
			}
			if strings.Contains(out, token) {
				t.Fatalf("lookup printed the token itself:\n%s", out)
			}
		})
	}
	t.Run("lookup in json leaves the token value out too", func(t *testing.T) {
		c := newConsole("")
		if err := runTokenLookup(ctx, &TokenLookupOptions{Deps: c.deps(t, srv, token, FormatJSON)}); err != nil {
			t.Fatal(err)
		}
		var info client.TokenInfo
		if err := json.Unmarshal(c.out.Bytes(), &info); err != nil || info.Accessor != accessor || strings.Contains(c.out.String(), token) {
			t.Fatalf("json %s: %v", c.out, err)
		}
	})
	t.Run("lookup with both a token and an accessor is refused", func(t *testing.T) {
		c := newConsole("")
		err := runTokenLookup(ctx, &TokenLookupOptions{Deps: c.deps(t, srv, srv.RootToken, FormatTable), Token: token, Accessor: accessor})
		if err == nil {
			t.Fatal("want an error")
		}
	})
	t.Run("renew of the caller's token takes an increment", func(t *testing.T) {
		c := newConsole("")
		if err := runTokenRenew(ctx, &TokenRenewOptions{Deps: c.deps(t, srv, token, FormatTable), Increment: 30 * time.Minute}); err != nil {
			t.Fatal(err)
		}
		if d := rowValue(t, c.out.String(), "token_duration"); d != "30m" && d != "29m59s" {
			t.Fatalf("renew output:\n%s", c.out)
		}
		if strings.Contains(c.out.String(), token) {
			t.Fatal("renew printed the token itself")
		}
	})
	t.Run("renew -accessor renews the token that accessor names", func(t *testing.T) {
		code, out, errOut := cli(t, srv.URL, srv.RootToken, "", "token", "renew", "-accessor="+accessor, "-increment=45m")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if d := rowValue(t, out, "token_duration"); rowValue(t, out, "token_accessor") != accessor || (d != "45m" && d != "44m59s") {
			t.Fatalf("renew output:\n%s", out)
		}
	})
	t.Run("renew with both a token and an accessor is refused", func(t *testing.T) {
		code, _, errOut := cli(t, srv.URL, srv.RootToken, "", "token", "renew", "-accessor="+accessor, token)
		if code != 1 || !strings.Contains(errOut, "give either TOKEN or -accessor, not both") {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
	t.Run("renew of another token by value", func(t *testing.T) {
		c := newConsole("")
		if err := runTokenRenew(ctx, &TokenRenewOptions{Deps: c.deps(t, srv, srv.RootToken, FormatTable), Token: token, Increment: time.Hour}); err != nil {
			t.Fatal(err)
		}
		if rowValue(t, c.out.String(), "token_accessor") != accessor {
			t.Fatalf("renew output:\n%s", c.out)
		}
	})

	t.Run("revoke needs exactly one way of naming the token", func(t *testing.T) {
		for _, opts := range []TokenRevokeOptions{{}, {Token: token, Self: true}, {Token: token, Accessor: accessor}} {
			c := newConsole("")
			opts.Deps = c.deps(t, srv, srv.RootToken, FormatTable)
			if err := runTokenRevoke(ctx, &opts); err == nil || !strings.Contains(err.Error(), "exactly one") {
				t.Fatalf("revoke %+v: err = %v", opts, err)
			}
		}
	})
	revokes := []struct {
		name string
		opts func(tok, acc string) TokenRevokeOptions
		as   func(tok string) string
	}{
		{"revoke by value", func(tok, _ string) TokenRevokeOptions { return TokenRevokeOptions{Token: tok} },
			func(string) string { return srv.RootToken }},
		{"revoke -accessor", func(_, acc string) TokenRevokeOptions { return TokenRevokeOptions{Accessor: acc} },
			func(string) string { return srv.RootToken }},
		{"revoke -self", func(string, string) TokenRevokeOptions { return TokenRevokeOptions{Self: true} },
			func(tok string) string { return tok }},
	}
	for _, tt := range revokes {
		t.Run(tt.name+" ends the token", func(t *testing.T) {
			a, err := srv.Root(t).Token().Create(ctx, client.TokenCreateRequest{TTL: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			c := newConsole("")
			opts := tt.opts(a.ClientToken, a.Accessor)
			opts.Deps = c.deps(t, srv, tt.as(a.ClientToken), FormatTable)
			if err := runTokenRevoke(ctx, &opts); err != nil {
				t.Fatal(err)
			}
			mustContain(t, "revoke output", c.out.String(), "Success! Revoked the token")
			if _, err := srv.Client(t, a.ClientToken).Token().LookupSelf(ctx); err == nil {
				t.Fatal("the revoked token still works")
			}
		})
	}
}

// pathRecorder is a reverse proxy in front of a real server that notes
// the path of every request, to show which API a command chose.
type pathRecorder struct {
	url   string
	mu    sync.Mutex
	asked []string
}

func newPathRecorder(t *testing.T, target string) *pathRecorder {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	pr := &pathRecorder{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pr.mu.Lock()
		pr.asked = append(pr.asked, r.URL.Path)
		pr.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	pr.url = hs.URL
	return pr
}

func (pr *pathRecorder) paths() []string {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return slices.Clone(pr.asked)
}

func TestHumanSeconds(t *testing.T) {
	tests := []struct {
		name string
		in   int64
		want string
	}{
		{"no expiry is infinite", 0, "∞"},
		{"whole hours drop the zero minutes and seconds", 768 * 3600, "768h"},
		{"hours and minutes drop the zero seconds", 5400, "1h30m"},
		{"minutes and seconds stay", 90, "1m30s"},
		{"seconds stay", 45, "45s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := humanSeconds(tt.in); got != tt.want {
				t.Fatalf("humanSeconds(%d) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
