package broker_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/sora3web/telemetry/bus"
	"github.com/sora3web/telemetry/bus/broker"
)

// TestReaderFencesRevokedPartitions: a member that handed out messages
// keeps its partitions through a rebalance until it has committed them.
// Reader A fetches messages and holds them, as a consumer does while it
// inserts a batch; reader B joins the group. B must get nothing while A
// holds uncommitted messages, and once A commits, B (and A again) must
// never be handed an offset A already handed out: two consumers would
// otherwise insert the same messages (seen with kafka-go's group Reader,
// which rejoined at once).
func TestReaderFencesRevokedPartitions(t *testing.T) {
	cfg := newTopic(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := broker.NewProducer(cfg, cfg.EventsTopic)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []bus.Message
	for i := range 400 {
		msgs = append(msgs, bus.Message{Key: []byte(fmt.Sprint("user-", i)), Value: []byte(fmt.Sprint(i))})
	}
	if err := p.Produce(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}

	rc := broker.ReaderConfig{GroupID: cfg.EventsTopic + "-group", StartOffset: "earliest", FetchMaxBytes: 1 << 20,
		FetchMaxWait: 100 * time.Millisecond, SessionTimeout: 20 * time.Second, BackoffMin: 50 * time.Millisecond, BackoffMax: time.Second}
	log := slog.New(slog.DiscardHandler)
	a, err := broker.NewReader(cfg, rc, log)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var held []bus.Message
	for range 40 {
		m, err := a.Fetch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, m)
	}
	handedA := map[int]int64{} // partition -> highest offset A handed out
	for _, m := range held {
		handedA[m.Partition] = max(handedA[m.Partition], m.Offset)
	}

	b, err := broker.NewReader(cfg, rc, log)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := make(chan bus.Message, 1000)
	go func() {
		for {
			m, err := b.Fetch(ctx)
			if err != nil {
				return
			}
			got <- m
		}
	}()
	select {
	case m := <-got:
		t.Fatalf("B was handed %s[%d]@%d while A held %d uncommitted messages", m.Topic, m.Partition, m.Offset, len(held))
	case <-time.After(5 * time.Second):
		// A's heartbeat (every 2s) has seen the rebalance; A holds its
		// partitions for up to half the session timeout (10s).
	}
	if err := a.Commit(ctx, held...); err != nil {
		t.Fatal(err)
	}
	// A goes on consuming, as its consumer does: what its old generation
	// read ahead is dropped, never handed to both.
	aGot := make(chan bus.Message, 1000)
	go func() {
		for {
			m, err := a.Fetch(ctx)
			if err != nil {
				return
			}
			aGot <- m
		}
	}()
	deadline := time.After(30 * time.Second)
	fromB := 0
	for fromB < 50 {
		select {
		case m := <-got:
			fromB++
			if last, ok := handedA[m.Partition]; ok && m.Offset <= last {
				t.Fatalf("B was handed %d@%d, which A had handed out (A's last there: %d)", m.Partition, m.Offset, handedA[m.Partition])
			}
		case m := <-aGot:
			if last, ok := handedA[m.Partition]; ok && m.Offset <= last {
				t.Fatalf("A was handed %d@%d again after committing up to %d", m.Partition, m.Offset, handedA[m.Partition])
			}
		case <-deadline:
			t.Fatalf("B got %d messages in 30s after A committed", fromB)
		}
	}
}
