package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// headerSize is the size of a record's header: length, crc, seq.
const headerSize = 16

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recordSize is the on-disk size of a record with an n-byte payload.
func recordSize(n int) int64 { return headerSize + int64(n) }

// appendRecord appends the encoding of one record to dst.
func appendRecord(dst []byte, seq uint64, payload []byte) []byte {
	var h [headerSize]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint64(h[8:16], seq)
	binary.LittleEndian.PutUint32(h[4:8], recordCRC(h[:], payload))
	dst = append(dst, h[:]...)
	return append(dst, payload...)
}

// recordCRC is the checksum of a record: CRC-32C over the length field, the
// seq field and the payload.
func recordCRC(h []byte, payload []byte) uint32 {
	crc := crc32.Update(0, castagnoli, h[0:4])
	crc = crc32.Update(crc, castagnoli, h[8:16])
	return crc32.Update(crc, castagnoli, payload)
}

// Reasons a scan stops before the end of a segment. They describe damage;
// callers decide whether it is a torn tail (cut) or corruption (ErrCorrupt).
var (
	errTorn     = errors.New("record cut short by the end of the file")
	errChecksum = errors.New("record checksum mismatch")
	errLength   = errors.New("record length out of range")
	errSequence = errors.New("record sequence number out of order")
)

// scanner decodes the records of one segment, in order, checking lengths,
// checksums and sequence numbers.
type scanner struct {
	r      *bufio.Reader
	remain int64  // bytes left in the segment after off
	off    int64  // offset of the next record
	next   uint64 // sequence number the next record must carry; 0: any
	hdr    [headerSize]byte
	buf    []byte
}

// newScanner scans size bytes from r. If firstSeq is not 0 the first record
// must carry it; every later record must carry its predecessor's seq + 1.
func newScanner(r io.Reader, size int64, firstSeq uint64) *scanner {
	return &scanner{r: bufio.NewReaderSize(r, 256<<10), remain: size, next: firstSeq}
}

// scan decodes the next record. The payload is valid until the next call.
// It returns io.EOF exactly at the end of the data, and one of errTorn,
// errChecksum, errLength or errSequence (wrapped with the offset) when the
// record at s.off is invalid; s.off then still points at that record.
func (s *scanner) scan() (seq uint64, payload []byte, err error) {
	if s.remain == 0 {
		return 0, nil, io.EOF
	}
	if s.remain < headerSize {
		return 0, nil, fmt.Errorf("at offset %d: %w", s.off, errTorn)
	}
	if _, err := io.ReadFull(s.r, s.hdr[:]); err != nil {
		return 0, nil, fmt.Errorf("read header at offset %d: %w", s.off, err)
	}
	n := binary.LittleEndian.Uint32(s.hdr[0:4])
	if n > MaxRecordBytes {
		return 0, nil, fmt.Errorf("at offset %d: length %d: %w", s.off, n, errLength)
	}
	if int64(n) > s.remain-headerSize {
		return 0, nil, fmt.Errorf("at offset %d: length %d with %d bytes left: %w", s.off, n, s.remain-headerSize, errTorn)
	}
	if cap(s.buf) < int(n) {
		s.buf = make([]byte, n)
	}
	payload = s.buf[:n]
	if _, err := io.ReadFull(s.r, payload); err != nil {
		return 0, nil, fmt.Errorf("read payload at offset %d: %w", s.off, err)
	}
	if got, want := recordCRC(s.hdr[:], payload), binary.LittleEndian.Uint32(s.hdr[4:8]); got != want {
		return 0, nil, fmt.Errorf("at offset %d: crc %08x, want %08x: %w", s.off, got, want, errChecksum)
	}
	seq = binary.LittleEndian.Uint64(s.hdr[8:16])
	if s.next != 0 && seq != s.next {
		return 0, nil, fmt.Errorf("at offset %d: seq %d, want %d: %w", s.off, seq, s.next, errSequence)
	}
	s.next = seq + 1
	s.off += headerSize + int64(n)
	s.remain -= headerSize + int64(n)
	return seq, payload, nil
}

// isDamage reports whether err is one of the scan's damage reasons, as
// opposed to an I/O error reading the file.
func isDamage(err error) bool {
	return errors.Is(err, errTorn) || errors.Is(err, errChecksum) || errors.Is(err, errLength) || errors.Is(err, errSequence)
}

// decodeRecord decodes the record at the start of b without copying: it
// returns the record's seq, its payload (a sub-slice of b) and its encoded
// size. ok is false if b does not hold a whole record; err is set for a
// record that is whole but invalid.
func decodeRecord(b []byte) (seq uint64, payload []byte, size int, ok bool, err error) {
	if len(b) < headerSize {
		return 0, nil, 0, false, nil
	}
	n := binary.LittleEndian.Uint32(b[0:4])
	if n > MaxRecordBytes {
		return 0, nil, 0, false, fmt.Errorf("length %d: %w", n, errLength)
	}
	size = headerSize + int(n)
	if len(b) < size {
		return 0, nil, size, false, nil
	}
	payload = b[headerSize:size:size]
	if got, want := recordCRC(b, payload), binary.LittleEndian.Uint32(b[4:8]); got != want {
		return 0, nil, 0, false, fmt.Errorf("crc %08x, want %08x: %w", got, want, errChecksum)
	}
	return binary.LittleEndian.Uint64(b[8:16]), payload, size, true, nil
}
