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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sora3web/telemetry/bus"
	"github.com/sora3web/telemetry/bus/wal"
	"github.com/sora3web/telemetry/internal/audit"
)

// auditPublisher stands in for a bus.TailPublisher (Kafka, the spool):
// it keeps the events and, as pipeline_audit read with FINAL does, the
// last row of each audit record id, in publish order. Message i of a
// publish goes to partition i % partitions (at least 1). spooled says a
// publish went to the spool (one append: one share); fail makes publishes
// fail, and with partial the failed publish had stored the shares of the
// even partitions with their tails, or a publish without tails whole (a
// Kafka publish that failed in part, an acknowledgement lost). delay is
// each publish's round trip.
type auditPublisher struct {
	mu        sync.Mutex
	events    []bus.Message
	records   []audit.Record
	rows      map[string]audit.Row
	publishes int
	// inflight is the publishes under way, most the largest it was.
	inflight, most int
	// unmatched counts shares whose events were not counted accepted by
	// the records that closed them.
	unmatched int

	partitions int
	fail       error
	failNext   int // the next publishes fail so too, then fail decides
	partial    bool
	spooled    bool
	delay      time.Duration
}

// filler is a message auditPublisher does not keep.
const filler = "filler"

func (p *auditPublisher) Publish(ctx context.Context, msgs []bus.Message) error {
	return p.PublishTails(ctx, msgs, nil)
}

func (p *auditPublisher) PublishTails(_ context.Context, msgs []bus.Message, tail bus.Tail) error {
	p.mu.Lock()
	p.inflight++
	p.most = max(p.most, p.inflight)
	p.mu.Unlock()
	time.Sleep(p.delay)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inflight--
	p.publishes++
	fail := p.fail
	if p.failNext > 0 {
		p.failNext--
		fail = errors.New("not acknowledged")
	}
	var shares [][]bus.Message
	if tail == nil {
		shares = [][]bus.Message{msgs}
	} else if parts := max(p.partitions, 1); p.spooled {
		shares = [][]bus.Message{append(msgs[:len(msgs):len(msgs)], tail(bus.Indices(len(msgs)), true)...)}
	} else {
		for part := range parts {
			var idx []int
			var share []bus.Message
			for i := part; i < len(msgs); i += parts {
				idx = append(idx, i)
				share = append(share, msgs[i])
			}
			if len(idx) > 0 {
				shares = append(shares, append(share, tail(idx, false)...))
			}
		}
	}
	for i, share := range shares {
		if fail != nil && (!p.partial || i%2 == 1) {
			continue
		}
		if err := p.store(share); err != nil {
			return err
		}
	}
	return fail
}

// store keeps msgs; p.mu is held.
func (p *auditPublisher) store(msgs []bus.Message) error {
	if p.rows == nil {
		p.rows = map[string]audit.Row{}
	}
	var events, accepted uint64
	for _, m := range msgs {
		if string(m.Value) == filler {
			continue
		}
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
	if events > 0 && events != accepted {
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

// accepted returns the accepted events the records counted, by either
// route.
func (p *auditPublisher) accepted() uint64 {
	var n uint64
	for k, c := range p.counts() {
		if strings.HasPrefix(k, audit.Accepted+"/") {
			n += c
		}
	}
	return n
}

func (p *auditPublisher) set(f func(p *auditPublisher)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

// TestAuditRecordRidesInThePublishOfItsEvents: each partition's share of
// a request's events is closed by the records counting exactly its
// events, in the form of their route, in one publish; the request's other
// counts (a rejection) follow with the next publish once it was answered.
func TestAuditRecordRidesInThePublishOfItsEvents(t *testing.T) {
	cases := []struct {
		name       string
		spooled    bool
		partitions int
		records    int
		want       map[string]uint64
	}{
		{"published, one partition", false, 1, 1, map[string]uint64{"accepted/published": 3}},
		{"published, two partitions", false, 2, 2, map[string]uint64{"accepted/published": 3}},
		{"spooled", true, 2, 1, map[string]uint64{"accepted/spooled": 3}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pub := &auditPublisher{spooled: c.spooled, partitions: c.partitions}
			s := newTestServer(t, testConfig(), pub, WithAudit(time.Hour))
			bad := event(func(e map[string]any) { e["plan"] = "gold" })
			w, resp := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", headers: auth(),
				body: mustJSON(t, map[string]any{"events": []any{event(), event(), bad, event()}})})
			if w.Code != http.StatusMultiStatus || resp.Accepted != 3 {
				t.Fatalf("%d %+v", w.Code, resp)
			}
			if pub.publishes != 1 || pub.unmatched != 0 || len(pub.events) != 3 || len(pub.records) != c.records {
				t.Fatalf("%d publishes (%d shares without their counts), %d events, %d records: want the 3 events and %d records in one publish",
					pub.publishes, pub.unmatched, len(pub.events), len(pub.records), c.records)
			}
			if got := pub.counts(); !maps.Equal(got, c.want) {
				t.Fatalf("counts %v, want %v", got, c.want)
			}
			r := pub.records[0]
			if r.Source != "web" || !r.Window.Equal(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)) {
				t.Fatalf("record %+v: want source web, window 12:00", r)
			}
			if err := s.aud.flushLoose(); err != nil {
				t.Fatal(err)
			}
			if got := pub.counts()["rejected/plan"]; got != 1 {
				t.Fatalf("rejected/plan %d after the next flush, want 1", got)
			}
		})
	}
}

