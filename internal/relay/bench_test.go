package relay

import (
	"context"
	"testing"
)

// BenchmarkRelaySMTP sends a 10 KB message to an in-process go-smtp sink on
// 127.0.0.1, with pooled sessions (reuse) and with one session per message
// (noreuse), one sender at a time and 16 at once.
func BenchmarkRelaySMTP(b *testing.B) {
	data := testMessage(10 << 10)
	for _, bc := range []struct {
		name     string
		maxIdle  int
		parallel bool
	}{
		{"reuse", 16, false},
		{"noreuse", -1, false},
		{"reuse-parallel16", 16, true},
		{"noreuse-parallel16", -1, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := &sink{discard: true}
			addr, _ := startSink(b, s, sinkOpts{})
			d := newSMTP(b, SMTPConfig{Hosts: []string{addr}, TLS: TLSOff, MaxIdlePerHost: bc.maxIdle, MaxMessagesPerConn: 1 << 30})
			msg := Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org"}, Data: data}
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			if bc.parallel {
				b.SetParallelism(8) // 8 × GOMAXPROCS(2) = 16 senders
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if res := d.Deliver(context.Background(), msg); res.Status != StatusAccepted {
							b.Error(res.Err)
							return
						}
					}
				})
			} else {
				for i := 0; i < b.N; i++ {
					if res := d.Deliver(context.Background(), msg); res.Status != StatusAccepted {
						b.Fatal(res.Err)
					}
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
		})
	}
}

// BenchmarkMaildir writes a 10 KB message to one Maildir (fsync of the file
// and of new/ each time).
func BenchmarkMaildir(b *testing.B) {
	m, _ := newMaildir(b)
	msg := Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org"}, Data: testMessage(10 << 10)}
	b.ReportAllocs()
	b.SetBytes(int64(len(msg.Data)))
	for i := 0; i < b.N; i++ {
		if res := m.Deliver(context.Background(), msg); res.Status != StatusAccepted {
			b.Fatal(res.Err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}
