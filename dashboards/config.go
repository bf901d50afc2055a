package dashboards

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// DevToken is the development staff token of the default and example
// config. It is refused unless dev is true.
const DevToken = "dev-staff-token-change-me"

// MinTokenLen is the shortest staff token accepted outside dev mode.
const MinTokenLen = 32

// Config configures the dashboards' own listener (config key dashboard):
// the built-in dashboard, the error explorer and the pipeline page. They
// never share ingest's public listener.
type Config struct {
	// Enabled serves the dashboards whenever the process talks to
	// ClickHouse. Default true.
	Enabled bool `mapstructure:"enabled"`
	// Listen is the dashboards' TCP address. Keep it private (loopback, an
	// internal network or behind a staff-only proxy), as the admin API's.
	// Default 127.0.0.1:8082.
	Listen string `mapstructure:"listen"`
	// Token is the staff token: every request presents it as
	// "Authorization: Bearer <token>", or signs in once at
	// /dashboard/login, which sets an HttpOnly cookie derived from it.
	// Outside dev mode it must have at least 32 characters and must not be
	// DevToken. Default DevToken.
	Token string `mapstructure:"token"`
	// QueryTimeout bounds one panel's or explorer query, also sent to
	// ClickHouse as max_execution_time for the explorer. Default 30s.
	QueryTimeout time.Duration `mapstructure:"query_timeout"`
	// MaxRows bounds one panel's answer (rows). Default 10000.
	MaxRows int `mapstructure:"max_rows"`
	// MaxRange bounds the time range a request may ask for. Default 400
	// days (9600h).
	MaxRange time.Duration `mapstructure:"max_range"`

	// Database holds the pipeline's tables; set from clickhouse.database.
	// Default "telemetry".
	Database string `mapstructure:"-"`
	// Log receives query failures and the explorer's audit lines. Default:
	// discarded.
	Log *slog.Logger `mapstructure:"-"`
}

// DefaultConfig returns the defaults documented on Config's fields.
func DefaultConfig() Config {
	return Config{Enabled: true, Listen: "127.0.0.1:8082", Token: DevToken, QueryTimeout: 30 * time.Second,
		MaxRows: 10000, MaxRange: 400 * 24 * time.Hour}
}

// ErrInvalidConfig marks an invalid dashboard config.
var ErrInvalidConfig = errors.New("invalid dashboard config")

// Validate names invalid fields by their config keys. Token strength
// depends on dev mode and is checked by CheckToken.
func (c Config) Validate() error {
	if !c.Enabled {
		return nil
	}
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("%w: dashboard.listen: must be host:port: %w", ErrInvalidConfig, err))
	}
	if c.Token == "" {
		errs = append(errs, fmt.Errorf("%w: dashboard.token: required", ErrInvalidConfig))
	}
	if c.QueryTimeout < 0 {
		errs = append(errs, fmt.Errorf("%w: dashboard.query_timeout: must be >= 0", ErrInvalidConfig))
	}
	if c.MaxRows < 0 {
		errs = append(errs, fmt.Errorf("%w: dashboard.max_rows: must be >= 0", ErrInvalidConfig))
	}
	if c.MaxRange < 0 {
		errs = append(errs, fmt.Errorf("%w: dashboard.max_range: must be >= 0", ErrInvalidConfig))
	}
	return errors.Join(errs...)
}

// CheckToken refuses, outside dev mode, the development token and one
// shorter than MinTokenLen.
func (c Config) CheckToken(dev bool) error {
	switch {
	case dev || !c.Enabled:
		return nil
	case c.Token == DevToken:
		return fmt.Errorf("%w: dashboard.token: the development token is refused when dev is false", ErrInvalidConfig)
	case len(c.Token) < MinTokenLen:
		return fmt.Errorf("%w: dashboard.token: must be at least %d characters when dev is false", ErrInvalidConfig, MinTokenLen)
	}
	return nil
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Database == "" {
		c.Database = "telemetry"
	}
	if c.QueryTimeout <= 0 {
		c.QueryTimeout = d.QueryTimeout
	}
	if c.MaxRows <= 0 {
		c.MaxRows = d.MaxRows
	}
	if c.MaxRange <= 0 {
		c.MaxRange = d.MaxRange
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}
