// Package bus owns moving events between ingest and the consumers: the
// neutral message (Message: key, value, headers and, once read, its
// position), the contracts of the two sides (Publisher for ingest, Source
// and DeadLetters for consumers), the local durable log as a bus of its
// own (LogPublisher, LogReader, LogWriter over bus/wal) and the spool that
// keeps ingest accepting while Kafka cannot (SpoolPublisher). Kafka itself
// is bus/broker; the log is bus/wal.
//
// It must not know what a message carries (events, their schema, their
// rows) nor who publishes or consumes: ingest and the consumer import the
// bus, never each other. kafka-go is imported only by bus/broker.
package bus
