package bus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sora3web/telemetry/bus/wal"
)

// LogReader reads the local log as a consumer group of one would read a
// single-partition topic (a Source): messages carry Topic (the log's
// identity), Partition 0 and Offset (the record's sequence number), so
// consumers keep the same batching, commit-after-insert and dedup
// semantics as on Kafka.
type LogReader struct {
	log    *wal.Log
	cursor string
	topic  string
	buf    []wal.Record
}

// NewLogReader reads l through the named cursor (registered if new). topic
// names the log in consumer bookkeeping; see LogTopic.
func NewLogReader(l *wal.Log, cursor, topic string) (*LogReader, error) {
	if err := l.Cursor(cursor); err != nil {
		return nil, fmt.Errorf("registering cursor %s: %w", cursor, err)
	}
	return &LogReader{log: l, cursor: cursor, topic: topic}, nil
}

// Fetch returns the next record, blocking until one is appended or ctx
// ends. A record that is not an encoded Message comes back with its raw
// bytes as the value, so the consumer dead-letters it.
func (r *LogReader) Fetch(ctx context.Context) (Message, error) {
	if err := r.fill(ctx); err != nil {
		return Message{}, err
	}
	return r.next(), nil
}

// FetchBatch is Fetch for up to max records: those read ahead, or the
// next read's (see BatchSource).
func (r *LogReader) FetchBatch(ctx context.Context, buf []Message, max int) ([]Message, error) {
	if err := r.fill(ctx); err != nil {
		return buf, err
	}
	for n := 0; n < max && len(r.buf) > 0; n++ {
		buf = append(buf, r.next())
	}
	return buf, nil
}

// fill reads ahead when nothing read is left, blocking until a record is
// appended or ctx ends.
func (r *LogReader) fill(ctx context.Context) error {
	if len(r.buf) > 0 {
		return nil
	}
	recs, err := r.log.Read(ctx, r.cursor, 1000, 4<<20)
	if err != nil {
		return err
	}
	r.buf = recs
	return nil
}

// next decodes the next record read ahead.
func (r *LogReader) next() Message {
	rec := r.buf[0]
	r.buf = r.buf[1:]
	m, err := DecodeMessage(rec.Payload)
	if err != nil {
		m = Message{Value: rec.Payload}
	}
	// One reader holds its cursor from NewLogReader to Close: one epoch.
	m.Topic, m.Partition, m.Offset, m.Epoch = r.topic, 0, int64(rec.Seq), 1
	return m
}

// Commit durably records delivery up to the highest offset given.
func (r *LogReader) Commit(_ context.Context, msgs ...Message) error {
	var last int64 = -1
	for _, m := range msgs {
		last = max(last, m.Offset)
	}
	if last < 0 {
		return nil
	}
	return r.log.Commit(r.cursor, uint64(last))
}

// Close forgets read-ahead; the log itself is closed by its owner.
func (r *LogReader) Close() error {
	r.buf = nil
	return r.log.Rewind(r.cursor)
}

// LogWriter appends messages to a local log: the dead-letter "topic" of
// all-in-one mode.
type LogWriter struct {
	log *wal.Log
}

// NewLogWriter writes into l.
func NewLogWriter(l *wal.Log) *LogWriter { return &LogWriter{log: l} }

// WriteMessages appends msgs durably.
func (w *LogWriter) WriteMessages(ctx context.Context, msgs ...Message) error {
	out := make([]Message, len(msgs))
	for i, m := range msgs {
		out[i] = Message{Key: m.Key, Value: m.Value, Headers: m.Headers}
	}
	_, _, err := w.log.Append(ctx, encodeAll(out))
	return err
}

// Close does nothing; the log is closed by its owner.
func (w *LogWriter) Close() error { return nil }

// LogTopic is the name under which consumers record the records of the
// local log l (rows' kafka_topic): "local-" and the log's identity, which
// lives and dies with the log's directory. A wiped log, whose sequence
// numbers start again at 1, gets a new name, so its records are never
// taken for ones already stored; two logs writing to one table never
// share one.
func LogTopic(l *wal.Log) string { return "local-" + l.ID() }

// legacyIDFile is where versions before wal identities kept the local
// log's identity: in the data directory, beside (not inside) the log.
const legacyIDFile = "BUS_ID"

// AdoptLegacyLogID moves the identity that older versions kept in
// dataDir/BUS_ID into the log directory walDir (wal's ID file), before the
// log is opened, so an upgraded log keeps the name its stored rows carry.
// It does so only when walDir still holds that log (segments or cursors)
// and no identity of its own; a wiped or new log gets a new identity from
// wal.Open instead, which is the point of moving it.
func AdoptLegacyLogID(dataDir, walDir string) error {
	legacy := filepath.Join(dataDir, legacyIDFile)
	b, err := os.ReadFile(legacy)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("reading %s: %w", legacy, err)
	}
	if _, err := wal.AdoptID(walDir, string(b)); err != nil {
		return fmt.Errorf("moving %s into %s: %w", legacy, walDir, err)
	}
	return os.Remove(legacy)
}

// LogPublisher makes messages durable in the local log: the embedded bus
// of all-in-one mode, where the log stands in for Kafka.
type LogPublisher struct {
	log *wal.Log
}

var _ TailPublisher = (*LogPublisher)(nil)

// NewLogPublisher publishes into l.
func NewLogPublisher(l *wal.Log) *LogPublisher { return &LogPublisher{log: l} }

// Publish appends msgs and returns once they are durable under the log's
// fsync policy.
func (p *LogPublisher) Publish(ctx context.Context, msgs []Message) error {
	if _, _, err := p.log.Append(ctx, encodeAll(msgs)); err != nil {
		return fmt.Errorf("appending %d messages to the local log: %w", len(msgs), err)
	}
	return nil
}

// PublishTails publishes msgs followed by their tail (tail may be nil) in
// one append: the log stores an append's records in order and keeps a
// prefix of them after a crash, so a tail stored means every message
// before it is. The log is one partition: the tail is called once, for all
// of msgs, with spooled false (the log is the bus).
func (p *LogPublisher) PublishTails(ctx context.Context, msgs []Message, tail Tail) error {
	return p.Publish(ctx, withTail(msgs, tail, false))
}

// Ready is nil while the log accepts appends.
func (p *LogPublisher) Ready() error { return p.log.Healthy() }
