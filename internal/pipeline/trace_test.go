package pipeline

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/sora3web/telemetry/internal/config"
	"github.com/sora3web/telemetry/internal/gen"
)

// TestTraceRunsFromTheRequestThroughTheBusToTheInsert sends one request
// with a client trace and finds the same trace on the ingest span and on
// the consumer's insert span, carried through the local log's headers.
func TestTraceRunsFromTheRequestThroughTheBusToTheInsert(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prevT, prevP := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTracerProvider(prevT); otel.SetTextMapPropagator(prevP) })

	cfg := allInOne(t)
	p := startPipeline(t, cfg)

	const traceID = "0af7651916cd43dd8448eb211c80319c"
	g := gen.New(7, 10)
	body, _ := json.Marshal(map[string]any{"events": []any{g.Event(), g.Event(), g.Event()}})
	req, _ := http.NewRequest("POST", "http://"+p.IngestAddr()+"/v1/events", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+config.DevWriteKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+traceID+"-b7ad6b7169203331-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("ingest %d", resp.StatusCode)
	}
	waitRows(t, p, 3)

	deadline := time.Now().Add(10 * time.Second)
	for {
		var ingest, insert bool
		for _, sp := range rec.Ended() {
			switch sp.Name() {
			case "POST /v1/events":
				ingest = ingest || sp.SpanContext().TraceID().String() == traceID
			case "consumer insert":
				for _, l := range sp.Links() {
					insert = insert || l.SpanContext.TraceID().String() == traceID
				}
				insert = insert || sp.SpanContext().TraceID().String() == traceID
			}
		}
		if ingest && insert {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s: ingest span %v, insert span %v (of %d spans)", traceID, ingest, insert, len(rec.Ended()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
