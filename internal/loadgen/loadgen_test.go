package loadgen

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRunCountsWhatTheServerAnswered drives a fake collector that accepts
// every other request and refuses the rest, and checks the report adds up
// and every event id sent is unique.
func TestRunCountsWhatTheServerAnswered(t *testing.T) {
	var n atomic.Int64
	var mu sync.Mutex
	ids := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer k" || r.URL.Path != "/v1/events" {
			t.Errorf("request %s %s", r.URL.Path, r.Header.Get("Authorization"))
		}
		body, _ := io.ReadAll(r.Body)
		var b struct {
			Events []struct {
				EventID string `json:"event_id"`
			} `json:"events"`
		}
		if err := json.Unmarshal(body, &b); err != nil || len(b.Events) != 10 {
			t.Errorf("body: %v, %d events", err, len(b.Events))
		}
		mu.Lock()
		for _, e := range b.Events {
			ids[e.EventID]++
		}
		mu.Unlock()
		if n.Add(1)%2 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{"accepted":9,"rejected":1}`))
	}))
	defer srv.Close()
	r, err := Run(context.Background(), Config{URL: srv.URL, WriteKey: "k", Mode: "batch", BatchSize: 10, Concurrency: 4,
		Duration: 300 * time.Millisecond, Users: 100, Seed: 1, Rate: 2000})
	if err != nil {
		t.Fatal(err)
	}
	ok, refused := r.Statuses[200], r.Statuses[503]
	if r.Requests == 0 || ok+refused != r.Requests || r.EventsSent != r.Requests*10 {
		t.Fatalf("requests %d, statuses %v, sent %d", r.Requests, r.Statuses, r.EventsSent)
	}
	if r.Accepted != ok*9 || r.Rejected != ok || r.Failed != refused*10 {
		t.Fatalf("accepted %d rejected %d failed %d for %d ok / %d refused", r.Accepted, r.Rejected, r.Failed, ok, refused)
	}
	for id, c := range ids {
		if c != 1 {
			t.Fatalf("event id %s sent %d times", id, c)
		}
	}
	if r.Latency.P50 <= 0 || r.Latency.Max < r.Latency.P99 {
		t.Fatalf("latency summary %+v", r.Latency)
	}
	var out strings.Builder
	r.WriteText(&out)
	if !strings.Contains(out.String(), "accepted=") {
		t.Fatalf("text report: %s", out.String())
	}
}

func TestConfigValidateNamesTheField(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "url"},
		{Config{URL: "x", Mode: "carrier-pigeon"}, "mode"},
		{Config{URL: "x", Mode: "batch"}, "batch"},
		{Config{URL: "x", Mode: "batch", BatchSize: 1}, "concurrency"},
		{Config{URL: "x", Mode: "batch", BatchSize: 1, Concurrency: 1}, "duration"},
	} {
		if err := c.cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v, want %s", c.cfg, err, c.want)
		}
	}
}

// TestRunSplitsSenderWaitFromRoundTrip: with one sender, a server that takes
// 40ms and a request due every 10ms, due requests queue for the sender; the
// report charges that wait to Latency and shows it apart from the round
// trip. Without a rate nothing is due, so nothing waits.
func TestRunSplitsSenderWaitFromRoundTrip(t *testing.T) {
	const serverTime = 40 * time.Millisecond
	cfg := slowServerRun(t, serverTime)
	cfg.Duration = 400 * time.Millisecond
	r, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests < 3 {
		t.Fatalf("only %d requests", r.Requests)
	}
	if r.RoundTrip.P50 < serverTime {
		t.Fatalf("round trip p50 %v < the server's %v", r.RoundTrip.P50, serverTime)
	}
	// The second request was due 10ms in and left after the first answer.
	if r.SenderWait.Max < serverTime-10*time.Millisecond {
		t.Fatalf("sender wait max %v: due requests did not queue", r.SenderWait.Max)
	}
	if r.Latency.Max < r.SenderWait.Max+serverTime {
		t.Fatalf("latency max %v does not include the wait %v and the round trip", r.Latency.Max, r.SenderWait.Max)
	}
	var out strings.Builder
	r.WriteText(&out)
	if !strings.Contains(out.String(), "waiting for a free sender") {
		t.Fatalf("text report: %s", out.String())
	}

	cfg.Rate = 0
	if r, err = Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if r.SenderWait != (LatencySummary{}) || r.RoundTrip.P50 < serverTime {
		t.Fatalf("closed loop: sender wait %+v, round trip %+v", r.SenderWait, r.RoundTrip)
	}
}

// TestRunGrowsSendersWhenAllAreBusy: with a rate that one sender cannot
// keep (the server takes 40ms, a request is due every 10ms), a fixed pool
// stays at one sender and falls behind, while MaxConcurrency lets the pool
// grow so that due requests do not wait for a free sender.
func TestRunGrowsSendersWhenAllAreBusy(t *testing.T) {
	cfg := slowServerRun(t, 40*time.Millisecond)
	fixed, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConcurrency = 16
	grown, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if fixed.Senders != 1 {
		t.Errorf("fixed pool: %d senders, want 1", fixed.Senders)
	}
	if grown.Senders < 2 || grown.Senders > 16 {
		t.Errorf("growing pool: %d senders, want 2..16", grown.Senders)
	}
	// One sender answers at most 1 request per 40ms; the grown pool keeps
	// up with the 100/s schedule.
	if grown.Requests < 2*fixed.Requests {
		t.Errorf("requests: %d with a growing pool, %d with one sender", grown.Requests, fixed.Requests)
	}
}

// slowServerRun starts a server that answers every request after d and
// returns a run against it: one sender, one event per request, 100 due per
// second for half a second.
func slowServerRun(t *testing.T, d time.Duration) Config {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		time.Sleep(d)
		w.Write([]byte(`{"accepted":1,"rejected":0}`))
	}))
	t.Cleanup(srv.Close)
	return Config{URL: srv.URL, WriteKey: "k", Mode: "batch", BatchSize: 1, Concurrency: 1,
		Duration: 500 * time.Millisecond, Users: 10, Seed: 1, Rate: 100}
}
