package collector

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sora3web/telemetry/bus"
	"github.com/sora3web/telemetry/schema"
	"github.com/sora3web/telemetry/transform"
)

// BenchmarkDecodeValidateEnrich measures our own CPU per event with a warm
// UA cache: decode, byte checks, validation, enrichment and encoding.
func BenchmarkDecodeValidateEnrich(b *testing.B) {
	cfg := DefaultConfig()
	ua, err := transform.NewUAParser(cfg.UACacheSize)
	if err != nil {
		b.Fatal(err)
	}
	scrub, _ := transform.NewScrubber(transform.DefaultScrubConfig())
	enr := &enricher{ua: ua, scrub: scrub}
	raws, err := splitBatch(mustJSON(b, event()), false, 1)
	if err != nil {
		b.Fatal(err)
	}
	raw := raws[0]
	ri := &requestInfo{userAgent: uaChromeWin, ip: "203.0.113.0", source: "web"}
	ua.Parse(uaChromeWin)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw.data)))
	// As in Server.ingest: one decode target per request, reset per event,
	// and values appended to a buffer (reused here, as nothing keeps them).
	var ev schema.Event
	var buf []byte
	for b.Loop() {
		if fe := checkRaw(raw, cfg.MaxEventBytes, cfg.MaxDepth); fe != nil {
			b.Fatal(fe)
		}
		ev = schema.Event{}
		if fe := decodeInto(raw, &ev); fe != nil {
			b.Fatal(fe)
		}
		if fes := schema.Validate(&ev, cfg.Limits); fes != nil {
			b.Fatal(fes)
		}
		out, _ := enr.enrich(&ev, ri)
		if buf, err = appendEnriched(buf[:0], &out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandlerBatch50 measures a whole /v1/events request of 50 events
// through the handler, with a publisher that only collects. Reported per
// event.
func BenchmarkHandlerBatch50(b *testing.B) {
	benchHandler(b, "/v1/events", "application/json", 50, map[string]string{"Authorization": "Bearer " + testKey})
}

// BenchmarkHandlerBatch50Audit is BenchmarkHandlerBatch50 with the
// completeness audit on (audit.enabled, the default of `telemetry serve`):
// each request also counts its events and publishes them in a group commit
// with its audit record. The requests come one at a time, so each is a
// group of its own with a record of its own: the audit's CPU at its most
// per request. The publisher only collects; the publish round trip shows in
// bench.sh's ingest runs.
func BenchmarkHandlerBatch50Audit(b *testing.B) {
	benchHandler(b, "/v1/events", "application/json", 50, map[string]string{"Authorization": "Bearer " + testKey}, WithAudit(time.Second))
}

// BenchmarkHandlerBeacon measures the whole /v1/beacon handler for one
// event, as navigator.sendBeacon sends it: the per-request costs.
func BenchmarkHandlerBeacon(b *testing.B) {
	benchHandler(b, "/v1/beacon?writeKey="+testKey, "text/plain;charset=UTF-8", 1, nil)
}

// BenchmarkHandlerBeaconAudit is BenchmarkHandlerBeacon with the audit
// on: one record per one-event request, as a lone beacon costs.
func BenchmarkHandlerBeaconAudit(b *testing.B) {
	benchHandler(b, "/v1/beacon?writeKey="+testKey, "text/plain;charset=UTF-8", 1, nil, WithAudit(time.Second))
}

// benchHandler runs the handler on requests of n events to target, on a
// server with opts.
func benchHandler(b *testing.B, target, ctype string, n int, headers map[string]string, opts ...Option) {
	cfg := testConfig()
	cfg.RateLimitPerKey, cfg.RateLimitPerIP = RateLimit{}, RateLimit{} // one client, as fast as it can
	s := newTestServer(b, cfg, discardPublisher{}, opts...)
	evs := make([]any, n)
	for i := range evs {
		evs[i] = event()
	}
	body := mustJSON(b, map[string]any{"events": evs})
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(body))
		r.Header.Set("Content-Type", ctype)
		r.Header.Set("User-Agent", uaChromeWin)
		for k, v := range headers {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
}

type discardPublisher struct{}

func (discardPublisher) Publish(_ context.Context, _ []bus.Message) error { return nil }
func (discardPublisher) Ready() error                                     { return nil }

// BenchmarkScrubStack measures scrubbing a typical stack trace that holds
// no secret (the common case of client_error events).
func BenchmarkScrubStack(b *testing.B) {
	s, err := transform.NewScrubber(transform.DefaultScrubConfig())
	if err != nil {
		b.Fatal(err)
	}
	const stack = "TypeError: Cannot read properties of undefined (reading 'duration')\n" +
		"    at Player.seek (https://app.example.com/assets/player-3f2a.js:1:18234)\n" +
		"    at HTMLVideoElement.<anonymous> (https://app.example.com/assets/app-9c1d.js:2:4411)"
	b.ReportAllocs()
	for b.Loop() {
		if s.Text(stack) != stack {
			b.Fatal("a clean stack was changed")
		}
	}
}
