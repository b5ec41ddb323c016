package command

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/client"
)

func TestKVPut(t *testing.T) {
	srv := unsealedServer(t)
	ctx := context.Background()
	dir := t.TempDir()
	pemFile := filepath.Join(dir, "cert.pem")
	pem := "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	if err := os.WriteFile(pemFile, []byte(pem), 0o600); err != nil {
		t.Fatal(err)
	}
	binFile := filepath.Join(dir, "blob")
	if err := os.WriteFile(binFile, []byte{0xff, 0xfe, 0x00}, 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		stdin    string
		pairs    []string
		wantData map[string]any
		wantErr  string
	}{
		{"plain pairs are stored as given", "", []string{"user=app", "url=postgres://h/db?x=1"},
			map[string]any{"user": "app", "url": "postgres://h/db?x=1"}, ""},
		{"key=@file stores the file's content as is", "", []string{"cert=@" + pemFile},
			map[string]any{"cert": pem}, ""},
		{"key=- stores all of stdin as is", "s3cr3t\n", []string{"user=app", "password=-"},
			map[string]any{"user": "app", "password": "s3cr3t\n"}, ""},
		{`a leading \@ is a literal @`, "", []string{`handle=\@ops`}, map[string]any{"handle": "@ops"}, ""},
		{"an empty value is allowed", "", []string{"note="}, map[string]any{"note": ""}, ""},
		{"stdin can be read only once", "x", []string{"a=-", "b=-"}, nil, "only once"},
		{"a missing file is an error naming it", "", []string{"k=@" + filepath.Join(dir, "nope")}, nil, "nope"},
		{"binary file content is refused", "", []string{"k=@" + binFile}, nil, "not UTF-8"},
		{"a pair without = is refused by its position", "", []string{"a=1", "justakey"}, nil, "argument 3 is not KEY=VALUE"},
		{"a key given twice is refused", "", []string{"a=1", "a=2"}, nil, "given twice"},
		{"no pairs at all is refused", "", nil, nil, "at least one"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newConsole(tt.stdin)
			path := "put/case" + string(rune('a'+i))
			err := runKVPut(ctx, &KVPutOptions{Deps: c.deps(t, srv, srv.RootToken, FormatTable), Path: path, Pairs: tt.pairs})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if _, err := srv.Root(t).KV().Get(ctx, path, 0); !errors.Is(err, client.ErrNotFound) {
					t.Fatalf("a refused put wrote something: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rowValue(t, c.out.String(), "version") != "1" {
				t.Fatalf("put output:\n%s", c.out)
			}
			got, err := srv.Root(t).KV().Get(ctx, path, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Data) != len(tt.wantData) {
				t.Fatalf("stored %v, want %v", got.Data, tt.wantData)
			}
			for k, v := range tt.wantData {
				if got.Data[k] != v {
					t.Fatalf("stored %s = %q, want %q", k, got.Data[k], v)
				}
			}
		})
	}

	t.Run("-cas refuses a stale write and accepts the current version", func(t *testing.T) {
		c := newConsole("")
		d := c.deps(t, srv, srv.RootToken, FormatJSON)
		zero, one := 0, 1
		if err := runKVPut(ctx, &KVPutOptions{Deps: d, Path: "put/cas", Pairs: []string{"a=1"}, CAS: &zero}); err != nil {
			t.Fatal(err)
		}
		err := runKVPut(ctx, &KVPutOptions{Deps: d, Path: "put/cas", Pairs: []string{"a=2"}, CAS: &zero})
		if err == nil || !strings.Contains(err.Error(), "Code: 409") {
			t.Fatalf("stale cas: err = %v", err)
		}
		c.out.Reset()
		if err := runKVPut(ctx, &KVPutOptions{Deps: d, Path: "put/cas", Pairs: []string{"a=2"}, CAS: &one}); err != nil {
			t.Fatal(err)
		}
		var v client.KVVersion
		if err := json.Unmarshal(c.out.Bytes(), &v); err != nil || v.Version != 2 {
			t.Fatalf("json output %s: %v", c.out, err)
		}
	})
}

