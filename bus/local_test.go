package bus

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sora3web/telemetry/bus/wal"
)

func TestLogReaderGivesKafkaSemanticsOverTheLocalLog(t *testing.T) {
	lg := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	l, err := wal.Open(wal.Config{Dir: dir + "/wal"}, lg)
	if err != nil {
		t.Fatal(err)
	}
	topic := LogTopic(l)
	pub := NewLogPublisher(l)
	ctx := context.Background()
	if err := pub.Publish(ctx, []Message{{Key: []byte("u1"), Value: []byte("a")}, {Key: []byte("u2"), Value: []byte("b")}, {Value: []byte("c")}}); err != nil {
		t.Fatal(err)
	}
	r, err := NewLogReader(l, "consumer", topic)
	if err != nil {
		t.Fatal(err)
	}
	var got []Message
	for i := 0; i < 3; i++ {
		m, err := r.Fetch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	if string(got[0].Key) != "u1" || string(got[1].Value) != "b" || got[2].Key != nil || got[0].Topic != topic || got[2].Offset != got[0].Offset+2 {
		t.Fatalf("messages: %+v", got)
	}
	// commit the first two only; after a reopen the third comes again
	if err := r.Commit(ctx, got[0], got[1]); err != nil {
		t.Fatal(err)
	}
	r.Close()
	l.Close()
	l, err = wal.Open(wal.Config{Dir: dir + "/wal"}, lg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if LogTopic(l) != topic {
		t.Fatalf("log topic changed across a restart: %s then %s", topic, LogTopic(l))
	}
	r, _ = NewLogReader(l, "consumer", topic)
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := r.Fetch(fctx)
	if err != nil || string(m.Value) != "c" || m.Offset != got[2].Offset {
		t.Fatalf("after restart: %+v %v", m, err)
	}
	// a dead-letter writer appends to its own log
	dl, err := wal.Open(wal.Config{Dir: dir + "/dlq"}, lg)
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	if err := NewLogWriter(dl).WriteMessages(ctx, Message{Value: []byte("bad"), Headers: []Header{{Key: "error", Value: []byte("decoding")}}}); err != nil {
		t.Fatal(err)
	}
	if dl.Stats().LastSeq != 1 {
		t.Fatalf("dead letters: %+v", dl.Stats())
	}
}

// TestAdoptLegacyLogID: the identity an older version kept beside the log
// moves into the log that carries it, and is dropped for a log that was
// wiped (which must get a new identity: its numbering starts again).
func TestAdoptLegacyLogID(t *testing.T) {
	tests := []struct {
		name     string
		keepLog  bool // the log directory still holds the old log
		wantSame bool // the log's topic is the legacy one
	}{
		{name: "log kept", keepLog: true, wantSame: true},
		{name: "log wiped", keepLog: false, wantSame: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			walDir := filepath.Join(data, "wal")
			l, err := wal.Open(wal.Config{Dir: walDir}, nil)
			if err != nil {
				t.Fatal(err)
			}
			l.Close()
			// What an older version left: no ID in the log, BUS_ID beside it.
			if err := os.Remove(filepath.Join(walDir, "ID")); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(data, "BUS_ID"), []byte("0123456789abcdef\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if !tc.keepLog {
				if err := os.RemoveAll(walDir); err != nil {
					t.Fatal(err)
				}
			}
			if err := AdoptLegacyLogID(data, walDir); err != nil {
				t.Fatal(err)
			}
			l, err = wal.Open(wal.Config{Dir: walDir}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if got := LogTopic(l) == "local-0123456789abcdef"; got != tc.wantSame {
				t.Fatalf("topic %s: legacy identity kept = %v, want %v", LogTopic(l), got, tc.wantSame)
			}
			if _, err := os.Stat(filepath.Join(data, "BUS_ID")); !os.IsNotExist(err) {
				t.Fatalf("BUS_ID still beside the log: %v", err)
			}
		})
	}
}

// TestLogReaderFetchBatchHandsOverWhatWasReadInOrder: FetchBatch returns
// up to max of the records read, in order, mixed with Fetch, and blocks
// only for the first.
func TestLogReaderFetchBatchHandsOverWhatWasReadInOrder(t *testing.T) {
	l, err := wal.Open(wal.Config{Dir: t.TempDir()}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	var msgs []Message
	for _, v := range []string{"a", "b", "c", "d", "e"} {
		msgs = append(msgs, Message{Value: []byte(v)})
	}
	if err := NewLogPublisher(l).Publish(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	r, err := NewLogReader(l, "consumer", LogTopic(l))
	if err != nil {
		t.Fatal(err)
	}
	var got string
	first, err := r.FetchBatch(ctx, nil, 3)
	if err != nil || len(first) != 3 {
		t.Fatalf("first batch %v, %v; want 3 messages", first, err)
	}
	m, err := r.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rest, err := r.FetchBatch(ctx, nil, 3)
	if err != nil || len(rest) != 1 {
		t.Fatalf("last batch %v, %v; want the 1 message left", rest, err)
	}
	for _, m := range append(append(first, m), rest...) {
		got += string(m.Value)
	}
	if got != "abcde" {
		t.Fatalf("got %q, want abcde", got)
	}
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if b, err := r.FetchBatch(wctx, nil, 3); err == nil {
		t.Fatalf("FetchBatch of a drained log returned %v; want it to block until ctx ends", b)
	}
}
