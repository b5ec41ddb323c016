package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
)

// TLSOptions say how a client checks the server's certificate on https://
// addresses: against the system's CAs unless CACertFile names others.
type TLSOptions struct {
	// CACertFile is a PEM file of the CAs to trust instead of the system's.
	CACertFile string
	// SkipVerify accepts any certificate. It leaves the connection open to
	// interception; use it only to try things out.
	SkipVerify bool
}

// Config builds the tls.Config these options describe.
func (o TLSOptions) Config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.SkipVerify}
	if o.CACertFile == "" {
		return cfg, nil
	}
	pemBytes, err := os.ReadFile(o.CACertFile)
	if err != nil {
		return nil, fmt.Errorf("client: reading the CA certificates: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("client: the CA file %s holds no PEM certificate", o.CACertFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// WithTLSConfig makes the client use cfg on https:// addresses. It works on
// a copy of the HTTP client and its transport, so an *http.Client given to
// WithHTTPClient first is not changed; that client's Transport must be an
// *http.Transport (or nil).
func WithTLSConfig(cfg *tls.Config) Option {
	return func(c *Client) {
		var t *http.Transport
		switch rt := c.http.Transport.(type) {
		case nil:
			t = http.DefaultTransport.(*http.Transport).Clone()
		case *http.Transport:
			t = rt.Clone()
		default:
			c.optErr = errors.New("client: WithTLSConfig needs an HTTP client whose Transport is an *http.Transport")
			return
		}
		t.TLSClientConfig = cfg
		hc := *c.http
		hc.Transport = t
		c.http = &hc
	}
}
