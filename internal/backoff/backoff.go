// Package backoff is the one exponential backoff of the pipeline: the
// consumer's retries of inserts and commits, the spool forwarder's replays
// and the producer's retries of failed partitions all wait with it. It
// owns nothing but the wait; what to retry, and for how long, stays with
// the caller.
package backoff

import (
	"context"
	"time"
)

// Backoff waits Min, then doubles each wait up to Max. It is not safe for
// concurrent use: each retry loop has its own.
type Backoff struct {
	min, max, next time.Duration
}

// New returns a backoff from first to limit (a limit below first is
// taken as first).
func New(first, limit time.Duration) *Backoff {
	return &Backoff{min: first, max: max(first, limit), next: first}
}

// Next is the wait the next Wait will take.
func (b *Backoff) Next() time.Duration { return b.next }

// Reset starts again from the first wait, after a success.
func (b *Backoff) Reset() { b.next = b.min }

// Wait sleeps the current wait, then doubles it (up to the maximum). It
// returns false, at once, when ctx ends first: stop retrying.
func (b *Backoff) Wait(ctx context.Context) bool {
	t := time.NewTimer(b.next)
	defer t.Stop()
	b.next = min(2*b.next, b.max)
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
