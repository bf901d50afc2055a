package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sora3web/telemetry/collector"
	"github.com/sora3web/telemetry/internal/config"
	"github.com/sora3web/telemetry/internal/gen"
	"github.com/sora3web/telemetry/internal/privacy"
	"github.com/sora3web/telemetry/internal/testenv"
	"github.com/sora3web/telemetry/schema"
)

// Environment of TestRandomHistories.
const (
	// historySeedEnv fixes the first history's seed (history i has seed+i).
	historySeedEnv = "CHAOS_HISTORY_SEED"
	// historyBudgetEnv bounds the time spent on new random histories
	// (a Go duration; default defaultHistoryBudget).
	historyBudgetEnv = "CHAOS_HISTORY_BUDGET"
	// historyCountEnv runs exactly this many random histories, whatever
	// the budget (how "200 in a row" is run).
	historyCountEnv = "CHAOS_HISTORY_COUNT"
	// historyFileEnv replays one script (as printed on a failure) instead.
	historyFileEnv = "CHAOS_HISTORY_FILE"
)

// defaultHistoryBudget is the time `make chaos` gives new random histories.
const defaultHistoryBudget = 5 * time.Minute

// historiesDir holds the histories that once failed: each is replayed on
// every run, before the random ones.
const historiesDir = "testdata/histories"

// Operations of a history, one per script line.
const (
	opStart         = "start"          // start log|kafka: telemetry serve on that bus
	opStop          = "stop"           // SIGTERM, must exit 0
	opKill          = "kill"           // SIGKILL
	opPost          = "post"           // post user=U|* n=N bad=B resend=R: one request
	opDelete        = "delete"         // delete user=U: the admin API's erasure
	opBrokerStop    = "broker-stop"    // stop the Kafka broker
	opBrokerStart   = "broker-start"   // start it again
	opEngineRestart = "engine-restart" // SIGKILL the ClickHouse engine's process, start it again
	opDiskFill      = "disk-fill"      // fill the local log's filesystem
	opDiskFree      = "disk-free"      // free it again
	opWait          = "wait"           // let a second pass (the consumer catches up)
)

// op is one step of a history.
type op struct {
	kind string
	bus  string // start: log or kafka
	user string // post, delete
	// post: n new valid events, bad invalid ones, resend earlier events
	// again (same event_id and body, as a client retrying).
	n, bad, resend int
}

func (o op) String() string {
	switch o.kind {
	case opStart:
		return o.kind + " " + o.bus
	case opPost:
		return fmt.Sprintf("%s user=%s n=%d bad=%d resend=%d", o.kind, o.user, o.n, o.bad, o.resend)
	case opDelete:
		return fmt.Sprintf("%s user=%s", o.kind, o.user)
	}
	return o.kind
}

// parseOp reads one script line.
func parseOp(line string) (op, error) {
	f := strings.Fields(line)
	o := op{kind: f[0]}
	switch o.kind {
	case opStart:
		if len(f) != 2 || (f[1] != "log" && f[1] != "kafka") {
			return o, fmt.Errorf("%q: want start log|kafka", line)
		}
		o.bus = f[1]
	case opPost, opDelete:
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			if k == "user" {
				o.user = v
				continue
			}
			n, err := strconv.Atoi(v)
			if err != nil {
				return o, fmt.Errorf("%q: %s: %w", line, k, err)
			}
			switch k {
			case "n":
				o.n = n
			case "bad":
				o.bad = n
			case "resend":
				o.resend = n
			default:
				return o, fmt.Errorf("%q: unknown field %s", line, k)
			}
		}
		if o.user == "" {
			return o, fmt.Errorf("%q: user= required", line)
		}
	case opStop, opKill, opBrokerStop, opBrokerStart, opEngineRestart, opDiskFill, opDiskFree, opWait:
		if len(f) != 1 {
			return o, fmt.Errorf("%q: %s takes no argument", line, o.kind)
		}
	default:
		return o, fmt.Errorf("%q: unknown operation", line)
	}
	return o, nil
}

