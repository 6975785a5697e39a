package dns_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"portcullis/internal/dns"
	"portcullis/internal/dns/dnstest"
)

// BenchmarkCacheHit measures an answer served from the cache: the hot path
// of every check once a domain has been seen.
func BenchmarkCacheHit(b *testing.B) {
	z := dns.NewZone()
	z.Add("example.com", txt(3600, "v=spf1 ip4:192.0.2.0/24 -all"))
	c := dns.NewCache(z, dns.CacheConfig{})
	ctx := context.Background()
	if _, err := c.Query(ctx, "example.com", dns.TypeTXT); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Query(ctx, "example.com", dns.TypeTXT); err != nil {
			b.Fatal(err)
		}
	}
	if st := c.Stats(); st.Misses != 1 {
		b.Fatalf("stats %+v", st)
	}
}

// BenchmarkCacheHitParallel is BenchmarkCacheHit from every core at once,
// over 1,000 names.
func BenchmarkCacheHitParallel(b *testing.B) {
	z := dns.NewZone()
	names := make([]string, 1000)
	for i := range names {
		names[i] = fmt.Sprintf("host%d.example.com", i)
		z.Add(names[i], a(3600, "192.0.2.1"))
	}
	c := dns.NewCache(z, dns.CacheConfig{})
	ctx := context.Background()
	for _, n := range names {
		if _, err := c.Query(ctx, n, dns.TypeA); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := c.Query(ctx, names[i%len(names)], dns.TypeA); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkZoneQuery measures the lab-mode resolver: a CNAME followed to an
// A record.
func BenchmarkZoneQuery(b *testing.B) {
	z, err := dns.LoadZoneFile("testdata/example.zone")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := z.Query(ctx, "www.example.com", dns.TypeA); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClientQuery measures one query over UDP to a local dnstest
// server (socket, packing, server, unpacking): the cost of a cache miss
// without network latency.
func BenchmarkClientQuery(b *testing.B) {
	z, err := dns.LoadZoneFile("testdata/example.zone")
	if err != nil {
		b.Fatal(err)
	}
	c := dnstest.Serve(b, z).Resolver(b, time.Second)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Query(ctx, "example.com", dns.TypeTXT); err != nil {
			b.Fatal(err)
		}
	}
}
