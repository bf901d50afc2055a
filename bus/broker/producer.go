package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	metadataapi "github.com/segmentio/kafka-go/protocol/metadata"
	produceapi "github.com/segmentio/kafka-go/protocol/produce"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/sora3web/telemetry/bus"
	"github.com/sora3web/telemetry/internal/backoff"
	"github.com/sora3web/telemetry/internal/obs"
)

// Producer writes messages to one topic with acks=all and natural batching:
// while a produce request is in flight, the messages that arrive meanwhile
// gather per partition and leave together in the next request, so batches
// grow with the load instead of with a timer. An idle producer sends at once
// (unless Config.Linger, 0 by default, holds each batch from its first
// record), so light load pays one round trip and
// heavy load pays fewer, larger requests: the broker's CPU per message falls
// as the rate rises.
//
// Partitions are shared among Config.Senders sender goroutines (partition p
// belongs to sender p % Senders); each sender has at most one request in
// flight, and one request carries a batch for every partition of that
// sender that has one, so order within a partition holds across retries.
//
// kafka-go's Writer, which this replaces on the ingest path, flushes every
// partition's batch on its own timer and queues the flushed batches behind
// each other, one produce request per partition batch: at 60k messages/s
// that is hundreds of small requests per second per partition, and the
// broker spent twice the CPU per message of the Java producer at the same
// rate (measured). The wire encoding, compression, connection pooling and
// metadata cache are still kafka-go's (protocol, Transport).
type Producer struct {
	cfg       Config
	codec     protocol.Attributes
	transport *kafka.Transport
	addr      net.Addr
	metrics   *producerMetrics

	balancer kafka.Hash

	mu      sync.Mutex
	parts   []*partBatches // indexed by partition; nil until metadata is read
	ids     []int          // 0..len(parts)-1, for the balancer
	senders []*sender
	closed  bool

	// refreshed is when refreshMetadata last dropped the transport's pools.
	refreshMu sync.Mutex
	refreshed time.Time

	// life ends when Close gives up waiting: retries stop waiting then.
	life   context.Context
	giveUp context.CancelFunc

	wg sync.WaitGroup
}

// ErrProducerClosed is returned by Produce after Close.
var ErrProducerClosed = errors.New("producer closed")

// batch gathers the records of one partition for one produce request. Done
// is closed once the broker answered for it (or it failed for good); err is
// set before that.
type batch struct {
	records []bus.Message
	time    time.Time // when the first record was added
	bytes   int64
	done    chan struct{}
	err     error
}

// partBatches is the queue of one partition: full batches waiting, then the
// one still filling.
type partBatches struct {
	partition int32
	sender    int      // index of the sender that owns the partition
	queue     []*batch // guarded by Producer.mu; the last one may still fill
}

// add appends a run, the messages of one publish to this partition
// (msgs[i] for i in idx, then tail), to the batch still filling, or to a
// new one when that cannot take all of them (maxRecords, or maxBytes
// unless it is empty), so that the broker stores them all or none (one
// record batch is appended and replicated whole). A run larger than one
// batch may hold is split over as many as it fills. It calls added for
// each batch it put messages in, and once more for a batch that filled up.
func (pb *partBatches) add(msgs []bus.Message, idx []int, tail []bus.Message, now time.Time, maxRecords int, maxBytes int64, added func(b *batch, fresh bool)) {
	each := func(f func(m bus.Message)) {
		for _, i := range idx {
			f(msgs[i])
		}
		for _, m := range tail {
			f(m)
		}
	}
	var size int64
	each(func(m bus.Message) { size += recordSize(m) })
	n := len(idx) + len(tail)
	var b *batch
	if q := pb.queue; len(q) > 0 {
		b = q[len(q)-1]
	}
	fits := n <= maxRecords && size <= maxBytes
	if b != nil && fits && (len(b.records)+n > maxRecords || b.bytes+size > maxBytes) {
		b = nil // the run whole in a batch of its own
	}
	fresh := false
	each(func(m bus.Message) {
		size := recordSize(m)
		if b == nil || len(b.records) >= maxRecords || (b.bytes+size > maxBytes && len(b.records) > 0) {
			if b != nil {
				added(b, fresh)
			}
			b = &batch{done: make(chan struct{}), time: now}
			pb.queue = append(pb.queue, b)
			fresh = true
		}
		b.records = append(b.records, m)
		b.bytes += size
	})
	added(b, fresh)
}

