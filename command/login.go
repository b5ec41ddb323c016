package command

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/secrethub/secrethub/client"
)

// LoginOptions configure `secrethub login`.
type LoginOptions struct {
	Deps
	// Method is the auth method; only "token" exists in this release.
	Method string
	// Token to log in with; empty means ask for it.
	Token string
	// Connect returns a client that presents token.
	Connect func(token string) (*client.Client, error)
}

// NewCmdLogin builds `secrethub login`.
func NewCmdLogin(f *Factory) *cobra.Command {
	opts := &LoginOptions{}
	cmd := &cobra.Command{
		Use:   "login [TOKEN]",
		Short: "Check a token and store it for later commands",
		Long: `Check TOKEN against the server and store it in ~/` + TokenFileName + ` (mode 0600),
where later commands find it when ` + EnvToken + ` is not set. Without TOKEN it is
asked for without echo (or read as one line of standard input).

Only -method=token exists in this release; AppRole and admin login come later.`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Token = args[0]
			}
			opts.Deps = f.deps()
			opts.Connect = f.clientWith
			return runLogin(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Method, "method", "token", "auth method (only token in this release)")
	return cmd
}

func runLogin(ctx context.Context, opts *LoginOptions) error {
	if opts.Method != "token" {
		return fmt.Errorf("login method %q is not available yet: this release supports only -method=token (approle and admin login come in a later release)", opts.Method)
	}
	p, err := NewPrinter(opts.IO.Out, opts.Format)
	if err != nil {
		return err
	}
	token := opts.Token
	if token == "" {
		if token, err = opts.IO.ReadSecret(ctx, "Token (will be hidden): "); err != nil {
			return fmt.Errorf("reading the token: %w", err)
		}
	}
	c, err := opts.Connect(token)
	if err != nil {
		return err
	}
	info, err := c.Token().LookupSelf(ctx)
	if err != nil {
		return fmt.Errorf("checking the token: %w", err)
	}
	path, err := writeTokenFile(token)
	if err != nil {
		return err
	}
	p.Success("You are now authenticated. The token was stored in %s and later commands will use it.", path)
	if os.Getenv(EnvToken) != "" {
		fmt.Fprintf(opts.IO.ErrOut, "Warning: %s is set and takes precedence over the stored token.\n", EnvToken)
	}
	return printTokenInfo(p, info)
}

// writeTokenFile stores token in ~/.secrethub-token, readable by its owner
// only: a new file is created 0600 and an existing one is narrowed to 0600
// before the token is written into it.
func writeTokenFile(token string) (string, error) {
	path, err := tokenFilePath()
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return "", fmt.Errorf("writing the token file: %w", err)
	}
	werr := func() error {
		if err := f.Chmod(0o600); err != nil {
			return err
		}
		if err := f.Truncate(0); err != nil {
			return err
		}
		_, err := f.WriteString(strings.TrimSpace(token) + "\n")
		return err
	}()
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return "", fmt.Errorf("writing the token file %s: %w", path, werr)
	}
	return path, nil
}
