// Package schema owns the event contract: the Go types of the envelope and
// its properties, the per-event validation rules, the JSON Schema documents
// that describe the same contract to clients, and (later) the versioned
// ClickHouse migrations. It must not do I/O beyond reading its embedded files.
package schema

import "time"

// Version is the schema_version written into every published event.
const Version = 1

// Event types accepted by the collector.
const (
	TypeGenerationRequested = "generation_requested"
	TypeGenerationCompleted = "generation_completed"
	TypeGenerationFailed    = "generation_failed"
	TypeVideoDownloaded     = "video_downloaded"
	TypePageView            = "page_view"
	TypeSessionStart        = "session_start"
	TypeSettingsChanged     = "settings_changed"
	TypeClientError         = "client_error"
	TypeIdentify            = "identify"
	TypeAlias               = "alias"
	TypeGroup               = "group"
)

// Types lists every accepted event type, in documentation order.
var Types = []string{
	TypeGenerationRequested, TypeGenerationCompleted, TypeGenerationFailed,
	TypeVideoDownloaded, TypePageView, TypeSessionStart, TypeSettingsChanged,
	TypeClientError, TypeIdentify, TypeAlias, TypeGroup,
}

// Enumerations of the contract. They are the allowed values quoted in
// validation errors and in the JSON Schema.
var (
	Plans        = []string{"free", "pro"}
	Qualities    = []string{"standard", "fast", "pro", "uhd"}
	Resolutions  = []string{"480p", "540p", "720p", "1080p", "1440p", "2160p"}
	AspectRatios = []string{"16:9", "9:16", "1:1", "4:3", "3:4", "21:9"}
	Formats      = []string{"mp4", "webm", "mov", "gif"}
)

// Event is the envelope a client sends. Unknown fields are ignored when
// decoding and never published: the collector keeps only what the contract
// lists.
type Event struct {
	// SchemaVersion is the contract version the client wrote against; 0 or
	// absent means the current Version.
	SchemaVersion int `json:"schema_version,omitempty"`
	// EventID is a UUID made by the client once per event; it is the dedup key.
	EventID string `json:"event_id"`
	// Type is one of Types.
	Type string `json:"type"`
	// OccurredAt is when the event happened, by the client's clock (RFC 3339).
	OccurredAt time.Time `json:"occurred_at"`
	// SentAt is when the client sent the event, by the client's clock.
	SentAt time.Time `json:"sent_at"`
	// AnonymousID identifies the browser; required unless UserID is set.
	AnonymousID string `json:"anonymous_id,omitempty"`
	// UserID identifies a signed-in user; optional.
	UserID string `json:"user_id,omitempty"`
	// SessionID identifies the browsing session.
	SessionID string `json:"session_id,omitempty"`
	// Seq numbers the session's events from 1, in the order the client
	// made them, across the session's pages (the browser SDK sets it;
	// optional for other clients). The audit reports the numbers that
	// never arrived. 0 or absent means unnumbered.
	Seq int `json:"seq,omitempty"`
	// GroupID is the account or organisation the user acted for (Segment's
	// group call, or context.groupId of any call); dashboards filter by it.
	// Required for type group.
	GroupID string `json:"group_id,omitempty"`
	// PreviousID is the identifier an alias event links to UserID (an
	// earlier anonymous_id or user_id). Required for type alias, and only
	// set there.
	PreviousID string `json:"previous_id,omitempty"`
	// Plan is the user's plan, one of Plans.
	Plan string `json:"plan"`
	// Under13 marks an event from a user known to be under 13; such events
	// are dropped and counted, never published.
	Under13 bool `json:"under_13,omitempty"`
	// Consent carries the user's tracking choices.
	Consent Consent `json:"consent"`
	// Context describes where the event happened.
	Context Context `json:"context"`
	// Properties carries the type-specific fields.
	Properties Properties `json:"properties"`
}

// Consent is the user's tracking choice. With Analytics false the
// collector strips identifiers and the prompt before publishing.
type Consent struct {
	// Analytics is true when the user allows analytics tracking. It is
	// required: an absent value is a validation error, not a guess.
	Analytics *bool `json:"analytics"`
}

