// Package config owns the process configuration: one struct tree with its
// defaults in Default, loaded by viper from a YAML file, TELEMETRY_*
// environment variables and flags, and validated before anything starts.
// It must not start components.
package config

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"

	"github.com/sora3web/telemetry/bus"
	"github.com/sora3web/telemetry/bus/broker"
	"github.com/sora3web/telemetry/bus/wal"
	"github.com/sora3web/telemetry/collector"
	"github.com/sora3web/telemetry/dashboards"
	"github.com/sora3web/telemetry/internal/audit"
	"github.com/sora3web/telemetry/internal/chconn"
	"github.com/sora3web/telemetry/internal/corpus"
	"github.com/sora3web/telemetry/internal/history"
	"github.com/sora3web/telemetry/internal/obs"
	"github.com/sora3web/telemetry/internal/privacy"
	"github.com/sora3web/telemetry/schema/migrations"
	"github.com/sora3web/telemetry/sinks/consumer"
)

// DevWriteKey is the development write key of the default and example
// config. It is refused unless dev is true.
const DevWriteKey = "dev-write-key-change-me"

// Config is the whole configuration of the telemetry binary.
type Config struct {
	// Dev enables development conveniences: the well-known DevWriteKey is
	// accepted, and the development admin token (privacy.DevToken) or one
	// shorter than 32 characters. Default true, so `telemetry serve` runs with no config;
	// production configs set dev: false and their own keys.
	Dev bool `mapstructure:"dev"`
	// Log configures logging.
	Log obs.LogConfig `mapstructure:"log"`
	// Ingest configures the HTTP ingest endpoints.
	Ingest collector.Config `mapstructure:"ingest"`
	// Kafka configures the broker connection and topics.
	Kafka broker.Config `mapstructure:"kafka"`
	// ClickHouse configures the ClickHouse connection of migrate and consume.
	ClickHouse chconn.Config `mapstructure:"clickhouse"`
	// Retention configures the per-plan TTLs that migrate applies.
	Retention migrations.Retention `mapstructure:"retention"`
	// Consumer configures the Kafka to ClickHouse consumer.
	Consumer consumer.Config `mapstructure:"consumer"`
	// Admin configures the privacy admin API (data-subject rights) and the
	// tombstone and opt-out registries.
	Admin privacy.Config `mapstructure:"admin"`
	// Corpus configures the job that fills the anonymised prompt corpus
	// (internal/corpus); its retention is retention.anonymized_prompts_days.
	Corpus corpus.Config `mapstructure:"corpus"`
	// Dashboard configures the staff-only listener of the built-in
	// dashboard, the error explorer and the pipeline page.
	Dashboard dashboards.Config `mapstructure:"dashboard"`
	// History configures the recorder of the pipeline's own metrics into
	// ClickHouse (the dashboards' pipeline page, no Prometheus needed).
	History history.Config `mapstructure:"history"`
	// Audit configures the completeness audit (pipeline_audit,
	// `telemetry audit`, the telemetry.audit.* metrics).
	Audit audit.Config `mapstructure:"audit"`

	// DataDir holds all local state of `telemetry serve`: the local log,
	// the spool and the embedded ClickHouse. Default "./data".
	DataDir string `mapstructure:"data_dir"`
	// Bus is where ingest publishes and the consumer reads: "log" (the
	// local durable log: one machine, no Kafka) or "kafka". Default "log".
	Bus string `mapstructure:"bus"`
	// WAL configures the local durable log (the bus in "log" mode, the
	// spool in "kafka" mode). An empty dir means <data_dir>/wal.
	WAL wal.Config `mapstructure:"wal"`
	// Spool configures spooling to the local log when Kafka cannot take
	// events (bus "kafka").
	Spool SpoolConfig `mapstructure:"spool"`
	// Embedded configures the embedded ClickHouse engine.
	Embedded EmbeddedConfig `mapstructure:"embedded"`
	// Serve chooses the parts `telemetry serve` runs.
	Serve ServeConfig `mapstructure:"serve"`
	// OTel configures OpenTelemetry export beyond /metrics.
	OTel obs.OTelConfig `mapstructure:"otel"`
}

