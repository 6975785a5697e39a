package policy

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"portcullis/internal/analysis"
	"portcullis/internal/arc"
	"portcullis/internal/authres"
	"portcullis/internal/dkim"
	"portcullis/internal/dmarc"
	"portcullis/internal/evidence"
	"portcullis/internal/spf"
)

var update = flag.Bool("update", false, "rewrite testdata/decide_table.golden")

var now = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// verdictFor builds the verdict of a message from example.com whose DMARC
// result is res under the published policy pub (t=y when testing); temp
// names a check that had a temporary failure ("spf", "dkim" or "").
// Without temp, SPF soft-fails and the one DKIM signature fails, both for
// example.com, so that only DMARC and the rules under test decide.
func verdictFor(res dmarc.Status, pub dmarc.Policy, testing bool, temp string) *analysis.Verdict {
	v := &analysis.Verdict{
		ClientIP: netip.MustParseAddr("192.0.2.25"),
		MailFrom: "news@example.com",
		Author:   analysis.Author{Domain: "example.com", Values: []string{"news@example.com"}},
		SPF:      spf.Result{Result: spf.SoftFail, Domain: "example.com", Identity: spf.IdentityMailFrom},
		DKIM:     []*dkim.SignatureResult{{Result: dkim.Fail, Domain: "example.com", Selector: "s1", Reason: "signature did not verify"}},
		ARC:      &arc.Result{Status: arc.None, OldestPass: -1},
		IPRev:    analysis.IPRev{Result: analysis.IPRevPass, PTR: "mx.example.com"},
	}
	switch temp {
	case "spf":
		v.SPF.Result = spf.TempError
	case "dkim":
		v.DKIM[0].Result = dkim.TempError
	}
	d := dmarc.Result{Result: res, FromDomain: "example.com", PolicyDomain: "example.com", AuthorExists: true,
		PublishedPolicy: pub, Policy: pub, PolicySource: dmarc.SourceP, Testing: testing}
	if testing {
		switch pub {
		case dmarc.PolicyReject:
			d.Policy = dmarc.PolicyQuarantine
		case dmarc.PolicyQuarantine:
			d.Policy = dmarc.PolicyNone
		}
	}
	switch res {
	case dmarc.Pass:
		d.DKIMAligned = true
		d.Reason = "aligned DKIM d=example.com"
	case dmarc.Fail:
		d.Reason = "no aligned SPF or DKIM identifier for example.com"
	case dmarc.None:
		d.Reason = "no DMARC record"
	case dmarc.TempError:
		d.Reason = "a DNS query needed by DMARC failed temporarily"
	case dmarc.PermError:
		d.Reason = "the record has no valid policy and no valid rua="
	}
	v.DMARC = d
	return v
}

func env() Envelope {
	return Envelope{Listener: "mx", ClientIP: netip.MustParseAddr("192.0.2.25"), MailFrom: "news@example.com", ReceivedAt: now}
}

// TestDecideTable decides every combination of DMARC result × published
// policy (t=y or not) × own-domain protection × SPF/DKIM temperror under
// the default policy, and compares with testdata/decide_table.golden
// (go test -run TestDecideTable -update rewrites it; review the diff).
func TestDecideTable(t *testing.T) {
	var b strings.Builder
	rows := 0
	for _, res := range []dmarc.Status{dmarc.Pass, dmarc.Fail, dmarc.None, dmarc.TempError, dmarc.PermError} {
		for _, pub := range []dmarc.Policy{dmarc.PolicyNone, dmarc.PolicyQuarantine, dmarc.PolicyReject} {
			for _, testing := range []bool{false, true} {
				for _, protected := range []bool{false, true} {
					for _, temp := range []string{"", "spf", "dkim"} {
						p := Default()
						if protected {
							p.OwnDomain.Domains = []string{"example.com"}
						}
						v := verdictFor(res, pub, testing, temp)
						d := Decide(p, v, env())
						if !d.Action.Valid() || d.Rule == "" || d.Owner == "" || d.Reason == "" || d.Reply.Code == 0 {
							t.Errorf("incomplete decision %+v", d)
						}
						if code := map[evidence.Action]int{evidence.Deliver: 250, evidence.Quarantine: 250, evidence.Reject: 550, evidence.Defer: 451}[d.Action]; d.Reply.Code != code {
							t.Errorf("reply %v for %s", d.Reply, d.Action)
						}
						if d.Action == evidence.Deliver && res != dmarc.Pass && d.Tag == "" {
							t.Errorf("delivered-fail without a tag: %+v", d)
						}
						if res == dmarc.Pass && d.Tag != "" {
							t.Errorf("tag on a DMARC pass: %+v", d)
						}
						tv := "n"
						if testing {
							tv = "y"
						}
						prot := "no"
						if protected {
							prot = "yes"
						}
						tmp := temp
						if tmp == "" {
							tmp = "none"
						}
						fmt.Fprintf(&b, "dmarc=%-9s p=%-10s t=%s protected=%-3s temperror=%-4s -> %-10s %-16s %s\n",
							res, pub, tv, prot, tmp, d.Action, d.Rule, d.Reply)
						rows++
					}
				}
			}
		}
	}
	if rows != 180 {
		t.Fatalf("%d rows, want 5×6×2×3 = 180", rows)
	}
	golden := filepath.Join("testdata", "decide_table.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), b.String()); diff != "" {
		t.Errorf("decisions differ from %s (-want +got):\n%s", golden, diff)
	}
}

