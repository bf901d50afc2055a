package consumer

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sora3web/telemetry/bus"
	"github.com/sora3web/telemetry/internal/testenv"
	"github.com/sora3web/telemetry/schema"
	"github.com/sora3web/telemetry/transform"
)

// stored is an events row read back for comparison.
type stored struct {
	EventID       string    `ch:"id"`
	Type          string    `ch:"type"`
	SchemaVersion uint8     `ch:"schema_version"`
	Timestamp     time.Time `ch:"timestamp"`
	OccurredAt    time.Time `ch:"occurred_at"`
	SentAt        time.Time `ch:"sent_at"`
	ReceivedAt    time.Time `ch:"received_at"`
	AnonymousID   string    `ch:"anonymous_id"`
	UserID        string    `ch:"user_id"`
	SessionID     string    `ch:"session_id"`
	Seq           uint32    `ch:"seq"`
	GroupID       string    `ch:"group_id"`
	PreviousID    string    `ch:"previous_id"`
	Plan          string    `ch:"plan"`
	Consent       bool      `ch:"consent_analytics"`
	OptedOut      bool      `ch:"opted_out"`
	Source        string    `ch:"source"`
	IP            string    `ch:"ip"`
	PageURL       string    `ch:"context_page_url"`
	Referrer      string    `ch:"context_referrer"`
	Locale        string    `ch:"context_locale"`
	ScreenW       uint16    `ch:"context_screen_width"`
	ScreenH       uint16    `ch:"context_screen_height"`
	AppVersion    string    `ch:"context_app_version"`
	UserAgent     string    `ch:"context_user_agent"`
	UnloadSeq     uint32    `ch:"context_unload_seq"`
	DevClass      string    `ch:"device_class"`
	DevOS         string    `ch:"device_os"`
	DevOSVersion  string    `ch:"device_os_version"`
	DevBrowser    string    `ch:"device_browser"`
	DevBrowserVer string    `ch:"device_browser_version"`
	DevIsBot      bool      `ch:"device_is_bot"`
	DevPending    bool      `ch:"device_pending"`
	Quality       string    `ch:"quality"`
	Resolution    string    `ch:"resolution"`
	Width         uint16    `ch:"width"`
	Height        uint16    `ch:"height"`
	AspectRatio   string    `ch:"aspect_ratio"`
	DurationS     float32   `ch:"duration_s"`
	Prompt        string    `ch:"prompt"`
	Model         string    `ch:"model"`
	GenerationID  string    `ch:"generation_id"`
	LatencyMS     uint32    `ch:"latency_ms"`
	Format        string    `ch:"format"`
	ErrorCode     string    `ch:"error_code"`
	ErrorMessage  string    `ch:"error_message"`
	ErrorStack    string    `ch:"error_stack"`
	Setting       string    `ch:"setting"`
	Value         string    `ch:"value"`
	Topic         string    `ch:"kafka_topic"`
}