// TestAuditCountsEveryCopyTheBusTook: a publish that failed after the bus
// took some partitions' shares answers 503 and the client resends; each
// share the bus took carries the count of its events, so the events
// counted accepted are the copies stored (the consumer counts the second
// copies as deduplicated), never one without the other.
func TestAuditCountsEveryCopyTheBusTook(t *testing.T) {
	pub := &auditPublisher{fail: errors.New("broker gone, spool full"), partial: true, partitions: 2}
	s := newTestServer(t, testConfig(), pub, WithAudit(time.Hour))
	send := func() int {
		w, _ := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", headers: auth(),
			body: mustJSON(t, map[string]any{"events": []any{event(), event(), event()}})})
		return w.Code
	}
	if code := send(); code != http.StatusServiceUnavailable {
		t.Fatalf("%d: want 503", code)
	}
	if got := pub.accepted(); got != 2 || len(pub.events) != 2 {
		t.Fatalf("accepted %d, %d events: the fake should have stored one partition's share with its record", got, len(pub.events))
	}
	pub.set(func(p *auditPublisher) { p.fail = nil })
	if code := send(); code != http.StatusOK {
		t.Fatalf("resend: %d", code)
	}
	if err := s.aud.flushLoose(); err != nil {
		t.Fatal(err)
	}
	got := pub.counts()
	if pub.accepted() != 5 || len(pub.events) != 5 || pub.unmatched != 0 || got["refused/unavailable"] != 1 {
		t.Fatalf("counts %v, %d events stored: want every stored copy counted accepted (5) and the 503 refused", got, len(pub.events))
	}
}

// TestAuditLooseRecordsKeepTheirIdsAcrossFailures: counts nobody waits
// for, published in a publish that failed after the bus took it, are
// published again under the same record ids: counted once.
func TestAuditLooseRecordsKeepTheirIdsAcrossFailures(t *testing.T) {
	pub := &auditPublisher{fail: errors.New("no acknowledgement"), partial: true}
	s := newTestServer(t, testConfig(), pub, WithAudit(time.Hour))
	if w, _ := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json",
		body: mustJSON(t, map[string]any{"events": []any{event()}})}); w.Code != http.StatusUnauthorized {
		t.Fatalf("no key: %d", w.Code)
	}
	for range 3 {
		if err := s.aud.flushLoose(); err == nil {
			t.Fatal("flush succeeded while the bus fails")
		}
	}
	pub.set(func(p *auditPublisher) { p.fail = nil })
	if err := s.aud.flushLoose(); err != nil {
		t.Fatal(err)
	}
	if got := pub.counts()["refused/unauthorized"]; got != 1 || len(pub.records) != 4 {
		t.Fatalf("refused/unauthorized %d from %d stored copies of its record: want 1 from 4", got, len(pub.records))
	}
	if err := s.aud.flushLoose(); err != nil || pub.publishes != 4 {
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
	if got["refused/unauthorized"] != 1 || got["dropped/under_13"] != 1 || pub.accepted() != 1 {
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
			if got := pub.accepted(); got != want || uint64(len(pub.events)) != want || pub.unmatched != 0 {
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

// TestAuditThroughTheSpoolCountsEveryCopy: through the real spool, Kafka
// takes one partition's share of a request with its record and fails the
// rest. With the spool full the answer is 503 and the client resends;
// with room, the spool takes the request whole with its spooled record
// and forwards both. Either way the events counted accepted are the
// copies Kafka got.
func TestAuditThroughTheSpoolCountsEveryCopy(t *testing.T) {
	for _, full := range []bool{true, false} {
		t.Run(fmt.Sprintf("spool full %v", full), func(t *testing.T) {
			lg := slog.New(slog.NewTextHandler(io.Discard, nil))
			max := int64(4096)
			if !full {
				max = 1 << 20
			}
			l, err := wal.Open(wal.Config{Dir: t.TempDir(), SegmentBytes: 4096, MaxBytes: max}, lg)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			// Kafka fails the request's publish in part; the forwarder's
			// replay then succeeds.
			k := &auditPublisher{failNext: 1, partial: true, partitions: 2}
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
			want := http.StatusServiceUnavailable
			if !full {
				want = http.StatusOK
			}
			if code := send(); code != want {
				t.Fatalf("%d: want %d", code, want)
			}
			if full {
				// The spool holds nothing; a small publish through it lets
				// the forwarder see the log drained and go back to Kafka
				// directly.
				if err := sp.Publish(ctx, []bus.Message{{Value: []byte(filler)}}); err != nil {
					t.Fatal(err)
				}
				deadline := time.Now().Add(10 * time.Second)
				for sp.Spooling() && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				if code := send(); code != http.StatusOK {
					t.Fatalf("resend: %d", code)
				}
			}
			// 1.5 n: half of the first try, then the resend or the spool's copy.
			deadline := time.Now().Add(10 * time.Second)
			for (len(k.events) < n+n/2 || sp.Spooling()) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			k.mu.Lock()
			events, unmatched := len(k.events), k.unmatched
			k.mu.Unlock()
			got := k.counts()
			if k.accepted() != uint64(events) || events != n+n/2 || unmatched != 0 {
				t.Fatalf("counts %v, %d events on Kafka (%d shares unmatched): want every copy counted accepted (%d)", got, events, unmatched, n+n/2)
			}
		})
	}
}

// callsPublisher is a plain bus.Publisher (no PublishTails: one that may
// store some messages of a publish and not others, all of its own) that records each publish and fails those holding
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
// plain publisher (no bus.TailPublisher), a request's audit record goes in a publish of its own
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
