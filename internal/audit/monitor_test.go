package audit

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/sora3web/telemetry/internal/testenv"
	"github.com/sora3web/telemetry/internal/testenv/chtest"
)

func TestMain(m *testing.M) { os.Exit(testenv.RunWithClickHouse(m)) }

// insertCopies stores one row per (event id, received_at) pair, each in
// its own insert, as resends arrive (one insert would merge them).
func insertCopies(t *testing.T, conn driver.Conn, db string, copies map[string][]time.Time) {
	t.Helper()
	for id, ats := range copies {
		for _, at := range ats {
			ts := at.UTC().Format("2006-01-02 15:04:05.000")
			if err := conn.Exec(context.Background(), fmt.Sprintf("INSERT INTO %s.events (event_id, type, plan, timestamp, received_at, source)"+
				" VALUES ('%s', 'generation_requested', 'free', '%s', '%s', 'web')", db, id, ts, ts)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestMonitorCountsEachClosedWindowsDuplicatesOnce: the monitor's
// duplicates of closed windows equal the full report's, a copy within the
// window and one in a later closed window alike; a refresh does not count
// them again, and a copy arriving after its window was counted is left to
// `telemetry audit` (the full report), as documented.
func TestMonitorCountsEachClosedWindowsDuplicatesOnce(t *testing.T) {
	ctx := context.Background()
	conn, db := chtest.Migrated(t, "audit")
	// Copies stay apart until a merge replaces them: no merges here.
	if err := conn.Exec(ctx, "SYSTEM STOP MERGES "+db+".events"); err != nil {
		t.Fatal(err)
	}
	w0 := MinuteOf(time.Now().Add(-8 * time.Minute))
	const a, b, c = "00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b", "00000000-0000-4000-8000-00000000000c"
	insertCopies(t, conn, db, map[string][]time.Time{
		a: {w0.Add(5 * time.Second), w0.Add(40 * time.Second)},           // twice in w0
		b: {w0.Add(50 * time.Second), w0.Add(time.Minute + time.Second)}, // w0, then again in w1
		c: {w0.Add(time.Minute + 30*time.Second)},                        // once
	})
	m, err := NewMonitor(DefaultConfig(), conn, db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	full := func() uint64 {
		r, err := Query(ctx, conn, Options{Database: db, Since: w0, Grace: DefaultConfig().Grace})
		if err != nil {
			t.Fatal(err)
		}
		return r.Total.Duplicates
	}
	monitored := func() (uint64, map[time.Time]uint64) {
		m.refresh(ctx)
		if m.last == nil {
			t.Fatal("the monitor made no report")
		}
		by := map[time.Time]uint64{}
		for _, w := range m.last.Windows {
			by[w.Start] += w.Duplicates
		}
		return m.last.Total.Duplicates, by
	}
	if got, by := monitored(); got != 2 || by[w0] != 2 || full() != 2 {
		t.Fatalf("duplicates: monitor %d (by window %v), full report %d; want 2, all in %s", got, by, full(), w0)
	}
	insertCopies(t, conn, db, map[string][]time.Time{a: {time.Now()}})
	if got, _ := monitored(); got != 2 {
		t.Fatalf("after a refresh the monitor reports %d duplicates, want the 2 it counted when the windows closed", got)
	}
	if got := full(); got != 3 {
		t.Fatalf("the full report counts %d duplicates after a third copy of %s, want 3", got, a)
	}
}
