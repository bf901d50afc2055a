package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sora3web/telemetry/bus/wal"
	"github.com/sora3web/telemetry/internal/backoff"
)

// SpoolConfig configures the local spool in front of Kafka.
type SpoolConfig struct {
	// DirectTimeout bounds a direct publish to Kafka before the request's
	// events go to the local log instead. Default 1s.
	DirectTimeout time.Duration `mapstructure:"direct_timeout"`
	// ForwardBatch is the most records the forwarder replays per Kafka
	// write. Default 1000.
	ForwardBatch int `mapstructure:"forward_batch"`
}

// DefaultSpoolConfig returns the documented defaults.
func DefaultSpoolConfig() SpoolConfig {
	return SpoolConfig{DirectTimeout: time.Second, ForwardBatch: 1000}
}

// Validate names the invalid field.
func (c SpoolConfig) Validate() error {
	if c.DirectTimeout <= 0 {
		return errors.New("spool.direct_timeout: must be > 0")
	}
	if c.ForwardBatch <= 0 {
		return errors.New("spool.forward_batch: must be > 0")
	}
	return nil
}

// SpoolCursor is the local-log cursor of the Kafka forwarder.
const SpoolCursor = "kafka-forwarder"

// SpoolPublisher publishes to Kafka directly while Kafka keeps up, and
// into the local log when it cannot (unreachable, slow, or while earlier
// events still wait in the log, so a user's events stay in order). A
// forwarder replays the log to Kafka in order and commits what Kafka
// acknowledged. Either way Publish returns nil only once the events are
// durable: on Kafka (acks=all) or in the local log (fsynced).
type SpoolPublisher struct {
	cfg    SpoolConfig
	kafka  Publisher
	wal    *wal.Log
	logger *slog.Logger

	mu       sync.RWMutex // appends hold R; the forwarder holds W to leave spooling
	spooling atomic.Bool

	cancel context.CancelFunc
	done   chan struct{}
}

var _ TailPublisher = (*SpoolPublisher)(nil)

// NewSpoolPublisher spools for k into l. l must have been opened with the
// spool's cursor or accept new cursors.
func NewSpoolPublisher(cfg SpoolConfig, k Publisher, l *wal.Log, logger *slog.Logger) (*SpoolPublisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := l.Cursor(SpoolCursor); err != nil {
		return nil, fmt.Errorf("registering the spool cursor: %w", err)
	}
	p := &SpoolPublisher{cfg: cfg, kafka: k, wal: l, logger: logger}
	committed, err := l.Committed(SpoolCursor)
	if err != nil {
		return nil, err
	}
	p.spooling.Store(committed < l.Stats().LastSeq) // a backlog from before a restart
	return p, nil
}

// Start runs the forwarder until Shutdown.
func (p *SpoolPublisher) Start(ctx context.Context) error {
	ctx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	p.done = make(chan struct{})
	go p.forward(ctx)
	return nil
}

// Shutdown stops the forwarder; what it has not replayed stays in the log
// for the next start.
func (p *SpoolPublisher) Shutdown(ctx context.Context) error {
	if p.cancel == nil {
		return nil
	}
	p.cancel()
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stopping the spool forwarder: %w", ctx.Err())
	}
}

// Ready is nil when events can be made durable somewhere: on Kafka or in
// the local log.
func (p *SpoolPublisher) Ready() error {
	kerr := p.kafka.Ready()
	if kerr == nil {
		return nil
	}
	if lerr := p.wal.Healthy(); lerr != nil {
		return errors.Join(kerr, lerr)
	}
	return nil
}

// Spooling reports whether new events currently go to the local log.
func (p *SpoolPublisher) Spooling() bool { return p.spooling.Load() }

// Publish makes msgs durable on Kafka or, failing that, in the local log.
func (p *SpoolPublisher) Publish(ctx context.Context, msgs []Message) error {
	return p.PublishTails(ctx, msgs, nil)
}

