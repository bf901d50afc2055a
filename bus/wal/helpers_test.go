package wal

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// openT opens a log on fs (nil: the real filesystem) and closes it at the
// end of the test.
func openT(t testing.TB, cfg Config, fs fsys) *Log {
	t.Helper()
	if fs == nil {
		fs = osFS{}
	}
	l, err := open(cfg, testLogger(t), fs)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// payloadFor is a deterministic payload of varying length for seq-like id n.
func payloadFor(n int) []byte {
	return []byte(fmt.Sprintf("rec-%d-%s", n, bytes.Repeat([]byte{byte('a' + n%26)}, n%97)))
}

func mustAppend(t testing.TB, l *Log, payloads ...[]byte) (uint64, uint64) {
	t.Helper()
	first, last, err := l.Append(context.Background(), payloads)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return first, last
}

// readAll reads every record after cursor's read position that is durable
// now, without committing.
func readAll(t testing.TB, l *Log, cursor string) []Record {
	t.Helper()
	var out []Record
	for {
		if c, _ := l.cursor(cursor); c != nil {
			c.mu.Lock()
			pos := c.pos
			c.mu.Unlock()
			if pos >= l.Stats().LastSeq {
				return out
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		recs, err := l.Read(ctx, cursor, 1000, 1<<20)
		cancel()
		if err != nil {
			t.Fatalf("read %s: %v", cursor, err)
		}
		out = append(out, recs...)
	}
}

// faultFS wraps the real filesystem to count and slow down fsyncs and to
// inject write, truncate and fsync errors.
type faultFS struct {
	osFS
	syncs     atomic.Int64
	syncDelay time.Duration
	read      atomic.Int64 // bytes ReadAt asked for

	mu sync.Mutex
	// writeErr, if set, is called before each segment WriteAt; a non-nil
	// error makes the write store only the first n bytes and fail.
	writeErr    func(path string, off int64, len int) (n int, err error)
	truncateErr error
	syncErr     error
	createErr   error // returned by OpenFile with O_CREATE (no space for a new file)
	ops         int64 // counter for ordering writes and syncs
	lastWrite   int64
	lastSync    int64
}

func (fs *faultFS) OpenFile(name string, flag int, perm os.FileMode) (file, error) {
	fs.mu.Lock()
	cerr := fs.createErr
	fs.mu.Unlock()
	if cerr != nil && flag&os.O_CREATE != 0 {
		return nil, cerr
	}
	f, err := fs.osFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{file: f, fs: fs, path: name}, nil
}

type faultFile struct {
	file
	fs   *faultFS
	path string
}

func (f *faultFile) WriteAt(b []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	hook := f.fs.writeErr
	f.fs.ops++
	f.fs.lastWrite = f.fs.ops
	f.fs.mu.Unlock()
	if hook != nil {
		if n, err := hook(f.path, off, len(b)); err != nil {
			n = min(n, len(b))
			if n > 0 {
				if _, werr := f.file.WriteAt(b[:n], off); werr != nil {
					return 0, werr
				}
			}
			return n, err
		}
	}
	return f.file.WriteAt(b, off)
}

func (f *faultFile) ReadAt(b []byte, off int64) (int, error) {
	f.fs.read.Add(int64(len(b)))
	return f.file.ReadAt(b, off)
}

func (f *faultFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	err := f.fs.truncateErr
	f.fs.mu.Unlock()
	if err != nil {
		return err
	}
	return f.file.Truncate(size)
}

func (f *faultFile) Sync() error {
	f.fs.mu.Lock()
	err := f.fs.syncErr
	f.fs.mu.Unlock()
	if err != nil {
		return err
	}
	if f.fs.syncDelay > 0 {
		time.Sleep(f.fs.syncDelay)
	}
	f.fs.syncs.Add(1)
	err = f.file.Sync()
	f.fs.mu.Lock()
	f.fs.ops++
	f.fs.lastSync = f.fs.ops
	f.fs.mu.Unlock()
	return err
}

func (fs *faultFS) set(fn func(fs *faultFS)) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fn(fs)
}

// checkRecords checks that recs are exactly the records with seqs from..to
// whose payloads want gives.
func checkRecords(t testing.TB, recs []Record, from uint64, want func(seq uint64) []byte) {
	t.Helper()
	for i, r := range recs {
		if r.Seq != from+uint64(i) {
			t.Fatalf("record %d: seq %d, want %d", i, r.Seq, from+uint64(i))
		}
		if w := want(r.Seq); !bytes.Equal(r.Payload, w) {
			t.Fatalf("record seq %d: payload %q, want %q", r.Seq, r.Payload, w)
		}
	}
}
