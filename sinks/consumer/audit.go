package consumer

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/sora3web/telemetry/bus"
	"github.com/sora3web/telemetry/internal/audit"
	"github.com/sora3web/telemetry/sinks/chdb"
)

// AuditSink is a Sink that also stores audit rows (internal/audit) in
// pipeline_audit. Storing the same rows twice must count them once (the
// table keeps one row per record id).
type AuditSink interface {
	WriteAudit(ctx context.Context, token string, rows []audit.Row) error
}

var (
	_ AuditSink = (*ClickHouseSink)(nil)
	_ AuditSink = (*EngineSink)(nil)
)

// SetAudit makes the consumer store its counts and ingest's audit records
// in pipeline_audit (the sink must be an AuditSink). Call it before Start.
// Without it audit records on the bus are committed and not stored.
func (c *Consumer) SetAudit(on bool) error {
	if on {
		if _, ok := c.sink.(AuditSink); !ok {
			return fmt.Errorf("%w: the sink cannot store audit rows", ErrInvalidConfig)
		}
	}
	c.audit = on
	return nil
}

// batchAudit is what one batch counts: ingest's records it carried, and
// the consumer's own counts. Each row's record id names the messages it
// counts by their position, so a batch redelivered after a crash writes
// the same ids again and is counted once.
type batchAudit struct {
	rows []audit.Row
	// consumed counts the event messages per window, source and position,
	// named by the first offset.
	consumed map[consumedKey]*consumedCount
}

type consumedKey struct {
	window time.Time
	source string
	pos    position
}

type consumedCount struct {
	first int64
	n     uint64
}

// record adds an ingest audit record's rows.
func (a *batchAudit) record(r audit.Record) { a.rows = append(a.rows, r.Rows()...) }

// consume counts one event message read.
func (a *batchAudit) consume(at time.Time, source string, m bus.Message) {
	if a.consumed == nil {
		a.consumed = map[consumedKey]*consumedCount{}
	}
	k := consumedKey{audit.MinuteOf(at), source, position{m.Topic, m.Partition}}
	if c := a.consumed[k]; c != nil {
		c.first = min(c.first, m.Offset)
		c.n++
		return
	}
	a.consumed[k] = &consumedCount{first: m.Offset, n: 1}
}

// message counts one message's outcome (deduplicated, dead_lettered,
// filtered), named by its position.
func (a *batchAudit) message(at time.Time, source, stage, reason string, topic string, partition int, offset int64) {
	a.rows = append(a.rows, audit.Row{Window: audit.MinuteOf(at), Source: source, Stage: stage, Reason: reason,
		RecordID: stage + "/" + topic + "/" + strconv.Itoa(partition) + "/" + strconv.FormatInt(offset, 10), N: 1})
}

// all returns every row, the consumed counts included.
func (a *batchAudit) all() []audit.Row {
	out := append([]audit.Row(nil), a.rows...)
	for k, c := range a.consumed {
		out = append(out, audit.Row{Window: k.window, Source: k.source, Stage: audit.Consumed,
			RecordID: audit.Consumed + "/" + k.pos.topic + "/" + strconv.Itoa(k.pos.partition) + "/" + strconv.FormatInt(c.first, 10), N: c.n})
	}
	return out
}

// writeAudit stores the batch's audit rows, before its events: a crash
// between the two redelivers the batch, which writes the same record ids
// again. The commit comes after both.
func (c *Consumer) writeAudit(p *pending) error {
	if !c.audit {
		return nil
	}
	rows := p.audit.all()
	if len(rows) == 0 {
		return nil
	}
	as := c.sink.(AuditSink)
	token := auditToken(rows)
	return c.retry("write audit rows", func() error { return as.WriteAudit(c.ctx, token, rows) })
}

// auditToken is the insert_deduplication_token of audit rows: a hash of
// their record ids and counts.
func auditToken(rows []audit.Row) string {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.RecordID + "=" + strconv.FormatUint(r.N, 10)
	}
	sort.Strings(ids)
	h := sha256.Sum256([]byte(strings.Join(ids, "|")))
	return "audit-" + hex.EncodeToString(h[:])
}

// auditColumns are pipeline_audit's columns the consumer writes.
const auditColumns = "window_start, source, stage, reason, record_id, n"

// WriteAudit inserts rows into pipeline_audit.
func (s *ClickHouseSink) WriteAudit(ctx context.Context, token string, rows []audit.Row) error {
	table := s.auditTable()
	ins, err := s.conn.PrepareBatch(clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_deduplication_token": token})),
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

func (s *ClickHouseSink) auditTable() string {
	return strings.TrimSuffix(s.table, ".events") + ".pipeline_audit"
}

// WriteAudit inserts rows into pipeline_audit, through a file as the
// batches' blocks go (inline data is bounded by max_query_size).
func (s *EngineSink) WriteAudit(ctx context.Context, token string, rows []audit.Row) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	table := strings.TrimSuffix(s.table, ".events") + ".pipeline_audit"
	dir := filepath.Join(s.dataDir, "consumer_batches", table)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "audit-*.ndjson")
	if err != nil {
		return fmt.Errorf("writing audit rows: %w", err)
	}
	defer os.Remove(f.Name())
	err = writeAuditRows(f, rows)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing audit rows: %w", err)
	}
	sql := "INSERT INTO " + table + " (" + auditColumns + ") FROM INFILE " + chdb.QuoteString(f.Name()) +
		" SETTINGS insert_deduplication_token = " + chdb.QuoteString(token) + " FORMAT JSONEachRow"
	if _, err := s.engine.Exec(ctx, chdb.Request{SQL: sql}); err != nil {
		return fmt.Errorf("inserting %d rows into %s: %w", len(rows), table, err)
	}
	return nil
}

// writeAuditRows writes rows as JSONEachRow.
func writeAuditRows(w io.Writer, rows []audit.Row) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, r := range rows {
		if err := enc.Encode(map[string]any{"window_start": r.Window.Unix(), "source": r.Source, "stage": r.Stage,
			"reason": r.Reason, "record_id": r.RecordID, "n": r.N}); err != nil {
			return err
		}
	}
	return bw.Flush()
}

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
