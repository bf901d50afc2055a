package consumer

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/google/uuid"

	"github.com/sora3web/telemetry/bus"
	"github.com/sora3web/telemetry/schema"
)

// Errors of mapping a message to a row; the dead-letter header names them.
var (
	// ErrDecode means the message is not a JSON schema.Enriched.
	ErrDecode = errors.New("decoding event")
	// ErrMap means a field cannot be stored in its column.
	ErrMap = errors.New("mapping event")
)

// record is one decoded message: the event and where it came from.
type record struct {
	e         schema.Enriched
	id        uuid.UUID
	topic     string
	partition int
	offset    int64
	epoch     int64 // bus.Message.Epoch
	// group is the record's consumed count in its batch's audit (its
	// window, source and position: batchAudit.consumed), with the audit on.
	group int32
}

// minTime and maxTime bound DateTime64(3).
var (
	minTime = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(2299, 12, 31, 23, 59, 59, 0, time.UTC)
)

// decode maps a message to the record r, setting every field, or says
// why it cannot be stored (r then holds what was read). The event's
// strings alias the message's bytes (schema.ParseEnriched), which the
// source hands over for good (kafka-go and the local log allocate each
// message anew), instead of a copy per field.
func decode(m bus.Message, r *record) error {
	r.topic, r.partition, r.offset, r.epoch, r.id = m.Topic, m.Partition, m.Offset, m.Epoch, uuid.UUID{}
	if err := schema.ParseEnriched(m.Value, &r.e); err != nil {
		return fmt.Errorf("%w: %w", ErrDecode, err)
	}
	var err error
	if r.id, err = uuid.Parse(r.e.EventID); err != nil {
		return fmt.Errorf("%w: event_id %q: not a UUID", ErrMap, r.e.EventID)
	}
	if r.e.Type == "" {
		return fmt.Errorf("%w: type: required", ErrMap)
	}
	for _, f := range []struct {
		name string
		t    time.Time
	}{{"timestamp", r.e.Timestamp}, {"occurred_at", r.e.OccurredAt}, {"sent_at", r.e.SentAt}, {"received_at", r.e.ReceivedAt}} {
		if f.t.Before(minTime) || f.t.After(maxTime) {
			return fmt.Errorf("%w: %s %s: outside DateTime64 range", ErrMap, f.name, f.t.Format(time.RFC3339))
		}
	}
	for _, f := range []struct {
		name  string
		v     int64
		limit int64
	}{
		{"schema_version", int64(r.e.SchemaVersion), math.MaxUint8},
		{"context.screen.width", int64(r.e.Context.Screen.Width), math.MaxUint16},
		{"context.screen.height", int64(r.e.Context.Screen.Height), math.MaxUint16},
		{"properties.width", int64(r.e.Properties.Width), math.MaxUint16},
		{"properties.height", int64(r.e.Properties.Height), math.MaxUint16},
		{"properties.latency_ms", r.e.Properties.LatencyMS, math.MaxUint32},
		{"seq", int64(r.e.Seq), math.MaxUint32},
		{"context.unload_seq", int64(r.e.Context.UnloadSeq), math.MaxUint32},
	} {
		if f.v < 0 || f.v > f.limit {
			return fmt.Errorf("%w: %s %d: outside 0..%d", ErrMap, f.name, f.v, f.limit)
		}
	}
	if d := r.e.Properties.DurationS; math.IsNaN(d) || math.IsInf(d, 0) || math.Abs(d) > math.MaxFloat32 {
		return fmt.Errorf("%w: properties.duration_s: not a finite float32", ErrMap)
	}
	return nil
}

// column accumulates one column of a batch.
type column interface {
	name() string
	add(r *record)
	values() any
	len() int
	// reserve makes room for n more values.
	reserve(n int)
	// native appends the column in ClickHouse's Native format: its name,
	// the type its values are written as, the values.
	native(buf *proto.Buffer)
}

type col[T any] struct {
	n   string
	get func(r *record) T
	v   []T
}

func (c *col[T]) name() string  { return c.n }
func (c *col[T]) add(r *record) { c.v = append(c.v, c.get(r)) }
func (c *col[T]) values() any   { return c.v }
func (c *col[T]) len() int      { return len(c.v) }
func (c *col[T]) reserve(n int) { c.v = slices.Grow(c.v, n) }

// mk makes the column n of values get; strings make a strCol.
func mk[T any](n string, get func(r *record) T) column {
	if g, ok := any(get).(func(r *record) string); ok {
		return &strCol{col: col[string]{n: n, get: g}}
	}
	return &col[T]{n: n, get: get}
}

// strCol is a String column. When encoding, it also appends each value in
// Native's layout as it is added: newBatch adds a row's columns together,
// so the value is copied while its message is in the CPU's cache. Copied
// column by column at encoding instead, every value of every string
// column was a cache miss: a twelfth of the in-process path's CPU went to
// that copy.
// An encoding strCol holds only the encoded values (and their count), not
// the strings, which alias their messages.
type strCol struct {
	col[string]
	encoding bool
	enc      proto.Buffer
	rows     int
}

