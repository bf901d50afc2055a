package collector

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sora3web/telemetry/collector/wal"
)

// LogReader reads the local log as a consumer group of one would read a
// single-partition topic: messages carry Topic (the log's identity),
// Partition 0 and Offset (the record's sequence number), so consumers keep
// the same batching, commit-after-insert and dedup semantics as on Kafka.
type LogReader struct {
	log    *wal.Log
	cursor string
	topic  string
	buf    []wal.Record
}

// NewLogReader reads l through the named cursor (registered if new). topic
// names the log in consumer bookkeeping; see BusTopic.
func NewLogReader(l *wal.Log, cursor, topic string) (*LogReader, error) {
	if err := l.Cursor(cursor); err != nil {
		return nil, fmt.Errorf("registering cursor %s: %w", cursor, err)
	}
	return &LogReader{log: l, cursor: cursor, topic: topic}, nil
}

// FetchMessage returns the next record, blocking until one is appended or
// ctx ends. A record that is not an encoded Message comes back with its raw
// bytes as the value, so the consumer dead-letters it.
func (r *LogReader) FetchMessage(ctx context.Context) (kafka.Message, error) {
	if len(r.buf) == 0 {
		recs, err := r.log.Read(ctx, r.cursor, 1000, 4<<20)
		if err != nil {
			return kafka.Message{}, err
		}
		r.buf = recs
	}
	rec := r.buf[0]
	r.buf = r.buf[1:]
	m, err := DecodeMessage(rec.Payload)
	if err != nil {
		m = Message{Value: rec.Payload}
	}
	return kafka.Message{Topic: r.topic, Partition: 0, Offset: int64(rec.Seq), Key: m.Key, Value: m.Value, Headers: m.Headers, Time: time.Now()}, nil
}

// CommitMessages durably records delivery up to the highest offset given.
func (r *LogReader) CommitMessages(_ context.Context, msgs ...kafka.Message) error {
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
func (w *LogWriter) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	out := make([]Message, len(msgs))
	for i, m := range msgs {
		out[i] = Message{Key: m.Key, Value: m.Value, Headers: m.Headers}
	}
	_, _, err := w.log.Append(ctx, encodeAll(out))
	return err
}

// Close does nothing; the log is closed by its owner.
func (w *LogWriter) Close() error { return nil }

// BusTopic returns a stable name for the local log in dir, made once and
// kept in dir/BUS_ID. Consumers record it with each row, so a log that is
// wiped and restarted (its sequence numbers starting over) is never
// mistaken for the old one.
func BusTopic(dir string) (string, error) {
	path := filepath.Join(dir, "BUS_ID")
	if b, err := os.ReadFile(path); err == nil {
		return "local-" + strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	s := hex.EncodeToString(id[:])
	if err := os.WriteFile(path, []byte(s+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return "local-" + s, nil
}
