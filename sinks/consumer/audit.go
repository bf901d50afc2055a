package consumer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/sora3web/telemetry/bus"
	"github.com/sora3web/telemetry/internal/audit"
	"github.com/sora3web/telemetry/sinks/chdb"
)

// AuditSink is a Sink that also stores audit rows (internal/audit) in
// pipeline_audit. Storing the same rows twice must count them once (the
// table keeps one row per record id).
type AuditSink interface {
	WriteAudit(ctx context.Context, rows []audit.Row) error
}

var (
	_ AuditSink = (*ClickHouseSink)(nil)
	_ AuditSink = (*EngineSink)(nil)
)

// SetAudit makes the consumer store its counts and ingest's audit records
// in pipeline_audit when cfg.Enabled (the sink must be an AuditSink), a
// sink that keeps them inserting them every cfg.FlushInterval. Call it
// before Start. Without it audit records on the bus are committed and not
// stored.
func (c *Consumer) SetAudit(cfg audit.Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if cfg.Enabled {
		if _, ok := c.sink.(AuditSink); !ok {
			return fmt.Errorf("%w: the sink cannot store audit rows", ErrInvalidConfig)
		}
	}
	c.audit, c.auditFlush = cfg.Enabled, cfg.FlushInterval
	return nil
}

// batchAudit is what one batch counts: ingest's records it carried, and
// the consumer's own counts. Each row's record id names the messages it
// counts by their position, so a batch redelivered after a crash writes
// the same ids again and is counted once.
type batchAudit struct {
	// rows are the rows of ingest's records, one per key: a later record
	// with the same id (a copy, a later form) replaces the earlier in the batch itself; then the
	// consumer's per-message rows (message).
	rows keyedRows
	// consumed counts the event messages per window, source and position,
	// named by the first offset.
	consumed groupCounts
	// inserted counts the rows the batch's insert stores, per consumed
	// count (record.group): its window, source and position (see
	// startInserted).
	inserted []insertedCount
}

// insertedCount is the rows the batch's insert stores of one window,
// source and position, named by the first offset above the stored high
// water there.
type insertedCount struct {
	first int64
	n     uint64
	named bool
}

type consumedKey struct {
	minute int64 // unixMinute of received_at
	source string
	pos    position
}

type consumedCount struct {
	key   consumedKey
	first int64
	n     uint64
}

// groupCounts counts messages per window, source and position, each group
// named by its first offset, in the order first seen. A batch's messages
// come in runs of one key (a request's events share their received_at
// minute, source and partition), so add compares with the last key
// counted and looks up index only when the key changes.
type groupCounts struct {
	counts []consumedCount
	last   int // counts' entry counted last
	index  map[consumedKey]int
}

// add counts one message of k at offset and returns k's index in counts.
func (g *groupCounts) add(k consumedKey, offset int64) int {
	if len(g.counts) == 0 || g.counts[g.last].key != k {
		i, ok := g.index[k]
		if !ok {
			if g.index == nil {
				g.index = map[consumedKey]int{}
			}
			i = len(g.counts)
			g.index[k] = i
			g.counts = append(g.counts, consumedCount{key: k, first: offset})
		}
		g.last = i
	}
	c := &g.counts[g.last]
	c.first = min(c.first, offset)
	c.n++
	return g.last
}

// countRow is the audit row of stage counting n messages of k, named by
// the first offset.
func countRow(k consumedKey, stage string, first int64, n uint64) audit.Row {
	return audit.Row{Window: time.Unix(k.minute*60, 0).UTC(), Source: rowString(k.source), Stage: stage,
		RecordID: positionID(stage, k.pos.topic, k.pos.partition, first), N: n}
}

// positionID is the record id of a count of stage named by a bus position:
// the stage, topic, partition and offset.
func positionID(stage, topic string, partition int, offset int64) string {
	return stage + "/" + topic + "/" + strconv.Itoa(partition) + "/" + strconv.FormatInt(offset, 10)
}

// unixMinute is the minute of t since the Unix epoch, floored: the window
// audit.MinuteOf names, as a number.
func unixMinute(t time.Time) int64 {
	sec := t.Unix()
	m := sec / 60
	if sec%60 < 0 {
		m--
	}
	return m
}

