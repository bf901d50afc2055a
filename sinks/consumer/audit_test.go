package consumer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/segmentio/kafka-go"

	"github.com/sora3web/telemetry/bus"
	"github.com/sora3web/telemetry/internal/audit"
	"github.com/sora3web/telemetry/schema"
)

// dropUser is a Filter that drops one user's events, as a tombstone does.
type dropUser string

func (d dropUser) Drop(e *schema.Enriched) bool                 { return e.UserID == string(d) }
func (d dropUser) DeletedAt(*schema.Enriched) (time.Time, bool) { return time.Time{}, false }
func (d dropUser) Correct(*schema.Enriched) bool                { return false }

// startAudited runs a consumer of e's topic writing to sink with the audit
// on and filter f.
func (e *env) startAudited(t *testing.T, sink Sink, f Filter, hook func() error) *Consumer {
	t.Helper()
	return e.startSinkWith(t, sink, hook, func(c *Consumer) error {
		if err := c.SetFilter(f); err != nil {
			return err
		}
		return c.SetAudit(auditConfig(true))
	})
}

// auditReport is the report over e's database, every window closed.
func (e *env) auditReport(t *testing.T) *audit.Report {
	t.Helper()
	rep, err := audit.Query(context.Background(), e.conn, audit.Options{Database: e.db, Since: time.Now().Add(-48 * time.Hour), Settled: true})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestAuditCountsEveryOutcomeOnceThroughACrash: ingest's audit records
// (accepted, per window) and events that end every way a message can end
// (stored, a resent copy, one that cannot be mapped, one of a deleted
// subject) go through a consumer that dies after its first insert and
// before its commit, and a second one that gets everything again. Each
// outcome is counted once in pipeline_audit, through either sink, and the
// balance says nothing was lost.
func TestAuditCountsEveryOutcomeOnceThroughACrash(t *testing.T) {
	for _, sk := range sinks {
		t.Run(sk.name, func(t *testing.T) {
			e := newEnv(t)
			accepted := audit.NewTally()
			var msgs []kafka.Message
			add := func(ev schema.Enriched, m kafka.Message) {
				accepted.Add(ev.ReceivedAt, ev.Source, audit.Accepted, "", 1)
				msgs = append(msgs, m)
			}
			for i := range 40 {
				ev := event(i)
				add(ev, marshal(t, ev))
			}
			add(event(3), msgs[3]) // a client's resend
			bad := event(50)
			bad.EventID = "not-a-uuid"
			add(bad, marshal(t, bad))
			gone := event(51)
			gone.UserID = "deleted-user"
			add(gone, marshal(t, gone))
			for _, r := range accepted.Records() {
				m, err := r.Message()
				if err != nil {
					t.Fatal(err)
				}
				msgs = append(msgs, kafka.Message{Key: m.Key, Value: m.Value, Headers: []kafka.Header{{Key: m.Headers[0].Key, Value: m.Headers[0].Value}}})
			}
			e.produce(t, msgs...)

			crashAfterFirstInsert(t, func(hook func() error) *Consumer {
				return e.startAudited(t, sk.new(e, t), dropUser("deleted-user"), hook)
			})
			c2 := e.startAudited(t, sk.new(e, t), dropUser("deleted-user"), nil)
			e.waitCommitted(t, int64(len(msgs)), time.Minute)
			if err := shutdown(c2); err != nil {
				t.Fatal(err)
			}

			rep := e.auditReport(t)
			want := audit.Window{Accepted: 43, Consumed: 43, Stored: 40, Deduplicated: 1, DeadLettered: 1, Filtered: 1}
			if rep.Total != want {
				t.Fatalf("audit totals:\n got  %+v\n want %+v", rep.Total, want)
			}
			if !rep.Clean() {
				t.Fatalf("not clean: %+v", rep.Total)
			}
		})
	}
}

// TestConsumedIsCountedPerWindowSourceAndPosition: the consumed counts of
// a batch whose messages switch between windows, sources and positions,
// and come back to earlier ones, are one row per (window, source,
// position) with the messages' number and first offset, in the order
// first seen, whatever the runs.
func TestConsumedIsCountedPerWindowSourceAndPosition(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 30, 0, time.UTC)
	type msg struct {
		at        time.Time
		source    string
		topic     string
		partition int
		offset    int64
	}
	for _, c := range []struct {
		name string
		msgs []msg
		want []audit.Row
	}{
		{"one run", []msg{{t0, "web", "events", 0, 7}, {t0.Add(time.Second), "web", "events", 0, 8}, {t0, "web", "events", 0, 9}},
			[]audit.Row{{Window: t0.Truncate(time.Minute), Source: "web", Stage: audit.Consumed, RecordID: "consumed/events/0/7", N: 3}}},
		{"back to an earlier key, its first offset kept", []msg{
			{t0, "web", "events", 0, 10}, {t0, "ios", "events", 0, 11}, {t0, "web", "events", 0, 12},
			{t0.Add(time.Minute), "web", "events", 0, 13}, {t0, "web", "events", 1, 4}, {t0, "web", "events", 0, 14},
		}, []audit.Row{
			{Window: t0.Truncate(time.Minute), Source: "web", Stage: audit.Consumed, RecordID: "consumed/events/0/10", N: 3},
			{Window: t0.Truncate(time.Minute), Source: "ios", Stage: audit.Consumed, RecordID: "consumed/events/0/11", N: 1},
			{Window: t0.Add(time.Minute).Truncate(time.Minute), Source: "web", Stage: audit.Consumed, RecordID: "consumed/events/0/13", N: 1},
			{Window: t0.Truncate(time.Minute), Source: "web", Stage: audit.Consumed, RecordID: "consumed/events/1/4", N: 1},
		}},
		{"a redelivery's offsets out of order: the smallest names the count", []msg{{t0, "web", "log", 0, 20}, {t0, "web", "log", 0, 18}},
			[]audit.Row{{Window: t0.Truncate(time.Minute), Source: "web", Stage: audit.Consumed, RecordID: "consumed/log/0/18", N: 2}}},
		{"windows before 1970 floor to their minute", []msg{{time.Date(1969, 12, 31, 23, 59, 59, 500, time.UTC), "", "events", 0, 1}},
			[]audit.Row{{Window: time.Date(1969, 12, 31, 23, 59, 0, 0, time.UTC), Source: "", Stage: audit.Consumed, RecordID: "consumed/events/0/1", N: 1}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var a batchAudit
			for _, m := range c.msgs {
				a.consume(m.at, m.source, bus.Message{Topic: m.topic, Partition: m.partition, Offset: m.offset})
			}
			got := a.all()
			if len(got) != len(c.want) {
				t.Fatalf("rows:\n got  %+v\n want %+v", got, c.want)
			}
			for i := range got {
				if !got[i].Window.Equal(c.want[i].Window) || got[i].Window.Location() != time.UTC {
					t.Errorf("row %d window %v, want %v (UTC)", i, got[i].Window, c.want[i].Window)
				}
				got[i].Window = c.want[i].Window
				if got[i] != c.want[i] {
					t.Errorf("row %d:\n got  %+v\n want %+v", i, got[i], c.want[i])
				}
			}
		})
	}
}

