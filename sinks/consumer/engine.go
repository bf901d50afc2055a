package consumer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/sora3web/telemetry/sinks/chdb"
)

// Engine runs statements on the in-process ClickHouse engine: a
// sinks/chdb.Session (a connection of its own, so that the consumer's
// inserts do not queue behind analysts' queries on the engine's shared
// connection) or the chdb.Engine itself.
type Engine interface {
	Exec(ctx context.Context, req chdb.Request) (*chdb.Result, error)
}

// EngineSink writes batches straight into the in-process engine, one
// INSERT ... FORMAT Native per batch, without a network protocol between
// them: the all-in-one `telemetry serve` uses it. It asks the same
// questions as ClickHouseSink, in the same SQL.
type EngineSink struct {
	// inserts runs the events inserts; queries runs the rest (stored
	// offsets and ids, audit rows), on a connection of its own: a
	// connection runs one statement at a time, and the consumer prepares
	// the next batch, asking its stored offsets, while the engine inserts
	// the previous one.
	inserts, queries Engine
	table            string
	// dataDir is the engine's data directory; batches' blocks are kept
	// under it.
	dataDir string

	mu sync.Mutex // one insert or recovery at a time

	// audit holds the audit rows kept and not yet inserted (audit.go).
	audit keptAudit
}

// NewEngineSink writes to database.events through inserts and asks its
// questions through queries (two connections, e.g. chdb.Sessions; the
// same one serialises them), on the engine whose data directory is
// dataDir.
func NewEngineSink(inserts, queries Engine, dataDir, database string) *EngineSink {
	return &EngineSink{inserts: inserts, queries: queries, dataDir: dataDir, table: database + ".events"}
}

// Prepare encodes b's Native block into a temporary file beside the kept
// blocks, for WriteBatch: the consumer prepares the next batch so while
// the engine inserts the previous one.
func (s *EngineSink) Prepare(b *Batch) error {
	path, err := s.encode(b.WriteNative)
	if err != nil {
		return err
	}
	b.block = path
	return nil
}

// Discard removes the block Prepare encoded for a batch that is not
// written (a block already kept stays: Recover inserts it).
func (s *EngineSink) Discard(b *Batch) {
	if b.block != "" {
		os.Remove(b.block)
		b.block = ""
	}
}

// WriteBatch inserts b with its deduplication token; the engine has
// stored it when this returns. The batch's block stays on disk until
// Committed: see Recover.
func (s *EngineSink) WriteBatch(ctx context.Context, b *Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.block == "" {
		if err := s.Prepare(b); err != nil {
			return err
		}
	}
	tmp := b.block
	b.block = "" // keep takes it, kept or removed: a retry encodes anew
	path, err := s.keep(b.Token, tmp, b.waitReady)
	if err != nil {
		return err
	}
	if err := s.insert(ctx, b.Token, path); err != nil {
		return fmt.Errorf("inserting %d rows into %s: %w", b.Rows(), s.table, err)
	}
	return nil
}

// Committed forgets b's block: the consumer committed its position, so
// the batch will not come back.
func (s *EngineSink) Committed(b *Batch) error {
	if err := os.Remove(s.pendingPath(b.Token)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the block of a committed batch: %w", err)
	}
	return nil
}

// Recover completes the inserts a killed process may have left half done
// and returns how many it found. The engine runs in the consumer's
// process, so a kill can stop an insert after the events part is written
// and before the materialized views wrote theirs (errors, rollups_daily);
// the batch, redelivered, is then skipped by its stored offsets and the
// views never get it. So each batch's block is kept under the engine's
// data directory from before its insert until its commit, and Recover
// inserts every block still there again with its own deduplication token:
// each table takes only the blocks it has not got (events, errors and
// rollups_daily keep a deduplication window; migrations 0001 and 0006). A
// block whose insert never started is simply stored now; its redelivered
// messages are skipped by the stored offsets. It inserts the audit rows
// kept and not inserted (keptAudit) the same way, before the blocks. The
// consumer calls Recover before its first batch.
func (s *EngineSink) Recover(ctx context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	paths, err := filepath.Glob(filepath.Join(s.dir(), "pending-*.native"))
	if err != nil {
		return 0, fmt.Errorf("listing unfinished batches: %w", err)
	}
	// Blocks encoded and never kept: their batches were never inserted,
	// and they come again from the bus.
	unkept, _ := filepath.Glob(filepath.Join(s.dir(), tempPrefix+"*.native"))
	for _, path := range unkept {
		if err := os.Remove(path); err != nil {
			return 0, fmt.Errorf("removing a block never kept: %w", err)
		}
	}
	// The audit rows first: a batch's were kept before its block.
	if _, err := s.recoverAudit(ctx); err != nil {
		return 0, err
	}
	for _, path := range paths {
		token := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), "pending-"), ".native")
		if err := s.insert(ctx, token, path); err != nil {
			return 0, fmt.Errorf("completing the unfinished batch %s: %w", filepath.Base(path), err)
		}
		if err := os.Remove(path); err != nil {
			return 0, fmt.Errorf("removing a completed batch's block: %w", err)
		}
	}
	return len(paths), nil
}