// rowString is a copy of s, an event's string, for an audit row. An
// event's strings alias its message's bytes (decode), and the bus's
// messages share their read buffers (the local log reads some 1,000
// records in one chunk): a row kept until its insert (keptAudit, seconds)
// would keep a whole chunk alive through one string. Decoding ingest's
// records without copying their strings (json.ZeroCopy) so pinned the
// chunks of their bytes: the audit-on consumer ended its drains of
// BenchmarkAuditCostSideBySide with 1.1-2.7 GB of heap in use against
// 0.6-0.9 GB with the audit off, and up to twice the page faults per row
// (2026-12-05).
func rowString(s string) string { return strings.Clone(s) }

// record adds an ingest audit record's rows.
func (a *batchAudit) record(r audit.Record) { a.rows.add(r.Rows()) }

// keyedRows are audit rows, one per record id: a later row of an id
// replaces the earlier, so that the outcome of an insert of them never
// rests on the order the engine keeps the rows of one insert in.
// pipeline_audit keeps one row per sorting key (window, source, stage,
// reason, record id), and a record id names all of these: ingest's ids
// are a record's own id, stage and reason, and a record has one window
// and source; the consumer's name a message's position and stage, which
// count that message once (an undecodable one is counted in the minute it
// was read, so two reads of it may name two windows: one count is right).
// So the id alone is the key. With the map keyed
// by the five columns, and the map and array of the kept rows grown from
// nothing after each insert, BenchmarkKeptAudit took 483-512 ns and
// 1,040 bytes allocated per row; keyed by the id and sized as the last
// insert's, 103-129 ns and 183 bytes (2026-12-04).
type keyedRows struct {
	rows  []audit.Row
	index map[string]int
}

// newKeyedRows returns keyedRows with room for n rows.
func newKeyedRows(n int) keyedRows {
	return keyedRows{rows: make([]audit.Row, 0, n), index: make(map[string]int, n)}
}

// add adds rows, each replacing the row of its id if there is one.
func (k *keyedRows) add(rows []audit.Row) {
	if k.index == nil {
		k.index = make(map[string]int, len(rows))
	}
	for _, r := range rows {
		if i, ok := k.index[r.RecordID]; ok {
			k.rows[i] = r
			continue
		}
		k.index[r.RecordID] = len(k.rows)
		k.rows = append(k.rows, r)
	}
}

// consume counts one event message read and returns its count's index
// (record.group).
func (a *batchAudit) consume(at time.Time, source string, m bus.Message) int32 {
	return int32(a.consumed.add(consumedKey{unixMinute(at), source, position{m.Topic, m.Partition}}, m.Offset))
}

// The inserted counts. A batch is redelivered until its insert succeeded
// and its position was committed; the counts are written before the
// insert, with the rest, and each delivery writes the counts of the rows
// its own insert stores under the same names, which replace the earlier
// delivery's (pipeline_audit keeps one row per record id). A count is
// named by the first offset of its window, source and position among the
// batch's records above the stored high water, taken before the filter
// and the resend window left any out: what became of that event (a
// tombstone between two deliveries) does not change the name. Records at
// or below the high water were stored by an earlier delivery that counted
// them (a crash after an insert and before its commit); the next records
// of their window, source and position get a name of their own. newBatch
// names and counts in its pass over the records: keyed by record.group,
// not by the window, source and position again, and not in a pass of its
// own (a batch's records are some 800 bytes each, out of the CPU's
// caches: a pass that compared their keys cost the consumer about 0.3 µs
// a row on 2026-12-04).

// startInserted starts the batch's inserted counts at none.
func (a *batchAudit) startInserted() {
	a.inserted = slices.Grow(a.inserted[:0], len(a.consumed.counts))[:len(a.consumed.counts)]
	clear(a.inserted)
}

// nameInserted names r's count by r's offset if it is the first of its
// count: r is above its position's stored high water.
func (a *batchAudit) nameInserted(r *record) {
	c := &a.inserted[r.group]
	if !c.named || r.offset < c.first {
		c.first, c.named = r.offset, true
	}
}

// countInserted counts r, which the batch's insert stores.
func (a *batchAudit) countInserted(r *record) { a.inserted[r.group].n++ }

// message counts one message's outcome (deduplicated, dead_lettered,
// filtered), named by its position.
func (a *batchAudit) message(at time.Time, source, stage, reason string, topic string, partition int, offset int64) {
	// Not keyed: its id names one message's position, which no other row
	// of the batch counts.
	a.rows.rows = append(a.rows.rows, audit.Row{Window: audit.MinuteOf(at), Source: rowString(source), Stage: stage, Reason: reason,
		RecordID: positionID(stage, topic, partition, offset), N: 1})
}

