package command

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/secrethub/secrethub/client"
)

// NewCmdAppRole builds `secrethub approle` and its subcommands.
func NewCmdAppRole(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "approle",
		Short: "Manage AppRole roles, role IDs and secret IDs",
		Long: `AppRole is how machines (agents, CI jobs) log in: a role carries policies and
token settings; its role ID names it and a secret ID proves the right to use it.
Log in with both:

    secrethub login -method=approle role_id=ROLE_ID secret_id=@secret-id.txt`,
	}
	cmd.AddCommand(NewCmdAppRoleRole(f), NewCmdAppRoleRoleID(f), NewCmdAppRoleSecretID(f))
	return cmd
}

// NewCmdAppRoleRole builds `approle role` and its subcommands.
func NewCmdAppRoleRole(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "role",
		Short: "Create, read, list and delete roles",
	}
	cmd.AddCommand(NewCmdAppRoleRoleCreate(f), NewCmdAppRoleRoleRead(f), NewCmdAppRoleRoleList(f), NewCmdAppRoleRoleDelete(f))
	return cmd
}

// AppRoleRoleCreateOptions configure `approle role create`.
type AppRoleRoleCreateOptions struct {
	Deps
	Name    string
	Request client.AppRoleWriteRequest
}

// NewCmdAppRoleRoleCreate builds `approle role create`.
func NewCmdAppRoleRoleCreate(f *Factory) *cobra.Command {
	opts := &AppRoleRoleCreateOptions{}
	var (
		policies, secretIDCIDRs, tokenCIDRs []string
		tokenTTL, tokenMaxTTL, secretIDTTL  string
		secretIDNumUses                     int
	)
	cmd := &cobra.Command{
		Use:     "create NAME",
		Aliases: []string{"write"},
		Short:   "Create a role, or change the settings given of an existing one",
		Long: `Create the role NAME, or change an existing one: only the flags given are sent,
and the others keep their value (a new role's default). An empty value clears a
list (-policy= leaves the role without policies). TTLs are seconds or durations
such as 30m, 24h or 7d.`,
		Example: `  secrethub approle role create admin -policy=admin -token-ttl=86400
  secrethub approle role create agents -policy=agent-policy -token-ttl=1h -secret-id-bound-cidr=10.0.0.0/8`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			fl := cmd.Flags()
			req := &opts.Request
			if fl.Changed("policy") {
				req.Policies = nonEmpty(policies)
			}
			if fl.Changed("secret-id-bound-cidr") {
				req.SecretIDBoundCIDRs = nonEmpty(secretIDCIDRs)
			}
			if fl.Changed("token-bound-cidr") {
				req.TokenBoundCIDRs = nonEmpty(tokenCIDRs)
			}
			for _, d := range []struct {
				flag string
				raw  string
				dst  **time.Duration
			}{
				{"token-ttl", tokenTTL, &req.TokenTTL},
				{"token-max-ttl", tokenMaxTTL, &req.TokenMaxTTL},
				{"secret-id-ttl", secretIDTTL, &req.SecretIDTTL},
			} {
				if !fl.Changed(d.flag) {
					continue
				}
				v, err := durationFlag(d.flag, d.raw)
				if err != nil {
					return err
				}
				*d.dst = &v
			}
			if fl.Changed("secret-id-num-uses") {
				if secretIDNumUses < 0 {
					return errors.New("-secret-id-num-uses must be 0 (unlimited) or more")
				}
				req.SecretIDNumUses = &secretIDNumUses
			}
			opts.Deps = f.deps()
			return runAppRoleRoleCreate(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&policies, "policy", nil, "policy for the tokens of a login (repeatable)")
	fl.StringVar(&tokenTTL, "token-ttl", "", "lifetime of a login's token, such as 1h")
	fl.StringVar(&tokenMaxTTL, "token-max-ttl", "", "limit renewals of a login's token cannot pass, such as 24h")
	fl.StringVar(&secretIDTTL, "secret-id-ttl", "", "lifetime of a new secret ID (0: no expiry)")
	fl.IntVar(&secretIDNumUses, "secret-id-num-uses", 0, "logins a new secret ID allows (0: unlimited)")
	fl.StringArrayVar(&secretIDCIDRs, "secret-id-bound-cidr", nil, "CIDR logins must come from (repeatable)")
	fl.StringArrayVar(&tokenCIDRs, "token-bound-cidr", nil, "CIDR a login's token may be used from (repeatable)")
	return cmd
}

// nonEmpty drops empty values, so that "-policy=" makes an empty (not nil)
// list that clears the setting.
func nonEmpty(values []string) []string {
	out := make([]string, 0, len(values))
	for _, v := range values {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

func runAppRoleRoleCreate(ctx context.Context, opts *AppRoleRoleCreateOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	if err := c.AppRole().WriteRole(ctx, opts.Name, opts.Request); err != nil {
		return fmt.Errorf("writing role %s: %w", opts.Name, err)
	}
	p.Success("Role %s written. Read its role ID with: secrethub approle role-id %s", opts.Name, opts.Name)
	return nil
}

// AppRoleRoleReadOptions configure `approle role read`.
type AppRoleRoleReadOptions struct {
	Deps
	Name string
}

// NewCmdAppRoleRoleRead builds `approle role read`.
func NewCmdAppRoleRoleRead(f *Factory) *cobra.Command {
	opts := &AppRoleRoleReadOptions{}
	return &cobra.Command{
		Use:   "read NAME",
		Short: "Show a role's settings",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			opts.Deps = f.deps()
			return runAppRoleRoleRead(cmd.Context(), opts)
		},
	}
}

func runAppRoleRoleRead(ctx context.Context, opts *AppRoleRoleReadOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	r, err := c.AppRole().ReadRole(ctx, opts.Name)
	if err != nil {
		return roleError("reading", opts.Name, err)
	}
	return p.Print(r, keyValues("",
		[]string{"role_name", r.RoleName},
		[]string{"policies", cell(r.Policies)},
		[]string{"token_ttl", ttlCell(r.TokenTTL, "0 (server default)")},
		[]string{"token_max_ttl", ttlCell(r.TokenMaxTTL, "0 (server default)")},
		[]string{"secret_id_ttl", ttlCell(r.SecretIDTTL, "0 (no expiry)")},
		[]string{"secret_id_num_uses", usesCell(r.SecretIDNumUses)},
		[]string{"secret_id_bound_cidrs", cell(r.SecretIDBoundCIDRs)},
		[]string{"token_bound_cidrs", cell(r.TokenBoundCIDRs)},
	))
}

// roleError explains a failed call about role name; a 404 says the role
// does not exist.
func roleError(doing, name string, err error) error {
	if errors.Is(err, client.ErrNotFound) {
		return fmt.Errorf("no role named %s: %w", name, err)
	}
	return fmt.Errorf("%s role %s: %w", doing, name, err)
}

// ttlCell shows a TTL in seconds as a duration, with zero explained.
func ttlCell(secs int64, zero string) string {
	if secs == 0 {
		return zero
	}
	return humanSeconds(secs)
}

// usesCell shows a use count, 0 meaning unlimited.
func usesCell(n int) string {
	if n == 0 {
		return "0 (unlimited)"
	}
	return cell(n)
}

// AppRoleRoleListOptions configure `approle role list`.
type AppRoleRoleListOptions struct {
	Deps
}

// NewCmdAppRoleRoleList builds `approle role list`.
func NewCmdAppRoleRoleList(f *Factory) *cobra.Command {
	opts := &AppRoleRoleListOptions{}
	return &cobra.Command{
		Use:   "list",
		Short: "List the roles",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Deps = f.deps()
			return runAppRoleRoleList(cmd.Context(), opts)
		},
	}
}

func runAppRoleRoleList(ctx context.Context, opts *AppRoleRoleListOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	names, err := c.AppRole().ListRoles(ctx)
	if errors.Is(err, client.ErrNotFound) {
		// The server's way of saying there are none.
		names, err = []string{}, nil
	}
	if err != nil {
		return fmt.Errorf("listing roles: %w", err)
	}
	return printKeys(p, names)
}

// AppRoleRoleDeleteOptions configure `approle role delete`.
type AppRoleRoleDeleteOptions struct {
	Deps
	Name string
}

// NewCmdAppRoleRoleDelete builds `approle role delete`.
func NewCmdAppRoleRoleDelete(f *Factory) *cobra.Command {
	opts := &AppRoleRoleDeleteOptions{}
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a role and its secret IDs",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			opts.Deps = f.deps()
			return runAppRoleRoleDelete(cmd.Context(), opts)
		},
	}
}

