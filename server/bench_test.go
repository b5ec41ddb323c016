package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/secrethub/secrethub/server"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// benchEngines are the stores the benchmarks run on, each fresh.
var benchEngines = []struct {
	name string
	open func(testing.TB) *storage.DB
}{{"sqlite", storagetest.SQLite}, {"postgres", storagetest.Postgres}}

// BenchmarkKV measures a static secret read and write through the whole
// stack: a real loopback listener, token check, policy decision, barrier
// and database, on each engine. Run with `make bench`.
func BenchmarkKV(b *testing.B) {
	for _, e := range benchEngines {
		b.Run(e.name, func(b *testing.B) {
			hs, root := benchNode(b, e.open(b))
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			url := hs.URL + "/v1/secrets/static/bench/db"
			send(b, client, "POST", url, root, `{"data":{"password":"correct horse battery staple"}}`, 200)

			b.Run("read", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					send(b, client, "GET", url, root, "", 200)
				}
			})
			b.Run("read-parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(4)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						// Fatal may not be called from these goroutines.
						if _, err := try(client, "GET", url, root, "", 200); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
			b.Run("write", func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					i++
					send(b, client, "POST", fmt.Sprintf("%s-%d", url, i%100), root, `{"data":{"password":"hunter2"}}`, 200)
				}
			})
		})
	}
}

// BenchmarkAppRoleLogin measures an AppRole login through the whole HTTP
// stack on each engine: one read of the secret ID with its role, then one
// transaction storing the token. (Secret IDs here have unlimited uses.)
func BenchmarkAppRoleLogin(b *testing.B) {
	for _, e := range benchEngines {
		b.Run(e.name, func(b *testing.B) {
			hs, root := benchNode(b, e.open(b))
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			send(b, client, "POST", hs.URL+"/v1/auth/approle/role/bench", root, `{"policies":["default"],"token_ttl":3600}`, 204)
			field := func(body []byte, name string) string {
				var out struct {
					Data map[string]any `json:"data"`
				}
				if err := json.Unmarshal(body, &out); err != nil {
					b.Fatal(err)
				}
				return out.Data[name].(string)
			}
			roleID := field(send(b, client, "GET", hs.URL+"/v1/auth/approle/role/bench/role-id", root, "", 200), "role_id")
			secretID := field(send(b, client, "POST", hs.URL+"/v1/auth/approle/role/bench/secret-id", root, "", 200), "secret_id")
			body := `{"role_id":"` + roleID + `","secret_id":"` + secretID + `"}`
			b.ReportAllocs()
			for b.Loop() {
				send(b, client, "POST", hs.URL+"/v1/auth/approle/login", "", body, 200)
			}
		})
	}
}

// benchNode starts an initialized, unsealed node and returns it with its root token.
func benchNode(b *testing.B, db *storage.DB) (*httptest.Server, string) {
	b.Helper()
	srv, err := server.New(db, server.Config{})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	b.Cleanup(hs.Close)
	return hs, initUnsealed(b, hs)
}

func send(b testing.TB, c *http.Client, method, url, token, body string, want int) []byte {
	b.Helper()
	out, err := try(c, method, url, token, body, want)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// try sends one request and returns the body, or an error if the status
// is not want.
func try(c *http.Client, method, url, token, body string, want int) ([]byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: status %d, want %d: %s", method, url, resp.StatusCode, want, out)
	}
	return out, nil
}

