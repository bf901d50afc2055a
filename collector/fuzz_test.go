package collector

import (
	"testing"

	"github.com/sora3web/telemetry/schema"
	"github.com/sora3web/telemetry/transform"
)

// FuzzDecode feeds arbitrary bodies through the whole decode path (split,
// byte checks, decode, validate, enrich). It must never panic, and every
// event it lets through must pass validation.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"events":[{"event_id":"3f1c1f5e-2f55-4c55-9a54-3d0f6b1f0a11","type":"session_start","occurred_at":"2026-11-28T12:00:00Z","sent_at":"2026-11-28T12:00:01Z","anonymous_id":"a","plan":"free","consent":{"analytics":true}}]}`), false)
	f.Add([]byte("{\"type\":\"page_view\"}\n{\"broken\": \n[1,2]"), true)
	f.Add([]byte(`[{"properties":{"duration_s":"x"}},{"occurred_at":5}]`), false)
	f.Add([]byte(`{"events":[{"a":[[[[[[[[[[]]]]]]]]]]}]}`), false)
	f.Add([]byte("{\"batch\":[{\"type\":\"track\",\"messageId\":\"m\",\"event\":\"x\xff\"}]}"), false)
	cfg := DefaultConfig()
	ua, err := transform.NewUAParser(100)
	if err != nil {
		f.Fatal(err)
	}
	scrub, _ := transform.NewScrubber(transform.DefaultScrubConfig())
	enr := &enricher{ua: ua, scrub: scrub}
	f.Fuzz(func(t *testing.T, body []byte, ndjson bool) {
		raws, err := splitBatch(body, ndjson, cfg.MaxBatchEvents)
		if err != nil {
			return
		}
		for _, raw := range raws {
			if checkRaw(raw, cfg.MaxEventBytes, cfg.MaxDepth) != nil {
				continue
			}
			var ev schema.Event
			if decodeInto(raw, &ev) != nil {
				continue
			}
			_, _ = segmentToEvent(raw, "", ev.SentAt, &segmentEnvelope{}) // must not panic either
			if schema.Validate(&ev, cfg.Limits) != nil {
				continue
			}
			out, keep := enr.enrich(&ev, &requestInfo{})
			if keep && schema.Validate(&out.Event, cfg.Limits) != nil && !out.OptedOut {
				t.Fatalf("enrichment broke a valid event: %+v", out)
			}
		}
	})
}