// history is a replayable run: the seed of its event contents and its ops.
type history struct {
	seed uint64
	ops  []op
}

// partitions is the events topic's partition count in h: one for odd
// seeds (every Kafka event on partition 0, where the local log's records
// also claim partition 0), four for even ones (users spread out).
func (h history) partitions() int {
	if h.seed%2 == 1 {
		return 1
	}
	return 4
}

// script renders h as the text parseHistory reads.
func (h history) script() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d\n", h.seed)
	for _, o := range h.ops {
		b.WriteString(o.String() + "\n")
	}
	return b.String()
}

// parseHistory reads a script: "seed N", then one op per line; blank lines
// and lines starting with # are ignored.
func parseHistory(text string) (history, error) {
	var h history
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if v, ok := strings.CutPrefix(line, "seed "); ok {
			s, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return h, fmt.Errorf("seed: %w", err)
			}
			h.seed = s
			continue
		}
		o, err := parseOp(line)
		if err != nil {
			return h, err
		}
		h.ops = append(h.ops, o)
	}
	return h, sc.Err()
}

// sim is what the generator and the executor know of the world between
// ops; it decides which ops can run.
type sim struct {
	serveUp, brokerDown, diskFull bool
	bus                           string
}

// allows reports whether o can run in state s; the executor skips ops
// that cannot (a shrunk history may have lost the op that made one valid).
func (s sim) allows(o op) bool {
	switch o.kind {
	case opStart:
		return !s.serveUp
	case opStop, opKill, opPost, opDelete:
		return s.serveUp
	case opBrokerStop:
		return !s.brokerDown
	case opBrokerStart:
		return s.brokerDown
	case opDiskFill:
		return !s.diskFull
	case opDiskFree:
		return s.diskFull
	}
	return true
}

// apply moves s past o.
func (s *sim) apply(o op) {
	switch o.kind {
	case opStart:
		s.serveUp, s.bus = true, o.bus
	case opStop, opKill:
		s.serveUp = false
	case opBrokerStop:
		s.brokerDown = true
	case opBrokerStart:
		s.brokerDown = false
	case opDiskFill:
		s.diskFull = true
	case opDiskFree:
		s.diskFull = false
	}
}

// historyUsers are the data subjects of a history: few, so deletions hit
// events that were posted, and new events follow them.
// Their keys fall on the four partitions of a default topic (kafka-go's
// Hash: u0 0, u1 3, u2 2, u3 1).
var historyUsers = []string{"u0", "u1", "u2", "u3"}

// anyUser as a post's user spreads its events over every user, as a
// server-side batch does.
const anyUser = "*"