// Spot checks of the table, written out by hand.
func TestDecideSpotChecks(t *testing.T) {
	protect := func(p *Policy) *Policy { p.OwnDomain.Domains = []string{"example.com"}; return p }
	for _, tc := range []struct {
		name     string
		p        *Policy
		v        *analysis.Verdict
		action   evidence.Action
		rule     string
		reply    string
		tag      string
		inReason string
	}{
		{"reject", Default(), verdictFor(dmarc.Fail, dmarc.PolicyReject, false, ""), evidence.Reject, RuleDMARCReject,
			"550 5.7.26 Message rejected by the DMARC policy of example.com: authentication failed", "", "p=reject from the record at _dmarc.example.com"},
		{"reject t=y", Default(), verdictFor(dmarc.Fail, dmarc.PolicyReject, true, ""), evidence.Quarantine, RuleDMARCQuarantine,
			"250 2.0.0 Message accepted", "", "t=y: the domain is testing, so p=reject applies as quarantine"},
		{"quarantine t=y", Default(), verdictFor(dmarc.Fail, dmarc.PolicyQuarantine, true, ""), evidence.Deliver, RuleDMARCNone,
			"250 2.0.0 Message accepted", "dmarc=fail but p=quarantine lowered to none", "t=y"},
		{"p=none", Default(), verdictFor(dmarc.Fail, dmarc.PolicyNone, false, ""), evidence.Deliver, RuleDMARCNone,
			"250 2.0.0 Message accepted", "dmarc=fail but p=none", ""},
		{"own domain, p=none", protect(Default()), verdictFor(dmarc.Fail, dmarc.PolicyNone, false, ""), evidence.Reject, RuleOwnDomain,
			"550 5.7.26 Message claims to be from example.com but did not authenticate", "", "protected"},
		{"own domain, no record", protect(Default()), verdictFor(dmarc.None, "", false, ""), evidence.Reject, RuleOwnDomain,
			"550 5.7.1 Message claims to be from example.com but did not authenticate", "", "protected"},
		{"temperror", protect(Default()), verdictFor(dmarc.TempError, "", false, ""), evidence.Defer, RuleDMARCTempError,
			"451 4.7.1 Temporary failure evaluating the DMARC policy of example.com, try again later", "", "temporarily"},
		{"permerror", Default(), verdictFor(dmarc.PermError, "", false, ""), evidence.Deliver, RuleDMARCPermError,
			"250 2.0.0 Message accepted", "dmarc=permerror treated as no policy", "treated as no policy"},
		{"reject, SPF temperror", Default(), verdictFor(dmarc.Fail, dmarc.PolicyReject, false, "spf"), evidence.Defer, RuleAuthTempError,
			"451 4.7.24 SPF validation error, try again later", "", "SPF for example.com"},
		{"reject, DKIM temperror", Default(), verdictFor(dmarc.Fail, dmarc.PolicyReject, false, "dkim"), evidence.Defer, RuleAuthTempError,
			"451 4.7.1 Temporary authentication failure, try again later", "", "DKIM key s1._domainkey.example.com"},
		{"p=none, DKIM temperror", Default(), verdictFor(dmarc.Fail, dmarc.PolicyNone, false, "dkim"), evidence.Deliver, RuleDMARCNone,
			"250 2.0.0 Message accepted", "dmarc=fail but p=none", ""},
		{"temperror ignored", &Policy{AuthTempError: TempErrorRule{Action: TempErrorIgnore}}, verdictFor(dmarc.Fail, dmarc.PolicyReject, false, "spf"),
			evidence.Reject, RuleDMARCReject, "550 5.7.26 Message rejected by the DMARC policy of example.com: authentication failed", "", ""},
		{"local policy never rejects", &Policy{DMARCReject: Rule{Action: evidence.Quarantine, Owner: "mail-ops"}}, verdictFor(dmarc.Fail, dmarc.PolicyReject, false, ""),
			evidence.Quarantine, RuleDMARCReject, "250 2.0.0 Message accepted", "", ""},
		{"dmarc temperror accepted", &Policy{DMARCTempError: Rule{Action: evidence.Deliver}}, verdictFor(dmarc.TempError, "", false, ""),
			evidence.Deliver, RuleDMARCTempError, "250 2.0.0 Message accepted", "dmarc=temperror", ""},
	} {
		d := Decide(tc.p, tc.v, env())
		if d.Action != tc.action || d.Rule != tc.rule || d.Reply.String() != tc.reply || d.Tag != tc.tag || !strings.Contains(d.Reason, tc.inReason) {
			t.Errorf("%s:\n got %s %s %q tag %q\n     reason %q\nwant %s %s %q tag %q reason containing %q",
				tc.name, d.Action, d.Rule, d.Reply, d.Tag, d.Reason, tc.action, tc.rule, tc.reply, tc.tag, tc.inReason)
		}
	}
	d := Decide(&Policy{DMARCReject: Rule{Action: evidence.Quarantine, Owner: "mail-ops"}}, verdictFor(dmarc.Fail, dmarc.PolicyReject, false, ""), env())
	if d.Owner != "mail-ops" {
		t.Errorf("owner %q", d.Owner)
	}
	if d := Decide(nil, verdictFor(dmarc.Fail, dmarc.PolicyReject, false, ""), env()); d.Owner != DefaultOwner || d.Action != evidence.Reject {
		t.Errorf("nil policy: %+v", d)
	}
}

