package command

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/secrethub/secrethub/client"
)

// NewCmdPKI builds `secrethub pki` and its subcommands.
func NewCmdPKI(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pki",
		Short: "Run the certificate authority: CAs, roles, URLs, issue, sign, revoke, CRL",
		Long: `The PKI engine issues X.509 certificates for Core, agents and services. Generate a
root, then an intermediate (which becomes the default issuer), create roles that
say which names may be certified, and issue. With --out-dir certificates are
written as PEM files; private keys are written with mode 0600.`,
	}
	root := &cobra.Command{Use: "root", Short: "Root CAs"}
	root.AddCommand(newCmdPKIGenerate(f, "root"))
	inter := &cobra.Command{Use: "intermediate", Short: "Intermediate CAs"}
	inter.AddCommand(newCmdPKIGenerate(f, "intermediate"))
	role := &cobra.Command{Use: "role", Short: "Create, read and list roles"}
	role.AddCommand(NewCmdPKIRoleCreate(f), NewCmdPKIRoleRead(f), NewCmdPKIRoleList(f))
	config := &cobra.Command{Use: "config", Short: "Engine settings"}
	config.AddCommand(NewCmdPKIConfigURLs(f))
	cmd.AddCommand(root, inter, role, config, NewCmdPKIIssue(f), NewCmdPKISign(f), NewCmdPKIRevoke(f), NewCmdPKIListCerts(f), NewCmdPKICRL(f))
	return cmd
}

// PKIGenerateOptions configure `pki root generate` and `pki intermediate generate`.
type PKIGenerateOptions struct {
	Deps
	Kind    string // root or intermediate
	Request client.CARequest
	OutDir  string
}

func newCmdPKIGenerate(f *Factory, kind string) *cobra.Command {
	opts := &PKIGenerateOptions{Kind: kind}
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Generate a " + kind + " CA (its private key never leaves the server)",
		Example: `  secrethub pki root generate --common-name "SecretHub Root CA" --ttl 87600h --key-type rsa --key-bits 4096
  secrethub pki intermediate generate --common-name "SecretHub Intermediate CA" --ttl 43800h --out-dir ./ca`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Deps = f.deps()
			return runPKIGenerate(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Request.CommonName, "common-name", "", "the CA's common name (required)")
	fl.StringVar(&opts.Request.TTL, "ttl", "", "lifetime, such as 87600h")
	fl.StringVar(&opts.Request.KeyType, "key-type", "", "rsa, ec or ed25519 (default rsa)")
	fl.IntVar(&opts.Request.KeyBits, "key-bits", 0, "2048, 3072, 4096 (rsa) or 256, 384, 521 (ec)")
	if kind == "intermediate" {
		fl.StringVar(&opts.Request.IssuerID, "issuer-id", "", "issuer that signs it (default: the default issuer)")
	}
	fl.StringVar(&opts.OutDir, "out-dir", "", "write certificate.pem and ca_chain.pem here")
	return cmd
}

func runPKIGenerate(ctx context.Context, opts *PKIGenerateOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	generate := c.PKI().GenerateRoot
	if opts.Kind == "intermediate" {
		generate = c.PKI().GenerateIntermediate
	}
	iss, err := generate(ctx, opts.Request)
	if err != nil {
		return fmt.Errorf("generating the %s CA: %w", opts.Kind, err)
	}
	if err := writePEMFiles(opts.OutDir, iss.Certificate, iss.CAChain, ""); err != nil {
		return err
	}
	return p.Print(iss, keyValues("",
		[]string{"issuer_id", iss.IssuerID},
		[]string{"common_name", iss.CommonName},
		[]string{"serial_number", iss.SerialNumber},
		[]string{"expiration", iss.Expiration.String()},
		[]string{"key_type", iss.KeyType},
		[]string{"is_default", cell(iss.IsDefault)},
	))
}

