package wal

import (
	"context"
	"sync"
	"testing"
	"time"
)

const benchPayload = 512 // bytes, about one enriched event

func benchAppend(b *testing.B, policy string, appenders, batchSize int) {
	l := openT(b, Config{Dir: b.TempDir(), Fsync: policy, MaxBytes: 64 << 30, SegmentBytes: 64 << 20}, nil)
	payload := make([]byte, benchPayload)
	b.SetBytes(benchPayload)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	calls := (b.N + batchSize - 1) / batchSize
	per := calls / appenders
	for g := 0; g < appenders; g++ {
		n := per
		if g < calls%appenders {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := make([][]byte, batchSize)
			for i := range batch {
				batch[i] = payload
			}
			for i := 0; i < n; i++ {
				if _, _, err := l.Append(context.Background(), batch); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N)/el, "records/s")
}

// BenchmarkAppend appends 512-byte records, one per call or 100 per call
// (an ingest request's batch), from 1, 16 or 256 goroutines.
func BenchmarkAppend(b *testing.B) {
	for _, bc := range []struct {
		name             string
		policy           string
		appenders, batch int
	}{
		{"always-1", FsyncAlways, 1, 1},
		{"always-16", FsyncAlways, 16, 1},
		{"always-16-batch100", FsyncAlways, 16, 100},
		{"interval-1", FsyncInterval, 1, 1},
		{"interval-16", FsyncInterval, 16, 1},
		{"interval-256", FsyncInterval, 256, 1},
		{"interval-16-batch100", FsyncInterval, 16, 100},
	} {
		b.Run(bc.name, func(b *testing.B) { benchAppend(b, bc.policy, bc.appenders, bc.batch) })
	}
}

// BenchmarkRead reads 512-byte records in batches of 500 from a cursor.
func BenchmarkRead(b *testing.B) {
	l := openT(b, Config{Dir: b.TempDir(), Fsync: FsyncInterval, MaxBytes: 64 << 30, Cursors: []string{"c"}}, nil)
	payload := make([]byte, benchPayload)
	batch := make([][]byte, 1000)
	for i := range batch {
		batch[i] = payload
	}
	for n := 0; n < b.N; n += len(batch) {
		if _, _, err := l.Append(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(benchPayload)
	b.ResetTimer()
	start := time.Now()
	for got := 0; got < b.N; {
		recs, err := l.Read(context.Background(), "c", 500, 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		got += len(recs)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}
