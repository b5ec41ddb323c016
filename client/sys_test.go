package client_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/secrethub/secrethub/client"
	"github.com/secrethub/secrethub/client/clienttest"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

func TestSysLifecycle(t *testing.T) {
	storagetest.Engines(t, func(t *testing.T, db *storage.DB) {
		srv := clienttest.Start(t, db)
		ctx := context.Background()
		anon := srv.Client(t, "")

		h, err := anon.Sys().Health(ctx)
		if err != nil {
			t.Fatalf("health of an uninitialized server is a state, not an error: %v", err)
		}
		if h.StatusCode != http.StatusNotImplemented || h.Initialized || !h.Sealed || h.Hostname != "test-node" {
			t.Fatalf("health before init = %+v", h)
		}
		if ok, err := anon.Sys().InitStatus(ctx); err != nil || ok {
			t.Fatalf("init status = %v, %v; want false", ok, err)
		}

		init, err := anon.Sys().Init(ctx, client.InitRequest{SecretShares: 3, SecretThreshold: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(init.Keys) != 3 || len(init.KeysBase64) != 3 || init.RootToken == "" {
			t.Fatalf("init = %+v", init)
		}
		if _, err := anon.Sys().Init(ctx, client.InitRequest{SecretShares: 1, SecretThreshold: 1}); !isStatus(err, 400) {
			t.Fatalf("second init: err = %v, want 400", err)
		}

		h, err = anon.Sys().Health(ctx)
		if err != nil || h.StatusCode != http.StatusServiceUnavailable || !h.Initialized || !h.Sealed {
			t.Fatalf("health when sealed = %+v, %v", h, err)
		}

		st, err := anon.Sys().Unseal(ctx, init.Keys[0])
		if err != nil || !st.Sealed || st.Progress != 1 || st.T != 2 || st.N != 3 || st.Nonce == "" {
			t.Fatalf("after one key: %+v, %v", st, err)
		}
		st, err = anon.Sys().UnsealReset(ctx)
		if err != nil || st.Progress != 0 {
			t.Fatalf("after reset: %+v, %v", st, err)
		}
		// A base64 key counts as much as a hex one.
		if _, err := anon.Sys().Unseal(ctx, init.KeysBase64[1]); err != nil {
			t.Fatal(err)
		}
		st, err = anon.Sys().Unseal(ctx, init.Keys[2])
		if err != nil || st.Sealed || st.Type != "shamir" || st.StorageType != string(db.Engine()) {
			t.Fatalf("after threshold: %+v, %v", st, err)
		}
		if st, err := anon.Sys().SealStatus(ctx); err != nil || st.Sealed || !st.Initialized {
			t.Fatalf("seal status = %+v, %v", st, err)
		}
		if h, err := anon.Sys().Health(ctx); err != nil || h.StatusCode != http.StatusOK {
			t.Fatalf("health when unsealed = %+v, %v", h, err)
		}

		root := srv.Client(t, init.RootToken)
		ks, err := root.Sys().KeyStatus(ctx)
		if err != nil || ks.Term != 1 || ks.InstallTime.IsZero() {
			t.Fatalf("key status = %+v, %v", ks, err)
		}
		if err := root.Sys().Rotate(ctx); err != nil {
			t.Fatal(err)
		}
		if ks, err := root.Sys().KeyStatus(ctx); err != nil || ks.Term != 2 {
			t.Fatalf("key status after rotate = %+v, %v", ks, err)
		}

		if err := anon.Sys().Seal(ctx); !isStatus(err, 403) {
			t.Fatalf("seal without a token: err = %v, want 403", err)
		}
		if err := root.Sys().Seal(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := root.Sys().KeyStatus(ctx); !isStatus(err, 503) {
			t.Fatalf("key status when sealed: err = %v, want 503", err)
		}
	})
}

// isStatus reports whether err is a ResponseError with this status.
func isStatus(err error, status int) bool {
	var re *client.ResponseError
	return errors.As(err, &re) && re.StatusCode == status
}
