package command

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/secrethub/secrethub/client"
)

// StatusOptions configure `secrethub status`.
type StatusOptions struct {
	Deps
}

// NewCmdStatus builds `secrethub status`.
func NewCmdStatus(f *Factory) *cobra.Command {
	opts := &StatusOptions{}
	return &cobra.Command{
		Use:   "status",
		Short: "Show the seal status of a server",
		Long: `Show the seal status of the server at --address.

Exit codes: 0 unsealed, 2 sealed (or not initialized), 1 an error.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Deps = f.deps()
			return runStatus(cmd.Context(), opts)
		},
	}
}

func runStatus(ctx context.Context, opts *StatusOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	st, err := c.Sys().SealStatus(ctx)
	if err != nil {
		return fmt.Errorf("reading the seal status: %w", err)
	}
	if err := p.Print(st, sealStatusSection(st)); err != nil {
		return err
	}
	if st.Sealed {
		return errSealed
	}
	return nil
}

// sealStatusSection is the seal status as Vault's CLI shows it.
func sealStatusSection(st *client.SealStatus) Section {
	nonce := st.Nonce
	if nonce == "" {
		nonce = "n/a"
	}
	rows := [][]string{
		{"Seal Type", st.Type},
		{"Initialized", cell(st.Initialized)},
		{"Sealed", cell(st.Sealed)},
		{"Total Shares", cell(st.N)},
		{"Threshold", cell(st.T)},
		{"Unseal Progress", fmt.Sprintf("%d/%d", st.Progress, st.T)},
		{"Unseal Nonce", nonce},
		{"Version", st.Version},
		{"Storage Type", st.StorageType},
	}
	if st.ClusterName != "" {
		rows = append(rows, []string{"Cluster Name", st.ClusterName})
	}
	return keyValues("", rows...)
}
