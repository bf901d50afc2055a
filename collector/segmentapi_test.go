package collector

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// segmentBasic is the Basic credentials of Segment's libraries: the write
// key as user name, no password.
func segmentBasic(key string) map[string]string {
	return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(key+":"))}
}

// segmentCall is one message of each call type, as analytics.js sends it
// to the short path (text/plain, write key in the body).
var segmentCall = map[string]string{
	"track": `{"type":"track","event":"Video Downloaded","properties":{"format":"webm","generation_id":"gen-7"},
		"context":{"page":{"url":"https://app.example.com/v/7"}}}`,
	"page":     `{"type":"page","name":"Create","properties":{"url":"https://app.example.com/create","referrer":"https://www.google.com/"}}`,
	"screen":   `{"type":"screen","name":"Gallery Home","context":{"app":{"version":"ios-5.2"}}}`,
	"identify": `{"type":"identify","userId":"user-9","traits":{"plan":"pro"}}`,
	"alias":    `{"type":"alias","previousId":"anon-old","userId":"user-9"}`,
	"group":    `{"type":"group","groupId":"org-acme","userId":"user-9","traits":{"name":"Acme"}}`,
}

// withFields adds the fields every message of a test carries.
func withFields(msg string, i int, extra string) string {
	return strings.TrimSuffix(strings.TrimSpace(msg), "}") + fmt.Sprintf(`,"messageId":"m-%d","anonymousId":"anon-1",
		"timestamp":"2026-11-28T12:00:00Z","sentAt":"2026-11-28T12:00:04Z"%s}`, i, extra)
}

// TestSegmentEveryCallTypeOnItsLongAndShortPath posts each call type to
// /v1/<call> and /v1/<first letter> as analytics.js does (text/plain, key in
// the body) and checks the answer Segment's clients expect and the
// published event.
func TestSegmentEveryCallTypeOnItsLongAndShortPath(t *testing.T) {
	want := map[string]func(t *testing.T, ev map[string]any){
		"track": func(t *testing.T, ev map[string]any) {
			expect(t, ev, "type", "video_downloaded", "properties.format", "webm", "properties.generation_id", "gen-7", "context.page_url", "https://app.example.com/v/7")
		},
		"page": func(t *testing.T, ev map[string]any) {
			expect(t, ev, "type", "page_view", "context.page_url", "https://app.example.com/create", "context.referrer", "https://www.google.com/")
		},
		"screen": func(t *testing.T, ev map[string]any) {
			expect(t, ev, "type", "page_view", "context.page_url", "app://screen/Gallery%20Home", "context.app_version", "ios-5.2")
		},
		"identify": func(t *testing.T, ev map[string]any) {
			expect(t, ev, "type", "identify", "user_id", "user-9", "plan", "pro")
		},
		"alias": func(t *testing.T, ev map[string]any) {
			expect(t, ev, "type", "alias", "user_id", "user-9", "previous_id", "anon-old", "anonymous_id", "anon-1")
		},
		"group": func(t *testing.T, ev map[string]any) {
			expect(t, ev, "type", "group", "user_id", "user-9", "group_id", "org-acme")
		},
	}
	for i, call := range SegmentCalls {
		for _, path := range []string{"/v1/" + call, "/v1/" + call[:1]} {
			t.Run(strings.TrimPrefix(path, "/v1/"), func(t *testing.T) {
				pub := &fakePublisher{}
				s := newTestServer(t, testConfig(), pub)
				body := withFields(segmentCall[call], i, `,"writeKey":"`+testKey+`"`)
				w, resp := do(t, s.Handler(), req{path: path, ctype: "text/plain", body: []byte(body), headers: map[string]string{"User-Agent": uaChromeWin}})
				if w.Code != http.StatusOK || resp.Success == nil || !*resp.Success || resp.Accepted != 1 {
					t.Fatalf("%s: %d %s", path, w.Code, w.Body)
				}
				evs := published(t, pub)
				if len(evs) != 1 {
					t.Fatalf("published %d events", len(evs))
				}
				expect(t, evs[0], "anonymous_id", "anon-1", "source", "web", "device.browser", "Chrome",
					"timestamp", "2026-11-28T12:00:06Z") // 12:00:00 + (received 12:00:10 - sentAt 12:00:04)
				want[call](t, evs[0])
			})
		}
	}
}

