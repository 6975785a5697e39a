package analysis

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"portcullis/internal/dkim"
	"portcullis/internal/dmarc"
	"portcullis/internal/dns"
)

// benchMessage is a ~10 KB message from shop.example, signed with its
// RSA-2048 key (relaxed/relaxed, rsa-sha256).
func benchMessage(b *testing.B) ([]byte, []byte) {
	b.Helper()
	var body strings.Builder
	for i := 0; body.Len() < 10<<10; i++ {
		fmt.Fprintf(&body, "Line %d of the spring catalogue: garden tools, seeds and pots, all 20%% off this week.\r\n", i)
	}
	msg := "From: Shop Example <news@shop.example>\r\nTo: alice@corp.example\r\nSubject: Spring catalogue\r\n" +
		"Date: Mon, 02 Mar 2026 09:28:03 +0000\r\nMessage-ID: <bench-1@shop.example>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\n" + body.String()
	return dkimSign(b, []byte(msg), "shop.example", "s2026", fixtureKey(b, "shop")), []byte(body.String())
}

// cpuTime returns the CPU time (user and system) the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportPerCore adds the CPU time per message and the messages per second
// one core sustains (1e9 / CPU ns per message): the checks run in
// parallel, so wall time per op understates the work.
func reportPerCore(b *testing.B, cpu time.Duration) {
	ns := float64(cpu.Nanoseconds()) / float64(b.N)
	b.ReportMetric(ns, "cpu-ns/op")
	b.ReportMetric(1e9/ns, "msg/s/core")
}

// BenchmarkAnalyze is the full analysis of a signed ~10 KB message (SPF
// pass, DKIM pass, no ARC, iprev pass, DMARC pass) with a warm DNS cache.
func BenchmarkAnalyze(b *testing.B) {
	msg, _ := benchMessage(b)
	r := dns.NewCache(fixtureZone(b), dns.CacheConfig{})
	a := newAnalyzer(b, r, func(c *Config) { c.Clock = nil })
	in := Input{ClientIP: netip.MustParseAddr("198.51.100.20"), HELO: "mail.shop.example", MailFrom: "news@shop.example",
		RcptTo: []string{"alice@corp.example"}, Message: msg}
	v := a.Run(context.Background(), in) // warm the cache
	if v.DMARC.Result != dmarc.Pass || v.DKIM[0].Result != dkim.Pass || v.IPRev.Result != IPRevPass {
		b.Fatalf("DMARC %s DKIM %s iprev %s", v.DMARC.Result, v.DKIM[0].Result, v.IPRev.Result)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime(b)
	for b.Loop() {
		v := a.Run(context.Background(), in)
		if _, err := v.AuthResultsValue(); err != nil {
			b.Fatal(err)
		}
	}
	reportPerCore(b, cpuTime(b)-cpu)
}

// BenchmarkAnalyzeParallel is BenchmarkAnalyze with many messages in
// flight (8 goroutines per GOMAXPROCS), as on a busy gateway. Its CPU time
// per message includes what fanning each message out to five goroutines
// costs the scheduler and the garbage collector when cores are shared.
func BenchmarkAnalyzeParallel(b *testing.B) {
	msg, _ := benchMessage(b)
	a := newAnalyzer(b, dns.NewCache(fixtureZone(b), dns.CacheConfig{}), func(c *Config) { c.Clock = nil })
	in := Input{ClientIP: netip.MustParseAddr("198.51.100.20"), HELO: "mail.shop.example", MailFrom: "news@shop.example",
		RcptTo: []string{"alice@corp.example"}, Message: msg}
	if v := a.Run(context.Background(), in); v.DMARC.Result != dmarc.Pass {
		b.Fatalf("DMARC %s", v.DMARC.Result)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime(b)
	b.SetParallelism(8) // 8 × GOMAXPROCS messages in flight
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			v := a.Run(context.Background(), in)
			if _, err := v.AuthResultsValue(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportPerCore(b, cpuTime(b)-cpu)
}

// BenchmarkAnalyzeFloor is the least any DKIM verifier does for the same
// message: one RSA-2048 signature verification and SHA-256 over the body.
func BenchmarkAnalyzeFloor(b *testing.B) {
	_, body := benchMessage(b)
	key := fixtureKey(b, "shop")
	headerData := []byte("from:Shop Example <news@shop.example>\r\nsubject:Spring catalogue\r\ndkim-signature:v=1; a=rsa-sha256; b=")
	digest := sha256.Sum256(headerData)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		b.Fatal(err)
	}
	pub := &key.PublicKey
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime(b)
	for b.Loop() {
		bh := sha256.Sum256(body)
		_ = bh
		d := sha256.Sum256(headerData)
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig); err != nil {
			b.Fatal(err)
		}
	}
	reportPerCore(b, cpuTime(b)-cpu)
}
