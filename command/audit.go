package command

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/secrethub/secrethub/client"
	"github.com/secrethub/secrethub/server"
)

// errAuditFailed makes `audit verify` exit 2 once it has shown what is
// wrong: the log was tampered with, as distinct from an error (1).
var errAuditFailed = &exitError{code: 2}

// errAuditOverdue makes `audit verify` exit 3: the log verifies, but a
// node's events have gone longer without a checkpoint than a running,
// unsealed node ever leaves them.
var errAuditOverdue = &exitError{code: 3}

// NewCmdAudit builds `secrethub audit` and its subcommands.
func NewCmdAudit(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "List, export, verify and prune the audit log",
		Long: `Every request to /v1 is recorded as an audit event before it is served: who
asked (token accessor, client IP, auth method), for what (operation, path,
capability), what the policies decided, and how it ended (status, error,
latency). Each node chains its events with SHA-256 and checkpoints the chain
with a key only an unsealed cluster holds, so 'audit verify' finds any event
that was changed, deleted, inserted, reordered or cut off.

Nothing secret is stored in the clear: tokens that did not authenticate and
every string in a request body appear as HMACs. 'audit hash' gives the HMAC
of a value, to search the log for it.

Times (--since, --until, --before) are RFC 3339 (2026-05-01T12:00:00Z), a
date (2026-05-01, midnight UTC), or a duration ago (30m, 24h, 7d).`,
	}
	cmd.AddCommand(NewCmdAuditList(f), NewCmdAuditExport(f), NewCmdAuditVerify(f), NewCmdAuditPrune(f), NewCmdAuditHash(f))
	return cmd
}

// timeFlag reads a time flag: RFC 3339, a date (midnight UTC, as the API
// reads dates) or a duration before now (30m, 24h, 7d), in whole seconds.
func timeFlag(name, raw string, now time.Time) (time.Time, error) {
	raw = strings.TrimSpace(raw)
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
		if t, err := time.Parse(layout, raw); err == nil {
			return t, nil
		}
	}
	// A bare number would be ambiguous (seconds? a year?): a unit is needed.
	if raw != "" && strings.IndexFunc(raw, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		if d, err := server.ParseDuration(raw); err == nil && d > 0 {
			return now.Add(-d).Truncate(time.Second), nil
		}
	}
	return time.Time{}, fmt.Errorf("--%s must be an RFC 3339 time (2026-05-01T12:00:00Z), a date (2026-05-01) or a duration ago (24h, 7d), got %q", name, raw)
}

// auditFilterFlags are the flags that select events, shared by `audit
// list` and `audit export`.
type auditFilterFlags struct {
	since, until string
	filter       client.AuditFilter
}

func (a *auditFilterFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&a.since, "since", "", "only events at or after this time")
	fs.StringVar(&a.until, "until", "", "only events before this time (default: when the command started, by the server's clock)")
	fs.StringVar(&a.filter.Path, "path", "", "only requests whose URL path starts with this (such as /v1/secrets/)")
	fs.StringVar(&a.filter.Accessor, "accessor", "", "only requests made with the token of this accessor")
	fs.StringVar(&a.filter.Decision, "decision", "", "only requests the policies decided so: allow, deny or none (never decided)")
	fs.StringVar(&a.filter.Node, "node", "", "only events of this node")
}

// resolveByServer checks the flags (before any request), then resolves
// them by the server's clock: the log's times are the server's, so --until's
// default and durations ago are reckoned by it, whatever this machine's
// clock says. The server tells its time to the second only, so a clock
// here that agrees with it to the second is kept (it is finer); one further
// off gives way to the end of the server's second (which takes in at most
// a second of the command's own reads). A server that does not tell it
// leaves this machine's.
func (a *auditFilterFlags) resolveByServer(ctx context.Context, f *Factory) (client.AuditFilter, error) {
	local := time.Now()
	if _, err := a.resolve(local); err != nil && (a.since == "" || a.until != "") {
		return client.AuditFilter{}, err // not a question of whose clock
	}
	c, err := f.client()
	if err != nil {
		return client.AuditFilter{}, err
	}
	h, err := c.Sys().Health(ctx)
	if err != nil {
		return client.AuditFilter{}, err
	}
	now := local
	if server := time.Unix(h.ServerTimeUTC, 0); h.ServerTimeUTC > 0 && (server.Sub(local) > time.Second || local.Sub(server) > 2*time.Second) {
		now = server.Add(time.Second) // the end of the server's second, so its events so far are in
	}
	return a.resolve(now)
}