// A temperror for an identifier that cannot align with the From domain
// cannot change DMARC's outcome: it does not defer.
func TestTempErrorUnrelated(t *testing.T) {
	v := verdictFor(dmarc.Fail, dmarc.PolicyReject, false, "dkim")
	v.DKIM[0].Domain = "mailer.unrelated.example"
	if d := Decide(nil, v, env()); d.Action != evidence.Reject || d.Rule != RuleDMARCReject {
		t.Errorf("unrelated DKIM temperror: %s %s", d.Action, d.Rule)
	}
	// Under the same Organizational Domain it can align (relaxed).
	v.DKIM[0].Domain = "mail.example.com"
	if d := Decide(nil, v, env()); d.Action != evidence.Defer {
		t.Errorf("subdomain DKIM temperror: %s %s", d.Action, d.Rule)
	}
	v = verdictFor(dmarc.Fail, dmarc.PolicyReject, false, "dkim")
	v.Author.Domain, v.DMARC.FromDomain, v.DMARC.OrgDomain = "news.example.com", "news.example.com", "example.com"
	v.DKIM[0].Domain = "bounces.example.com"
	if d := Decide(nil, v, env()); d.Action != evidence.Defer {
		t.Errorf("sibling under the Organizational Domain: %s %s", d.Action, d.Rule)
	}
}

func TestStructure(t *testing.T) {
	for fault, rule := range map[analysis.Fault]string{
		analysis.FaultMalformedHeader: RuleStructureMalformedHeader,
		analysis.FaultNoFrom:          RuleStructureNoFrom,
		analysis.FaultSeveralFrom:     RuleStructureSeveralFrom,
		analysis.FaultSeveralDomains:  RuleStructureSeveralDomains,
		analysis.FaultNoAuthorDomain:  RuleStructureNoAuthorDomain,
	} {
		v := verdictFor(dmarc.PermError, "", false, "")
		v.Author = analysis.Author{Fault: fault}
		// An exception on the domain cannot help: structure comes first.
		p := Default()
		p.Exceptions = []Exception{{ID: "x", FromDomain: "example.com", Binding: Binding{ClientCIDRs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}, Owner: "o", Expires: now.Add(time.Hour)}}
		d := Decide(p, v, env())
		if d.Action != evidence.Reject || d.Rule != rule || d.Reply.Code != 550 || d.Reply.Enhanced != "5.7.1" || !strings.Contains(d.Reply.Text, fault.Describe()) {
			t.Errorf("%s: %+v", fault, d)
		}
		d = Decide(&Policy{Structure: Rule{Action: evidence.Quarantine}}, v, env())
		if d.Action != evidence.Quarantine || d.Rule != rule {
			t.Errorf("%s with structure=quarantine: %s %s", fault, d.Action, d.Rule)
		}
	}
}

