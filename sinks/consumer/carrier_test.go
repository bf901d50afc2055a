package consumer

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/sora3web/telemetry/bus"
	"github.com/sora3web/telemetry/internal/audit"
)

func TestHeaderCarrierExtractsAsAMapOfTheHeaders(t *testing.T) {
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct {
		name    string
		headers []bus.Header
		valid   bool
	}{
		{"none", nil, false},
		{"an audit record's kind", []bus.Header{{Key: audit.Header, Value: []byte(audit.KindAudit)}}, false},
		{"traceparent among others", []bus.Header{{Key: audit.Header, Value: []byte("x")}, {Key: "traceparent", Value: []byte(parent)}, {Key: "baggage", Value: []byte("k=v")}}, true},
		{"a malformed traceparent", []bus.Header{{Key: "traceparent", Value: []byte("00-zz")}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := propagation.MapCarrier{}
			for _, h := range tc.headers {
				m[h.Key] = string(h.Value)
			}
			want := prop.Extract(context.Background(), m)
			got := prop.Extract(context.Background(), headerCarrier(tc.headers))
			if g, w := trace.SpanContextFromContext(got), trace.SpanContextFromContext(want); !g.Equal(w) || g.IsValid() != tc.valid {
				t.Errorf("span context %v, want %v (valid %v)", g, w, tc.valid)
			}
			if g, w := baggage.FromContext(got).String(), baggage.FromContext(want).String(); g != w {
				t.Errorf("baggage %q, want %q", g, w)
			}
			if g := headerCarrier(tc.headers).Keys(); len(g) != len(tc.headers) {
				t.Errorf("keys %v, want one per header", g)
			}
		})
	}
}
