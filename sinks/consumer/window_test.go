package consumer

import (
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestWindowForgetsWhatIsOlderThanItsSpan(t *testing.T) {
	w := newWindow(24*time.Hour, 1000)
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	old, recent, edge := uuid.New(), uuid.New(), uuid.New()
	w.add(old, t0)
	w.add(edge, t0.Add(time.Hour))
	w.add(recent, t0.Add(25*time.Hour))
	if w.expire() {
		t.Error("expire reported a shortened window under dedup_max_ids")
	}
	if w.has(old) || !w.has(edge) || !w.has(recent) {
		t.Errorf("after expire: old %v (want false), 24h-old %v, recent %v (want true)", w.has(old), w.has(edge), w.has(recent))
	}
	// An id older than the window is not taken in again.
	w.add(old, t0)
	if w.has(old) {
		t.Error("an id received before the window's floor was added")
	}
	if got := w.held(); got != 24*time.Hour {
		t.Errorf("held %s, want 24h", got)
	}
}

func TestWindowPastMaxIDsForgetsTheOldestMinutesFirst(t *testing.T) {
	w := newWindow(24*time.Hour, 10)
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var ids []uuid.UUID
	for i := range 15 { // one id per minute
		id := uuid.New()
		ids = append(ids, id)
		w.add(id, t0.Add(time.Duration(i)*time.Minute))
	}
	if !w.expire() {
		t.Error("expire did not report the window cut short")
	}
	if w.len() > 10 {
		t.Errorf("%d ids held, want at most 10", w.len())
	}
	for i, id := range ids {
		if want := i >= 5; w.has(id) != want {
			t.Errorf("id of minute %d held %v, want %v", i, w.has(id), want)
		}
	}
	if got := w.held(); got != 10*time.Minute {
		t.Errorf("held %s, want 10m", got)
	}
}

// BenchmarkWindowMemory reports the heap bytes per id the window holds
// (the figure behind consumer.dedup_max_ids) and the cost of a lookup.
func BenchmarkWindowMemory(b *testing.B) {
	const n = 2_000_000
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ids[i] = uuid.New()
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	w := newWindow(24*time.Hour, n)
	now := time.Now()
	for _, id := range ids {
		w.add(id, now)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ResetTimer()
	for i := range b.N {
		w.has(ids[i%n])
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/id")
	runtime.KeepAlive(ids)
}

// has reports whether id was stored within the window.
func (w *window) has(id uuid.UUID) bool {
	_, ok := w.get(id)
	return ok
}
