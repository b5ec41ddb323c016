package command

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/secrethub/secrethub/client"
	"github.com/secrethub/secrethub/server"
)

// NewCmdToken builds `secrethub token` and its subcommands.
func NewCmdToken(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, look up, renew and revoke tokens",
	}
	cmd.AddCommand(NewCmdTokenCreate(f), NewCmdTokenLookup(f), NewCmdTokenRenew(f), NewCmdTokenRevoke(f))
	return cmd
}

// durationFlag parses a duration flag: seconds ("3600"), Go durations
// ("1h30m") or days ("7d"), as the API accepts them.
func durationFlag(name, raw string) (time.Duration, error) {
	d, err := server.ParseDuration(raw)
	if err != nil {
		return 0, fmt.Errorf("-%s must be seconds or a duration such as 30m, 24h or 7d, got %q", name, raw)
	}
	return d, nil
}

// humanSeconds shows a TTL in seconds the way Vault does: 768h, 1h30m, 45s;
// 0 means the token never expires.
func humanSeconds(n int64) string {
	if n <= 0 {
		return "∞"
	}
	s := (time.Duration(n) * time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// authRows shows an issued or renewed token; the token value itself only
// when withToken (it was just created for the person asking).
func authRows(a *client.TokenAuth, withToken bool) Section {
	var rows [][]string
	if withToken {
		rows = append(rows, []string{"token", a.ClientToken})
	}
	rows = append(rows,
		[]string{"token_accessor", a.Accessor},
		[]string{"token_duration", humanSeconds(int64(a.LeaseDuration))},
		[]string{"token_renewable", cell(a.Renewable)},
		[]string{"token_policies", cell(a.TokenPolicies)},
		[]string{"policies", cell(a.Policies)},
	)
	return keyValues("", rows...)
}

// TokenCreateOptions configure `token create`.
type TokenCreateOptions struct {
	Deps
	Request client.TokenCreateRequest
}

// NewCmdTokenCreate builds `token create`.
func NewCmdTokenCreate(f *Factory) *cobra.Command {
	opts := &TokenCreateOptions{}
	var (
		ttl, maxTTL string
		renewable   bool
		meta        []string
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a token, a child of the current one unless -orphan",
		Example: `  secrethub token create -policy=production -ttl=24h -display-name=ci
  secrethub token create -orphan -renewable=false -num-uses=3 -metadata=team=payments`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Request.TTL, err = durationFlag("ttl", ttl); err != nil {
				return err
			}
			if opts.Request.ExplicitMaxTTL, err = durationFlag("explicit-max-ttl", maxTTL); err != nil {
				return err
			}
			if cmd.Flags().Changed("renewable") {
				opts.Request.Renewable = &renewable
			}
			if opts.Request.Meta, err = parseStringPairs("-metadata", meta); err != nil {
				return err
			}
			opts.Deps = f.deps()
			return runTokenCreate(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&opts.Request.Policies, "policy", nil, "policy to attach (repeatable)")
	fl.StringVar(&ttl, "ttl", "", "time to live, such as 1h (default the server's)")
	fl.StringVar(&maxTTL, "explicit-max-ttl", "", "hard limit renewals cannot pass, such as 720h")
	fl.StringVar(&opts.Request.DisplayName, "display-name", "", "name shown in lookups and audit events")
	fl.IntVar(&opts.Request.NumUses, "num-uses", 0, "uses before the token expires (0: unlimited)")
	fl.BoolVar(&renewable, "renewable", true, "whether the token can be renewed")
	fl.BoolVar(&opts.Request.NoParent, "orphan", false, "no parent: the token outlives the current one")
	fl.BoolVar(&opts.Request.NoDefaultPolicy, "no-default-policy", false, "do not attach the default policy")
	fl.StringArrayVar(&meta, "metadata", nil, "KEY=VALUE to record with the token (repeatable)")
	return cmd
}

func runTokenCreate(ctx context.Context, opts *TokenCreateOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	create := c.Token().Create
	if opts.Request.NoParent {
		// As Vault's CLI does: a policy may grant create-orphan without
		// granting sudo on auth/token/create, which no_parent needs.
		create = c.Token().CreateOrphan
	}
	a, err := create(ctx, opts.Request)
	if err != nil {
		return fmt.Errorf("creating a token: %w", err)
	}
	return p.Print(a, authRows(a, true))
}

// TokenLookupOptions configure `token lookup`.
type TokenLookupOptions struct {
	Deps
	// Token or Accessor names the token; neither means the caller's own.
	Token    string
	Accessor string
}

// NewCmdTokenLookup builds `token lookup`.
func NewCmdTokenLookup(f *Factory) *cobra.Command {
	opts := &TokenLookupOptions{}
	cmd := &cobra.Command{
		Use:   "lookup [TOKEN]",
		Short: "Describe a token (by default the current one)",
		Args:  usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Token = args[0]
			}
			opts.Deps = f.deps()
			return runTokenLookup(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Accessor, "accessor", "", "look the token up by its accessor")
	return cmd
}

func runTokenLookup(ctx context.Context, opts *TokenLookupOptions) error {
	if opts.Token != "" && opts.Accessor != "" {
		return errors.New("give either TOKEN or -accessor, not both")
	}
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	var info *client.TokenInfo
	switch {
	case opts.Accessor != "":
		info, err = c.Token().LookupAccessor(ctx, opts.Accessor)
	case opts.Token != "":
		info, err = c.Token().Lookup(ctx, opts.Token)
	default:
		info, err = c.Token().LookupSelf(ctx)
	}
	if err != nil {
		return fmt.Errorf("looking up the token: %w", err)
	}
	return printTokenInfo(p, info)
}

// printTokenInfo shows a lookup. The token value is left out: whoever
// asked already holds it, and it should not end up in saved output.
func printTokenInfo(p *Printer, info *client.TokenInfo) error {
	info.ID = ""
	return p.Print(info, keyValues("",
		[]string{"accessor", info.Accessor},
		[]string{"creation_time", cell(info.CreationTime)},
		[]string{"creation_ttl", humanSeconds(info.CreationTTL)},
		[]string{"display_name", info.DisplayName},
		[]string{"expire_time", cell(info.ExpireTime)},
		[]string{"explicit_max_ttl", humanSeconds(info.ExplicitMaxTTL)},
		[]string{"issue_time", cell(info.IssueTime)},
		[]string{"meta", cell(info.Meta)},
		[]string{"num_uses", cell(info.NumUses)},
		[]string{"orphan", cell(info.Orphan)},
		[]string{"path", info.Path},
		[]string{"policies", cell(info.Policies)},
		[]string{"renewable", cell(info.Renewable)},
		[]string{"ttl", humanSeconds(info.TTL)},
		[]string{"type", info.Type},
	))
}

// TokenRenewOptions configure `token renew`.
type TokenRenewOptions struct {
	Deps
	// Token or Accessor names the token to renew; neither means the
	// caller's own.
	Token    string
	Accessor string
	// Increment is the new TTL from now; zero means the token's original TTL.
	Increment time.Duration
}

// NewCmdTokenRenew builds `token renew`.
func NewCmdTokenRenew(f *Factory) *cobra.Command {
	opts := &TokenRenewOptions{}
	var increment string
	cmd := &cobra.Command{
		Use:   "renew [TOKEN | -accessor ACCESSOR]",
		Short: "Extend a token's life (by default the current token's)",
		Args:  usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Token = args[0]
			}
			var err error
			if opts.Increment, err = durationFlag("increment", increment); err != nil {
				return err
			}
			opts.Deps = f.deps()
			return runTokenRenew(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&increment, "increment", "", "new time to live from now, such as 1h (default the original TTL)")
	cmd.Flags().StringVar(&opts.Accessor, "accessor", "", "renew the token with this accessor")
	return cmd
}

func runTokenRenew(ctx context.Context, opts *TokenRenewOptions) error {
	if opts.Token != "" && opts.Accessor != "" {
		return errors.New("give either TOKEN or -accessor, not both")
	}
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	var a *client.TokenAuth
	switch {
	case opts.Accessor != "":
		a, err = c.Token().RenewAccessor(ctx, opts.Accessor, opts.Increment)
	case opts.Token != "":
		a, err = c.Token().Renew(ctx, opts.Token, opts.Increment)
	default:
		a, err = c.Token().RenewSelf(ctx, opts.Increment)
	}
	if err != nil {
		return fmt.Errorf("renewing the token: %w", err)
	}
	a.ClientToken = ""
	return p.Print(a, authRows(a, false))
}

// TokenRevokeOptions configure `token revoke`.
type TokenRevokeOptions struct {
	Deps
	// Exactly one of Token, Accessor and Self names the token.
	Token    string
	Accessor string
	Self     bool
}

// NewCmdTokenRevoke builds `token revoke`.
func NewCmdTokenRevoke(f *Factory) *cobra.Command {
	opts := &TokenRevokeOptions{}
	cmd := &cobra.Command{
		Use:   "revoke [TOKEN | -accessor ACCESSOR | -self]",
		Short: "Revoke a token and all its children",
		Args:  usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Token = args[0]
			}
			opts.Deps = f.deps()
			return runTokenRevoke(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Accessor, "accessor", "", "revoke the token with this accessor")
	cmd.Flags().BoolVar(&opts.Self, "self", false, "revoke the current token")
	return cmd
}

func runTokenRevoke(ctx context.Context, opts *TokenRevokeOptions) error {
	given := 0
	for _, set := range []bool{opts.Token != "", opts.Accessor != "", opts.Self} {
		if set {
			given++
		}
	}
	if given != 1 {
		return errors.New("name the token to revoke with exactly one of TOKEN, -accessor ACCESSOR or -self")
	}
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	switch {
	case opts.Self:
		err = c.Token().RevokeSelf(ctx)
	case opts.Accessor != "":
		err = c.Token().RevokeAccessor(ctx, opts.Accessor)
	default:
		err = c.Token().Revoke(ctx, opts.Token)
	}
	if err != nil {
		return fmt.Errorf("revoking the token: %w", err)
	}
	p.Success("Revoked the token and its children.")
	return nil
}
