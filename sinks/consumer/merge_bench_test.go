package consumer

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sora3web/telemetry/internal/audit"
	"github.com/sora3web/telemetry/internal/gen"
	"github.com/sora3web/telemetry/internal/testenv"
)

// mergeVariants are the table settings BenchmarkInsertAndMerge compares:
// statements run on a freshly migrated database ({db}) before the inserts.
var mergeVariants = map[string][]string{
	"as_migrated": nil,
	// The default merge selector (before migration 0012).
	"base5":  {"ALTER TABLE {db}.events MODIFY SETTING merge_selector_base = 5"},
	"base10": {"ALTER TABLE {db}.events MODIFY SETTING merge_selector_base = 10"},
	// No column statistics (the engine's default auto_statistics_types
	// computes minmax and uniq of every column at each merge).
	"no_stats": {"ALTER TABLE {db}.events MODIFY SETTING auto_statistics_types = '', materialize_statistics_on_merge = 0"},
	// Faster compression of the long text columns (textColumns, ZSTD(3)
	// as migrated). On 2026-12-02, 3,000,000 rows, two runs of each in
	// turn: as migrated 6.91 and 6.49 CPU µs/row, ZSTD(1) 6.77 and 6.89,
	// LZ4 6.92 and 6.35; the codec is not where the engine's CPU goes.
	// Sizes (300,000 rows): 80.4, 80.9 and 85.3 compressed bytes/row.
	"zstd1": {textCodec("ZSTD(1)")},
	"lz4":   {textCodec("LZ4")},
	// With the audit's view of inserted rows that migration 0008 made
	// and 0014 dropped (the consumer counts them now): its share of the
	// events insert and of pipeline_audit's merges. On 2026-12-04, 2M
	// rows back to back, three runs each: 6.13, 6.47 and 6.86 CPU µs/row
	// with it, 6.17, 5.90 and 6.76 without.
	"audit_view": {auditViewSQL},
	// As migrated, and before each batch the consumer's audit rows,
	// through the engine sink's WriteAudit (auditVariants): kept, and
	// inserted several batches at a time (keptAudit).
	"audit_rows": nil,
}

// auditViewSQL is migration 0008's view of inserted rows.
const auditViewSQL = `CREATE MATERIALIZED VIEW {db}.pipeline_audit_inserted_mv TO {db}.pipeline_audit AS
SELECT toStartOfMinute(received_at) AS window_start, source, 'inserted' AS stage, '' AS reason,
    concat('inserted/', kafka_topic, '/', toString(kafka_partition), '/', toString(min(kafka_offset))) AS record_id,
    count() AS n
FROM {db}.events GROUP BY window_start, source, kafka_topic, kafka_partition`

// auditVariants are the variants that also insert, before each batch, the
// audit rows a consumer with the audit on writes for it: ingest's records
// of its requests of 50 events (accepted, by way of publish: one row each)
// and the consumer's counts (consumed and inserted).
var auditVariants = map[string]bool{"audit_rows": true}

// auditRowsFor returns the audit rows of batch i of n rows received at at.
func auditRowsFor(i, n int, at time.Time) []audit.Row {
	var rows []audit.Row
	window := audit.MinuteOf(at)
	for r := range n / 50 {
		id := "bench-" + strconv.Itoa(i) + "-" + strconv.Itoa(r)
		rows = append(rows, audit.Row{Window: window, Source: "web", Stage: audit.Accepted, Reason: audit.Published,
			RecordID: id + "/" + audit.Accepted + "/" + audit.Published, N: 50})
	}
	for _, stage := range []string{audit.Consumed, audit.Inserted} {
		rows = append(rows, audit.Row{Window: window, Source: "web", Stage: stage,
			RecordID: stage + "/merge/0/" + strconv.Itoa(i*n), N: uint64(n)})
	}
	return rows
}

// textColumns are the events table's long text columns, which carry an
// explicit codec (migration 0001; textCodec's variants change it).
var textColumns = []string{"context_page_url", "context_referrer", "context_user_agent", "prompt", "error_message", "error_stack"}

// textCodec is the ALTER that gives textColumns codec.
func textCodec(codec string) string {
	q := "ALTER TABLE {db}.events"
	for i, c := range textColumns {
		if i > 0 {
			q += ","
		}
		q += " MODIFY COLUMN " + c + " String CODEC(" + codec + ")"
	}
	return q
}

