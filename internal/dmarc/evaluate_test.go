package dmarc

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"portcullis/internal/dns"
	"portcullis/internal/dns/dnstest"
)

// zoneOf builds a zone from "name TYPE value" lines: TXT (value as one
// character-string), A (an address, or "-" for 192.0.2.1), MX ("pref
// host"), CNAME (target), EXISTS (the name exists with no record), and
// faults TIMEOUT / SERVFAIL ("name TIMEOUT TXT" or "name TIMEOUT" for
// every type).
func zoneOf(t testing.TB, lines ...string) *dns.Zone {
	t.Helper()
	z := dns.NewZone()
	for _, l := range lines {
		name, rest, _ := strings.Cut(l, " ")
		typ, value, _ := strings.Cut(rest, " ")
		switch typ {
		case "TXT":
			z.Add(name, dns.Record{Type: dns.TypeTXT, TTL: 300, TXT: []string{value}})
		case "A":
			ip := "192.0.2.1"
			if value != "-" && value != "" {
				ip = value
			}
			z.Add(name, dns.Record{Type: dns.TypeA, TTL: 300, IP: netip.MustParseAddr(ip)})
		case "MX":
			z.Add(name, dns.Record{Type: dns.TypeMX, TTL: 300, Pref: 10, Host: value})
		case "CNAME":
			z.Add(name, dns.Record{Type: dns.TypeCNAME, TTL: 300, Host: value})
		case "EXISTS":
			z.Add(name, dns.Record{})
		case "TIMEOUT", "SERVFAIL":
			f := dns.FaultTimeout
			if typ == "SERVFAIL" {
				f = dns.FaultServFail
			}
			var ty dns.Type
			if value != "" {
				var err error
				if ty, err = dns.ParseType(value); err != nil {
					t.Fatal(err)
				}
			}
			z.SetFault(name, ty, f)
		default:
			t.Fatalf("zoneOf: bad line %q", l)
		}
	}
	return z
}

// outcome is the part of a Result the scenarios check.
type outcome struct {
	Result          Status
	Policy          Policy
	PublishedPolicy Policy
	PolicySource    PolicySource
	PolicyDomain    string
	OrgDomain       string
	Testing         bool
	SampledOut      bool
	AuthorExists    bool
	SPFAligned      bool
	DKIMAligned     bool
}

func outcomeOf(r Result) outcome {
	return outcome{r.Result, r.Policy, r.PublishedPolicy, r.PolicySource, r.PolicyDomain, r.OrgDomain,
		r.Testing, r.SampledOut, r.AuthorExists, r.SPFAligned, r.DKIMAligned}
}

type scenario struct {
	name  string
	zone  []string
	in    Input
	opts  *Options
	want  outcome
	names []string // the _dmarc names queried, in order (nil: not checked)
}

func spfPass(d string) SPFResult { return SPFResult{Result: AuthPass, Domain: d} }

func dkimPass(ds ...string) []DKIMResult {
	var out []DKIMResult
	for _, d := range ds {
		out = append(out, DKIMResult{Result: AuthPass, Domain: d, Selector: "s"})
	}
	return out
}

