// Package client is the typed Go client for SecretHub's /v1 HTTP API. The
// CLI and the agent use it; every API the server offers has one method here
// and a result struct shaped like the server's JSON.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultAddress is where a Core server listens unless told otherwise.
const DefaultAddress = "http://127.0.0.1:4000"

// DefaultTimeout bounds one whole request, body included.
const DefaultTimeout = 60 * time.Second

// maxResponseBytes bounds how much of a response body is read.
const maxResponseBytes = 32 << 20

// ErrResponseTooLarge is matched (errors.Is) by the error of a call whose
// answer was longer than the client reads (32 MiB): it is refused rather
// than decoded cut short.
var ErrResponseTooLarge = errors.New("the server's answer is larger than 32 MiB")

// Client talks to one SecretHub Core server. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
	// long is http without its timeouts, for requests that walk the whole
	// audit log (request.long): made on first use, after the Options.
	longOnce sync.Once
	long     *http.Client
	// optErr is the first error of an Option, returned by New.
	optErr error
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient replaces the default *http.Client (for tests, or a
// transport of one's own).
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.http = hc }
}

// WithTimeout bounds each whole request instead of DefaultTimeout.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) {
		hc := *c.http
		hc.Timeout = d
		c.http = &hc
	}
}

// New returns a client for the server at addr (an http:// or https:// URL)
// that authenticates with token; an empty token sends none, which is enough
// for the unauthenticated sys/ endpoints.
func New(addr, token string, opts ...Option) (*Client, error) {
	if addr == "" {
		addr = DefaultAddress
	}
	u, err := url.Parse(strings.TrimRight(addr, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: address %q must be an http:// or https:// URL with a host", redactAddress(addr))
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("client: address %q must not carry a query, fragment or user information", redactAddress(addr))
	}
	c := &Client{base: u, token: token, http: newHTTPClient()}
	for _, o := range opts {
		o(c)
	}
	if c.optErr != nil {
		return nil, c.optErr
	}
	return c, nil
}

// redactAddress is addr fit for an error message: user information (which
// may hold a password) and any query or fragment (which may hold a token)
// are replaced by "…". It works on text, since addr may not parse as a URL.
func redactAddress(addr string) string {
	prefix, rest := "", addr
	if i := strings.Index(addr, "://"); i >= 0 {
		prefix, rest = addr[:i+3], addr[i+3:]
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i] + "…"
	}
	authority, path := rest, ""
	if i := strings.Index(rest, "/"); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		authority = "…@" + authority[i+1:]
	}
	return prefix + authority + path
}

// newHTTPClient has timeouts on every phase, so a dead server fails a
// request instead of hanging it.
func newHTTPClient() *http.Client {
	return &http.Client{
		Timeout: DefaultTimeout,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			ExpectContinueTimeout: time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   4,
			ForceAttemptHTTP2:     true,
		},
		// A redirect would resend the token to wherever it points.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Address is the server URL this client talks to.
func (c *Client) Address() string { return c.base.String() }

// ErrNotFound is matched (errors.Is) by a *ResponseError with status 404.
var ErrNotFound = errors.New("not found")

// ResponseError is a non-success answer from the server.
type ResponseError struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Errors are the server's messages, from its {"errors":[…]} body.
	Errors []string
	// RetryAfter is how long the server asked to wait before trying again
	// (its Retry-After header, with 429 and 503), zero when it did not say.
	RetryAfter time.Duration
}

