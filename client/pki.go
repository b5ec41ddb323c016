package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// PKI is the certificate authority under /v1/pki.
type PKI struct{ c *Client }

// PKI returns the PKI API.
func (c *Client) PKI() *PKI { return &PKI{c: c} }

// CARequest generates a root or an intermediate CA. Zero fields take the
// server's defaults (rsa 2048; 10 years for a root, 5 for an intermediate).
type CARequest struct {
	CommonName string `json:"common_name"`
	TTL        string `json:"ttl,omitempty"`
	KeyType    string `json:"key_type,omitempty"`
	KeyBits    int    `json:"key_bits,omitempty"`
	// IssuerID names the issuer that signs an intermediate (default: the
	// default issuer).
	IssuerID string `json:"issuer_id,omitempty"`
}

// Issuer is a CA as the server describes it; never its private key.
type Issuer struct {
	IssuerID     string   `json:"issuer_id"`
	CommonName   string   `json:"common_name"`
	Certificate  string   `json:"certificate"`
	IssuingCA    string   `json:"issuing_ca"`
	CAChain      []string `json:"ca_chain"`
	SerialNumber string   `json:"serial_number"`
	Expiration   Time     `json:"expiration"`
	KeyType      string   `json:"key_type"`
	IsDefault    bool     `json:"is_default"`
}

// GenerateRoot creates a self-signed root CA.
func (p *PKI) GenerateRoot(ctx context.Context, req CARequest) (*Issuer, error) {
	return p.issuer(ctx, "pki/ca/root/generate", req)
}

// GenerateIntermediate creates an intermediate CA signed by req.IssuerID
// or the default issuer; it becomes the default issuer.
func (p *PKI) GenerateIntermediate(ctx context.Context, req CARequest) (*Issuer, error) {
	return p.issuer(ctx, "pki/ca/intermediate/generate", req)
}

