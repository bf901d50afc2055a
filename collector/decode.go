package collector

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
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
	hint := 0 // the decoded size, when known
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		if r.ContentLength > 0 {
			hint = int(min(r.ContentLength, int64(max)))
		}
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
	body, err := readAll(io.LimitReader(src, int64(max)+1), hint)
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

// readAll is io.ReadAll starting with room for hint bytes and one more,
// so a body of the announced size is read into one allocation, without
// growing (the last byte of room lets the final read see EOF).
func readAll(r io.Reader, hint int) ([]byte, error) {
	if hint <= 0 {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, hint+1)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // more than announced: grow as io.ReadAll does
		}
	}
}

func isMaxBytes(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// rawEvent is one event's bytes and where they started in the body.
type rawEvent struct {
	data   []byte
	offset int64
	depth  int // deepest nesting inside the event, the event itself being 1
}

// splitBatch cuts a body into at most maxEvents events (more is
// ErrTooLarge). It accepts {"events":[...]} (or Segment's {"batch":[...]}),
// a JSON array, a single event object, or NDJSON (one event per line). It
// checks only the framing, in one pass that also measures each event's
// nesting depth; each event's own JSON is checked when it is decoded, so a
// broken event fails alone. A framing error fails the whole request with
// its byte offset.
func splitBatch(body []byte, ndjson bool, maxEvents int) ([]rawEvent, error) {
	sc := scanner{b: body}
	sc.ws()
	if sc.i == len(body) {
		return nil, fmt.Errorf("%w: empty body", ErrMalformed)
	}
	if ndjson {
		return splitNDJSON(body, maxEvents)
	}
	var out []rawEvent
	var err error
	switch body[sc.i] {
	case '[':
		out, err = sc.array(maxEvents)
	case '{':
		out, err = sc.object(maxEvents)
	default:
		return nil, fmt.Errorf("%w: at byte offset %d: expected '{' or '['", ErrMalformed, sc.i)
	}
	if err != nil {
		return nil, err
	}
	sc.ws()
	if sc.i < len(body) {
		if body[sc.i] == '{' { // a second object: the body is NDJSON
			return splitNDJSON(body, maxEvents)
		}
		return nil, fmt.Errorf("%w: at byte offset %d: unexpected data after the JSON value", ErrMalformed, sc.i)
	}
	return out, nil
}

// splitNDJSON cuts a body into one event per non-empty line.
func splitNDJSON(body []byte, maxEvents int) ([]rawEvent, error) {
	var out []rawEvent
	var off int
	for off < len(body) {
		end := bytes.IndexByte(body[off:], '\n')
		if end < 0 {
			end = len(body) - off
		}
		line := body[off : off+end]
		sc := scanner{b: line}
		sc.ws()
		if sc.i < len(line) {
			if len(out) == maxEvents {
				return nil, fmt.Errorf("%w: more than %d events in one request", ErrTooLarge, maxEvents)
			}
			start := sc.i
			depth, _ := sc.value(0) // a bad line fails when decoded
			data := bytes.TrimRight(line[start:], " \t\r")
			out = append(out, rawEvent{data: data, offset: int64(off + start), depth: depth})
		}
		off += end + 1
	}
	return out, nil
}

// scanner walks JSON framing without decoding values.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) errf(format string, args ...any) error {
	return fmt.Errorf("%w: at byte offset %d: %s", ErrMalformed, s.i, fmt.Sprintf(format, args...))
}

// str skips a string starting at s.i (a '"') and returns its raw contents.
// It jumps from quote to quote (bytes.IndexByte) instead of looking at
// every byte: a quote ends the string unless an odd number of backslashes
// precede it.
func (s *scanner) str() ([]byte, error) {
	start := s.i + 1
	for j := start; j <= len(s.b); {
		k := bytes.IndexByte(s.b[j:], '"')
		if k < 0 {
			break
		}
		q := j + k
		escaped := false
		for p := q - 1; p >= start && s.b[p] == '\\'; p-- {
			escaped = !escaped
		}
		if !escaped {
			s.i = q + 1
			return s.b[start:q], nil
		}
		j = q + 1
	}
	s.i = len(s.b)
	return nil, s.errf("unterminated string")
}

