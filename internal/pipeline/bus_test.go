package pipeline

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sora3web/telemetry/internal/config"
	"github.com/sora3web/telemetry/internal/testenv"
)

// stop shuts p down gracefully and fails t if that fails.
func stop(t *testing.T, p *Pipeline) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatalf("graceful shutdown: %v", err)
	}
}

// onKafka is cfg with the shared broker as the bus on topic (created with
// one partition when it does not exist), a consumer group of its own.
func onKafka(t *testing.T, cfg config.Config, topic string) config.Config {
	t.Helper()
	suffix := fmt.Sprint(time.Now().UnixNano())
	cfg.Bus = "kafka"
	cfg.Kafka.Brokers = testenv.Kafka(t)
	cfg.Kafka.Partitions = 1
	cfg.Kafka.EventsTopic, cfg.Kafka.DeadLetterTopic = topic, "switch-dlq-"+suffix
	testenv.DeleteTopicsAtCleanup(t, cfg.Kafka.Brokers, cfg.Kafka.EventsTopic, cfg.Kafka.DeadLetterTopic)
	cfg.Consumer.GroupID = "switch-" + suffix
	return cfg
}

// onEngineOf is an all-in-one config of a second process whose consumer
// writes to a's embedded engine (a second instance on one ClickHouse).
func onEngineOf(t *testing.T, a *Pipeline) config.Config {
	t.Helper()
	c := allInOne(t)
	c.Embedded.Enabled, c.Serve.Migrate = false, false
	c.ClickHouse.Protocol, c.ClickHouse.Addr = "http", a.ClickHouseConfig().Addr
	return c
}

// userRows is the number of rows of userID (FINAL: once per event_id).
func userRows(t *testing.T, p *Pipeline, userID string) string {
	return query(t, p, "SELECT count() FROM telemetry.events FINAL WHERE user_id = '"+userID+"'")
}

// waitUserRows waits up to 30s until userID has want rows.
func waitUserRows(t *testing.T, p *Pipeline, userID string, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for userRows(t, p, userID) != fmt.Sprint(want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s has %s rows after 30s, want %d (positions stored: %s)", userID, userRows(t, p, userID), want,
				query(t, p, "SELECT kafka_topic, max(kafka_offset) FROM telemetry.events GROUP BY kafka_topic FORMAT TSV"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// noPositionTwice fails t when a bus position (topic, partition, offset)
// is stored in more than one row: the consumer inserted a message again.
func noPositionTwice(t *testing.T, p *Pipeline) {
	t.Helper()
	if got := query(t, p, "SELECT count() - uniqExact(kafka_topic, kafka_partition, kafka_offset) FROM telemetry.events"); got != "0" {
		t.Fatalf("%s rows repeat a bus position", got)
	}
}

// TestBusSwitchFromKafkaToTheLocalLogStoresEveryEvent is the history of
// issue 21: events stored through Kafka, then the same data directory
// served on the local log. The local log's events were skipped as
// "already stored" because the consumer asked for the Kafka topic's stored
// offsets instead of the local log's own.
func TestBusSwitchFromKafkaToTheLocalLogStoresEveryEvent(t *testing.T) {
	logCfg := allInOne(t)
	// The default topic, as in the report: the local log's consumer asked
	// for the stored offsets of kafka.events_topic's default name.
	kafkaCfg := onKafka(t, logCfg, config.Default().Kafka.EventsTopic)
	run := fmt.Sprint(time.Now().UnixNano())
	users := func(via string) string { return "'" + via + "-" + run + "'" }
	p := startPipeline(t, kafkaCfg)
	// Two events of each of 16 users: whatever the topic's partition
	// count, partition 0 almost surely holds offsets above 1.
	for i := range 16 {
		postEvents(t, p, fmt.Sprintf("via-kafka-%s-%d", run, i), 2)
	}
	waitRows(t, p, 32)
	stop(t, p)

	p = startPipeline(t, logCfg)
	for range 5 {
		postEvents(t, p, "via-log-"+run, 1)
	}
	waitUserRows(t, p, "via-log-"+run, 5)
	noPositionTwice(t, p)
	stop(t, p)

	// And back: what the local log held is not forwarded to Kafka again,
	// and new events go through Kafka.
	p = startPipeline(t, kafkaCfg)
	postEvents(t, p, "via-kafka-again-"+run, 3)
	waitUserRows(t, p, "via-kafka-again-"+run, 3)
	if got := query(t, p, "SELECT count() FROM telemetry.events WHERE user_id = "+users("via-log")); got != "5" {
		t.Fatalf("%s rows of the 5 events of the local log after switching back: they were stored twice", got)
	}
	if got := query(t, p, "SELECT count() FROM telemetry.events WHERE user_id LIKE 'via-kafka-"+run+"-%'"); got != "32" {
		t.Fatalf("%s rows of the 32 events sent through kafka", got)
	}
	noPositionTwice(t, p)
}

// TestTwoLocalLogsShareOneTable: two all-in-one instances (each its own
// local log, so the same sequence numbers) write to one ClickHouse. Each
// log's events are stored, none skipped for the other's offsets and none
// dropped as a duplicate block of the other's insert.
func TestTwoLocalLogsShareOneTable(t *testing.T) {
	a := startPipeline(t, allInOne(t))
	pb := startPipeline(t, onEngineOf(t, a))
	for range 4 {
		postEvents(t, a, "instance-a", 1)
		postEvents(t, pb, "instance-b", 1)
	}
	waitUserRows(t, a, "instance-a", 4)
	waitUserRows(t, a, "instance-b", 4)
	if got := query(t, a, "SELECT uniqExact(kafka_topic) FROM telemetry.events"); got != "2" {
		t.Fatalf("%s bus identities for two local logs, want 2", got)
	}
	noPositionTwice(t, a)
}

// TestWipedLocalLogGetsANewIdentity: the local log's directory is wiped
// (its sequence numbers start again at 1) while the rest of the data
// directory survives. The new log must not be taken for the old one, whose
// records up to the same numbers are stored: its events are stored too.
func TestWipedLocalLogGetsANewIdentity(t *testing.T) {
	cfg := allInOne(t)
	p := startPipeline(t, cfg)
	for range 6 {
		postEvents(t, p, "before-wipe", 1)
	}
	waitUserRows(t, p, "before-wipe", 6)
	stop(t, p)
	if err := os.RemoveAll(cfg.WALDir()); err != nil {
		t.Fatal(err)
	}
	p = startPipeline(t, cfg)
	for range 3 {
		postEvents(t, p, "after-wipe", 1)
	}
	waitUserRows(t, p, "after-wipe", 3)
	topics := query(t, p, "SELECT DISTINCT kafka_topic FROM telemetry.events ORDER BY kafka_topic FORMAT TSV")
	if n := len(strings.Fields(topics)); n != 2 {
		t.Fatalf("bus identities before and after the wipe: %q, want two", topics)
	}
	noPositionTwice(t, p)
}