func (p *PKI) issuer(ctx context.Context, path string, req CARequest) (*Issuer, error) {
	var out Issuer
	if err := p.c.data(ctx, request{method: http.MethodPost, path: path, body: req}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PKIRole is a role's settings; TTLs are seconds when read back and may be
// duration strings ("720h") when written.
type PKIRole struct {
	IssuerID         string   `json:"issuer_id,omitempty"`
	AllowedDomains   []string `json:"allowed_domains"`
	AllowSubdomains  bool     `json:"allow_subdomains"`
	AllowBareDomains bool     `json:"allow_bare_domains"`
	AllowAnyName     bool     `json:"allow_any_name"`
	AllowIPSANs      bool     `json:"allow_ip_sans"`
	ServerFlag       bool     `json:"server_flag"`
	ClientFlag       bool     `json:"client_flag"`
	KeyType          string   `json:"key_type,omitempty"`
	KeyBits          int      `json:"key_bits,omitempty"`
	TTL              any      `json:"ttl,omitempty"`
	MaxTTL           any      `json:"max_ttl,omitempty"`
}

func pkiRoleURL(name string) string { return "pki/roles/" + url.PathEscape(name) }

// WriteRole creates or replaces the role called name.
func (p *PKI) WriteRole(ctx context.Context, name string, role PKIRole) error {
	return p.c.do(ctx, request{method: http.MethodPost, path: pkiRoleURL(name), body: role}, nil)
}

// ReadRole returns a role; a missing one is an error matching ErrNotFound.
func (p *PKI) ReadRole(ctx context.Context, name string) (*PKIRole, error) {
	var out PKIRole
	if err := p.c.data(ctx, request{method: http.MethodGet, path: pkiRoleURL(name)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListRoles returns the role names (an error matching ErrNotFound: none).
func (p *PKI) ListRoles(ctx context.Context) ([]string, error) { return p.c.keys(ctx, "pki/roles") }

// IssueRequest asks a role for a certificate.
type IssueRequest struct {
	CommonName string   `json:"common_name"`
	AltNames   []string `json:"alt_names,omitempty"`
	IPSANs     []string `json:"ip_sans,omitempty"`
	TTL        string   `json:"ttl,omitempty"`
}

// Certificate is an issued or signed certificate. PrivateKey is only set
// by Issue, and only this once: the server does not keep it.
type Certificate struct {
	Certificate    string   `json:"certificate"`
	IssuingCA      string   `json:"issuing_ca"`
	CAChain        []string `json:"ca_chain"`
	PrivateKey     string   `json:"private_key"`
	PrivateKeyType string   `json:"private_key_type"`
	SerialNumber   string   `json:"serial_number"`
	Expiration     Time     `json:"expiration"`
}

// Issue has the role issue a certificate and a new private key.
func (p *PKI) Issue(ctx context.Context, role string, req IssueRequest) (*Certificate, error) {
	return p.certificate(ctx, "pki/issue/"+url.PathEscape(role), req)
}

// Sign has the role certify the key of a PEM CSR.
func (p *PKI) Sign(ctx context.Context, role, csr string, ttl time.Duration) (*Certificate, error) {
	body := struct {
		CSR string `json:"csr"`
		TTL int64  `json:"ttl,omitempty"`
	}{csr, seconds(ttl)}
	return p.certificate(ctx, "pki/sign/"+url.PathEscape(role), body)
}

func (p *PKI) certificate(ctx context.Context, path string, body any) (*Certificate, error) {
	var out Certificate
	if err := p.c.data(ctx, request{method: http.MethodPost, path: path, body: body}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Revoke revokes a certificate by serial and returns when it was revoked.
func (p *PKI) Revoke(ctx context.Context, serial string) (Time, error) {
	var out struct {
		RevocationTime Time `json:"revocation_time"`
	}
	err := p.c.data(ctx, request{method: http.MethodPost, path: "pki/revoke", body: map[string]string{"serial_number": serial}}, &out)
	return out.RevocationTime, err
}

// ListCertificates returns the stored serials (ErrNotFound: none).
func (p *PKI) ListCertificates(ctx context.Context) ([]string, error) {
	return p.c.keys(ctx, "pki/certs")
}

// CRL returns the default issuer's CRL, PEM-encoded.
func (p *PKI) CRL(ctx context.Context) ([]byte, error) {
	status, header, body, err := p.c.send(ctx, request{method: http.MethodGet, path: "pki/crl/pem"})
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		e := responseError(status, body)
		e.RetryAfter = retryAfter(header.Get("Retry-After"))
		return nil, e
	}
	return body, nil
}

// PKIURLs are where certificates say their issuer, CRLs and OCSP responder
// are published (config/urls); each certificate signed carries them. To
// SetURLs, a nil list keeps the server's and a non-nil empty one clears it.
type PKIURLs struct {
	IssuingCertificates   []string `json:"issuing_certificates"`
	CRLDistributionPoints []string `json:"crl_distribution_points"`
	OCSPServers           []string `json:"ocsp_servers"`
}

// pkiURLsBody is PKIURLs on the wire: only the lists that are set.
type pkiURLsBody struct {
	IssuingCertificates   *[]string `json:"issuing_certificates,omitempty"`
	CRLDistributionPoints *[]string `json:"crl_distribution_points,omitempty"`
	OCSPServers           *[]string `json:"ocsp_servers,omitempty"`
}

// URLs reads config/urls.
func (p *PKI) URLs(ctx context.Context) (*PKIURLs, error) {
	return p.urls(ctx, request{method: http.MethodGet, path: "pki/config/urls"})
}

// SetURLs writes the lists of u that are not nil and returns all three as
// the server now holds them.
func (p *PKI) SetURLs(ctx context.Context, u PKIURLs) (*PKIURLs, error) {
	body := pkiURLsBody{listField(u.IssuingCertificates), listField(u.CRLDistributionPoints), listField(u.OCSPServers)}
	return p.urls(ctx, request{method: http.MethodPost, path: "pki/config/urls", body: body})
}

func (p *PKI) urls(ctx context.Context, req request) (*PKIURLs, error) {
	var out PKIURLs
	if err := p.c.data(ctx, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
