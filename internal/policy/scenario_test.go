package policy

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"portcullis/internal/analysis"
	"portcullis/internal/dns"
	"portcullis/internal/evidence"
)

// The forensic scenarios of package analysis (testdata/forensics there),
// analysed for real and decided here.
const forensics = "../analysis/testdata/forensics"

func analyse(t *testing.T, file, ip, helo, mailFrom string) (*analysis.Verdict, Envelope) {
	t.Helper()
	z, err := dns.LoadZoneFile(filepath.Join(forensics, "forensics.zone"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := analysis.New(analysis.Config{AuthServID: "mx.corp.example", Resolver: z,
		Clock: func() time.Time { return time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := os.ReadFile(filepath.Join(forensics, file))
	if err != nil {
		t.Fatal(err)
	}
	in := analysis.Input{ClientIP: netip.MustParseAddr(ip), HELO: helo, MailFrom: mailFrom, RcptTo: []string{"alice@corp.example"}, Message: msg}
	v := a.Run(context.Background(), in)
	return v, Envelope{Listener: "mx", ClientIP: in.ClientIP, MailFrom: mailFrom, RcptTo: in.RcptTo, ReceivedAt: now}
}

// The spoof is rejected by the victim's p=reject although SPF and DKIM
// pass for the attacker's own domain; an exception for bank.example bound
// to bank.example's own DKIM signature does not let it through.
func TestScenarioSpoof(t *testing.T) {
	v, e := analyse(t, "spoof.eml", "203.0.113.66", "mail.attacker.example", "bounce@attacker.example")
	d := Decide(nil, v, e)
	if d.Action != evidence.Reject || d.Rule != RuleDMARCReject || d.Reply.String() != "550 5.7.26 Message rejected by the DMARC policy of bank.example: authentication failed" {
		t.Errorf("spoof: %+v", d)
	}
	p := Default()
	p.Exceptions = []Exception{{ID: "bank-statements", FromDomain: "bank.example", Owner: "finance", Expires: now.Add(time.Hour),
		Binding: Binding{DKIMDomains: []string{"bank.example"}}}}
	if d := Decide(p, v, e); d.Action != evidence.Reject || d.Exception != "" {
		t.Errorf("spoof through an exception: %+v", d)
	}
	// Protected as our own domain, the rule says so.
	p = Default()
	p.OwnDomain.Domains = []string{"bank.example"}
	if d := Decide(p, v, e); d.Action != evidence.Reject || d.Rule != RuleOwnDomain {
		t.Errorf("own domain: %+v", d)
	}
}

// The forward is quarantined (p=quarantine); the ARC-sealed forward is
// delivered when the list is a trusted sealer; an exception bound to the
// list's address lets the plain forward through, but not the same From
// domain from elsewhere.
func TestScenarioForwarded(t *testing.T) {
	v, e := analyse(t, "forwarded.eml", "192.0.2.77", "mx.list.example.net", "news@shop.example")
	d := Decide(nil, v, e)
	if d.Action != evidence.Quarantine || d.Rule != RuleDMARCQuarantine || !strings.Contains(d.Reason, "p=quarantine") {
		t.Errorf("forwarded: %+v", d)
	}

	trusted := Default()
	trusted.TrustedARC.Sealers = []TrustedSealer{{Domain: "list.example.net", Owner: "collab"}}
	va, ea := analyse(t, "forwarded-arc.eml", "192.0.2.77", "mx.list.example.net", "news@shop.example")
	if d := Decide(nil, va, ea); d.Action != evidence.Quarantine {
		t.Errorf("sealed forward, sealer not trusted: %+v", d)
	}
	d = Decide(trusted, va, ea)
	if d.Action != evidence.Deliver || d.Rule != RuleARCSealer || d.Sealer != "list.example.net" || d.Tag != "dmarc=fail, delivered by trusted ARC sealer list.example.net" {
		t.Errorf("sealed forward, sealer trusted: %+v", d)
	}
	// Trusting the sealer does nothing for the unsealed forward.
	if d := Decide(trusted, v, e); d.Action != evidence.Quarantine {
		t.Errorf("unsealed forward with a trusted sealer: %+v", d)
	}

	exc := Default()
	exc.Exceptions = []Exception{{ID: "shop-via-list", FromDomain: "shop.example", Owner: "marketing", Justification: "newsletter via the list",
		Requester: "carol", Approver: "dave", Expires: now.Add(24 * time.Hour),
		Binding: Binding{ClientCIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.2.77/32")}}}}
	if err := exc.Validate(); err != nil {
		t.Fatal(err)
	}
	d = Decide(exc, v, e)
	if d.Action != evidence.Deliver || d.Rule != RuleException || d.Exception != "shop-via-list" || d.Overrides != RuleDMARCQuarantine {
		t.Errorf("forward through the exception: %+v", d)
	}
	// The same From domain from another address is not rescued.
	v2, e2 := analyse(t, "forwarded.eml", "203.0.113.5", "mail.elsewhere.example", "news@shop.example")
	if d := Decide(exc, v2, e2); d.Action != evidence.Quarantine || d.Rule != RuleDMARCQuarantine {
		t.Errorf("same From from elsewhere: %+v", d)
	}
}
