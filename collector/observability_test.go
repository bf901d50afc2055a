package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/sora3web/telemetry/internal/obs"
)

// TestMetricsAndTraceReflectAKnownRun sends a known mix and reads back the
// OpenTelemetry metrics and the recorded trace.
func TestMetricsAndTraceReflectAKnownRun(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prevM, prevT, prevP := otel.GetMeterProvider(), otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetMeterProvider(mp)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetMeterProvider(prevM); otel.SetTracerProvider(prevT); otel.SetTextMapPropagator(prevP) })

	pub := &fakePublisher{}
	s := newTestServer(t, testConfig(), pub)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	h := auth()
	h["traceparent"] = "00-" + traceID + "-00f067aa0ba902b7-01"
	bad := event(func(e map[string]any) { props(e)["quality"] = "ultra" })
	child := event(func(e map[string]any) { e["under_13"] = true })
	w, _ := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", body: mustJSON(t, []any{event(), event(), bad, child}), headers: h})
	if w.Code != 207 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", body: mustJSON(t, event())}) // 401

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	sums := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if d, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, p := range d.DataPoints {
					sums[m.Name+labels(p.Attributes)] += p.Value
				}
			}
		}
	}
	want := map[string]int64{
		"telemetry.ingest.events{outcome=accepted,reason=}":                   2,
		"telemetry.ingest.events{outcome=rejected,reason=properties.quality}": 1,
		"telemetry.ingest.events{outcome=dropped,reason=under_13}":            1,
		"telemetry.ingest.requests{route=/v1/events,status=207}":              1,
		"telemetry.ingest.requests{route=/v1/events,status=401}":              1,
	}
	for k, v := range want {
		if sums[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, sums[k], v, sums)
		}
	}

	spans := rec.Ended()
	var found bool
	for _, sp := range spans {
		if sp.Name() == "POST /v1/events" && sp.SpanContext().TraceID().String() == traceID {
			found = true
			if sp.Parent().SpanID().String() != "00f067aa0ba902b7" {
				t.Errorf("span parent %s, want the client's span", sp.Parent().SpanID())
			}
			attrs := map[attribute.Key]attribute.Value{}
			for _, a := range sp.Attributes() {
				attrs[a.Key] = a.Value
			}
			if attrs["telemetry.events.accepted"].AsInt64() != 3 || attrs["telemetry.events.rejected"].AsInt64() != 1 {
				t.Errorf("span attributes %v", attrs)
			}
		}
	}
	if !found {
		t.Fatalf("no span continued trace %s among %d spans", traceID, len(spans))
	}
	for _, m := range pub.msgs {
		var tp string
		for _, h := range m.Headers {
			if h.Key == "traceparent" {
				tp = string(h.Value)
			}
		}
		if !strings.Contains(tp, traceID) {
			t.Fatalf("kafka message traceparent %q does not carry trace %s", tp, traceID)
		}
	}
}

func labels(s attribute.Set) string {
	var parts []string
	for _, kv := range s.ToSlice() {
		parts = append(parts, string(kv.Key)+"="+kv.Value.Emit())
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// TestLogLinesCarryTheRequestsTraceID: a request that fails to publish is
// logged with the trace id the client sent, so an engineer can go from
// the client's trace to the collector's log line.
func TestLogLinesCarryTheRequestsTraceID(t *testing.T) {
	prevP := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prevP) })

	var logs bytes.Buffer
	s, err := New(testConfig(), &fakePublisher{err: errors.New("broker down")}, obs.NewLogger(obs.LogConfig{Level: "info", Format: "json"}, &logs))
	if err != nil {
		t.Fatal(err)
	}
	const traceID = "0af7651916cd43dd8448eb211c80319c"
	h := auth()
	h["traceparent"] = "00-" + traceID + "-b7ad6b7169203331-01"
	if w, _ := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", body: mustJSON(t, event()), headers: h}); w.Code != 503 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var line struct {
		Level, Msg, Err string
		TraceID         string `json:"trace_id"`
	}
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if strings.HasPrefix(line.Msg, "publish failed") {
			if line.Level != "WARN" || line.TraceID != traceID || !strings.Contains(line.Err, "broker down") {
				t.Fatalf("log line %s: want level WARN, trace_id %s, the error", l, traceID)
			}
			return
		}
	}
	t.Fatalf("no publish-failed line in the log:\n%s", logs.String())
}
