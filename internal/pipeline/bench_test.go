package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sora3web/telemetry/internal/config"
	"github.com/sora3web/telemetry/internal/gen"
	"github.com/sora3web/telemetry/internal/loadgen"
)

// BenchmarkFreshness measures end-to-end freshness on the all-in-one
// pipeline: from the 2xx of an ingest request to the event being visible
// to a ClickHouse query, for probe events sent while a background load of
// BENCH_RATE (default 5000) events/s runs. It reports p50/p95/p99.
// Run: go test ./internal/pipeline -run '^$' -bench Freshness -benchtime 1x
func BenchmarkFreshness(b *testing.B) {
	cfg := config.Default()
	cfg.DataDir = b.TempDir()
	cfg.Ingest.Listen, cfg.Embedded.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	p := startPipeline(b, cfg)
	const rate, probes = 5000, 60
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loadDone := make(chan *loadgen.Report, 1)
	go func() {
		r, _ := loadgen.Run(ctx, loadgen.Config{URL: "http://" + p.IngestAddr(), WriteKey: config.DevWriteKey, Mode: "batch", BatchSize: 50,
			Rate: rate, Concurrency: 4, Duration: time.Hour, Users: 10000, Seed: 3})
		loadDone <- r
	}()
	time.Sleep(2 * time.Second) // let the load settle
	g := gen.New(99, 100)
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < probes; i++ {
		ev := g.Event()
		ev.EventID = uuid.NewString()
		body, _ := json.Marshal(map[string]any{"events": []any{ev}})
		req, _ := http.NewRequest("POST", "http://"+p.IngestAddr()+"/v1/events", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+config.DevWriteKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("probe: %v %v", err, resp)
		}
		resp.Body.Close()
		acked := time.Now()
		q := "http://" + p.ClickHouseConfig().Addr[0] + "/?query=" + url.QueryEscape(fmt.Sprintf("SELECT count() FROM telemetry.events WHERE event_id = '%s'", ev.EventID))
		for {
			r, err := http.Get(q)
			if err != nil {
				b.Fatal(err)
			}
			out, _ := io.ReadAll(r.Body)
			r.Body.Close()
			if string(bytes.TrimSpace(out)) == "1" {
				break
			}
			if time.Since(acked) > 30*time.Second {
				b.Fatalf("probe %s not visible after 30s", ev.EventID)
			}
			time.Sleep(20 * time.Millisecond)
		}
		lat = append(lat, time.Since(acked))
		time.Sleep(150 * time.Millisecond)
	}
	b.StopTimer()
	cancel()
	r := <-loadDone
	slices.Sort(lat)
	q := func(f float64) float64 { return lat[min(int(f*float64(len(lat))), len(lat)-1)].Seconds() }
	b.ReportMetric(q(0.50), "fresh_p50_s")
	b.ReportMetric(q(0.95), "fresh_p95_s")
	b.ReportMetric(q(0.99), "fresh_p99_s")
	if r != nil {
		b.ReportMetric(r.EventsPerSec, "load_ev/s")
	}
	b.Logf("freshness under %d ev/s: p50 %.2fs p95 %.2fs p99 %.2fs (background load accepted %.0f ev/s)", rate, q(0.5), q(0.95), q(0.99), r.EventsPerSec)
}
