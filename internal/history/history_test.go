package history

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/sora3web/telemetry/internal/testenv/chtest"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/sora3web/telemetry/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.RunWithClickHouse(m)) }

// TestRecorderWritesSnapshotsOfThePipelinesInstruments records the
// instruments of a meter provider into a migrated database, twice, and
// reads the rows back: counters cumulative, gauges as they are, a
// histogram as its count and sum, attributes sorted; other meters'
// instruments are not recorded. Shutdown records a last snapshot and a
// second Shutdown does nothing.
func TestRecorderWritesSnapshotsOfThePipelinesInstruments(t *testing.T) {
	ctx := context.Background()
	conn, db := chtest.Migrated(t, "history")
	reader := sdkmetric.NewManualReader()
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")
	events, _ := meter.Int64Counter("telemetry.ingest.events")
	latency, _ := meter.Float64Histogram("telemetry.ingest.publish.duration")
	lag, _ := meter.Int64Gauge("telemetry.consumer.lag")
	other, _ := meter.Int64Counter("http.server.requests")
	events.Add(ctx, 5, metric.WithAttributes(attribute.String("reason", ""), attribute.String("outcome", "accepted")))
	events.Add(ctx, 2, metric.WithAttributes(attribute.String("outcome", "rejected"), attribute.String("reason", "too_large")))
	latency.Record(ctx, 0.25)
	latency.Record(ctx, 0.75)
	lag.Record(ctx, 42, metric.WithAttributes(attribute.Int("partition", 3)))
	other.Add(ctx, 1)

	rec, err := New(Config{Enabled: true, Interval: time.Hour}, reader, conn, db, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown before start: %v", err)
	}
	if err := rec.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rec.Record(ctx); err != nil {
		t.Fatal(err)
	}
	events.Add(ctx, 3, metric.WithAttributes(attribute.String("outcome", "accepted"), attribute.String("reason", "")))
	if err := rec.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rec.Shutdown(ctx); err != nil {
		t.Fatalf("second shutdown: %v", err)
	}
	var rows []struct {
		Metric string    `ch:"metric"`
		Kind   string    `ch:"kind"`
		Attrs  string    `ch:"attrs"`
		Values []float64 `ch:"values"`
	}
	if err := conn.Select(ctx, &rows, "SELECT metric, kind, attrs, groupArray(value) AS values FROM (SELECT * FROM "+db+".pipeline_metrics ORDER BY time) GROUP BY metric, kind, attrs ORDER BY metric, attrs"); err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(rows)
	want := "[{telemetry.consumer.lag gauge partition=3 [42 42]} " +
		"{telemetry.ingest.events counter outcome=accepted,reason= [5 8]} {telemetry.ingest.events counter outcome=rejected,reason=too_large [2 2]} " +
		"{telemetry.ingest.publish.duration.count histogram_count  [2 2]} {telemetry.ingest.publish.duration.sum histogram_sum  [1 1]}]"
	if got != want {
		t.Fatalf("recorded\n%s\nwant\n%s", got, want)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{Enabled: true, Interval: 500 * time.Millisecond}).Validate(); err == nil || err.Error() != "history.interval: must be >= 1s, got 500ms" {
		t.Fatalf("got %v", err)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}
