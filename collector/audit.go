package collector

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/sora3web/telemetry/bus"
	"github.com/sora3web/telemetry/internal/audit"
)

// auditor publishes ingest's counts (internal/audit) on the bus with a
// group commit: a request whose events were published adds its counts and
// waits until a record holding them is durable too, and only then answers
// 2xx; the requests that arrive while one flush is publishing share the
// next. So every event answered 2xx is counted in a durable record, and a
// crash or a failed flush leaves the request without a 2xx: the client
// resends, and the copy already stored is counted by the consumer as
// deduplicated. Counts no answer waits for (rejections of a request with
// nothing accepted, refused requests) ride along with the next flush, or
// the periodic one of a started server.
type auditor struct {
	pub     bus.Publisher
	log     *slog.Logger
	timeout time.Duration

	leader chan struct{} // held by the request that publishes a flush

	mu    sync.Mutex
	next  *flush       // the flush the next counts join
	loose *audit.Tally // counts nobody waits for
}

// flush is one group commit: the counts of the requests waiting on done.
type flush struct {
	counts *audit.Tally
	done   chan struct{}
	err    error
}

func newFlush() *flush { return &flush{counts: audit.NewTally(), done: make(chan struct{})} }

func newAuditor(pub bus.Publisher, log *slog.Logger, timeout time.Duration) *auditor {
	return &auditor{pub: pub, log: log, timeout: timeout, leader: make(chan struct{}, 1), next: newFlush(), loose: audit.NewTally()}
}

// commit adds counts with add and returns once they are durable on the
// bus, or why not.
func (a *auditor) commit(ctx context.Context, add func(*audit.Tally)) error {
	a.mu.Lock()
	f := a.next
	add(f.counts)
	a.mu.Unlock()
	select {
	case a.leader <- struct{}{}:
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return fmt.Errorf("waiting for the audit record: %w", ctx.Err())
	}
	defer func() { <-a.leader }()
	a.mu.Lock()
	if a.next != f { // an earlier leader published f meanwhile
		a.mu.Unlock()
		<-f.done
		return f.err
	}
	a.next = newFlush()
	loose := a.loose
	a.loose = audit.NewTally()
	a.mu.Unlock()
	f.counts.Merge(loose)
	f.err = a.publish(f.counts)
	if f.err != nil {
		a.mu.Lock()
		a.loose.Merge(loose) // the waiters answer 503; only the loose counts are kept for the next flush
		a.mu.Unlock()
	}
	close(f.done)
	return f.err
}

// note adds counts nobody waits for.
func (a *auditor) note(add func(*audit.Tally)) {
	a.mu.Lock()
	add(a.loose)
	a.mu.Unlock()
}

// flushLoose publishes the counts nobody waits for (periodically and at
// shutdown), keeping them for the next try when that fails.
func (a *auditor) flushLoose() error {
	select {
	case a.leader <- struct{}{}:
	default:
		return nil // a request's flush is publishing; the loose counts join the next
	}
	defer func() { <-a.leader }()
	a.mu.Lock()
	loose := a.loose
	a.loose = audit.NewTally()
	a.mu.Unlock()
	if loose.Len() == 0 {
		return nil
	}
	err := a.publish(loose)
	if err != nil {
		a.mu.Lock()
		a.loose.Merge(loose)
		a.mu.Unlock()
	}
	return err
}

// publish makes one record per window and source durable.
func (a *auditor) publish(t *audit.Tally) error {
	recs := t.Records()
	msgs := make([]bus.Message, 0, len(recs))
	for _, r := range recs {
		m, err := r.Message()
		if err != nil {
			return err
		}
		msgs = append(msgs, m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	if err := a.pub.Publish(ctx, msgs); err != nil {
		return fmt.Errorf("publishing %d audit records: %w", len(msgs), err)
	}
	return nil
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
		s.aud = newAuditor(s.pub, s.log.With("component", "ingest-audit"), s.cfg.PublishTimeout)
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

// routedPublisher says where a publish went: bus.SpoolPublisher.
type routedPublisher interface {
	PublishRoute(ctx context.Context, msgs []bus.Message) (spooled bool, err error)
}

// publish publishes msgs and reports whether they went to the spool
// instead of the bus.
func (s *Server) publish(ctx context.Context, msgs []bus.Message) (spooled bool, err error) {
	if rp, ok := s.pub.(routedPublisher); ok {
		return rp.PublishRoute(ctx, msgs)
	}
	return false, s.pub.Publish(ctx, msgs)
}