// SpoolConfig turns the spool on and tunes it.
type SpoolConfig struct {
	// Enabled spools to the local log when Kafka is unreachable or slow,
	// so ingest keeps accepting. Default true.
	Enabled bool `mapstructure:"enabled"`
	// Tuning of the spool; see bus.SpoolConfig.
	bus.SpoolConfig `mapstructure:",squash"`
}

// EmbeddedConfig configures the embedded ClickHouse engine (libchdb.so
// served over ClickHouse's HTTP interface).
type EmbeddedConfig struct {
	// Enabled runs the engine in-process; the consumer, migrations and
	// dashboards then use it, whatever clickhouse.addr says. Default true.
	Enabled bool `mapstructure:"enabled"`
	// Listen is the address of its HTTP interface. Default 127.0.0.1:8123.
	Listen string `mapstructure:"listen"`
	// LibPath is libchdb.so; empty means $CHDB_LIB_PATH, else the cache
	// path `make chdb` fills. Default "".
	LibPath string `mapstructure:"lib_path"`
	// MaxQueryTime bounds each read-only query (SELECT, WITH, SHOW, ...)
	// on the engine's HTTP interface that sets no max_execution_time of
	// its own: dashboards and analysts' SQL. A query takes the engine's
	// threads from the inserts beside it and holds one of the interface's
	// connections (embedded.connections) for as long as it runs; this
	// bounds both. A query over the bound
	// fails with code 159 TIMEOUT_EXCEEDED. The pipeline's own reads
	// (privacy, a consumer's stored ids) set 0 and are not bounded.
	// Inserts and DDL are not bounded. Unit: a duration (1.5s allowed);
	// 0 turns the bound off. Default 2s: with consumer.batch_interval 1s a
	// single query stalls freshness by at most this much. It does not bound
	// the share of the engine's time that frequent short queries take
	// (docs/capacity.md, "Queries beside inserts"). Applies only when
	// embedded.enabled; a ClickHouse server has its own profiles.
	MaxQueryTime time.Duration `mapstructure:"max_query_time"`
	// Connections is how many statements without a session_id the HTTP
	// interface runs at once, each on an engine connection of its own (the
	// engine runs them in parallel); more wait for a free one. A session
	// has a connection of its own besides. Default 4.
	Connections int `mapstructure:"connections"`
	// MergeNice is the nice value of the engine's merge threads while
	// they merge (ClickHouse's os_threads_nice_value_merge_mutate): the
	// kernel then gives the cores to ingest, the consumer's inserts and
	// queries first, and to merges what they leave. Merges run behind
	// while the cores are busy and catch up when they are not; the events
	// table holds more parts meanwhile. 0 to 19; 0 treats merges as the
	// rest. Default 10: `telemetry serve` at 50,000 events/s for 5
	// minutes on 2 cores kept freshness p99 at 3.5 s where it reached
	// 19.8 s at 0, in back-to-back runs (docs/capacity.md).
	MergeNice int `mapstructure:"merge_nice"`
	// GoProcsPerCPU multiplies how many threads run Go code at once
	// (GOMAXPROCS, Go's default being one per CPU the process may use) in
	// a process that runs the engine: the engine's own threads (inserts,
	// queries) share the cores with Go's, and each insert and query holds
	// a Go thread in the engine while it runs. With one Go thread per core
	// the kernel gave ingest and the consumer's decoding too small a share:
	// `telemetry serve` at 50,000 events/s for 5 minutes on 2 cores, in an
	// hour when the machine ran slow, had freshness p99 3.87 s and 5.31 s
	// at 1, 2.67 s and 2.74 s at 2 (alternating runs, 2026-12-02). The
	// merges then get fewer of the cores and the events table holds more
	// parts (max 75 at 1, 94 and 103 at 2). 1 to 8; 1 leaves Go's default.
	// The GOMAXPROCS environment variable, when set, wins. Default 2.
	GoProcsPerCPU int `mapstructure:"go_procs_per_cpu"`
}

