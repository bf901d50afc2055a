package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
	"github.com/segmentio/encoding/json"
	"github.com/segmentio/kafka-go"

	"github.com/sora3web/telemetry/bus"
	"github.com/sora3web/telemetry/bus/broker"
	"github.com/sora3web/telemetry/internal/audit"
	"github.com/sora3web/telemetry/internal/testenv"
	"github.com/sora3web/telemetry/schema"
	"github.com/sora3web/telemetry/schema/migrations"
)

// env is one test's topics, group and migrated database.
type env struct {
	bc   broker.Config
	cfg  Config
	db   string
	conn driver.Conn // direct to the engine, for assertions
}

func newEnv(t testing.TB) *env {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "_", "-", "_").Replace(t.Name()))
	suffix := fmt.Sprintf("%s_%d", name, time.Now().UnixNano())
	bc := broker.DefaultConfig()
	bc.Brokers = testenv.Kafka(t)
	bc.EventsTopic, bc.DeadLetterTopic = "events-"+suffix, "dlq-"+suffix
	testenv.DeleteTopicsAtCleanup(t, bc.Brokers, bc.EventsTopic, bc.DeadLetterTopic)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := broker.EnsureTopics(ctx, bc); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.GroupID = "group-" + suffix
	cfg.BatchInterval = 200 * time.Millisecond
	cfg.FetchMaxWait = 50 * time.Millisecond
	cfg.BackoffMin, cfg.BackoffMax = 50*time.Millisecond, 500*time.Millisecond
	e := &env{bc: bc, cfg: cfg, db: "c_" + suffix, conn: openCH(t, testenv.ClickHouse(t))}
	m, err := migrationsFor(e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	return e
}

// migrationsFor migrates e's database.
func migrationsFor(e *env) (*migrations.Migrator, error) {
	return migrations.New(e.conn, migrations.Options{Database: e.db, Retention: migrations.DefaultRetention()})
}

func openCH(t testing.TB, addr string) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: []string{addr}, Protocol: clickhouse.HTTP,
		Auth:        clickhouse.Auth{Database: "default", Username: testenv.ClickHouseUser},
		DialTimeout: 2 * time.Second, ReadTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// start runs a consumer writing through conn; hook, when set, is the
// after-insert test hook.
func (e *env) start(t testing.TB, conn driver.Conn, hook func() error) *Consumer {
	t.Helper()
	return e.startSink(t, NewClickHouseSink(conn, e.db), hook)
}

// sinks are the two ways a consumer stores batches, by name: clickhouse-go
// (to a server; here over HTTP to the test engine) and the in-process
// engine's Native insert.
var sinks = []struct {
	name string
	new  func(e *env, t testing.TB) Sink
}{
	{"clickhouse-go", func(e *env, t testing.TB) Sink { return NewClickHouseSink(e.conn, e.db) }},
	{"engine", func(e *env, t testing.TB) Sink {
		return engineSink(t, e.db)
	}},
}

// engineSink writes to database db of the test engine, in process, on
// two connections of its own, as `telemetry serve` does.
func engineSink(t testing.TB, db string) *EngineSink {
	t.Helper()
	engine := testenv.Engine(t)
	var conns [2]Engine
	for i := range conns {
		sess, err := engine.OpenSession()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sess.Close() })
		conns[i] = sess
	}
	return NewEngineSink(conns[0], conns[1], engine.Path(), db)
}

// auditConfig is the default audit config (its flush interval), on or off.
func auditConfig(on bool) audit.Config {
	cfg := audit.DefaultConfig()
	cfg.Enabled = on
	return cfg
}

// startSink runs a consumer of e's topic writing to sink.
func (e *env) startSink(t testing.TB, sink Sink, hook func() error) *Consumer {
	t.Helper()
	return e.startSinkWith(t, sink, hook, nil)
}

