package consumer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sora3web/telemetry/bus"
	"github.com/sora3web/telemetry/internal/audit"
	"github.com/sora3web/telemetry/internal/testenv"
)

// discardSink stores nothing, doing the Go side of EngineSink's work: each
// batch's block encoded (to io.Discard), the audit rows kept one per key
// and encoded as their insert's block every audit.flush_interval.
type discardSink struct {
	rows atomic.Int64
	mu   sync.Mutex
	kept keyedRows
	at   time.Time
	buf  []byte
}

func (s *discardSink) WriteBatch(_ context.Context, b *Batch) error {
	if err := b.WriteNative(io.Discard); err != nil {
		return err
	}
	s.rows.Add(int64(b.Rows()))
	return nil
}

func (s *discardSink) WriteAudit(_ context.Context, rows []audit.Row) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kept.add(rows)
	if s.at.IsZero() {
		s.at = time.Now()
	}
	if time.Since(s.at) >= audit.DefaultConfig().FlushInterval || len(s.kept.rows) >= auditFlushRows {
		s.buf = auditNative(s.kept.rows)
		s.kept, s.at = newKeyedRows(len(s.kept.rows)), time.Time{}
	}
	return nil
}

func (s *discardSink) HighWater(context.Context, string, []int) (map[int]int64, error) {
	return map[int]int64{}, nil
}

func (s *discardSink) StoredIDs(context.Context, string, int, int64, time.Time, func(uuid.UUID, time.Time)) error {
	return nil
}

// BenchmarkAuditGoSide measures the audit's cost in the consumer's own Go
// code, without the engine (discardSink): the same logs as
// BenchmarkAuditCost (with and without ingest's records), drained in turn
// with the audit off and on, BENCH_AUDIT_ROUNDS times (default 5), the
// process's CPU per row of each. Run it on one CPU (taskset -c 0) to see
// the cost as the side-by-side processes do. BENCH_CPUPROFILE writes a
// profile per way and round.
//
// On 2026-12-04, 26 rounds on one CPU of this machine: one round's cost
// ran from -5% to +11% (a pure Go drain of a few seconds is that noisy
// here), the medians of two runs +4.4% (16 rounds) and +1.2% (10); the
// CPU profiles of the 10 (go tool pprof -diff_base) differ by +1.7%,
// spread over the event path, no function's share above 0.3%. So most
// of the side-by-side cost (BenchmarkAuditCostSideBySide) is the Go
// side's, not storing the rows (BenchmarkAuditStore).
// Run: taskset -c 0 go test ./sinks/consumer -run '^$' -bench '^BenchmarkAuditGoSide$' -benchtime 1x
func BenchmarkAuditGoSide(b *testing.B) {
	n := testenv.EnvInt(b, "BENCH_ROWS", 1_000_000)
	rounds := testenv.EnvInt(b, "BENCH_AUDIT_ROUNDS", 5)
	logs := auditLogs(b, n)
	var costs []float64
	cpu := map[bool][]float64{}
	for round := range rounds {
		var perRow [2]float64
		for k := range 2 {
			w := (k + round) % 2 // 0 off, 1 on: each round starts with the other
			on := w == 1
			l := logs[w]
			group := fmt.Sprintf("goside-%d-%v", round, on)
			src, err := bus.NewLogReader(l, group, bus.LogTopic(l))
			if err != nil {
				b.Fatal(err)
			}
			sink := &discardSink{}
			cfg := DefaultConfig()
			cfg.GroupID = group
			c, err := New(cfg, src, nopDLQ{}, sink, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				b.Fatal(err)
			}
			if err := c.SetAudit(auditConfig(on)); err != nil {
				b.Fatal(err)
			}
			stop := profile(b, "goside-"+strconv.FormatBool(on)+"-"+strconv.Itoa(round))
			t0 := cpuTime(b)
			if err := c.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			for sink.rows.Load() < int64(n) {
				time.Sleep(5 * time.Millisecond)
			}
			used := cpuTime(b) - t0
			stop()
			if err := c.Shutdown(context.Background()); err != nil {
				b.Fatal(err)
			}
			perRow[w] = float64(used.Microseconds()) / float64(n)
			cpu[on] = append(cpu[on], perRow[w])
		}
		costs = append(costs, 100*(perRow[1]/perRow[0]-1))
		fmt.Fprintf(os.Stderr, "BenchmarkAuditGoSide round %d: off %.3f, on %.3f CPU µs/row: %+.1f%%\n", round+1, perRow[0], perRow[1], costs[len(costs)-1])
	}
	b.ReportMetric(median(costs), "audit_cost_%")
	b.ReportMetric(median(cpu[false]), "audit_off_cpu_us/row")
	b.ReportMetric(median(cpu[true]), "audit_on_cpu_us/row")
}

