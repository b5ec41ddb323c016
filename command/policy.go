package command

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/secrethub/secrethub/client"
)

// NewCmdPolicy builds `secrethub policy` and its subcommands.
func NewCmdPolicy(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Write, read, list, delete and simulate policies",
		Long: `Policies grant (or deny) capabilities on paths. A policy is a JSON document:

  {
    "name": "production",
    "timezone": "Europe/Berlin",
    "rules": [
      {"path": "prod/*", "capabilities": ["read"], "effect": "allow",
       "conditions": {"time_of_day": [8, 18], "days_of_week": ["mon", "fri"],
                      "source_ip": "10.0.0.0/8"}}
    ]
  }

Paths are bare secret paths (prod/db) or API paths after /v1/ (sys/seal); a
trailing * matches any remainder and a + segment exactly one segment. A matching
deny beats every allow; no match is a denial. The built-in policies root, admin
and default cannot be written or deleted.`,
	}
	cmd.AddCommand(NewCmdPolicyWrite(f), NewCmdPolicyRead(f), NewCmdPolicyList(f), NewCmdPolicyDelete(f), NewCmdPolicySimulate(f))
	return cmd
}

// PolicyWriteOptions configure `policy write`.
type PolicyWriteOptions struct {
	Deps
	Name string
	// File holds the document; "-" is standard input.
	File string
}

// NewCmdPolicyWrite builds `policy write`.
func NewCmdPolicyWrite(f *Factory) *cobra.Command {
	opts := &PolicyWriteOptions{}
	return &cobra.Command{
		Use:   "write NAME FILE|-",
		Short: "Create or replace a policy from a JSON document",
		Long: `Create or replace the policy NAME with the JSON document in FILE ("-": standard
input). The document's "name" may be left out; if it is given it must be NAME.
The output of 'policy read -format=json' can be written back as it is.`,
		Example: `  secrethub policy write production production.json
  secrethub policy read -format=json production | secrethub policy write production -`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name, opts.File = args[0], args[1]
			opts.Deps = f.deps()
			return runPolicyWrite(cmd.Context(), opts)
		},
	}
}

func runPolicyWrite(ctx context.Context, opts *PolicyWriteOptions) error {
	var (
		raw    []byte
		err    error
		source = opts.File
	)
	if opts.File == "-" {
		source = "standard input"
		raw, err = opts.IO.ReadAll()
	} else {
		raw, err = os.ReadFile(opts.File)
	}
	if err != nil {
		return fmt.Errorf("reading the policy from %s: %w", source, err)
	}
	doc, err := parsePolicyDocument(raw)
	if err != nil {
		return fmt.Errorf("the policy in %s is not a valid document: %w", source, err)
	}
	if doc.Name != "" && doc.Name != opts.Name {
		return fmt.Errorf("the policy in %s is named %q, but NAME is %q: they must agree (or leave \"name\" out of the document)", source, doc.Name, opts.Name)
	}
	doc.Name = opts.Name
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	if err := c.Policy().Write(ctx, doc); err != nil {
		return fmt.Errorf("writing policy %s: %w", opts.Name, err)
	}
	p.Success("Uploaded policy: %s", opts.Name)
	return nil
}

// parsePolicyDocument reads one JSON policy document strictly: a
// misspelt field is an error, not a rule silently left out. The
// "builtin" field of `policy read -format=json` is accepted and ignored.
func parsePolicyDocument(raw []byte) (client.PolicyDocument, error) {
	var doc client.PolicyInfo
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return client.PolicyDocument{}, jsonPosition(raw, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return client.PolicyDocument{}, errors.New("there is more after the JSON document")
	}
	if doc.Rules == nil {
		return client.PolicyDocument{}, errors.New(`it has no "rules" list`)
	}
	return doc.PolicyDocument, nil
}

// jsonPosition adds the line and column to a JSON syntax or type error.
func jsonPosition(raw []byte, err error) error {
	var (
		syntax  *json.SyntaxError
		typeErr *json.UnmarshalTypeError
		offset  int64
	)
	switch {
	case errors.As(err, &syntax):
		offset = syntax.Offset
	case errors.As(err, &typeErr):
		offset = typeErr.Offset
	case errors.Is(err, io.EOF):
		return errors.New("it is empty")
	default:
		return err
	}
	before := raw[:min(int(offset), len(raw))]
	line := bytes.Count(before, []byte("\n")) + 1
	col := len(before) - bytes.LastIndexByte(before, '\n') - 1
	return fmt.Errorf("line %d, column %d: %w", line, col, err)
}

