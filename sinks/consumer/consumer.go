// Package consumer owns moving events from the bus (a bus.Source: the
// Kafka events topic's consumer group, or a local log) into the ClickHouse
// events table with an exactly-once effect: batching by rows, bytes and
// time, the columnar mapping of schema.Enriched, dead-lettering of
// messages that cannot be stored, and committing positions only after
// ClickHouse acknowledged the insert. It must not create tables
// (schema/migrations does), know the HTTP ingest, or know Kafka (the bus
// hands it messages). See README.md for the exactly-once design.
package consumer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/google/uuid"

	"github.com/sora3web/telemetry/bus"
	"github.com/sora3web/telemetry/internal/audit"
	"github.com/sora3web/telemetry/internal/backoff"
	"github.com/sora3web/telemetry/transform"
)

// Sink is where batches go; ClickHouseSink is the production one.
type Sink interface {
	// WriteBatch stores b and returns once it is durable. Storing a batch
	// with the same Token twice must store it once.
	WriteBatch(ctx context.Context, b *Batch) error
	// HighWater returns the largest offset stored per partition of topic
	// (absent: none stored).
	HighWater(ctx context.Context, topic string, partitions []int) (map[int]int64, error)
	// StoredIDs calls fn with the event_id and received_at of every row of
	// (topic, partition) stored after offset after and received since
	// since: what rebuilds the consumer's window of recent ids.
	StoredIDs(ctx context.Context, topic string, partition int, after int64, since time.Time, fn func(uuid.UUID, time.Time)) error
}

// Sentinel errors of the lifecycle.
var (
	// ErrStarted means Start was called twice.
	ErrStarted = errors.New("consumer already started")
	// errCrash is returned by the test hook to stop as a killed process
	// would: after the insert, before the commit.
	errCrash = errors.New("simulated crash")
)

// Header names of a dead letter.
const (
	HeaderError     = "error"
	HeaderTopic     = "source_topic"
	HeaderPartition = "source_partition"
	HeaderOffset    = "source_offset"
)

// The fetcher hands messages to the batcher in chunks of at most
// fetchChunk (what the source has read already: bus.BatchSource), at most
// fetchQueue messages ahead.
const (
	fetchChunk = 512
	fetchQueue = 8192
)

// drainIdle is how long a large batch may see no new message before the
// batcher takes the source as drained and cuts it (see run).
const drainIdle = 50 * time.Millisecond

// Consumer reads a bus.Source in batches and writes them to a Sink.
type Consumer struct {
	cfg  Config
	sink Sink
	log  *slog.Logger
	m    *metrics

	// ua parses the user agents ingest deferred; made on first use.
	ua     *transform.UAParser
	tracer trace.Tracer

	// afterInsert, when set (tests), runs after an acknowledged insert; an
	// error stops the consumer before the commit.
	afterInsert func() error

	// filter, when set (SetFilter), drops events before insert; see filter.go.
	filter              Filter
	filtered, corrected metric.Int64Counter
	// flights are the batches between their filter and the end of their
	// insert; Barrier waits for them (see filter.go).
	flights flights
	// spare holds the cleared arrays of a prepared batch's messages and
	// records for a batch to come (see fresh).
	spare chan spareArrays
	// strBytes are the bytes per row of each encoding string column of
	// the batch handed over last (by column index, 0 for the others),
	// which size the next batch's (newPendingColumns). The batcher's only.
	strBytes []int

	// win remembers the event ids stored recently (window.go); only the
	// flusher's prepare stage uses it.
	win *window
	// held maps a position to the source's epoch (bus.Message.Epoch) in
	// which the consumer last asked the sink for its stored offsets. While
	// a position's records carry that epoch, no one else wrote it since,
	// and win.loaded is its stored high water (newBatch). The prepare
	// stage's only.
	held map[position]int64

	// audit, when set (SetAudit), stores ingest's audit records and the
	// consumer's own counts in pipeline_audit (audit.go); auditFlush is
	// how long a sink that keeps them (auditFlusher) keeps them before it
	// inserts them (audit.Config.FlushInterval).
	audit      bool
	auditFlush time.Duration

	mu       sync.Mutex
	started  bool
	r        bus.Source
	dlq      bus.DeadLetters
	ctx      context.Context // cancelled to abort retries
	cancel   context.CancelFunc
	stopping chan struct{} // closed by Shutdown: flush and return
	done     chan struct{} // closed when run returned
	wg       sync.WaitGroup
	runErr   error
}

// New returns a consumer that reads src (Kafka's group reader,
// bus/broker.Reader, or a local log, bus.LogReader), writes what cannot be
// stored to dlq and inserts into sink. It owns src and dlq: Shutdown
// closes them.
func New(cfg Config, src bus.Source, dlq bus.DeadLetters, sink Sink, log *slog.Logger) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if src == nil || dlq == nil || sink == nil || log == nil {
		return nil, fmt.Errorf("%w: source, dead-letter writer, sink and logger are required", ErrInvalidConfig)
	}
	m, err := newMetrics()
	if err != nil {
		return nil, fmt.Errorf("creating consumer metrics: %w", err)
	}
	c := &Consumer{cfg: cfg, r: src, dlq: dlq, sink: sink, log: log.With("component", "consumer"), m: m,
		tracer: otel.Tracer("github.com/sora3web/telemetry/sinks/consumer"),
		win:    newWindow(cfg.DedupWindow, cfg.DedupMaxIDs), held: map[position]int64{}, spare: make(chan spareArrays, 1)}
	return c, nil
}

