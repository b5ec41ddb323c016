package command

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/secrethub/secrethub/client"
)

// NewCmdKV builds `secrethub kv` and its subcommands.
func NewCmdKV(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kv",
		Short: "Read and write static (versioned key/value) secrets",
		Long: `Read and write static secrets. A secret lives at a path such as prod/db and
holds key/value pairs; every write makes a new version.`,
	}
	cmd.AddCommand(
		NewCmdKVPut(f),
		NewCmdKVGet(f),
		NewCmdKVDelete(f),
		NewCmdKVList(f),
		NewCmdKVMetadata(f),
		NewCmdKVVersions(f, kvUndelete),
		NewCmdKVVersions(f, kvDestroy),
		NewCmdKVRollback(f),
	)
	return cmd
}

// secretPathArg turns a PATH argument into a bare secret path.
func secretPathArg(arg string) (string, error) {
	p := strings.Trim(arg, "/")
	if p == "" {
		return "", errors.New("PATH must name a secret, such as prod/db")
	}
	return p, nil
}

// connectPath turns a PATH argument into a bare secret path and connects.
func (d Deps) connectPath(arg string) (string, *Printer, *client.Client, error) {
	path, err := secretPathArg(arg)
	if err != nil {
		return "", nil, nil, err
	}
	p, c, err := d.connect()
	return path, p, c, err
}

// readError explains a failed read of path: a 404 as "no value found at
// PATH", anything else as what was being done.
func readError(doing, path string, err error) error {
	if errors.Is(err, client.ErrNotFound) {
		return fmt.Errorf("no value found at %s: %w", path, err)
	}
	return fmt.Errorf("%s %s: %w", doing, path, err)
}

// KVPutOptions configure `kv put`.
type KVPutOptions struct {
	Deps
	Path string
	// Pairs are the key=value arguments, parsed when run.
	Pairs []string
	// CAS, when set, must match the current version.
	CAS *int
}

// NewCmdKVPut builds `kv put`.
func NewCmdKVPut(f *Factory) *cobra.Command {
	opts := &KVPutOptions{}
	var cas int
	cmd := &cobra.Command{
		Use:   "put PATH KEY=VALUE...",
		Short: "Write a new version of a secret",
		Long: `Write a new version of the secret at PATH with the given pairs (the whole
secret: keys not given are not kept).

  KEY=VALUE    the value as written
  KEY=@FILE    the content of FILE, as is (a leading "\@" gives a literal "@")
  KEY=-        all of standard input, as is (use printf or echo -n to avoid a
               trailing newline); only one key may read standard input

With -cas N the write happens only if the current version is N (0: only if the
secret does not exist yet).`,
		Example: `  secrethub kv put prod/db username=app password=@pw.txt
  printf %s "$PASSWORD" | secrethub kv put -cas=1 prod/db username=app password=-`,
		Args: usageArgs(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Path, opts.Pairs = args[0], args[1:]
			if cmd.Flags().Changed("cas") {
				opts.CAS = &cas
			}
			opts.Deps = f.deps()
			return runKVPut(cmd.Context(), opts)
		},
	}
	cmd.Flags().IntVar(&cas, "cas", 0, "write only if the current version is this (0: only if new)")
	return cmd
}

func runKVPut(ctx context.Context, opts *KVPutOptions) error {
	path, p, c, err := opts.connectPath(opts.Path)
	if err != nil {
		return err
	}
	data, err := parsePairs(opts.Pairs, opts.IO)
	if err != nil {
		return err
	}
	v, err := c.KV().Put(ctx, path, data, client.KVPutOptions{CAS: opts.CAS})
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return p.Print(v, versionSection("", *v))
}

// parsePairs reads KEY=VALUE, KEY=@FILE and KEY=- arguments, which follow
// PATH: the first pair is argument 2 of `kv put`.
func parsePairs(pairs []string, io *IOStreams) (map[string]any, error) {
	if len(pairs) == 0 {
		return nil, errors.New("give at least one KEY=VALUE pair")
	}
	data := make(map[string]any, len(pairs))
	for i, pair := range pairs {
		key, raw, ok := strings.Cut(pair, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("argument %d is not KEY=VALUE (it is not shown, as it may be a secret)", i+2)
		}
		if _, dup := data[key]; dup {
			return nil, fmt.Errorf("key %q is given twice", key)
		}
		value, err := pairValue(key, raw, io)
		if err != nil {
			return nil, err
		}
		data[key] = value
	}
	return data, nil
}