func TestSPFWithoutDMARC(t *testing.T) {
	spfFail := func(res spf.Verdict) *analysis.Verdict {
		v := verdictFor(dmarc.None, "", false, "")
		v.SPF.Result = res
		v.SPF.Domain = "bounces.other.example" // no alignment needed
		return v
	}
	for _, tc := range []struct {
		onFail SPFAction
		res    spf.Verdict
		action evidence.Action
		rule   string
		tag    string
		reply  string
	}{
		{"", spf.Fail, evidence.Deliver, RuleSPFFail, "dmarc=none, spf=fail", "250 2.0.0"},
		{SPFIgnore, spf.Fail, evidence.Deliver, RuleSPFFail, "", "250 2.0.0"},
		{SPFQuarantine, spf.Fail, evidence.Quarantine, RuleSPFFail, "", "250 2.0.0"},
		{SPFReject, spf.Fail, evidence.Reject, RuleSPFFail, "", "550 5.7.23"},
		{SPFReject, spf.SoftFail, evidence.Deliver, RuleNoDMARC, "dmarc=none", "250 2.0.0"},
		{SPFReject, spf.TempError, evidence.Defer, RuleAuthTempError, "", "451 4.7.24"},
		{SPFTag, spf.TempError, evidence.Deliver, RuleNoDMARC, "dmarc=none", "250 2.0.0"},
	} {
		d := Decide(&Policy{SPFWithoutDMARC: SPFRule{OnFail: tc.onFail}}, spfFail(tc.res), env())
		if d.Action != tc.action || d.Rule != tc.rule || d.Tag != tc.tag || !strings.HasPrefix(d.Reply.String(), tc.reply) {
			t.Errorf("on_fail=%q spf=%s: %s %s tag %q %s; want %s %s tag %q %s", tc.onFail, tc.res, d.Action, d.Rule, d.Tag, d.Reply, tc.action, tc.rule, tc.tag, tc.reply)
		}
	}
	// SPF temperror with on_fail=reject and the temperror ignored: deliver.
	d := Decide(&Policy{SPFWithoutDMARC: SPFRule{OnFail: SPFReject}, AuthTempError: TempErrorRule{Action: TempErrorIgnore}}, spfFail(spf.TempError), env())
	if d.Action != evidence.Deliver || !strings.Contains(d.Tag, "spf=temperror") {
		t.Errorf("ignored SPF temperror: %+v", d)
	}
	// permerror is treated as no policy: the SPF rule applies.
	v := spfFail(spf.Fail)
	v.DMARC.Result = dmarc.PermError
	d = Decide(&Policy{SPFWithoutDMARC: SPFRule{OnFail: SPFReject}}, v, env())
	if d.Action != evidence.Reject || d.Rule != RuleSPFFail || !strings.Contains(d.Reason, "treated as no policy") {
		t.Errorf("permerror + SPF fail: %+v", d)
	}
}

// arcVerdict is a DMARC fail under pub whose ARC chain has one set per
// sealer, passing, with AAR i=1 saying dmarc=aarDMARC for aarFrom.
func arcVerdict(pub dmarc.Policy, status arc.Status, aarDMARC, aarFrom string, sealers ...string) *analysis.Verdict {
	v := verdictFor(dmarc.Fail, pub, false, "")
	v.ARC = &arc.Result{Status: status, OldestPass: 0}
	for i, s := range sealers {
		set := arc.SetResult{Instance: i + 1, SealDomain: s, Seal: arc.Pass, CV: arc.Pass}
		if i == 0 {
			set.CV = arc.None
			set.AuthResults = &authres.Header{ServID: "mx." + s, Results: []authres.Result{
				{Method: "spf", Value: "pass"},
				{Method: "dmarc", Value: aarDMARC, Props: []authres.Prop{{Type: "header", Name: "from", Value: aarFrom}}},
			}}
		}
		v.ARC.Sets = append(v.ARC.Sets, set)
	}
	return v
}

