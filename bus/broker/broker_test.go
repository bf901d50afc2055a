package broker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sora3web/telemetry/bus/broker"
	"github.com/sora3web/telemetry/internal/testenv"
)

// TestEnsureTopicsReturnsUsableTopics: once EnsureTopics returns, another
// client's metadata request sees every partition of both topics with a
// leader, so a produce right after it cannot fail with
// UnknownTopicOrPartition (a test once did, right after a large topic
// deletion had left the broker's metadata behind the controller's).
func TestEnsureTopicsReturnsUsableTopics(t *testing.T) {
	brokers := testenv.Kafka(t)
	for i := range 5 {
		cfg := broker.DefaultConfig()
		cfg.Brokers = brokers
		name := fmt.Sprintf("ensure-test-%d-%d", time.Now().UnixNano(), i)
		cfg.EventsTopic, cfg.DeadLetterTopic = name, name+"-dlq"
		testenv.DeleteTopicsAtCleanup(t, cfg.Brokers, cfg.EventsTopic, cfg.DeadLetterTopic)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := broker.EnsureTopics(ctx, cfg); err != nil {
			cancel()
			t.Fatal(err)
		}
		// A new transport: a shared one answers from metadata it cached before.
		c := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: &kafka.Transport{}}
		res, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{cfg.EventsTopic, cfg.DeadLetterTopic}})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for _, tp := range res.Topics {
			if tp.Error != nil || len(tp.Partitions) != cfg.Partitions {
				t.Fatalf("%s right after EnsureTopics: %d partitions, error %v; want %d", tp.Name, len(tp.Partitions), tp.Error, cfg.Partitions)
			}
			for _, p := range tp.Partitions {
				if p.Leader.ID < 0 {
					t.Fatalf("%s[%d] right after EnsureTopics: no leader", tp.Name, p.ID)
				}
			}
		}
		if len(res.Topics) != 2 {
			t.Fatalf("metadata right after EnsureTopics has %d topics, want 2", len(res.Topics))
		}
	}
}

// TestEnsureTopicsDurabilityConfig: created topics carry
// min_insync_replicas as min.insync.replicas and never elect an unclean
// leader (a replica that may lack acknowledged events).
func TestEnsureTopicsDurabilityConfig(t *testing.T) {
	cfg := newTopic(t, func(c *broker.Config) { c.MinInsyncReplicas = 1 }) // the development broker is one node
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Transport: &kafka.Transport{}}
	res, err := c.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: cfg.EventsTopic,
		ConfigNames: []string{"min.insync.replicas", "unclean.leader.election.enable"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range res.Resources {
		for _, e := range r.ConfigEntries {
			got[e.ConfigName] = e.ConfigValue
		}
	}
	if got["min.insync.replicas"] != "1" || got["unclean.leader.election.enable"] != "false" {
		t.Fatalf("topic configs %v, want min.insync.replicas=1 and unclean.leader.election.enable=false", got)
	}
}
