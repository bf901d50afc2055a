package sdk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sora3web/telemetry/bus/broker"
	"github.com/sora3web/telemetry/collector"
	"github.com/sora3web/telemetry/internal/testenv"
	"github.com/sora3web/telemetry/schema"
	"github.com/sora3web/telemetry/sdk"
)

const browserWriteKey = "browser-test-write-key-0123"

// wireEvent is one event as the SDK put it on the wire.
type wireEvent struct {
	path, contentType string
	event             map[string]any
	// batch describes the request's events (type and page_url).
	batch []string
}

// recorder passes requests to the collector and keeps the events the
// browser sent, so the test can check what left the browser (the topic
// only shows what the collector kept).
type recorder struct {
	next http.Handler
	mu   sync.Mutex
	byID map[string][]wireEvent
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var batch struct {
			Events []map[string]any `json:"events"`
		}
		if json.Unmarshal(body, &batch) == nil {
			mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
			var desc []string
			for _, e := range batch.Events {
				c, _ := e["context"].(map[string]any)
				desc = append(desc, fmt.Sprintf("%v@%v", e["type"], c["page_url"]))
			}
			rc.mu.Lock()
			for _, e := range batch.Events {
				id, _ := e["event_id"].(string)
				rc.byID[id] = append(rc.byID[id], wireEvent{path: r.URL.Path, contentType: mt, event: e, batch: desc})
			}
			rc.mu.Unlock()
		}
	}
	rc.next.ServeHTTP(w, r)
}

func (rc *recorder) get(id string) []wireEvent {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.byID[id]
}

// pageHTML is the test page: it loads the SDK from the collector and
// initialises it from the query string (fi: flushInterval, bs: batchSize,
// uid: userId).
var pageHTML = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sdk browser test</title>
<script src="{{.Collector}}/v1/sdk.js"></script>
<script>
  const q = new URLSearchParams(location.search);
  telemetry.init({
    endpoint: {{.Collector}}, writeKey: {{.Key}}, plan: "pro", appVersion: "web-test-1.0",
    flushInterval: +(q.get("fi") || 300), batchSize: +(q.get("bs") || 20),
    retryBase: 250, retryMax: 2000, userId: q.get("uid") || undefined,
  });