// Start starts consuming in the background. ctx bounds only the start.
func (c *Consumer) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return ErrStarted
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.stopping, c.done = make(chan struct{}), make(chan struct{})
	c.started = true
	msgs := make(chan []bus.Message, fetchQueue/fetchChunk)
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.fetch(msgs) }()
	go func() {
		defer c.wg.Done()
		defer close(c.done)
		c.runErr = c.run(msgs)
	}()
	if f, ok := c.sink.(auditFlusher); ok && c.audit {
		c.wg.Add(1)
		go func() { defer c.wg.Done(); c.flushAudit(f) }()
	}
	c.log.Info("consumer started")
	return nil
}

// flushGrace bounds how long Shutdown lets the last batch's insert and
// commit retry (ClickHouse or the broker down) before abandoning them, so
// a graceful stop during an outage ends cleanly and leaves the rest of the
// shutdown its time. Abandoning is safe: nothing uncommitted is lost, it
// is redelivered, and what was inserted is skipped by its stored offsets.
const flushGrace = 5 * time.Second

// Shutdown flushes the batch in progress (insert, then commit), leaves the
// group and waits for every goroutine. Retries that outlast flushGrace are
// abandoned with a warning; when ctx ends first they are abandoned too, and
// Shutdown says so. Either way nothing uncommitted is lost: it is
// redelivered.
func (c *Consumer) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	if !c.started { // nothing to stop: Shutdown is safe before Start
		c.mu.Unlock()
		return nil
	}
	select {
	case <-c.stopping:
	default:
		close(c.stopping)
	}
	c.mu.Unlock()
	var err error
	grace := time.NewTimer(flushGrace)
	defer grace.Stop()
	select {
	case <-c.done:
	case <-grace.C:
		c.log.Warn("stopping without the last batch's commit: it is redelivered at the next start, and its stored offsets keep it from being stored twice",
			"grace", flushGrace)
	case <-ctx.Done():
		err = fmt.Errorf("consumer shutdown: %w", ctx.Err())
	}
	c.cancel()
	c.wg.Wait()
	if c.runErr != nil && !errors.Is(c.runErr, context.Canceled) {
		err = errors.Join(err, c.runErr)
	}
	return errors.Join(err, c.r.Close(), c.dlq.Close())
}

// auditFlusher is an AuditSink that keeps audit rows before it inserts
// them (EngineSink): the consumer has it insert them once the oldest is
// auditFlush old, and all of them once its last batch is stored.
type auditFlusher interface {
	// FlushAudit inserts the kept rows if the oldest was kept at least
	// olderThan ago (0: whatever is kept).
	FlushAudit(ctx context.Context, olderThan time.Duration) error
}

// flushAudit has f insert its kept audit rows once the oldest is
// auditFlush old, checking every fifth of that, and all of them once run
// has returned (the last batch stored), within flushGrace. Rows it leaves
// kept are inserted by the next start (Recover).
func (c *Consumer) flushAudit(f auditFlusher) {
	tick := time.NewTicker(c.auditFlush / 5)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if err := f.FlushAudit(c.ctx, c.auditFlush); err != nil && c.ctx.Err() == nil {
				c.log.Warn("inserting kept audit rows; they stay kept for the next try", "err", err)
			}
		case <-c.done:
			ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), flushGrace)
			defer cancel()
			if err := f.FlushAudit(ctx, 0); err != nil {
				c.log.Warn("inserting kept audit rows at shutdown; the next start inserts them", "err", err)
			}
			return
		}
	}
}

// fetch feeds msgs, in chunks, until the consumer is cancelled.
func (c *Consumer) fetch(msgs chan<- []bus.Message) {
	defer close(msgs)
	bo := c.newBackoff()
	for {
		chunk, err := c.fetchChunk()
		if err != nil {
			if c.ctx.Err() != nil {
				return
			}
			c.log.Warn("fetching from the bus", "err", err)
			if !bo.Wait(c.ctx) {
				return
			}
			continue
		}
		bo.Reset()
		for i, m := range chunk {
			// The lag of each partition as of its last message here.
			if m.HighWater > 0 && (i == len(chunk)-1 || chunk[i+1].Partition != m.Partition) {
				c.m.setLag(m.Partition, m.HighWater-m.Offset-1)
			}
		}
		select {
		case msgs <- chunk:
		case <-c.ctx.Done():
			return
		}
	}
}

// fetchChunk returns the next messages: what the source has read, up to
// fetchChunk, or the next one.
func (c *Consumer) fetchChunk() ([]bus.Message, error) {
	if bs, ok := c.r.(bus.BatchSource); ok {
		return bs.FetchBatch(c.ctx, make([]bus.Message, 0, fetchChunk), fetchChunk)
	}
	m, err := c.r.Fetch(c.ctx)
	if err != nil {
		return nil, err
	}
	return []bus.Message{m}, nil
}

// pending is the batch being assembled.
type pending struct {
	msgs    []bus.Message
	hint    int // the messages of the batch before (fresh)
	events  int // msgs that are events (not audit records): what batch_rows counts
	records []record
	// cols are the records' rows, added as each is decoded (its message
	// is then in the CPU's cache): newBatch takes them when it keeps
	// every record. Nil until the first record.
	cols  []column
	bad   []bus.Message // dead letters, with the error header set
	bytes int
	first time.Time
	audit batchAudit // what the batch counts (audit.go)
}