// BenchmarkAuditOverhead measures KV read throughput through HTTP on
// PostgreSQL at concurrency 32 (SECRETHUB_BENCH_CONCURRENCY changes it, to
// see how the ratio moves with the load) with the audit log on, and in the
// same run with a no-op audit log swapped in by the benchmark (the shipped
// binary cannot do that), alternating the two so drift on a shared machine
// hits both alike. It reports reads/s for each, audited events/s, and the
// audited rate as a percentage of the unaudited one (target ≥ 80), with
// the lowest and highest ratio of one audited round to the unaudited round
// before it, to show how much the machine moved during the run, and how
// many reads each audit commit carried on average. Where
// /proc/stat can be read it also reports the CPU time the whole machine
// (load generator, server and PostgreSQL) spent per read in each mode: the
// difference is what the audit log costs, whether or not the audited run
// left cores idle while waiting on commits; and how many of the machine's
// cores were busy on average in each mode, which shows those idle cores.
// It also reports the CPU time of the benchmark's own process (load
// generator and server) per read in each mode: the rest of the machine's
// is PostgreSQL's, which in production runs on hosts of its own.
func BenchmarkAuditOverhead(b *testing.B) {
	concurrency := 32
	if v := os.Getenv("SECRETHUB_BENCH_CONCURRENCY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("SECRETHUB_BENCH_CONCURRENCY=%q: want a positive number", v)
		}
		concurrency = n
	}
	db := storagetest.Postgres(b)
	srv, err := server.New(db, server.Config{})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	b.Cleanup(hs.Close)
	root := initUnsealed(b, hs)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}}
	url := hs.URL + "/v1/secrets/static/bench/db"
	send(b, client, "POST", url, root, `{"data":{"password":"correct horse battery staple"}}`, 200)

	const phase, rounds = 3 * time.Second, 4
	var cpu, wall, own [2]time.Duration // machine and process CPU time, elapsed time: unaudited, audited
	var reads, commits [2]int64
	cpuOK := true
	run := func(mode int) float64 {
		before, ok := machineBusy()
		ownBefore, ok3 := processCPU()
		txs := db.RoundTrips().AuditBatches
		var done atomic.Int64
		var wg sync.WaitGroup
		began := time.Now()
		stop := began.Add(phase)
		for range concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(stop) {
					if _, err := try(client, "GET", url, root, "", 200); err != nil {
						b.Error(err)
						return
					}
					done.Add(1)
				}
			}()
		}
		wg.Wait()
		after, ok2 := machineBusy()
		ownAfter, ok4 := processCPU()
		cpuOK = cpuOK && ok && ok2 && ok3 && ok4
		cpu[mode] += after - before
		own[mode] += ownAfter - ownBefore
		wall[mode] += time.Since(began)
		reads[mode] += done.Load()
		commits[mode] += db.RoundTrips().AuditBatches - txs
		return float64(done.Load()) / phase.Seconds()
	}
	var audited, bare float64
	lowest, highest := math.Inf(1), math.Inf(-1)
	for b.Loop() {
		for range rounds {
			srv.SwapAuditForBenchmark(true)
			u := run(0)
			srv.SwapAuditForBenchmark(false)
			a := run(1)
			bare, audited = bare+u, audited+a
			lowest, highest = min(lowest, 100*a/u), max(highest, 100*a/u)
		}
	}
	audited, bare = audited/float64(rounds*b.N), bare/float64(rounds*b.N)
	b.ReportMetric(audited, "audited-reads/s")
	b.ReportMetric(bare, "unaudited-reads/s")
	b.ReportMetric(audited, "events/s")
	b.ReportMetric(100*audited/bare, "audited-%")
	b.ReportMetric(lowest, "audited-%-lowest-round")
	b.ReportMetric(highest, "audited-%-highest-round")
	if commits[1] > 0 {
		// Appends and outcome groups alike: each is one commit.
		b.ReportMetric(float64(reads[1])/float64(commits[1]), "audited-reads/audit-commit")
	}
	if cpuOK && reads[0] > 0 && reads[1] > 0 {
		perRead := func(t [2]time.Duration, mode int) float64 {
			return float64(t[mode].Microseconds()) / float64(reads[mode])
		}
		b.ReportMetric(perRead(cpu, 0), "unaudited-cpu-µs/read")
		b.ReportMetric(perRead(cpu, 1), "audited-cpu-µs/read")
		b.ReportMetric(perRead(own, 0), "unaudited-process-cpu-µs/read")
		b.ReportMetric(perRead(own, 1), "audited-process-cpu-µs/read")
		b.ReportMetric(cpu[0].Seconds()/wall[0].Seconds(), "unaudited-busy-cores")
		b.ReportMetric(cpu[1].Seconds()/wall[1].Seconds(), "audited-busy-cores")
	}
}

// machineBusy is the CPU time all cores have spent busy since boot, from
// /proc/stat (user, nice, system, irq and softirq; not idle, iowait or
// steal), and false where that cannot be read.
func machineBusy() (time.Duration, bool) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	return parseBusy(string(data))
}

// processCPU is the CPU time (user and system) this process has used:
// the benchmark's load generator and the server it runs.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

// parseBusy reads the busy time from /proc/stat's first line, counted in
// USER_HZ ticks (100 per second on Linux).
func parseBusy(stat string) (time.Duration, bool) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, false
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7} { // user nice system (idle iowait) irq softirq
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, false
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, true
}

// initUnsealed initializes and unseals a node and returns its root token.
func initUnsealed(b *testing.B, hs *httptest.Server) string {
	b.Helper()
	body := send(b, http.DefaultClient, "POST", hs.URL+"/v1/sys/init", "", `{"secret_shares":1,"secret_threshold":1}`, 200)
	var init struct {
		Keys      []string `json:"keys"`
		RootToken string   `json:"root_token"`
	}
	if err := json.Unmarshal(body, &init); err != nil {
		b.Fatal(err)
	}
	send(b, http.DefaultClient, "POST", hs.URL+"/v1/sys/unseal", "", `{"key":"`+init.Keys[0]+`"}`, 200)
	return init.RootToken
}

func TestParseBusyCountsOnlyBusyTicks(t *testing.T) {
	got, ok := parseBusy("cpu  100 2 30 9000 50 4 6 7 0 0\ncpu0 50 1 15 4500 25 2 3 4 0 0\n")
	if want := (100 + 2 + 30 + 4 + 6) * 10 * time.Millisecond; !ok || got != want {
		t.Fatalf("busy = %v, %v; want %v", got, ok, want)
	}
	for _, bad := range []string{"", "intr 1 2 3", "cpu 1 2 x 4 5 6 7 8", "cpu 1 2 3"} {
		if _, ok := parseBusy(bad); ok {
			t.Errorf("parseBusy(%q) succeeded", bad)
		}
	}
}

func TestProcessCPUCountsThisProcessesWork(t *testing.T) {
	before, ok := processCPU()
	if !ok {
		t.Fatal("getrusage failed")
	}
	// Spin until the process has used at least 30 ms more (or 5 s passed).
	x, deadline := uint64(1), time.Now().Add(5*time.Second)
	for time.Now().Before(deadline) {
		for range 100_000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
		if now, _ := processCPU(); now-before >= 30*time.Millisecond {
			return
		}
	}
	t.Fatalf("process CPU did not grow by 30 ms while spinning for 5 s (x=%d)", x)
}