// rfc9989Scenarios exercise RFC 9989 policy discovery, the tree walk and
// its limits, psd=, np=, sp=, t= and alignment.
var rfc9989Scenarios = []scenario{
	{
		name: "own record, DKIM aligned (strict identical)",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=reject"},
		in:   Input{FromDomain: "Example.COM.", DKIM: dkimPass("example.com")},
		want: outcome{Result: Pass, Policy: PolicyReject, PublishedPolicy: PolicyReject, PolicySource: SourceP,
			PolicyDomain: "example.com", AuthorExists: true, DKIMAligned: true},
		names: []string{"_dmarc.example.com"},
	},
	{
		name: "own record, no aligned identifier",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=reject", "_dmarc.example.net TXT v=DMARC1; p=none"},
		in:   Input{FromDomain: "example.com", SPF: spfPass("example.net"), DKIM: dkimPass("example.net")},
		want: outcome{Result: Fail, Policy: PolicyReject, PublishedPolicy: PolicyReject, PolicySource: SourceP,
			PolicyDomain: "example.com", OrgDomain: "example.com", AuthorExists: true},
	},
	{
		name: "subdomain inherits p=reject (no sp)",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=reject", "mail.example.com A -"},
		in:   Input{FromDomain: "mail.example.com"},
		want: outcome{Result: Fail, Policy: PolicyReject, PublishedPolicy: PolicyReject, PolicySource: SourceP,
			PolicyDomain: "example.com", OrgDomain: "example.com", AuthorExists: true},
		names: []string{"_dmarc.mail.example.com", "_dmarc.example.com", "_dmarc.com"},
	},
	{
		name: "subdomain takes sp",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=reject; sp=quarantine", "mail.example.com A -"},
		in:   Input{FromDomain: "mail.example.com"},
		want: outcome{Result: Fail, Policy: PolicyQuarantine, PublishedPolicy: PolicyQuarantine, PolicySource: SourceSP,
			PolicyDomain: "example.com", OrgDomain: "example.com", AuthorExists: true},
	},
	{
		name: "subdomain passes by relaxed SPF alignment with the organizational domain",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=reject; sp=reject"},
		in:   Input{FromDomain: "news.example.com", SPF: spfPass("bounce.example.com")},
		want: outcome{Result: Pass, Policy: PolicyReject, PublishedPolicy: PolicyReject, PolicySource: SourceSP,
			PolicyDomain: "example.com", OrgDomain: "example.com", AuthorExists: true, SPFAligned: true},
	},
	{
		name: "np for a non-existent subdomain",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=quarantine; sp=none; np=reject"},
		in:   Input{FromDomain: "nosuch.example.com"},
		want: outcome{Result: Fail, Policy: PolicyReject, PublishedPolicy: PolicyReject, PolicySource: SourceNP,
			PolicyDomain: "example.com", OrgDomain: "example.com", AuthorExists: false},
	},
	{
		name: "np does not apply to an existing subdomain (MX only)",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=quarantine; sp=none; np=reject", "mx-only.example.com MX mail.example.net"},
		in:   Input{FromDomain: "mx-only.example.com"},
		want: outcome{Result: Fail, Policy: PolicyNone, PublishedPolicy: PolicyNone, PolicySource: SourceSP,
			PolicyDomain: "example.com", OrgDomain: "example.com", AuthorExists: true},
	},
	{
		name: "np does not apply to an empty non-terminal (NODATA, RFC 8020)",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=quarantine; np=reject", "x.ent.example.com A -"},
		in:   Input{FromDomain: "ent.example.com"},
		want: outcome{Result: Fail, Policy: PolicyQuarantine, PublishedPolicy: PolicyQuarantine, PolicySource: SourceP,
			PolicyDomain: "example.com", OrgDomain: "example.com", AuthorExists: true},
	},
	{
		name: "np absent: sp applies to a non-existent subdomain",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=reject; sp=quarantine"},
		in:   Input{FromDomain: "nosuch.example.com"},
		want: outcome{Result: Fail, Policy: PolicyQuarantine, PublishedPolicy: PolicyQuarantine, PolicySource: SourceSP,
			PolicyDomain: "example.com", OrgDomain: "example.com", AuthorExists: true},
	},
	{
		name: "np is not used for the organizational domain itself",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=none; np=reject"},
		in:   Input{FromDomain: "example.com"},
		want: outcome{Result: Fail, Policy: PolicyNone, PublishedPolicy: PolicyNone, PolicySource: SourceP,
			PolicyDomain: "example.com", AuthorExists: true},
	},
	{
		name: "t=y lowers reject to quarantine",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=reject; t=y"},
		in:   Input{FromDomain: "example.com"},
		want: outcome{Result: Fail, Policy: PolicyQuarantine, PublishedPolicy: PolicyReject, PolicySource: SourceP,
			PolicyDomain: "example.com", Testing: true, AuthorExists: true},
	},
	{
		name: "t=y lowers quarantine to none (via sp)",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=reject; sp=quarantine; t=y", "a.example.com A -"},
		in:   Input{FromDomain: "a.example.com"},
		want: outcome{Result: Fail, Policy: PolicyNone, PublishedPolicy: PolicyQuarantine, PolicySource: SourceSP,
			PolicyDomain: "example.com", OrgDomain: "example.com", Testing: true, AuthorExists: true},
	},
	{
		name: "t=n is the default",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=reject; t=n"},
		in:   Input{FromDomain: "example.com"},
		want: outcome{Result: Fail, Policy: PolicyReject, PublishedPolicy: PolicyReject, PolicySource: SourceP,
			PolicyDomain: "example.com", AuthorExists: true},
	},
	{
		// RFC 9989 Appendix B.4.3.
		name: "psd=y: organizational domain one label below the PSD",
		zone: []string{
			"_dmarc.bank.example TXT v=DMARC1; p=reject; psd=y",
			"_dmarc.giant.bank.example TXT v=DMARC1; p=quarantine",
		},
		in: Input{FromDomain: "giant.bank.example", SPF: spfPass("mail.giant.bank.example"), DKIM: dkimPass("mail.mega.bank.example")},
		want: outcome{Result: Pass, Policy: PolicyQuarantine, PublishedPolicy: PolicyQuarantine, PolicySource: SourceP,
			PolicyDomain: "giant.bank.example", OrgDomain: "giant.bank.example", AuthorExists: true, SPFAligned: true},
		// The DKIM domain is not under the Author Domain's Organizational
		// Domain, so it cannot align and needs no walk.
		names: []string{"_dmarc.giant.bank.example", "_dmarc.bank.example", "_dmarc.mail.giant.bank.example"},
	},
	{
		name: "psd=y: DKIM of a sibling registrant does not align",
		zone: []string{
			"_dmarc.bank.example TXT v=DMARC1; p=reject; psd=y",
			"_dmarc.giant.bank.example TXT v=DMARC1; p=quarantine",
		},
		in: Input{FromDomain: "giant.bank.example", DKIM: dkimPass("mail.mega.bank.example")},
		want: outcome{Result: Fail, Policy: PolicyQuarantine, PublishedPolicy: PolicyQuarantine, PolicySource: SourceP,
			PolicyDomain: "giant.bank.example", OrgDomain: "giant.bank.example", AuthorExists: true},
	},
	{
		name: "psd=y: the PSD's policy applies when the organizational domain has none",
		zone: []string{"_dmarc.bank.example TXT v=DMARC1; p=none; sp=quarantine; np=reject; psd=y", "www.small.bank.example A -"},
		in:   Input{FromDomain: "www.small.bank.example"},
		want: outcome{Result: Fail, Policy: PolicyQuarantine, PublishedPolicy: PolicyQuarantine, PolicySource: SourceSP,
			PolicyDomain: "bank.example", OrgDomain: "small.bank.example", AuthorExists: true},
		names: []string{"_dmarc.www.small.bank.example", "_dmarc.small.bank.example", "_dmarc.bank.example"},
	},
	{
		name: "psd=y: np of the PSD for a non-existent name",
		zone: []string{"_dmarc.bank.example TXT v=DMARC1; p=none; sp=quarantine; np=reject; psd=y"},
		in:   Input{FromDomain: "ghost.bank.example"},
		want: outcome{Result: Fail, Policy: PolicyReject, PublishedPolicy: PolicyReject, PolicySource: SourceNP,
			PolicyDomain: "bank.example", OrgDomain: "ghost.bank.example", AuthorExists: false},
	},
	{
		name: "psd=y at the author domain: its own record and p apply",
		zone: []string{"_dmarc.bank.example TXT v=DMARC1; p=reject; psd=y"},
		in:   Input{FromDomain: "bank.example", DKIM: dkimPass("x.bank.example")},
		want: outcome{Result: Fail, Policy: PolicyReject, PublishedPolicy: PolicyReject, PolicySource: SourceP,
			PolicyDomain: "bank.example", OrgDomain: "bank.example", AuthorExists: true},
	},
	{
		// RFC 9989 §11.8: psd=n stops the walk below a parent record.
		name: "psd=n: a department is its own organizational domain",
		zone: []string{
			"_dmarc.example.com TXT v=DMARC1; p=reject",
			"_dmarc.dept.example.com TXT v=DMARC1; p=none; psd=n",
		},
		in: Input{FromDomain: "a.dept.example.com", SPF: spfPass("example.com")},
		want: outcome{Result: Fail, Policy: PolicyNone, PublishedPolicy: PolicyNone, PolicySource: SourceP,
			PolicyDomain: "dept.example.com", OrgDomain: "dept.example.com", AuthorExists: true},
		names: []string{"_dmarc.a.dept.example.com", "_dmarc.dept.example.com"},
	},
	{
		name: "psd=n: relaxed alignment inside the department",
		zone: []string{
			"_dmarc.example.com TXT v=DMARC1; p=reject",
			"_dmarc.dept.example.com TXT v=DMARC1; p=reject; psd=n",
		},
		in: Input{FromDomain: "a.dept.example.com", DKIM: dkimPass("mail.dept.example.com")},
		want: outcome{Result: Pass, Policy: PolicyReject, PublishedPolicy: PolicyReject, PolicySource: SourceP,
			PolicyDomain: "dept.example.com", OrgDomain: "dept.example.com", AuthorExists: true, DKIMAligned: true},
	},
	{
		// Without psd=n the record with the fewest labels is the
		// organizational domain (RFC 9989 §4.10.2 rule 3, Appendix B.4.2).
		name: "intermediate record without psd: the highest record wins",
		zone: []string{
			"_dmarc.example.com TXT v=DMARC1; p=reject; sp=quarantine",
			"_dmarc.dept.example.com TXT v=DMARC1; p=none",
			"a.dept.example.com A -",
		},
		in: Input{FromDomain: "a.dept.example.com", SPF: spfPass("example.com")},
		want: outcome{Result: Pass, Policy: PolicyQuarantine, PublishedPolicy: PolicyQuarantine, PolicySource: SourceSP,
			PolicyDomain: "example.com", OrgDomain: "example.com", AuthorExists: true, SPFAligned: true},
	},
	{
		// RFC 9989 §4.10: more than 8 labels, at most 8 queries.
		name: "deep author domain: 13 labels, 8 queries",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=reject", "a.b.c.d.e.f.g.h.i.j.mail.example.com A -"},
		in:   Input{FromDomain: "a.b.c.d.e.f.g.h.i.j.mail.example.com"},
		want: outcome{Result: Fail, Policy: PolicyReject, PublishedPolicy: PolicyReject, PolicySource: SourceP,
			PolicyDomain: "example.com", OrgDomain: "example.com", AuthorExists: true},
		names: []string{
			"_dmarc.a.b.c.d.e.f.g.h.i.j.mail.example.com",
			"_dmarc.g.h.i.j.mail.example.com",
			"_dmarc.h.i.j.mail.example.com",
			"_dmarc.i.j.mail.example.com",
			"_dmarc.j.mail.example.com",
			"_dmarc.mail.example.com",
			"_dmarc.example.com",
			"_dmarc.com",
		},
	},
	{
		name: "deep author domain: record at an intermediate label with psd=n",
		zone: []string{
			"_dmarc.example.com TXT v=DMARC1; p=reject",
			"_dmarc.i.j.mail.example.com TXT v=DMARC1; p=quarantine; psd=n",
		},
		in: Input{FromDomain: "a.b.c.d.e.f.g.h.i.j.mail.example.com"},
		want: outcome{Result: Fail, Policy: PolicyQuarantine, PublishedPolicy: PolicyQuarantine, PolicySource: SourceP,
			PolicyDomain: "i.j.mail.example.com", OrgDomain: "i.j.mail.example.com", AuthorExists: true},
		names: []string{
			"_dmarc.a.b.c.d.e.f.g.h.i.j.mail.example.com",
			"_dmarc.g.h.i.j.mail.example.com",
			"_dmarc.h.i.j.mail.example.com",
			"_dmarc.i.j.mail.example.com",
		},
	},
	{
		name: "deep author domain: record only at an intermediate label",
		zone: []string{"_dmarc.j.mail.example.com TXT v=DMARC1; p=quarantine", "a.b.c.d.e.f.g.h.i.j.mail.example.com A -"},
		in:   Input{FromDomain: "a.b.c.d.e.f.g.h.i.j.mail.example.com"},
		want: outcome{Result: Fail, Policy: PolicyQuarantine, PublishedPolicy: PolicyQuarantine, PolicySource: SourceP,
			PolicyDomain: "j.mail.example.com", OrgDomain: "j.mail.example.com", AuthorExists: true},
	},
	{
		// RFC 9989 §5.1.8: a record at a skipped label is never found.
		name: "record at a label skipped by the shortcut is not discovered",
		zone: []string{
			"_dmarc.example.com TXT v=DMARC1; p=reject",
			"_dmarc.b.c.d.e.f.g.example.com TXT v=DMARC1; p=none; psd=n",
			"mail.a.b.c.d.e.f.g.example.com A -",
		},
		in: Input{FromDomain: "mail.a.b.c.d.e.f.g.example.com"},
		want: outcome{Result: Fail, Policy: PolicyReject, PublishedPolicy: PolicyReject, PolicySource: SourceP,
			PolicyDomain: "example.com", OrgDomain: "example.com", AuthorExists: true},
		names: []string{
			"_dmarc.mail.a.b.c.d.e.f.g.example.com",
			"_dmarc.c.d.e.f.g.example.com",
			"_dmarc.d.e.f.g.example.com",
			"_dmarc.e.f.g.example.com",
			"_dmarc.f.g.example.com",
			"_dmarc.g.example.com",
			"_dmarc.example.com",
			"_dmarc.com",
		},
	},
	{
		name: "exactly 8 labels: the walk drops one label at a time",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=reject", "a.b.c.d.e.f.example.com A -"},
		in:   Input{FromDomain: "a.b.c.d.e.f.example.com"},
		want: outcome{Result: Fail, Policy: PolicyReject, PublishedPolicy: PolicyReject, PolicySource: SourceP,
			PolicyDomain: "example.com", OrgDomain: "example.com", AuthorExists: true},
		names: []string{"_dmarc.a.b.c.d.e.f.example.com", "_dmarc.b.c.d.e.f.example.com", "_dmarc.c.d.e.f.example.com",
			"_dmarc.d.e.f.example.com", "_dmarc.e.f.example.com", "_dmarc.f.example.com", "_dmarc.example.com", "_dmarc.com"},
	},
	{
		name:  "no record anywhere: none",
		zone:  []string{"_dmarc.example.org TXT v=DMARC1; p=reject"},
		in:    Input{FromDomain: "a.example.com", DKIM: dkimPass("a.example.com")},
		want:  outcome{Result: None, OrgDomain: "a.example.com", AuthorExists: true},
		names: []string{"_dmarc.a.example.com", "_dmarc.example.com", "_dmarc.com"},
	},
	{
		name: "non-DMARC TXT records are discarded",
		zone: []string{"_dmarc.example.com TXT v=spf1 -all", "_dmarc.example.com TXT some verification", "_dmarc.com TXT v=DMARC1; p=none; psd=y"},
		in:   Input{FromDomain: "example.com"},
		want: outcome{Result: Fail, Policy: PolicyNone, PublishedPolicy: PolicyNone, PolicySource: SourceP,
			PolicyDomain: "com", OrgDomain: "example.com", AuthorExists: true},
	},
	{
		name: "several records at the author domain are discarded; the walk continues",
		zone: []string{
			"_dmarc.mail.example.com TXT v=DMARC1; p=none",
			"_dmarc.mail.example.com TXT v=DMARC1; p=quarantine",
			"_dmarc.example.com TXT v=DMARC1; p=reject",
		},
		in: Input{FromDomain: "mail.example.com"},
		want: outcome{Result: Fail, Policy: PolicyReject, PublishedPolicy: PolicyReject, PolicySource: SourceP,
			PolicyDomain: "example.com", OrgDomain: "example.com", AuthorExists: true},
	},
	{
		name: "a CNAME to the record is followed",
		zone: []string{"_dmarc.example.com CNAME dmarc.provider.example", "dmarc.provider.example TXT v=DMARC1; p=quarantine"},
		in:   Input{FromDomain: "example.com"},
		want: outcome{Result: Fail, Policy: PolicyQuarantine, PublishedPolicy: PolicyQuarantine, PolicySource: SourceP,
			PolicyDomain: "example.com", AuthorExists: true},
	},
	{
		name: "invalid p with a valid rua applies as p=none",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=bogus; rua=mailto:d@example.com"},
		in:   Input{FromDomain: "example.com"},
		want: outcome{Result: Fail, Policy: PolicyNone, PublishedPolicy: PolicyNone, PolicySource: SourceP,
			PolicyDomain: "example.com", AuthorExists: true},
	},
	{
		name: "invalid p without rua: permerror",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=bogus"},
		in:   Input{FromDomain: "example.com", DKIM: dkimPass("example.com")},
		want: outcome{Result: PermError, PolicyDomain: "example.com", AuthorExists: true},
	},
	{
		name: "strict DKIM alignment refuses a parent domain",
		zone: []string{"_dmarc.mail.example.com TXT v=DMARC1; p=reject; adkim=s; aspf=s"},
		in:   Input{FromDomain: "mail.example.com", SPF: spfPass("example.com"), DKIM: dkimPass("example.com")},
		want: outcome{Result: Fail, Policy: PolicyReject, PublishedPolicy: PolicyReject, PolicySource: SourceP,
			PolicyDomain: "mail.example.com", AuthorExists: true},
		names: []string{"_dmarc.mail.example.com"},
	},
	{
		name: "strict SPF alignment with the identical domain",
		zone: []string{"_dmarc.mail.example.com TXT v=DMARC1; p=reject; aspf=s"},
		in:   Input{FromDomain: "mail.example.com", SPF: spfPass("MAIL.example.com.")},
		want: outcome{Result: Pass, Policy: PolicyReject, PublishedPolicy: PolicyReject, PolicySource: SourceP,
			PolicyDomain: "mail.example.com", AuthorExists: true, SPFAligned: true},
	},
	{
		// RFC 9989 Appendix B.4.1.
		name: "relaxed DKIM alignment found by two walks",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=reject", "_dmarc.signing.example.com TXT v=DMARC1; p=none"},
		in:   Input{FromDomain: "example.com", SPF: spfPass("example.com"), DKIM: dkimPass("signing.example.com")},
		want: outcome{Result: Pass, Policy: PolicyReject, PublishedPolicy: PolicyReject, PolicySource: SourceP,
			PolicyDomain: "example.com", OrgDomain: "example.com", AuthorExists: true, SPFAligned: true, DKIMAligned: true},
		names: []string{"_dmarc.example.com", "_dmarc.com", "_dmarc.signing.example.com"},
	},
	{
		name: "failing SPF and DKIM results are not authenticated identifiers",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=reject"},
		in: Input{FromDomain: "example.com", SPF: SPFResult{Result: "softfail", Domain: "example.com"},
			DKIM: []DKIMResult{{Result: "fail", Domain: "example.com"}, {Result: "temperror", Domain: "example.com"}}},
		want: outcome{Result: Fail, Policy: PolicyReject, PublishedPolicy: PolicyReject, PolicySource: SourceP,
			PolicyDomain: "example.com", AuthorExists: true},
	},
	{
		name: "IDN author domain is evaluated as A-labels",
		zone: []string{"_dmarc.xn--bcher-kva.de TXT v=DMARC1; p=reject"},
		in:   Input{FromDomain: "BÜCHER.de", DKIM: dkimPass("xn--bcher-kva.de")},
		want: outcome{Result: Pass, Policy: PolicyReject, PublishedPolicy: PolicyReject, PolicySource: SourceP,
			PolicyDomain: "xn--bcher-kva.de", AuthorExists: true, DKIMAligned: true},
	},
	{
		name: "identifier walk limit",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=reject"},
		in:   Input{FromDomain: "example.com", DKIM: dkimPass("a.example.com", "b.example.com", "c.example.com")},
		opts: &Options{MaxIdentifierWalks: 1},
		want: outcome{Result: Pass, Policy: PolicyReject, PublishedPolicy: PolicyReject, PolicySource: SourceP,
			PolicyDomain: "example.com", OrgDomain: "example.com", AuthorExists: true, DKIMAligned: true},
		names: []string{"_dmarc.example.com", "_dmarc.com", "_dmarc.a.example.com"},
	},
	// Temporary DNS failures at each query of a walk: temperror.
	{
		name: "timeout at the author domain",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=reject", "_dmarc.a.mail.example.com TIMEOUT TXT"},
		in:   Input{FromDomain: "a.mail.example.com"},
		want: outcome{Result: TempError, AuthorExists: true},
	},
	{
		name: "timeout at the second name of the walk",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=reject", "_dmarc.mail.example.com TIMEOUT TXT"},
		in:   Input{FromDomain: "a.mail.example.com"},
		want: outcome{Result: TempError, AuthorExists: true},
	},
	{
		name: "timeout at the organizational domain",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=reject", "_dmarc.example.com TIMEOUT"},
		in:   Input{FromDomain: "a.mail.example.com"},
		want: outcome{Result: TempError, AuthorExists: true},
	},
	{
		name: "timeout at the top-level domain",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=reject", "_dmarc.com TIMEOUT TXT"},
		in:   Input{FromDomain: "a.mail.example.com"},
		want: outcome{Result: TempError, AuthorExists: true},
	},
	{
		name: "SERVFAIL in the walk",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=reject", "_dmarc.mail.example.com SERVFAIL TXT"},
		in:   Input{FromDomain: "a.mail.example.com"},
		want: outcome{Result: TempError, AuthorExists: true},
	},
	{
		name: "timeout in the walk of a DKIM identifier",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=reject", "_dmarc.signing.example.com TIMEOUT TXT"},
		in:   Input{FromDomain: "example.com", DKIM: dkimPass("signing.example.com")},
		want: outcome{Result: TempError, PolicyDomain: "example.com", OrgDomain: "example.com", AuthorExists: true},
	},
	{
		name: "timeout in a DKIM walk does not matter when SPF aligns",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=reject", "_dmarc.signing.example.com TIMEOUT TXT"},
		in:   Input{FromDomain: "example.com", SPF: spfPass("example.com"), DKIM: dkimPass("signing.example.com")},
		want: outcome{Result: Pass, Policy: PolicyReject, PublishedPolicy: PolicyReject, PolicySource: SourceP,
			PolicyDomain: "example.com", OrgDomain: "example.com", AuthorExists: true, SPFAligned: true},
	},
	{
		name: "timeout in the existence check for np",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=none; np=reject", "nosuch.example.com TIMEOUT A"},
		in:   Input{FromDomain: "nosuch.example.com"},
		want: outcome{Result: TempError, PolicyDomain: "example.com", OrgDomain: "example.com", AuthorExists: true},
	},
}

