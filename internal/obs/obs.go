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
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
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

// NewLogger makes the process logger writing to w. Records logged with a
// context that carries a span get its trace_id and span_id.
func NewLogger(c LogConfig, w io.Writer) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(strings.ToLower(c.Level)))
	opts := &slog.HandlerOptions{Level: l}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if c.Format == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(traceHandler{h})
}

// traceHandler adds the trace and span ids of the record's context.
type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(as)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}

// OTelConfig configures OpenTelemetry export beyond /metrics.
type OTelConfig struct {
	// OTLPEndpoint is an OTLP/HTTP collector address (host:port). When set,
	// traces and metrics are also exported there: metrics every 60s (the
	// standard OTEL_METRIC_EXPORT_INTERVAL, in ms, changes that) and at
	// shutdown. Default "" (traces are not recorded; trace context still
	// flows from requests to Kafka).
	OTLPEndpoint string `mapstructure:"otlp_endpoint"`
	// OTLPInsecure sends OTLP over plain HTTP. Default true.
	OTLPInsecure bool `mapstructure:"otlp_insecure"`
	// SampleRatio is the share of new traces recorded (requests that
	// arrive with a sampled traceparent are always recorded). Default 0.01.
	SampleRatio float64 `mapstructure:"sample_ratio"`
	// ServiceName names this process in traces and metrics. Default "telemetry".
	ServiceName string `mapstructure:"service_name"`
}

// DefaultOTelConfig returns the documented defaults.
func DefaultOTelConfig() OTelConfig {
	return OTelConfig{OTLPInsecure: true, SampleRatio: 0.01, ServiceName: "telemetry"}
}

// Validate names the invalid field.
func (c OTelConfig) Validate() error {
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		return fmt.Errorf("otel.sample_ratio: must be between 0 and 1")
	}
	if c.ServiceName == "" {
		return fmt.Errorf("otel.service_name: required")
	}
	return nil
}

// SetupTracing installs the W3C trace-context propagator and, when an OTLP
// endpoint is configured, a TracerProvider exporting to it. It returns the
// provider's shutdown.
func SetupTracing(ctx context.Context, c OTelConfig) (func(context.Context) error, error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	if c.OTLPEndpoint == "" {
		return func(context.Context) error { return nil }, nil
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(c.OTLPEndpoint)}
	if c.OTLPInsecure {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("creating the OTLP trace exporter: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(c.SampleRatio))),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", c.ServiceName))),
	)
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}

// Metrics is the installed MeterProvider and its /metrics handler.
type Metrics struct {
	provider *sdkmetric.MeterProvider
	// Handler serves the Prometheus exposition.
	Handler http.Handler
	// Reader reads every instrument on demand: the pipeline's recorder
	// writes its snapshots into ClickHouse (the dashboards' pipeline page).
	Reader *sdkmetric.ManualReader
}

// StartMetrics installs a global MeterProvider exporting to a Prometheus
// registry (with Go runtime and process collectors) and, when configured,
// to OTLP; it returns the provider and its /metrics handler.
func StartMetrics(ctx context.Context, c OTelConfig) (*Metrics, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("creating prometheus exporter: %w", err)
	}
	manual := sdkmetric.NewManualReader()
	opts := []sdkmetric.Option{sdkmetric.WithReader(exp), sdkmetric.WithReader(manual),
		sdkmetric.WithResource(resource.NewSchemaless(attribute.String("service.name", c.ServiceName)))}
	if c.OTLPEndpoint != "" {
		mopts := []otlpmetrichttp.Option{otlpmetrichttp.WithEndpoint(c.OTLPEndpoint)}
		if c.OTLPInsecure {
			mopts = append(mopts, otlpmetrichttp.WithInsecure())
		}
		mexp, err := otlpmetrichttp.New(ctx, mopts...)
		if err != nil {
			return nil, fmt.Errorf("creating the OTLP metric exporter: %w", err)
		}
		opts = append(opts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(mexp)))
	}
	mp := sdkmetric.NewMeterProvider(opts...)
	otel.SetMeterProvider(mp)
	return &Metrics{provider: mp, Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), Reader: manual}, nil
}

// Shutdown flushes and stops the provider.
func (m *Metrics) Shutdown(ctx context.Context) error { return m.provider.Shutdown(ctx) }

// LatencyBuckets is the bucket layout, in seconds from 0.5ms to 5s, of the
// latency histograms of every component (ingest requests, publishing,
// produce round trips and queueing), so their quantiles line up.
func LatencyBuckets() metric.HistogramOption {
	return metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
}
