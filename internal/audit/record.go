// Package audit owns the completeness audit of the pipeline: the counts
// each stage keeps per one-minute window of received_at and per source
// (write key), the audit record in which ingest's counts travel on the
// bus, the rows of the pipeline_audit table, and the report that balances
// them (accepted against stored, dead-lettered and filtered; duplicates;
// the browsers' sequence gaps) for `telemetry audit`, the admin API and
// the completeness metrics. Ingest and the consumer both import it; it
// imports neither.
package audit

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/segmentio/encoding/json"

	"github.com/sora3web/telemetry/bus"
)

// Stages that are counted. Ingest counts accepted, spooled, published,
// rejected, dropped and refused; the consumer consumed, deduplicated,
// dead_lettered, filtered and inserted (with a batch's other counts,
// before its insert; migration 0014 dropped the events table's view that
// counted inserted until then).
const (
	// Accepted: events made durable on the bus and answered 2xx. Ingest's
	// records name the route the events took as the count's reason
	// (Published or Spooled): one count, and one row, for both. Records
	// made before 2026-12-04 count the route as a stage of its own beside
	// accepted (reason ""); the report reads both forms.
	Accepted = "accepted"
	// Published: accepted events that went to the bus directly (Kafka, or
	// the local log as the bus).
	Published = "published"
	// Spooled: accepted events that went to the local spool because Kafka
	// could not take them; the spool forwards them to Kafka.
	Spooled = "spooled"
	// Rejected: events refused by a rule; the reason is the field.
	Rejected = "rejected"
	// Dropped: events accepted but never stored by policy (reason under_13).
	Dropped = "dropped"
	// Refused: whole requests refused before their events were read
	// (reason: unauthorized, rate_limit_key, rate_limit_ip, inflight,
	// too_large, unsupported_media, bad_request, unavailable). Counts
	// requests, not events.
	Refused = "refused"
	// Consumed: event messages the consumer read (each delivery once per
	// position).
	Consumed = "consumed"
	// Inserted: rows the consumer's insert of a batch stores.
	Inserted = "inserted"
	// Deduplicated: copies the consumer did not store because the same
	// event_id was stored already (a client resend, a spool replay).
	Deduplicated = "deduplicated"
	// DeadLettered: messages that could not be stored (reason decode or
	// map).
	DeadLettered = "dead_lettered"
	// Filtered: events not stored because their data subject was deleted
	// (a tombstone).
	Filtered = "filtered"
)

// Header marks an audit record on the bus: its value is KindAudit. Event
// messages carry no such header.
const (
	Header    = "telemetry-kind"
	KindAudit = "audit"
)

// ErrBadRecord means an audit message could not be decoded.
var ErrBadRecord = errors.New("bad audit record")

// Count is one stage's count in a record.
type Count struct {
	Stage  string `json:"stage"`
	Reason string `json:"reason,omitempty"`
	N      uint64 `json:"n"`
}

// Record is ingest's counts for one window and source, published on the
// bus as one message. ID is unique per record: a copy of it (a producer
// retry, a spool replay) is stored once (pipeline_audit keeps one row per
// record id).
type Record struct {
	ID     string    `json:"audit_id"`
	Source string    `json:"source"`
	Window time.Time `json:"window"`
	Counts []Count   `json:"counts"`
}

// MinuteOf is the one-minute window of t, in UTC.
func MinuteOf(t time.Time) time.Time { return t.UTC().Truncate(time.Minute) }

// Message encodes r as a bus message: keyed by its source, marked with
// Header.
func (r Record) Message() (bus.Message, error) {
	v, err := json.Marshal(r)
	if err != nil {
		return bus.Message{}, fmt.Errorf("encoding audit record: %w", err)
	}
	return bus.Message{Key: []byte("audit/" + r.Source), Value: v, Headers: []bus.Header{{Key: Header, Value: []byte(KindAudit)}}}, nil
}

// IsRecord reports whether m is an audit record.
func IsRecord(m bus.Message) bool {
	for _, h := range m.Headers {
		if h.Key == Header {
			return string(h.Value) == KindAudit
		}
	}
	return false
}

// Decode decodes an audit message.
func Decode(m bus.Message) (Record, error) {
	r, ok := decodeCanonical(m.Value)
	if !ok {
		r = Record{}
		if err := json.Unmarshal(m.Value, &r); err != nil {
			return Record{}, fmt.Errorf("%w: %w", ErrBadRecord, err)
		}
	}
	if _, err := uuid.Parse(r.ID); err != nil {
		return Record{}, fmt.Errorf("%w: audit_id %q: not a UUID", ErrBadRecord, r.ID)
	}
	if r.Window.IsZero() {
		return Record{}, fmt.Errorf("%w: window: required", ErrBadRecord)
	}
	return r, nil
}

