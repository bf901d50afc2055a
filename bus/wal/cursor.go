package wal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// cursor is a named reader: a durable committed position and an in-memory
// read position.
type cursor struct {
	name      string
	path      string
	committed atomic.Uint64
	gen       uint64 // generation of the slot last written; 0: rewrite the file whole

	mu  sync.Mutex // serializes Read, Commit and Rewind of this cursor
	pos uint64     // last seq handed out by Read

	// Read handle: seg's file, open at off, the offset of the first record
	// after seq at. Valid while seg != nil and at == pos.
	seg *segment
	f   file
	off int64
	at  uint64

	// recordSize is the mean size in bytes (header included) of the
	// records the last chunk held; 0 before the first. Read sizes its
	// chunks by it (chunkSize).
	recordSize int64
}

func (c *cursor) dropHandle() {
	if c.f != nil {
		c.f.Close()
	}
	c.seg, c.f, c.off, c.at = nil, nil, 0, 0
}

func (l *Log) cursorsDir() string { return filepath.Join(l.cfg.Dir, cursorsSubdir) }

// loadCursors registers every cursor persisted in the directory, then
// creates the configured ones that are missing.
func (l *Log) loadCursors() error {
	entries, err := l.fs.ReadDir(l.cursorsDir())
	if err != nil {
		return fmt.Errorf("list cursors: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			// A temporary file of a commit interrupted by a crash.
			if err := l.fs.Remove(filepath.Join(l.cursorsDir(), name)); err != nil {
				l.log.Warn("wal: remove stale cursor temp file", "file", name, "error", err.Error())
			}
			continue
		}
		if validCursorName(name) != nil || !e.Type().IsRegular() {
			l.log.Warn("wal: ignoring unexpected file in cursors directory", "file", name)
			continue
		}
		c := &cursor{name: name, path: filepath.Join(l.cursorsDir(), name)}
		seq, gen, err := l.readCursorFile(c.path)
		c.gen = gen
		if err != nil {
			if !l.cfg.RepairCorrupt {
				return fmt.Errorf("cursor %q: %w (set repair_corrupt to restart it at the beginning)", name, err)
			}
			l.log.Error("wal: corrupt cursor restarted at the beginning of the log", "cursor", name, "error", err.Error())
			seq = 0
		}
		c.committed.Store(seq)
		c.pos = seq
		l.cursors[name] = c
	}
	for _, name := range l.cfg.Cursors {
		if _, ok := l.cursors[name]; ok {
			continue
		}
		if _, err := l.addCursor(name); err != nil {
			return err
		}
	}
	return nil
}

// A cursor file holds two slots of cursorSlot bytes, each [seq u64][gen
// u64][crc32c(seq‖gen) u32] (big endian, zero padded). A commit overwrites
// the older slot in place with the next generation and fsyncs: it needs no
// new disk block, so it succeeds, and segments can be reclaimed, even when
// the disk is full. A torn write spoils only the slot being written; the
// reader takes the valid slot of the highest generation. (Files of the
// older text format, "seq\n", are read and rewritten on the next commit.)
const (
	cursorSlot     = 32
	cursorFileSize = 2 * cursorSlot
)

func encodeCursorSlot(seq, gen uint64) []byte {
	b := make([]byte, cursorSlot)
	binary.BigEndian.PutUint64(b[0:8], seq)
	binary.BigEndian.PutUint64(b[8:16], gen)
	binary.BigEndian.PutUint32(b[16:20], crc32.Checksum(b[0:16], castagnoli))
	return b
}

