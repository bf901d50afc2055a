package consumer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sora3web/telemetry/bus"
)

// chanSource hands out the messages sent on its channel; commits are
// no-ops.
type chanSource struct{ msgs chan bus.Message }

func (s chanSource) Fetch(ctx context.Context) (bus.Message, error) {
	select {
	case m := <-s.msgs:
		return m, nil
	case <-ctx.Done():
		return bus.Message{}, ctx.Err()
	}
}
func (chanSource) Commit(context.Context, ...bus.Message) error { return nil }
func (chanSource) Close() error                                 { return nil }

// nopDLQ drops dead letters.
type nopDLQ struct{}

func (nopDLQ) WriteMessages(context.Context, ...bus.Message) error { return nil }
func (nopDLQ) Close() error                                        { return nil }

// gatedSink blocks each WriteBatch until release is closed.
type gatedSink struct {
	entered chan struct{}
	release chan struct{}
}

func (s *gatedSink) WriteBatch(ctx context.Context, _ *Batch) error {
	s.entered <- struct{}{}
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
func (s *gatedSink) HighWater(context.Context, string, []int) (map[int]int64, error) {
	return map[int]int64{}, nil
}
func (s *gatedSink) StoredIDs(context.Context, string, int, int64, time.Time, func(uuid.UUID, time.Time)) error {
	return nil
}

// TestBarrierWaitsForTheBatchInFlight: a deletion's barrier does not
// return while a batch filtered before it is still being inserted, and
// returns once that insert is done.
func TestBarrierWaitsForTheBatchInFlight(t *testing.T) {
	src := chanSource{msgs: make(chan bus.Message, 1)}
	sink := &gatedSink{entered: make(chan struct{}, 1), release: make(chan struct{})}
	cfg := DefaultConfig()
	cfg.BatchInterval = 10 * time.Millisecond
	c, err := New(cfg, src, nopDLQ{}, sink, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Barrier(context.Background()); err != nil {
		t.Fatalf("barrier of an idle consumer: %v", err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer shutdown(c)
	m := marshal(t, event(1))
	src.msgs <- bus.Message{Key: m.Key, Value: m.Value}
	<-sink.entered // the batch was filtered and its insert is running
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := c.Barrier(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("barrier during the insert: %v, want it to wait", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Barrier(context.Background()) }()
	close(sink.release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("barrier still waiting after the insert ended")
	}
}

// TestShutdownBeforeStartIsANoOp: every long-lived part may be shut down
// before it started (a pipeline whose start failed half-way does so).
func TestShutdownBeforeStartIsANoOp(t *testing.T) {
	c, err := New(DefaultConfig(), chanSource{msgs: make(chan bus.Message)}, nopDLQ{}, &gatedSink{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown before start: %v", err)
	}
}

// TestDrainedBatchIsNotHeldForTheInterval: a batch of at least a tenth of
// batch_rows to which nothing more arrives is inserted without waiting out
// batch_interval (here an hour), while a smaller one waits.
func TestDrainedBatchIsNotHeldForTheInterval(t *testing.T) {
	for _, c := range []struct {
		name   string
		n      int
		inTime bool
	}{
		{"a tenth of batch_rows, then nothing", 10, true},
		{"fewer, then nothing", 9, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := chanSource{msgs: make(chan bus.Message, c.n)}
			sink := &gatedSink{entered: make(chan struct{}, 1), release: make(chan struct{})}
			close(sink.release)
			cfg := DefaultConfig()
			cfg.BatchRows, cfg.BatchInterval = 100, time.Hour
			cons, err := New(cfg, src, nopDLQ{}, sink, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if err := cons.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer shutdown(cons)
			for i := range c.n {
				m := marshal(t, event(i))
				src.msgs <- bus.Message{Key: m.Key, Value: m.Value, Offset: int64(i)}
			}
			select {
			case <-sink.entered:
				if !c.inTime {
					t.Fatal("a batch under a tenth of batch_rows was inserted before batch_interval")
				}
			case <-time.After(2 * time.Second):
				if c.inTime {
					t.Fatal("the drained batch is still waiting for batch_interval")
				}
			}
		})
	}
}

// chunkSource is a bus.BatchSource handing out msgs in chunks of up to
// chunk messages; commits are no-ops.
type chunkSource struct {
	chanSource
	chunk int
}

func (s chunkSource) FetchBatch(ctx context.Context, buf []bus.Message, n int) ([]bus.Message, error) {
	m, err := s.Fetch(ctx)
	if err != nil {
		return buf, err
	}
	buf = append(buf, m)
	for len(buf) < min(n, s.chunk) {
		select {
		case m := <-s.msgs:
			buf = append(buf, m)
		default:
			return buf, nil
		}
	}
	return buf, nil
}

// offsetsSink reports the offsets of each batch written.
type offsetsSink struct {
	gatedSink
	batches chan []int64
}

func (s *offsetsSink) WriteBatch(_ context.Context, b *Batch) error {
	s.batches <- b.Values(len(b.cols) - 1).([]int64) // kafka_offset
	return nil
}

// TestChunksFromTheSourceAreCutAtBatchRows: a source that hands over
// messages in chunks (bus.BatchSource) larger than what is left of a
// batch: the batch is cut at batch_rows and the rest of the chunk starts
// the next one, every message once and in order.
func TestChunksFromTheSourceAreCutAtBatchRows(t *testing.T) {
	src := chunkSource{chanSource: chanSource{msgs: make(chan bus.Message, 64)}, chunk: 7}
	sink := &offsetsSink{batches: make(chan []int64, 16)}
	cfg := DefaultConfig()
	cfg.BatchRows, cfg.BatchInterval = 10, time.Hour
	c, err := New(cfg, src, nopDLQ{}, sink, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	for i := range n {
		src.msgs <- bus.Message{Value: marshal(t, event(i)).Value, Offset: int64(i)}
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer shutdown(c)
	var next int64
	for next < n {
		select {
		case offs := <-sink.batches:
			if len(offs) != cfg.BatchRows {
				t.Fatalf("a batch of %d rows, want batch_rows (%d): %v", len(offs), cfg.BatchRows, offs)
			}
			for _, o := range offs {
				if o != next {
					t.Fatalf("offset %d stored where %d was next: %v", o, next, offs)
				}
				next++
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("stored up to offset %d of %d", next, n)
		}
	}
}
