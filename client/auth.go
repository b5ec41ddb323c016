package client

import (
	"context"
	"errors"
	"net/http"
)

// Auth holds the auth methods that are not a whole API of their own: the
// admin login.
type Auth struct{ c *Client }

// Auth returns the auth methods.
func (c *Client) Auth() *Auth { return &Auth{c: c} }

// AdminLogin exchanges the admin user name and password (the server's
// ADMIN_USERNAME and the password behind ADMIN_PASSWORD_HASH) for a token
// with the admin policy. It needs no token of its own. A wrong pair is a
// 403, repeated failures a 429 whose RetryAfter says when to try again,
// and a server without an admin user answers 404.
func (a *Auth) AdminLogin(ctx context.Context, username, password string) (*TokenAuth, error) {
	if username == "" || password == "" {
		return nil, errors.New("client: an admin login needs both a user name and a password")
	}
	body := struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}{username, password}
	return a.c.auth(ctx, request{method: http.MethodPost, path: "auth/admin/login", body: body})
}
