package audit

import (
	"errors"
	"time"
)

// Config configures the completeness audit. It is the `audit:` section.
type Config struct {
	// Enabled counts events at every stage into pipeline_audit: ingest
	// publishes its counts as audit records on the bus before it answers
	// 2xx, the consumer writes its own before each insert. Off, nothing is
	// counted and `telemetry audit` has nothing to check. Default true.
	Enabled bool `mapstructure:"enabled"`
	// Grace is how long after a window's minute ends its events may still
	// be on their way (consumer lag, spool, retries): the window counts as
	// closed, and a shortfall as lost, only after it. Unit: a duration.
	// Default 2m. Applies to `telemetry audit`, the admin API's report and
	// the completeness metrics.
	Grace time.Duration `mapstructure:"grace"`
	// MetricsInterval is how often a process with a ClickHouse connection
	// computes the report for the completeness metrics
	// (telemetry.audit.*). 0 turns the metrics off. Default 1m.
	MetricsInterval time.Duration `mapstructure:"metrics_interval"`
	// MetricsSpan is how far back each metrics report looks. A window's
	// duplicates are counted once, when it closes, over the copies
	// received by then (each refresh groups only the event_ids of the
	// minutes closed since the last), so its cost follows the ingest rate,
	// not the span. Default 10m.
	MetricsSpan time.Duration `mapstructure:"metrics_span"`
	// FlushInterval is how long the consumer keeps its audit rows (through
	// the embedded engine: kept in files, as good as stored) before it
	// inserts those kept so far in one insert; it inserts them sooner once
	// they are 50,000 rows, and all of them when it stops. Each insert is a
	// part of pipeline_audit for the engine to write and merge, so fewer
	// are cheaper (sinks/consumer, auditFlushRows). The counts reach the
	// report this much later, so it must be well within grace: at most
	// half of it. Default 30s (5s until 2026-12-05).
	FlushInterval time.Duration `mapstructure:"flush_interval"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{Enabled: true, Grace: 2 * time.Minute, MetricsInterval: time.Minute, MetricsSpan: 10 * time.Minute,
		FlushInterval: 30 * time.Second}
}

// Validate names the invalid field.
func (c Config) Validate() error {
	var errs []error
	if c.Grace < 0 {
		errs = append(errs, errors.New("audit.grace: must be >= 0"))
	}
	if c.MetricsInterval < 0 {
		errs = append(errs, errors.New("audit.metrics_interval: must be >= 0"))
	}
	if c.MetricsInterval > 0 && c.MetricsSpan < time.Minute {
		errs = append(errs, errors.New("audit.metrics_span: must be >= 1m when audit.metrics_interval is set"))
	}
	if c.FlushInterval <= 0 || c.Grace > 0 && c.FlushInterval > c.Grace/2 {
		errs = append(errs, errors.New("audit.flush_interval: must be > 0 and at most half of audit.grace (the counts must land within it)"))
	}
	return errors.Join(errs...)
}
