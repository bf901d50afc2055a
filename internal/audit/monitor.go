package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Monitor computes the report every Config.MetricsInterval over the last
// Config.MetricsSpan and exposes it as metrics (telemetry.audit.*), for
// the dashboards and the alert on lost events
// (dashboards/prometheus/alerts.yml). Build it with NewMonitor, run it
// with Start, stop it with Shutdown.
//
// A window's duplicates are counted once, when it closes (its minute and
// the grace are over), and kept: each refresh groups only the event_ids
// of the minutes that closed since the last one, so its cost follows the
// ingest rate, not the span (grouping the whole span every minute took
// ten minutes of ids at 50,000 events/s, on the cores the inserts use).
// A copy that arrives after its first copy's window was counted is not in
// the metrics; `telemetry audit` counts every copy in its span.
type Monitor struct {
	cfg      Config
	db       DB
	database string
	log      *slog.Logger

	mu   sync.Mutex
	last *Report
	reg  metric.Registration

	// dups holds the duplicates of closed windows before dupsUntil,
	// counted once each (refresh is their only user: no lock).
	dups      map[bucket]uint64
	dupsUntil time.Time

	cancel context.CancelFunc
	done   chan struct{}
}

// NewMonitor reports on database over db. It does no I/O.
func NewMonitor(cfg Config, db DB, database string, log *slog.Logger) (*Monitor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Monitor{cfg: cfg, db: db, database: database, log: log.With("component", "audit")}, nil
}

// Start registers the metrics and computes the first report in the
// background; ctx bounds only the start.
func (m *Monitor) Start(_ context.Context) error {
	meter := otel.Meter("github.com/sora3web/telemetry/internal/audit")
	var errs []error
	gauge := func(name, desc string) metric.Float64ObservableGauge {
		g, err := meter.Float64ObservableGauge(name, metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	lost := gauge("telemetry.audit.lost", "Events accepted and not accounted for (stored, deduplicated, dead-lettered, filtered) in closed windows of the last audit.metrics_span.")
	dups := gauge("telemetry.audit.duplicates", "Rows beyond the first of event_ids stored more than once, first received in closed windows of the last audit.metrics_span (counted when the window closes).")
	inflight := gauge("telemetry.audit.in_flight", "Events accepted and not yet accounted for in windows still open.")
	surplus := gauge("telemetry.audit.surplus", "Copies stored or dropped beyond what was answered 2xx, in the last audit.metrics_span.")
	accepted := gauge("telemetry.audit.accepted", "Events accepted in closed windows of the last audit.metrics_span.")
	complete := gauge("telemetry.audit.completeness", "Share of accepted events accounted for in closed windows of the last audit.metrics_span (1 = none lost).")
	window := gauge("telemetry.audit.window_completeness", "Share of accepted events accounted for in the latest closed window, per source.")
	missing := gauge("telemetry.audit.client_missing", "Events browsers numbered (seq) that never arrived, by browser and whether they were handed over at unload.")
	gapShare := gauge("telemetry.audit.client_session_gap_ratio", "Share of numbered sessions missing at least one event, by browser.")
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("creating the audit metrics: %w", err)
	}
	reg, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		m.mu.Lock()
		r := m.last
		m.mu.Unlock()
		if r == nil {
			return nil
		}
		var closed Window
		latest := map[string]Window{}
		for _, w := range r.Windows {
			if w.State == Closed {
				closed.add(w)
				if w.Accepted > 0 && !w.Start.Before(latest[w.Source].Start) {
					latest[w.Source] = w
				}
			}
		}
		o.ObserveFloat64(lost, float64(r.Total.Lost))
		o.ObserveFloat64(dups, float64(r.Total.Duplicates))
		o.ObserveFloat64(inflight, float64(r.Total.Pending))
		o.ObserveFloat64(surplus, float64(r.Total.Surplus))
		o.ObserveFloat64(accepted, float64(closed.Accepted))
		o.ObserveFloat64(complete, r.Completeness())
		for source, w := range latest {
			o.ObserveFloat64(window, float64(w.Accepted-w.Lost)/float64(w.Accepted), metric.WithAttributes(attribute.String("source", source)))
		}
		for _, b := range r.Sessions.ByBrowser {
			br := attribute.String("browser", b.Browser)
			o.ObserveFloat64(missing, float64(b.MissingAtUnload), metric.WithAttributes(br, attribute.Bool("unloading", true)))
			o.ObserveFloat64(missing, float64(b.Missing-b.MissingAtUnload), metric.WithAttributes(br, attribute.Bool("unloading", false)))
			o.ObserveFloat64(gapShare, b.SessionShare(), metric.WithAttributes(br))
		}
		return nil
	}, lost, dups, inflight, surplus, accepted, complete, window, missing, gapShare)
	if err != nil {
		return fmt.Errorf("registering the audit metrics: %w", err)
	}
	m.reg = reg
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel, m.done = cancel, make(chan struct{})
	go m.run(ctx)
	return nil
}

