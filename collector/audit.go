package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/sora3web/telemetry/bus"
	"github.com/sora3web/telemetry/internal/audit"
)

// auditor makes a request's events and their counts (internal/audit)
// durable in one publish: a group commit. A request with events to
// publish adds them and its counts to the next group and waits; one of
// the group's waiters (its leader) publishes the group: every event of its
// requests followed by one audit record per window and source, and answers
// them all.
//
// When to publish a group trades the records' number against the
// requests' wait. A group publishes at once when nothing else is
// publishing; while another group is, it waits for that one unless it
// holds at least parallelEvents events (and fewer than publishSlots
// groups are publishing). So small requests (a beacon of one event) gather
// for a round trip and share a record, as when one group published at a
// time, and there is at most one record per parallelEvents events or per
// round trip, whichever is more; batches of events do not wait behind
// each other. With one group at a time, batches of 50 sent by 16 senders
// took 7-9% fewer events per second with the audit on than off (bench.sh
// 8a, 2026-12-01) at the same CPU per event: the producer (bus/broker),
// which batches concurrent publishes itself, had nothing queued between
// one group's acknowledgement and the next group's publish. With every
// request a group of its own, beacons took 14% fewer: a record per event.
//
// The records of a group are stored only with its events: to the local
// log (as the bus, or as Kafka's spool) they go in one append with them,
// which the log keeps whole or as a prefix after a crash; to Kafka they
// go in a write of their own once Kafka acknowledged the events
// (bus.SpoolPublisher.PublishRouted; a plain publisher the same, see
// Server.publish). One Kafka write of both spread them over partitions
// that each store theirs or not: a process killed during it left a record
// on the bus without some of the events it counts, and the client's
// resend counted accepted again, a false loss (make chaos-cluster,
// 2026-12-02). A crash between the two writes leaves events without their
// count instead, which the report shows as surplus. The second write is a
// second round trip to Kafka for each group (docs/benchmarks.md, the
// audit's cost). A record stored both ways (Kafka, then the spool after a
// Kafka error) is one record (the same id: pipeline_audit keeps one row
// per record id). Its route is the publisher's to say, so each record
// comes in two forms with the same id, "published" for Kafka and
// "spooled" (with published 0) for the spool, and the publisher appends
// the one that fits.
//
// When the publish fails (Kafka and the spool both did), the requests are
// answered 503 and their clients resend, but Kafka may have taken the
// events and their record (a write whose acknowledgement was lost): the
// resend would count them accepted again, a false loss. So each record of
// a failed group is voided: the same record with every count 0, kept and
// published with a later group or the periodic flush (retried like the
// loose counts) until it is durable, after the record on the same
// partition (same key), where it replaces it. A process that ends before
// its voids are published (a crash, Kafka and the spool still failing at
// shutdown) leaves the records of its failed groups counted; their events
// are on the bus too, so the resends show as deduplicated, and the log
// says so at shutdown.
//
// Counts no answer waits for (rejections of a request with nothing
// accepted, refused requests) ride along with the next group, or the
// periodic flush of a started server.
type auditor struct {
	publish func(ctx context.Context, msgs []bus.Message, tail func(spooled bool) []bus.Message) error
	log     *slog.Logger
	timeout time.Duration

	mu         sync.Mutex
	next       *group         // the group the next requests join
	publishing int            // groups (and loose flushes) publishing now
	freed      chan struct{}  // closed, and replaced, when one of them ends
	loose      *audit.Tally   // counts nobody waits for
	voids      []audit.Record // voids of the records of failed publishes, not yet durable
}

// A group publishes beside others only with at least parallelEvents
// events, and at most publishSlots groups publish at once (see auditor).
// 50 is the share of records the consumer's audit cost is measured with
// (BenchmarkAuditCost): at most one record per 50 events. The browser SDK
// sends up to 20 events a request, so its requests share groups under
// load; loadgen's batches of 50 do not wait.
const (
	parallelEvents = 50
	publishSlots   = 8
)

// group is one group commit: the events and counts of the requests
// waiting on done.
type group struct {
	msgs   []bus.Message
	counts *audit.Tally
	done   chan struct{}
	err    error
}

func newGroup() *group { return &group{counts: audit.NewTally(), done: make(chan struct{})} }

func newAuditor(publish func(context.Context, []bus.Message, func(bool) []bus.Message) error, log *slog.Logger, timeout time.Duration) *auditor {
	return &auditor{publish: publish, log: log, timeout: timeout, next: newGroup(), freed: make(chan struct{}), loose: audit.NewTally()}
}

