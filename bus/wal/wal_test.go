package wal

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr []string // substrings, each naming a field
	}{
		{"defaults", Config{Dir: "x"}, nil},
		{"full", Config{Dir: "x", SegmentBytes: 4096, MaxBytes: 8192, Fsync: "interval", FsyncInterval: time.Millisecond, Cursors: []string{"a", "b.c"}}, nil},
		{"no dir", Config{}, []string{"dir: required"}},
		{"tiny segment", Config{Dir: "x", SegmentBytes: 10}, []string{"segment_bytes"}},
		{"max below segment", Config{Dir: "x", SegmentBytes: 1 << 20, MaxBytes: 1 << 19}, []string{"max_bytes"}},
		{"bad fsync", Config{Dir: "x", Fsync: "sometimes"}, []string{"fsync: \"sometimes\""}},
		{"negative interval", Config{Dir: "x", FsyncInterval: -1}, []string{"fsync_interval"}},
		{"bad cursor", Config{Dir: "x", Cursors: []string{".hidden", "a/b"}}, []string{"cursors: cursor name \".hidden\"", "cursors: cursor name \"a/b\""}},
		{"dup cursor", Config{Dir: "x", Cursors: []string{"a", "a"}}, []string{"\"a\" listed twice"}},
		{"several", Config{SegmentBytes: 1, Fsync: "no"}, []string{"dir", "segment_bytes", "fsync"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: nil, want errors %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate: %v; want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestAppendReadCommitRestart(t *testing.T) {
	for _, policy := range []string{FsyncAlways, FsyncInterval} {
		t.Run(policy, func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{Dir: dir, Fsync: policy, FsyncInterval: 2 * time.Millisecond, Cursors: []string{"fwd"}}
			l := openT(t, cfg, nil)
			want := func(seq uint64) []byte { return payloadFor(int(seq)) }
			for seq := uint64(1); seq <= 100; seq += 10 {
				var batch [][]byte
				for s := seq; s < seq+10; s++ {
					batch = append(batch, want(s))
				}
				first, last := mustAppend(t, l, batch...)
				if first != seq || last != seq+9 {
					t.Fatalf("append: seqs %d..%d, want %d..%d", first, last, seq, seq+9)
				}
			}
			recs, err := l.Read(context.Background(), "fwd", 30, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 30 {
				t.Fatalf("read %d records, want 30", len(recs))
			}
			checkRecords(t, recs, 1, want)
			// The read position advances without committing.
			recs, err = l.Read(context.Background(), "fwd", 30, 0)
			if err != nil {
				t.Fatal(err)
			}
			checkRecords(t, recs, 31, want)
			if err := l.Commit("fwd", 40); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}

			l = openT(t, cfg, nil)
			if c, _ := l.Committed("fwd"); c != 40 {
				t.Fatalf("committed after restart: %d, want 40", c)
			}
			recs = readAll(t, l, "fwd")
			if len(recs) != 60 {
				t.Fatalf("after restart read %d records, want 60 (41..100)", len(recs))
			}
			checkRecords(t, recs, 41, want)
			// Numbering continues.
			if first, _ := mustAppend(t, l, want(101)); first != 101 {
				t.Fatalf("first seq after restart: %d, want 101", first)
			}
		})
	}
}

func TestRewind(t *testing.T) {
	l := openT(t, Config{Dir: t.TempDir(), Cursors: []string{"c"}}, nil)
	for i := 1; i <= 10; i++ {
		mustAppend(t, l, payloadFor(i))
	}
	ctx := context.Background()
	a, _ := l.Read(ctx, "c", 4, 0)
	if err := l.Commit("c", a[1].Seq); err != nil { // delivered 1, 2
		t.Fatal(err)
	}
	if err := l.Rewind("c"); err != nil {
		t.Fatal(err)
	}
	b, _ := l.Read(ctx, "c", 4, 0)
	checkRecords(t, b, 3, func(s uint64) []byte { return payloadFor(int(s)) })
	if len(b) != 4 {
		t.Fatalf("after rewind read %d records, want 4", len(b))
	}
}

func TestReadLimits(t *testing.T) {
	l := openT(t, Config{Dir: t.TempDir(), SegmentBytes: 4096, Cursors: []string{"c"}}, nil)
	big := make([]byte, 10000) // larger than a segment and than maxBytes
	for i := range big {
		big[i] = byte(i)
	}
	payloads := map[uint64][]byte{}
	for i := 1; i <= 20; i++ {
		p := make([]byte, 100)
		if i == 7 {
			p = big
		}
		first, _ := mustAppend(t, l, p)
		payloads[first] = p
	}
	tests := []struct {
		maxRecords, maxBytes int
		wantLens             []int
	}{
		{5, 0, []int{5, 5, 5, 5}},
		{100, 250, []int{2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1}}, // 7 alone: a record larger than maxBytes still comes
		{3, 1 << 20, []int{3, 3, 3, 3, 3, 3, 2}},
	}
	for _, tt := range tests {
		l.Rewind("c")
		var lens []int
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			recs, err := l.Read(ctx, "c", tt.maxRecords, tt.maxBytes)
			cancel()
			if errors.Is(err, context.DeadlineExceeded) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			checkRecords(t, recs, recs[0].Seq, func(s uint64) []byte { return payloads[s] })
			lens = append(lens, len(recs))
		}
		if !slicesEqual(lens, tt.wantLens) {
			t.Errorf("maxRecords %d maxBytes %d: batch sizes %v, want %v", tt.maxRecords, tt.maxBytes, lens, tt.wantLens)
		}
	}
}

// TestReadReadsEachRecordOnce: a reader asking for fewer records than
// its byte limit holds (bus.LogReader: 1,000 records, 4 MiB) reads each
// record's bytes about once, not a chunk of the byte limit per call (a
// record larger than the chunk, or the chunk's tail beyond the records
// asked for, read again); records of mixed sizes (events and audit
// records) come whole and in order.
func TestReadReadsEachRecordOnce(t *testing.T) {
	fs := &faultFS{}
	l := openT(t, Config{Dir: t.TempDir(), SegmentBytes: 64 << 20, Cursors: []string{"c"}}, fs)
	payloads := map[uint64][]byte{}
	var logBytes int64
	for i := range 5000 {
		p := make([]byte, 900)
		if i%51 == 50 {
			p = make([]byte, 150)
		}
		p[0] = byte(i)
		first, _ := mustAppend(t, l, p)
		payloads[first] = p
		logBytes += int64(len(p))
	}
	fs.read.Store(0)
	want := uint64(1)
	for want <= 5000 {
		recs, err := l.Read(context.Background(), "c", 100, 4<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != min(100, int(5001-want)) || recs[0].Seq != want {
			t.Fatalf("read %d records from seq %d, want %d from %d", len(recs), recs[0].Seq, min(100, int(5001-want)), want)
		}
		checkRecords(t, recs, want, func(s uint64) []byte { return payloads[s] })
		want += uint64(len(recs))
	}
	// Headers and the first chunk (sized by the byte limit, before any
	// record's size is known) come on top of the payloads.
	if read, limit := fs.read.Load(), logBytes*3/2+4<<20; read > limit {
		t.Fatalf("read %d bytes for %d bytes of payloads: want at most %d", read, logBytes, limit)
	}
}

func slicesEqual(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestOrderingAcrossSegmentRolls(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, SegmentBytes: 2048, Cursors: []string{"c"}}
	l := openT(t, cfg, nil)
	want := func(seq uint64) []byte { return payloadFor(int(seq) * 3) }
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				// The payload depends on the seq, which is only known after
				// the append: append a placeholder, remember the mapping.
				if _, _, err := l.Append(context.Background(), [][]byte{nil}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Now append payloads that depend on their seq, in several batches.
	start := l.Stats().LastSeq + 1
	for seq := start; seq < start+300; seq += 3 {
		mustAppend(t, l, want(seq), want(seq+1), want(seq+2))
	}
	if n := len(segmentFiles(t, dir)); n < 10 {
		t.Fatalf("%d segments, want many rolls", n)
	}
	check := func(l *Log) {
		recs := readAll(t, l, "c")
		if len(recs) != int(start-1)+300 {
			t.Fatalf("read %d records, want %d", len(recs), int(start-1)+300)
		}
		checkRecords(t, recs, 1, func(s uint64) []byte {
			if s < start {
				return []byte{}
			}
			return want(s)
		})
	}
	check(l)
	l.Close()
	check(openT(t, cfg, nil))
}

func TestReclaimOnlyAfterAllCursorsCommit(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, SegmentBytes: 1024, Cursors: []string{"a", "b"}}
	l := openT(t, cfg, nil)
	for i := 1; i <= 100; i++ {
		mustAppend(t, l, payloadFor(i))
	}
	segs := len(segmentFiles(t, dir))
	if segs < 5 {
		t.Fatalf("%d segments, want several", segs)
	}
	if err := l.Commit("a", 100); err != nil {
		t.Fatal(err)
	}
	if n := len(segmentFiles(t, dir)); n != segs {
		t.Fatalf("after one of two cursors committed: %d segments, want all %d kept", n, segs)
	}
	if err := l.Commit("b", 50); err != nil {
		t.Fatal(err)
	}
	st := l.Stats()
	if st.FirstSeq > 51 || st.FirstSeq == 1 {
		t.Fatalf("after b committed 50: first seq %d, want segments up to 50 reclaimed and 51 kept", st.FirstSeq)
	}
	if n := len(segmentFiles(t, dir)); n != st.Segments || n >= segs {
		t.Fatalf("%d segment files, stats say %d, before %d", n, st.Segments, segs)
	}
	// b still reads 51.. after a restart.
	l.Close()
	l = openT(t, cfg, nil)
	recs := readAll(t, l, "b")
	checkRecords(t, recs, 51, func(s uint64) []byte { return payloadFor(int(s)) })
	if len(recs) != 50 {
		t.Fatalf("b read %d, want 50", len(recs))
	}
	if err := l.Commit("b", 100); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.Segments != 1 {
		t.Fatalf("all committed: %d segments, want only the active one", st.Segments)
	}
	var size int64
	for _, p := range segmentFiles(t, dir) {
		fi, _ := os.Stat(p)
		size += fi.Size()
	}
	if st := l.Stats(); st.Bytes != size {
		t.Fatalf("stats bytes %d, files hold %d", st.Bytes, size)
	}
}

func TestCursorPersistence(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, Config{Dir: dir}, nil)
	mustAppend(t, l, payloadFor(1), payloadFor(2), payloadFor(3))
	if err := l.Commit("late", 1); !errors.Is(err, ErrUnknownCursor) {
		t.Fatalf("commit on unknown cursor: %v, want ErrUnknownCursor", err)
	}
	if err := l.Cursor("late"); err != nil {
		t.Fatal(err)
	}
	if err := l.Cursor("bad/name"); err == nil {
		t.Fatal("Cursor accepted an invalid name")
	}
	if err := l.Commit("late", 2); err != nil {
		t.Fatal(err)
	}
	if err := l.Commit("late", 1); err != nil { // backwards: no-op
		t.Fatal(err)
	}
	if err := l.Commit("late", 4); err == nil {
		t.Fatal("commit past the last durable seq accepted")
	}
	l.Close()
	// Registered without being in the config: it persists.
	l = openT(t, Config{Dir: dir}, nil)
	if c, err := l.Committed("late"); err != nil || c != 2 {
		t.Fatalf("committed after restart: %d, %v; want 2", c, err)
	}
	recs := readAll(t, l, "late")
	if len(recs) != 1 || recs[0].Seq != 3 {
		t.Fatalf("read after restart: %+v, want seq 3", recs)
	}
	if err := l.DeleteCursor("late"); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = openT(t, Config{Dir: dir}, nil)
	if _, err := l.Committed("late"); !errors.Is(err, ErrUnknownCursor) {
		t.Fatalf("deleted cursor after restart: %v, want ErrUnknownCursor", err)
	}
}

func TestCorruptCursorFile(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, Config{Dir: dir, Cursors: []string{"c"}}, nil)
	mustAppend(t, l, payloadFor(1))
	l.Close()
	os.WriteFile(filepath.Join(dir, "cursors", "c"), []byte("12x"), 0o644)
	if _, err := Open(Config{Dir: dir}, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open with a corrupt cursor: %v, want ErrCorrupt", err)
	}
	l = openT(t, Config{Dir: dir, RepairCorrupt: true}, nil)
	if c, _ := l.Committed("c"); c != 0 {
		t.Fatalf("repaired cursor at %d, want 0", c)
	}
}

