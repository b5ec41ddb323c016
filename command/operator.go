package command

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/secrethub/secrethub/client"
)

// NewCmdOperator builds `secrethub operator` and its subcommands.
func NewCmdOperator(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "Initialize, unseal, seal and rotate a server; generate secrets",
	}
	cmd.AddCommand(
		NewCmdOperatorInit(f),
		NewCmdOperatorUnseal(f),
		NewCmdOperatorSeal(f),
		NewCmdOperatorRotate(f),
		NewCmdOperatorKeyStatus(f),
		NewCmdOperatorGenerateSecret(f),
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