// generate makes a random valid history of 10 to 21 ops from seed, about
// half of them posts. A
// broker stop or a full disk is an episode: its recovery follows within
// one to three ops, so most of a history runs with the parts up (a long
// full disk only answers 503). Broker stops cost seconds each, so only a
// third of the histories have them.
func generate(seed uint64) history {
	r := rand.New(rand.NewPCG(seed, 0x4849))
	h := history{seed: seed}
	var s sim
	length := 10 + r.IntN(11)
	brokerOps := r.IntN(3) == 0
	buses := []string{"log", "kafka"}
	recover := map[string]int{} // recovery op -> ops left before it
	for len(h.ops) < length {
		var o op
		user := historyUsers[r.IntN(len(historyUsers))]
		for _, kind := range []string{opDiskFree, opBrokerStart} { // a fixed order: the seed decides all
			if left, ok := recover[kind]; ok && left <= 0 {
				o = op{kind: kind}
				delete(recover, kind)
				break
			}
		}
		switch w := r.IntN(100); {
		case o.kind != "":
		case !s.serveUp && w < 90:
			o = op{kind: opStart, bus: buses[r.IntN(2)]}
			if s.bus != "" && r.IntN(10) < 6 { // switch more often than not: switches found defects
				o.bus = buses[1-slices.Index(buses, s.bus)]
			}
		case !s.serveUp:
			o = op{kind: []string{opEngineRestart, opDiskFill, opBrokerStop}[r.IntN(3)]}
		case w < 8:
			o = op{kind: opWait}
		case w < 63:
			o = op{kind: opPost, user: user, n: 1 + r.IntN(30)}
			if r.IntN(2) == 0 {
				o.user = anyUser
			}
			if r.IntN(4) == 0 {
				o.bad = 1 + r.IntN(3)
			}
			if r.IntN(4) == 0 {
				o.resend = 1 + r.IntN(5)
			}
		case w < 70:
			o = op{kind: opKill}
		case w < 78:
			o = op{kind: opStop}
		case w < 86:
			o = op{kind: opDelete, user: user}
		case w < 92:
			o = op{kind: opEngineRestart}
		case w < 97:
			o = op{kind: opDiskFill}
		default:
			o = op{kind: opBrokerStop}
		}
		if o.kind == opBrokerStop && !brokerOps {
			continue
		}
		if !s.allows(o) {
			continue
		}
		for kind := range recover {
			recover[kind]--
		}
		switch o.kind {
		case opDiskFill:
			recover[opDiskFree] = 1 + r.IntN(3)
		case opBrokerStop:
			recover[opBrokerStart] = 1 + r.IntN(3)
		}
		if o.kind == opStop && r.IntN(2) == 0 {
			h.ops = append(h.ops, op{kind: opWait}) // a stop after a quiet second, as most are
		}
		s.apply(o)
		h.ops = append(h.ops, o)
	}
	return h
}

// send is one time an event went out in a request.
type send struct {
	step  int
	acked bool // 2xx and counted accepted; else 503 or no answer: maybe stored
}

// sentEvent is the books of one event_id.
type sentEvent struct {
	ev    schema.Event
	user  string
	bad   bool // invalid: must be rejected, never stored
	sends []send
}

// world runs one history: the processes, the books and the violations.
type world struct {
	t      *testing.T
	h      history
	dir    string
	chPort string
	walFS  string // mount point of the local log's tmpfs ("" if none)
	engine *node
	serve  map[string]*node // by bus, on one data directory
	sim    sim
	gen    *gen.Generator
	rnd    *rand.Rand
	events map[string]*sentEvent
	order  []string         // event_ids in the order first sent
	dels   map[string][]int // user -> steps of deletions
	notes  []string         // what happened, for the report
	bad    []string         // invariant violations
	client *http.Client
}

// violation records a broken invariant.
func (w *world) violation(format string, args ...any) {
	w.bad = append(w.bad, fmt.Sprintf(format, args...))
}

// freePort returns a TCP port free right now on the loopback.
func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// newWorld prepares the processes of one history run: the engine (`serve`
// with only the embedded ClickHouse and migrations, on a fixed port so its
// restarts keep the address) and a serve node per bus on one data
// directory, writing to that engine. The local log lives on a 32 MiB
// tmpfs when mounting is permitted, so disk-fill means ENOSPC.
func newWorld(t *testing.T, h history) *world {
	dir, err := os.MkdirTemp("", "chaos-history-")
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, h: h, dir: dir, chPort: freePort(t), serve: map[string]*node{},
		gen: gen.New(h.seed, 50), rnd: rand.New(rand.NewPCG(h.seed, 7)),
		events: map[string]*sentEvent{}, dels: map[string][]int{},
		client: &http.Client{Timeout: 30 * time.Second}}
	w.gen.Now = time.Now
	t.Cleanup(func() { w.close() })
	walDir := filepath.Join(dir, "data", "wal")
	mnt := filepath.Join(dir, "walfs")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", mnt).CombinedOutput(); err == nil {
		w.walFS, walDir = mnt, filepath.Join(mnt, "wal")
	} else {
		w.notes = append(w.notes, fmt.Sprintf("no tmpfs (%v: %s): disk-fill and disk-free do nothing", err, bytes.TrimSpace(out)))
	}
	w.engine = newNode(t, "engine", filepath.Join(dir, "engine"), chaosArgs("serve", "serve.ingest=false", "serve.consumer=false",
		"admin.enabled=false", "embedded.listen=127.0.0.1:"+w.chPort)...)
	// The default topics, as a deployment has them (a defect once hid
	// behind the default name), made afresh for each history.
	broker := kafkaBrokers(t)
	defaults := config.Default().Kafka
	freshTopics(t, broker, defaults.EventsTopic, defaults.DeadLetterTopic)
	group := fmt.Sprintf("history-%d-%d", h.seed, time.Now().UnixNano())
	for _, bus := range []string{"log", "kafka"} {
		settings := []string{"embedded.enabled=false", "clickhouse.protocol=http", "clickhouse.addr=127.0.0.1:" + w.chPort,
			"serve.migrate=false", "admin.listen=127.0.0.1:0", "wal.dir=" + walDir, "consumer.session_timeout=6s",
			"kafka.brokers=" + broker, "consumer.group_id=" + group, "bus=" + bus,
			"kafka.partitions=" + strconv.Itoa(h.partitions())}
		w.serve[bus] = newNode(t, "serve-"+bus, filepath.Join(dir, "data"), chaosArgs("serve", settings...)...)
	}
	return w
}

