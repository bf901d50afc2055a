package consumer

import (
	"time"

	"github.com/google/uuid"
)

// window is the consumer's memory of the event ids it stored recently, so
// a client's resend of an event (same event_id, a new message: a retry
// whose first answer was lost) is dropped before the insert and counted
// once everywhere, in raw queries without FINAL and in the rollups that
// materialized views fill at insert time.
//
// What it guarantees: an event_id received within Span of the newest event
// seen is stored once, when its copies arrive through positions (topic,
// partition) this consumer reads. Ingest keys Kafka messages by user, so a
// client's resend lands in the partition of its original. The window is
// complete for a position only after it was loaded from the table (ids
// stored there by this process earlier, by another member of the group, or
// before a crash); see Consumer.syncWindow.
//
// Memory: one map entry per id, 16 bytes of id and 4 of second; with the
// map's own overhead BenchmarkWindowMemory measures about 45 bytes per id
// (20 million ids, the default bound, about 0.9 GB). MaxIDs bounds it: past it the oldest minutes are
// forgotten first, the window shrinks below Span, and the consumer says so
// (telemetry.consumer.dedup.window gauge, a warning).
//
// window is used by one goroutine, the consumer's flusher.
type window struct {
	span   time.Duration
	maxIDs int

	ids map[uuid.UUID]uint32 // event_id -> received_at of the stored copy, Unix seconds (floored)
	// perMinute counts the ids of each minute, to find what to forget.
	perMinute map[uint32]int
	newest    uint32 // the newest minute added
	floor     uint32 // ids older than this minute were forgotten
	// loaded holds, per position, the largest offset whose stored ids are
	// in the window (loaded from the table, or inserted by this process).
	loaded map[position]int64
}

func newWindow(span time.Duration, maxIDs int) *window {
	return &window{span: span, maxIDs: maxIDs, ids: map[uuid.UUID]uint32{}, perMinute: map[uint32]int{}, loaded: map[position]int64{}}
}

// minuteOf is t in Unix minutes.
func minuteOf(t time.Time) uint32 { return uint32(t.Unix() / 60) }

// get returns the received_at of id's stored copy, floored to the second
// (so never after the true time), if id was stored within the window.
func (w *window) get(id uuid.UUID) (time.Time, bool) {
	sec, ok := w.ids[id]
	return time.Unix(int64(sec), 0), ok
}

// add remembers id as stored, received at receivedAt. Ids older than the
// window are not added.
func (w *window) add(id uuid.UUID, receivedAt time.Time) {
	sec := uint32(receivedAt.Unix())
	m := sec / 60
	if m < w.floor {
		return
	}
	if old, ok := w.ids[id]; ok {
		if old >= sec {
			return
		}
		w.perMinute[old/60]--
	}
	w.ids[id] = sec
	w.perMinute[m]++
	w.newest = max(w.newest, m)
}

// since is the oldest receive time the window must hold.
func (w *window) since() time.Time {
	if w.newest == 0 {
		return time.Now().Add(-w.span)
	}
	return time.Unix(int64(w.newest)*60, 0).Add(-w.span)
}

// held is how far back the window reaches now: Span, or less when MaxIDs
// made it forget.
func (w *window) held() time.Duration {
	if w.newest == 0 || w.floor == 0 {
		return w.span
	}
	return min(w.span, time.Duration(w.newest-w.floor+1)*time.Minute)
}

// expire forgets the minutes older than Span and, past MaxIDs, the oldest
// minutes until the window fits. It reports whether MaxIDs cut the window
// short of Span.
func (w *window) expire() (shortened bool) {
	floor := minuteOf(w.since())
	if len(w.ids) > w.maxIDs {
		// Walk the minutes from the newest down until MaxIDs is reached.
		n := 0
		for m := w.newest; m >= floor && m > 0; m-- {
			n += w.perMinute[m]
			if n > w.maxIDs {
				floor, shortened = m+1, true
				break
			}
		}
	}
	if floor <= w.floor {
		return shortened
	}
	w.floor = floor
	for m := range w.perMinute {
		if m < floor {
			delete(w.perMinute, m)
		}
	}
	for id, sec := range w.ids {
		if sec/60 < floor {
			delete(w.ids, id)
		}
	}
	return shortened
}

// len is the number of ids held.
func (w *window) len() int { return len(w.ids) }
