package consumer

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/sora3web/telemetry/internal/audit"
	"github.com/sora3web/telemetry/schema"
)

// Filter decides which decoded events must never be stored, and which
// must be stored corrected: the events of a data subject deleted after
// they were published (still in Kafka or the local log, or replayed), and
// those a correction made after they were published applies to (a plan,
// or an anonymous_id attached to or detached from a user_id). It is
// consulted for every batch before the insert; dropped events are counted
// in telemetry.consumer.filtered and committed with the batch, not
// dead-lettered; corrected ones in telemetry.consumer.corrected.
// internal/privacy.Registry is the production Filter. Implementations
// must be cheap and safe for concurrent use.
type Filter interface {
	// Drop reports whether e must not be stored.
	Drop(e *schema.Enriched) bool
	// Correct applies to e the corrections made after it was received and
	// reports whether it changed it.
	Correct(e *schema.Enriched) bool
	// DeletedAt returns the bound of the latest deletion of e's data
	// subject, if there was one: events received at or before it were
	// deleted. A resend of an event whose stored copy was deleted is not
	// a duplicate (window.go).
	DeletedAt(e *schema.Enriched) (time.Time, bool)
}

// SetFilter makes the consumer drop the events f refuses. Call it before
// Start.
func (c *Consumer) SetFilter(f Filter) error {
	meter := otel.Meter("github.com/sora3web/telemetry/sinks/consumer")
	filtered, err := meter.Int64Counter("telemetry.consumer.filtered",
		metric.WithDescription("Events not stored because their data subject was deleted."))
	if err != nil {
		return err
	}
	corrected, err := meter.Int64Counter("telemetry.consumer.corrected",
		metric.WithDescription("Events stored corrected (plan, user_id) by a correction made after they were received."))
	if err != nil {
		return err
	}
	c.filter, c.filtered, c.corrected = f, filtered, corrected
	return nil
}

// applyFilter returns the records the filter keeps, corrected (records
// itself when there is no filter), counting the others in a, and whether
// it dropped or corrected any.
func (c *Consumer) applyFilter(records []record, a *batchAudit) ([]record, bool) {
	if c.filter == nil || len(records) == 0 {
		return records, false
	}
	kept := make([]record, 0, len(records))
	corrected := 0
	for i := range records {
		r := &records[i]
		if c.filter.Drop(&r.e) {
			if c.audit {
				a.message(r.e.ReceivedAt, r.e.Source, audit.Filtered, "", r.topic, r.partition, r.offset)
			}
			continue
		}
		if c.filter.Correct(&r.e) {
			corrected++
		}
		kept = append(kept, *r)
	}
	if n := len(records) - len(kept); n > 0 {
		c.filtered.Add(context.Background(), int64(n))
		c.log.Info("dropped events of deleted data subjects", "count", n)
	}
	if corrected > 0 {
		c.corrected.Add(context.Background(), int64(corrected))
		c.log.Info("corrected events of data subjects", "count", corrected)
	}
	return kept, len(kept) < len(records) || corrected > 0
}

// storedCopyDeleted reports whether the copy of r's event stored at
// storedAt (by its received_at) was deleted since, by a deletion of its
// subject: a resend after that is stored again, as any event received
// after a deletion is.
func (c *Consumer) storedCopyDeleted(r *record, storedAt time.Time) bool {
	if c.filter == nil {
		return false
	}
	bound, ok := c.filter.DeletedAt(&r.e)
	return ok && !storedAt.After(bound)
}

// Barrier returns once every batch whose events went through the filter
// before the call has been inserted (or abandoned), or when ctx ends. A
// deletion calls it after adding its tombstone to the filter and before
// deleting rows: a batch filtered just before the tombstone could
// otherwise insert the subject's events after the deletion ran.
func (c *Consumer) Barrier(ctx context.Context) error {
	if err := c.flights.wait(ctx); err != nil {
		return fmt.Errorf("waiting for the consumer's batches in flight: %w", err)
	}
	return nil
}

// flights tracks the batches between their filter and the end of their
// insert (or their abandonment), each by a ticket in the order they began.
// The zero value is ready to use.
type flights struct {
	mu      sync.Mutex
	next    uint64
	open    map[uint64]struct{}
	changed chan struct{} // closed and replaced when a flight ends
}

// begin starts a flight and returns its ticket, for end.
func (f *flights) begin() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.open == nil {
		f.open, f.changed = map[uint64]struct{}{}, make(chan struct{})
	}
	t := f.next
	f.next++
	f.open[t] = struct{}{}
	return t
}

// end ends the flight of ticket t; ending it again does nothing.
func (f *flights) end(t uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.open[t]; !ok {
		return
	}
	delete(f.open, t)
	close(f.changed)
	f.changed = make(chan struct{})
}

// wait returns once every flight begun before the call has ended, or when
// ctx ends.
func (f *flights) wait(ctx context.Context) error {
	return f.waitFor(ctx, f.mark())
}

// mark returns the bound of the flights begun so far, for waitFor.
func (f *flights) mark() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.next
}

// waitFor returns once every flight begun before mark (mark's result) has
// ended, or when ctx ends.
func (f *flights) waitFor(ctx context.Context, target uint64) error {
	f.mu.Lock()
	for {
		waiting := false
		for t := range f.open {
			if t < target {
				waiting = true
				break
			}
		}
		if !waiting {
			f.mu.Unlock()
			return nil
		}
		changed := f.changed
		f.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
		f.mu.Lock()
	}
}
