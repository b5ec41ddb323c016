package client_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/secrethub/secrethub/client"
	"github.com/secrethub/secrethub/client/clienttest"
	"github.com/secrethub/secrethub/server"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// adminConfig enables admin login for "admin" with password, hashed at
// bcrypt's lowest cost to keep tests quick.
func adminConfig(t *testing.T, password string, ttl time.Duration) server.Config {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return server.Config{AdminUsername: "admin", AdminPasswordHash: string(hash), AdminTokenTTL: ttl}
}

func TestAdminLogin(t *testing.T) {
	const password = "correct horse battery staple"
	storagetest.Engines(t, func(t *testing.T, db *storage.DB) {
		srv := clienttest.UnsealedWith(t, db, adminConfig(t, password, 0))
		ctx := context.Background()
		anon := srv.Client(t, "")

		a, err := anon.Auth().AdminLogin(ctx, "admin", password)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(a.ClientToken, "s.") || a.Accessor == "" || !slices.Contains(a.Policies, "admin") ||
			a.LeaseDuration != 1800 {
			t.Fatalf("admin login = %+v, want an admin token for the default 30 minutes", a)
		}
		info, err := srv.Client(t, a.ClientToken).Token().LookupSelf(ctx)
		if err != nil || !slices.Contains(info.Policies, "admin") {
			t.Fatalf("the admin token looks up as %+v, %v", info, err)
		}
		if _, err := srv.Client(t, a.ClientToken).Policy().List(ctx); err != nil {
			t.Fatalf("the admin token cannot list policies: %v", err)
		}
	})
}

func TestAdminLoginFailures(t *testing.T) {
	const password = "correct horse battery staple"
	ctx := context.Background()
	srv := clienttest.UnsealedWith(t, storagetest.SQLite(t), adminConfig(t, password, 45*time.Minute))
	anon := srv.Client(t, "")

	t.Run("the configured token TTL applies", func(t *testing.T) {
		a, err := anon.Auth().AdminLogin(ctx, "admin", password)
		if err != nil || a.LeaseDuration != 2700 {
			t.Fatalf("admin login = %+v, %v", a, err)
		}
	})
	wrong := []struct {
		name, username, password string
	}{
		{"a wrong password", "admin", "wrong-password-1"},
		{"a wrong user name", "root", password},
	}
	for _, tt := range wrong {
		t.Run(tt.name+" is a 403 that names neither part nor repeats the password", func(t *testing.T) {
			_, err := anon.Auth().AdminLogin(ctx, tt.username, tt.password)
			if !isStatus(err, 403) || !strings.Contains(err.Error(), "invalid username or password") {
				t.Fatalf("err = %v", err)
			}
			if strings.Contains(err.Error(), tt.password) {
				t.Fatalf("the password is in the error: %v", err)
			}
		})
	}
	t.Run("repeated failures are a 429 that says when to retry", func(t *testing.T) {
		var err error
		for range 6 {
			if _, err = anon.Auth().AdminLogin(ctx, "admin", "wrong-password-2"); isStatus(err, 429) {
				break
			}
		}
		var re *client.ResponseError
		if !errors.As(err, &re) || re.StatusCode != 429 || re.RetryAfter <= 0 {
			t.Fatalf("err = %#v, want a 429 with a Retry-After", err)
		}
		if !strings.Contains(err.Error(), "(retry after ") || strings.Contains(err.Error(), "wrong-password-2") {
			t.Fatalf("error %q", err)
		}
		if _, err := anon.Auth().AdminLogin(ctx, "admin", password); !isStatus(err, 429) {
			t.Fatalf("the right password while blocked: err = %v, want 429", err)
		}
	})
	t.Run("a server without an admin user answers 404", func(t *testing.T) {
		plain := clienttest.Unsealed(t, storagetest.SQLite(t))
		if _, err := plain.Client(t, "").Auth().AdminLogin(ctx, "admin", password); !isStatus(err, 404) {
			t.Fatalf("err = %v, want 404", err)
		}
	})
	t.Run("an empty user name or password is refused before asking", func(t *testing.T) {
		for _, pair := range [][2]string{{"", password}, {"admin", ""}} {
			if _, err := anon.Auth().AdminLogin(ctx, pair[0], pair[1]); err == nil || isStatus(err, 403) {
				t.Fatalf("AdminLogin(%q, …): err = %v", pair[0], err)
			}
		}
	})
}