// run refreshes the report every interval until ctx ends.
func (m *Monitor) run(ctx context.Context) {
	defer close(m.done)
	t := time.NewTicker(m.cfg.MetricsInterval)
	defer t.Stop()
	for {
		m.refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Monitor) refresh(ctx context.Context) {
	qctx, cancel := context.WithTimeout(ctx, m.cfg.MetricsInterval)
	defer cancel()
	// One thread: the metrics can wait, the inserts and the ingest on the
	// same cores cannot (a 5-minute soak run at 50,000 events/s on 2 cores
	// had freshness p99 1.97 s with the monitor off, 2.78 s with its scans
	// on every core).
	qctx = clickhouse.Context(qctx, clickhouse.WithSettings(clickhouse.Settings{"max_threads": 1}))
	now := time.Now()
	since := MinuteOf(now.Add(-m.cfg.MetricsSpan))
	r, err := Query(qctx, m.db, Options{Database: m.database, Since: since, Now: now, Grace: m.cfg.Grace,
		duplicates: func(ctx context.Context) (map[bucket]uint64, error) { return m.closedDuplicates(ctx, since, now) }})
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("computing the audit report for the metrics", "err", err)
		}
		return
	}
	if r.Total.Lost > 0 || r.Total.Duplicates > 0 {
		m.log.Error("audit: events lost or duplicated", "lost", r.Total.Lost, "duplicates", r.Total.Duplicates, "since", r.Since)
	}
	m.mu.Lock()
	m.last = r
	m.mu.Unlock()
}

// closedDuplicates counts the duplicates of the windows closed at now that
// are not counted yet, and returns those of every closed window since
// since.
func (m *Monitor) closedDuplicates(ctx context.Context, since, now time.Time) (map[bucket]uint64, error) {
	if m.dups == nil {
		m.dups = map[bucket]uint64{}
	}
	for b := range m.dups {
		if b.window.Before(since) {
			delete(m.dups, b)
		}
	}
	from := since
	if m.dupsUntil.After(from) {
		from = m.dupsUntil
	}
	// A window is closed once its minute and the grace are over.
	until := MinuteOf(now.Add(-m.cfg.Grace - time.Minute)).Add(time.Minute)
	if until.After(from) {
		counted, err := queryDuplicates(ctx, m.db, m.database, from, until)
		if err != nil {
			return nil, err
		}
		for b, n := range counted {
			m.dups[b] += n
		}
		m.dupsUntil = until
	}
	return maps.Clone(m.dups), nil
}

// Shutdown stops the refreshes and unregisters the metrics. It is safe
// before Start.
func (m *Monitor) Shutdown(ctx context.Context) error {
	if m.cancel == nil {
		return nil
	}
	m.cancel()
	select {
	case <-m.done:
	case <-ctx.Done():
		return fmt.Errorf("stopping the audit monitor: %w", ctx.Err())
	}
	return m.reg.Unregister()
}
