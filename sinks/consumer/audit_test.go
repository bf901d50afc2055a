package consumer

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sora3web/telemetry/internal/audit"
	"github.com/sora3web/telemetry/schema"
)

// dropUser is a Filter that drops one user's events, as a tombstone does.
type dropUser string

func (d dropUser) Drop(e *schema.Enriched) bool                 { return e.UserID == string(d) }
func (d dropUser) DeletedAt(*schema.Enriched) (time.Time, bool) { return time.Time{}, false }
func (d dropUser) Correct(*schema.Enriched) bool                { return false }

// startAudited runs a consumer of e's topic writing to sink with the audit
// on and filter f.
func (e *env) startAudited(t *testing.T, sink Sink, f Filter, hook func() error) *Consumer {
	t.Helper()
	return e.startSinkWith(t, sink, hook, func(c *Consumer) error {
		if err := c.SetFilter(f); err != nil {
			return err
		}
		return c.SetAudit(true)
	})
}

// auditReport is the report over e's database, every window closed.
func (e *env) auditReport(t *testing.T) *audit.Report {
	t.Helper()
	rep, err := audit.Query(context.Background(), e.conn, audit.Options{Database: e.db, Since: time.Now().Add(-48 * time.Hour), Settled: true})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestAuditCountsEveryOutcomeOnceThroughACrash: ingest's audit records
// (accepted, per window) and events that end every way a message can end
// (stored, a resent copy, one that cannot be mapped, one of a deleted
// subject) go through a consumer that dies after its first insert and
// before its commit, and a second one that gets everything again. Each
// outcome is counted once in pipeline_audit, through either sink, and the
// balance says nothing was lost.
func TestAuditCountsEveryOutcomeOnceThroughACrash(t *testing.T) {
	for _, sk := range sinks {
		t.Run(sk.name, func(t *testing.T) {
			e := newEnv(t)
			accepted := audit.NewTally()
			var msgs []kafka.Message
			add := func(ev schema.Enriched, m kafka.Message) {
				accepted.Add(ev.ReceivedAt, ev.Source, audit.Accepted, "", 1)
				msgs = append(msgs, m)
			}
			for i := range 40 {
				ev := event(i)
				add(ev, marshal(t, ev))
			}
			add(event(3), msgs[3]) // a client's resend
			bad := event(50)
			bad.EventID = "not-a-uuid"
			add(bad, marshal(t, bad))
			gone := event(51)
			gone.UserID = "deleted-user"
			add(gone, marshal(t, gone))
			for _, r := range accepted.Records() {
				m, err := r.Message()
				if err != nil {
					t.Fatal(err)
				}
				msgs = append(msgs, kafka.Message{Key: m.Key, Value: m.Value, Headers: []kafka.Header{{Key: m.Headers[0].Key, Value: m.Headers[0].Value}}})
			}
			e.produce(t, msgs...)

			crashAfterFirstInsert(t, func(hook func() error) *Consumer {
				return e.startAudited(t, sk.new(e, t), dropUser("deleted-user"), hook)
			})
			c2 := e.startAudited(t, sk.new(e, t), dropUser("deleted-user"), nil)
			e.waitCommitted(t, int64(len(msgs)), time.Minute)
			if err := shutdown(c2); err != nil {
				t.Fatal(err)
			}

			rep := e.auditReport(t)
			want := audit.Window{Accepted: 43, Consumed: 43, Stored: 40, Deduplicated: 1, DeadLettered: 1, Filtered: 1}
			if rep.Total != want {
				t.Fatalf("audit totals:\n got  %+v\n want %+v", rep.Total, want)
			}
			if !rep.Clean() {
				t.Fatalf("not clean: %+v", rep.Total)
			}
		})
	}
}
