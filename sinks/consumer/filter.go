package consumer

import (
	"context"
	"fmt"
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
// itself when there is no filter), counting the others in a.
func (c *Consumer) applyFilter(records []record, a *batchAudit) []record {
	if c.filter == nil || len(records) == 0 {
		return records
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
	return kept
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
	select {
	case c.filtering <- struct{}{}:
		<-c.filtering
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the consumer's batch in flight: %w", ctx.Err())
	}
}
