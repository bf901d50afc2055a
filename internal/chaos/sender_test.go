package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sora3web/telemetry/collector"
	"github.com/sora3web/telemetry/internal/config"
	"github.com/sora3web/telemetry/internal/gen"
)

// sender posts batches of generated events to /v1/events from concurrent
// workers, as a real client would: a batch that is refused (503, 429, a
// connection error or timeout) is resent whole, with the same event_ids,
// until it is acknowledged or the sender is told to give up. It records
// every event_id it sent and which ones were acknowledged (2xx).
type sender struct {
	t *testing.T
	// target returns the ingest address to post to now ("" while down).
	target func() string
	// workers post concurrently; batch is the events per request.
	workers, batch int
	// pause is each worker's wait between acknowledged batches (0: flat
	// out). retryWait caps the wait before a resend (Retry-After is
	// honoured up to it).
	pause, retryWait time.Duration

	client *http.Client
	seed   uint64
	rounds int // starts so far: each start's workers get new generator seeds

	mu    sync.Mutex
	acked map[string]bool // every event_id sent -> acknowledged
	// status counts answers by HTTP status; 0 counts connection errors.
	status map[int]int

	ackedN        atomic.Int64 // events acknowledged
	resent        atomic.Int64 // events sent again after a refusal
	refused       atomic.Int64 // requests refused (503, 429, connection errors)
	noRetryAfter  atomic.Int64 // 503/429 answers without Retry-After
	unexpected    atomic.Int64 // answers a valid batch must never get
	firstUnexpect atomic.Pointer[string]

	stopGen  atomic.Bool  // no new batches
	giveUpAt atomic.Int64 // unix nanos after which refused batches are abandoned
	wg       sync.WaitGroup
}

// newSender makes a sender to target with the scenario's concurrency.
func newSender(t *testing.T, target func() string, workers, batch int) *sender {
	return &sender{t: t, target: target, workers: workers, batch: batch, retryWait: 250 * time.Millisecond,
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConns: workers, MaxIdleConnsPerHost: workers, IdleConnTimeout: 30 * time.Second}},
		seed: scenarioSeed(t), acked: map[string]bool{}, status: map[int]int{}}
}

// start launches the workers. A finished sender can be started again:
// its books carry on, with new event_ids.
func (s *sender) start() {
	s.stopGen.Store(false)
	s.giveUpAt.Store(0)
	s.rounds++
	for w := 0; w < s.workers; w++ {
		s.wg.Add(1)
		go s.work(s.rounds*1000 + w)
	}
}

// finish stops new batches and gives refused ones until drain to be
// acknowledged, then waits for the workers.
func (s *sender) finish(drain time.Duration) {
	s.giveUpAt.Store(time.Now().Add(drain).UnixNano())
	s.stopGen.Store(true)
	s.wg.Wait()
	s.client.CloseIdleConnections()
}

func (s *sender) work(w int) {
	defer s.wg.Done()
	g := gen.New(s.seed+uint64(w)*7919, 500)
	rnd := rand.New(rand.NewPCG(s.seed, uint64(w)))
	for !s.stopGen.Load() {
		evs := make([]any, s.batch)
		ids := make([]string, s.batch)
		for i := range evs {
			ev := g.Event()
			evs[i], ids[i] = ev, ev.EventID
		}
		body, err := json.Marshal(map[string]any{"events": evs})
		if err != nil {
			s.t.Error(err)
			return
		}
		s.mu.Lock()
		for _, id := range ids {
			if _, dup := s.acked[id]; dup {
				s.mu.Unlock()
				s.t.Errorf("generator repeated event_id %s", id)
				return
			}
			s.acked[id] = false
		}
		s.mu.Unlock()
		for attempt := 0; ; attempt++ {
			if attempt > 0 {
				s.resent.Add(int64(len(ids)))
			}
			ok, wait := s.post(body, len(ids))
			if ok {
				s.mu.Lock()
				for _, id := range ids {
					s.acked[id] = true
				}
				s.mu.Unlock()
				s.ackedN.Add(int64(len(ids)))
				break
			}
			if at := s.giveUpAt.Load(); at != 0 && time.Now().UnixNano() > at {
				break // left unacknowledged: it may or may not be stored
			}
			time.Sleep(min(wait, s.retryWait) + time.Duration(rnd.Int64N(int64(20*time.Millisecond))))
		}
		if s.pause > 0 {
			time.Sleep(s.pause)
		}
	}
}

