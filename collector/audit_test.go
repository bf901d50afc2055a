package collector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sora3web/telemetry/bus"
	"github.com/sora3web/telemetry/bus/wal"
	"github.com/sora3web/telemetry/internal/audit"
)

// auditPublisher stands in for bus.SpoolPublisher (a routedPublisher):
// it keeps the events and, as pipeline_audit read with FINAL does, the
// last row of each audit record id, in publish order. spooled says a
// publish went to the spool; fail makes publishes fail, and with partial
// the failed publish had stored its records' Kafka form but not the
// events (a Kafka publish that failed in part, then the spool failed too).
// delay is each publish's round trip.
type auditPublisher struct {
	mu        sync.Mutex
	events    []bus.Message
	records   []audit.Record
	rows      map[string]audit.Row
	publishes int
	// inflight is the publishes under way, most the largest it was.
	inflight, most int
	// unmatched counts publishes whose events were not counted accepted
	// by the records in the same publish.
	unmatched int

	fail    error
	partial bool
	spooled bool
	delay   time.Duration
}

func (p *auditPublisher) Publish(ctx context.Context, msgs []bus.Message) error {
	_, err := p.PublishRouted(ctx, msgs, nil)
	return err
}

func (p *auditPublisher) PublishRouted(_ context.Context, msgs []bus.Message, tail func(spooled bool) []bus.Message) (bool, error) {
	p.mu.Lock()
	p.inflight++
	p.most = max(p.most, p.inflight)
	p.mu.Unlock()
	time.Sleep(p.delay)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inflight--
	p.publishes++
	if p.fail != nil {
		if p.partial && tail != nil {
			if err := p.store(tail(false)); err != nil {
				return false, err
			}
		}
		return false, p.fail
	}
	all := msgs
	if tail != nil {
		all = append(all[:len(all):len(all)], tail(p.spooled)...)
	}
	return p.spooled, p.store(all)
}

// store keeps msgs; p.mu is held.
func (p *auditPublisher) store(msgs []bus.Message) error {
	if p.rows == nil {
		p.rows = map[string]audit.Row{}
	}
	var events, accepted uint64
	for _, m := range msgs {
		if !audit.IsRecord(m) {
			p.events = append(p.events, m)
			events++
			continue
		}
		r, err := audit.Decode(m)
		if err != nil {
			return err
		}
		p.records = append(p.records, r)
		for _, row := range r.Rows() {
			p.rows[row.RecordID] = row
			if row.Stage == audit.Accepted {
				accepted += row.N
			}
		}
	}
	if events != accepted {
		p.unmatched++
	}
	return nil
}

func (p *auditPublisher) Ready() error { return nil }

// counts sums the stored rows by stage/reason (zeros included).
func (p *auditPublisher) counts() map[string]uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]uint64{}
	for _, r := range p.rows {
		out[r.Stage+"/"+r.Reason] += r.N
	}
	return out
}

func (p *auditPublisher) set(f func(p *auditPublisher)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

func TestAuditRecordRidesInThePublishOfItsEvents(t *testing.T) {
	cases := []struct {
		name    string
		spooled bool
		want    map[string]uint64
	}{
		{"published", false, map[string]uint64{"accepted/": 3, "published/": 3, "rejected/plan": 1}},
		// The spool's form says published 0: stored after a Kafka form of
		// the same record, it replaces that count.
		{"spooled", true, map[string]uint64{"accepted/": 3, "published/": 0, "spooled/": 3, "rejected/plan": 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pub := &auditPublisher{spooled: c.spooled}
			s := newTestServer(t, testConfig(), pub, WithAudit(time.Hour))
			bad := event(func(e map[string]any) { e["plan"] = "gold" })
			w, resp := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", headers: auth(),
				body: mustJSON(t, map[string]any{"events": []any{event(), event(), bad, event()}})})
			if w.Code != http.StatusMultiStatus || resp.Accepted != 3 {
				t.Fatalf("%d %+v", w.Code, resp)
			}
			if pub.publishes != 1 || pub.unmatched != 0 || len(pub.events) != 3 {
				t.Fatalf("%d publishes (%d without their counts), %d events: want the 3 events and their record in one publish",
					pub.publishes, pub.unmatched, len(pub.events))
			}
			if got := pub.counts(); !maps.Equal(got, c.want) {
				t.Fatalf("counts %v, want %v", got, c.want)
			}
			r := pub.records[0]
			if r.Source != "web" || !r.Window.Equal(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)) {
				t.Fatalf("record %+v: want source web, window 12:00", r)
			}
		})
	}
}

