package broker_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/sora3web/telemetry/bus"
	"github.com/sora3web/telemetry/bus/broker"
	"github.com/sora3web/telemetry/internal/testenv"
)

// newTopic makes a fresh events topic with 4 partitions on the test
// broker; opts change the config before the topics are created.
func newTopic(t *testing.T, opts ...func(*broker.Config)) broker.Config {
	t.Helper()
	cfg := broker.DefaultConfig()
	cfg.Brokers = testenv.Kafka(t)
	name := fmt.Sprintf("producer-test-%d", time.Now().UnixNano())
	cfg.EventsTopic, cfg.DeadLetterTopic = name, name+"-dlq"
	for _, o := range opts {
		o(&cfg)
	}
	testenv.DeleteTopicsAtCleanup(t, cfg.Brokers, cfg.EventsTopic, cfg.DeadLetterTopic)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := broker.EnsureTopics(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// readAll reads every record of every partition of topic.
func readAll(t *testing.T, cfg broker.Config, want int) []kafka.Message {
	t.Helper()
	var out []kafka.Message
	for p := range cfg.Partitions {
		conn, err := kafka.DialLeader(context.Background(), "tcp", cfg.Brokers[0], cfg.EventsTopic, p)
		if err != nil {
			t.Fatal(err)
		}
		last, err := conn.ReadLastOffset()
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
		if last == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: cfg.Brokers, Topic: cfg.EventsTopic, Partition: p, MaxWait: 100 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("reading partition %d: %v (have %d of %d)", p, err, len(out), want)
			}
			out = append(out, m)
			if m.Offset == last-1 {
				break
			}
		}
		cancel()
		r.Close()
	}
	return out
}

// fromCallers runs callers goroutines, caller c calling call(c, i) for i
// from 0 to calls-1 until one fails, and fails t with their errors.
func fromCallers(t *testing.T, callers, calls int, call func(c, i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				if err := call(c, i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestProducerDeliversInOrderAndBatches: concurrent callers each produce a
// numbered sequence; every message arrives exactly once, on the partition
// kafka-go's Hash balancer gives its key, in each caller's order, and
// callers' messages share produce requests (natural batching).
func TestProducerDeliversInOrderAndBatches(t *testing.T) {
	reader := recordMetrics(t)

	cfg := newTopic(t)
	p, err := broker.NewProducer(cfg, cfg.EventsTopic)
	if err != nil {
		t.Fatal(err)
	}
	const callers, calls, perCall = 8, 100, 10
	fromCallers(t, callers, calls, func(c, i int) error {
		msgs := make([]bus.Message, perCall)
		for j := range msgs {
			msgs[j] = bus.Message{
				Key:     []byte(fmt.Sprintf("user-%d-%d", c, j%3)),
				Value:   []byte(fmt.Sprintf("%d:%d", c, i*perCall+j)),
				Headers: []bus.Header{{Key: "h", Value: []byte("v")}},
			}
		}
		return p.Produce(context.Background(), msgs)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Produce(ctx, []bus.Message{{Value: []byte("late")}}); !errors.Is(err, broker.ErrProducerClosed) {
		t.Fatalf("Produce after Close = %v, want ErrProducerClosed", err)
	}

	total := callers * calls * perCall
	got := readAll(t, cfg, total)
	if len(got) != total {
		t.Fatalf("read %d messages, want %d", len(got), total)
	}
	ids := []int{0, 1, 2, 3}
	seen := map[string]bool{}
	lastSeq := map[string]int{} // key -> last sequence number read
	for _, m := range got {
		v := string(m.Value)
		if seen[v] {
			t.Fatalf("message %s read twice", v)
		}
		seen[v] = true
		if want := (&kafka.Hash{}).Balance(kafka.Message{Key: m.Key}, ids...); m.Partition != want {
			t.Fatalf("key %s on partition %d, kafka.Hash says %d", m.Key, m.Partition, want)
		}
		if len(m.Headers) != 1 || m.Headers[0].Key != "h" || string(m.Headers[0].Value) != "v" {
			t.Fatalf("headers of %s = %v", v, m.Headers)
		}
		seq, _ := strconv.Atoi(v[strings.IndexByte(v, ':')+1:])
		if last, ok := lastSeq[string(m.Key)]; ok && seq <= last {
			t.Fatalf("key %s: %d after %d, out of order", m.Key, seq, last)
		}
		lastSeq[string(m.Key)] = seq
	}

	requests, records := produceCounts(t, reader)
	// Retries count again (a new topic's leader can take a moment).
	if records < int64(total) {
		t.Fatalf("produce.records sums to %d, want at least %d", records, total)
	}
	// 800 calls from 8 concurrent callers: with one request in flight per
	// sender, calls that arrive meanwhile share the next request.
	if requests <= 0 || requests >= callers*calls {
		t.Fatalf("%d produce requests for %d calls: no batching across calls", requests, callers*calls)
	}
	t.Logf("%d calls, %d produce requests, %.1f records per request", callers*calls, requests, float64(records)/float64(requests))
}

// recordMetrics points the global meter provider (which NewProducer reads)
// at a manual reader for the rest of the test.
func recordMetrics(t *testing.T) *sdkmetric.ManualReader {
	reader := sdkmetric.NewManualReader()
	prev := otel.GetMeterProvider()
	otel.SetMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	t.Cleanup(func() { otel.SetMeterProvider(prev) })
	return reader
}

// produceCounts reads telemetry.kafka.produce.requests and the sum of
// telemetry.kafka.produce.records from reader.
func produceCounts(t *testing.T, reader *sdkmetric.ManualReader) (requests, records int64) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				if m.Name == "telemetry.kafka.produce.requests" {
					for _, dp := range d.DataPoints {
						requests += dp.Value
					}
				}
			case metricdata.Histogram[int64]:
				if m.Name == "telemetry.kafka.produce.records" {
					for _, dp := range d.DataPoints {
						records += dp.Sum
					}
				}
			}
		}
	}
	return requests, records
}

// TestProducerLingerGathersCalls: with a linger, calls made while the first
// one's batch waits leave with it in one produce request, although no
// request was in flight to hold them back.
func TestProducerLingerGathersCalls(t *testing.T) {
	reader := recordMetrics(t)
	cfg := newTopic(t)
	cfg.Linger = 300 * time.Millisecond
	p, err := broker.NewProducer(cfg, cfg.EventsTopic)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	// Warm up (metadata, connection) so the measured calls are the only
	// thing the linger decides.
	if err := p.Produce(context.Background(), []bus.Message{{Value: []byte("warm")}}); err != nil {
		t.Fatal(err)
	}
	req0, _ := produceCounts(t, reader)
	const calls = 4
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 30 * time.Millisecond) // well inside the linger
			errs <- p.Produce(context.Background(), []bus.Message{{Key: []byte{byte(i)}, Value: []byte{byte(i)}}})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if req, _ := produceCounts(t, reader); req-req0 != 1 {
		t.Fatalf("%d calls inside one linger took %d produce requests, want 1", calls, req-req0)
	}
}