func TestReadBlocksUntilAppend(t *testing.T) {
	l := openT(t, Config{Dir: t.TempDir(), Cursors: []string{"c"}}, nil)
	got := make(chan []Record, 1)
	go func() {
		recs, err := l.Read(context.Background(), "c", 10, 0)
		if err != nil {
			t.Error(err)
		}
		got <- recs
	}()
	select {
	case <-got:
		t.Fatal("Read returned with nothing appended")
	case <-time.After(50 * time.Millisecond):
	}
	mustAppend(t, l, []byte("x"))
	select {
	case recs := <-got:
		if len(recs) != 1 || string(recs[0].Payload) != "x" {
			t.Fatalf("Read: %+v", recs)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not wake up on append")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := l.Read(ctx, "c", 10, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read with nothing new: %v, want deadline exceeded", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := l.Read(context.Background(), "c", 10, 0)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Read at Close: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake a blocked Read")
	}
	if _, _, err := l.Append(context.Background(), [][]byte{[]byte("y")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}
	if err := l.Commit("c", 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Commit after Close: %v, want ErrClosed", err)
	}
}

func TestDirectoryLocked(t *testing.T) {
	dir := t.TempDir()
	openT(t, Config{Dir: dir}, nil)
	if l, err := Open(Config{Dir: dir}, nil); err == nil {
		l.Close()
		t.Fatal("second Open of the same directory succeeded")
	}
}

func TestErrFullThenReclaim(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, SegmentBytes: 1024, MaxBytes: 4096, Cursors: []string{"c"}}
	l := openT(t, cfg, nil)
	p := make([]byte, 100) // 116 bytes a record
	var last uint64
	var err error
	for i := 0; i < 100; i++ {
		var seq uint64
		if _, seq, err = l.Append(context.Background(), [][]byte{p}); err != nil {
			break
		}
		last = seq
	}
	if !errors.Is(err, ErrFull) {
		t.Fatalf("append past max_bytes: %v, want ErrFull", err)
	}
	if st := l.Stats(); st.Bytes > cfg.MaxBytes || st.LastSeq != last {
		t.Fatalf("stats %+v: over max_bytes %d or last seq not %d", st, cfg.MaxBytes, last)
	}
	if _, _, err := l.Append(context.Background(), [][]byte{make([]byte, 5000)}); !errors.Is(err, ErrFull) {
		t.Fatalf("append larger than max_bytes: %v, want ErrFull", err)
	}
	recs := readAll(t, l, "c")
	if uint64(len(recs)) != last {
		t.Fatalf("read %d records, want %d", len(recs), last)
	}
	if err := l.Commit("c", last); err != nil {
		t.Fatal(err)
	}
	first, _, err := l.Append(context.Background(), [][]byte{p, p})
	if err != nil {
		t.Fatalf("append after reclaim: %v", err)
	}
	if first != last+1 {
		t.Fatalf("seq after reclaim %d, want %d", first, last+1)
	}
	l.Close()
	l = openT(t, cfg, nil)
	recs = readAll(t, l, "c")
	if len(recs) != 2 || recs[0].Seq != last+1 {
		t.Fatalf("after restart read %+v, want seqs %d, %d", recs, last+1, last+2)
	}
}

func TestWriteErrorLeavesValidLog(t *testing.T) {
	dir := t.TempDir()
	fs := &faultFS{}
	cfg := Config{Dir: dir, Cursors: []string{"c"}}
	l := openT(t, cfg, fs)
	want := func(s uint64) []byte { return payloadFor(int(s)) }
	mustAppend(t, l, want(1), want(2))
	// The disk fills up in the middle of the next write: 20 bytes land.
	fs.set(func(fs *faultFS) {
		fs.writeErr = func(path string, off int64, n int) (int, error) {
			if strings.HasSuffix(path, ".seg") {
				return 20, syscall.ENOSPC
			}
			return 0, nil
		}
	})
	_, _, err := l.Append(context.Background(), [][]byte{want(3), want(4)})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v, want ENOSPC", err)
	}
	fs.set(func(fs *faultFS) { fs.writeErr = nil })
	first, last := mustAppend(t, l, want(3), want(4))
	if first != 3 || last != 4 {
		t.Fatalf("append after the error: %d..%d, want 3..4 (the failed one takes no seq)", first, last)
	}
	checkRecords(t, readAll(t, l, "c"), 1, want)
	l.Close()

	l = openT(t, cfg, nil)
	recs := readAll(t, l, "c")
	if len(recs) != 4 {
		t.Fatalf("after restart %d records, want 4", len(recs))
	}
	checkRecords(t, recs, 1, want)
	fi, _ := os.Stat(segmentFiles(t, dir)[0])
	var size int64
	for s := uint64(1); s <= 4; s++ {
		size += recordSize(len(want(s)))
	}
	if fi.Size() != size {
		t.Fatalf("segment is %d bytes, want exactly the 4 records' %d", fi.Size(), size)
	}
}

