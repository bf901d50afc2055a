package wal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Sentinel errors. Errors returned by the package wrap them; test with
// errors.Is.
var (
	// ErrFull means an Append would make the log exceed Config.MaxBytes.
	// Nothing was written; the caller may retry after cursors commit and
	// segments are reclaimed.
	ErrFull = errors.New("wal: log full")
	// ErrClosed means the Log was closed.
	ErrClosed = errors.New("wal: log closed")
	// ErrCorrupt means a record or cursor failed validation where a torn
	// write cannot explain it.
	ErrCorrupt = errors.New("wal: log corrupt")
	// ErrFailed means an fsync (or the undo of a failed write) failed: the
	// state of the file is unknown, so the Log refuses further appends.
	// Close and Open it again to recover.
	ErrFailed = errors.New("wal: log failed")
	// ErrUnknownCursor means a cursor name was not registered.
	ErrUnknownCursor = errors.New("wal: unknown cursor")
)

const (
	segmentExt    = ".seg"
	cursorsSubdir = "cursors"
	lockName      = "LOCK"
)

// segment is one segment file.
type segment struct {
	first uint64 // seq of its first record (also its name)
	path  string

	// Published state, guarded by Log.idxMu: what readers may see.
	end  int64  // bytes that are durable
	last uint64 // last durable seq; first-1 while there is none

	// Writer state, owned by the writer goroutine (active segment only).
	f      file
	size   int64 // bytes written
	wlast  uint64
	synced int64 // bytes fsynced
}

// appendReq is one Append call queued for the writer goroutine.
type appendReq struct {
	ctx         context.Context
	payloads    [][]byte
	size        int64
	first, last uint64
	err         error
	done        chan struct{} // closed by the writer once answered
}

func (r *appendReq) answer(err error) {
	r.err = err
	close(r.done)
}

// Record is one record returned by Read.
type Record struct {
	// Seq is the record's sequence number.
	Seq uint64
	// Payload is the record's payload. It belongs to the caller.
	Payload []byte
}

// Stats is a snapshot of the log's state.
type Stats struct {
	// FirstSeq is the seq of the first segment still on disk (the oldest
	// record that may still be read); LastSeq is the last durable seq.
	FirstSeq, LastSeq uint64
	// Bytes is the total size of the segments; Segments their number.
	Bytes    int64
	Segments int
}

// Log is a durable append-only log in one directory. Its methods are safe
// for concurrent use.
type Log struct {
	cfg    Config
	log    *slog.Logger
	fs     fsys
	unlock func() error
	m      *metrics
	id     string // see ID

	reqs       chan *appendReq
	quit       chan struct{} // closed by Close
	writerDone chan struct{} // closed when the writer goroutine exits
	closed     atomic.Bool
	failedErr  atomic.Pointer[error] // mirrors failed for Healthy
	full       atomic.Bool           // the last append was refused for space (ErrFull or ENOSPC)
	closeOnce  sync.Once
	closeErr   error

	// Owned by the writer goroutine (and by Open before it starts).
	active   *segment
	nextSeq  uint64
	pending  []*appendReq // written, waiting for an fsync
	wbuf     []byte
	failed   error
	finalErr error // error of the last flush, for Close

	bytes atomic.Int64 // total segment bytes written

	idxMu   sync.RWMutex
	segs    []*segment // ordered by first; the last one is the active one
	durable uint64     // last durable seq
	notify  chan struct{}

	curMu     sync.Mutex
	cursors   map[string]*cursor
	reclaimMu sync.Mutex
}

// Open opens (creating if needed) the log in cfg.Dir, recovers it after a
// crash (see the package doc) and starts its writer goroutine. log may be
// nil. The caller must Close the Log.
func Open(cfg Config, log *slog.Logger) (*Log, error) {
	return open(cfg, log, osFS{})
}

