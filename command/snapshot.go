package command

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/secrethub/secrethub/storage"
)

// OperatorSnapshotOptions configure `operator snapshot save|restore`.
type OperatorSnapshotOptions struct {
	IO       *IOStreams
	Settings Settings
	// Restore replaces the data with File; otherwise File is written.
	Restore bool
	File    string
}

// NewCmdOperatorSnapshot builds `operator snapshot` and its subcommands.
func NewCmdOperatorSnapshot(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Save or restore a snapshot of the embedded SQLite store",
		Long: `Save or restore a snapshot of the embedded SQLite store, read directly from
the data directory (chosen exactly as 'secrethub server' chooses it), not
through a server. A snapshot holds what the database holds: secrets stay
encrypted, and restored data unseals with the keys it was initialized with.

Run restore with the server stopped, as the user the server runs as
(sudo -u secrethub secrethub operator snapshot restore FILE) or as root: the
restored database takes the owner and mode of the one it replaces, and any
other user is refused.

PostgreSQL (DATABASE_URL) is backed up with its own tools, as the runbook
does: pg_dump $DATABASE_URL > backup.sql, psql $DATABASE_URL < backup.sql.

` + settingsHelp(),
	}
	addStorageFlags(cmd.PersistentFlags())
	sub := func(restore bool, use, short string) *cobra.Command {
		opts := &OperatorSnapshotOptions{IO: f.IO, Restore: restore}
		return &cobra.Command{
			Use: use, Short: short, Args: usageArgs(cobra.ExactArgs(1)),
			RunE: func(cmd *cobra.Command, args []string) error {
				s, err := loadSettings(cmd.Flags())
				if err != nil {
					return err
				}
				opts.Settings, opts.File = s, args[0]
				return runOperatorSnapshot(cmd.Context(), opts)
			},
		}
	}
	cmd.AddCommand(
		sub(false, "save FILE", "Write a consistent snapshot to FILE (new, mode 0600) while the server runs"),
		sub(true, "restore FILE", "Replace the data with the snapshot in FILE (the server must be stopped)"),
	)
	return cmd
}

func runOperatorSnapshot(ctx context.Context, opts *OperatorSnapshotOptions) error {
	s := opts.Settings
	if s.DatabaseURL != "" {
		return storage.ErrNotEmbedded
	}
	p := &Printer{out: opts.IO.Out}
	if opts.Restore {
		previous, err := storage.RestoreSnapshot(ctx, s.DataDir, opts.File)
		if err != nil {
			if errors.Is(err, storage.ErrDataDirInUse) {
				return fmt.Errorf("%w: stop it before restoring", err)
			}
			return err
		}
		p.Success("Restored %s into %s. Start the server and unseal it with the keys of the snapshot's data.", opts.File, s.DataDir)
		if previous != "" {
			fmt.Fprintf(opts.IO.Out, "The previous database was kept as %s (with its -wal and -shm files, if any); delete it once the restored data is checked.\n", previous)
		}
		return nil
	}
	// Opening would create an empty database where there is none.
	if _, err := os.Stat(filepath.Join(s.DataDir, storage.SQLiteFile)); err != nil {
		return fmt.Errorf("no SecretHub database in %s: %w", s.DataDir, err)
	}
	db, err := storage.Open(ctx, s.Storage(), newLogger(opts.IO.ErrOut, s))
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Snapshot(ctx, opts.File); err != nil {
		return err
	}
	p.Success("Snapshot of %s saved to %s.", db.Location(), opts.File)
	return nil
}
