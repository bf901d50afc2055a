package soak

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sora3web/telemetry/dashboards"
	"github.com/sora3web/telemetry/internal/config"
	"github.com/sora3web/telemetry/internal/testenv"
)

// BenchmarkSustained runs `telemetry serve` (all-in-one: ingest, the local
// log as the bus, the consumer, the embedded engine) as its own process and
// loads it with BENCH_SUSTAIN_RATE (default 50000) events/s for
// BENCH_SUSTAIN_SECONDS (default 300) through /v1/events, with a probe
// event every 100ms for freshness, looked for every BENCH_POLL_MS
// (default 200: each look is a query of the engine under test, on its
// cores; a probe's freshness is an upper bound by at most that). It
// reports the load achieved, freshness p50/p99/max, the local log's
// largest backlog (the consumer cursor's lag on /metrics) and size, the
// server's peak RSS (VmHWM: the server alone, not this process, which runs
// the load generator), and acknowledged
// against stored events after the backlog drained. It fails only when the
// load generator failed or an acknowledged event was lost or stored twice.
// Run: go test ./internal/soak -run '^$' -bench '^BenchmarkSustained$' -benchtime 1x -timeout 30m
func BenchmarkSustained(b *testing.B) {
	measure(b, Config{
		Rate:     float64(testenv.EnvInt(b, "BENCH_SUSTAIN_RATE", 50000)),
		Duration: time.Duration(testenv.EnvInt(b, "BENCH_SUSTAIN_SECONDS", 300)) * time.Second,
	})
}

// BenchmarkQueriesBesideInserts is BenchmarkSustained at BENCH_QUERY_RATE
// (default 20000) events/s for BENCH_QUERY_SECONDS (default 120) while a
// dashboard panel's query (BENCH_QUERY_PANEL, default product-11, "Daily
// active users by plan": a full scan of events with a GROUP BY, over the
// last 7 days; BENCH_QUERY_SQL replaces it with any SQL) runs every
// second, one at a time, on an events table prefilled with
// BENCH_QUERY_PREFILL (default 15,000,000: five minutes at 50,000 events/s)
// synthetic rows. It reports freshness and the queries' durations and
// failures (a query stopped by the server's embedded.max_query_time counts
// as failed).
// Run: go test ./internal/soak -run '^$' -bench '^BenchmarkQueriesBesideInserts$' -benchtime 1x -timeout 30m
func BenchmarkQueriesBesideInserts(b *testing.B) {
	query := os.Getenv("BENCH_QUERY_SQL")
	if query == "" {
		key := os.Getenv("BENCH_QUERY_PANEL")
		if key == "" {
			key = "product-11"
		}
		query = panelQuery(b, key)
	}
	measure(b, Config{
		Rate:       float64(testenv.EnvInt(b, "BENCH_QUERY_RATE", 20000)),
		Duration:   time.Duration(testenv.EnvInt(b, "BENCH_QUERY_SECONDS", 120)) * time.Second,
		Query:      query,
		Prefill:    int64(testenv.EnvInt(b, "BENCH_QUERY_PREFILL", 15_000_000)),
		QueryEvery: time.Second,
	})
}

