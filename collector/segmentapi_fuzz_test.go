package collector

import (
	"testing"
	"time"

	"github.com/sora3web/telemetry/schema"
	"github.com/sora3web/telemetry/transform"
)

// segmentKinds are the endpoint call types FuzzSegmentAPI picks from ("" is
// /v1/batch, where each message names its type).
var segmentKinds = append([]string{""}, SegmentCalls...)

// FuzzSegmentAPI feeds arbitrary Segment HTTP Tracking API bodies through the
// mapping onto events (split, byte checks, segmentToEvent, validate,
// enrich). It must never panic; every mapped event must have a UUID id that
// a resend maps identically, a plan and an explicit consent; and an
// event whose subject is in the opt-out registry must leave without
// identifiers or prompt. Seeds: testdata/fuzz/FuzzSegmentAPI.
func FuzzSegmentAPI(f *testing.F) {
	f.Add([]byte(`{"batch":[{"type":"track","messageId":"m-1","anonymousId":"a","event":"Generation Requested","properties":{"quality":"uhd","resolution":"2160p","aspect_ratio":"16:9","duration_s":8}}]}`), uint8(0))
	f.Add([]byte(`{"type":"page","messageId":"3f1c1f5e-2f55-4c55-9a54-3d0f6b1f0a11","userId":"u","context":{"page":{"url":"https://app.example.com/"},"consent":{"categoryPreferences":{"analytics":false}}}}`), uint8(2))
	f.Add([]byte(`{"messageId":"x","userId":"u","traits":{"plan":"pro","under_13":true}}`), uint8(4))
	f.Add([]byte(`{"writeKey":"k","sentAt":"2026-11-28T12:00:01Z","context":{"groupId":"org-1","userAgent":"Mozilla/5.0"},"batch":[{"type":"alias","messageId":"m-2","previousId":"anon-1","userId":"u"},{"type":"group","groupId":"org-2","userId":"u"}]}`), uint8(0))
	cfg := DefaultConfig()
	ua, err := transform.NewUAParser(100)
	if err != nil {
		f.Fatal(err)
	}
	scrub, _ := transform.NewScrubber(transform.DefaultScrubConfig())
	everyone := optOutAll{}
	enr := &enricher{ua: ua, scrub: scrub, optOuts: everyone}
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte, kindIdx uint8) {
		kind := segmentKinds[int(kindIdx)%len(segmentKinds)]
		raws, err := splitBatch(body, false, cfg.MaxBatchEvents)
		if err != nil {
			return
		}
		env, err := readSegmentEnvelope(body)
		if err != nil {
			return
		}
		for _, raw := range raws {
			if checkRaw(raw, cfg.MaxEventBytes, cfg.MaxDepth) != nil {
				continue
			}
			ev, fe := segmentToEvent(raw, kind, at, &env)
			if fe != nil {
				continue
			}
			if !schema.IsUUID(ev.EventID) || ev.Plan == "" || ev.Consent.Analytics == nil {
				t.Fatalf("mapped event misses required fields: %+v", ev)
			}
			again, _ := segmentToEvent(raw, kind, at, &env)
			if again.EventID != ev.EventID {
				t.Fatalf("a resend maps to another event id: %s vs %s", ev.EventID, again.EventID)
			}
			if schema.Validate(&ev, cfg.Limits) != nil {
				continue
			}
			out, keep := enr.enrich(&ev, &requestInfo{ip: "198.51.100.0"})
			if !keep {
				if !ev.Under13 {
					t.Fatal("an event not under 13 was dropped")
				}
				continue
			}
			if !out.OptedOut || out.UserID != "" || out.AnonymousID != "" || out.SessionID != "" || out.PreviousID != "" || out.GroupID != "" || out.Properties.Prompt != "" || out.IP != "" {
				t.Fatalf("opted-out subject kept identifiers: %+v", out)
			}
		}
	})
}

// optOutAll is an opt-out registry holding every subject.
type optOutAll struct{}

func (optOutAll) OptedOut(string, string) bool { return true }