func runAppRoleRoleDelete(ctx context.Context, opts *AppRoleRoleDeleteOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	if err := c.AppRole().DeleteRole(ctx, opts.Name); err != nil {
		return roleError("deleting", opts.Name, err)
	}
	p.Success("Deleted role %s.", opts.Name)
	return nil
}

// AppRoleRoleIDOptions configure `approle role-id`.
type AppRoleRoleIDOptions struct {
	Deps
	Name string
	// Set, when not empty, replaces the role ID instead of showing it.
	Set string
}

// NewCmdAppRoleRoleID builds `approle role-id`.
func NewCmdAppRoleRoleID(f *Factory) *cobra.Command {
	opts := &AppRoleRoleIDOptions{}
	cmd := &cobra.Command{
		Use:   "role-id NAME [-set ID]",
		Short: "Show a role's role ID, or set it",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if cmd.Flags().Changed("set") && opts.Set == "" {
				return errors.New("-set needs a role ID")
			}
			opts.Deps = f.deps()
			return runAppRoleRoleID(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Set, "set", "", "replace the role ID with this one")
	return cmd
}

func runAppRoleRoleID(ctx context.Context, opts *AppRoleRoleIDOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	if opts.Set != "" {
		if err := c.AppRole().SetRoleID(ctx, opts.Name, opts.Set); err != nil {
			return roleError("setting the role ID of", opts.Name, err)
		}
		p.Success("Set the role ID of role %s.", opts.Name)
		return nil
	}
	id, err := c.AppRole().RoleID(ctx, opts.Name)
	if err != nil {
		return roleError("reading the role ID of", opts.Name, err)
	}
	return p.Print(map[string]string{"role_id": id}, keyValues("", []string{"role_id", id}))
}

// AppRoleSecretIDOptions configure `approle secret-id`.
type AppRoleSecretIDOptions struct {
	Deps
	Name    string
	Request client.SecretIDRequest
}

// NewCmdAppRoleSecretID builds `approle secret-id`, which generates a
// secret ID, with subcommands for the secret IDs that exist. `secret-id
// create NAME` does the same as `secret-id NAME` for any role name,
// including those the subcommands take (list, lookup, destroy, create).
func NewCmdAppRoleSecretID(f *Factory) *cobra.Command {
	cmd := newSecretIDGenerate(f, "secret-id NAME", "Generate a secret ID for a role; list, look up and destroy them")
	cmd.Example = `  secrethub approle secret-id admin
  secrethub approle secret-id agents -ttl=24h -num-uses=1 -cidr=10.1.0.0/16 -metadata=host=app-01
  secrethub approle secret-id create list     # a role named like a subcommand
  secrethub approle secret-id list agents`
	create := newSecretIDGenerate(f, "create NAME", "Generate a secret ID for a role (for any role name)")
	create.Example = `  secrethub approle secret-id create agents -ttl=24h`
	cmd.AddCommand(create, NewCmdAppRoleSecretIDList(f), NewCmdAppRoleSecretIDLookup(f), NewCmdAppRoleSecretIDDestroy(f))
	return cmd
}

// newSecretIDGenerate builds a command that generates a secret ID for the
// role named by its one argument.
func newSecretIDGenerate(f *Factory, use, short string) *cobra.Command {
	opts := &AppRoleSecretIDOptions{}
	var (
		ttl  string
		meta []string
	)
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long: `Generate a secret ID for the role NAME and print it with its accessor. The
secret ID is shown only now (the server keeps a hash); the accessor names it
later, for lookup and destroy. Unset flags take the role's settings. A role
named list, lookup, destroy or create is reached with "secret-id create NAME".`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			var err error
			if opts.Request.TTL, err = durationFlag("ttl", ttl); err != nil {
				return err
			}
			if opts.Request.NumUses < 0 {
				return errors.New("-num-uses must be 0 (the role's setting) or more")
			}
			if opts.Request.Metadata, err = parseStringPairs("-metadata", meta); err != nil {
				return err
			}
			opts.Request.CIDRList = nonEmpty(opts.Request.CIDRList)
			opts.Deps = f.deps()
			return runAppRoleSecretID(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&opts.Request.CIDRList, "cidr", nil, "CIDR logins with this secret ID must come from (repeatable)")
	fl.StringVar(&ttl, "ttl", "", "lifetime of the secret ID, such as 24h (default the role's)")
	fl.IntVar(&opts.Request.NumUses, "num-uses", 0, "logins the secret ID allows (default the role's)")
	fl.StringArrayVar(&meta, "metadata", nil, "KEY=VALUE to record with the secret ID (repeatable)")
	return cmd
}

func runAppRoleSecretID(ctx context.Context, opts *AppRoleSecretIDOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	s, err := c.AppRole().NewSecretID(ctx, opts.Name, opts.Request)
	if err != nil {
		return roleError("generating a secret ID for", opts.Name, err)
	}
	return p.Print(s, keyValues("",
		[]string{"secret_id", s.SecretID},
		[]string{"secret_id_accessor", s.Accessor},
		[]string{"secret_id_ttl", ttlCell(s.TTL, "0 (no expiry)")},
		[]string{"secret_id_num_uses", usesCell(s.NumUses)},
	))
}

// AppRoleSecretIDListOptions configure `approle secret-id list`.
type AppRoleSecretIDListOptions struct {
	Deps
	Name string
}

// NewCmdAppRoleSecretIDList builds `approle secret-id list`.
func NewCmdAppRoleSecretIDList(f *Factory) *cobra.Command {
	opts := &AppRoleSecretIDListOptions{}
	return &cobra.Command{
		Use:   "list NAME",
		Short: "List the accessors of a role's secret IDs",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			opts.Deps = f.deps()
			return runAppRoleSecretIDList(cmd.Context(), opts)
		},
	}
}