func open(cfg Config, log *slog.Logger, fs fsys) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "wal", "dir", cfg.Dir)
	if err := fs.MkdirAll(filepath.Join(cfg.Dir, cursorsSubdir), 0o755); err != nil {
		return nil, fmt.Errorf("wal: open: create directory: %w", err)
	}
	unlock, err := lockDir(filepath.Join(cfg.Dir, lockName))
	if err != nil {
		return nil, fmt.Errorf("wal: open: %w", err)
	}
	l := &Log{
		cfg:        cfg,
		log:        log,
		fs:         fs,
		unlock:     unlock,
		reqs:       make(chan *appendReq, 4096),
		quit:       make(chan struct{}),
		writerDone: make(chan struct{}),
		notify:     make(chan struct{}),
		cursors:    map[string]*cursor{},
	}
	if err := l.recover(); err != nil {
		l.abort()
		return nil, fmt.Errorf("wal: open %s: %w", cfg.Dir, err)
	}
	if err := l.loadCursors(); err != nil {
		l.abort()
		return nil, fmt.Errorf("wal: open %s: %w", cfg.Dir, err)
	}
	if l.id, err = l.loadID(); err != nil {
		l.abort()
		return nil, fmt.Errorf("wal: open %s: %w", cfg.Dir, err)
	}
	if err := l.startActive(); err != nil {
		l.abort()
		return nil, fmt.Errorf("wal: open %s: %w", cfg.Dir, err)
	}
	if l.m, err = newMetrics(l); err != nil {
		l.abort()
		return nil, fmt.Errorf("wal: open %s: metrics: %w", cfg.Dir, err)
	}
	l.reclaim()
	go l.run()
	st := l.Stats()
	log.Info("wal opened", "id", l.id, "first_seq", st.FirstSeq, "last_seq", st.LastSeq, "segments", st.Segments, "bytes", st.Bytes, "fsync", cfg.Fsync)
	return l, nil
}

// abort releases what a failed Open acquired.
func (l *Log) abort() {
	if l.active != nil && l.active.f != nil {
		l.active.f.Close()
	}
	l.unlock()
}

func segmentName(first uint64) string { return fmt.Sprintf("%020d%s", first, segmentExt) }

// parseSegmentName returns the first seq a segment file name encodes.
func parseSegmentName(name string) (uint64, bool) {
	base, ok := strings.CutSuffix(name, segmentExt)
	if !ok || len(base) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(base, 10, 64)
	if err != nil || n == 0 {
		return 0, false
	}
	return n, true
}

// recover scans every segment, cuts a torn or damaged tail of the last
// one, and fails with ErrCorrupt on damage in a sealed one (unless
// RepairCorrupt). It leaves the last segment open as l.active.
func (l *Log) recover() error {
	entries, err := l.fs.ReadDir(l.cfg.Dir)
	if err != nil {
		return fmt.Errorf("list segments: %w", err)
	}
	var firsts []uint64
	for _, e := range entries {
		if first, ok := parseSegmentName(e.Name()); ok && e.Type().IsRegular() {
			firsts = append(firsts, first)
		}
	}
	slices.Sort(firsts)
	var prevLast uint64
	for i, first := range firsts {
		isLast := i == len(firsts)-1
		seg := &segment{first: first, path: filepath.Join(l.cfg.Dir, segmentName(first))}
		if i > 0 && first <= prevLast {
			return fmt.Errorf("segment %s starts at seq %d, inside the previous segment (last seq %d): %w", seg.path, first, prevLast, ErrCorrupt)
		}
		if i > 0 && first != prevLast+1 {
			l.log.Warn("wal: sequence gap between segments", "missing_from", prevLast+1, "missing_to", first-1, "segment", seg.path)
		}
		if err := l.recoverSegment(seg, isLast); err != nil {
			return err
		}
		prevLast = seg.last
		l.segs = append(l.segs, seg)
		l.bytes.Add(seg.size)
		if isLast {
			l.active = seg
		}
	}
	if len(l.segs) > 0 {
		l.nextSeq = l.segs[len(l.segs)-1].last + 1
		l.durable = l.nextSeq - 1
	} else {
		l.nextSeq = 1
	}
	return nil
}

