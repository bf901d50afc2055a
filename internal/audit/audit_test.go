package audit

import (
	"testing"
	"time"
)

func TestWindowBalance(t *testing.T) {
	cases := []struct {
		name                   string
		w                      Window
		lost, pending, surplus uint64
	}{
		{"closed and complete", Window{State: Closed, Accepted: 10, Stored: 7, Deduplicated: 1, DeadLettered: 1, Filtered: 1}, 0, 0, 0},
		{"closed short", Window{State: Closed, Accepted: 10, Stored: 6}, 4, 0, 0},
		{"open short: in flight, not lost", Window{State: InFlight, Accepted: 10, Stored: 6}, 0, 4, 0},
		{"stored beyond acknowledged", Window{State: Closed, Accepted: 10, Stored: 10, Deduplicated: 2}, 0, 0, 2},
		{"rejected, dropped and refused are outside the balance", Window{State: Closed, Accepted: 3, Stored: 3, Rejected: 5, Dropped: 2, Refused: 9}, 0, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := c.w
			w.balance()
			if w.Lost != c.lost || w.Pending != c.pending || w.Surplus != c.surplus {
				t.Fatalf("lost %d, in flight %d, surplus %d; want %d, %d, %d", w.Lost, w.Pending, w.Surplus, c.lost, c.pending, c.surplus)
			}
		})
	}
}

func TestSessionGapsAttributeUnloads(t *testing.T) {
	cases := []struct {
		name              string
		seqs              []uint32
		unloads           [][2]uint32
		missing, atUnload uint64
	}{
		{"none missing", []uint32{3, 1, 2}, nil, 0, 0},
		{"a gap, no unload", []uint32{1, 2, 5}, nil, 2, 0},
		{"the lost beacon", []uint32{1, 2, 3, 4, 8, 9}, [][2]uint32{{5, 8}}, 3, 3},
		{"a gap after the unload's range is not the unload's", []uint32{1, 2, 6, 9}, [][2]uint32{{3, 6}}, 5, 3},
		{"the first events before the span are not gaps", []uint32{40, 41}, nil, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &session{seqs: c.seqs, unloads: c.unloads}
			missing, atUnload := s.gaps()
			if missing != c.missing || atUnload != c.atUnload {
				t.Fatalf("missing %d (at unload %d), want %d (%d)", missing, atUnload, c.missing, c.atUnload)
			}
		})
	}
}

func TestTallyMakesOneRecordPerWindowAndSource(t *testing.T) {
	at := time.Date(2026, 12, 1, 12, 0, 30, 0, time.UTC)
	tl := NewTally()
	tl.Add(at, "web", Accepted, "", 3)
	tl.Add(at.Add(20*time.Second), "web", Accepted, "", 2)
	tl.Add(at, "web", Rejected, "plan", 1)
	tl.Add(at.Add(time.Minute), "web", Accepted, "", 1)
	tl.Add(at, "ios", Accepted, "", 0) // nothing to count
	recs := tl.Records()
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2 (12:00 and 12:01 of web): %+v", len(recs), recs)
	}
	r := recs[0]
	if !r.Window.Equal(at.Truncate(time.Minute)) || len(r.Counts) != 2 || r.Counts[0] != (Count{Stage: Accepted, N: 5}) || r.Counts[1] != (Count{Stage: Rejected, Reason: "plan", N: 1}) {
		t.Fatalf("first record %+v", r)
	}
	m, err := r.Message()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(m)
	if err != nil || !IsRecord(m) || back.ID != r.ID || back.Counts[0].N != 5 {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	rows := back.Rows()
	if len(rows) != 2 || rows[0].RecordID == rows[1].RecordID {
		t.Fatalf("rows %+v: want one per count, each named apart", rows)
	}
}

// TestWindowReadsBothFormsOfIngestCounts: ingest's records count accepted
// events with their route as the reason (one row); records made before
// 2026-12-04 counted the route as a stage of its own. The report gives
// the same window for both, and for a mix of them.
func TestWindowReadsBothFormsOfIngestCounts(t *testing.T) {
	type row struct {
		stage, reason string
		n             uint64
	}
	want := Window{Accepted: 10, Published: 7, Spooled: 3}
	cases := []struct {
		name string
		rows []row
	}{
		{"one row per record", []row{{Accepted, Published, 7}, {Accepted, Spooled, 3}}},
		{"two rows per record (before 2026-12-04)", []row{{Accepted, "", 7}, {Published, "", 7}, {Accepted, "", 3}, {Spooled, "", 3}}},
		{"both", []row{{Accepted, Published, 4}, {Accepted, "", 3}, {Published, "", 3}, {Accepted, Spooled, 3}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var w Window
			for _, r := range c.rows {
				w.count(r.stage, r.reason, r.n)
			}
			if w != want {
				t.Fatalf("window %+v, want %+v", w, want)
			}
		})
	}
}