// runScenarios evaluates every scenario against the resolver newResolver
// returns for its zone.
func runScenarios(t *testing.T, scenarios []scenario, newResolver func(t *testing.T, z *dns.Zone) dns.Resolver) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			z := zoneOf(t, sc.zone...)
			r := newResolver(t, z)
			res := Evaluate(context.Background(), r, sc.in, sc.opts)
			if diff := cmp.Diff(sc.want, outcomeOf(res)); diff != "" {
				t.Errorf("outcome (-want +got):\n%s\nreason: %s\nwarnings: %q\nlookups: %+v", diff, res.Reason, res.Warnings, res.Lookups)
			}
			if res.Result == TempError && !errors.Is(res.Err, dns.ErrTemporary) {
				t.Errorf("temperror without a temporary DNS error: %v", res.Err)
			}
			if sc.names != nil {
				var got []string
				for _, l := range res.Lookups {
					if l.Type == dns.TypeTXT {
						got = append(got, l.Name)
					}
				}
				if diff := cmp.Diff(sc.names, got); diff != "" {
					t.Errorf("_dmarc queries (-want +got):\n%s", diff)
				}
			}
			if res.Reason == "" {
				t.Error("empty Reason")
			}
		})
	}
}

func TestEvaluateRFC9989Zone(t *testing.T) {
	runScenarios(t, rfc9989Scenarios, func(t *testing.T, z *dns.Zone) dns.Resolver { return z })
}

