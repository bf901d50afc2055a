package consumer

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sora3web/telemetry/bus"
	"github.com/sora3web/telemetry/internal/audit"
)

// TestInsertedCountsMatchTheStoredRowsThroughAnyHistory: a consumer's
// inserted counts are written with its batch's other counts before the
// insert, so a crash can leave counts of rows never stored. Over
// histories of crashes before and after inserts, redeliveries cut
// otherwise, and a tombstone arriving between two deliveries (leaving out
// the first event of a count's group, or all of a batch), the counts that
// stand at the end (pipeline_audit keeps the last row of each record id)
// add up, per window, to the rows stored.
func TestInsertedCountsMatchTheStoredRowsThroughAnyHistory(t *testing.T) {
	base := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	const topic = "events"
	type delivery struct {
		from, to int64          // offsets of partition 0, inclusive
		drop     map[int64]bool // offsets a tombstone leaves out
		inserted bool           // the insert succeeded (else the process died before it)
		restart  bool           // a new process: the stored offsets are asked again
	}
	drop := func(offs ...int64) map[int64]bool {
		m := map[int64]bool{}
		for _, o := range offs {
			m[o] = true
		}
		return m
	}
	for _, h := range []struct {
		name       string
		deliveries []delivery
	}{
		{"crash before the insert, the redelivery cut shorter", []delivery{
			{from: 0, to: 9},
			{from: 0, to: 5, inserted: true, restart: true},
			{from: 6, to: 12, inserted: true},
		}},
		{"crash before the insert, the redelivery cut longer", []delivery{
			{from: 0, to: 4},
			{from: 0, to: 13, inserted: true, restart: true},
		}},
		{"crash after an insert, the next batch counted and not inserted", []delivery{
			{from: 0, to: 10, inserted: true},
			{from: 11, to: 15},
			{from: 0, to: 20, inserted: true, restart: true},
		}},
		{"crash after an insert that ended mid-group, redelivered whole", []delivery{
			{from: 0, to: 4, inserted: true},
			{from: 0, to: 8, inserted: true, restart: true},
		}},
		{"a tombstone between deliveries leaves out a group's first event", []delivery{
			{from: 0, to: 8},
			{from: 0, to: 8, drop: drop(0, 3, 7), inserted: true, restart: true},
		}},
		{"a tombstone between deliveries leaves out the whole batch", []delivery{
			{from: 0, to: 5},
			{from: 0, to: 5, drop: drop(0, 1, 2, 3, 4, 5), inserted: true, restart: true},
			{from: 6, to: 8, inserted: true},
		}},
	} {
		t.Run(h.name, func(t *testing.T) {
			sink := &offsetSink{rows: map[int]map[int64]uuid.UUID{}}
			table := map[string]audit.Row{} // pipeline_audit: one row per record id, the last written
			ids := map[int64]uuid.UUID{}
			rec := func(off int64) record {
				if _, ok := ids[off]; !ok {
					ids[off] = uuid.New()
				}
				e := event(int(off))
				e.ReceivedAt = base.Add(time.Duration(off/3) * time.Minute) // groups of three
				return record{e: e, id: ids[off], topic: topic, offset: off}
			}
			var c *Consumer
			for i, d := range h.deliveries {
				if c == nil || d.restart {
					var err error
					if c, err = New(DefaultConfig(), chanSource{}, nopDLQ{}, sink, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
						t.Fatal(err)
					}
					c.ctx = context.Background()
				}
				var a batchAudit
				var all, kept []record
				for off := d.from; off <= d.to; off++ {
					r := rec(off)
					r.group = a.consume(r.e.ReceivedAt, r.e.Source, bus.Message{Topic: r.topic, Partition: r.partition, Offset: r.offset})
					all = append(all, r)
					if !d.drop[off] {
						kept = append(kept, r)
					}
				}
				b, err := c.newBatch(kept, nil, all, &a)
				if err != nil {
					t.Fatalf("delivery %d: %v", i, err)
				}
				c.windowStored(b)
				for _, r := range a.all() { // before the insert
					if r.Stage == audit.Inserted {
						table[r.RecordID] = r
					}
				}
				if d.inserted && b.Rows() > 0 {
					for _, r := range kept {
						if _, ok := sink.rows[0][r.offset]; !ok {
							sink.store(0, r.offset, r.id)
						}
					}
				}
			}
			counted := map[time.Time]uint64{}
			for _, r := range table {
				counted[r.Window] += r.N
			}
			stored := map[time.Time]uint64{}
			for off := range sink.rows[0] {
				stored[base.Add(time.Duration(off/3)*time.Minute)]++
			}
			for w := range stored {
				counted[w] += 0 // every window with rows is compared
			}
			for w, n := range counted {
				if n != stored[w] {
					t.Errorf("window %s: inserted counts %d, rows stored %d", w.Format("15:04"), n, stored[w])
				}
			}
		})
	}
}