// TestUnixMinuteIsTheAuditWindow: the consumer's numeric window is
// audit.MinuteOf's, on either side of the epoch and of a minute.
func TestUnixMinuteIsTheAuditWindow(t *testing.T) {
	for _, at := range []time.Time{
		time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 1, 10, 0, 59, 999_999_999, time.UTC),
		time.Date(2026, 12, 1, 11, 0, 59, 0, time.FixedZone("CET", 3600)),
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 0, 1, time.UTC),
		time.Date(1969, 12, 31, 23, 58, 59, 0, time.UTC),
		time.Date(1900, 1, 1, 0, 0, 1, 0, time.UTC),
	} {
		if got, want := time.Unix(unixMinute(at)*60, 0).UTC(), audit.MinuteOf(at); !got.Equal(want) {
			t.Errorf("%v: window %v, want %v", at, got, want)
		}
	}
}

// TestAuditRowsDoNotHoldTheMessagesBytes: the source of a consumer's
// audit row is a copy, not the decoded event's string, which aliases the
// message's bytes (and through them the bus's read buffer, for as long
// as the row is kept): the bytes changed once the rows are made leave the
// rows as they were.
func TestAuditRowsDoNotHoldTheMessagesBytes(t *testing.T) {
	at := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	buf := []byte("web")
	source := unsafe.String(&buf[0], len(buf)) // as decode leaves r.e.Source
	m := bus.Message{Topic: "events", Partition: 1, Offset: 7}
	var a batchAudit
	a.consume(at, source, m)
	a.message(at, source, audit.Deduplicated, "", m.Topic, m.Partition, m.Offset)
	a.startInserted()
	rows := a.all()
	copy(buf, "xyz")
	if len(rows) != 2 {
		t.Fatalf("%d rows, want the deduplicated and the consumed count: %+v", len(rows), rows)
	}
	for _, r := range rows {
		if r.Source != "web" {
			t.Errorf("%s row: source %q after the message's bytes changed, want %q", r.Stage, r.Source, "web")
		}
	}
}

