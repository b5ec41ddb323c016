package server

import (
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/server/seal"
)

// The sys/ endpoints answer with raw JSON bodies (no envelope), exactly as
// the runbook and Vault's own clients expect.

type healthResponse struct {
	Initialized                bool   `json:"initialized"`
	Sealed                     bool   `json:"sealed"`
	Standby                    bool   `json:"standby"`
	PerformanceStandby         bool   `json:"performance_standby"`
	ReplicationPerformanceMode string `json:"replication_performance_mode"`
	ReplicationDRMode          string `json:"replication_dr_mode"`
	// ServerTimeUTC is Unix seconds, as Vault's clients decode it.
	ServerTimeUTC int64  `json:"server_time_utc"`
	Version       string `json:"version"`
	ClusterName   string `json:"cluster_name"`
	Hostname      string `json:"hostname"`
}

// handleHealth reports 200 (initialized, unsealed), 501 (not initialized)
// or 503 (sealed); Vault's activecode, uninitcode, sealedcode and
// standbycode parameters override those codes (standbyok is accepted: no
// node of SecretHub is ever a standby).
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) error {
	st, err := s.seal.Status(r.Context())
	if err != nil {
		return err
	}
	param, code := "activecode", http.StatusOK
	switch {
	case !st.Initialized:
		param, code = "uninitcode", http.StatusNotImplemented
	case st.Sealed:
		param, code = "sealedcode", http.StatusServiceUnavailable
	}
	codes, err := healthCodes(r.URL.Query())
	if err != nil {
		return err
	}
	if c, ok := codes[param]; ok {
		code = c
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(code)
		return nil
	}
	s.writeJSON(w, r, code, healthResponse{
		Initialized: st.Initialized, Sealed: st.Sealed,
		ReplicationPerformanceMode: "disabled", ReplicationDRMode: "disabled",
		ServerTimeUTC: s.now().Unix(), Version: Version,
		ClusterName: s.cfg.ClusterName, Hostname: s.cfg.NodeName,
	})
	return nil
}

// healthCodeParams are Vault's sys/health status overrides. Every one given
// is checked, as Vault does, so a misconfigured health check fails when it
// is set up rather than on the day the node enters that state.
var healthCodeParams = []string{"activecode", "standbycode", "sealedcode", "uninitcode",
	"performancestandbycode", "drsecondarycode", "removedcode", "haunhealthycode"}

func healthCodes(q url.Values) (map[string]int, error) {
	codes := map[string]int{}
	for _, p := range healthCodeParams {
		raw := q.Get(p)
		if raw == "" {
			continue
		}
		c, err := strconv.Atoi(raw)
		if err != nil || c < 100 || c > 599 {
			return nil, fault.Invalidf("%s must be an HTTP status code between 100 and 599", p)
		}
		codes[p] = c
	}
	for _, p := range []string{"standbyok", "perfstandbyok"} {
		if raw := q.Get(p); raw != "" {
			if _, err := strconv.ParseBool(raw); err != nil {
				return nil, fault.Invalidf("%s must be true or false", p)
			}
		}
	}
	return codes, nil
}

func (s *Server) handleInitStatus(w http.ResponseWriter, r *http.Request) error {
	st, err := s.seal.Status(r.Context())
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, map[string]bool{"initialized": st.Initialized})
	return nil
}

// initRequest accepts every field Vault's client sends; the ones SecretHub
// does not support must be left empty.
type initRequest struct {
	SecretShares      int      `json:"secret_shares"`
	SecretThreshold   int      `json:"secret_threshold"`
	StoredShares      int      `json:"stored_shares"`
	PGPKeys           []string `json:"pgp_keys"`
	RecoveryShares    int      `json:"recovery_shares"`
	RecoveryThreshold int      `json:"recovery_threshold"`
	RecoveryPGPKeys   []string `json:"recovery_pgp_keys"`
	RootTokenPGPKey   string   `json:"root_token_pgp_key"`
}

type initResponse struct {
	Keys       []string `json:"keys"`
	KeysBase64 []string `json:"keys_base64"`
	RootToken  string   `json:"root_token"`
}