// run batches messages and hands each batch to the flusher (flushAll),
// which prepares, inserts and commits it while the next batch is
// assembled. Batches are handed over, inserted and committed strictly in
// order. A batch is ready at
// batch_rows messages, batch_bytes or batch_interval after its first
// message; while the flusher is busy, a ready batch keeps growing up to
// batch_rows. On shutdown the batch in progress is flushed last.
func (c *Consumer) run(msgs <-chan []bus.Message) error {
	batches := make(chan *pending)
	failed := make(chan error, 1)
	flusherDone := make(chan struct{})
	go func() {
		defer close(flusherDone)
		c.flushAll(batches, failed)
	}()
	finish := func(p *pending, err error) error {
		if err == nil && len(p.msgs) > 0 {
			select {
			case batches <- p:
			case err = <-failed:
			}
		}
		close(batches)
		<-flusherDone
		select {
		case ferr := <-failed:
			err = errors.Join(err, ferr)
		default:
		}
		return err
	}

	p := &pending{}
	ready := false
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	// The end of a drain: a batch of at least a tenth of batch_rows to
	// which nothing was added for a tick of drainIdle is ready at once,
	// instead of waiting out batch_interval with nothing to wait for. A
	// steady flow keeps adding, and a trickle never reaches the tenth, so
	// neither makes smaller inserts than before.
	idle := time.NewTicker(drainIdle)
	defer idle.Stop()
	seen := 0 // len(p.msgs) at the last tick
	// carry is the rest of the last chunk: its messages go into the batch
	// until it is full, the others into the next.
	var carry []bus.Message
	full := func() bool { return p.events >= c.cfg.BatchRows || p.bytes >= c.cfg.BatchBytes }
	for {
		for len(carry) > 0 && !full() {
			if len(p.msgs) == 0 {
				p.first = time.Now()
				timer.Reset(c.cfg.BatchInterval)
			}
			c.add(p, carry[0])
			carry = carry[1:]
		}
		in, out := msgs, chan<- *pending(nil)
		if full() {
			in, ready = nil, true // full: wait for the flusher
		}
		if ready {
			out = batches
		}
		size := len(p.msgs) // read before the flusher owns p
		if out != nil {
			c.measureColumns(p.cols) // likewise; a batch that grows on is measured again
		}
		select {
		case chunk, ok := <-in:
			if !ok {
				return finish(&pending{}, c.ctx.Err())
			}
			carry = chunk
		case <-timer.C:
			ready = len(p.msgs) > 0
		case <-idle.C:
			if n := len(p.msgs); n == seen && p.events >= max(1, c.cfg.BatchRows/10) {
				ready = true
			}
			seen = len(p.msgs)
		case out <- p:
			timer.Stop()
			p, ready = c.fresh(size), false
		case err := <-failed:
			failed <- err
			return finish(&pending{}, nil)
		case <-c.stopping:
			timer.Stop()
			return finish(p, nil)
		}
	}
}

// spareArrays are a batch's arrays of messages and records, cleared.
type spareArrays struct {
	msgs    []bus.Message
	records []record
}

// fresh returns an empty batch for about n messages (the last batch's).
// Its arrays are the ones a prepared batch left (recycle), whatever their
// size: the arrays only grow (grow), so once they have held the largest
// batch no batch allocates them again or copies them as they fill.
// Growing a slice of 100k records by doubling copied them over and over
// (a tenth of the consumer's CPU), and a new array of 100k records (76
// MB) is memory the process touches for the first time: its page faults,
// as each record was appended, were a sixteenth of the consumer's CPU in
// a Kafka drain.
//
// Until 2026-12-03 a spare array smaller than the last batch was dropped
// for a new one, an eighth larger than the last batch, and a batch larger
// than its array grew it by append. Batches cut by batch_interval while
// the flusher is busy vary (33k to 98k messages in one drain of the audit
// bench), so some batches did one or the other, faulting in fresh pages:
// in one round of BenchmarkAuditCostSideBySide under perf, the audit-on
// consumer spent 8% of its CPU clearing pages for add's appends. With
// arrays that only grow, the next round under perf had none there. The
// audit's cost side by side did not move with it (a median of +11% in 9
// rounds): both processes still spend 15-19% of their CPU clearing pages,
// for the log's read buffers, decoded strings and the engine.
func (c *Consumer) fresh(n int) *pending {
	p := &pending{hint: n}
	select {
	case s := <-c.spare:
		p.msgs, p.records = s.msgs, s.records
	default:
		n += n / 8
		p.msgs, p.records = make([]bus.Message, 0, n), make([]record, 0, n)
	}
	return p
}

// grow returns s with room for one more element: when it is full, room
// for twice as many, but not past a full batch (batch_rows, and an eighth
// more for the audit records among the messages) until it holds one. So
// an array of a large batch grows in a step or two, and a trickle's stays
// small.
func grow[T any](s []T, batchRows int) []T {
	n := len(s)
	if n < cap(s) {
		return s
	}
	more := n
	if full := batchRows + batchRows/8; n < full {
		more = min(n, full-n)
	}
	// Not slices.Grow: append's growth would round the room up by as
	// much as doubling it.
	t := make([]T, n, n+max(more, 1))
	copy(t, s)
	return t
}

// recycle clears msgs and records (so they hold no message's bytes) and
// keeps their arrays for fresh, unless some are kept already.
func (c *Consumer) recycle(msgs []bus.Message, records []record) {
	clear(msgs)
	clear(records)
	select {
	case c.spare <- spareArrays{msgs: msgs[:0], records: records[:0]}:
	default:
	}
}

