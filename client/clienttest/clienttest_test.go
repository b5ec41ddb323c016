package clienttest_test

import (
	"context"
	"slices"
	"testing"

	"github.com/secrethub/secrethub/client/clienttest"
	"github.com/secrethub/secrethub/storage/storagetest"
)

func TestStartIsSealedAndUninitialized(t *testing.T) {
	s := clienttest.Start(t, storagetest.SQLite(t))
	st, err := s.Client(t, "").Sys().SealStatus(context.Background())
	if err != nil || st.Initialized || !st.Sealed {
		t.Fatalf("seal status = %+v, %v", st, err)
	}
}

func TestUnsealedHandsOutAWorkingRootToken(t *testing.T) {
	s := clienttest.Unsealed(t, storagetest.SQLite(t))
	st, err := s.Client(t, "").Sys().SealStatus(context.Background())
	if err != nil || st.Sealed {
		t.Fatalf("seal status = %+v, %v", st, err)
	}
	self, err := s.Client(t, s.RootToken).Token().LookupSelf(context.Background())
	if err != nil {
		t.Fatalf("root token does not work: %v", err)
	}
	if !slices.Contains(self.Policies, "root") {
		t.Fatalf("root token has policies %v", self.Policies)
	}
	if len(s.UnsealKey) != 64 {
		t.Fatalf("the unseal key is not a hex 32-byte key (%d characters)", len(s.UnsealKey))
	}
}