func decodeCursorSlot(b []byte) (seq, gen uint64, ok bool) {
	if len(b) < 20 || binary.BigEndian.Uint32(b[16:20]) != crc32.Checksum(b[0:16], castagnoli) {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(b[0:8]), binary.BigEndian.Uint64(b[8:16]), true
}

// readCursorFile returns the committed seq and the generation of the slot
// it came from (0 for the old text format).
func (l *Log) readCursorFile(path string) (seq, gen uint64, err error) {
	f, err := l.fs.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("open cursor file: %w", err)
	}
	defer f.Close()
	var buf [cursorFileSize]byte
	n, err := f.ReadAt(buf[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, 0, fmt.Errorf("read cursor file %s: %w", path, err)
	}
	if n == cursorFileSize {
		s0, g0, ok0 := decodeCursorSlot(buf[:cursorSlot])
		s1, g1, ok1 := decodeCursorSlot(buf[cursorSlot:])
		switch {
		case ok0 && (!ok1 || g0 > g1):
			return s0, g0, nil
		case ok1:
			return s1, g1, nil
		}
		return 0, 0, fmt.Errorf("cursor file %s: no valid slot: %w", path, ErrCorrupt)
	}
	text, ok := strings.CutSuffix(string(buf[:n]), "\n")
	seq, perr := strconv.ParseUint(text, 10, 64)
	if !ok || perr != nil {
		return 0, 0, fmt.Errorf("cursor file %s holds %q: %w", path, buf[:n], ErrCorrupt)
	}
	return seq, 0, nil
}

// writeCursorFile records seq durably. A cursor file of the current format
// is updated in place (the older slot, then fsync); otherwise the file is
// created by temporary file, fsync, rename and fsync of the directory.
func (l *Log) writeCursorFile(c *cursor, seq uint64) error {
	gen := c.gen + 1
	slot := encodeCursorSlot(seq, gen)
	if c.gen > 0 {
		f, err := l.fs.OpenFile(c.path, os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("open cursor file: %w", err)
		}
		if _, err := f.WriteAt(slot, int64(gen%2)*cursorSlot); err != nil {
			f.Close()
			return fmt.Errorf("write cursor file: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("fsync cursor file: %w", err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("close cursor file: %w", err)
		}
		c.gen = gen
		return nil
	}
	buf := make([]byte, cursorFileSize)
	copy(buf[int(gen%2)*cursorSlot:], slot)
	if err := l.replaceFile(l.cursorsDir(), c.name, buf); err != nil {
		return fmt.Errorf("cursor file: %w", err)
	}
	c.gen = gen
	return nil
}

// addCursor creates and persists a cursor at the beginning of the log. The
// caller holds curMu or is Open.
func (l *Log) addCursor(name string) (*cursor, error) {
	if err := validCursorName(name); err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	c := &cursor{name: name, path: filepath.Join(l.cursorsDir(), name)}
	if err := l.writeCursorFile(c, 0); err != nil {
		return nil, fmt.Errorf("wal: create cursor %q: %w", name, err)
	}
	l.cursors[name] = c
	return c, nil
}

// Cursor registers a cursor, creating it durably at the beginning of the log
// if it does not exist yet. From then on segments are only reclaimed once
// this cursor has committed past them. Registering an existing cursor is a
// no-op.
func (l *Log) Cursor(name string) error {
	if l.closed.Load() {
		return ErrClosed
	}
	l.curMu.Lock()
	defer l.curMu.Unlock()
	if _, ok := l.cursors[name]; ok {
		return nil
	}
	_, err := l.addCursor(name)
	return err
}

// DeleteCursor unregisters a cursor and removes its file, so it no longer
// holds back reclaiming.
func (l *Log) DeleteCursor(name string) error {
	if l.closed.Load() {
		return ErrClosed
	}
	l.curMu.Lock()
	c, ok := l.cursors[name]
	if !ok {
		l.curMu.Unlock()
		return fmt.Errorf("wal: delete cursor %q: %w", name, ErrUnknownCursor)
	}
	delete(l.cursors, name)
	l.curMu.Unlock()
	c.mu.Lock()
	c.dropHandle()
	c.mu.Unlock()
	if err := l.fs.Remove(c.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("wal: delete cursor %q: %w", name, err)
	}
	if err := l.fs.SyncDir(l.cursorsDir()); err != nil {
		return fmt.Errorf("wal: delete cursor %q: fsync directory: %w", name, err)
	}
	l.reclaim()
	return nil
}

func (l *Log) cursor(name string) (*cursor, error) {
	l.curMu.Lock()
	c, ok := l.cursors[name]
	l.curMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownCursor, name)
	}
	return c, nil
}

// Committed returns the last seq committed on a cursor (0: none).
func (l *Log) Committed(name string) (uint64, error) {
	c, err := l.cursor(name)
	if err != nil {
		return 0, err
	}
	return c.committed.Load(), nil
}