// writePEMFiles writes certificate.pem, ca_chain.pem (0644) and, when
// given, private_key.pem (0600) into dir, made 0700 if new; an empty dir
// writes nothing.
func writePEMFiles(dir, cert string, chain []string, key string) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := writeFileAtomic(dir, "certificate.pem", []byte(cert), 0o644); err != nil {
		return err
	}
	if err := writeFileAtomic(dir, "ca_chain.pem", []byte(strings.Join(chain, "")), 0o644); err != nil {
		return err
	}
	if key == "" {
		return nil
	}
	return writeFileAtomic(dir, "private_key.pem", []byte(key), 0o600)
}

// writeFileAtomic writes dir/name through a new temporary file in dir
// (created exclusively, given mode before any byte) renamed over the
// name, so the file never has another mode, is never seen half written,
// and a symlink planted at the name is replaced rather than followed.
func writeFileAtomic(dir, name string, body []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(body)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// PKIRoleCreateOptions configure `pki role create`.
type PKIRoleCreateOptions struct {
	Deps
	Name string
	Role client.PKIRole
}

// NewCmdPKIRoleCreate builds `pki role create`.
func NewCmdPKIRoleCreate(f *Factory) *cobra.Command {
	opts := &PKIRoleCreateOptions{}
	var ttl, maxTTL string
	cmd := &cobra.Command{
		Use:     "create NAME",
		Aliases: []string{"write"},
		Short:   "Create or replace a role (flags left out take a new role's defaults)",
		Example: `  secrethub pki role create core --allowed-domain secrethub.company.com --allow-subdomains --key-type ec --max-ttl 720h`,
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if ttl != "" {
				opts.Role.TTL = ttl
			}
			if maxTTL != "" {
				opts.Role.MaxTTL = maxTTL
			}
			opts.Deps = f.deps()
			return runPKIRoleCreate(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	r := &opts.Role
	fl.StringVar(&r.IssuerID, "issuer-id", "", "issuer to issue from (default: the default issuer)")
	fl.StringArrayVar(&r.AllowedDomains, "allowed-domain", nil, "domain names may be in (repeatable)")
	fl.BoolVar(&r.AllowSubdomains, "allow-subdomains", false, "allow names below the allowed domains")
	fl.BoolVar(&r.AllowBareDomains, "allow-bare-domains", false, "allow the allowed domains themselves")
	fl.BoolVar(&r.AllowAnyName, "allow-any-name", false, "allow any name")
	fl.BoolVar(&r.AllowIPSANs, "allow-ip-sans", true, "allow IP subject alternative names")
	fl.BoolVar(&r.ServerFlag, "server-flag", true, "certificates are good for TLS servers")
	fl.BoolVar(&r.ClientFlag, "client-flag", true, "certificates are good for TLS clients")
	fl.StringVar(&r.KeyType, "key-type", "", "rsa, ec, ed25519 or any (sign only)")
	fl.IntVar(&r.KeyBits, "key-bits", 0, "key size (rsa) or curve (ec)")
	fl.StringVar(&ttl, "ttl", "", "default certificate lifetime, such as 720h")
	fl.StringVar(&maxTTL, "max-ttl", "", "longest certificate lifetime")
	return cmd
}

func runPKIRoleCreate(ctx context.Context, opts *PKIRoleCreateOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	if err := c.PKI().WriteRole(ctx, opts.Name, opts.Role); err != nil {
		return fmt.Errorf("writing PKI role %s: %w", opts.Name, err)
	}
	p.Success("PKI role %s written.", opts.Name)
	return nil
}

// PKIRoleReadOptions configure `pki role read`.
type PKIRoleReadOptions struct {
	Deps
	Name string
}

// NewCmdPKIRoleRead builds `pki role read`.
func NewCmdPKIRoleRead(f *Factory) *cobra.Command {
	opts := &PKIRoleReadOptions{}
	return &cobra.Command{
		Use:   "read NAME",
		Short: "Show a role's settings",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name, opts.Deps = args[0], f.deps()
			return runPKIRoleRead(cmd.Context(), opts)
		},
	}
}

func runPKIRoleRead(ctx context.Context, opts *PKIRoleReadOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	r, err := c.PKI().ReadRole(ctx, opts.Name)
	if errors.Is(err, client.ErrNotFound) {
		return fmt.Errorf("no PKI role named %s: %w", opts.Name, err)
	}
	if err != nil {
		return fmt.Errorf("reading PKI role %s: %w", opts.Name, err)
	}
	return p.Print(r, keyValues("",
		[]string{"issuer_id", r.IssuerID}, []string{"allowed_domains", cell(r.AllowedDomains)},
		[]string{"allow_subdomains", cell(r.AllowSubdomains)}, []string{"allow_bare_domains", cell(r.AllowBareDomains)},
		[]string{"allow_any_name", cell(r.AllowAnyName)}, []string{"allow_ip_sans", cell(r.AllowIPSANs)},
		[]string{"server_flag", cell(r.ServerFlag)}, []string{"client_flag", cell(r.ClientFlag)},
		[]string{"key_type", r.KeyType}, []string{"key_bits", cell(r.KeyBits)},
		[]string{"ttl", cell(r.TTL)}, []string{"max_ttl", cell(r.MaxTTL)},
	))
}

// PKIListOptions configure the listing commands.
type PKIListOptions struct {
	Deps
	list func(ctx context.Context, c *client.Client) ([]string, error)
	what string
}

func newCmdPKIList(f *Factory, use, short, what string, list func(context.Context, *client.Client) ([]string, error)) *cobra.Command {
	opts := &PKIListOptions{list: list, what: what}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Deps = f.deps()
			return runPKIList(cmd.Context(), opts)
		},
	}
}

