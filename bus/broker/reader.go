package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sora3web/telemetry/bus"
	"github.com/sora3web/telemetry/internal/backoff"
)

// ReaderConfig is what a consumer group reader needs beyond Config (the
// consumer.* keys that concern Kafka).
type ReaderConfig struct {
	// GroupID is the consumer group.
	GroupID string
	// StartOffset of a new group: "earliest" or "latest".
	StartOffset string
	// FetchMaxBytes bounds one fetch response; FetchMaxWait is how long a
	// fetch waits for data.
	FetchMaxBytes int
	FetchMaxWait  time.Duration
	// SessionTimeout is how long the coordinator waits for a member that
	// stopped heartbeating; heartbeats go every tenth of it.
	SessionTimeout time.Duration
	// BackoffMin and BackoffMax bound the waits while the broker is
	// unreachable.
	BackoffMin, BackoffMax time.Duration
}

// Reader reads the events topic in a consumer group: the bus.Source of
// consumers on Kafka. A broker that is down when it starts is not an
// error: Fetch waits for it (creating the topics when configured to, so a
// group never joins a topic that does not exist yet) and then joins.
// Commit is synchronous. Fetch and Commit come from one goroutine each;
// Close may come from any.
type Reader struct {
	cfg Config
	rc  ReaderConfig
	log *slog.Logger

	mu sync.Mutex
	r  *kafka.Reader // nil until the topic answered
}

var _ bus.Source = (*Reader)(nil)

// NewReader makes a group reader of cfg.EventsTopic; it does no I/O until
// the first Fetch.
func NewReader(cfg Config, rc ReaderConfig, log *slog.Logger) (*Reader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if rc.GroupID == "" {
		return nil, errors.New("kafka reader: a group id is required")
	}
	return &Reader{cfg: cfg, rc: rc, log: log.With("topic", cfg.EventsTopic)}, nil
}

// reader returns the group reader, waiting for the topic first.
func (r *Reader) reader(ctx context.Context) (*kafka.Reader, error) {
	r.mu.Lock()
	kr := r.r
	r.mu.Unlock()
	if kr != nil {
		return kr, nil
	}
	bo := backoff.New(r.rc.BackoffMin, r.rc.BackoffMax)
	for {
		err := r.topicReady(ctx)
		if err == nil {
			break
		}
		r.log.Warn("waiting for kafka before joining the consumer group", "err", err, "retry_in", bo.Next())
		if !bo.Wait(ctx) {
			return nil, ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.r == nil {
		r.r = r.newGroupReader()
		r.log.Info("kafka reachable; joining the consumer group", "group", r.rc.GroupID)
	}
	return r.r, nil
}

// topicReady makes the topics when configured to, and checks that the
// events topic answers.
func (r *Reader) topicReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.DialTimeout)
	defer cancel()
	if r.cfg.CreateTopics {
		if err := EnsureTopics(ctx, r.cfg); err != nil {
			return err
		}
	}
	return Ping(ctx, r.cfg, r.cfg.EventsTopic)
}

func (r *Reader) newGroupReader() *kafka.Reader {
	start := kafka.FirstOffset
	if r.rc.StartOffset == "latest" {
		start = kafka.LastOffset
	}
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers:  r.cfg.Brokers,
		GroupID:  r.rc.GroupID,
		Topic:    r.cfg.EventsTopic,
		MinBytes: 1,
		MaxBytes: r.rc.FetchMaxBytes,
		MaxWait:  r.rc.FetchMaxWait,
		// Room for a fetch's worth of messages between the partition
		// readers and FetchMessage (default 100): the consumer drains
		// tens of thousands per batch, and a small queue made each
		// partition reader block and wake per hundred messages.
		QueueCapacity:     4096,
		StartOffset:       start,
		CommitInterval:    0, // synchronous: CommitMessages returns once committed
		SessionTimeout:    r.rc.SessionTimeout,
		HeartbeatInterval: r.rc.SessionTimeout / 10,
		Dialer:            &kafka.Dialer{Timeout: r.cfg.DialTimeout},
		// A topic made after the group joined (broker down at start), or
		// given more partitions, triggers a rebalance instead of leaving the
		// group assigned nothing.
		WatchPartitionChanges:  true,
		PartitionWatchInterval: 5 * time.Second,
		ErrorLogger: kafka.LoggerFunc(func(format string, args ...any) {
			r.log.Warn("kafka reader: " + fmt.Sprintf(format, args...))
		}),
	})
}

// Fetch returns the next message of the group's partitions (never
// auto-committed), waiting for the broker if it has not answered yet.
func (r *Reader) Fetch(ctx context.Context) (bus.Message, error) {
	kr, err := r.reader(ctx)
	if err != nil {
		return bus.Message{}, err
	}
	m, err := kr.FetchMessage(ctx)
	if err != nil {
		return bus.Message{}, err
	}
	out := bus.Message{Key: m.Key, Value: m.Value, Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, HighWater: m.HighWaterMark}
	if len(m.Headers) > 0 {
		out.Headers = make([]bus.Header, len(m.Headers))
		for i, h := range m.Headers {
			out.Headers[i] = bus.Header{Key: h.Key, Value: h.Value}
		}
	}
	return out, nil
}

// Commit commits the group's offsets past msgs and returns once the
// coordinator has them.
func (r *Reader) Commit(ctx context.Context, msgs ...bus.Message) error {
	r.mu.Lock()
	kr := r.r
	r.mu.Unlock()
	if kr == nil {
		return errors.New("kafka reader: commit before any fetch")
	}
	km := make([]kafka.Message, len(msgs))
	for i, m := range msgs {
		km[i] = kafka.Message{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}
	}
	return kr.CommitMessages(ctx, km...)
}

// Close leaves the group.
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.r == nil {
		return nil
	}
	return r.r.Close()
}

// DeadLetters writes dead letters to the dead-letter topic with a Producer
// (acks=all, kafka-go's Hash partitioning, the telemetry.kafka.produce
// metrics): the bus.DeadLetters of consumers on Kafka.
type DeadLetters struct{ p *Producer }

var _ bus.DeadLetters = (*DeadLetters)(nil)

// NewDeadLetters writes to cfg.DeadLetterTopic; no I/O until the first write.
func NewDeadLetters(cfg Config) (*DeadLetters, error) {
	p, err := NewProducer(cfg, cfg.DeadLetterTopic)
	if err != nil {
		return nil, fmt.Errorf("making the dead-letter producer: %w", err)
	}
	return &DeadLetters{p: p}, nil
}

// WriteMessages produces msgs and returns once the broker has them.
func (d *DeadLetters) WriteMessages(ctx context.Context, msgs ...bus.Message) error {
	return d.p.Produce(ctx, msgs)
}

// Close sends what is queued (dead letters are produced synchronously, so
// nothing normally is), within 10 seconds.
func (d *DeadLetters) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return d.p.Close(ctx)
}