// freshTopics deletes topics and waits until the broker no longer knows
// them, so the next start creates them empty.
func freshTopics(t *testing.T, broker string, topics ...string) {
	deleteTopics(t, broker, topics...)
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := kafka.Dial("tcp", broker)
		if err != nil {
			t.Fatalf("dialing the broker: %v", err)
		}
		parts, err := conn.ReadPartitions(topics...)
		conn.Close()
		if len(parts) == 0 || errors.Is(err, kafka.UnknownTopicOrPartition) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("topics %v still there 30s after their deletion (%d partitions, %v)", topics, len(parts), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// close kills what runs, frees the disk, unmounts the tmpfs and removes
// the directory (kept when the test failed).
func (w *world) close() {
	if w.sim.brokerDown { // a history that stopped early leaves the broker as it found it
		testenv.KafkaScript(w.t, "up")
	}
	for _, n := range append([]*node{w.engine}, w.serve["log"], w.serve["kafka"]) {
		if n != nil && n.running() {
			n.kill()
		}
	}
	if w.walFS != "" {
		if out, err := exec.Command("umount", "-l", w.walFS).CombinedOutput(); err != nil {
			w.t.Logf("umount %s: %v: %s", w.walFS, err, out)
		}
	}
	if !w.t.Failed() {
		os.RemoveAll(w.dir)
	}
}

// current is the running serve node (nil when none runs).
func (w *world) current() *node {
	if !w.sim.serveUp {
		return nil
	}
	return w.serve[w.sim.bus]
}

// run executes the history and then checks its invariants; it returns the
// violations found.
func (w *world) run() []string {
	t := w.t
	if err := w.engine.tryStart(); err != nil {
		t.Fatalf("engine: %v", err)
	}
	for step, o := range w.h.ops {
		if !w.sim.allows(o) {
			continue // a shrunk history lost what made o possible
		}
		if w.do(step, o) {
			w.sim.apply(o)
		}
		if len(w.bad) > 0 {
			return w.bad
		}
	}
	w.drain()
	w.check()
	return w.bad
}

// do runs one op and reports whether it took effect: a start on a full
// disk may fail (a log that cannot write its first files cannot accept
// anything; it says so and exits), and then serve stays down.
func (w *world) do(step int, o op) bool {
	t := w.t
	switch o.kind {
	case opStart:
		err := w.serve[o.bus].tryStart()
		if err != nil && w.sim.diskFull && strings.Contains(err.Error(), "no space left on device") {
			w.notes = append(w.notes, fmt.Sprintf("step %d %s: refused to start on the full disk", step, o))
			return false
		}
		if err != nil {
			w.violation("step %d %s: %v", step, o, err)
		}
	case opStop:
		if err := w.current().tryStop(); err != nil {
			w.violation("step %d %s: %v", step, o, err)
		}
	case opKill:
		w.current().kill()
	case opPost:
		w.post(step, o)
	case opDelete:
		w.erase(step, o)
	case opBrokerStop:
		testenv.KafkaScript(t, "down")
	case opBrokerStart:
		testenv.KafkaScript(t, "up")
	case opWait:
		time.Sleep(time.Second)
	case opEngineRestart:
		w.engine.kill()
		if err := w.engine.tryStart(); err != nil {
			t.Fatalf("engine restart: %v", err)
		}
	case opDiskFill:
		if w.walFS != "" { // never fill a shared disk
			fillDisk(t, filepath.Join(w.walFS, "filler"))
		}
	case opDiskFree:
		if w.walFS != "" {
			if err := os.Remove(filepath.Join(w.walFS, "filler")); err != nil {
				t.Fatal(err)
			}
		}
	}
	return true
}

// newEvent makes a valid event of user (consent given, not under 13, so
// only a deletion decides whether it is stored) or an invalid one.
func (w *world) newEvent(user string, bad bool) schema.Event {
	ev := w.gen.Event()
	ev.UserID, ev.AnonymousID, ev.SessionID = user, "anon-"+user, "sess-"+user
	yes := true
	ev.Consent.Analytics = &yes
	ev.Under13 = false
	if bad {
		ev.Plan = "platinum" // not in the contract's plans
	}
	return ev
}

// post sends one request: new valid events, invalid ones and resends of
// earlier events, shuffled; and books what the answer promised.
func (w *world) post(step int, o op) {
	var ids []string
	for i := range o.n + o.bad {
		user := o.user
		if user == anyUser {
			user = historyUsers[w.rnd.IntN(len(historyUsers))]
		}
		bad := i >= o.n
		ids = append(ids, w.book(w.newEvent(user, bad), user, bad))
	}
	var earlier []string
	for _, id := range w.order {
		if !w.events[id].bad && !slices.Contains(ids, id) {
			earlier = append(earlier, id)
		}
	}
	for i := 0; i < o.resend && len(earlier) > 0; i++ {
		k := w.rnd.IntN(len(earlier))
		ids = append(ids, earlier[k])
		earlier = slices.Delete(earlier, k, k+1)
	}
	w.rnd.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	evs := make([]schema.Event, len(ids))
	good := 0
	for i, id := range ids {
		evs[i] = w.events[id].ev
		if !w.events[id].bad {
			good++
		}
	}
	body, err := json.Marshal(map[string]any{"events": evs})
	if err != nil {
		w.t.Fatal(err)
	}
	status, resp, err := w.request(step, body)
	acked := false
	switch {
	case err != nil || status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests:
		// No promise: the events may or may not be stored.
	case (status == http.StatusOK || status == http.StatusMultiStatus || status == http.StatusBadRequest) &&
		resp.Accepted == good && resp.Rejected == len(ids)-good:
		acked = good > 0
		for _, rj := range resp.Errors {
			if rj.Index < len(ids) && !w.events[ids[rj.Index]].bad {
				w.violation("step %d %s: valid event %s rejected: %+v", step, o, ids[rj.Index], rj)
			}
		}
	default:
		w.violation("step %d %s: answer %d %+v (err %v) for %d valid and %d invalid events", step, o, status, resp, err, good, len(ids)-good)
	}
	for _, id := range ids {
		if e := w.events[id]; !e.bad {
			e.sends = append(e.sends, send{step: step, acked: acked})
		}
	}
}

// book records a new event and returns its id.
func (w *world) book(ev schema.Event, user string, bad bool) string {
	w.events[ev.EventID] = &sentEvent{ev: ev, user: user, bad: bad}
	w.order = append(w.order, ev.EventID)
	return ev.EventID
}

// request posts body to the running serve node's /v1/events.
func (w *world) request(step int, body []byte) (int, collector.Response, error) {
	var resp collector.Response
	addr := w.current().IngestAddr()
	if addr == "" {
		return 0, resp, errNoAddr
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://"+addr+"/v1/events", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+config.DevWriteKey)
	req.Header.Set("Content-Type", "application/json")
	r, err := w.client.Do(req)
	if err != nil {
		return 0, resp, err
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &resp); err != nil {
		return r.StatusCode, resp, fmt.Errorf("step %d: answer %d %q: %w", step, r.StatusCode, b, err)
	}
	return r.StatusCode, resp, nil
}

// erase deletes user through the running node's admin API.
func (w *world) erase(step int, o op) {
	body := fmt.Sprintf(`{"user_id":%q}`, o.user)
	req, _ := http.NewRequest(http.MethodPost, "http://"+w.current().AdminAddr()+"/v1/privacy/delete", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+privacy.DevToken)
	req.Header.Set("Content-Type", "application/json")
	c := http.Client{Timeout: 2 * time.Minute}
	resp, err := c.Do(req)
	if err != nil {
		w.violation("step %d %s: %v", step, o, err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		w.violation("step %d %s: %d %s", step, o, resp.StatusCode, b)
		return
	}
	w.dels[o.user] = append(w.dels[o.user], step)
}

// drain brings every part up (disk freed, broker and engine up) and runs
// serve on the Kafka bus, which consumes the topic's backlog and forwards
// what the local log still holds, so everything acknowledged can arrive.
func (w *world) drain() {
	t := w.t
	if w.sim.diskFull {
		w.do(len(w.h.ops), op{kind: opDiskFree})
		w.sim.diskFull = false
	}
	if w.sim.brokerDown {
		testenv.KafkaScript(t, "up")
		w.sim.brokerDown = false
	}
	if w.sim.serveUp && w.sim.bus != "kafka" {
		if err := w.current().tryStop(); err != nil {
			w.violation("drain: %v", err)
		}
		w.sim.serveUp = false
	}
	if !w.sim.serveUp {
		if err := w.serve["kafka"].tryStart(); err != nil {
			w.violation("drain: %v", err)
			return
		}
		w.sim.serveUp, w.sim.bus = true, "kafka"
	}
}

// expectation of one event after the history.
type expectation int

const (
	mustStore expectation = iota // acknowledged after its user's last deletion
	mustNot                      // invalid, or every send came before a deletion of its user
	mayStore                     // sent after the last deletion, never acknowledged
)

// expect derives what the books promise for e.
func (w *world) expect(e *sentEvent) expectation {
	if e.bad || len(e.sends) == 0 {
		return mustNot
	}
	lastDel := -1
	if d := w.dels[e.user]; len(d) > 0 {
		lastDel = d[len(d)-1]
	}
	res := mustNot
	for _, s := range e.sends {
		switch {
		case s.step < lastDel:
		case s.acked:
			return mustStore
		default:
			res = mayStore
		}
	}
	return res
}

// stored reads event_id -> rows under FINAL from the engine.
func (w *world) stored() (map[string]int, error) {
	out, err := chQuery("127.0.0.1:"+w.chPort, "SELECT toString(event_id), count() FROM telemetry.events FINAL GROUP BY event_id FORMAT TSV")
	if err != nil {
		return nil, err
	}
	m := map[string]int{}
	for _, l := range strings.Split(out, "\n") {
		if id, c, ok := strings.Cut(l, "\t"); ok {
			m[id], _ = strconv.Atoi(c)
		}
	}
	return m, nil
}

// check waits until every event that must be stored is (or nothing has
// changed for 30 seconds: a consumer group rejoins well within that), then checks the invariants:
//   - every acknowledged event_id is stored, exactly once under FINAL,
//     unless a deletion of its user came after its last send;
//   - nothing is stored that was never acknowledged, except events whose
//     request got no promise (503, no answer) and was sent after the last
//     deletion of its user; nothing invalid, nothing never sent;
//   - no row repeats a bus position (topic, partition, offset).
func (w *world) check() {
	var must []string
	for _, id := range w.order {
		if w.expect(w.events[id]) == mustStore {
			must = append(must, id)
		}
	}
	var got map[string]int
	var err error
	last, since := -1, time.Now()
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		got, err = w.stored()
		if err != nil {
			continue
		}
		if len(got) != last {
			last, since = len(got), time.Now()
		}
		present := 0
		for _, id := range must {
			if got[id] > 0 {
				present++
			}
		}
		if (present == len(must) && time.Since(since) > 2*time.Second) || time.Since(since) > 30*time.Second {
			break
		}
	}
	if err != nil {
		w.violation("reading the events table: %v", err)
		return
	}
	var lost, deletedStored, strangers []string
	for id, n := range got {
		e, ok := w.events[id]
		switch {
		case !ok:
			strangers = append(strangers, id)
		case n > 1:
			w.violation("event %s stored %d times under FINAL", id, n)
		case w.expect(e) == mustNot && e.bad:
			w.violation("invalid event %s stored", id)
		case w.expect(e) == mustNot:
			deletedStored = append(deletedStored, id)
		}
	}
	for _, id := range must {
		if got[id] == 0 {
			lost = append(lost, id)
		}
	}
	if len(lost) > 0 {
		sort.Strings(lost)
		w.violation("%d acknowledged events not stored, e.g. %s (user %s, sends %+v)", len(lost), lost[0], w.events[lost[0]].user, w.events[lost[0]].sends)
	}
	if len(deletedStored) > 0 {
		e := w.events[deletedStored[0]]
		w.violation("%d events stored though every send came before a deletion of their user, e.g. %s (user %s, sends %+v, deletions at %v)",
			len(deletedStored), deletedStored[0], e.user, e.sends, w.dels[e.user])
	}
	if len(strangers) > 0 {
		w.violation("%d stored events were never sent, e.g. %s", len(strangers), strangers[0])
	}
	rep, err := chQuery("127.0.0.1:"+w.chPort, "SELECT count() - uniqExact(kafka_topic, kafka_partition, kafka_offset) FROM telemetry.events")
	if err != nil {
		w.violation("reading positions: %v", err)
	} else if rep != "0" {
		w.violation("%s rows repeat a bus position (topic, partition, offset)", rep)
	}
	acked := 0
	for _, id := range must {
		if got[id] > 0 {
			acked++
		}
	}
	// The audit's duplicates must be the raw copies there are: a resend
	// across a bus switch lands in another source's window and is stored
	// again (one row under FINAL, which the invariants above check; the
	// README's table of layers), and the audit must say so.
	raw := 0
	if out, err := chQuery("127.0.0.1:"+w.chPort, "SELECT count() - uniqExact(event_id) FROM telemetry.events"); err != nil {
		w.violation("reading raw copies: %v", err)
	} else {
		raw, _ = strconv.Atoi(out)
	}
	if arep, err := auditSettled(w.t, "127.0.0.1:"+w.chPort, acked, 0, raw); err != nil {
		w.violation("%v", err)
	} else {
		w.notes = append(w.notes, fmt.Sprintf("audit: accepted=%d stored=%d deduplicated=%d filtered=%d lost=0 duplicated=%d (raw copies) surplus=%d",
			arep.Total.Accepted, arep.Total.Stored, arep.Total.Deduplicated, arep.Total.Filtered, arep.Total.Duplicates, arep.Total.Surplus))
	}
	w.notes = append(w.notes, fmt.Sprintf("events sent=%d must=%d stored=%d deletions=%d", len(w.order), len(must), len(got), len(w.dels)))
}

// runHistory runs h in a fresh world and returns its violations.
func runHistory(t *testing.T, h history) []string {
	w := newWorld(t, h)
	bad := w.run()
	for _, n := range w.notes {
		t.Log(n)
	}
	return bad
}

// shrink looks for a shorter history that still fails: it drops chunks of
// ops, halving the chunk, keeping any removal after which a replay still
// finds a violation. It stops after maxTries replays.
func shrink(t *testing.T, h history, maxTries int) history {
	tries := 0
	for chunk := max(1, len(h.ops)/2); chunk >= 1; chunk /= 2 {
		for i := len(h.ops) - chunk; i >= 0; i-- {
			if tries >= maxTries {
				return h
			}
			cand := history{seed: h.seed, ops: append(slices.Clone(h.ops[:i]), h.ops[i+chunk:]...)}
			cand.ops = valid(cand.ops)
			if len(cand.ops) >= len(h.ops) {
				continue
			}
			tries++
			var bad []string
			t.Run(fmt.Sprintf("shrink-%d-ops", len(cand.ops)), func(t *testing.T) { bad = runHistory(t, cand) })
			if len(bad) > 0 {
				h = cand
				i = min(i, len(h.ops)-chunk+1)
			}
		}
	}
	return h
}

// valid drops the ops a state would not allow, as the executor would.
func valid(ops []op) []op {
	var s sim
	var out []op
	for _, o := range ops {
		if s.allows(o) {
			s.apply(o)
			out = append(out, o)
		}
	}
	return out
}

// envInt reads a non-negative integer from the environment (def if unset).
func envInt(t *testing.T, name string, def uint64) uint64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

// TestRandomHistories generates random histories over the real binary,
// the real (private) Kafka broker and the real ClickHouse engine (its own
// process, restarted as a fault): posts with invalid events and resends,
// SIGKILLs and graceful stops, restarts on the local log and on Kafka
// switching between them on one data directory, broker stops, engine
// restarts, a full disk under the local log, and deletions followed by
// new events of the same person. After each it checks the invariants of
// world.check. A failing history is shrunk and printed as a script to
// put in testdata/histories/, which every run replays first.
func TestRandomHistories(t *testing.T) {
	requireChaos(t)
	kafkaBrokers(t)
	t.Cleanup(func() { testenv.KafkaScript(t, "up") }) // whatever a history left
	if path := os.Getenv(historyFileEnv); path != "" {
		replayFile(t, path)
		return
	}
	files, _ := filepath.Glob(filepath.Join(historiesDir, "*.txt"))
	for _, f := range files {
		replayFile(t, f)
	}
	seed := envInt(t, historySeedEnv, uint64(time.Now().UnixNano()))
	budget := defaultHistoryBudget
	if v := os.Getenv(historyBudgetEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s=%q: %v", historyBudgetEnv, v, err)
		}
		budget = d
	}
	count := envInt(t, historyCountEnv, 0)
	report(t, fmt.Sprintf("history: seed=%d budget=%v count=%d (replay: %s=%d)", seed, budget, count, historySeedEnv, seed))
	start := time.Now()
	passed := 0
	for i := uint64(0); ; i++ {
		if (count > 0 && i >= count) || (count == 0 && time.Since(start) > budget) {
			break
		}
		h := generate(seed + i)
		var bad []string
		ok := t.Run(fmt.Sprintf("seed=%d", h.seed), func(t *testing.T) {
			t.Logf("history:\n%s", h.script())
			bad = runHistory(t, h)
			if len(bad) > 0 {
				t.Errorf("violations:\n  %s", strings.Join(bad, "\n  "))
			}
		})
		if !ok || len(bad) > 0 {
			small := shrink(t, h, 24)
			t.Errorf("history seed=%d failed; shrunk from %d to %d ops. Replay with %s=<file> after saving this in %s/<name>.txt:\n%s",
				h.seed, len(h.ops), len(small.ops), historyFileEnv, historiesDir, small.script())
			break
		}
		passed++
	}
	report(t, fmt.Sprintf("history: %d random histories passed in a row in %v", passed, time.Since(start).Round(time.Second)))
	if passed == 0 && !t.Failed() {
		t.Error("no history ran: the budget proved nothing")
	}
}

// replayFile runs the history script in path as a subtest.
func replayFile(t *testing.T, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := parseHistory(string(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	t.Run("replay/"+filepath.Base(path), func(t *testing.T) {
		if bad := runHistory(t, h); len(bad) > 0 {
			t.Errorf("%s:\n%s\nviolations:\n  %s", path, h.script(), strings.Join(bad, "\n  "))
		}
	})
}
