package command

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// cleanEnv unsets every setting's environment variable for the test, so
// the machine's own environment cannot leak into it.
func cleanEnv(t *testing.T) {
	t.Helper()
	for _, s := range settings {
		t.Setenv(s.env, "")
	}
}

// resolveServerSettings runs `secrethub server ARGS` up to the point where
// the settings are resolved, and returns them.
func resolveServerSettings(t *testing.T, env map[string]string, args ...string) (Settings, error) {
	t.Helper()
	cleanEnv(t)
	for k, v := range env {
		t.Setenv(k, v)
	}
	var got Settings
	cmd := NewCmdServer(&Factory{IO: newConsole("").io}, func(_ context.Context, o *ServerOptions) error {
		got = o.Settings
		return nil
	})
	cmd.SetArgs(normalizeArgs(args))
	cmd.SetOut(&strings.Builder{})
	cmd.SetErr(&strings.Builder{})
	err := cmd.Execute()
	return got, err
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestServerSettingsDefaults(t *testing.T) {
	s, err := resolveServerSettings(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if s.DatabaseURL != "" || s.DBPoolSize != 20 || s.ListenAddr != "0.0.0.0:4000" || s.DataDir != "./data" ||
		s.LogLevel != slog.LevelInfo || s.LogFormat != "text" || s.DBConnectTimeout != 30*time.Second || s.AdminTokenTTL != 30*time.Minute ||
		s.NodeName != host || s.ClusterName != "" || len(s.TrustedProxies) != 0 || s.listenAddrSet || s.KVMaxVersions != 10 || !s.Prometheus {
		t.Fatalf("defaults = %+v", s)
	}
	if st := s.Storage(); st.DataDir != "./data" || st.PoolSize != 20 || st.ConnectTimeout != 30*time.Second {
		t.Fatalf("storage config = %+v", st)
	}
}

func TestServerSettingsFromTheRunbookEnvironment(t *testing.T) {
	// The runbook's secrethub.env, verbatim (Phase 2.3).
	env := map[string]string{
		"SECRET_KEY_BASE":     "generated-secret",
		"PHX_HOST":            "secrethub.company.com",
		"PORT":                "4000",
		"DATABASE_URL":        "postgresql://secrethub:PASSWORD@db.internal:5432/secrethub_prod",
		"DB_POOL_SIZE":        "40",
		"ADMIN_USERNAME":      "admin",
		"ADMIN_PASSWORD_HASH": "$2b$12$abcdefghijklmnopqrstuv",
		"AUTO_UNSEAL_ENABLED": "true",
		"AWS_KMS_KEY_ID":      "arn:aws:kms:us-east-1:123456789:key/abc-123",
		"PROMETHEUS_ENABLED":  "true",
	}
	s, err := resolveServerSettings(t, env)
	if err != nil {
		t.Fatal(err)
	}
	if s.SecretKeyBase != "generated-secret" || s.PublicHost != "secrethub.company.com" || s.ListenAddr != "0.0.0.0:4000" ||
		s.DatabaseURL != env["DATABASE_URL"] || s.DBPoolSize != 40 || s.AdminUsername != "admin" ||
		s.AdminPasswordHash != env["ADMIN_PASSWORD_HASH"] || !s.AutoUnseal || s.KMSKeyID != env["AWS_KMS_KEY_ID"] || !s.Prometheus {
		t.Fatalf("settings = %+v", s)
	}
	var later []string
	for _, st := range s.laterSettingsGiven() {
		later = append(later, st.env)
	}
	// The admin login and metrics settings are used now, so they are not among them.
	want := []string{"PHX_HOST", "SECRET_KEY_BASE", "AUTO_UNSEAL_ENABLED", "AWS_KMS_KEY_ID"}
	if !slices.Equal(later, want) {
		t.Fatalf("settings accepted for later = %v, want %v", later, want)
	}
}

func TestServerSettingsPrecedence(t *testing.T) {
	files := map[string]string{
		"server.yaml": "SECRETHUB_DATA_DIR: /from/file\nsecrethub_node_name: file-node\nDb_Pool_Size: 7\nsecrethub_kv_max_versions: 3\nSECRETHUB_TRUSTED_PROXIES:\n  - 10.0.0.0/8\n  - 192.168.1.1\n",
		"server.toml": "SECRETHUB_DATA_DIR = \"/from/file\"\nsecrethub_node_name = \"file-node\"\nDb_Pool_Size = 7\nsecrethub_kv_max_versions = 3\nSECRETHUB_TRUSTED_PROXIES = [\"10.0.0.0/8\", \"192.168.1.1\"]\n",
	}
	for name, content := range files {
		t.Run(filepath.Ext(name)[1:], func(t *testing.T) {
			cfg := writeFile(t, name, content)
			tests := []struct {
				name     string
				env      map[string]string
				args     []string
				wantDir  string
				wantNode string
			}{
				{"the file applies when nothing else is given", nil, nil, "/from/file", "file-node"},
				{"the environment beats the file", map[string]string{"SECRETHUB_DATA_DIR": "/from/env"}, nil, "/from/env", "file-node"},
				{"a flag beats the environment and the file",
					map[string]string{"SECRETHUB_DATA_DIR": "/from/env", "SECRETHUB_NODE_NAME": "env-node"},
					[]string{"--data-dir=/from/flag"}, "/from/flag", "env-node"},
				{"a Vault-style single-dash flag beats them too", nil, []string{"-node-name=flag-node"}, "/from/file", "flag-node"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					s, err := resolveServerSettings(t, tt.env, append([]string{"--config", cfg}, tt.args...)...)
					if err != nil {
						t.Fatal(err)
					}
					if s.DataDir != tt.wantDir || s.NodeName != tt.wantNode {
						t.Fatalf("data dir %q node %q, want %q %q", s.DataDir, s.NodeName, tt.wantDir, tt.wantNode)
					}
					// Keys are matched whatever their case, and lists are CIDR lists.
					want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.1/32")}
					if s.DBPoolSize != 7 || s.KVMaxVersions != 3 || !slices.Equal(s.TrustedProxies, want) {
						t.Fatalf("pool %d kv max versions %d proxies %v", s.DBPoolSize, s.KVMaxVersions, s.TrustedProxies)
					}
				})
			}
		})
	}
}

func TestServerSettingsDerivedValues(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		check func(t *testing.T, s Settings)
	}{
		{"PORT moves the default listen address", map[string]string{"PORT": "4100"}, nil, func(t *testing.T, s Settings) {
			if s.ListenAddr != "0.0.0.0:4100" || s.listenAddrSet {
				t.Fatalf("listen %q set %v", s.ListenAddr, s.listenAddrSet)
			}
		}},
		{"SECRETHUB_LISTEN_ADDR wins over PORT", map[string]string{"PORT": "4100", "SECRETHUB_LISTEN_ADDR": "10.1.2.3:9000"}, nil,
			func(t *testing.T, s Settings) {
				if s.ListenAddr != "10.1.2.3:9000" || !s.listenAddrSet {
					t.Fatalf("listen %q set %v", s.ListenAddr, s.listenAddrSet)
				}
			}},
		{"log level, format and connect timeout are read", map[string]string{
			"SECRETHUB_LOG_LEVEL": "DEBUG", "SECRETHUB_LOG_FORMAT": "json", "SECRETHUB_DB_CONNECT_TIMEOUT": "90"},
			[]string{"--log-level=warn"}, func(t *testing.T, s Settings) {
				if s.LogLevel != slog.LevelWarn || s.LogFormat != "json" || s.DBConnectTimeout != 90*time.Second {
					t.Fatalf("level %v format %q timeout %v", s.LogLevel, s.LogFormat, s.DBConnectTimeout)
				}
			}},
		{"the versions a secret keeps come from the environment", map[string]string{"SECRETHUB_KV_MAX_VERSIONS": "25"}, nil,
			func(t *testing.T, s Settings) {
				if s.KVMaxVersions != 25 {
					t.Fatalf("kv max versions %d", s.KVMaxVersions)
				}
			}},
		{"and --kv-max-versions beats the environment", map[string]string{"SECRETHUB_KV_MAX_VERSIONS": "25"}, []string{"-kv-max-versions=1000"},
			func(t *testing.T, s Settings) {
				if s.KVMaxVersions != 1000 {
					t.Fatalf("kv max versions %d", s.KVMaxVersions)
				}
			}},
		{"the admin token TTL is read as a duration", map[string]string{"SECRETHUB_ADMIN_TOKEN_TTL": "2h"}, nil,
			func(t *testing.T, s Settings) {
				if s.AdminTokenTTL != 2*time.Hour {
					t.Fatalf("admin token TTL %v", s.AdminTokenTTL)
				}
			}},
		{"the database URL flag selects PostgreSQL", nil, []string{"--database-url=postgres://h/db"}, func(t *testing.T, s Settings) {
			if s.Storage().DatabaseURL != "postgres://h/db" {
				t.Fatalf("storage = %+v", s.Storage())
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := resolveServerSettings(t, tt.env, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s)
		})
	}
}

func TestServerSettingsErrors(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		file    [2]string // name, content
		wantErr string
	}{
		{"a pool size that is not a number", map[string]string{"DB_POOL_SIZE": "lots"}, [2]string{}, "DB_POOL_SIZE must be a positive whole number"},
		{"a zero port", map[string]string{"PORT": "0"}, [2]string{}, "PORT must be a positive whole number"},
		{"an unknown log level", map[string]string{"SECRETHUB_LOG_LEVEL": "loud"}, [2]string{}, "SECRETHUB_LOG_LEVEL must be"},
		{"an unknown log format", map[string]string{"SECRETHUB_LOG_FORMAT": "xml"}, [2]string{}, "SECRETHUB_LOG_FORMAT must be"},
		{"a bad CIDR", map[string]string{"SECRETHUB_TRUSTED_PROXIES": "10.0.0.0/99"}, [2]string{}, "SECRETHUB_TRUSTED_PROXIES"},
		{"a bad boolean", map[string]string{"AUTO_UNSEAL_ENABLED": "maybe"}, [2]string{}, "AUTO_UNSEAL_ENABLED must be true or false"},
		{"a bad timeout", map[string]string{"SECRETHUB_DB_CONNECT_TIMEOUT": "soon"}, [2]string{}, "SECRETHUB_DB_CONNECT_TIMEOUT"},
		{"an admin token TTL that is not a duration", map[string]string{"SECRETHUB_ADMIN_TOKEN_TTL": "a while"}, [2]string{},
			`SECRETHUB_ADMIN_TOKEN_TTL must be a positive duration such as 30m, got "a while"`},
		{"an admin token TTL of zero", map[string]string{"SECRETHUB_ADMIN_TOKEN_TTL": "0"}, [2]string{},
			"SECRETHUB_ADMIN_TOKEN_TTL must be a positive duration"},
		{"keeping no versions", map[string]string{"SECRETHUB_KV_MAX_VERSIONS": "0"}, [2]string{},
			`SECRETHUB_KV_MAX_VERSIONS must be a whole number from 1 to 1000, got "0"`},
		{"keeping more than 1000 versions", nil, [2]string{"c.yaml", "secrethub_kv_max_versions: 1001\n"},
			`SECRETHUB_KV_MAX_VERSIONS must be a whole number from 1 to 1000, got "1001"`},
		{"a version count that is not a number", map[string]string{"SECRETHUB_KV_MAX_VERSIONS": "ten"}, [2]string{},
			"SECRETHUB_KV_MAX_VERSIONS must be a whole number"},
		{"a misspelt key in the config file", nil, [2]string{"c.yaml", "DATABSE_URL: x\n"}, `unknown key "databse_url"`},
		{"a config file of another type", nil, [2]string{"c.json", "{}"}, "must end in .yaml, .yml or .toml"},
		{"a config file that does not parse", nil, [2]string{"c.toml", "= nope"}, "config file"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			var args []string
			if tt.file[0] != "" {
				args = []string{"--config", writeFile(t, tt.file[0], tt.file[1])}
			}
			_, err := resolveServerSettings(t, tt.env, args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	t.Run("a missing config file is refused", func(t *testing.T) {
		_, err := resolveServerSettings(t, nil, "--config", filepath.Join(t.TempDir(), "absent.yaml"))
		if err == nil || !strings.Contains(err.Error(), "absent.yaml") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestServerSettingsTurnMetricsOffOnlyWhenAsked(t *testing.T) {
	for _, tt := range []struct {
		value string
		want  bool
	}{{"", true}, {"true", true}, {"false", false}, {"0", false}} {
		t.Run("PROMETHEUS_ENABLED="+tt.value, func(t *testing.T) {
			s, err := resolveServerSettings(t, map[string]string{"PROMETHEUS_ENABLED": tt.value})
			if err != nil {
				t.Fatal(err)
			}
			if s.Prometheus != tt.want {
				t.Fatalf("Prometheus = %v, want %v", s.Prometheus, tt.want)
			}
		})
	}
}