func TestUndoFailureAndFsyncFailureFailTheLog(t *testing.T) {
	tests := []struct {
		name  string
		fault func(fs *faultFS)
	}{
		{"truncate fails after a write error", func(fs *faultFS) {
			fs.writeErr = func(path string, off int64, n int) (int, error) { return 7, syscall.EIO }
			fs.truncateErr = syscall.EIO
		}},
		{"fsync fails", func(fs *faultFS) { fs.syncErr = syscall.EIO }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			fs := &faultFS{}
			cfg := Config{Dir: dir, Cursors: []string{"c"}}
			l := openT(t, cfg, fs)
			mustAppend(t, l, payloadFor(1))
			fs.set(tt.fault)
			if _, _, err := l.Append(context.Background(), [][]byte{payloadFor(2)}); err == nil {
				t.Fatal("append succeeded despite the fault")
			}
			fs.set(func(fs *faultFS) { fs.writeErr, fs.truncateErr, fs.syncErr = nil, nil, nil })
			if _, _, err := l.Append(context.Background(), [][]byte{payloadFor(2)}); !errors.Is(err, ErrFailed) {
				t.Fatalf("append after the fault: %v, want ErrFailed", err)
			}
			l.Close()
			// Reopening recovers: record 1 intact, appends work again.
			l = openT(t, cfg, nil)
			recs := readAll(t, l, "c")
			if len(recs) < 1 {
				t.Fatal("acknowledged record 1 lost")
			}
			checkRecords(t, recs[:1], 1, func(s uint64) []byte { return payloadFor(int(s)) })
			mustAppend(t, l, payloadFor(3))
		})
	}
}

