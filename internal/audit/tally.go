package audit

import (
	"sort"
	"time"

	"github.com/google/uuid"
)

// bucket is one window of one source.
type bucket struct {
	window time.Time
	source string
}

// what is one stage and reason.
type what struct{ stage, reason string }

// Tally accumulates counts per window, source, stage and reason. The zero
// value is not usable; make one with NewTally. It is not safe for
// concurrent use.
type Tally struct {
	m map[bucket]map[what]uint64
}

// NewTally returns an empty tally.
func NewTally() *Tally { return &Tally{m: map[bucket]map[what]uint64{}} }

// Add counts n events (or requests, for Refused) of stage and reason in
// the window of at and source.
func (t *Tally) Add(at time.Time, source, stage, reason string, n uint64) {
	if n == 0 {
		return
	}
	b := bucket{MinuteOf(at), source}
	s := t.m[b]
	if s == nil {
		s = map[what]uint64{}
		t.m[b] = s
	}
	s[what{stage, reason}] += n
}

// Merge adds o's counts to t.
func (t *Tally) Merge(o *Tally) {
	for b, s := range o.m {
		for w, n := range s {
			t.Add(b.window, b.source, w.stage, w.reason, n)
		}
	}
}

// Len is the number of windows and sources counted.
func (t *Tally) Len() int { return len(t.m) }

// Records returns one record per window and source, each with a new id,
// in window and source order.
func (t *Tally) Records() []Record {
	out := make([]Record, 0, len(t.m))
	for b, s := range t.m {
		r := Record{ID: uuid.NewString(), Source: b.source, Window: b.window}
		for w, n := range s {
			r.Counts = append(r.Counts, Count{Stage: w.stage, Reason: w.reason, N: n})
		}
		sort.Slice(r.Counts, func(i, j int) bool {
			if r.Counts[i].Stage != r.Counts[j].Stage {
				return r.Counts[i].Stage < r.Counts[j].Stage
			}
			return r.Counts[i].Reason < r.Counts[j].Reason
		})
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Window.Equal(out[j].Window) {
			return out[i].Window.Before(out[j].Window)
		}
		return out[i].Source < out[j].Source
	})
	return out
}
