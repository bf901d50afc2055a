package wal

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// decodeSegment decodes a whole segment image with the recovery scanner,
// returning its records and the length of the valid prefix.
func decodeSegment(data []byte) (recs []Record, valid int64, err error) {
	sc := newScanner(bytes.NewReader(data), int64(len(data)), 0)
	for {
		seq, payload, err := sc.scan()
		if errors.Is(err, io.EOF) {
			return recs, sc.off, nil
		}
		if err != nil {
			return recs, sc.off, err
		}
		recs = append(recs, Record{Seq: seq, Payload: bytes.Clone(payload)})
	}
}

func FuzzDecodeSegment(f *testing.F) {
	var seg []byte
	for i := 1; i <= 5; i++ {
		seg = appendRecord(seg, uint64(i), payloadFor(i))
	}
	f.Add(seg)
	f.Add(seg[:len(seg)-3])
	f.Add(append(bytes.Clone(seg), 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0))
	f.Add(make([]byte, 40))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, valid, err := decodeSegment(data)
		if valid < 0 || valid > int64(len(data)) {
			t.Fatalf("valid prefix %d out of [0, %d]", valid, len(data))
		}
		if err == nil && valid != int64(len(data)) {
			t.Fatalf("clean end at %d of %d bytes", valid, len(data))
		}
		if err != nil && !isDamage(err) {
			t.Fatalf("error %v is not a damage reason", err)
		}
		// The valid prefix is exactly the re-encoding of what was decoded,
		// with contiguous numbering.
		var again []byte
		for i, r := range recs {
			if i > 0 && r.Seq != recs[i-1].Seq+1 {
				t.Fatalf("seq %d after %d", r.Seq, recs[i-1].Seq)
			}
			again = appendRecord(again, r.Seq, r.Payload)
		}
		if !bytes.Equal(again, data[:valid]) {
			t.Fatalf("re-encoding differs from the valid prefix")
		}
		// The zero-copy decoder used by Read agrees on the valid prefix.
		p := 0
		for _, r := range recs {
			seq, payload, size, ok, err := decodeRecord(data[p:])
			if err != nil || !ok || seq != r.Seq || !bytes.Equal(payload, r.Payload) {
				t.Fatalf("decodeRecord at %d: seq %d ok %v err %v; scanner saw seq %d", p, seq, ok, err, r.Seq)
			}
			p += size
		}
	})
}