// recordSize is m's estimated size in a batch.
func recordSize(m bus.Message) int64 { return int64(len(m.Key) + len(m.Value) + recordOverhead) }

// full reports whether b holds as much as one request may carry for a
// partition; it then leaves without waiting out a linger.
func (b *batch) full(maxRecords int, maxBytes int64) bool {
	return len(b.records) >= maxRecords || b.bytes >= maxBytes
}

// recordOverhead estimates a record's framing in a batch (varint lengths,
// offset and time deltas, attributes).
const recordOverhead = 16

// sender owns a set of partitions and sends their batches, one request at
// a time.
type sender struct {
	wake  chan struct{} // one slot: "something is queued"
	parts []*partBatches
}

// NewProducer makes a producer for cfg.EventsTopic; topic is the topic to
// write (the events or the dead-letter topic). It does no I/O until the
// first Produce.
func NewProducer(cfg Config, topic string) (*Producer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	codec, _ := cfg.Codec()
	cfg.EventsTopic = topic
	pm, err := newProducerMetrics(topic)
	if err != nil {
		return nil, err
	}
	life, giveUp := context.WithCancel(context.Background())
	return &Producer{
		life:      life,
		giveUp:    giveUp,
		cfg:       cfg,
		metrics:   pm,
		codec:     protocol.Attributes(codec) & 0x7,
		transport: &kafka.Transport{DialTimeout: cfg.DialTimeout, IdleTimeout: time.Minute, MetadataTTL: 10 * time.Second},
		addr:      kafka.TCP(cfg.Brokers...),
	}, nil
}

// Produce writes msgs and returns once the broker has acknowledged every one
// of them with acks=all, or with the first error. On error, some messages may
// have been stored; callers that resend must tolerate duplicates. ctx bounds
// the wait, not the request: messages already queued are still sent.
func (p *Producer) Produce(ctx context.Context, msgs []bus.Message) error {
	return p.ProduceWithTails(ctx, msgs, nil)
}

// ProduceWithTails is Produce, each partition's share of msgs followed by
// tail(idx) (idx: the share's indices in msgs, in order; tail may be nil),
// and the share and its tail in one record batch, which the broker stores
// all or none. So when some partitions' writes fail (or the process dies
// during the request), a tail stored means its share is stored. A share
// with its tail larger than one batch (Config.BatchSize, BatchBytes) is
// split, and is then not stored all or none.
func (p *Producer) ProduceWithTails(ctx context.Context, msgs []bus.Message, tail func(idx []int) []bus.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	parts, err := p.partitions(ctx)
	if err != nil {
		return err
	}
	// The partition of each message (the balancer's round robin for keyless
	// messages is the producer's, so this reads it under mu), then each
	// partition's share, in the order of their first messages.
	byPart := make([][]int, len(parts))
	var order []int
	p.mu.Lock()
	for i, m := range msgs {
		part := p.balancer.Balance(kafka.Message{Key: m.Key}, p.ids...)
		if byPart[part] == nil {
			order = append(order, part)
		}
		byPart[part] = append(byPart[part], i)
	}
	p.mu.Unlock()
	tails := make([][]bus.Message, len(order))
	if tail != nil {
		for j, part := range order {
			tails[j] = tail(byPart[part])
		}
	}

	var waits []*batch
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrProducerClosed
	}
	now := time.Now()
	for j, part := range order {
		pb := parts[part]
		pb.add(msgs, byPart[part], tails[j], now, p.cfg.BatchSize, p.cfg.BatchBytes, func(b *batch, fresh bool) {
			if !slices.Contains(waits, b) {
				waits = append(waits, b)
			}
			if fresh || b.full(p.cfg.BatchSize, p.cfg.BatchBytes) {
				// A new batch (the first of an idle partition, or one started
				// because the last filled up) or a batch that filled: either
				// may end a linger. Other batches need no signal: their
				// sender already knows of them.
				select {
				case p.senders[pb.sender].wake <- struct{}{}:
				default:
				}
			}
		})
	}
	p.mu.Unlock()

	for _, b := range waits {
		select {
		case <-b.done:
			if b.err != nil {
				return b.err
			}
		case <-ctx.Done():
			return fmt.Errorf("waiting for the broker to acknowledge: %w", ctx.Err())
		}
	}
	return nil
}

