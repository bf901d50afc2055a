package bus

import (
	"context"
	"errors"
)

// Header is one message header (trace context, dead-letter reasons).
type Header struct {
	Key   string
	Value []byte
}

// Message is one record on the bus. Publishers use Key, Value and Headers;
// a Source fills in where it read the message from.
type Message struct {
	// Key picks the partition (events of one user share a key, so a
	// partition holds them in order); nil spreads messages round-robin.
	Key []byte
	// Value is the payload: an enriched event as JSON.
	Value []byte
	// Headers travel with the message.
	Headers []Header

	// Topic, Partition and Offset are the message's position, set by a
	// Source: a Kafka topic, partition and offset, or a local log's
	// identity (LogTopic), partition 0 and the record's sequence number.
	// Consumers store it with each row, so (Topic, Partition, Offset)
	// names one message for good.
	Topic     string
	Partition int
	Offset    int64
	// HighWater is the partition's next offset when the message was read
	// (0 when the source does not say), for the consumer's lag.
	HighWater int64
	// Epoch names the source's hold on the message's partition: messages
	// of one partition with the same non-zero Epoch were read in one
	// uninterrupted hold, during which no other reader of the source took
	// the partition's messages. A consumer that asked what was stored at
	// the hold's start then knows the rest from its own writes (see
	// sinks/consumer's stored offsets). 0: the source does not say, and
	// the consumer asks before every batch. Epochs are the reader's own:
	// they compare only among messages of one Source value.
	Epoch int64
}

// Publisher makes messages durable. Publish returns nil only once every
// message is durably stored (on Kafka: acknowledged by all in-sync
// replicas; in a local log: fsynced); on error some messages may have been
// stored, and the caller answers so that the client retries all of them
// (consumers deduplicate by event_id). Publish keeps no reference to the
// msgs slice after it returns (it may keep the messages' keys, values and
// headers): the caller may reuse the slice's array.
type Publisher interface {
	Publish(ctx context.Context, msgs []Message) error
	// Ready returns nil when Publish can be expected to succeed.
	Ready() error
}

// Source is where a consumer reads: Kafka's consumer group (bus/broker) or
// a local log (LogReader). Fetch blocks until a message is there or ctx
// ends. Commit records durably, before it returns, that the messages given
// (and everything before them in their partitions) were delivered: after a
// restart, reading resumes after them.
type Source interface {
	Fetch(ctx context.Context) (Message, error)
	Commit(ctx context.Context, msgs ...Message) error
	Close() error
}

// BatchSource is a Source that hands over, in one call, what it has read
// already: FetchBatch appends to buf at least one message and at most max,
// blocking like Fetch for the first only. A consumer that takes messages
// one by one pays a channel hand-off and its bookkeeping per message; at
// 150k messages/s that was a twentieth of its CPU.
type BatchSource interface {
	FetchBatch(ctx context.Context, buf []Message, max int) ([]Message, error)
}

// DeadLetters takes messages that cannot be stored: the dead-letter topic
// (bus/broker) or a local log (LogWriter).
type DeadLetters interface {
	WriteMessages(ctx context.Context, msgs ...Message) error
	Close() error
}

// Tail gives the messages that close the share of one publish that goes
// to one partition: idx are the indices of that share's messages in the
// publish's msgs, in order; spooled says whether they go to the local
// spool rather than to the bus directly. Ingest's audit records are the
// tail of the events they count (collector/audit.go).
type Tail func(idx []int, spooled bool) []Message

// TailPublisher is a Publisher that stores each partition's share of a
// publish together with its tail, all or none: on Kafka one record batch
// of the partition (bus/broker), in a local log one append, which the log
// keeps whole or as a prefix after a crash, the tails last.
type TailPublisher interface {
	Publisher
	PublishTails(ctx context.Context, msgs []Message, tail Tail) error
}

// PublishWithTail publishes msgs to p, each partition's share followed by
// its tail (tail may be nil). A TailPublisher stores a share and its tail
// in one write. Another publisher may store some messages of a publish
// and not others, so it gets the tail of all of msgs in a publish of its
// own, once it acknowledged every one of them: a stored tail always means
// its messages are stored.
func PublishWithTail(ctx context.Context, p Publisher, msgs []Message, tail Tail) error {
	if tail == nil {
		return p.Publish(ctx, msgs)
	}
	if tp, ok := p.(TailPublisher); ok {
		return tp.PublishTails(ctx, msgs, tail)
	}
	if err := p.Publish(ctx, msgs); err != nil {
		return err
	}
	if t := tail(Indices(len(msgs)), false); len(t) > 0 {
		return p.Publish(ctx, t)
	}
	return nil
}

// Indices is 0, 1, ..., n-1: the idx of a Tail over a whole publish.
func Indices(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// withTail is msgs followed by their tail as one share, appended in
// place when msgs has room.
func withTail(msgs []Message, tail Tail, spooled bool) []Message {
	if tail == nil {
		return msgs
	}
	if t := tail(Indices(len(msgs)), spooled); len(t) > 0 {
		return append(msgs, t...)
	}
	return msgs
}

// ErrNotReady is returned by a publisher's Ready before the first
// successful probe.
var ErrNotReady = errors.New("publisher not ready")
