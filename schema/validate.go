package schema

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Limits bounds the sizes of an event's fields. The zero value is not
// useful; start from DefaultLimits.
type Limits struct {
	// MaxIDLen bounds event_id, anonymous_id, user_id, session_id,
	// group_id, previous_id and generation_id, in bytes. Default 128.
	MaxIDLen int `mapstructure:"max_id_len"`
	// MaxStringLen bounds every other short string (model, locale, codes,
	// settings), in bytes. Default 256.
	MaxStringLen int `mapstructure:"max_string_len"`
	// MaxURLLen bounds page_url and referrer, in bytes. Default 2048.
	MaxURLLen int `mapstructure:"max_url_len"`
	// MaxPromptLen bounds the prompt, in characters. Default 2000.
	MaxPromptLen int `mapstructure:"max_prompt_len"`
	// MaxMessageLen bounds error_message and user_agent, in bytes. Default 2048.
	MaxMessageLen int `mapstructure:"max_message_len"`
	// MaxStackLen bounds error_stack, in bytes. Default 16384.
	MaxStackLen int `mapstructure:"max_stack_len"`
}

// DefaultLimits returns the documented default limits.
func DefaultLimits() Limits {
	return Limits{
		MaxIDLen:      128,
		MaxStringLen:  256,
		MaxURLLen:     2048,
		MaxPromptLen:  2000,
		MaxMessageLen: 2048,
		MaxStackLen:   16384,
	}
}

// Validate reports the first broken rule of l as an error naming the field.
func (l Limits) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{
		{"max_id_len", l.MaxIDLen}, {"max_string_len", l.MaxStringLen},
		{"max_url_len", l.MaxURLLen}, {"max_prompt_len", l.MaxPromptLen},
		{"max_message_len", l.MaxMessageLen}, {"max_stack_len", l.MaxStackLen},
	} {
		if f.v <= 0 {
			return fmt.Errorf("%s: must be > 0, got %d", f.name, f.v)
		}
	}
	return nil
}

// FieldError is one broken rule of one field.
type FieldError struct {
	// Field is the JSON path of the field, e.g. "properties.quality".
	Field string `json:"field"`
	// Rule says what the field must be, e.g. "must be one of [free pro]".
	Rule string `json:"rule"`
}

func (e FieldError) Error() string { return e.Field + ": " + e.Rule }

// Bounds of numeric fields.
const (
	MinDurationS = 1
	MaxDurationS = 20
	MaxPixels    = 4096
	MaxScreenPx  = 16384
	MaxLatencyMS = 3_600_000
	// MaxSeq bounds seq and context.unload_seq (a UInt32 column; a
	// session that long is not a browser's).
	MaxSeq = 2_147_483_647
)

// required property fields by event type, in the order they are checked.
var requiredProps = map[string][]string{
	TypeGenerationRequested: {"quality", "resolution", "aspect_ratio", "duration_s"},
	TypeGenerationCompleted: {"quality", "resolution", "latency_ms"},
	TypeGenerationFailed:    {"quality", "error_code"},
	TypeVideoDownloaded:     {"format"},
	TypeClientError:         {"error_message"},
	TypeSettingsChanged:     {"setting"},
}

// RequiredProperties returns the property names an event type requires.
func RequiredProperties(typ string) []string { return requiredProps[typ] }

// Validate checks e against the contract and returns every broken rule, or
// nil when e is valid. It never modifies e.
func Validate(e *Event, l Limits) []FieldError {
	v := validator{l: l}
	v.validate(e)
	return v.errs
}

type validator struct {
	l    Limits
	errs []FieldError
}

func (v *validator) fail(field, format string, args ...any) {
	v.errs = append(v.errs, FieldError{Field: field, Rule: fmt.Sprintf(format, args...)})
}

