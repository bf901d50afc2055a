package schema

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/segmentio/asm/ascii"
	"github.com/segmentio/encoding/iso8601"
	fastjson "github.com/segmentio/encoding/json"
)

// ParseEnriched decodes the JSON of an enriched event (a bus message's
// value) into e, which it zeroes first. Strings without escapes alias b,
// as fastjson's ZeroCopy does: b must not change while e is in use.
//
// Most messages are as ingest writes them (collector's appendEnriched):
// the fields in the order of the types, without spaces, unknown fields or
// nulls. Those are read by a parser of that layout alone, which takes
// about a third of the CPU of the generic decoder (BenchmarkParseEnriched).
// Anything else — other field orders, spaces, unknown fields, nulls,
// numbers or strings the layout parser does not read — goes to the
// generic decoder (fastjson.Parse) from the start, so the result is always
// what fastjson.Parse makes of b; FuzzParseEnriched holds the two equal.
// Bytes after the event are an error.
func ParseEnriched(b []byte, e *Enriched) error {
	if ParseLayout(b, e) {
		return nil
	}
	*e = Enriched{}
	rest, err := fastjson.Parse(b, e, fastjson.ZeroCopy)
	if err == nil && len(rest) != 0 {
		err = fmt.Errorf("unexpected %q after the event", rest[:min(len(rest), 16)])
	}
	return err
}

// ParseLayout is ParseEnriched's first try alone: it reads b into e (zeroed
// first) and reports true when b is in ingest's layout; false leaves e
// undefined. Tests hold ingest's encoder to it.
func ParseLayout(b []byte, e *Enriched) bool {
	*e = Enriched{}
	p := layoutParser{b: b}
	return p.enriched(e) && p.i == len(b)
}

// The field names of each object, in the order ingest writes them.
var (
	enrichedFields = []string{"schema_version", "event_id", "type", "occurred_at", "sent_at", "anonymous_id",
		"user_id", "session_id", "seq", "group_id", "previous_id", "plan", "under_13", "consent", "context",
		"properties", "received_at", "timestamp", "source", "ip", "device", "opted_out"}
	consentFields    = []string{"analytics"}
	contextFields    = []string{"page_url", "referrer", "locale", "screen", "app_version", "user_agent", "unload_seq"}
	screenFields     = []string{"width", "height"}
	propertiesFields = []string{"quality", "resolution", "width", "height", "aspect_ratio", "duration_s", "prompt",
		"model", "generation_id", "latency_ms", "format", "error_code", "error_message", "error_stack", "setting", "value"}
	deviceFields = []string{"class", "os", "os_version", "browser", "browser_version", "is_bot", "pending"}
)

// layoutParser reads the JSON ingest writes. Each method reports whether
// the input was in that layout; false sends the message to the generic
// decoder, so a method never needs to say why.
type layoutParser struct {
	b []byte
	i int
}

// object reads an object whose fields come in the order of names, each at
// most once, any of them absent, and calls field with each one's index
// to read its value.
func (p *layoutParser) object(names []string, field func(int) bool) bool {
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return false
	}
	p.i++
	next := 0 // the first name still allowed
	for first := true; ; first = false {
		if p.i >= len(p.b) {
			return false
		}
		if p.b[p.i] == '}' {
			p.i++
			return true
		}
		if !first {
			if p.b[p.i] != ',' {
				return false
			}
			p.i++
		}
		j := p.key(names[next:])
		if j < 0 {
			return false
		}
		if !field(next + j) {
			return false
		}
		next += j + 1
	}
}

// key reads `"name":` for one of names and returns its index, or -1.
func (p *layoutParser) key(names []string) int {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return -1
	}
	for j, name := range names {
		end := p.i + 1 + len(name)
		if end+1 < len(p.b) && p.b[end] == '"' && p.b[end+1] == ':' && string(p.b[p.i+1:end]) == name {
			p.i = end + 2
			return j
		}
	}
	return -1
}

