package command

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/secrethub/secrethub/client"
)

// Login methods of `secrethub login -method=…`.
const (
	LoginToken   = "token"
	LoginAppRole = "approle"
	LoginAdmin   = "admin"
)

// LoginOptions configure `secrethub login`.
type LoginOptions struct {
	Deps
	// Method is the auth method: token, approle or admin.
	Method string
	// Token to log in with (method token); empty means ask for it.
	Token string
	// Params are the KEY=VALUE arguments of the approle and admin methods.
	Params []string
	// NoStore leaves the token file alone and prints the token instead.
	NoStore bool
	// Connect returns a client that presents token ("" for none).
	Connect func(token string) (*client.Client, error)
}

// NewCmdLogin builds `secrethub login`.
func NewCmdLogin(f *Factory) *cobra.Command {
	opts := &LoginOptions{}
	cmd := &cobra.Command{
		Use:   "login [TOKEN | -method=approle role_id=… secret_id=… | -method=admin username=…]",
		Short: "Log in and store the token for later commands",
		Long: `Log in and store the token in ~/` + TokenFileName + ` (mode 0600), where later
commands find it when ` + EnvToken + ` is not set.

  -method=token (the default)  check TOKEN and store it; without TOKEN it is
                               asked for without echo (or read as one line of
                               standard input)
  -method=approle              role_id=ID secret_id=SECRET: log in with AppRole
  -method=admin                username=NAME: log in as the server's admin user;
                               the password is asked for without echo on a
                               terminal, else read as one line of standard input

Values of role_id and secret_id may be VALUE, @FILE (the file's content) or -
(asked for without echo, or one line of standard input). A password is never
taken from the command line, where it would end up in the shell history.

The output shows the token's accessor, policies and duration, not the token:
it is in the token file. With -no-store the token is not stored but printed,
for handing on (for instance to ` + EnvToken + `); -format=json always includes it
as client_token.`,
		Example: `  secrethub login
  secrethub login -method=approle role_id=675a50e7-… secret_id=@/etc/secrethub/secret-id
  secrethub login -method=admin username=admin
  export SECRETHUB_TOKEN=$(secrethub login -method=approle -no-store -format=json role_id=… secret_id=- | jq -r .client_token)`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Method == LoginToken {
				if len(args) > 1 {
					return fmt.Errorf("-method=token takes at most one TOKEN argument\nUsage: %s", cmd.UseLine())
				}
				if len(args) == 1 {
					opts.Token = strings.TrimPrefix(args[0], "token=")
				}
			} else {
				opts.Params = args
			}
			opts.Deps = f.deps()
			opts.Connect = f.clientWith
			return runLogin(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Method, "method", LoginToken, "auth method: token, approle or admin")
	cmd.Flags().BoolVar(&opts.NoStore, "no-store", false, "do not store the token; print it instead")
	return cmd
}

func runLogin(ctx context.Context, opts *LoginOptions) error {
	p, err := NewPrinter(opts.IO.Out, opts.Format)
	if err != nil {
		return err
	}
	var a *client.TokenAuth
	switch opts.Method {
	case LoginToken:
		return runTokenLogin(ctx, opts, p)
	case LoginAppRole:
		a, err = appRoleLogin(ctx, opts)
	case LoginAdmin:
		a, err = adminLogin(ctx, opts)
	default:
		return fmt.Errorf("unknown login method %q: use token, approle or admin", opts.Method)
	}
	if err != nil {
		return err
	}
	if opts.NoStore {
		p.Success("You are now authenticated. The token was not stored (-no-store); it is shown below.")
		return p.Print(a, authRows(a, true))
	}
	if err := storeToken(opts, p, a.ClientToken); err != nil {
		return err
	}
	return p.Print(a, authRows(a, false))
}

// runTokenLogin checks a token given or asked for, and stores it.
func runTokenLogin(ctx context.Context, opts *LoginOptions, p *Printer) error {
	token := opts.Token
	if token == "" {
		var err error
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
	if opts.NoStore {
		p.Success("The token is valid. It was not stored (-no-store).")
	} else if err := storeToken(opts, p, token); err != nil {
		return err
	}
	return printTokenInfo(p, info)
}

// storeToken writes the token file and says so, pointing out an
// SECRETHUB_TOKEN that would take precedence.
func storeToken(opts *LoginOptions, p *Printer, token string) error {
	path, err := writeTokenFile(token)
	if err != nil {
		return err
	}
	p.Success("You are now authenticated. The token was stored in %s and later commands will use it.", path)
	if os.Getenv(EnvToken) != "" {
		fmt.Fprintf(opts.IO.ErrOut, "Warning: %s is set and takes precedence over the stored token.\n", EnvToken)
	}
	return nil
}

// appRoleLogin logs in with role_id and secret_id.
func appRoleLogin(ctx context.Context, opts *LoginOptions) (*client.TokenAuth, error) {
	params, err := loginParams(ctx, opts, []string{"role_id", "secret_id"})
	if err != nil {
		return nil, err
	}
	for _, k := range []string{"role_id", "secret_id"} {
		if params[k] == "" {
			return nil, fmt.Errorf("-method=approle needs %s=VALUE (or %s=@FILE, or %s=- for standard input)", k, k, k)
		}
	}
	c, err := opts.Connect("")
	if err != nil {
		return nil, err
	}
	a, err := c.AppRole().Login(ctx, params["role_id"], params["secret_id"])
	if err != nil {
		return nil, fmt.Errorf("logging in with AppRole: %w", err)
	}
	return a, nil
}

// adminLogin logs in as the admin user, asking for the password.
func adminLogin(ctx context.Context, opts *LoginOptions) (*client.TokenAuth, error) {
	params, err := loginParams(ctx, opts, []string{"username"})
	if err != nil {
		return nil, err
	}
	if params["username"] == "" {
		return nil, errors.New("-method=admin needs username=NAME")
	}
	password, err := opts.IO.ReadPassword(ctx, "Password (will be hidden): ")
	if err != nil {
		return nil, fmt.Errorf("reading the password: %w", err)
	}
	c, err := opts.Connect("")
	if err != nil {
		return nil, err
	}
	a, err := c.Auth().AdminLogin(ctx, params["username"], password)
	if err != nil {
		return nil, fmt.Errorf("logging in as %s: %w", params["username"], err)
	}
	return a, nil
}

// loginKey is what a KEY of a login argument may look like to be shown in
// an error; anything else might be a secret typed in the wrong place.
var loginKey = regexp.MustCompile(`^[a-z_]{1,32}$`)

// loginParams reads the KEY=VALUE arguments of a login method: each key
// once, from allowed. Values may be VALUE, @FILE or - (asked for, or one
// line of standard input). A password is refused: it would be saved in
// the shell history. Errors never show a value.
func loginParams(ctx context.Context, opts *LoginOptions, allowed []string) (map[string]string, error) {
	out := map[string]string{}
	for i, arg := range opts.Params {
		key, raw, ok := strings.Cut(arg, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("argument %d is not KEY=VALUE (it is not shown, as it may be a secret)", i+1)
		}
		if key == "password" {
			return nil, errors.New("password= is refused on the command line, where it would be saved in the shell history: leave it out to be asked for it (or pipe it on standard input)")
		}
		if !slices.Contains(allowed, key) {
			shown := "an unknown key"
			if loginKey.MatchString(key) {
				shown = fmt.Sprintf("the unknown key %q", key)
			}
			return nil, fmt.Errorf("argument %d has %s: -method=%s takes %s", i+1, shown, opts.Method, strings.Join(allowed, ", "))
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("%s is given twice", key)
		}
		v, err := loginValue(ctx, opts.IO, key, raw)
		if err != nil {
			return nil, err
		}
		out[key] = v
	}
	return out, nil
}

// loginValue reads one login value: "-" asks for it (or reads a line of
// standard input), "@FILE" is the file's content, anything else is itself.
// Spaces around a value from a file or standard input are dropped.
func loginValue(ctx context.Context, io *IOStreams, key, raw string) (string, error) {
	switch {
	case raw == "-":
		v, err := io.ReadSecret(ctx, key+" (will be hidden): ")
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", key, err)
		}
		return v, nil
	case strings.HasPrefix(raw, "@"):
		b, err := os.ReadFile(raw[1:])
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", key, err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("reading %s: %s is empty", key, raw[1:])
		}
		return v, nil
	}
	return raw, nil
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
