package forensics

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"portcullis/internal/dns"
)

func BenchmarkParseReceived(b *testing.B) {
	v := "from mail.example.com (mail.example.com [192.0.2.1]) by mx.example.org (Postfix) with ESMTPS id 4Q1 for <bob@example.org>; Mon, 4 May 2026 09:00:03 +0000 (UTC)"
	b.ReportAllocs()
	for b.Loop() {
		ParseReceived(v)
	}
}

// BenchmarkExplain explains the ARC fixture (DKIM, ARC, SPF, DMARC) with
// DNS from a cached zone, and writes the text report.
func BenchmarkExplain(b *testing.B) {
	eml, err := os.ReadFile(filepath.Join("testdata", "04-arc-trusted.eml"))
	if err != nil {
		b.Fatal(err)
	}
	z, err := dns.LoadZoneFile(filepath.Join("testdata", "04-arc-trusted.zone"))
	if err != nil {
		b.Fatal(err)
	}
	opts := &Options{Resolver: dns.NewCache(z, dns.CacheConfig{}), AuthServIDs: []string{receiverID}, TrustedSealers: []string{"groups.example"},
		Now: func() time.Time { return checkedAt }}
	b.ReportAllocs()
	for b.Loop() {
		r, err := Explain(context.Background(), eml, opts)
		if err != nil {
			b.Fatal(err)
		}
		if err := WriteText(io.Discard, r); err != nil {
			b.Fatal(err)
		}
	}
}
