package command

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/secrethub/secrethub/server"
	"github.com/secrethub/secrethub/server/secrets"
	"github.com/secrethub/secrethub/storage"
)

// setting is one configuration key. Its name is the environment variable
// (the runbook's names verbatim); a config file uses the same names, in any
// letter case.
type setting struct {
	env  string
	def  string
	help string
	// later names the feature that will use a setting accepted today but
	// not acted on yet; the server warns when such a setting is given.
	later string
}

// settings is every key `server` and `migrate` accept.
var settings = []setting{
	{env: "DATABASE_URL", help: "PostgreSQL URL (postgres://…); when empty, SQLite under SECRETHUB_DATA_DIR"},
	{env: "DB_POOL_SIZE", def: strconv.Itoa(storage.DefaultPoolSize), help: "maximum open database connections"},
	{env: "PORT", def: "4000", help: "port to listen on when SECRETHUB_LISTEN_ADDR is not set"},
	{env: "SECRETHUB_LISTEN_ADDR", help: "listen address (default 0.0.0.0:$PORT)"},
	{env: "SECRETHUB_DATA_DIR", def: "./data", help: "directory of the embedded SQLite database"},
	{env: "SECRETHUB_TLS_CERT_FILE", help: "PEM certificate (chain) to serve HTTPS with, TLS 1.2 or later; needs SECRETHUB_TLS_KEY_FILE"},
	{env: "SECRETHUB_TLS_KEY_FILE", help: "PEM private key of SECRETHUB_TLS_CERT_FILE; without both, plain HTTP"},
	{env: "SECRETHUB_TRUSTED_PROXIES", help: "CIDRs whose X-Forwarded-For is believed, comma separated"},
	{env: "SECRETHUB_NODE_NAME", help: "this node's name in health answers and logs (default the host name)"},
	{env: "SECRETHUB_CLUSTER_NAME", help: "cluster name reported by sys/health (default secrethub)"},
	{env: "SECRETHUB_LOG_LEVEL", def: "info", help: "debug, info, warn or error"},
	{env: "SECRETHUB_LOG_FORMAT", def: "text", help: "text or json"},
	{env: "SECRETHUB_DB_CONNECT_TIMEOUT", def: "30s", help: "how long to keep retrying an unreachable PostgreSQL at start"},
	{env: "SECRETHUB_AUDIT_FILE", help: "also append every audit event as a JSON line to this file (created 0600; refused if group or others may read or write it), or - for standard output"},
	{env: "SECRETHUB_KV_MAX_VERSIONS", def: strconv.Itoa(secrets.DefaultMaxVersions),
		help: fmt.Sprintf("versions a static secret keeps unless its metadata sets max_versions, 1 to %d", secrets.MaxVersionsLimit)},
	{env: "PHX_HOST", help: "public host name", later: "public URLs (PKI, web UI)"},
	{env: "SECRET_KEY_BASE", help: "secret for signing web sessions", later: "the web UI"},
	{env: "ADMIN_USERNAME", help: "user name of the admin login (POST /v1/auth/admin/login); set with ADMIN_PASSWORD_HASH, or neither"},
	{env: "ADMIN_PASSWORD_HASH", help: "bcrypt hash ($2a$, $2b$ or $2y$) of the admin password, from 'secrethub operator hash-password'"},
	{env: "SECRETHUB_ADMIN_TOKEN_TTL", def: "30m", help: "lifetime of the token an admin login issues"},
	{env: "AUTO_UNSEAL_ENABLED", help: "unseal with AWS KMS at start (true/false)", later: "auto-unseal"},
	{env: "AWS_KMS_KEY_ID", help: "KMS key wrapping the root key", later: "auto-unseal"},
	{env: "PROMETHEUS_ENABLED", def: "true", help: "serve Prometheus metrics at /metrics, without a token (true/false)"},
}

// settingFlags maps each flag that overrides a setting to its key.
var settingFlags = map[string]string{
	"database-url":    "DATABASE_URL",
	"data-dir":        "SECRETHUB_DATA_DIR",
	"listen-addr":     "SECRETHUB_LISTEN_ADDR",
	"log-level":       "SECRETHUB_LOG_LEVEL",
	"node-name":       "SECRETHUB_NODE_NAME",
	"kv-max-versions": "SECRETHUB_KV_MAX_VERSIONS",
	"tls-cert-file":   "SECRETHUB_TLS_CERT_FILE",
	"tls-key-file":    "SECRETHUB_TLS_KEY_FILE",
	"audit-file":      "SECRETHUB_AUDIT_FILE",
}

