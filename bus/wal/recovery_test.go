package wal

import (
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"testing"
)

// segRecords lists the records (seq and offset) of each segment file.
type recPos struct {
	seq uint64
	off int64
}

func scanFile(t testing.TB, path string) []recPos {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	sc := newScanner(f, fi.Size(), 0)
	var out []recPos
	for {
		off := sc.off
		seq, _, err := sc.scan()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("scan %s: %v", path, err)
		}
		out = append(out, recPos{seq, off})
	}
}

func flipByte(t testing.TB, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func appendBytes(t testing.TB, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func TestRecovery(t *testing.T) {
	const n = 60
	type layout struct {
		segs  [][]recPos // per segment file, in order
		paths []string
	}
	// damage changes the files and returns the seqs expected to survive,
	// or nil if Open must fail with ErrCorrupt.
	tests := []struct {
		name   string
		repair bool
		damage func(t *testing.T, lay layout) []uint64
	}{
		{"clean", false, func(t *testing.T, lay layout) []uint64 { return seqRange(1, n) }},
		{"torn tail: last record cut short", false, func(t *testing.T, lay layout) []uint64 {
			p := lay.paths[len(lay.paths)-1]
			fi, _ := os.Stat(p)
			os.Truncate(p, fi.Size()-3)
			return seqRange(1, n-1)
		}},
		{"torn tail: partial header", false, func(t *testing.T, lay layout) []uint64 {
			p := lay.paths[len(lay.paths)-1]
			last := lay.segs[len(lay.segs)-1]
			os.Truncate(p, last[len(last)-1].off+10)
			return seqRange(1, n-1)
		}},
		{"garbage after the last record", false, func(t *testing.T, lay layout) []uint64 {
			appendBytes(t, lay.paths[len(lay.paths)-1], []byte("\x05\x00\x00\x00garbage-garbage-garbage"))
			return seqRange(1, n)
		}},
		{"zeros after the last record", false, func(t *testing.T, lay layout) []uint64 {
			appendBytes(t, lay.paths[len(lay.paths)-1], make([]byte, 4096))
			return seqRange(1, n)
		}},
		{"huge length after the last record", false, func(t *testing.T, lay layout) []uint64 {
			appendBytes(t, lay.paths[len(lay.paths)-1], []byte{0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13})
			return seqRange(1, n)
		}},
		{"flipped byte in the last record", false, func(t *testing.T, lay layout) []uint64 {
			p := lay.paths[len(lay.paths)-1]
			fi, _ := os.Stat(p)
			flipByte(t, p, fi.Size()-1)
			return seqRange(1, n-1)
		}},
		{"flipped seq in the last record", false, func(t *testing.T, lay layout) []uint64 {
			last := lay.segs[len(lay.segs)-1]
			flipByte(t, lay.paths[len(lay.paths)-1], last[len(last)-1].off+8)
			return seqRange(1, n-1)
		}},
		{"flipped byte in the middle of the last segment", false, func(t *testing.T, lay layout) []uint64 {
			last := lay.segs[len(lay.segs)-1]
			if len(last) < 3 {
				t.Fatalf("last segment has %d records, want >= 3", len(last))
			}
			flipByte(t, lay.paths[len(lay.paths)-1], last[1].off+headerSize)
			return seqRange(1, last[0].seq)
		}},
		{"flipped byte in a sealed segment", false, func(t *testing.T, lay layout) []uint64 {
			flipByte(t, lay.paths[1], lay.segs[1][2].off+headerSize+1)
			return nil
		}},
		{"truncated sealed segment", false, func(t *testing.T, lay layout) []uint64 {
			os.Truncate(lay.paths[0], lay.segs[0][len(lay.segs[0])-1].off+5)
			return nil
		}},
		{"flipped byte in a sealed segment, repaired", true, func(t *testing.T, lay layout) []uint64 {
			flipByte(t, lay.paths[1], lay.segs[1][2].off+headerSize+1)
			var keep []uint64
			lost := lay.segs[1][2:]
			for s := uint64(1); s <= n; s++ {
				if s < lost[0].seq || s > lost[len(lost)-1].seq {
					keep = append(keep, s)
				}
			}
			return keep
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{Dir: dir, SegmentBytes: 1024}
			l := openT(t, cfg, nil)
			for i := 1; i <= n; i++ {
				mustAppend(t, l, payloadFor(i))
			}
			l.Close()
			var lay layout
			lay.paths = segmentFiles(t, dir)
			if len(lay.paths) < 4 {
				t.Fatalf("%d segments, want at least 4", len(lay.paths))
			}
			for _, p := range lay.paths {
				lay.segs = append(lay.segs, scanFile(t, p))
			}
			want := tt.damage(t, lay)

			cfg.RepairCorrupt = tt.repair
			l2, err := Open(cfg, testLogger(t))
			if want == nil {
				if !errors.Is(err, ErrCorrupt) {
					if err == nil {
						l2.Close()
					}
					t.Fatalf("open: %v, want ErrCorrupt", err)
				}
				t.Logf("open: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer l2.Close()
			if err := l2.Cursor("check"); err != nil {
				t.Fatal(err)
			}
			recs := readAll(t, l2, "check")
			var got []uint64
			for _, r := range recs {
				got = append(got, r.Seq)
				if string(r.Payload) != string(payloadFor(int(r.Seq))) {
					t.Fatalf("seq %d: payload %q, want %q", r.Seq, r.Payload, payloadFor(int(r.Seq)))
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("recovered seqs %v, want %v", got, want)
			}
			// The files hold nothing but valid records now.
			for _, p := range segmentFiles(t, dir) {
				scanFile(t, p)
			}
			// Numbering continues after the last surviving record.
			first, _, err := l2.Append(context.Background(), [][]byte{[]byte("next")})
			if err != nil {
				t.Fatal(err)
			}
			if first != want[len(want)-1]+1 {
				t.Fatalf("next seq %d, want %d", first, want[len(want)-1]+1)
			}
		})
	}
}

func seqRange(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// A record whose seq a cursor already committed is never renumbered: if
// recovery cuts records a reader had delivered, numbering continues after
// the committed seq.
func TestNumberingNeverGoesBelowCommitted(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, Cursors: []string{"c"}}
	l := openT(t, cfg, nil)
	for i := 1; i <= 10; i++ {
		mustAppend(t, l, payloadFor(i))
	}
	if err := l.Commit("c", 10); err != nil {
		t.Fatal(err)
	}
	l.Close()
	p := segmentFiles(t, dir)[0]
	recs := scanFile(t, p)
	flipByte(t, p, recs[5].off+headerSize) // damage: records 6.. are cut
	l = openT(t, cfg, nil)
	first, _ := mustAppend(t, l, []byte("after"))
	if first != 11 {
		t.Fatalf("first seq after cutting committed records: %d, want 11", first)
	}
	r, err := l.Read(context.Background(), "c", 10, 0)
	if err != nil || len(r) != 1 || r[0].Seq != 11 {
		t.Fatalf("read %+v, %v; want seq 11", r, err)
	}
	l.Close()
	// And the gap it leaves between segments is accepted on the next Open.
	l = openT(t, cfg, nil)
	if st := l.Stats(); st.LastSeq != 11 {
		t.Fatalf("last seq %d, want 11", st.LastSeq)
	}
}
