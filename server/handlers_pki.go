package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/server/pki"
	"github.com/secrethub/secrethub/storage"
)

// pkiRoleResource names pki/<kind>/<role> routes.
func pkiRoleResource(kind string) func(*http.Request) (string, error) {
	return func(r *http.Request) (string, error) { return "pki/" + kind + "/" + mux.Vars(r)["name"], nil }
}

// pkiCertResource names pki/cert/<serial> with the serial normalized (as
// stored: lowercase, colons), so a policy on one certificate matches it
// however the request writes the serial. A malformed serial keeps its raw
// form: authorization still decides first, and the handler answers 400.
func pkiCertResource(r *http.Request) (string, error) {
	raw := mux.Vars(r)["serial"]
	if norm, _, err := pki.ParseSerial(raw); err == nil {
		raw = norm
	}
	return "pki/cert/" + raw, nil
}

// pkiRoleExists tells create from update for pki/roles/<name>.
func (s *Server) pkiRoleExists(ctx context.Context, resource string) (bool, error) {
	_, err := s.pki.Role(ctx, strings.TrimPrefix(resource, "pki/roles/"))
	if errors.Is(err, pki.ErrRoleNotFound) {
		return false, nil
	}
	return err == nil, err
}

// caRequest generates a root or an intermediate, or an intermediate's CSR.
type caRequest struct {
	CommonName string   `json:"common_name"`
	TTL        Duration `json:"ttl"`
	KeyType    string   `json:"key_type"`
	KeyBits    int      `json:"key_bits"`
	IssuerID   string   `json:"issuer_id"`
}

func decodeCA(r *http.Request) (pki.CAParams, error) {
	var req caRequest
	if err := decodeBody(r, &req); err != nil {
		return pki.CAParams{}, err
	}
	return pki.CAParams{
		CommonName: req.CommonName, TTL: time.Duration(req.TTL),
		Key: pki.KeySpec{Type: req.KeyType, Bits: req.KeyBits}, IssuerID: req.IssuerID,
	}, nil
}

func issuerData(info pki.IssuerInfo) map[string]any {
	issuing := info.Certificate
	if len(info.CAChain) > 1 {
		issuing = info.CAChain[1]
	}
	return map[string]any{
		"certificate": info.Certificate, "issuing_ca": issuing, "ca_chain": info.CAChain,
		"serial_number": info.Serial, "issuer_id": info.ID, "common_name": info.CommonName,
		"expiration": formatTime(info.NotAfter), "key_type": info.KeyType, "is_default": info.IsDefault,
	}
}

func (s *Server) handlePKIRootGenerate(w http.ResponseWriter, r *http.Request) error {
	p, err := decodeCA(r)
	if err != nil {
		return err
	}
	if p.IssuerID != "" {
		return fault.Invalidf("issuer_id does not apply to a root: it signs itself")
	}
	info, err := s.pki.GenerateRoot(r.Context(), p)
	if err != nil {
		return err
	}
	s.log.Info("pki root generated", "issuer_id", info.ID, "serial", info.Serial, "by_accessor", callerToken(r.Context()).Accessor)
	s.respondData(w, r, issuerData(info))
	return nil
}

func (s *Server) handlePKIIntermediateGenerate(w http.ResponseWriter, r *http.Request) error {
	p, err := decodeCA(r)
	if err != nil {
		return err
	}
	info, warnings, err := s.pki.GenerateIntermediate(r.Context(), p)
	if err != nil {
		return err
	}
	s.log.Info("pki intermediate generated", "issuer_id", info.ID, "serial", info.Serial, "by_accessor", callerToken(r.Context()).Accessor)
	s.respondData(w, r, issuerData(info), warnings...)
	return nil
}

func (s *Server) handlePKIIntermediateCSR(w http.ResponseWriter, r *http.Request) error {
	p, err := decodeCA(r)
	if err != nil {
		return err
	}
	if p.IssuerID != "" {
		return fault.Invalidf("issuer_id does not apply to a CSR: it is signed elsewhere")
	}
	csr, id, err := s.pki.IntermediateCSR(r.Context(), p)
	if err != nil {
		return err
	}
	s.respondData(w, r, map[string]any{"csr": csr, "issuer_id": id})
	return nil
}

func (s *Server) handlePKISetSigned(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Certificate string `json:"certificate"`
		IssuerID    string `json:"issuer_id"`
	}
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	info, err := s.pki.SetSigned(r.Context(), req.IssuerID, req.Certificate)
	if err != nil {
		return err
	}
	s.log.Info("pki intermediate set signed", "issuer_id", info.ID, "serial", info.Serial, "by_accessor", callerToken(r.Context()).Accessor)
	s.respondData(w, r, issuerData(info))
	return nil
}