// commit publishes msgs with the counts add adds and returns once both are
// durable on the bus, or why not.
// On an error msgs may be stored in part, without their counts. The group
// may append to msgs in place: the caller leaves msgs' capacity beyond its
// length unused (see bus.SpoolPublisher.PublishRouted).
func (a *auditor) commit(ctx context.Context, msgs []bus.Message, add func(*audit.Tally)) error {
	a.mu.Lock()
	g := a.next
	if len(g.msgs) == 0 {
		g.msgs = msgs // the tail goes in its spare capacity, if any: no copy for a lone request
	} else {
		g.msgs = append(g.msgs, msgs...)
	}
	add(g.counts)
	for a.next == g && !a.mayPublish(len(g.msgs)) {
		freed := a.freed
		a.mu.Unlock()
		select {
		case <-freed:
		case <-g.done: // another waiter led g
		case <-ctx.Done():
			// g is published anyway (by the next request to join it): if it
			// succeeds, the resend of the events is counted by the consumer
			// as deduplicated.
			return fmt.Errorf("waiting for the events and their audit record to be published: %w", ctx.Err())
		}
		a.mu.Lock()
	}
	if a.next != g { // another waiter leads g
		a.mu.Unlock()
		select {
		case <-g.done:
			return g.err
		case <-ctx.Done():
			return fmt.Errorf("waiting for the events and their audit record to be published: %w", ctx.Err())
		}
	}
	a.next = newGroup()
	a.publishing++
	a.mu.Unlock()
	g.err = a.flush(g.msgs, g.counts)
	a.ended()
	close(g.done)
	return g.err
}

// mayPublish says whether a group of n events may publish now; a.mu is
// held.
func (a *auditor) mayPublish(n int) bool {
	return a.publishing == 0 || a.publishing < publishSlots && n >= parallelEvents
}

// ended marks the end of a publish, waking the groups waiting for it.
func (a *auditor) ended() {
	a.mu.Lock()
	a.publishing--
	close(a.freed)
	a.freed = make(chan struct{})
	a.mu.Unlock()
}

// note adds counts nobody waits for.
func (a *auditor) note(add func(*audit.Tally)) {
	a.mu.Lock()
	add(a.loose)
	a.mu.Unlock()
}

// flushLoose publishes the counts nobody waits for and the pending voids
// (periodically and at shutdown), keeping them for the next try when that
// fails.
func (a *auditor) flushLoose() error {
	a.mu.Lock()
	if a.publishing > 0 {
		a.mu.Unlock()
		return nil // a group is publishing; the loose counts join the next
	}
	a.publishing++
	a.mu.Unlock()
	defer a.ended()
	return a.flush(nil, audit.NewTally())
}

