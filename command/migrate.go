package command

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/secrethub/secrethub/storage"
)

// The migrate actions.
const (
	migrateUp     = "up"
	migrateDown   = "down"
	migrateStatus = "status"
	migrateForce  = "force"
)

// MigrateOptions configure `secrethub migrate`.
type MigrateOptions struct {
	IO       *IOStreams
	Format   string
	Settings Settings
	Action   string
	// Steps is how many migrations `down` rolls back; All rolls back every one.
	Steps int
	All   bool
	// Version is what `force` records as applied.
	Version int
}

// NewCmdMigrate builds `secrethub migrate` and its subcommands.
func NewCmdMigrate(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply, roll back or inspect database migrations",
		Long: `Apply, roll back or inspect the database schema directly, without a server.
The database is chosen exactly as 'secrethub server' chooses it.

` + settingsHelp(),
	}
	addStorageFlags(cmd.PersistentFlags())
	sub := func(action, use, short string, args cobra.PositionalArgs, parse func(opts *MigrateOptions, args []string) error) *cobra.Command {
		opts := &MigrateOptions{IO: f.IO, Action: action}
		c := &cobra.Command{
			Use: use, Short: short, Args: usageArgs(args),
			RunE: func(cmd *cobra.Command, args []string) error {
				if parse != nil {
					if err := parse(opts, args); err != nil {
						return err
					}
				}
				s, err := loadSettings(cmd.Flags())
				if err != nil {
					return err
				}
				opts.Settings, opts.Format = s, f.format
				return runMigrate(cmd.Context(), opts)
			},
		}
		if action == migrateDown {
			c.Flags().BoolVar(&opts.All, "all", false, "roll back every migration (drops all data)")
		}
		return c
	}
	cmd.AddCommand(
		sub(migrateUp, "up", "Apply every pending migration", cobra.NoArgs, nil),
		sub(migrateDown, "down [N]", "Roll back the last N migrations (default 1)", cobra.MaximumNArgs(1),
			func(opts *MigrateOptions, args []string) error {
				opts.Steps = 1
				if len(args) == 1 {
					n, err := strconv.Atoi(args[0])
					if err != nil || n <= 0 {
						return fmt.Errorf("N must be a positive whole number, got %q", args[0])
					}
					opts.Steps = n
				}
				if opts.All && len(args) == 1 {
					return errors.New("give either N or --all, not both")
				}
				return nil
			}),
		sub(migrateStatus, "status", "Show the applied and the pending migrations", cobra.NoArgs, nil),
		sub(migrateForce, "force VERSION", "Record VERSION as applied and clean (0: none applied), after fixing a failed migration by hand", cobra.ExactArgs(1),
			func(opts *MigrateOptions, args []string) error {
				v, err := strconv.Atoi(args[0])
				if err != nil || v < 0 {
					return fmt.Errorf("VERSION must be a migration version, or 0 for none applied, got %q", args[0])
				}
				opts.Version = v
				return nil
			}),
	)
	return cmd
}

// migrationView is the status as printed.
type migrationView struct {
	StorageType    string `json:"storage_type"`
	Location       string `json:"location"`
	CurrentVersion uint   `json:"current_version"`
	Dirty          bool   `json:"dirty"`
	LatestVersion  uint   `json:"latest_version"`
	Pending        []uint `json:"pending"`
}

func runMigrate(ctx context.Context, opts *MigrateOptions) error {
	p, err := NewPrinter(opts.IO.Out, opts.Format)
	if err != nil {
		return err
	}
	db, err := storage.Open(ctx, opts.Settings.Storage(), newLogger(opts.IO.ErrOut, opts.Settings))
	if err != nil {
		return err
	}
	defer db.Close()
	before, err := db.MigrationStatus(ctx)
	if err != nil {
		return err
	}
	switch opts.Action {
	case migrateUp:
		err = db.MigrateUp(ctx)
	case migrateDown:
		steps := opts.Steps
		if opts.All {
			steps = 0
		}
		err = db.MigrateDown(ctx, steps)
	case migrateForce:
		// storage checks the version against the migrations of this binary.
		if err = db.MigrateForce(ctx, opts.Version); err != nil {
			err = fmt.Errorf("cannot force the schema to version %d: %w", opts.Version, err)
		}
	}
	if err != nil {
		return err
	}
	after, err := db.MigrationStatus(ctx)
	if err != nil {
		return err
	}
	switch {
	case opts.Action == migrateStatus:
	case after.Current == before.Current && after.Dirty == before.Dirty:
		p.Success("Nothing to do: the schema stays at version %d.\n", after.Current)
	default:
		p.Success("The schema went from version %d to version %d.\n", before.Current, after.Current)
	}
	view := migrationView{
		StorageType: string(db.Engine()), Location: db.Location(), CurrentVersion: after.Current,
		Dirty: after.Dirty, LatestVersion: after.Latest, Pending: after.Pending,
	}
	if view.Pending == nil {
		view.Pending = []uint{}
	}
	pending := "none"
	if len(after.Pending) > 0 {
		pending = strings.Trim(fmt.Sprint(after.Pending), "[]")
	}
	return p.Print(view, keyValues("",
		[]string{"Storage Type", view.StorageType},
		[]string{"Location", view.Location},
		[]string{"Current Version", cell(int(view.CurrentVersion))},
		[]string{"Dirty", cell(view.Dirty)},
		[]string{"Latest Version", cell(int(view.LatestVersion))},
		[]string{"Pending", pending},
	))
}
