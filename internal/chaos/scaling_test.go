package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sora3web/telemetry/internal/config"
	"github.com/sora3web/telemetry/internal/gen"
	"github.com/sora3web/telemetry/internal/loadgen"
	"github.com/sora3web/telemetry/internal/testenv"
)

// scalingEnv enables TestClusterScaling (make bench-cluster): minutes of
// flat-out load whose figures are printed, never asserted.
const scalingEnv = "CHAOS_CLUSTER_SCALING"

// cpuSeconds is the CPU time (user + system) the process has used so far.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command may hold spaces: fields count from after its ")".
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

// storedCount is count() of telemetry.events (-1 if the engine does not answer).
func storedCount(addr string) int {
	out, err := chQuery(addr, "SELECT count() FROM telemetry.events")
	if err != nil {
		return -1
	}
	n, _ := strconv.Atoi(out)
	return n
}

// TestClusterScaling prints the cluster's scaling figures: consumer rows/s
// with 1, 2 and 3 `telemetry consume` processes draining one backlog into
// one engine (with the engine's CPU beside them: one process, it is the
// limit), ingest events/s with 1 and 2 `telemetry ingest` processes, and
// how long the lag takes to recover after the consumer stopped for 60s
// under a steady load. Nothing is asserted: the figures move with the
// machine's load.
func TestClusterScaling(t *testing.T) {
	requireCluster(t)
	if os.Getenv(scalingEnv) != "1" {
		t.Skipf("scaling figures run with %s=1 (make bench-cluster)", scalingEnv)
	}
	c := clusterUp(t)
	dir := t.TempDir()

	// Ingest events/s with 1 and 2 ingest processes, flat out.
	settings := c.settings(t, "scaling")
	ins := []*node{ingestNode(t, "ingest-1", dir, settings), ingestNode(t, "ingest-2", dir, settings)}
	for _, in := range ins {
		in.start()
		in.waitReady(200, time.Minute)
	}
	total := 0
	rates := map[int]float64{}
	for k := 1; k <= 2; k++ {
		s := newSender(t, spread(ins[:k]...), 16, 100)
		s.start()
		waitAcked(t, s, 1000, time.Minute)
		base, start := s.acknowledged(), time.Now()
		cpu0 := 0.0
		for _, in := range ins[:k] {
			cpu0 += cpuSeconds(in.pid())
		}
		loadFor(15 * time.Second)
		rate := float64(s.acknowledged()-base) / time.Since(start).Seconds()
		cpu := 0.0
		for _, in := range ins[:k] {
			cpu += cpuSeconds(in.pid())
		}
		s.finish(30 * time.Second)
		total += s.acknowledged()
		rates[k] = rate
		report(t, fmt.Sprintf("scaling ingest_processes=%d events_per_s=%.0f ingest_cpu_cores=%.2f (16 senders x 100 events, load generator on the same 2 cores)",
			k, rate, (cpu-cpu0)/time.Since(start).Seconds()))
	}
	for _, in := range ins {
		// Flat out, ingest spooled part of the load: the backlog below
		// must be all in Kafka before the consumers are timed.
		waitSpoolDrained(t, in, 5*time.Minute)
	}
	total += producerLatency(t, c, ins[0], rates[1]/2)
	for _, in := range ins {
		waitSpoolDrained(t, in, 5*time.Minute)
		in.stop()
	}

	// Consumer rows/s with 1, 2 and 3 processes draining the backlog just
	// made, each count into a fresh engine with a fresh group.
	for k := 1; k <= 3; k++ {
		sub := filepath.Join(dir, fmt.Sprintf("consumers-%d", k))
		if err := os.MkdirAll(sub, 0o755); err != nil { // the processes' working directory
			t.Fatal(err)
		}
		engine := newNode(t, fmt.Sprintf("engine-%d", k), filepath.Join(sub, "engine"),
			chaosArgs("serve", "serve.ingest=false", "serve.consumer=false", "admin.enabled=false")...)
		engine.start()
		group := fmt.Sprintf("scaling-%d-%d", k, time.Now().UnixNano())
		var own []string // settings with a group of this count's own
		for _, kv := range settings {
			if !strings.HasPrefix(kv, "consumer.group_id=") {
				own = append(own, kv)
			}
		}
		var cs []*node
		for i := 1; i <= k; i++ {
			cs = append(cs, newNode(t, fmt.Sprintf("consume-%d-%d", k, i), filepath.Join(sub, fmt.Sprint("consume-", i)), chaosArgs("consume",
				append(own, "consumer.group_id="+group, "consumer.batch_interval=1s", "embedded.enabled=false",
					"clickhouse.protocol=http", "clickhouse.addr="+engine.ClickHouseAddr(), "admin.listen=127.0.0.1:0")...)...))
		}
		start := time.Now()
		cpu0 := cpuSeconds(engine.pid())
		for _, cn := range cs {
			cn.start()
		}
		for storedCount(engine.ClickHouseAddr()) < total {
			if time.Since(start) > 5*time.Minute {
				t.Fatalf("%d consumers: %d of %d rows after 5m", k, storedCount(engine.ClickHouseAddr()), total)
			}
			time.Sleep(200 * time.Millisecond)
		}
		took := time.Since(start)
		report(t, fmt.Sprintf("scaling consume_processes=%d rows=%d rows_per_s=%.0f engine_cpu_cores=%.2f (one engine process over HTTP; start-up and group join included)",
			k, total, float64(total)/took.Seconds(), (cpuSeconds(engine.pid())-cpu0)/took.Seconds()))
		for _, cn := range cs {
			cn.stop()
		}
		engine.stop()
	}

	// Lag recovery: a steady load, the consumer stopped for 60s, then the
	// time until it has stored everything acknowledged before its restart.
	lagSettings := c.settings(t, "scaling-lag")
	in := ingestNode(t, "ingest-lag", dir, lagSettings)
	in.start()
	in.waitReady(200, time.Minute)
	cons := consumerNodeOf(t, "consumer-lag", dir, lagSettings)
	cons.start()
	s := newSender(t, in.IngestAddr, 4, 50)
	s.pause = 20 * time.Millisecond
	s.start()
	waitStored(t, cons, 5000, time.Minute)
	acked0, t0 := s.acknowledged(), time.Now()
	stored0 := storedCount(cons.ClickHouseAddr())
	cons.stop()
	loadFor(60 * time.Second)
	target := s.acknowledged()
	backlog := target - stored0
	rate := float64(target-acked0) / time.Since(t0).Seconds()
	start := time.Now()
	cons.start()
	for storedCount(cons.ClickHouseAddr()) < target {
		if time.Since(start) > 5*time.Minute {
			t.Fatalf("lag not recovered after 5m")
		}
		time.Sleep(200 * time.Millisecond)
	}
	report(t, fmt.Sprintf("scaling lag_recovery_s=%.1f after a 60s consumer stop (backlog ~%d events at %.0f events/s of steady load)",
		time.Since(start).Seconds(), backlog, rate))
	s.finish(30 * time.Second)
}

