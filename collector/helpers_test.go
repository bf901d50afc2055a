package collector

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sora3web/telemetry/bus"
	"github.com/sora3web/telemetry/schema"
)

const testKey = "test-write-key-0123456789"

// Real user agents of current browsers.
const (
	uaChromeWin  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	uaSafariIOS  = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
	uaFirefoxMac = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.7; rv:133.0) Gecko/20100101 Firefox/133.0"
)

// fakePublisher records what it is asked to publish; err makes it fail.
type fakePublisher struct {
	mu   sync.Mutex
	msgs []bus.Message
	err  error
}

func (f *fakePublisher) Publish(_ context.Context, msgs []bus.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.msgs = append(f.msgs, msgs...)
	return nil
}

func (f *fakePublisher) Ready() error { return f.err }

func (f *fakePublisher) events(t *testing.T) []schema.Enriched {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]schema.Enriched, len(f.msgs))
	for i, m := range f.msgs {
		if err := json.Unmarshal(m.Value, &out[i]); err != nil {
			t.Fatalf("published value is not JSON: %v", err)
		}
	}
	return out
}

func testConfig() Config {
	c := DefaultConfig()
	c.WriteKeys = []WriteKey{{Key: testKey, Source: "web"}}
	c.CORSOrigins = []string{"https://app.example.com"}
	c.TrustedProxies = []string{"10.0.0.0/8"}
	return c
}

func newTestServer(t testing.TB, cfg Config, pub bus.Publisher, opts ...Option) *Server {
	t.Helper()
	s, err := New(cfg, pub, slog.New(slog.NewTextHandler(io.Discard, nil)), opts...)
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return time.Date(2026, 11, 28, 12, 0, 10, 0, time.UTC) }
	return s
}

// event returns a valid generation_requested event as a map, for tests to
// modify before encoding.
func event(mods ...func(map[string]any)) map[string]any {
	e := map[string]any{
		"schema_version": 1,
		"event_id":       uuid.NewString(),
		"type":           "generation_requested",
		"occurred_at":    "2026-11-28T12:00:00.000Z",
		"sent_at":        "2026-11-28T12:00:05.000Z",
		"anonymous_id":   "anon-7f3a",
		"user_id":        "user-42",
		"session_id":     "sess-1",
		"plan":           "pro",
		"consent":        map[string]any{"analytics": true},
		"context": map[string]any{
			"page_url": "https://app.example.com/create", "referrer": "https://www.google.com/",
			"locale": "en-US", "screen": map[string]any{"width": 2560, "height": 1440}, "app_version": "3.4.1",
		},
		"properties": map[string]any{
			"quality": "uhd", "resolution": "2160p", "width": 3840, "height": 2160, "aspect_ratio": "16:9",
			"duration_s": 8, "prompt": "a fox running through snow at dawn, cinematic", "model": "v3-turbo",
			"generation_id": "gen-1",
		},
	}
	for _, m := range mods {
		m(e)
	}
	return e
}

func props(e map[string]any) map[string]any { return e["properties"].(map[string]any) }

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	return buf.Bytes()
}

type req struct {
	method, path, ctype string
	body                []byte
	headers             map[string]string
	remote              string
}

func do(t testing.TB, h http.Handler, r req) (*httptest.ResponseRecorder, Response) {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodPost
	}
	hr := httptest.NewRequest(r.method, r.path, bytes.NewReader(r.body))
	if r.ctype != "" {
		hr.Header.Set("Content-Type", r.ctype)
	}
	for k, v := range r.headers {
		hr.Header.Set(k, v)
	}
	if r.remote != "" {
		hr.RemoteAddr = r.remote
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, hr)
	var resp Response
	if w.Header().Get("Content-Type") == "application/json" {
		_ = json.Unmarshal(w.Body.Bytes(), &resp)
	}
	return w, resp
}

func auth() map[string]string { return map[string]string{"Authorization": "Bearer " + testKey} }
