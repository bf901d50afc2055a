package collector

import "testing"

func TestEventsAreScrubbedBeforePublishing(t *testing.T) {
	pub := &fakePublisher{}
	s := newTestServer(t, testConfig(), pub)
	body := mustJSON(t, event(func(e map[string]any) {
		e["type"] = "client_error"
		e["properties"] = map[string]any{"error_code": "TypeError", "error_message": "failed for jane@example.com",
			"error_stack": "Error\n    at f (https://app.example.com/a.js?access_token=sekrit:1:2)"}
		e["context"].(map[string]any)["page_url"] = "https://app.example.com/?session=abcd1234"
	}))
	if w, _ := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", body: body, headers: auth()}); w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	ev := pub.events(t)[0]
	if ev.Properties.ErrorMessage != "failed for [email]" || ev.Context.PageURL != "https://app.example.com/?session=[redacted]" ||
		ev.Properties.ErrorStack != "Error\n    at f (https://app.example.com/a.js?access_token=[redacted])" {
		t.Fatalf("not scrubbed: %q %q %q", ev.Properties.ErrorMessage, ev.Context.PageURL, ev.Properties.ErrorStack)
	}
}