// TestAuditFailedPublishVoidsItsRecord: a publish that failed after the
// bus took the audit record but not the events answers 503; the client
// resends; the first record is voided, so the events are counted accepted
// once, also when the void itself has to wait for the bus.
func TestAuditFailedPublishVoidsItsRecord(t *testing.T) {
	pub := &auditPublisher{fail: errors.New("broker gone, spool full"), partial: true}
	s := newTestServer(t, testConfig(), pub, WithAudit(time.Hour))
	send := func() int {
		w, _ := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", headers: auth(),
			body: mustJSON(t, map[string]any{"events": []any{event(), event()}})})
		return w.Code
	}
	if code := send(); code != http.StatusServiceUnavailable {
		t.Fatalf("%d: want 503", code)
	}
	if got := pub.counts()["accepted/"]; got != 2 || len(pub.events) != 0 {
		t.Fatalf("accepted %d, %d events: the fake should have stored the record alone", got, len(pub.events))
	}
	// The periodic flush cannot publish the void yet: it keeps it.
	if err := s.aud.flushLoose(); err == nil {
		t.Fatal("flush succeeded while the bus fails")
	}
	pub.set(func(p *auditPublisher) { p.fail = nil })
	if code := send(); code != http.StatusOK {
		t.Fatalf("resend: %d", code)
	}
	if got := pub.counts(); got["accepted/"] != 2 || got["published/"] != 2 {
		t.Fatalf("counts %v: want the resend's 2 accepted and published, the failed publish's record voided", got)
	}
	if len(pub.events) != 2 {
		t.Fatalf("%d events stored, want 2", len(pub.events))
	}
}

// TestAuditVoidIsPublishedByThePeriodicFlush: with no request after the
// failure, the periodic flush voids the record.
func TestAuditVoidIsPublishedByThePeriodicFlush(t *testing.T) {
	pub := &auditPublisher{fail: errors.New("broker gone, spool full"), partial: true}
	s := newTestServer(t, testConfig(), pub, WithAudit(time.Hour))
	if w, _ := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", headers: auth(),
		body: mustJSON(t, map[string]any{"events": []any{event()}})}); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("%d: want 503", w.Code)
	}
	pub.set(func(p *auditPublisher) { p.fail = nil })
	if err := s.aud.flushLoose(); err != nil {
		t.Fatal(err)
	}
	got := pub.counts()
	if got["accepted/"] != 0 || got["refused/unavailable"] != 1 {
		t.Fatalf("counts %v: want accepted voided to 0 and the 503 counted as refused", got)
	}
	if err := s.aud.flushLoose(); err != nil || pub.publishes != 2 {
		t.Fatalf("%v, %d publishes: an empty flush must publish nothing", err, pub.publishes)
	}
}

func TestAuditCountsRefusedAndWhollyRejectedRequestsWithTheNextFlush(t *testing.T) {
	pub := &auditPublisher{}
	s := newTestServer(t, testConfig(), pub, WithAudit(time.Hour))
	if w, _ := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json",
		body: mustJSON(t, map[string]any{"events": []any{event()}})}); w.Code != http.StatusUnauthorized {
		t.Fatalf("no key: %d", w.Code)
	}
	under13 := event(func(e map[string]any) { e["under_13"] = true })
	if w, _ := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", headers: auth(),
		body: mustJSON(t, map[string]any{"events": []any{under13}})}); w.Code != http.StatusOK {
		t.Fatalf("under 13: %d", w.Code)
	}
	if len(pub.records) != 0 {
		t.Fatalf("a request nothing was published for waited for a record: %+v", pub.records)
	}
	if w, _ := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", headers: auth(),
		body: mustJSON(t, map[string]any{"events": []any{event()}})}); w.Code != http.StatusOK {
		t.Fatalf("valid: %d", w.Code)
	}
	got := pub.counts()
	if got["refused/unauthorized"] != 1 || got["dropped/under_13"] != 1 || got["accepted/"] != 1 {
		t.Fatalf("counts %v: want 1 refused (unauthorized), 1 dropped (under_13), 1 accepted", got)
	}
}