// BenchmarkAuditStore measures what storing the audit rows costs the
// process, the engine's threads included (its CPU time, getrusage): the
// engine sink's WriteAudit of one batch's rows (auditRowsFor: a batch of
// 50,000 events, some 1,000 rows), and the insert of the rows kept from
// 1, 5 and 20 such batches (FlushAudit), each BENCH_AUDIT_ROUNDS times
// (default 10), every time with new record ids. Merges of pipeline_audit
// run as they come, and are counted when they run during a measurement.
// Run it on one CPU (taskset -c 0), as the side-by-side processes run.
//
// On 2026-12-04: WriteAudit 0.55-0.8 ms a batch; the flush of 1,002 rows
// 6.3 ms, of 5,010 13.3 ms, of 20,040 22 ms (1.1 µs a row). A consumer
// storing 130,000 events a second keeps some 13,000 rows in 5 s: with a
// batch's writes about 1.8 ms of CPU per 50,000 events, some 0.5% of its
// ~7 µs a row.
// Run: go test ./sinks/consumer -run '^$' -bench '^BenchmarkAuditStore$' -benchtime 1x
func BenchmarkAuditStore(b *testing.B) {
	e := newEnv(b)
	s := engineSink(b, e.db)
	reps := testenv.EnvInt(b, "BENCH_AUDIT_ROUNDS", 10)
	at := time.Now()
	next := 0
	batch := func() []audit.Row {
		next++
		return auditRowsFor(next, 50_000, at)
	}
	for range b.N {
		for _, per := range []int{1, 5, 20} {
			var write, flush time.Duration
			rows := 0
			for range reps {
				batches := make([][]audit.Row, per)
				for i := range batches {
					batches[i] = batch()
					rows += len(batches[i])
				}
				c0 := cpuTime(b)
				for _, r := range batches {
					if err := s.WriteAudit(context.Background(), r); err != nil {
						b.Fatal(err)
					}
				}
				c1 := cpuTime(b)
				if err := s.FlushAudit(context.Background(), 0); err != nil {
					b.Fatal(err)
				}
				write, flush = write+c1-c0, flush+cpuTime(b)-c1
			}
			name := strconv.Itoa(per) + "_batches"
			b.ReportMetric(float64(write.Microseconds())/float64(reps*per), name+"_write_us/batch")
			b.ReportMetric(float64(flush.Microseconds())/float64(reps), name+"_flush_us")
			b.ReportMetric(float64(flush.Nanoseconds())/1e3/float64(rows), name+"_flush_us/row")
			fmt.Fprintf(os.Stderr, "BenchmarkAuditStore: %2d batches a flush (%d rows): WriteAudit %.2f ms a batch, the flush %.1f ms (%.2f µs a row)\n",
				per, rows/reps, float64(write.Microseconds())/1e3/float64(reps*per), float64(flush.Microseconds())/1e3/float64(reps), float64(flush.Nanoseconds())/1e3/float64(rows))
		}
	}
}