// startSinkWith is startSink with setup, when set, run before Start.
func (e *env) startSinkWith(t testing.TB, sink Sink, hook func() error, setup func(*Consumer) error) *Consumer {
	t.Helper()
	src, err := broker.NewReader(e.bc, e.cfg.ReaderConfig(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return e.startSourceWith(t, src, sink, hook, setup)
}

// startSource runs a consumer reading src and writing to sink, with e's
// dead-letter topic.
func (e *env) startSource(t testing.TB, src bus.Source, sink Sink, hook func() error) *Consumer {
	t.Helper()
	return e.startSourceWith(t, src, sink, hook, nil)
}

// startSourceWith is startSource with setup, when set, run before Start.
func (e *env) startSourceWith(t testing.TB, src bus.Source, sink Sink, hook func() error, setup func(*Consumer) error) *Consumer {
	t.Helper()
	dlq, err := broker.NewDeadLetters(e.bc)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(e.cfg, src, dlq, sink, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	c.afterInsert = hook
	if setup != nil {
		if err := setup(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

func shutdown(c *Consumer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.Shutdown(ctx)
}

// event returns a valid enriched event, varied by i.
func event(i int) schema.Enriched {
	yes := i%5 != 0
	// Within one day, so that no row expires by TTL.
	ts := time.Now().UTC().Add(-time.Duration(i%1440) * time.Minute).Truncate(time.Millisecond)
	e := schema.Enriched{
		Event: schema.Event{
			SchemaVersion: 1, EventID: uuid.NewSHA1(uuid.NameSpaceOID, []byte(fmt.Sprint("ev", i, time.Now().UnixNano()))).String(),
			Type: schema.Types[i%len(schema.Types)], OccurredAt: ts.Add(-time.Second), SentAt: ts,
			AnonymousID: fmt.Sprint("anon-", i%7), UserID: fmt.Sprint("user-", i%3), SessionID: fmt.Sprint("s-", i%4), Seq: i/4 + 1,
			GroupID: fmt.Sprint("org-", i%2), PreviousID: fmt.Sprint("prev-", i%5),
			Plan: schema.Plans[i%2], Consent: schema.Consent{Analytics: &yes},
			Context: schema.Context{PageURL: fmt.Sprint("https://app.example/p/", i), Referrer: "https://ref.example/", Locale: "en-US",
				Screen: schema.Screen{Width: 1920, Height: 1080 + i%1000}, AppVersion: "1.2.3", UserAgent: "Mozilla/5.0", UnloadSeq: (i / 4) % 3},
			Properties: schema.Properties{Quality: schema.Qualities[i%4], Resolution: schema.Resolutions[i%6], Width: 3840, Height: 2160,
				AspectRatio: schema.AspectRatios[i%6], DurationS: 4.5, Prompt: fmt.Sprint("a cat ", i, " \"quoted\"\n"), Model: "sora-4k",
				GenerationID: fmt.Sprint("g-", i), LatencyMS: int64(1000 + i), Format: "mp4", ErrorCode: fmt.Sprint("E", i%3),
				ErrorMessage: "boom", ErrorStack: "at x\nat y", Setting: "theme", Value: "dark"},
		},
		ReceivedAt: ts.Add(time.Millisecond), Timestamp: ts.Add(-500 * time.Millisecond), Source: "web", IP: "203.0.113.0",
		Device:   schema.Device{Class: "desktop", OS: "Mac OS X", OSVersion: "14.5", Browser: "Chrome", BrowserVersion: "126.0", IsBot: i%9 == 0, Pending: i%11 == 0},
		OptedOut: i%13 == 0,
	}
	return e
}

func marshal(t testing.TB, e schema.Enriched) kafka.Message {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return kafka.Message{Key: []byte(e.UserID), Value: b}
}

func (e *env) produce(t testing.TB, msgs ...kafka.Message) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(e.bc.Brokers...), Topic: e.bc.EventsTopic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchSize: 10000, BatchTimeout: time.Millisecond}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// A topic just created may not be known to every broker yet.
	for {
		err := w.WriteMessages(ctx, msgs...)
		if err == nil {
			return
		}
		if !errors.Is(err, kafka.UnknownTopicOrPartition) || ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// count runs a count query on the events table ({t} is replaced by it).
func (e *env) count(t testing.TB, q string) uint64 {
	t.Helper()
	var n uint64
	if err := e.conn.QueryRow(context.Background(), strings.ReplaceAll(q, "{t}", e.db+".events")).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitCount waits until q returns want.
func (e *env) waitCount(t testing.TB, q string, want uint64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := e.count(t, q)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d after %v, want %d", q, got, within, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// committed returns the group's committed offsets per partition (-1: none).
// waitCommitted waits until the group committed n messages in all.
func (e *env) waitCommitted(t testing.TB, n int64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := sumCommitted(e.committed(t))
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("committed %d messages within %s, want %d", got, within, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// assertExact checks that distinct events are counted once everywhere an
// analyst looks: rows without FINAL, rows per event_id, and the rollup
// the materialized view fills at insert time.
func (e *env) assertExact(t testing.TB, distinct uint64) {
	t.Helper()
	for _, c := range []struct{ what, q string }{
		{"distinct event_ids", "SELECT uniqExact(event_id) FROM {t}"},
		{"rows without FINAL", "SELECT count() FROM {t}"},
		{"rollup events", "SELECT countMerge(events) FROM " + e.db + ".rollups_daily"},
	} {
		if got := e.count(t, c.q); got != distinct {
			t.Errorf("%s: %d, want %d", c.what, got, distinct)
		}
	}
}

func (e *env) committed(t testing.TB) map[int]int64 {
	t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(e.bc.Brokers...), Timeout: 10 * time.Second}
	parts := make([]int, e.bc.Partitions)
	for i := range parts {
		parts[i] = i
	}
	resp, err := cl.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: e.cfg.GroupID, Topics: map[string][]int{e.bc.EventsTopic: parts}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int64{}
	for _, p := range resp.Topics[e.bc.EventsTopic] {
		out[p.Partition] = p.CommittedOffset
	}
	return out
}

func sumCommitted(m map[int]int64) int64 {
	var s int64
	for _, o := range m {
		if o > 0 {
			s += o
		}
	}
	return s
}

// proxy forwards TCP to a target and can be stopped and restarted on the
// same address: the engine seen going away and coming back.
type proxy struct {
	t      testing.TB
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newProxy(t testing.TB, target string) *proxy {
	p := &proxy{t: t, target: target}
	p.up("127.0.0.1:0")
	t.Cleanup(p.down)
	return p
}

func (p *proxy) up(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
}

func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
