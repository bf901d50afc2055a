package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestKafka checks that Kafka hands out a working broker: it creates a topic
// through the controller, writes three messages with acks=all and reads them
// back through a consumer group (which also needs the offsets topic).
func TestKafka(t *testing.T) {
	brokers := Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	topic := fmt.Sprintf("testenv-kafka-%d", time.Now().UnixNano())
	controller := dialController(t, brokers[0])
	err := controller.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: 1, ReplicationFactor: 1})
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	t.Cleanup(func() {
		if err := controller.DeleteTopics(topic); err != nil {
			t.Errorf("delete topic %s: %v", topic, err)
		}
		controller.Close()
	})

	want := []kafka.Message{
		{Key: []byte("k1"), Value: []byte("first")},
		{Key: []byte("k2"), Value: []byte{0, 1, 2, 0xff}},
		{Key: []byte("k3"), Value: bytes.Repeat([]byte("x"), 10_000)},
	}
	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 10 * time.Millisecond,
	}
	if err := w.WriteMessages(ctx, want...); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close writer: %v", err)
	}

	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     brokers,
		Topic:       topic,
		GroupID:     topic + "-group",
		StartOffset: kafka.FirstOffset,
		MaxWait:     100 * time.Millisecond,
	})
	defer r.Close()
	for i, m := range want {
		got, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read message %d: %v", i, err)
		}
		if !bytes.Equal(got.Key, m.Key) || !bytes.Equal(got.Value, m.Value) {
			t.Errorf("message %d: got key %q value %d bytes %q, want key %q value %d bytes",
				i, got.Key, len(got.Value), trim(got.Value), m.Key, len(m.Value))
		}
		if got.Offset != int64(i) {
			t.Errorf("message %d: offset %d, want %d", i, got.Offset, i)
		}
	}
}

// TestKafkaScript checks that KafkaScript runs scripts/kafka.sh and returns
// its output: after Kafka, `status` reports the local broker as running.
func TestKafkaScript(t *testing.T) {
	Kafka(t)
	if os.Getenv(KafkaBrokersEnv) != "" {
		// The brokers are external: the local script does not manage them.
		out := KafkaScript(t, "help")
		if !strings.Contains(out, "Usage: scripts/kafka.sh") {
			t.Fatalf("kafka.sh help: unexpected output:\n%s", out)
		}
		return
	}
	out := KafkaScript(t, "status")
	if !strings.Contains(out, "kafka: running at 127.0.0.1:") {
		t.Fatalf("kafka.sh status after Kafka(t): unexpected output:\n%s", out)
	}
}

// dialController connects to the cluster's controller through broker addr.
func dialController(t *testing.T, addr string) *kafka.Conn {
	t.Helper()
	conn, err := kafka.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	c, err := conn.Controller()
	if err != nil {
		t.Fatalf("find controller via %s: %v", addr, err)
	}
	ctrl, err := kafka.Dial("tcp", net.JoinHostPort(c.Host, strconv.Itoa(c.Port)))
	if err != nil {
		t.Fatalf("dial controller %s:%d: %v", c.Host, c.Port, err)
	}
	return ctrl
}

func trim(b []byte) []byte {
	if len(b) > 16 {
		return b[:16]
	}
	return b
}