func pairValue(key, raw string, io *IOStreams) (string, error) {
	var (
		b   []byte
		err error
		src string
	)
	switch {
	case raw == "-":
		src = "standard input"
		b, err = io.ReadAll()
	case strings.HasPrefix(raw, "@"):
		src = raw[1:]
		b, err = os.ReadFile(src)
	case strings.HasPrefix(raw, `\@`):
		return raw[1:], nil
	default:
		return raw, nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the value of %q from %s: %w", key, src, err)
	}
	if !utf8.Valid(b) {
		return "", fmt.Errorf("the value of %q from %s is not UTF-8 text; base64-encode binary data first", key, src)
	}
	return string(b), nil
}

// versionSection shows one version's metadata.
func versionSection(title string, v client.KVVersion) Section {
	return keyValues(title,
		[]string{"created_time", cell(v.CreatedTime)},
		[]string{"custom_metadata", cell(v.CustomMetadata)},
		[]string{"deletion_time", cell(v.DeletionTime)},
		[]string{"destroyed", cell(v.Destroyed)},
		[]string{"version", cell(v.Version)},
	)
}

// KVGetOptions configure `kv get`.
type KVGetOptions struct {
	Deps
	Path string
	// Version 0 reads the current version.
	Version int
	// Field, when set, prints only that key's value, raw.
	Field string
}

// NewCmdKVGet builds `kv get`.
func NewCmdKVGet(f *Factory) *cobra.Command {
	opts := &KVGetOptions{}
	cmd := &cobra.Command{
		Use:   "get PATH",
		Short: "Read a secret",
		Long: `Read the secret at PATH: its metadata and data. With -field only that key's
value is printed, raw, with a newline, for use in scripts.`,
		Example: `  secrethub kv get prod/db
  secrethub kv get -version=2 -field=password prod/db`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Path = args[0]
			opts.Deps = f.deps()
			return runKVGet(cmd.Context(), opts)
		},
	}
	cmd.Flags().IntVar(&opts.Version, "version", 0, "version to read (default the current one)")
	cmd.Flags().StringVar(&opts.Field, "field", "", "print only this key's value")
	return cmd
}

func runKVGet(ctx context.Context, opts *KVGetOptions) error {
	if opts.Version < 0 {
		return errors.New("-version must be a positive version number (or 0 for the current one)")
	}
	path, p, c, err := opts.connectPath(opts.Path)
	if err != nil {
		return err
	}
	s, err := c.KV().Get(ctx, path, opts.Version)
	if err != nil {
		return readError("reading", path, err)
	}
	if opts.Field != "" {
		v, ok := s.Data[opts.Field]
		if !ok {
			return fmt.Errorf("field %q is not present in %s", opts.Field, path)
		}
		return p.Value(v)
	}
	return p.Print(s, versionSection("Metadata", s.Metadata), keyValues("Data", mapRows(s.Data)...))
}

// KVDeleteOptions configure `kv delete`.
type KVDeleteOptions struct {
	Deps
	Path string
	// Versions, when given, are deleted instead of the current version.
	Versions []int
}

