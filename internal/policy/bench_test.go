package policy

import (
	"testing"

	"portcullis/internal/dmarc"
)

// BenchmarkDecide decides a DMARC fail under p=reject with own-domain
// protection, a trusted sealer and one exception configured (none of
// which applies), so that every rule is consulted.
func BenchmarkDecide(b *testing.B) {
	p := Default()
	p.OwnDomain.Domains = []string{"corp.example", "corp.example.net"}
	p.TrustedARC.Sealers = []TrustedSealer{{Domain: "lists.example.net"}}
	p.Exceptions = []Exception{partnerException()}
	p.Exceptions[0].FromDomain = "partner.example"
	v := verdictFor(dmarc.Fail, dmarc.PolicyReject, false, "")
	e := env()
	b.ReportAllocs()
	for b.Loop() {
		if d := Decide(p, v, e); d.Rule != RuleDMARCReject {
			b.Fatal(d.Rule)
		}
	}
}