</script></head><body><h1>create</h1></body></html>`))

// pageServer serves the test page (app.html, loading the SDK from
// *collector with key) and another page, on an origin of its own.
func pageServer(t *testing.T, collector *string, key string) *httptest.Server {
	t.Helper()
	pages := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		switch r.URL.Path {
		case "/app.html":
			_ = pageHTML.Execute(w, map[string]string{"Collector": *collector, "Key": key})
		case "/other.html":
			_, _ = io.WriteString(w, "<!doctype html><title>other</title><p>another page</p>")
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(pages.Close)
	return pages
}

// browserResult is what test/browser.mjs reports.
type browserResult struct {
	Main struct {
		GenerationID       string `json:"generation_id"`
		Requested          string `json:"requested"`
		Completed          string `json:"completed"`
		Downloaded         string `json:"downloaded"`
		FailedGenerationID string `json:"failed_generation_id"`
		FailedRequested    string `json:"failed_requested"`
		Failed             string `json:"failed"`
		Setting            string `json:"setting"`
		AnonymousID        string `json:"anonymous_id"`
		SessionID          string `json:"session_id"`
		PageURL            string `json:"page_url"`
	} `json:"main"`
	Unload  struct{ IDs []string } `json:"unload"`
	Close   struct{ IDs []string } `json:"close"`
	Offline struct {
		IDs       []string `json:"ids"`
		ClosedIDs []string `json:"closed_ids"`
	} `json:"offline"`
	Optout struct{ IDs []string } `json:"optout"`
	DNT    struct{ IDs []string } `json:"dnt"`
	GPC    struct{ IDs []string } `json:"gpc"`
}

// TestBrowserEventsReachKafka runs the SDK in headless Chromium against a
// real collector publishing to a real Kafka broker and checks the topic:
// the page's events with their fields, the generation lifecycle, beacons on
// navigation and close, the offline queue delivered exactly once, and
// opt-out, DNT and GPC sending nothing identifying.
func TestBrowserEventsReachKafka(t *testing.T) {
	nodeModules(t)
	ensureChromium(t)

	bc := broker.DefaultConfig()
	bc.Brokers = testenv.Kafka(t)
	suffix := fmt.Sprintf("sdk-browser-%d", time.Now().UnixNano())
	bc.EventsTopic, bc.DeadLetterTopic = "events-"+suffix, "dlq-"+suffix
	testenv.DeleteTopicsAtCleanup(t, bc.Brokers, bc.EventsTopic, bc.DeadLetterTopic)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	pub, err := broker.NewKafkaPublisher(bc, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := pub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = pub.Shutdown(sctx)
	})

	// The page's origin differs from the collector's: CORS as in production.
	var collectorURL string
	pages := pageServer(t, &collectorURL, browserWriteKey)

	cfg := collector.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.WriteKeys = []collector.WriteKey{{Key: browserWriteKey, Source: "web"}}
	cfg.CORSOrigins = []string{pages.URL}
	srv, err := collector.New(cfg, pub, log)
	if err != nil {
		t.Fatal(err)
	}
	srv.Mount("GET /v1/sdk.js", sdk.Handler())
	rec := &recorder{next: srv.Handler(), byID: map[string][]wireEvent{}}
	cs := httptest.NewServer(rec)
	t.Cleanup(cs.Close)
	collectorURL = cs.URL
	testenv.WaitReady(t, cs.URL)

	resultFile := filepath.Join(t.TempDir(), "result.json")
	start := time.Now()
	out, err := run(sdkDir(t), 5*time.Minute, []string{
		"COLLECTOR_URL=" + cs.URL, "PAGE_URL=" + pages.URL, "WRITE_KEY=" + browserWriteKey, "RESULT_FILE=" + resultFile,
	}, "node", "test/browser.mjs")
	t.Logf("node test/browser.mjs (%v):\n%s", time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("node test/browser.mjs: %v", err)
	}
	raw, err := os.ReadFile(resultFile)
	if err != nil {
		t.Fatal(err)
	}
	var res browserResult
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("result %s: %v", raw, err)
	}

	m := res.Main
	want := []string{m.Requested, m.Completed, m.Downloaded, m.FailedRequested, m.Failed, m.Setting}
	for _, ids := range [][]string{res.Unload.IDs, res.Close.IDs, res.Offline.IDs, res.Offline.ClosedIDs, res.Optout.IDs, res.DNT.IDs, res.GPC.IDs} {
		want = append(want, ids...)
	}
	for i, id := range want {
		if id == "" {
			t.Fatalf("browser.mjs reported an empty event id (#%d) in %s", i, raw)
		}
	}
	topic := readAll(t, bc, want)

	one := func(id string) schema.Enriched {
		t.Helper()
		got := topic.byID[id]
		if len(got) != 1 {
			t.Fatalf("event %s is %d times on the topic, want once", id, len(got))
		}
		return got[0]
	}

	t.Run("page events with their fields", func(t *testing.T) {
		req := one(m.Requested)
		if req.Type != "generation_requested" || req.Plan != "pro" || req.Consent.Analytics == nil || !*req.Consent.Analytics || req.OptedOut {
			t.Errorf("envelope: %+v", req.Event)
		}
		if req.UserID != "user-browser-1" || req.AnonymousID != m.AnonymousID || req.AnonymousID == "" || req.SessionID != m.SessionID || req.SessionID == "" {
			t.Errorf("ids: user %q anon %q session %q, page had anon %q session %q", req.UserID, req.AnonymousID, req.SessionID, m.AnonymousID, m.SessionID)
		}
		c := req.Context
		if c.PageURL != m.PageURL || !strings.Contains(c.PageURL, "/app.html?s=main") || c.AppVersion != "web-test-1.0" || c.Locale == "" || c.Screen.Width < 1 {
			t.Errorf("context: %+v", c)
		}
		p := req.Properties
		if p.Quality != "uhd" || p.Resolution != "2160p" || p.AspectRatio != "16:9" || p.DurationS != 8 || p.Width != 3840 || p.Height != 2160 ||
			p.Prompt != "a fox running through snow at dawn, cinematic" || p.Model != "sora3-video-2.1" || p.GenerationID != m.GenerationID {
			t.Errorf("properties: %+v", p)
		}
		if req.Source != "web" || req.Device.Browser == "" || req.ReceivedAt.IsZero() || req.SentAt.Before(req.OccurredAt) {
			t.Errorf("enrichment: source %q device %+v received %v sent %v occurred %v", req.Source, req.Device, req.ReceivedAt, req.SentAt, req.OccurredAt)
		}
		set := one(m.Setting)
		if set.Type != "settings_changed" || set.Properties.Setting != "theme" || set.Properties.Value != "dark" {
			t.Errorf("settings_changed: %+v", set.Properties)
		}
		pv := topic.where(func(e schema.Enriched) bool { return e.Type == "page_view" && e.Context.PageURL == m.PageURL })
		if len(pv) != 1 {
			t.Errorf("%d page_view events for %s, want 1", len(pv), m.PageURL)
		}
		ss := topic.where(func(e schema.Enriched) bool { return e.Type == "session_start" && e.SessionID == m.SessionID })
		if len(ss) != 1 {
			t.Errorf("%d session_start events for the main session, want 1", len(ss))
		}
		errs := map[string]string{}
		for _, e := range topic.where(func(e schema.Enriched) bool { return e.Type == "client_error" && e.Context.PageURL == m.PageURL }) {
			errs[e.Properties.ErrorCode] = e.Properties.ErrorMessage
		}
		if !strings.Contains(errs["uncaught_error"], "boom-browser") || !strings.Contains(errs["unhandled_rejection"], "rejected-browser") {
			t.Errorf("client_error events: %v", errs)
		}
	})

	t.Run("generation lifecycle shares generation_id and measures latency", func(t *testing.T) {
		done, dl := one(m.Completed), one(m.Downloaded)
		if done.Type != "generation_completed" || dl.Type != "video_downloaded" {
			t.Fatalf("types %s %s", done.Type, dl.Type)
		}
		if done.Properties.GenerationID != m.GenerationID || dl.Properties.GenerationID != m.GenerationID || !strings.HasPrefix(m.GenerationID, "gen_") {
			t.Errorf("generation ids: completed %q downloaded %q, requested %q", done.Properties.GenerationID, dl.Properties.GenerationID, m.GenerationID)
		}
		if l := done.Properties.LatencyMS; l < 300 || l > 10000 {
			t.Errorf("latency_ms %d, want the 300 ms the page waited (plus a little)", l)
		}
		if done.Properties.Quality != "uhd" || done.Properties.Resolution != "2160p" || done.Properties.Prompt != "" {
			t.Errorf("completed properties: %+v", done.Properties)
		}
		if dl.Properties.Format != "mp4" {
			t.Errorf("downloaded format %q", dl.Properties.Format)
		}
		f := one(m.Failed)
		if f.Type != "generation_failed" || f.Properties.ErrorCode != "GPU_OOM" || f.Properties.ErrorMessage != "out of memory at 2160p" ||
			f.Properties.GenerationID != m.FailedGenerationID || f.Properties.Quality != "fast" || f.Properties.LatencyMS < 1 {
			t.Errorf("failed: %+v", f.Properties)
		}
		if one(m.FailedRequested).Properties.GenerationID != m.FailedGenerationID || m.FailedGenerationID == m.GenerationID {
			t.Errorf("second generation's id %q", m.FailedGenerationID)
		}
	})

	t.Run("events queued at navigation and close leave by sendBeacon", func(t *testing.T) {
		for name, ids := range map[string][]string{"navigate away": res.Unload.IDs, "close": res.Close.IDs} {
			for _, id := range ids {
				e := one(id)
				if e.UserID != "" || e.AnonymousID == "" || e.OptedOut {
					t.Errorf("%s: %+v", name, e.Event)
				}
				wire := rec.get(id)
				if len(wire) != 1 || wire[0].path != "/v1/beacon" || wire[0].contentType != "text/plain" {
					t.Errorf("%s: event %s reached the collector as %+v, want one text/plain beacon", name, id, wire)
				}
			}
		}
	})

	t.Run("offline events are delivered exactly once", func(t *testing.T) {
		for _, id := range append(append([]string{}, res.Offline.IDs...), res.Offline.ClosedIDs...) {
			if n := len(topic.byID[id]); n != 1 {
				t.Errorf("event %s is %d times on the topic, want once; sent as %s", id, n, describe(rec.get(id)))
			}
		}
		if len(res.Offline.IDs) != 3 || len(res.Offline.ClosedIDs) != 2 {
			t.Fatalf("offline ids: %+v", res.Offline)
		}
		// The events of the page closed while offline left from the next page.
		for _, id := range res.Offline.ClosedIDs {
			e := one(id)
			if !strings.Contains(e.Context.PageURL, "s=offline&") {
				t.Errorf("closed-offline event's page_url %q", e.Context.PageURL)
			}
			for _, w := range rec.get(id) {
				if w.path != "/v1/events" {
					t.Errorf("closed-offline event %s sent to %s", id, w.path)
				}
			}
		}
	})

	for name, ids := range map[string][]string{"optOut": res.Optout.IDs, "DNT": res.DNT.IDs, "GPC": res.GPC.IDs} {
		t.Run(name+" sends nothing identifying", func(t *testing.T) {
			if len(ids) == 0 {
				t.Fatal("no events")
			}
			for _, id := range ids {
				e := one(id)
				if !e.OptedOut || e.UserID != "" || e.AnonymousID != "" || e.SessionID != "" || e.Properties.Prompt != "" || e.IP != "" {
					t.Errorf("on the topic: %+v", e)
				}
				if e.Type == "generation_requested" && e.Properties.Quality != "uhd" {
					t.Errorf("non-identifying properties lost: %+v", e.Properties)
				}
				wire := rec.get(id)
				if len(wire) == 0 {
					t.Fatalf("event %s not seen on the wire", id)
				}
				for _, w := range wire {
					ev := w.event
					props, _ := ev["properties"].(map[string]any)
					consent, _ := ev["consent"].(map[string]any)
					if ev["anonymous_id"] != "opted-out" || ev["user_id"] != nil || ev["session_id"] != nil || props["prompt"] != nil || consent["analytics"] != false {
						t.Errorf("sent by the browser: %v", ev)
					}
				}
			}
		})
	}
	// Opted-out pages (after optOut, and under DNT/GPC) sent only opted-out events.
	for _, s := range []string{"s=optout-next", "s=dnt", "s=gpc"} {
		for _, e := range topic.where(func(e schema.Enriched) bool { return strings.Contains(e.Context.PageURL, s) }) {
			if !e.OptedOut || e.UserID != "" || e.AnonymousID != "" || e.SessionID != "" || e.Properties.Prompt != "" {
				t.Errorf("%s: %s event not opted out: %+v", s, e.Type, e.Event)
			}
		}
	}
}

// topicEvents is the events topic, read back.
type topicEvents struct {
	byID  map[string][]schema.Enriched
	all   []schema.Enriched
	total int
}

func (te *topicEvents) where(f func(schema.Enriched) bool) []schema.Enriched {
	var out []schema.Enriched
	for _, e := range te.all {
		if f(e) {
			out = append(out, e)
		}
	}
	return out
}

// readAll reads the events topic until every id of want is there, then
// for 3 more quiet seconds, so duplicates would show up too.
func readAll(t *testing.T, bc broker.Config, want []string) *topicEvents {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: bc.Brokers, GroupID: "test-" + bc.EventsTopic, Topic: bc.EventsTopic, StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	te := &topicEvents{byID: map[string][]schema.Enriched{}}
	missing := map[string]bool{}
	for _, id := range want {
		missing[id] = true
	}
	var quiet time.Time
	for {
		rctx := ctx
		var rcancel context.CancelFunc = func() {}
		if len(missing) == 0 {
			if quiet.IsZero() {
				quiet = time.Now().Add(3 * time.Second)
			}
			rctx, rcancel = context.WithDeadline(ctx, quiet)
		}
		msg, err := r.ReadMessage(rctx)
		rcancel()
		if err != nil {
			if len(missing) == 0 && ctx.Err() == nil {
				return te
			}
			t.Fatalf("read %d messages; %d of %d expected events missing: %v", te.total, len(missing), len(want), err)
		}
		var e schema.Enriched
		if err := json.Unmarshal(msg.Value, &e); err != nil {
			t.Fatalf("message is not an event: %s", msg.Value)
		}
		te.total++
		te.all = append(te.all, e)
		te.byID[e.EventID] = append(te.byID[e.EventID], e)
		delete(missing, e.EventID)
	}
}

// describe lists how an event reached the collector, for failure messages.
func describe(ws []wireEvent) string {
	var b strings.Builder
	for _, w := range ws {
		fmt.Fprintf(&b, "[%s %s sent_at=%v with %v] ", w.path, w.contentType, w.event["sent_at"], w.batch)
	}
	return b.String()
}