func expected(e schema.Enriched, topic string) stored {
	if e.Device.Pending { // ingest deferred the parse: the consumer parses and drops the user agent
		p, err := transform.NewUAParser(10)
		if err != nil {
			panic(err)
		}
		e.Device, e.Context.UserAgent = p.Parse(e.Context.UserAgent), ""
	}
	return stored{
		EventID: e.EventID, Type: e.Type, SchemaVersion: uint8(e.SchemaVersion),
		Timestamp: e.Timestamp, OccurredAt: e.OccurredAt, SentAt: e.SentAt, ReceivedAt: e.ReceivedAt,
		AnonymousID: e.AnonymousID, UserID: e.UserID, SessionID: e.SessionID, Seq: uint32(e.Seq), GroupID: e.GroupID, PreviousID: e.PreviousID, Plan: e.Plan, Consent: *e.Consent.Analytics,
		OptedOut: e.OptedOut, Source: e.Source, IP: e.IP, PageURL: e.Context.PageURL, Referrer: e.Context.Referrer,
		Locale: e.Context.Locale, ScreenW: uint16(e.Context.Screen.Width), ScreenH: uint16(e.Context.Screen.Height),
		AppVersion: e.Context.AppVersion, UserAgent: e.Context.UserAgent, UnloadSeq: uint32(e.Context.UnloadSeq), DevClass: e.Device.Class, DevOS: e.Device.OS,
		DevOSVersion: e.Device.OSVersion, DevBrowser: e.Device.Browser, DevBrowserVer: e.Device.BrowserVersion,
		DevIsBot: e.Device.IsBot, DevPending: e.Device.Pending, Quality: e.Properties.Quality, Resolution: e.Properties.Resolution,
		Width: uint16(e.Properties.Width), Height: uint16(e.Properties.Height), AspectRatio: e.Properties.AspectRatio,
		DurationS: float32(e.Properties.DurationS), Prompt: e.Properties.Prompt, Model: e.Properties.Model,
		GenerationID: e.Properties.GenerationID, LatencyMS: uint32(e.Properties.LatencyMS), Format: e.Properties.Format,
		ErrorCode: e.Properties.ErrorCode, ErrorMessage: e.Properties.ErrorMessage, ErrorStack: e.Properties.ErrorStack,
		Setting: e.Properties.Setting, Value: e.Properties.Value, Topic: topic,
	}
}

func TestConsumeEndToEndStoresEveryField(t *testing.T) {
	for _, sk := range sinks {
		t.Run(sk.name, func(t *testing.T) { testStoresEveryField(t, sk.new) })
	}
}

func testStoresEveryField(t *testing.T, newSink func(*env, testing.TB) Sink) {
	e := newEnv(t)
	const n = 60
	want := map[string]stored{}
	var msgs []kafka.Message
	for i := range n {
		ev := event(i)
		want[ev.EventID] = expected(ev, e.bc.EventsTopic)
		msgs = append(msgs, marshal(t, ev))
	}
	e.produce(t, msgs...)
	c := e.startSink(t, newSink(e, t), nil)
	e.waitCount(t, "SELECT count() FROM {t}", n, 60*time.Second)
	if err := shutdown(c); err != nil {
		t.Fatal(err)
	}
	var rows []stored
	if err := e.conn.Select(context.Background(), &rows, "SELECT toString(event_id) AS id, * EXCEPT (event_id, kafka_partition, kafka_offset) FROM "+e.db+".events"); err != nil {
		t.Fatal(err)
	}
	if len(rows) != n {
		t.Fatalf("%d rows, want %d", len(rows), n)
	}
	for _, got := range rows {
		w, ok := want[got.EventID]
		if !ok {
			t.Fatalf("unexpected row %s", got.EventID)
		}
		got.Timestamp, got.OccurredAt, got.SentAt, got.ReceivedAt = got.Timestamp.UTC(), got.OccurredAt.UTC(), got.SentAt.UTC(), got.ReceivedAt.UTC()
		if got != w {
			t.Errorf("row %s:\n got %+v\nwant %+v", got.EventID, got, w)
		}
	}
	if got := sumCommitted(e.committed(t)); got != n {
		t.Errorf("committed offsets sum to %d, want %d", got, n)
	}
	// The errors table and rollups are fed by the materialized views.
	var errRows, rollupEvents uint64
	if err := e.conn.QueryRow(context.Background(), "SELECT count() FROM "+e.db+".errors").Scan(&errRows); err != nil {
		t.Fatal(err)
	}
	if err := e.conn.QueryRow(context.Background(), "SELECT countMerge(events) FROM "+e.db+".rollups_daily").Scan(&rollupEvents); err != nil {
		t.Fatal(err)
	}
	wantErr := 0
	for _, w := range want {
		if w.Type == schema.TypeClientError || w.Type == schema.TypeGenerationFailed {
			wantErr++
		}
	}
	if errRows != uint64(wantErr) || rollupEvents != n {
		t.Errorf("errors table %d rows (want %d), rollups count %d (want %d)", errRows, wantErr, rollupEvents, n)
	}
}

