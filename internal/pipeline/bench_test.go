package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sora3web/telemetry/internal/config"
	"github.com/sora3web/telemetry/internal/gen"
	"github.com/sora3web/telemetry/internal/loadgen"
	"github.com/sora3web/telemetry/internal/testenv"
	"github.com/sora3web/telemetry/schema"
)

// BenchmarkFreshness measures end-to-end freshness on the all-in-one
// pipeline: from the 2xx of an ingest request to the event being visible
// to a ClickHouse query, for BENCH_PROBES (default 300) probe events sent
// every 100ms, each watched by its own goroutine, while a background load
// of BENCH_RATE (default 5000) events/s runs. It reports p50/p95/p99 (with
// 300 probes p99 is the third largest, not the maximum) and the rate the
// load generator achieved, and fails if the load generator failed.
// Run: go test ./internal/pipeline -run '^$' -bench Freshness -benchtime 1x
func BenchmarkFreshness(b *testing.B) {
	rate, probes := testenv.EnvInt(b, "BENCH_RATE", 5000), testenv.EnvInt(b, "BENCH_PROBES", 300)
	cfg := config.Default()
	cfg.DataDir = b.TempDir()
	cfg.Ingest.Listen, cfg.Embedded.Listen, cfg.Admin.Listen, cfg.Dashboard.Listen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	p := startPipeline(b, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type loadResult struct {
		r   *loadgen.Report
		err error
	}
	loadDone := make(chan loadResult, 1)
	go func() {
		r, err := loadgen.Run(ctx, loadgen.Config{URL: "http://" + p.IngestAddr(), WriteKey: config.DevWriteKey, Mode: "batch", BatchSize: 50,
			Rate: float64(rate), Concurrency: 4, Duration: time.Hour, Users: 10000, Seed: 3})
		loadDone <- loadResult{r, err}
	}()
	time.Sleep(2 * time.Second) // let the load settle
	g := gen.New(99, 100)
	lat := make([]time.Duration, probes)
	errs := make(chan error, probes)
	var wg sync.WaitGroup
	b.ResetTimer()
	tick := time.NewTicker(100 * time.Millisecond)
	for i := 0; i < probes; i++ {
		<-tick.C
		ev := g.Event()
		ev.EventID = uuid.NewString()
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			d, err := probe(p, ev)
			lat[i] = d
			if err != nil {
				errs <- err
			}
		}(i)
	}
	tick.Stop()
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	cancel()
	load := <-loadDone
	if load.err != nil && !errors.Is(load.err, context.Canceled) {
		b.Fatalf("background load: %v", load.err)
	}
	if load.r == nil {
		b.Fatal("background load: no report")
	}
	slices.Sort(lat)
	q := func(f float64) float64 { return lat[min(int(f*float64(len(lat))), len(lat)-1)].Seconds() }
	b.ReportMetric(q(0.50), "fresh_p50_s")
	b.ReportMetric(q(0.95), "fresh_p95_s")
	b.ReportMetric(q(0.99), "fresh_p99_s")
	b.ReportMetric(float64(probes), "probes")
	b.ReportMetric(float64(rate), "load_rate_ev/s")
	b.ReportMetric(load.r.EventsPerSec, "load_ev/s")
	b.Logf("freshness of %d probes under %d ev/s: p50 %.2fs p95 %.2fs p99 %.2fs (background load accepted %.0f ev/s)",
		probes, rate, q(0.5), q(0.95), q(0.99), load.r.EventsPerSec)
}

// probe posts ev and returns the time from its 2xx until a query sees it.
func probe(p *Pipeline, ev schema.Event) (time.Duration, error) {
	body, err := json.Marshal(map[string]any{"events": []any{ev}})
	if err != nil {
		return 0, err
	}
	req, _ := http.NewRequest("POST", "http://"+p.IngestAddr()+"/v1/events", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+config.DevWriteKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("probe: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("probe: answer %d", resp.StatusCode)
	}
	acked := time.Now()
	q := "http://" + p.ClickHouseConfig().Addr[0] + "/?query=" + url.QueryEscape(fmt.Sprintf("SELECT count() FROM telemetry.events WHERE event_id = '%s'", ev.EventID))
	for {
		r, err := http.Get(q)
		if err != nil {
			return 0, err
		}
		out, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if string(bytes.TrimSpace(out)) == "1" {
			return time.Since(acked), nil
		}
		if time.Since(acked) > 30*time.Second {
			return 0, fmt.Errorf("probe %s not visible after 30s", ev.EventID)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
