// Package command is the `secrethub` command line: the server, the admin
// workflows and scripting access to secrets, built with cobra. Each command
// has an Options struct, a NewCmdX constructor that parses flags into it,
// and a runX function that calls client/ (or starts server/) and prints
// through one Printer. No business logic lives here.
package command

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/secrethub/secrethub/client"
	"github.com/secrethub/secrethub/server"
)

// Environment variables the client side of the CLI reads.
const (
	EnvAddress    = "SECRETHUB_ADDR"
	EnvToken      = "SECRETHUB_TOKEN"
	EnvCACert     = "SECRETHUB_CACERT"
	EnvSkipVerify = "SECRETHUB_SKIP_VERIFY"
)

// TokenFileName is the file in the home directory that `login` writes and
// every command reads when SECRETHUB_TOKEN is not set.
const TokenFileName = ".secrethub-token"

// Execute runs the command line on the process's arguments and streams and
// returns the exit code: 0 success, 1 error, 2 sealed (from `status`).
func Execute() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal, a second one ends the process at once.
		<-ctx.Done()
		stop()
	}()
	return run(ctx, os.Args[1:], System())
}

// run executes args and reports errors on stderr; a panic is reported as
// an internal error rather than a stack trace.
func run(ctx context.Context, args []string, streams *IOStreams) (code int) {
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintf(streams.ErrOut, "Error: internal error: %v\n", p)
			code = 1
		}
	}()
	root := NewCmdRoot(&Factory{IO: streams})
	root.SetArgs(normalizeArgs(args))
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var exit *exitError
	if errors.As(err, &exit) {
		if exit.err != nil {
			fmt.Fprintf(streams.ErrOut, "Error: %v\n", exit.err)
		}
		return exit.code
	}
	fmt.Fprintf(streams.ErrOut, "Error: %v%s\n", err, certificateHint(err))
	return 1
}

// certificateHint tells how to trust a server whose certificate was signed
// by a CA the client does not know, the usual case with a private CA.
func certificateHint(err error) string {
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		return ""
	}
	return "\nThe server's certificate is not signed by a CA this machine trusts: give the CA's PEM file with --ca-cert or " + EnvCACert + "."
}

// exitError ends the program with a code other than 1, or with 1 after
// the message has already been shown (err nil).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// errSealed makes `status` exit 2, Vault's code for "sealed".
var errSealed = &exitError{code: 2}

// normalizeArgs turns Vault-style single-dash long flags (-field=message,
// -format=json) into the double-dash form cobra parses. It changes an
// argument before "--" that is "-" followed by two or more characters, the
// first a letter; "-", "-h", negative numbers and key=- stay as they are.
func normalizeArgs(args []string) []string {
	out := make([]string, len(args))
	copy(out, args)
	for i, a := range out {
		if a == "--" {
			break
		}
		if len(a) >= 3 && a[0] == '-' && isLetter(a[1]) {
			out[i] = "-" + a
		}
	}
	return out
}

