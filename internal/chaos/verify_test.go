package chaos

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sora3web/telemetry/internal/audit"
)

// chQuery runs sql on the ClickHouse HTTP interface at addr and returns
// the answer without its final newline.
func chQuery(addr, sql string) (string, error) {
	if addr == "" {
		return "", errNoAddr
	}
	c := http.Client{Timeout: time.Minute}
	resp, err := c.Get("http://" + addr + "/?query=" + url.QueryEscape(sql))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %d %s", sql, resp.StatusCode, b)
	}
	return strings.TrimRight(string(b), "\n"), nil
}

// chCount runs a query that returns one number.
func chCount(t *testing.T, addr, sql string) int {
	t.Helper()
	out, err := chQuery(addr, sql)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(out)
	if err != nil {
		t.Fatalf("%s: %q is not a number", sql, out)
	}
	return n
}

// waitCaughtUp waits until the consumer has stored what it is going to:
// the distinct event_ids in telemetry.events reach acked and stop growing
// for two seconds, or stop growing for a minute whatever their number
// (then the books will show what is missing; a Kafka consumer group can
// rightly pause for its 30s session timeout after a member was killed), or
// timeout passes. It returns how long it waited.
func waitCaughtUp(t *testing.T, addr string, acked int, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	last, since := -1, time.Now()
	for {
		out, err := chQuery(addr, "SELECT uniqExact(event_id) FROM telemetry.events")
		n, _ := strconv.Atoi(out)
		if err != nil {
			n = -1
		}
		if n != last {
			last, since = n, time.Now()
		}
		stable := time.Since(since)
		if (n >= acked && stable >= 2*time.Second) || (n >= 0 && stable >= time.Minute) {
			return time.Since(start) - stable
		}
		if time.Now().After(deadline) {
			t.Logf("consumer not caught up after %v: %d distinct events stored, %d acknowledged (last error: %v)", timeout, n, acked, err)
			return time.Since(start)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// outcome is a scenario's books, by event_id.
type outcome struct {
	name string
	tally
	stored    int // acknowledged events present in telemetry.events
	lost      int // acknowledged and not stored
	dup       int // count() FINAL - uniqExact(event_id)
	rawCopies int // count() - uniqExact(event_id): copies an analyst would count without FINAL
	// rollupCopies is countMerge(events) of rollups_daily - uniqExact(event_id):
	// copies the materialized view counted.
	rollupCopies int
	// reinserted counts rows whose bus position (topic, partition, offset)
	// is stored twice: the consumer inserted one message again, which the
	// stored-offsets check prevents (must be 0; FINAL would hide them).
	// Copies from client resends have positions of their own.
	reinserted int
	unacked    int // stored events that were sent but never acknowledged
	strangers  int // stored events that were never sent
	lostIDs    []string
	storedIDs  map[string]bool // every event_id in telemetry.events
}

// line is the scenario's figures in the report format.
func (o outcome) line() string {
	return fmt.Sprintf("scenario=%s sent=%d acknowledged=%d stored=%d lost=%d duplicated=%d resent=%d refused=%d",
		o.name, o.sent, o.acked, o.stored, o.lost, o.dup, o.resent, o.refused)
}

// settle waits for the consumer behind addr to catch up with what s sent,
// then counts, prints and checks the scenario's books: it fails t when an
// acknowledged event is missing, an event is stored twice (under FINAL,
// without it, or in the rollup's count), or a stored event was never sent.
func settle(t *testing.T, name, addr string, s *sender) outcome {
	t.Helper()
	tl := s.tally()
	caughtUp := waitCaughtUp(t, addr, tl.acked, 3*time.Minute)
	o := outcome{name: name, tally: tl}
	rows, err := chQuery(addr, "SELECT toString(event_id), count() FROM telemetry.events GROUP BY event_id FORMAT TSV")
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	o.storedIDs = stored
	if rows != "" {
		for _, l := range strings.Split(rows, "\n") {
			id, _, _ := strings.Cut(l, "\t")
			stored[id] = true
		}
	}
	for id, acked := range tl.ids {
		switch {
		case acked && stored[id]:
			o.stored++
		case acked:
			o.lost++
			o.lostIDs = append(o.lostIDs, id)
		case stored[id]:
			o.unacked++
		}
	}
	for id := range stored {
		if _, ok := tl.ids[id]; !ok {
			o.strangers++
		}
	}
	distinct := chCount(t, addr, "SELECT uniqExact(event_id) FROM telemetry.events")
	o.dup = chCount(t, addr, "SELECT count() FROM telemetry.events FINAL") - distinct
	rows2 := chCount(t, addr, "SELECT count() FROM telemetry.events")
	o.rawCopies = rows2 - distinct
	o.rollupCopies = chCount(t, addr, "SELECT countMerge(events) FROM telemetry.rollups_daily") - distinct
	o.reinserted = rows2 - chCount(t, addr, "SELECT uniqExact(kafka_topic, kafka_partition, kafka_offset) FROM telemetry.events")

	report(t, o.line())
	t.Logf("%s: caught up %v after the sender stopped; stored but never acknowledged=%d raw_copies=%d rollup_copies=%d (same bus position inserted again: %d) answers=%s",
		name, caughtUp.Round(100*time.Millisecond), o.unacked, o.rawCopies, o.rollupCopies, o.reinserted, statusLine(tl.status))
	if o.lost != 0 {
		sort.Strings(o.lostIDs)
		t.Errorf("%s: %d acknowledged events are not stored, e.g. %v", name, o.lost, o.lostIDs[:min(5, len(o.lostIDs))])
	}
	if o.dup != 0 {
		t.Errorf("%s: %d events stored more than once under FINAL", name, o.dup)
	}
	// Exact for analysts: resends and redeliveries are one row without
	// FINAL and one count in the rollup.
	if o.rawCopies != 0 {
		t.Errorf("%s: count() without FINAL exceeds uniqExact(event_id) by %d", name, o.rawCopies)
	}
	if o.rollupCopies != 0 {
		t.Errorf("%s: rollups_daily counts %d events more than uniqExact(event_id)", name, o.rollupCopies)
	}
	if o.reinserted != 0 {
		t.Errorf("%s: %d rows repeat a bus position (topic, partition, offset): the consumer inserted a message twice", name, o.reinserted)
	}
	if o.strangers != 0 {
		t.Errorf("%s: %d stored events were never sent", name, o.strangers)
	}
	if o.acked == 0 {
		t.Errorf("%s: no event was acknowledged: the scenario proved nothing", name)
	}
	// The pipeline's own audit must say the same over the run.
	rep, err := auditSettled(t, addr, o.acked, o.stored, 0)
	report(t, fmt.Sprintf("scenario=%s audit: accepted=%d stored=%d deduplicated=%d dead_lettered=%d filtered=%d lost=%d duplicated=%d surplus=%d",
		name, rep.Total.Accepted, rep.Total.Stored, rep.Total.Deduplicated, rep.Total.DeadLettered, rep.Total.Filtered, rep.Total.Lost, rep.Total.Duplicates, rep.Total.Surplus))
	if err != nil {
		t.Errorf("%s: %v", name, err)
	}
	s.checkAnswers(t)
	return o
}

// statusLine renders answer counts as "200:123 503:4 conn:5".
func statusLine(m map[int]int) string {
	keys := make([]int, 0, len(m))
	total := 0
	for k, v := range m {
		keys = append(keys, k)
		total += v
	}
	sort.Ints(keys)
	var b strings.Builder
	for _, k := range keys {
		name := strconv.Itoa(k)
		if k == 0 {
			name = "conn"
		}
		fmt.Fprintf(&b, "%s:%d(%.1f%%) ", name, m[k], 100*float64(m[k])/float64(max(total, 1)))
	}
	return strings.TrimSpace(b.String())
}

// auditRun runs `telemetry audit --settled --json` against the ClickHouse
// at addr, as an operator would, and returns its report and exit error
// (non-nil when it reported a loss or a duplicate, or failed).
func auditRun(t *testing.T, addr string) (audit.Report, string, error) {
	t.Helper()
	cmd := exec.Command(binary(t), "audit", "--settled", "--json", "--since", "24h",
		"--set", "embedded.enabled=false", "--set", "clickhouse.protocol=http", "--set", "clickhouse.addr="+addr,
		"--set", "clickhouse.compression=none")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var rep audit.Report
	if jerr := json.Unmarshal(stdout.Bytes(), &rep); jerr != nil {
		return rep, stderr.String(), errors.Join(err, fmt.Errorf("telemetry audit printed no report: %w: %s", jerr, stdout.String()))
	}
	return rep, stderr.String(), err
}

// auditSettled waits up to 30s (the last audit records may still be on
// their way when the events are all stored) until `telemetry audit`
// reports 0 lost and dups duplicated rows, exiting 0 exactly when dups is
// 0, and returns an error saying what it last reported otherwise. It also
// checks the report against the books: every acknowledged event counted
// as accepted, every distinct stored event as stored.
func auditSettled(t *testing.T, addr string, acked, stored, dups int) (audit.Report, error) {
	t.Helper()
	var rep audit.Report
	var msg string
	var err error
	ok := func() bool {
		return rep.Total.Lost == 0 && rep.Total.Duplicates == uint64(dups) && (err == nil) == (dups == 0) &&
			rep.Total.Accepted >= uint64(acked) && rep.Total.Stored >= uint64(stored)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
		rep, msg, err = auditRun(t, addr)
		if ok() || time.Now().After(deadline) {
			break
		}
	}
	switch {
	case ok():
		return rep, nil
	case rep.Total.Lost != 0 || rep.Total.Duplicates != uint64(dups) || (err == nil) != (dups == 0):
		return rep, fmt.Errorf("telemetry audit: exit %v: lost=%d duplicated=%d (want 0 and %d; totals %+v) %s",
			err, rep.Total.Lost, rep.Total.Duplicates, dups, rep.Total, msg)
	default:
		return rep, fmt.Errorf("telemetry audit counts fewer than the books: accepted %d < %d acknowledged, or stored %d < %d stored",
			rep.Total.Accepted, acked, rep.Total.Stored, stored)
	}
}
