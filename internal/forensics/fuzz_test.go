package forensics

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"portcullis/internal/dns"
)

func FuzzParseReceived(f *testing.F) {
	f.Add("from mail.example.com (mail.example.com [192.0.2.1]) by mx.example.org with ESMTPS id 4Q1 for <bob@example.org>; Mon, 4 May 2026 09:00:03 +0000")
	f.Add("from host ([198.51.100.9] helo=client) by smtp with esmtps id 1; Tue, 05 May 2026 10:11:12 +0200 (CEST)")
	f.Add("from unknown (HELO x) (192.0.2.77) by mx with SMTP; 4 May 2026 09:00:03 -0000")
	f.Add("((((((;)))")
	f.Fuzz(func(t *testing.T, s string) {
		r := ParseReceived(s)
		if len(r.By) > len(s) || len(r.From) > len(s) {
			t.Fatalf("fields longer than the input: %+v", r)
		}
	})
}

func FuzzParseSRS(f *testing.F) {
	f.Add("SRS0=HHH=TT=example.com=alice@forwarder.example")
	f.Add("SRS1=XXX=first.example==HHH=TT=orig.example=carol@second.example")
	f.Add("srs0-==@")
	f.Fuzz(func(t *testing.T, s string) {
		if r, ok := ParseSRS(s); ok && r.Hops == 0 {
			t.Fatalf("SRS address without hops: %+v", r)
		}
	})
}

// FuzzExplain explains arbitrary messages against the mailing-list
// fixture's zone: it must never panic, and a message whose header reads
// must always get a cause.
func FuzzExplain(f *testing.F) {
	for _, fx := range fixtures {
		if b, err := os.ReadFile(filepath.Join("testdata", fx.name+".eml")); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("From: a@b.example\r\nReceived: from x (y [z]) by; \r\nAuthentication-Results: ;;;\r\n\r\n"))
	z, err := dns.LoadZoneFile(filepath.Join("testdata", "03-mailing-list.zone"))
	if err != nil {
		f.Fatal(err)
	}
	opts := &Options{Resolver: z, AuthServIDs: []string{receiverID}, TrustedSealers: []string{"lists.example"},
		Now: func() time.Time { return checkedAt }}
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := Explain(context.Background(), raw, opts)
		if err != nil {
			return
		}
		if r.Cause.Code == "" {
			t.Fatal("no cause")
		}
	})
}
