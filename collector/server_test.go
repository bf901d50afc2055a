package collector

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestEventsAcceptsBatchAndPublishesEnrichedEvents(t *testing.T) {
	pub := &fakePublisher{}
	s := newTestServer(t, testConfig(), pub)
	e1, e2 := event(), event(func(e map[string]any) { e["type"] = "page_view"; e["properties"] = map[string]any{} })
	w, resp := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", headers: map[string]string{
		"Authorization": "Bearer " + testKey, "User-Agent": uaChromeWin,
	}, body: mustJSON(t, map[string]any{"events": []any{e1, e2}}), remote: "203.0.113.77:5555"})
	if w.Code != http.StatusOK || resp.Accepted != 2 || resp.Rejected != 0 {
		t.Fatalf("status %d, body %s", w.Code, w.Body)
	}
	got := pub.events(t)
	if len(got) != 2 {
		t.Fatalf("published %d events, want 2", len(got))
	}
	ev := got[0]
	if ev.EventID != e1["event_id"] || ev.Source != "web" || ev.IP != "203.0.113.0" || ev.SchemaVersion != 1 {
		t.Errorf("envelope: %+v", ev)
	}
	wantTS := time.Date(2026, 11, 28, 12, 0, 5, 0, time.UTC) // occurred + (received - sent) = 12:00:00 + 5s
	if !ev.Timestamp.Equal(wantTS) || !ev.ReceivedAt.Equal(s.now()) {
		t.Errorf("timestamp %v received %v, want %v", ev.Timestamp, ev.ReceivedAt, wantTS)
	}
	if ev.Device.Class != "desktop" || ev.Device.Browser != "Chrome" || ev.Device.OS != "Windows" {
		t.Errorf("device: %+v", ev.Device)
	}
	if ev.Properties.Prompt == "" || ev.UserID != "user-42" || ev.Context.UserAgent != "" {
		t.Errorf("properties/ids: %+v", ev)
	}
	if string(pub.msgs[0].Key) != "user-42" {
		t.Errorf("key %q, want user_id", pub.msgs[0].Key)
	}
}

func TestEventsRejectsBadEventsButKeepsTheRest(t *testing.T) {
	pub := &fakePublisher{}
	s := newTestServer(t, testConfig(), pub)
	good := event()
	badQuality := event(func(e map[string]any) { props(e)["quality"] = "ultra" })
	badType := event(func(e map[string]any) { props(e)["duration_s"] = "five" })
	unknownType := event(func(e map[string]any) { e["type"] = "video_liked" })
	w, resp := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", headers: auth(),
		body: mustJSON(t, []any{good, badQuality, badType, unknownType})})
	if w.Code != http.StatusMultiStatus || resp.Accepted != 1 || resp.Rejected != 3 {
		t.Fatalf("status %d body %s", w.Code, w.Body)
	}
	want := []Rejection{
		{Index: 1, Field: "properties.quality", Rule: `must be one of [standard fast pro uhd], got "ultra"`},
		{Index: 2, Field: "properties.duration_s", Rule: "must be of type number, got string"},
		{Index: 3, Field: "type"},
	}
	for i, r := range want {
		got := resp.Errors[i]
		if got.Index != r.Index || got.Field != r.Field || (r.Rule != "" && got.Rule != r.Rule) {
			t.Errorf("error %d = %+v, want %+v", i, got, r)
		}
	}
	if !strings.Contains(resp.Errors[2].Rule, "generation_requested") {
		t.Errorf("unknown type rule should list allowed types: %q", resp.Errors[2].Rule)
	}
	if n := len(pub.events(t)); n != 1 {
		t.Errorf("published %d, want only the good one", n)
	}
}