// add decodes m into p; a message that cannot be stored becomes a dead letter.
func (c *Consumer) add(p *pending, m bus.Message) {
	p.msgs = append(grow(p.msgs, c.cfg.BatchRows), m)
	p.bytes += len(m.Value)
	if audit.IsRecord(m) {
		c.addAuditRecord(p, m)
		return
	}
	p.events++
	// The record is decoded in its place in the batch: a copy of it is
	// some 800 bytes.
	p.records = grow(p.records, c.cfg.BatchRows)
	p.records = p.records[:len(p.records)+1]
	r := &p.records[len(p.records)-1]
	err := decode(m, r)
	reason := "decode"
	if errors.Is(err, ErrMap) {
		reason = "map"
	}
	if c.audit {
		at := r.e.ReceivedAt
		if at.IsZero() {
			at = time.Now() // undecodable: counted in the window it was read in
		}
		r.group = p.audit.consume(at, r.e.Source, m)
		if err != nil {
			p.audit.message(at, r.e.Source, audit.DeadLettered, reason, m.Topic, m.Partition, m.Offset)
		}
	}
	if err != nil {
		*r = record{}
		p.records = p.records[:len(p.records)-1]
		c.deadLetter(p, m, err, reason)
		return
	}
	if r.e.Device.Pending {
		c.finishDevice(r)
	}
	if p.cols == nil {
		// Room for the last batch's rows and an eighth more, not for the
		// largest batch the arrays held: a trickle after a burst would
		// otherwise allocate (and clear) columns of a full batch each time.
		p.cols = c.newPendingColumns(min(cap(p.records), max(p.hint+p.hint/8, 1)))
	}
	for _, col := range p.cols {
		col.add(r)
	}
}

// newPendingColumns returns the columns of a batch of up to n records,
// with room for them: an encoding string column gets the bytes per row
// of the last batch's, so that its buffer is not grown by doubling (each
// step a copy of what it held and new memory to fault in: the string
// columns of 100k rows are some 70 MB).
func (c *Consumer) newPendingColumns(n int) []column {
	cols := newColumns(c.native())
	for i, col := range cols {
		col.reserve(n)
		if s, ok := col.(*strCol); ok && s.encoding && i < len(c.strBytes) && c.strBytes[i] > 0 {
			s.enc.Buf = make([]byte, 0, c.strBytes[i]*n*9/8+64)
		}
	}
	return cols
}

// measureColumns keeps the bytes per row of cols' encoding string
// columns for newPendingColumns: numbers, not the columns, so that a
// batch's memory is not held once it is stored.
func (c *Consumer) measureColumns(cols []column) {
	if len(cols) == 0 {
		return
	}
	if len(c.strBytes) != len(cols) {
		c.strBytes = make([]int, len(cols))
	}
	for i, col := range cols {
		if s, ok := col.(*strCol); ok && s.encoding && s.rows > 0 {
			c.strBytes[i] = len(s.enc.Buf) / s.rows
		}
	}
}

// native reports whether batches are written as Native blocks (the
// engine's sink): their string columns then encode as they are added.
func (c *Consumer) native() bool {
	_, ok := c.sink.(preparingSink)
	return ok
}

// deadLetter adds m to p's dead letters, with headers saying why and
// where it was read.
func (c *Consumer) deadLetter(p *pending, m bus.Message, err error, reason string) {
	dl := bus.Message{Key: m.Key, Value: m.Value, Headers: append(append([]bus.Header(nil), m.Headers...),
		bus.Header{Key: HeaderError, Value: []byte(err.Error())},
		bus.Header{Key: HeaderTopic, Value: []byte(m.Topic)},
		bus.Header{Key: HeaderPartition, Value: []byte(strconv.Itoa(m.Partition))},
		bus.Header{Key: HeaderOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))},
	)}
	p.bad = append(p.bad, dl)
	c.log.Warn("dead-lettering message", "partition", m.Partition, "offset", m.Offset, "err", err)
	c.m.deadLetters.Add(context.Background(), 1, metric.WithAttributes(attribute.String("reason", reason)))
}

// finishDevice parses the user agent of an event that ingest marked
// device.pending (its parse budget was spent) and drops the raw string, so
// only the parsed fields are stored.
func (c *Consumer) finishDevice(r *record) {
	if c.ua == nil {
		ua, err := transform.NewUAParser(c.cfg.UACacheSize)
		if err != nil {
			c.log.Error("loading the user-agent parser; storing the event with device_pending", "err", err)
			return
		}
		c.ua = ua
	}
	r.e.Device = c.ua.Parse(r.e.Context.UserAgent)
	r.e.Context.UserAgent = ""
}

