// Package chconn owns the ClickHouse connection settings (config key
// clickhouse) and opening a clickhouse-go connection from them, for every
// part that talks to ClickHouse: the pipeline (consumer, privacy,
// dashboards), `telemetry migrate` and the config. It must not know
// tables.
package chconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Config is the ClickHouse connection.
type Config struct {
	// Protocol is native (TCP, port 9000, production) or http (port 8123,
	// and the embedded engine's only interface). Default native.
	Protocol string `mapstructure:"protocol"`
	// Addr lists host:port addresses. Default ["127.0.0.1:9000"].
	Addr []string `mapstructure:"addr"`
	// Database holds the pipeline's tables. Default "telemetry".
	Database string `mapstructure:"database"`
	// User to authenticate as. Default "default".
	User string `mapstructure:"user"`
	// Password of User. Default empty.
	Password string `mapstructure:"password"`
	// Cluster, when set, makes migrate create replicated tables ON CLUSTER
	// with Distributed tables over them. Default empty (single node).
	Cluster string `mapstructure:"cluster"`
	// DialTimeout bounds connecting. Default 5s.
	DialTimeout time.Duration `mapstructure:"dial_timeout"`
	// QueryTimeout bounds reading one answer (an insert's acknowledgement
	// included). Default 60s.
	QueryTimeout time.Duration `mapstructure:"query_timeout"`
	// Compression of what goes over the wire: lz4 (worth it across a
	// network) or none. The embedded engine is always reached without it:
	// over loopback, compressing only spends the CPU both ends share.
	// Default lz4.
	Compression string `mapstructure:"compression"`
	// Settings are ClickHouse settings sent with every statement of this
	// connection (e.g. max_memory_usage). The pipeline adds
	// max_execution_time 0 to its own connection to the embedded engine,
	// whose server bounds reads that set none (embedded.max_query_time).
	// Default none.
	Settings map[string]string `mapstructure:"settings"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Protocol:     "native",
		Addr:         []string{"127.0.0.1:9000"},
		Database:     "telemetry",
		User:         "default",
		DialTimeout:  5 * time.Second,
		QueryTimeout: 60 * time.Second,
		Compression:  "lz4",
		Settings:     map[string]string{},
	}
}

// Validate names invalid fields by their config keys.
func (c Config) Validate() error {
	var errs []error
	add := func(field, rule string) { errs = append(errs, fmt.Errorf("clickhouse.%s: %s", field, rule)) }
	if c.Protocol != "native" && c.Protocol != "http" {
		add("protocol", "must be native or http")
	}
	if len(c.Addr) == 0 {
		add("addr", "at least one address is required")
	}
	for i, a := range c.Addr {
		if _, _, err := net.SplitHostPort(a); err != nil {
			add(fmt.Sprintf("addr[%d]", i), "must be host:port")
		}
	}
	if c.Database == "" {
		add("database", "required")
	}
	if c.DialTimeout <= 0 {
		add("dial_timeout", "must be > 0")
	}
	if c.QueryTimeout <= 0 {
		add("query_timeout", "must be > 0")
	}
	if c.Compression != "lz4" && c.Compression != "none" {
		add("compression", "must be lz4 or none")
	}
	return errors.Join(errs...)
}

// Open opens a connection pool. The connection's default database is
// "default" so that migrate can create Database; every statement of the
// pipeline names its database.
func Open(c Config) (driver.Conn, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	proto := clickhouse.Native
	if c.Protocol == "http" {
		proto = clickhouse.HTTP
	}
	opts := &clickhouse.Options{
		Addr:        c.Addr,
		Protocol:    proto,
		Auth:        clickhouse.Auth{Database: "default", Username: c.User, Password: c.Password},
		DialTimeout: c.DialTimeout,
		ReadTimeout: c.QueryTimeout,
	}
	if len(c.Settings) > 0 {
		opts.Settings = clickhouse.Settings{}
		for k, v := range c.Settings {
			opts.Settings[k] = v
		}
	}
	if c.Compression == "lz4" {
		opts.Compression = &clickhouse.Compression{Method: clickhouse.CompressionLZ4}
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("opening clickhouse %v: %w", c.Addr, err)
	}
	return conn, nil
}

// Ping checks the server answers.
func Ping(ctx context.Context, conn driver.Conn) error {
	if err := conn.Ping(ctx); err != nil {
		return fmt.Errorf("pinging clickhouse: %w", err)
	}
	return nil
}
