// Package metrics holds one Core node's Prometheus metrics: the names the
// runbook's alert rules and dashboard query, on a registry of the node's
// own (never the process-wide default), so several servers in one test
// process do not collide.
package metrics

import (
	"context"
	"database/sql"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DurationBuckets are the request-duration histogram's bounds in
// milliseconds, from 1 ms to 10 s (the runbook's HighLatency alert reads
// the 95th percentile against 100 ms).
var DurationBuckets = []float64{1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000}

// Audit write failure kinds (the label of AuditWriteFailures).
const (
	// AuditFailureEvent: an event was refused, so its request was not served.
	AuditFailureEvent = "event"
	// AuditFailureBackground: storing outcomes or checkpoints, or writing
	// the SIEM sink, failed (retried in the background).
	AuditFailureBackground = "background"
)

// Unrouted is the route label of requests answered before any route
// matched (unknown path, body too large).
const Unrouted = "unrouted"

// Source is what the scrape-time gauges read from the node.
type Source struct {
	// Sealed reports whether the node is sealed.
	Sealed func() bool
	// DBStats reports the database pool's statistics.
	DBStats func() sql.DBStats
	// PingDB checks the database answers (a pool that cannot hand out a
	// connection within the scrape's timeout counts as unreachable).
	PingDB func(ctx context.Context) error
}

// Metrics are one node's metrics. The exported vectors and gauges are set
// by the code that knows their value.
type Metrics struct {
	reg *prometheus.Registry

	requestDuration *prometheus.HistogramVec
	requests        *prometheus.CounterVec
	denials         *prometheus.CounterVec

	// AuditEvents counts audit events durably stored by this node.
	AuditEvents prometheus.Counter
	// AuditWriteFailures counts audit writes that failed, by kind
	// (AuditFailureEvent, AuditFailureBackground).
	AuditWriteFailures *prometheus.CounterVec
	// AgentsConnected is the number of agents holding a connection to this
	// node. The agent connection hub (runbook Phase 7) sets it; until that
	// feature lands no agent can connect, so it is 0.
	AgentsConnected prometheus.Gauge
	// LeasesActive is the number of unexpired leases. The lease manager
	// (dynamic secrets) sets it; until then no lease exists, so it is 0.
	LeasesActive prometheus.Gauge
	// CAExpiry is the Unix time at which each CA certificate (label
	// issuer, the issuer's id) expires. The server sets it from the stored
	// issuers at each scrape; with no CA it has no series.
	CAExpiry *prometheus.GaugeVec
	// TLSCertExpiry is the Unix time at which the certificate this node
	// serves HTTPS with expires (absent when serving plain HTTP).
	TLSCertExpiry prometheus.Gauge
}

// New builds a node's metrics over src, with the Go and process collectors.
func New(src Source) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "secrethub_request_duration_ms",
			Help:    "Time to answer an HTTP request, in milliseconds, by method, route template and status code.",
			Buckets: DurationBuckets,
		}, []string{"method", "route", "code"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "secrethub_requests_total",
			Help: "HTTP requests answered, by method, route template and status code.",
		}, []string{"method", "route", "code"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "secrethub_request_denials_total",
			Help: "Requests refused with 403 for a missing, invalid or expired token or a policy decision, by route template.",
		}, []string{"route"}),
		AuditEvents: newCounter(
			"secrethub_audit_events_total",
			"Audit events durably stored by this node."),
		AuditWriteFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "secrethub_audit_write_failures_total",
			Help: "Audit writes that failed: kind=event (the request was refused with 503) or kind=background (outcomes, checkpoints or the SIEM sink; retried).",
		}, []string{"kind"}),
		AgentsConnected: newGauge(
			"secrethub_agents_connected",
			"Agents connected to this node (set by the agent connection hub; 0 until agents exist)."),
		LeasesActive: newGauge(
			"secrethub_leases_active",
			"Unexpired leases (set by the lease manager of dynamic secrets; 0 until leases exist)."),
		CAExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "secrethub_pki_ca_expiry_seconds",
			Help: "Unix time at which the CA certificate of each PKI issuer expires (read from the stored issuers at each scrape; no series until a CA exists).",
		}, []string{"issuer"}),
		TLSCertExpiry: newGauge(
			"secrethub_tls_cert_expiry_seconds",
			"Unix time at which the certificate this node serves HTTPS with expires (updated on SIGHUP reload)."),
	}
	for _, kind := range []string{AuditFailureEvent, AuditFailureBackground} {
		m.AuditWriteFailures.WithLabelValues(kind)
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requestDuration, m.requests, m.denials,
		m.AuditEvents, m.AuditWriteFailures, m.AgentsConnected, m.LeasesActive, m.CAExpiry,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "secrethub_sealed",
			Help: "1 while this node is sealed (or not initialized), 0 once unsealed.",
		}, func() float64 { return boolValue(src.Sealed()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "secrethub_db_pool_utilization",
			Help: "Database connections in use as a percentage (0-100) of the pool's maximum (DB_POOL_SIZE).",
		}, func() float64 { return PoolUtilization(src.DBStats()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "secrethub_db_up",
			Help: "1 when the database answered a ping at scrape time (within 2 s), else 0.",
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), dbPingTimeout)
			defer cancel()
			return boolValue(src.PingDB(ctx) == nil)
		}),
	)
	return m
}

func newGauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
}

func newCounter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

// dbPingTimeout bounds the database check of one scrape.
const dbPingTimeout = 2 * time.Second

// EnableTLSCertExpiry registers TLSCertExpiry; only a node serving HTTPS
// has the series.
func (m *Metrics) EnableTLSCertExpiry() {
	_ = m.reg.Register(m.TLSCertExpiry) // registering twice is harmless
}

// PoolUtilization is in-use connections ÷ maximum × 100 (0 for an
// unlimited pool, which cannot be exhausted).
func PoolUtilization(s sql.DBStats) float64 {
	if s.MaxOpenConnections <= 0 {
		return 0
	}
	return float64(s.InUse) / float64(s.MaxOpenConnections) * 100
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// knownMethods bound the method label: any other method is "other", so a
// client cannot create series at will.
var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodDelete: true, http.MethodPatch: true, http.MethodOptions: true, "LIST": true,
}

// ObserveRequest records one answered request. route is the route
// template (Unrouted when none matched), never the raw path; denied marks
// a 403 for authentication or authorization.
func (m *Metrics) ObserveRequest(method, route string, code int, took time.Duration, denied bool) {
	if !knownMethods[method] {
		method = "other"
	}
	if code == 0 {
		code = http.StatusOK // nothing written: net/http answers 200
	}
	c := strconv.Itoa(code)
	m.requestDuration.WithLabelValues(method, route, c).Observe(float64(took) / float64(time.Millisecond))
	m.requests.WithLabelValues(method, route, c).Inc()
	if denied {
		m.denials.WithLabelValues(route).Inc()
	}
}

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Gatherer exposes the registry to tests and to other exporters.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }
