package segmentclients

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	analytics "github.com/segmentio/analytics-go/v3"

	"github.com/sora3web/telemetry/internal/testenv"
)

// run makes an id suffix unique to this run, so rows of earlier runs on a
// kept data directory never match.
func run() string { return fmt.Sprint(time.Now().UnixNano()) }

// clientEnv is what the client scripts are told: where to send, with
// which key, and the id suffix.
func clientEnv(h *harness, id string) []string {
	return []string{"SEGMENT_URL=" + h.url, "PAGE_URL=" + h.pages, "WRITE_KEY=" + writeKey, "RUN=" + id}
}

// runClient runs a client's script in dir, told where to send by
// clientEnv, and returns the messages the collector accepted from it.
func runClient(t *testing.T, h *harness, id, dir, name string, args ...string) []wireMsg {
	t.Helper()
	out, err := testenv.Run(dir, 3*time.Minute, clientEnv(h, id), name, args...)
	t.Logf("%s %v:\n%s", name, args, out)
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return h.proxy.messages()
}

// wantCalls checks the call types the client sent, and that each
// went where its library sends it (paths and content types seen).
func wantCalls(t *testing.T, msgs []wireMsg, types string, paths ...string) {
	t.Helper()
	if got := callTypes(msgs); got != types {
		t.Errorf("call types accepted: %q, want %q", got, types)
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		seen[m.path+" "+m.contentType] = true
	}
	for _, p := range paths {
		if !seen[p] {
			t.Errorf("no message sent as %q; seen %v", p, seen)
		}
	}
}

// TestAnalyticsNextInChromium loads @segment/analytics-next's browser
// build in headless Chromium on a page of another origin. Standard mode
// with its settings served by the collector (cdnURL): track, page,
// alias, identify and group on the short paths, as text/plain with the key
// in Basic auth and in the body. Batching mode with settings given inline: the first batch
// answered 503, retried, every message stored once.
func TestAnalyticsNextInChromium(t *testing.T) {
	testenv.NodeModules(t, jsDir(t))
	testenv.Chromium(t)
	h := start(t)
	h.proxy.failNext("/v1/b", 1)
	id := run()
	msgs := runClient(t, h, id, jsDir(t), "node", "browser.mjs")
	wantCalls(t, msgs, "alias group identify page page track track track",
		"/v1/t text/plain", "/v1/p text/plain", "/v1/i text/plain", "/v1/g text/plain", "/v1/a text/plain", "/v1/b text/plain")
	failed, settings := h.proxy.failedAndSettings()
	if settings == 0 {
		t.Error("analytics.js never loaded its settings from the collector")
	}
	if len(failed) == 0 {
		t.Fatal("no batch was answered 503: the retry was not exercised")
	}
	rows := checkStored(t, h, msgs)
	for _, mid := range failed {
		if !slices.ContainsFunc(msgs, func(m wireMsg) bool { return m.str("messageId") == mid && m.path == "/v1/b" }) {
			t.Errorf("message %s of the batch answered 503 was not sent again", mid)
		}
	}
	// What the page did, as the analysts will read it.
	req := rowOf(t, rows, "generation_requested")
	if req.AnonymousID != "web-anon-"+id || req.Quality != "uhd" || req.Prompt != "a fox in the snow at dawn" || req.Generation != "gen-"+id ||
		req.PageURL != h.pages+"/app.html" || req.Browser != "HeadlessChrome" || req.OS != "Linux" {
		t.Errorf("generation_requested row: %+v", req)
	}
	if g := rowOf(t, rows, "group"); g.GroupID != "web-org-"+id || g.UserID != "web-user-"+id {
		t.Errorf("group row: %+v", g)
	}
	if a := rowOf(t, rows, "alias"); a.PreviousID != "web-anon-"+id || a.UserID != "web-user-"+id {
		t.Errorf("alias row: %+v", a)
	}
	if d := rowOf(t, rows, "video_downloaded"); d.AnonymousID != "web-batch-"+id || d.Format != "mp4" {
		t.Errorf("video_downloaded row (batching mode): %+v", d)
	}
}