// value skips one value starting at s.i and returns its nesting depth
// relative to base (an object or array at base 0 has depth 1).
func (s *scanner) value(base int) (int, error) {
	if s.i >= len(s.b) {
		return 0, s.errf("unexpected end of input, expected a value")
	}
	switch c := s.b[s.i]; c {
	case '"':
		_, err := s.str()
		return base, err
	case '{', '[':
		stack := make([]byte, 0, 8)
		maxDepth := base
		for s.i < len(s.b) {
			switch c := s.b[s.i]; c {
			case '"':
				if _, err := s.str(); err != nil {
					return 0, err
				}
				continue
			case '{', '[':
				stack = append(stack, c)
				maxDepth = max(maxDepth, base+len(stack))
			case '}', ']':
				if len(stack) == 0 || (c == '}') != (stack[len(stack)-1] == '{') {
					return 0, s.errf("unexpected %q", c)
				}
				stack = stack[:len(stack)-1]
				if len(stack) == 0 {
					s.i++
					return maxDepth, nil
				}
			}
			s.i++
		}
		return 0, s.errf("unexpected end of input, %d bracket(s) left open", len(stack))
	default:
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', ']', '}', ' ', '\t', '\r', '\n':
				return base, nil
			}
			s.i++
		}
		return base, nil
	}
}

// array reads an array of events starting at s.i.
func (s *scanner) array(maxEvents int) ([]rawEvent, error) {
	s.i++ // '['
	var out []rawEvent
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return out, nil
	}
	for {
		s.ws()
		if len(out) == maxEvents {
			return nil, fmt.Errorf("%w: more than %d events in one request", ErrTooLarge, maxEvents)
		}
		start := s.i
		depth, err := s.value(0)
		if err != nil {
			return nil, err
		}
		out = append(out, rawEvent{data: s.b[start:s.i], offset: int64(start), depth: depth})
		s.ws()
		if s.i >= len(s.b) {
			return nil, s.errf("unexpected end of input, expected ',' or ']'")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return out, nil
		default:
			return nil, s.errf("expected ',' or ']' after an event, got %q", s.b[s.i])
		}
	}
}

// object reads a top-level object: a batch wrapper when it has an
// "events" or "batch" array, else a single event.
func (s *scanner) object(maxEvents int) ([]rawEvent, error) {
	start := s.i
	s.i++ // '{'
	var events []rawEvent
	found := false
	depth := 1
	for {
		s.ws()
		if s.i >= len(s.b) {
			return nil, s.errf("unexpected end of input in an object")
		}
		if s.b[s.i] == '}' {
			s.i++
			break
		}
		if s.b[s.i] != '"' {
			return nil, s.errf("expected a field name, got %q", s.b[s.i])
		}
		key, err := s.str()
		if err != nil {
			return nil, err
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return nil, s.errf("expected ':' after a field name")
		}
		s.i++
		s.ws()
		if k := string(key); (k == "events" || k == "batch") && !found && s.i < len(s.b) && s.b[s.i] == '[' {
			if events, err = s.array(maxEvents); err != nil {
				return nil, err
			}
			found = true
		} else {
			d, err := s.value(1)
			if err != nil {
				return nil, err
			}
			depth = max(depth, d)
		}
		s.ws()
		if s.i >= len(s.b) {
			return nil, s.errf("unexpected end of input, expected ',' or '}'")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			if found {
				return events, nil
			}
			return []rawEvent{{data: s.b[start:s.i], offset: int64(start), depth: depth}}, nil
		default:
			return nil, s.errf("expected ',' or '}', got %q", s.b[s.i])
		}
	}
	if found {
		return events, nil
	}
	return []rawEvent{{data: s.b[start:s.i], offset: int64(start), depth: depth}}, nil
}

