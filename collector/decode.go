package collector

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	fastjson "github.com/segmentio/encoding/json"

	"github.com/sora3web/telemetry/schema"
)

// Sentinel errors of request decoding; the handler maps them to statuses.
var (
	// ErrTooLarge: the body exceeds max_request_bytes (before or after
	// decompression) or the batch exceeds max_batch_events. 413.
	ErrTooLarge = errors.New("request too large")
	// ErrUnsupportedMedia: the content type or encoding is not accepted. 415.
	ErrUnsupportedMedia = errors.New("unsupported media type")
	// ErrMalformed: the body is not JSON or NDJSON. 400.
	ErrMalformed = errors.New("malformed body")
)

// readBody reads r's body, undoing gzip, and refuses more than max bytes on
// the wire or after decompression. A gzip bomb is cut off after max+1
// decompressed bytes, never inflated in full.
func readBody(r *http.Request, max int) ([]byte, error) {
	wire := http.MaxBytesReader(nil, r.Body, int64(max))
	var src io.Reader = wire
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(wire)
		if err != nil {
			if isMaxBytes(err) {
				return nil, fmt.Errorf("reading gzip header: %w: body exceeds %d bytes", ErrTooLarge, max)
			}
			return nil, fmt.Errorf("reading gzip header: %w: %v", ErrMalformed, err)
		}
		defer zr.Close()
		src = zr
	default:
		return nil, fmt.Errorf("%w: Content-Encoding %q (accepted: gzip, identity)", ErrUnsupportedMedia, enc)
	}
	body, err := io.ReadAll(io.LimitReader(src, int64(max)+1))
	switch {
	case isMaxBytes(err):
		return nil, fmt.Errorf("%w: body exceeds %d bytes", ErrTooLarge, max)
	case err != nil:
		return nil, fmt.Errorf("reading body: %w: %v", ErrMalformed, err)
	case len(body) > max:
		return nil, fmt.Errorf("%w: decompressed body exceeds %d bytes", ErrTooLarge, max)
	}
	return body, nil
}

func isMaxBytes(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// rawEvent is one event's bytes and where they started in the body.
type rawEvent struct {
	data   []byte
	offset int64
	err    *schema.FieldError // set when the line could not be split out
}

// splitBatch cuts a body into at most maxEvents events (more is
// ErrTooLarge). It accepts {"events":[...]} (or Segment's {"batch":[...]}),
// a JSON array, a single event object, or NDJSON (one event per line). A
// syntax error in a JSON document fails the whole request with its byte
// offset; a bad NDJSON line fails only that event.
func splitBatch(body []byte, ndjson bool, maxEvents int) ([]rawEvent, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%w: empty body", ErrMalformed)
	}
	lead := int64(len(body) - len(trimmed))
	var out []rawEvent
	var err error
	switch {
	case ndjson || (trimmed[0] == '{' && looksLikeNDJSON(trimmed) && !json.Valid(trimmed)):
		out = splitNDJSON(body)
	case trimmed[0] == '[':
		out, err = splitArray(json.NewDecoder(bytes.NewReader(trimmed)), lead, maxEvents)
	case trimmed[0] == '{':
		out, err = splitObject(trimmed, lead, maxEvents)
	default:
		return nil, fmt.Errorf("%w: at byte offset %d: expected '{' or '['", ErrMalformed, lead)
	}
	if err != nil {
		return nil, err
	}
	if len(out) > maxEvents {
		return nil, fmt.Errorf("%w: more than %d events in one request", ErrTooLarge, maxEvents)
	}
	return out, nil
}

// splitObject handles a body that is one JSON object: a batch wrapper when
// it has an "events" or "batch" array, else a single event.
func splitObject(b []byte, lead int64, maxEvents int) ([]rawEvent, error) {
	if !json.Valid(b) {
		var v any
		return nil, syntaxErr(json.Unmarshal(b, &v), lead)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // '{'
		return nil, syntaxErr(err, lead)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntaxErr(err, lead)
		}
		if key, _ := tok.(string); key == "events" || key == "batch" {
			return splitArray(dec, lead, maxEvents)
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, syntaxErr(err, lead)
		}
	}
	return []rawEvent{{data: b, offset: lead}}, nil
}

// splitArray reads a JSON array of objects from dec, whose input began at
// byte lead of the body, keeping each element's bytes and offset.
func splitArray(dec *json.Decoder, lead int64, maxEvents int) ([]rawEvent, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxErr(err, lead)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, fmt.Errorf("%w: at byte offset %d: \"events\" must be an array of event objects", ErrMalformed, lead+dec.InputOffset())
	}
	var out []rawEvent
	for dec.More() {
		if len(out) == maxEvents {
			return nil, fmt.Errorf("%w: more than %d events in one request", ErrTooLarge, maxEvents)
		}
		var m json.RawMessage
		if err := dec.Decode(&m); err != nil {
			return nil, syntaxErr(err, lead)
		}
		end := lead + dec.InputOffset()
		out = append(out, rawEvent{data: m, offset: end - int64(len(m))})
	}
	if _, err := dec.Token(); err != nil { // ']'
		return nil, syntaxErr(err, lead)
	}
	return out, nil
}