// dir holds the blocks of this sink's batches not yet committed, one
// directory per table, under the engine's data directory.
func (s *EngineSink) dir() string {
	return filepath.Join(s.dataDir, "consumer_batches", s.table)
}

func (s *EngineSink) pendingPath(token string) string {
	return filepath.Join(s.dir(), "pending-"+token+".native")
}

// encode writes a block with write to a new temporary file under dir()
// and returns its path.
func (s *EngineSink) encode(write func(io.Writer) error) (string, error) {
	return s.writeTemp(func(f *os.File) error {
		w := bufio.NewWriterSize(f, 1<<20)
		if err := write(w); err != nil {
			return err
		}
		return w.Flush()
	})
}

// encoded writes a block already encoded to a new temporary file under
// dir() and returns its path: no buffer between (encode's is a megabyte,
// allocated and faulted in for each file).
func (s *EngineSink) encoded(block []byte) (string, error) {
	return s.writeTemp(func(f *os.File) error {
		_, err := f.Write(block)
		return err
	})
}

// tempPrefix begins the names of the temporary files writeTemp makes.
const tempPrefix = "writing-"

// writeTemp creates a temporary file under dir(), has write fill it, and
// returns its path; on an error the file is removed.
func (s *EngineSink) writeTemp(write func(*os.File) error) (string, error) {
	if err := os.MkdirAll(s.dir(), 0o700); err != nil {
		return "", fmt.Errorf("creating %s: %w", s.dir(), err)
	}
	f, err := os.CreateTemp(s.dir(), tempPrefix+"*.native")
	if err != nil {
		return "", fmt.Errorf("encoding the batch's block: %w", err)
	}
	err = write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("encoding the batch's block: %w", err)
	}
	return f.Name(), nil
}