// resolve checks the flags and returns the filter they describe.
func (a *auditFilterFlags) resolve(now time.Time) (client.AuditFilter, error) {
	f := a.filter
	var err error
	if a.since != "" {
		if f.Since, err = timeFlag("since", a.since, now); err != nil {
			return f, err
		}
	}
	if a.until != "" {
		if f.Until, err = timeFlag("until", a.until, now); err != nil {
			return f, err
		}
	} else {
		// Every page read is itself an event, after the cursor: without a
		// bound, --all and export would chase the log's end for ever.
		f.Until = now
	}
	if !f.Since.IsZero() && !f.Since.Before(f.Until) {
		if a.until == "" {
			return f, fmt.Errorf("--since (%s) is not in the past by the server's clock: give --until too to read events after it", f.Since.UTC().Format(time.RFC3339))
		}
		return f, fmt.Errorf("--since (%s) must be before --until (%s)", f.Since.UTC().Format(time.RFC3339), f.Until.UTC().Format(time.RFC3339))
	}
	switch f.Decision {
	case "", client.AuditDecisionAllow, client.AuditDecisionDeny, client.AuditDecisionNone:
	default:
		return f, fmt.Errorf("--decision must be allow, deny or none, got %q", f.Decision)
	}
	return f, nil
}

// AuditListOptions configure `audit list`.
type AuditListOptions struct {
	Deps
	Filter client.AuditFilter
	// All follows the cursors to the last page.
	All bool
}