// TestSegmentAnonymousIdentifyIsStored: analytics.identify({traits}) before
// sign-in sends an identify with an anonymousId and no userId, which
// Segment accepts; so do we, and nothing is linked to a user.
func TestSegmentAnonymousIdentifyIsStored(t *testing.T) {
	pub := &fakePublisher{}
	s := newTestServer(t, testConfig(), pub)
	body := withFields(`{"type":"identify","traits":{"plan":"pro"}}`, 1, `,"writeKey":"`+testKey+`"`)
	w, resp := do(t, s.Handler(), req{path: "/v1/i", ctype: "text/plain", body: []byte(body), headers: map[string]string{"User-Agent": uaChromeWin}})
	if w.Code != http.StatusOK || resp.Accepted != 1 {
		t.Fatalf("anonymous identify: %d %s", w.Code, w.Body)
	}
	evs := published(t, pub)
	if len(evs) != 1 {
		t.Fatalf("published %d events", len(evs))
	}
	expect(t, evs[0], "type", "identify", "anonymous_id", "anon-1", "user_id", "<nil>", "plan", "pro")
	// Neither id: the identity rule names the field.
	body = `{"type":"identify","messageId":"m-2","traits":{"plan":"pro"},"timestamp":"2026-11-28T12:00:00Z","writeKey":"` + testKey + `"}`
	if w, _ := do(t, s.Handler(), req{path: "/v1/i", ctype: "text/plain", body: []byte(body)}); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "anonymousId") {
		t.Fatalf("identify with neither id: %d %s, want 400 naming anonymousId", w.Code, w.Body)
	}
}

