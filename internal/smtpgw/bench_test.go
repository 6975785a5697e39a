package smtpgw

import (
	"context"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// BenchmarkGatewayAccept measures the listener alone: go-smtp clients send
// one 10 KB message per connection (connect, EHLO, MAIL, RCPT, DATA, QUIT)
// to a Handler that answers 250 at once, 16 connections at a time.
func BenchmarkGatewayAccept(b *testing.B) {
	h := HandlerFunc(func(context.Context, *Transaction) Reply { return ReplyOK })
	_, addr := startGW(b, h, func(l *ListenerConfig) {
		l.MaxConnections = 1000
		l.MaxConnectionsPerIP = 1000
	})
	data := []byte(testMessage(10 << 10))
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	b.SetParallelism(8) // 8 × GOMAXPROCS(2) = 16 concurrent connections
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := sendOne(addr, data); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}

func sendOne(addr string, data []byte) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.CommandTimeout = 10 * time.Second
	if err := c.Hello("bench.test"); err != nil {
		return err
	}
	if err := c.Mail("a@example.net", nil); err != nil {
		return err
	}
	if err := c.Rcpt("b@example.org", nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// BenchmarkDataChecks measures the per-message line-ending and header scan
// on a 100 KB message.
func BenchmarkDataChecks(b *testing.B) {
	msg := []byte(testMessage(100 << 10))
	cfg := baseListener().withDefaults()
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for i := 0; i < b.N; i++ {
		if _, err := checkData(message{bytes: msg}, cfg); err != nil {
			b.Fatal(err)
		}
	}
}