// TestEvaluateRFC9989Wire runs the same scenarios through the in-process
// DNS server, over UDP/TCP: a timeout fault is a server that never
// answers, so the client's own timeout produces the temperror.
func TestEvaluateRFC9989Wire(t *testing.T) {
	if testing.Short() {
		t.Skip("wire scenarios skipped in -short mode")
	}
	runScenarios(t, rfc9989Scenarios, func(t *testing.T, z *dns.Zone) dns.Resolver {
		return dnstest.Serve(t, z).Resolver(t, time.Second)
	})
}

// fixedRand returns n for every draw.
type fixedRand int

func (f fixedRand) IntN(int) int { return int(f) }

var rfc7489Scenarios = []scenario{
	{
		name: "PSL organizational domain, sp",
		zone: []string{"_dmarc.example.co.uk TXT v=DMARC1; p=reject; sp=quarantine", "a.b.example.co.uk A -"},
		in:   Input{FromDomain: "a.b.example.co.uk", SPF: spfPass("other.co.uk")},
		opts: &Options{Mode: RFC7489},
		want: outcome{Result: Fail, Policy: PolicyQuarantine, PublishedPolicy: PolicyQuarantine, PolicySource: SourceSP,
			PolicyDomain: "example.co.uk", OrgDomain: "example.co.uk", AuthorExists: true},
		names: []string{"_dmarc.a.b.example.co.uk", "_dmarc.example.co.uk"},
	},
	{
		name: "PSL relaxed alignment",
		zone: []string{"_dmarc.example.co.uk TXT v=DMARC1; p=reject"},
		in:   Input{FromDomain: "news.example.co.uk", DKIM: dkimPass("mail.example.co.uk")},
		opts: &Options{Mode: RFC7489},
		want: outcome{Result: Pass, Policy: PolicyReject, PublishedPolicy: PolicyReject, PolicySource: SourceP,
			PolicyDomain: "example.co.uk", OrgDomain: "example.co.uk", AuthorExists: true, DKIMAligned: true},
	},
	{
		name: "no intermediate queries: a record between author and organizational domain is not seen",
		zone: []string{"_dmarc.mail.example.com TXT v=DMARC1; p=none", "_dmarc.example.com TXT v=DMARC1; p=reject"},
		in:   Input{FromDomain: "a.mail.example.com"},
		opts: &Options{Mode: RFC7489},
		want: outcome{Result: Fail, Policy: PolicyReject, PublishedPolicy: PolicyReject, PolicySource: SourceP,
			PolicyDomain: "example.com", OrgDomain: "example.com", AuthorExists: true},
		names: []string{"_dmarc.a.mail.example.com", "_dmarc.example.com"},
	},
	{
		name: "pct sampled in",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=reject; pct=50"},
		in:   Input{FromDomain: "example.com"},
		opts: &Options{Mode: RFC7489, Rand: fixedRand(49)},
		want: outcome{Result: Fail, Policy: PolicyReject, PublishedPolicy: PolicyReject, PolicySource: SourceP,
			PolicyDomain: "example.com", OrgDomain: "example.com", AuthorExists: true},
	},
	{
		name: "pct sampled out: reject becomes quarantine",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=reject; pct=50"},
		in:   Input{FromDomain: "example.com"},
		opts: &Options{Mode: RFC7489, Rand: fixedRand(50)},
		want: outcome{Result: Fail, Policy: PolicyQuarantine, PublishedPolicy: PolicyReject, PolicySource: SourceP,
			PolicyDomain: "example.com", OrgDomain: "example.com", SampledOut: true, AuthorExists: true},
	},
	{
		name: "pct=0: quarantine becomes none",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=quarantine; pct=0"},
		in:   Input{FromDomain: "example.com"},
		opts: &Options{Mode: RFC7489, Rand: fixedRand(0)},
		want: outcome{Result: Fail, Policy: PolicyNone, PublishedPolicy: PolicyQuarantine, PolicySource: SourceP,
			PolicyDomain: "example.com", OrgDomain: "example.com", SampledOut: true, AuthorExists: true},
	},
	{
		name: "pct is ignored in RFC 9989 mode",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=reject; pct=0"},
		in:   Input{FromDomain: "example.com"},
		opts: &Options{Mode: RFC9989, Rand: fixedRand(99)},
		want: outcome{Result: Fail, Policy: PolicyReject, PublishedPolicy: PolicyReject, PolicySource: SourceP,
			PolicyDomain: "example.com", AuthorExists: true},
	},
	{
		name: "t=y and np are not RFC 7489 tags",
		zone: []string{"_dmarc.example.com TXT v=DMARC1; p=reject; np=none; t=y"},
		in:   Input{FromDomain: "nosuch.example.com"},
		opts: &Options{Mode: RFC7489},
		want: outcome{Result: Fail, Policy: PolicyReject, PublishedPolicy: PolicyReject, PolicySource: SourceP,
			PolicyDomain: "example.com", OrgDomain: "example.com", AuthorExists: true},
	},
	{
		name: "several records at the author domain: permerror",
		zone: []string{
			"_dmarc.mail.example.com TXT v=DMARC1; p=none",
			"_dmarc.mail.example.com TXT v=DMARC1; p=quarantine",
			"_dmarc.example.com TXT v=DMARC1; p=reject",
		},
		in:   Input{FromDomain: "mail.example.com"},
		opts: &Options{Mode: RFC7489},
		want: outcome{Result: PermError, PolicyDomain: "mail.example.com", OrgDomain: "example.com", AuthorExists: true},
	},
	{
		name: "PRIVATE section ignored by default: blogspot",
		zone: []string{"_dmarc.blogspot.com TXT v=DMARC1; p=reject", "_dmarc.me.blogspot.com TXT v=DMARC1; p=none"},
		in:   Input{FromDomain: "me.blogspot.com", DKIM: dkimPass("you.blogspot.com")},
		opts: &Options{Mode: RFC7489},
		want: outcome{Result: Pass, Policy: PolicyNone, PublishedPolicy: PolicyNone, PolicySource: SourceP,
			PolicyDomain: "me.blogspot.com", OrgDomain: "blogspot.com", AuthorExists: true, DKIMAligned: true},
	},
	{
		name: "PRIVATE section on request: blogspot",
		zone: []string{"_dmarc.blogspot.com TXT v=DMARC1; p=reject", "_dmarc.me.blogspot.com TXT v=DMARC1; p=none"},
		in:   Input{FromDomain: "me.blogspot.com", DKIM: dkimPass("you.blogspot.com")},
		opts: &Options{Mode: RFC7489, PSLIncludePrivate: true},
		want: outcome{Result: Fail, Policy: PolicyNone, PublishedPolicy: PolicyNone, PolicySource: SourceP,
			PolicyDomain: "me.blogspot.com", OrgDomain: "me.blogspot.com", AuthorExists: true},
	},
	{
		name: "timeout at the organizational domain",
		zone: []string{"_dmarc.example.com TIMEOUT TXT"},
		in:   Input{FromDomain: "a.example.com"},
		opts: &Options{Mode: RFC7489},
		want: outcome{Result: TempError, OrgDomain: "example.com", AuthorExists: true},
	},
}