// Read returns the next durable records after the cursor's read position,
// in sequence order: at most maxRecords, and at most maxBytes of payload
// (maxBytes <= 0: no bound) except that one record is always returned even
// if it is larger. Read blocks until at least one record is available, ctx
// ends (returning ctx's error) or the Log is closed (ErrClosed).
//
// The read position starts at the cursor's committed seq when the Log is
// opened, advances with each Read, and goes back to the committed seq on
// Rewind. Reads of one cursor are serialized; different cursors read
// independently.
func (l *Log) Read(ctx context.Context, cursorName string, maxRecords int, maxBytes int) ([]Record, error) {
	if maxRecords <= 0 {
		return nil, fmt.Errorf("wal: read %q: maxRecords %d must be positive", cursorName, maxRecords)
	}
	c, err := l.cursor(cursorName)
	if err != nil {
		return nil, fmt.Errorf("wal: read: %w", err)
	}
	for {
		if l.closed.Load() {
			return nil, ErrClosed
		}
		l.idxMu.RLock()
		durable, wake := l.durable, l.notify
		l.idxMu.RUnlock()
		c.mu.Lock()
		if l.closed.Load() {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		if c.pos < durable {
			recs, err := l.readLocked(c, maxRecords, maxBytes)
			c.mu.Unlock()
			if err != nil || len(recs) > 0 {
				return recs, err
			}
		} else {
			c.mu.Unlock()
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, fmt.Errorf("wal: read %q: %w", cursorName, ctx.Err())
		case <-l.quit:
			return nil, ErrClosed
		}
	}
}

// segView is a reader's snapshot of one segment's published state.
type segView struct {
	seg   *segment
	first uint64
	last  uint64
	end   int64
}

func (l *Log) snapshot() ([]segView, uint64) {
	l.idxMu.RLock()
	defer l.idxMu.RUnlock()
	views := make([]segView, len(l.segs))
	for i, s := range l.segs {
		views[i] = segView{seg: s, first: s.first, last: s.last, end: s.end}
	}
	return views, l.durable
}

// readLocked reads records after c.pos. The caller holds c.mu.
func (l *Log) readLocked(c *cursor, maxRecords, maxBytes int) ([]Record, error) {
	views, durable := l.snapshot()
	var out []Record
	total := 0
	for len(out) < maxRecords && c.pos < durable {
		if maxBytes > 0 && total >= maxBytes {
			break
		}
		idx := -1
		if c.seg != nil && c.at == c.pos {
			for i := range views {
				if views[i].seg == c.seg {
					idx = i
					break
				}
			}
		}
		if idx < 0 {
			var err error
			if idx, err = l.seek(c, views); err != nil {
				return out, err
			}
			if idx < 0 {
				break
			}
		}
		v := views[idx]
		if c.off >= v.end {
			if idx == len(views)-1 {
				break
			}
			// Segment done: continue at the start of the next one.
			c.dropHandle()
			if _, err := l.openAt(c, views[idx+1], 0); err != nil {
				return out, err
			}
			continue
		}
		buf, err := l.readChunk(c, c.chunkSize(v.end-c.off, maxRecords-len(out), maxBytes-total, maxBytes > 0))
		if err != nil {
			return out, err
		}
		p, stop, read := 0, false, len(out)
		for len(out) < maxRecords {
			seq, payload, size, ok, err := decodeRecord(buf[p:])
			if err != nil {
				return out, fmt.Errorf("wal: read %s at offset %d: %w: %w", v.seg.path, c.off, ErrCorrupt, err)
			}
			if !ok {
				if p > 0 || size == 0 {
					if p == 0 {
						return out, fmt.Errorf("wal: read %s at offset %d: partial header before the durable end %d: %w", v.seg.path, c.off, v.end, ErrCorrupt)
					}
					break
				}
				// A record larger than the chunk: read it whole.
				if c.off+int64(size) > v.end {
					return out, fmt.Errorf("wal: read %s at offset %d: record of %d bytes crosses the durable end %d: %w", v.seg.path, c.off, size, v.end, ErrCorrupt)
				}
				if buf, err = l.readChunk(c, int64(size)); err != nil {
					return out, err
				}
				continue
			}
			if seq <= c.pos {
				return out, fmt.Errorf("wal: read %s at offset %d: seq %d after %d: %w", v.seg.path, c.off, seq, c.pos, ErrCorrupt)
			}
			if maxBytes > 0 && len(out) > 0 && total+len(payload) > maxBytes {
				stop = true
				break
			}
			if out == nil {
				// Room for the records asked for (up to a chunk's worth): a
				// list grown from nothing to 1,000 records allocated 11 times.
				out = make([]Record, 0, min(maxRecords, 1024))
			}
			out = append(out, Record{Seq: seq, Payload: payload})
			total += len(payload)
			p += size
			c.off += int64(size)
			c.pos, c.at = seq, seq
		}
		if n := len(out) - read; n > 0 {
			c.recordSize = int64(p / n)
		}
		if stop {
			break
		}
	}
	return out, nil
}

// chunkSize is how many bytes to read for up to records more records of
// at most bytes payload bytes (none when !limited), with left bytes left
// in the segment. A chunk is sized for the records asked for, by the
// mean size of the last chunk's records and a quarter more, not for the
// byte limit alone: a reader asking for 1,000 records of about 900 bytes
// under a limit of 4 MiB (bus.LogReader) read 4 MiB a time and used a
// fifth of it, and reading the rest again made 3.5 KB read, allocated and
// cleared per record, 6% of the consumer's CPU (BenchmarkAuditCost
// profile, 2026-12-04). A chunk too short for the records asked for is
// followed by another; the records' bytes are read once either way.
func (c *cursor) chunkSize(left int64, records, bytes int, limited bool) int64 {
	budget := int64(records) * headerSize
	if limited {
		budget += int64(bytes)
	} else {
		budget += 4 << 20
	}
	if c.recordSize > 0 {
		budget = min(budget, max(int64(records)*(c.recordSize+c.recordSize/4), minChunk))
	}
	return min(left, max(budget, headerSize))
}

// minChunk is the least chunk Read sizes by the records' mean size.
const minChunk = 64 << 10

// readChunk reads n bytes at the cursor's offset.
func (l *Log) readChunk(c *cursor, n int64) ([]byte, error) {
	buf := make([]byte, n)
	got, err := c.f.ReadAt(buf, c.off)
	if err != nil && !(errors.Is(err, io.EOF) && int64(got) == n) {
		return nil, fmt.Errorf("wal: read %s at offset %d: %w", c.seg.path, c.off, err)
	}
	return buf, nil
}

// openAt points c's handle at offset off of the segment in v.
func (l *Log) openAt(c *cursor, v segView, off int64) (file, error) {
	f, err := l.fs.OpenFile(v.seg.path, os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("wal: read: open segment: %w", err)
	}
	c.seg, c.f, c.off, c.at = v.seg, f, off, c.pos
	return f, nil
}

// seek positions c's handle on the first record after c.pos, returning the
// index of its segment in views, or -1 if there is none yet.
func (l *Log) seek(c *cursor, views []segView) (int, error) {
	c.dropHandle()
	for i, v := range views {
		if v.last <= c.pos || v.last < v.first {
			continue
		}
		f, err := l.openAt(c, v, 0)
		if err != nil {
			return -1, err
		}
		if v.first > c.pos {
			return i, nil
		}
		// Skip the records up to c.pos.
		sc := newScanner(io.NewSectionReader(f, 0, v.end), v.end, v.first)
		for {
			off := sc.off
			seq, _, err := sc.scan()
			if err != nil {
				return -1, fmt.Errorf("wal: read: seek to seq %d in %s: %w: %w", c.pos+1, v.seg.path, ErrCorrupt, err)
			}
			if seq > c.pos {
				c.off = off
				return i, nil
			}
		}
	}
	return -1, nil
}

// Rewind moves the cursor's read position back to its committed seq, so the
// next Read returns again what was read but not committed (for a consumer
// whose delivery failed).
func (l *Log) Rewind(cursorName string) error {
	c, err := l.cursor(cursorName)
	if err != nil {
		return fmt.Errorf("wal: rewind: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pos = c.committed.Load()
	return nil
}

// Commit durably records that the cursor's records up to seq were
// delivered: after a restart, reading resumes after seq. Commits never move
// a cursor back (committing a smaller seq is a no-op) and cannot go past the
// last durable record. Segments every cursor has committed past are deleted.
func (l *Log) Commit(cursorName string, seq uint64) error {
	c, err := l.cursor(cursorName)
	if err != nil {
		return fmt.Errorf("wal: commit: %w", err)
	}
	c.mu.Lock()
	if l.closed.Load() {
		c.mu.Unlock()
		return ErrClosed
	}
	if seq <= c.committed.Load() {
		c.mu.Unlock()
		return nil
	}
	l.idxMu.RLock()
	durable := l.durable
	l.idxMu.RUnlock()
	if seq > durable {
		c.mu.Unlock()
		return fmt.Errorf("wal: commit %q to seq %d: past the last durable seq %d", cursorName, seq, durable)
	}
	if err := l.writeCursorFile(c, seq); err != nil {
		c.mu.Unlock()
		return fmt.Errorf("wal: commit %q to seq %d: %w", cursorName, seq, err)
	}
	c.committed.Store(seq)
	if c.pos < seq {
		c.pos = seq
	}
	c.mu.Unlock()
	l.reclaim()
	return nil
}

// reclaim deletes the oldest sealed segments every registered cursor has
// committed past. With no cursor registered nothing is deleted.
func (l *Log) reclaim() {
	l.reclaimMu.Lock()
	defer l.reclaimMu.Unlock()
	l.curMu.Lock()
	if len(l.cursors) == 0 {
		l.curMu.Unlock()
		return
	}
	low := ^uint64(0)
	for _, c := range l.cursors {
		low = min(low, c.committed.Load())
	}
	l.curMu.Unlock()
	var victims []*segment
	l.idxMu.Lock()
	for len(l.segs) > 1 && l.segs[0].last <= low {
		victims = append(victims, l.segs[0])
		l.segs = l.segs[1:]
	}
	l.idxMu.Unlock()
	if len(victims) == 0 {
		return
	}
	for _, s := range victims {
		if err := l.fs.Remove(s.path); err != nil {
			l.log.Error("wal: delete reclaimed segment", "segment", s.path, "error", err.Error())
			continue
		}
		l.bytes.Add(-s.end)
		l.full.Store(false)
		l.log.Debug("wal: segment reclaimed", "segment", s.path, "last_seq", s.last, "bytes", s.end)
	}
	if err := l.fs.SyncDir(l.cfg.Dir); err != nil {
		l.log.Warn("wal: fsync directory after reclaim", "error", err.Error())
	}
}

// HandOver gives the records from's reader has not committed to the
// cursor to, and unregisters from: to is registered if new, committed to
// at least from's position, and from is deleted. It is how the log's one
// job moves from one reader to another (the local log as the bus, whose
// reader is the consumer, against the spool in front of Kafka, whose
// reader is the forwarder): every record is then delivered by exactly one
// of them, none by both and none by neither. A missing from is a no-op
// beyond registering to. A crash part-way leaves both cursors; repeating
// the call finishes the job, since to keeps the larger position.
func (l *Log) HandOver(from, to string) error {
	if err := validCursorName(to); err != nil {
		return fmt.Errorf("wal: hand over %q to %q: %w", from, to, err)
	}
	pos, err := l.Committed(from)
	if errors.Is(err, ErrUnknownCursor) {
		err = l.Cursor(to)
		if err != nil {
			return fmt.Errorf("wal: hand over %q to %q: %w", from, to, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("wal: hand over %q to %q: %w", from, to, err)
	}
	if _, err := l.Committed(to); errors.Is(err, ErrUnknownCursor) {
		// The usual case: rename from's file, which needs no new disk
		// block, so a bus switch works on a full disk too.
		if err := l.renameCursor(from, to); err != nil {
			return fmt.Errorf("wal: hand over %q to %q: %w", from, to, err)
		}
	} else {
		if err := l.Commit(to, pos); err != nil {
			return fmt.Errorf("wal: hand over %q to %q: %w", from, to, err)
		}
		if err := l.DeleteCursor(from); err != nil {
			return fmt.Errorf("wal: hand over %q to %q: %w", from, to, err)
		}
	}
	l.log.Info("wal: cursor handed over", "from", from, "to", to, "seq", pos)
	return nil
}

// renameCursor renames cursor from, which must exist, to to, which must
// not, on disk and in memory.
func (l *Log) renameCursor(from, to string) error {
	l.curMu.Lock()
	defer l.curMu.Unlock()
	c, ok := l.cursors[from]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownCursor, from)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	path := filepath.Join(l.cursorsDir(), to)
	if err := l.fs.Rename(c.path, path); err != nil {
		return fmt.Errorf("rename cursor file: %w", err)
	}
	if err := l.fs.SyncDir(l.cursorsDir()); err != nil {
		return fmt.Errorf("fsync cursors directory: %w", err)
	}
	c.dropHandle()
	c.name, c.path = to, path
	delete(l.cursors, from)
	l.cursors[to] = c
	return nil
}