// ServeConfig chooses the parts of the pipeline `telemetry serve` runs.
type ServeConfig struct {
	// Ingest runs the HTTP ingest endpoints. Default true.
	Ingest bool `mapstructure:"ingest"`
	// Consumer runs the bus-to-ClickHouse consumer. Default true.
	Consumer bool `mapstructure:"consumer"`
	// Migrate applies the migrations at start. Default true.
	Migrate bool `mapstructure:"migrate"`
	// MetricsListen serves /metrics and /healthz when ingest does not run
	// in this process (telemetry consume). The dashboards have a listener
	// of their own (dashboard.listen). Default 127.0.0.1:9464.
	MetricsListen string `mapstructure:"metrics_listen"`
	// ShutdownTimeout bounds the whole graceful shutdown: drain requests,
	// flush batches, commit offsets, close the log. Default 30s.
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
}

// WALDir is the local log's directory: wal.dir, else <data_dir>/wal.
func (c Config) WALDir() string {
	if c.WAL.Dir != "" {
		return c.WAL.Dir
	}
	return filepath.Join(c.DataDir, "wal")
}

// Default returns the defaults of every field: the single place they live.
func Default() Config {
	ingest := collector.DefaultConfig()
	ingest.WriteKeys = []collector.WriteKey{{Key: DevWriteKey, Source: "dev"}}
	return Config{
		Dev:    true,
		Log:    obs.DefaultLogConfig(),
		Ingest: ingest,
		Kafka:  broker.DefaultConfig(),

		ClickHouse: chconn.DefaultConfig(),
		Retention:  migrations.DefaultRetention(),
		Consumer:   consumer.DefaultConfig(),
		Admin:      privacy.DefaultConfig(),
		Corpus:     corpus.DefaultConfig(),
		Dashboard:  dashboards.DefaultConfig(),
		History:    history.DefaultConfig(),
		Audit:      audit.DefaultConfig(),

		DataDir:  "./data",
		Bus:      "log",
		WAL:      walDefaults(),
		Spool:    SpoolConfig{Enabled: true, SpoolConfig: bus.DefaultSpoolConfig()},
		Embedded: EmbeddedConfig{Enabled: true, Listen: "127.0.0.1:8123", MaxQueryTime: 2 * time.Second, Connections: 4, MergeNice: 10, GoProcsPerCPU: 2},
		Serve:    ServeConfig{Ingest: true, Consumer: true, Migrate: true, MetricsListen: "127.0.0.1:9464", ShutdownTimeout: 30 * time.Second},
		OTel:     obs.DefaultOTelConfig(),
	}
}

// RunsEngine reports whether a process with this configuration runs the
// embedded engine in-process: when it is enabled and the consumer or the
// migrations run (the ingest command alone does not).
func (c Config) RunsEngine() bool {
	return c.Embedded.Enabled && (c.Serve.Consumer || c.Serve.Migrate)
}

// walDefaults are wal's defaults with the directory left to data_dir.
func walDefaults() wal.Config {
	c := wal.DefaultConfig()
	c.Dir = ""
	c.Cursors = []string{}
	return c
}