func TestEvaluateRFC7489(t *testing.T) {
	runScenarios(t, rfc7489Scenarios, func(t *testing.T, z *dns.Zone) dns.Resolver { return z })
}

// TestEvaluatePctDistribution checks that pct sampling selects about
// pct% of failing messages with a real random source.
func TestEvaluatePctDistribution(t *testing.T) {
	z := zoneOf(t, "_dmarc.example.com TXT v=DMARC1; p=reject; pct=25")
	applied := 0
	const n = 4000
	for range n {
		res := Evaluate(context.Background(), z, Input{FromDomain: "example.com"}, &Options{Mode: RFC7489})
		if res.Policy == PolicyReject {
			applied++
		}
	}
	if applied < n*20/100 || applied > n*30/100 {
		t.Errorf("pct=25 applied the policy to %d of %d messages", applied, n)
	}
}

func TestEvaluateInvalidAuthor(t *testing.T) {
	z := dns.NewZone()
	for _, d := range []string{"", "a..b", "xn--zz.com", strings.Repeat("a", 64) + ".com"} {
		res := Evaluate(context.Background(), z, Input{FromDomain: d}, nil)
		if res.Result != PermError || len(res.Lookups) != 0 {
			t.Errorf("%q: %s, %d lookups", d, res.Result, len(res.Lookups))
		}
	}
}

