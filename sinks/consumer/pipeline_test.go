package consumer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sora3web/telemetry/bus"
)

// TestFlightsWaitForEveryEarlierFlightOnly: wait returns once every flight
// begun before it ended, in whatever order they end, and is not held by a
// flight begun after it.
func TestFlightsWaitForEveryEarlierFlightOnly(t *testing.T) {
	var f flights
	if err := f.wait(context.Background()); err != nil {
		t.Fatalf("wait with no flight: %v", err)
	}
	first, second := f.begin(), f.begin()
	done := make(chan error, 1)
	mark := f.mark()
	go func() { done <- f.waitFor(context.Background(), mark) }()
	later := f.begin() // begun after the wait: it must not hold it
	f.end(second)
	select {
	case err := <-done:
		t.Fatalf("wait returned (%v) with the first flight open", err)
	case <-time.After(50 * time.Millisecond):
	}
	f.end(first)
	f.end(first) // ending twice does nothing
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("wait still waiting after both earlier flights ended")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := f.wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait with a flight open: %v, want the context's end", err)
	}
	f.end(later)
}

// preparingFake is a preparingSink that records the order of what the
// consumer asks of it. The first WriteBatch waits until the next batch is
// prepared (or gives up after a while): the consumer must prepare a batch
// while the previous one is being inserted.
type preparingFake struct {
	mu       sync.Mutex
	events   []string
	prepared chan struct{} // a send per Prepare
	overlap  bool          // the second Prepare came during the first insert
	writes   int
}

func (s *preparingFake) log(e string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
}

func (s *preparingFake) Prepare(b *Batch) error {
	s.log("prepare " + b.Token[:8])
	s.prepared <- struct{}{}
	return nil
}

func (s *preparingFake) Discard(*Batch) {}

func (s *preparingFake) WriteBatch(ctx context.Context, b *Batch) error {
	s.mu.Lock()
	s.writes++
	first := s.writes == 1
	s.mu.Unlock()
	<-s.prepared // its own Prepare
	if first {
		select {
		case <-s.prepared: // the next batch's, while this insert runs
			s.overlap = true
			s.prepared <- struct{}{} // for its own WriteBatch
		case <-time.After(5 * time.Second):
		}
	}
	s.log("write " + b.Token[:8])
	return nil
}

func (s *preparingFake) HighWater(context.Context, string, []int) (map[int]int64, error) {
	return map[int]int64{}, nil
}

func (s *preparingFake) StoredIDs(context.Context, string, int, int64, time.Time, func(uuid.UUID, time.Time)) error {
	return nil
}

// commitLog is a chanSource that records what is committed.
type commitLog struct {
	chanSource
	mu        sync.Mutex
	committed []int64
}

func (s *commitLog) Commit(_ context.Context, msgs ...bus.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range msgs {
		s.committed = append(s.committed, m.Offset)
	}
	return nil
}

// TestNextBatchIsPreparedWhileThePreviousIsInserted: with a sink that
// prepares apart (the engine's), the second batch is prepared while the
// first is inserted, and the batches are still written and committed in
// order.
func TestNextBatchIsPreparedWhileThePreviousIsInserted(t *testing.T) {
	src := &commitLog{chanSource: chanSource{msgs: make(chan bus.Message, 8)}}
	sink := &preparingFake{prepared: make(chan struct{}, 4)}
	cfg := DefaultConfig()
	cfg.BatchRows = 2
	c, err := New(cfg, src, nopDLQ{}, sink, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		m := marshal(t, event(i))
		src.msgs <- bus.Message{Key: m.Key, Value: m.Value, Topic: "events", Offset: int64(i)}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		src.mu.Lock()
		n := len(src.committed)
		src.mu.Unlock()
		if n == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := shutdown(c); err != nil {
		t.Fatal(err)
	}
	if !sink.overlap {
		t.Errorf("the second batch was not prepared during the first insert; events: %v", sink.events)
	}
	if want := []int64{1, 3}; !slices.Equal(src.committed, want) {
		t.Errorf("committed offsets %v, want %v (the last of each batch, in order)", src.committed, want)
	}
	var writes []string
	for _, e := range sink.events {
		if e[:5] == "write" {
			writes = append(writes, e)
		}
	}
	if len(writes) != 2 {
		t.Fatalf("writes %v, want 2", writes)
	}
}

func TestCommitPointsKeepTheLastOffsetOfEachPartition(t *testing.T) {
	msgs := []bus.Message{
		{Topic: "a", Partition: 0, Offset: 5, Value: []byte("x")},
		{Topic: "a", Partition: 1, Offset: 9},
		{Topic: "a", Partition: 0, Offset: 7, Key: []byte("k")},
		{Topic: "b", Partition: 0, Offset: 2},
		{Topic: "a", Partition: 0, Offset: 6},
	}
	want := []bus.Message{{Topic: "a", Partition: 0, Offset: 7}, {Topic: "a", Partition: 1, Offset: 9}, {Topic: "b", Partition: 0, Offset: 2}}
	got := commitPoints(msgs)
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].Topic != want[i].Topic || got[i].Partition != want[i].Partition || got[i].Offset != want[i].Offset ||
			got[i].Value != nil || got[i].Key != nil {
			t.Errorf("point %d: %+v, want %+v without key or value", i, got[i], want[i])
		}
	}
}

// TestRecoverRemovesBlocksNeverKept: a block encoded ahead of its insert
// and never kept (the process died while the batch before it was
// inserted) is removed at the next start, not inserted: its batch comes
// again from the bus.
func TestRecoverRemovesBlocksNeverKept(t *testing.T) {
	s := NewEngineSink(nil, nil, t.TempDir(), "db")
	b := &Batch{cols: newColumns(true), Token: "t"}
	if err := s.Prepare(b); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(b.block); err != nil {
		t.Fatalf("prepared block: %v", err)
	}
	n, err := s.Recover(context.Background())
	if err != nil || n != 0 {
		t.Fatalf("recover: %d inserts, %v; want 0, nil", n, err)
	}
	left, _ := filepath.Glob(filepath.Join(s.dir(), "*"))
	if len(left) != 0 {
		t.Fatalf("left after recover: %v", left)
	}
}