// checkRaw enforces the byte-level rules of one event: size, valid UTF-8
// and nesting depth (measured while splitting).
func checkRaw(ev rawEvent, maxBytes, maxDepth int) *schema.FieldError {
	b := ev.data
	if len(b) > maxBytes {
		return &schema.FieldError{Field: "event", Rule: fmt.Sprintf("must be at most %d bytes, got %d", maxBytes, len(b))}
	}
	if len(b) == 0 || b[0] != '{' {
		return &schema.FieldError{Field: "event", Rule: fmt.Sprintf("must be a JSON object (at byte offset %d)", ev.offset)}
	}
	if !utf8.Valid(b) {
		return &schema.FieldError{Field: "event", Rule: "must be valid UTF-8"}
	}
	if ev.depth > maxDepth {
		return &schema.FieldError{Field: "event", Rule: fmt.Sprintf("nesting must be at most %d levels deep", maxDepth)}
	}
	return nil
}

// decodeInto unmarshals one event into v (a pointer to a zero value).
// Syntax errors name their byte offset in the body; type mismatches become
// a FieldError naming the JSON path and the expected type.
//
// Decoded strings are not copied: they alias ev.data, that is the request
// body, which is read afresh for each request and never reused. Whatever
// outlives the request (the user-agent cache key, message keys and values)
// is copied where it is kept.
func decodeInto(ev rawEvent, v any) *schema.FieldError {
	b := ev.data
	if rest, err := fastjson.Parse(b, v, fastjson.ZeroCopy); err == nil && len(rest) == 0 {
		return nil
	}
	// The error path decodes again, as before, from a zero value, so the
	// errors reported are those of fastjson.Unmarshal.
	reflect.ValueOf(v).Elem().SetZero()
	if err := fastjson.Unmarshal(b, v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			field := ute.Field
			if field == "" {
				field = "event"
			}
			if ute.Type == reflect.TypeFor[time.Time]() { // a string that is not a time
				return &schema.FieldError{Field: field, Rule: "must be an RFC 3339 date-time string"}
			}
			return &schema.FieldError{Field: field, Rule: fmt.Sprintf("must be of type %s, got %s", jsonKind(ute.Type.String()), valueKind(ute.Value))}
		}
		if isSyntax(err) {
			return &schema.FieldError{Field: "event", Rule: "must be valid JSON: " + syntaxDetail(b, ev.offset)}
		}
		if f := badTimeField(b); f != "" {
			return &schema.FieldError{Field: f, Rule: "must be an RFC 3339 date-time string"}
		}
		return &schema.FieldError{Field: "event", Rule: "must be a JSON object: " + err.Error()}
	}
	return nil
}

// badTimeField names the envelope time field (ours, or a Segment
// message's) that fails to parse; only called on the error path, since
// time.Time's errors do not name the field.
func badTimeField(b []byte) string {
	var times struct {
		OccurredAt        json.RawMessage `json:"occurred_at"`
		SentAt            json.RawMessage `json:"sent_at"`
		Timestamp         json.RawMessage `json:"timestamp"`
		OriginalTimestamp json.RawMessage `json:"originalTimestamp"`
		SegmentSentAt     json.RawMessage `json:"sentAt"`
	}
	if json.Unmarshal(b, &times) != nil {
		return ""
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"occurred_at", times.OccurredAt}, {"sent_at", times.SentAt}, {"timestamp", times.Timestamp},
		{"originalTimestamp", times.OriginalTimestamp}, {"sentAt", times.SegmentSentAt}} {
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

// isSyntax reports whether err is a JSON syntax error.
func isSyntax(err error) bool {
	var se *json.SyntaxError
	return errors.As(err, &se)
}

// syntaxDetail describes a syntax error with its offset inside the event,
// using the standard decoder (which reports offsets) on the error path.
func syntaxDetail(b []byte, base int64) string {
	var v any
	err := json.Unmarshal(b, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("at byte offset %d: %s", base+se.Offset-1, se.Error())
	}
	if err != nil {
		return err.Error()
	}
	return "invalid JSON"
}
