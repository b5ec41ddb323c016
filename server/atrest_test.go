package server_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/server"
	"github.com/secrethub/secrethub/storage"
)

// secretForms are the encodings a leaked value could take in storage or
// logs: raw, hex (PostgreSQL renders bytea as hex) and base64.
func secretForms(v string) []string {
	return []string{v, hex.EncodeToString([]byte(v)), base64.StdEncoding.EncodeToString([]byte(v))}
}

// storedBytes is everything the database holds, as bytes: the SQLite file
// with its WAL and shared-memory files, or every row of every table of the
// PostgreSQL database rendered as text.
func storedBytes(t *testing.T, cfg storage.Config) []byte {
	t.Helper()
	if cfg.DatabaseURL == "" {
		var all []byte
		for _, suffix := range []string{"", "-wal", "-shm"} {
			b, err := os.ReadFile(filepath.Join(cfg.DataDir, storage.SQLiteFile+suffix))
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
		return all
	}
	db, err := sql.Open("postgres", cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	rows, err := db.QueryContext(ctx, `SELECT table_schema, table_name FROM information_schema.tables
		WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var schema, name string
		if err := rows.Scan(&schema, &name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, `"`+schema+`"."`+name+`"`)
	}
	rows.Close()
	var all bytes.Buffer
	for _, tbl := range tables {
		rows, err := db.QueryContext(ctx, `SELECT t::text FROM `+tbl+` t`)
		if err != nil {
			t.Fatalf("dump %s: %v", tbl, err)
		}
		for rows.Next() {
			var row string
			if err := rows.Scan(&row); err != nil {
				t.Fatal(err)
			}
			all.WriteString(tbl + " " + row + "\n")
		}
		rows.Close()
	}
	return all.Bytes()
}

// Secret values, tokens and unseal keys never reach the database or the
// logs in the clear; only hashes, ciphertexts and accessors do.
func TestSecretsNeverStoredOrLoggedInTheClear(t *testing.T) {
	eachStorage(t, func(t *testing.T, cfg storage.Config, open func() *storage.DB) {
		n := startNode(t, open(), server.Config{AdminUsername: testAdminUser, AdminPasswordHash: testAdminHash})
		keys, keysB64, root := n.initKeys(3, 2)
		for _, k := range keys[:2] {
			n.unseal(k)
		}
		values := []string{"Plaintext-Canary-7f3a9c", "correct horse battery staple 42", "-----BEGIN PRIVATE KEY-----canary"}
		mustStatus(t, n.do("POST", "/v1/secrets/static/app/db", root,
			`{"data":{"password":"`+values[0]+`","phrase":"`+values[1]+`"}}`), 200)
		mustStatus(t, n.do("POST", "/v1/secrets/static/app/db", root, `{"data":{"pem":"`+values[2]+`"}}`), 200)
		mustStatus(t, n.do("POST", "/v1/secrets/static/app/tls", root, `{"data":{"pem":"`+values[2]+`"}}`), 200)
		mustStatus(t, n.do("GET", "/v1/secrets/static/app/db?version=1", root, ""), 200)
		mustStatus(t, n.do("POST", "/v1/secrets/rollback/app/db", root, `{"version":1}`), 200)

		child, childAccessor := n.createToken(root, `{"policies":["default"],"ttl":"1h"}`)
		grandchild, _ := n.createToken(root, `{"policies":["default"],"num_uses":3}`)
		mustStatus(t, n.do("GET", "/v1/auth/token/lookup-self", child, ""), 200)
		mustStatus(t, n.do("POST", "/v1/auth/token/lookup", root, `{"token":"`+grandchild+`"}`), 200)
		mustStatus(t, n.do("POST", "/v1/auth/token/renew-self", child, ""), 200)
		// AppRole and admin logins: secret IDs, passwords and the tokens
		// they hand out.
		mustStatus(t, n.do("POST", "/v1/auth/approle/role/web", root, `{"policies":["default"]}`), 204)
		roleID := mustStatus(t, n.do("GET", "/v1/auth/approle/role/web/role-id", root, ""), 200).Data(t)["role_id"].(string)
		secretID := mustStatus(t, n.do("POST", "/v1/auth/approle/role/web/secret-id", root, `{"metadata":{"host":"web-1"}}`), 200).Data(t)["secret_id"].(string)
		approleToken := mustStatus(t, n.do("POST", "/v1/auth/approle/login", "", `{"role_id":"`+roleID+`","secret_id":"`+secretID+`"}`), 200).Auth(t)["client_token"].(string)
		n.do("POST", "/v1/auth/approle/login", "", `{"role_id":"`+roleID+`","secret_id":"`+secretID+`x"}`)
		adminToken := mustStatus(t, n.do("POST", "/v1/auth/admin/login", "", `{"username":"admin","password":"`+testAdminPassword+`"}`), 200).Auth(t)["client_token"].(string)
		n.do("POST", "/v1/auth/admin/login", "", `{"username":"admin","password":"`+testAdminPassword+`!"}`)
		// Failures log too; none of them may echo what was sent.
		n.do("GET", "/v1/secrets/static/app/db", "s.Wrong"+values[0], "")
		n.do("POST", "/v1/secrets/static/app/db", root, `{"data":{"password":"`+values[0]+`"},"oops":1}`)
		n.do("POST", "/v1/sys/unseal", "", `{"key":"`+keys[2]+`"}`)
		mustStatus(t, n.do("POST", "/v1/sys/seal", root, ""), 204)
		for _, k := range keysB64[1:] {
			n.unseal(k)
		}

		var secrets []string
		for _, v := range append(values, root, child, grandchild, secretID, approleToken, adminToken, testAdminPassword) {
			secrets = append(secrets, secretForms(v)...)
		}
		for i := range keys {
			raw, _ := hex.DecodeString(keys[i])
			secrets = append(secrets, keys[i], keysB64[i], string(raw))
		}

		stored := storedBytes(t, cfg)
		// The scan must see the data at all: paths and accessors are stored
		// in the clear on purpose.
		for _, visible := range []string{"app/db", "app/tls", childAccessor} {
			if !bytes.Contains(stored, []byte(visible)) {
				t.Fatalf("stored data does not contain %q: the scan is not looking at the database", visible)
			}
		}
		logs := n.logs.String()
		if !strings.Contains(logs, "unsealed") {
			t.Fatalf("logs have no unseal event; is the logger wired? %q", logs)
		}
		for _, s := range secrets {
			if bytes.Contains(stored, []byte(s)) {
				t.Errorf("the database holds %q in the clear", s)
			}
			if strings.Contains(logs, s) {
				t.Errorf("the logs hold %q in the clear", s)
			}
		}
	})
}