func TestCrashBetweenInsertAndCommitStoresEachEventOnce(t *testing.T) {
	e := newEnv(t)
	var msgs []kafka.Message
	for i := range 100 {
		msgs = append(msgs, marshal(t, event(i)))
	}
	resent := event(1000)
	msgs = append(msgs, marshal(t, resent), marshal(t, resent)) // a client resending the same event_id
	e.produce(t, msgs...)

	// The first consumer dies after its first insert is acknowledged and
	// before it commits.
	crashAfterFirstInsert(t, func(hook func() error) *Consumer { return e.start(t, e.conn, hook) })
	inserted := e.count(t, "SELECT count() FROM {t}")
	if inserted == 0 {
		t.Fatal("the crashed consumer inserted nothing")
	}
	if got := sumCommitted(e.committed(t)); got != 0 {
		t.Fatalf("the crashed consumer committed %d offsets", got)
	}

	// A restarted consumer gets everything again, plus new messages.
	var more []kafka.Message
	for i := 2000; i < 2020; i++ {
		more = append(more, marshal(t, event(i)))
	}
	e.produce(t, more...)
	c2 := e.start(t, e.conn, nil)
	e.waitCount(t, "SELECT uniqExact(event_id) FROM {t}", 121, 60*time.Second)
	if err := shutdown(c2); err != nil {
		t.Fatal(err)
	}
	// Without FINAL: neither the redelivery after the crash nor the
	// client's resend stored anything twice, in the table or the rollup.
	e.assertExact(t, 121)
	if got := sumCommitted(e.committed(t)); got != 122 {
		t.Errorf("committed %d, want 122", got)
	}
}

// crashAfterFirstInsert starts a consumer with start, given the test hook,
// and returns once it has died after its first acknowledged insert and
// before its commit, as a killed process would.
func crashAfterFirstInsert(t *testing.T, start func(hook func() error) *Consumer) {
	t.Helper()
	crashed := make(chan struct{})
	c := start(func() error { close(crashed); return errCrash })
	select {
	case <-crashed:
	case <-time.After(60 * time.Second):
		t.Fatal("no insert within 60s")
	}
	if err := shutdown(c); !errors.Is(err, errCrash) {
		t.Fatalf("shutdown after crash: %v", err)
	}
}

// TestResendIsCountedOnceEverywhere: a client's resend of an event (same
// event_id, a new message) is one row without FINAL and one count in the
// rollup, whether the copy arrives in the same batch, in a later batch, or
// after a restart (the window rebuilt from the table), through either sink.
func TestResendIsCountedOnceEverywhere(t *testing.T) {
	for _, sk := range sinks {
		t.Run(sk.name, func(t *testing.T) {
			e := newEnv(t)
			first := []kafka.Message{}
			for i := range 30 {
				first = append(first, marshal(t, event(i)))
			}
			first = append(first, first[3], first[7]) // resent within the batch
			e.produce(t, first...)
			c := e.startSink(t, sk.new(e, t), nil)
			e.waitCommitted(t, int64(len(first)), time.Minute)
			e.produce(t, first[5], first[9], marshal(t, event(100))) // resent in a later batch
			e.waitCommitted(t, int64(len(first)+3), time.Minute)
			if err := shutdown(c); err != nil {
				t.Fatal(err)
			}
			// After a restart the window comes from the table.
			e.produce(t, first[0], first[29], marshal(t, event(101)))
			c = e.startSink(t, sk.new(e, t), nil)
			e.waitCommitted(t, int64(len(first)+6), time.Minute)
			if err := shutdown(c); err != nil {
				t.Fatal(err)
			}
			e.assertExact(t, 32)
		})
	}
}

