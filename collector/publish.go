package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sora3web/telemetry/internal/broker"
)

// Message is one record to publish: the partition key (events of one user
// share a key, so a partition holds them in order; nil spreads messages
// round-robin), the enriched event as JSON, and headers (trace context).
// It is the Kafka producer's message type, so publishing passes a request's
// messages on without copying them.
type Message = broker.ProducerMessage

// Publisher makes messages durable. Publish returns nil only once every
// message is durably stored (on Kafka: acknowledged by all in-sync
// replicas); on error some messages may have been stored, and the caller
// answers so that the client retries all of them (consumers dedup by
// event_id).
type Publisher interface {
	Publish(ctx context.Context, msgs []Message) error
	// Ready returns nil when Publish can be expected to succeed.
	Ready() error
}

// ErrNotReady is returned by Ready before the first successful probe.
var ErrNotReady = errors.New("publisher not ready")

// KafkaPublisher publishes to the events topic with broker.Producer
// (natural batching over kafka-go's protocol and transport).
type KafkaPublisher struct {
	cfg      broker.Config
	log      *slog.Logger
	producer *broker.Producer

	ready  atomic.Pointer[error]
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ Publisher = (*KafkaPublisher)(nil)

// NewKafkaPublisher makes a publisher; it does no I/O until Start.
func NewKafkaPublisher(cfg broker.Config, log *slog.Logger) (*KafkaPublisher, error) {
	pr, err := broker.NewProducer(cfg, cfg.EventsTopic)
	if err != nil {
		return nil, err
	}
	p := &KafkaPublisher{cfg: cfg, log: log, producer: pr}
	notReady := ErrNotReady
	p.ready.Store(&notReady)
	return p, nil
}

// Start creates the topics when configured to, then probes the broker in
// the background so Ready reflects whether it answers. A broker that is
// down at start is not an error: Ready stays false until it answers.
func (p *KafkaPublisher) Start(ctx context.Context) error {
	ctx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		created := !p.cfg.CreateTopics
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			pctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
			var err error
			if created {
				err = broker.Ping(pctx, p.cfg, p.cfg.EventsTopic)
			} else if err = broker.EnsureTopics(pctx, p.cfg); err == nil {
				// EnsureTopics has just read both topics' partitions: no
				// ping needed on top.
				created = true
				p.log.Info("kafka topics ready", "events", p.cfg.EventsTopic, "dead_letters", p.cfg.DeadLetterTopic)
			}
			cancel()
			p.setReady(err)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

func (p *KafkaPublisher) setReady(err error) {
	prev := p.ready.Load()
	if (*prev == nil) != (err == nil) {
		if err != nil {
			p.log.Warn("kafka not ready", "err", err)
		} else {
			p.log.Info("kafka ready", "brokers", p.cfg.Brokers)
		}
	}
	p.ready.Store(&err)
}

// Ready returns nil when the last probe or publish succeeded.
func (p *KafkaPublisher) Ready() error { return *p.ready.Load() }

// Publish writes msgs and waits for all in-sync replicas to acknowledge.
func (p *KafkaPublisher) Publish(ctx context.Context, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := p.producer.Produce(ctx, msgs); err != nil {
		err = fmt.Errorf("publishing %d messages to %s: %w", len(msgs), p.cfg.EventsTopic, err)
		p.setReady(err)
		return err
	}
	return nil
}

// Shutdown stops the probe and flushes and closes the producer.
func (p *KafkaPublisher) Shutdown(ctx context.Context) error {
	if p.cancel != nil {
		p.cancel()
	}
	p.wg.Wait()
	return p.producer.Close(ctx)
}