func TestIngestAnswersBadRequestsWithTheRightStatus(t *testing.T) {
	valid := mustJSON(t, event())
	deep := `{"events":[` + strings.Repeat(`{"a":`, 20) + "1" + strings.Repeat("}", 20) + `]}`
	bomb := gz(t, bytes.Repeat([]byte(" "), 50<<20)) // 50 MiB of spaces, ~50 KiB on the wire
	cases := []struct {
		name     string
		r        req
		status   int
		contains string
	}{
		{"no write key", req{path: "/v1/events", ctype: "application/json", body: valid}, 401, "write key"},
		{"wrong write key", req{path: "/v1/events", ctype: "application/json", body: valid, headers: map[string]string{"Authorization": "Bearer nope"}}, 401, "write key"},
		{"wrong content type", req{path: "/v1/events", ctype: "text/html", body: valid, headers: auth()}, 415, "Content-Type"},
		{"unknown encoding", req{path: "/v1/events", ctype: "application/json", body: valid, headers: map[string]string{"Authorization": "Bearer " + testKey, "Content-Encoding": "br"}}, 415, "Content-Encoding"},
		{"malformed json names offset", req{path: "/v1/events", ctype: "application/json", body: []byte(`{"events":[{"type": }]}`), headers: auth()}, 400, "byte offset 20"},
		{"truncated json", req{path: "/v1/events", ctype: "application/json", body: []byte(`{"events":[{"type":"x"`), headers: auth()}, 400, "malformed"},
		{"10 MB body", req{path: "/v1/events", ctype: "application/json", body: bytes.Repeat([]byte("x"), 10<<20), headers: auth()}, 413, "exceeds"},
		{"gzip bomb", req{path: "/v1/events", ctype: "application/json", body: bomb, headers: map[string]string{"Authorization": "Bearer " + testKey, "Content-Encoding": "gzip"}}, 413, "decompressed"},
		{"bad gzip", req{path: "/v1/events", ctype: "application/json", body: []byte("not gzip"), headers: map[string]string{"Authorization": "Bearer " + testKey, "Content-Encoding": "gzip"}}, 400, "gzip"},
		{"invalid utf-8", req{path: "/v1/events", ctype: "application/json", body: bytes.Replace(valid, []byte("fox"), []byte("f\xffx"), 1), headers: auth()}, 400, "UTF-8"},
		{"deep nesting", req{path: "/v1/events", ctype: "application/json", body: []byte(deep), headers: auth()}, 400, "nesting"},
		{"empty body", req{path: "/v1/events", ctype: "application/json", headers: auth()}, 400, "empty"},
		{"not an object", req{path: "/v1/events", ctype: "application/json", body: []byte(`"hello"`), headers: auth()}, 400, "expected"},
		{"too many events", req{path: "/v1/events", ctype: "application/json", body: []byte("[" + strings.Repeat("{},", 500) + "{}]"), headers: auth()}, 413, "more than 500"},
		{"event over 32 KiB", req{path: "/v1/events", ctype: "application/json", body: mustJSON(t, event(func(e map[string]any) { props(e)["error_stack"] = strings.Repeat("s", 40<<10) })), headers: auth()}, 400, "32768 bytes"},
		{"missing consent", req{path: "/v1/events", ctype: "application/json", body: mustJSON(t, event(func(e map[string]any) { delete(e, "consent") })), headers: auth()}, 400, "consent.analytics"},
		{"bad timestamp", req{path: "/v1/events", ctype: "application/json", body: mustJSON(t, event(func(e map[string]any) { e["occurred_at"] = "yesterday" })), headers: auth()}, 400, "occurred_at"},
		{"beacon requires key in query", req{path: "/v1/beacon", ctype: "text/plain", body: valid}, 401, "write key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pub := &fakePublisher{}
			s := newTestServer(t, testConfig(), pub)
			w, _ := do(t, s.Handler(), c.r)
			if w.Code != c.status || !strings.Contains(w.Body.String(), c.contains) {
				t.Fatalf("got %d %s, want %d containing %q", w.Code, w.Body, c.status, c.contains)
			}
			if len(pub.msgs) != 0 {
				t.Fatalf("published %d messages for a refused request", len(pub.msgs))
			}
			// the server stays up: a valid request still works
			w, _ = do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", body: valid, headers: auth()})
			if w.Code != http.StatusOK {
				t.Fatalf("valid request after %s: %d %s", c.name, w.Code, w.Body)
			}
		})
	}
}

func TestBeaconAcceptsTextPlainWithKeyInQuery(t *testing.T) {
	pub := &fakePublisher{}
	s := newTestServer(t, testConfig(), pub)
	body := mustJSON(t, map[string]any{"events": []any{event(), event()}})
	w, resp := do(t, s.Handler(), req{path: "/v1/beacon?writeKey=" + testKey, ctype: "text/plain;charset=UTF-8", body: body})
	if w.Code != 200 || resp.Accepted != 2 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}

