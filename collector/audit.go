package collector

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/sora3web/telemetry/bus"
	"github.com/sora3web/telemetry/internal/audit"
)

// auditor makes a request's events and their counts (internal/audit)
// durable in one publish: a group commit. A request with events to
// publish adds them and its counts to the next group and waits; one of
// the group's waiters (its leader) publishes the group: its requests'
// events, each partition's share followed by the audit records that count
// it (accepted, and published or spooled, per window and source), and
// answers them all.
//
// When to publish a group trades the records' number against the
// requests' wait. A group publishes at once when nothing else is
// publishing; while another group is, it waits for that one unless it
// holds at least parallelEvents events (and fewer than publishSlots
// groups are publishing). So small requests (a beacon of one event) gather
// for a round trip and share records, and batches of events do not wait
// behind each other. With one group at a time, batches of 50 sent by 16
// senders took 7-9% fewer events per second with the audit on than off
// (bench.sh 8a, 2026-12-01): the producer (bus/broker), which batches
// concurrent publishes itself, had nothing queued between one group's
// acknowledgement and the next group's publish. With every request a
// group of its own, beacons took 14% fewer: a record per event.
//
// The records of a partition's share are stored only with it, and it only
// with them: on Kafka they are the share's tail in one record batch
// (bus.TailPublisher, broker.Producer.ProduceWithTails), which the broker
// stores whole or not at all; in the local log (as the bus, or as Kafka's
// spool) the group's events and its records are one append, kept whole or
// as a prefix after a crash, the records last. So whatever part of a
// group is stored, with the publish answered or not, carries the counts of
// exactly its events: a client that resends after a failed or unanswered
// publish has the copies the bus took counted as deduplicated by the
// consumer, and the resend accepted again, which balances. (One record
// for the whole group, in the same write over several partitions, left a
// record on the bus without some of the events it counts when the process
// was killed during the write: a false loss, make chaos-cluster,
// 2026-12-02. Sending it in a write of its own after the events were
// acknowledged made the clients wait a second round trip: 14.6% fewer
// events per second, docs/benchmarks.md of that day.) The price is a
// record per partition a group's events touch, per window and source: a
// request's events share a key when they come from one browser, so a
// partition each.
//
// Counts no answer waits for (rejections and drops, refused requests)
// ride along with the next group, or the periodic flush of a started
// server; a group's own go there once it is published (counted when its
// requests are answered 2xx, not when they are answered 503 and resent).
// They are made into records with ids before their first publish, and a
// publish that fails keeps those records for the next: a copy the bus
// took anyway has the same id, and pipeline_audit keeps one row per
// record id.
type auditor struct {
	publish func(ctx context.Context, msgs []bus.Message, tail bus.Tail) error
	log     *slog.Logger
	timeout time.Duration

	mu         sync.Mutex
	next       *group         // the group the next requests join
	publishing int            // groups (and loose flushes) publishing now
	freed      chan struct{}  // closed, and replaced, when one of them ends
	loose      *audit.Tally   // counts nobody waits for, not in a record yet
	records    []audit.Record // loose counts' records not yet durable
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
	spans  []span       // one per request, in the order of msgs
	counts *audit.Tally // the requests' counts besides their accepted events
	done   chan struct{}
	err    error
}

// span is one request's events in a group: msgs[previous span's end:end],
// received in the window of at from source.
type span struct {
	end    int
	at     time.Time
	source string
}

func newGroup() *group { return &group{counts: audit.NewTally(), done: make(chan struct{})} }

func newAuditor(publish func(context.Context, []bus.Message, bus.Tail) error, log *slog.Logger, timeout time.Duration) *auditor {
	return &auditor{publish: publish, log: log, timeout: timeout, next: newGroup(), freed: make(chan struct{}), loose: audit.NewTally()}
}

// commit publishes msgs, the accepted events of a request received at at
// from source, with their counts, and the request's other counts add adds,
// and returns once the events and their counts are durable on the bus, or
// why not. On an error msgs may be stored in part, each part with its
// counts. The group may append to msgs in place: the caller leaves msgs'
// capacity beyond its length unused (see bus.SpoolPublisher.PublishTails).
func (a *auditor) commit(ctx context.Context, msgs []bus.Message, at time.Time, source string, add func(*audit.Tally)) error {
	a.mu.Lock()
	g := a.next
	if len(g.msgs) == 0 {
		g.msgs = msgs // the tail goes in its spare capacity, if any: no copy for a lone request
	} else {
		g.msgs = append(g.msgs, msgs...)
	}
	g.spans = append(g.spans, span{end: len(g.msgs), at: at, source: source})
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
			return fmt.Errorf("waiting for the events and their audit records to be published: %w", ctx.Err())
		}
		a.mu.Lock()
	}
	if a.next != g { // another waiter leads g
		a.mu.Unlock()
		select {
		case <-g.done:
			return g.err
		case <-ctx.Done():
			return fmt.Errorf("waiting for the events and their audit records to be published: %w", ctx.Err())
		}
	}
	a.next = newGroup()
	a.publishing++
	a.mu.Unlock()
	g.err = a.flush(g.msgs, g.spans)
	if g.err == nil {
		a.note(func(t *audit.Tally) { t.Merge(g.counts) })
	}
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

