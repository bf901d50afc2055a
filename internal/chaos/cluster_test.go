package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sora3web/telemetry/internal/testenv"
)

// clusterEnableEnv must be 1 (besides TELEMETRY_CHAOS) for the cluster
// scenarios to run: `make chaos-cluster` sets both, `make chaos` neither
// starts the three-node cluster nor runs them.
const clusterEnableEnv = "TELEMETRY_CHAOS_CLUSTER"

// clusterPortEnv overrides the first port of the private cluster.
const clusterPortEnv = "CHAOS_CLUSTER_PORT"

// defaultClusterPort is the private cluster's first port (its nodes listen
// on it and the two after it, controllers 100 above): neither the
// development broker (9092), nor the development cluster (29092), nor the
// chaos tests' single broker (19092); and below the kernel's ephemeral
// ports (32768-60999), where any outgoing connection may hold the port
// and a node restarted on it fails to bind (it did at 39092).
const defaultClusterPort = "28092"

// clusterPartitions is the partition count of the cluster scenarios' topics.
const clusterPartitions = 12

// requireCluster skips t unless the cluster scenarios are enabled.
func requireCluster(t *testing.T) {
	t.Helper()
	requireChaos(t)
	if os.Getenv(clusterEnableEnv) != "1" {
		t.Skipf("cluster fault tests run with %s=1 (make chaos-cluster)", clusterEnableEnv)
	}
}

// kafkaCluster is the private three-node KRaft cluster (scripts/kafka.sh
// cluster mode): every node is broker and controller, topics have
// replication factor 3 and min.insync.replicas 2.
type kafkaCluster struct {
	addrs []string // node i (1..3) is addrs[i-1]
}

var theCluster struct {
	once    sync.Once
	c       *kafkaCluster
	err     error
	started bool // this process started it: TestMain stops it again
}

// clusterUp starts (or finds) the private cluster and makes sure that
// every node runs again when t ends, whatever t did to them.
func clusterUp(t *testing.T) *kafkaCluster {
	t.Helper()
	theCluster.once.Do(func() {
		root, err := testenv.RepoRoot()
		if err != nil {
			theCluster.err = err
			return
		}
		script := filepath.Join(root, "scripts", "kafka.sh")
		theCluster.started = exec.Command("bash", script, "cluster-status").Run() != nil
		if out, err := exec.Command("bash", script, "cluster-up").CombinedOutput(); err != nil {
			theCluster.err = fmt.Errorf("scripts/kafka.sh cluster-up: %w\n%s", err, out)
			return
		}
		out, err := exec.Command("bash", script, "cluster-brokers").Output()
		if err != nil {
			theCluster.err = fmt.Errorf("scripts/kafka.sh cluster-brokers: %w", err)
			return
		}
		theCluster.c = &kafkaCluster{addrs: strings.Split(strings.TrimSpace(string(out)), ",")}
	})
	if theCluster.err != nil {
		t.Fatal(theCluster.err)
	}
	t.Cleanup(func() { testenv.KafkaScript(t, "cluster-up") })
	return theCluster.c
}

// stopCluster stops the private cluster if this process started it.
func stopCluster() {
	if !theCluster.started {
		return
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		return
	}
	if out, err := exec.Command("bash", filepath.Join(root, "scripts", "kafka.sh"), "cluster-down").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the private cluster: %v\n%s", err, out)
	}
}

// brokers is the bootstrap list, comma-separated.
func (c *kafkaCluster) brokers() string { return strings.Join(c.addrs, ",") }

// settings are the --set values of a node of scenario name on the
// cluster: topics of its own with 12 partitions, replication factor 3 and
// min.insync.replicas 2, and a consumer group whose dead members are
// noticed after 6s.
func (c *kafkaCluster) settings(t *testing.T, name string) []string {
	t.Helper()
	return append(busSettings(t, name, c.brokers()), "kafka.partitions="+strconv.Itoa(clusterPartitions),
		"kafka.replication_factor=3", "kafka.min_insync_replicas=2", "consumer.session_timeout=6s",
		"admin.listen=127.0.0.1:0") // several processes of one scenario may serve it
}