// TestAuditGroupCommitSharesPublishes: concurrent one-event requests (as
// beacons are) each get their 2xx only with their events and counts
// durable, and share publishes and records instead of one each.
// TestAuditGroupCommitSharesPublishes: requests of one event gather while
// a group publishes, one group at a time, a record shared by many; requests
// of parallelEvents events publish side by side (see auditor), each
// answered once its events and counts are durable.
func TestAuditGroupCommitSharesPublishes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		events int
		// side says whether groups publish side by side.
		side bool
	}{
		{"small requests", 1, false},
		{"large requests", parallelEvents, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub := &auditPublisher{delay: 20 * time.Millisecond}
			s := newTestServer(t, testConfig(), pub, WithAudit(time.Hour))
			const n = 40
			evs := make([]any, tc.events)
			for i := range evs {
				evs[i] = event()
			}
			var wg sync.WaitGroup
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if w, _ := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", headers: auth(),
						body: mustJSON(t, map[string]any{"events": evs})}); w.Code != http.StatusOK {
						t.Errorf("%d %s", w.Code, w.Body)
					}
				}()
			}
			wg.Wait()
			want := uint64(n * tc.events)
			if got := pub.counts()["accepted/"]; got != want || uint64(len(pub.events)) != want || pub.unmatched != 0 {
				t.Fatalf("%d accepted counted, %d events, %d publishes without their counts; want %d, %d, 0", got, len(pub.events), pub.unmatched, want, want)
			}
			switch {
			case !tc.side && (pub.publishes >= n/2 || len(pub.records) >= n/2):
				t.Fatalf("%d publishes and %d records for %d requests: no group commit", pub.publishes, len(pub.records), n)
			case !tc.side && pub.most != 1:
				t.Fatalf("%d groups of small requests published at once; want 1", pub.most)
			case tc.side && (pub.most < 2 || pub.most > publishSlots):
				t.Fatalf("%d groups of large requests published at once; want 2 to %d", pub.most, publishSlots)
			}
		})
	}
}

// unackedRecordsKafka stands in for Kafka behind a real
// bus.SpoolPublisher: it keeps what it is given in an auditPublisher
// (not the spool's filler), and while failing it answers an error to a
// publish that carries audit records, after keeping them: the broker took
// a request's events, acknowledged them, then took their audit record and
// the acknowledgement was lost.
type unackedRecordsKafka struct {
	store   *auditPublisher
	mu      sync.Mutex
	failing bool
}

func (k *unackedRecordsKafka) Publish(_ context.Context, msgs []bus.Message) error {
	k.mu.Lock()
	failing := k.failing
	k.mu.Unlock()
	var keep []bus.Message
	records := false
	for _, m := range msgs {
		records = records || audit.IsRecord(m)
		if string(m.Value) != "filler" {
			keep = append(keep, m)
		}
	}
	k.store.mu.Lock()
	err := k.store.store(keep)
	k.store.mu.Unlock()
	if err != nil {
		return err
	}
	if failing && records {
		return errors.New("not acknowledged")
	}
	return nil
}

func (k *unackedRecordsKafka) Ready() error { return nil }

