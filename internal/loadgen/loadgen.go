// Package loadgen drives an ingest endpoint with a realistic event mix at a
// set rate and concurrency, in batch or beacon mode, and reports what was
// sent, accepted and rejected with a latency histogram. It owns its worker
// goroutines for the length of Run and nothing after.
package loadgen

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sora3web/telemetry/internal/gen"
)

// Config configures a load run.
type Config struct {
	// URL is the collector's base URL, e.g. http://127.0.0.1:8080.
	URL string
	// WriteKey authenticates the requests.
	WriteKey string
	// Mode is "batch" (POST /v1/events) or "beacon" (POST /v1/beacon, text/plain).
	Mode string
	// BatchSize is the events per request.
	BatchSize int
	// Rate is the target events per second; 0 sends as fast as possible
	// (closed loop: each sender sends its next request when the last one
	// is answered). With a rate, requests are due on one fixed schedule and
	// latency counts from when each was due (open loop).
	Rate float64
	// Concurrency is the number of concurrent senders (connections); with a
	// Rate, the senders that take due requests at the start.
	Concurrency int
	// MaxConcurrency, with a Rate, lets the pool grow: when a request is due
	// and every sender is busy, another sender (and connection) starts, up
	// to this many, as a fleet of browsers has no pool to wait for. At most
	// Concurrency (the default, 0) keeps the pool fixed, and due requests
	// then wait for a free sender (SenderWait).
	MaxConcurrency int
	// Duration is how long to send.
	Duration time.Duration
	// Users is the size of the simulated user population.
	Users int
	// UniqueUA gives every event a never-seen user agent.
	UniqueUA bool
	// Seed makes the event mix reproducible.
	Seed uint64
	// Progress, when set, receives a progress line every second.
	Progress io.Writer

	// tlsConfig replaces the default TLS settings of https URLs (tests).
	tlsConfig *tls.Config
}

// Validate names the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.URL == "":
		return errors.New("url: required")
	case c.Mode != "batch" && c.Mode != "beacon":
		return errors.New("mode: must be batch or beacon")
	case c.BatchSize <= 0:
		return errors.New("batch: must be > 0")
	case c.Concurrency <= 0:
		return errors.New("concurrency: must be > 0")
	case c.Duration <= 0:
		return errors.New("duration: must be > 0")
	case c.Rate < 0:
		return errors.New("rate: must be >= 0")
	case c.MaxConcurrency < 0:
		return errors.New("max-concurrency: must be >= 0")
	}
	return nil
}

// Report is the outcome of a run.
type Report struct {
	Mode        string `json:"mode"`
	BatchSize   int    `json:"batch_size"`
	Concurrency int    `json:"concurrency"`
	// Senders is how many senders ran: Concurrency, or more when the pool
	// grew (MaxConcurrency).
	Senders      int64         `json:"senders"`
	TargetRate   float64       `json:"target_rate"`
	Elapsed      time.Duration `json:"elapsed"`
	Requests     int64         `json:"requests"`
	EventsSent   int64         `json:"events_sent"`
	Accepted     int64         `json:"accepted"`
	Rejected     int64         `json:"rejected"`
	Failed       int64         `json:"failed_events"`
	Statuses     map[int]int64 `json:"statuses"`
	EventsPerSec float64       `json:"events_per_sec"`
	RequestsPerS float64       `json:"requests_per_sec"`
	// Latency counts from when a request was due (with a Rate) or sent.
	Latency LatencySummary `json:"latency"`
	// RoundTrip counts from the request leaving to its answer read.
	RoundTrip LatencySummary `json:"round_trip"`
	// SenderWait is, with a Rate, how long due requests waited for a free
	// sender: the part of Latency the load generator's own pool adds when
	// every sender is busy (a fleet of independent clients would not wait).
	// Zero without a Rate.
	SenderWait    LatencySummary `json:"sender_wait"`
	Histogram     []HistogramBin `json:"histogram"`
	TransportErrs int64          `json:"transport_errors"`
	lat, rt, wait []time.Duration
}

