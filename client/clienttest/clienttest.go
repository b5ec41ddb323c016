// Package clienttest starts real in-process Core servers on loopback
// listeners for the tests of code built on client/ (the client itself, the
// CLI). Nothing is mocked: the server runs over a real database.
package clienttest

import (
	"context"
	"encoding/hex"
	"encoding/pem"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/secrethub/secrethub/client"
	"github.com/secrethub/secrethub/server"
	"github.com/secrethub/secrethub/storage"
)

// Server is a running Core.
type Server struct {
	// URL is the base address, http://127.0.0.1:port (https:// from StartTLS).
	URL string
	// CACertFile is, from StartTLS, a PEM file of the server's self-signed
	// certificate, to trust as a CA.
	CACertFile string
	// Core is the server itself, for setting up state directly.
	Core *server.Server
	// RootToken and UnsealKey (hex) are set by Unsealed.
	RootToken string
	UnsealKey string

	db  *storage.DB
	cfg server.Config
}

// Start serves a new Core over db: sealed and not initialized.
func Start(t testing.TB, db *storage.DB) *Server {
	t.Helper()
	return StartWith(t, db, server.Config{})
}

// StartWith is Start with a server configuration of one's own (an admin
// user, a clock); the node name defaults to "test-node".
func StartWith(t testing.TB, db *storage.DB, cfg server.Config) *Server {
	t.Helper()
	if cfg.NodeName == "" {
		cfg.NodeName = "test-node"
	}
	core := newCore(t, db, cfg)
	hs := httptest.NewServer(core.Handler())
	t.Cleanup(hs.Close)
	return &Server{URL: hs.URL, Core: core, db: db, cfg: cfg}
}

// newCore makes a Core whose audit log is closed (its outcomes flushed, a
// final checkpoint written) when the test ends, after its HTTP server
// stops and before the database closes.
func newCore(t testing.TB, db *storage.DB, cfg server.Config) *server.Server {
	t.Helper()
	core, err := server.New(db, cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	t.Cleanup(func() { closeCore(t, core) })
	return core
}

// closeCore closes core's audit log; closing twice is harmless.
func closeCore(t testing.TB, core *server.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := core.Close(ctx); err != nil {
		t.Logf("closing the audit log: %v", err)
	}
}

// Restart stops s as a node restart would (its audit log is closed, which
// writes a final checkpoint) and serves a new Core over the same database
// with cfg (the node name defaults to s's), unsealed with s's key when s
// was unsealed. The old server refuses every request from then on (503: its
// audit log is closed); use the returned Server.
func (s *Server) Restart(t testing.TB, cfg server.Config) *Server {
	t.Helper()
	if cfg.NodeName == "" {
		cfg.NodeName = s.cfg.NodeName
	}
	closeCore(t, s.Core)
	next := StartWith(t, s.db, cfg)
	if s.UnsealKey != "" {
		key, err := hex.DecodeString(s.UnsealKey)
		if err != nil {
			t.Fatalf("unseal key: %v", err)
		}
		if _, err := next.Core.Unseal(context.Background(), key); err != nil {
			t.Fatalf("unseal after restart: %v", err)
		}
	}
	next.RootToken, next.UnsealKey = s.RootToken, s.UnsealKey
	return next
}

// StartTLS serves a new Core over HTTPS only, with a self-signed
// certificate for 127.0.0.1 that is written to CACertFile: sealed and not
// initialized. Its Client methods do not trust that certificate.
func StartTLS(t testing.TB, db *storage.DB) *Server {
	t.Helper()
	cfg := server.Config{NodeName: "test-node"}
	core := newCore(t, db, cfg)
	hs := httptest.NewUnstartedServer(core.Handler())
	// Handshakes that tests make fail on purpose are not worth a log line.
	hs.Config.ErrorLog = log.New(io.Discard, "", 0)
	hs.StartTLS()
	t.Cleanup(hs.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw})
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatalf("writing the test CA: %v", err)
	}
	return &Server{URL: hs.URL, Core: core, CACertFile: caFile, db: db, cfg: cfg}
}

// Unsealed serves a Core over db, initialized with a single key share and
// unsealed, with its root token at hand.
func Unsealed(t testing.TB, db *storage.DB) *Server {
	t.Helper()
	return UnsealedWith(t, db, server.Config{})
}

// UnsealedWith is Unsealed with a server configuration of one's own.
func UnsealedWith(t testing.TB, db *storage.DB, cfg server.Config) *Server {
	t.Helper()
	s := StartWith(t, db, cfg)
	ctx := context.Background()
	res, err := s.Core.Initialize(ctx, 1, 1)
	if err != nil {
		t.Fatalf("initialize: %v", err)
	}
	if _, err := s.Core.Unseal(ctx, res.Keys[0]); err != nil {
		t.Fatalf("unseal: %v", err)
	}
	s.RootToken, s.UnsealKey = res.RootToken, hex.EncodeToString(res.Keys[0])
	return s
}

// Client returns a client for s that sends token, configured by opts.
func (s *Server) Client(t testing.TB, token string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(s.URL, token, opts...)
	if err != nil {
		t.Fatalf("client.New(%q): %v", s.URL, err)
	}
	return c
}

// Root returns a client for s with the root token.
func (s *Server) Root(t testing.TB) *client.Client {
	t.Helper()
	return s.Client(t, s.RootToken)
}