func TestTrustedARCSealer(t *testing.T) {
	p := &Policy{TrustedARC: ARCRule{Sealers: []TrustedSealer{{Domain: "lists.example.net", Owner: "collab-team"}, {Domain: "relay.example.org"}}}}
	for _, tc := range []struct {
		name   string
		p      *Policy
		v      *analysis.Verdict
		action evidence.Action
		rule   string
	}{
		{"rescued", p, arcVerdict(dmarc.PolicyReject, arc.Pass, "pass", "example.com", "lists.example.net"), evidence.Deliver, RuleARCSealer},
		{"rescued from quarantine", p, arcVerdict(dmarc.PolicyQuarantine, arc.Pass, "pass", "example.com", "lists.example.net"), evidence.Deliver, RuleARCSealer},
		{"two trusted hops", p, arcVerdict(dmarc.PolicyReject, arc.Pass, "pass", "example.com", "lists.example.net", "relay.example.org"), evidence.Deliver, RuleARCSealer},
		{"untrusted sealer", p, arcVerdict(dmarc.PolicyReject, arc.Pass, "pass", "example.com", "lists.evil.example"), evidence.Reject, RuleDMARCReject},
		{"untrusted later hop", p, arcVerdict(dmarc.PolicyReject, arc.Pass, "pass", "example.com", "lists.example.net", "evil.example"), evidence.Reject, RuleDMARCReject},
		{"untrusted later hop allowed", &Policy{TrustedARC: ARCRule{Sealers: p.TrustedARC.Sealers, AllowUntrustedLaterHops: true}},
			arcVerdict(dmarc.PolicyReject, arc.Pass, "pass", "example.com", "lists.example.net", "evil.example"), evidence.Deliver, RuleARCSealer},
		{"trusted, but not first", p, arcVerdict(dmarc.PolicyReject, arc.Pass, "pass", "example.com", "evil.example", "lists.example.net"), evidence.Reject, RuleDMARCReject},
		{"chain fails", p, arcVerdict(dmarc.PolicyReject, arc.Fail, "pass", "example.com", "lists.example.net"), evidence.Reject, RuleDMARCReject},
		{"first hop saw dmarc fail", p, arcVerdict(dmarc.PolicyReject, arc.Pass, "fail", "example.com", "lists.example.net"), evidence.Reject, RuleDMARCReject},
		{"first hop saw another From", p, arcVerdict(dmarc.PolicyReject, arc.Pass, "pass", "other.example", "lists.example.net"), evidence.Reject, RuleDMARCReject},
		{"no trusted sealers", Default(), arcVerdict(dmarc.PolicyReject, arc.Pass, "pass", "example.com", "lists.example.net"), evidence.Reject, RuleDMARCReject},
		{"p=none needs no rescue", p, arcVerdict(dmarc.PolicyNone, arc.Pass, "pass", "example.com", "lists.example.net"), evidence.Deliver, RuleDMARCNone},
	} {
		d := Decide(tc.p, tc.v, env())
		if d.Action != tc.action || d.Rule != tc.rule {
			t.Errorf("%s: %s %s (%s), want %s %s", tc.name, d.Action, d.Rule, d.Reason, tc.action, tc.rule)
		}
	}
	d := Decide(p, arcVerdict(dmarc.PolicyReject, arc.Pass, "pass", "example.com", "lists.example.net"), env())
	if d.Sealer != "lists.example.net" || d.Owner != "collab-team" || d.Overrides != RuleDMARCReject ||
		d.Tag != "dmarc=fail, delivered by trusted ARC sealer lists.example.net" || !strings.HasPrefix(d.Reason, "delivered-fail by trusted ARC sealer lists.example.net") {
		t.Errorf("rescue decision %+v", d)
	}
	e := d.Evidence()
	if e.Overrides != RuleDMARCReject || e.Exception != nil || e.SMTPReply != "250 2.0.0 Message accepted" {
		t.Errorf("evidence %+v", e)
	}
	// Own-domain protection is not softened by a sealer (rule 5 changes
	// rule 4 only).
	pp := *p
	pp.OwnDomain.Domains = []string{"example.com"}
	if d := Decide(&pp, arcVerdict(dmarc.PolicyReject, arc.Pass, "pass", "example.com", "lists.example.net"), env()); d.Rule != RuleOwnDomain {
		t.Errorf("own-domain rescued by a sealer: %+v", d)
	}
	// A chain that failed for a temporary reason could have rescued it:
	// defer.
	v := arcVerdict(dmarc.PolicyReject, arc.Fail, "pass", "example.com", "lists.example.net")
	v.ARC.Temporary = true
	if d := Decide(p, v, env()); d.Action != evidence.Defer || d.Rule != RuleAuthTempError || !strings.Contains(d.Reason, "ARC chain") {
		t.Errorf("ARC temporary failure: %+v", d)
	}
	if d := Decide(Default(), v, env()); d.Action != evidence.Reject {
		t.Errorf("ARC temporary failure without trusted sealers: %+v", d)
	}
}