// all returns every row, the consumed and inserted counts included, in
// the order they were counted: the same messages give the same rows in
// the same order. A named inserted count of 0 is a row too: it replaces
// an earlier delivery's count of rows this one left out.
func (a *batchAudit) all() []audit.Row {
	out := make([]audit.Row, 0, len(a.rows.rows)+2*len(a.consumed.counts))
	out = append(out, a.rows.rows...)
	for _, c := range a.consumed.counts {
		out = append(out, countRow(c.key, audit.Consumed, c.first, c.n))
	}
	for g, c := range a.inserted {
		if c.named {
			out = append(out, countRow(a.consumed.counts[g].key, audit.Inserted, c.first, c.n))
		}
	}
	return out
}

// startAudit stores the batch's audit rows in the background and returns
// the wait for it, which the batch's insert calls before its rows can
// become durable (Batch.ready) and flush before the commit. So the audit
// insert overlaps the encoding of the batch's block, and the audit rows
// are still stored before the events: a crash between the two redelivers
// the batch, which writes the same record ids again (the deduplicated
// counts are made only for records above the stored offsets, so they
// would not be made again had the events been stored first). wait may be
// called any number of times, from any goroutine; it returns once the
// insert succeeded, or with the error that ended its retries (the
// consumer cancelled).
func (c *Consumer) startAudit(p *pending) (wait func() error) {
	if !c.audit {
		return func() error { return nil }
	}
	rows := p.audit.all()
	if len(rows) == 0 {
		return func() error { return nil }
	}
	as := c.sink.(AuditSink)
	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		err = c.retry("write audit rows", func() error { return as.WriteAudit(c.ctx, rows) })
	}()
	return func() error {
		<-done
		return err
	}
}

// auditToken is ClickHouseSink's insert_deduplication_token of audit
// rows: a hash of their record ids and counts, in order, so that a retry
// of the same insert is stored once. EngineSink names its kept files
// instead (keptAudit): hashing every batch's rows here was 0.27% of the
// audit-on consumer's CPU in BenchmarkAuditGoSide's drains (2026-12-05),
// for a name the engine sink does not need to be a hash.
func auditToken(rows []audit.Row) string {
	h := sha256.New()
	var buf []byte
	for _, r := range rows {
		buf = append(append(buf[:0], r.RecordID...), '=')
		buf = append(strconv.AppendUint(buf, r.N, 10), '|')
		h.Write(buf)
	}
	return "audit-" + hex.EncodeToString(h.Sum(nil))
}

// auditColumns are pipeline_audit's columns the consumer writes.
const auditColumns = "window_start, source, stage, reason, record_id, n"

// WriteAudit inserts rows into pipeline_audit, with auditToken(rows) as
// the insert's deduplication token.
func (s *ClickHouseSink) WriteAudit(ctx context.Context, rows []audit.Row) error {
	table := auditTable(s.table)
	ins, err := s.conn.PrepareBatch(clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_deduplication_token": auditToken(rows), "async_insert": 0})),
		"INSERT INTO "+table+" ("+auditColumns+")")
	if err != nil {
		return fmt.Errorf("preparing insert into %s: %w", table, err)
	}
	defer ins.Abort()
	for _, r := range rows {
		if err := ins.Append(r.Window, r.Source, r.Stage, r.Reason, r.RecordID, r.N); err != nil {
			return fmt.Errorf("appending an audit row: %w", err)
		}
	}
	if err := ins.Send(); err != nil {
		return fmt.Errorf("inserting %d rows into %s: %w", len(rows), table, err)
	}
	return nil
}

// auditTable is the pipeline_audit table beside the events table events
// (database.events).
func auditTable(events string) string {
	return strings.TrimSuffix(events, ".events") + ".pipeline_audit"
}

