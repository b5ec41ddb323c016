package command

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/secrethub/secrethub/client"
	"github.com/secrethub/secrethub/client/clienttest"
	"github.com/secrethub/secrethub/storage/storagetest"
)

func TestStatusExitCodes(t *testing.T) {
	unsealed := unsealedServer(t)
	sealed := clienttest.Unsealed(t, storagetest.SQLite(t))
	if err := sealed.Root(t).Sys().Seal(context.Background()); err != nil {
		t.Fatal(err)
	}
	uninitialized := clienttest.Start(t, storagetest.SQLite(t))
	gone := httptest.NewServer(nil)
	gone.Close()

	tests := []struct {
		name       string
		addr       string
		wantCode   int
		wantSealed string
	}{
		{"an unsealed server exits 0", unsealed.URL, 0, "false"},
		{"a sealed server exits 2", sealed.URL, 2, "true"},
		{"a server not initialized yet is sealed too, exit 2", uninitialized.URL, 2, "true"},
		{"an unreachable server is an error, exit 1", gone.URL, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := cli(t, tt.addr, "", "", "status")
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tt.wantCode, out, errOut)
			}
			if tt.wantSealed == "" {
				mustContain(t, "stderr", errOut, "Error: reading the seal status", tt.addr)
				return
			}
			if errOut != "" {
				t.Fatalf("stderr %q", errOut)
			}
			if rowValue(t, out, "Sealed") != tt.wantSealed || rowValue(t, out, "Storage Type") != "sqlite" {
				t.Fatalf("status output:\n%s", out)
			}
		})
	}

	t.Run("the table has Vault's rows", func(t *testing.T) {
		c := newConsole("")
		if err := runStatus(context.Background(), &StatusOptions{Deps: c.deps(t, unsealed, "", FormatTable)}); err != nil {
			t.Fatal(err)
		}
		for _, row := range []string{"Seal Type", "Initialized", "Sealed", "Total Shares", "Threshold",
			"Unseal Progress", "Unseal Nonce", "Version", "Storage Type"} {
			rowValue(t, c.out.String(), row)
		}
		if rowValue(t, c.out.String(), "Unseal Progress") != "0/1" || rowValue(t, c.out.String(), "Unseal Nonce") != "n/a" {
			t.Fatalf("status output:\n%s", c.out)
		}
	})
	t.Run("json output of a sealed server still exits 2", func(t *testing.T) {
		code, out, _ := cli(t, sealed.URL, "", "", "status", "-format=json")
		var st client.SealStatus
		if err := json.Unmarshal([]byte(out), &st); code != 2 || err != nil || !st.Sealed {
			t.Fatalf("exit %d, %v: %s", code, err, out)
		}
	})
}