// flushAll stores the batches from batches in order, in two stages that
// overlap: prepare (filter, dedup, build the columns, start the audit
// insert, have the sink encode the block) runs for a batch while the
// previous one is stored (insert, dead letters, commit). Both are serial
// per stage, so batches are inserted and committed strictly in order. On
// the first error (sent to failed) the stages stop and drain batches;
// what was prepared and not stored is abandoned: nothing of it is
// committed, so it is redelivered.
func (c *Consumer) flushAll(batches <-chan *pending, failed chan<- error) {
	fail := func(err error) {
		select {
		case failed <- err:
		default: // the first error is what the batcher reports
		}
	}
	if err := c.recoverInserts(); err != nil {
		fail(err)
		for range batches {
		}
		return
	}
	prepared := make(chan *preparedBatch) // unbuffered: one prepared while the previous is stored
	storeFailed := make(chan struct{})
	storeDone := make(chan struct{})
	go func() {
		defer close(storeDone)
		var err error
		for pb := range prepared {
			if err == nil {
				if err = c.store(pb); err != nil {
					fail(err)
					close(storeFailed)
				}
			}
			if err != nil {
				c.abandon(pb)
			}
		}
	}()
	defer func() {
		close(prepared)
		<-storeDone
	}()
	for p := range batches {
		pb, err := c.prepare(p)
		if err == nil && pb != nil {
			select {
			case prepared <- pb:
				continue
			case <-storeFailed:
				c.abandon(pb)
			}
		}
		if err != nil {
			fail(err)
		}
		for range batches { // drain: the batcher is returning
		}
		return
	}
}

// preparedBatch is a batch between its two stages (flushAll).
type preparedBatch struct {
	p    *pending
	b    *Batch
	ctx  context.Context
	span trace.Span
	// flight is the batch's ticket from before its filter to the end of
	// its insert (Barrier).
	flight uint64
	// auditStored waits for the batch's audit insert (startAudit).
	auditStored func() error
	// messages is how many messages the batch read.
	messages int
}

// commitPoints returns, of msgs, the last message of each topic's
// partition, without its key, value and headers: what a bus.Source's
// Commit takes to commit them all (it commits up to the largest offset of
// each partition). A batch holds on to it, not to every message's bytes,
// from its preparation to its commit.
func commitPoints(msgs []bus.Message) []bus.Message {
	last := map[position]int{}
	var out []bus.Message
	for _, m := range msgs {
		pos := position{m.Topic, m.Partition}
		i, ok := last[pos]
		if !ok {
			last[pos] = len(out)
			out = append(out, bus.Message{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset})
			continue
		}
		out[i].Offset = max(out[i].Offset, m.Offset)
	}
	return out
}

// prepare is flushAll's first stage for p: the filter, the batch's rows
// (newBatch), its audit insert started and, where the sink can
// (preparingSink), its block encoded. It returns nil for an empty batch.
func (c *Consumer) prepare(p *pending) (*preparedBatch, error) {
	if len(p.msgs) == 0 {
		return nil, nil
	}
	ctx, span := c.batchSpan(p.msgs)
	c.m.batchBytes.Record(ctx, int64(p.bytes))
	pb := &preparedBatch{p: p, ctx: ctx, span: span, flight: c.flights.begin()}
	records, changed := c.applyFilter(p.records, &p.audit) // privacy: drop deleted subjects (filter.go)
	cols := p.cols
	if changed {
		cols = nil // the rows differ from the messages': built anew
	}
	if err := c.retry("read stored offsets", func() error {
		var err error
		var counts *batchAudit
		if c.audit {
			counts = &p.audit
		}
		pb.b, err = c.newBatch(records, cols, p.records, counts)
		return err
	}); err != nil {
		c.abandon(pb)
		return nil, err
	}
	b := pb.b
	if c.audit {
		for _, r := range b.resent {
			p.audit.message(r.e.ReceivedAt, r.e.Source, audit.Deduplicated, "", r.topic, r.partition, r.offset)
		}
	}
	// The rows are in b's columns: the records are not needed past here,
	// and of the messages only what the commit needs.
	pb.messages = len(p.msgs)
	msgs, recs := p.msgs, p.records
	p.records, p.cols, b.resent, p.msgs = nil, nil, nil, commitPoints(p.msgs)
	c.recycle(msgs, recs)
	pb.auditStored = c.startAudit(p)
	b.ready = pb.auditStored
	// The window holds b's ids from here on (newBatch added them): the
	// next batch, prepared while b is inserted, is checked against them.
	c.windowStored(b)
	if ps, ok := c.sink.(preparingSink); ok && b.Rows() > 0 {
		if err := c.retry("encode the batch", func() error { return ps.Prepare(b) }); err != nil {
			c.abandon(pb)
			return nil, err
		}
	}
	return pb, nil
}

// abandon ends a prepared batch that will not be stored: its flight
// ends, its audit insert is waited for and the sink drops what it
// prepared. Its messages are not committed, so they are redelivered.
func (c *Consumer) abandon(pb *preparedBatch) {
	if pb.auditStored != nil {
		pb.auditStored() // owns the audit insert's goroutine
	}
	if ps, ok := c.sink.(preparingSink); ok && pb.b != nil {
		ps.Discard(pb.b)
	}
	c.flights.end(pb.flight)
	pb.span.End()
}

