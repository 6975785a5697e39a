package governance_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"portcullis/internal/analysis"
	"portcullis/internal/evidence"
	"portcullis/internal/governance"
	"portcullis/internal/governance/governancetest"
	"portcullis/internal/policy"
)

// The motivating case, at the level of the decision: the partner's real
// mail is quarantined (p=quarantine, no SPF, DKIM by the provider's
// unaligned domain); an exception bound to the provider's DKIM d= delivers
// it as delivered-fail by the exception; the same From domain without that
// signature, from elsewhere, stays quarantined; after the expiry the
// exception no longer applies.
func TestPartnerScenario(t *testing.T) {
	lab := governancetest.NewLab(t)
	an, err := analysis.New(analysis.Config{AuthServID: "mx.inbound.example", Resolver: lab.Zone, CheckTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, roles)
	ctx := ctxFor(t)

	run := func(msg []byte, ip string, mailFrom string) (policy.Decision, *evidence.Record) {
		t.Helper()
		in := analysis.Input{ClientIP: netip.MustParseAddr(ip), HELO: "out1." + governancetest.ProviderDomain,
			MailFrom: mailFrom, RcptTo: []string{governancetest.Recipient}, Message: msg}
		v := an.Run(context.Background(), in)
		env := policy.Envelope{Listener: "mx", ClientIP: in.ClientIP, MailFrom: mailFrom, RcptTo: in.RcptTo, ReceivedAt: f.clock.Now()}
		d := policy.Decide(f.svc.PolicyFor(policy.Default(), env), v, env)
		rec := &evidence.Record{ID: "r", ReceivedAt: env.ReceivedAt}
		if err := v.FillRecord(rec); err != nil {
			t.Fatal(err)
		}
		rec.Decision = d.Evidence()
		return d, rec
	}
	real := governancetest.PartnerMessage(t, lab, "PO 4711")
	spoof := governancetest.SpoofMessage(t, lab, "Change of bank details")
	bounce := "bounce@" + governancetest.PartnerDomain

	d, rec := run(real, governancetest.ProviderIP, bounce)
	if d.Action != evidence.Quarantine || d.Rule != policy.RuleDMARCQuarantine {
		t.Fatalf("partner mail without an exception: %+v", d)
	}
	if rec.Auth.SPF.Result != "none" || len(rec.Auth.DKIM) != 1 || rec.Auth.DKIM[0].Result != "pass" ||
		rec.Auth.DKIM[0].Domain != governancetest.ProviderDomain || rec.Auth.DMARC.Result != "fail" || rec.Auth.DMARC.DKIMAligned {
		t.Fatalf("the fixture is not the partner case: %+v", rec.Auth)
	}

	// The exception: requested by alice, approved by bob.
	req := partnerRequest()
	req.Expires = f.clock.Now().Add(7 * 24 * time.Hour)
	if _, err := f.svc.RequestException(ctx, req, "alice"); err != nil {
		t.Fatal(err)
	}
	if d, _ := run(real, governancetest.ProviderIP, bounce); d.Action != evidence.Quarantine {
		t.Errorf("a requested, unapproved exception applied: %+v", d)
	}
	if _, err := f.svc.Approve(ctx, governance.KindException, "partner-po", "bob"); err != nil {
		t.Fatal(err)
	}

	d, rec = run(real, governancetest.ProviderIP, bounce)
	if d.Action != evidence.Deliver || d.Rule != policy.RuleException || d.Exception != "partner-po" ||
		d.Overrides != policy.RuleDMARCQuarantine || d.Owner != "procurement" {
		t.Errorf("partner mail with the exception: %+v", d)
	}
	if rec.Decision.Exception == nil || *rec.Decision.Exception != "partner-po" || !strings.Contains(rec.Decision.Reason, "delivered-fail by exception partner-po") ||
		rec.Decision.Tag != "dmarc=fail, delivered by exception partner-po" {
		t.Errorf("evidence: %+v", rec.Decision)
	}
	f.svc.OnDecision(ctx, *rec)

	// The same From domain, from elsewhere, without the provider's
	// signature.
	if d, _ := run(spoof, governancetest.SpooferIP, bounce); d.Action != evidence.Quarantine || d.Exception != "" {
		t.Errorf("spoof of the partner: %+v", d)
	}
	// From the provider's own address but unsigned: the binding is the
	// signature, not the address.
	if d, _ := run(spoof, governancetest.ProviderIP, bounce); d.Action != evidence.Quarantine {
		t.Errorf("unsigned from the provider's address: %+v", d)
	}

	// After the expiry, without any refresh of the snapshot.
	f.clock.Advance(7 * 24 * time.Hour)
	if d, _ := run(real, governancetest.ProviderIP, bounce); d.Action != evidence.Quarantine || d.Rule != policy.RuleDMARCQuarantine {
		t.Errorf("after expiry: %+v", d)
	}
	if err := f.svc.FlushHits(ctx); err != nil {
		t.Fatal(err)
	}
	e, err := f.svc.Exception(ctx, "partner-po")
	if err != nil || e.Hits != 1 || e.Effective(f.clock.Now()) != governance.Expired {
		t.Errorf("exception after the scenario: hits %d, state %s, %v", e.Hits, e.Effective(f.clock.Now()), err)
	}
}
