// Package obs sets up the process's observability: the slog logger and the
// OpenTelemetry MeterProvider exported on /metrics in Prometheus format. It
// owns the global providers; components only take instruments from them.
package obs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// LogConfig configures logging.
type LogConfig struct {
	// Level is debug, info, warn or error. Default info.
	Level string `mapstructure:"level"`
	// Format is json or text. Default json.
	Format string `mapstructure:"format"`
}

// DefaultLogConfig returns the documented defaults.
func DefaultLogConfig() LogConfig { return LogConfig{Level: "info", Format: "json"} }

// Validate names the invalid field.
func (c LogConfig) Validate() error {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.Level)); err != nil {
		return fmt.Errorf("log.level: must be debug, info, warn or error")
	}
	if c.Format != "json" && c.Format != "text" {
		return fmt.Errorf("log.format: must be json or text")
	}
	return nil
}

// NewLogger makes the process logger writing to w.
func NewLogger(c LogConfig, w io.Writer) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(strings.ToLower(c.Level)))
	opts := &slog.HandlerOptions{Level: l}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// Metrics is the installed MeterProvider and its /metrics handler.
type Metrics struct {
	provider *sdkmetric.MeterProvider
	// Handler serves the Prometheus exposition.
	Handler http.Handler
}

// SetupMetrics installs a global MeterProvider exporting to a Prometheus
// registry (with Go runtime and process collectors) and returns it.
func SetupMetrics() (*Metrics, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("creating prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	otel.SetMeterProvider(mp)
	return &Metrics{provider: mp, Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}, nil
}

// Shutdown flushes and stops the provider.
func (m *Metrics) Shutdown(ctx context.Context) error { return m.provider.Shutdown(ctx) }