// TestInsertKilledBeforeTheViewsIsCompletedAtStart: the in-process
// engine dies with the consumer, so a kill can land after the events part
// is written and before the materialized views wrote theirs. Here the
// views are detached during the first consumer's insert, which then
// "dies" before its commit; the next consumer completes the insert from
// the block it kept, and the rollup and errors table count each event
// once. Without the completion the rollup would miss the whole batch
// (its messages, redelivered, are skipped by their stored offsets).
func TestInsertKilledBeforeTheViewsIsCompletedAtStart(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var msgs []kafka.Message
	for i := range 50 {
		msgs = append(msgs, marshal(t, event(i)))
	}
	e.produce(t, msgs...)
	exec := func(q string) {
		t.Helper()
		if err := e.conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	exec("DETACH TABLE " + e.db + ".rollups_daily_mv")
	exec("DETACH TABLE " + e.db + ".errors_mv")
	crashed := make(chan struct{})
	c := e.startSink(t, engineSink(t, e.db), func() error { close(crashed); return errCrash })
	select {
	case <-crashed:
	case <-time.After(time.Minute):
		t.Fatal("no insert within a minute")
	}
	if err := shutdown(c); !errors.Is(err, errCrash) {
		t.Fatalf("shutdown after the crash: %v", err)
	}
	exec("ATTACH TABLE " + e.db + ".rollups_daily_mv")
	exec("ATTACH TABLE " + e.db + ".errors_mv")
	stored := e.count(t, "SELECT count() FROM {t}")
	if stored == 0 || e.count(t, "SELECT countMerge(events) FROM "+e.db+".rollups_daily") != 0 {
		t.Fatalf("setup: %d rows stored by the killed insert, want some, and none in the rollup", stored)
	}
	e.produce(t, marshal(t, event(50)))
	c = e.startSink(t, engineSink(t, e.db), nil)
	e.waitCommitted(t, 51, time.Minute)
	if err := shutdown(c); err != nil {
		t.Fatal(err)
	}
	e.assertExact(t, 51)
	wantErrors := e.count(t, "SELECT count() FROM {t} WHERE type IN ('client_error', 'generation_failed')")
	if got := e.count(t, "SELECT count() FROM "+e.db+".errors"); got != wantErrors {
		t.Errorf("errors table: %d rows, want %d", got, wantErrors)
	}
}

func TestUndecodableMessagesGoToDeadLetterTopic(t *testing.T) {
	e := newEnv(t)
	bigLatency := event(2)
	bigLatency.Properties.LatencyMS = 1 << 40
	badID := event(3)
	badID.EventID = "not-a-uuid"
	bad := []struct {
		msg    kafka.Message
		reason string
	}{
		{kafka.Message{Key: []byte("k1"), Value: []byte("{not json")}, "decoding event"},
		{marshal(t, badID), "mapping event: event_id"},
		{marshal(t, bigLatency), "mapping event: properties.latency_ms"},
	}
	msgs := []kafka.Message{marshal(t, event(0))}
	for _, b := range bad {
		msgs = append(msgs, b.msg)
	}
	msgs = append(msgs, marshal(t, event(1)))
	e.produce(t, msgs...)
	c := e.start(t, e.conn, nil)
	e.waitCount(t, "SELECT count() FROM {t}", 2, 60*time.Second)
	if err := shutdown(c); err != nil {
		t.Fatal(err)
	}
	if got := sumCommitted(e.committed(t)); got != int64(len(msgs)) {
		t.Errorf("committed %d of %d messages: stalled on a bad one", got, len(msgs))
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: e.bc.Brokers, Topic: e.bc.DeadLetterTopic, GroupID: "read-" + e.cfg.GroupID, StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := map[string]string{}
	for range bad {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("reading dead letters: %v", err)
		}
		for _, h := range m.Headers {
			if h.Key == HeaderError {
				got[string(m.Value)] = string(h.Value)
			}
		}
	}
	for _, b := range bad {
		reason, ok := got[string(b.msg.Value)]
		if !ok || !strings.Contains(reason, b.reason) {
			t.Errorf("dead letter of %.40q: error header %q, want it to contain %q", b.msg.Value, reason, b.reason)
		}
	}
}

func TestClickHouseUnavailablePausesAndLosesNothing(t *testing.T) {
	e := newEnv(t)
	px := newProxy(t, testenv.ClickHouse(t))
	addr := px.addr
	c := e.start(t, openCH(t, addr), nil)
	px.down()
	var msgs []kafka.Message
	for i := range 40 {
		msgs = append(msgs, marshal(t, event(i)))
	}
	e.produce(t, msgs...)
	time.Sleep(3 * time.Second) // several failed attempts with backoff
	if got := e.count(t, "SELECT count() FROM {t}"); got != 0 {
		t.Fatalf("%d rows stored while the engine was unreachable", got)
	}
	if got := sumCommitted(e.committed(t)); got != 0 {
		t.Fatalf("committed %d offsets while the engine was unreachable", got)
	}
	px.up(addr)
	e.waitCount(t, "SELECT count() FROM {t}", 40, 60*time.Second)
	if err := shutdown(c); err != nil {
		t.Fatal(err)
	}
	if got := sumCommitted(e.committed(t)); got != 40 {
		t.Errorf("committed %d, want 40", got)
	}
	if got := e.count(t, "SELECT count() FROM {t}"); got != 40 {
		t.Errorf("%d rows, want 40", got)
	}
}

// TestBatchArraysOnlyGrow: a batch takes the arrays a prepared batch left
// whatever their size, and a full array grows by doubling, but to no more
// than a full batch (batch_rows and an eighth) until it holds one, so that
// a large batch's arrays grow in a step or two and are never dropped for
// new ones (fresh).
func TestBatchArraysOnlyGrow(t *testing.T) {
	for _, tc := range []struct {
		name             string
		n, batchRows     int
		minCap, belowCap int
	}{
		{"empty", 0, 100, 1, 10},
		{"small doubles", 10, 100, 20, 30},
		{"stops at a full batch", 100, 100, 112, 150},
		{"a full batch doubles", 112, 100, 224, 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := grow(make([]int, tc.n), tc.batchRows)
			if len(s) != tc.n || cap(s) < tc.minCap || cap(s) >= tc.belowCap {
				t.Errorf("len %d cap %d, want len %d and cap in [%d, %d)", len(s), cap(s), tc.n, tc.minCap, tc.belowCap)
			}
		})
	}
	if s := make([]int, 3, 8); cap(grow(s, 100)) != 8 {
		t.Error("grew an array with room")
	}

	c := &Consumer{spare: make(chan spareArrays, 1)}
	p := c.fresh(80)
	if cap(p.msgs) != 90 || cap(p.records) != 90 {
		t.Fatalf("new arrays of caps %d and %d, want 90: an eighth more than the last batch", cap(p.msgs), cap(p.records))
	}
	msgs, records := make([]bus.Message, 5, 50), make([]record, 5, 50)
	c.recycle(msgs, records)
	p = c.fresh(100)
	if cap(p.msgs) != 50 || &p.msgs[:1][0] != &msgs[0] || &p.records[:1][0] != &records[0] || len(p.msgs)+len(p.records) != 0 {
		t.Error("a batch larger than the last did not take the spare arrays, emptied")
	}
	if p.hint != 100 {
		t.Errorf("hint %d, want 100", p.hint)
	}
}