// looksLikeNDJSON reports whether b holds more than one non-empty line.
func looksLikeNDJSON(b []byte) bool {
	i := bytes.IndexByte(b, '\n')
	return i >= 0 && len(bytes.TrimSpace(b[i:])) > 0
}

func syntaxErr(err error, base int64) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		// Offset counts the bytes read including the bad one; report the
		// bad byte's own zero-based position.
		return fmt.Errorf("%w: at byte offset %d: %s", ErrMalformed, base+se.Offset-1, se.Error())
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: unexpected end of JSON input", ErrMalformed)
	}
	return fmt.Errorf("%w: %v", ErrMalformed, err)
}

func splitNDJSON(body []byte) []rawEvent {
	var out []rawEvent
	var off int64
	for len(body) > 0 {
		line := body
		next := len(body)
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, next = body[:i], i+1
		}
		if t := bytes.TrimSpace(line); len(t) > 0 {
			ev := rawEvent{data: t, offset: off + int64(bytes.Index(line, t))}
			if !json.Valid(t) {
				ev.err = &schema.FieldError{Field: "event", Rule: fmt.Sprintf("must be a JSON object (malformed line at byte offset %d)", ev.offset)}
			}
			out = append(out, ev)
		}
		off += int64(next)
		body = body[next:]
	}
	return out
}

// checkRaw enforces the byte-level rules of one event: size, valid UTF-8 and
// nesting depth. It scans once, tracking strings so brackets inside them do
// not count.
func checkRaw(b []byte, maxBytes, maxDepth int) *schema.FieldError {
	if len(b) > maxBytes {
		return &schema.FieldError{Field: "event", Rule: fmt.Sprintf("must be at most %d bytes, got %d", maxBytes, len(b))}
	}
	if !utf8.Valid(b) {
		return &schema.FieldError{Field: "event", Rule: "must be valid UTF-8"}
	}
	if len(b) == 0 || b[0] != '{' {
		return &schema.FieldError{Field: "event", Rule: "must be a JSON object"}
	}
	depth, inStr, esc := 0, false, false
	for _, c := range b {
		if inStr {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '{', '[':
			depth++
			if depth > maxDepth {
				return &schema.FieldError{Field: "event", Rule: fmt.Sprintf("nesting must be at most %d levels deep", maxDepth)}
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

// decodeInto unmarshals one checked event into v. Type mismatches become
// a FieldError naming the JSON path and the expected type.
func decodeInto(b []byte, v any) *schema.FieldError {
	if err := fastjson.Unmarshal(b, v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			field := ute.Field
			if field == "" {
				field = "event"
			}
			return &schema.FieldError{Field: field, Rule: fmt.Sprintf("must be of type %s, got %s", jsonKind(ute.Type.String()), valueKind(ute.Value))}
		}
		if f := badTimeField(b); f != "" {
			return &schema.FieldError{Field: f, Rule: "must be an RFC 3339 date-time string"}
		}
		return &schema.FieldError{Field: "event", Rule: "must be a JSON object: " + err.Error()}
	}
	return nil
}

// badTimeField names the envelope time field that fails to parse; only
// called on the error path, since time.Time's errors do not name the field.
func badTimeField(b []byte) string {
	var times struct {
		OccurredAt json.RawMessage `json:"occurred_at"`
		SentAt     json.RawMessage `json:"sent_at"`
	}
	if json.Unmarshal(b, &times) != nil {
		return ""
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"occurred_at", times.OccurredAt}, {"sent_at", times.SentAt}} {
		var t time.Time
		if f.raw != nil && json.Unmarshal(f.raw, &t) != nil {
			return f.name
		}
	}
	return ""
}

// jsonKind names a Go type the way a JSON client thinks of it.
func jsonKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "integer"
	case strings.HasPrefix(goType, "float"):
		return "number"
	case goType == "string", goType == "time.Time":
		return "string"
	case goType == "bool", goType == "*bool":
		return "boolean"
	default:
		return "object"
	}
}

// valueKind names the JSON kind of a decoder's reported value, which is
// either a kind name or the offending literal itself.
func valueKind(v string) string {
	if v == "" {
		return "unknown"
	}
	switch v[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		if v == "true" || v == "false" {
			return "boolean"
		}
	case 'n':
		if v == "null" {
			return "null"
		}
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return "number"
	}
	return v
}
