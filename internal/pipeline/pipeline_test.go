package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sora3web/telemetry/internal/config"
	"github.com/sora3web/telemetry/internal/gen"
	"github.com/sora3web/telemetry/schema"
)

// allInOne returns the default config with every address on a free port
// and all data in a temporary directory.
func allInOne(t *testing.T) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Ingest.Listen = "127.0.0.1:0"
	cfg.Embedded.Listen = "127.0.0.1:0"
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Dashboard.Listen = "127.0.0.1:0"
	cfg.Consumer.BatchInterval = 200 * time.Millisecond
	// The consumer's counts reach pipeline_audit within a second, not
	// the default 30 s: the tests wait for them while it runs.
	cfg.Audit.FlushInterval = time.Second
	return cfg
}

// startPipeline starts a pipeline on cfg and stops it when the test ends.
func startPipeline(t testing.TB, cfg config.Config) *Pipeline {
	t.Helper()
	p, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return p
}

func query(t *testing.T, p *Pipeline, sql string) string {
	t.Helper()
	resp, err := http.Get("http://" + p.ClickHouseConfig().Addr[0] + "/?query=" + url.QueryEscape(sql))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", sql, resp.StatusCode, b)
	}
	return strings.TrimRight(string(b), "\n")
}

// TestAllInOneEventsBecomeRowsAndSurviveARestart runs the default
// pipeline in-process: HTTP in, rows out of the embedded ClickHouse, then a
// graceful stop and a start on the same data directory.
func TestAllInOneEventsBecomeRowsAndSurviveARestart(t *testing.T) {
	cfg := allInOne(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	g := gen.New(42, 200)
	g.Now = func() time.Time { return time.Now() }
	var sent []schema.Event
	for i := 0; i < 300; i++ {
		ev := g.Event()
		t := true
		ev.Consent.Analytics = &t
		sent = append(sent, ev)
	}
	post := func(p *Pipeline, evs []schema.Event) {
		body, _ := json.Marshal(map[string]any{"events": evs})
		req, _ := http.NewRequest("POST", "http://"+p.IngestAddr()+"/v1/events", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+config.DevWriteKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("ingest: %d %s", resp.StatusCode, b)
		}
	}
	post(p, sent[:150])
	waitRows(t, p, 150)

	one := sent[0]
	row := query(t, p, fmt.Sprintf("SELECT type, plan, quality, resolution, aspect_ratio, user_id, prompt FROM telemetry.events WHERE event_id = '%s' FORMAT TSV", one.EventID))
	want := strings.Join([]string{one.Type, one.Plan, one.Properties.Quality, one.Properties.Resolution, one.Properties.AspectRatio, one.UserID, one.Properties.Prompt}, "\t")
	if row != want {
		t.Fatalf("row of %s:\n got %q\nwant %q", one.EventID, row, want)
	}

	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := p.Shutdown(sctx); err != nil {
		t.Fatalf("graceful shutdown: %v", err)
	}
	p2, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := p2.Start(ctx); err != nil {
		t.Fatalf("restart on the same data: %v", err)
	}
	defer p2.Shutdown(context.Background())
	post(p2, sent[150:])
	post(p2, sent[:10]) // a client resend of events already stored
	waitRows(t, p2, 300)
	if got := query(t, p2, "SELECT count() FROM telemetry.events FINAL"); got != "300" {
		t.Fatalf("rows after restart and resend: %s, want 300", got)
	}
}

func waitRows(t *testing.T, p *Pipeline, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := query(t, p, "SELECT uniqExact(event_id) FROM telemetry.events")
		if got == fmt.Sprint(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s distinct events stored after 30s, want %d", got, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestConsumeWithoutMigrationsSaysWhatToDo: a consumer-only pipeline
// (`telemetry consume`) on an empty database stops at start with
// ErrSchemaBehind, which names the command to run; once migrated, the same
// config starts.
func TestConsumeWithoutMigrationsSaysWhatToDo(t *testing.T) {
	cfg := allInOne(t)
	cfg.Serve.Ingest, cfg.Serve.Migrate = false, false
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Start(context.Background())
	if !errors.Is(err, ErrSchemaBehind) {
		t.Fatalf("Start on an empty database = %v, want ErrSchemaBehind", err)
	}
	if !strings.Contains(err.Error(), "telemetry migrate") || !strings.Contains(err.Error(), "0001_events") {
		t.Fatalf("error does not say what to do: %v", err)
	}

	migrated := cfg
	migrated.Serve.Consumer, migrated.Serve.Migrate = false, true
	m := startPipeline(t, migrated)
	if err := m.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	startPipeline(t, cfg)
}

// TestPartsStopInReverseOrder: the pipeline stops what it started in the
// reverse order (each part before what it uses: ingest before the bus,
// the consumer before the privacy registries it reads), Shutdown before
// Start and a second Shutdown are no-ops.
func TestPartsStopInReverseOrder(t *testing.T) {
	p, err := New(allInOne(t), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown before start: %v", err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, pt := range p.stack {
		names = append(names, pt.name)
	}
	want := []string{"clickhouse engine", "clickhouse http interface", "clickhouse connection", "dashboards' clickhouse connection", "privacy registries and admin API", "audit monitor",
		"local log", "dead-letter log", "consumer's engine connection", "consumer's engine query connection", "consumer", "prompt corpus job", "dashboards", "ingest"}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("started %q, want %q", names, want)
	}
	var stopped []string
	for i := range p.stack {
		pt := &p.stack[i]
		stop := pt.stop
		pt.stop = func(ctx context.Context) error { stopped = append(stopped, pt.name); return stop(ctx) }
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	slices.Reverse(want)
	if fmt.Sprint(stopped) != fmt.Sprint(want) {
		t.Fatalf("stopped %q, want %q", stopped, want)
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatalf("second shutdown: %v", err)
	}
}
