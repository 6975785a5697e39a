package policy_test

import (
	"fmt"
	"net/netip"
	"time"

	"portcullis/internal/analysis"
	"portcullis/internal/dmarc"
	"portcullis/internal/policy"
)

// A message claiming to be from the organisation's own domain, which
// publishes only p=none, fails DMARC: own-domain protection rejects it
// whatever the published policy.
func ExampleDecide() {
	p := policy.Default()
	p.OwnDomain.Domains = []string{"corp.example"}

	v := &analysis.Verdict{
		Author: analysis.Author{Domain: "corp.example"},
		DMARC: dmarc.Result{Result: dmarc.Fail, FromDomain: "corp.example", PolicyDomain: "corp.example",
			PublishedPolicy: dmarc.PolicyNone, Policy: dmarc.PolicyNone, PolicySource: dmarc.SourceP},
	}
	env := policy.Envelope{Listener: "mx", ClientIP: netip.MustParseAddr("203.0.113.7"), ReceivedAt: time.Now()}

	d := policy.Decide(p, v, env)
	fmt.Println(d.Action, d.Rule, d.Owner)
	fmt.Println(d.Reply)
	// Output:
	// reject own-domain email-security
	// 550 5.7.26 Message claims to be from corp.example but did not authenticate
}