// PolicyReadOptions configure `policy read`.
type PolicyReadOptions struct {
	Deps
	Name string
}

// NewCmdPolicyRead builds `policy read`.
func NewCmdPolicyRead(f *Factory) *cobra.Command {
	opts := &PolicyReadOptions{}
	return &cobra.Command{
		Use:   "read NAME",
		Short: "Show a policy (as a document with -format=json)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			opts.Deps = f.deps()
			return runPolicyRead(cmd.Context(), opts)
		},
	}
}

func runPolicyRead(ctx context.Context, opts *PolicyReadOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	pol, err := c.Policy().Read(ctx, opts.Name)
	if errors.Is(err, client.ErrNotFound) {
		return fmt.Errorf("no policy named %s: %w", opts.Name, err)
	}
	if err != nil {
		return fmt.Errorf("reading policy %s: %w", opts.Name, err)
	}
	timezone := pol.Timezone
	if timezone == "" {
		timezone = "UTC (default)"
	}
	rules := Section{Title: "Rules", Header: []string{"#", "Path", "Capabilities", "Effect", "Conditions"}}
	for i, r := range pol.Rules {
		effect := r.Effect
		if effect == "" {
			effect = "allow"
		}
		rules.Rows = append(rules.Rows, []string{strconv.Itoa(i), r.Path, strings.Join(r.Capabilities, ","), effect, conditionsCell(r.Conditions)})
	}
	return p.Print(pol, keyValues("",
		[]string{"name", pol.Name},
		[]string{"builtin", cell(pol.Builtin)},
		[]string{"timezone", timezone},
	), rules)
}

// conditionsCell shows a rule's conditions on one line.
func conditionsCell(c *client.PolicyConditions) string {
	if c == nil {
		return "none"
	}
	var parts []string
	if len(c.TimeOfDay) == 2 {
		parts = append(parts, fmt.Sprintf("time_of_day=%d-%d", c.TimeOfDay[0], c.TimeOfDay[1]))
	}
	if len(c.DaysOfWeek) > 0 {
		parts = append(parts, "days_of_week="+strings.Join(c.DaysOfWeek, ","))
	}
	if len(c.SourceIP) > 0 {
		parts = append(parts, "source_ip="+strings.Join(c.SourceIP, ","))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// PolicyListOptions configure `policy list`.
type PolicyListOptions struct {
	Deps
}

// NewCmdPolicyList builds `policy list`.
func NewCmdPolicyList(f *Factory) *cobra.Command {
	opts := &PolicyListOptions{}
	return &cobra.Command{
		Use:   "list",
		Short: "List the policies, the built-in ones included",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Deps = f.deps()
			return runPolicyList(cmd.Context(), opts)
		},
	}
}

func runPolicyList(ctx context.Context, opts *PolicyListOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	names, err := c.Policy().List(ctx)
	if err != nil {
		return fmt.Errorf("listing policies: %w", err)
	}
	return printKeys(p, names)
}

// PolicyDeleteOptions configure `policy delete`.
type PolicyDeleteOptions struct {
	Deps
	Name string
}

// NewCmdPolicyDelete builds `policy delete`.
func NewCmdPolicyDelete(f *Factory) *cobra.Command {
	opts := &PolicyDeleteOptions{}
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a policy (tokens that carry it lose what it granted)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			opts.Deps = f.deps()
			return runPolicyDelete(cmd.Context(), opts)
		},
	}
}

func runPolicyDelete(ctx context.Context, opts *PolicyDeleteOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	if err := c.Policy().Delete(ctx, opts.Name); err != nil {
		return fmt.Errorf("deleting policy %s: %w", opts.Name, err)
	}
	p.Success("Deleted policy: %s", opts.Name)
	return nil
}

// PolicySimulateOptions configure `policy simulate`.
type PolicySimulateOptions struct {
	Deps
	// Policies or Token (exactly one) say whose rules are evaluated; a
	// Token of "-" is read from standard input.
	Policies []string
	Token    string
	// Path, Capability, SourceIP and Time describe the request.
	Path       string
	Capability string
	SourceIP   string
	Time       string
}