// post sends one batch. It reports whether the batch was acknowledged and,
// if not, how long the server asked the client to wait.
func (s *sender) post(body []byte, n int) (acked bool, wait time.Duration) {
	addr := s.target()
	if addr == "" {
		s.count(0)
		s.refused.Add(1)
		return false, 100 * time.Millisecond
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://"+addr+"/v1/events", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+config.DevWriteKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		s.count(0)
		s.refused.Add(1)
		return false, 100 * time.Millisecond
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	s.count(resp.StatusCode)
	switch resp.StatusCode {
	case http.StatusOK:
		var r collector.Response
		if err := json.Unmarshal(b, &r); err != nil || r.Accepted != n || r.Rejected != 0 || r.Dropped != 0 {
			s.unexpectedAnswer(fmt.Sprintf("200 for %d events: %s", n, b))
		}
		return true, 0
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		s.refused.Add(1)
		ra := resp.Header.Get("Retry-After")
		var secs int
		if _, err := fmt.Sscan(ra, &secs); err != nil || secs <= 0 {
			s.noRetryAfter.Add(1)
			secs = 1
		}
		return false, time.Duration(secs) * time.Second
	default:
		// 207/400/...: generated events are valid, so this is a bug; the
		// batch is retried so that the books stay exact.
		s.unexpectedAnswer(fmt.Sprintf("%d: %s", resp.StatusCode, b))
		s.refused.Add(1)
		return false, time.Second
	}
}

func (s *sender) count(status int) {
	s.mu.Lock()
	s.status[status]++
	s.mu.Unlock()
}

func (s *sender) unexpectedAnswer(what string) {
	if s.unexpected.Add(1) == 1 {
		s.firstUnexpect.Store(&what)
	}
}

// tally is what the sender knows at the end.
type tally struct {
	sent, acked int
	ids         map[string]bool // event_id -> acknowledged
	status      map[int]int
	resent      int64
	refused     int64
}

// tally returns the sender's books; call it after finish.
func (s *sender) tally() tally {
	s.mu.Lock()
	defer s.mu.Unlock()
	tl := tally{sent: len(s.acked), ids: s.acked, status: map[int]int{}, resent: s.resent.Load(), refused: s.refused.Load()}
	for _, a := range s.acked {
		if a {
			tl.acked++
		}
	}
	for k, v := range s.status {
		tl.status[k] = v
	}
	return tl
}

// ackedIDs is the set of event_ids acknowledged so far.
func (s *sender) ackedIDs() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]bool{}
	for id, a := range s.acked {
		if a {
			out[id] = true
		}
	}
	return out
}

// acknowledged is the number of events acknowledged so far.
func (s *sender) acknowledged() int { return int(s.ackedN.Load()) }

// statusCounts is a snapshot of the answers by status (0: no answer).
func (s *sender) statusCounts() map[int]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int]int, len(s.status))
	for k, v := range s.status {
		out[k] = v
	}
	return out
}

// checkAnswers fails t on answers a correct ingest never gives.
func (s *sender) checkAnswers(t *testing.T) {
	t.Helper()
	if n := s.unexpected.Load(); n > 0 {
		t.Errorf("%d unexpected answers to valid batches; first: %s", n, *s.firstUnexpect.Load())
	}
	if n := s.noRetryAfter.Load(); n > 0 {
		t.Errorf("%d answers 503/429 without a Retry-After header", n)
	}
}