// kill SIGKILLs node n (1..3).
func (c *kafkaCluster) kill(t *testing.T, n int) { c.script(t, "node-down", strconv.Itoa(n), "--kill") }

// stop stops node n gracefully (SIGTERM: a controlled shutdown that moves
// its leaderships first).
func (c *kafkaCluster) stop(t *testing.T, n int) { c.script(t, "node-down", strconv.Itoa(n)) }

// start starts node n and waits until it answers.
func (c *kafkaCluster) start(t *testing.T, n int) { c.script(t, "node-up", strconv.Itoa(n)) }

func (c *kafkaCluster) script(t *testing.T, args ...string) {
	t.Helper()
	start := time.Now()
	testenv.KafkaScript(t, args...)
	t.Logf("kafka.sh %s: %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
}

// partitions reads topic's partitions from the first node that answers.
func (c *kafkaCluster) partitions(topic string) ([]kafka.Partition, error) {
	var errs []error
	for _, a := range c.addrs {
		conn, err := kafka.DialContext(context.Background(), "tcp", a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		parts, err := conn.ReadPartitions(topic)
		conn.Close()
		if err == nil {
			return parts, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// mostLeader is the node that leads most partitions of topic.
func (c *kafkaCluster) mostLeader(t *testing.T, topic string) (id, led int) {
	t.Helper()
	parts, err := c.partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	count := map[int]int{}
	for _, p := range parts {
		count[p.Leader.ID]++
	}
	for n, k := range count {
		if k > led || (k == led && n < id) {
			id, led = n, k
		}
	}
	t.Logf("leaders of %s by node: %v", topic, count)
	return id, led
}

// waitInSync waits until every partition of topic has all three replicas
// in sync again (a restarted node has caught up), so the next fault starts
// from a healthy cluster.
func (c *kafkaCluster) waitInSync(t *testing.T, topic string, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		parts, err := c.partitions(topic)
		short := 0
		for _, p := range parts {
			if len(p.Isr) < 3 || p.Leader.ID < 0 {
				short++
			}
		}
		if err == nil && short == 0 && len(parts) > 0 {
			t.Logf("%s: all replicas in sync after %v", topic, time.Since(start).Round(100*time.Millisecond))
			return
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: %d partitions short of in-sync replicas after %v (%v)", topic, short, timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitFenced waits until the cluster's metadata no longer lists node n:
// the controller has fenced it (broker.session.timeout.ms after a kill)
// and moved its leaderships.
func (c *kafkaCluster) waitFenced(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		listed := true
		for i, a := range c.addrs {
			if i == n-1 {
				continue
			}
			conn, err := kafka.DialContext(context.Background(), "tcp", a)
			if err != nil {
				continue
			}
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			bs, err := conn.Brokers()
			conn.Close()
			if err != nil {
				continue
			}
			listed = false
			for _, b := range bs {
				listed = listed || b.ID == n
			}
			break
		}
		if !listed {
			t.Logf("node %d fenced after %v", n, time.Since(start).Round(100*time.Millisecond))
			return
		}
		if time.Since(start) > timeout {
			t.Fatalf("node %d still in the cluster's metadata %v after it stopped", n, timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// eventsTopic is the kafka.events_topic of settings.
func eventsTopic(settings []string) string {
	for _, s := range settings {
		if v, ok := strings.CutPrefix(s, "kafka.events_topic="); ok {
			return v
		}
	}
	return ""
}

// spread is a sender target that spreads requests over ingest nodes in
// turn, skipping those that are down: the load generator of several
// ingest instances behind no load balancer. A request that a killed node
// never answered is resent, to the next node that is up.
func spread(nodes ...*node) func() string {
	var next atomic.Uint64
	return func() string {
		for range nodes {
			if a := nodes[next.Add(1)%uint64(len(nodes))].IngestAddr(); a != "" {
				return a
			}
		}
		return ""
	}
}

// metric reads one sample from the node's /metrics (on its ingest
// listener): the first line of family name whose labels contain label.
func (n *node) metric(name, label string) (float64, error) {
	addr := n.IngestAddr()
	if addr == "" {
		return 0, errNoAddr
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") || !strings.Contains(l, label) {
			continue
		}
		return strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s{%s} not in /metrics", name, label)
}

// spoolLag is the node's local-log records not yet forwarded to Kafka.
func (n *node) spoolLag() (int, error) {
	v, err := n.metric("telemetry_wal_cursor_lag", `cursor="kafka-forwarder"`)
	return int(v), err
}

// watchSpool samples n's spool lag every 200ms until stop is closed and
// returns the largest lag seen.
func watchSpool(n *node, stop <-chan struct{}) (maxLag func() int) {
	var top int
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if l, err := n.spoolLag(); err == nil {
				top = max(top, l)
			}
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return func() int { <-done; return top }
}

// waitSpoolDrained waits until n's spool has forwarded everything to
// Kafka and returns how long that took.
func waitSpoolDrained(t *testing.T, n *node, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		l, err := n.spoolLag()
		if err == nil && l == 0 {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: spool not drained %v after the cluster recovered: lag %d (%v)", n.name, timeout, l, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// answersSince is what s's answers since before were: the 2xx and the
// requests that got no answer at all (connection refused, cut, timed out).
func answersSince(s *sender, before map[int]int) (ok, unanswered int) {
	now := s.statusCounts()
	return now[200] - before[200], now[0] - before[0]
}

// chExec runs a statement that modifies (POST: a GET is read-only) on the
// ClickHouse HTTP interface at addr.
func chExec(addr, sql string) error {
	c := http.Client{Timeout: time.Minute}
	resp, err := c.Post("http://"+addr+"/", "text/plain", strings.NewReader(sql))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %d %s", sql, resp.StatusCode, b)
	}
	return nil
}

// TestClusterOneNodeDown: with the first bootstrap node killed (so every
// first dial is refused), the broker helpers still work against the two
// others: EnsureTopics on existing topics, a new `telemetry ingest` is
// ready (/readyz 200), and events are acknowledged and stored. Creating
// new replication-factor-3 topics is refused by Kafka while only two
// brokers are alive; ingest then spools until the node is back, and the
// books balance.
func TestClusterOneNodeDown(t *testing.T) {
	requireCluster(t)
	const name = "cluster-one-node-down"
	c := clusterUp(t)
	settings := c.settings(t, name)
	dir := t.TempDir()
	in := ingestNode(t, "ingest", dir, settings)
	in.start()
	in.waitReady(200, time.Minute)
	cons := consumerNodeOf(t, "consumer", dir, settings)
	cons.start()
	c.kill(t, 1)
	c.waitFenced(t, 1, time.Minute)

	// A second ingest process starting now finds the topics through node 2 or 3.
	in2 := ingestNode(t, "ingest-2", dir, settings)
	in2.start()
	in2.waitReady(200, time.Minute)
	s := newSender(t, spread(in, in2), 4, 50)
	s.pause = 10 * time.Millisecond
	s.start()
	waitAcked(t, s, 5000, time.Minute)
	if lag, err := in2.spoolLag(); err != nil || lag != 0 {
		t.Errorf("%s: ingest started with one node down spools (lag %d, %v): it should publish directly to the two others", name, lag, err)
	}

	// New topics: Kafka refuses replication factor 3 with two live brokers.
	fresh := c.settings(t, name+"-new")
	in3 := ingestNode(t, "ingest-new-topics", dir, fresh)
	in3.start()
	in3.waitReady(200, time.Minute)
	s3 := newSender(t, in3.IngestAddr, 2, 50)
	s3.pause = 10 * time.Millisecond
	s3.start()
	waitAcked(t, s3, 1000, time.Minute)
	// Whether Kafka refuses them depends on how far it has gone with the
	// killed node: fenced but still registered, it was seen to accept the
	// topics (CI run, 2026-12-01), unregistered it refuses them and ingest
	// spools. Either way nothing acknowledged may be lost: settle asserts
	// that below.
	lag, err := in3.spoolLag()
	if err != nil {
		t.Errorf("%s: reading the spool lag: %v", name, err)
	}
	t.Logf("%s: new topics with one node of three down: spool lag %d (0: Kafka created the topics)", name, lag)
	c.start(t, 1)
	cons3 := consumerNodeOf(t, "consumer-new-topics", dir, fresh)
	cons3.start()
	loadFor(2 * time.Second)
	s.finish(30 * time.Second)
	s3.finish(30 * time.Second)
	t.Logf("%s: new topics' spool drained %v after node 1 came back", name, waitSpoolDrained(t, in3, 2*time.Minute).Round(100*time.Millisecond))
	settle(t, name, cons.ClickHouseAddr(), s)
	settle(t, name+"-new-topics", cons3.ClickHouseAddr(), s3)
}

// loadedServe starts the cluster and an all-in-one `telemetry serve` of
// scenario name on it, and a sender that keeps it under load (4 workers,
// 50 events a batch, 10ms apart); it returns once 5000 events are
// acknowledged, with the scenario's events topic.
func loadedServe(t *testing.T, name string) (*kafkaCluster, *node, *sender, string) {
	t.Helper()
	c := clusterUp(t)
	settings := c.settings(t, name)
	n := newNode(t, "serve", filepath.Join(t.TempDir(), "data"), chaosArgs("serve", settings...)...)
	n.start()
	n.waitReady(200, time.Minute)
	s := newSender(t, n.IngestAddr, 4, 50)
	s.pause = 10 * time.Millisecond
	s.start()
	waitAcked(t, s, 5000, time.Minute)
	loadFor(time.Second)
	return c, n, s, eventsTopic(settings)
}

// settleAfterFault waits, once the cluster is whole again, until n's spool
// has drained (returning how long that took) and every replica of topic is
// in sync, keeps the load on 2s more, then stops the sender and settles
// the books.
func settleAfterFault(t *testing.T, name string, c *kafkaCluster, n *node, s *sender, topic string) time.Duration {
	t.Helper()
	drained := waitSpoolDrained(t, n, 2*time.Minute)
	c.waitInSync(t, topic, 2*time.Minute)
	loadFor(2 * time.Second)
	s.finish(30 * time.Second)
	settle(t, name, n.ClickHouseAddr(), s)
	return drained
}

// TestClusterLeaderLoss: all-in-one on the cluster under load; the node
// that leads most partitions is SIGKILLed. Until the controller fences it
// (broker.session.timeout.ms, 9s) its partitions have no reachable leader;
// ingest must keep answering (2xx from the spool, or 503) and every
// acknowledged event must land once.
func TestClusterLeaderLoss(t *testing.T) {
	requireCluster(t)
	const name = "cluster-leader-loss"
	c, n, s, topic := loadedServe(t, name)

	leader, led := c.mostLeader(t, topic)
	before := s.statusCounts()
	stop := make(chan struct{})
	maxLag := watchSpool(n, stop)
	killed := time.Now()
	c.kill(t, leader)
	c.waitFenced(t, leader, time.Minute)
	loadFor(3 * time.Second)
	ok, unanswered := answersSince(s, before)
	c.start(t, leader)
	close(stop)
	drained := settleAfterFault(t, name, c, n, s, topic)
	t.Logf("%s: node %d (leader of %d/%d partitions) killed; %v until it was back: %d answers 2xx, %d unanswered, spool lag up to %d, drained %v after",
		name, leader, led, clusterPartitions, time.Since(killed).Round(100*time.Millisecond), ok, unanswered, maxLag(), drained.Round(100*time.Millisecond))
	if unanswered > 0 {
		t.Errorf("%s: %d requests got no answer while the leader was lost: ingest must answer 2xx or 503", name, unanswered)
	}
	if ok == 0 {
		t.Errorf("%s: no request acknowledged while the leader was lost: the spool should take them", name)
	}
}

// TestClusterRollingRestart: the three nodes are restarted one after the
// other (graceful stop, start, wait until every replica is in sync again)
// under load; every acknowledged event lands once and ingest answers every
// request.
func TestClusterRollingRestart(t *testing.T) {
	requireCluster(t)
	const name = "cluster-rolling-restart"
	c, n, s, topic := loadedServe(t, name)
	before := s.statusCounts()
	for id := 1; id <= 3; id++ {
		c.stop(t, id)
		loadFor(time.Second)
		c.start(t, id)
		c.waitInSync(t, topic, 2*time.Minute)
		waitAcked(t, s, s.acknowledged(), 30*time.Second)
	}
	_, unanswered := answersSince(s, before)
	settleAfterFault(t, name, c, n, s, topic)
	if unanswered > 0 {
		t.Errorf("%s: %d requests got no answer during the rolling restart", name, unanswered)
	}
}

// TestClusterBelowMinISR: two of the three nodes are stopped under load,
// which leaves every partition below min.insync.replicas (and the
// controller quorum lost). Kafka refuses acks=all writes then; ingest must
// not acknowledge from Kafka what only one replica holds: it spools to the
// local log (the spool lag must grow) or answers 503. After the nodes
// return the spool drains and every acknowledged event lands once.
func TestClusterBelowMinISR(t *testing.T) {
	requireCluster(t)
	const name = "cluster-below-min-isr"
	c, n, s, topic := loadedServe(t, name)

	before := s.statusCounts()
	stop := make(chan struct{})
	maxLag := watchSpool(n, stop)
	c.stop(t, 2)
	c.stop(t, 3)
	loadFor(5 * time.Second)
	ok, unanswered := answersSince(s, before)
	c.start(t, 2)
	c.start(t, 3)
	close(stop)
	drained := settleAfterFault(t, name, c, n, s, topic)
	lag := maxLag()
	t.Logf("%s: with two nodes down: %d answers 2xx, %d unanswered, spool lag up to %d; drained %v after they were back",
		name, ok, unanswered, lag, drained.Round(100*time.Millisecond))
	if lag == 0 {
		t.Errorf("%s: the spool never held an event while two of three nodes were down: what did acknowledge them?", name)
	}
	if unanswered > 0 {
		t.Errorf("%s: %d requests got no answer while below min ISR", name, unanswered)
	}
}

// TestClusterConsumerGroupChurn: three `telemetry consume` processes share
// one group over 12 partitions, inserting into one engine (a `telemetry
// serve` with only the embedded ClickHouse) while `telemetry ingest` takes
// the load. One consumer is SIGKILLed (likely mid-batch: inserts run
// most of the time under this load), a fourth joins, another stops
// gracefully: three rebalances during inserts. Then no two rows may share
// a (topic, partition, offset) and each event_id must be one row, without
// FINAL (settle checks both).
func TestClusterConsumerGroupChurn(t *testing.T) {
	requireCluster(t)
	const name = "cluster-consumer-churn"
	c := clusterUp(t)
	settings := c.settings(t, name)
	dir := t.TempDir()
	engine := newNode(t, "engine", filepath.Join(dir, "engine"), chaosArgs("serve", "serve.ingest=false", "serve.consumer=false", "admin.enabled=false")...)
	engine.start()
	// No merges until the books are counted: ReplacingMergeTree would
	// collapse a row inserted twice and hide it from the counts.
	if err := chExec(engine.ClickHouseAddr(), "SYSTEM STOP MERGES telemetry.events"); err != nil {
		t.Fatalf("stopping merges: %v", err)
	}
	in := ingestNode(t, "ingest", dir, settings)
	in.start()
	in.waitReady(200, time.Minute)
	consumer := func(i int) *node {
		return newNode(t, fmt.Sprintf("consume-%d", i), filepath.Join(dir, fmt.Sprintf("consume-%d", i)), chaosArgs("consume",
			append(settings, "embedded.enabled=false", "clickhouse.protocol=http", "clickhouse.addr="+engine.ClickHouseAddr(),
				"admin.listen=127.0.0.1:0")...)...)
	}
	cs := []*node{consumer(1), consumer(2), consumer(3), consumer(4)}
	for _, cn := range cs[:3] {
		cn.start()
	}
	s := newSender(t, in.IngestAddr, 4, 50)
	s.pause = 5 * time.Millisecond
	s.start()
	rnd := rand.New(rand.NewPCG(s.seed, 16))
	waitStored(t, engine, 5000, time.Minute)
	loadFor(time.Second + time.Duration(rnd.Int64N(int64(2*time.Second))))
	cs[0].kill()
	t.Logf("%s: consume-1 killed", name)
	loadFor(2*time.Second + time.Duration(rnd.Int64N(int64(2*time.Second))))
	cs[3].start()
	t.Logf("%s: consume-4 started", name)
	loadFor(3*time.Second + time.Duration(rnd.Int64N(int64(2*time.Second))))
	cs[1].stop()
	t.Logf("%s: consume-2 stopped gracefully", name)
	loadFor(3 * time.Second)
	s.finish(30 * time.Second)
	o := settle(t, name, engine.ClickHouseAddr(), s)
	if o.rawCopies > 0 || o.rollupCopies > 0 {
		rows, err := chQuery(engine.ClickHouseAddr(), "SELECT toString(event_id), any(user_id), any(anonymous_id), groupArray((kafka_partition, kafka_offset)) "+
			"FROM telemetry.events GROUP BY event_id HAVING count() > 1 LIMIT 10")
		t.Logf("%s: event_ids stored more than once, with their bus positions (%v):\n%s", name, err, rows)
	}
}

// TestClusterIngestLoss: two `telemetry ingest` processes take the load,
// spread over both by the sender; one is SIGKILLed, and the sender resends
// what it did not answer to the other. The killed one is started again on
// its data directory (its spool, if it held anything, drains then). Every
// acknowledged event lands once.
func TestClusterIngestLoss(t *testing.T) {
	requireCluster(t)
	const name = "cluster-ingest-loss"
	c := clusterUp(t)
	settings := c.settings(t, name)
	dir := t.TempDir()
	in1, in2 := ingestNode(t, "ingest-1", dir, settings), ingestNode(t, "ingest-2", dir, settings)
	in1.start()
	in2.start()
	in1.waitReady(200, time.Minute)
	in2.waitReady(200, time.Minute)
	cons := consumerNodeOf(t, "consumer", dir, settings)
	cons.start()
	s := newSender(t, spread(in1, in2), 8, 50)
	s.pause = 5 * time.Millisecond
	s.start()
	rnd := rand.New(rand.NewPCG(s.seed, 17))
	waitAcked(t, s, 5000, time.Minute)
	loadFor(time.Second + time.Duration(rnd.Int64N(int64(2*time.Second))))
	before := s.statusCounts()
	in1.kill()
	acked := s.acknowledged()
	loadFor(3 * time.Second)
	ok, unanswered := answersSince(s, before)
	if s.acknowledged()-acked < 1000 {
		t.Errorf("%s: only %d events acknowledged in 3s with one ingest of two killed", name, s.acknowledged()-acked)
	}
	in1.start()
	loadFor(2 * time.Second)
	s.finish(30 * time.Second)
	waitSpoolDrained(t, in1, 2*time.Minute)
	settle(t, name, cons.ClickHouseAddr(), s)
	t.Logf("%s: after the kill: %d answers 2xx, %d requests cut off or refused (resent to the other instance)", name, ok, unanswered)
}