func (c *strCol) add(r *record) {
	if !c.encoding {
		c.col.add(r)
		return
	}
	c.enc.PutString(c.get(r))
	c.rows++
}

func (c *strCol) len() int {
	if c.encoding {
		return c.rows
	}
	return c.col.len()
}

func (c *strCol) values() any {
	if c.encoding {
		panic("consumer: column " + c.n + " holds its values encoded as Native")
	}
	return c.v
}

func (c *strCol) reserve(n int) {
	if !c.encoding {
		c.col.reserve(n)
	}
}

func (c *strCol) native(buf *proto.Buffer) {
	if !c.encoding {
		c.col.native(buf)
		return
	}
	buf.PutString(c.n)
	buf.PutString("String")
	buf.Buf = append(buf.Buf, c.enc.Buf...)
}

// native writes the values with ch-go's typed columns where the layout is
// a plain conversion. LowCardinality(String) columns are sent as String:
// the engine converts Native input to the table's types
// (input_format_native_allow_types_conversion), which builds the
// dictionary in C++ instead of hashing every value here.
func (c *col[T]) native(buf *proto.Buffer) {
	buf.PutString(c.n)
	switch v := any(c.v).(type) {
	case []string:
		buf.PutString("String")
		for _, s := range v {
			buf.PutString(s)
		}
	case []uuid.UUID:
		buf.PutString("UUID")
		proto.ColUUID(v).EncodeColumn(buf)
	case []time.Time:
		buf.PutString("DateTime64(3, 'UTC')")
		for _, t := range v {
			buf.PutInt64(t.UnixMilli())
		}
	case []bool:
		buf.PutString("Bool")
		proto.ColBool(v).EncodeColumn(buf)
	case []uint8:
		buf.PutString("UInt8")
		proto.ColUInt8(v).EncodeColumn(buf)
	case []uint16:
		buf.PutString("UInt16")
		proto.ColUInt16(v).EncodeColumn(buf)
	case []uint32:
		buf.PutString("UInt32")
		proto.ColUInt32(v).EncodeColumn(buf)
	case []int32:
		buf.PutString("Int32")
		proto.ColInt32(v).EncodeColumn(buf)
	case []int64:
		buf.PutString("Int64")
		proto.ColInt64(v).EncodeColumn(buf)
	case []float32:
		buf.PutString("Float32")
		proto.ColFloat32(v).EncodeColumn(buf)
	default:
		panic(fmt.Sprintf("consumer: column %s: no Native encoding for %T", c.n, c.v))
	}
}

// newColumns returns empty columns of the events table, in insert order;
// with encoding, its string columns encode as they are added (strCol),
// for a batch that is written as Native. It is the one place a
// schema.Enriched field meets its column.
func newColumns(encoding bool) []column {
	cols := columns()
	for _, c := range cols {
		if s, ok := c.(*strCol); ok {
			s.encoding = encoding
		}
	}
	return cols
}

