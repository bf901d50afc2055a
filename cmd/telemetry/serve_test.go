package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sora3web/telemetry/internal/config"
	"github.com/sora3web/telemetry/internal/gen"
	"github.com/sora3web/telemetry/internal/testenv"
)

// otlpReceiver is an OTLP/HTTP endpoint that keeps what it is sent.
type otlpReceiver struct {
	mu      sync.Mutex
	traces  []*coltracepb.ExportTraceServiceRequest
	metrics []*colmetricpb.ExportMetricsServiceRequest
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	switch r.URL.Path {
	case "/v1/traces":
		var req coltracepb.ExportTraceServiceRequest
		if err = proto.Unmarshal(raw, &req); err == nil {
			o.traces = append(o.traces, &req)
		}
	case "/v1/metrics":
		var req colmetricpb.ExportMetricsServiceRequest
		if err = proto.Unmarshal(raw, &req); err == nil {
			o.metrics = append(o.metrics, &req)
		}
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

func attr(kv []*commonpb.KeyValue, key string) string {
	for _, a := range kv {
		if a.Key == key {
			return a.Value.GetStringValue()
		}
	}
	return ""
}

// spans returns, by span name, the trace ids of the spans received
// from the service named service.
func (o *otlpReceiver) spans(service string) map[string][]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string][]string{}
	for _, req := range o.traces {
		for _, rs := range req.ResourceSpans {
			if attr(rs.Resource.GetAttributes(), "service.name") != service {
				continue
			}
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					out[sp.Name] = append(out[sp.Name], hex.EncodeToString(sp.TraceId))
				}
			}
		}
	}
	return out
}

// sum returns the last exported value of the cumulative int sum name at
// the data point whose attributes include match, and whether it was sent.
func (o *otlpReceiver) sum(name string, match map[string]string) (int64, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var v int64
	var found bool
	for _, req := range o.metrics {
		for _, rm := range req.ResourceMetrics {
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					if m.Name != name || m.GetSum() == nil {
						continue
					}
				points:
					for _, dp := range m.GetSum().DataPoints {
						for k, want := range match {
							if attr(dp.Attributes, k) != want {
								continue points
							}
						}
						v, found = dp.GetAsInt(), true
					}
				}
			}
		}
	}
	return v, found
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// stopped waits for the command's result on done and fails the test if
// it is an error or takes over a minute.
func stopped(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the command stopped with %v, want a clean stop", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the command did not stop")
	}
}

// TestIngestExportsTracesAndMetricsByOTLP runs `telemetry ingest` with an
// OTLP endpoint configured, sends one traced request of three events, stops
// the process and reads what arrived at the endpoint: the request's span
// under the client's trace id, and the request and event counters.
func TestIngestExportsTracesAndMetricsByOTLP(t *testing.T) {
	rcv := &otlpReceiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	listen := freeAddr(t)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := newRootCmd()
	cmd.SetArgs([]string{"ingest", "--listen", listen,
		"--set", "dev=true", "--set", "bus=log", "--set", "data_dir=" + t.TempDir(), "--set", "log.level=warn", "--set", "dashboard.listen=127.0.0.1:0",
		"--set", "otel.otlp_endpoint=" + strings.TrimPrefix(srv.URL, "http://"),
		"--set", "otel.service_name=telemetry-otlp-test"})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	base := "http://" + listen
	testenv.WaitReady(t, base)

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	g := gen.New(11, 10)
	body, _ := json.Marshal(map[string]any{"events": []any{g.Event(), g.Event(), g.Event()}})
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/events", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+config.DevWriteKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01") // sampled
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ingest answered %d", resp.StatusCode)
	}

	cancel() // like SIGTERM: shutdown flushes the trace batcher and the metric reader
	stopped(t, done)

	spans := rcv.spans("telemetry-otlp-test")
	if ids := spans["POST /v1/events"]; len(ids) != 1 || ids[0] != traceID {
		t.Errorf("span POST /v1/events: trace ids %v, want [%s] (spans received: %v)", ids, traceID, spans)
	}
	if n, ok := rcv.sum("telemetry.ingest.events", map[string]string{"outcome": "accepted"}); !ok || n != 3 {
		t.Errorf("telemetry.ingest.events{outcome=accepted} = %d (sent %v), want 3", n, ok)
	}
	if n, ok := rcv.sum("telemetry.ingest.requests", map[string]string{"route": "/v1/events", "status": "200"}); !ok || n != 1 {
		t.Errorf("telemetry.ingest.requests{route=/v1/events,status=200} = %d (sent %v), want 1", n, ok)
	}
}

// TestIngestStopsCleanlyWhenOTLPIsDown: telemetry that cannot be flushed
// at shutdown is logged, not reported as a failed stop; every accepted
// event is already durable by then.
func TestIngestStopsCleanlyWhenOTLPIsDown(t *testing.T) {
	listen, dead := freeAddr(t), freeAddr(t) // nothing listens on dead
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := newRootCmd()
	cmd.SetArgs([]string{"ingest", "--listen", listen, "--set", "dev=true", "--set", "data_dir=" + t.TempDir(),
		"--set", "log.level=error", "--set", "otel.otlp_endpoint=" + dead})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	testenv.WaitReady(t, "http://"+listen)
	cancel()
	stopped(t, done)
}

func TestSetGoProcsMultipliesGoDefaultUnlessTheEnvironmentChose(t *testing.T) {
	base := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(base) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cases := []struct {
		name   string
		env    string
		perCPU int
		want   int
	}{
		{"one per CPU is Go's default", "", 1, base},
		{"twice", "", 2, 2 * base},
		{"the environment wins", "3", 2, base},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runtime.GOMAXPROCS(base)
			t.Setenv("GOMAXPROCS", c.env) // Go read it at start; set here, setGoProcs sees it was chosen
			setGoProcs(c.perCPU, log)
			if got := runtime.GOMAXPROCS(0); got != c.want {
				t.Fatalf("GOMAXPROCS %d, want %d", got, c.want)
			}
		})
	}
}