func TestEventsAcceptsNDJSONAndGzip(t *testing.T) {
	pub := &fakePublisher{}
	s := newTestServer(t, testConfig(), pub)
	nd := bytes.Join([][]byte{mustJSON(t, event()), []byte(`{"broken": `), mustJSON(t, event())}, []byte("\n"))
	w, resp := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/x-ndjson", body: gz(t, nd),
		headers: map[string]string{"Authorization": "Bearer " + testKey, "Content-Encoding": "gzip"}})
	if w.Code != http.StatusMultiStatus || resp.Accepted != 2 || resp.Rejected != 1 || resp.Errors[0].Index != 1 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if !strings.Contains(resp.Errors[0].Rule, "byte offset") {
		t.Errorf("malformed line should name its offset: %q", resp.Errors[0].Rule)
	}
}

func TestOptOutStripsIdentifiersAndPrompt(t *testing.T) {
	cases := []struct {
		name    string
		consent bool
		headers map[string]string
		// registry is the opt-out registry's content (WithOptOuts).
		registry optOutSet
		// kept: the identifiers must stay (the registry holds someone else).
		kept bool
		// alias makes the event an alias of previous_id anon-old, in group org-1.
		alias bool
	}{
		{"consent false", false, nil, nil, false, false},
		{"DNT header", true, map[string]string{"DNT": "1"}, nil, false, false},
		{"GPC header", true, map[string]string{"Sec-GPC": "1"}, nil, false, false},
		{"registry has the user_id", true, nil, optOutSet{"user:user-42": true}, false, false},
		{"registry has the anonymous_id", true, nil, optOutSet{"anon:anon-7f3a": true}, false, false},
		{"registry has another subject", true, nil, optOutSet{"user:user-43": true, "anon:user-42": true}, true, false},
		{"registry has the alias's previous_id", true, nil, optOutSet{"anon:anon-old": true}, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pub := &fakePublisher{}
			s := newTestServer(t, testConfig(), pub)
			if c.registry != nil {
				WithOptOuts(c.registry)(s)
			}
			h := auth()
			for k, v := range c.headers {
				h[k] = v
			}
			body := mustJSON(t, event(func(e map[string]any) {
				e["consent"] = map[string]any{"analytics": c.consent}
				e["group_id"] = "org-1"
				if c.alias {
					e["type"], e["previous_id"] = "alias", "anon-old"
				}
			}))
			if w, _ := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", body: body, headers: h, remote: "198.51.100.9:1"}); w.Code != 200 {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			ev := pub.events(t)[0]
			if c.kept {
				if ev.OptedOut || ev.UserID != "user-42" || ev.GroupID != "org-1" || ev.Properties.Prompt == "" || ev.IP == "" {
					t.Fatalf("an event of a subject not in the registry was stripped: %+v", ev)
				}
				return
			}
			if !ev.OptedOut || ev.UserID != "" || ev.AnonymousID != "" || ev.SessionID != "" || ev.GroupID != "" || ev.PreviousID != "" || ev.Properties.Prompt != "" || ev.IP != "" {
				t.Fatalf("identifiers not stripped: %+v", ev)
			}
			if string(pub.msgs[0].Key) != ev.EventID {
				t.Errorf("opted-out event keyed by %q, want its event_id (no identifier)", pub.msgs[0].Key)
			}
			if ev.Properties.Quality != "uhd" {
				t.Errorf("non-identifying fields must stay: %+v", ev.Properties)
			}
		})
	}
}

// optOutSet is an opt-out registry of "user:ID" and "anon:ID" entries.
type optOutSet map[string]bool

func (o optOutSet) OptedOut(userID, anonymousID string) bool {
	return (userID != "" && o["user:"+userID]) || (anonymousID != "" && o["anon:"+anonymousID])
}

func TestUnder13EventsAreDroppedAndCounted(t *testing.T) {
	pub := &fakePublisher{}
	s := newTestServer(t, testConfig(), pub)
	body := mustJSON(t, []any{event(func(e map[string]any) { e["under_13"] = true }), event()})
	w, resp := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", body: body, headers: auth()})
	if w.Code != 200 || resp.Accepted != 2 || resp.Dropped != 1 || len(pub.msgs) != 1 {
		t.Fatalf("%d %s, published %d", w.Code, w.Body, len(pub.msgs))
	}
}