func (l *Log) recoverSegment(seg *segment, isLast bool) error {
	flag := os.O_RDONLY
	if isLast || l.cfg.RepairCorrupt {
		flag = os.O_RDWR
	}
	f, err := l.fs.OpenFile(seg.path, flag, 0)
	if err != nil {
		return fmt.Errorf("open segment: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			f.Close()
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat segment %s: %w", seg.path, err)
	}
	size := fi.Size()
	sc := newScanner(io.NewSectionReader(f, 0, size), size, seg.first)
	last := seg.first - 1
	for {
		seq, _, err := sc.scan()
		if err == nil {
			last = seq
			continue
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if !isDamage(err) {
			return fmt.Errorf("scan segment %s: %w", seg.path, err)
		}
		switch {
		case isLast:
			l.log.Warn("wal: cutting the tail of the last segment", "segment", seg.path, "offset", sc.off, "bytes_cut", size-sc.off, "last_seq", last, "reason", err.Error())
		case l.cfg.RepairCorrupt:
			l.log.Error("wal: repairing corrupt sealed segment, records after the damage are lost", "segment", seg.path, "offset", sc.off, "bytes_cut", size-sc.off, "last_good_seq", last, "reason", err.Error())
		default:
			return fmt.Errorf("sealed segment %s: %w: %w (set repair_corrupt to cut it there)", seg.path, ErrCorrupt, err)
		}
		if err := f.Truncate(sc.off); err != nil {
			return fmt.Errorf("truncate segment %s to %d: %w", seg.path, sc.off, err)
		}
		size = sc.off
		break
	}
	// Make what is kept durable: a killed process leaves written but
	// unsynced data in the page cache, and readers must only see durable
	// records.
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync segment %s: %w", seg.path, err)
	}
	seg.size, seg.synced, seg.end = size, size, size
	seg.last, seg.wlast = last, last
	if isLast {
		seg.f = f
		keep = true
	}
	return nil
}

// startActive makes sure there is an active segment whose name fits the next
// sequence number. Numbering never goes back below a committed cursor, so a
// sequence number a reader has seen is never reused even if recovery had to
// cut records.
func (l *Log) startActive() error {
	var maxCommitted uint64
	for _, c := range l.cursors {
		maxCommitted = max(maxCommitted, c.committed.Load())
	}
	if maxCommitted >= l.nextSeq {
		l.log.Warn("wal: a cursor committed past the end of the log; numbering continues after it", "last_seq", l.nextSeq-1, "committed", maxCommitted)
		l.nextSeq = maxCommitted + 1
		l.durable = maxCommitted
		if a := l.active; a != nil {
			a.f.Close()
			a.f = nil
			l.active = nil
			if a.size == 0 {
				if err := l.fs.Remove(a.path); err != nil {
					return fmt.Errorf("remove empty segment: %w", err)
				}
				l.segs = l.segs[:len(l.segs)-1]
			}
		}
	}
	if l.active == nil {
		seg, err := l.createSegment(l.nextSeq)
		if err != nil {
			return err
		}
		l.active = seg
	}
	return l.fs.SyncDir(l.cfg.Dir)
}

// createSegment creates an empty segment file for first, makes its directory
// entry durable and adds it to the index.
func (l *Log) createSegment(first uint64) (*segment, error) {
	path := filepath.Join(l.cfg.Dir, segmentName(first))
	f, err := l.fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create segment: %w", err)
	}
	if err := l.fs.SyncDir(l.cfg.Dir); err != nil {
		f.Close()
		l.fs.Remove(path)
		return nil, fmt.Errorf("create segment %s: fsync directory: %w", path, err)
	}
	seg := &segment{first: first, path: path, f: f, last: first - 1, wlast: first - 1}
	l.idxMu.Lock()
	l.segs = append(l.segs, seg)
	l.idxMu.Unlock()
	return seg, nil
}

// Append appends payloads as consecutive records and returns the sequence
// numbers of the first and last. It returns nil only once the records are
// durable under the fsync policy (see the package doc). The records of one
// call are contiguous and land in one segment. On ErrFull, a write error or
// ErrClosed nothing of the call is in the log. If ctx ends while the call
// waits for its fsync, Append returns ctx's error and the records may or
// may not end up in the log. Appending no payloads returns 0, 0, nil.
func (l *Log) Append(ctx context.Context, payloads [][]byte) (first, last uint64, err error) {
	if len(payloads) == 0 {
		return 0, 0, nil
	}
	if l.closed.Load() {
		return 0, 0, ErrClosed
	}
	var size int64
	for i, p := range payloads {
		if len(p) > MaxRecordBytes {
			return 0, 0, fmt.Errorf("wal: append: payload %d is %d bytes, more than the %d allowed", i, len(p), MaxRecordBytes)
		}
		size += recordSize(len(p))
	}
	if size > l.cfg.MaxBytes {
		return 0, 0, fmt.Errorf("wal: append %d bytes: larger than max_bytes %d: %w", size, l.cfg.MaxBytes, ErrFull)
	}
	r := &appendReq{ctx: ctx, payloads: payloads, size: size, done: make(chan struct{})}
	select {
	case l.reqs <- r:
	case <-l.quit:
		return 0, 0, ErrClosed
	case <-ctx.Done():
		return 0, 0, fmt.Errorf("wal: append: %w", ctx.Err())
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		return 0, 0, fmt.Errorf("wal: append: waiting for durability: %w (the records may still be appended)", ctx.Err())
	case <-l.writerDone:
		select {
		case <-r.done:
		default:
			return 0, 0, ErrClosed // queued after the writer's last drain: never written
		}
	}
	if r.err != nil {
		return 0, 0, r.err
	}
	return r.first, r.last, nil
}