// store is flushAll's second stage: pb's rows inserted (after its audit
// rows), its dead letters written, and only then are the offsets
// committed. Each step retries with backoff until it succeeds or the
// consumer is cancelled. A batch that fails here is abandoned by the
// caller.
func (c *Consumer) store(pb *preparedBatch) error {
	p, b, ctx, span := pb.p, pb.b, pb.ctx, pb.span
	if b.Rows() > 0 {
		if err := c.retry("insert", func() error {
			start := time.Now()
			if err := c.sink.WriteBatch(trace.ContextWithSpan(c.ctx, span), b); err != nil {
				span.RecordError(err)
				return err
			}
			c.m.insertSeconds.Record(ctx, time.Since(start).Seconds())
			return nil
		}); err != nil {
			return err
		}
		c.m.batchRows.Record(ctx, int64(b.Rows()))
		c.m.rowsInserted.Add(ctx, int64(b.Rows()))
	}
	if err := pb.auditStored(); err != nil { // before the commit, with or without rows inserted
		return err
	}
	c.flights.end(pb.flight)
	if b.skipped > 0 {
		c.m.rowsSkipped.Add(ctx, int64(b.skipped))
		c.log.Info("skipped redelivered messages already stored", "count", b.skipped)
	}
	if c.afterInsert != nil {
		if err := c.afterInsert(); err != nil {
			return err
		}
	}
	if len(p.bad) > 0 {
		if err := c.retry("write dead letters", func() error { return c.dlq.WriteMessages(c.ctx, p.bad...) }); err != nil {
			return err
		}
	}
	if err := c.retry("commit", func() error { return c.r.Commit(c.ctx, p.msgs...) }); err != nil {
		return err
	}
	if s, ok := c.sink.(committedSink); ok && b.Rows() > 0 {
		if err := s.Committed(b); err != nil { // it is inserted again, harmlessly, at the next start
			c.log.Warn("forgetting a committed batch", "err", err)
		}
	}
	span.SetAttributes(attribute.Int("telemetry.batch.messages", pb.messages), attribute.Int("telemetry.batch.rows", b.Rows()),
		attribute.Int("telemetry.batch.dead_letters", len(p.bad)))
	c.log.DebugContext(ctx, "batch stored", "messages", pb.messages, "rows", b.Rows(), "dead_letters", len(p.bad), "age", time.Since(p.first))
	span.End()
	*p = pending{}
	return nil
}

// maxSpanLinks bounds the links from a batch's span to the traces of its
// messages.
const maxSpanLinks = 128

// batchSpan starts the span of one batch's insert and commit. A batch
// gathers events of many requests, so instead of one parent it links to
// the trace context each message carries (W3C traceparent headers set by
// ingest); when the whole batch came from one trace it is that trace's
// child.
func (c *Consumer) batchSpan(msgs []bus.Message) (context.Context, trace.Span) {
	prop := otel.GetTextMapPropagator()
	var links []trace.Link
	seen := map[trace.SpanID]bool{}
	for _, m := range msgs {
		if len(links) == maxSpanLinks {
			break
		}
		if len(m.Headers) == 0 {
			continue // no trace to link (a client without one, the audit off)
		}
		sc := trace.SpanContextFromContext(prop.Extract(context.Background(), headerCarrier(m.Headers)))
		if sc.IsValid() && !seen[sc.SpanID()] {
			seen[sc.SpanID()] = true
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	parent := context.Background()
	if len(links) == 1 {
		parent = trace.ContextWithRemoteSpanContext(parent, links[0].SpanContext)
	}
	return c.tracer.Start(parent, "consumer insert", trace.WithSpanKind(trace.SpanKindConsumer), trace.WithLinks(links...))
}

// headerCarrier reads a message's headers as a propagation carrier, in
// place. Until 2026-12-05 batchSpan copied every message's headers into a
// map of its own: a batch whose messages carry no trace (requests without
// one) was looked through whole, one map per message, and one with its
// entries per audit record (its kind header).
type headerCarrier []bus.Header

var _ propagation.TextMapCarrier = headerCarrier(nil)

// Get returns the value of the first header named key, or "".
func (h headerCarrier) Get(key string) string {
	for _, x := range h {
		if x.Key == key {
			return string(x.Value)
		}
	}
	return ""
}

// Set does nothing: the carrier is only extracted from.
func (h headerCarrier) Set(string, string) {}

// Keys returns the headers' names.
func (h headerCarrier) Keys() []string {
	out := make([]string, len(h))
	for i, x := range h {
		out[i] = x.Key
	}
	return out
}

// position names one partition of one source: a Kafka topic's partition,
// or a local log (its identity as topic, partition 0).
type position struct {
	topic     string
	partition int
}

// newBatch builds the insert of records whose positions the sink does not
// hold yet (a crash between insert and commit redelivers them), with a
// token naming the offset range of each (topic, partition); the stored
// offsets come from storedOffsets. cols, when set, are the rows of every
// record, in order (pending.cols): the batch takes them when it keeps
// every record. counts, when set, gets the batch's inserted counts
// (batchAudit.startInserted: named over all, the records before the
// filter left any out).
func (c *Consumer) newBatch(records []record, cols []column, all []record, counts *batchAudit) (*Batch, error) {
	ranges, epochs := spansOf(records)
	// The stored offsets of every position the counts name: when the
	// filter left records out, those of all (the inserted counts are then
	// named over all first).
	nameAll := counts != nil && len(all) != len(records)
	asking, positions := records, ranges
	if nameAll {
		asking = all
		positions, epochs = spansOf(all)
	}
	b := &Batch{}
	if len(asking) == 0 {
		b.cols = newColumns(c.native())
		return b, nil
	}
	stored, asked, err := c.storedOffsets(asking, epochs)
	if err != nil {
		return nil, err
	}
	for pos := range positions {
		if err := c.syncWindow(pos, stored); err != nil {
			return nil, err
		}
	}
	for pos, e := range asked {
		if e != 0 {
			c.held[pos] = e
		} else {
			delete(c.held, pos)
		}
	}
	// The inserted counts (batchAudit.startInserted) are named in the pass
	// below, unless nameAll.
	if counts != nil {
		counts.startInserted()
	}
	if nameAll {
		forAbove(all, stored, counts.nameInserted)
	}
	if len(records) == 0 {
		b.cols = newColumns(c.native())
		return b, nil
	}
	resends := 0
	var kept []int // the records kept, once one is left out (nil while all are)
	hw := highWater{stored: stored}
	for i := range records {
		r := &records[i]
		keep := hw.above(r) // else stored already
		if keep && counts != nil && !nameAll {
			counts.nameInserted(r)
		}
		if keep {
			if storedAt, ok := c.win.get(r.id); ok && !c.storedCopyDeleted(r, storedAt) {
				resends++
				b.resent = append(b.resent, r)
				keep = false
			} else {
				c.win.add(r.id, r.e.ReceivedAt)
				if counts != nil {
					counts.countInserted(r)
				}
			}
		}
		switch {
		case !keep && kept == nil:
			kept = make([]int, i, len(records))
			for j := range kept {
				kept[j] = j
			}
		case keep && kept != nil:
			kept = append(kept, i)
		}
	}
	if kept == nil && cols != nil && cols[0].len() == len(records) {
		b.cols = cols
	} else {
		if kept == nil {
			kept = make([]int, len(records))
			for i := range kept {
				kept[i] = i
			}
		}
		b.cols = newColumns(c.native())
		for _, col := range b.cols {
			col.reserve(len(kept))
		}
		for _, i := range kept {
			for _, col := range b.cols {
				col.add(&records[i])
			}
		}
	}
	if resends > 0 {
		c.m.resends.Add(c.ctx, int64(resends))
		c.log.Info("dropped resent events already stored", "count", resends)
	}
	b.skipped = len(records) - b.Rows() - resends
	b.ranges = ranges
	keys := make([]position, 0, len(ranges))
	for pos := range ranges {
		keys = append(keys, pos)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].topic != keys[j].topic {
			return keys[i].topic < keys[j].topic
		}
		return keys[i].partition < keys[j].partition
	})
	h := sha256.New()
	for _, pos := range keys {
		lo := ranges[pos][0]
		if hw, ok := stored[pos]; ok && hw+1 > lo {
			lo = hw + 1
		}
		fmt.Fprintf(h, "|%s/%d:%d-%d", pos.topic, pos.partition, lo, ranges[pos][1])
	}
	b.Token = hex.EncodeToString(h.Sum(nil))
	return b, nil
}

