package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sora3web/telemetry/bus/broker"
	"github.com/sora3web/telemetry/internal/testenv"
)

// enableEnv must be 1 for the tests to run (mk/chaos.mk sets it): they take
// minutes and stop a Kafka broker, which a plain `go test ./...` should not.
const enableEnv = "TELEMETRY_CHAOS"

// kafkaPortEnv overrides the port of the chaos tests' private broker.
const kafkaPortEnv = "CHAOS_KAFKA_PORT"

// defaultKafkaPort is the private broker's port: not the shared 9092, so
// stopping it never disturbs other tests that use the shared broker.
const defaultKafkaPort = "19092"

var (
	// summary collects every scenario's figures, printed again at the end.
	summary   []string
	summaryMu sync.Mutex
	// startedBroker records whether this process started the private
	// broker (then TestMain stops it again).
	startedBroker bool
)

// TestMain points testenv's Kafka helpers at a private broker port, runs
// the scenarios, prints their figures together and stops the private
// broker if this run started it.
func TestMain(m *testing.M) {
	port := os.Getenv(kafkaPortEnv)
	if port == "" {
		port = defaultKafkaPort
	}
	os.Setenv("KAFKA_PORT", port)
	os.Unsetenv("KAFKA_CONTROLLER_PORT")
	os.Unsetenv("KAFKA_DATA")
	clusterPort := os.Getenv(clusterPortEnv)
	if clusterPort == "" {
		clusterPort = defaultClusterPort
	}
	os.Setenv("KAFKA_CLUSTER_PORT", clusterPort)
	// The tests stop and start the broker themselves: never use external ones.
	os.Unsetenv(testenv.KafkaBrokersEnv)
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	if len(summary) > 0 {
		fmt.Println("chaos summary:")
		for _, l := range summary {
			fmt.Println("  " + l)
		}
	}
	stopCluster()
	if startedBroker {
		if root, err := testenv.RepoRoot(); err == nil {
			out, err := exec.Command("bash", filepath.Join(root, "scripts", "kafka.sh"), "down").CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "stopping the private broker: %v\n%s", err, out)
			}
		}
	}
	os.Exit(code)
}

// seedEnv fixes the random seed of every scenario (kill moments, sender
// events) to replay a run; each scenario logs the seed it used.
const seedEnv = "CHAOS_SEED"

// scenarioSeed is the seed of t's randomness: CHAOS_SEED, else the clock.
// It is logged, so any run can be replayed.
func scenarioSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(seedEnv); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", seedEnv, v, err)
		}
		seed = n
	}
	t.Logf("random seed %d (replay with %s=%d)", seed, seedEnv, seed)
	return seed
}

// requireChaos skips t unless the chaos tests are enabled.
func requireChaos(t *testing.T) {
	t.Helper()
	if os.Getenv(enableEnv) != "1" {
		t.Skipf("fault tests run with %s=1 (make chaos)", enableEnv)
	}
}

// report prints a scenario's figures and keeps them for the summary.
func report(t *testing.T, line string) {
	t.Helper()
	fmt.Println(line)
	summaryMu.Lock()
	summary = append(summary, line)
	summaryMu.Unlock()
}

var built struct {
	once sync.Once
	path string
	err  error
	dir  string
}

// binary builds ./cmd/telemetry once per test process and returns its path.
func binary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		root, err := testenv.RepoRoot()
		if err != nil {
			built.err = err
			return
		}
		if built.dir, err = os.MkdirTemp("", "chaos-bin-"); err != nil {
			built.err = err
			return
		}
		built.path = filepath.Join(built.dir, "telemetry")
		cmd := exec.Command("go", "build", "-o", built.path, "./cmd/telemetry")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build ./cmd/telemetry: %w\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

var kafkaOnce sync.Once

// kafkaBrokers starts (or finds) the private broker and returns its
// address. It records whether this process started it.
func kafkaBrokers(t *testing.T) string {
	t.Helper()
	kafkaOnce.Do(func() {
		root, err := testenv.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		err = exec.Command("bash", filepath.Join(root, "scripts", "kafka.sh"), "status").Run()
		startedBroker = err != nil
	})
	return testenv.Kafka(t)[0]
}

// brokerDown stops the private broker and makes sure it is started again
// when the test ends, whatever happens: the next scenarios need it.
func brokerDown(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { testenv.KafkaScript(t, "up") })
	start := time.Now()
	testenv.KafkaScript(t, "down")
	t.Logf("broker stopped in %v", time.Since(start).Round(time.Millisecond))
}

// brokerUp starts the private broker again.
func brokerUp(t *testing.T) {
	t.Helper()
	start := time.Now()
	testenv.KafkaScript(t, "up")
	t.Logf("broker started in %v", time.Since(start).Round(time.Millisecond))
}