func partnerException() Exception {
	return Exception{
		ID: "acme-orders", FromDomain: "example.com", Owner: "procurement", Justification: "purchase orders from ACME's ERP",
		Requester: "alice", Approver: "bob", Expires: now.Add(30 * 24 * time.Hour),
		Binding: Binding{ClientCIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/27")}},
	}
}

func TestExceptions(t *testing.T) {
	base := func() *analysis.Verdict { return verdictFor(dmarc.Fail, dmarc.PolicyReject, false, "") }
	withExc := func(mod func(*Exception)) *Policy {
		e := partnerException()
		if mod != nil {
			mod(&e)
		}
		p := Default()
		p.Exceptions = []Exception{e}
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
		return p
	}
	other := env()
	other.ClientIP = netip.MustParseAddr("203.0.113.9")
	dkimPass := func() *analysis.Verdict {
		v := base()
		v.DKIM = append(v.DKIM, &dkim.SignatureResult{Result: dkim.Pass, Domain: "erp.acme.example"})
		return v
	}
	spfPass := func() *analysis.Verdict {
		v := base()
		v.SPF = spf.Result{Result: spf.Pass, Domain: "bounce.acme.example", Identity: spf.IdentityMailFrom}
		return v
	}
	late := env()
	late.ReceivedAt = now.Add(31 * 24 * time.Hour)
	noTime := env()
	noTime.ReceivedAt = time.Time{}
	sub := base()
	sub.Author.Domain = "orders.example.com"
	for _, tc := range []struct {
		name   string
		p      *Policy
		v      *analysis.Verdict
		env    Envelope
		action evidence.Action
		rule   string
	}{
		{"client in range", withExc(nil), base(), env(), evidence.Deliver, RuleException},
		// The same From domain from another address is not rescued.
		{"client out of range", withExc(nil), base(), other, evidence.Reject, RuleDMARCReject},
		{"expired", withExc(nil), base(), late, evidence.Reject, RuleDMARCReject},
		{"no reception time", withExc(nil), base(), noTime, evidence.Reject, RuleDMARCReject},
		{"other From domain", withExc(func(e *Exception) { e.FromDomain = "example.org" }), base(), env(), evidence.Reject, RuleDMARCReject},
		{"subdomain not included", withExc(nil), sub, env(), evidence.Reject, RuleDMARCReject},
		{"subdomain included", withExc(func(e *Exception) { e.IncludeSubdomains = true }), sub, env(), evidence.Deliver, RuleException},
		{"DKIM binding verified", withExc(func(e *Exception) { e.Binding = Binding{DKIMDomains: []string{"erp.acme.example"}} }), dkimPass(), other, evidence.Deliver, RuleException},
		// The same From domain without the bound signature is not rescued.
		{"DKIM binding absent", withExc(func(e *Exception) { e.Binding = Binding{DKIMDomains: []string{"erp.acme.example"}} }), base(), env(), evidence.Reject, RuleDMARCReject},
		{"DKIM binding failed", withExc(func(e *Exception) { e.Binding = Binding{DKIMDomains: []string{"example.com"}} }), base(), env(), evidence.Reject, RuleDMARCReject},
		{"SPF binding", withExc(func(e *Exception) { e.Binding = Binding{SPFDomains: []string{"bounce.acme.example"}} }), spfPass(), other, evidence.Deliver, RuleException},
		{"SPF binding, SPF not pass", withExc(func(e *Exception) { e.Binding = Binding{SPFDomains: []string{"example.com"}} }), base(), env(), evidence.Reject, RuleDMARCReject},
		// Every kind listed must match: the IP is right, the signature is not there.
		{"all kinds must match", withExc(func(e *Exception) { e.Binding.DKIMDomains = []string{"erp.acme.example"} }), base(), env(), evidence.Reject, RuleDMARCReject},
		{"all kinds match", withExc(func(e *Exception) { e.Binding.DKIMDomains = []string{"erp.acme.example"} }), dkimPass(), env(), evidence.Deliver, RuleException},
		{"ARC binding", withExc(func(e *Exception) { e.Binding = Binding{ARCSealers: []string{"relay.acme.example"}} }),
			arcVerdict(dmarc.PolicyReject, arc.Pass, "fail", "example.com", "relay.acme.example"), other, evidence.Deliver, RuleException},
		{"ARC binding, chain fails", withExc(func(e *Exception) { e.Binding = Binding{ARCSealers: []string{"relay.acme.example"}} }),
			arcVerdict(dmarc.PolicyReject, arc.Fail, "fail", "example.com", "relay.acme.example"), other, evidence.Reject, RuleDMARCReject},
		{"ARC binding, not the latest hop", withExc(func(e *Exception) { e.Binding = Binding{ARCSealers: []string{"relay.acme.example"}} }),
			arcVerdict(dmarc.PolicyReject, arc.Pass, "fail", "example.com", "relay.acme.example", "evil.example"), other, evidence.Reject, RuleDMARCReject},
		{"capped at quarantine", withExc(func(e *Exception) { e.Allow = evidence.Quarantine }), base(), env(), evidence.Quarantine, RuleException},
		{"quarantine cap on quarantine changes nothing", withExc(func(e *Exception) { e.Allow = evidence.Quarantine }),
			verdictFor(dmarc.Fail, dmarc.PolicyQuarantine, false, ""), env(), evidence.Quarantine, RuleDMARCQuarantine},
		{"DMARC pass needs none", withExc(nil), verdictFor(dmarc.Pass, dmarc.PolicyReject, false, ""), env(), evidence.Deliver, RuleDMARCPass},
		{"temperror still defers", withExc(nil), verdictFor(dmarc.TempError, "", false, ""), env(), evidence.Defer, RuleDMARCTempError},
	} {
		d := Decide(tc.p, tc.v, tc.env)
		if d.Action != tc.action || d.Rule != tc.rule {
			t.Errorf("%s: %s %s (%s), want %s %s", tc.name, d.Action, d.Rule, d.Reason, tc.action, tc.rule)
		}
	}

	p := withExc(nil)
	p.OwnDomain.Domains = []string{"example.com"}
	d := Decide(p, base(), env())
	if d.Action != evidence.Deliver || d.Rule != RuleException || d.Exception != "acme-orders" || d.Overrides != RuleOwnDomain ||
		d.Owner != "procurement" || d.Tag != "dmarc=fail, delivered by exception acme-orders" ||
		!strings.HasPrefix(d.Reason, "delivered-fail by exception acme-orders (purchase orders from ACME's ERP, owner procurement, expires 2026-04-01)") {
		t.Errorf("exception over own-domain: %+v", d)
	}
	if e := d.Evidence(); e.Exception == nil || *e.Exception != "acme-orders" {
		t.Errorf("evidence exception %v", e.Exception)
	}
	// An exception softened to quarantine, with a DKIM temperror behind
	// it, still defers: a retry may pass.
	v := base()
	v.DKIM[0].Result = dkim.TempError
	if d := Decide(withExc(func(e *Exception) { e.Allow = evidence.Quarantine }), v, env()); d.Action != evidence.Defer {
		t.Errorf("quarantine by exception with a temperror: %+v", d)
	}
	// An exception that delivers makes the temperror moot.
	if d := Decide(withExc(nil), v, env()); d.Action != evidence.Deliver || d.Rule != RuleException {
		t.Errorf("deliver by exception with a temperror: %+v", d)
	}
}

func TestValidate(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
	exc := func(mod func(*Exception)) *Policy {
		e := partnerException()
		mod(&e)
		return &Policy{Exceptions: []Exception{partnerException(), e}}
	}
	for _, tc := range []struct {
		p    *Policy
		want string
	}{
		{exc(func(e *Exception) { e.ID = "po-2"; e.Binding = Binding{} }), `exceptions[1] (id "po-2"): no binding`},
		{exc(func(e *Exception) {}), `exceptions[1] (id "acme-orders"): id already used by exceptions[0]`},
		{exc(func(e *Exception) { e.ID = "" }), `exceptions[1]: id is required`},
		{exc(func(e *Exception) { e.ID = "x"; e.FromDomain = "" }), `exceptions[1] (id "x"): from_domain is required`},
		{exc(func(e *Exception) { e.ID = "x"; e.FromDomain = "exa mple.com" }), `from_domain "exa mple.com" is not a domain name`},
		{exc(func(e *Exception) { e.ID = "x"; e.Owner = "" }), `(id "x"): owner is required`},
		{exc(func(e *Exception) { e.ID = "x"; e.Expires = time.Time{} }), `(id "x"): expires is required`},
		{exc(func(e *Exception) { e.ID = "x"; e.Approver = "Alice" }), `approver "Alice" is the requester`},
		{exc(func(e *Exception) { e.ID = "x"; e.Allow = evidence.Reject }), `allow "reject" is not deliver or quarantine`},
		{exc(func(e *Exception) { e.ID = "x"; e.Binding.DKIMDomains = []string{"bad domain"} }), `binding.dkim_domains[0] "bad domain" is not a domain name`},
		{exc(func(e *Exception) { e.ID = "x"; e.Binding.ClientCIDRs = []netip.Prefix{{}} }), `binding.client_cidrs[0] is not an address range`},
		{&Policy{OwnDomain: OwnDomainRule{Domains: []string{"example.com", "localhost"}}}, `own_domain.domains[1]: "localhost" is not a domain name`},
		{&Policy{DMARCReject: Rule{Action: "drop"}}, `dmarc_reject.action: "drop" is not deliver, quarantine, reject or defer`},
		{&Policy{OwnDomain: OwnDomainRule{Action: "bounce"}}, `own_domain.action`},
		{&Policy{AuthTempError: TempErrorRule{Action: "reject"}}, `auth_temperror.action: "reject" is not defer or ignore`},
		{&Policy{SPFWithoutDMARC: SPFRule{OnFail: "drop"}}, `spf_without_dmarc.on_fail`},
		{&Policy{TrustedARC: ARCRule{Sealers: []TrustedSealer{{Domain: ""}}}}, `trusted_arc_sealers.sealers[0].domain`},
	} {
		err := tc.p.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalid) {
			t.Errorf("Validate: %v, want an ErrInvalid containing %q", err, tc.want)
		}
	}
}

