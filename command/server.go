package command

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/secrethub/secrethub/server"
	"github.com/secrethub/secrethub/server/secrets"
	"github.com/secrethub/secrethub/storage"
)

// shutdownGrace bounds how long in-flight requests may finish after
// SIGINT or SIGTERM.
const shutdownGrace = 30 * time.Second

// Connection deadlines of the HTTP server. A client that sends its headers
// slowly, sends its body slowly, or holds an idle keep-alive connection is
// cut off, so a few slow clients cannot use up the server's connections.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 60 * time.Second
	idleTimeout       = 120 * time.Second
)

// auditCloseTimeout bounds how long, after the HTTP server has stopped,
// the audit log may take to store the last outcomes and its final
// checkpoint (it retries while the database does not answer).
const auditCloseTimeout = 15 * time.Second

// errLogged ends a command with exit code 1 after its failure was logged.
var errLogged = &exitError{code: 1}

// ServerOptions configure `secrethub server`.
type ServerOptions struct {
	IO       *IOStreams
	Settings Settings
	// Dev runs a throwaway, unsealed server on temporary SQLite storage.
	Dev bool
	// Listening, when set, is told the bound address once the server
	// accepts connections (tests listen on port 0).
	Listening func(net.Addr)
}

// NewCmdServer builds `secrethub server`.
func NewCmdServer(f *Factory, runF func(context.Context, *ServerOptions) error) *cobra.Command {
	opts := &ServerOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run a SecretHub Core server",
		Long: `Run a SecretHub Core server. It applies pending database migrations, starts
sealed (unseal it with 'secrethub operator unseal'), and stops gracefully on
SIGINT or SIGTERM, giving requests in flight up to 30 seconds.

With SECRETHUB_TLS_CERT_FILE and SECRETHUB_TLS_KEY_FILE (or --tls-cert-file and
--tls-key-file) it serves HTTPS only, TLS 1.2 or later; with neither, plain
HTTP; with only one of them it refuses to start. SIGHUP (systemctl reload)
reads both files again; a pair that does not load is logged and the current
certificate keeps serving. Clients that do not trust the certificate's CA are
given it with --ca-cert or SECRETHUB_CACERT.

Prometheus metrics are served at /metrics without a token unless
PROMETHEUS_ENABLED=false. On the embedded SQLite store the server locks its
data directory; back it up with 'secrethub operator snapshot save'.

With SECRETHUB_AUDIT_FILE (or --audit-file) every audit event is also appended
to that file as a JSON line, for SIEM shippers: the file is created with mode
0600, and the server refuses to start if an existing one may be read or
written by group or others (it is never chmod'ed for you). "-" writes the lines
to standard output. Like the audit tables, the lines never carry a secret in
the clear. On shutdown the last outcomes and a final checkpoint are written
after requests in flight have finished.

With --dev it runs on a temporary SQLite database that is removed on exit,
listens on 127.0.0.1, initializes itself with one key share, unseals, and
prints the unseal key and root token. Never use --dev in production.

` + settingsHelp(),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := loadSettings(cmd.Flags())
			if err != nil {
				return err
			}
			opts.Settings = s
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runServer(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	addStorageFlags(fl)
	fl.String("listen-addr", "", "address to listen on (env SECRETHUB_LISTEN_ADDR, default 0.0.0.0:$PORT)")
	fl.String("log-level", "", "debug, info, warn or error (env SECRETHUB_LOG_LEVEL, default info)")
	fl.String("node-name", "", "this node's name (env SECRETHUB_NODE_NAME, default the host name)")
	fl.String("tls-cert-file", "", "PEM certificate to serve HTTPS with (env SECRETHUB_TLS_CERT_FILE)")
	fl.String("tls-key-file", "", "PEM private key of --tls-cert-file (env SECRETHUB_TLS_KEY_FILE)")
	fl.String("audit-file", "", "also append audit events as JSON lines to this file, or - for stdout (env SECRETHUB_AUDIT_FILE)")
	fl.Int("kv-max-versions", secrets.DefaultMaxVersions, "versions a static secret keeps unless its metadata says (env SECRETHUB_KV_MAX_VERSIONS)")
	fl.BoolVar(&opts.Dev, "dev", false, "run a throwaway dev server on temporary storage, unsealed, root token printed (never in production)")
	return cmd
}

// newLogger is the structured logger of `server` and `migrate`, on stderr.
func newLogger(w io.Writer, s Settings) *slog.Logger {
	ho := &slog.HandlerOptions{Level: s.LogLevel}
	if s.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

func runServer(ctx context.Context, opts *ServerOptions) error {
	// SIGHUP's default action ends the process, and start-up can take long
	// (the database retried for SECRETHUB_DB_CONNECT_TIMEOUT, migrations
	// waiting for another node's lock): it is caught from here on. One
	// that arrives before serving waits in the channel and is applied
	// once the server serves.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	s := opts.Settings
	log := newLogger(opts.IO.ErrOut, s)
	dbCfg := s.Storage()
	if opts.Dev {
		dir, err := os.MkdirTemp("", "secrethub-dev-")
		if err != nil {
			return fmt.Errorf("creating the dev data directory: %w", err)
		}
		defer os.RemoveAll(dir)
		dbCfg = storage.Config{DataDir: dir, PoolSize: s.DBPoolSize}
		if !s.listenAddrSet {
			s.ListenAddr = "127.0.0.1:" + strconv.Itoa(s.port)
		}
	}
	for _, st := range s.laterSettingsGiven() {
		log.Warn("setting accepted but not used by this release", "setting", st.env, "used_by", st.later)
	}
	// The certificate is checked before the database is touched, so a bad
	// one fails the start at once and changes nothing.
	tlsConfig, cert, err := loadServerTLS(s.TLSCertFile, s.TLSKeyFile)
	if err != nil {
		log.Error("cannot serve HTTPS", "error", err.Error())
		return errLogged
	}
	// So are the admin login settings; the error never repeats the hash.
	srvCfg := server.Config{
		NodeName: s.NodeName, ClusterName: s.ClusterName, TrustedProxies: s.TrustedProxies, MaxVersions: s.KVMaxVersions, Logger: log,
		AdminUsername: s.AdminUsername, AdminPasswordHash: s.AdminPasswordHash, AdminTokenTTL: s.AdminTokenTTL,
		MetricsDisabled: !s.Prometheus,
	}
	if err := srvCfg.Validate(); err != nil {
		log.Error("invalid admin login settings", "error", err.Error())
		return errLogged
	}
	// The audit file too: a server that cannot write it does not start.
	sink, closeSink, err := openAuditSink(s.AuditFile, opts.IO.Out)
	if err != nil {
		log.Error("cannot use the audit file", "setting", "SECRETHUB_AUDIT_FILE", "error", err.Error())
		return errLogged
	}
	defer func() {
		if err := closeSink(); err != nil {
			log.Error("closing the audit file", "error", err.Error())
		}
	}()
	srvCfg.AuditSink = sink

	// One server per embedded database: the lock also keeps a snapshot
	// restore away while this server runs.
	if dbCfg.DatabaseURL == "" {
		unlock, err := storage.LockDataDir(dbCfg.DataDir)
		if err != nil {
			log.Error("cannot use the data directory", "error", err.Error())
			return errLogged
		}
		defer unlock()
	}

	db, err := storage.Open(ctx, dbCfg, log)
	if err != nil {
		log.Error("cannot open the database", "error", err.Error())
		return errLogged
	}
	defer db.Close()
	if err := db.MigrateUp(ctx); err != nil {
		log.Error("cannot apply database migrations", "storage", string(db.Engine()), "location", db.Location(), "error", err.Error())
		return errLogged
	}
	// One running server per node name on a shared PostgreSQL: each name
	// has one audit chain, which two writers would fight over. Released
	// after the audit log's last write (defers run in reverse).
	claim, err := db.ClaimNodeName(ctx, s.NodeName, log)
	if err != nil {
		msg := err.Error()
		if errors.Is(err, storage.ErrNodeNameInUse) {
			msg += "; give each server its own SECRETHUB_NODE_NAME (if that server is gone, PostgreSQL frees the name within about a minute)"
		}
		log.Error("cannot claim the node name", "node", s.NodeName, "error", msg)
		return errLogged
	}
	defer claim.Release()
	srv, err := server.New(db, srvCfg)
	if err != nil {
		log.Error("cannot start the server", "error", err.Error())
		return errLogged
	}
	// Flushed once, before the database and the audit file close: by
	// serve after the HTTP server has stopped, or here if it never ran.
	closeAudit := sync.OnceValue(func() error { return closeAuditLog(srv, log) })
	defer closeAudit()
	ln, err := net.Listen("tcp", s.ListenAddr)
	if err != nil {
		log.Error("cannot listen", "address", s.ListenAddr, "error", err.Error())
		return errLogged
	}
	defer ln.Close()
	scheme := "http"
	if cert != nil {
		scheme = "https"
		cert.report(srv.Metrics())
	}
	if opts.Dev {
		if err := startDev(ctx, srv, scheme+"://"+reachable(ln.Addr()), opts.IO.Out); err != nil {
			return err
		}
	}
	log.Info("secrethub server started", "address", boundAddress(s.ListenAddr, ln.Addr()), "scheme", scheme,
		"storage", string(db.Engine()), "location", db.Location(), "node", s.NodeName, "version", server.Version)
	return serve(ctx, srv, ln, tlsConfig, cert, hup, log, opts.Listening, closeAudit)
}

// openAuditSink opens the audit file setting: "" none (a nil writer), "-"
// stdout, else a file opened for appending, created with mode 0600. An
// existing file that group or others may read or write is refused, not
// changed: who else can read it is the operator's decision to correct.
// closeSink closes the file (nothing for stdout).
func openAuditSink(path string, stdout io.Writer) (sink io.Writer, closeSink func() error, err error) {
	none := func() error { return nil }
	switch path {
	case "":
		return nil, none, nil
	case "-":
		return stdout, none, nil
	}
	// O_NONBLOCK: opening a FIFO nobody reads would otherwise wait for a
	// reader for ever, before the server listens or logs anything; this
	// way it fails at once (ENXIO), and a FIFO with a reader is refused
	// below. A regular file ignores the flag.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("opening %s: %w", path, err)
	}
	// The file as opened, not the path again, is what is checked.
	info, err := f.Stat()
	switch {
	case err != nil:
		err = fmt.Errorf("checking %s: %w", path, err)
	case !info.Mode().IsRegular():
		err = fmt.Errorf("%s is not a regular file", path)
	case info.Mode().Perm()&0o066 != 0:
		err = fmt.Errorf("%s has mode %04o, so group or others may read or write the audit log: make it 0600 (chmod 600 %s) or name a new file",
			path, info.Mode().Perm(), path)
	}
	if err != nil {
		_ = f.Close()
		return nil, nil, err
	}
	return f, f.Close, nil
}

// closeAuditLog stores the audit log's last outcomes and its final
// checkpoint, within auditCloseTimeout.
func closeAuditLog(srv *server.Server, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), auditCloseTimeout)
	defer cancel()
	if err := srv.Close(ctx); err != nil {
		log.Error("the audit log could not store its last outcomes or final checkpoint", "error", err.Error())
		return err
	}
	return nil
}

