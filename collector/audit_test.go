package collector

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sora3web/telemetry/bus"
	"github.com/sora3web/telemetry/internal/audit"
)

// auditPublisher records events and audit records apart; failAudit makes
// the audit records' publish fail, spooled says the events went to the
// spool (it is a routedPublisher).
type auditPublisher struct {
	mu        sync.Mutex
	events    []bus.Message
	records   []audit.Record
	failAudit error
	spooled   bool
}

func (p *auditPublisher) Publish(ctx context.Context, msgs []bus.Message) error {
	_, err := p.PublishRoute(ctx, msgs)
	return err
}

func (p *auditPublisher) PublishRoute(_ context.Context, msgs []bus.Message) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range msgs {
		if !audit.IsRecord(m) {
			p.events = append(p.events, m)
			continue
		}
		if p.failAudit != nil {
			return false, p.failAudit
		}
		r, err := audit.Decode(m)
		if err != nil {
			return false, err
		}
		p.records = append(p.records, r)
	}
	return p.spooled, nil
}

func (p *auditPublisher) Ready() error { return nil }

// counts sums the published records by stage/reason.
func (p *auditPublisher) counts() map[string]uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]uint64{}
	for _, r := range p.records {
		for _, c := range r.Counts {
			out[c.Stage+"/"+c.Reason] += c.N
		}
	}
	return out
}

func TestAuditRecordIsPublishedBeforeThe2xx(t *testing.T) {
	cases := []struct {
		name    string
		spooled bool
		route   string
	}{
		{"published", false, audit.Published},
		{"spooled", true, audit.Spooled},
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
			// The answer came after the record: it is there now.
			want := map[string]uint64{"accepted/": 3, c.route + "/": 3, "rejected/plan": 1}
			got := pub.counts()
			if len(got) != len(want) {
				t.Fatalf("counts %v, want %v", got, want)
			}
			for k, n := range want {
				if got[k] != n {
					t.Fatalf("counts %v, want %v", got, want)
				}
			}
			r := pub.records[0]
			if r.Source != "web" || !r.Window.Equal(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)) {
				t.Fatalf("record %+v: want source web, window 12:00", r)
			}
		})
	}
}

func TestAuditPublishFailureAnswers503AndCountsNothing(t *testing.T) {
	pub := &auditPublisher{failAudit: errors.New("broker gone")}
	s := newTestServer(t, testConfig(), pub, WithAudit(time.Hour))
	w, _ := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", headers: auth(),
		body: mustJSON(t, map[string]any{"events": []any{event(), event()}})})
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("%d %s: want 503 with Retry-After (the events are stored, their count is not: the client resends)", w.Code, w.Body)
	}
	if len(pub.records) != 0 {
		t.Fatalf("records %+v published though the publish failed", pub.records)
	}
	// The resend, once the bus is back, is counted once.
	pub.failAudit = nil
	w, _ = do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", headers: auth(),
		body: mustJSON(t, map[string]any{"events": []any{event(), event()}})})
	if w.Code != http.StatusOK || pub.counts()["accepted/"] != 2 {
		t.Fatalf("%d, counts %v: want 200 and 2 accepted", w.Code, pub.counts())
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

// TestAuditGroupCommitSharesFlushes: concurrent requests each get their
// 2xx only with their counts durable, and share records instead of one
// each.
func TestAuditGroupCommitSharesFlushes(t *testing.T) {
	pub := &slowAuditPublisher{auditPublisher: &auditPublisher{}, delay: 20 * time.Millisecond}
	s := newTestServer(t, testConfig(), pub, WithAudit(time.Hour))
	const n = 40
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if w, _ := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", headers: auth(),
				body: mustJSON(t, map[string]any{"events": []any{event()}})}); w.Code != http.StatusOK {
				t.Errorf("%d %s", w.Code, w.Body)
			}
		}()
	}
	wg.Wait()
	if got := pub.counts()["accepted/"]; got != n {
		t.Fatalf("%d accepted counted, want %d", got, n)
	}
	if len(pub.records) >= n {
		t.Fatalf("%d records for %d requests: no group commit", len(pub.records), n)
	}
}

// slowAuditPublisher takes delay per audit publish, as a broker round
// trip does.
type slowAuditPublisher struct {
	*auditPublisher
	delay time.Duration
}

func (p *slowAuditPublisher) PublishRoute(ctx context.Context, msgs []bus.Message) (bool, error) {
	if len(msgs) > 0 && audit.IsRecord(msgs[0]) {
		time.Sleep(p.delay)
	}
	return p.auditPublisher.PublishRoute(ctx, msgs)
}

func (p *slowAuditPublisher) Publish(ctx context.Context, msgs []bus.Message) error {
	_, err := p.PublishRoute(ctx, msgs)
	return err
}
