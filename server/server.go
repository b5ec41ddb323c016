// Package server is SecretHub Core: it wires storage, the seal, tokens,
// authorization and the secret engines behind one HTTP API under /v1.
//
// A request flows: router → request id → seal gate → token → policy →
// handler → domain package → storage (through the barrier for secrets).
// Handlers only translate HTTP to domain calls and back.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"

	"github.com/secrethub/secrethub/server/acl"
	"github.com/secrethub/secrethub/server/audit"
	"github.com/secrethub/secrethub/server/auth"
	"github.com/secrethub/secrethub/server/metrics"
	"github.com/secrethub/secrethub/server/pki"
	"github.com/secrethub/secrethub/server/seal"
	"github.com/secrethub/secrethub/server/secrets"
	"github.com/secrethub/secrethub/storage"
)

// Version is the SecretHub version, set at build time with
// -ldflags "-X github.com/secrethub/secrethub/server.Version=…".
var Version = "0.1.0-dev"

// DefaultMaxRequestBytes is the largest request body accepted (1 MiB).
const DefaultMaxRequestBytes = 1 << 20

// DefaultRequestTimeout bounds a request's work (database waits included).
const DefaultRequestTimeout = 60 * time.Second

// Config is what the server needs besides its database.
type Config struct {
	// NodeName tells nodes apart in health responses and logs (default: host name).
	NodeName string
	// ClusterName is reported by sys/health and sys/seal-status.
	ClusterName string
	// MaxRequestBytes bounds request bodies (default 1 MiB).
	MaxRequestBytes int64
	// RequestTimeout bounds how long one request may run (default 60s).
	RequestTimeout time.Duration
	// MaxVersions is the default number of versions a static secret keeps.
	MaxVersions int
	// AdminUsername and AdminPasswordHash (bcrypt: $2a$, $2b$ or $2y$)
	// enable POST /v1/auth/admin/login; both empty disables it.
	AdminUsername     string
	AdminPasswordHash string
	// AdminTokenTTL is the lifetime of an admin login's token (default 30m).
	AdminTokenTTL time.Duration
	// AuditSink, when set, receives every audit event as a JSON line (the
	// SECRETHUB_AUDIT_FILE sink for SIEM shippers); it never sees plaintext.
	AuditSink io.Writer
	// MetricsDisabled turns GET /metrics off (PROMETHEUS_ENABLED=false);
	// the metrics are still kept.
	MetricsDisabled bool
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// Logger receives structured logs (default: discard).
	Logger *slog.Logger
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
}

// Server is one Core node.
type Server struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	db     *storage.DB
	seal   *seal.Manager
	tokens *auth.Tokens
	acl    *acl.ACL
	admin  *auth.AdminLogin // nil: admin login not configured
	audit  auditLog
	// auditKeys are the audit log's HMAC keys, nil while sealed.
	auditKeys atomic.Pointer[audit.Keys]
	// auditWalks are the verifications and prunes under way.
	auditWalks auditWalks
	// refusalLog spaces the "audit log refused an event" lines out.
	refusalLog logThrottle
	approle    *auth.AppRole
	kv         *secrets.Static
	pki        *pki.Engine
	metrics    *metrics.Metrics
	router     *mux.Router
	handler    http.Handler
	access     map[string]access // route name → authorization
}

// New wires a server over an open, migrated database. The node starts
// sealed. It fails on settings Validate would refuse.
func New(db *storage.DB, cfg Config) (*Server, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.NodeName == "" {
		cfg.NodeName, _ = os.Hostname()
	}
	if cfg.ClusterName == "" {
		cfg.ClusterName = "secrethub"
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	s := &Server{cfg: cfg, log: cfg.Logger, now: cfg.Now, db: db, refusalLog: logThrottle{interval: time.Second}}
	s.seal = seal.New(db, cfg.Now)
	s.metrics = metrics.New(metrics.Source{Sealed: s.seal.Sealed, DBStats: db.Stats, PingDB: db.Ping})
	s.tokens = auth.NewTokens(db, cfg.Now)
	s.acl = acl.New(db, cfg.Now, 0)
	s.approle = auth.NewAppRole(db, s.tokens, cfg.Now)
	admin, err := auth.NewAdminLogin(cfg.AdminUsername, cfg.AdminPasswordHash, s.tokens, db, cfg.AdminTokenTTL, cfg.Now)
	if err != nil {
		return nil, err
	}
	s.admin = admin
	if cost := auth.AdminHashCost(cfg.AdminPasswordHash); admin != nil && cost < auth.MinRecommendedAdminHashCost {
		s.log.Warn("ADMIN_PASSWORD_HASH has a weak bcrypt cost; make a new hash with secrethub operator hash-password (cost 12)",
			"cost", cost, "recommended_min_cost", auth.MinRecommendedAdminHashCost)
	}
	s.kv = secrets.NewStatic(db, s.seal, cfg.Now, cfg.MaxVersions)
	s.pki = pki.New(db, s.seal, cfg.Now)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	writer, err := audit.NewWriter(ctx, db, cfg.NodeName, audit.Options{
		Sink: cfg.AuditSink, Now: cfg.Now,
		OnError: func(err error) {
			s.metrics.AuditWriteFailures.WithLabelValues(metrics.AuditFailureBackground).Inc()
			s.log.Error("audit log", "error", err.Error())
		},
		OnNotice: func(msg string) { s.log.Info("audit log", "notice", msg) },
	})
	if err != nil {
		return nil, fmt.Errorf("opening the audit log of node %s: %w", cfg.NodeName, err)
	}
	s.audit = writer
	s.router, s.access = s.buildRouter()
	s.handler = s.withMetricsEndpoint(s.entry(s.router))
	return s, nil
}

// Validate checks the settings that can be wrong before any database is
// opened (today: the admin login's), so start-up can stop with a clear
// message. Errors never repeat a secret.
func (c Config) Validate() error {
	_, err := auth.CheckAdminConfig(c.AdminUsername, c.AdminPasswordHash, c.AdminTokenTTL)
	return err
}

// Handler is the HTTP handler serving the whole API (and /metrics).
func (s *Server) Handler() http.Handler { return s.handler }

// Metrics are this node's metrics, for the features that set their values
// (the TLS certificate's expiry, the PKI engine's CAs).
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// MetricsPath is where Prometheus scrapes a node (the runbook's
// metrics_path). It sits outside /v1: no token, not audited, not counted
// in the request metrics.
const MetricsPath = "/metrics"

// withMetricsEndpoint serves MetricsPath beside api, unless disabled.
func (s *Server) withMetricsEndpoint(api http.Handler) http.Handler {
	if s.cfg.MetricsDisabled {
		return api
	}
	scrape := s.metrics.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path != MetricsPath:
			api.ServeHTTP(w, r)
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		default:
			s.refreshCAExpiry(r.Context())
			scrape.ServeHTTP(w, r)
		}
	})
}