// PublishTails is Publish for a publish whose partitions' shares each end
// with a tail (tail may be nil), which depends on where they go:
// tail(idx, false) to Kafka, tail(idx, true) to the local log (ingest's
// audit records say "published" or "spooled").
//
// To Kafka each partition's share goes with its tail in one record batch
// (PublishWithTail), stored all or none: a process killed during a write
// over several partitions leaves some shares stored with their tails and
// the others not at all, never a tail without its messages. A Kafka
// publish that fails may have stored some shares; the local log then
// takes all of msgs with the spooled tail of all of them, which the
// forwarder sends to Kafka after them (the copies are deduplicated by the
// consumer, which counts them so).
//
// To the local log the tail is appended to msgs in one append (the log
// keeps a prefix of an append after a crash), in place when msgs has room
// for it, so the caller must not use msgs' capacity beyond its length; a
// request's events need not be copied for the record of their group. A
// Publisher keeps no slice it was given (see Publisher), so that is safe.
func (p *SpoolPublisher) PublishTails(ctx context.Context, msgs []Message, tail Tail) error {
	if !p.spooling.Load() && p.kafka.Ready() == nil {
		dctx, cancel := context.WithTimeout(ctx, p.cfg.DirectTimeout)
		err := PublishWithTail(dctx, p.kafka, msgs, tail)
		cancel()
		if err == nil {
			return nil
		}
		p.logger.Warn("kafka publish failed; spooling to the local log", "events", len(msgs), "err", err)
	}
	all := withTail(msgs, tail, true)
	p.mu.RLock()
	defer p.mu.RUnlock()
	p.spooling.Store(true)
	if _, _, err := p.wal.Append(ctx, encodeAll(all)); err != nil {
		return fmt.Errorf("spooling %d messages to the local log: %w", len(all), err)
	}
	return nil
}

// forward replays the log to Kafka in order, committing after each
// acknowledged write, until ctx ends.
func (p *SpoolPublisher) forward(ctx context.Context) {
	defer close(p.done)
	bo := backoff.New(50*time.Millisecond, 5*time.Second)
	for ctx.Err() == nil {
		recs, err := p.wal.Read(ctx, SpoolCursor, p.cfg.ForwardBatch, 4<<20)
		if err != nil {
			if ctx.Err() == nil {
				p.logger.Error("reading the spool", "err", err)
				bo.Wait(ctx)
			}
			continue
		}
		msgs := make([]Message, 0, len(recs))
		for _, r := range recs {
			m, err := DecodeMessage(r.Payload)
			if err != nil {
				p.logger.Error("dropping an undecodable spool record", "seq", r.Seq, "err", err)
				continue
			}
			msgs = append(msgs, m)
		}
		if !p.replay(ctx, msgs, bo) {
			return // ctx ended mid-replay; the records stay uncommitted
		}
		bo.Reset()
		last := recs[len(recs)-1].Seq
		if err := p.wal.Commit(SpoolCursor, last); err != nil {
			p.logger.Error("committing the spool cursor", "seq", last, "err", err)
			continue
		}
		p.mu.Lock()
		if p.wal.Stats().LastSeq == last {
			if p.spooling.Swap(false) {
				p.logger.Info("spool drained; publishing to kafka directly again", "seq", last)
			}
		}
		p.mu.Unlock()
	}
}

// replay publishes msgs to Kafka, retrying with backoff bo, and reports
// whether they were published: only then may the spool cursor move. It is
// false when ctx ends first, even if it ended before the first try (the
// forwarder once took a nil error left over from its read for success and
// committed records Kafka never got).
func (p *SpoolPublisher) replay(ctx context.Context, msgs []Message, bo *backoff.Backoff) bool {
	for ctx.Err() == nil {
		err := p.kafka.Publish(ctx, msgs)
		if err == nil {
			return true
		}
		p.logger.Warn("replaying the spool to kafka failed; retrying", "records", len(msgs), "backoff", bo.Next(), "err", err)
		bo.Wait(ctx)
	}
	return false
}
