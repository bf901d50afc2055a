package broker

import (
	"fmt"
	"net"
	"reflect"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sora3web/telemetry/bus"
)

// TestGroupByLeader: a produce request goes to one broker, so the heads of
// one send are split by their partition's leader.
func TestGroupByLeader(t *testing.T) {
	for _, tc := range []struct {
		name    string
		parts   []int32
		leaders map[int32]int32
		want    [][]int
	}{
		{"one broker", []int32{0, 1, 2, 3}, map[int32]int32{0: 1, 1: 1, 2: 1, 3: 1}, [][]int{{0, 1, 2, 3}}},
		{"three brokers", []int32{0, 1, 2, 3, 4, 5}, map[int32]int32{0: 1, 1: 2, 2: 3, 3: 1, 4: 2, 5: 3}, [][]int{{0, 3}, {1, 4}, {2, 5}}},
		{"leader unknown", []int32{0, 7, 1}, map[int32]int32{0: 2, 1: 2}, [][]int{{0, 2}, {1}}},
		{"subset of partitions", []int32{5, 1}, map[int32]int32{1: 9, 5: 9}, [][]int{{0, 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := groupByLeader(tc.parts, tc.leaders); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("groupByLeader(%v) = %v, want %v", tc.parts, got, tc.want)
			}
		})
	}
}

// TestTakeLinger: a sender sends at once without a linger, on close and when
// a batch is full; with a linger, once its oldest head batch has waited
// that long (Java's linger.ms), and then every head leaves together.
func TestTakeLinger(t *testing.T) {
	now := time.Unix(1000, 0)
	batchAt := func(age time.Duration) *batch { return &batch{time: now.Add(-age)} }
	for _, tc := range []struct {
		name      string
		linger    time.Duration
		closed    bool
		queues    [][]*batch // per partition of the sender
		wantHeads int
		wantWait  time.Duration
	}{
		{"no linger", 0, false, [][]*batch{{batchAt(0)}}, 1, 0},
		{"nothing queued", 5 * time.Millisecond, false, [][]*batch{nil, nil}, 0, 0},
		{"young batch waits", 5 * time.Millisecond, false, [][]*batch{{batchAt(2 * time.Millisecond)}}, 0, 3 * time.Millisecond},
		{"old batch leaves", 5 * time.Millisecond, false, [][]*batch{{batchAt(5 * time.Millisecond)}}, 1, 0},
		{"oldest head decides, all leave", 5 * time.Millisecond, false,
			[][]*batch{{batchAt(time.Millisecond)}, {batchAt(6 * time.Millisecond)}, nil}, 2, 0},
		{"full batch leaves at once", 5 * time.Millisecond, false,
			[][]*batch{{batchAt(time.Millisecond)}, {batchAt(0), batchAt(0)}}, 2, 0},
		{"batch at batch_size leaves at once", 5 * time.Millisecond, false,
			[][]*batch{{{time: now, records: make([]bus.Message, 3)}}}, 1, 0},
		{"batch at batch_bytes leaves at once", 5 * time.Millisecond, false,
			[][]*batch{{{time: now, records: make([]bus.Message, 1), bytes: 1 << 20}}}, 1, 0},
		{"close flushes at once", 5 * time.Millisecond, true, [][]*batch{{batchAt(0)}}, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Producer{cfg: Config{Linger: tc.linger, BatchSize: 3, BatchBytes: 1 << 20}, closed: tc.closed}
			s := &sender{}
			for i, q := range tc.queues {
				s.parts = append(s.parts, &partBatches{partition: int32(i), queue: q})
			}
			heads, wait, _ := p.take(s, now)
			if len(heads) != tc.wantHeads || wait != tc.wantWait {
				t.Fatalf("take = %d heads, wait %v; want %d heads, wait %v", len(heads), wait, tc.wantHeads, tc.wantWait)
			}
		})
	}
}

// TestStaleLeader: errors that may mean the cached leader leads no more
// (unreachable, not the leader) refresh the metadata; errors about the
// write itself (too few in-sync replicas, a record too large) do not.
func TestStaleLeader(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{fmt.Errorf("producing: %w", kafka.NotLeaderForPartition), true},
		{kafka.LeaderNotAvailable, true},
		{kafka.FencedLeaderEpoch, true},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{kafka.NotEnoughReplicas, false},
		{kafka.MessageSizeTooLarge, false},
	} {
		if got := staleLeader(tc.err); got != tc.want {
			t.Errorf("staleLeader(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestAddKeepsARunInOneBatch: one publish's messages to a partition (its
// share and the share's tail, ingest's audit record) go in one batch, so
// the broker stores them all or none: a new batch when the filling one
// cannot take them all, split only when one batch cannot hold them.
func TestAddKeepsARunInOneBatch(t *testing.T) {
	msg := bus.Message{Value: make([]byte, 100-recordOverhead)} // 100 bytes in a batch
	run := func(n int) []bus.Message { return slices.Repeat([]bus.Message{msg}, n) }
	for _, tc := range []struct {
		name       string
		queued     []int // records in the batches already queued
		run        int
		maxRecords int
		want       []int // records per batch after the add
		fresh      int   // new batches the add reported
	}{
		{"idle partition", nil, 3, 10, []int{3}, 1},
		{"fits the filling batch", []int{4}, 3, 10, []int{7}, 0},
		{"fills it exactly", []int{7}, 3, 10, []int{10}, 0},
		{"does not fit: a batch of its own", []int{8}, 3, 10, []int{8, 3}, 1},
		{"too many for the bytes: a batch of its own", []int{5}, 6, 100, []int{5, 6}, 1}, // 1,100 bytes > 1,000
		{"larger than a batch: split", []int{8}, 25, 10, []int{10, 10, 10, 3}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pb := &partBatches{}
			for _, n := range tc.queued {
				pb.queue = append(pb.queue, &batch{records: run(n), bytes: int64(n) * 100, done: make(chan struct{})})
			}
			fresh := 0
			var touched []*batch
			msgs := run(tc.run)
			idx := make([]int, len(msgs))
			for i := range idx {
				idx[i] = i
			}
			pb.add(msgs, idx, nil, time.Now(), tc.maxRecords, 1000, func(b *batch, isNew bool) {
				touched = append(touched, b)
				if isNew {
					fresh++
				}
			})
			var got []int
			for _, b := range pb.queue {
				got = append(got, len(b.records))
				if b.bytes != int64(len(b.records))*100 {
					t.Errorf("batch of %d records counts %d bytes", len(b.records), b.bytes)
				}
			}
			if !reflect.DeepEqual(got, tc.want) || fresh != tc.fresh {
				t.Fatalf("batches %v (%d new), want %v (%d new)", got, fresh, tc.want, tc.fresh)
			}
			if last := pb.queue[len(pb.queue)-1]; touched[len(touched)-1] != last {
				t.Fatal("the batch holding the run's last message was not reported")
			}
		})
	}
}
