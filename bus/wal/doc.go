// Package wal is a local, durable, append-only log (write-ahead log) of
// opaque records. The bus uses it two ways: as a spool in front of
// Kafka (ingest appends accepted events while Kafka is slow or unreachable, a
// forwarder replays them in order), and, in all-in-one mode, as the message
// bus itself (ingest appends, a consumer reads batches from a named cursor,
// inserts them into ClickHouse and then commits the cursor).
//
// The package owns one directory: its segment files, its cursor files and
// its LOCK file. It must not be shared between two Logs (Open takes an
// exclusive lock on the directory) and nothing else may write into it. It
// does not know what a payload means: it neither parses, compresses nor
// deduplicates records; exactly-once effects are up to the consumer (for
// example by deduplicating downstream on the sequence number).
//
// # On-disk format
//
// The directory holds segment files named after the sequence number of their
// first record, zero-padded to 20 digits: 00000000000000000001.seg. A segment
// is a plain concatenation of records, without a file header. Each record is
//
//	offset size  field
//	0      4     length  uint32, little-endian: payload length in bytes
//	4      4     crc     uint32, little-endian: CRC-32C (Castagnoli) of the
//	                     length field, the seq field and the payload, in that order
//	8      8     seq     uint64, little-endian: sequence number
//	16     n     payload
//
// Sequence numbers start at 1 and increase by one per record, within a
// segment and from one segment to the next (only RepairCorrupt can leave a
// gap). A payload is at most MaxRecordBytes long. Cursors live in
// cursors/<name>: two checksummed slots of (seq, generation), of which a
// commit overwrites the older in place and fsyncs, so committing needs no
// new disk block (see README.md). The file ID holds the log's identity
// (Log.ID): sequence numbers are unique within it, and a wiped directory
// gets a new one. HandOver moves the position of one reader to another.
//
// # Durability
//
// Append returns nil only after its records were written and fsynced to the
// segment file (and, for a new segment, its directory entry fsynced). With
// Fsync "always" the writer fsyncs as soon as it has written what is queued,
// so concurrent appenders share one fsync (group commit). With Fsync
// "interval" the writer fsyncs every FsyncInterval and Append waits for the
// next such fsync. Readers only ever see records that are durable, so a
// record handed to a reader cannot vanish in a crash and its sequence number
// cannot be reused.
//
// # Recovery
//
// Open scans every segment and verifies every checksum. In the last segment,
// a torn record (a crash in the middle of a write) or a record failing its
// checksum ends the valid data: the file is truncated to the end of the last
// good record, which by construction loses only records whose Append never
// returned nil. In an older (sealed) segment, any invalid record is reported
// as ErrCorrupt, unless Config.RepairCorrupt is set, in which case the
// segment is cut at the damage, the loss is logged and numbering continues.
//
// # Goroutines
//
// A Log owns one writer goroutine (which also runs the periodic fsync); Close
// stops it after making everything already written durable. Read blocks the
// calling goroutine only.
package wal