// serve answers requests on ln (over TLS when tlsConfig is set) and runs
// background upkeep until ctx ends, then shuts down within shutdownGrace
// and, once no request is left, closes the audit log with closeAudit. A
// server whose audit log could not be flushed exits with an error. Each
// SIGHUP received on hup reloads cert.
func serve(ctx context.Context, srv *server.Server, ln net.Listener, tlsConfig *tls.Config, cert *servedCertificate,
	hup <-chan os.Signal, log *slog.Logger, listening func(net.Addr), closeAudit func() error) error {
	hs := newHTTPServer(srv.Handler(), log)
	hs.TLSConfig = tlsConfig
	upkeep, stopUpkeep := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { srv.Run(upkeep, 0) })
	// Safe to call twice: closeAudit runs once and repeats its result.
	stop := func() error {
		stopUpkeep()
		wg.Wait()
		return closeAudit()
	}
	defer stop()

	served := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			// The certificate is in TLSConfig already; ServeTLS adds HTTP/2.
			served <- hs.ServeTLS(ln, "", "")
			return
		}
		served <- hs.Serve(ln)
	}()
	if listening != nil {
		listening(ln.Addr())
	}
wait:
	for {
		select {
		case err := <-served:
			log.Error("server stopped serving", "error", err.Error())
			return errLogged
		case <-hup:
			reloadCertificate(cert, log)
		case <-ctx.Done():
			break wait
		}
	}
	log.Info("shutting down", "grace", shutdownGrace.String())
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("requests still running after the grace period were cut off", "error", err.Error())
		_ = hs.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("listener closed with an error", "error", err.Error())
	}
	if err := stop(); err != nil {
		return errLogged
	}
	log.Info("secrethub server stopped")
	return nil
}