// partitions returns the partition queues, reading the topic's partition
// count from the broker the first time.
func (p *Producer) partitions(ctx context.Context) ([]*partBatches, error) {
	p.mu.Lock()
	parts := p.parts
	p.mu.Unlock()
	if parts != nil {
		return parts, nil
	}
	n, err := p.partitionCount(ctx)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrProducerClosed
	}
	if p.parts != nil {
		return p.parts, nil
	}
	nsend := min(max(p.cfg.Senders, 1), n)
	p.senders = make([]*sender, nsend)
	for i := range p.senders {
		p.senders[i] = &sender{wake: make(chan struct{}, 1)}
	}
	parts = make([]*partBatches, n)
	p.ids = make([]int, n)
	for i := range parts {
		parts[i] = &partBatches{partition: int32(i), sender: i % nsend}
		s := p.senders[i%nsend]
		s.parts = append(s.parts, parts[i])
		p.ids[i] = i
	}
	p.parts = parts
	for _, s := range p.senders {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.run(s)
		}()
	}
	return parts, nil
}

// partitionCount asks the broker how many partitions the topic has. The
// count is read once: adding partitions to a live topic would move keys, and
// needs a restart of the collector to take effect.
func (p *Producer) partitionCount(ctx context.Context) (int, error) {
	c := &kafka.Client{Addr: p.addr, Transport: p.transport, Timeout: p.cfg.DialTimeout}
	res, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{p.cfg.EventsTopic}})
	if err != nil {
		return 0, fmt.Errorf("reading the partitions of %s: %w", p.cfg.EventsTopic, err)
	}
	for _, t := range res.Topics {
		if t.Name != p.cfg.EventsTopic {
			continue
		}
		if t.Error != nil {
			return 0, fmt.Errorf("reading the partitions of %s: %w", p.cfg.EventsTopic, t.Error)
		}
		if len(t.Partitions) == 0 {
			break
		}
		return len(t.Partitions), nil
	}
	return 0, fmt.Errorf("reading the partitions of %s: %w", p.cfg.EventsTopic, kafka.UnknownTopicOrPartition)
}

// run is one sender's loop: wait for queued batches and for them to be
// ready (see take), send the head batch of each of its partitions in one
// request, repeat. Queued batches are drained before run returns on Close.
func (p *Producer) run(s *sender) {
	t := time.NewTimer(0)
	<-t.C
	for {
		heads, wait, closed := p.take(s, time.Now())
		switch {
		case len(heads) > 0:
			p.send(heads)
		case wait > 0:
			// A new batch ends the wait early: it may mean one filled up.
			t.Reset(wait)
			select {
			case <-t.C:
			case <-s.wake:
				t.Stop()
			}
		case closed:
			return
		default:
			<-s.wake
		}
	}
}

// take detaches the head batch of every partition of s once the sender is
// ready to send: at once without a linger, on close, or when a head batch is
// full; otherwise when the oldest head batch has waited Config.Linger, the
// Java producer's linger.ms. Until then it returns how long is left. A
// batch detached here receives no more records.
func (p *Producer) take(s *sender, now time.Time) (heads []sendPart, wait time.Duration, closed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cfg.Linger > 0 && !p.closed {
		var oldest time.Time
		for _, pb := range s.parts {
			if len(pb.queue) > 1 || len(pb.queue) == 1 && pb.queue[0].full(p.cfg.BatchSize, p.cfg.BatchBytes) {
				oldest = time.Time{} // a full batch waits for nobody
				break
			}
			if len(pb.queue) == 1 && (oldest.IsZero() || pb.queue[0].time.Before(oldest)) {
				oldest = pb.queue[0].time
			}
		}
		if age := now.Sub(oldest); !oldest.IsZero() && age < p.cfg.Linger {
			return nil, p.cfg.Linger - age, false
		}
	}
	for _, pb := range s.parts {
		if len(pb.queue) == 0 {
			continue
		}
		heads = append(heads, sendPart{partition: pb.partition, b: pb.queue[0]})
		pb.queue[0] = nil
		pb.queue = pb.queue[1:]
	}
	return heads, 0, p.closed
}