func (s *Server) handlePKIIssuerList(w http.ResponseWriter, r *http.Request) error {
	issuers, err := s.pki.Issuers(r.Context())
	if err != nil {
		return err
	}
	if len(issuers) == 0 {
		return fault.New(fault.NotFound, "nothing to list")
	}
	keys, info := make([]string, 0, len(issuers)), map[string]any{}
	for _, i := range issuers {
		keys = append(keys, i.ID)
		info[i.ID] = map[string]any{"common_name": i.CommonName, "is_default": i.IsDefault,
			"serial_number": i.Serial, "expiration": formatTime(i.NotAfter), "key_type": i.KeyType}
	}
	s.respondData(w, r, map[string]any{"keys": keys, "key_info": info})
	return nil
}

func (s *Server) handlePKIConfigIssuersRead(w http.ResponseWriter, r *http.Request) error {
	info, err := s.pki.Issuer(r.Context(), "")
	if err != nil {
		return err
	}
	s.respondData(w, r, map[string]any{"default": info.ID})
	return nil
}

func (s *Server) handlePKIConfigIssuersWrite(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Default string `json:"default"`
	}
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Default == "" {
		return fault.Invalidf("default (an issuer id) is required")
	}
	if err := s.pki.SetDefault(r.Context(), req.Default); err != nil {
		return err
	}
	s.respondData(w, r, map[string]any{"default": req.Default})
	return nil
}

// pkiURLsRequest is a config/urls write: each list as JSON or a
// comma-separated string; lists left out keep their value, as in Vault.
// enable_templating is taken for Vault's clients when false.
type pkiURLsRequest struct {
	IssuingCertificates   *stringList `json:"issuing_certificates"`
	CRLDistributionPoints *stringList `json:"crl_distribution_points"`
	OCSPServers           *stringList `json:"ocsp_servers"`
	EnableTemplating      bool        `json:"enable_templating"`
}

func urlsData(u storage.PKIURLs) map[string]any {
	return map[string]any{
		"issuing_certificates": nonNil(u.IssuingCertificates), "crl_distribution_points": nonNil(u.CRLDistributionPoints),
		"ocsp_servers": nonNil(u.OCSPServers),
	}
}

func (s *Server) handlePKIConfigURLsRead(w http.ResponseWriter, r *http.Request) error {
	u, err := s.pki.URLs(r.Context())
	if err != nil {
		return err
	}
	s.respondData(w, r, urlsData(u))
	return nil
}

func (s *Server) handlePKIConfigURLsWrite(w http.ResponseWriter, r *http.Request) error {
	var req pkiURLsRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.EnableTemplating {
		return fault.Invalidf("enable_templating is not supported: URLs are written into certificates as given")
	}
	u, err := s.pki.SetURLs(r.Context(), storage.PKIURLsChange{
		IssuingCertificates: listPtr(req.IssuingCertificates), CRLDistributionPoints: listPtr(req.CRLDistributionPoints),
		OCSPServers: listPtr(req.OCSPServers),
	})
	if err != nil {
		return err
	}
	s.log.Info("pki urls written", "by_accessor", callerToken(r.Context()).Accessor)
	s.respondData(w, r, urlsData(u))
	return nil
}

// pkiRoleRequest is a role write; fields left out take a new role's default.
type pkiRoleRequest struct {
	IssuerID         *string     `json:"issuer_id"`
	AllowedDomains   *stringList `json:"allowed_domains"`
	AllowSubdomains  *bool       `json:"allow_subdomains"`
	AllowBareDomains *bool       `json:"allow_bare_domains"`
	AllowAnyName     *bool       `json:"allow_any_name"`
	AllowIPSANs      *bool       `json:"allow_ip_sans"`
	ServerFlag       *bool       `json:"server_flag"`
	ClientFlag       *bool       `json:"client_flag"`
	KeyType          *string     `json:"key_type"`
	KeyBits          *int        `json:"key_bits"`
	TTL              *Duration   `json:"ttl"`
	MaxTTL           *Duration   `json:"max_ttl"`
}