// published returns the published events as generic JSON, so a test can
// name fields by their contract paths.
func published(t *testing.T, pub *fakePublisher) []map[string]any {
	t.Helper()
	pub.mu.Lock()
	defer pub.mu.Unlock()
	out := make([]map[string]any, len(pub.msgs))
	for i, m := range pub.msgs {
		if err := json.Unmarshal(m.Value, &out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// expect checks path/value pairs of ev (dotted paths, values compared as
// printed).
func expect(t *testing.T, ev map[string]any, pairs ...string) {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		var v any = ev
		for _, k := range strings.Split(pairs[i], ".") {
			m, _ := v.(map[string]any)
			v = m[k]
		}
		if got := fmt.Sprint(v); got != pairs[i+1] {
			t.Errorf("%s = %q, want %q (event %v)", pairs[i], got, pairs[i+1], ev)
		}
	}
}

// TestSegmentBatchPathsTakeTheEnvelopesSentAtContextAndKey: /v1/batch,
// /v1/b and /v1/import read a batch whose writeKey, sentAt and context
// stand beside the messages (analytics.js batching mode, analytics-go,
// analytics-python); a message's own values win.
func TestSegmentBatchPathsTakeTheEnvelopesSentAtContextAndKey(t *testing.T) {
	for _, p := range SegmentBatchPaths {
		t.Run(p, func(t *testing.T) {
			pub := &fakePublisher{}
			s := newTestServer(t, testConfig(), pub)
			body := `{"writeKey":"` + testKey + `","sentAt":"2026-11-28T12:00:08Z",
			  "context":{"groupId":"org-1","locale":"fr-FR","userAgent":"` + uaSafariIOS + `"},
			  "batch":[
			   {"type":"track","messageId":"b-1","anonymousId":"a-1","event":"Session Start","timestamp":"2026-11-28T12:00:00Z"},
			   {"type":"group","messageId":"b-2","userId":"u-1","groupId":"org-2","timestamp":"2026-11-28T12:00:01Z","sentAt":"2026-11-28T12:00:02Z",
			    "context":{"locale":"de-DE"}}]}`
			w, resp := do(t, s.Handler(), req{path: "/v1/" + p, ctype: "text/plain", body: []byte(body)})
			if w.Code != http.StatusOK || resp.Accepted != 2 || resp.Success == nil || !*resp.Success {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			evs := published(t, pub)
			expect(t, evs[0], "type", "session_start", "group_id", "org-1", "context.locale", "fr-FR", "device.os", "iOS",
				"sent_at", "2026-11-28T12:00:08Z", "timestamp", "2026-11-28T12:00:02Z")
			expect(t, evs[1], "type", "group", "group_id", "org-2", "context.locale", "de-DE",
				"sent_at", "2026-11-28T12:00:02Z", "timestamp", "2026-11-28T12:00:09Z")
		})
	}
}

// TestSegmentWriteKeyFromBasicAuthQueryOrBody: each place Segment's
// clients put the key is accepted; a request with none, or an unknown one,
// answers 401 with success false.
func TestSegmentWriteKeyFromBasicAuthQueryOrBody(t *testing.T) {
	s := newTestServer(t, testConfig(), &fakePublisher{})
	msg := withFields(segmentCall["track"], 1, "")
	inBody := withFields(segmentCall["track"], 1, `,"writeKey":"`+testKey+`"`)
	tests := []struct {
		name, path, body string
		headers          map[string]string
		status           int
	}{
		{"basic", "/v1/track", msg, segmentBasic(testKey), 200},
		{"query", "/v1/t?writeKey=" + testKey, msg, nil, 200},
		{"body", "/v1/t", inBody, nil, 200},
		{"body of a batch", "/v1/b", `{"writeKey":"` + testKey + `","batch":[` + msg + `]}`, nil, 200},
		{"none", "/v1/t", msg, nil, 401},
		{"unknown in body", "/v1/t", strings.Replace(inBody, testKey, "nope", 1), nil, 401},
		{"unknown basic", "/v1/t", inBody, segmentBasic("nope"), 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, resp := do(t, s.Handler(), req{path: tt.path, ctype: "application/json", body: []byte(tt.body), headers: tt.headers})
			if w.Code != tt.status || resp.Success == nil || *resp.Success != (tt.status == 200) {
				t.Fatalf("%d %s, want %d", w.Code, w.Body, tt.status)
			}
			if tt.status == 401 && !strings.Contains(resp.Error, "write key") {
				t.Errorf("error %q does not name the write key", resp.Error)
			}
		})
	}
}

// TestSegmentLimitsAndBadMessagesNameTheFieldAndRule: Segment's limits
// (32 KiB a message, 500 KiB a request) and its required fields, each
// answered with the status and the field.
func TestSegmentLimitsAndBadMessagesNameTheFieldAndRule(t *testing.T) {
	s := newTestServer(t, testConfig(), &fakePublisher{})
	big := withFields(`{"type":"track","event":"Session Start","properties":{"value":"`+strings.Repeat("x", 33<<10)+`"}}`, 1, "")
	var many []string
	for i := 0; i < 30; i++ {
		many = append(many, withFields(`{"type":"track","event":"Session Start","properties":{"value":"`+strings.Repeat("y", 17<<10)+`"}}`, i, ""))
	}
	tests := []struct {
		name, path, ctype, body string
		status                  int
		field, rule             string
	}{
		{"message over 32 KiB", "/v1/t", "text/plain", big, 400, "event", "32768"},
		{"request over 500 KiB, a 400 as Segment answers it", "/v1/b", "text/plain", `{"batch":[` + strings.Join(many, ",") + `]}`, 400, "", "512000 bytes"},
		{"alias without previousId", "/v1/a", "text/plain", withFields(`{"userId":"u"}`, 1, ""), 400, "previousId", "required for alias"},
		{"alias without userId", "/v1/alias", "application/json", withFields(`{"previousId":"p"}`, 1, ""), 400, "userId", "required for alias"},
		{"group without groupId", "/v1/g", "text/plain", withFields(`{"userId":"u"}`, 1, ""), 400, "groupId", "required for group"},
		{"track without event", "/v1/t", "text/plain", withFields(`{"properties":{}}`, 1, ""), 400, "event", "required for track"},
		{"track of an event outside the contract", "/v1/track", "application/json", withFields(`{"event":"Button Clicked"}`, 1, ""), 400, "event", `"Button Clicked" is not`},
		{"page without a URL", "/v1/p", "text/plain", withFields(`{"name":"Home"}`, 1, ""), 400, "context.page.url", "required for page"},
		{"unknown type in a batch", "/v1/batch", "application/json", `{"batch":[` + withFields(`{"type":"ping"}`, 1, "") + `]}`, 400, "type", "must be one of [track page screen identify alias group]"},
		{"bad timestamp", "/v1/track", "application/json", `{"event":"Session Start","anonymousId":"a","timestamp":"yesterday"}`, 400, "timestamp", "RFC 3339"},
		{"bad sentAt of a batch", "/v1/batch", "application/json", `{"sentAt":"soon","batch":[]}`, 400, "", "sentAt: must be an RFC 3339 date-time"},
		{"wrong content type", "/v1/t", "application/xml", "<track/>", 415, "", "text/plain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, resp := do(t, s.Handler(), req{path: tt.path, ctype: tt.ctype, body: []byte(tt.body), headers: segmentBasic(testKey)})
			if w.Code != tt.status || resp.Success == nil || *resp.Success {
				t.Fatalf("%d %s, want %d and success false", w.Code, w.Body, tt.status)
			}
			if tt.field == "" {
				if !strings.Contains(resp.Error, tt.rule) {
					t.Errorf("error %q, want it to say %q", resp.Error, tt.rule)
				}
				return
			}
			if len(resp.Errors) != 1 || resp.Errors[0].Field != tt.field || !strings.Contains(resp.Errors[0].Rule, tt.rule) {
				t.Errorf("errors %+v, want %s: %s", resp.Errors, tt.field, tt.rule)
			}
		})
	}
}

// TestSegmentSettingsPointAnalyticsJSAtThisCollector: what analytics.js
// loads in place of Segment's CDN sends its events back to the host it was
// fetched from; an unknown key has no settings.
func TestSegmentSettingsPointAnalyticsJSAtThisCollector(t *testing.T) {
	s := newTestServer(t, testConfig(), &fakePublisher{})
	w, _ := do(t, s.Handler(), req{method: "GET", path: "/v1/projects/" + testKey + "/settings",
		headers: map[string]string{"Origin": "https://app.example.com"}})
	var got struct {
		Integrations map[string]struct {
			APIKey   string `json:"apiKey"`
			APIHost  string `json:"apiHost"`
			Protocol string `json:"protocol"`
		} `json:"integrations"`
		Metrics struct {
			SampleRate *float64 `json:"sampleRate"`
		} `json:"metrics"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != 200 {
		t.Fatalf("%d %s: %v", w.Code, w.Body, err)
	}
	seg := got.Integrations["Segment.io"]
	if seg.APIKey != testKey || seg.APIHost != "example.com/v1" || seg.Protocol != "http" || got.Metrics.SampleRate == nil || *got.Metrics.SampleRate != 0 {
		t.Errorf("settings %s", w.Body)
	}
	if w.Header().Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("no CORS for the page's origin: %v", w.Header())
	}
	if w, _ := do(t, s.Handler(), req{method: "GET", path: "/v1/projects/nope/settings"}); w.Code != 404 {
		t.Errorf("unknown key: %d %s", w.Code, w.Body)
	}
	// Behind a trusted TLS proxy, the scheme is the proxy's.
	w, _ = do(t, s.Handler(), req{method: "GET", path: "/v1/projects/" + testKey + "/settings", remote: "10.1.2.3:4444",
		headers: map[string]string{"X-Forwarded-Proto": "https"}})
	if !strings.Contains(w.Body.String(), `"protocol":"https"`) {
		t.Errorf("behind a trusted proxy: %s", w.Body)
	}
}

// TestSegmentRetryPreflightIsAllowed: analytics.js retries with an
// X-Retry-Count header, which needs a CORS preflight.
func TestSegmentRetryPreflightIsAllowed(t *testing.T) {
	s := newTestServer(t, testConfig(), &fakePublisher{})
	for _, path := range []string{"/v1/t", "/v1/b"} {
		w, _ := do(t, s.Handler(), req{method: "OPTIONS", path: path, headers: map[string]string{
			"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type,x-retry-count"}})
		if w.Code != 204 || !strings.Contains(w.Header().Get("Access-Control-Allow-Headers"), "X-Retry-Count") {
			t.Errorf("%s preflight: %d %v", path, w.Code, w.Header())
		}
	}
}

// TestSegmentMessageWithoutIDKeepsItsIDWhenResent: a caller of the HTTP
// API may leave messageId out; the id made for it is the same for the same
// message, so a resend is one row.
func TestSegmentMessageWithoutIDKeepsItsIDWhenResent(t *testing.T) {
	pub := &fakePublisher{}
	s := newTestServer(t, testConfig(), pub)
	body := []byte(`{"event":"Session Start","anonymousId":"a","timestamp":"2026-11-28T12:00:00Z"}`)
	for range 2 {
		if w, _ := do(t, s.Handler(), req{path: "/v1/track", ctype: "application/json", body: body, headers: segmentBasic(testKey)}); w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
	}
	evs := pub.events(t)
	if len(evs) != 2 || evs[0].EventID != evs[1].EventID || len(evs[0].EventID) != 36 {
		t.Fatalf("ids %q %q", evs[0].EventID, evs[1].EventID)
	}
}