// Row is one row of pipeline_audit.
type Row struct {
	// Window is the minute of received_at the count belongs to.
	Window time.Time
	// Source is the write key's source ("" when unknown: a request refused
	// before its key was read, a message that could not be decoded).
	Source string
	Stage  string
	Reason string
	// RecordID names what counted: the same id twice is one count (the
	// table replaces by it), so a count written again after a crash or a
	// redelivery is not added twice.
	RecordID string
	N        uint64
}

// Rows are r's rows: one per count, each named by the record's id, stage
// and reason.
func (r Record) Rows() []Row {
	out := make([]Row, 0, len(r.Counts))
	for _, c := range r.Counts {
		out = append(out, Row{Window: MinuteOf(r.Window), Source: r.Source, Stage: c.Stage, Reason: c.Reason,
			RecordID: r.ID + "/" + c.Stage + "/" + c.Reason, N: c.N})
	}
	return out
}

// decodeCanonical decodes v when it is in the form Message writes: a
// Record's fields in their order, no spaces, strings without escapes and
// the window in RFC 3339. It reports false for any other form, which
// Decode leaves to json.Unmarshal; what it decodes, json.Unmarshal would
// decode alike (TestDecodeCanonicalAgreesWithUnmarshal). The consumer
// decodes a record per request or group of them: json.Unmarshal took
// about 1 µs a record (BenchmarkDecodeRows), 0.5% of the audit-on
// consumer's CPU in BenchmarkAuditGoSide's drains (2026-12-05).
func decodeCanonical(v []byte) (r Record, ok bool) {
	c := canonical{b: v}
	var window []byte
	if !c.lit(`{"audit_id":`) || !c.str(&r.ID) || !c.lit(`,"source":`) || !c.str(&r.Source) ||
		!c.lit(`,"window":`) || !c.raw(&window) || !c.lit(`,"counts":[`) {
		return Record{}, false
	}
	// time.Time's UnmarshalJSON parses its string so.
	if err := r.Window.UnmarshalText(window); err != nil {
		return Record{}, false
	}
	for first := true; !c.lit("]"); first = false {
		var n Count
		if !first && !c.lit(",") || !c.lit(`{"stage":`) || !c.name(&n.Stage) ||
			c.lit(`,"reason":`) && (!c.name(&n.Reason) || n.Reason == "") || !c.lit(`,"n":`) || !c.uint(&n.N) || !c.lit("}") {
			return Record{}, false
		}
		r.Counts = append(r.Counts, n)
	}
	if !c.lit("}") || len(c.b) != 0 || r.Counts == nil {
		return Record{}, false
	}
	return r, true
}

// canonical reads the form Message writes; each method takes what it
// names from the front of b and reports whether it was there.
type canonical struct{ b []byte }

// lit takes s.
func (c *canonical) lit(s string) bool {
	if len(c.b) < len(s) || string(c.b[:len(s)]) != s {
		return false
	}
	c.b = c.b[len(s):]
	return true
}

// str takes a string without escapes and control characters, in UTF-8,
// into *s (a copy: a record's strings outlive the message's bytes).
func (c *canonical) str(s *string) bool {
	var v []byte
	if !c.raw(&v) {
		return false
	}
	*s = string(v)
	return true
}

// names are the stages and the routes (accepted's reasons): the strings
// a record's counts name most.
var names = [...]string{Accepted, Published, Spooled, Rejected, Dropped, Refused}

// name is str for a count's stage or reason: one of names is not copied.
func (c *canonical) name(s *string) bool {
	var v []byte
	if !c.raw(&v) {
		return false
	}
	for _, n := range names {
		if string(v) == n {
			*s = n
			return true
		}
	}
	*s = string(v)
	return true
}

// raw is str, *v the string's bytes in b.
func (c *canonical) raw(v *[]byte) bool {
	if !c.lit(`"`) {
		return false
	}
	i := bytes.IndexByte(c.b, '"')
	if i < 0 {
		return false
	}
	for _, b := range c.b[:i] {
		if b < 0x20 || b == '\\' {
			return false
		}
	}
	if !utf8.Valid(c.b[:i]) {
		return false
	}
	*v, c.b = c.b[:i], c.b[i+1:]
	return true
}

// uint takes an unsigned integer without a leading zero into *n.
func (c *canonical) uint(n *uint64) bool {
	i := 0
	for i < len(c.b) && c.b[i] >= '0' && c.b[i] <= '9' {
		i++
	}
	if i == 0 || i > 1 && c.b[0] == '0' {
		return false
	}
	v, err := strconv.ParseUint(string(c.b[:i]), 10, 64)
	if err != nil {
		return false
	}
	*n, c.b = v, c.b[i:]
	return true
}