// run is the writer goroutine: it writes queued appends in arrival order
// and fsyncs them, as soon as the queue is drained ("always": group commit)
// or on every tick ("interval").
func (l *Log) run() {
	defer close(l.writerDone)
	always := l.cfg.Fsync == FsyncAlways
	var tick <-chan time.Time
	if !always {
		t := time.NewTicker(l.cfg.FsyncInterval)
		defer t.Stop()
		tick = t.C
	}
	batch := make([]*appendReq, 0, 1024)
	for {
		select {
		case r := <-l.reqs:
			batch = append(batch[:0], r)
		drain:
			for len(batch) < cap(batch) {
				select {
				case r := <-l.reqs:
					batch = append(batch, r)
				default:
					break drain
				}
			}
			for i, r := range batch {
				l.write(r)
				batch[i] = nil
			}
			if always {
				l.finalErr = l.flush()
			}
		case <-tick:
			l.finalErr = l.flush()
		case <-l.quit:
			for {
				select {
				case r := <-l.reqs:
					l.write(r)
					continue
				default:
				}
				break
			}
			l.finalErr = l.flush()
			return
		}
	}
}

// write writes one request to the active segment (rolling first if it would
// overflow) and queues it for the next fsync. A failed write is undone by
// truncating the segment back, so the file stays a valid log.
func (l *Log) write(r *appendReq) {
	ctx := context.Background()
	if l.failed != nil {
		l.m.appendError(ctx, "failed")
		r.answer(l.failed)
		return
	}
	if err := r.ctx.Err(); err != nil {
		r.answer(fmt.Errorf("wal: append: %w", err))
		return
	}
	if used := l.bytes.Load(); used+r.size > l.cfg.MaxBytes {
		l.m.appendError(ctx, "full")
		l.full.Store(true)
		r.answer(fmt.Errorf("wal: append %d bytes with %d of max_bytes %d used: %w", r.size, used, l.cfg.MaxBytes, ErrFull))
		return
	}
	if l.active.size > 0 && l.active.size+r.size > l.cfg.SegmentBytes {
		if err := l.roll(); err != nil {
			l.m.appendError(ctx, "io")
			r.answer(err)
			return
		}
	}
	a := l.active
	buf := l.wbuf[:0]
	seq := l.nextSeq
	for _, p := range r.payloads {
		buf = appendRecord(buf, seq, p)
		seq++
	}
	if cap(buf) <= 4<<20 {
		l.wbuf = buf
	}
	off := a.size
	if _, err := a.f.WriteAt(buf, off); err != nil {
		l.m.appendError(ctx, "io")
		werr := fmt.Errorf("wal: append: write %s at offset %d: %w", a.path, off, err)
		if terr := a.f.Truncate(off); terr != nil {
			l.failed = fmt.Errorf("%w: undo a failed write by truncating %s to %d: %w", ErrFailed, a.path, off, terr)
			failed := l.failed
			l.failedErr.Store(&failed)
			l.log.Error("wal: cannot undo a failed write; refusing appends until reopened", "segment", a.path, "write_error", err.Error(), "truncate_error", terr.Error())
			werr = errors.Join(werr, l.failed)
		} else {
			l.log.Warn("wal: append failed, write undone", "segment", a.path, "error", err.Error())
		}
		if errors.Is(err, syscall.ENOSPC) {
			l.full.Store(true) // not healthy until space is reclaimed or a write succeeds
		}
		r.answer(werr)
		return
	}
	l.full.Store(false)
	n := int64(len(buf))
	a.size += n
	a.wlast = seq - 1
	r.first, r.last = l.nextSeq, seq-1
	l.nextSeq = seq
	l.bytes.Add(n)
	l.pending = append(l.pending, r)
	l.m.appended(ctx, len(r.payloads), n)
}