// NewCmdKVDelete builds `kv delete`.
func NewCmdKVDelete(f *Factory) *cobra.Command {
	opts := &KVDeleteOptions{}
	cmd := &cobra.Command{
		Use:   "delete PATH",
		Short: "Soft-delete the current version of a secret, or given versions",
		Long: `Soft-delete the current version of the secret at PATH, or with -versions the
listed versions. Deleted versions can be restored with 'kv undelete'.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Path = args[0]
			opts.Deps = f.deps()
			return runKVDelete(cmd.Context(), opts)
		},
	}
	cmd.Flags().IntSliceVar(&opts.Versions, "versions", nil, "versions to delete, such as 1,2")
	return cmd
}

func runKVDelete(ctx context.Context, opts *KVDeleteOptions) error {
	if len(opts.Versions) == 0 {
		return runKVAction(ctx, opts.Deps, opts.Path, "Data deleted (if it existed) at: %s",
			func(kv *client.KV, path string) error { return kv.Delete(ctx, path) })
	}
	return runKVAction(ctx, opts.Deps, opts.Path, versionsWord(opts.Versions)+" deleted at: %s",
		func(kv *client.KV, path string) error { return kv.DeleteVersions(ctx, path, opts.Versions) })
}

// runKVAction runs an action without a result on the secret at pathArg and
// confirms it with success (which gets the path).
func runKVAction(ctx context.Context, d Deps, pathArg, success string, action func(kv *client.KV, path string) error) error {
	path, p, c, err := d.connectPath(pathArg)
	if err != nil {
		return err
	}
	if err := action(c.KV(), path); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	p.Success(success, path)
	return nil
}

// versionsWord names versions in a message: "Version 3", "Versions 1,2".
func versionsWord(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	if len(ns) == 1 {
		return "Version " + s[0]
	}
	return "Versions " + strings.Join(s, ",")
}

// The actions of NewCmdKVVersions.
const (
	kvUndelete = "undelete"
	kvDestroy  = "destroy"
)

// KVVersionsOptions configure `kv undelete` and `kv destroy`.
type KVVersionsOptions struct {
	Deps
	// Action is kvUndelete or kvDestroy.
	Action   string
	Path     string
	Versions []int
}

// NewCmdKVVersions builds `kv undelete` or `kv destroy`, which share their
// shape: PATH and a required -versions list.
func NewCmdKVVersions(f *Factory, action string) *cobra.Command {
	opts := &KVVersionsOptions{Action: action}
	short := "Restore soft-deleted versions of a secret"
	if action == kvDestroy {
		short = "Erase versions of a secret for good (they cannot be restored)"
	}
	cmd := &cobra.Command{
		Use:   action + " -versions=N[,N…] PATH",
		Short: short,
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Path = args[0]
			opts.Deps = f.deps()
			return runKVVersions(cmd.Context(), opts)
		},
	}
	cmd.Flags().IntSliceVar(&opts.Versions, "versions", nil, "versions, such as 1,2 (required)")
	_ = cmd.MarkFlagRequired("versions")
	return cmd
}

func runKVVersions(ctx context.Context, opts *KVVersionsOptions) error {
	if len(opts.Versions) == 0 {
		return errors.New("give the versions with -versions, such as -versions=1,2")
	}
	if opts.Action == kvDestroy {
		return runKVAction(ctx, opts.Deps, opts.Path, versionsWord(opts.Versions)+" destroyed at: %s",
			func(kv *client.KV, path string) error { return kv.Destroy(ctx, path, opts.Versions) })
	}
	return runKVAction(ctx, opts.Deps, opts.Path, versionsWord(opts.Versions)+" restored at: %s",
		func(kv *client.KV, path string) error { return kv.Undelete(ctx, path, opts.Versions) })
}

// KVRollbackOptions configure `kv rollback`.
type KVRollbackOptions struct {
	Deps
	Path    string
	Version int
}

// NewCmdKVRollback builds `kv rollback`.
func NewCmdKVRollback(f *Factory) *cobra.Command {
	opts := &KVRollbackOptions{}
	cmd := &cobra.Command{
		Use:   "rollback -version=N PATH",
		Short: "Make an earlier version's data the current version again",
		Long:  `Write the data of version N of the secret at PATH as a new current version.`,
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Path = args[0]
			opts.Deps = f.deps()
			return runKVRollback(cmd.Context(), opts)
		},
	}
	cmd.Flags().IntVar(&opts.Version, "version", 0, "version to roll back to (required)")
	_ = cmd.MarkFlagRequired("version")
	return cmd
}

func runKVRollback(ctx context.Context, opts *KVRollbackOptions) error {
	if opts.Version <= 0 {
		return errors.New("-version must be a positive version number")
	}
	path, p, c, err := opts.connectPath(opts.Path)
	if err != nil {
		return err
	}
	v, err := c.KV().Rollback(ctx, path, opts.Version)
	if err != nil {
		return readError("rolling back", path, err)
	}
	return p.Print(v, versionSection("", *v))
}

// KVListOptions configure `kv list`.
type KVListOptions struct {
	Deps
	Prefix string
}

// NewCmdKVList builds `kv list`.
func NewCmdKVList(f *Factory) *cobra.Command {
	opts := &KVListOptions{}
	return &cobra.Command{
		Use:   "list [PREFIX]",
		Short: "List the secrets and folders under a prefix",
		Long:  `List the names directly under PREFIX (the top level without one); folders end in "/".`,
		Args:  usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Prefix = args[0]
			}
			opts.Deps = f.deps()
			return runKVList(cmd.Context(), opts)
		},
	}
}

func runKVList(ctx context.Context, opts *KVListOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	keys, err := c.KV().List(ctx, opts.Prefix)
	if err != nil {
		return readError("listing", strings.Trim(opts.Prefix, "/")+"/", err)
	}
	return printKeys(p, keys)
}

// NewCmdKVMetadata builds `kv metadata` and its subcommands.
func NewCmdKVMetadata(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "metadata",
		Short: "Read and change a secret's settings and version history",
	}
	cmd.AddCommand(NewCmdKVMetadataGet(f), NewCmdKVMetadataPut(f), NewCmdKVMetadataDelete(f))
	return cmd
}

// KVMetadataGetOptions configure `kv metadata get`.
type KVMetadataGetOptions struct {
	Deps
	Path string
}

// NewCmdKVMetadataGet builds `kv metadata get`.
func NewCmdKVMetadataGet(f *Factory) *cobra.Command {
	opts := &KVMetadataGetOptions{}
	return &cobra.Command{
		Use:   "get PATH",
		Short: "Show a secret's settings and every version's state",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Path = args[0]
			opts.Deps = f.deps()
			return runKVMetadataGet(cmd.Context(), opts)
		},
	}
}

func runKVMetadataGet(ctx context.Context, opts *KVMetadataGetOptions) error {
	path, p, c, err := opts.connectPath(opts.Path)
	if err != nil {
		return err
	}
	m, err := c.KV().Metadata(ctx, path)
	if err != nil {
		return readError("reading the metadata of", path, err)
	}
	sections := []Section{keyValues("Metadata",
		[]string{"cas_required", cell(m.CASRequired)},
		[]string{"created_time", cell(m.CreatedTime)},
		[]string{"current_version", cell(m.CurrentVersion)},
		[]string{"custom_metadata", cell(m.CustomMetadata)},
		[]string{"delete_version_after", m.DeleteVersionAfter},
		[]string{"max_versions", cell(m.MaxVersions)},
		[]string{"oldest_version", cell(m.OldestVersion)},
		[]string{"updated_time", cell(m.UpdatedTime)},
	)}
	versions := make([]client.KVVersion, 0, len(m.Versions))
	for _, v := range m.Versions {
		versions = append(versions, v)
	}
	sort.Slice(versions, func(i, j int) bool { return versions[i].Version < versions[j].Version })
	for _, v := range versions {
		sections = append(sections, keyValues(fmt.Sprintf("Version %d", v.Version),
			[]string{"created_time", cell(v.CreatedTime)},
			[]string{"deletion_time", cell(v.DeletionTime)},
			[]string{"destroyed", cell(v.Destroyed)},
		))
	}
	return p.Print(m, sections...)
}

// KVMetadataPutOptions configure `kv metadata put`.
type KVMetadataPutOptions struct {
	Deps
	Path  string
	Input client.KVMetadataInput
}

// NewCmdKVMetadataPut builds `kv metadata put`.
func NewCmdKVMetadataPut(f *Factory) *cobra.Command {
	opts := &KVMetadataPutOptions{}
	var (
		maxVersions int
		casRequired bool
		custom      []string
	)
	cmd := &cobra.Command{
		Use:   "put PATH",
		Short: "Create or change a secret's settings",
		Long: `Create or change the settings of the secret at PATH. Settings not given stay
as they are.`,
		Example: `  secrethub kv metadata put -max-versions=5 -cas-required -custom-metadata=owner=payments prod/db`,
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Path = args[0]
			if cmd.Flags().Changed("max-versions") {
				opts.Input.MaxVersions = &maxVersions
			}
			if cmd.Flags().Changed("cas-required") {
				opts.Input.CASRequired = &casRequired
			}
			meta, err := parseStringPairs("-custom-metadata", custom)
			if err != nil {
				return err
			}
			opts.Input.CustomMetadata = meta
			opts.Deps = f.deps()
			return runKVMetadataPut(cmd.Context(), opts)
		},
	}
	cmd.Flags().IntVar(&maxVersions, "max-versions", 0, "versions to keep (0: the server default)")
	cmd.Flags().BoolVar(&casRequired, "cas-required", false, "require -cas on every write")
	cmd.Flags().StringArrayVar(&custom, "custom-metadata", nil, "KEY=VALUE to record with the secret (repeatable)")
	return cmd
}

func runKVMetadataPut(ctx context.Context, opts *KVMetadataPutOptions) error {
	return runKVAction(ctx, opts.Deps, opts.Path, "Metadata written to: %s",
		func(kv *client.KV, path string) error { return kv.PutMetadata(ctx, path, opts.Input) })
}

// parseStringPairs reads repeated KEY=VALUE flag values. A malformed one
// is named by its position, never by its text, which may be a secret.
func parseStringPairs(flag string, pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(pairs))
	for i, pair := range pairs {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s value %d is not KEY=VALUE", flag, i+1)
		}
		out[k] = v
	}
	return out, nil
}

// KVMetadataDeleteOptions configure `kv metadata delete`.
type KVMetadataDeleteOptions struct {
	Deps
	Path string
}

// NewCmdKVMetadataDelete builds `kv metadata delete`.
func NewCmdKVMetadataDelete(f *Factory) *cobra.Command {
	opts := &KVMetadataDeleteOptions{}
	return &cobra.Command{
		Use:   "delete PATH",
		Short: "Delete a secret with every version and its settings, for good",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Path = args[0]
			opts.Deps = f.deps()
			return runKVMetadataDelete(cmd.Context(), opts)
		},
	}
}

func runKVMetadataDelete(ctx context.Context, opts *KVMetadataDeleteOptions) error {
	return runKVAction(ctx, opts.Deps, opts.Path, "All versions and metadata deleted at: %s",
		func(kv *client.KV, path string) error { return kv.DeleteMetadata(ctx, path) })
}