func (s *Server) handleInit(w http.ResponseWriter, r *http.Request) error {
	var req initRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	switch {
	case len(req.PGPKeys) > 0 || len(req.RecoveryPGPKeys) > 0 || req.RootTokenPGPKey != "":
		return fault.Invalidf("PGP-encrypted key shares are not supported")
	case req.StoredShares > 0:
		return fault.Invalidf("stored_shares applies only to auto-unseal, which is not enabled on this server")
	case req.RecoveryShares > 0 || req.RecoveryThreshold > 0:
		return fault.Invalidf("recovery_shares and recovery_threshold apply only to auto-unseal, which is not enabled on this server")
	}
	res, err := s.Initialize(r.Context(), req.SecretShares, req.SecretThreshold)
	if err != nil {
		return err
	}
	out := initResponse{RootToken: res.RootToken}
	for _, k := range res.Keys {
		out.Keys = append(out.Keys, hex.EncodeToString(k))
		out.KeysBase64 = append(out.KeysBase64, base64.StdEncoding.EncodeToString(k))
	}
	s.writeJSON(w, r, http.StatusOK, out)
	return nil
}

type sealStatusResponse struct {
	Type         string `json:"type"`
	Initialized  bool   `json:"initialized"`
	Sealed       bool   `json:"sealed"`
	T            int    `json:"t"`
	N            int    `json:"n"`
	Progress     int    `json:"progress"`
	Nonce        string `json:"nonce"`
	Version      string `json:"version"`
	BuildDate    string `json:"build_date"`
	Migration    bool   `json:"migration"`
	ClusterName  string `json:"cluster_name"`
	RecoverySeal bool   `json:"recovery_seal"`
	StorageType  string `json:"storage_type"`
}

func (s *Server) sealStatus(st seal.Status) sealStatusResponse {
	return sealStatusResponse{
		Type: st.Type, Initialized: st.Initialized, Sealed: st.Sealed,
		T: st.Threshold, N: st.Shares, Progress: st.Progress, Nonce: st.Nonce,
		Version: Version, ClusterName: s.cfg.ClusterName, StorageType: string(s.db.Engine()),
	}
}

func (s *Server) handleSealStatus(w http.ResponseWriter, r *http.Request) error {
	st, err := s.seal.Status(r.Context())
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, s.sealStatus(st))
	return nil
}

type unsealRequest struct {
	Key     string `json:"key"`
	Reset   bool   `json:"reset"`
	Migrate bool   `json:"migrate"`
}

func (s *Server) handleUnseal(w http.ResponseWriter, r *http.Request) error {
	var req unsealRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Migrate {
		return fault.Invalidf("seal migration is not supported")
	}
	var (
		st  seal.Status
		err error
	)
	if req.Reset {
		st, err = s.seal.ResetUnseal(r.Context())
	} else {
		var key []byte
		if key, err = seal.ParseKey(req.Key); err != nil {
			return err
		}
		st, err = s.Unseal(r.Context(), key)
	}
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, s.sealStatus(st))
	return nil
}

func (s *Server) handleSeal(w http.ResponseWriter, r *http.Request) error {
	s.seal.Seal()
	s.pki.Forget()
	s.closeAuditKeys()
	s.log.Info("secrethub sealed", "node", s.cfg.NodeName, "by_accessor", callerToken(r.Context()).Accessor)
	respondNoContent(w)
	return nil
}

func (s *Server) handleRotate(w http.ResponseWriter, r *http.Request) error {
	term, err := s.seal.Rotate(r.Context())
	if err != nil {
		return err
	}
	s.log.Info("barrier key rotated", "term", term.Number, "by_accessor", callerToken(r.Context()).Accessor)
	respondNoContent(w)
	return nil
}

func (s *Server) handleKeyStatus(w http.ResponseWriter, r *http.Request) error {
	term, err := s.seal.KeyStatus()
	if err != nil {
		return err
	}
	s.respondData(w, r, map[string]any{"term": term.Number, "install_time": term.Created.UTC().Format(time.RFC3339Nano)})
	return nil
}