// refreshCAExpiry sets secrethub_pki_ca_expiry_seconds from the stored
// issuers (shared by every node, read at each scrape: a CA made on
// another node shows here too). If the store cannot be read the series
// keep their last values, and secrethub_db_up tells why.
func (s *Server) refreshCAExpiry(ctx context.Context) {
	issuers, err := s.pki.Expiries(ctx)
	if err != nil {
		s.log.Warn("metrics: reading PKI issuers for their expiry", "error", err.Error())
		return
	}
	s.metrics.CAExpiry.Reset()
	for _, is := range issuers {
		s.metrics.CAExpiry.WithLabelValues(is.ID).Set(float64(is.NotAfter.Unix()))
	}
}

// InitResult is what initialization hands out, once.
type InitResult struct {
	Keys      [][]byte
	RootToken string
}

// Initialize splits a new root key into shares and creates the root token.
// The node stays sealed until enough shares are given to Unseal.
func (s *Server) Initialize(ctx context.Context, shares, threshold int) (InitResult, error) {
	root, err := s.tokens.NewRoot()
	if err != nil {
		return InitResult{}, err
	}
	res, err := s.seal.Init(ctx, shares, threshold, root.Token)
	if err != nil {
		return InitResult{}, err
	}
	s.log.Info("secrethub initialized", "secret_shares", shares, "secret_threshold", threshold, "root_token_accessor", root.Token.Accessor)
	return InitResult{Keys: res.Keys, RootToken: root.ID}, nil
}

// Unseal submits one key share to this node.
func (s *Server) Unseal(ctx context.Context, key []byte) (seal.Status, error) {
	wasSealed := s.seal.Sealed()
	st, err := s.seal.Unseal(ctx, key)
	if err == nil && wasSealed && !st.Sealed {
		// Unsealed means auditing with keys: a node that cannot load its
		// audit keys stays sealed rather than log without HMACs.
		if err := s.openAuditKeys(); err != nil {
			s.seal.Seal()
			s.pki.Forget()
			return seal.Status{}, fmt.Errorf("unsealed, but the audit keys could not be loaded (sealed again): %w", err)
		}
		s.log.Info("secrethub unsealed", "node", s.cfg.NodeName)
	}
	return st, err
}

// Run performs background upkeep until ctx ends, while unsealed: expired
// tokens (with their children) and expired AppRole secret IDs are removed
// every sweep interval, and the
// keyring is re-read every KeyringReload so a rotation made on another node
// reaches this node's encryption within that time.
func (s *Server) Run(ctx context.Context, sweep time.Duration) {
	if sweep <= 0 {
		sweep = 30 * time.Second
	}
	sweepTick, reloadTick := time.NewTicker(sweep), time.NewTicker(KeyringReload)
	defer sweepTick.Stop()
	defer reloadTick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweepTick.C:
			if s.seal.Sealed() {
				continue
			}
			if n, err := s.tokens.RevokeExpired(ctx); err != nil {
				s.log.Warn("revoking expired tokens", "error", err.Error())
			} else if n > 0 {
				s.log.Info("revoked expired tokens", "count", n)
			}
			if n, err := s.approle.RemoveExpiredSecretIDs(ctx); err != nil {
				s.log.Warn("removing expired secret IDs", "error", err.Error())
			} else if n > 0 {
				s.log.Info("removed expired secret IDs", "count", n)
			}
		case <-reloadTick.C:
			if err := s.seal.Reload(ctx); err != nil && !errors.Is(err, seal.ErrSealed) {
				s.log.Warn("reloading the keyring", "error", err.Error())
			}
		}
	}
}

// KeyringReload is how often an unsealed node re-reads the keyring.
const KeyringReload = 10 * time.Second