// flush publishes msgs followed by one record per window and source of
// counts and the loose counts, and the pending voids, in one publish. When
// that fails the loose counts and the voids are kept for the next flush,
// with the voids of this flush's records; counts are not (their requests
// answer 503).
func (a *auditor) flush(msgs []bus.Message, counts *audit.Tally) error {
	a.mu.Lock()
	loose, voids := a.loose, a.voids
	a.loose, a.voids = audit.NewTally(), nil
	a.mu.Unlock()
	counts.Merge(loose)
	if len(msgs) == 0 && counts.Len() == 0 && len(voids) == 0 {
		return nil
	}
	direct, spool := routed(counts.Records())
	var tails [2][]bus.Message
	for i, recs := range [2][]audit.Record{direct, spool} {
		var err error
		if tails[i], err = encodeRecords(recs, voids); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	err := a.publish(ctx, msgs, func(spooled bool) []bus.Message {
		if spooled {
			return tails[1]
		}
		return tails[0]
	})
	if err != nil {
		a.mu.Lock()
		a.loose.Merge(loose)
		a.voids = append(a.voids, voids...)
		// A publish that stored nothing (the local log refused it whole)
		// left no record to void. Voiding them anyway piled up a void per
		// failed publish while the log stayed full, all carried by every
		// next try (hundreds per publish in make bench's overload).
		if !errors.Is(err, bus.ErrNotStored) {
			for _, r := range spool { // the spooled form names every stage of both
				a.voids = append(a.voids, r.Void())
			}
		}
		a.mu.Unlock()
		return fmt.Errorf("publishing %d events with %d audit records: %w", len(msgs), len(spool)+len(voids), err)
	}
	return nil
}

// routed returns recs in the two forms of their route: published (to the
// bus directly) and spooled, which also says published 0 so that stored
// after a published form of the same record (a Kafka publish that failed
// in part before the spool took the batch) it replaces its count.
func routed(recs []audit.Record) (direct, spooled []audit.Record) {
	direct = make([]audit.Record, len(recs))
	spooled = make([]audit.Record, len(recs))
	for i, r := range recs {
		direct[i], spooled[i] = r, r
		var accepted uint64
		for _, c := range r.Counts {
			if c.Stage == audit.Accepted {
				accepted = c.N
			}
		}
		if accepted == 0 {
			continue
		}
		n := len(r.Counts)
		direct[i].Counts = append(r.Counts[:n:n], audit.Count{Stage: audit.Published, N: accepted})
		spooled[i].Counts = append(r.Counts[:n:n], audit.Count{Stage: audit.Published}, audit.Count{Stage: audit.Spooled, N: accepted})
	}
	return direct, spooled
}

// encodeRecords encodes recs and then voids as bus messages.
func encodeRecords(recs, voids []audit.Record) ([]bus.Message, error) {
	out := make([]bus.Message, 0, len(recs)+len(voids))
	for _, list := range [2][]audit.Record{voids, recs} {
		for _, r := range list {
			m, err := r.Message()
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
	}
	return out, nil
}

// run flushes the loose counts every interval until ctx ends, then once
// more.
func (a *auditor) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := a.flushLoose(); err != nil {
				a.mu.Lock()
				voids := len(a.voids)
				a.mu.Unlock()
				a.log.Warn("the last audit counts of refused and rejected requests could not be published", "err", err)
				if voids > 0 {
					a.log.Error("audit records of failed publishes could not be voided: their windows may report events lost that were answered 503 and resent",
						"records", voids)
				}
			}
			return
		case <-t.C:
			if err := a.flushLoose(); err != nil {
				a.log.Warn("publishing audit counts of refused and rejected requests; kept for the next try", "err", err)
			}
		}
	}
}

// WithAudit makes the server count what each request did into audit
// records on its publisher (internal/audit): a request's accepted events
// are answered 2xx only once their counts are durable too. Counts no
// answer waits for are published every interval by a started server.
func WithAudit(interval time.Duration) Option {
	return func(s *Server) {
		s.aud = newAuditor(s.publish, s.log.With("component", "ingest-audit"), s.cfg.PublishTimeout)
		s.auditInterval = interval
	}
}

// refusedReasons name the statuses of a refused request in the audit.
var refusedReasons = map[int]string{
	http.StatusBadRequest:            "bad_request",
	http.StatusUnauthorized:          "unauthorized",
	http.StatusNotFound:              "not_found",
	http.StatusRequestEntityTooLarge: "too_large",
	http.StatusUnsupportedMediaType:  "unsupported_media",
	http.StatusTooManyRequests:       "rate_limited",
	http.StatusServiceUnavailable:    "unavailable",
}

// refused counts a request refused as a whole (source unknown: most are
// refused before their write key is read).
func (s *Server) refused(status int) {
	if s.aud == nil {
		return
	}
	reason, ok := refusedReasons[status]
	if !ok {
		reason = strconv.Itoa(status)
	}
	now := s.now()
	s.aud.note(func(t *audit.Tally) { t.Add(now, "", audit.Refused, reason, 1) })
}

// routedPublisher says where a publish went and lets the last messages
// depend on it, and stores them only with every message before them:
// bus.SpoolPublisher and bus.LogPublisher.
type routedPublisher interface {
	PublishRouted(ctx context.Context, msgs []bus.Message, tail func(spooled bool) []bus.Message) (spooled bool, err error)
}

// publish publishes msgs followed by tail(spooled), spooled saying
// whether they go to the spool instead of the bus (tail may be nil). The
// tail (the audit records counting msgs) is stored only once msgs are:
// another publisher (Kafka without the spool) gets it in a publish of its
// own after theirs succeeded.
func (s *Server) publish(ctx context.Context, msgs []bus.Message, tail func(spooled bool) []bus.Message) error {
	if rp, ok := s.pub.(routedPublisher); ok {
		_, err := rp.PublishRouted(ctx, msgs, tail)
		return err
	}
	return bus.PublishThenTail(ctx, s.pub, msgs, tail)
}