func (s *Server) handlePKIRoleWrite(w http.ResponseWriter, r *http.Request) error {
	var req pkiRoleRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	name := mux.Vars(r)["name"]
	role, err := s.pki.WriteRole(r.Context(), name, pki.RoleSettings{
		IssuerID: req.IssuerID, AllowedDomains: listPtr(req.AllowedDomains), AllowSubdomains: req.AllowSubdomains,
		AllowBareDomains: req.AllowBareDomains, AllowAnyName: req.AllowAnyName, AllowIPSANs: req.AllowIPSANs,
		ServerFlag: req.ServerFlag, ClientFlag: req.ClientFlag, KeyType: req.KeyType, KeyBits: req.KeyBits,
		TTL: durationPtr(req.TTL), MaxTTL: durationPtr(req.MaxTTL),
	})
	if err != nil {
		return err
	}
	s.log.Info("pki role written", "role", name, "by_accessor", callerToken(r.Context()).Accessor)
	s.respondData(w, r, roleData(role))
	return nil
}

func roleData(role pki.Role) map[string]any {
	return map[string]any{
		"issuer_id": role.IssuerID, "allowed_domains": nonNil(role.AllowedDomains),
		"allow_subdomains": role.AllowSubdomains, "allow_bare_domains": role.AllowBareDomains,
		"allow_any_name": role.AllowAnyName, "allow_ip_sans": role.AllowIPSANs,
		"server_flag": role.ServerFlag, "client_flag": role.ClientFlag,
		"key_type": role.KeyType, "key_bits": role.KeyBits,
		"ttl": seconds(role.TTL), "max_ttl": seconds(role.MaxTTL),
	}
}

func (s *Server) handlePKIRoleRead(w http.ResponseWriter, r *http.Request) error {
	role, err := s.pki.Role(r.Context(), mux.Vars(r)["name"])
	if err != nil {
		return err
	}
	s.respondData(w, r, roleData(role))
	return nil
}

func (s *Server) handlePKIRoleDelete(w http.ResponseWriter, r *http.Request) error {
	if err := s.pki.DeleteRole(r.Context(), mux.Vars(r)["name"]); err != nil {
		return err
	}
	respondNoContent(w)
	return nil
}

func (s *Server) handlePKIRoleList(w http.ResponseWriter, r *http.Request) error {
	names, err := s.pki.Roles(r.Context())
	if err != nil {
		return err
	}
	return s.respondKeys(w, r, names)
}

func issuedData(c pki.Issued) map[string]any {
	d := map[string]any{
		"certificate": c.Certificate, "issuing_ca": c.IssuingCA, "ca_chain": c.CAChain,
		"serial_number": c.SerialNumber, "expiration": formatTime(c.Expiration),
	}
	if c.PrivateKey != "" {
		d["private_key"], d["private_key_type"] = c.PrivateKey, c.PrivateKeyType
	}
	return d
}

// checkIssueFormats accepts the encodings Vault clients name on issue
// when they are what SecretHub returns: PEM certificates ("pem") and
// PKCS #8 PEM private keys ("pkcs8").
func checkIssueFormats(format, keyFormat string) error {
	if format != "" && format != "pem" {
		return fault.Invalidf(`format %v is not supported: certificates are returned as PEM (use "pem" or leave it out)`, fault.Input(fault.Clip(format, 64)))
	}
	if keyFormat != "" && keyFormat != "pkcs8" {
		return fault.Invalidf(`private_key_format %v is not supported: private keys are returned as PKCS #8 PEM (use "pkcs8" or leave it out)`, fault.Input(fault.Clip(keyFormat, 64)))
	}
	return nil
}

func (s *Server) handlePKIIssue(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		CommonName        string     `json:"common_name"`
		AltNames          stringList `json:"alt_names"`
		IPSANs            stringList `json:"ip_sans"`
		TTL               Duration   `json:"ttl"`
		Format            string     `json:"format"`
		PrivateKeyFormat  string     `json:"private_key_format"`
		ExcludeCNFromSANs bool       `json:"exclude_cn_from_sans"`
	}
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := checkIssueFormats(req.Format, req.PrivateKeyFormat); err != nil {
		return err
	}
	c, err := s.pki.Issue(r.Context(), mux.Vars(r)["name"], pki.IssueRequest{
		CommonName: req.CommonName, AltNames: req.AltNames, IPSANs: req.IPSANs, TTL: time.Duration(req.TTL),
		ExcludeCNFromSANs: req.ExcludeCNFromSANs,
	})
	if err != nil {
		return err
	}
	s.respondData(w, r, issuedData(c), c.Warnings...)
	return nil
}