func TestVersion(t *testing.T) {
	zero, def := (&Policy{}).Version(), Default().Version()
	if zero != def || !strings.HasPrefix(zero, "sha256:") || len(zero) != len("sha256:")+64 {
		t.Errorf("zero %s, default %s", zero, def)
	}
	p := Default()
	p.OwnDomain.Domains = []string{"Example.COM."}
	q := Default()
	q.OwnDomain.Domains = []string{"example.com"}
	if p.Version() != q.Version() || p.Version() == def {
		t.Errorf("normalised domains should give one version, other than the default")
	}
}

// Decide does not modify its arguments and gives the same answer twice.
func TestDecidePure(t *testing.T) {
	p := Default()
	p.OwnDomain.Domains = []string{"Example.com"}
	p.Exceptions = []Exception{partnerException()}
	p.Exceptions[0].Binding.ClientCIDRs = []netip.Prefix{netip.MustParsePrefix("192.0.2.7/27")}
	before := fmt.Sprintf("%#v", *p)
	v := verdictFor(dmarc.Fail, dmarc.PolicyReject, false, "")
	d1 := Decide(p, v, env())
	d2 := Decide(p, v, env())
	if !cmp.Equal(d1, d2) {
		t.Errorf("two answers: %+v %+v", d1, d2)
	}
	if after := fmt.Sprintf("%#v", *p); after != before {
		t.Errorf("Decide changed the policy:\n%s\n%s", before, after)
	}
	if d1.Rule != RuleException {
		t.Errorf("%+v", d1)
	}
}