func runAppRoleSecretIDList(ctx context.Context, opts *AppRoleSecretIDListOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	accessors, err := c.AppRole().ListSecretIDAccessors(ctx, opts.Name)
	if errors.Is(err, client.ErrNotFound) {
		// None, or no such role: the server answers 404 to both, so the
		// role tells them apart.
		if _, err := c.AppRole().ReadRole(ctx, opts.Name); err != nil {
			return roleError("listing the secret IDs of", opts.Name, err)
		}
		accessors, err = []string{}, nil
	}
	if err != nil {
		return roleError("listing the secret IDs of", opts.Name, err)
	}
	return printKeys(p, accessors)
}

// AppRoleSecretIDAccessorOptions configure `approle secret-id lookup` and
// `approle secret-id destroy`.
type AppRoleSecretIDAccessorOptions struct {
	Deps
	Name     string
	Accessor string
}

// NewCmdAppRoleSecretIDLookup builds `approle secret-id lookup`.
func NewCmdAppRoleSecretIDLookup(f *Factory) *cobra.Command {
	opts := &AppRoleSecretIDAccessorOptions{}
	return &cobra.Command{
		Use:   "lookup NAME ACCESSOR",
		Short: "Describe a role's secret ID by its accessor",
		Args:  usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name, opts.Accessor = args[0], args[1]
			opts.Deps = f.deps()
			return runAppRoleSecretIDLookup(cmd.Context(), opts)
		},
	}
}