func (s *Server) handlePKISign(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		CSR string   `json:"csr"`
		TTL Duration `json:"ttl"`
	}
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	c, err := s.pki.Sign(r.Context(), mux.Vars(r)["name"], req.CSR, time.Duration(req.TTL))
	if err != nil {
		return err
	}
	s.respondData(w, r, issuedData(c), c.Warnings...)
	return nil
}

func (s *Server) handlePKIRevoke(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		SerialNumber string `json:"serial_number"`
	}
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	at, err := s.pki.Revoke(r.Context(), req.SerialNumber)
	if err != nil {
		return err
	}
	s.log.Info("pki certificate revoked", "serial", req.SerialNumber, "by_accessor", callerToken(r.Context()).Accessor)
	s.respondData(w, r, map[string]any{"revocation_time": formatTime(at)})
	return nil
}

func (s *Server) handlePKICertList(w http.ResponseWriter, r *http.Request) error {
	serials, err := s.pki.Serials(r.Context())
	if err != nil {
		return err
	}
	return s.respondKeys(w, r, serials)
}

func (s *Server) handlePKICertRead(w http.ResponseWriter, r *http.Request) error {
	c, err := s.pki.Certificate(r.Context(), mux.Vars(r)["serial"])
	if err != nil {
		return err
	}
	var sans []string
	if err := json.Unmarshal([]byte(c.SANs), &sans); err != nil {
		return err
	}
	s.respondData(w, r, map[string]any{
		"certificate": c.Certificate, "serial_number": c.Serial, "issuer_id": c.IssuerID, "subject": c.Subject,
		"sans": nonNil(sans), "not_before": formatTime(c.NotBefore), "not_after": formatTime(c.NotAfter),
		"revocation_time": formatTime(c.RevokedAt),
	})
	return nil
}

func (s *Server) handlePKITidy(w http.ResponseWriter, r *http.Request) error {
	req := struct {
		SafetyBuffer *Duration `json:"safety_buffer"`
	}{}
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	buffer := pki.DefaultTidyBuffer
	if req.SafetyBuffer != nil {
		buffer = time.Duration(*req.SafetyBuffer)
	}
	n, err := s.pki.Tidy(r.Context(), buffer)
	if err != nil {
		return err
	}
	s.respondData(w, r, map[string]any{"removed": n})
	return nil
}

// writeRaw answers 200 with a body that is not JSON (PEM, DER, OCSP).
func writeRaw(w http.ResponseWriter, contentType string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// issuerParam is the optional ?issuer_id= of the publication routes.
func issuerParam(r *http.Request) string { return r.URL.Query().Get("issuer_id") }

func (s *Server) handlePKICAPEM(w http.ResponseWriter, r *http.Request) error {
	info, err := s.pki.Issuer(r.Context(), issuerParam(r))
	if err != nil {
		return err
	}
	writeRaw(w, "application/pem-certificate-chain", []byte(info.Certificate))
	return nil
}

func (s *Server) handlePKICAChain(w http.ResponseWriter, r *http.Request) error {
	info, err := s.pki.Issuer(r.Context(), issuerParam(r))
	if err != nil {
		return err
	}
	writeRaw(w, "application/pem-certificate-chain", []byte(strings.Join(info.CAChain, "")))
	return nil
}

func (s *Server) handlePKICRL(w http.ResponseWriter, r *http.Request) error {
	der, err := s.pki.CRL(r.Context(), issuerParam(r))
	if err != nil {
		return err
	}
	writeRaw(w, "application/pkix-crl", der)
	return nil
}

func (s *Server) handlePKICRLPEM(w http.ResponseWriter, r *http.Request) error {
	der, err := s.pki.CRL(r.Context(), issuerParam(r))
	if err != nil {
		return err
	}
	writeRaw(w, "application/x-pem-file", pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}))
	return nil
}

// handlePKIOCSP answers RFC 6960 requests: POST with the DER body, or GET
// with it base64-encoded in the path.
func (s *Server) handlePKIOCSP(w http.ResponseWriter, r *http.Request) error {
	var der []byte
	if r.Method == http.MethodGet {
		raw := mux.Vars(r)["request"]
		var err error
		if der, err = base64.StdEncoding.DecodeString(raw); err != nil {
			if der, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(raw, "=")); err != nil {
				return fault.Invalidf("the OCSP request in the path is not base64")
			}
		}
	} else {
		body, err := readBody(r)
		if err != nil {
			return err
		}
		der = body
	}
	resp, err := s.pki.OCSP(r.Context(), der)
	if err != nil {
		return err
	}
	writeRaw(w, "application/ocsp-response", resp)
	return nil
}