// spansOf returns, per position of records, its offsets' range and its
// records' epoch. A batch's records come in runs of one position, so the
// maps are asked once a run, not once a record.
func spansOf(records []record) (ranges map[position][2]int64, epochs map[position]hold) {
	type span struct {
		pos position
		rg  [2]int64
		h   hold
	}
	var spans []span
	index := map[position]int{}
	last := -1
	for i := range records {
		r := &records[i]
		if last < 0 || spans[last].pos.partition != r.partition || spans[last].pos.topic != r.topic {
			pos := position{r.topic, r.partition}
			j, ok := index[pos]
			if !ok {
				j = len(spans)
				index[pos] = j
				spans = append(spans, span{pos: pos, rg: [2]int64{r.offset, r.offset}, h: hold{epoch: r.epoch}})
			}
			last = j
		}
		sp := &spans[last]
		sp.h = hold{epoch: r.epoch, mixed: sp.h.mixed || sp.h.epoch != r.epoch}
		sp.rg[0], sp.rg[1] = min(sp.rg[0], r.offset), max(sp.rg[1], r.offset)
	}
	ranges = make(map[position][2]int64, len(spans))
	epochs = make(map[position]hold, len(spans))
	for _, sp := range spans {
		ranges[sp.pos], epochs[sp.pos] = sp.rg, sp.h
	}
	return ranges, epochs
}

// forAbove calls f with each of records above its position's stored high
// water in stored.
func forAbove(records []record, stored map[position]int64, f func(*record)) {
	hw := highWater{stored: stored}
	for i := range records {
		if hw.above(&records[i]) {
			f(&records[i])
		}
	}
}

// highWater says, record after record, whether each is above its
// position's stored high water (absent: none stored). A batch's records
// come in runs of one position, so stored is asked once a run.
type highWater struct {
	stored  map[position]int64
	pos     position // the position of hw and ok
	hw      int64
	ok, set bool
}

// above reports whether r's offset is above its position's high water.
func (h *highWater) above(r *record) bool {
	if !h.set || r.partition != h.pos.partition || r.topic != h.pos.topic {
		h.pos, h.set = position{r.topic, r.partition}, true
		h.hw, h.ok = h.stored[h.pos]
	}
	return !h.ok || r.offset > h.hw
}

// hold is the epoch of a position's records in a batch: its last
// record's, and whether an earlier one's differed (the batch spans a
// reassignment).
type hold struct {
	epoch int64
	mixed bool
}