func runAppRoleSecretIDLookup(ctx context.Context, opts *AppRoleSecretIDAccessorOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	info, err := c.AppRole().LookupSecretID(ctx, opts.Name, opts.Accessor)
	if errors.Is(err, client.ErrNotFound) {
		return fmt.Errorf("no secret ID with accessor %s for role %s: %w", opts.Accessor, opts.Name, err)
	}
	if err != nil {
		return fmt.Errorf("looking up a secret ID of role %s: %w", opts.Name, err)
	}
	return p.Print(info, keyValues("",
		[]string{"secret_id_accessor", info.Accessor},
		[]string{"creation_time", cell(info.CreationTime)},
		[]string{"expiration_time", cell(info.ExpirationTime)},
		[]string{"secret_id_ttl", ttlCell(info.TTL, "0 (no expiry)")},
		[]string{"secret_id_num_uses", usesCell(info.NumUses)},
		[]string{"cidr_list", cell(info.CIDRList)},
		[]string{"metadata", cell(info.Metadata)},
	))
}

// NewCmdAppRoleSecretIDDestroy builds `approle secret-id destroy`.
func NewCmdAppRoleSecretIDDestroy(f *Factory) *cobra.Command {
	opts := &AppRoleSecretIDAccessorOptions{}
	return &cobra.Command{
		Use:   "destroy NAME ACCESSOR",
		Short: "Invalidate a role's secret ID by its accessor",
		Args:  usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name, opts.Accessor = args[0], args[1]
			opts.Deps = f.deps()
			return runAppRoleSecretIDDestroy(cmd.Context(), opts)
		},
	}
}

func runAppRoleSecretIDDestroy(ctx context.Context, opts *AppRoleSecretIDAccessorOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	if err := c.AppRole().DestroySecretID(ctx, opts.Name, opts.Accessor); err != nil {
		return fmt.Errorf("destroying a secret ID of role %s: %w", opts.Name, err)
	}
	p.Success("Destroyed the secret ID with accessor %s.", opts.Accessor)
	return nil
}