// TestProducerFullBatchEndsLinger: a batch that reaches batch_size leaves
// at once, however long the linger.
func TestProducerFullBatchEndsLinger(t *testing.T) {
	cfg := newTopic(t)
	cfg.Linger, cfg.BatchSize = time.Hour, 5
	p, err := broker.NewProducer(cfg, cfg.EventsTopic)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Close(ctx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Two calls: the second fills the batch the first one started.
	errs := make(chan error, 2)
	for _, n := range []int{2, 3} {
		msgs := make([]bus.Message, n)
		for i := range msgs {
			msgs[i] = bus.Message{Key: []byte("one-key"), Value: []byte{byte(n), byte(i)}}
		}
		go func() { errs <- p.Produce(ctx, msgs) }()
		time.Sleep(50 * time.Millisecond) // the first call's batch exists and lingers
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("a full batch waited for the linger: %v", err)
		}
	}
}

// TestProducerBrokerDown: with no broker, Produce fails within its context
// instead of hanging, and Close still returns.
func TestProducerBrokerDown(t *testing.T) {
	cfg := broker.DefaultConfig()
	cfg.Brokers = []string{"127.0.0.1:1"}
	cfg.DialTimeout = 500 * time.Millisecond
	p, err := broker.NewProducer(cfg, cfg.EventsTopic)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := p.Produce(ctx, []bus.Message{{Key: []byte("k"), Value: []byte("v")}}); err == nil {
		t.Fatal("Produce with no broker succeeded")
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestProducerTailsCloseTheirShares: each partition's share of a call
// (ProduceWithTails) is followed on that partition by the tail made for
// it, whatever its key, and the tail is given exactly the share's indices;
// concurrent callers' shares interleave, never a tail before its share.
func TestProducerTailsCloseTheirShares(t *testing.T) {
	cfg := newTopic(t)
	p, err := broker.NewProducer(cfg, cfg.EventsTopic)
	if err != nil {
		t.Fatal(err)
	}
	const callers, calls, perCall = 4, 25, 20
	fromCallers(t, callers, calls, func(c, i int) error {
		msgs := make([]bus.Message, perCall)
		for j := range msgs {
			msgs[j] = bus.Message{Key: []byte(fmt.Sprintf("user-%d", j)), Value: []byte(fmt.Sprintf("%d:%d:%d", c, i, j))}
		}
		tail := func(idx []int) []bus.Message {
			var ids []string
			for _, k := range idx {
				ids = append(ids, strconv.Itoa(k))
			}
			return []bus.Message{{Key: []byte("tail"), Value: []byte(fmt.Sprintf("tail %d:%d:%s", c, i, strings.Join(ids, ",")))}}
		}
		return p.ProduceWithTails(context.Background(), msgs, tail)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, cfg, callers*calls*perCall)
	// Per partition, the messages of each call seen so far; a tail must
	// name exactly those.
	seen := map[int]map[string][]string{}
	tails, events := 0, 0
	for _, m := range got {
		if seen[m.Partition] == nil {
			seen[m.Partition] = map[string][]string{}
		}
		v := string(m.Value)
		if rest, ok := strings.CutPrefix(v, "tail "); ok {
			call, idx, _ := strings.Cut(rest, ":")
			call2, idx2, _ := strings.Cut(idx, ":")
			call += ":" + call2
			if want := strings.Join(seen[m.Partition][call], ","); idx2 != want {
				t.Fatalf("partition %d: tail of call %s names %q, the share there is %q", m.Partition, call, idx2, want)
			}
			delete(seen[m.Partition], call)
			tails++
			continue
		}
		parts := strings.Split(v, ":")
		call := parts[0] + ":" + parts[1]
		seen[m.Partition][call] = append(seen[m.Partition][call], parts[2])
		events++
	}
	for part, calls := range seen {
		if len(calls) > 0 {
			t.Fatalf("partition %d: shares without their tail: %v", part, calls)
		}
	}
	if events != callers*calls*perCall || tails < callers*calls {
		t.Fatalf("%d events, %d tails; want %d events and a tail per share", events, tails, callers*calls*perCall)
	}
}
