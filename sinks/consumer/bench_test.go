package consumer

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sora3web/telemetry/bus"
)

// BenchmarkConsume measures, in the same run, the consumer draining a
// pre-filled topic into the engine and a direct clickhouse-go batch insert
// of the same rows, and reports both rates and their ratio.
// Run: go test ./sinks/consumer -run '^$' -bench Consume -benchtime 1x
// (BENCH_ROWS sets the row count, default 20000).
func BenchmarkConsume(b *testing.B) {
	n := 20_000
	if v, err := strconv.Atoi(os.Getenv("BENCH_ROWS")); err == nil && v > 0 {
		n = v
	}
	e := newEnv(b)
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = marshal(b, event(i))
	}
	e.produce(b, msgs...)
	warmGroupCoordinator(b, e)
	b.ResetTimer()
	var consumeRate, directRate float64
	for range b.N {
		start := time.Now()
		c := e.start(b, e.conn, nil)
		e.waitCount(b, "SELECT count() FROM {t}", uint64(n), 3*time.Minute)
		consumeRate = float64(n) / time.Since(start).Seconds()
		if err := shutdown(c); err != nil {
			b.Fatal(err)
		}

		// The same rows, decoded and inserted directly in one batch.
		direct := newEnv(b)
		batch := &Batch{cols: newColumns(), Token: "direct"}
		start = time.Now()
		for _, m := range msgs {
			r, err := decode(bus.Message{Key: m.Key, Value: m.Value, Topic: direct.bc.EventsTopic, Offset: m.Offset})
			if err != nil {
				b.Fatal(err)
			}
			for _, col := range batch.cols {
				col.add(&r)
			}
		}
		if err := NewClickHouseSink(direct.conn, direct.db).WriteBatch(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
		directRate = float64(n) / time.Since(start).Seconds()
		e.cfg.GroupID += "-again"
		if err := e.conn.Exec(context.Background(), "TRUNCATE TABLE "+e.db+".events"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(consumeRate, "consume_rows/s")
	b.ReportMetric(directRate, "direct_rows/s")
	b.ReportMetric(consumeRate/directRate, "ratio")
	b.Logf("consumer %.0f rows/s, direct batch insert %.0f rows/s, ratio %.2f", consumeRate, directRate, consumeRate/directRate)
}

// warmGroupCoordinator joins a throwaway consumer group on e's topic and
// reads one message. A fresh broker creates its offsets topic at the first
// group join, which took 7 s of a 15 s measurement on a wiped broker; the
// measured run must not pay for that.
func warmGroupCoordinator(b *testing.B, e *env) {
	b.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: e.bc.Brokers, Topic: e.bc.EventsTopic, GroupID: e.cfg.GroupID + "-warmup", MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := r.FetchMessage(ctx); err != nil {
		b.Fatalf("warming the group coordinator: %v", err)
	}
}