// LatencySummary are request latency percentiles.
type LatencySummary struct {
	P50, P90, P99, P999, Max time.Duration
}

// HistogramBin counts requests with latency up to Le.
type HistogramBin struct {
	Le    time.Duration `json:"le"`
	Count int64         `json:"count"`
}

// body is a request body whose event ids are rewritten before each send.
type body struct {
	buf     []byte
	idSpans []int // offsets of the 36-byte event_id values
}

// refresh gives every event of b a new random (version 4) event_id, so
// resent bodies are new events to the collector.
func (b *body) refresh(rng *rand.ChaCha8, scratch []byte) {
	for _, off := range b.idSpans {
		_, _ = rng.Read(scratch[:16])
		scratch[6] = scratch[6]&0x0f | 0x40
		scratch[8] = scratch[8]&0x3f | 0x80
		dst := b.buf[off : off+36]
		hex.Encode(dst[0:8], scratch[0:4])
		hex.Encode(dst[9:13], scratch[4:6])
		hex.Encode(dst[14:18], scratch[6:8])
		hex.Encode(dst[19:23], scratch[8:10])
		hex.Encode(dst[24:36], scratch[10:16])
	}
}

// schedule sends the due time of request n, start + n x interval, on due
// at that time until ctx ends, and calls grow after each. Late wake-ups
// send every time already due, so the rate holds on average; when due is
// full (every sender far behind) it waits, and the senders' latencies show
// it.
func schedule(ctx context.Context, start time.Time, interval time.Duration, due chan<- time.Time, grow func()) {
	at := func(n int) time.Time { return start.Add(time.Duration(n) * interval) }
	t := time.NewTimer(0)
	defer t.Stop()
	for n := 0; ; {
		now := time.Now()
		for ; !at(n).After(now); n++ {
			select {
			case due <- at(n):
			case <-ctx.Done():
				return
			}
			grow()
		}
		t.Reset(time.Until(at(n)))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// makeBodies prepares n bodies of batch events from g.
func makeBodies(g *gen.Generator, n, batch int) ([]*body, error) {
	out := make([]*body, n)
	for i := range out {
		evs := make([]any, batch)
		for j := range evs {
			evs[j] = g.Event()
		}
		buf, err := json.Marshal(map[string]any{"events": evs})
		if err != nil {
			return nil, err
		}
		b := &body{buf: buf}
		key := []byte(`"event_id":"`)
		for off := 0; ; {
			k := bytes.Index(buf[off:], key)
			if k < 0 {
				break
			}
			b.idSpans = append(b.idSpans, off+k+len(key))
			off += k + len(key) + 36
		}
		out[i] = b
	}
	return out, nil
}

// Run sends load until cfg.Duration passes or ctx ends.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	path, ctype := "/v1/events", "application/json"
	if cfg.Mode == "beacon" {
		path, ctype = "/v1/beacon?writeKey="+url.QueryEscape(cfg.WriteKey), "text/plain;charset=UTF-8"
	}
	proto, err := newConn(cfg.URL, 30*time.Second, cfg.tlsConfig)
	if err != nil {
		return nil, err
	}
	maxSenders := max(cfg.MaxConcurrency, cfg.Concurrency)
	if cfg.Rate == 0 {
		maxSenders = cfg.Concurrency // closed loop: the senders are the load
	}

	var (
		requests, sent, accepted, rejected, failed, terrs atomic.Int64
		mu                                                sync.Mutex
		statuses                                          = map[int]int64{}
		lats, rts, waits                                  []time.Duration
	)
	// Every body is made before the clock starts, so no sender begins
	// behind its schedule (which the open-loop latency would count). Senders
	// take any free body from the pool and put it back after the answer:
	// a body's event ids are rewritten while one sender holds it.
	nbodies := max(64*cfg.Concurrency, maxSenders)
	pool := make(chan *body, nbodies)
	for w := 0; len(pool) < nbodies; w++ {
		g := gen.New(cfg.Seed+uint64(w)*7919, cfg.Users)
		g.UniqueUA = cfg.UniqueUA
		bodies, err := makeBodies(g, min(64, nbodies-len(pool)), cfg.BatchSize)
		if err != nil {
			return nil, err
		}
		for _, b := range bodies {
			pool <- b
		}
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	start := time.Now()
	// With a rate, arrivals follow one schedule shared by every sender
	// (constant arrival rate, as k6's executor of that name): request n is
	// due at start + n x batch/rate whatever happened to earlier ones, the
	// first idle sender takes it, and its latency counts from when it was
	// due, so time spent waiting for a free sender is charged too. When a
	// request is due and every sender is busy, another sender starts, up to
	// maxSenders, as a fleet of browsers has no pool to wait for.
	var (
		due     chan time.Time
		wg      sync.WaitGroup
		senders atomic.Int64 // started
		idle    atomic.Int64 // waiting for a due request
	)
	sender := func(c *conn) {
		defer wg.Done()
		defer c.close()
		hdr := [][2]string{{"Content-Type", ctype}, {"User-Agent", ""}}
		if cfg.Mode == "batch" {
			hdr = append(hdr, [2]string{"Authorization", "Bearer " + cfg.WriteKey})
		}
		// A per-sender ChaCha8 stream seeded from crypto/rand: event ids
		// only need to be unique, and a getrandom call per event cost the
		// load generator CPU that it shares with the collector.
		var seed [32]byte
		_, _ = crand.Read(seed[:])
		rng := rand.NewChaCha8(seed)
		scratch := make([]byte, 16)
		local := make([]time.Duration, 0, 4096)
		localRT := make([]time.Duration, 0, 4096)
		localWait := make([]time.Duration, 0, 4096)
		localStatus := map[int]int64{}
		var resp struct{ Accepted, Rejected int }
		for n := int(senders.Load()); ; n++ {
			intended := time.Now()
			if due != nil {
				idle.Add(1)
				select {
				case <-ctx.Done():
				case intended = <-due:
				}
				idle.Add(-1)
			}
			if ctx.Err() != nil {
				break
			}
			b := <-pool
			b.refresh(rng, scratch)
			hdr[1][1] = gen.UserAgents[n%len(gen.UserAgents)]
			leftAt := time.Now()
			status, answer, err := c.post(path, hdr, b.buf)
			pool <- b
			requests.Add(1)
			sent.Add(int64(cfg.BatchSize))
			if err != nil {
				terrs.Add(1)
				failed.Add(int64(cfg.BatchSize))
				continue
			}
			resp.Accepted, resp.Rejected = 0, 0
			_ = json.Unmarshal(answer, &resp)
			done := time.Now()
			local = append(local, done.Sub(intended))
			localRT = append(localRT, done.Sub(leftAt))
			if due != nil {
				localWait = append(localWait, leftAt.Sub(intended))
			}
			localStatus[status]++
			if status/100 == 2 {
				accepted.Add(int64(resp.Accepted))
				rejected.Add(int64(resp.Rejected))
			} else {
				failed.Add(int64(cfg.BatchSize))
			}
		}
		mu.Lock()
		lats = append(lats, local...)
		rts = append(rts, localRT...)
		waits = append(waits, localWait...)
		for k, v := range localStatus {
			statuses[k] += v
		}
		mu.Unlock()
	}
	startSender := func() {
		senders.Add(1)
		wg.Add(1)
		go sender(proto.fresh())
	}
	if cfg.Rate > 0 {
		due = make(chan time.Time, 1<<16)
		interval := time.Duration(float64(time.Second) * float64(cfg.BatchSize) / cfg.Rate)
		// grow runs on the schedule's goroutine after each due request: with
		// one waiting and no sender idle, start another.
		grow := func() {
			if len(due) > 0 && idle.Load() == 0 && senders.Load() < int64(maxSenders) {
				startSender()
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			schedule(ctx, start, interval, due, grow)
		}()
	}
	for range cfg.Concurrency {
		startSender()
	}
	progressDone := make(chan struct{})
	if cfg.Progress != nil {
		go func() {
			defer close(progressDone)
			t := time.NewTicker(time.Second)
			defer t.Stop()
			var last int64
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					s := sent.Load()
					fmt.Fprintf(cfg.Progress, "t=%4.0fs sent=%d accepted=%d rejected=%d failed=%d rate=%d ev/s\n",
						time.Since(start).Seconds(), s, accepted.Load(), rejected.Load(), failed.Load(), s-last)
					last = s
				}
			}
		}()
	} else {
		close(progressDone)
	}
	wg.Wait()
	<-progressDone
	elapsed := time.Since(start)
	r := &Report{
		Mode: cfg.Mode, BatchSize: cfg.BatchSize, Concurrency: cfg.Concurrency, Senders: senders.Load(), TargetRate: cfg.Rate, Elapsed: elapsed,
		Requests: requests.Load(), EventsSent: sent.Load(), Accepted: accepted.Load(), Rejected: rejected.Load(),
		Failed: failed.Load(), Statuses: statuses, TransportErrs: terrs.Load(), lat: lats, rt: rts, wait: waits,
	}
	r.EventsPerSec = float64(r.Accepted) / elapsed.Seconds()
	r.RequestsPerS = float64(r.Requests) / elapsed.Seconds()
	r.summarize()
	return r, nil
}

func (r *Report) summarize() {
	r.RoundTrip, r.SenderWait = summary(r.rt), summary(r.wait)
	if len(r.lat) == 0 {
		return
	}
	r.Latency = summary(r.lat)
	bounds := []time.Duration{time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond,
		50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second, 5 * time.Second, time.Hour}
	i := 0
	for _, b := range bounds {
		for i < len(r.lat) && r.lat[i] <= b {
			i++
		}
		r.Histogram = append(r.Histogram, HistogramBin{Le: b, Count: int64(i)})
	}
}

// summary sorts d and returns its percentiles (zero when d is empty).
func summary(d []time.Duration) LatencySummary {
	if len(d) == 0 {
		return LatencySummary{}
	}
	slices.Sort(d)
	q := func(p float64) time.Duration { return d[min(int(p*float64(len(d))), len(d)-1)] }
	return LatencySummary{P50: q(0.50), P90: q(0.90), P99: q(0.99), P999: q(0.999), Max: d[len(d)-1]}
}

// WriteText prints the report for people.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "mode=%s batch=%d concurrency=%d senders=%d target=%.0f ev/s elapsed=%s\n", r.Mode, r.BatchSize, r.Concurrency, r.Senders, r.TargetRate, r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "requests=%d (%.0f/s) events sent=%d accepted=%d (%.0f/s) rejected=%d failed=%d transport_errors=%d\n",
		r.Requests, r.RequestsPerS, r.EventsSent, r.Accepted, r.EventsPerSec, r.Rejected, r.Failed, r.TransportErrs)
	fmt.Fprintf(w, "statuses=%v\n", r.Statuses)
	line := func(name string, l LatencySummary) {
		fmt.Fprintf(w, "%s p50=%s p90=%s p99=%s p99.9=%s max=%s\n", name, l.P50, l.P90, l.P99, l.P999, l.Max)
	}
	line("latency", r.Latency)
	line("  round trip", r.RoundTrip)
	if r.TargetRate > 0 {
		line("  waiting for a free sender", r.SenderWait)
	}
	var prev int64
	for _, b := range r.Histogram {
		fmt.Fprintf(w, "  <= %-8s %8d\n", b.Le, b.Count-prev)
		prev = b.Count
	}
}
