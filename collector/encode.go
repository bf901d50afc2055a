package collector

import (
	"math"
	"strconv"
	"time"

	fastjson "github.com/segmentio/encoding/json"

	"github.com/sora3web/telemetry/schema"
)

// marshalFlags are the flags fastjson.Marshal encodes with.
const marshalFlags = fastjson.EscapeHTML | fastjson.SortMapKeys

// appendEnriched appends the JSON of e to dst: byte for byte what
// fastjson.Marshal(e) writes (field order, omitempty, HTML-safe string
// escaping, RFC 3339 times with nanoseconds, numbers), without reflection
// and without allocating when dst has room. On error dst is returned
// unchanged. TestAppendEnrichedMatchesMarshal keeps the two equal, and
// fails when a field is added to the types without being added here.
func appendEnriched(dst []byte, e *schema.Enriched) ([]byte, error) {
	if f := e.Properties.DurationS; math.IsNaN(f) || math.IsInf(f, 0) {
		// Not representable in JSON: the generic encoder reports it. It
		// gets a copy, so that e itself does not escape to the heap.
		cp := *e
		out, err := fastjson.Append(dst, &cp, marshalFlags)
		if err != nil {
			return dst, err
		}
		return out, nil
	}
	b := append(dst, '{')
	obj := len(b)
	b = appendEvent(b, obj, &e.Event)
	b = appendTimeField(b, obj, "received_at", e.ReceivedAt)
	b = appendTimeField(b, obj, "timestamp", e.Timestamp)
	b = appendStringField(b, obj, "source", e.Source)
	b = appendOptString(b, obj, "ip", e.IP)
	b = appendKey(b, obj, "device")
	b = appendDevice(b, &e.Device)
	b = appendOptBool(b, obj, "opted_out", e.OptedOut)
	return append(b, '}'), nil
}

// appendEvent appends the fields of e (without braces) to the object that
// starts at obj.
func appendEvent(b []byte, obj int, e *schema.Event) []byte {
	b = appendOptInt(b, obj, "schema_version", int64(e.SchemaVersion))
	b = appendStringField(b, obj, "event_id", e.EventID)
	b = appendStringField(b, obj, "type", e.Type)
	b = appendTimeField(b, obj, "occurred_at", e.OccurredAt)
	b = appendTimeField(b, obj, "sent_at", e.SentAt)
	b = appendOptString(b, obj, "anonymous_id", e.AnonymousID)
	b = appendOptString(b, obj, "user_id", e.UserID)
	b = appendOptString(b, obj, "session_id", e.SessionID)
	b = appendOptInt(b, obj, "seq", int64(e.Seq))
	b = appendOptString(b, obj, "group_id", e.GroupID)
	b = appendOptString(b, obj, "previous_id", e.PreviousID)
	b = appendStringField(b, obj, "plan", e.Plan)
	b = appendOptBool(b, obj, "under_13", e.Under13)

	b = appendKey(b, obj, "consent")
	b = append(b, '{')
	consent := len(b)
	b = appendKey(b, consent, "analytics")
	if a := e.Consent.Analytics; a != nil {
		b = strconv.AppendBool(b, *a)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, '}')

	c := &e.Context
	b = appendKey(b, obj, "context")
	b = append(b, '{')
	ctx := len(b)
	b = appendOptString(b, ctx, "page_url", c.PageURL)
	b = appendOptString(b, ctx, "referrer", c.Referrer)
	b = appendOptString(b, ctx, "locale", c.Locale)
	b = appendKey(b, ctx, "screen")
	b = append(b, '{')
	screen := len(b)
	b = appendOptInt(b, screen, "width", int64(c.Screen.Width))
	b = appendOptInt(b, screen, "height", int64(c.Screen.Height))
	b = append(b, '}')
	b = appendOptString(b, ctx, "app_version", c.AppVersion)
	b = appendOptString(b, ctx, "user_agent", c.UserAgent)
	b = appendOptInt(b, ctx, "unload_seq", int64(c.UnloadSeq))
	b = append(b, '}')

	p := &e.Properties
	b = appendKey(b, obj, "properties")
	b = append(b, '{')
	props := len(b)
	b = appendOptString(b, props, "quality", p.Quality)
	b = appendOptString(b, props, "resolution", p.Resolution)
	b = appendOptInt(b, props, "width", int64(p.Width))
	b = appendOptInt(b, props, "height", int64(p.Height))
	b = appendOptString(b, props, "aspect_ratio", p.AspectRatio)
	if p.DurationS != 0 {
		b = appendKey(b, props, "duration_s")
		b = appendFloat(b, p.DurationS)
	}
	b = appendOptString(b, props, "prompt", p.Prompt)
	b = appendOptString(b, props, "model", p.Model)
	b = appendOptString(b, props, "generation_id", p.GenerationID)
	b = appendOptInt(b, props, "latency_ms", p.LatencyMS)
	b = appendOptString(b, props, "format", p.Format)
	b = appendOptString(b, props, "error_code", p.ErrorCode)
	b = appendOptString(b, props, "error_message", p.ErrorMessage)
	b = appendOptString(b, props, "error_stack", p.ErrorStack)
	b = appendOptString(b, props, "setting", p.Setting)
	b = appendOptString(b, props, "value", p.Value)
	return append(b, '}')
}

// appendDevice appends d as a JSON object.
func appendDevice(b []byte, d *schema.Device) []byte {
	b = append(b, '{')
	obj := len(b)
	b = appendStringField(b, obj, "class", d.Class)
	b = appendOptString(b, obj, "os", d.OS)
	b = appendOptString(b, obj, "os_version", d.OSVersion)
	b = appendOptString(b, obj, "browser", d.Browser)
	b = appendOptString(b, obj, "browser_version", d.BrowserVersion)
	b = appendOptBool(b, obj, "is_bot", d.IsBot)
	b = appendOptBool(b, obj, "pending", d.Pending)
	return append(b, '}')
}

// appendKey appends `"name":` to the object whose first field starts at
// obj, preceded by a comma unless it is the object's first field. Names
// are plain ASCII and need no escaping.
func appendKey(b []byte, obj int, name string) []byte {
	if len(b) > obj {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

func appendStringField(b []byte, obj int, name, v string) []byte {
	return fastjson.AppendEscape(appendKey(b, obj, name), v, marshalFlags)
}

// appendOptString appends a string field tagged omitempty.
func appendOptString(b []byte, obj int, name, v string) []byte {
	if v == "" {
		return b
	}
	return appendStringField(b, obj, name, v)
}

// appendOptInt appends an integer field tagged omitempty.
func appendOptInt(b []byte, obj int, name string, v int64) []byte {
	if v == 0 {
		return b
	}
	return strconv.AppendInt(appendKey(b, obj, name), v, 10)
}

// appendOptBool appends a boolean field tagged omitempty.
func appendOptBool(b []byte, obj int, name string, v bool) []byte {
	if !v {
		return b
	}
	return append(appendKey(b, obj, name), "true"...)
}

// appendTimeField appends t as fastjson does: RFC 3339 with nanoseconds,
// in t's own zone.
func appendTimeField(b []byte, obj int, name string, t time.Time) []byte {
	b = append(appendKey(b, obj, name), '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendFloat appends a finite f as encoding/json and fastjson do: like
// ES6 number formatting, with exponents only for very small or large
// magnitudes, and without a leading zero in a negative exponent.
func appendFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
