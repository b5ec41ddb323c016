package metrics

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestPoolUtilizationIsInUseOverMaximumInPercent(t *testing.T) {
	cases := []struct {
		name  string
		stats sql.DBStats
		want  float64
	}{
		{"an idle pool is at 0", sql.DBStats{MaxOpenConnections: 40}, 0},
		{"10 of 40 in use is 25", sql.DBStats{MaxOpenConnections: 40, InUse: 10, Idle: 30}, 25},
		{"a full pool is at 100", sql.DBStats{MaxOpenConnections: 20, InUse: 20}, 100},
		{"an unlimited pool cannot be exhausted", sql.DBStats{InUse: 5}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := PoolUtilization(c.stats); got != c.want {
				t.Fatalf("PoolUtilization = %v, want %v", got, c.want)
			}
		})
	}
}

func newTestMetrics() *Metrics {
	return New(Source{
		Sealed:  func() bool { return true },
		DBStats: func() sql.DBStats { return sql.DBStats{} },
		PingDB:  func(context.Context) error { return nil },
	})
}

func TestUnknownMethodsShareOneLabelValue(t *testing.T) {
	m := newTestMetrics()
	for _, method := range []string{"BREW", "X-ANYTHING", "brew"} {
		m.ObserveRequest(method, Unrouted, 405, time.Millisecond, false)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("other", Unrouted, "405")); got != 3 {
		t.Fatalf("requests with unknown methods under \"other\" = %v, want 3", got)
	}
	if got := testutil.CollectAndCount(m.requests); got != 1 {
		t.Fatalf("%d request series, want 1", got)
	}
}

func TestDurationsAreRecordedInMilliseconds(t *testing.T) {
	m := newTestMetrics()
	m.ObserveRequest("GET", "/v1/sys/health", 200, 150*time.Millisecond, false)
	m.ObserveRequest("GET", "/v1/sys/health", 0, 3*time.Millisecond, true)
	if got := testutil.CollectAndCount(m.requestDuration); got != 1 {
		t.Fatalf("%d series, want 1 (nothing written counts as 200)", got)
	}
	fams, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "secrethub_request_duration_ms" {
			continue
		}
		h := f.GetMetric()[0].GetHistogram()
		if h.GetSampleSum() != 153 || h.GetSampleCount() != 2 {
			t.Fatalf("sum %v over %d samples, want 153 ms over 2", h.GetSampleSum(), h.GetSampleCount())
		}
	}
	if got := testutil.ToFloat64(m.denials.WithLabelValues("/v1/sys/health")); got != 1 {
		t.Fatalf("denials = %v, want 1", got)
	}
}