// settingsHelp documents every key for a command's long help.
func settingsHelp() string {
	var b strings.Builder
	b.WriteString("Configuration: flags > environment > --config FILE (YAML or TOML, the same\nkey names in any case) > defaults.\n\n")
	for _, s := range settings {
		line := s.help
		if s.def != "" && !strings.Contains(line, "default") {
			line += " (default " + s.def + ")"
		}
		if s.later != "" {
			line += "; accepted now, used by " + s.later + " in a later release"
		}
		fmt.Fprintf(&b, "  %-29s %s\n", s.env, line)
	}
	return b.String()
}

// addStorageFlags adds the flags that say which database to use; `server`
// and `migrate` both have them.
func addStorageFlags(fs *pflag.FlagSet) {
	fs.String("config", "", "configuration file (YAML or TOML)")
	fs.String("database-url", "", "PostgreSQL URL (env DATABASE_URL)")
	fs.String("data-dir", "", "SQLite data directory (env SECRETHUB_DATA_DIR)")
}

// Settings is the resolved configuration of `server` and `migrate`.
type Settings struct {
	DatabaseURL       string
	DBPoolSize        int
	ListenAddr        string
	DataDir           string
	TLSCertFile       string
	TLSKeyFile        string
	TrustedProxies    []netip.Prefix
	NodeName          string
	ClusterName       string
	LogLevel          slog.Level
	LogFormat         string
	DBConnectTimeout  time.Duration
	KVMaxVersions     int
	AuditFile         string
	PublicHost        string
	SecretKeyBase     string
	AdminUsername     string
	AdminPasswordHash string
	AdminTokenTTL     time.Duration
	AutoUnseal        bool
	KMSKeyID          string
	Prometheus        bool

	// listenAddrSet is true when the listen address was given rather than
	// derived from PORT.
	listenAddrSet bool
	// port is PORT, for deriving a listen address.
	port int
	// given lists the keys that were set (by flag, environment or file).
	given map[string]bool
}

// Storage is the database part of the configuration.
func (s Settings) Storage() storage.Config {
	return storage.Config{DatabaseURL: s.DatabaseURL, PoolSize: s.DBPoolSize, DataDir: s.DataDir, ConnectTimeout: s.DBConnectTimeout}
}

// laterSettingsGiven names the given settings that this release accepts
// but does not act on yet.
func (s Settings) laterSettingsGiven() []setting {
	var out []setting
	for _, st := range settings {
		if st.later != "" && s.given[st.env] {
			out = append(out, st)
		}
	}
	return out
}

// loadSettings resolves the configuration from fs's flags, the process
// environment and the --config file.
func loadSettings(fs *pflag.FlagSet) (Settings, error) {
	v := viper.New()
	known := map[string]bool{}
	for _, s := range settings {
		key := strings.ToLower(s.env)
		known[key] = true
		if err := v.BindEnv(key, s.env); err != nil {
			return Settings{}, err
		}
		if s.def != "" {
			v.SetDefault(key, s.def)
		}
	}
	for name, env := range settingFlags {
		if f := fs.Lookup(name); f != nil {
			if err := v.BindPFlag(strings.ToLower(env), f); err != nil {
				return Settings{}, err
			}
		}
	}
	if f := fs.Lookup("config"); f != nil && f.Value.String() != "" {
		if err := readConfigFile(v, f.Value.String(), known); err != nil {
			return Settings{}, err
		}
	}
	return parseSettings(v)
}

func readConfigFile(v *viper.Viper, path string, known map[string]bool) error {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml", ".toml":
	default:
		return fmt.Errorf("config file %s: the name must end in .yaml, .yml or .toml", path)
	}
	v.SetConfigFile(path)
	if err := v.ReadInConfig(); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	for _, k := range v.AllKeys() {
		if !known[k] {
			return fmt.Errorf("config file %s: unknown key %q (keys are the environment variable names, such as DATABASE_URL)", path, k)
		}
	}
	return nil
}

// settingReader reads keys from v and remembers the first parse error.
type settingReader struct {
	v   *viper.Viper
	err error
}

// str returns a key's value as a string; lists (from YAML or TOML) are
// joined with commas.
func (r *settingReader) str(env string) string {
	switch x := r.v.Get(strings.ToLower(env)).(type) {
	case nil:
		return ""
	case []any:
		parts := make([]string, len(x))
		for i, p := range x {
			parts[i] = fmt.Sprint(p)
		}
		return strings.Join(parts, ",")
	default:
		return strings.TrimSpace(fmt.Sprint(x))
	}
}

func (r *settingReader) fail(env, want, got string) {
	if r.err == nil {
		r.err = fmt.Errorf("%s must be %s, got %q", env, want, got)
	}
}

func (r *settingReader) positive(env string) int {
	raw := r.str(env)
	n, err := strconv.Atoi(raw)
	if err != nil || n <= 0 {
		r.fail(env, "a positive whole number", raw)
	}
	return n
}

// between reads a whole number from lo to hi.
func (r *settingReader) between(env string, lo, hi int) int {
	raw := r.str(env)
	n, err := strconv.Atoi(raw)
	if err != nil || n < lo || n > hi {
		r.fail(env, fmt.Sprintf("a whole number from %d to %d", lo, hi), raw)
	}
	return n
}

func (r *settingReader) boolean(env string) bool {
	raw := r.str(env)
	if raw == "" {
		return false
	}
	b, err := strconv.ParseBool(raw)
	if err != nil {
		r.fail(env, "true or false", raw)
	}
	return b
}

func parseSettings(v *viper.Viper) (Settings, error) {
	r := &settingReader{v: v}
	given := map[string]bool{}
	for _, st := range settings {
		given[st.env] = r.str(st.env) != ""
	}
	s := Settings{
		DatabaseURL:       r.str("DATABASE_URL"),
		DBPoolSize:        r.positive("DB_POOL_SIZE"),
		port:              r.positive("PORT"),
		ListenAddr:        r.str("SECRETHUB_LISTEN_ADDR"),
		DataDir:           r.str("SECRETHUB_DATA_DIR"),
		TLSCertFile:       r.str("SECRETHUB_TLS_CERT_FILE"),
		TLSKeyFile:        r.str("SECRETHUB_TLS_KEY_FILE"),
		KVMaxVersions:     r.between("SECRETHUB_KV_MAX_VERSIONS", 1, secrets.MaxVersionsLimit),
		AuditFile:         r.str("SECRETHUB_AUDIT_FILE"),
		NodeName:          r.str("SECRETHUB_NODE_NAME"),
		ClusterName:       r.str("SECRETHUB_CLUSTER_NAME"),
		LogFormat:         strings.ToLower(r.str("SECRETHUB_LOG_FORMAT")),
		PublicHost:        r.str("PHX_HOST"),
		SecretKeyBase:     r.str("SECRET_KEY_BASE"),
		AdminUsername:     r.str("ADMIN_USERNAME"),
		AdminPasswordHash: r.str("ADMIN_PASSWORD_HASH"),
		AutoUnseal:        r.boolean("AUTO_UNSEAL_ENABLED"),
		KMSKeyID:          r.str("AWS_KMS_KEY_ID"),
		Prometheus:        r.boolean("PROMETHEUS_ENABLED"),
		given:             given,
	}
	if r.err != nil {
		return Settings{}, r.err
	}
	s.listenAddrSet = s.ListenAddr != ""
	if !s.listenAddrSet {
		s.ListenAddr = "0.0.0.0:" + strconv.Itoa(s.port)
	}
	if s.NodeName == "" {
		s.NodeName, _ = os.Hostname()
	}
	var err error
	if s.TrustedProxies, err = server.ParseCIDRList(r.str("SECRETHUB_TRUSTED_PROXIES")); err != nil {
		return Settings{}, fmt.Errorf("SECRETHUB_TRUSTED_PROXIES must be a list of CIDRs: %w", err)
	}
	switch level := strings.ToLower(r.str("SECRETHUB_LOG_LEVEL")); level {
	case "debug", "info", "warn", "error":
		_ = s.LogLevel.UnmarshalText([]byte(level))
	default:
		return Settings{}, fmt.Errorf("SECRETHUB_LOG_LEVEL must be debug, info, warn or error, got %q", level)
	}
	if s.LogFormat != "text" && s.LogFormat != "json" {
		return Settings{}, fmt.Errorf("SECRETHUB_LOG_FORMAT must be text or json, got %q", s.LogFormat)
	}
	adminTTL := r.str("SECRETHUB_ADMIN_TOKEN_TTL")
	if s.AdminTokenTTL, err = server.ParseDuration(adminTTL); err != nil || s.AdminTokenTTL <= 0 {
		return Settings{}, fmt.Errorf("SECRETHUB_ADMIN_TOKEN_TTL must be a positive duration such as 30m, got %q", adminTTL)
	}
	timeout := r.str("SECRETHUB_DB_CONNECT_TIMEOUT")
	if s.DBConnectTimeout, err = server.ParseDuration(timeout); err != nil || s.DBConnectTimeout <= 0 {
		return Settings{}, fmt.Errorf("SECRETHUB_DB_CONNECT_TIMEOUT must be a positive duration such as 30s, got %q", timeout)
	}
	return s, nil
}