func TestGroupCommitSharesFsyncs(t *testing.T) {
	fs := &faultFS{syncDelay: time.Millisecond} // a disk with a 1ms fsync
	l := openT(t, Config{Dir: t.TempDir(), Fsync: FsyncAlways}, fs)
	base := fs.syncs.Load()
	const goroutines, each = 32, 20
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, _, err := l.Append(context.Background(), [][]byte{payloadFor(g*each + i)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	syncs := fs.syncs.Load() - base
	t.Logf("%d appends, %d fsyncs", goroutines*each, syncs)
	if syncs == 0 || syncs >= goroutines*each/4 {
		t.Fatalf("%d fsyncs for %d concurrent appends: want group commit to share them (< %d)", syncs, goroutines*each, goroutines*each/4)
	}
	if st := l.Stats(); st.LastSeq != goroutines*each {
		t.Fatalf("last seq %d, want %d", st.LastSeq, goroutines*each)
	}
}

func TestAppendReturnsOnlyAfterFsync(t *testing.T) {
	for _, policy := range []string{FsyncAlways, FsyncInterval} {
		t.Run(policy, func(t *testing.T) {
			fs := &faultFS{}
			l := openT(t, Config{Dir: t.TempDir(), Fsync: policy, FsyncInterval: 20 * time.Millisecond}, fs)
			for i := 0; i < 20; i++ {
				mustAppend(t, l, payloadFor(i))
				fs.mu.Lock()
				w, s := fs.lastWrite, fs.lastSync
				fs.mu.Unlock()
				if s < w {
					t.Fatalf("append %d returned before its write (op %d) was fsynced (last fsync op %d)", i, w, s)
				}
			}
		})
	}
}

// TestFullDiskRecoversByCommitAndReclaim fills the disk: segment writes and
// new files fail with ENOSPC. The log must say it is unhealthy, the reader
// must still be able to commit (cursor files are updated in place, needing
// no new block), and the commit must reclaim sealed segments so appends
// work again once space returns.
func TestFullDiskRecoversByCommitAndReclaim(t *testing.T) {
	dir := t.TempDir()
	fs := &faultFS{}
	l := openT(t, Config{Dir: dir, SegmentBytes: 4096, MaxBytes: 1 << 20, Cursors: []string{"c"}}, fs)
	for i := 0; i < 40; i++ {
		mustAppend(t, l, make([]byte, 500))
	}
	segs := l.Stats().Segments
	if segs < 3 {
		t.Fatalf("want several segments, got %d", segs)
	}
	fs.set(func(fs *faultFS) {
		fs.createErr = syscall.ENOSPC
		fs.writeErr = func(path string, off int64, n int) (int, error) {
			if strings.HasSuffix(path, ".seg") {
				return 0, syscall.ENOSPC
			}
			return 0, nil
		}
	})
	if _, _, err := l.Append(context.Background(), [][]byte{make([]byte, 500)}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v", err)
	}
	if err := l.Healthy(); !errors.Is(err, ErrFull) {
		t.Fatalf("Healthy on a full disk = %v, want ErrFull", err)
	}
	recs := readAll(t, l, "c")
	if err := l.Commit("c", recs[len(recs)-1].Seq); err != nil {
		t.Fatalf("commit on a full disk: %v", err)
	}
	if got := l.Stats().Segments; got >= segs {
		t.Fatalf("segments %d after commit, want fewer than %d (reclaimed)", got, segs)
	}
	if err := l.Healthy(); err != nil {
		t.Fatalf("Healthy after reclaim: %v", err)
	}
	fs.set(func(fs *faultFS) { fs.createErr, fs.writeErr = nil, nil })
	mustAppend(t, l, []byte("after"))
	// the cursor survives a reopen
	l.Close()
	l = openT(t, Config{Dir: dir, SegmentBytes: 4096, MaxBytes: 1 << 20}, fs)
	if c, _ := l.Committed("c"); c != recs[len(recs)-1].Seq {
		t.Fatalf("committed after reopen %d, want %d", c, recs[len(recs)-1].Seq)
	}
}
