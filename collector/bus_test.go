package collector

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sora3web/telemetry/collector/wal"
)

func TestLogReaderGivesKafkaSemanticsOverTheLocalLog(t *testing.T) {
	lg := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	l, err := wal.Open(wal.Config{Dir: dir + "/wal"}, lg)
	if err != nil {
		t.Fatal(err)
	}
	topic, err := BusTopic(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := BusTopic(dir); again != topic {
		t.Fatalf("bus topic changed: %s then %s", topic, again)
	}
	pub := NewLogPublisher(l)
	ctx := context.Background()
	if err := pub.Publish(ctx, []Message{{Key: []byte("u1"), Value: []byte("a")}, {Key: []byte("u2"), Value: []byte("b")}, {Value: []byte("c")}}); err != nil {
		t.Fatal(err)
	}
	r, err := NewLogReader(l, "consumer", topic)
	if err != nil {
		t.Fatal(err)
	}
	var got []kafka.Message
	for i := 0; i < 3; i++ {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	if string(got[0].Key) != "u1" || string(got[1].Value) != "b" || got[2].Key != nil || got[0].Topic != topic || got[2].Offset != got[0].Offset+2 {
		t.Fatalf("messages: %+v", got)
	}
	// commit the first two only; after a reopen the third comes again
	if err := r.CommitMessages(ctx, got[0], got[1]); err != nil {
		t.Fatal(err)
	}
	r.Close()
	l.Close()
	l, err = wal.Open(wal.Config{Dir: dir + "/wal"}, lg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r, _ = NewLogReader(l, "consumer", topic)
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := r.FetchMessage(fctx)
	if err != nil || string(m.Value) != "c" || m.Offset != got[2].Offset {
		t.Fatalf("after restart: %+v %v", m, err)
	}
	// a dead-letter writer appends to its own log
	dl, err := wal.Open(wal.Config{Dir: dir + "/dlq"}, lg)
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	if err := NewLogWriter(dl).WriteMessages(ctx, kafka.Message{Value: []byte("bad"), Headers: []kafka.Header{{Key: "error", Value: []byte("decoding")}}}); err != nil {
		t.Fatal(err)
	}
	if dl.Stats().LastSeq != 1 {
		t.Fatalf("dead letters: %+v", dl.Stats())
	}
}
