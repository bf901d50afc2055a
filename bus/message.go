package bus

import (
	"context"
	"errors"
	"fmt"
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

// ErrNotStored marks a publish error after which nothing of the publish
// was stored (the local log refused the append as a whole: full, closed,
// a write error), so nothing of it can reach a reader. Ingest's audit
// then need not void the records of the publish (collector/audit.go).
var ErrNotStored = errors.New("nothing of the publish was stored")

// notStored wraps err, an error of a local log's append of a whole
// publish, with ErrNotStored unless ctx ended while the append waited
// for its fsync: the records may then be in the log (wal.Log.Append).
func notStored(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrNotStored, err)
}

// ErrNotReady is returned by a publisher's Ready before the first
// successful probe.
var ErrNotReady = errors.New("publisher not ready")
