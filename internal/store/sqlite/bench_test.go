package sqlite_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"portcullis/internal/evidence"
	"portcullis/internal/store"
	"portcullis/internal/store/sqlite"
	"portcullis/internal/store/storetest"
)

// benchRecord returns a full record (every field set, about 2.3 KB of
// JSON) with the given id; the template is built once so that the
// benchmarks measure the store, not the record's construction.
func benchRecord(tmpl *evidence.Record, id string) *evidence.Record {
	r := *tmpl
	r.ID = id
	return &r
}

// reportWriter adds records/s and batches (WAL fsyncs) per record.
func reportWriter(b *testing.B, s *sqlite.Store, before sqlite.Stats, n int) {
	b.Helper()
	st := s.Stats()
	if el := b.Elapsed().Seconds(); el > 0 {
		b.ReportMetric(float64(n)/el, "records/s")
	}
	if n > 0 {
		b.ReportMetric(float64(st.Batches-before.Batches)/float64(n), "batches/record")
	}
}

// BenchmarkPutEvidenceSerial: one caller waiting for each durable commit,
// so one fsync per record.
func BenchmarkPutEvidenceSerial(b *testing.B) {
	s := open(b, b.TempDir(), quietOptions())
	ctx := context.Background()
	tmpl := storetest.FullRecord("tmpl", time.Now())
	before := s.Stats()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := s.PutEvidence(ctx, benchRecord(tmpl, fmt.Sprintf("s-%d", i))); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportWriter(b, s, before, b.N)
}

// BenchmarkPutEvidenceConcurrent: 16 callers (the gateway's concurrent
// transactions), each waiting for its durable commit; the group commit
// shares fsyncs between them.
func BenchmarkPutEvidenceConcurrent(b *testing.B) {
	for _, workers := range []int{16, 64} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			s := open(b, b.TempDir(), quietOptions())
			benchConcurrent(b, s, workers)
		})
	}
}

func benchConcurrent(b *testing.B, s *sqlite.Store, workers int) {
	ctx := context.Background()
	tmpl := storetest.FullRecord("tmpl", time.Now())
	before := s.Stats()
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if err := s.PutEvidence(ctx, benchRecord(tmpl, fmt.Sprintf("c-%d", i))); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	reportWriter(b, s, before, b.N)
}

// BenchmarkPutEvidenceConcurrentBatchWait is the concurrent case with the
// writer waiting 2 ms to fill each batch.
func BenchmarkPutEvidenceConcurrentBatchWait(b *testing.B) {
	o := quietOptions()
	o.BatchWait = 2 * time.Millisecond
	s := open(b, b.TempDir(), o)
	benchConcurrent(b, s, 16)
}

// BenchmarkEnqueueEvidence: records queued without waiting (delivered
// mail), then one Flush.
func BenchmarkEnqueueEvidence(b *testing.B) {
	s := open(b, b.TempDir(), quietOptions())
	ctx := context.Background()
	tmpl := storetest.FullRecord("tmpl", time.Now())
	before := s.Stats()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := s.EnqueueEvidence(ctx, benchRecord(tmpl, fmt.Sprintf("e-%d", i))); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	reportWriter(b, s, before, b.N)
}

// BenchmarkPutQuarantine stores 10 KB messages durably (body fsync,
// directory fsync, row commit), from one caller and from 16.
func BenchmarkPutQuarantine(b *testing.B) {
	body := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n"), 160) // 10240 bytes
	for _, workers := range []int{1, 16} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			s := open(b, b.TempDir(), quietOptions())
			ctx := context.Background()
			now := time.Now()
			var next atomic.Int64
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						item := &store.QuarantineItem{ID: fmt.Sprintf("q-%d", i), Recipients: []string{"a@corp.example"},
							ReceivedAt: now, ExpiresAt: now.Add(time.Hour)}
						if err := s.PutQuarantine(ctx, item, bytes.NewReader(body)); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkQueryEvidenceRecipient reads a page of one recipient's records
// out of 20,000.
func BenchmarkQueryEvidenceRecipient(b *testing.B) {
	s := open(b, b.TempDir(), quietOptions())
	ctx := context.Background()
	now := time.Now()
	for i := range 20000 {
		r := storetest.FullRecord(fmt.Sprintf("r-%d", i), now.Add(time.Duration(i)*time.Second))
		r.Envelope.RcptTo = []string{fmt.Sprintf("user%d@corp.example", i%200)}
		if err := s.EnqueueEvidence(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		page, err := s.QueryEvidence(ctx, store.EvidenceQuery{Recipient: fmt.Sprintf("user%d@corp.example", i%200), Limit: 50})
		if err != nil || len(page.Records) != 50 {
			b.Fatalf("%d records, %v", len(page.Records), err)
		}
	}
}