// kafkaSettings are the --set values of a Kafka-bus node of scenario name:
// the private broker and topics and a consumer group of its own (unique
// per run), deleted again when the test ends.
func kafkaSettings(t *testing.T, name string) []string {
	t.Helper()
	return busSettings(t, name, kafkaBrokers(t))
}

// busSettings are kafkaSettings on brokers (comma-separated), the single
// private broker or the private cluster's nodes.
func busSettings(t *testing.T, name, brokers string) []string {
	t.Helper()
	id := fmt.Sprintf("chaos-%s-%d", name, time.Now().UnixNano())
	events, dead := id+".events", id+".dead-letters"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := broker.DeleteTopics(ctx, strings.Split(brokers, ","), events, dead); err != nil {
			t.Logf("deleting topics: %v", err)
		}
	})
	return []string{"bus=kafka", "kafka.brokers=" + brokers, "kafka.events_topic=" + events,
		"kafka.dead_letter_topic=" + dead, "consumer.group_id=" + id}
}

// deleteTopics removes a scenario's topics, best effort (the private
// broker's data is otherwise kept for a day).
func deleteTopics(t *testing.T, broker string, topics ...string) {
	conn, err := kafka.Dial("tcp", broker)
	if err != nil {
		t.Logf("deleting topics: %v", err)
		return
	}
	defer conn.Close()
	c, err := conn.Controller()
	if err != nil {
		t.Logf("deleting topics: %v", err)
		return
	}
	ctrl, err := kafka.Dial("tcp", net.JoinHostPort(c.Host, strconv.Itoa(c.Port)))
	if err != nil {
		t.Logf("deleting topics: %v", err)
		return
	}
	defer ctrl.Close()
	if err := ctrl.DeleteTopics(topics...); err != nil {
		t.Logf("deleting topics %v: %v", topics, err)
	}
}

// node is one telemetry child process with a fixed command line and data
// directory. It can be killed and started again on the same data, which is
// what the scenarios do to it. Every node is killed when its test ends.
type node struct {
	t       *testing.T
	name    string
	args    []string // subcommand and flags, without data_dir
	dataDir string
	logPath string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	ingest  string // ingest address of the current run, "" if none
	ch      string // embedded ClickHouse HTTP address of the current run
	admin   string // privacy admin API address of the current run
	starts  int
	maxRSS  int64 // bytes, over every run, sampled by sampleRSS
}

// newNode prepares a node; it does not start it. dataDir may be shared with
// an earlier node (a restart with other flags).
func newNode(t *testing.T, name, dataDir string, args ...string) *node {
	t.Helper()
	n := &node{t: t, name: name, args: args, dataDir: dataDir,
		logPath: filepath.Join(logsDir(t), name+".log")}
	t.Cleanup(func() {
		if n.running() {
			n.kill()
		}
		if t.Failed() {
			t.Logf("%s: last lines of %s:\n%s", name, n.logPath, n.logTail())
		}
	})
	return n
}

var logDirs sync.Map // *testing.T -> string

// logsDir is a directory for t's process logs, outside t.TempDir so that
// it survives a failed test (it is removed when the test passes).
func logsDir(t *testing.T) string {
	t.Helper()
	if d, ok := logDirs.Load(t); ok {
		return d.(string)
	}
	d, err := os.MkdirTemp("", "chaos-"+strings.ReplaceAll(t.Name(), "/", "_")+"-")
	if err != nil {
		t.Fatal(err)
	}
	logDirs.Store(t, d)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("process logs kept in %s", d)
		} else {
			os.RemoveAll(d)
		}
	})
	return d
}

// chaosArgs are the flags every child gets: free ports chosen by the
// kernel for every listener (read back from its log), a fast consumer batch, a 1s Retry-After
// and a short graceful-shutdown bound; extra are more --set key=value.
func chaosArgs(sub string, extra ...string) []string {
	args := []string{sub, "--listen", "127.0.0.1:0",
		"--set", "embedded.listen=127.0.0.1:0",
		"--set", "consumer.batch_interval=200ms",
		// The consumer's counts inserted every 5 s, not the default 30 s:
		// auditSettled waits 30 s for them while the pipeline runs.
		"--set", "audit.flush_interval=5s",
		"--set", "ingest.retry_after=1s",
		"--set", "log.format=json",
		"--set", "serve.shutdown_timeout=15s",
		"--set", "serve.metrics_listen=127.0.0.1:0",
		"--set", "dashboard.listen=127.0.0.1:0",
		// The admin API too: two chaos runs on one machine (with their own
		// CHAOS_KAFKA_PORT) must not collide on the default 8081.
		"--set", "admin.listen=127.0.0.1:0",
	}
	for _, e := range extra {
		args = append(args, "--set", e)
	}
	return args
}

