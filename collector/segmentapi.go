package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/sora3web/telemetry/schema"
	"github.com/sora3web/telemetry/transform"
)

// segmentNamespace derives event ids from Segment messageIds that are not
// UUIDs (and from messages sent without one), so a resent message keeps
// its id and is deduplicated downstream.
var segmentNamespace = uuid.MustParse("6f1c1f5e-2f55-4c55-9a54-3d0f6b1f0a11")

// SegmentCalls are the call types of Segment's HTTP Tracking API. Each is
// served at /v1/<call> and at /v1/<first letter> (the short paths of
// analytics.js); a batch at /v1/batch, /v1/b and /v1/import.
var SegmentCalls = []string{"track", "page", "screen", "identify", "alias", "group"}

// SegmentBatchPaths are the paths of Segment's batch endpoint, under /v1/.
var SegmentBatchPaths = []string{"batch", "b", "import"}

// SegmentMaxBatchBytes is Segment's documented limit of one request
// (500 KB); its routes take at most this, or ingest.max_request_bytes when
// that is smaller. One message is bounded by ingest.max_event_bytes, 32 KiB
// by default as in Segment's API.
const SegmentMaxBatchBytes = 500 << 10

// segmentMessage is the subset of Segment's HTTP Tracking API spec we map.
type segmentMessage struct {
	Type              string          `json:"type"`
	MessageID         string          `json:"messageId"`
	AnonymousID       string          `json:"anonymousId"`
	UserID            string          `json:"userId"`
	PreviousID        string          `json:"previousId"`
	GroupID           string          `json:"groupId"`
	Event             string          `json:"event"`
	Name              string          `json:"name"`
	Timestamp         *time.Time      `json:"timestamp"`
	OriginalTimestamp *time.Time      `json:"originalTimestamp"`
	SentAt            *time.Time      `json:"sentAt"`
	Properties        json.RawMessage `json:"properties"`
	Traits            segmentTraits   `json:"traits"`
	Context           segmentContext  `json:"context"`
}

// segmentContext is the part of a Segment context we map.
type segmentContext struct {
	UserAgent string `json:"userAgent"`
	Locale    string `json:"locale"`
	// GroupID is the account of a call other than group (Segment's
	// convention for B2B sources).
	GroupID string `json:"groupId"`
	Page    struct {
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
}

// inherit fills the fields c leaves empty from a batch's context: a
// message's own context wins, field by field.
func (c *segmentContext) inherit(from *segmentContext) {
	c.UserAgent = firstNonEmpty(c.UserAgent, from.UserAgent)
	c.Locale = firstNonEmpty(c.Locale, from.Locale)
	c.GroupID = firstNonEmpty(c.GroupID, from.GroupID)
	c.Page.URL = firstNonEmpty(c.Page.URL, from.Page.URL)
	c.Page.Referrer = firstNonEmpty(c.Page.Referrer, from.Page.Referrer)
	if c.Screen == (schema.Screen{}) {
		c.Screen = from.Screen
	}
	c.App.Version = firstNonEmpty(c.App.Version, from.App.Version)
	c.Traits.Plan = firstNonEmpty(c.Traits.Plan, from.Traits.Plan)
	c.Traits.Under13 = c.Traits.Under13 || from.Traits.Under13
	if c.Consent.CategoryPreferences == nil {
		c.Consent.CategoryPreferences = from.Consent.CategoryPreferences
	}
}

type segmentTraits struct {
	Plan    string `json:"plan"`
	Under13 bool   `json:"under_13"`
}

// segmentEnvelope is what a Segment request says for all its messages: the
// write key in the body (analytics.js and the Python library send it
// there), and a batch's sentAt and context, which each message may
// override. For a single call it is read from the message itself.
type segmentEnvelope struct {
	WriteKey string         `json:"writeKey"`
	SentAt   *time.Time     `json:"sentAt"`
	Context  segmentContext `json:"context"`
}

// readSegmentEnvelope reads the envelope of a body that is a JSON object.
// A framing error is left to splitBatch, which reports its offset; a field
// of the wrong type fails the request, naming the field.
func readSegmentEnvelope(body []byte) (segmentEnvelope, error) {
	var env segmentEnvelope
	if b := bytes.TrimLeft(body, " \t\r\n"); len(b) == 0 || b[0] != '{' {
		return env, nil
	}
	err := json.Unmarshal(body, &env)
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var at *time.ParseError
	switch {
	case err == nil, errors.As(err, &syntax):
		return env, nil
	case errors.As(err, &typ):
		return env, fmt.Errorf("%w: %s: must be of type %s, got %s", ErrMalformed, typ.Field, jsonKind(typ.Type.String()), valueKind(typ.Value))
	case errors.As(err, &at):
		return env, fmt.Errorf("%w: sentAt: must be an RFC 3339 date-time, got %q", ErrMalformed, at.Value)
	default:
		return env, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
}

// segmentType maps a Segment call to our event type. Track event names
// may be written as in Segment's naming ("Generation Requested").
func segmentType(m *segmentMessage) string {
	switch m.Type {
	case "page", "screen":
		return schema.TypePageView
	case "identify":
		return schema.TypeIdentify
	case "alias":
		return schema.TypeAlias
	case "group":
		return schema.TypeGroup
	case "track":
		return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(m.Event)), " ", "_")
	}
	return m.Type
}

