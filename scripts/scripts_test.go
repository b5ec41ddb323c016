// Package scripts_test checks the operations files shipped in scripts/:
// the Prometheus alert rules, the Grafana dashboard, the systemd units and
// the environment example, against the tools that consume them and against
// a live server's /metrics.
package scripts_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/secrethub/secrethub/client"
	"github.com/secrethub/secrethub/client/clienttest"
	"github.com/secrethub/secrethub/storage/storagetest"
)

const (
	alertsFile    = "prometheus/secrethub-alerts.yml"
	alertTests    = "prometheus/secrethub-alerts.test.yml"
	dashboardFile = "grafana/secrethub-dashboard.json"
)

// needTool skips the test when name is not installed (.ci/run installs
// them); everywhere else the tool's verdict is the test's.
func needTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed", name)
	}
	return path
}

func TestAlertRulesPassPromtool(t *testing.T) {
	promtool := needTool(t, "promtool")
	for _, args := range [][]string{{"check", "rules", alertsFile}, {"test", "rules", alertTests}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// TestAlertRulesKeepTheRunbooksThreeVerbatim: runbook Phase 6.3's rules
// must work unchanged, so they are shipped exactly as written there.
func TestAlertRulesKeepTheRunbooksThreeVerbatim(t *testing.T) {
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	data, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Groups) != 1 || file.Groups[0].Name != "secrethub" {
		t.Fatalf("want the runbook's single group \"secrethub\", got %+v", file.Groups)
	}
	runbook := []rule{
		{Alert: "SecretHubCoreDown", Expr: `up{job="secrethub-core"} == 0`, For: "1m",
			Labels: map[string]string{"severity": "critical"}, Annotations: map[string]string{"summary": "SecretHub Core {{ $labels.instance }} is down"}},
		{Alert: "HighLatency", Expr: `histogram_quantile(0.95, rate(secrethub_request_duration_ms_bucket[5m])) > 100`, For: "5m",
			Labels: map[string]string{"severity": "warning"}, Annotations: map[string]string{"summary": "High latency detected (P95 > 100ms)"}},
		{Alert: "DatabasePoolExhausted", Expr: `secrethub_db_pool_utilization > 90`, For: "5m",
			Labels: map[string]string{"severity": "critical"}, Annotations: map[string]string{"summary": "Database connection pool nearly exhausted"}},
	}
	got := file.Groups[0].Rules
	if len(got) < len(runbook) {
		t.Fatalf("%d rules, want at least the runbook's %d", len(got), len(runbook))
	}
	for i, want := range runbook {
		g := got[i]
		if g.Alert != want.Alert || g.Expr != want.Expr || g.For != want.For ||
			!mapsEqual(g.Labels, want.Labels) || !mapsEqual(g.Annotations, want.Annotations) {
			t.Errorf("rule %d = %+v, want the runbook's %+v", i, g, want)
		}
	}
	var names []string
	for _, r := range got {
		names = append(names, r.Alert)
	}
	for _, want := range []string{"SecretHubSealed", "SecretHubAuditWriteFailures", "SecretHubDatabaseUnreachable", "SecretHubTLSCertificateExpiring", "SecretHubCAExpiring"} {
		if !slices.Contains(names, want) {
			t.Errorf("alert %s missing; have %v", want, names)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// dashboard is the envelope POST /api/dashboards/db takes (runbook 6.2).
type dashboard struct {
	Dashboard *struct {
		ID     *int   `json:"id"`
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	} `json:"dashboard"`
	Overwrite bool `json:"overwrite"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		t.Fatalf("%s is not JSON: %v", dashboardFile, err)
	}
	for k := range top {
		if k != "dashboard" && k != "overwrite" && k != "folderUid" && k != "message" {
			t.Fatalf("%s: key %q is not part of Grafana's /api/dashboards/db body", dashboardFile, k)
		}
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDashboardIsAnImportableEnvelope(t *testing.T) {
	d := readDashboard(t)
	if d.Dashboard == nil || !d.Overwrite {
		t.Fatal(`want {"dashboard":{…},"overwrite":true}`)
	}
	if d.Dashboard.ID != nil || d.Dashboard.UID == "" || d.Dashboard.Title == "" {
		t.Fatalf("the dashboard needs a null id (Grafana assigns it), a fixed uid and a title; got id %v uid %q title %q",
			d.Dashboard.ID, d.Dashboard.UID, d.Dashboard.Title)
	}
	var titles []string
	for _, p := range d.Dashboard.Panels {
		if len(p.Targets) == 0 || p.Targets[0].Expr == "" {
			t.Errorf("panel %q has no query", p.Title)
		}
		titles = append(titles, p.Title)
	}
	for _, want := range []string{"Request rate", "P95 latency", "Error rate", "Sealed per node", "DB pool utilization", "Agents connected", "Active leases", "Audit events"} {
		if !slices.Contains(titles, want) {
			t.Errorf("panel %q missing; have %v", want, titles)
		}
	}
}

var metricName = regexp.MustCompile(`\bsecrethub_[a-z0-9_]+\b`)

// TestRulesAndDashboardQueryOnlyMetricsALiveServerHas scrapes a running
// server: every secrethub_ metric the alert rules or the dashboard name
// must be in its /metrics.
func TestRulesAndDashboardQueryOnlyMetricsALiveServerHas(t *testing.T) {
	srv := clienttest.Unsealed(t, storagetest.SQLite(t))
	// The TLS certificate gauge has a series once the server command has
	// loaded its HTTPS certificate: set it here as that does. The CA
	// gauge's series come from a real CA.
	m := srv.Core.Metrics()
	m.EnableTLSCertExpiry()
	m.TLSCertExpiry.Set(float64(time.Now().Add(90 * 24 * time.Hour).Unix()))
	if _, err := srv.Root(t).PKI().GenerateRoot(t.Context(), client.CARequest{CommonName: "Rules Root", TTL: "720h", KeyType: "ec", KeyBits: 256}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Root(t).Sys().Health(t.Context()); err != nil {
		t.Fatal(err)
	}
	// A denial, so the denials counter has a series.
	if denied, err := http.Get(srv.URL + "/v1/secrets/static/app/db"); err != nil || denied.StatusCode != http.StatusForbidden {
		t.Fatalf("read without a token: %v %v", denied, err)
	} else {
		denied.Body.Close()
	}

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: status %d", resp.StatusCode)
	}
	exposed := map[string]bool{}
	for line := range strings.SplitSeq(string(body), "\n") {
		if name := metricName.FindString(line); name != "" && !strings.HasPrefix(line, "#") {
			exposed[name] = true
		}
	}
	var queried []string
	rules, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	queried = append(queried, metricName.FindAllString(string(rules), -1)...)
	for _, p := range readDashboard(t).Dashboard.Panels {
		for _, tg := range p.Targets {
			queried = append(queried, metricName.FindAllString(tg.Expr, -1)...)
		}
	}
	if len(queried) == 0 {
		t.Fatal("no secrethub_ metric found in the rules or the dashboard")
	}
	for _, name := range queried {
		if !exposed[name] {
			t.Errorf("%s is queried but not exposed by a live server", name)
		}
	}
}

// TestSystemdUnitsVerify runs systemd-analyze verify on the units, with
// ExecStart pointed at a real executable (the binary is not installed
// here); any warning fails the test.
func TestSystemdUnitsVerify(t *testing.T) {
	analyze := needTool(t, "systemd-analyze")
	dir := t.TempDir()
	units, _ := filepath.Glob("systemd/*.service")
	if len(units) != 2 {
		t.Fatalf("want secrethub-core.service and secrethub-agent.service, found %v", units)
	}
	var paths []string
	for _, u := range units {
		data, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, filepath.Base(u))
		if err := os.WriteFile(dst, bytes.ReplaceAll(data, []byte("/usr/local/bin/secrethub"), []byte("/bin/true")), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, dst)
	}
	out, err := exec.Command(analyze, append([]string{"verify"}, paths...)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestCoreUnitFollowsTheRunbook: the runbook's Phase 2.4 unit, with this
// binary's ExecStart.
func TestCoreUnitFollowsTheRunbook(t *testing.T) {
	data, err := os.ReadFile("systemd/secrethub-core.service")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	for _, want := range []string{
		"After=network.target", "Type=simple", "User=secrethub", "Group=secrethub", "WorkingDirectory=/opt/secrethub",
		"EnvironmentFile=/opt/secrethub/secrethub.env", "ExecStart=/usr/local/bin/secrethub server",
		"Restart=always", "RestartSec=5", "StandardOutput=journal", "StandardError=journal", "SyslogIdentifier=secrethub-core",
		"NoNewPrivileges=true", "PrivateTmp=true", "ProtectSystem=strict", "ProtectHome=true",
		"ReadWritePaths=/opt/secrethub/data", "WantedBy=multi-user.target",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("secrethub-core.service lacks %q", want)
		}
	}
}

// TestCoreUnitWaitsForTheNetworkOnline: with a remote PostgreSQL the
// server must start once the network is up, not merely configured, which
// network.target alone does not wait for.
func TestCoreUnitWaitsForTheNetworkOnline(t *testing.T) {
	data, err := os.ReadFile("systemd/secrethub-core.service")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	for _, want := range []string{"Wants=network-online.target", "After=network-online.target"} {
		if !slices.Contains(lines, want) {
			t.Errorf("secrethub-core.service lacks %q", want)
		}
	}
}

// TestEnvExampleHasTheRunbooksVariables: runbook Phase 2.3's file.
func TestEnvExampleHasTheRunbooksVariables(t *testing.T) {
	data, err := os.ReadFile("secrethub.env.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"SECRET_KEY_BASE", "PHX_SERVER", "PHX_HOST", "PORT", "DATABASE_URL", "DB_POOL_SIZE",
		"ADMIN_USERNAME", "ADMIN_PASSWORD_HASH", "AUTO_UNSEAL_ENABLED", "AWS_KMS_KEY_ID", "PROMETHEUS_ENABLED"} {
		if !regexp.MustCompile(`(?m)^(# )?` + v + `=`).Match(data) {
			t.Errorf("secrethub.env.example lacks %s", v)
		}
	}
}