func (n *node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// start runs the process and waits until its pipeline has started (the
// "pipeline started" log line); it fails the test if the process exits
// first or takes longer than a minute.
func (n *node) start() {
	n.t.Helper()
	if err := n.tryStart(); err != nil {
		n.t.Fatal(err)
	}
}

// tryStart is start returning the failure instead of failing the test.
func (n *node) tryStart() error {
	n.t.Helper()
	if n.running() {
		return fmt.Errorf("%s: start while running", n.name)
	}
	args := append(append([]string{}, n.args...), "--set", "data_dir="+n.dataDir)
	cmd := exec.Command(binary(n.t), args...)
	cmd.Dir = filepath.Dir(n.dataDir) // no telemetry.yaml there
	cmd.Env = testenv.ChildEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.t.Fatal(err)
	}
	fmt.Fprintf(logf, "=== start %d: %s %s\n", n.starts+1, filepath.Base(cmd.Path), strings.Join(args, " "))
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = logf, pw
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("%s: %w", n.name, err)
	}
	exited := make(chan struct{})
	started := make(chan struct{})
	n.mu.Lock()
	n.cmd, n.exited, n.ingest, n.ch, n.admin, n.waitErr = cmd, exited, "", "", "", nil
	n.starts++
	n.mu.Unlock()
	go func() {
		err := cmd.Wait()
		pw.Close()
		n.mu.Lock()
		n.waitErr = err
		n.mu.Unlock()
		close(exited)
	}()
	go func() {
		defer logf.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Bytes()
			fmt.Fprintf(logf, "%s\n", line)
			var l struct{ Msg, Addr, Admin string }
			if json.Unmarshal(line, &l) != nil {
				continue
			}
			n.mu.Lock()
			switch l.Msg {
			case "ingest listening":
				n.ingest = l.Addr
			case "embedded ClickHouse serving":
				n.ch = l.Addr
			case "privacy registry loaded":
				n.admin = l.Admin
			}
			n.mu.Unlock()
			if l.Msg == "pipeline started" {
				once.Do(func() { close(started) })
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case <-started:
		return nil
	case <-exited:
		return fmt.Errorf("%s: exited during start: %v (log: %s)\n%s", n.name, n.exitErr(), n.logPath, n.logTail())
	case <-time.After(time.Minute):
		n.kill()
		return fmt.Errorf("%s: not started after 1m (log: %s)", n.name, n.logPath)
	}
}

// kill sends SIGKILL and waits until the process is gone.
func (n *node) kill() {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// stop sends SIGTERM and waits for a clean exit (status 0) within a
// minute; anything else fails the test.
func (n *node) stop() {
	n.t.Helper()
	if err := n.tryStop(); err != nil {
		n.t.Error(err)
	}
}

// tryStop is stop returning the failure instead of failing the test; a
// process still running a minute after SIGTERM is killed.
func (n *node) tryStop() error {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(time.Minute):
		n.kill()
		return fmt.Errorf("%s: no exit 1m after SIGTERM\n%s", n.name, n.logTail())
	}
	if err := n.exitErr(); err != nil {
		return fmt.Errorf("%s: graceful stop: %w\n%s", n.name, err, n.logTail())
	}
	return nil
}

func (n *node) exitErr() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.waitErr
}

// IngestAddr is the current run's ingest address ("" while down).
func (n *node) IngestAddr() string {
	if !n.running() {
		return ""
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ingest
}

// ClickHouseAddr is the current run's embedded ClickHouse address.
func (n *node) ClickHouseAddr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

// AdminAddr is the current run's privacy admin API address.
func (n *node) AdminAddr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.admin
}

// pid is the current process id, 0 if none.
func (n *node) pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// rss returns the process's resident set size in bytes (0 if unknown).
func (n *node) rss() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.pid()))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// sampleRSS records the process's maximum RSS every 100ms until ctx ends.
func (n *node) sampleRSS(ctx context.Context) {
	go func() {
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			if r := n.rss(); r > 0 {
				n.mu.Lock()
				n.maxRSS = max(n.maxRSS, r)
				n.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
		}
	}()
}

// MaxRSS is the largest RSS sampled so far.
func (n *node) MaxRSS() int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.maxRSS
}

// ready returns the status of GET /readyz (0 when it does not answer).
func (n *node) ready() int {
	addr := n.IngestAddr()
	if addr == "" {
		return 0
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitReady waits up to d for /readyz to answer want.
func (n *node) waitReady(want int, d time.Duration) {
	n.t.Helper()
	deadline := time.Now().Add(d)
	for {
		got := n.ready()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s: /readyz = %d after %v, want %d", n.name, got, d, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (n *node) logTail() string {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return ""
	}
	return tail(string(b), 15)
}

func tail(s string, lines int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(ls[max(0, len(ls)-lines):], "\n")
}

// errNoAddr means a node has no address to talk to right now.
var errNoAddr = errors.New("node is down")
