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
	"errors"
	"fmt"
	"time"

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
	var r Record
	if err := json.Unmarshal(m.Value, &r); err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrBadRecord, err)
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