func columns() []column {
	u16 := func(v int) uint16 { return uint16(v) }
	return []column{
		mk("event_id", func(r *record) uuid.UUID { return r.id }),
		mk("type", func(r *record) string { return r.e.Type }),
		mk("schema_version", func(r *record) uint8 { return uint8(r.e.SchemaVersion) }),
		mk("timestamp", func(r *record) time.Time { return r.e.Timestamp }),
		mk("occurred_at", func(r *record) time.Time { return r.e.OccurredAt }),
		mk("sent_at", func(r *record) time.Time { return r.e.SentAt }),
		mk("received_at", func(r *record) time.Time { return r.e.ReceivedAt }),
		mk("anonymous_id", func(r *record) string { return r.e.AnonymousID }),
		mk("user_id", func(r *record) string { return r.e.UserID }),
		mk("session_id", func(r *record) string { return r.e.SessionID }),
		mk("seq", func(r *record) uint32 { return uint32(r.e.Seq) }),
		mk("group_id", func(r *record) string { return r.e.GroupID }),
		mk("previous_id", func(r *record) string { return r.e.PreviousID }),
		mk("plan", func(r *record) string { return r.e.Plan }),
		mk("consent_analytics", func(r *record) bool { return r.e.Consent.Analytics != nil && *r.e.Consent.Analytics }),
		mk("opted_out", func(r *record) bool { return r.e.OptedOut }),
		mk("source", func(r *record) string { return r.e.Source }),
		mk("ip", func(r *record) string { return r.e.IP }),
		mk("context_page_url", func(r *record) string { return r.e.Context.PageURL }),
		mk("context_referrer", func(r *record) string { return r.e.Context.Referrer }),
		mk("context_locale", func(r *record) string { return r.e.Context.Locale }),
		mk("context_screen_width", func(r *record) uint16 { return u16(r.e.Context.Screen.Width) }),
		mk("context_screen_height", func(r *record) uint16 { return u16(r.e.Context.Screen.Height) }),
		mk("context_app_version", func(r *record) string { return r.e.Context.AppVersion }),
		mk("context_user_agent", func(r *record) string { return r.e.Context.UserAgent }),
		mk("context_unload_seq", func(r *record) uint32 { return uint32(r.e.Context.UnloadSeq) }),
		mk("device_class", func(r *record) string { return r.e.Device.Class }),
		mk("device_os", func(r *record) string { return r.e.Device.OS }),
		mk("device_os_version", func(r *record) string { return r.e.Device.OSVersion }),
		mk("device_browser", func(r *record) string { return r.e.Device.Browser }),
		mk("device_browser_version", func(r *record) string { return r.e.Device.BrowserVersion }),
		mk("device_is_bot", func(r *record) bool { return r.e.Device.IsBot }),
		mk("device_pending", func(r *record) bool { return r.e.Device.Pending }),
		mk("quality", func(r *record) string { return r.e.Properties.Quality }),
		mk("resolution", func(r *record) string { return r.e.Properties.Resolution }),
		mk("width", func(r *record) uint16 { return u16(r.e.Properties.Width) }),
		mk("height", func(r *record) uint16 { return u16(r.e.Properties.Height) }),
		mk("aspect_ratio", func(r *record) string { return r.e.Properties.AspectRatio }),
		mk("duration_s", func(r *record) float32 { return float32(r.e.Properties.DurationS) }),
		mk("prompt", func(r *record) string { return r.e.Properties.Prompt }),
		mk("model", func(r *record) string { return r.e.Properties.Model }),
		mk("generation_id", func(r *record) string { return r.e.Properties.GenerationID }),
		mk("latency_ms", func(r *record) uint32 { return uint32(r.e.Properties.LatencyMS) }),
		mk("format", func(r *record) string { return r.e.Properties.Format }),
		mk("error_code", func(r *record) string { return r.e.Properties.ErrorCode }),
		mk("error_message", func(r *record) string { return r.e.Properties.ErrorMessage }),
		mk("error_stack", func(r *record) string { return r.e.Properties.ErrorStack }),
		mk("setting", func(r *record) string { return r.e.Properties.Setting }),
		mk("value", func(r *record) string { return r.e.Properties.Value }),
		mk("kafka_topic", func(r *record) string { return r.topic }),
		mk("kafka_partition", func(r *record) int32 { return int32(r.partition) }),
		mk("kafka_offset", func(r *record) int64 { return r.offset }),
	}
}

// Batch is the rows of one insert, column by column, and its
// deduplication token.
type Batch struct {
	// Token is the insert_deduplication_token: a hash of the topic and the
	// offset range of every partition in the batch, so a retried insert of
	// the same batch is dropped by the server.
	Token string
	cols  []column
	// ranges is the offset range of each position the batch covers.
	ranges map[position][2]int64
	// skipped counts the records left out as already stored.
	skipped int
	// resent are the records left out as copies of events stored already.
	resent []*record
	// block is the file of the batch's Native block a preparingSink
	// encoded ahead of WriteBatch (EngineSink.Prepare), until it is kept.
	block string
	// ready, when set, must succeed before the batch's rows can become
	// durable: the sink calls it once the insert is prepared (the block
	// encoded, the columns appended) and before anything that stores the
	// rows (the insert, or a kept block that Recover would insert). An
	// error fails the write. The consumer waits there for the batch's
	// audit rows (startAudit), whose insert so overlaps the encoding.
	ready func() error
}

// waitReady calls b.ready, if set.
func (b *Batch) waitReady() error {
	if b.ready == nil {
		return nil
	}
	return b.ready()
}

// Rows is the number of rows.
func (b *Batch) Rows() int {
	if len(b.cols) == 0 {
		return 0
	}
	return b.cols[0].len()
}

// columnNames are the events table's columns the consumer writes, in
// insert order.
func columnNames() []string {
	return (&Batch{cols: newColumns(false)}).Columns()
}

// Columns returns the column names, in insert order.
func (b *Batch) Columns() []string {
	out := make([]string, len(b.cols))
	for i, c := range b.cols {
		out[i] = c.name()
	}
	return out
}

// Values returns column i's values as a typed slice ([]string, []uint16, ...).
func (b *Batch) Values(i int) any { return b.cols[i].values() }

// WriteNative writes the batch as one block in ClickHouse's Native format
// (the body of INSERT ... FORMAT Native), columns in insert order, one
// column at a time: the block is never whole in memory.
func (b *Batch) WriteNative(w io.Writer) error {
	var buf proto.Buffer
	buf.PutUVarInt(uint64(len(b.cols)))
	buf.PutUVarInt(uint64(b.Rows()))
	for _, c := range b.cols {
		c.native(&buf)
		if _, err := w.Write(buf.Buf); err != nil {
			return fmt.Errorf("writing column %s: %w", c.name(), err)
		}
		buf.Reset()
	}
	return nil
}