// Error reads like Vault's: "Code: 403. Errors: * permission denied",
// followed by when to retry if the server said so.
func (e *ResponseError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Code: %d. Errors:", e.StatusCode)
	if len(e.Errors) == 0 {
		b.WriteString(" * " + http.StatusText(e.StatusCode))
	}
	for _, msg := range e.Errors {
		b.WriteString(" * " + msg)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// Is makes a 404 match ErrNotFound.
func (e *ResponseError) Is(target error) bool {
	return target == ErrNotFound && e.StatusCode == http.StatusNotFound
}

// request is one API call.
type request struct {
	method string
	path   string // below /v1/, already escaped
	query  url.Values
	body   any
	// long: the server walks the whole audit log to answer, which takes
	// longer than DefaultTimeout on a large log; only ctx bounds it.
	long bool
}

// longClient is c.http without its overall and response-header timeouts.
func (c *Client) longClient() *http.Client {
	c.longOnce.Do(func() {
		hc := *c.http
		hc.Timeout = 0
		if t, ok := hc.Transport.(*http.Transport); ok {
			t = t.Clone()
			t.ResponseHeaderTimeout = 0
			hc.Transport = t
		}
		c.long = &hc
	})
	return c.long
}

// do sends req and decodes a 2xx JSON body into out (when out is not nil).
// Any other status becomes a *ResponseError.
func (c *Client) do(ctx context.Context, req request, out any) error {
	status, header, body, err := c.send(ctx, req)
	if err != nil {
		return err
	}
	if status < 200 || status > 299 {
		e := responseError(status, body)
		e.RetryAfter = retryAfter(header.Get("Retry-After"))
		return e
	}
	return decode(body, out)
}

// retryAfter reads a Retry-After header given in seconds; an HTTP date or
// anything else counts as not given.
func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// send performs the round trip and returns the status, the headers and
// the body.
func (c *Client) send(ctx context.Context, req request) (int, http.Header, []byte, error) {
	endpoint := c.base.String() + "/v1/" + req.path
	full := endpoint
	if len(req.query) > 0 {
		full += "?" + req.query.Encode()
	}
	var rd io.Reader
	if req.body != nil {
		b, err := json.Marshal(req.body)
		if err != nil {
			return 0, nil, nil, fmt.Errorf("client: encoding %s request: %w", req.path, err)
		}
		rd = bytes.NewReader(b)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, full, rd)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("client: building request: %w", err)
	}
	if rd != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		hr.Header.Set("X-Vault-Token", c.token)
	}
	hc := c.http
	if req.long {
		hc = c.longClient()
	}
	resp, err := hc.Do(hr)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("client: %s %s: %w", req.method, endpoint, unwrapURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("client: reading response of %s /v1/%s: %w", req.method, req.path, err)
	}
	if len(body) > maxResponseBytes {
		return 0, nil, nil, fmt.Errorf("client: %s /v1/%s: %w", req.method, req.path, ErrResponseTooLarge)
	}
	return resp.StatusCode, resp.Header, body, nil
}

// unwrapURLError drops *url.Error's repetition of method and URL, which
// send already names.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func decode(body []byte, out any) error {
	if out == nil || len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("client: the server's answer is not the expected JSON: %w", err)
	}
	return nil
}

// responseError builds the error for a non-success status from the body:
// the server's {"errors":[…]} or, from something else in the way (a proxy),
// the start of its text.
func responseError(status int, body []byte) *ResponseError {
	e := &ResponseError{StatusCode: status}
	var eb struct {
		Errors []string `json:"errors"`
	}
	if json.Unmarshal(body, &eb) == nil {
		e.Errors = eb.Errors
		return e
	}
	if text := strings.TrimSpace(string(body)); text != "" {
		if len(text) > 200 {
			text = text[:200] + "…"
		}
		e.Errors = []string{text}
	}
	return e
}

// envelope is the Vault-compatible success body of non-sys/ endpoints.
type envelope struct {
	RequestID     string          `json:"request_id"`
	LeaseID       string          `json:"lease_id"`
	Renewable     bool            `json:"renewable"`
	LeaseDuration int             `json:"lease_duration"`
	Data          json.RawMessage `json:"data"`
	Warnings      []string        `json:"warnings"`
	Auth          *TokenAuth      `json:"auth"`
}

// data calls the API and decodes the envelope's data into out.
func (c *Client) data(ctx context.Context, req request, out any) error {
	var env envelope
	if err := c.do(ctx, req, &env); err != nil {
		return err
	}
	if len(env.Data) == 0 || string(env.Data) == "null" {
		return fmt.Errorf("client: %s /v1/%s answered without data", req.method, req.path)
	}
	return decode(env.Data, out)
}

// auth calls an API that issues or renews a token and returns its auth block.
func (c *Client) auth(ctx context.Context, req request) (*TokenAuth, error) {
	var env envelope
	if err := c.do(ctx, req, &env); err != nil {
		return nil, err
	}
	if env.Auth == nil {
		return nil, fmt.Errorf("client: %s /v1/%s answered without an auth block", req.method, req.path)
	}
	return env.Auth, nil
}

// escapePath escapes each slash-separated segment of p on its own, so a
// segment may hold any character without changing the path's shape.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// Time is a timestamp in a response: RFC 3339, where the server's empty
// string or null means "not set" (the zero Time).
type Time struct{ time.Time }

// UnmarshalJSON accepts an RFC 3339 string, "" or null.
func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" || string(b) == `""` {
		t.Time = time.Time{}
		return nil
	}
	return t.Time.UnmarshalJSON(b)
}

// MarshalJSON writes the zero Time as "", as the server does.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte(`""`), nil
	}
	return t.Time.UTC().MarshalJSON()
}

// String is RFC 3339 in UTC, or "" when not set.
func (t Time) String() string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