// Audit rows through the engine are kept, then inserted in bulk.
// EngineSink.WriteAudit keeps a batch's audit rows as a Native file under
// dir(), renamed whole as a batch's block is: a kept file is as good as
// stored (Recover inserts it), so the batch's events may follow it
// (Batch.ready). The rows of the files kept so far go into
// pipeline_audit in one insert once they hold auditFlushRows rows, and
// when the consumer flushes them (FlushAudit: once the oldest is
// audit.flush_interval old, and at its shutdown).
//
// One insert per batch made a part of pipeline_audit per batch, and
// parts are what the engine pays for: on 2026-12-02, in two processes
// side by side (BenchmarkAuditCostSideBySide, 2M rows), the consumer's
// audit insert was 8 to 10 points of its 10 to 13% more CPU per row than
// with the audit off; each insert took 30-120 ms while both ran
// (batches of 25-50k events, cut by batch_interval), mostly creating the
// part's files (ext4 on this machine scans the inodes deleted in the last
// minutes for each new one). Made every 5 s (audit.flush_interval until
// 2026-12-05), a side-by-side drain of 2M rows held three or four of them;
// with none inside the drains (a test build) the audit's cost came out at
// +1.6% in 12 rounds against some +3%, within the runs' noise, but a part
// less is the engine's work less: the default is now 30 s, and the drains
// count the insert of their kept rows at their end (drainSide).
//
// auditFlushRows bounds the rows kept, and the memory they hold.
const auditFlushRows = 50_000

// auditFilePrefix names the kept audit files: the prefix, the time kept
// (20 digits of Unix nanoseconds, so that names sort in the order kept)
// and the random part of the temporary file's name (os.CreateTemp: unique
// in the directory when it was made), so that no two kept files, of this
// process or another on the same directory, share a name. A file's name
// is its insert's deduplication token (recoverAudit), the same however
// often the file is inserted.
const auditFilePrefix = "audit-"

// keptAudit is what EngineSink holds of the audit rows kept and not yet
// inserted.
type keptAudit struct {
	mu    sync.Mutex // one write, flush or recovery at a time
	files []string   // kept files, oldest first
	// rows are their rows, one per key: a later row of a key (a
	// a batch's rows kept again) replaced the earlier.
	rows  keyedRows
	since time.Time // when files[0] was kept
}

// WriteAudit keeps rows (see keptAudit) and returns once they are as good
// as stored; it inserts what is kept when that is due. A failed insert
// leaves the rows kept, for the next one, FlushAudit or Recover. It does
// not take the sink's lock: it runs while WriteBatch encodes the batch's
// block (Batch.ready), and touches no kept block. Native, not VALUES: the
// engine parsed a VALUES row in about 4.5 µs.
func (s *EngineSink) WriteAudit(ctx context.Context, rows []audit.Row) error {
	tmp, err := s.encoded(auditNative(rows))
	if err != nil {
		return fmt.Errorf("encoding %d audit rows: %w", len(rows), err)
	}
	a := &s.audit
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	unique := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(tmp), tempPrefix), ".native")
	path := filepath.Join(s.dir(), fmt.Sprintf("%s%020d-%s.native", auditFilePrefix, now.UnixNano(), unique))
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("keeping %d audit rows: %w", len(rows), err)
	}
	a.rows.add(rows)
	if len(a.files) == 0 {
		a.since = now
	}
	a.files = append(a.files, path)
	if len(a.rows.rows) >= auditFlushRows {
		s.flushAuditLocked(ctx) //nolint:errcheck // the rows stay kept: the next write, FlushAudit or Recover inserts them
	}
	return nil
}

// FlushAudit inserts the kept audit rows if the oldest was kept at least
// olderThan ago (0: whatever is kept).
func (s *EngineSink) FlushAudit(ctx context.Context, olderThan time.Duration) error {
	a := &s.audit
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.files) == 0 || time.Since(a.since) < olderThan {
		return nil
	}
	return s.flushAuditLocked(ctx)
}

// flushAuditLocked inserts the kept rows in one insert, then removes
// their files, oldest first: a crash in between leaves the newest, which
// Recover inserts again after these. s.audit.mu is held.
func (s *EngineSink) flushAuditLocked(ctx context.Context) error {
	a := &s.audit
	path, err := s.encoded(auditNative(a.rows.rows))
	if err != nil {
		return fmt.Errorf("encoding %d kept audit rows: %w", len(a.rows.rows), err)
	}
	defer os.Remove(path)
	// Unique: the files' names are (auditFilePrefix).
	token := strings.TrimSuffix(filepath.Base(a.files[0]), ".native") + "+" + strconv.Itoa(len(a.files))
	if err := s.insertAudit(ctx, token, path); err != nil {
		return fmt.Errorf("inserting %d kept audit rows of %d batches: %w", len(a.rows.rows), len(a.files), err)
	}
	for _, f := range a.files {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing an inserted audit file: %w", err)
		}
	}
	// Room for as many rows as these: the next flush's rows are about as
	// many, and growing a map and an array of some 50,000 rows step by step
	// was most of the kept rows' cost.
	a.files, a.rows, a.since = nil, newKeyedRows(min(len(a.rows.rows), auditFlushRows)), time.Time{}
	return nil
}

