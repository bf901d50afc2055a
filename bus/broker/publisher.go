package broker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sora3web/telemetry/bus"
)

// KafkaPublisher publishes to the events topic with Producer
// (natural batching over kafka-go's protocol and transport).
type KafkaPublisher struct {
	cfg      Config
	log      *slog.Logger
	producer *Producer

	ready  atomic.Pointer[error]
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ bus.TailPublisher = (*KafkaPublisher)(nil)

// NewKafkaPublisher makes a publisher; it does no I/O until Start.
func NewKafkaPublisher(cfg Config, log *slog.Logger) (*KafkaPublisher, error) {
	pr, err := NewProducer(cfg, cfg.EventsTopic)
	if err != nil {
		return nil, err
	}
	p := &KafkaPublisher{cfg: cfg, log: log, producer: pr}
	notReady := bus.ErrNotReady
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
				err = Ping(pctx, p.cfg, p.cfg.EventsTopic)
			} else if err = EnsureTopics(pctx, p.cfg); err == nil {
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
func (p *KafkaPublisher) Publish(ctx context.Context, msgs []bus.Message) error {
	return p.PublishTails(ctx, msgs, nil)
}

// PublishTails is Publish with each partition's share of msgs followed by
// tail(idx, false) in the same record batch (Producer.ProduceWithTails):
// stored all or none.
func (p *KafkaPublisher) PublishTails(ctx context.Context, msgs []bus.Message, tail bus.Tail) error {
	if len(msgs) == 0 {
		return nil
	}
	var pt func(idx []int) []bus.Message
	if tail != nil {
		pt = func(idx []int) []bus.Message { return tail(idx, false) }
	}
	if err := p.producer.ProduceWithTails(ctx, msgs, pt); err != nil {
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