// TestEvaluateLongName: a valid Author Domain whose _dmarc name would be
// longer than 253 octets has no record there; the walk goes on.
func TestEvaluateLongName(t *testing.T) {
	long := strings.Repeat(strings.Repeat("a", 60)+".", 3) + strings.Repeat("b", 58) + ".example.com" // 253 octets
	z := zoneOf(t, "_dmarc.example.com TXT v=DMARC1; p=reject", long+" A -")
	res := Evaluate(context.Background(), z, Input{FromDomain: long}, nil)
	if res.Result != Fail || res.PolicyDomain != "example.com" || len(res.Warnings) == 0 {
		t.Errorf("%s %q %q", res.Result, res.PolicyDomain, res.Warnings)
	}
}

// TestEvaluateContextCanceled: a cancelled context is a temporary failure.
func TestEvaluateContextCanceled(t *testing.T) {
	z := zoneOf(t, "_dmarc.example.com TXT v=DMARC1; p=reject")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := Evaluate(ctx, z, Input{FromDomain: "example.com"}, nil)
	if res.Result != TempError {
		t.Errorf("%s: %s", res.Result, res.Reason)
	}
}

func TestEvaluateReason(t *testing.T) {
	z := zoneOf(t, "_dmarc.example.com TXT v=DMARC1; p=reject; t=y; pct=10")
	res := Evaluate(context.Background(), z, Input{FromDomain: "example.com"}, nil)
	for _, want := range []string{"no aligned", "p=reject", "t=y: quarantine applied"} {
		if !strings.Contains(res.Reason, want) {
			t.Errorf("reason %q lacks %q", res.Reason, want)
		}
	}
	if !containsSubstring(res.Warnings, "removed by RFC 9989") {
		t.Errorf("warnings %q", res.Warnings)
	}
	if res.Record != "v=DMARC1; p=reject; t=y; pct=10" || res.Parsed == nil || res.Mode != RFC9989 {
		t.Errorf("record %q parsed %v mode %v", res.Record, res.Parsed, res.Mode)
	}
}