// recoverAudit inserts the audit files a stopped process kept and did not
// insert, one insert each in the order kept (each file's rows replace
// those of earlier files, as their inserts did), and removes them. It
// returns how many it inserted.
func (s *EngineSink) recoverAudit(ctx context.Context) (int, error) {
	a := &s.audit
	a.mu.Lock()
	defer a.mu.Unlock()
	paths, err := filepath.Glob(filepath.Join(s.dir(), auditFilePrefix+"*.native"))
	if err != nil {
		return 0, fmt.Errorf("listing kept audit files: %w", err)
	}
	slices.Sort(paths)
	n := 0
	for _, path := range paths {
		if slices.Contains(a.files, path) {
			continue // this process's: flushed with the rest
		}
		if err := s.insertAudit(ctx, strings.TrimSuffix(filepath.Base(path), ".native"), path); err != nil {
			return 0, fmt.Errorf("inserting the kept audit file %s: %w", filepath.Base(path), err)
		}
		// Not there: another sink of this directory inserted it too (a
		// consumer stopping while the next starts); its rows are the
		// same, and the table keeps one per record id.
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("removing an inserted audit file: %w", err)
		}
		n++
	}
	return n, nil
}

// insertAudit inserts the Native block of audit rows in path with token.
func (s *EngineSink) insertAudit(ctx context.Context, token, path string) error {
	table := auditTable(s.table)
	// async_insert = 0 as for the events (insertSettings).
	sql := "INSERT INTO " + table + " (" + auditColumns + ") FROM INFILE " + chdb.QuoteString(path) +
		" SETTINGS insert_deduplication_token = " + chdb.QuoteString(token) + ", async_insert = 0 FORMAT Native"
	if _, err := s.queries.Exec(ctx, chdb.Request{SQL: sql}); err != nil {
		return fmt.Errorf("inserting into %s: %w", table, err)
	}
	return nil
}

// auditNative is rows as one Native block of auditColumns. The
// LowCardinality columns go as String, as the events' do (col.native).
func auditNative(rows []audit.Row) []byte {
	size := 256 // the block's header, the columns' names and types
	for _, r := range rows {
		size += 4 + 8 // window_start, n
		for _, s := range [...]string{r.Source, r.Stage, r.Reason, r.RecordID} {
			size += uvarintLen(len(s)) + len(s)
		}
	}
	buf := proto.Buffer{Buf: make([]byte, 0, size)}
	buf.PutUVarInt(6)
	buf.PutUVarInt(uint64(len(rows)))
	buf.PutString("window_start")
	buf.PutString("DateTime('UTC')")
	for _, r := range rows {
		buf.PutUInt32(uint32(r.Window.Unix()))
	}
	for _, c := range []struct {
		name string
		get  func(audit.Row) string
	}{
		{"source", func(r audit.Row) string { return r.Source }},
		{"stage", func(r audit.Row) string { return r.Stage }},
		{"reason", func(r audit.Row) string { return r.Reason }},
		{"record_id", func(r audit.Row) string { return r.RecordID }},
	} {
		buf.PutString(c.name)
		buf.PutString("String")
		for _, r := range rows {
			buf.PutString(c.get(r))
		}
	}
	buf.PutString("n")
	buf.PutString("UInt64")
	for _, r := range rows {
		buf.PutUInt64(r.N)
	}
	return buf.Buf
}

// uvarintLen is the length of n as a varint (a Native string's length).
func uvarintLen(n int) int { return (bits.Len64(uint64(n)|1) + 6) / 7 }

// addAuditRecord takes an ingest audit record into the batch: its rows are
// stored with the batch's audit rows, or, with the audit off, it is only
// committed. One that cannot be decoded is dead-lettered.
func (c *Consumer) addAuditRecord(p *pending, m bus.Message) {
	if !c.audit {
		return
	}
	r, err := audit.Decode(m)
	if err != nil {
		c.deadLetter(p, m, err, "audit")
		return
	}
	p.audit.record(r)
}
