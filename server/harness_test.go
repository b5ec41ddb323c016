package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/secrethub/secrethub/server"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// node is a Core server on a real loopback listener over a real database.
type node struct {
	t    *testing.T
	srv  *server.Server
	db   *storage.DB
	http *httptest.Server
	URL  string
	logs *syncBuffer
}

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// eachEngine runs fn against a fresh server on SQLite and on PostgreSQL.
func eachEngine(t *testing.T, fn func(t *testing.T, n *node)) {
	t.Helper()
	storagetest.Engines(t, func(t *testing.T, db *storage.DB) { fn(t, startNode(t, db, server.Config{})) })
}

func startNode(t *testing.T, db *storage.DB, cfg server.Config) *node {
	t.Helper()
	logs := &syncBuffer{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv := server.New(db, cfg)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &node{t: t, srv: srv, db: db, http: hs, URL: hs.URL, logs: logs}
}

// response is what a test sees of an HTTP answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a generic map.
func (r response) JSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body is not a JSON object (%v): %s", err, r.Body)
	}
	return m
}

// Errors returns the {"errors":[…]} list, failing if the body has none.
func (r response) Errors(t *testing.T) []string {
	t.Helper()
	var e struct {
		Errors []string `json:"errors"`
	}
	if err := json.Unmarshal(r.Body, &e); err != nil || len(e.Errors) == 0 {
		t.Fatalf("want an {\"errors\":[…]} body, got %s", r.Body)
	}
	return e.Errors
}

// do sends a request like curl -d does (no Content-Type unless given).
func (n *node) do(method, path, token, body string) response {
	n.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, n.URL+path, rd)
	if err != nil {
		n.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// mustStatus fails unless the response has the wanted status.
func mustStatus(t *testing.T, r response, want int) response {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status %d, want %d; body %s", r.Status, want, r.Body)
	}
	return r
}

// initUnseal initializes with shares/threshold, unseals with the first
// threshold keys, and returns the keys and root token.
func (n *node) initUnseal(shares, threshold int) (keys []string, root string) {
	n.t.Helper()
	r := mustStatus(n.t, n.do("POST", "/v1/sys/init", "", `{"secret_shares":`+strconv.Itoa(shares)+`,"secret_threshold":`+strconv.Itoa(threshold)+`}`), 200)
	var out struct {
		Keys      []string `json:"keys"`
		RootToken string   `json:"root_token"`
	}
	if err := json.Unmarshal(r.Body, &out); err != nil {
		n.t.Fatal(err)
	}
	for _, k := range out.Keys[:threshold] {
		mustStatus(n.t, n.do("POST", "/v1/sys/unseal", "", `{"key":"`+k+`"}`), 200)
	}
	return out.Keys, out.RootToken
}