// TestAuditVoidsTheRecordKafkaTookWhenTheSpoolIsFull: through the real
// spool: Kafka takes a request's events and its audit record but the
// record's write is not acknowledged, the spool cannot take the batch
// (larger than wal.max_bytes), the answer is 503; once Kafka is back the
// resend is counted accepted once, the first record voided (the events'
// second copies are the consumer's to count as deduplicated).
func TestAuditVoidsTheRecordKafkaTookWhenTheSpoolIsFull(t *testing.T) {
	lg := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := wal.Open(wal.Config{Dir: t.TempDir(), SegmentBytes: 4096, MaxBytes: 4096}, lg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	k := &unackedRecordsKafka{store: &auditPublisher{}, failing: true}
	sp, err := bus.NewSpoolPublisher(bus.DefaultSpoolConfig(), k, l, lg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := sp.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer sp.Shutdown(ctx)
	s := newTestServer(t, testConfig(), sp, WithAudit(time.Hour))
	const n = 8 // more than 4 KiB
	evs := make([]any, n)
	for i := range evs {
		evs[i] = event()
	}
	body := mustJSON(t, map[string]any{"events": evs})
	send := func() int {
		w, _ := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", headers: auth(), body: body})
		return w.Code
	}
	if code := send(); code != http.StatusServiceUnavailable {
		t.Fatalf("%d: want 503 with Kafka failing and the spool full", code)
	}
	if got := k.store.counts()["accepted/"]; got != n || len(k.store.events) != n {
		t.Fatalf("accepted %d, %d events on Kafka: the test needs the record taken with its events", got, len(k.store.events))
	}
	k.mu.Lock()
	k.failing = false
	k.mu.Unlock()
	// The spool holds nothing; a small publish through it lets the
	// forwarder see the log drained and go back to Kafka directly.
	if err := sp.Publish(ctx, []bus.Message{{Value: []byte("filler")}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for sp.Spooling() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if code := send(); code != http.StatusOK {
		t.Fatalf("resend: %d", code)
	}
	got := k.store.counts()
	if got["accepted/"] != n || got["published/"] != n || len(k.store.events) != 2*n {
		t.Fatalf("counts %v, %d events on Kafka: want %d accepted and published (the first record voided), and each event twice", got, len(k.store.events), n)
	}
}

// TestAuditPublishThatStoredNothingIsNotVoided: a publish the bus refused
// whole (bus.ErrNotStored: the local log full) leaves no record behind,
// so no void is kept for it: while the log stays full, the failed
// publishes do not pile voids onto every next try.
func TestAuditPublishThatStoredNothingIsNotVoided(t *testing.T) {
	pub := &auditPublisher{fail: fmt.Errorf("appending to the local log: %w: wal: log full", bus.ErrNotStored)}
	s := newTestServer(t, testConfig(), pub, WithAudit(time.Hour))
	send := func() int {
		w, _ := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", headers: auth(),
			body: mustJSON(t, map[string]any{"events": []any{event(), event()}})})
		return w.Code
	}
	for range 20 {
		if code := send(); code != http.StatusServiceUnavailable {
			t.Fatalf("%d: want 503", code)
		}
	}
	s.aud.mu.Lock()
	voids := len(s.aud.voids)
	s.aud.mu.Unlock()
	if voids != 0 {
		t.Fatalf("%d voids kept after publishes that stored nothing; want 0", voids)
	}
	pub.set(func(p *auditPublisher) { p.fail = nil })
	if code := send(); code != http.StatusOK {
		t.Fatalf("resend: %d", code)
	}
	if got := pub.counts(); got["accepted/"] != 2 || got["refused/unavailable"] != 20 || len(pub.events) != 2 {
		t.Fatalf("counts %v, %d events: want the resend's 2 accepted and the 20 refused", got, len(pub.events))
	}
	for _, r := range pub.records {
		var n uint64
		for _, c := range r.Counts {
			n += c.N
		}
		if n == 0 {
			t.Fatalf("a void was published: %+v", r)
		}
	}
}

// callsPublisher is a plain bus.Publisher (no PublishRouted, as Kafka
// without the spool) that records each publish and fails those holding
// events while failEvents is set, after storing nothing.
type callsPublisher struct {
	mu         sync.Mutex
	calls      [][]bus.Message
	failEvents bool
}

func (p *callsPublisher) Publish(_ context.Context, msgs []bus.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range msgs {
		if !audit.IsRecord(m) && p.failEvents {
			return errors.New("broker down")
		}
	}
	p.calls = append(p.calls, slices.Clone(msgs))
	return nil
}

func (p *callsPublisher) Ready() error { return nil }

// TestAuditRecordFollowsItsEventsOnlyOnceTheyArePublished: through a
// plain publisher, a request's audit record goes in a publish of its own
// after its events' succeeded, and not at all when theirs failed: a
// record on the bus means its events are there.
func TestAuditRecordFollowsItsEventsOnlyOnceTheyArePublished(t *testing.T) {
	for _, failEvents := range []bool{false, true} {
		pub := &callsPublisher{failEvents: failEvents}
		s := newTestServer(t, testConfig(), pub, WithAudit(time.Hour))
		w, _ := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", headers: auth(),
			body: mustJSON(t, map[string]any{"events": []any{event(), event()}})})
		pub.mu.Lock()
		var shape []string
		for _, c := range pub.calls {
			kinds := ""
			for _, m := range c {
				if audit.IsRecord(m) {
					kinds += "r"
				} else {
					kinds += "e"
				}
			}
			shape = append(shape, kinds)
		}
		pub.mu.Unlock()
		want, code := []string{"ee", "r"}, http.StatusOK
		if failEvents {
			want, code = nil, http.StatusServiceUnavailable
		}
		if w.Code != code || !slices.Equal(shape, want) {
			t.Fatalf("failing events %v: answer %d, publishes %v; want %d, %v", failEvents, w.Code, shape, code, want)
		}
	}
}
