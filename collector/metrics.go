package collector

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/sora3web/telemetry/bus"
	"github.com/sora3web/telemetry/internal/obs"
	"github.com/sora3web/telemetry/transform"
)

// metrics holds the collector's OpenTelemetry instruments. They come from
// the global MeterProvider that cmd/telemetry installs.
type metrics struct {
	requests  metric.Int64Counter
	duration  metric.Float64Histogram
	events    metric.Int64Counter
	publish   metric.Float64Histogram
	uaLookups metric.Int64Counter
	shedReqs  metric.Int64Counter
	// The options recorded on every request or lookup, built once (the
	// attribute set and the option slice, which would escape through the
	// instrument interfaces): uaResults by user-agent lookup result,
	// acceptedOpts for the accepted-events count, publishOK and publishErr for
	// the publish latency.
	uaResults             map[string][]metric.AddOption
	acceptedOpts          []metric.AddOption
	publishOK, publishErr []metric.RecordOption
}

func newMetrics() (*metrics, error) {
	meter := otel.Meter("github.com/sora3web/telemetry/collector")
	var m metrics
	var err error
	if m.requests, err = meter.Int64Counter("telemetry.ingest.requests", metric.WithDescription("Ingest HTTP requests by route and status.")); err != nil {
		return nil, err
	}
	if m.duration, err = meter.Float64Histogram("telemetry.ingest.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Ingest request latency by route and status."),
		obs.LatencyBuckets()); err != nil {
		return nil, err
	}
	if m.events, err = meter.Int64Counter("telemetry.ingest.events", metric.WithDescription("Events by outcome (accepted, rejected, dropped) and reason.")); err != nil {
		return nil, err
	}
	if m.publish, err = meter.Float64Histogram("telemetry.ingest.publish.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to make a request's events durable."),
		obs.LatencyBuckets()); err != nil {
		return nil, err
	}
	if m.uaLookups, err = meter.Int64Counter("telemetry.ingest.ua.lookups", metric.WithDescription("User-agent cache lookups by result (hit, miss: parsed, deferred: over the parse budget, left to the consumer).")); err != nil {
		return nil, err
	}
	if m.shedReqs, err = meter.Int64Counter("telemetry.ingest.shed", metric.WithDescription("Requests refused to protect the service, by reason (inflight, rate_limit_key, rate_limit_ip).")); err != nil {
		return nil, err
	}
	m.uaResults = map[string][]metric.AddOption{}
	for _, r := range []string{transform.LookupHit, transform.LookupMiss, transform.LookupDeferred} {
		m.uaResults[r] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("result", r)))}
	}
	m.acceptedOpts = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "accepted"), attribute.String("reason", "")))}
	m.publishOK = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "ok")))}
	m.publishErr = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "error")))}
	return &m, nil
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// instrument counts and times requests of route and traces each one,
// continuing a trace the client started (traceparent header).
func (m *metrics) instrument(route string, next http.Handler) http.Handler {
	tracer := otel.Tracer("github.com/sora3web/telemetry/collector")
	name := "POST " + route
	statuses := &routeStatuses{route: route}
	startOpts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.route", route))}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ctx := otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tracer.Start(ctx, name, startOpts...)
		defer span.End()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r.WithContext(ctx))
		if span.IsRecording() {
			span.SetAttributes(attribute.Int("http.response.status_code", rec.status))
			if rec.status >= 500 {
				span.SetStatus(codes.Error, http.StatusText(rec.status))
			}
		}
		o := statuses.of(rec.status)
		m.requests.Add(ctx, 1, o.add...)
		m.duration.Record(ctx, time.Since(start).Seconds(), o.record...)
	})
}

// routeStatuses builds, once per status code, the options of a route's
// request metrics: requests are the hot path, and an attribute set built
// per request costs allocations and a sort (and the variadic option slices
// escape through the instrument interfaces).
type routeStatuses struct {
	route string
	opts  sync.Map // int status -> *statusOptions
}

type statusOptions struct {
	add    []metric.AddOption
	record []metric.RecordOption
}

func (r *routeStatuses) of(status int) *statusOptions {
	if o, ok := r.opts.Load(status); ok {
		return o.(*statusOptions)
	}
	set := metric.WithAttributeSet(attribute.NewSet(attribute.String("route", r.route), attribute.String("status", strconv.Itoa(status))))
	o := &statusOptions{add: []metric.AddOption{set}, record: []metric.RecordOption{set}}
	r.opts.Store(status, o)
	return o
}

// traceHeaders returns the W3C trace context of ctx as Kafka headers, so
// the consumer's insert joins the request's trace.
func traceHeaders(ctx context.Context) []bus.Header {
	if !trace.SpanContextFromContext(ctx).IsValid() && baggage.FromContext(ctx).Len() == 0 {
		return nil // nothing to carry; skip the carrier's map
	}
	carrier := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, carrier)
	if len(carrier) == 0 {
		return nil
	}
	out := make([]bus.Header, 0, len(carrier))
	for k, v := range carrier {
		out = append(out, bus.Header{Key: k, Value: []byte(v)})
	}
	return out
}

func (m *metrics) shed(ctx context.Context, reason string) {
	m.shedReqs.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", reason)))
}

func (m *metrics) rejected(ctx context.Context, field string) {
	m.events.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "rejected"), attribute.String("reason", field)))
}

func (m *metrics) dropped(ctx context.Context, reason string) {
	m.events.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "dropped"), attribute.String("reason", reason)))
}

func (m *metrics) accepted(ctx context.Context, n int) {
	if n > 0 {
		m.events.Add(ctx, int64(n), m.acceptedOpts...)
	}
}

func (m *metrics) published(ctx context.Context, d time.Duration, err error) {
	opts := m.publishOK
	if err != nil {
		opts = m.publishErr
	}
	m.publish.Record(ctx, d.Seconds(), opts...)
}

func (m *metrics) uaLookup(result string) {
	opts, ok := m.uaResults[result]
	if !ok {
		opts = []metric.AddOption{metric.WithAttributes(attribute.String("result", result))}
	}
	m.uaLookups.Add(context.Background(), 1, opts...)
}