// storedOffsets returns the largest offset stored of each position of
// records (absent: none). It asks the sink only for the positions whose
// records are not all of the epoch in which it asked last (c.held): a new
// hold (a start, an assignment), where another reader may have stored
// offsets since. Asked in a batch that spans two holds, the answer covers
// the later one (its messages were read after its assignment). Within one
// hold nobody else writes the position, so its stored high water is what
// the consumer prepared last (win.loaded; a batch that fails to store
// stops the consumer). Asking per batch cost the engine a query per batch,
// about 20 ms of its time beside inserts. The offsets are asked of each
// record's own topic, as the insert writes it: a batch may mix sources (a
// local log and Kafka share one table, and so do several all-in-one
// instances), and one source's offsets say nothing about another's.
// asked are the positions asked, with their records' epoch: newBatch marks
// them held once the window has them. It takes the entries of epochs it
// visits out of the map.
func (c *Consumer) storedOffsets(records []record, epochs map[position]hold) (stored, asked map[position]int64, err error) {
	stored = make(map[position]int64, len(epochs))
	asked = map[position]int64{}
	parts := map[string][]int{} // topic -> partitions to ask, in first-seen order
	var topics []string
	for _, r := range records {
		pos := position{r.topic, r.partition}
		h, ok := epochs[pos]
		if !ok {
			continue // seen already
		}
		delete(epochs, pos)
		if h.epoch != 0 && !h.mixed && c.held[pos] == h.epoch {
			if hw, ok := c.win.loaded[pos]; ok && hw >= 0 {
				stored[pos] = hw
			}
			continue
		}
		asked[pos] = h.epoch
		if _, seen := parts[r.topic]; !seen {
			topics = append(topics, r.topic)
		}
		parts[r.topic] = append(parts[r.topic], r.partition)
	}
	for _, topic := range topics {
		hw, err := c.sink.HighWater(c.ctx, topic, parts[topic])
		if err != nil {
			return nil, nil, err
		}
		for p, off := range hw {
			stored[position{topic, p}] = off
		}
	}
	return stored, asked, nil
}

// recoveringSink is a Sink that can be left with inserts half done by a
// killed process and completes them (EngineSink: the engine dies with the
// consumer).
type recoveringSink interface {
	Recover(ctx context.Context) (int, error)
}

// preparingSink is a Sink that does a batch's costly preparation (the
// engine's: encoding its Native block) apart from WriteBatch, so that the
// consumer prepares the next batch while the previous one is inserted.
type preparingSink interface {
	// Prepare does b's preparation; WriteBatch then uses it.
	Prepare(b *Batch) error
	// Discard drops what Prepare made for a batch that is not written.
	Discard(b *Batch)
}

// committedSink is a Sink told when a batch's position is committed.
type committedSink interface {
	Committed(b *Batch) error
}

// recoverInserts has the sink complete what a killed process left half
// done, before the first batch.
func (c *Consumer) recoverInserts() error {
	s, ok := c.sink.(recoveringSink)
	if !ok {
		return nil
	}
	// A deletion's Barrier waits for the recovery as for a batch in
	// flight: the blocks hold events received before any deletion that
	// comes now, which must find them stored.
	defer c.flights.end(c.flights.begin())
	return c.retry("complete unfinished inserts", func() error {
		n, err := s.Recover(c.ctx)
		if n > 0 {
			c.log.Info("completed the inserts of batches a stopped process did not commit", "batches", n)
		}
		return err
	})
}

// syncWindow makes the window complete for pos before its records are
// checked: at the first batch of a position (a start, an assignment) it
// loads the ids stored there within the window; when the table holds
// offsets of pos beyond what the window knows (another member of the
// group stored them while it owned the partition, or a crash came between
// an insert and its commit) it loads those.
func (c *Consumer) syncWindow(pos position, stored map[position]int64) error {
	known, ok := c.win.loaded[pos]
	if !ok {
		known = -1
	}
	hw, stores := stored[pos]
	if ok && (!stores || hw <= known) {
		return nil
	}
	start, n := time.Now(), 0
	if err := c.sink.StoredIDs(c.ctx, pos.topic, pos.partition, known, c.win.since(), func(id uuid.UUID, at time.Time) {
		c.win.add(id, at)
		n++
	}); err != nil {
		return err
	}
	if stores {
		known = max(known, hw)
	}
	c.win.loaded[pos] = known
	c.log.Info("loaded stored event ids into the dedup window", "topic", pos.topic, "partition", pos.partition,
		"ids", n, "took", time.Since(start))
	return nil
}

// windowStored records that b's positions are stored up to its last
// offsets, and expires the window (hourly, or when over dedup_max_ids).
func (c *Consumer) windowStored(b *Batch) {
	for pos, rg := range b.ranges {
		c.win.loaded[pos] = max(c.win.loaded[pos], rg[1])
	}
	if c.win.len() > c.win.maxIDs || minuteOf(c.win.since()) >= c.win.floor+60 {
		if c.win.expire() {
			c.log.Warn("the dedup window holds less than consumer.dedup_window: consumer.dedup_max_ids reached",
				"held", c.win.held(), "dedup_window", c.win.span, "dedup_max_ids", c.win.maxIDs)
		}
	}
	c.m.setWindow(c.win.len(), c.win.held())
}

// retry runs f until it succeeds, waiting with exponential backoff between
// attempts, or until the consumer is cancelled.
func (c *Consumer) retry(op string, f func() error) error {
	bo := c.newBackoff()
	for {
		err := f()
		if err == nil {
			return nil
		}
		if c.ctx.Err() != nil {
			return fmt.Errorf("%s: %w", op, c.ctx.Err())
		}
		c.m.retries.Add(context.Background(), 1, metric.WithAttributes(attribute.String("operation", op)))
		c.log.Warn("retrying", "operation", op, "in", bo.Next(), "err", err)
		if !bo.Wait(c.ctx) {
			return fmt.Errorf("%s: %w", op, errors.Join(c.ctx.Err(), err))
		}
	}
}

func (c *Consumer) newBackoff() *backoff.Backoff {
	return backoff.New(c.cfg.BackoffMin, c.cfg.BackoffMax)
}
