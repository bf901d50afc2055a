package collector

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/sora3web/telemetry/schema"
)

// segmentNamespace derives event ids from Segment messageIds that are not
// UUIDs, so a resent message keeps its id and is deduplicated downstream.
var segmentNamespace = uuid.MustParse("6f1c1f5e-2f55-4c55-9a54-3d0f6b1f0a11")

// segmentMessage is the subset of Segment's HTTP Tracking API spec we map.
type segmentMessage struct {
	Type              string          `json:"type"`
	MessageID         string          `json:"messageId"`
	AnonymousID       string          `json:"anonymousId"`
	UserID            string          `json:"userId"`
	Event             string          `json:"event"`
	Name              string          `json:"name"`
	Timestamp         *time.Time      `json:"timestamp"`
	OriginalTimestamp *time.Time      `json:"originalTimestamp"`
	SentAt            *time.Time      `json:"sentAt"`
	Properties        json.RawMessage `json:"properties"`
	Traits            segmentTraits   `json:"traits"`
	Context           struct {
		UserAgent string `json:"userAgent"`
		Locale    string `json:"locale"`
		Page      struct {
			URL      string `json:"url"`
			Referrer string `json:"referrer"`
		} `json:"page"`
		Screen schema.Screen `json:"screen"`
		App    struct {
			Version string `json:"version"`
		} `json:"app"`
		Traits  segmentTraits `json:"traits"`
		Consent struct {
			CategoryPreferences map[string]bool `json:"categoryPreferences"`
		} `json:"consent"`
	} `json:"context"`
}

type segmentTraits struct {
	Plan    string `json:"plan"`
	Under13 bool   `json:"under_13"`
}

// segmentType maps a Segment call to our event type. Track event names
// may be written as in Segment's naming ("Generation Requested").
func segmentType(m *segmentMessage) string {
	switch m.Type {
	case "page", "screen":
		return schema.TypePageView
	case "identify":
		return schema.TypeIdentify
	case "track":
		return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(m.Event)), " ", "_")
	}
	return m.Type
}

// segmentToEvent maps one Segment message onto the internal event. kind is
// the endpoint's call type ("" for /v1/batch, where each message says).
func segmentToEvent(raw rawEvent, kind string, receivedAt time.Time) (schema.Event, *schema.FieldError) {
	var m segmentMessage
	if fe := decodeInto(raw, &m); fe != nil {
		return schema.Event{}, fe
	}
	if kind != "" {
		m.Type = kind
	}
	switch m.Type {
	case "track", "page", "screen", "identify":
	case "":
		return schema.Event{}, &schema.FieldError{Field: "type", Rule: "required, one of [track page screen identify]"}
	default:
		return schema.Event{}, &schema.FieldError{Field: "type", Rule: "must be one of [track page screen identify]"}
	}
	if m.MessageID == "" {
		return schema.Event{}, &schema.FieldError{Field: "messageId", Rule: "required"}
	}
	ev := schema.Event{
		EventID:     m.MessageID,
		Type:        segmentType(&m),
		AnonymousID: m.AnonymousID,
		UserID:      m.UserID,
		Under13:     m.Traits.Under13 || m.Context.Traits.Under13,
	}
	if !schema.IsUUID(ev.EventID) {
		ev.EventID = uuid.NewSHA1(segmentNamespace, []byte(m.MessageID)).String()
	}
	switch {
	case m.OriginalTimestamp != nil:
		ev.OccurredAt = *m.OriginalTimestamp
	case m.Timestamp != nil:
		ev.OccurredAt = *m.Timestamp
	default:
		ev.OccurredAt = receivedAt
	}
	ev.SentAt = receivedAt
	if m.SentAt != nil {
		ev.SentAt = *m.SentAt
	}
	if len(m.Properties) > 0 && string(m.Properties) != "null" {
		if fe := decodeInto(rawEvent{data: m.Properties, offset: raw.offset}, &ev.Properties); fe != nil {
			fe.Field = "properties." + strings.TrimPrefix(fe.Field, "properties.")
			return schema.Event{}, fe
		}
		var extra struct {
			Plan     string `json:"plan"`
			URL      string `json:"url"`
			Referrer string `json:"referrer"`
		}
		_ = json.Unmarshal(m.Properties, &extra)
		ev.Plan = extra.Plan
		m.Context.Page.URL = firstNonEmpty(m.Context.Page.URL, extra.URL)
		m.Context.Page.Referrer = firstNonEmpty(m.Context.Page.Referrer, extra.Referrer)
	}
	ev.Plan = firstNonEmpty(ev.Plan, m.Traits.Plan, m.Context.Traits.Plan, "free")
	analytics := true
	if v, ok := m.Context.Consent.CategoryPreferences["analytics"]; ok {
		analytics = v
	}
	ev.Consent.Analytics = &analytics
	ev.Context = schema.Context{
		PageURL:    m.Context.Page.URL,
		Referrer:   m.Context.Page.Referrer,
		Locale:     m.Context.Locale,
		Screen:     m.Context.Screen,
		AppVersion: m.Context.App.Version,
		UserAgent:  m.Context.UserAgent,
	}
	return ev, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
