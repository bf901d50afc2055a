package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
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
//
// Rebalances are fenced: a member gives up its partitions only once every
// message it handed out of them is committed (or after fenceTimeout). With
// kafka-go's group Reader, a member rejoined at once while its consumer
// still held a batch of the revoked partitions; the new owner read the
// same offsets, and both inserted them when the old owner's insert had not
// landed before the new owner read the stored offsets (seen with three
// consumer processes and a fourth joining: rollups_daily counted 8113
// events twice). Here the group's generation (kafka-go's ConsumerGroup)
// lasts until those messages are committed: the member does not rejoin
// before, and Kafka's eager rebalance assigns nothing until every member
// has rejoined.
type Reader struct {
	cfg Config
	rc  ReaderConfig
	log *slog.Logger

	mu    sync.Mutex
	group *kafka.ConsumerGroup // nil until the topic answered
	// handed maps a partition to the generation its last handed-out
	// message came from; Commit commits through that generation.
	handed map[int]*generation
	// epochs counts the generations joined; each hands out its messages
	// with its count as bus.Message.Epoch (kafka's generation ids are the
	// group's, and need not differ across a coordinator's restart).
	epochs int64

	msgs   chan fetched  // from the partition readers of the current generation
	closed chan struct{} // Close was called
	done   chan struct{} // the generation loop has returned
	once   sync.Once
}

// rebalanceTimeout is how long the coordinator waits for every member to
// rejoin during a rebalance (kafka-go's default).
const rebalanceTimeout = 30 * time.Second

// fenceTimeout bounds how long a revoked generation waits for its handed-
// out messages to be committed: half the session timeout (no heartbeats
// go out meanwhile, and the coordinator expels a member silent for a
// session), at most 20s. Past it the partitions are released anyway and
// the late commit is dropped: the next owner reads them again and the
// stored offsets skip what was inserted, unless the late insert races the
// new owner's.
func (r *Reader) fenceTimeout() time.Duration {
	return min(r.rc.SessionTimeout/2, 20*time.Second)
}

// generation is the reader's side of one group generation.
type generation struct {
	g     *kafka.Generation
	epoch int64 // the reader's count of this generation (Reader.epochs)

	mu          sync.Mutex
	ended       bool          // revoked: hand out nothing more
	abandoned   bool          // fenceTimeout passed: commits are dropped
	outstanding map[int]int64 // partition -> highest offset handed out and not committed
	drained     chan struct{} // closed when ended and nothing is outstanding
}

// fetched is a message and the generation whose partition reader read it.
type fetched struct {
	m   kafka.Message
	gen *generation
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
	return &Reader{cfg: cfg, rc: rc, log: log.With("topic", cfg.EventsTopic), handed: map[int]*generation{},
		msgs: make(chan fetched, 256), closed: make(chan struct{}), done: make(chan struct{})}, nil
}

// join starts the group, waiting for the topic first.
func (r *Reader) join(ctx context.Context) error {
	r.mu.Lock()
	joined := r.group != nil
	r.mu.Unlock()
	if joined {
		return nil
	}
	bo := backoff.New(r.rc.BackoffMin, r.rc.BackoffMax)
	for {
		err := r.topicReady(ctx)
		if err == nil {
			break
		}
		r.log.Warn("waiting for kafka before joining the consumer group", "err", err, "retry_in", bo.Next())
		if !bo.Wait(ctx) {
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.group != nil {
		return nil
	}
	select {
	case <-r.closed:
		return net.ErrClosed
	default:
	}
	g, err := r.newGroup()
	if err != nil {
		return fmt.Errorf("kafka reader: joining group %s: %w", r.rc.GroupID, err)
	}
	r.group = g
	r.log.Info("kafka reachable; joining the consumer group", "group", r.rc.GroupID)
	go r.generations(g)
	return nil
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

func (r *Reader) startOffset() int64 {
	if r.rc.StartOffset == "latest" {
		return kafka.LastOffset
	}
	return kafka.FirstOffset
}

func (r *Reader) errorLogger() kafka.Logger {
	return kafka.LoggerFunc(func(format string, args ...any) {
		r.log.Warn("kafka reader: " + fmt.Sprintf(format, args...))
	})
}

func (r *Reader) newGroup() (*kafka.ConsumerGroup, error) {
	return kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                r.rc.GroupID,
		Brokers:           r.cfg.Brokers,
		Dialer:            &kafka.Dialer{Timeout: r.cfg.DialTimeout},
		Topics:            []string{r.cfg.EventsTopic},
		SessionTimeout:    r.rc.SessionTimeout,
		HeartbeatInterval: r.rc.SessionTimeout / 10,
		RebalanceTimeout:  rebalanceTimeout,
		StartOffset:       r.startOffset(),
		// A topic made after the group joined (broker down at start), or
		// given more partitions, triggers a rebalance instead of leaving the
		// group assigned nothing.
		WatchPartitionChanges:  true,
		PartitionWatchInterval: 5 * time.Second,
		ErrorLogger:            r.errorLogger(),
	})
}

// generations runs each generation of the group until Close: a reader per
// assigned partition feeding r.msgs, and the fence that holds the
// generation open until what it handed out is committed.
func (r *Reader) generations(g *kafka.ConsumerGroup) {
	defer close(r.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-r.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		kg, err := g.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				return
			}
			// kafka-go backs off itself (JoinGroupBackoff) before it tries again.
			r.log.Warn("kafka reader: joining the next group generation", "err", err)
			continue
		}
		r.epochs++
		gen := &generation{g: kg, epoch: r.epochs, outstanding: map[int]int64{}, drained: make(chan struct{})}
		var parts []int
		for _, a := range kg.Assignments[r.cfg.EventsTopic] {
			parts = append(parts, a.ID)
			kg.Start(func(ctx context.Context) { r.readPartition(ctx, gen, a) })
		}
		kg.Start(func(ctx context.Context) { r.fence(ctx, gen) })
		r.log.Info("consumer group generation", "group", r.rc.GroupID, "generation", kg.ID, "partitions", parts)
	}
}

