package command

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"

	"github.com/secrethub/secrethub/client"
)

// NewCmdOperator builds `secrethub operator` and its subcommands.
func NewCmdOperator(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "Initialize, unseal, seal and rotate a server; generate secrets; snapshots",
	}
	cmd.AddCommand(
		NewCmdOperatorInit(f),
		NewCmdOperatorUnseal(f),
		NewCmdOperatorSeal(f),
		NewCmdOperatorRotate(f),
		NewCmdOperatorKeyStatus(f),
		NewCmdOperatorGenerateSecret(f),
		NewCmdOperatorHashPassword(f),
		NewCmdOperatorSnapshot(f),
	)
	return cmd
}

// OperatorInitOptions configure `operator init`.
type OperatorInitOptions struct {
	Deps
	KeyShares    int
	KeyThreshold int
}

// NewCmdOperatorInit builds `operator init`.
func NewCmdOperatorInit(f *Factory) *cobra.Command {
	opts := &OperatorInitOptions{}
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Initialize a new SecretHub and print its unseal keys and root token",
		Long: `Initialize a new SecretHub: the root key is split into -key-shares unseal keys,
any -key-threshold of which unseal it. The keys and the initial root token are
printed once and never again: store them securely, each key with a different
custodian.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Deps = f.deps()
			return runOperatorInit(cmd.Context(), opts)
		},
	}
	cmd.Flags().IntVar(&opts.KeyShares, "key-shares", 5, "number of unseal key shares")
	cmd.Flags().IntVar(&opts.KeyThreshold, "key-threshold", 3, "number of key shares that unseal")
	return cmd
}

func runOperatorInit(ctx context.Context, opts *OperatorInitOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	res, err := c.Sys().Init(ctx, client.InitRequest{SecretShares: opts.KeyShares, SecretThreshold: opts.KeyThreshold})
	if err != nil {
		return fmt.Errorf("initializing: %w", err)
	}
	var rows [][]string
	for i, k := range res.Keys {
		rows = append(rows, []string{fmt.Sprintf("Unseal Key %d", i+1), k})
		if i < len(res.KeysBase64) {
			rows = append(rows, []string{fmt.Sprintf("Unseal Key %d (base64)", i+1), res.KeysBase64[i]})
		}
	}
	rows = append(rows, []string{"Initial Root Token", res.RootToken})
	if err := p.Print(res, keyValues("", rows...)); err != nil {
		return err
	}
	p.Note(fmt.Sprintf(`SecretHub initialized with %d key shares and a key threshold of %d. These keys
are shown only now: give each to a different custodian and store them securely
(never in plain text). Each node starts sealed and needs %d of the keys:

    secrethub operator unseal`, len(res.Keys), opts.KeyThreshold, opts.KeyThreshold))
	return nil
}

// OperatorUnsealOptions configure `operator unseal`.
type OperatorUnsealOptions struct {
	Deps
	// Key is one unseal key share; empty means ask for it.
	Key string
	// Reset discards the key shares given so far instead.
	Reset bool
}

// NewCmdOperatorUnseal builds `operator unseal`.
func NewCmdOperatorUnseal(f *Factory) *cobra.Command {
	opts := &OperatorUnsealOptions{}
	cmd := &cobra.Command{
		Use:   "unseal [KEY]",
		Short: "Give one unseal key share to a server",
		Long: `Give one unseal key share (hex or base64) to the server at --address. Each node
is unsealed on its own, with as many shares as the key threshold.

Without KEY the key is asked for without echo on a terminal, or read as one line
of standard input otherwise (so it stays out of the shell history).`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Key = args[0]
			}
			if opts.Reset && opts.Key != "" {
				return fmt.Errorf("give either a KEY or -reset, not both")
			}
			opts.Deps = f.deps()
			return runOperatorUnseal(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Reset, "reset", false, "discard the key shares given so far")
	return cmd
}

func runOperatorUnseal(ctx context.Context, opts *OperatorUnsealOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	var st *client.SealStatus
	if opts.Reset {
		if st, err = c.Sys().UnsealReset(ctx); err != nil {
			return fmt.Errorf("resetting the unseal progress: %w", err)
		}
	} else {
		key := opts.Key
		if key == "" {
			if key, err = opts.IO.ReadSecret(ctx, "Unseal Key (will be hidden): "); err != nil {
				return fmt.Errorf("reading the unseal key: %w", err)
			}
		}
		if st, err = c.Sys().Unseal(ctx, key); err != nil {
			return fmt.Errorf("unsealing: %w", err)
		}
	}
	return p.Print(st, sealStatusSection(st))
}

// OperatorSealOptions configure `operator seal`.
type OperatorSealOptions struct {
	Deps
}

// NewCmdOperatorSeal builds `operator seal`.
func NewCmdOperatorSeal(f *Factory) *cobra.Command {
	opts := &OperatorSealOptions{}
	return &cobra.Command{
		Use:   "seal",
		Short: "Seal a server: it drops its keys and answers 503 until unsealed",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Deps = f.deps()
			return runOperatorSeal(cmd.Context(), opts)
		},
	}
}

func runOperatorSeal(ctx context.Context, opts *OperatorSealOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	if err := c.Sys().Seal(ctx); err != nil {
		return fmt.Errorf("sealing: %w", err)
	}
	p.Success("SecretHub is sealed on %s.", c.Address())
	return nil
}

// OperatorRotateOptions configure `operator rotate`.
type OperatorRotateOptions struct {
	Deps
}

// NewCmdOperatorRotate builds `operator rotate`.
func NewCmdOperatorRotate(f *Factory) *cobra.Command {
	opts := &OperatorRotateOptions{}
	return &cobra.Command{
		Use:   "rotate",
		Short: "Start a new barrier key term; data under older terms stays readable",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Deps = f.deps()
			return runOperatorRotate(cmd.Context(), opts)
		},
	}
}

func runOperatorRotate(ctx context.Context, opts *OperatorRotateOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	if err := c.Sys().Rotate(ctx); err != nil {
		return fmt.Errorf("rotating the barrier key: %w", err)
	}
	p.Success("Rotated the barrier key.")
	return printKeyStatus(ctx, p, c)
}

// OperatorKeyStatusOptions configure `operator key-status`.
type OperatorKeyStatusOptions struct {
	Deps
}

// NewCmdOperatorKeyStatus builds `operator key-status`.
func NewCmdOperatorKeyStatus(f *Factory) *cobra.Command {
	opts := &OperatorKeyStatusOptions{}
	return &cobra.Command{
		Use:   "key-status",
		Short: "Show the current barrier key term",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Deps = f.deps()
			return runOperatorKeyStatus(cmd.Context(), opts)
		},
	}
}

func runOperatorKeyStatus(ctx context.Context, opts *OperatorKeyStatusOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	return printKeyStatus(ctx, p, c)
}

func printKeyStatus(ctx context.Context, p *Printer, c *client.Client) error {
	ks, err := c.Sys().KeyStatus(ctx)
	if err != nil {
		return fmt.Errorf("reading the key status: %w", err)
	}
	return p.Print(ks, keyValues("", []string{"Key Term", cell(ks.Term)}, []string{"Install Time", cell(ks.InstallTime)}))
}

// OperatorGenerateSecretOptions configure `operator generate-secret`.
type OperatorGenerateSecretOptions struct {
	IO *IOStreams
}

// generatedSecretBytes is the size of `operator generate-secret`'s value.
const generatedSecretBytes = 64

// NewCmdOperatorGenerateSecret builds `operator generate-secret`.
func NewCmdOperatorGenerateSecret(f *Factory) *cobra.Command {
	opts := &OperatorGenerateSecretOptions{IO: f.IO}
	return &cobra.Command{
		Use:   "generate-secret",
		Short: "Print a random 64-byte secret, base64-encoded (for SECRET_KEY_BASE)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runOperatorGenerateSecret(opts)
		},
	}
}

func runOperatorGenerateSecret(opts *OperatorGenerateSecretOptions) error {
	b := make([]byte, generatedSecretBytes)
	if _, err := rand.Read(b); err != nil {
		return fmt.Errorf("reading random bytes: %w", err)
	}
	p := &Printer{out: opts.IO.Out}
	return p.Value(base64.StdEncoding.EncodeToString(b))
}

// AdminPasswordCost is the bcrypt cost of `operator hash-password`.
const AdminPasswordCost = 12

// OperatorHashPasswordOptions configure `operator hash-password`.
type OperatorHashPasswordOptions struct {
	IO *IOStreams
	// PasswordStdin reads the password from standard input instead of
	// asking for it twice on the terminal.
	PasswordStdin bool
	// Interactive tells whether the password can be asked for on a
	// terminal; ReadPassword asks for it there. Tests script both.
	Interactive  bool
	ReadPassword func(ctx context.Context, prompt string) (string, error)
}

// NewCmdOperatorHashPassword builds `operator hash-password`.
func NewCmdOperatorHashPassword(f *Factory) *cobra.Command {
	opts := &OperatorHashPasswordOptions{}
	cmd := &cobra.Command{
		Use:   "hash-password",
		Short: "Print the bcrypt hash of a password (for ADMIN_PASSWORD_HASH)",
		Long: fmt.Sprintf(`Print the bcrypt hash (cost %d) of the admin password, the value of the
server's ADMIN_PASSWORD_HASH setting. The password is asked for twice without
echo, or read from standard input with --password-stdin (everything up to the
end of the first line; spaces are part of the password). It never appears on
the command line, so it stays out of the shell history.

The hash holds $ signs: in a shell, quote it in single quotes.`, AdminPasswordCost),
		Example: `  secrethub operator hash-password
  printf '%s\n' "$ADMIN_PASSWORD" | secrethub operator hash-password --password-stdin`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				// Not cobra's message, which repeats the argument: it may be
				// the password.
				return errors.New("hash-password takes no arguments: a password on the command line would be saved in the shell history; it is asked for, or read with --password-stdin")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.IO = f.IO
			opts.Interactive = f.IO.Interactive()
			opts.ReadPassword = f.IO.ReadPassword
			return runOperatorHashPassword(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.PasswordStdin, "password-stdin", false, "read the password from standard input")
	return cmd
}

func runOperatorHashPassword(ctx context.Context, opts *OperatorHashPasswordOptions) error {
	var (
		password string
		err      error
	)
	switch {
	case opts.PasswordStdin:
		password, err = readPasswordStdin(opts.IO)
	case opts.Interactive:
		password, err = confirmPassword(ctx, opts.ReadPassword)
	default:
		err = errors.New("standard input is not a terminal, so the password cannot be asked for: pipe it in with --password-stdin")
	}
	if err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), AdminPasswordCost)
	if errors.Is(err, bcrypt.ErrPasswordTooLong) {
		return fmt.Errorf("the password is longer than 72 bytes, the most bcrypt uses: choose a shorter one")
	}
	if err != nil {
		return fmt.Errorf("hashing the password: %w", err)
	}
	p := &Printer{out: opts.IO.Out}
	if err := p.Value(string(hash)); err != nil {
		return err
	}
	if opts.Interactive {
		fmt.Fprintln(opts.IO.ErrOut, "Set ADMIN_PASSWORD_HASH to this value; in a shell, in single quotes, or its $ signs are expanded.")
	}
	return nil
}

// confirmPassword asks for a new password twice and returns it when both
// answers are the same.
func confirmPassword(ctx context.Context, read func(context.Context, string) (string, error)) (string, error) {
	first, err := read(ctx, "Password (will be hidden): ")
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	second, err := read(ctx, "Repeat the password: ")
	if err != nil {
		return "", fmt.Errorf("reading the password again: %w", err)
	}
	if first != second {
		return "", errors.New("the two passwords do not match; nothing was hashed")
	}
	return first, nil
}

// readPasswordStdin reads a password from standard input: one line, its
// line ending removed. More lines are refused, since a login reads only
// the first.
func readPasswordStdin(s *IOStreams) (string, error) {
	b, err := s.ReadAll()
	if err != nil {
		return "", fmt.Errorf("reading the password from standard input: %w", err)
	}
	password := trimLineEnding(string(b))
	switch {
	case password == "":
		return "", errors.New("standard input holds no password")
	case strings.ContainsAny(password, "\r\n"):
		return "", errors.New("standard input holds more than one line: the password must be one line")
	}
	return password, nil
}
