package audit

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

// benchRecord is a record as ingest makes one for a request of 50 events.
func benchRecord() Record {
	return Record{ID: uuid.NewString(), Source: "web", Window: MinuteOf(time.Now()),
		Counts: []Count{{Stage: Accepted, Reason: Published, N: 50}}}
}

// BenchmarkDecodeRows measures what the consumer does with each ingest
// audit record it reads: Decode and Rows.
// Run: go test ./internal/audit -run '^$' -bench '^BenchmarkDecodeRows$' -benchmem
func BenchmarkDecodeRows(b *testing.B) {
	m, err := benchRecord().Message()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r, err := Decode(m)
		if err != nil {
			b.Fatal(err)
		}
		if len(r.Rows()) != 1 {
			b.Fatal("want one row")
		}
	}
}
