package segmentclients

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sora3web/telemetry/collector"
	"github.com/sora3web/telemetry/transform"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.stop != nil {
		shared.stop()
	}
	os.Exit(code)
}

func mkdirTemp() (string, error) { return os.MkdirTemp("", "segmentclients-") }

func removeAll(dir string) { _ = os.RemoveAll(dir) }

// jsDir holds the npm packages of the JavaScript clients.
func jsDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("testdata", "js"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// pageHandler serves the browser's test page and analytics-next's
// browser build from its npm package (no CDN).
func pageHandler() http.Handler {
	mux := http.NewServeMux()
	umd := http.Dir(filepath.Join("testdata", "js", "node_modules", "@segment", "analytics-next", "dist", "umd"))
	mux.Handle("GET /analytics-next/", http.StripPrefix("/analytics-next/", http.FileServer(umd)))
	mux.HandleFunc("GET /app.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Create</title>
<script src="/analytics-next/index.js"></script></head><body><h1>create</h1></body></html>`)
	})
	return mux
}

// row is what the checks read of an events row.
type row struct {
	ID          string  `json:"id"`
	Type        string  `json:"type"`
	UserID      string  `json:"user_id"`
	AnonymousID string  `json:"anonymous_id"`
	PreviousID  string  `json:"previous_id"`
	GroupID     string  `json:"group_id"`
	Plan        string  `json:"plan"`
	Source      string  `json:"source"`
	Timestamp   int64   `json:"ts"`
	OccurredAt  int64   `json:"occ"`
	SentAt      int64   `json:"sent"`
	ReceivedAt  int64   `json:"recv"`
	PageURL     string  `json:"context_page_url"`
	Referrer    string  `json:"context_referrer"`
	Locale      string  `json:"context_locale"`
	AppVersion  string  `json:"context_app_version"`
	Browser     string  `json:"device_browser"`
	OS          string  `json:"device_os"`
	DeviceClass string  `json:"device_class"`
	Quality     string  `json:"quality"`
	Resolution  string  `json:"resolution"`
	AspectRatio string  `json:"aspect_ratio"`
	DurationS   float64 `json:"duration_s"`
	Prompt      string  `json:"prompt"`
	Generation  string  `json:"generation_id"`
	LatencyMS   int64   `json:"latency_ms"`
	Format      string  `json:"format"`
	ErrorCode   string  `json:"error_code"`
	Setting     string  `json:"setting"`
	Value       string  `json:"value"`
}

const rowColumns = `toString(event_id) AS id, type, user_id, anonymous_id, previous_id, group_id, plan, source,
	toUnixTimestamp64Milli(timestamp) AS ts, toUnixTimestamp64Milli(occurred_at) AS occ,
	toUnixTimestamp64Milli(sent_at) AS sent, toUnixTimestamp64Milli(received_at) AS recv,
	context_page_url, context_referrer, context_locale, context_app_version, device_browser, device_os, device_class,
	quality, resolution, aspect_ratio, duration_s, prompt, generation_id, latency_ms, format, error_code, setting, value`

// checkStored waits until every message the client got accepted is a
// row, exactly once, then checks each row field by field against the
// message as it was sent, by the mapping of the README's table; and the
// alias and group messages against identity_links and group_members. It
// returns the rows by event_id.
func checkStored(t *testing.T, h *harness, msgs []wireMsg) map[string]row {
	t.Helper()
	if len(msgs) == 0 {
		t.Fatal("the client's requests reached no collector")
	}
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = collector.SegmentEventID(m.str("messageId"))
	}
	var rows []row
	deadline := time.Now().Add(30 * time.Second)
	for {
		rows = query[row](t, h, "SELECT "+rowColumns+" FROM telemetry.events WHERE event_id IN "+quoted(ids))
		if len(rows) >= len(ids) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	byID := map[string]row{}
	for _, r := range rows {
		if _, dup := byID[r.ID]; dup {
			t.Errorf("event %s stored twice", r.ID)
		}
		byID[r.ID] = r
	}
	ua, err := transform.NewUAParser(100)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		got, ok := byID[ids[i]]
		if !ok {
			t.Errorf("%s message %s (sent to %s) is not stored", m.str("type"), m.str("messageId"), m.path)
			continue
		}
		want := expected(t, m, got.ReceivedAt, ua)
		if d := got.Timestamp - want.Timestamp; d >= -1 && d <= 1 {
			// Each of the three times is stored to the millisecond: the
			// corrected one may round either way.
			want.Timestamp = got.Timestamp
		}
		if diff := compare(got, want); diff != "" {
			t.Errorf("%s message %s (sent to %s as %s), row differs:\n%s", m.str("type"), m.str("messageId"), m.path, m.contentType, diff)
		}
		switch m.str("type") {
		case "alias":
			waitCount(t, h, fmt.Sprintf("identity_links WHERE previous_id = %s AND user_id = %s", quoted([]string{m.str("previousId")}), quoted([]string{m.str("userId")})))
		case "group":
			waitCount(t, h, fmt.Sprintf("group_members WHERE group_id = %s AND user_id = %s AND anonymous_id = %s",
				quoted([]string{m.str("groupId")}), quoted([]string{m.str("userId")}), quoted([]string{m.str("anonymousId")})))
		}
	}
	return byID
}

// waitCount waits up to 10s until "telemetry.<from>" has exactly one row:
// a materialized view writes it after the events part of the insert is
// visible.
func waitCount(t *testing.T, h *harness, from string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := query[struct {
			N int `json:"n"`
		}](t, h, "SELECT count() AS n FROM telemetry."+from)[0].N
		if n == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d rows in telemetry.%s after 10s, want 1", n, from)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// expected is the row the README's mapping makes of m, given when the
// collector received it (the one value the client cannot know).
func expected(t *testing.T, m wireMsg, receivedAt int64, ua *transform.UAParser) row {
	t.Helper()
	ms := func(field string, s string) int64 {
		if s == "" {
			return receivedAt
		}
		at, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatalf("%s %q: %v", field, s, err)
		}
		return at.UnixMilli()
	}
	typ := m.str("type")
	r := row{ID: collector.SegmentEventID(m.str("messageId")), UserID: m.str("userId"), AnonymousID: m.str("anonymousId"), Source: "segment"}
	switch typ {
	case "track":
		r.Type = strings.ReplaceAll(strings.ToLower(m.str("event")), " ", "_")
	case "page", "screen":
		r.Type = "page_view"
	default:
		r.Type = typ
	}
	ctx := func(path ...string) string {
		if v, ok := dig(m.msg, append([]string{"context"}, path...)...).(string); ok && v != "" {
			return v
		}
		v, _ := dig(m.envContext, path...).(string)
		return v
	}
	prop := func(name string) string { v, _ := dig(m.msg, "properties", name).(string); return v }
	num := func(name string) float64 { v, _ := dig(m.msg, "properties", name).(float64); return v }
	switch typ {
	case "alias":
		r.PreviousID = m.str("previousId")
		r.GroupID = ctx("groupId")
	case "group":
		r.GroupID = m.str("groupId")
	default:
		r.GroupID = ctx("groupId")
	}
	r.Plan = first(prop("plan"), m.str("traits", "plan"), ctx("traits", "plan"), "free")
	r.OccurredAt = ms("timestamp", first(m.str("originalTimestamp"), m.str("timestamp")))
	r.SentAt = ms("sentAt", first(m.str("sentAt"), m.envSentAt))
	r.ReceivedAt = receivedAt
	r.Timestamp = r.OccurredAt + (receivedAt - r.SentAt)
	r.PageURL = first(ctx("page", "url"), prop("url"))
	if typ == "screen" && r.PageURL == "" {
		r.PageURL = "app://screen/" + url.PathEscape(m.str("name"))
	}
	r.Referrer = first(ctx("page", "referrer"), prop("referrer"))
	r.Locale, r.AppVersion = ctx("locale"), ctx("app", "version")
	dev, _ := ua.Lookup(first(ctx("userAgent"), m.userAgent))
	r.Browser, r.OS, r.DeviceClass = dev.Browser, dev.OS, dev.Class
	r.Quality, r.Resolution, r.AspectRatio, r.DurationS = prop("quality"), prop("resolution"), prop("aspect_ratio"), num("duration_s")
	r.Prompt, r.Generation, r.LatencyMS, r.Format = prop("prompt"), prop("generation_id"), int64(num("latency_ms")), prop("format")
	r.ErrorCode, r.Setting, r.Value = prop("error_code"), prop("setting"), prop("value")
	return r
}

func first(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// compare lists the fields of got that differ from want, one a line.
func compare(got, want row) string {
	var b strings.Builder
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range gv.NumField() {
		if g, w := gv.Field(i).Interface(), wv.Field(i).Interface(); g != w {
			fmt.Fprintf(&b, "  %s: got %q, want %q\n", gv.Type().Field(i).Tag.Get("json"), fmt.Sprint(g), fmt.Sprint(w))
		}
	}
	return b.String()
}