func (v *validator) validate(e *Event) {
	if e.SchemaVersion < 0 || e.SchemaVersion > Version {
		v.fail("schema_version", "must be between 1 and %d", Version)
	}
	switch {
	case e.EventID == "":
		v.fail("event_id", "required")
	case !IsUUID(e.EventID):
		v.fail("event_id", "must be a UUID (8-4-4-4-12 hex digits)")
	}
	switch {
	case e.Type == "":
		v.fail("type", "required")
	case !slices.Contains(Types, e.Type):
		v.fail("type", "must be one of %v", Types)
	}
	if e.OccurredAt.IsZero() {
		v.fail("occurred_at", "required (RFC 3339 date-time)")
	}
	if e.SentAt.IsZero() {
		v.fail("sent_at", "required (RFC 3339 date-time)")
	}
	if e.AnonymousID == "" && e.UserID == "" {
		v.fail("anonymous_id", "required when user_id is empty")
	}
	if e.Type == TypeAlias && e.UserID == "" {
		v.fail("user_id", "required for type alias")
	}
	if e.Type == TypeAlias && e.PreviousID == "" {
		v.fail("previous_id", "required for type alias")
	}
	if e.Type == TypeGroup && e.GroupID == "" {
		v.fail("group_id", "required for type group")
	}
	v.maxLen("anonymous_id", e.AnonymousID, v.l.MaxIDLen)
	v.maxLen("user_id", e.UserID, v.l.MaxIDLen)
	v.maxLen("session_id", e.SessionID, v.l.MaxIDLen)
	v.maxLen("group_id", e.GroupID, v.l.MaxIDLen)
	v.maxLen("previous_id", e.PreviousID, v.l.MaxIDLen)
	v.enum("plan", e.Plan, Plans, true)
	if e.Consent.Analytics == nil {
		v.fail("consent.analytics", "required (true or false)")
	}
	c := &e.Context
	if e.Type == TypePageView && c.PageURL == "" {
		v.fail("context.page_url", "required for type page_view")
	}
	v.maxLen("context.page_url", c.PageURL, v.l.MaxURLLen)
	v.maxLen("context.referrer", c.Referrer, v.l.MaxURLLen)
	v.maxLen("context.locale", c.Locale, v.l.MaxStringLen)
	v.maxLen("context.app_version", c.AppVersion, v.l.MaxStringLen)
	v.maxLen("context.user_agent", c.UserAgent, v.l.MaxMessageLen)
	v.intRange("context.screen.width", c.Screen.Width, 0, MaxScreenPx)
	v.intRange("context.screen.height", c.Screen.Height, 0, MaxScreenPx)
	v.intRange("seq", e.Seq, 0, MaxSeq)
	v.intRange("context.unload_seq", c.UnloadSeq, 0, MaxSeq)
	if c.UnloadSeq > 0 && c.UnloadSeq > e.Seq {
		v.fail("context.unload_seq", "requires seq and must be at most seq (%d)", e.Seq)
	}
	v.properties(e.Type, &e.Properties)
}

func (v *validator) properties(typ string, p *Properties) {
	for _, name := range requiredProps[typ] {
		if !p.has(name) {
			v.fail("properties."+name, "required for type %s", typ)
		}
	}
	v.enum("properties.quality", p.Quality, Qualities, false)
	v.enum("properties.resolution", p.Resolution, Resolutions, false)
	v.enum("properties.aspect_ratio", p.AspectRatio, AspectRatios, false)
	v.enum("properties.format", p.Format, Formats, false)
	if p.DurationS != 0 && (p.DurationS < MinDurationS || p.DurationS > MaxDurationS) {
		v.fail("properties.duration_s", "must be between %d and %d seconds", MinDurationS, MaxDurationS)
	}
	v.intRange("properties.width", p.Width, 0, MaxPixels)
	v.intRange("properties.height", p.Height, 0, MaxPixels)
	if p.LatencyMS < 0 || p.LatencyMS > MaxLatencyMS {
		v.fail("properties.latency_ms", "must be between 0 and %d", MaxLatencyMS)
	}
	// A prompt of at most MaxPromptLen bytes has at most that many
	// characters, so only longer ones are counted.
	if len(p.Prompt) > v.l.MaxPromptLen {
		if n := utf8.RuneCountInString(p.Prompt); n > v.l.MaxPromptLen {
			v.fail("properties.prompt", "must be at most %d characters, got %d", v.l.MaxPromptLen, n)
		}
	}
	v.maxLen("properties.model", p.Model, v.l.MaxStringLen)
	v.maxLen("properties.generation_id", p.GenerationID, v.l.MaxIDLen)
	v.maxLen("properties.error_code", p.ErrorCode, v.l.MaxStringLen)
	v.maxLen("properties.error_message", p.ErrorMessage, v.l.MaxMessageLen)
	v.maxLen("properties.error_stack", p.ErrorStack, v.l.MaxStackLen)
	v.maxLen("properties.setting", p.Setting, v.l.MaxStringLen)
	v.maxLen("properties.value", p.Value, v.l.MaxStringLen)
}

// has reports whether the property named name (one of requiredProps) is
// present, that is not its zero value. An unknown name is never present.
func (p *Properties) has(name string) bool {
	switch name {
	case "quality":
		return p.Quality != ""
	case "resolution":
		return p.Resolution != ""
	case "aspect_ratio":
		return p.AspectRatio != ""
	case "duration_s":
		return p.DurationS != 0
	case "latency_ms":
		return p.LatencyMS != 0
	case "error_code":
		return p.ErrorCode != ""
	case "error_message":
		return p.ErrorMessage != ""
	case "format":
		return p.Format != ""
	case "setting":
		return p.Setting != ""
	}
	return false
}

func (v *validator) enum(field, val string, allowed []string, required bool) {
	if val == "" {
		if required {
			v.fail(field, "required, one of %v", allowed)
		}
		return
	}
	if !slices.Contains(allowed, val) {
		v.fail(field, "must be one of %v, got %q", allowed, truncate(val, 32))
	}
}

func (v *validator) maxLen(field, val string, max int) {
	if len(val) > max {
		v.fail(field, "must be at most %d bytes, got %d", max, len(val))
	}
}

func (v *validator) intRange(field string, val, lo, hi int) {
	if val < lo || val > hi {
		v.fail(field, "must be between %d and %d, got %d", lo, hi, val)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// IsUUID reports whether s is a UUID in canonical 8-4-4-4-12 hex form.
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