// rowOf returns the one row of type typ.
func rowOf(t *testing.T, rows map[string]row, typ string) row {
	t.Helper()
	var found []row
	for _, r := range rows {
		if r.Type == typ {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d rows of type %s, want 1", len(found), typ)
	}
	return found[0]
}

// TestAnalyticsPython sends every call type with segment-analytics-python
// (PyPI), pointed at the collector by its host setting.
func TestAnalyticsPython(t *testing.T) {
	python := testenv.PythonVenv(t, filepath.Join("testdata", "py", "requirements.txt"))
	h := start(t)
	id := run()
	msgs := runClient(t, h, id, "", python, filepath.Join("testdata", "py", "client.py"))
	wantCalls(t, msgs, "alias group identify page screen track", "/v1/batch application/json")
	rows := checkStored(t, h, msgs)
	if c := rowOf(t, rows, "generation_completed"); c.UserID != "py-user-"+id || c.LatencyMS != 48211 || c.Quality != "pro" || c.Resolution != "1080p" {
		t.Errorf("generation_completed row: %+v", c)
	}
	if a := rowOf(t, rows, "alias"); a.PreviousID != "py-anon-"+id || a.UserID != "py-user-"+id {
		t.Errorf("alias row: %+v", a)
	}
}

// TestAnalyticsNode sends every call type with @segment/analytics-node.
func TestAnalyticsNode(t *testing.T) {
	testenv.NodeModules(t, jsDir(t))
	h := start(t)
	id := run()
	msgs := runClient(t, h, id, jsDir(t), "node", "node.mjs")
	wantCalls(t, msgs, "alias group identify page screen track", "/v1/batch application/json")
	rows := checkStored(t, h, msgs)
	if c := rowOf(t, rows, "settings_changed"); c.UserID != "node-user-"+id || c.Setting != "theme" || c.Value != "dark" || c.Locale != "fr-FR" {
		t.Errorf("settings_changed row: %+v", c)
	}
	if g := rowOf(t, rows, "group"); g.GroupID != "node-org-"+id {
		t.Errorf("group row: %+v", g)
	}
}

// callbacks collects analytics-go's delivery reports.
type callbacks struct {
	mu       sync.Mutex
	ok       int
	failures []string
}

func (c *callbacks) Success(analytics.Message) { c.mu.Lock(); c.ok++; c.mu.Unlock() }

func (c *callbacks) Failure(m analytics.Message, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failures = append(c.failures, fmt.Sprintf("%T: %v", m, err))
}

// TestAnalyticsGo sends every call type with
// github.com/segmentio/analytics-go/v3, pointed at the collector by its
// Endpoint setting; its batch carries sentAt and context beside the
// messages.
func TestAnalyticsGo(t *testing.T) {
	h := start(t)
	id := run()
	cb := &callbacks{}
	client, err := analytics.NewWithConfig(writeKey, analytics.Config{Endpoint: h.url, Interval: 50 * time.Millisecond, BatchSize: 20, Callback: cb})
	if err != nil {
		t.Fatal(err)
	}
	user, anon := "go-user-"+id, "go-anon-"+id
	page := &analytics.Context{Page: analytics.PageInfo{URL: "https://app.example.com/create", Referrer: "https://www.google.com/"}, Locale: "de-DE",
		UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"}
	for _, m := range []analytics.Message{
		analytics.Track{UserId: user, AnonymousId: anon, Event: "Generation Failed", Context: page,
			Properties: analytics.NewProperties().Set("quality", "fast").Set("error_code", "GPU_OOM").Set("generation_id", "gen-"+id)},
		analytics.Page{UserId: user, AnonymousId: anon, Name: "Pricing", Properties: analytics.NewProperties().SetURL("https://app.example.com/pricing")},
		analytics.Screen{UserId: user, AnonymousId: anon, Name: "Render Queue", Context: &analytics.Context{App: analytics.AppInfo{Version: "android-7.1"}}},
		analytics.Identify{UserId: user, AnonymousId: anon, Traits: analytics.NewTraits().Set("plan", "pro")},
		// Segment's anonymous identify: traits before sign-in, no userId.
		analytics.Identify{AnonymousId: anon + "-visitor", Traits: analytics.NewTraits().Set("plan", "free")},
		analytics.Group{UserId: user, AnonymousId: anon, GroupId: "go-org-" + id, Traits: analytics.NewTraits().SetName("Acme")},
		analytics.Alias{PreviousId: anon, UserId: user},
	} {
		if err := client.Enqueue(m); err != nil {
			t.Fatalf("enqueue %T: %v", m, err)
		}
	}
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	if cb.ok != 7 || len(cb.failures) > 0 {
		t.Fatalf("analytics-go delivered %d of 7; failures %v", cb.ok, cb.failures)
	}
	msgs := h.proxy.messages()
	wantCalls(t, msgs, "alias group identify identify page screen track", "/v1/batch application/json")
	for _, m := range msgs {
		if m.envSentAt == "" || m.str("sentAt") != "" {
			t.Fatalf("analytics-go no longer sends sentAt beside the batch (%q, message %q): the envelope is not exercised", m.envSentAt, m.str("sentAt"))
		}
	}
	rows := checkStored(t, h, msgs)
	if f := rowOf(t, rows, "generation_failed"); f.ErrorCode != "GPU_OOM" || f.Browser != "Chrome" || f.Locale != "de-DE" || f.PageURL != "https://app.example.com/create" {
		t.Errorf("generation_failed row: %+v", f)
	}
	if a := rowOf(t, rows, "alias"); a.PreviousID != anon || a.UserID != user {
		t.Errorf("alias row: %+v", a)
	}
}
