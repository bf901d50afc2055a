package wal

import (
	"context"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// metrics holds the log's OpenTelemetry instruments, from the global
// MeterProvider.
type metrics struct {
	records      metric.Int64Counter
	bytes        metric.Int64Counter
	errors       metric.Int64Counter
	fsync        metric.Float64Histogram
	registration metric.Registration
}

func newMetrics(l *Log) (*metrics, error) {
	meter := otel.Meter("github.com/sora3web/telemetry/bus/wal")
	var m metrics
	var err error
	if m.records, err = meter.Int64Counter("telemetry.wal.records.appended", metric.WithDescription("Records written to the log.")); err != nil {
		return nil, err
	}
	if m.bytes, err = meter.Int64Counter("telemetry.wal.bytes.appended", metric.WithUnit("By"), metric.WithDescription("Bytes written to the log, headers included.")); err != nil {
		return nil, err
	}
	if m.errors, err = meter.Int64Counter("telemetry.wal.append.errors", metric.WithDescription("Failed appends by reason (full, io, failed).")); err != nil {
		return nil, err
	}
	if m.fsync, err = meter.Float64Histogram("telemetry.wal.fsync.duration", metric.WithUnit("s"),
		metric.WithDescription("Latency of segment fsyncs."),
		metric.WithExplicitBucketBoundaries(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)); err != nil {
		return nil, err
	}
	diskBytes, err := meter.Int64ObservableGauge("telemetry.wal.disk.bytes", metric.WithUnit("By"), metric.WithDescription("Total size of the segment files."))
	if err != nil {
		return nil, err
	}
	segments, err := meter.Int64ObservableGauge("telemetry.wal.segments", metric.WithDescription("Segment files on disk."))
	if err != nil {
		return nil, err
	}
	lastSeq, err := meter.Int64ObservableGauge("telemetry.wal.last_seq", metric.WithDescription("Last durable sequence number."))
	if err != nil {
		return nil, err
	}
	lag, err := meter.Int64ObservableGauge("telemetry.wal.cursor.lag", metric.WithDescription("Durable records a cursor has not committed yet, by cursor."))
	if err != nil {
		return nil, err
	}
	m.registration, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := l.Stats()
		o.ObserveInt64(diskBytes, st.Bytes)
		o.ObserveInt64(segments, int64(st.Segments))
		o.ObserveInt64(lastSeq, int64(st.LastSeq))
		l.curMu.Lock()
		defer l.curMu.Unlock()
		for name, c := range l.cursors {
			behind := int64(0)
			if committed := c.committed.Load(); st.LastSeq > committed {
				behind = int64(st.LastSeq - committed)
			}
			o.ObserveInt64(lag, behind, metric.WithAttributes(attribute.String("cursor", name)))
		}
		return nil
	}, diskBytes, segments, lastSeq, lag)
	if err != nil {
		return nil, err
	}
	return &m, nil
}

func (m *metrics) appended(ctx context.Context, records int, bytes int64) {
	m.records.Add(ctx, int64(records))
	m.bytes.Add(ctx, bytes)
}

func (m *metrics) appendError(ctx context.Context, reason string) {
	m.errors.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", reason)))
}

func (m *metrics) fsynced(ctx context.Context, d time.Duration) {
	m.fsync.Record(ctx, d.Seconds())
}

func (m *metrics) close() error { return m.registration.Unregister() }