// producerLatency prints the broker's own producer (kafka-producer-perf-test)
// against the cluster flat out, then ours and its latency at the same rate:
// one ingest process (in) under an open-loop load of rate events/s in
// batches of 50, and perf-test at rate records/s with records of the size
// the collector publishes, acks=all and lz4 on a topic of the same
// partitions, replication factor and min ISR. It returns the events in
// acknowledged.
func producerLatency(t *testing.T, c *kafkaCluster, in *node, rate float64) int {
	t.Helper()
	const secs = 20
	size := gen.EnrichedSize(2000)
	topic := fmt.Sprintf("scaling-perf-%d", time.Now().UnixNano())
	testenv.KafkaScript(t, "topics", "--bootstrap-server", c.brokers(), "--create", "--topic", topic,
		"--partitions", strconv.Itoa(clusterPartitions), "--replication-factor", "3", "--config", "min.insync.replicas=2")
	defer deleteTopics(t, c.addrs[0], topic)
	perf := func(records int, throughput float64, linger string) perfResult {
		out := testenv.KafkaScript(t, "perf-test", "--topic", topic, "--num-records", strconv.Itoa(records),
			"--record-size", strconv.Itoa(size), "--throughput", strconv.FormatFloat(throughput, 'f', 0, 64),
			"--producer-props", "bootstrap.servers="+c.brokers(), "acks=all", "compression.type=lz4", "linger.ms="+linger, "batch.size=262144")
		r, err := parsePerf(out)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	limit := perf(300_000, -1, "2")
	report(t, fmt.Sprintf("scaling broker_limit records_per_s=%.0f p99_ms=%.0f (kafka-producer-perf-test flat out: %d B records, RF 3, min ISR 2, acks=all, lz4, linger.ms=2)",
		limit.rate, limit.p99, size))

	ctx, cancel := context.WithTimeout(context.Background(), 2*secs*time.Second)
	defer cancel()
	ours, err := loadgen.Run(ctx, loadgen.Config{URL: "http://" + in.IngestAddr(), WriteKey: config.DevWriteKey, Mode: "batch",
		BatchSize: 50, Rate: rate, Concurrency: 64, Duration: secs * time.Second, Seed: 16})
	if err != nil {
		t.Fatalf("loadgen at %.0f events/s: %v", rate, err)
	}
	theirs := perf(int(rate*secs), rate, "0")
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	report(t, fmt.Sprintf("scaling producer_latency rate=%.0f ours_events_per_s=%.0f ours_p50_ms=%.1f ours_p99_ms=%.1f ours_round_trip_p99_ms=%.1f perf_records_per_s=%.0f perf_p50_ms=%.0f perf_p99_ms=%.0f "+
		"(ours: one ingest process, /v1/events in batches of 50, open loop from when each request was due, 64 senders, a 2xx after acks=all; perf-test: linger.ms=0, the same records)",
		rate, ours.EventsPerSec, ms(ours.Latency.P50), ms(ours.Latency.P99), ms(ours.RoundTrip.P99), theirs.rate, theirs.p50, theirs.p99))
	if ours.Failed > 0 {
		t.Errorf("producer latency run: %d events failed", ours.Failed)
	}
	return int(ours.Accepted)
}

// perfResult is kafka-producer-perf-test's summary line.
type perfResult struct{ rate, p50, p99 float64 }

// perfSummary matches the last line kafka-producer-perf-test prints, e.g.
// "600000 records sent, 267142.0 records/sec (213.5 MB/sec), 61.2 ms avg
// latency, 402.0 ms max latency, 47 ms 50th, 150 ms 95th, 231 ms 99th, 379
// ms 99.9th."
var perfSummary = regexp.MustCompile(`records sent, ([0-9.]+) records/sec .* ([0-9.]+) ms 50th, [0-9.]+ ms 95th, ([0-9.]+) ms 99th`)

func parsePerf(out string) (perfResult, error) {
	m := perfSummary.FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		return perfResult{}, fmt.Errorf("no summary line in kafka-producer-perf-test's output:\n%s", tail(out, 10))
	}
	last := m[len(m)-1]
	var r perfResult
	r.rate, _ = strconv.ParseFloat(last[1], 64)
	r.p50, _ = strconv.ParseFloat(last[2], 64)
	r.p99, _ = strconv.ParseFloat(last[3], 64)
	return r, nil
}

func TestParsePerf(t *testing.T) {
	out := "120000 records sent, 23990.4 records/sec (19.18 MB/sec), 3.1 ms avg latency, 180.0 ms max latency.\n" +
		"600000 records sent, 267142.0 records/sec (213.5 MB/sec), 61.2 ms avg latency, 402.0 ms max latency, 47 ms 50th, 150 ms 95th, 231 ms 99th, 379 ms 99.9th.\n"
	got, err := parsePerf(out)
	if err != nil || got != (perfResult{rate: 267142, p50: 47, p99: 231}) {
		t.Fatalf("parsePerf: %+v, %v", got, err)
	}
	if _, err := parsePerf("Exception in thread main\n"); err == nil {
		t.Fatal("parsePerf accepted output without a summary line")
	}
}