// measure starts a server, runs cfg against it, reports the figures and
// checks that nothing acknowledged was lost or duplicated.
func measure(b *testing.B, cfg Config) {
	srv := startServe(b)
	cfg.IngestURL, cfg.ClickHouseURL, cfg.PID, cfg.LogDir = srv.ingest, srv.clickhouse, srv.cmd.Process.Pid, filepath.Join(srv.dataDir, "wal")
	cfg.Database, cfg.WriteKey = config.Default().ClickHouse.Database, config.DevWriteKey
	cfg.ProbeEvery, cfg.DrainTimeout = 100*time.Millisecond, 5*time.Minute
	cfg.PollEvery = time.Duration(testenv.EnvInt(b, "BENCH_POLL_MS", int(DefaultPollEvery/time.Millisecond))) * time.Millisecond
	b.ResetTimer()
	r, err := Run(context.Background(), cfg)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	secs := func(d time.Duration) float64 { return d.Seconds() }
	b.ReportMetric(cfg.Rate, "target_ev/s")
	b.ReportMetric(float64(cfg.PollEvery.Milliseconds()), "poll_ms")
	b.ReportMetric(cfg.Duration.Seconds(), "run_s")
	b.ReportMetric(r.Load.EventsPerSec, "load_ev/s")
	b.ReportMetric(float64(r.Load.Failed), "failed_events")
	b.ReportMetric(float64(r.Load.RoundTrip.P99)/float64(time.Millisecond), "ingest_p99_ms")
	b.ReportMetric(float64(r.Load.RoundTrip.Max)/float64(time.Millisecond), "ingest_max_ms")
	b.ReportMetric(float64(r.Probes), "probes")
	b.ReportMetric(float64(r.ProbesRefused), "probes_refused")
	b.ReportMetric(secs(Quantile(r.Fresh, 0.5)), "fresh_p50_s")
	b.ReportMetric(secs(Quantile(r.Fresh, 0.99)), "fresh_p99_s")
	b.ReportMetric(secs(Quantile(r.Fresh, 1)), "fresh_max_s")
	b.ReportMetric(float64(r.BacklogMax), "backlog_max")
	b.ReportMetric(float64(r.LogBytesMax)/(1<<20), "log_max_MiB")
	b.ReportMetric(float64(r.RSSMax)/(1<<20), "rss_max_MiB")
	b.ReportMetric(float64(r.PartsMax), "parts_max")
	b.ReportMetric(float64(r.PartsEnd), "parts_end")
	b.ReportMetric(float64(r.Acked), "acked")
	b.ReportMetric(float64(r.Lost()), "lost")
	b.ReportMetric(float64(r.Duplicated()), "duplicated")
	b.ReportMetric(secs(r.Drain), "drain_s")
	if cfg.Query != "" {
		b.ReportMetric(float64(len(r.Queries)), "queries")
		b.ReportMetric(float64(r.QueryErrors), "query_errors")
		b.ReportMetric(secs(Quantile(r.Queries, 0.5)), "query_p50_s")
		b.ReportMetric(secs(Quantile(r.Queries, 1)), "query_max_s")
		b.ReportMetric(float64(cfg.Prefill), "prefill_rows")
		b.ReportMetric(secs(r.PrefillTime), "prefill_s")
		if r.QueryErrors > 0 {
			b.Logf("last failed query: %s", r.LastQueryError)
		}
	}
	b.Logf("%.0f ev/s for %v (target %.0f): freshness p50 %.2fs p99 %.2fs max %.2fs over %d probes; backlog max %d records (%.0f MiB of log); RSS max %.0f MiB; events' active parts max %d, at the end %d; acked %d stored %d distinct %d (drained in %.1fs)",
		r.Load.EventsPerSec, cfg.Duration, cfg.Rate, secs(Quantile(r.Fresh, 0.5)), secs(Quantile(r.Fresh, 0.99)), secs(Quantile(r.Fresh, 1)), r.Probes,
		r.BacklogMax, float64(r.LogBytesMax)/(1<<20), float64(r.RSSMax)/(1<<20), r.PartsMax, r.PartsEnd, r.Acked, r.Stored, r.Distinct, secs(r.Drain))
	if r.Load.TransportErrs > 0 {
		b.Errorf("load generator: %d transport errors", r.Load.TransportErrs)
	}
	if r.ProbesRefused > 0 || r.Load.Failed > 0 {
		b.Errorf("ingest shed load: %d probes and %d events answered 503 (ingest round trip p99 %v, max %v)",
			r.ProbesRefused, r.Load.Failed, r.Load.RoundTrip.P99, r.Load.RoundTrip.Max)
	}
	if r.Lost() != 0 || r.Duplicated() != 0 {
		b.Errorf("acknowledged %d, stored %d rows of %d distinct events: lost %d, duplicated %d", r.Acked, r.Stored, r.Distinct, r.Lost(), r.Duplicated())
	}
}

// panelQuery is the ClickHouse query of dashboard panel key, expanded as
// Grafana would for the last 7 days with every variable on All.
func panelQuery(b *testing.B, key string) string {
	ds, err := dashboards.Dashboards()
	if err != nil {
		b.Fatal(err)
	}
	qs, err := dashboards.ClickHouseQueries(ds)
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range qs {
		if q.Key != key {
			continue
		}
		now := time.Now()
		sql, err := dashboards.Expand(q.Target.RawSQL, dashboards.Params{From: now.Add(-7 * 24 * time.Hour), To: now, Options: q.Dashboard.Options()})
		if err != nil {
			b.Fatalf("panel %s: %v", key, err)
		}
		b.Logf("dashboard query (%s, %q): %s", key, q.Panel.Title, strings.Join(strings.Fields(sql), " "))
		return sql
	}
	b.Fatalf("BENCH_QUERY_PANEL=%s: no such panel", key)
	return ""
}

// serve is one `telemetry serve` child process.
type serve struct {
	cmd                *exec.Cmd
	ingest, clickhouse string // base URLs
	dataDir            string
}

// startServe starts `telemetry serve` on free ports and a fresh data
// directory, with rate limits off, and waits until it is ready. The binary
// is $BENCH_BINARY, else built from ./cmd/telemetry; BENCH_SERVE_SET adds
// settings (space-separated key=value, each passed as --set, e.g.
// "audit.metrics_interval=0" to run without the audit monitor). The process is
// stopped with SIGTERM when b ends.
func startServe(b *testing.B) *serve {
	bin := os.Getenv("BENCH_BINARY")
	if bin == "" {
		bin = filepath.Join(b.TempDir(), "telemetry")
		root, err := testenv.RepoRoot()
		if err != nil {
			b.Fatal(err)
		}
		build := exec.Command("go", "build", "-o", bin, "./cmd/telemetry")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			b.Fatalf("go build ./cmd/telemetry: %v\n%s", err, out)
		}
	}
	dir := b.TempDir()
	ingest, ch := freePort(b), freePort(b)
	data := filepath.Join(dir, "data")
	cmd := exec.Command(bin, "serve", "--listen", ingest, "--set", "embedded.listen="+ch, "--set", "data_dir="+data,
		"--set", "ingest.rate_limit_per_key.rate=0", "--set", "log.level=warn",
		"--set", "dashboard.listen=127.0.0.1:0")
	for _, kv := range strings.Fields(os.Getenv("BENCH_SERVE_SET")) {
		cmd.Args = append(cmd.Args, "--set", kv)
	}
	cmd.Dir = dir // no telemetry.yaml there
	cmd.Env = testenv.ChildEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logf, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	b.Cleanup(func() {
		if b.Failed() {
			log, _ := os.ReadFile(logf.Name())
			b.Logf("telemetry serve's log:\n%s", log)
		}
	})
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	s := &serve{cmd: cmd, ingest: "http://" + ingest, clickhouse: "http://" + ch, dataDir: data}
	testenv.WaitReady(b, s.ingest)
	return s
}

// freePort returns a loopback address with a port free right now.
func freePort(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