func isLetter(c byte) bool { return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') }

// Factory gives commands what they share: the streams and, once the
// global flags are parsed, the server address, how to check its
// certificate, and the output format.
type Factory struct {
	IO      *IOStreams
	address string
	format  string
	tls     client.TLSOptions
	// flags are the global flags, to tell a flag given from its default.
	flags *pflag.FlagSet
}

// Deps are what a command that talks to a server takes from outside
// itself. Tests fill them with buffers and a client for a test server.
type Deps struct {
	IO     *IOStreams
	Client func() (*client.Client, error)
	Format string
}

// deps returns the Deps of the command being run.
func (f *Factory) deps() Deps {
	return Deps{IO: f.IO, Client: f.client, Format: f.format}
}

// connect returns the Printer for the chosen format and a server client.
func (d Deps) connect() (*Printer, *client.Client, error) {
	p, err := NewPrinter(d.IO.Out, d.Format)
	if err != nil {
		return nil, nil, err
	}
	c, err := d.Client()
	if err != nil {
		return nil, nil, err
	}
	return p, c, nil
}

// client connects to --address with the token from SECRETHUB_TOKEN or,
// failing that, the token file written by `login`.
func (f *Factory) client() (*client.Client, error) {
	token, err := storedToken()
	if err != nil {
		return nil, err
	}
	return f.clientWith(token)
}

// clientWith connects to --address with the given token.
func (f *Factory) clientWith(token string) (*client.Client, error) {
	opts, err := f.tlsOptions()
	if err != nil {
		return nil, err
	}
	cfg, err := opts.Config()
	if err != nil {
		return nil, err
	}
	return client.New(f.address, token, client.WithTLSConfig(cfg))
}

// tlsOptions are --ca-cert and --tls-skip-verify, each falling back to its
// environment variable when the flag is not given.
func (f *Factory) tlsOptions() (client.TLSOptions, error) {
	opts := f.tls
	if f.flags == nil {
		return opts, nil
	}
	if !f.flags.Changed("ca-cert") {
		opts.CACertFile = os.Getenv(EnvCACert)
	}
	if raw := os.Getenv(EnvSkipVerify); !f.flags.Changed("tls-skip-verify") && raw != "" {
		skip, err := strconv.ParseBool(raw)
		if err != nil {
			return opts, fmt.Errorf("%s must be true or false, got %q", EnvSkipVerify, raw)
		}
		opts.SkipVerify = skip
	}
	return opts, nil
}

// storedToken returns SECRETHUB_TOKEN, else the content of ~/.secrethub-token,
// else "" (requests then go without a token).
func storedToken() (string, error) {
	if t := strings.TrimSpace(os.Getenv(EnvToken)); t != "" {
		return t, nil
	}
	path, err := tokenFilePath()
	if err != nil {
		return "", nil // no home directory: no token file either
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the token file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// tokenFilePath is ~/.secrethub-token.
func tokenFilePath() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the home directory for %s: %w", TokenFileName, err)
	}
	return filepath.Join(home, TokenFileName), nil
}

// NewCmdRoot builds the `secrethub` command with every subcommand.
func NewCmdRoot(f *Factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "secrethub",
		Short: "SecretHub: secrets management server, agent and admin tool",
		Long: `SecretHub stores and hands out secrets. This one binary runs the Core server
(secrethub server) and every admin and scripting workflow against it.

Flags may be written Vault-style with one dash (-format=json, -field=password).`,
		Version:       server.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	address := os.Getenv(EnvAddress)
	if address == "" {
		address = client.DefaultAddress
	}
	root.PersistentFlags().StringVar(&f.address, "address", address, "SecretHub server address (env "+EnvAddress+")")
	root.PersistentFlags().StringVar(&f.format, "format", FormatTable, "output format: table or json")
	root.PersistentFlags().StringVar(&f.tls.CACertFile, "ca-cert", "", "PEM file of the CAs that sign the server's certificate (env "+EnvCACert+")")
	root.PersistentFlags().BoolVar(&f.tls.SkipVerify, "tls-skip-verify", false,
		"do not verify the server's certificate: insecure, only for trying things out (env "+EnvSkipVerify+")")
	f.flags = root.PersistentFlags()
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w\nRun '%s --help' for usage.", err, cmd.CommandPath())
	})
	root.AddCommand(
		NewCmdServer(f, nil),
		NewCmdMigrate(f),
		NewCmdOperator(f),
		NewCmdStatus(f),
		NewCmdKV(f),
		NewCmdToken(f),
		NewCmdLogin(f),
		NewCmdPolicy(f),
		NewCmdAppRole(f),
		NewCmdAudit(f),
		NewCmdPKI(f),
	)
	return root
}

// usageArgs wraps a positional-argument check so its error points at --help.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return fmt.Errorf("%w\nUsage: %s", err, cmd.UseLine())
		}
		return nil
	}
}