// TestAuditTokenNamesTheRowsAndCounts: the same rows give the same token;
// another count or another id gives another.
func TestAuditTokenNamesTheRowsAndCounts(t *testing.T) {
	rows := []audit.Row{{RecordID: "a/accepted/", N: 50}, {RecordID: "consumed/events/0/1", N: 49}}
	tok := auditToken(rows)
	if again := auditToken(append([]audit.Row(nil), rows...)); again != tok {
		t.Fatalf("same rows, tokens %s and %s", tok, again)
	}
	for _, other := range [][]audit.Row{
		{{RecordID: "a/accepted/", N: 50}, {RecordID: "consumed/events/0/1", N: 48}},
		{{RecordID: "a/accepted/", N: 50}, {RecordID: "consumed/events/0/2", N: 49}},
		{{RecordID: "a/accepted/", N: 50}},
		{{RecordID: "a/accepted/", N: 5}, {RecordID: "0consumed/events/0/1", N: 49}},
	} {
		if auditToken(other) == tok {
			t.Errorf("rows %+v have the token of %+v", other, rows)
		}
	}
}

// TestAuditRowsAreStoredExactlyThroughEitherSink: values that need
// quoting (quotes, backslashes, a newline, a NUL) are stored as given,
// through clickhouse-go and through the engine's Native block.
func TestAuditRowsAreStoredExactlyThroughEitherSink(t *testing.T) {
	window := time.Date(2026, 12, 1, 10, 1, 0, 0, time.UTC)
	rows := []audit.Row{ // in record_id order
		{Window: window.Add(time.Minute), Source: "", Stage: audit.Consumed, RecordID: "consumed/events/3/99", N: 1 << 40},
		{Window: window, Source: "web", Stage: audit.Accepted, RecordID: "r1/accepted/", N: 50},
		{Window: window, Source: `it's a \ key`, Stage: audit.DeadLettered, Reason: "map\nline 'two'", RecordID: "r2/dead_lettered/\x00", N: 1},
	}
	for _, sk := range sinks {
		t.Run(sk.name, func(t *testing.T) {
			e := newEnv(t)
			as := sk.new(e, t).(AuditSink)
			if err := as.WriteAudit(context.Background(), rows); err != nil {
				t.Fatal(err)
			}
			flushKept(t, as)
			got, err := e.conn.Query(context.Background(), "SELECT window_start, source, stage, reason, record_id, n FROM "+e.db+".pipeline_audit FINAL ORDER BY record_id")
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			i := 0
			for ; got.Next(); i++ {
				var r audit.Row
				if err := got.Scan(&r.Window, &r.Source, &r.Stage, &r.Reason, &r.RecordID, &r.N); err != nil {
					t.Fatal(err)
				}
				if i >= len(rows) {
					t.Fatalf("extra row %+v", r)
				}
				if want := rows[i]; !r.Window.Equal(want.Window) || r.Source != want.Source || r.Stage != want.Stage ||
					r.Reason != want.Reason || r.RecordID != want.RecordID || r.N != want.N {
					t.Errorf("row %d:\n got  %+v\n want %+v", i, r, want)
				}
			}
			if err := got.Err(); err != nil {
				t.Fatal(err)
			}
			if i != len(rows) {
				t.Fatalf("%d rows stored, want %d", i, len(rows))
			}
		})
	}
}

// heldAuditSink is the engine sink whose first audit insert fails and
// whose next ones wait for release; it says when each starts, and when a
// batch's write starts.
type heldAuditSink struct {
	*EngineSink
	audits       atomic.Int32
	auditEntered chan struct{}
	batchEntered chan struct{}
	release      chan struct{}
}