// NewCmdAuditList builds `audit list`.
func NewCmdAuditList(f *Factory) *cobra.Command {
	opts := &AuditListOptions{}
	var flags auditFilterFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Show audit events, oldest first, a page at a time",
		Long: `Show the audit events that the flags select, oldest first: by default one page
(--limit events, the server's default 100), then how to get the next; with
--all every page. -format=json prints the events as a JSON array, each as the
API returns it. To save or ship many events, 'audit export' streams them.`,
		Example: `  secrethub audit list --since 24h --decision deny
  secrethub audit list --path /v1/secrets/prod/ --all
  secrethub audit list --accessor 5f1c… -format=json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Filter, err = flags.resolveByServer(cmd.Context(), f); err != nil {
				return err
			}
			if opts.Filter.Limit, err = pageLimit(cmd.Flags()); err != nil {
				return err
			}
			opts.Filter.After, _ = cmd.Flags().GetString("after")
			opts.Deps = f.deps()
			return runAuditList(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	flags.add(fl)
	fl.Int("limit", 0, fmt.Sprintf("events a page, 1 to %d (default the server's, 100)", client.AuditMaxPage))
	fl.String("after", "", "start after this cursor (printed when more events follow)")
	fl.BoolVar(&opts.All, "all", false, "show every page, not only the first")
	return cmd
}

// pageLimit reads --limit: 0 when not given, else 1 to AuditMaxPage.
func pageLimit(fs *pflag.FlagSet) (int, error) {
	n, err := fs.GetInt("limit")
	if err != nil {
		return 0, err
	}
	if fs.Changed("limit") && (n < 1 || n > client.AuditMaxPage) {
		return 0, fmt.Errorf("--limit must be from 1 to %d, got %d", client.AuditMaxPage, n)
	}
	return n, nil
}

func runAuditList(ctx context.Context, opts *AuditListOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	var (
		events []client.AuditEvent
		next   string
	)
	if opts.All {
		err = c.Audit().EachEvent(ctx, opts.Filter, func(e client.AuditEvent) error {
			events = append(events, e)
			return nil
		})
	} else {
		events, next, err = c.Audit().Events(ctx, opts.Filter)
	}
	if err != nil {
		return fmt.Errorf("listing audit events: %w", err)
	}
	raw := make([]json.RawMessage, len(events))
	rows := make([][]string, len(events))
	for i, e := range events {
		raw[i] = e.Raw
		rows[i] = []string{e.Time.UTC().Format(client.AuditTimeLayout), printable(e.Node), strconv.FormatInt(e.Seq, 10),
			auditStatus(e), printable(e.Decision), printable(e.Operation), printable(e.Path), orNA(printable(e.TokenAccessor))}
	}
	if len(events) == 0 && !p.json {
		fmt.Fprintln(opts.IO.Out, "No audit events match.")
	} else if err := p.Print(raw, Section{
		Header: []string{"Time", "Node", "Seq", "Status", "Decision", "Method", "Path", "Accessor"}, Rows: rows,
	}); err != nil {
		return err
	}
	if next != "" {
		hint := "More events follow: add --all, or --after=" + next + " for the next page."
		if p.json {
			fmt.Fprintln(opts.IO.ErrOut, hint)
		} else {
			p.Note(hint)
		}
	}
	return nil
}

// printable escapes what a terminal would act on rather than show (control
// characters such as ESC, bidirectional overrides): an event's path is
// whatever an unauthenticated client sent, and must not drive the
// operator's terminal. JSON output escapes them by itself.
func printable(s string) string {
	escape := func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) }
	if strings.IndexFunc(s, escape) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case !escape(r):
			b.WriteRune(r)
		case r < 0x80:
			fmt.Fprintf(&b, "\\x%02x", r)
		default:
			fmt.Fprintf(&b, "\\u%04x", r)
		}
	}
	return b.String()
}

// auditStatus is an event's HTTP status, or n/a before its outcome is stored.
func auditStatus(e client.AuditEvent) string {
	if !e.HasOutcome() {
		return "n/a"
	}
	return strconv.Itoa(*e.Status)
}

// The formats of `audit export`.
const (
	ExportJSONL = "jsonl"
	ExportCSV   = "csv"
)

// AuditExportOptions configure `audit export`.
type AuditExportOptions struct {
	IO     *IOStreams
	Client func() (*client.Client, error)
	Filter client.AuditFilter
	// Format is ExportJSONL or ExportCSV.
	Format string
	// Output is the file to create; "" is standard output.
	Output string
}

// NewCmdAuditExport builds `audit export`.
func NewCmdAuditExport(f *Factory) *cobra.Command {
	opts := &AuditExportOptions{}
	var flags auditFilterFlags
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Stream every matching audit event as JSON lines or CSV",
		Long: `Write every audit event that the flags select, oldest first, reading the log a
page at a time, to standard output or to a new file (--output, created with
mode 0600; an existing file is never overwritten, and a failed export removes
its file).

Here --format is the export format, not the table|json output format of the
other commands:
  jsonl  one event a line, each exactly the JSON object the API returns
  csv    a header row, then one row an event with every field: policies joined
         by ';', request_data as its JSON text, an outcome not yet stored as
         empty cells. Values are written as stored, not escaped for
         spreadsheets: import them as text.`,
		Example: `  secrethub audit export --format jsonl --since 2026-05-01 > may.jsonl
  secrethub audit export --format csv --decision deny --output denials.csv`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Filter, err = flags.resolveByServer(cmd.Context(), f); err != nil {
				return err
			}
			opts.IO, opts.Client = f.IO, f.client
			return runAuditExport(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	flags.add(fl)
	// It shadows the global --format, which means table or json.
	fl.StringVar(&opts.Format, "format", ExportJSONL, "export format: jsonl or csv")
	fl.StringVar(&opts.Output, "output", "", "create this file (mode 0600) instead of writing to standard output")
	return cmd
}

func runAuditExport(ctx context.Context, opts *AuditExportOptions) error {
	switch opts.Format {
	case ExportJSONL, ExportCSV:
	case FormatJSON, FormatTable:
		return fmt.Errorf("audit export writes jsonl or csv, not %s: its --format is the export format, not the table|json output format of the other commands", opts.Format)
	default:
		return fmt.Errorf("--format must be jsonl or csv, got %q", opts.Format)
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	out, finish, err := exportTarget(opts.IO, opts.Output)
	if err != nil {
		return err
	}
	n, err := writeExport(ctx, c, opts.Filter, opts.Format, out)
	if err = finish(err); err != nil {
		return err
	}
	if opts.Output == "" {
		fmt.Fprintf(opts.IO.ErrOut, "Exported %d audit events.\n", n)
	} else {
		fmt.Fprintf(opts.IO.Out, "Success! Exported %d audit events to %s.\n", n, opts.Output)
	}
	return nil
}

// writeExport writes every event f selects to out in format, page by
// page, and returns how many it wrote. What was written before an error is
// flushed, so the output ends with a whole event.
func writeExport(ctx context.Context, c *client.Client, f client.AuditFilter, format string, out io.Writer) (int64, error) {
	var (
		write func(client.AuditEvent) error
		flush func(failed bool) error // failed: the export stopped on an error
	)
	if format == ExportCSV {
		// The header goes with the first row, or alone at the end of an
		// export that found nothing: an export refused outright (a token
		// without access) writes nothing a script could take for an
		// empty log.
		cw := csv.NewWriter(out)
		headed := false
		head := func() error {
			if headed {
				return nil
			}
			headed = true
			return cw.Write(auditCSVHeader)
		}
		write = func(e client.AuditEvent) error {
			if err := head(); err != nil {
				return err
			}
			return cw.Write(auditCSVRow(e))
		}
		flush = func(failed bool) error {
			if !failed { // an empty export is a header alone
				if err := head(); err != nil {
					return err
				}
			}
			cw.Flush()
			return cw.Error()
		}
	} else {
		buf := bufio.NewWriterSize(out, 64<<10)
		write = func(e client.AuditEvent) error {
			if _, err := buf.Write(e.Raw); err != nil {
				return err
			}
			return buf.WriteByte('\n')
		}
		flush = func(bool) error { return buf.Flush() }
	}
	var n int64
	err := c.Audit().EachEvent(ctx, f, func(e client.AuditEvent) error {
		if err := write(e); err != nil {
			return fmt.Errorf("writing the export: %w", err)
		}
		n++
		return nil
	})
	if ferr := flush(err != nil); err == nil && ferr != nil {
		err = fmt.Errorf("writing the export: %w", ferr)
	}
	if err != nil {
		return n, fmt.Errorf("exporting audit events (stopped after %d): %w", n, err)
	}
	return n, nil
}

// exportTarget opens where an export goes: standard output, or a new file
// readable by its owner only. finish closes it and, when the export
// failed, removes the file, so a partial export is never mistaken for a
// whole one; it returns the export's error, or closing's.
func exportTarget(streams *IOStreams, path string) (io.Writer, func(error) error, error) {
	if path == "" {
		return streams.Out, func(err error) error { return err }, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil, nil, fmt.Errorf("--output %s exists: an export never overwrites a file; remove it or choose another name", path)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("creating the export file: %w", err)
	}
	finish := func(err error) error {
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("closing %s: %w", path, cerr)
		}
		if err != nil {
			_ = os.Remove(path)
			return fmt.Errorf("%w (the partial export %s was removed)", err, path)
		}
		return nil
	}
	return f, finish, nil
}

// auditCSVHeader names the columns of a CSV export: every field of an
// event, named as in its JSON.
var auditCSVHeader = []string{
	"node", "seq", "time", "request_id", "client_ip", "token_accessor", "token_hmac", "auth_method",
	"operation", "path", "resource", "capability", "policies", "decision", "request_data",
	"prev_hash", "hash", "status", "error", "latency_us", "outcome_mac",
}

// auditCSVRow is an event as a CSV row in auditCSVHeader's order.
func auditCSVRow(e client.AuditEvent) []string {
	data := string(e.RequestData)
	if data == "null" {
		data = ""
	}
	var status, errMsg, latency, mac string
	if e.Status != nil {
		status = strconv.Itoa(*e.Status)
	}
	if e.Error != nil {
		errMsg = *e.Error
	}
	if e.LatencyUS != nil {
		latency = strconv.FormatInt(*e.LatencyUS, 10)
	}
	if e.OutcomeMAC != nil {
		mac = *e.OutcomeMAC
	}
	return []string{
		e.Node, strconv.FormatInt(e.Seq, 10), e.Time.UTC().Format(client.AuditTimeLayout), e.RequestID, e.ClientIP,
		e.TokenAccessor, e.TokenHMAC, e.AuthMethod, e.Operation, e.Path, e.Resource, e.Capability,
		strings.Join(e.Policies, ";"), e.Decision, data, e.PrevHash, e.Hash, status, errMsg, latency, mac,
	}
}

// AuditVerifyOptions configure `audit verify`.
type AuditVerifyOptions struct {
	Deps
}

// NewCmdAuditVerify builds `audit verify`.
func NewCmdAuditVerify(f *Factory) *cobra.Command {
	opts := &AuditVerifyOptions{}
	return &cobra.Command{
		Use:   "verify",
		Short: "Recompute every node's hash chain and name the first bad event",
		Long: `Have the server recompute every stored event's hash, node by node, and check
the chains against their authenticated checkpoints and outcome MACs. A clean
log prints OK and each node's counts. A changed, deleted, inserted or
reordered event, a cut-off tail, or a forged checkpoint or outcome prints the
kind of problem, the node, the seq and what was found.

Events after a node's last checkpoint ("unanchored") verify as a chain, but
only the next checkpoint (every 1000 events or 5 seconds) vouches for them.
When a node's unanchored events span more than two minutes, began more than an
hour ago, or (for a node no checkpoint ever covered) more than two minutes ago,
its checkpoint is overdue: the node was sealed while requests came in, or
stopped abruptly and has not run unsealed since (unseal or restart it, and its
next checkpoint covers them), or checkpoints were removed from the database so
that what they vouched for could be rewritten.

A server that starts under a node's name continues from the events it finds
unanchored as it finds them ("adopted"), and records so in the log (an event
with path audit:adopted); the Adopted column counts them and shows the
longest range. An abrupt stop, or a stop while sealed, leaves a few
seconds' worth; a long range, or one where the node never stopped, is what a
stopped node's events rewritten in the database (checkpoints deleted) look
like once it restarts.

Exit codes: 0 the log verifies, 2 it does not (tampered), 3 it verifies but a
checkpoint is overdue, 1 an error (such as a sealed server or a token without
read on sys/audit/verify).`,
		Example: `  secrethub audit verify
  secrethub audit verify -format=json || echo "exit $?"`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Deps = f.deps()
			return runAuditVerify(cmd.Context(), opts)
		},
	}
}

func runAuditVerify(ctx context.Context, opts *AuditVerifyOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	rep, err := c.Audit().Verify(ctx)
	if err != nil {
		return fmt.Errorf("verifying the audit log: %w", err)
	}
	result := "OK"
	switch {
	case !rep.OK:
		result = "FAILED: " + rep.Problem.Kind
	case rep.CheckpointOverdue:
		result = "OK, but a checkpoint is overdue: nothing vouches for some events (see Unanchored Since)"
	}
	sections := []Section{keyValues("",
		[]string{"result", result},
		[]string{"events", strconv.FormatInt(rep.Events, 10)},
		[]string{"nodes", strconv.Itoa(len(rep.Nodes))},
	)}
	if pr := rep.Problem; pr != nil {
		sections = append(sections, keyValues("Problem",
			[]string{"kind", pr.Kind},
			[]string{"node", pr.Node},
			[]string{"seq", strconv.FormatInt(pr.Seq, 10)},
			[]string{"detail", pr.Detail},
		))
	}
	nodes := Section{Title: "Nodes", Header: []string{"Node", "Events", "Last Seq", "Pruned Through", "Checkpoints",
		"Anchored", "Unanchored", "Unanchored Since", "Adopted", "Missing Outcomes", "Unauthenticated Outcomes", "Problem"}}
	for _, n := range rep.Nodes {
		problem := "n/a"
		switch {
		case n.Problem != nil:
			problem = fmt.Sprintf("%s at seq %d", n.Problem.Kind, n.Problem.Seq)
		case n.CheckpointOverdue:
			problem = "checkpoint overdue (node sealed or stopped, or checkpoints removed)"
		}
		since := "n/a"
		if !n.UnanchoredSince.IsZero() {
			since = n.UnanchoredSince.UTC().Format(time.RFC3339)
		}
		adopted := "n/a"
		if a := n.LargestAdoption; a != nil {
			adopted = fmt.Sprintf("%d in %d (longest: seq %d-%d, adopted %s)", n.AdoptedEvents, n.Adoptions,
				a.From, a.To, a.At.UTC().Format(time.RFC3339))
		}
		nodes.Rows = append(nodes.Rows, []string{n.Node, cell(n.Events), cell(n.Last), cell(n.PrunedThrough),
			cell(n.Checkpoints), cell(n.Anchored), cell(n.Unanchored), since, adopted, cell(n.MissingOutcomes),
			cell(n.UnauthenticatedOutcomes), problem})
	}
	if err := p.Print(rep, append(sections, nodes)...); err != nil {
		return err
	}
	switch {
	case !rep.OK:
		return errAuditFailed
	case rep.CheckpointOverdue:
		return errAuditOverdue
	}
	return nil
}

// AuditPruneOptions configure `audit prune`.
type AuditPruneOptions struct {
	Deps
	Before time.Time
	// Yes skips the confirmation.
	Yes bool
	// Interactive says whether a confirmation can be asked for, and
	// Confirm asks it.
	Interactive bool
	Confirm     func(ctx context.Context, prompt string) (bool, error)
}

// NewCmdAuditPrune builds `audit prune`.
func NewCmdAuditPrune(f *Factory) *cobra.Command {
	opts := &AuditPruneOptions{}
	var before string
	cmd := &cobra.Command{
		Use:   "prune --before TIME",
		Short: "Delete audit events older than a time, keeping the rest verifiable",
		Long: `Delete, on every node, the audit events older than --before, leaving a
checkpoint where each chain now starts so that what remains still verifies.
Only events a checkpoint already vouches for are deleted: the newest ones
wait for the next prune. A node whose chain fails verification is left
whole (export it first: that is the evidence), and the command fails.

The deletion cannot be undone, so it is confirmed on a terminal; without a
terminal (scripts, cron) it needs --yes. It needs a token with sudo on
sys/audit/prune.`,
		Example: `  secrethub audit prune --before 2026-01-01
  secrethub audit prune --before 365d --yes`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if before == "" {
				return errors.New("--before is required: the time before which events are deleted")
			}
			var err error
			if opts.Before, err = timeFlag("before", before, time.Now()); err != nil {
				return err
			}
			opts.Deps = f.deps()
			opts.Interactive, opts.Confirm = f.IO.Interactive(), f.IO.Confirm
			return runAuditPrune(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&before, "before", "", "delete the events older than this time")
	cmd.Flags().BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

func runAuditPrune(ctx context.Context, opts *AuditPruneOptions) error {
	before := opts.Before.UTC().Format(time.RFC3339Nano)
	if !opts.Yes {
		if !opts.Interactive {
			return errors.New("pruning deletes audit events for good: confirm with --yes (standard input is not a terminal to ask on)")
		}
		ok, err := opts.Confirm(ctx, fmt.Sprintf("Delete the audit events older than %s on every node? This cannot be undone. [y/N]: ", before))
		if err != nil {
			return fmt.Errorf("asking for confirmation: %w", err)
		}
		if !ok {
			return errors.New("not confirmed: nothing was pruned")
		}
	}
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	removed, err := c.Audit().Prune(ctx, opts.Before)
	if err != nil {
		return fmt.Errorf("pruning the audit log: %w", err)
	}
	if p.json {
		return p.Print(map[string]any{"removed": removed, "before": before})
	}
	p.Success("Removed %d audit events older than %s.", removed, before)
	return nil
}

// AuditHashOptions configure `audit hash`.
type AuditHashOptions struct {
	Deps
	// Input is the value to hash; "-" reads it from standard input.
	Input string
}

// NewCmdAuditHash builds `audit hash`.
func NewCmdAuditHash(f *Factory) *cobra.Command {
	opts := &AuditHashOptions{}
	return &cobra.Command{
		Use:   "hash VALUE|-",
		Short: "Print the HMAC that audit events carry for a value",
		Long: `Print the HMAC (hmac-sha256:…) that audit events carry in place of VALUE: a
token, a secret ID, a password, any string of a request body. Search the log
for it with 'audit list -format=json' or an export.

A value on the command line is saved in the shell history: give "-" to read
it from standard input instead (one trailing line ending is dropped). The
output is the bare HMAC, or {"hash": …} with -format=json.`,
		Example: `  secrethub audit hash - < password.txt
  secrethub audit export --format jsonl | grep "$(printf '%s' "$TOKEN" | secrethub audit hash -)"`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Input = args[0]
			opts.Deps = f.deps()
			return runAuditHash(cmd.Context(), opts)
		},
	}
}

func runAuditHash(ctx context.Context, opts *AuditHashOptions) error {
	input := opts.Input
	if input == "-" {
		b, err := opts.IO.ReadAll()
		if err != nil {
			return fmt.Errorf("reading the value from standard input: %w", err)
		}
		input = trimLineEnding(string(b))
	}
	if input == "" {
		// Most likely an unset variable, whose HMAC matches nothing useful.
		return errors.New("the value to hash is empty")
	}
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	hash, err := c.Audit().Hash(ctx, input)
	if err != nil {
		return fmt.Errorf("hashing the value: %w", err)
	}
	if p.json {
		return p.Print(map[string]string{"hash": hash})
	}
	return p.Value(hash)
}
