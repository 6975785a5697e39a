package posture

import (
	"context"
	"io"
	"testing"
	"time"

	"portcullis/internal/dns"
)

// BenchmarkCheck checks the domain over the SPF lookup limit (13 lookups,
// flattening, DMARC, nine DKIM selectors, MX) with DNS from a cached zone.
func BenchmarkCheck(b *testing.B) {
	r := dns.NewCache(testZone(b), dns.CacheConfig{})
	opts := &Options{Now: func() time.Time { return checkedAt }}
	b.ReportAllocs()
	for b.Loop() {
		rep := Check(context.Background(), r, "overlimit.example", opts)
		if rep.SPF.Lookups != 13 {
			b.Fatal(rep.SPF.Lookups)
		}
	}
}

func BenchmarkWriteHTML(b *testing.B) {
	r := dns.NewCache(testZone(b), dns.CacheConfig{})
	doc := Document{GeneratedAt: checkedAt, Reports: []*Report{
		Check(context.Background(), r, "overlimit.example", nil), Check(context.Background(), r, "good.example", nil),
	}}
	b.ReportAllocs()
	for b.Loop() {
		if err := WriteHTML(io.Discard, doc); err != nil {
			b.Fatal(err)
		}
	}
}