// flush fsyncs the active segment, publishes what is now durable to readers
// and answers the pending appends.
func (l *Log) flush() error {
	a := l.active
	if a.synced == a.size && len(l.pending) == 0 {
		return nil
	}
	start := time.Now()
	err := a.f.Sync()
	l.m.fsynced(context.Background(), time.Since(start))
	if err != nil {
		l.failed = fmt.Errorf("%w: fsync %s: %w", ErrFailed, a.path, err)
		failed := l.failed
		l.failedErr.Store(&failed)
		l.log.Error("wal: fsync failed; refusing appends until reopened", "segment", a.path, "error", err.Error())
		for i, r := range l.pending {
			r.answer(l.failed)
			l.pending[i] = nil
		}
		l.pending = l.pending[:0]
		return l.failed
	}
	a.synced = a.size
	l.publish(a, a.size, a.wlast)
	for i, r := range l.pending {
		r.answer(nil)
		l.pending[i] = nil
	}
	l.pending = l.pending[:0]
	return nil
}

// publish makes seg's first end bytes, up to seq last, visible to readers.
func (l *Log) publish(seg *segment, end int64, last uint64) {
	l.idxMu.Lock()
	seg.end, seg.last = end, last
	if last > l.durable {
		l.durable = last
	}
	close(l.notify)
	l.notify = make(chan struct{})
	l.idxMu.Unlock()
}

// roll seals the active segment (after making it durable) and starts a new
// one named after the next sequence number.
func (l *Log) roll() error {
	if err := l.flush(); err != nil {
		return err
	}
	seg, err := l.createSegment(l.nextSeq)
	if err != nil {
		return fmt.Errorf("wal: roll segment: %w", err)
	}
	old := l.active
	l.active = seg
	if err := old.f.Close(); err != nil {
		l.log.Warn("wal: close sealed segment", "segment", old.path, "error", err.Error())
	}
	old.f = nil
	l.log.Debug("wal: segment rolled", "sealed", old.path, "sealed_bytes", old.size, "active", seg.path)
	return nil
}

// Healthy is nil while Append can be expected to succeed: the log is
// open, no fsync or undo has failed, and it is not full (no append was
// refused for space since the last reclaim).
func (l *Log) Healthy() error {
	if l.closed.Load() {
		return ErrClosed
	}
	if p := l.failedErr.Load(); p != nil {
		return *p
	}
	if used := l.bytes.Load(); l.full.Load() || used >= l.cfg.MaxBytes {
		return fmt.Errorf("wal: %d of max_bytes %d used: %w", used, l.cfg.MaxBytes, ErrFull)
	}
	return nil
}

// Stats returns a snapshot of the log's size and sequence range.
func (l *Log) Stats() Stats {
	l.idxMu.RLock()
	defer l.idxMu.RUnlock()
	s := Stats{LastSeq: l.durable, Bytes: l.bytes.Load(), Segments: len(l.segs)}
	if len(l.segs) > 0 {
		s.FirstSeq = l.segs[0].first
	}
	return s
}

// Close makes every record already written durable, stops the writer
// goroutine, wakes blocked readers with ErrClosed and releases the
// directory. Appends still waiting get ErrClosed. Close is idempotent.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		close(l.quit)
		<-l.writerDone
		var errs []error
		if l.finalErr != nil {
			errs = append(errs, fmt.Errorf("wal: close: final fsync: %w", l.finalErr))
		}
		if err := l.active.f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("wal: close: close active segment: %w", err))
		}
		l.curMu.Lock()
		for _, c := range l.cursors {
			c.mu.Lock()
			c.dropHandle()
			c.mu.Unlock()
		}
		l.curMu.Unlock()
		if err := l.m.close(); err != nil {
			errs = append(errs, fmt.Errorf("wal: close: unregister metrics: %w", err))
		}
		if err := l.unlock(); err != nil {
			errs = append(errs, fmt.Errorf("wal: close: release lock: %w", err))
		}
		l.closeErr = errors.Join(errs...)
		l.log.Info("wal closed", "last_seq", l.nextSeq-1)
	})
	return l.closeErr
}
