package consumer

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ClickHouseSink writes batches into the events table with clickhouse-go
// (columnar appends, one INSERT per batch) and reads back the offsets
// already stored.
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
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_deduplication_token": b.Token}))
	ins, err := s.conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s (%s)", s.table, strings.Join(b.Columns(), ", ")))
	if err != nil {
		return fmt.Errorf("preparing insert into %s: %w", s.table, err)
	}
	defer ins.Abort()
	for i, name := range b.Columns() {
		if err := ins.Column(i).Append(b.Values(i)); err != nil {
			return fmt.Errorf("appending column %s: %w", name, err)
		}
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
	parts := make([]int32, len(partitions))
	for i, p := range partitions {
		parts[i] = int32(p)
	}
	var rows []struct {
		Partition int32 `ch:"kafka_partition"`
		Offset    int64 `ch:"max_offset"`
	}
	q := fmt.Sprintf("SELECT kafka_partition, max(kafka_offset) AS max_offset FROM %s WHERE kafka_topic = ? AND kafka_partition IN ? GROUP BY kafka_topic, kafka_partition", s.table)
	if err := s.conn.Select(ctx, &rows, q, topic, parts); err != nil {
		return nil, fmt.Errorf("reading stored offsets of %s: %w", topic, err)
	}
	out := make(map[int]int64, len(rows))
	for _, r := range rows {
		out[int(r.Partition)] = r.Offset
	}
	return out, nil
}