// Validate checks every part and names each invalid field.
func (c Config) Validate() error {
	errs := []error{c.Log.Validate(), c.Ingest.Validate(), c.Kafka.Validate(),
		c.ClickHouse.Validate(), c.Retention.Validate(), c.Consumer.Validate(), c.OTel.Validate(),
		c.Admin.Validate(), c.Admin.CheckToken(c.Dev), c.Corpus.Validate(c.Retention.MinPromptDays()),
		c.Dashboard.Validate(), c.Dashboard.CheckToken(c.Dev), c.History.Validate(), c.Audit.Validate()}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir: required"))
	}
	if c.Bus != "log" && c.Bus != "kafka" {
		errs = append(errs, fmt.Errorf("bus: must be log or kafka, got %q", c.Bus))
	}
	w := c.WAL
	w.Dir = c.WALDir()
	errs = append(errs, w.Validate())
	if c.Spool.Enabled {
		errs = append(errs, c.Spool.SpoolConfig.Validate())
	}
	if c.Embedded.Enabled {
		if _, _, err := net.SplitHostPort(c.Embedded.Listen); err != nil {
			errs = append(errs, fmt.Errorf("embedded.listen: must be host:port: %w", err))
		}
		if c.Embedded.Connections < 1 {
			errs = append(errs, errors.New("embedded.connections: must be >= 1"))
		}
		if c.Embedded.MaxQueryTime < 0 {
			errs = append(errs, errors.New("embedded.max_query_time: must be >= 0 (0 turns the bound off)"))
		}
		if c.Embedded.MergeNice < 0 || c.Embedded.MergeNice > 19 {
			errs = append(errs, fmt.Errorf("embedded.merge_nice: must be 0 to 19, got %d", c.Embedded.MergeNice))
		}
		if c.Embedded.GoProcsPerCPU < 1 || c.Embedded.GoProcsPerCPU > 8 {
			errs = append(errs, fmt.Errorf("embedded.go_procs_per_cpu: must be 1 to 8, got %d", c.Embedded.GoProcsPerCPU))
		}
	}
	if c.Serve.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("serve.shutdown_timeout: must be > 0"))
	}
	if !c.Dev {
		for i, k := range c.Ingest.WriteKeys {
			if k.Key == DevWriteKey {
				errs = append(errs, fmt.Errorf("ingest.write_keys[%d].key: the development key is refused when dev is false", i))
			}
		}
	}
	return errors.Join(errs...)
}

// Load reads the configuration: defaults, then the file (path, or
// ./telemetry.yaml when path is empty and the file exists), then TELEMETRY_*
// environment variables (dots become underscores: TELEMETRY_KAFKA_BROKERS),
// then overrides (flag values keyed by config key). It validates the result.
func Load(path string, overrides map[string]any) (Config, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	def := Default()
	var defMap map[string]any
	if err := mapstructure.Decode(def, &defMap); err != nil {
		return Config{}, fmt.Errorf("flattening defaults: %w", err)
	}
	for k, val := range flatten("", defMap) {
		v.SetDefault(k, val)
	}
	v.SetEnvPrefix("TELEMETRY")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	if path != "" {
		v.SetConfigFile(path)
		if err := v.ReadInConfig(); err != nil {
			return Config{}, fmt.Errorf("reading config %s: %w", path, err)
		}
	} else {
		v.SetConfigName("telemetry")
		v.AddConfigPath(".")
		if err := v.ReadInConfig(); err != nil {
			var nf viper.ConfigFileNotFoundError
			if !errors.As(err, &nf) {
				return Config{}, fmt.Errorf("reading ./telemetry.yaml: %w", err)
			}
		}
	}
	for k, val := range overrides {
		v.Set(k, val)
	}
	var c Config
	err := v.Unmarshal(&c, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		writeKeysHook,
		mapstructure.StringToTimeDurationHookFunc(),
		mapstructure.StringToSliceHookFunc(","),
	)), func(dc *mapstructure.DecoderConfig) { dc.ErrorUnused = true })
	if err != nil {
		return Config{}, fmt.Errorf("decoding config: %w", err)
	}
	// One key, two parsers: the consumer's user-agent cache follows ingest's.
	c.Consumer.UACacheSize = c.Ingest.UACacheSize
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("invalid config:\n%w", err)
	}
	return c, nil
}

// flatten turns nested maps into dotted keys so viper knows every key (and
// thus every environment variable).
func flatten(prefix string, m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 { // an empty map is a key of its own
			for sk, sv := range flatten(key, sub) {
				out[sk] = sv
			}
			continue
		}
		out[key] = v
	}
	return out
}

// writeKeysHook accepts write keys as "key:source,key:source" (how they
// arrive from an environment variable or flag).
func writeKeysHook(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeOf([]collector.WriteKey{}) || from.Kind() != reflect.String {
		return data, nil
	}
	var out []collector.WriteKey
	for _, part := range strings.Split(data.(string), ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key, source, ok := strings.Cut(part, ":")
		if !ok {
			return nil, fmt.Errorf("ingest.write_keys: %q must be key:source", part)
		}
		out = append(out, collector.WriteKey{Key: key, Source: source})
	}
	return out, nil
}