// BenchmarkInsertAndMerge measures what the engine spends per row on an
// endless stream of consumer inserts: its merges included, which
// BenchmarkSink's limit leaves mostly out (it stops at the last insert).
// For each variant of the events table's settings (mergeVariants) it
// migrates a fresh database, inserts BENCH_ROWS (default 4,000,000)
// generated events (internal/gen, as ingest publishes them) in Native
// batches of BENCH_BATCH_ROWS (default 50,000: a second of `telemetry
// serve` at 50,000 events/s), one every BENCH_PACE_MS (default 1000; 1 is
// about back to back), and waits until no merge has run for 3 s. It
// reports, per variant, the process's CPU µs per row over inserts and
// merges, the merges and rows merged, and the active parts of events
// left. BENCH_VARIANTS is a comma-separated list of variants, run in that
// order (default base5,as_migrated,base5,as_migrated: alternating, as the
// machine's speed drifts).
// Run: go test ./sinks/consumer -run '^$' -bench '^BenchmarkInsertAndMerge$' -benchtime 1x
func BenchmarkInsertAndMerge(b *testing.B) {
	n := testenv.EnvInt(b, "BENCH_ROWS", 4_000_000)
	batchRows := testenv.EnvInt(b, "BENCH_BATCH_ROWS", 50_000)
	pace := time.Duration(testenv.EnvInt(b, "BENCH_PACE_MS", 1000)) * time.Millisecond
	names := []string{"base5", "as_migrated", "base5", "as_migrated"}
	if v := os.Getenv("BENCH_VARIANTS"); v != "" {
		names = strings.Split(v, ",")
	}
	for _, name := range names {
		if _, ok := mergeVariants[name]; !ok {
			b.Fatalf("BENCH_VARIANTS: no variant %q", name)
		}
	}
	e := newEnv(b)
	g := gen.New(1, 10000)
	values := make([][]byte, n)
	for i := range values {
		values[i] = marshal(b, g.Enriched(time.Now().UTC())).Value
	}
	b.ResetTimer()
	for range b.N {
		for _, name := range names {
			insertAndMerge(b, e, name, values, batchRows, pace)
		}
	}
}

// insertAndMerge is one variant's run of BenchmarkInsertAndMerge.
func insertAndMerge(b *testing.B, e *env, name string, values [][]byte, batchRows int, pace time.Duration) {
	b.Helper()
	fresh := freshEnv(b, e, name+"_"+strconv.Itoa(int(time.Now().UnixNano()%1e6)))
	for _, q := range mergeVariants[name] {
		if err := e.conn.Exec(context.Background(), strings.ReplaceAll(q, "{db}", fresh.db)); err != nil {
			b.Fatal(err)
		}
	}
	sink := engineSink(b, fresh.db)
	tokens, paths := nativeBlocks(b, sink, "merge", values, batchRows)
	defer removeAll(paths)
	before := engineCounters(b, e, false)
	var auditRows [][]audit.Row
	if auditVariants[name] {
		for i := range paths {
			auditRows = append(auditRows, auditRowsFor(i, batchRows, time.Now()))
		}
	}
	c0, t0 := cpuTime(b), time.Now()
	for i := range paths {
		time.Sleep(time.Until(t0.Add(time.Duration(i) * pace)))
		if auditRows != nil {
			if err := sink.WriteAudit(context.Background(), auditRows[i]); err != nil {
				b.Fatal(err)
			}
		}
		if err := sink.insert(context.Background(), tokens[i], paths[i]); err != nil {
			b.Fatal(err)
		}
	}
	if auditRows != nil { // the last kept rows, as the consumer's stop inserts them
		if err := sink.FlushAudit(context.Background(), 0); err != nil {
			b.Fatal(err)
		}
	}
	inserted := time.Since(t0)
	var quiet time.Time // since when no merge has run
	for quiet.IsZero() || time.Since(quiet) < 3*time.Second {
		switch running := e.count(b, "SELECT count() FROM system.merges WHERE database = '"+fresh.db+"'"); {
		case running > 0:
			quiet = time.Time{}
		case quiet.IsZero():
			quiet = time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
	cpu := cpuTime(b) - c0
	after := engineCounters(b, e, false)
	parts := e.count(b, "SELECT count() FROM system.parts WHERE active AND database = '"+fresh.db+"' AND table = 'events'")
	// Compact parts keep every column in one file: only the part's size
	// is known, not a column's.
	size := e.count(b, "SELECT sum(data_compressed_bytes) FROM system.parts WHERE active AND database = '"+fresh.db+"' AND table = 'events'")
	n := len(values)
	b.ReportMetric(float64(cpu.Microseconds())/float64(n), name+"_cpu_us/row")
	b.ReportMetric(float64(size)/float64(n), name+"_bytes/row")
	// On stderr: b.Log keeps only a benchmark's first lines.
	fmt.Fprintf(os.Stderr, "BenchmarkInsertAndMerge %-12s %7.0f rows/s inserted; %5.2f CPU µs/row with the merges; %d merges of %d rows; %d active parts of events left; %.1f compressed bytes/row of events\n",
		name, float64(n)/inserted.Seconds(), float64(cpu.Microseconds())/float64(n),
		after["Merge"]-before["Merge"], after["MergedRows"]-before["MergedRows"], parts, float64(size)/float64(n))
	dropDatabase(b, fresh)
}