// TestStringColumnsAreSizedFromTheLastBatch: a batch's encoding string
// columns start with room for its rows at the bytes per row of the batch
// measured last, so that they are not grown by doubling.
func TestStringColumnsAreSizedFromTheLastBatch(t *testing.T) {
	c := &Consumer{sink: (*EngineSink)(nil)}
	const first, next = 100, 1000
	cols := c.newPendingColumns(first)
	for i := range first {
		var r record
		if err := decode(bus.Message{Value: marshal(t, event(i)).Value, Topic: "t", Offset: int64(i)}, &r); err != nil {
			t.Fatal(err)
		}
		for _, col := range cols {
			col.add(&r)
		}
	}
	c.measureColumns(cols)
	sized := 0
	for i, col := range c.newPendingColumns(next) {
		s, ok := col.(*strCol)
		if !ok || !s.encoding {
			continue
		}
		last := cols[i].(*strCol)
		if want := len(last.enc.Buf) / last.rows * next; cap(s.enc.Buf) < want {
			t.Errorf("column %d: room for %d bytes, want at least %d (%d bytes in %d rows before)", i, cap(s.enc.Buf), want, len(last.enc.Buf), last.rows)
		}
		sized++
	}
	if sized == 0 {
		t.Fatal("no encoding string column: the sink does not prepare Native blocks")
	}
}