// readPartition feeds r.msgs from one assigned partition until the
// generation ends. It never returns before: a return would end the
// generation (kafka-go's rule for functions started on it).
func (r *Reader) readPartition(ctx context.Context, gen *generation, a kafka.PartitionAssignment) {
	pr := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   r.cfg.Brokers,
		Topic:     r.cfg.EventsTopic,
		Partition: a.ID,
		MinBytes:  1,
		MaxBytes:  r.rc.FetchMaxBytes,
		MaxWait:   r.rc.FetchMaxWait,
		// Room for a fetch's worth of messages (default 100): the
		// consumer drains tens of thousands per batch, and a small queue
		// made the partition reader block and wake per hundred messages.
		QueueCapacity: 4096,
		Dialer:        &kafka.Dialer{Timeout: r.cfg.DialTimeout},
		ErrorLogger:   r.errorLogger(),
	})
	defer pr.Close()
	if err := pr.SetOffset(a.Offset); err != nil {
		r.log.Error("kafka reader: setting the start offset", "partition", a.ID, "offset", a.Offset, "err", err)
		<-ctx.Done()
		return
	}
	bo := backoff.New(r.rc.BackoffMin, r.rc.BackoffMax)
	for {
		m, err := pr.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("kafka reader: fetching", "partition", a.ID, "err", err, "retry_in", bo.Next())
			if !bo.Wait(ctx) {
				return
			}
			continue
		}
		bo.Reset()
		select {
		case r.msgs <- fetched{m: m, gen: gen}:
		case <-ctx.Done():
			return
		}
	}
}

// fence holds the generation open after it was revoked until every
// message it handed out is committed, or fenceTimeout, or Close.
func (r *Reader) fence(ctx context.Context, gen *generation) {
	<-ctx.Done()
	gen.mu.Lock()
	gen.ended = true
	held := len(gen.outstanding)
	if held == 0 {
		close(gen.drained)
	}
	gen.mu.Unlock()
	if held == 0 {
		return
	}
	start, limit := time.Now(), r.fenceTimeout()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-gen.drained:
		r.log.Info("kafka reader: revoked partitions committed before rejoining", "generation", gen.g.ID, "partitions", held,
			"waited", time.Since(start))
	case <-t.C:
		gen.mu.Lock()
		gen.abandoned = true
		gen.mu.Unlock()
		r.log.Warn("kafka reader: revoked partitions not committed in time; releasing them", "generation", gen.g.ID,
			"partitions", held, "waited", limit)
	case <-r.closed:
	}
}

// Fetch returns the next message of the group's partitions (never
// auto-committed), waiting for the broker if it has not answered yet.
func (r *Reader) Fetch(ctx context.Context) (bus.Message, error) {
	if err := r.join(ctx); err != nil {
		return bus.Message{}, err
	}
	for {
		var f fetched
		select {
		case f = <-r.msgs:
		case <-ctx.Done():
			return bus.Message{}, ctx.Err()
		case <-r.done:
			return bus.Message{}, net.ErrClosed
		}
		if m, ok := r.hand(f); ok {
			return m, nil
		}
	}
}