func TestDiscover(t *testing.T) {
	z := zoneOf(t,
		"_dmarc.example.com TXT v=DMARC1; p=reject",
		"_dmarc.dup.example TXT v=DMARC1; p=none",
		"_dmarc.dup.example TXT v=DMARC1; p=reject",
		"_dmarc.slow.example TIMEOUT TXT",
	)
	ctx := context.Background()
	d, err := Discover(ctx, z, "a.b.example.com", nil)
	if err != nil || d.Record == nil || d.PolicyDomain != "example.com" || d.OrgDomain != "example.com" || len(d.Lookups) != 4 {
		t.Errorf("%+v, %v", d, err)
	}
	d, err = Discover(ctx, z, "example.org", nil)
	if err != nil || d.Record != nil || d.PolicyDomain != "" || d.Reason == "" {
		t.Errorf("%+v, %v", d, err)
	}
	d, err = Discover(ctx, z, "dup.example", &Options{Mode: RFC7489})
	if err != nil || d.Record != nil || !strings.Contains(d.Reason, "2 DMARC records") {
		t.Errorf("%+v, %v", d, err)
	}
	if _, err = Discover(ctx, z, "x.slow.example", nil); !errors.Is(err, dns.ErrTimeout) {
		t.Errorf("timeout: %v", err)
	}
	if _, err = OrganizationalDomain(ctx, z, "x.slow.example"); !errors.Is(err, dns.ErrTemporary) {
		t.Errorf("OrganizationalDomain timeout: %v", err)
	}
	if _, err = OrganizationalDomain(ctx, z, "a..b"); !errors.Is(err, ErrInvalidDomain) {
		t.Errorf("OrganizationalDomain invalid: %v", err)
	}
}
