package consumer

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
)

// offsetSink is a Sink that holds, per partition of one topic, the rows
// stored (offset -> event id) and counts the stored-offset questions.
type offsetSink struct {
	rows  map[int]map[int64]uuid.UUID
	asked [][]int // the partitions of each HighWater call
}

func (s *offsetSink) store(partition int, off int64, id uuid.UUID) {
	if s.rows[partition] == nil {
		s.rows[partition] = map[int64]uuid.UUID{}
	}
	s.rows[partition][off] = id
}

func (s *offsetSink) WriteBatch(context.Context, *Batch) error { return nil }

func (s *offsetSink) HighWater(_ context.Context, _ string, partitions []int) (map[int]int64, error) {
	s.asked = append(s.asked, slices.Clone(partitions))
	out := map[int]int64{}
	for _, p := range partitions {
		for off := range s.rows[p] {
			if hw, ok := out[p]; !ok || off > hw {
				out[p] = off
			}
		}
	}
	return out, nil
}

func (s *offsetSink) StoredIDs(_ context.Context, _ string, partition int, after int64, _ time.Time, fn func(uuid.UUID, time.Time)) error {
	for off, id := range s.rows[partition] {
		if off > after {
			fn(id, time.Now())
		}
	}
	return nil
}

// TestStoredOffsetsAreAskedOncePerHold: the consumer asks the sink for a
// partition's stored offsets at the first batch of each hold (epoch) of
// it, and not again within the hold; a new hold sees and skips what
// another reader stored meanwhile, and so does a source that names no
// epoch at every batch.
func TestStoredOffsetsAreAskedOncePerHold(t *testing.T) {
	sink := &offsetSink{rows: map[int]map[int64]uuid.UUID{}}
	c, err := New(DefaultConfig(), chanSource{}, nopDLQ{}, sink, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	c.ctx = context.Background()
	const topic = "events"
	ids := map[int64]uuid.UUID{}
	rec := func(partition int, off, epoch int64) record {
		if _, ok := ids[off]; !ok {
			ids[off] = uuid.New()
		}
		return record{e: event(int(off)), id: ids[off], topic: topic, partition: partition, offset: off, epoch: epoch}
	}
	// other stores offsets as another member of the group would.
	other := func(partition int, offs ...int64) func() {
		return func() {
			for _, off := range offs {
				sink.store(partition, off, ids[off])
			}
		}
	}
	for _, step := range []struct {
		name    string
		before  func()
		records []record
		asked   [][]int // HighWater calls of this step
		rows    int
	}{
		{"first batch of a hold asks", nil, []record{rec(0, 0, 1), rec(0, 1, 1), rec(1, 100, 1)}, [][]int{{0, 1}}, 3},
		{"same hold asks nothing", nil, []record{rec(0, 2, 1), rec(1, 101, 1)}, nil, 2},
		{"a redelivery within the hold is skipped without asking", nil, []record{rec(0, 2, 1), rec(0, 3, 1)}, nil, 1},
		{"a new hold of one partition asks for it only, and skips what another stored",
			other(0, 4, 5), []record{rec(0, 4, 2), rec(0, 5, 2), rec(0, 6, 2), rec(1, 102, 1)}, [][]int{{0}}, 2},
		{"a batch mixing holds asks", nil, []record{rec(0, 7, 2), rec(0, 8, 3)}, [][]int{{0}}, 2},
		{"then its last hold is held", nil, []record{rec(0, 9, 3)}, nil, 1},
		{"no epoch asks at every batch", other(0, 10), []record{rec(0, 10, 0), rec(0, 11, 0)}, [][]int{{0}}, 1},
		{"again", nil, []record{rec(0, 12, 0)}, [][]int{{0}}, 1},
	} {
		if step.before != nil {
			step.before()
		}
		sink.asked = nil
		b, err := c.newBatch(step.records, nil, step.records, nil)
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		c.windowStored(b)
		for _, r := range step.records { // what the insert would store
			if _, ok := sink.rows[r.partition][r.offset]; !ok && b.Rows() > 0 {
				sink.store(r.partition, r.offset, r.id)
			}
		}
		if !slices.EqualFunc(sink.asked, step.asked, slices.Equal) {
			t.Errorf("%s: asked for the stored offsets of %v, want %v", step.name, sink.asked, step.asked)
		}
		if b.Rows() != step.rows {
			t.Errorf("%s: %d rows, want %d", step.name, b.Rows(), step.rows)
		}
	}
}