func TestSetFor(t *testing.T) {
	s := &Set{
		Default: Policy{Owner: "sec", OwnDomain: OwnDomainRule{Domains: []string{"corp.example"}}, Exceptions: []Exception{partnerException()}},
		Listeners: map[string]Policy{
			"legacy": {DMARCReject: Rule{Action: evidence.Quarantine}},
			"strict": {SPFWithoutDMARC: SPFRule{OnFail: SPFReject}, OwnDomain: OwnDomainRule{Domains: []string{"corp.example", "corp.example.net"}}, Exceptions: []Exception{}},
		},
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	legacy := s.For("legacy")
	// The override keeps what it does not set: protection and exceptions.
	if legacy.DMARCReject.Action != evidence.Quarantine || len(legacy.OwnDomain.Domains) != 1 || len(legacy.Exceptions) != 1 || legacy.Owner != "sec" {
		t.Errorf("legacy %+v", legacy)
	}
	strict := s.For("strict")
	if strict.SPFWithoutDMARC.OnFail != SPFReject || len(strict.OwnDomain.Domains) != 2 || len(strict.Exceptions) != 0 || strict.DMARCReject.Action != "" {
		t.Errorf("strict %+v", strict)
	}
	if mx := s.For("mx"); !reflect.DeepEqual(*mx, s.Default) {
		t.Errorf("listener without override: %+v", mx)
	}
	s.Listeners["bad"] = Policy{DMARCNone: Rule{Action: "nope"}}
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "listeners.bad: ") {
		t.Errorf("Validate: %v", err)
	}
}
