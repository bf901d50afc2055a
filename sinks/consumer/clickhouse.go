package consumer

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
)

// ClickHouseSink writes batches into the events table with clickhouse-go
// (columnar appends, one INSERT per batch) and reads back the offsets and
// event ids already stored. It is the production path: clickhouse-go's
// native protocol to a ClickHouse server (or its HTTP interface).
type ClickHouseSink struct {
	conn  driver.Conn
	table string
}

// NewClickHouseSink writes to database.events over conn (the Distributed
// events table on a cluster).
func NewClickHouseSink(conn driver.Conn, database string) *ClickHouseSink {
	return &ClickHouseSink{conn: conn, table: database + ".events"}
}

// WriteBatch inserts b with its deduplication token and returns once the
// server acknowledged it.
func (s *ClickHouseSink) WriteBatch(ctx context.Context, b *Batch) error {
	settings := clickhouse.Settings{}
	for _, kv := range insertSettings(b.Token) {
		settings[kv[0]] = kv[1]
	}
	ins, err := s.conn.PrepareBatch(clickhouse.Context(ctx, clickhouse.WithSettings(settings)), insertStatement(s.table))
	if err != nil {
		return fmt.Errorf("preparing insert into %s: %w", s.table, err)
	}
	defer ins.Abort()
	for i, name := range b.Columns() {
		if err := ins.Column(i).Append(b.Values(i)); err != nil {
			return fmt.Errorf("appending column %s: %w", name, err)
		}
	}
	if err := b.waitReady(); err != nil {
		return err
	}
	if err := ins.Send(); err != nil {
		return fmt.Errorf("inserting %d rows into %s: %w", b.Rows(), s.table, err)
	}
	return nil
}

// HighWater returns, per partition of topic among partitions, the largest
// offset stored in the events table (answered by its offsets projection).
// Partitions with no row are absent.
func (s *ClickHouseSink) HighWater(ctx context.Context, topic string, partitions []int) (map[int]int64, error) {
	rows, err := s.conn.Query(withParams(ctx, highWaterParams(topic, partitions)), highWaterSQL(s.table))
	if err != nil {
		return nil, fmt.Errorf("reading stored offsets of %s: %w", topic, err)
	}
	defer rows.Close()
	out := make(map[int]int64, len(partitions))
	for rows.Next() {
		var p int32
		var off int64
		if err := rows.Scan(&p, &off); err != nil {
			return nil, fmt.Errorf("reading stored offsets of %s: %w", topic, err)
		}
		out[int(p)] = off
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading stored offsets of %s: %w", topic, err)
	}
	return out, nil
}

// StoredIDs calls fn with the event_id and received_at of every row of
// (topic, partition) stored after offset after and received since since.
func (s *ClickHouseSink) StoredIDs(ctx context.Context, topic string, partition int, after int64, since time.Time, fn func(uuid.UUID, time.Time)) error {
	rows, err := s.conn.Query(withParams(ctx, storedIDsParams(topic, partition, after, since)), storedIDsSQL(s.table))
	if err != nil {
		return fmt.Errorf("reading stored event ids of %s/%d: %w", topic, partition, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id uuid.UUID
		var ms int64
		if err := rows.Scan(&id, &ms); err != nil {
			return fmt.Errorf("reading stored event ids of %s/%d: %w", topic, partition, err)
		}
		fn(id, time.UnixMilli(ms))
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading stored event ids of %s/%d: %w", topic, partition, err)
	}
	return nil
}

// withParams binds {name:Type} placeholders server-side. The consumer's
// reads must finish, so they set max_execution_time 0 (unbounded):
// the embedded engine's server bounds reads that set none
// (embedded.max_query_time, meant for analysts).
func withParams(ctx context.Context, params map[string]string) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters(params)),
		clickhouse.WithSettings(clickhouse.Settings{"max_execution_time": 0}))
}