// reloadCertificate handles SIGHUP: the TLS certificate and key are read
// again; a failure keeps the current ones and is logged.
func reloadCertificate(cert *servedCertificate, log *slog.Logger) {
	if cert == nil {
		log.Info("SIGHUP received; serving plain HTTP, so there is no TLS certificate to reload")
		return
	}
	if err := cert.reload(); err != nil {
		log.Error("TLS certificate not reloaded; keeping the current one", "error", err.Error())
		return
	}
	log.Info("TLS certificate reloaded", cert.describe()...)
}

// maxHeaderBytes bounds a request's line and headers. Go's default is
// 1 MiB; every request, even an anonymous one, is audited with its path,
// so a path is kept to what a real client sends.
const maxHeaderBytes = 64 << 10

// newHTTPServer serves handler with the connection deadlines above.
//
// WriteTimeout stays unset on purpose: it would bound every response,
// including the long-lived WebSocket connections agents will hold to
// /v1/agent/connect. A request's own deadline comes from the server
// package's entry middleware instead.
func newHTTPServer(handler http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// startDev initializes the dev server with one key share, unseals it, and
// prints what a person needs to use it at url.
func startDev(ctx context.Context, srv *server.Server, url string, out io.Writer) error {
	res, err := srv.Initialize(ctx, 1, 1)
	if err != nil {
		return fmt.Errorf("initializing the dev server: %w", err)
	}
	if _, err := srv.Unseal(ctx, res.Keys[0]); err != nil {
		return fmt.Errorf("unsealing the dev server: %w", err)
	}
	fmt.Fprintf(out, `WARNING! Dev mode is enabled. SecretHub runs on a temporary SQLite database that
is deleted when it stops, starts unsealed, and prints its root token. Never use
dev mode in production.

You may need to set the following environment variables:

    export %s='%s'
    export %s='%s'

Unseal Key: %s
Root Token: %s

`, EnvAddress, url, EnvToken, res.RootToken, hex.EncodeToString(res.Keys[0]), res.RootToken)
	return nil
}

// boundAddress is the configured listen address with the port actually
// bound (they differ when port 0 asked for any free port). The configured
// host is kept: a listener on 0.0.0.0 reports itself as [::].
func boundAddress(configured string, actual net.Addr) string {
	host, _, err := net.SplitHostPort(configured)
	_, port, err2 := net.SplitHostPort(actual.String())
	if err != nil || err2 != nil {
		return actual.String()
	}
	return net.JoinHostPort(host, port)
}

// reachable is addr with an unspecified host (0.0.0.0, ::) replaced by
// loopback, so it can be dialled.
func reachable(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
