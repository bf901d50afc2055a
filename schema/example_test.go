package schema_test

import (
	"encoding/json"
	"fmt"

	"github.com/sora3web/telemetry/schema"
)

// ExampleValidate decodes a client event that breaks several rules and
// prints every broken rule, each naming the field's JSON path.
func ExampleValidate() {
	body := `{
	  "event_id": "evt-42",
	  "type": "generation_requested",
	  "occurred_at": "2025-06-14T09:41:07.215Z",
	  "sent_at": "2025-06-14T09:41:07.480Z",
	  "anonymous_id": "a7f3c2e1-5b9d-4e8a-9c1f-2d6b8e4a0c37",
	  "plan": "enterprise",
	  "consent": {},
	  "properties": {
	    "quality": "uhd",
	    "resolution": "4k",
	    "aspect_ratio": "16:9",
	    "duration_s": 30,
	    "prompt": "a red fox running through fresh snow, golden hour"
	  }
	}`
	var ev schema.Event
	if err := json.Unmarshal([]byte(body), &ev); err != nil {
		fmt.Println("decode:", err)
		return
	}
	for _, err := range schema.Validate(&ev, schema.DefaultLimits()) {
		fmt.Println(err)
	}
	// Output:
	// event_id: must be a UUID (8-4-4-4-12 hex digits)
	// plan: must be one of [free pro], got "enterprise"
	// consent.analytics: required (true or false)
	// properties.resolution: must be one of [480p 540p 720p 1080p 1440p 2160p], got "4k"
	// properties.duration_s: must be between 1 and 20 seconds
}