func TestPublishFailureAnswers503WithRetryAfter(t *testing.T) {
	pub := &fakePublisher{err: errors.New("broker down")}
	s := newTestServer(t, testConfig(), pub)
	w, resp := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", body: mustJSON(t, event()), headers: auth()})
	if w.Code != 503 || w.Header().Get("Retry-After") != "5" || resp.Accepted != 0 {
		t.Fatalf("%d %v %s", w.Code, w.Header(), w.Body)
	}
	w, _ = do(t, s.Handler(), req{method: "GET", path: "/readyz"})
	if w.Code != 503 {
		t.Fatalf("readyz %d while the publisher fails", w.Code)
	}
}

func TestClientIPComesFromTrustedProxyOnly(t *testing.T) {
	cases := []struct {
		name, remote, xff, want string
	}{
		{"direct peer", "203.0.113.7:1000", "", "203.0.113.0"},
		{"untrusted peer ignores XFF", "203.0.113.7:1000", "198.51.100.1", "203.0.113.0"},
		{"trusted proxy uses XFF", "10.1.2.3:1000", "198.51.100.1, 10.0.0.5", "198.51.100.0"},
		{"spoofed left-most hop ignored", "10.1.2.3:1000", "1.2.3.4, 198.51.100.1", "198.51.100.0"},
		{"ipv6 to /48", "[2001:db8:abcd:12:3456::1]:1000", "", "2001:db8:abcd::"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pub := &fakePublisher{}
			s := newTestServer(t, testConfig(), pub)
			h := auth()
			if c.xff != "" {
				h["X-Forwarded-For"] = c.xff
			}
			if w, _ := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", body: mustJSON(t, event()), headers: h, remote: c.remote}); w.Code != 200 {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			if got := pub.events(t)[0].IP; got != c.want {
				t.Fatalf("ip %q, want %q", got, c.want)
			}
		})
	}
}

func TestCORSPreflightAllowsConfiguredOriginsOnly(t *testing.T) {
	s := newTestServer(t, testConfig(), &fakePublisher{})
	w, _ := do(t, s.Handler(), req{method: "OPTIONS", path: "/v1/events", headers: map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}})
	if w.Code != 204 || w.Header().Get("Access-Control-Allow-Origin") != "https://app.example.com" || !strings.Contains(w.Header().Get("Access-Control-Allow-Headers"), "Content-Type") {
		t.Fatalf("allowed preflight: %d %v", w.Code, w.Header())
	}
	w, _ = do(t, s.Handler(), req{method: "OPTIONS", path: "/v1/events", headers: map[string]string{"Origin": "https://evil.example"}})
	if w.Code != 403 || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("foreign preflight: %d %v", w.Code, w.Header())
	}
	w, _ = do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", body: mustJSON(t, event()), headers: map[string]string{"Authorization": "Bearer " + testKey, "Origin": "https://app.example.com"}})
	if w.Code != 200 || w.Header().Get("Access-Control-Allow-Origin") != "https://app.example.com" || w.Header().Get("Access-Control-Expose-Headers") != "Retry-After" {
		t.Fatalf("simple request: %d %v", w.Code, w.Header())
	}
}