// keep makes the encoded block in tmp the batch's pending block, renamed
// whole, and returns its path; tmp is gone either way. ready, when set,
// is waited for before the rename: a kept block is as good as stored
// (Recover inserts it), so nothing that must precede the rows
// (Batch.ready) may come after it.
func (s *EngineSink) keep(token, tmp string, ready func() error) (string, error) {
	var err error
	if ready != nil {
		err = ready()
	}
	path := s.pendingPath(token)
	if err == nil {
		if err = os.Rename(tmp, path); err != nil {
			err = fmt.Errorf("keeping the batch's block: %w", err)
		}
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return path, nil
}

// insert runs the insert of the Native block in path with token. The
// engine reads inline data only up to max_query_size, so the block goes
// through a file (in the page cache), as sinks/chserver does with large
// request bodies.
func (s *EngineSink) insert(ctx context.Context, token, path string) error {
	var sql strings.Builder
	sql.WriteString(insertStatement(s.table) + " FROM INFILE " + chdb.QuoteString(path) + " SETTINGS ")
	for i, kv := range insertSettings(token) {
		if i > 0 {
			sql.WriteString(", ")
		}
		sql.WriteString(kv[0] + " = " + chdb.QuoteString(kv[1]))
	}
	sql.WriteString(" FORMAT Native")
	_, err := s.inserts.Exec(ctx, chdb.Request{SQL: sql.String()})
	return err
}

// HighWater returns, per partition of topic among partitions, the largest
// offset stored (answered by the offsets projection).
func (s *EngineSink) HighWater(ctx context.Context, topic string, partitions []int) (map[int]int64, error) {
	out := make(map[int]int64, len(partitions))
	err := s.query(ctx, highWaterSQL(s.table), highWaterParams(topic, partitions), func(f [][]byte) error {
		p, err1 := strconv.Atoi(string(f[0]))
		off, err2 := strconv.ParseInt(string(f[1]), 10, 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("unexpected stored offset row %q", bytes.Join(f, []byte("\t")))
		}
		out[p] = off
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading stored offsets of %s: %w", topic, err)
	}
	return out, nil
}

// StoredIDs calls fn with the event_id and received_at of every row of
// (topic, partition) stored after offset after and received since since.
func (s *EngineSink) StoredIDs(ctx context.Context, topic string, partition int, after int64, since time.Time, fn func(uuid.UUID, time.Time)) error {
	err := s.query(ctx, storedIDsSQL(s.table), storedIDsParams(topic, partition, after, since), func(f [][]byte) error {
		id, err1 := uuid.ParseBytes(f[0])
		ms, err2 := strconv.ParseInt(string(f[1]), 10, 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("unexpected stored id row %q", bytes.Join(f, []byte("\t")))
		}
		fn(id, time.UnixMilli(ms))
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading stored event ids of %s/%d: %w", topic, partition, err)
	}
	return nil
}

// query runs sql with params and calls row with each TabSeparated row's
// fields (plain numbers and UUIDs: no escaping to undo).
func (s *EngineSink) query(ctx context.Context, sql string, params map[string]string, row func([][]byte) error) error {
	req := chdb.Request{SQL: sql, Format: "TabSeparated"}
	for k, v := range params {
		req.Params = append(req.Params, chdb.Param{Name: k, Value: v})
	}
	res, err := s.queries.Exec(ctx, req)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(res.Data))
	for sc.Scan() {
		if err := row(bytes.Split(sc.Bytes(), []byte("\t"))); err != nil {
			return err
		}
	}
	return sc.Err()
}

// insertStatement is the head of a batch's insert: table and columns.
func insertStatement(table string) string {
	return fmt.Sprintf("INSERT INTO %s (%s)", table, strings.Join(columnNames(), ", "))
}

// insertSettings are the settings of every events insert, in order:
//   - insert_deduplication_token: a retried batch is stored once;
//   - optimize_on_insert = 0: no ReplacingMergeTree merge of the block at
//     insert time (it cost 4.5x the rest of the insert). Copies of an
//     event never reach the table: the consumer's window drops resends
//     (window.go) and the stored offsets drop redeliveries; merges remain
//     the last line;
//   - async_insert = 0: stated, not left to the default. ClickHouse 26.5
//     (this chdb build) defaults to async_insert = 1 with
//     async_insert_deduplicate = 0, where a buffered insert's token would
//     not count; TestRetriedAuditInsertIsStoredOnce found these inserts
//     deduplicated on 2026-12-01 with or without the setting.
func insertSettings(token string) [][2]string {
	return [][2]string{{"insert_deduplication_token", token}, {"optimize_on_insert", "0"}, {"async_insert", "0"}}
}

func highWaterSQL(table string) string {
	return "SELECT kafka_partition, max(kafka_offset) FROM " + table +
		" WHERE kafka_topic = {topic:String} AND kafka_partition IN {partitions:Array(Int32)} GROUP BY kafka_topic, kafka_partition"
}

func highWaterParams(topic string, partitions []int) map[string]string {
	ps := make([]string, len(partitions))
	for i, p := range partitions {
		ps[i] = strconv.Itoa(p)
	}
	return map[string]string{"topic": topic, "partitions": "[" + strings.Join(ps, ",") + "]"}
}

func storedIDsSQL(table string) string {
	return "SELECT event_id, toUnixTimestamp64Milli(received_at) FROM " + table +
		" WHERE kafka_topic = {topic:String} AND kafka_partition = {partition:Int32} AND kafka_offset > {after:Int64}" +
		" AND received_at >= fromUnixTimestamp64Milli({since:Int64})"
}

func storedIDsParams(topic string, partition int, after int64, since time.Time) map[string]string {
	return map[string]string{"topic": topic, "partition": strconv.Itoa(partition),
		"after": strconv.FormatInt(after, 10), "since": strconv.FormatInt(since.UnixMilli(), 10)}
}