// NewCmdPolicySimulate builds `policy simulate`.
func NewCmdPolicySimulate(f *Factory) *cobra.Command {
	opts := &PolicySimulateOptions{}
	cmd := &cobra.Command{
		Use:   "simulate (-policy P... | -token T) -path PATH -capability CAP [-source-ip IP] [-time RFC3339]",
		Short: "Show whether a request would be allowed, and by which rule",
		Long: `Evaluate a request against policies without making it: the named policies
(-policy, repeatable) or those of a token (-token; "-token -" reads it from
standard input, keeping it out of the shell history). The answer is the
decision, the policy and rule that decided it, and the condition that kept a
rule from applying. The exit code is 0 whenever the simulation ran, whatever
the decision; 1 on an error.

The client address defaults to this machine's as the server sees it, and the
time to now.`,
		Example: `  secrethub policy simulate -policy=production -path=prod/db -capability=read -source-ip=10.1.2.3
  secrethub policy simulate -token=- -path=sys/seal -capability=sudo -time=2026-01-05T03:00:00Z`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Deps = f.deps()
			return runPolicySimulate(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&opts.Policies, "policy", nil, "policy to evaluate (repeatable)")
	fl.StringVar(&opts.Token, "token", "", `token whose policies are evaluated ("-": read from standard input)`)
	fl.StringVar(&opts.Path, "path", "", "resource: a secret path (prod/db) or an API path after /v1/ (sys/seal)")
	fl.StringVar(&opts.Capability, "capability", "", "create, read, update, delete, list or sudo")
	fl.StringVar(&opts.SourceIP, "source-ip", "", "client address to assume (default: this machine's)")
	fl.StringVar(&opts.Time, "time", "", "moment to assume, RFC 3339 such as 2026-01-05T09:30:00Z (default: now)")
	return cmd
}

func runPolicySimulate(ctx context.Context, opts *PolicySimulateOptions) error {
	req := client.PolicySimulateRequest{
		Policies: opts.Policies, Token: opts.Token, Path: opts.Path, Capability: opts.Capability, SourceIP: opts.SourceIP,
	}
	switch {
	case (len(req.Policies) == 0) == (req.Token == ""):
		return errors.New("give either -policy (repeatable) or -token, not both")
	case req.Path == "":
		return errors.New("-path is required: the secret path or API path to ask about")
	case req.Capability == "":
		return errors.New("-capability is required: create, read, update, delete, list or sudo")
	}
	if req.SourceIP != "" {
		if _, err := netip.ParseAddr(req.SourceIP); err != nil {
			return fmt.Errorf("-source-ip must be an IP address such as 10.1.2.3, got %q", req.SourceIP)
		}
	}
	if opts.Time != "" {
		t, err := time.Parse(time.RFC3339, opts.Time)
		if err != nil {
			return fmt.Errorf("-time must be RFC 3339 such as 2026-01-05T09:30:00Z, got %q", opts.Time)
		}
		req.Time = t
	}
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	if req.Token == "-" {
		if req.Token, err = opts.IO.ReadSecret(ctx, "Token (will be hidden): "); err != nil {
			return fmt.Errorf("reading the token: %w", err)
		}
	}
	sim, err := c.Policy().Simulate(ctx, req)
	if err != nil {
		return fmt.Errorf("simulating %s on %s: %w", req.Capability, req.Path, err)
	}
	return p.Print(sim, simulationSection(sim))
}

// simulationSection shows a simulated decision and what decided it.
func simulationSection(sim *client.PolicySimulation) Section {
	rows := [][]string{
		{"decision", sim.Decision},
		{"policy", orNA(sim.Policy)},
	}
	if r := sim.Rule; r != nil {
		effect := r.Effect
		if effect == "" {
			effect = "allow"
		}
		rows = append(rows,
			[]string{"rule", fmt.Sprintf("#%d: %s %s on %s", r.Index, effect, strings.Join(r.Capabilities, ","), r.Path)},
		)
	} else {
		rows = append(rows, []string{"rule", "n/a"})
	}
	rows = append(rows,
		[]string{"failed_condition", orNA(sim.FailedCondition)},
		[]string{"reason", sim.Reason},
	)
	return keyValues("", rows...)
}

// orNA is s, or "n/a" when it is empty.
func orNA(s string) string {
	if s == "" {
		return "n/a"
	}
	return s
}
