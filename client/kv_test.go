package client_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/secrethub/secrethub/client"
	"github.com/secrethub/secrethub/client/clienttest"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

func TestKV(t *testing.T) {
	storagetest.Engines(t, func(t *testing.T, db *storage.DB) {
		srv := clienttest.Unsealed(t, db)
		ctx := context.Background()
		kv := srv.Root(t).KV()
		put := func(t *testing.T, path string, data map[string]any) *client.KVVersion {
			t.Helper()
			v, err := kv.Put(ctx, path, data, client.KVPutOptions{})
			if err != nil {
				t.Fatalf("put %s: %v", path, err)
			}
			return v
		}

		t.Run("a written secret reads back with its metadata", func(t *testing.T) {
			v := put(t, "test/hello", map[string]any{"message": "Hello Production!", "port": 5432})
			if v.Version != 1 || v.CreatedTime.IsZero() {
				t.Fatalf("put = %+v", v)
			}
			got, err := kv.Get(ctx, "test/hello", 0)
			if err != nil {
				t.Fatal(err)
			}
			if got.Data["message"] != "Hello Production!" || got.Data["port"] != 5432.0 || got.Metadata.Version != 1 {
				t.Fatalf("get = %+v", got)
			}
		})
		t.Run("an older version reads by number", func(t *testing.T) {
			put(t, "test/versions", map[string]any{"n": "one"})
			put(t, "test/versions", map[string]any{"n": "two"})
			got, err := kv.Get(ctx, "test/versions", 1)
			if err != nil || got.Data["n"] != "one" || got.Metadata.Version != 1 {
				t.Fatalf("get version 1 = %+v, %v", got, err)
			}
		})
		t.Run("check-and-set refuses a stale version with 409", func(t *testing.T) {
			put(t, "test/cas", map[string]any{"a": "1"})
			zero, one := 0, 1
			if _, err := kv.Put(ctx, "test/cas", map[string]any{"a": "2"}, client.KVPutOptions{CAS: &zero}); !isStatus(err, 409) {
				t.Fatalf("stale cas: err = %v, want 409", err)
			}
			if v, err := kv.Put(ctx, "test/cas", map[string]any{"a": "2"}, client.KVPutOptions{CAS: &one}); err != nil || v.Version != 2 {
				t.Fatalf("current cas = %+v, %v", v, err)
			}
		})
		t.Run("segments with reserved URL characters are escaped one by one", func(t *testing.T) {
			path := "odd/a b?c%d#e/ünï+&="
			put(t, path, map[string]any{"k": "v"})
			got, err := kv.Get(ctx, path, 0)
			if err != nil || got.Data["k"] != "v" {
				t.Fatalf("get %q = %+v, %v", path, got, err)
			}
			keys, err := kv.List(ctx, "odd/a b?c%d#e")
			if err != nil || !slices.Equal(keys, []string{"ünï+&="}) {
				t.Fatalf("list = %v, %v", keys, err)
			}
		})
		t.Run("list shows secrets and folders under a prefix", func(t *testing.T) {
			put(t, "app/one", map[string]any{"k": "v"})
			put(t, "app/sub/two", map[string]any{"k": "v"})
			keys, err := kv.List(ctx, "app")
			if err != nil || !slices.Equal(keys, []string{"one", "sub/"}) {
				t.Fatalf("list app = %v, %v", keys, err)
			}
			if _, err := kv.List(ctx, "nothing-here/"); !errors.Is(err, client.ErrNotFound) {
				t.Fatalf("list of an empty prefix: err = %v, want ErrNotFound", err)
			}
			top, err := kv.List(ctx, "")
			if err != nil || !slices.Contains(top, "app/") {
				t.Fatalf("list of the top level = %v, %v", top, err)
			}
		})
		t.Run("delete, undelete, destroy and rollback manage versions", func(t *testing.T) {
			const p = "test/life"
			for _, n := range []string{"one", "two", "three"} {
				put(t, p, map[string]any{"n": n})
			}
			if err := kv.Delete(ctx, p); err != nil {
				t.Fatal(err)
			}
			if _, err := kv.Get(ctx, p, 0); !errors.Is(err, client.ErrNotFound) {
				t.Fatalf("get after delete: err = %v, want ErrNotFound", err)
			}
			if err := kv.Undelete(ctx, p, []int{3}); err != nil {
				t.Fatal(err)
			}
			if got, err := kv.Get(ctx, p, 0); err != nil || got.Data["n"] != "three" {
				t.Fatalf("get after undelete = %+v, %v", got, err)
			}
			if err := kv.DeleteVersions(ctx, p, []int{2}); err != nil {
				t.Fatal(err)
			}
			if err := kv.Destroy(ctx, p, []int{1}); err != nil {
				t.Fatal(err)
			}
			if _, err := kv.Rollback(ctx, p, 1); !isStatus(err, 400) {
				t.Fatalf("rollback to a destroyed version: err = %v, want 400", err)
			}
			if err := kv.Undelete(ctx, p, []int{2}); err != nil {
				t.Fatal(err)
			}
			v, err := kv.Rollback(ctx, p, 2)
			if err != nil || v.Version != 4 {
				t.Fatalf("rollback = %+v, %v", v, err)
			}
			if got, err := kv.Get(ctx, p, 0); err != nil || got.Data["n"] != "two" {
				t.Fatalf("get after rollback = %+v, %v", got, err)
			}
			m, err := kv.Metadata(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if m.CurrentVersion != 4 || len(m.Versions) != 4 || !m.Versions["1"].Destroyed || !m.Versions["2"].DeletionTime.IsZero() {
				t.Fatalf("metadata = %+v", m)
			}
		})
		t.Run("metadata settings are written, read and deleted", func(t *testing.T) {
			const p = "test/meta"
			max, yes := 3, true
			if err := kv.PutMetadata(ctx, p, client.KVMetadataInput{MaxVersions: &max, CASRequired: &yes, CustomMetadata: map[string]string{"owner": "ops"}}); err != nil {
				t.Fatal(err)
			}
			m, err := kv.Metadata(ctx, p)
			if err != nil || m.MaxVersions != 3 || !m.CASRequired || m.CustomMetadata["owner"] != "ops" {
				t.Fatalf("metadata = %+v, %v", m, err)
			}
			if _, err := kv.Put(ctx, p, map[string]any{"k": "v"}, client.KVPutOptions{}); !isStatus(err, 400) {
				t.Fatalf("put without cas on a cas-required secret: err = %v, want 400", err)
			}
			if err := kv.DeleteMetadata(ctx, p); err != nil {
				t.Fatal(err)
			}
			if _, err := kv.Metadata(ctx, p); !errors.Is(err, client.ErrNotFound) {
				t.Fatalf("metadata after delete: err = %v, want ErrNotFound", err)
			}
		})
	})
}
