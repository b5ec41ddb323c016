package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/secrethub/secrethub/server"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// The admin login tests configure: bcrypt at its minimum cost keeps the
// suite fast; the production cost is the operator's (hash-password uses 12).
const (
	testAdminUser     = "admin"
	testAdminPassword = "correct horse battery staple"
)

var testAdminHash = func() string {
	h, err := bcrypt.GenerateFromPassword([]byte(testAdminPassword), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return string(h)
}()

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
	srv, err := server.New(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
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

// send runs a prepared request against the node (for custom headers,
// methods and bodies that do() does not cover).
func (n *node) send(req *http.Request) response {
	n.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// newRequest builds a request to the node, failing the test on error.
func (n *node) newRequest(method, path string, body io.Reader) *http.Request {
	n.t.Helper()
	req, err := http.NewRequest(method, n.URL+path, body)
	if err != nil {
		n.t.Fatal(err)
	}
	return req
}

// Data returns the "data" object of a success envelope.
func (r response) Data(t *testing.T) map[string]any { t.Helper(); return r.object(t, "data") }

// Auth returns the "auth" object of a success envelope.
func (r response) Auth(t *testing.T) map[string]any { t.Helper(); return r.object(t, "auth") }

func (r response) object(t *testing.T, key string) map[string]any {
	t.Helper()
	o, ok := r.JSON(t)[key].(map[string]any)
	if !ok {
		t.Fatalf("want an envelope with a %q object, got %s", key, r.Body)
	}
	return o
}

// mustError fails unless the response has the wanted status and an
// {"errors":[…]} body whose first message contains want.
func mustError(t *testing.T, r response, status int, want string) {
	t.Helper()
	mustStatus(t, r, status)
	if msg := r.Errors(t)[0]; !strings.Contains(msg, want) {
		t.Fatalf("error %q does not mention %q", msg, want)
	}
}

// createToken has parent create a token with the given request body and
// returns the new token and its accessor.
func (n *node) createToken(parent, body string) (token, accessor string) {
	n.t.Helper()
	a := mustStatus(n.t, n.do("POST", "/v1/auth/token/create", parent, body), 200).Auth(n.t)
	token, _ = a["client_token"].(string)
	accessor, _ = a["accessor"].(string)
	if token == "" || accessor == "" {
		n.t.Fatalf("token create returned no token or accessor: %v", a)
	}
	return token, accessor
}

// clock is a test clock for server.Config.Now that only moves when told.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// eachStorage runs fn once per engine with the configuration of a fresh,
// empty database, and an open function that opens (and migrates) it: call
// it again to reopen the same data, as a restarted node does.
func eachStorage(t *testing.T, fn func(t *testing.T, cfg storage.Config, open func() *storage.DB)) {
	t.Helper()
	storagetest.EngineConfigs(t, func(t *testing.T, cfg storage.Config) {
		fn(t, cfg, func() *storage.DB { return storagetest.Open(t, cfg) })
	})
}

// rawRequest writes a literal HTTP/1.1 request over TCP, so paths reach the
// server exactly as written (Go's client may clean or escape them), and
// returns the response.
func (n *node) rawRequest(method, target, token string) response {
	n.t.Helper()
	conn, err := net.Dial("tcp", n.http.Listener.Addr().String())
	if err != nil {
		n.t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := method + " " + target + " HTTP/1.1\r\nHost: secrethub.test\r\nConnection: close\r\n"
	if token != "" {
		req += "X-Vault-Token: " + token + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		n.t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}