func TestKVGet(t *testing.T) {
	srv := unsealedServer(t)
	ctx := context.Background()
	data := map[string]any{"username": "app", "password": "Hello Production!", "port": 5432}
	if _, err := srv.Root(t).KV().Put(ctx, "prod/db", data, client.KVPutOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Run("the table shows the metadata, then the data", func(t *testing.T) {
		c := newConsole("")
		if err := runKVGet(ctx, &KVGetOptions{Deps: c.deps(t, srv, srv.RootToken, FormatTable), Path: "/prod/db/"}); err != nil {
			t.Fatal(err)
		}
		out := c.out.String()
		meta, dataAt := strings.Index(out, "====== Metadata ======"), strings.Index(out, "====== Data ======")
		if meta != 0 || dataAt < meta {
			t.Fatalf("sections out of order:\n%s", out)
		}
		if rowValue(t, out[dataAt:], "password") != "Hello Production!" || rowValue(t, out[dataAt:], "port") != "5432" ||
			rowValue(t, out[:dataAt], "version") != "1" {
			t.Fatalf("get output:\n%s", out)
		}
	})
	t.Run("-field prints only that value, raw, with a newline", func(t *testing.T) {
		for field, want := range map[string]string{"password": "Hello Production!\n", "port": "5432\n"} {
			c := newConsole("")
			// -field wins over -format=json: scripts get the bare value.
			if err := runKVGet(ctx, &KVGetOptions{Deps: c.deps(t, srv, srv.RootToken, FormatJSON), Path: "prod/db", Field: field}); err != nil {
				t.Fatal(err)
			}
			if c.out.String() != want {
				t.Fatalf("-field=%s printed %q, want %q", field, c.out, want)
			}
		}
	})
	t.Run("-field naming a missing key is an error", func(t *testing.T) {
		c := newConsole("")
		err := runKVGet(ctx, &KVGetOptions{Deps: c.deps(t, srv, srv.RootToken, FormatTable), Path: "prod/db", Field: "nope"})
		if err == nil || !strings.Contains(err.Error(), `field "nope" is not present`) || c.out.Len() != 0 {
			t.Fatalf("err = %v, stdout %q", err, c.out)
		}
	})
	t.Run("a negative -version is refused before asking the server", func(t *testing.T) {
		c := newConsole("")
		if err := runKVGet(ctx, &KVGetOptions{Deps: c.deps(t, srv, srv.RootToken, FormatTable), Path: "prod/db", Version: -1}); err == nil {
			t.Fatal("want an error")
		}
	})
}

func TestKVVersionsLifecycle(t *testing.T) {
	srv := unsealedServer(t)
	ctx := context.Background()
	kv := srv.Root(t).KV()
	for _, n := range []string{"one", "two", "three"} {
		if _, err := kv.Put(ctx, "app/cfg", map[string]any{"n": n}, client.KVPutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	current := func(t *testing.T) string {
		t.Helper()
		s, err := kv.Get(ctx, "app/cfg", 0)
		if errors.Is(err, client.ErrNotFound) {
			return "(deleted)"
		}
		if err != nil {
			t.Fatal(err)
		}
		return s.Data["n"].(string)
	}
	steps := []struct {
		name    string
		run     func(d Deps) error
		wantOut string
		wantNow string
	}{
		{"delete soft-deletes the current version", func(d Deps) error {
			return runKVDelete(ctx, &KVDeleteOptions{Deps: d, Path: "app/cfg"})
		}, "Success! Data deleted (if it existed) at: app/cfg", "(deleted)"},
		{"undelete restores it", func(d Deps) error {
			return runKVVersions(ctx, &KVVersionsOptions{Deps: d, Action: kvUndelete, Path: "app/cfg", Versions: []int{3}})
		}, "Success! Version 3 restored at: app/cfg", "three"},
		{"delete -versions deletes older versions only", func(d Deps) error {
			return runKVDelete(ctx, &KVDeleteOptions{Deps: d, Path: "app/cfg", Versions: []int{1, 2}})
		}, "Success! Versions 1,2 deleted at: app/cfg", "three"},
		{"destroy erases a version", func(d Deps) error {
			return runKVVersions(ctx, &KVVersionsOptions{Deps: d, Action: kvDestroy, Path: "app/cfg", Versions: []int{1}})
		}, "Success! Version 1 destroyed at: app/cfg", "three"},
		{"rollback makes an earlier version current again", func(d Deps) error {
			if err := runKVVersions(ctx, &KVVersionsOptions{Deps: d, Action: kvUndelete, Path: "app/cfg", Versions: []int{2}}); err != nil {
				return err
			}
			return runKVRollback(ctx, &KVRollbackOptions{Deps: d, Path: "app/cfg", Version: 2})
		}, "version            4", "two"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			c := newConsole("")
			if err := st.run(c.deps(t, srv, srv.RootToken, FormatTable)); err != nil {
				t.Fatal(err)
			}
			mustContain(t, "stdout", c.out.String(), st.wantOut)
			if got := current(t); got != st.wantNow {
				t.Fatalf("current value %q, want %q", got, st.wantNow)
			}
		})
	}
	t.Run("undelete without versions is refused", func(t *testing.T) {
		c := newConsole("")
		err := runKVVersions(ctx, &KVVersionsOptions{Deps: c.deps(t, srv, srv.RootToken, FormatTable), Action: kvUndelete, Path: "app/cfg"})
		if err == nil || !strings.Contains(err.Error(), "-versions") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("json output of an action without a result is empty", func(t *testing.T) {
		c := newConsole("")
		if err := runKVDelete(ctx, &KVDeleteOptions{Deps: c.deps(t, srv, srv.RootToken, FormatJSON), Path: "app/cfg", Versions: []int{4}}); err != nil {
			t.Fatal(err)
		}
		if c.out.Len() != 0 {
			t.Fatalf("stdout %q", c.out)
		}
	})
}

func TestKVListAndMetadata(t *testing.T) {
	srv := unsealedServer(t)
	ctx := context.Background()
	for _, p := range []string{"app/one", "app/two", "app/sub/three"} {
		if _, err := srv.Root(t).KV().Put(ctx, p, map[string]any{"k": "v"}, client.KVPutOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("list shows the keys under a prefix", func(t *testing.T) {
		c := newConsole("")
		if err := runKVList(ctx, &KVListOptions{Deps: c.deps(t, srv, srv.RootToken, FormatTable), Prefix: "app"}); err != nil {
			t.Fatal(err)
		}
		if want := "Keys\n----\none\nsub/\ntwo\n"; c.out.String() != want {
			t.Fatalf("list output %q, want %q", c.out, want)
		}
	})
	t.Run("list in json is an array of names", func(t *testing.T) {
		c := newConsole("")
		if err := runKVList(ctx, &KVListOptions{Deps: c.deps(t, srv, srv.RootToken, FormatJSON), Prefix: "app/sub/"}); err != nil {
			t.Fatal(err)
		}
		var keys []string
		if err := json.Unmarshal(c.out.Bytes(), &keys); err != nil || !slices.Equal(keys, []string{"three"}) {
			t.Fatalf("json %s: %v", c.out, err)
		}
	})
	t.Run("an empty prefix is reported as nothing found", func(t *testing.T) {
		c := newConsole("")
		err := runKVList(ctx, &KVListOptions{Deps: c.deps(t, srv, srv.RootToken, FormatTable), Prefix: "none"})
		if err == nil || !strings.Contains(err.Error(), "no value found at none/") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("metadata put, get and delete", func(t *testing.T) {
		c := newConsole("")
		d := c.deps(t, srv, srv.RootToken, FormatTable)
		max, yes := 4, true
		in := client.KVMetadataInput{MaxVersions: &max, CASRequired: &yes, CustomMetadata: map[string]string{"owner": "payments"}}
		if err := runKVMetadataPut(ctx, &KVMetadataPutOptions{Deps: d, Path: "app/one", Input: in}); err != nil {
			t.Fatal(err)
		}
		mustContain(t, "put output", c.out.String(), "Success! Metadata written to: app/one")
		c.out.Reset()
		if err := runKVMetadataGet(ctx, &KVMetadataGetOptions{Deps: d, Path: "app/one"}); err != nil {
			t.Fatal(err)
		}
		out := c.out.String()
		mustContain(t, "get output", out, "====== Metadata ======", "====== Version 1 ======")
		if rowValue(t, out, "max_versions") != "4" || rowValue(t, out, "cas_required") != "true" ||
			rowValue(t, out, "custom_metadata") != `{"owner":"payments"}` {
			t.Fatalf("metadata output:\n%s", out)
		}
		c.out.Reset()
		if err := runKVMetadataDelete(ctx, &KVMetadataDeleteOptions{Deps: d, Path: "app/one"}); err != nil {
			t.Fatal(err)
		}
		mustContain(t, "delete output", c.out.String(), "Success! All versions and metadata deleted at: app/one")
		err := runKVMetadataGet(ctx, &KVMetadataGetOptions{Deps: d, Path: "app/one"})
		if err == nil || !strings.Contains(err.Error(), "no value found at app/one") {
			t.Fatalf("metadata after delete: err = %v", err)
		}
	})
	t.Run("metadata flags are parsed from the command line", func(t *testing.T) {
		code, out, errOut := cli(t, srv.URL, srv.RootToken, "", "kv", "metadata", "put", "-max-versions=2",
			"-custom-metadata=a=1", "-custom-metadata=b=x=y", "app/two")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		mustContain(t, "stdout", out, "Success!")
		m, err := srv.Root(t).KV().Metadata(ctx, "app/two")
		if err != nil || m.MaxVersions != 2 || m.CASRequired || m.CustomMetadata["a"] != "1" || m.CustomMetadata["b"] != "x=y" {
			t.Fatalf("metadata = %+v, %v", m, err)
		}
	})
}

func TestMalformedPairsAreNamedByPositionNeverByText(t *testing.T) {
	srv := unsealedServer(t)
	const secret = "hunter2"
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"a kv put value typed without its key", []string{"kv", "put", "prod/db", "user=app", secret}, "argument 3 is not KEY=VALUE"},
		{"a kv put pair without a key", []string{"kv", "put", "prod/db", "=" + secret}, "argument 2 is not KEY=VALUE"},
		{"a -custom-metadata value without =", []string{"kv", "metadata", "put", "-custom-metadata=a=1", "-custom-metadata=" + secret, "prod/db"},
			"-custom-metadata value 2 is not KEY=VALUE"},
		{"a token -metadata value without =", []string{"token", "create", "-metadata=" + secret}, "-metadata value 1 is not KEY=VALUE"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused without echoing it", func(t *testing.T) {
			code, out, errOut := cli(t, srv.URL, srv.RootToken, "", tt.args...)
			if code != 1 {
				t.Fatalf("exit %d: %s %s", code, out, errOut)
			}
			mustContain(t, "stderr", errOut, tt.wantErr)
			if strings.Contains(out+errOut, secret) {
				t.Fatalf("the argument was echoed:\n%s%s", out, errOut)
			}
		})
	}
}