// Context describes the page and client the event came from.
type Context struct {
	// PageURL is the page's URL.
	PageURL string `json:"page_url,omitempty"`
	// Referrer is the page's referrer URL.
	Referrer string `json:"referrer,omitempty"`
	// Locale is a BCP 47 language tag such as en-US.
	Locale string `json:"locale,omitempty"`
	// Screen is the screen size in CSS pixels.
	Screen Screen `json:"screen"`
	// AppVersion is the web client's version.
	AppVersion string `json:"app_version,omitempty"`
	// UserAgent overrides the request's User-Agent header when set.
	UserAgent string `json:"user_agent,omitempty"`
	// UnloadSeq is the first seq of the events this session last handed
	// to the browser while a page was unloading (sendBeacon or a
	// keepalive fetch at pagehide or when hidden), whose fate the page
	// could not learn; set on the events made after that. The audit counts
	// the missing numbers from it up to this event's seq as lost at
	// unload. Requires seq; at most seq.
	UnloadSeq int `json:"unload_seq,omitempty"`
}

// Screen is a screen size in CSS pixels.
type Screen struct {
	// Width in CSS pixels.
	Width int `json:"width,omitempty"`
	// Height in CSS pixels.
	Height int `json:"height,omitempty"`
}

// Properties are the type-specific fields of an event. Which are required
// depends on the type; see Validate.
type Properties struct {
	// Quality is the generation tier, one of Qualities.
	Quality string `json:"quality,omitempty"`
	// Resolution is the output resolution, one of Resolutions.
	Resolution string `json:"resolution,omitempty"`
	// Width is the output width in pixels (at most 4096).
	Width int `json:"width,omitempty"`
	// Height is the output height in pixels (at most 4096).
	Height int `json:"height,omitempty"`
	// AspectRatio is one of AspectRatios.
	AspectRatio string `json:"aspect_ratio,omitempty"`
	// DurationS is the video length in seconds, 1 to 20.
	DurationS float64 `json:"duration_s,omitempty"`
	// Prompt is the user's text prompt, bounded in length.
	Prompt string `json:"prompt,omitempty"`
	// Model is the generation model's name.
	Model string `json:"model,omitempty"`
	// GenerationID links the events of one generation's lifecycle.
	GenerationID string `json:"generation_id,omitempty"`
	// LatencyMS is the generation latency in milliseconds.
	LatencyMS int64 `json:"latency_ms,omitempty"`
	// Format is the download format, one of Formats.
	Format string `json:"format,omitempty"`
	// ErrorCode is a machine-readable error code.
	ErrorCode string `json:"error_code,omitempty"`
	// ErrorMessage is the human-readable error message.
	ErrorMessage string `json:"error_message,omitempty"`
	// ErrorStack is the error's stack trace.
	ErrorStack string `json:"error_stack,omitempty"`
	// Setting names the setting a settings_changed event changed.
	Setting string `json:"setting,omitempty"`
	// Value is the setting's new value.
	Value string `json:"value,omitempty"`
}

// Enriched is what the collector publishes: the client's event plus what
// the server adds. It is the message value on the events topic.
type Enriched struct {
	Event
	// ReceivedAt is the server's clock when the request arrived.
	ReceivedAt time.Time `json:"received_at"`
	// Timestamp is OccurredAt corrected for client clock skew:
	// occurred_at + (received_at - sent_at).
	Timestamp time.Time `json:"timestamp"`
	// Source names the write key's source.
	Source string `json:"source"`
	// IP is the client's address anonymised (IPv4 /24, IPv6 /48).
	IP string `json:"ip,omitempty"`
	// Device is what the user agent says about the client.
	Device Device `json:"device"`
	// OptedOut is true when identifiers and prompt were stripped because
	// of consent, DNT or GPC.
	OptedOut bool `json:"opted_out,omitempty"`
}

// Device is the parsed user agent.
type Device struct {
	// Class is desktop, mobile, tablet, bot or other.
	Class string `json:"class"`
	// OS is the operating system family.
	OS string `json:"os,omitempty"`
	// OSVersion is the operating system version (major.minor).
	OSVersion string `json:"os_version,omitempty"`
	// Browser is the browser family.
	Browser string `json:"browser,omitempty"`
	// BrowserVersion is the browser version (major.minor).
	BrowserVersion string `json:"browser_version,omitempty"`
	// IsBot is true for crawlers and other automated clients.
	IsBot bool `json:"is_bot,omitempty"`
	// Pending is true when parsing was deferred (UA budget exhausted).
	Pending bool `json:"pending,omitempty"`
}
