package wal

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestIdentityLivesAndDiesWithTheDirectory: a log keeps its identity
// across restarts, and a wiped directory (whose numbering starts again at
// seq 1) gets a new one, so (ID, seq) never names two records.
func TestIdentityLivesAndDiesWithTheDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wal")
	cfg := Config{Dir: dir}
	l, err := Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := l.ID()
	if len(first) != 16 {
		t.Fatalf("identity %q, want 16 hex digits", first)
	}
	mustAppend(t, l, payloadFor(1), payloadFor(2))
	l.Close()

	l, err = Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.ID() != first {
		t.Fatalf("identity after a restart: %q, want %q", l.ID(), first)
	}
	if f, _ := mustAppend(t, l, payloadFor(3)); f != 3 {
		t.Fatalf("seq after a restart: %d, want 3", f)
	}
	l.Close()

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	l = openT(t, cfg, nil)
	if l.ID() == first {
		t.Fatalf("a wiped log kept its identity %q", first)
	}
	if f, _ := mustAppend(t, l, payloadFor(1)); f != 1 {
		t.Fatalf("seq of a wiped log: %d, want 1", f)
	}
}

// TestCorruptIdentityIsRefused: an empty identity file is damage, not a
// reason to make up a new identity (which would make the consumer store
// the log's records again).
func TestCorruptIdentityIsRefused(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, Config{Dir: dir}, nil)
	l.Close()
	if err := os.WriteFile(filepath.Join(dir, idName), []byte("\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Config{Dir: dir}, nil); err == nil {
		t.Fatal("open with an empty identity file succeeded")
	}
}

// TestHandOver: the records one reader has not committed go to the other,
// which is the only one left; a crash between the two steps (both cursors
// on disk) is finished by the next hand-over; a second hand-over of a
// cursor that no longer exists changes nothing.
func TestHandOver(t *testing.T) {
	tests := []struct {
		name             string
		from, to         uint64 // committed positions before; 0 and absent differ below
		toExists         bool
		wantTo, wantRead uint64
	}{
		{name: "to is new", from: 6, wantTo: 6, wantRead: 7},
		{name: "both exist, from ahead", from: 6, to: 3, toExists: true, wantTo: 6, wantRead: 7},
		{name: "both exist, to ahead", from: 2, to: 8, toExists: true, wantTo: 8, wantRead: 9},
		{name: "from at the start", from: 0, wantTo: 0, wantRead: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cursors := []string{"a"}
			if tc.toExists {
				cursors = append(cursors, "b")
			}
			l, err := Open(Config{Dir: dir, Cursors: cursors}, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := 1; i <= 10; i++ {
				mustAppend(t, l, payloadFor(i))
			}
			if err := l.Commit("a", tc.from); err != nil {
				t.Fatal(err)
			}
			if tc.toExists {
				if err := l.Commit("b", tc.to); err != nil {
					t.Fatal(err)
				}
			}
			l.Close()

			l = openT(t, Config{Dir: dir}, nil)
			for range 2 {
				if err := l.HandOver("a", "b"); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := l.Committed("a"); err == nil {
				t.Fatal("cursor a still registered after the hand-over")
			}
			if _, err := os.Stat(filepath.Join(dir, cursorsSubdir, "a")); !os.IsNotExist(err) {
				t.Fatalf("cursor file a after the hand-over: %v", err)
			}
			if got, _ := l.Committed("b"); got != tc.wantTo {
				t.Fatalf("b committed at %d, want %d", got, tc.wantTo)
			}
			recs := readAll(t, l, "b")
			if len(recs) == 0 || recs[0].Seq != tc.wantRead || recs[len(recs)-1].Seq != 10 {
				t.Fatalf("b reads %d records from %v, want %d..10", len(recs), recs[:min(1, len(recs))], tc.wantRead)
			}
		})
	}
}

// TestHandOverOnAFullDisk: a bus switch on a full disk renames the cursor
// file, which needs no new block, and the reopened log has only the new
// cursor at the old position.
func TestHandOverOnAFullDisk(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(Config{Dir: dir, Cursors: []string{"a"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		mustAppend(t, l, payloadFor(i))
	}
	if err := l.Commit("a", 3); err != nil {
		t.Fatal(err)
	}
	l.Close()
	fs := &faultFS{}
	l = openT(t, Config{Dir: dir}, fs)
	fs.set(func(fs *faultFS) {
		fs.createErr = syscall.ENOSPC
		fs.writeErr = func(string, int64, int) (int, error) { return 0, syscall.ENOSPC }
	})
	if err := l.HandOver("a", "b"); err != nil {
		t.Fatalf("hand-over on a full disk: %v", err)
	}
	fs.set(func(fs *faultFS) { fs.createErr, fs.writeErr = nil, nil })
	if err := l.Commit("b", 4); err != nil {
		t.Fatalf("commit of the renamed cursor: %v", err)
	}
	l.Close()
	l = openT(t, Config{Dir: dir}, nil)
	if _, err := l.Committed("a"); err == nil {
		t.Fatal("cursor a came back")
	}
	if got, _ := l.Committed("b"); got != 4 {
		t.Fatalf("b committed at %d after reopen, want 4", got)
	}
}