func TestSegmentBatchMapsOntoEvents(t *testing.T) {
	pub := &fakePublisher{}
	s := newTestServer(t, testConfig(), pub)
	body := `{"batch":[
	 {"type":"track","messageId":"ajs-next-1a2b3c","anonymousId":"anon-1","userId":"user-9","event":"Generation Completed",
	  "properties":{"quality":"pro","resolution":"1080p","aspect_ratio":"9:16","duration_s":5,"latency_ms":48211,"plan":"pro"},
	  "context":{"userAgent":"` + uaSafariIOS + `","locale":"de-DE","page":{"url":"https://app.example.com/v/1"},"screen":{"width":390,"height":844}},
	  "originalTimestamp":"2026-11-28T11:59:58Z","sentAt":"2026-11-28T12:00:08Z"},
	 {"type":"page","messageId":"0b0c3f9e-64f7-4a57-9b65-1b2b1c0e9d11","anonymousId":"anon-1","name":"Create",
	  "properties":{"url":"https://app.example.com/create"},"timestamp":"2026-11-28T11:59:00Z"},
	 {"type":"identify","messageId":"m-3","anonymousId":"anon-1","userId":"user-9","traits":{"plan":"pro"}},
	 {"type":"track","messageId":"m-4","anonymousId":"anon-1","event":"Button Clicked"}
	]}`
	w, resp := do(t, s.Handler(), req{path: "/v1/batch", ctype: "application/json", body: []byte(body),
		headers: map[string]string{"Authorization": "Basic dGVzdC13cml0ZS1rZXktMDEyMzQ1Njc4OTo="}}) // base64("test-write-key-0123456789:")
	if w.Code != http.StatusMultiStatus || resp.Accepted != 3 || resp.Rejected != 1 || resp.Errors[0].Field != "event" {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	got := pub.events(t)
	c := got[0]
	if c.Type != "generation_completed" || c.Plan != "pro" || c.Properties.LatencyMS != 48211 || c.Device.Class != "mobile" || c.Context.Locale != "de-DE" {
		t.Errorf("track mapping: %+v", c)
	}
	if len(c.EventID) != 36 || c.EventID == "ajs-next-1a2b3c" {
		t.Errorf("non-UUID messageId must become a UUID: %q", c.EventID)
	}
	if !c.Timestamp.Equal(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("skew correction: %v", c.Timestamp)
	}
	if p := got[1]; p.Type != "page_view" || p.Context.PageURL != "https://app.example.com/create" || p.EventID != "0b0c3f9e-64f7-4a57-9b65-1b2b1c0e9d11" {
		t.Errorf("page mapping: %+v", p)
	}
	if id := got[2]; id.Type != "identify" || id.UserID != "user-9" || id.Plan != "pro" {
		t.Errorf("identify mapping: %+v", id)
	}
	// the same messageId sent again maps to the same event_id
	w, _ = do(t, s.Handler(), req{path: "/v1/track", ctype: "application/json",
		body:    []byte(`{"messageId":"ajs-next-1a2b3c","anonymousId":"a","event":"Session Start"}`),
		headers: map[string]string{"Authorization": "Basic dGVzdC13cml0ZS1rZXktMDEyMzQ1Njc4OTo="}})
	if w.Code != 200 || pub.events(t)[3].EventID != c.EventID {
		t.Fatalf("resend: %d %s", w.Code, w.Body)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	pub := &fakePublisher{}
	s := newTestServer(t, testConfig(), pub)
	if w, _ := do(t, s.Handler(), req{method: "GET", path: "/healthz"}); w.Code != 200 {
		t.Fatalf("healthz %d", w.Code)
	}
	if w, _ := do(t, s.Handler(), req{method: "GET", path: "/readyz"}); w.Code != 200 {
		t.Fatalf("readyz %d", w.Code)
	}
	s.draining.Store(true)
	if w, _ := do(t, s.Handler(), req{method: "GET", path: "/readyz"}); w.Code != 503 {
		t.Fatalf("readyz while draining %d", w.Code)
	}
}

// TestShutdownDrainIsBoundedByShutdownTimeout: a request stuck in its
// publish does not hold a graceful stop beyond ingest.shutdown_timeout.
func TestShutdownDrainIsBoundedByShutdownTimeout(t *testing.T) {
	pub := &blockingPublisher{entered: make(chan struct{}, 1), release: make(chan struct{})}
	defer close(pub.release)
	cfg := testConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.ShutdownTimeout = 100 * time.Millisecond
	cfg.PublishTimeout = time.Minute
	s := newTestServer(t, cfg, pub)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	go func() {
		req, _ := http.NewRequest("POST", "http://"+s.Addr()+"/v1/events", bytes.NewReader(mustJSON(t, event())))
		req.Header.Set("Authorization", "Bearer "+testKey)
		req.Header.Set("Content-Type", "application/json")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-pub.entered
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown with a request stuck in its publish: %v, want the drain cut at shutdown_timeout", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the drain ran until the caller's deadline, not shutdown_timeout")
	}
}
