package consumer

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// metrics are the consumer's OpenTelemetry instruments.
type metrics struct {
	batchRows     metric.Int64Histogram
	batchBytes    metric.Int64Histogram
	insertSeconds metric.Float64Histogram
	rowsInserted  metric.Int64Counter
	rowsSkipped   metric.Int64Counter
	deadLetters   metric.Int64Counter
	retries       metric.Int64Counter
	resends       metric.Int64Counter

	// windowIDs and windowHeld (ns) are the dedup window's state, set by
	// the flusher after each batch.
	windowIDs, windowHeld atomic.Int64

	mu  sync.Mutex
	lag map[int]int64 // partition -> messages behind the high watermark
	reg metric.Registration
}

func newMetrics() (*metrics, error) {
	meter := otel.Meter("github.com/sora3web/telemetry/sinks/consumer")
	m := &metrics{lag: map[int]int64{}}
	var errs [11]error
	m.batchRows, errs[0] = meter.Int64Histogram("telemetry.consumer.batch.rows", metric.WithDescription("Rows per insert."),
		metric.WithExplicitBucketBoundaries(1, 10, 100, 1000, 10_000, 50_000, 100_000, 500_000))
	m.batchBytes, errs[1] = meter.Int64Histogram("telemetry.consumer.batch.bytes", metric.WithUnit("By"), metric.WithDescription("Message bytes per batch."),
		metric.WithExplicitBucketBoundaries(1<<10, 1<<14, 1<<18, 1<<20, 1<<22, 1<<24, 1<<26))
	m.insertSeconds, errs[2] = meter.Float64Histogram("telemetry.consumer.insert.duration", metric.WithUnit("s"), metric.WithDescription("Latency of an acknowledged insert."))
	m.rowsInserted, errs[3] = meter.Int64Counter("telemetry.consumer.rows.inserted", metric.WithDescription("Rows acknowledged by ClickHouse."))
	m.rowsSkipped, errs[4] = meter.Int64Counter("telemetry.consumer.rows.skipped", metric.WithDescription("Redelivered messages already stored, not inserted again."))
	m.deadLetters, errs[5] = meter.Int64Counter("telemetry.consumer.dead_letters", metric.WithDescription("Messages sent to the dead-letter topic, by reason."))
	m.retries, errs[6] = meter.Int64Counter("telemetry.consumer.retries", metric.WithDescription("Failed insert, commit or dead-letter attempts, by operation."))
	m.resends, errs[8] = meter.Int64Counter("telemetry.consumer.resends", metric.WithDescription("Resent events (an event_id already stored within the dedup window) not stored again."))
	ids, err := meter.Int64ObservableGauge("telemetry.consumer.dedup.ids", metric.WithDescription("Event ids held by the dedup window."))
	errs[9] = err
	held, err := meter.Float64ObservableGauge("telemetry.consumer.dedup.window", metric.WithUnit("s"),
		metric.WithDescription("How far back the dedup window reaches: consumer.dedup_window, or less when dedup_max_ids cut it short."))
	errs[10] = err
	lag, err := meter.Int64ObservableGauge("telemetry.consumer.lag", metric.WithDescription("Messages behind the partition's high watermark at the last fetch."))
	errs[7] = err
	for _, e := range errs {
		if e != nil {
			return nil, e
		}
	}
	m.reg, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		m.mu.Lock()
		defer m.mu.Unlock()
		for p, l := range m.lag {
			o.ObserveInt64(lag, l, metric.WithAttributes(attribute.Int("partition", p)))
		}
		o.ObserveInt64(ids, m.windowIDs.Load())
		o.ObserveFloat64(held, time.Duration(m.windowHeld.Load()).Seconds())
		return nil
	}, lag, ids, held)
	return m, err
}

func (m *metrics) setLag(partition int, lag int64) {
	m.mu.Lock()
	m.lag[partition] = lag
	m.mu.Unlock()
}

func (m *metrics) setWindow(ids int, held time.Duration) {
	m.windowIDs.Store(int64(ids))
	m.windowHeld.Store(int64(held))
}