type sendPart struct {
	partition int32
	b         *batch
}

// send produces heads in one request and retries partitions that failed with
// a retriable error, up to MaxAttempts in all, with backoff. Every head's
// waiters are released before send returns.
func (p *Producer) send(heads []sendPart) {
	bo := backoff.New(20*time.Millisecond, 200*time.Millisecond)
	for attempt, gaveUp := 1, false; ; attempt++ {
		errs := p.roundTrip(heads)
		var retry []sendPart
		if slices.ContainsFunc(errs, staleLeader) {
			p.refreshMetadata()
		}
		for i, h := range heads {
			err := errs[i]
			if err != nil && attempt < p.cfg.MaxAttempts && retriable(err) && !gaveUp {
				retry = append(retry, h)
				continue
			}
			if err != nil {
				err = fmt.Errorf("producing %d records to %s[%d]: %w", len(h.b.records), p.cfg.EventsTopic, h.partition, err)
			}
			h.b.err = err
			close(h.b.done)
		}
		if len(retry) == 0 {
			return
		}
		heads = retry
		gaveUp = !bo.Wait(p.life) // Close gave up: one last try, no more waits
	}
}

// roundTrip produces heads and returns one error per head (nil when
// stored). A produce request goes to one broker, so heads are grouped by
// their partition's leader (from the transport's metadata cache) and each
// group is one request; the groups go out concurrently.
func (p *Producer) roundTrip(heads []sendPart) []error {
	errs := make([]error, len(heads))
	ctx, cancel := context.WithTimeout(context.Background(), 2*p.cfg.DialTimeout)
	defer cancel()
	leaders, err := p.leaders(ctx)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	parts := make([]int32, len(heads))
	for i, h := range heads {
		parts[i] = h.partition
	}
	groups := groupByLeader(parts, leaders)
	if len(groups) == 1 {
		p.produce(ctx, heads, groups[0], errs)
		return errs
	}
	var wg sync.WaitGroup
	for _, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.produce(ctx, heads, g, errs)
		}()
	}
	wg.Wait()
	return errs
}

// leaders maps each partition of the topic to its leader's broker id, from
// the transport's metadata cache (refreshed every MetadataTTL).
func (p *Producer) leaders(ctx context.Context) (map[int32]int32, error) {
	m, err := p.transport.RoundTrip(ctx, p.addr, &metadataapi.Request{TopicNames: []string{p.cfg.EventsTopic}})
	if err != nil {
		return nil, fmt.Errorf("reading the leaders of %s: %w", p.cfg.EventsTopic, err)
	}
	res, ok := m.(*metadataapi.Response)
	if !ok {
		return nil, fmt.Errorf("reading the leaders of %s: unexpected response %T", p.cfg.EventsTopic, m)
	}
	out := map[int32]int32{}
	for _, t := range res.Topics {
		if t.Name != p.cfg.EventsTopic {
			continue
		}
		for _, pt := range t.Partitions {
			out[pt.PartitionIndex] = pt.LeaderID
		}
	}
	return out, nil
}

