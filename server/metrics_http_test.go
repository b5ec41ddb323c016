package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	dto "github.com/prometheus/client_model/go"

	"github.com/secrethub/secrethub/server"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// scrape reads the node's /metrics as Prometheus does.
func (n *node) scrape() map[string]*dto.MetricFamily {
	n.t.Helper()
	r := mustStatus(n.t, n.do("GET", server.MetricsPath, "", ""), http.StatusOK)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(r.Body)))
	if err != nil {
		n.t.Fatalf("/metrics is not in Prometheus' text format: %v\n%s", err, r.Body)
	}
	return families
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// gauge is the value of an unlabelled gauge.
func gauge(t *testing.T, fams map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok || len(f.GetMetric()) != 1 {
		t.Fatalf("no single series %s in /metrics", name)
	}
	return f.GetMetric()[0].GetGauge().GetValue()
}

func TestMetricsNameTheRouteTemplateNeverTheRawPath(t *testing.T) {
	n := startNode(t, storagetest.SQLite(t), server.Config{})
	_, root := n.initUnseal(1, 1)
	mustStatus(t, n.do("POST", "/v1/secrets/static/team-a/db", root, `{"data":{"k":"v"}}`), http.StatusOK)
	mustStatus(t, n.do("GET", "/v1/secrets/static/team-a/db", root, ""), http.StatusOK)
	mustStatus(t, n.do("GET", "/v1/secrets/static/team-a/db", "", ""), http.StatusForbidden)
	mustStatus(t, n.do("GET", "/v1/no/such/route", "", ""), http.StatusNotFound)
	mustStatus(t, n.do("BREW", "/v1/sys/health", "", ""), http.StatusMethodNotAllowed)

	fams := n.scrape()
	seen := map[string]bool{}
	for _, m := range fams["secrethub_request_duration_ms"].GetMetric() {
		l := labelsOf(m)
		if strings.Contains(l["route"], "team-a") {
			t.Fatalf("a raw path reached the route label: %v", l)
		}
		seen[l["method"]+" "+l["route"]+" "+l["code"]] = true
		b := m.GetHistogram().GetBucket()
		if first, last := b[0].GetUpperBound(), b[len(b)-2].GetUpperBound(); first != 1 || last != 10000 {
			t.Fatalf("buckets from %v to %v ms (before +Inf), want 1 to 10000", first, last)
		}
	}
	for _, want := range []string{
		"POST /v1/secrets/static/{path:(?s).*} 200",
		"GET /v1/secrets/static/{path:(?s).*} 200",
		"GET /v1/secrets/static/{path:(?s).*} 403",
		"GET unrouted 404",
		"other unrouted 405",
		"POST /v1/sys/init 200",
	} {
		if !seen[want] {
			t.Errorf("no request_duration series %q; have %v", want, seen)
		}
	}
	denials := fams["secrethub_request_denials_total"].GetMetric()
	if len(denials) != 1 || labelsOf(denials[0])["route"] != "/v1/secrets/static/{path:(?s).*}" || denials[0].GetCounter().GetValue() != 1 {
		t.Fatalf("denials = %v, want one on the static secret route", denials)
	}
	// Every request above was audited, /metrics itself is not.
	if got := fams["secrethub_audit_events_total"].GetMetric()[0].GetCounter().GetValue(); got != 7 {
		t.Fatalf("audit events = %v, want 7 (init, unseal, write, read, denied read, 404, 405)", got)
	}
	if got := gauge(t, fams, "secrethub_sealed"); got != 0 {
		t.Fatalf("secrethub_sealed = %v on an unsealed node", got)
	}
}

func TestMetricsReportSealAndDatabaseState(t *testing.T) {
	storagetest.Engines(t, func(t *testing.T, db *storage.DB) {
		n := startNode(t, db, server.Config{})
		fams := n.scrape()
		if got := gauge(t, fams, "secrethub_sealed"); got != 1 {
			t.Fatalf("secrethub_sealed = %v on a new node, want 1", got)
		}
		if got := gauge(t, fams, "secrethub_db_up"); got != 1 {
			t.Fatalf("secrethub_db_up = %v with the database answering", got)
		}
		if got := gauge(t, fams, "secrethub_db_pool_utilization"); got < 0 || got > 100 {
			t.Fatalf("secrethub_db_pool_utilization = %v, want 0-100", got)
		}
		for _, name := range []string{"secrethub_agents_connected", "secrethub_leases_active", "go_goroutines", "process_resident_memory_bytes"} {
			if _, ok := fams[name]; !ok {
				t.Errorf("%s missing from /metrics", name)
			}
		}
		db.Close()
		if got := gauge(t, n.scrape(), "secrethub_db_up"); got != 0 {
			t.Fatalf("secrethub_db_up = %v with the database closed, want 0", got)
		}
	})
}

func TestMetricsEndpointCanBeTurnedOff(t *testing.T) {
	n := startNode(t, storagetest.SQLite(t), server.Config{MetricsDisabled: true})
	mustStatus(t, n.do("GET", server.MetricsPath, "", ""), http.StatusNotFound)
	on := startNode(t, storagetest.SQLite(t), server.Config{})
	mustStatus(t, on.do("POST", server.MetricsPath, "", ""), http.StatusMethodNotAllowed)
}

func TestMetricsCountAuditFailures(t *testing.T) {
	db := storagetest.SQLite(t)
	n := startNode(t, db, server.Config{})
	db.Close()
	mustStatus(t, n.do("GET", "/v1/sys/health", "", ""), http.StatusServiceUnavailable)
	for _, m := range n.scrape()["secrethub_audit_write_failures_total"].GetMetric() {
		if labelsOf(m)["kind"] == "event" && m.GetCounter().GetValue() >= 1 {
			return
		}
	}
	t.Fatal("a refused audit event was not counted in secrethub_audit_write_failures_total{kind=\"event\"}")
}

// The CA expiry gauge follows the stored issuers, read at each scrape, so
// a CA made through any node shows on every node.
func TestMetricsReportEachCAsExpiry(t *testing.T) {
	db := storagetest.SQLite(t)
	n := startNode(t, db, server.Config{})
	_, root := n.initUnseal(1, 1)
	if _, ok := n.scrape()["secrethub_pki_ca_expiry_seconds"]; ok {
		t.Fatal("secrethub_pki_ca_expiry_seconds has a series before any CA exists")
	}
	ca := mustStatus(t, n.do("POST", "/v1/pki/ca/root/generate", root, `{"common_name":"Metrics Root","ttl":"720h","key_type":"ec","key_bits":256}`), 200).Data(t)
	id, _ := ca["issuer_id"].(string)
	expiration, err := time.Parse(time.RFC3339, fmt.Sprint(ca["expiration"]))
	if id == "" || err != nil {
		t.Fatalf("root generate answered %v (%v)", ca, err)
	}
	other := startNode(t, db, server.Config{}) // a second node on the same store
	f, ok := other.scrape()["secrethub_pki_ca_expiry_seconds"]
	if !ok || len(f.GetMetric()) != 1 {
		t.Fatalf("secrethub_pki_ca_expiry_seconds = %v, want one series", f)
	}
	m := f.GetMetric()[0]
	if labelsOf(m)["issuer"] != id || int64(m.GetGauge().GetValue()) != expiration.Unix() {
		t.Fatalf("series %v = %v, want issuer %s at %d", labelsOf(m), m.GetGauge().GetValue(), id, expiration.Unix())
	}
}