func (p *layoutParser) enriched(e *Enriched) bool {
	return p.object(enrichedFields, func(j int) bool {
		switch j {
		case 0:
			return p.int(&e.SchemaVersion)
		case 1:
			return p.str(&e.EventID)
		case 2:
			return p.str(&e.Type)
		case 3:
			return p.time(&e.OccurredAt)
		case 4:
			return p.time(&e.SentAt)
		case 5:
			return p.str(&e.AnonymousID)
		case 6:
			return p.str(&e.UserID)
		case 7:
			return p.str(&e.SessionID)
		case 8:
			return p.int(&e.Seq)
		case 9:
			return p.str(&e.GroupID)
		case 10:
			return p.str(&e.PreviousID)
		case 11:
			return p.str(&e.Plan)
		case 12:
			return p.bool(&e.Under13)
		case 13:
			return p.object(consentFields, func(int) bool { return p.optBool(&e.Consent.Analytics) })
		case 14:
			return p.context(&e.Context)
		case 15:
			return p.properties(&e.Properties)
		case 16:
			return p.time(&e.ReceivedAt)
		case 17:
			return p.time(&e.Timestamp)
		case 18:
			return p.str(&e.Source)
		case 19:
			return p.str(&e.IP)
		case 20:
			return p.device(&e.Device)
		default:
			return p.bool(&e.OptedOut)
		}
	})
}

func (p *layoutParser) context(c *Context) bool {
	return p.object(contextFields, func(j int) bool {
		switch j {
		case 0:
			return p.str(&c.PageURL)
		case 1:
			return p.str(&c.Referrer)
		case 2:
			return p.str(&c.Locale)
		case 3:
			return p.object(screenFields, func(j int) bool {
				if j == 0 {
					return p.int(&c.Screen.Width)
				}
				return p.int(&c.Screen.Height)
			})
		case 4:
			return p.str(&c.AppVersion)
		case 5:
			return p.str(&c.UserAgent)
		default:
			return p.int(&c.UnloadSeq)
		}
	})
}

func (p *layoutParser) properties(pr *Properties) bool {
	return p.object(propertiesFields, func(j int) bool {
		switch j {
		case 0:
			return p.str(&pr.Quality)
		case 1:
			return p.str(&pr.Resolution)
		case 2:
			return p.int(&pr.Width)
		case 3:
			return p.int(&pr.Height)
		case 4:
			return p.str(&pr.AspectRatio)
		case 5:
			return p.float(&pr.DurationS)
		case 6:
			return p.str(&pr.Prompt)
		case 7:
			return p.str(&pr.Model)
		case 8:
			return p.str(&pr.GenerationID)
		case 9:
			v, ok := p.number()
			pr.LatencyMS = v
			return ok
		case 10:
			return p.str(&pr.Format)
		case 11:
			return p.str(&pr.ErrorCode)
		case 12:
			return p.str(&pr.ErrorMessage)
		case 13:
			return p.str(&pr.ErrorStack)
		case 14:
			return p.str(&pr.Setting)
		default:
			return p.str(&pr.Value)
		}
	})
}

func (p *layoutParser) device(d *Device) bool {
	return p.object(deviceFields, func(j int) bool {
		switch j {
		case 0:
			return p.str(&d.Class)
		case 1:
			return p.str(&d.OS)
		case 2:
			return p.str(&d.OSVersion)
		case 3:
			return p.str(&d.Browser)
		case 4:
			return p.str(&d.BrowserVersion)
		case 5:
			return p.bool(&d.IsBot)
		default:
			return p.bool(&d.Pending)
		}
	})
}

// raw reads a string's bytes between its quotes, valid UTF-8 without
// control characters; escaped reports a backslash, which str unescapes.
func (p *layoutParser) raw() (s []byte, escaped, ok bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, false, false
	}
	start := p.i + 1
	n := bytes.IndexByte(p.b[start:], '"')
	if n < 0 {
		return nil, false, false
	}
	if s = p.b[start : start+n]; bytes.IndexByte(s, '\\') < 0 {
		// The common case, in word-at-a-time scans.
		p.i = start + n + 1
		return s, false, ascii.ValidPrint(s) || validText(s)
	}
	for i := start; i < len(p.b); i++ {
		switch c := p.b[i]; {
		case c == '"':
			s = p.b[start:i]
			p.i = i + 1
			return s, true, validText(s)
		case c == '\\':
			i++ // the escaped byte is never the closing quote
		}
	}
	return nil, false, false
}