// groupByLeader splits the indexes of parts by the leader of each partition,
// in order of first appearance; partitions without a known leader form one
// group of their own (its request then fails with a clear error).
func groupByLeader(parts []int32, leaders map[int32]int32) [][]int {
	var groups [][]int
	index := map[int32]int{} // leader -> group
	for i, pt := range parts {
		l, ok := leaders[pt]
		if !ok {
			l = -1
		}
		g, ok := index[l]
		if !ok {
			g = len(groups)
			index[l] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	return groups
}

// produce sends one produce request for heads[idx...] (partitions with the
// same leader) and fills errs at those indexes.
func (p *Producer) produce(ctx context.Context, heads []sendPart, idx []int, errs []error) {
	req := &produceapi.Request{
		Acks:    int16(kafka.RequireAll),
		Timeout: int32(p.cfg.DialTimeout / time.Millisecond),
		Topics:  []produceapi.RequestTopic{{Topic: p.cfg.EventsTopic}},
	}
	group := make([]sendPart, len(idx))
	for j, i := range idx {
		h := heads[i]
		group[j] = h
		req.Topics[0].Partitions = append(req.Topics[0].Partitions, produceapi.RequestPartition{
			Partition: h.partition,
			RecordSet: protocol.RecordSet{Attributes: p.codec, Records: &recordReader{msgs: h.b.records, time: h.b.time}},
		})
	}
	start := time.Now()
	m, err := p.transport.RoundTrip(ctx, p.addr, req)
	if err == nil {
		if _, ok := m.(*produceapi.Response); !ok {
			err = fmt.Errorf("unexpected response %T", m)
		}
	}
	got := map[int32]error{}
	if err == nil {
		for _, t := range m.(*produceapi.Response).Topics {
			for _, rp := range t.Partitions {
				got[rp.Partition] = nil
				if rp.ErrorCode != 0 {
					got[rp.Partition] = kafka.Error(rp.ErrorCode)
				}
			}
		}
	}
	gerrs := make([]error, len(idx))
	for j, i := range idx {
		e := err
		if e == nil {
			var ok bool
			if e, ok = got[heads[i].partition]; !ok {
				e = fmt.Errorf("no answer for partition %d", heads[i].partition)
			}
		}
		errs[i], gerrs[j] = e, e
	}
	p.metrics.record(start, group, gerrs)
}

// recordReader reads a batch's messages as records. It is made afresh for
// every attempt: encoding consumes the key and value readers.
type recordReader struct {
	msgs       []bus.Message
	time       time.Time
	i          int
	rec        protocol.Record
	headers    []protocol.Header // reused: the encoder is done with a record before the next
	key, value bytesReader
}

// ReadRecord returns the next record, reusing one Record and its readers:
// the encoder is done with a record before it asks for the next.
func (r *recordReader) ReadRecord() (*protocol.Record, error) {
	if r.i >= len(r.msgs) {
		return nil, io.EOF
	}
	m := &r.msgs[r.i]
	r.i++
	r.headers = r.headers[:0]
	for _, h := range m.Headers {
		r.headers = append(r.headers, protocol.Header{Key: h.Key, Value: h.Value})
	}
	r.rec = protocol.Record{Time: r.time, Headers: r.headers}
	if m.Key != nil {
		r.key.Reset(m.Key)
		r.rec.Key = &r.key
	}
	r.value.Reset(m.Value)
	r.rec.Value = &r.value
	return &r.rec, nil
}

type bytesReader struct{ bytes.Reader }

func (*bytesReader) Close() error { return nil }

// retriable reports whether resending may succeed: a temporary Kafka error
// (leader moved, not enough replicas yet, timeout) or a dropped connection.
func retriable(err error) bool {
	var ke kafka.Error
	if errors.As(err, &ke) {
		return ke.Temporary()
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF)
}

// staleLeader reports whether err may come from a partition leader that the
// transport's metadata names but that leads no more: its broker cannot be
// reached, or it answered that it is not (or no longer) the leader.
func staleLeader(err error) bool {
	if err == nil {
		return false
	}
	var ke kafka.Error
	if errors.As(err, &ke) {
		switch ke {
		case kafka.LeaderNotAvailable, kafka.NotLeaderForPartition, kafka.BrokerNotAvailable,
			kafka.FencedLeaderEpoch, kafka.UnknownLeaderEpoch, kafka.UnknownTopicOrPartition:
			return true
		}
		return false
	}
	return retriable(err)
}

// metadataRefreshEvery bounds how often refreshMetadata drops the
// transport's connections: a lost broker fails every request to it until
// the controller has elected new leaders (broker.session.timeout.ms, 9s by
// default).
const metadataRefreshEvery = time.Second

// refreshMetadata makes the next request read the cluster's metadata
// afresh. kafka-go's Transport refreshes its metadata cache only every
// MetadataTTL, never on a produce error, so after a leader is lost it would
// keep sending to the dead broker for up to MetadataTTL past the election;
// dropping its connection pools (requests in flight finish first) drops
// the cache with them. At most once per metadataRefreshEvery.
func (p *Producer) refreshMetadata() {
	p.refreshMu.Lock()
	defer p.refreshMu.Unlock()
	if time.Since(p.refreshed) < metadataRefreshEvery {
		return
	}
	p.refreshed = time.Now()
	p.transport.CloseIdleConnections()
}

// Close sends what is queued, waits for the senders to finish (or ctx) and
// closes the connections. Produce fails with ErrProducerClosed afterwards.
func (p *Producer) Close(ctx context.Context) error {
	defer p.giveUp() // on giving up: retry waits stop, what is in flight fails
	p.mu.Lock()
	p.closed = true
	for _, s := range p.senders {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	defer p.transport.CloseIdleConnections()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("closing the producer of %s: %w", p.cfg.EventsTopic, ctx.Err())
	}
}

// producerMetrics are the producer's OpenTelemetry instruments, from the
// global MeterProvider: how many requests, how many records each carried
// (the natural batch size) and how long the broker took to answer.
type producerMetrics struct {
	requests metric.Int64Counter
	records  metric.Int64Histogram
	duration metric.Float64Histogram
	queued   metric.Float64Histogram
	ok, fail metric.AddOption
	topic    metric.RecordOption
}

func newProducerMetrics(topic string) (*producerMetrics, error) {
	meter := otel.Meter("github.com/sora3web/telemetry/bus/broker")
	m := &producerMetrics{
		ok:    metric.WithAttributes(attribute.String("topic", topic), attribute.String("outcome", "ok")),
		fail:  metric.WithAttributes(attribute.String("topic", topic), attribute.String("outcome", "error")),
		topic: metric.WithAttributes(attribute.String("topic", topic)),
	}
	var err error
	if m.requests, err = meter.Int64Counter("telemetry.kafka.produce.requests",
		metric.WithDescription("Produce requests sent to Kafka, by topic and outcome.")); err != nil {
		return nil, err
	}
	if m.records, err = meter.Int64Histogram("telemetry.kafka.produce.records",
		metric.WithDescription("Records per produce request (all partitions of the request): the batch size that the load made."),
		metric.WithExplicitBucketBoundaries(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)); err != nil {
		return nil, err
	}
	if m.queued, err = meter.Float64Histogram("telemetry.kafka.produce.queue_time", metric.WithUnit("s"),
		metric.WithDescription("Time from a batch's first record to its request leaving: the wait for the request in flight before it (plus kafka.linger)."),
		obs.LatencyBuckets()); err != nil {
		return nil, err
	}
	if m.duration, err = meter.Float64Histogram("telemetry.kafka.produce.duration", metric.WithUnit("s"),
		metric.WithDescription("Produce request round trip, encoding and compression included, until acks=all."),
		obs.LatencyBuckets()); err != nil {
		return nil, err
	}
	return m, nil
}

// record counts one request; it failed when any partition of it did.
func (m *producerMetrics) record(start time.Time, heads []sendPart, errs []error) {
	ctx := context.Background()
	n := 0
	for _, h := range heads {
		n += len(h.b.records)
	}
	outcome := m.ok
	if slices.ContainsFunc(errs, func(e error) bool { return e != nil }) {
		outcome = m.fail
	}
	m.requests.Add(ctx, 1, outcome)
	m.records.Record(ctx, int64(n), m.topic)
	m.duration.Record(ctx, time.Since(start).Seconds(), m.topic)
	for _, h := range heads {
		m.queued.Record(ctx, start.Sub(h.b.time).Seconds(), m.topic)
	}
}
