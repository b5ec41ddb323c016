package client_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secrethub/secrethub/client"
	"github.com/secrethub/secrethub/client/clienttest"
	"github.com/secrethub/secrethub/storage/storagetest"
)

func TestTLSOptionsDecideWhichServersAreTrusted(t *testing.T) {
	srv := clienttest.StartTLS(t, storagetest.SQLite(t))
	tests := []struct {
		name    string
		opts    *client.TLSOptions // nil: no TLS option at all
		wantErr string
	}{
		{"the server's CA given as a PEM file is trusted", &client.TLSOptions{CACertFile: srv.CACertFile}, ""},
		{"skipping verification accepts the certificate", &client.TLSOptions{SkipVerify: true}, ""},
		{"without options an unknown CA is refused", nil, "certificate signed by unknown authority"},
		{"with only the system CAs an unknown CA is refused", &client.TLSOptions{}, "certificate signed by unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []client.Option
			if tt.opts != nil {
				cfg, err := tt.opts.Config()
				if err != nil {
					t.Fatal(err)
				}
				opts = append(opts, client.WithTLSConfig(cfg))
			}
			st, err := srv.Client(t, "", opts...).Sys().SealStatus(context.Background())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !st.Sealed {
				t.Fatalf("seal status over HTTPS = %+v, %v", st, err)
			}
		})
	}
}

func TestTLSOptionsRefuseUnusableCAFiles(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		file    string
		wantErr string
	}{
		{"a missing file is named", filepath.Join(dir, "absent.pem"), "absent.pem: no such file"},
		{"a file without a PEM certificate is named", notPEM, "ca.txt holds no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.TLSOptions{CACertFile: tt.file}.Config()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// roundTripperFunc is a RoundTripper that is not an *http.Transport.
type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestWithTLSConfigAndTheCallersHTTPClient(t *testing.T) {
	srv := clienttest.StartTLS(t, storagetest.SQLite(t))
	cfg, err := client.TLSOptions{CACertFile: srv.CACertFile}.Config()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("the caller's client and transport are not changed", func(t *testing.T) {
		tr := &http.Transport{}
		hc := &http.Client{Transport: tr, Timeout: time.Minute}
		c, err := client.New(srv.URL, "", client.WithHTTPClient(hc), client.WithTLSConfig(cfg), client.WithTimeout(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Sys().SealStatus(context.Background()); err != nil {
			t.Fatalf("the TLS config was not used: %v", err)
		}
		if hc.Transport != tr || hc.Timeout != time.Minute {
			t.Fatal("the caller's *http.Client was changed")
		}
		resp, err := hc.Get(srv.URL + "/v1/sys/seal-status")
		if err == nil {
			resp.Body.Close()
			t.Fatal("the caller's transport trusts the server's CA: WithTLSConfig changed it")
		}
	})
	t.Run("a client with a nil transport gets a copy of the default one", func(t *testing.T) {
		c, err := client.New(srv.URL, "", client.WithHTTPClient(&http.Client{}), client.WithTLSConfig(cfg))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Sys().SealStatus(context.Background()); err != nil {
			t.Fatalf("the TLS config was not used: %v", err)
		}
	})
	t.Run("a transport of another kind is refused, not ignored", func(t *testing.T) {
		other := &http.Client{Transport: roundTripperFunc(func(*http.Request) (*http.Response, error) {
			return nil, errors.New("unused")
		})}
		_, err := client.New(srv.URL, "", client.WithHTTPClient(other), client.WithTLSConfig(&tls.Config{}))
		if err == nil || !strings.Contains(err.Error(), "WithTLSConfig") {
			t.Fatalf("err = %v", err)
		}
	})
}
