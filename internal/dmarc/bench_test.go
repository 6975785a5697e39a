package dmarc

import (
	"context"
	"testing"
)

// BenchmarkEvaluate evaluates typical messages against an in-memory zone
// (a warm resolver: no network, every answer at hand).
func BenchmarkEvaluate(b *testing.B) {
	z := zoneOf(b,
		"_dmarc.example.com TXT v=DMARC1; p=reject; rua=mailto:dmarc@example.com",
		"_dmarc.signing.example.com TXT v=DMARC1; p=none",
		"mail.example.com A -",
	)
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		in   Input
		opts *Options
	}{
		{"aligned-identical", Input{FromDomain: "example.com", SPF: spfPass("example.com"), DKIM: dkimPass("example.com")}, nil},
		{"relaxed-walks", Input{FromDomain: "mail.example.com", SPF: spfPass("bounce.example.com"), DKIM: dkimPass("signing.example.com")}, nil},
		{"fail-subdomain", Input{FromDomain: "mail.example.com", SPF: spfPass("example.net")}, nil},
		{"rfc7489", Input{FromDomain: "mail.example.com", DKIM: dkimPass("signing.example.com")}, &Options{Mode: RFC7489}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				res := Evaluate(ctx, z, bc.in, bc.opts)
				if res.Result != Pass && res.Result != Fail {
					b.Fatal(res.Result, res.Reason)
				}
			}
		})
	}
}

func BenchmarkParseRecord(b *testing.B) {
	const txt = "v=DMARC1; p=reject; sp=quarantine; adkim=s; aspf=r; fo=1; rua=mailto:agg@example.com, mailto:x@example.net; ruf=mailto:f@example.com"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRecord(txt, RFC9989); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAuthorDomain(b *testing.B) {
	from := []string{" \"Doe, John (Sales)\" <john.doe@Mail.Example.COM>"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := AuthorDomain(from); err != nil {
			b.Fatal(err)
		}
	}
}
