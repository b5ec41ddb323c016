package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/secrethub/secrethub/client"
	"github.com/secrethub/secrethub/client/clienttest"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

func TestNewChecksTheAddress(t *testing.T) {
	tests := []struct {
		name    string
		addr    string
		wantErr bool
	}{
		{"an http URL is accepted", "http://127.0.0.1:4000", false},
		{"an https URL with a path prefix is accepted", "https://secrethub.company.com/vault/", false},
		{"an empty address means the default", "", false},
		{"a bare host is refused", "127.0.0.1:4000", true},
		{"another scheme is refused", "ftp://example.com", true},
		{"user information is refused", "http://user:pw@example.com", true},
		{"a query is refused", "http://example.com?x=1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := client.New(tt.addr, "")
			if (err != nil) != tt.wantErr {
				t.Fatalf("New(%q) error = %v, want error: %v", tt.addr, err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "must") {
				t.Fatalf("New(%q) error %q does not say what is wrong", tt.addr, err)
			}
			if err == nil && tt.addr == "" && c.Address() != client.DefaultAddress {
				t.Fatalf("default address = %q", c.Address())
			}
		})
	}
}

func TestARefusedAddressIsShownWithoutItsSecrets(t *testing.T) {
	const secret = "hunter2"
	tests := []struct {
		name string
		addr string
		want string
	}{
		{"a password in the user information", "https://ops:" + secret + "@vault.example.com/v1", `"https://…@vault.example.com/v1"`},
		{"a password in an address that does not parse", "http://ops:" + secret + "@host:port/", `"http://…@host:port/"`},
		{"a password without a scheme", "ops:" + secret + "@host:4000", `"…@host:4000"`},
		{"a token in the query", "http://host:4000/?token=" + secret, `"http://host:4000/…"`},
		{"a token in the fragment", "http://host:4000#" + secret, `"http://host:4000…"`},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is left out", func(t *testing.T) {
			_, err := client.New(tt.addr, "")
			if err == nil {
				t.Fatalf("New(%q) accepted it", tt.addr)
			}
			if strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want it to show %s and not the secret", err, tt.want)
			}
		})
	}
}

func TestResponseErrorReadsWell(t *testing.T) {
	tests := []struct {
		name string
		err  *client.ResponseError
		want string
	}{
		{"one message", &client.ResponseError{StatusCode: 403, Errors: []string{"permission denied"}},
			"Code: 403. Errors: * permission denied"},
		{"two messages", &client.ResponseError{StatusCode: 400, Errors: []string{"a", "b"}},
			"Code: 400. Errors: * a * b"},
		{"no message falls back to the status text", &client.ResponseError{StatusCode: 502},
			"Code: 502. Errors: * Bad Gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Fatalf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestErrorsFromARealServer(t *testing.T) {
	storagetest.Engines(t, func(t *testing.T, db *storage.DB) {
		srv := clienttest.Unsealed(t, db)
		ctx := context.Background()

		t.Run("a missing token is a 403 ResponseError", func(t *testing.T) {
			_, err := srv.Client(t, "").KV().Get(ctx, "app/x", 0)
			var re *client.ResponseError
			if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden || len(re.Errors) == 0 {
				t.Fatalf("err = %#v, want a 403 ResponseError with messages", err)
			}
			if errors.Is(err, client.ErrNotFound) {
				t.Fatal("a 403 must not match ErrNotFound")
			}
		})
		t.Run("a missing secret matches ErrNotFound", func(t *testing.T) {
			_, err := srv.Root(t).KV().Get(ctx, "app/missing", 0)
			if !errors.Is(err, client.ErrNotFound) {
				t.Fatalf("err = %v, want ErrNotFound", err)
			}
		})
		t.Run("the token is sent in X-Vault-Token", func(t *testing.T) {
			info, err := srv.Root(t).Token().LookupSelf(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(info.Policies) != 1 || info.Policies[0] != "root" {
				t.Fatalf("lookup-self policies = %v, want [root]", info.Policies)
			}
		})
	})
}

func TestAnswersFromSomethingElseInTheWay(t *testing.T) {
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>upstream timed out</html>", http.StatusGatewayTimeout)
	}))
	defer proxy.Close()
	c, err := client.New(proxy.URL, "s.whatever")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Sys().SealStatus(context.Background())
	var re *client.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("err = %v, want a 504 ResponseError", err)
	}
	if !strings.Contains(err.Error(), "upstream timed out") {
		t.Fatalf("error %q should quote the body it got", err)
	}
}

func TestAnUnreachableServerIsAClearError(t *testing.T) {
	hs := httptest.NewServer(http.NotFoundHandler())
	addr := hs.URL
	hs.Close()
	c, err := client.New(addr, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Sys().SealStatus(context.Background())
	if err == nil || !strings.Contains(err.Error(), addr+"/v1/sys/seal-status") {
		t.Fatalf("err = %v, want it to name the URL", err)
	}
}

// Verify and Prune wait as long as the server walks the log (their
// context bounds them), while other calls keep the client's timeouts.
func TestVerifyAndPruneOutlastTheClientTimeouts(t *testing.T) {
	const delay = 400 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		switch r.URL.Path {
		case "/v1/sys/audit/verify":
			_, _ = w.Write([]byte(`{"data":{"ok":true,"events":3,"nodes":[]}}`))
		case "/v1/sys/audit/prune":
			_, _ = w.Write([]byte(`{"data":{"removed":2}}`))
		default:
			_, _ = w.Write([]byte(`{"data":{}}`))
		}
	}))
	t.Cleanup(srv.Close)
	hc := &http.Client{Timeout: delay / 4, Transport: &http.Transport{ResponseHeaderTimeout: delay / 4}}
	c, err := client.New(srv.URL, "s.token", client.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if rep, err := c.Audit().Verify(ctx); err != nil || !rep.OK || rep.Events != 3 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
	if n, err := c.Audit().Prune(ctx, time.Now().Add(-time.Hour)); err != nil || n != 2 {
		t.Fatalf("prune: %d, %v", n, err)
	}
	if _, err := c.Audit().Hash(ctx, "x"); err == nil {
		t.Fatal("another call waited past the client's timeout")
	}
	short, cancel := context.WithTimeout(ctx, delay/4)
	defer cancel()
	if _, err := c.Audit().Verify(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("verify past its context: %v", err)
	}
}
