package client

import (
	"context"
	"net/http"
)

// Sys is the sys/ API: health, initialization and the seal. These endpoints
// answer with raw JSON bodies, not the envelope.
type Sys struct{ c *Client }

// Sys returns the sys/ API.
func (c *Client) Sys() *Sys { return &Sys{c: c} }

// Health is the answer of sys/health.
type Health struct {
	// StatusCode is the HTTP status the server chose: 200 when initialized
	// and unsealed, 501 when not initialized, 503 when sealed.
	StatusCode                 int    `json:"-"`
	Initialized                bool   `json:"initialized"`
	Sealed                     bool   `json:"sealed"`
	Standby                    bool   `json:"standby"`
	PerformanceStandby         bool   `json:"performance_standby"`
	ReplicationPerformanceMode string `json:"replication_performance_mode"`
	ReplicationDRMode          string `json:"replication_dr_mode"`
	// ServerTimeUTC is the server's clock in Unix seconds.
	ServerTimeUTC int64  `json:"server_time_utc"`
	Version       string `json:"version"`
	ClusterName   string `json:"cluster_name"`
	Hostname      string `json:"hostname"`
}

// healthStatuses are the codes with which sys/health reports a state
// rather than a failure (Vault's defaults, including its standby codes).
var healthStatuses = map[int]bool{
	http.StatusOK: true, http.StatusTooManyRequests: true, 472: true, 473: true,
	http.StatusNotImplemented: true, http.StatusServiceUnavailable: true,
}

// Health reads sys/health. Not initialized (501) and sealed (503) are
// states, returned with the body and no error.
func (s *Sys) Health(ctx context.Context) (*Health, error) {
	status, _, body, err := s.c.send(ctx, request{method: http.MethodGet, path: "sys/health"})
	if err != nil {
		return nil, err
	}
	if !healthStatuses[status] {
		return nil, responseError(status, body)
	}
	h := &Health{StatusCode: status}
	if err := decode(body, h); err != nil {
		return nil, err
	}
	return h, nil
}

// InitStatus reports whether the server has been initialized.
func (s *Sys) InitStatus(ctx context.Context) (bool, error) {
	var out struct {
		Initialized bool `json:"initialized"`
	}
	err := s.c.do(ctx, request{method: http.MethodGet, path: "sys/init"}, &out)
	return out.Initialized, err
}

// InitRequest says how to split the root key.
type InitRequest struct {
	SecretShares    int `json:"secret_shares"`
	SecretThreshold int `json:"secret_threshold"`
}

// InitResponse carries the unseal key shares and the root token. The server
// hands them out once; they are never retrievable again.
type InitResponse struct {
	Keys       []string `json:"keys"`
	KeysBase64 []string `json:"keys_base64"`
	RootToken  string   `json:"root_token"`
}

// Init initializes a new SecretHub. The server stays sealed afterwards.
func (s *Sys) Init(ctx context.Context, req InitRequest) (*InitResponse, error) {
	var out InitResponse
	if err := s.c.do(ctx, request{method: http.MethodPost, path: "sys/init", body: req}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SealStatus is the answer of sys/seal-status and sys/unseal.
type SealStatus struct {
	Type        string `json:"type"`
	Initialized bool   `json:"initialized"`
	Sealed      bool   `json:"sealed"`
	// T is the threshold: how many key shares unseal.
	T int `json:"t"`
	// N is the number of key shares.
	N int `json:"n"`
	// Progress counts the shares given so far in this unseal attempt.
	Progress     int    `json:"progress"`
	Nonce        string `json:"nonce"`
	Version      string `json:"version"`
	BuildDate    string `json:"build_date"`
	Migration    bool   `json:"migration"`
	ClusterName  string `json:"cluster_name"`
	RecoverySeal bool   `json:"recovery_seal"`
	StorageType  string `json:"storage_type"`
}

// SealStatus reads this node's seal status.
func (s *Sys) SealStatus(ctx context.Context) (*SealStatus, error) {
	return s.sealStatus(ctx, request{method: http.MethodGet, path: "sys/seal-status"})
}

// Unseal submits one key share (hex or base64) to this node.
func (s *Sys) Unseal(ctx context.Context, key string) (*SealStatus, error) {
	body := struct {
		Key string `json:"key"`
	}{key}
	return s.sealStatus(ctx, request{method: http.MethodPost, path: "sys/unseal", body: body})
}

// UnsealReset discards the key shares given so far.
func (s *Sys) UnsealReset(ctx context.Context) (*SealStatus, error) {
	body := struct {
		Reset bool `json:"reset"`
	}{true}
	return s.sealStatus(ctx, request{method: http.MethodPost, path: "sys/unseal", body: body})
}

func (s *Sys) sealStatus(ctx context.Context, req request) (*SealStatus, error) {
	var out SealStatus
	if err := s.c.do(ctx, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Seal seals this node; it needs a token with sudo on sys/seal.
func (s *Sys) Seal(ctx context.Context) error {
	return s.c.do(ctx, request{method: http.MethodPost, path: "sys/seal"}, nil)
}

// Rotate adds a new barrier key term; older terms still decrypt.
func (s *Sys) Rotate(ctx context.Context) error {
	return s.c.do(ctx, request{method: http.MethodPost, path: "sys/rotate"}, nil)
}

// KeyStatus describes the barrier key in use.
type KeyStatus struct {
	Term        int  `json:"term"`
	InstallTime Time `json:"install_time"`
}

// KeyStatus reads the current barrier key term.
func (s *Sys) KeyStatus(ctx context.Context) (*KeyStatus, error) {
	var out KeyStatus
	if err := s.c.data(ctx, request{method: http.MethodGet, path: "sys/key-status"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