// FetchBatch is Fetch for up to max messages: the first as Fetch, then
// those the partition readers have read already (see bus.BatchSource).
func (r *Reader) FetchBatch(ctx context.Context, buf []bus.Message, max int) ([]bus.Message, error) {
	m, err := r.Fetch(ctx)
	if err != nil {
		return buf, err
	}
	buf = append(buf, m)
	for len(buf) < max {
		select {
		case f := <-r.msgs:
			if m, ok := r.hand(f); ok {
				buf = append(buf, m)
			}
		default:
			return buf, nil
		}
	}
	return buf, nil
}

// hand records f as handed out and returns it, unless its generation was
// revoked: read before the revocation, handed to nobody, its next owner
// reads it again from the committed offset.
func (r *Reader) hand(f fetched) (bus.Message, bool) {
	gen := f.gen
	gen.mu.Lock()
	if gen.ended {
		gen.mu.Unlock()
		return bus.Message{}, false
	}
	gen.outstanding[f.m.Partition] = f.m.Offset
	gen.mu.Unlock()
	r.mu.Lock()
	r.handed[f.m.Partition] = gen
	r.mu.Unlock()
	m := toBus(f.m)
	m.Epoch = gen.epoch
	return m, true
}

func toBus(m kafka.Message) bus.Message {
	out := bus.Message{Key: m.Key, Value: m.Value, Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, HighWater: m.HighWaterMark}
	if len(m.Headers) > 0 {
		out.Headers = make([]bus.Header, len(m.Headers))
		for i, h := range m.Headers {
			out.Headers[i] = bus.Header{Key: h.Key, Value: h.Value}
		}
	}
	return out
}

// Commit commits the group's offsets past msgs, through the generation
// that handed them out, and returns once the coordinator has them. The
// commit of a generation whose partitions were released after
// fenceTimeout is dropped: they have another owner now.
func (r *Reader) Commit(ctx context.Context, msgs ...bus.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	last := map[int]int64{}
	for _, m := range msgs {
		if o, ok := last[m.Partition]; !ok || m.Offset > o {
			last[m.Partition] = m.Offset
		}
	}
	byGen := map[*generation]map[int]int64{}
	r.mu.Lock()
	for p, o := range last {
		gen := r.handed[p]
		if gen == nil {
			r.mu.Unlock()
			return fmt.Errorf("kafka reader: commit of partition %d, which was never fetched", p)
		}
		if byGen[gen] == nil {
			byGen[gen] = map[int]int64{}
		}
		byGen[gen][p] = o + 1 // the next offset to read
	}
	r.mu.Unlock()
	for gen, offsets := range byGen {
		gen.mu.Lock()
		abandoned := gen.abandoned
		gen.mu.Unlock()
		if !abandoned {
			err := commitOffsets(ctx, gen.g, r.cfg.EventsTopic, offsets)
			if err != nil && !gen.over() {
				return fmt.Errorf("kafka reader: committing %v of generation %d: %w", offsets, gen.g.ID, err)
			}
			if err != nil {
				// The coordinator has moved on (this member was expelled,
				// or the generation ended while the commit was retried):
				// the partitions have another owner, which reads them again
				// from the last commit; the stored offsets skip what was
				// inserted.
				abandoned = true
				r.log.Warn("kafka reader: commit of a finished generation refused; dropping it", "generation", gen.g.ID, "err", err)
			}
		}
		if abandoned {
			r.log.Warn("kafka reader: dropping the commit of released partitions", "generation", gen.g.ID, "offsets", offsets)
		}
		gen.committed(offsets)
	}
	return nil
}

// commitOffsets commits through g, giving up when ctx ends (kafka-go's
// CommitOffsets takes no context).
func commitOffsets(ctx context.Context, g *kafka.Generation, topic string, offsets map[int]int64) error {
	done := make(chan error, 1)
	go func() { done <- g.CommitOffsets(map[string]map[int]int64{topic: offsets}) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// over reports whether the generation was revoked.
func (g *generation) over() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ended
}

// committed forgets what offsets cover and lets a revoked generation go
// once nothing is outstanding.
func (g *generation) committed(offsets map[int]int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for p, next := range offsets {
		if o, ok := g.outstanding[p]; ok && o < next {
			delete(g.outstanding, p)
		}
	}
	if g.ended && len(g.outstanding) == 0 {
		select {
		case <-g.drained:
		default:
			close(g.drained)
		}
	}
}

// Close leaves the group.
func (r *Reader) Close() error {
	r.once.Do(func() { close(r.closed) })
	r.mu.Lock()
	g := r.group
	r.mu.Unlock()
	if g == nil {
		return nil
	}
	err := g.Close()
	<-r.done
	return err
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