// NewCmdPKIRoleList builds `pki role list`.
func NewCmdPKIRoleList(f *Factory) *cobra.Command {
	return newCmdPKIList(f, "list", "List the roles", "PKI roles",
		func(ctx context.Context, c *client.Client) ([]string, error) { return c.PKI().ListRoles(ctx) })
}

// NewCmdPKIListCerts builds `pki list-certs`.
func NewCmdPKIListCerts(f *Factory) *cobra.Command {
	return newCmdPKIList(f, "list-certs", "List the serial numbers of issued certificates", "certificates",
		func(ctx context.Context, c *client.Client) ([]string, error) { return c.PKI().ListCertificates(ctx) })
}

func runPKIList(ctx context.Context, opts *PKIListOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	keys, err := opts.list(ctx, c)
	if errors.Is(err, client.ErrNotFound) {
		keys, err = []string{}, nil // the server's way of saying there are none
	}
	if err != nil {
		return fmt.Errorf("listing %s: %w", opts.what, err)
	}
	return printKeys(p, keys)
}

// PKIIssueOptions configure `pki issue` and `pki sign`.
type PKIIssueOptions struct {
	Deps
	Role    string
	Request client.IssueRequest
	CSR     string // sign only: PEM, or @file
	OutDir  string
}

// NewCmdPKIIssue builds `pki issue`.
func NewCmdPKIIssue(f *Factory) *cobra.Command {
	opts := &PKIIssueOptions{}
	cmd := &cobra.Command{
		Use:     "issue ROLE",
		Short:   "Issue a certificate and a new private key under a role",
		Example: `  secrethub pki issue core --common-name core-1.secrethub.company.com --ip-san 10.0.0.11 --out-dir /etc/secrethub/tls`,
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Role, opts.Deps = args[0], f.deps()
			return runPKIIssue(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Request.CommonName, "common-name", "", "the certificate's common name (required)")
	fl.StringArrayVar(&opts.Request.AltNames, "alt-name", nil, "DNS subject alternative name (repeatable)")
	fl.StringArrayVar(&opts.Request.IPSANs, "ip-san", nil, "IP subject alternative name (repeatable)")
	fl.StringVar(&opts.Request.TTL, "ttl", "", "lifetime (default: the role's)")
	fl.StringVar(&opts.OutDir, "out-dir", "", "write certificate.pem, ca_chain.pem and private_key.pem (0600) here")
	return cmd
}

// NewCmdPKISign builds `pki sign`.
func NewCmdPKISign(f *Factory) *cobra.Command {
	opts := &PKIIssueOptions{}
	cmd := &cobra.Command{
		Use:     "sign ROLE",
		Short:   "Sign a CSR under a role (its names must be allowed by the role)",
		Example: `  secrethub pki sign core --csr @core-1.csr --out-dir ./tls`,
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Role, opts.Deps = args[0], f.deps()
			return runPKISign(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.CSR, "csr", "", "the CSR: PEM text or @file (required)")
	fl.StringVar(&opts.Request.TTL, "ttl", "", "lifetime (default: the role's)")
	fl.StringVar(&opts.OutDir, "out-dir", "", "write certificate.pem and ca_chain.pem here")
	return cmd
}

func runPKIIssue(ctx context.Context, opts *PKIIssueOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	cert, err := c.PKI().Issue(ctx, opts.Role, opts.Request)
	if err != nil {
		return fmt.Errorf("issuing under role %s: %w", opts.Role, err)
	}
	return printIssued(p, opts.OutDir, cert)
}

func runPKISign(ctx context.Context, opts *PKIIssueOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	csr := opts.CSR
	if name, ok := strings.CutPrefix(csr, "@"); ok {
		b, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		csr = string(b)
	}
	if csr == "" {
		return errors.New("--csr is required (PEM text or @file)")
	}
	var ttl time.Duration
	if opts.Request.TTL != "" {
		if ttl, err = durationFlag("ttl", opts.Request.TTL); err != nil {
			return err
		}
	}
	cert, err := c.PKI().Sign(ctx, opts.Role, csr, ttl)
	if err != nil {
		return fmt.Errorf("signing under role %s: %w", opts.Role, err)
	}
	return printIssued(p, opts.OutDir, cert)
}

// printIssued writes the files and prints the certificate's serial and
// expiry; the private key is only ever written to a file (or with -format=json).
func printIssued(p *Printer, dir string, cert *client.Certificate) error {
	if err := writePEMFiles(dir, cert.Certificate, cert.CAChain, cert.PrivateKey); err != nil {
		return err
	}
	rows := [][]string{{"serial_number", cert.SerialNumber}, {"expiration", cert.Expiration.String()}}
	if dir != "" {
		rows = append(rows, []string{"written_to", dir})
	} else {
		rows = append(rows, []string{"certificate", cert.Certificate})
	}
	return p.Print(cert, keyValues("", rows...))
}

// PKIRevokeOptions configure `pki revoke`.
type PKIRevokeOptions struct {
	Deps
	Serial string
}

// NewCmdPKIRevoke builds `pki revoke`.
func NewCmdPKIRevoke(f *Factory) *cobra.Command {
	opts := &PKIRevokeOptions{}
	return &cobra.Command{
		Use:   "revoke SERIAL",
		Short: "Revoke a certificate; the CRL is rebuilt at once",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Serial, opts.Deps = args[0], f.deps()
			return runPKIRevoke(cmd.Context(), opts)
		},
	}
}

func runPKIRevoke(ctx context.Context, opts *PKIRevokeOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	at, err := c.PKI().Revoke(ctx, opts.Serial)
	if err != nil {
		return fmt.Errorf("revoking %s: %w", opts.Serial, err)
	}
	p.Success("Certificate %s revoked at %s.", opts.Serial, at)
	return nil
}

// PKICRLOptions configure `pki crl`.
type PKICRLOptions struct {
	Deps
	OutDir string
}

// NewCmdPKICRL builds `pki crl`.
func NewCmdPKICRL(f *Factory) *cobra.Command {
	opts := &PKICRLOptions{}
	cmd := &cobra.Command{
		Use:   "crl",
		Short: "Fetch the default issuer's CRL (PEM) to stdout or --out-dir/crl.pem",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Deps = f.deps()
			return runPKICRL(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.OutDir, "out-dir", "", "write crl.pem here")
	return cmd
}

func runPKICRL(ctx context.Context, opts *PKICRLOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	crl, err := c.PKI().CRL(ctx)
	if err != nil {
		return fmt.Errorf("fetching the CRL: %w", err)
	}
	if opts.OutDir == "" {
		_, err = opts.IO.Out.Write(crl)
		return err
	}
	if err := os.MkdirAll(opts.OutDir, 0o700); err != nil {
		return err
	}
	return writeFileAtomic(opts.OutDir, "crl.pem", crl, 0o644)
}

// PKIConfigURLsOptions configure `pki config urls`.
type PKIConfigURLsOptions struct {
	Deps
	// URLs are the lists to write: nil keeps one, empty clears it. With
	// all three nil the command reads.
	URLs client.PKIURLs
}

// NewCmdPKIConfigURLs builds `pki config urls`.
func NewCmdPKIConfigURLs(f *Factory) *cobra.Command {
	opts := &PKIConfigURLsOptions{}
	var issuing, crl, ocsp []string
	cmd := &cobra.Command{
		Use:   "urls",
		Short: "Show or set the issuer, CRL and OCSP URLs written into certificates",
		Long: `Without flags, show the URLs every certificate signed carries: where its issuer's
certificate (AIA caIssuers), the CRL (CRL distribution points) and the OCSP
responder (AIA OCSP) are published. With flags, set the lists given; the others
keep their value, and an empty value clears a list (--ocsp-servers=). Each URL
must be an absolute http or https URL. Certificates signed before keep theirs.`,
		Example: `  secrethub pki config urls
  secrethub pki config urls --issuing-certificates https://ca.example.com/v1/pki/ca/pem \
      --crl-distribution-points https://ca.example.com/v1/pki/crl --ocsp-servers https://ca.example.com/v1/pki/ocsp`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			fl := cmd.Flags()
			for _, l := range []struct {
				flag string
				val  []string
				dst  *[]string
			}{
				{"issuing-certificates", issuing, &opts.URLs.IssuingCertificates},
				{"crl-distribution-points", crl, &opts.URLs.CRLDistributionPoints},
				{"ocsp-servers", ocsp, &opts.URLs.OCSPServers},
			} {
				if fl.Changed(l.flag) {
					*l.dst = nonEmpty(l.val)
				}
			}
			opts.Deps = f.deps()
			return runPKIConfigURLs(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&issuing, "issuing-certificates", nil, "URL of the issuer's certificate (repeatable)")
	fl.StringArrayVar(&crl, "crl-distribution-points", nil, "URL of the CRL (repeatable)")
	fl.StringArrayVar(&ocsp, "ocsp-servers", nil, "URL of the OCSP responder (repeatable)")
	return cmd
}

func runPKIConfigURLs(ctx context.Context, opts *PKIConfigURLsOptions) error {
	p, c, err := opts.connect()
	if err != nil {
		return err
	}
	u := opts.URLs
	var urls *client.PKIURLs
	if u.IssuingCertificates == nil && u.CRLDistributionPoints == nil && u.OCSPServers == nil {
		if urls, err = c.PKI().URLs(ctx); err != nil {
			return fmt.Errorf("reading the PKI URLs: %w", err)
		}
	} else if urls, err = c.PKI().SetURLs(ctx, u); err != nil {
		return fmt.Errorf("setting the PKI URLs: %w", err)
	}
	return p.Print(urls, keyValues("",
		[]string{"issuing_certificates", cell(urls.IssuingCertificates)},
		[]string{"crl_distribution_points", cell(urls.CRLDistributionPoints)},
		[]string{"ocsp_servers", cell(urls.OCSPServers)},
	))
}
