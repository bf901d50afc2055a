// Package history owns the pipeline's own recorded history: a Recorder
// that reads the process's OpenTelemetry instruments every interval and
// writes a snapshot of them into ClickHouse's pipeline_metrics table
// (migration 0010), so the dashboards' pipeline page charts accepted,
// rejected and dropped events, publish latency, consumer lag, the local
// log's backlog and dead letters without a Prometheus server. It does not
// define instruments nor read the table back.
package history

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Config configures the recorder (config key history).
type Config struct {
	// Enabled records snapshots whenever the process talks to ClickHouse.
	// Default true.
	Enabled bool `mapstructure:"enabled"`
	// Interval is the time between two snapshots; the pipeline page's
	// finest resolution. Default 15s; at least 1s.
	Interval time.Duration `mapstructure:"interval"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config { return Config{Enabled: true, Interval: 15 * time.Second} }

// Validate names invalid fields by their config keys.
func (c Config) Validate() error {
	if c.Enabled && c.Interval < time.Second {
		return fmt.Errorf("history.interval: must be >= 1s, got %v", c.Interval)
	}
	return nil
}

// Source reads the current value of every instrument: the SDK's
// ManualReader (obs.Metrics.Reader).
type Source interface {
	Collect(ctx context.Context, rm *metricdata.ResourceMetrics) error
}

// DB takes the snapshots' rows: clickhouse-go's driver.Conn.
type DB interface {
	PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error)
}

// Prefix selects the instruments recorded: the pipeline's own.
const Prefix = "telemetry."

// Row is one recorded value.
type Row struct {
	Time    time.Time
	Process string
	// Metric is the instrument's name; a histogram gives two rows, its
	// name with ".count" and with ".sum".
	Metric string
	// Kind is counter (cumulative since the process started), gauge,
	// histogram_count or histogram_sum (cumulative).
	Kind string
	// Attrs are the data point's attributes, k=v joined by ",", sorted.
	Attrs string
	Value float64
}

// Recorder writes snapshots of a Source into database.pipeline_metrics.
type Recorder struct {
	cfg     Config
	src     Source
	db      DB
	table   string
	process string
	log     *slog.Logger
	mu      sync.Mutex
	stop    chan struct{}
	done    chan struct{}
}

// New prepares a recorder; it does no I/O.
func New(cfg Config, src Source, db DB, database string, log *slog.Logger) (*Recorder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if src == nil || db == nil {
		return nil, errors.New("history: a metric source and a database are required")
	}
	host, _ := os.Hostname()
	return &Recorder{cfg: cfg, src: src, db: db, table: database + ".pipeline_metrics", log: log,
		process: fmt.Sprintf("%s/%d/%d", host, os.Getpid(), time.Now().Unix())}, nil
}

// Start records a snapshot every interval until Shutdown.
func (r *Recorder) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stop, r.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(r.done)
		t := time.NewTicker(r.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-r.stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if err := r.Record(ctx); err != nil {
					r.log.Warn("recording the pipeline's metrics failed", "err", err)
				}
			}
		}
	}()
	return nil
}

// Shutdown stops the loop, records a last snapshot and waits. It is safe
// when Start was never called.
func (r *Recorder) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	stop, done := r.stop, r.done
	r.stop = nil
	r.mu.Unlock()
	if stop == nil {
		return nil
	}
	close(stop)
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return r.Record(ctx)
}

// Record writes one snapshot now.
func (r *Recorder) Record(ctx context.Context) error {
	var rm metricdata.ResourceMetrics
	if err := r.src.Collect(ctx, &rm); err != nil {
		return fmt.Errorf("collecting metrics: %w", err)
	}
	rows := Snapshot(&rm, time.Now().UTC(), r.process)
	if len(rows) == 0 {
		return nil
	}
	b, err := r.db.PrepareBatch(ctx, "INSERT INTO "+r.table+" (time, process, metric, kind, attrs, value)")
	if err != nil {
		return fmt.Errorf("preparing the insert into %s: %w", r.table, err)
	}
	for _, row := range rows {
		if err := b.Append(row.Time, row.Process, row.Metric, row.Kind, row.Attrs, row.Value); err != nil {
			_ = b.Abort()
			return fmt.Errorf("appending to %s: %w", r.table, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("inserting %d rows into %s: %w", len(rows), r.table, err)
	}
	return nil
}

// Snapshot turns collected metrics into rows: every data point of the
// instruments named Prefix*.
func Snapshot(rm *metricdata.ResourceMetrics, at time.Time, process string) []Row {
	var out []Row
	add := func(name, kind string, set attribute.Set, v float64) {
		out = append(out, Row{Time: at, Process: process, Metric: name, Kind: kind, Attrs: attrs(set), Value: v})
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if !strings.HasPrefix(m.Name, Prefix) {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					add(m.Name, sumKind(d.IsMonotonic), p.Attributes, float64(p.Value))
				}
			case metricdata.Sum[float64]:
				for _, p := range d.DataPoints {
					add(m.Name, sumKind(d.IsMonotonic), p.Attributes, p.Value)
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					add(m.Name, "gauge", p.Attributes, float64(p.Value))
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					add(m.Name, "gauge", p.Attributes, p.Value)
				}
			case metricdata.Histogram[int64]:
				for _, p := range d.DataPoints {
					add(m.Name+".count", "histogram_count", p.Attributes, float64(p.Count))
					add(m.Name+".sum", "histogram_sum", p.Attributes, float64(p.Sum))
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					add(m.Name+".count", "histogram_count", p.Attributes, float64(p.Count))
					add(m.Name+".sum", "histogram_sum", p.Attributes, p.Sum)
				}
			}
		}
	}
	return out
}

func sumKind(monotonic bool) string {
	if monotonic {
		return "counter"
	}
	return "gauge"
}

// attrs renders an attribute set as k=v pairs joined by ",", in the set's
// (sorted) order.
func attrs(s attribute.Set) string {
	parts := make([]string, 0, s.Len())
	for it := s.Iter(); it.Next(); {
		kv := it.Attribute()
		parts = append(parts, string(kv.Key)+"="+kv.Value.Emit())
	}
	return strings.Join(parts, ",")
}