// flushLoose publishes the counts nobody waits for (periodically and at
// shutdown), keeping their records for the next try when that fails.
func (a *auditor) flushLoose() error {
	a.mu.Lock()
	if a.publishing > 0 {
		a.mu.Unlock()
		return nil // a group is publishing; the loose counts join the next
	}
	a.publishing++
	a.mu.Unlock()
	defer a.ended()
	return a.flush(nil, nil)
}

// flush publishes msgs, each partition's share followed by the records of
// its accepted events (spans say whose they are), and the records of the
// loose counts after the first share (or alone). When that fails the loose
// counts' records are kept, with their ids, for the next flush.
func (a *auditor) flush(msgs []bus.Message, spans []span) error {
	a.mu.Lock()
	records := a.records
	if a.loose.Len() > 0 {
		records = append(records, a.loose.Records()...)
		a.loose = audit.NewTally()
	}
	a.records = nil
	a.mu.Unlock()
	loose, err := encodeRecords(records)
	if err != nil {
		return err
	}
	if len(msgs) == 0 && len(loose) == 0 {
		return nil
	}
	t := &tail{spans: spans, loose: loose, base: uuid.New()}
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	if len(msgs) == 0 {
		err = a.publish(ctx, loose, nil)
	} else {
		err = a.publish(ctx, msgs, t.of)
	}
	if err == nil {
		err = t.err
	}
	if err != nil {
		a.mu.Lock()
		a.records = append(records, a.records...)
		a.mu.Unlock()
		return fmt.Errorf("publishing %d events with their audit records: %w", len(msgs), err)
	}
	return nil
}

// tail makes the audit records that close each partition's share of a
// group's publish (a bus.Tail).
type tail struct {
	spans []span
	loose []bus.Message // the loose counts' records, after the first share of each route
	sent  [2]bool       // loose went with a share: directly, spooled
	err   error         // the first record that could not be encoded
	// base is the first record's id; the others' differ from it in
	// their last bytes by their number, made (next) in this publish.
	base uuid.UUID
	next uint32
}

// shareCount is the events of one window and source in a share.
type shareCount struct {
	window time.Time
	source string
	n      uint64
}

// of returns the records of the events idx of the group (in order), each
// one count of accepted events with their route (published or spooled)
// as its reason: one row in pipeline_audit, where a count of accepted and
// one of the route were two (until 2026-12-04); the loose records follow
// the first share of each route. A share's events come in runs of one
// request each, and the requests of a group mostly share their window and
// source: the counts are a short list searched in place, not a map.
func (t *tail) of(idx []int, spooled bool) []bus.Message {
	route := audit.Published
	if spooled {
		route = audit.Spooled
	}
	var counts []shareCount
	s, n := 0, uint64(0)
	for k, i := range idx {
		for t.spans[s].end <= i {
			s++
		}
		n++
		if k+1 < len(idx) && idx[k+1] < t.spans[s].end {
			continue
		}
		// The end of a request's events in this share.
		sp := t.spans[s]
		w := audit.MinuteOf(sp.at)
		j := 0
		for j < len(counts) && !(counts[j].window.Equal(w) && counts[j].source == sp.source) {
			j++
		}
		if j == len(counts) {
			counts = append(counts, shareCount{window: w, source: sp.source})
		}
		counts[j].n += n
		n = 0
	}
	out := make([]bus.Message, 0, len(counts)+len(t.loose))
	for _, c := range counts {
		r := audit.Record{ID: t.id(), Source: c.source, Window: c.window,
			Counts: []audit.Count{{Stage: audit.Accepted, Reason: route, N: c.n}}}
		m, err := r.Message()
		if err != nil {
			if t.err == nil {
				t.err = err
			}
			continue
		}
		out = append(out, m)
	}
	if r := btoi(spooled); !t.sent[r] {
		t.sent[r] = true
		out = append(out, t.loose...)
	}
	return out
}

// id returns a new record id: the publish's random base, its last four
// bytes xored with the record's number (a version 4 UUID still: the
// version and variant bits are elsewhere). One random id per publish, not
// per record: a group's events spread over every partition make a record
// per partition.
func (t *tail) id() string {
	u := t.base
	binary.BigEndian.PutUint32(u[12:], binary.BigEndian.Uint32(u[12:])^t.next)
	t.next++
	return u.String()
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// encodeRecords encodes recs as bus messages.
func encodeRecords(recs []audit.Record) ([]bus.Message, error) {
	out := make([]bus.Message, 0, len(recs))
	for _, r := range recs {
		m, err := r.Message()
		if err != nil {
			return nil, err
		}
		out = append(out, m)
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
				a.log.Warn("the last audit counts of refused and rejected requests could not be published", "err", err)
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

// publish publishes msgs, each partition's share followed by its tail
// (tail may be nil; see bus.PublishWithTail).
func (s *Server) publish(ctx context.Context, msgs []bus.Message, tail bus.Tail) error {
	return bus.PublishWithTail(ctx, s.pub, msgs, tail)
}