// validText reports whether s is valid UTF-8 without control characters.
func validText(s []byte) bool {
	for _, c := range s {
		if c < 0x20 {
			return false
		}
	}
	return utf8.Valid(s)
}

func (p *layoutParser) str(dst *string) bool {
	s, escaped, ok := p.raw()
	if !ok {
		return false
	}
	if !escaped {
		*dst = unsafe.String(unsafe.SliceData(s), len(s))
		return true
	}
	out, ok := unescape(s)
	*dst = out
	return ok
}

// unescape undoes the JSON escapes of s; a lone surrogate is not read.
func unescape(s []byte) (string, bool) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		if i++; i >= len(s) {
			return "", false
		}
		switch s[i] {
		case '"', '\\', '/':
			out = append(out, s[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(s[i+1:])
			if !ok {
				return "", false
			}
			i += 4
			if utf16.IsSurrogate(r) {
				if i+6 >= len(s) || s[i+1] != '\\' || s[i+2] != 'u' {
					return "", false
				}
				r2, ok := hex4(s[i+3:])
				if r = utf16.DecodeRune(r, r2); !ok || r == utf8.RuneError {
					return "", false
				}
				i += 6
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", false
		}
	}
	return string(out), true
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

func (p *layoutParser) time(dst *time.Time) bool {
	s, escaped, ok := p.raw()
	if !ok || escaped {
		return false
	}
	t, err := iso8601.Parse(unsafe.String(unsafe.SliceData(s), len(s)))
	*dst = t
	return err == nil
}

// number reads an integer that fits an int64 (no fraction, exponent or
// leading zero).
func (p *layoutParser) number() (int64, bool) {
	i, neg := p.i, false
	if i < len(p.b) && p.b[i] == '-' {
		neg, i = true, i+1
	}
	start := i
	var v uint64
	for ; i < len(p.b) && p.b[i] >= '0' && p.b[i] <= '9'; i++ {
		if v > (math.MaxUint64-9)/10 {
			return 0, false
		}
		v = v*10 + uint64(p.b[i]-'0')
	}
	limit := uint64(math.MaxInt64)
	if neg {
		limit++
	}
	if i == start || i-start > 1 && p.b[start] == '0' || v > limit {
		return 0, false
	}
	if i < len(p.b) && (p.b[i] == '.' || p.b[i] == 'e' || p.b[i] == 'E') {
		return 0, false
	}
	p.i = i
	if neg {
		return int64(-v), true // -v wraps to MinInt64 for its magnitude
	}
	return int64(v), true
}

func (p *layoutParser) int(dst *int) bool {
	v, ok := p.number()
	*dst = int(v)
	return ok
}

// float reads a JSON number.
func (p *layoutParser) float(dst *float64) bool {
	i := p.i
	digits := func() bool {
		start := i
		for i < len(p.b) && p.b[i] >= '0' && p.b[i] <= '9' {
			i++
		}
		return i > start
	}
	if i < len(p.b) && p.b[i] == '-' {
		i++
	}
	start := i
	if !digits() || i-start > 1 && p.b[start] == '0' {
		return false
	}
	if i < len(p.b) && p.b[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(p.b) && (p.b[i] == 'e' || p.b[i] == 'E') {
		i++
		if i < len(p.b) && (p.b[i] == '+' || p.b[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	s := p.b[p.i:i]
	v, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(s), len(s)), 64)
	if err != nil {
		return false
	}
	*dst, p.i = v, i
	return true
}

func (p *layoutParser) literal(word string) bool {
	if len(p.b)-p.i >= len(word) && string(p.b[p.i:p.i+len(word)]) == word {
		p.i += len(word)
		return true
	}
	return false
}

func (p *layoutParser) bool(dst *bool) bool {
	switch {
	case p.literal("true"):
		*dst = true
	case p.literal("false"):
		*dst = false
	default:
		return false
	}
	return true
}

// optBool reads true, false or null into a *bool.
func (p *layoutParser) optBool(dst **bool) bool {
	if p.literal("null") {
		*dst = nil
		return true
	}
	v := new(bool)
	*dst = v
	return p.bool(v)
}
