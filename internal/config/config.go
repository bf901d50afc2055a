// Package config owns the process configuration: one struct tree with its
// defaults in Default, loaded by viper from a YAML file, TELEMETRY_*
// environment variables and flags, and validated before anything starts.
// It must not start components.
package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"

	"github.com/sora3web/telemetry/collector"
	"github.com/sora3web/telemetry/internal/broker"
	"github.com/sora3web/telemetry/internal/obs"
	"github.com/sora3web/telemetry/schema/migrations"
	"github.com/sora3web/telemetry/sinks/consumer"
	"github.com/sora3web/telemetry/sinks/consumer/chconn"
)

// DevWriteKey is the development write key of the default and example
// config. It is refused unless dev is true.
const DevWriteKey = "dev-write-key-change-me"

// Config is the whole configuration of the telemetry binary.
type Config struct {
	// Dev enables development conveniences: the well-known DevWriteKey is
	// accepted. Default true, so `telemetry serve` runs with no config;
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
	}
}

// Validate checks every part and names each invalid field.
func (c Config) Validate() error {
	errs := []error{c.Log.Validate(), c.Ingest.Validate(), c.Kafka.Validate(),
		c.ClickHouse.Validate(), c.Retention.Validate(), c.Consumer.Validate()}
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
		if sub, ok := v.(map[string]any); ok {
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
