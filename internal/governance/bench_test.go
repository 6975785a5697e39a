package governance_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"portcullis/internal/evidence"
	"portcullis/internal/governance"
	"portcullis/internal/policy"
)

// benchFixture holds 50 active exceptions, a tenth of them scoped to
// recipients.
func benchFixture(b *testing.B) *fixture {
	f := newFixture(b, governance.Config{})
	ctx := ctxFor(b)
	for i := range 50 {
		r := partnerRequest()
		r.ID = fmt.Sprintf("exc-%d", i)
		r.FromDomains = []string{fmt.Sprintf("partner%d.example", i)}
		if i%10 == 0 {
			r.Recipients = []string{"orders@corp.example"}
		}
		if _, err := f.svc.RequestException(ctx, r, "alice"); err != nil {
			b.Fatal(err)
		}
		if _, err := f.svc.Approve(ctx, governance.KindException, r.ID, "bob"); err != nil {
			b.Fatal(err)
		}
	}
	return f
}

// BenchmarkPolicyFor is the per-message cost of adding the governed
// exceptions to a listener's policy.
func BenchmarkPolicyFor(b *testing.B) {
	f := benchFixture(b)
	base := policy.Default()
	env := policy.Envelope{ClientIP: netip.MustParseAddr("192.0.2.1"), ReceivedAt: t0.Add(time.Hour), RcptTo: []string{"orders@corp.example"}}
	b.ReportAllocs()
	for b.Loop() {
		if p := f.svc.PolicyFor(base, env); len(p.Exceptions) != 50 {
			b.Fatal(len(p.Exceptions))
		}
	}
}

// BenchmarkOnDecision is the per-message cost of counting a hit.
func BenchmarkOnDecision(b *testing.B) {
	f := benchFixture(b)
	id := "exc-7"
	rec := evidence.Record{ReceivedAt: t0, Decision: evidence.Decision{Action: evidence.Deliver, Rule: policy.RuleException, Exception: &id}}
	ctx := ctxFor(b)
	b.ReportAllocs()
	for b.Loop() {
		f.svc.OnDecision(ctx, rec)
	}
}