// segmentRule is the rule quoted when a message's type is wrong.
var segmentRule = fmt.Sprintf("one of %v", SegmentCalls)

// segmentToEvent maps one Segment message onto the internal event. kind is
// the endpoint's call type ("" for a batch, where each message says); env
// is the request's envelope, whose sentAt and context each message may
// override.
func segmentToEvent(raw rawEvent, kind string, receivedAt time.Time, env *segmentEnvelope) (schema.Event, *schema.FieldError) {
	var m segmentMessage
	if fe := decodeInto(raw, &m); fe != nil {
		return schema.Event{}, fe
	}
	if kind != "" {
		m.Type = kind
	}
	switch {
	case m.Type == "":
		return schema.Event{}, &schema.FieldError{Field: "type", Rule: "required, " + segmentRule}
	case !slices.Contains(SegmentCalls, m.Type):
		return schema.Event{}, &schema.FieldError{Field: "type", Rule: "must be " + segmentRule}
	case m.Type == "track" && strings.TrimSpace(m.Event) == "":
		return schema.Event{}, &schema.FieldError{Field: "event", Rule: "required for track"}
	case m.Type == "track" && !slices.Contains(schema.Types, segmentType(&m)):
		return schema.Event{}, &schema.FieldError{Field: "event", Rule: fmt.Sprintf("must name an event type of the contract, one of %v (spaces for _, any case); %q is not", schema.Types, m.Event)}
	case m.UserID == "" && m.AnonymousID == "":
		return schema.Event{}, &schema.FieldError{Field: "anonymousId", Rule: "required when userId is empty (every call needs one of the two)"}
	case m.Type == "alias" && m.PreviousID == "":
		return schema.Event{}, &schema.FieldError{Field: "previousId", Rule: "required for alias"}
	case m.Type == "alias" && m.UserID == "":
		return schema.Event{}, &schema.FieldError{Field: "userId", Rule: "required for alias"}
	case m.Type == "group" && m.GroupID == "":
		return schema.Event{}, &schema.FieldError{Field: "groupId", Rule: "required for group"}
	}
	m.Context.inherit(&env.Context)
	ev := schema.Event{
		EventID:     m.MessageID,
		Type:        segmentType(&m),
		AnonymousID: m.AnonymousID,
		UserID:      m.UserID,
		GroupID:     m.Context.GroupID,
		Under13:     m.Traits.Under13 || m.Context.Traits.Under13,
	}
	switch m.Type {
	case "alias":
		ev.PreviousID = m.PreviousID
	case "group":
		ev.GroupID = m.GroupID
	}
	if m.MessageID == "" {
		// Segment makes one when a caller of the HTTP API sends none; ours
		// is derived from the message, so a resend of it keeps its id.
		ev.EventID = uuid.NewSHA1(segmentNamespace, raw.data).String()
	} else {
		ev.EventID = SegmentEventID(m.MessageID)
	}
	switch {
	case m.OriginalTimestamp != nil:
		ev.OccurredAt = *m.OriginalTimestamp
	case m.Timestamp != nil:
		ev.OccurredAt = *m.Timestamp
	default:
		ev.OccurredAt = receivedAt
	}
	switch {
	case m.SentAt != nil:
		ev.SentAt = *m.SentAt
	case env.SentAt != nil:
		ev.SentAt = *env.SentAt
	default:
		ev.SentAt = receivedAt
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
	if m.Type == "screen" && m.Context.Page.URL == "" && m.Name != "" {
		// An app's screen has no URL: it is named, as a path of app://screen/.
		m.Context.Page.URL = "app://screen/" + url.PathEscape(m.Name)
	}
	if (m.Type == "page" || m.Type == "screen") && m.Context.Page.URL == "" {
		return schema.Event{}, &schema.FieldError{Field: "context.page.url", Rule: "required for " + m.Type + " (or properties.url; a screen may give its name instead)"}
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

// SegmentEventID is the event_id of a Segment messageId: the id itself
// when it is a UUID, else a UUIDv5 of it, so a resent message keeps its id
// and is stored once.
func SegmentEventID(messageID string) string {
	if schema.IsUUID(messageID) {
		return messageID
	}
	return uuid.NewSHA1(segmentNamespace, []byte(messageID)).String()
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// segmentRouteKey marks a request context as one of Segment's routes, so
// that its answers carry Segment's "success" field.
type segmentRouteKey struct{}

func isSegmentRoute(r *http.Request) bool {
	v, _ := r.Context().Value(segmentRouteKey{}).(bool)
	return v
}

// segment serves the Segment HTTP Tracking API endpoints: JSON sent as
// application/json or, as analytics.js does to avoid a CORS preflight, as
// text/plain; the write key in the headers, the query or the body.
func (s *Server) segment(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r = r.WithContext(context.WithValue(r.Context(), segmentRouteKey{}, true))
		if _, err := mediaOK(r, true); err != nil {
			s.fail(w, r, http.StatusUnsupportedMediaType, err)
			return
		}
		var env segmentEnvelope
		s.ingest(w, r, false, func(body []byte) (string, error) {
			var err error
			env, err = readSegmentEnvelope(body)
			return env.WriteKey, err
		}, func(raw rawEvent, at time.Time, ev *schema.Event) *schema.FieldError {
			var fe *schema.FieldError
			*ev, fe = segmentToEvent(raw, kind, at, &env)
			return fe
		})
	}
}

// segmentSettings serves what analytics.js loads before it sends anything
// (GET /v1/projects/{writeKey}/settings, which Segment's CDN serves): the
// Segment.io destination pointed back at this collector, on the host and
// scheme the request came to. A site loads analytics.js with cdnURL set to
// the collector's address and sends its events here, unchanged otherwise.
// Segment's own metrics are switched off (sampleRate 0).
func (s *Server) segmentSettings(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("writeKey")
	if _, ok := s.keys[key]; !ok {
		s.fail(w, r, http.StatusNotFound, fmt.Errorf("%w: no settings for this write key", ErrUnauthorized))
		return
	}
	scheme := "http"
	if r.TLS != nil || (r.Header.Get("X-Forwarded-Proto") == "https" && s.peerTrusted(r)) {
		scheme = "https"
	}
	all := map[string]any{"__default": map[string]bool{"enabled": true}}
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, map[string]any{
		"integrations": map[string]any{
			"Segment.io": map[string]any{"apiKey": key, "apiHost": r.Host + "/v1", "protocol": scheme, "addBundledMetadata": false},
		},
		"plan":              map[string]any{"track": all, "identify": all, "group": all},
		"enabledMiddleware": map[string]any{},
		"metrics":           map[string]any{"sampleRate": 0},
		"remotePlugins":     []any{},
	})
}

// peerTrusted reports whether the request's peer is one of
// ingest.trusted_proxies, whose forwarding headers are believed.
func (s *Server) peerTrusted(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && transform.InPrefixes(ap.Addr().Unmap(), s.trusted)
}