func (s *heldAuditSink) WriteAudit(ctx context.Context, rows []audit.Row) error {
	if s.audits.Add(1) == 1 {
		return errors.New("injected: the audit insert failed")
	}
	select {
	case s.auditEntered <- struct{}{}:
	default:
	}
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.EngineSink.WriteAudit(ctx, rows)
}

func (s *heldAuditSink) WriteBatch(ctx context.Context, b *Batch) error {
	select {
	case s.batchEntered <- struct{}{}:
	default:
	}
	return s.EngineSink.WriteBatch(ctx, b)
}

// commitSource is chanSource recording its commits.
type commitSource struct {
	chanSource
	commits atomic.Int32
}

func (s *commitSource) Commit(context.Context, ...bus.Message) error {
	s.commits.Add(1)
	return nil
}

// TestAuditRowsAreStoredBeforeTheirEventsAndTheCommit: the audit insert
// runs while the batch's block is prepared (the batch's write starts
// while it is held), but nothing of the batch becomes durable (no row,
// no kept block that a restart would insert) and nothing is committed
// until the audit rows are stored, through a failed first attempt; then
// the events, their audit rows and the commit follow.
func TestAuditRowsAreStoredBeforeTheirEventsAndTheCommit(t *testing.T) {
	e := newEnv(t)
	sink := &heldAuditSink{EngineSink: engineSink(t, e.db), auditEntered: make(chan struct{}, 1),
		batchEntered: make(chan struct{}, 1), release: make(chan struct{})}
	src := &commitSource{chanSource: chanSource{msgs: make(chan bus.Message, 64)}}
	cfg := e.cfg
	cfg.BatchInterval = 20 * time.Millisecond
	c, err := New(cfg, src, nopDLQ{}, sink, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetAudit(auditConfig(true)); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer shutdown(c)
	accepted := audit.NewTally()
	for i := range 20 {
		ev := event(i)
		accepted.Add(ev.ReceivedAt, ev.Source, audit.Accepted, "", 1)
		src.msgs <- bus.Message{Value: marshal(t, ev).Value, Offset: int64(i)}
	}
	for i, r := range accepted.Records() {
		m, err := r.Message()
		if err != nil {
			t.Fatal(err)
		}
		m.Offset = int64(20 + i)
		src.msgs <- m
	}
	for _, ch := range []struct {
		what string
		c    chan struct{}
	}{{"the audit insert (after its failed attempt)", sink.auditEntered}, {"the batch's write, while the audit insert is held", sink.batchEntered}} {
		select {
		case <-ch.c:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not start", ch.what)
		}
	}
	time.Sleep(300 * time.Millisecond) // time for the block to be encoded and, were it not held, inserted
	if n := e.count(t, "SELECT count() FROM {t}"); n != 0 {
		t.Fatalf("%d events stored before their audit rows", n)
	}
	if kept, err := filepath.Glob(filepath.Join(sink.dir(), "pending-*.native")); err != nil || len(kept) != 0 {
		t.Fatalf("blocks kept before the audit rows were stored: %v %v", kept, err)
	}
	if n := src.commits.Load(); n != 0 {
		t.Fatalf("%d commits before the audit rows were stored", n)
	}
	close(sink.release)
	e.waitCount(t, "SELECT count() FROM {t}", 20, 30*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for src.commits.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the batch was not committed after its audit rows were stored")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Kept, and inserted when due (keptAudit) or at the shutdown.
	if err := shutdown(c); err != nil {
		t.Fatal(err)
	}
	if n := e.count(t, "SELECT sum(n) FROM "+e.db+".pipeline_audit FINAL WHERE stage = 'consumed'"); n != 20 {
		t.Fatalf("consumed %d, want 20", n)
	}
	if n := e.count(t, "SELECT sum(n) FROM "+e.db+".pipeline_audit FINAL WHERE stage = 'accepted'"); n != 20 {
		t.Fatalf("accepted %d, want 20", n)
	}
}

// flushKept inserts the audit rows as keeps and has not inserted yet.
func flushKept(t *testing.T, as AuditSink) {
	t.Helper()
	if f, ok := as.(auditFlusher); ok {
		if err := f.FlushAudit(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKeptAuditRowsAreInsertedOnceDueOrRecovered: the engine sink keeps
// each batch's audit rows as a file and inserts them in bulk: not before
// they are due, then in one insert in which a later row of a key (a
// record's void) replaced the earlier; and what a stopped process kept
// and never inserted is inserted by the next one's Recover, file by file
// in the order kept, so that the void still wins.
func TestKeptAuditRowsAreInsertedOnceDueOrRecovered(t *testing.T) {
	window := time.Date(2026, 12, 1, 10, 1, 0, 0, time.UTC)
	record := audit.Row{Window: window, Source: "web", Stage: audit.Accepted, RecordID: "r1/accepted/", N: 50}
	void := record
	void.N = 0
	other := audit.Row{Window: window, Source: "web", Stage: audit.Consumed, RecordID: "consumed/t/0/7", N: 9}
	writes := [][]audit.Row{{record}, {other, void}}
	sum := func(e *env) uint64 {
		return e.count(t, "SELECT sum(n) FROM "+e.db+".pipeline_audit FINAL")
	}
	rowsStored := func(e *env) uint64 { return e.count(t, "SELECT count() FROM "+e.db+".pipeline_audit") }

	t.Run("due", func(t *testing.T) {
		e := newEnv(t)
		if err := e.conn.Exec(context.Background(), "SYSTEM STOP MERGES "+e.db+".pipeline_audit"); err != nil {
			t.Fatal(err)
		}
		s := engineSink(t, e.db)
		for _, rows := range writes {
			if err := s.WriteAudit(context.Background(), rows); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.FlushAudit(context.Background(), time.Minute); err != nil {
			t.Fatal(err)
		}
		if n := rowsStored(e); n != 0 {
			t.Fatalf("%d rows inserted before they were due", n)
		}
		if kept, _ := filepath.Glob(filepath.Join(s.dir(), auditFilePrefix+"*")); len(kept) != len(writes) {
			t.Fatalf("kept files %v, want %d", kept, len(writes))
		}
		s.audit.since = s.audit.since.Add(-time.Minute) // as if the first were kept a minute ago
		if err := s.FlushAudit(context.Background(), time.Minute); err != nil {
			t.Fatal(err)
		}
		// One insert of one row per key: no FINAL needed.
		if n := rowsStored(e); n != 2 {
			t.Fatalf("%d rows inserted, want 2 (the void replaced its record before the insert)", n)
		}
		if n := sum(e); n != other.N {
			t.Fatalf("sum %d, want %d", n, other.N)
		}
		if kept, _ := filepath.Glob(filepath.Join(s.dir(), auditFilePrefix+"*")); len(kept) != 0 {
			t.Fatalf("files left after the insert: %v", kept)
		}
	})
	t.Run("recovered", func(t *testing.T) {
		e := newEnv(t)
		stopped := engineSink(t, e.db)
		for _, rows := range writes {
			if err := stopped.WriteAudit(context.Background(), rows); err != nil {
				t.Fatal(err)
			}
		}
		if n := rowsStored(e); n != 0 {
			t.Fatalf("%d rows inserted before they were due", n)
		}
		next := engineSink(t, e.db)
		if _, err := next.Recover(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := sum(e); n != other.N {
			t.Fatalf("sum %d after the recovery, want %d (the void last)", n, other.N)
		}
		if kept, _ := filepath.Glob(filepath.Join(next.dir(), auditFilePrefix+"*")); len(kept) != 0 {
			t.Fatalf("files left after the recovery: %v", kept)
		}
	})
}

// rowsSink reports the rows of each batch written.
type rowsSink struct {
	gatedSink
	rows chan int
}

func (s *rowsSink) WriteBatch(_ context.Context, b *Batch) error {
	s.rows <- b.Rows()
	return nil
}

// TestBatchRowsCountsEventsNotAuditRecords: ingest's audit records riding
// between the events do not fill a batch: it is cut at batch_rows events,
// so the audit does not make the inserts' parts smaller.
func TestBatchRowsCountsEventsNotAuditRecords(t *testing.T) {
	src := chanSource{msgs: make(chan bus.Message, 64)}
	sink := &rowsSink{rows: make(chan int, 8)}
	cfg := DefaultConfig()
	cfg.BatchRows, cfg.BatchInterval = 10, time.Hour
	c, err := New(cfg, src, nopDLQ{}, sink, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer shutdown(c)
	for i := range 15 {
		ev := event(i)
		src.msgs <- bus.Message{Value: marshal(t, ev).Value, Offset: int64(2 * i)}
		tally := audit.NewTally()
		tally.Add(ev.ReceivedAt, ev.Source, audit.Accepted, "", 1)
		m, err := tally.Records()[0].Message()
		if err != nil {
			t.Fatal(err)
		}
		m.Offset = int64(2*i + 1)
		src.msgs <- m
	}
	select {
	case n := <-sink.rows:
		if n != 10 {
			t.Fatalf("first batch of %d rows, want batch_rows (10)", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no batch cut at batch_rows")
	}
}

// TestLaterRecordOfTheSameIDReplacesTheEarlierInABatch: a later form of
// a record (other counts under the same id) in the same batch as the
// record it replaces leaves one row per key, the later one's, so the
// outcome does not rest on the order the engine keeps within one insert.
func TestLaterRecordOfTheSameIDReplacesTheEarlierInABatch(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 30, 0, time.UTC)
	rec := audit.Record{ID: "00000000-0000-4000-8000-000000000001", Source: "web", Window: at,
		Counts: []audit.Count{{Stage: audit.Accepted, N: 50}, {Stage: audit.Published, N: 50}}}
	spooled := rec
	spooled.Counts = []audit.Count{{Stage: audit.Accepted, N: 50}, {Stage: audit.Published}, {Stage: audit.Spooled, N: 50}}
	zeroed := rec
	zeroed.Counts = []audit.Count{{Stage: audit.Accepted}, {Stage: audit.Published}}
	other := audit.Record{ID: "00000000-0000-4000-8000-000000000002", Source: "web", Window: at,
		Counts: []audit.Count{{Stage: audit.Accepted, N: 7}}}
	for _, tc := range []struct {
		name       string
		deadLetter bool // a message's own row (not keyed) comes first
		records    []audit.Record
		want       map[string]uint64 // record id -> n
	}{
		{"zeroed", false, []audit.Record{rec, other, zeroed}, map[string]uint64{
			rec.ID + "/accepted/": 0, rec.ID + "/published/": 0, other.ID + "/accepted/": 7}},
		{"spooled form", false, []audit.Record{rec, spooled}, map[string]uint64{
			rec.ID + "/accepted/": 50, rec.ID + "/published/": 0, rec.ID + "/spooled/": 50}},
		{"copy", false, []audit.Record{rec, rec}, map[string]uint64{rec.ID + "/accepted/": 50, rec.ID + "/published/": 50}},
		{"after a dead letter", true, []audit.Record{rec, rec}, map[string]uint64{
			"dead_lettered/t/0/7": 1, rec.ID + "/accepted/": 50, rec.ID + "/published/": 50}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a batchAudit
			if tc.deadLetter {
				a.message(at, "web", audit.DeadLettered, "map", "t", 0, 7)
			}
			for _, r := range tc.records {
				a.record(r)
			}
			got := map[string]uint64{}
			for _, r := range a.all() {
				if _, dup := got[r.RecordID]; dup {
					t.Fatalf("two rows of %s in one batch: %+v", r.RecordID, a.all())
				}
				got[r.RecordID] = r.N
			}
			if !maps.Equal(got, tc.want) {
				t.Fatalf("rows %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRetriedAuditInsertIsStoredOnce: the same audit rows written twice
// with their token (a retry whose first answer was lost) are one insert,
// through either sink, even before a merge (no FINAL). The engine sink
// keeps them and inserts them later, one row per key (keptAudit).
func TestRetriedAuditInsertIsStoredOnce(t *testing.T) {
	rows := []audit.Row{{Window: time.Date(2026, 12, 1, 10, 1, 0, 0, time.UTC), Source: "web", Stage: audit.Accepted, RecordID: "r1/accepted/", N: 50}}
	for _, sk := range sinks {
		t.Run(sk.name, func(t *testing.T) {
			e := newEnv(t)
			if err := e.conn.Exec(context.Background(), "SYSTEM STOP MERGES "+e.db+".pipeline_audit"); err != nil {
				t.Fatal(err)
			}
			as := sk.new(e, t).(AuditSink)
			for range 2 {
				if err := as.WriteAudit(context.Background(), rows); err != nil {
					t.Fatal(err)
				}
			}
			flushKept(t, as)
			var n uint64
			if err := e.conn.QueryRow(context.Background(), "SELECT count() FROM "+e.db+".pipeline_audit").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Fatalf("%d rows without FINAL after a retried insert, want 1", n)
			}
		})
	}
}
