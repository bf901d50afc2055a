package consumer

import (
	"errors"
	"fmt"
	"time"

	"github.com/sora3web/telemetry/bus/broker"
)

// Config configures the consumer (config key consumer). The topics and
// brokers come from broker.Config.
type Config struct {
	// GroupID is the Kafka consumer group. Default "telemetry-clickhouse".
	GroupID string `mapstructure:"group_id"`
	// BatchRows cuts a batch at this many event messages (ingest's audit
	// records riding along are not rows of the insert and do not count, so
	// the audit does not make the parts smaller). Two batches are in
	// memory at once (one inserted, the next assembled), about 1.7 KB per
	// message with its JSON. Default 100000: a backlog drains in parts of
	// 100k rows, and fewer, larger parts leave the engine fewer merges
	// (BenchmarkSink: about 10 CPU µs per row against 12.6 at 50k on
	// 2026-12-01). A steady flow is cut by batch_interval long before.
	BatchRows int `mapstructure:"batch_rows"`
	// BatchBytes cuts a batch at this many message bytes: a bound on the
	// memory a batch holds rather than its size (an event's JSON is about
	// 1 KB, so batch_rows cuts first). Default 134217728 (128 MiB).
	BatchBytes int `mapstructure:"batch_bytes"`
	// BatchInterval cuts a batch this long after its first message, so at
	// most about one insert per interval reaches ClickHouse. Default 1s.
	BatchInterval time.Duration `mapstructure:"batch_interval"`
	// FetchMaxBytes bounds one Kafka fetch response. Default 10485760.
	FetchMaxBytes int `mapstructure:"fetch_max_bytes"`
	// FetchMaxWait is how long a Kafka fetch waits for data. Default 250ms.
	FetchMaxWait time.Duration `mapstructure:"fetch_max_wait"`
	// StartOffset of a new group: earliest or latest. Default earliest.
	StartOffset string `mapstructure:"start_offset"`
	// BackoffMin is the first wait after a failed insert or commit. Default 100ms.
	BackoffMin time.Duration `mapstructure:"backoff_min"`
	// BackoffMax bounds the doubling wait. Default 10s.
	BackoffMax time.Duration `mapstructure:"backoff_max"`
	// SessionTimeout is how long the group coordinator waits for a member
	// that stopped heartbeating (a killed consumer) before its partitions go
	// to the others; heartbeats go every tenth of it. Between the broker's
	// group.min.session.timeout.ms (6s) and group.max.session.timeout.ms
	// (30m). Default 30s.
	SessionTimeout time.Duration `mapstructure:"session_timeout"`
	// DedupWindow is how long a stored event_id is remembered, by its
	// received_at, so that a client's resend is stored once (window.go).
	// Default 24h.
	DedupWindow time.Duration `mapstructure:"dedup_window"`
	// DedupMaxIDs bounds the ids the dedup window holds (about 45 bytes
	// each); past it the oldest are forgotten and the window is shorter
	// than dedup_window, which the consumer logs and reports
	// (telemetry.consumer.dedup.window). Default 20000000.
	DedupMaxIDs int `mapstructure:"dedup_max_ids"`
	// UACacheSize bounds the cache of parsed user agents for the events
	// ingest deferred (its parse budget was spent). Not a key of its own:
	// config.Load sets it from ingest.ua_cache_size. Default 10000.
	UACacheSize int `mapstructure:"-"`
}

// DefaultConfig returns the documented defaults, following ClickHouse's
// advice for inserts: large batches, about one insert per second per table.
func DefaultConfig() Config {
	return Config{
		GroupID:        "telemetry-clickhouse",
		BatchRows:      100_000,
		BatchBytes:     128 << 20,
		BatchInterval:  time.Second,
		FetchMaxBytes:  10 << 20,
		FetchMaxWait:   250 * time.Millisecond,
		StartOffset:    "earliest",
		BackoffMin:     100 * time.Millisecond,
		BackoffMax:     10 * time.Second,
		SessionTimeout: 30 * time.Second,
		UACacheSize:    10000,
		DedupWindow:    24 * time.Hour,
		DedupMaxIDs:    20_000_000,
	}
}

// ReaderConfig is the part of c that configures Kafka's group reader
// (bus/broker.Reader), which the pipeline hands the consumer as its Source.
func (c Config) ReaderConfig() broker.ReaderConfig {
	return broker.ReaderConfig{GroupID: c.GroupID, StartOffset: c.StartOffset, FetchMaxBytes: c.FetchMaxBytes, FetchMaxWait: c.FetchMaxWait,
		SessionTimeout: c.SessionTimeout, BackoffMin: c.BackoffMin, BackoffMax: c.BackoffMax}
}

// ErrInvalidConfig wraps every configuration error.
var ErrInvalidConfig = errors.New("invalid consumer config")

// Validate names invalid fields by their config keys.
func (c Config) Validate() error {
	var errs []error
	add := func(field, rule string) {
		errs = append(errs, fmt.Errorf("%w: consumer.%s: %s", ErrInvalidConfig, field, rule))
	}
	if c.GroupID == "" {
		add("group_id", "required")
	}
	if c.BatchRows <= 0 {
		add("batch_rows", "must be > 0")
	}
	if c.BatchBytes <= 0 {
		add("batch_bytes", "must be > 0")
	}
	if c.BatchInterval <= 0 {
		add("batch_interval", "must be > 0")
	}
	if c.FetchMaxBytes <= 0 {
		add("fetch_max_bytes", "must be > 0")
	}
	if c.FetchMaxWait <= 0 {
		add("fetch_max_wait", "must be > 0")
	}
	if c.StartOffset != "earliest" && c.StartOffset != "latest" {
		add("start_offset", "must be earliest or latest")
	}
	if c.BackoffMin <= 0 || c.BackoffMax < c.BackoffMin {
		add("backoff_min", "must be > 0 and <= backoff_max")
	}
	if c.DedupWindow < time.Minute {
		add("dedup_window", "must be at least 1m")
	}
	if c.DedupMaxIDs <= 0 {
		add("dedup_max_ids", "must be > 0")
	}
	if c.UACacheSize <= 0 {
		add("ua_cache_size", "must be > 0 (ingest.ua_cache_size)")
	}
	if c.SessionTimeout < 6*time.Second || c.SessionTimeout > 30*time.Minute {
		add("session_timeout", "must be between 6s and 30m (the broker's group session bounds)")
	}
	return errors.Join(errs...)
}
