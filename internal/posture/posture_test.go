package posture

import (
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"flag"
	"math/big"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"portcullis/internal/dkim"
	"portcullis/internal/dns"
	"portcullis/internal/dns/dnstest"
)

var update = flag.Bool("update", false, "rewrite the golden reports")

var checkedAt = time.Date(2026, 5, 5, 8, 0, 0, 0, time.UTC)

// rsaPublic returns an RSA public key of exactly bits bits. Only the key
// record matters to the check (type and size), so the modulus is a fixed
// odd number of the right length, not a product of two primes: no slow
// key generation, and keys under 1024 bits, which crypto/rsa no longer
// generates, can be published.
func rsaPublic(bits int, seed int64) *rsa.PublicKey {
	n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
	n.Add(n, new(big.Int).Mul(big.NewInt(seed*7919+13), new(big.Int).Lsh(big.NewInt(1), uint(bits/2))))
	n.SetBit(n, 0, 1)
	return &rsa.PublicKey{N: n, E: 65537}
}

func keyRecord(t testing.TB, pub any) string {
	t.Helper()
	rec, err := dkim.KeyRecord(pub)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// testZone builds one zone holding every scenario the check must find.
func testZone(t testing.TB) *dns.Zone {
	z := dns.NewZone()
	txt := func(name string, vals ...string) {
		for _, v := range vals {
			var parts []string
			for len(v) > 255 {
				parts = append(parts, v[:255])
				v = v[255:]
			}
			z.Add(name, dns.Record{Type: dns.TypeTXT, TTL: 300, TXT: append(parts, v)})
		}
	}
	a := func(name, ip string) {
		typ := dns.TypeA
		if strings.Contains(ip, ":") {
			typ = dns.TypeAAAA
		}
		z.Add(name, dns.Record{Type: typ, TTL: 300, IP: netip.MustParseAddr(ip)})
	}
	mx := func(name string, pref uint16, host string) {
		z.Add(name, dns.Record{Type: dns.TypeMX, TTL: 300, Pref: pref, Host: host})
	}
	rsaKey := func(sel, domain string, bits int, extra string) {
		rec := keyRecord(t, rsaPublic(bits, int64(len(sel)+bits)))
		if extra != "" {
			rec = strings.Replace(rec, "v=DKIM1; ", "v=DKIM1; "+extra+"; ", 1)
		}
		txt(dkim.KeyName(sel, domain), rec)
	}

	// A well-configured domain: grade A.
	txt("good.example", "v=spf1 ip4:192.0.2.0/24 include:_spf.provider.example -all")
	txt("_spf.provider.example", "v=spf1 ip4:198.51.100.0/24 -all")
	txt("_dmarc.good.example", "v=DMARC1; p=reject; rua=mailto:dmarc@good.example")
	rsaKey("selector1", "good.example", 2048, "")
	mx("good.example", 10, "mx.good.example")
	a("mx.good.example", "192.0.2.25")

	// An SPF tree of 13 lookups: the 11th is a:o6 inside include:b3
	// inside include:big; DMARC p=none without rua.
	txt("overlimit.example", "v=spf1 include:small.inc.example include:big.inc.example mx -all")
	txt("small.inc.example", "v=spf1 ip4:203.0.113.0/28 -all")
	txt("big.inc.example", "v=spf1 include:b1.inc.example include:b2.inc.example include:b3.inc.example a:out.inc.example -all")
	txt("b1.inc.example", "v=spf1 a:o1.inc.example a:o2.inc.example -all")
	txt("b2.inc.example", "v=spf1 a:o3.inc.example a:o4.inc.example -all")
	txt("b3.inc.example", "v=spf1 a:o5.inc.example a:o6.inc.example -all")
	for i, h := range []string{"o1", "o2", "o3", "o4", "o5", "o6", "out"} {
		a(h+".inc.example", "198.51.100."+string(rune('1'+i)))
	}
	a("o1.inc.example", "2001:db8:5::1")
	txt("_dmarc.overlimit.example", "v=DMARC1; p=none")
	mx("overlimit.example", 10, "mx.overlimit.example")
	a("mx.overlimit.example", "192.0.2.30")

	// Three void lookups.
	txt("void.example", "v=spf1 a:gone1.void.example mx:gone2.void.example include:_spf.void.example exists:gone3.void.example -all")
	txt("_spf.void.example", "v=spf1 ip4:192.0.2.128/25 -all")
	a("host.void.example", "192.0.2.140") // makes void.example's subtree exist
	txt("_dmarc.void.example", "v=DMARC1; p=quarantine; rua=mailto:dmarc@void.example")

	// The "all" variants and ptr.
	txt("plusall.example", "v=spf1 +all")
	txt("neutral.example", "v=spf1 ip4:192.0.2.1 ?all")
	txt("noall.example", "v=spf1 ip4:192.0.2.1")
	txt("softall.example", "v=spf1 ip4:192.0.2.1 ~all")
	txt("ptr.example", "v=spf1 ptr -all")
	// Several records, a syntax error, an include without a record, a loop.
	txt("multi.example", "v=spf1 ip4:192.0.2.1 -all", "v=spf1 ip4:192.0.2.2 -all")
	txt("syntax.example", "v=spf1 ip4:999.1.1.1 -all")
	txt("badinclude.example", "v=spf1 include:nothing.badinclude.example -all")
	a("x.badinclude.example", "192.0.2.3")
	txt("loop.example", "v=spf1 include:loop2.example -all")
	txt("loop2.example", "v=spf1 include:loop.example -all")
	// A record over 450 octets.
	var ips []string
	for i := range 40 {
		ips = append(ips, "ip4:203.0.113."+itoa(i)+"/32")
	}
	txt("long.example", "v=spf1 "+strings.Join(ips, " ")+" -all")

	// DMARC scenarios.
	txt("parent.example", "v=spf1 -all")
	txt("_dmarc.parent.example", "v=DMARC1; p=reject; sp=quarantine; rua=mailto:dmarc@parent.example")
	txt("sub.parent.example", "v=spf1 -all")
	txt("_dmarc.removed.example", "v=DMARC1; p=quarantine; pct=50; rf=afrf; ri=3600; rua=mailto:d@removed.example")
	txt("_dmarc.ext.example", "v=DMARC1; p=reject; rua=mailto:reports@vendor.example,mailto:agg@vendor2.example")
	txt("ext.example._report._dmarc.vendor2.example", "v=DMARC1")
	txt("_dmarc.strict.example", "v=DMARC1; p=reject; adkim=s; aspf=s; sp=none; np=none; rua=mailto:d@strict.example")
	txt("_dmarc.twice.example", "v=DMARC1; p=reject", "v=DMARC1; p=none")
	txt("_dmarc.testing.example", "v=DMARC1; p=quarantine; t=y; rua=mailto:d@testing.example")

	// DKIM keys.
	rsaKey("s1", "weak.example", 1024, "")
	rsaKey("google", "weak.example", 2048, "t=y")
	rsaKey("default", "broken.example", 512, "")
	txt(dkim.KeyName("mail", "revoked.example"), "v=DKIM1; k=rsa; p=")
	txt(dkim.KeyName("dkim", "syntaxkey.example"), "v=DKIM1; k=rsa; p=!!notbase64!!")
	txt(dkim.KeyName("k1", "ed.example"), keyRecord(t, ed25519.NewKeyFromSeed(make([]byte, 32)).Public()))
	rsaKey("s2", "sha1.example", 2048, "h=sha1")

	// MX scenarios.
	a("nomx.example", "192.0.2.60")
	mx("nullmx.example", 0, "")
	mx("mixednull.example", 0, "")
	mx("mixednull.example", 10, "mx.mixednull.example")
	a("mx.mixednull.example", "192.0.2.61")
	mx("noaddr.example", 10, "mx.noaddr.example")
	mx("noaddr.example", 20, "mx2.noaddr.example")
	a("mx2.noaddr.example", "192.0.2.62")
	txt("mx.noaddr.example", "not an address")
	mx("cname.example", 10, "alias.cname.example")
	z.Add("alias.cname.example", dns.Record{Type: dns.TypeCNAME, TTL: 300, Host: "real.cname.example"})
	a("real.cname.example", "192.0.2.63")
	mx("iplit.example", 10, "192.0.2.64")

	// A parked domain: sends and receives no mail, and says so.
	txt("parked.example", "v=spf1 -all")
	mx("parked.example", 0, "")
	txt("_dmarc.parked.example", "v=DMARC1; p=reject; rua=mailto:dmarc@good.example")
	txt("parked.example._report._dmarc.good.example", "v=DMARC1")
	return z
}

func itoa(i int) string {
	const d = "0123456789"
	if i < 10 {
		return d[i : i+1]
	}
	return itoa(i/10) + d[i%10:i%10+1]
}

// checker checks domains against the test zone served over the wire.
func checker(t testing.TB) func(domain string, selectors ...string) *Report {
	srv := dnstest.Serve(t, testZone(t))
	r := srv.Resolver(t, time.Second)
	return func(domain string, selectors ...string) *Report {
		return Check(context.Background(), r, domain, &Options{Selectors: selectors, Now: func() time.Time { return checkedAt }})
	}
}

func findingCodes(a Area) []string {
	var out []string
	for _, f := range a.Findings {
		out = append(out, f.Code)
	}
	return out
}

func findingText(a Area, code string) string {
	for _, f := range a.Findings {
		if f.Code == code {
			return f.Text
		}
	}
	return ""
}

func TestCheck(t *testing.T) {
	check := checker(t)
	type want struct {
		area   func(r *Report) *Area
		status Status
		codes  []string
		absent []string
		grade  string
		check  func(t *testing.T, r *Report)
	}
	spfA := func(r *Report) *Area { return &r.SPF.Area }
	dmA := func(r *Report) *Area { return &r.DMARC.Area }
	dkA := func(r *Report) *Area { return &r.DKIM.Area }
	mxA := func(r *Report) *Area { return &r.MX.Area }
	cases := map[string]want{
		"good.example": {area: spfA, status: StatusPass, codes: []string{"spf-lookups", "spf-fail-all"}, grade: "A",
			check: func(t *testing.T, r *Report) {
				for _, a := range r.Areas() {
					if a.Status != StatusPass {
						t.Errorf("%s: %s %v", a.Name, a.Status, a.Findings)
					}
				}
				if r.SPF.Lookups != 1 || len(r.DKIM.Keys) != 1 || r.DKIM.Keys[0].Bits != 2048 {
					t.Errorf("SPF lookups %d, keys %+v", r.SPF.Lookups, r.DKIM.Keys)
				}
			}},
		"overlimit.example": {area: spfA, status: StatusFail, codes: []string{"spf-lookups-over-limit"},
			check: func(t *testing.T, r *Report) {
				if r.SPF.Lookups != 13 {
					t.Errorf("lookups = %d", r.SPF.Lookups)
				}
				want := "include:big.inc.example → include:b3.inc.example → a:o6.inc.example"
				if r.SPF.OverLimit != want {
					t.Errorf("over limit at %q, want %q", r.SPF.OverLimit, want)
				}
				text := findingText(r.SPF.Area, "spf-lookups-over-limit")
				if !strings.Contains(text, want) || !strings.Contains(text, "include:big.inc.example (11)") {
					t.Errorf("finding does not name the culprit: %s", text)
				}
				if got := r.SPF.Branches; len(got) != 2 || got[1] != (SPFBranch{"include:big.inc.example", 11}) {
					t.Errorf("branches = %+v", got)
				}
				if r.DMARC.Status != StatusWarn || !r.DMARC.has("dmarc-policy-none") || !r.DMARC.has("dmarc-no-rua") {
					t.Errorf("DMARC = %+v", r.DMARC.Area)
				}
				if r.Grade != "C" && r.Grade != "D" && r.Grade != "F" {
					t.Errorf("grade %s for p=none and a broken SPF", r.Grade)
				}
				// The suggested record flattens include:big and fits.
				var rec *RecordSuggestion
				for i := range r.Remediation.Records {
					if s := &r.Remediation.Records[i]; s.Area == "spf" && s.Action == ActionReplace {
						rec = s
					}
				}
				if rec == nil {
					t.Fatalf("no SPF record suggested: %+v", r.Remediation)
				}
				for _, ip := range []string{"ip4:198.51.100.1/32", "ip4:198.51.100.7/32", "ip6:2001:db8:5::1/128", "include:small.inc.example", " mx ", "-all"} {
					if !strings.Contains(rec.Value+" ", ip) {
						t.Errorf("suggested %q lacks %q", rec.Value, ip)
					}
				}
				if strings.Contains(rec.Value, "include:big.inc.example") || !strings.Contains(rec.Note, "snapshot") {
					t.Errorf("suggestion %+v", rec)
				}
			}},
		"void.example": {area: spfA, status: StatusFail, codes: []string{"spf-void-over-limit"},
			check: func(t *testing.T, r *Report) {
				if r.SPF.VoidLookups != 3 {
					t.Errorf("void lookups = %d", r.SPF.VoidLookups)
				}
				text := findingText(r.SPF.Area, "spf-void-over-limit")
				for _, term := range []string{"a:gone1.void.example", "mx:gone2.void.example", "exists:gone3.void.example"} {
					if !strings.Contains(text, term) {
						t.Errorf("finding lacks %s: %s", term, text)
					}
				}
			}},
		"plusall.example":    {area: spfA, status: StatusFail, codes: []string{"spf-plus-all"}},
		"neutral.example":    {area: spfA, status: StatusWarn, codes: []string{"spf-neutral-all"}},
		"noall.example":      {area: spfA, status: StatusWarn, codes: []string{"spf-no-all"}},
		"softall.example":    {area: spfA, status: StatusPass, codes: []string{"spf-softfail-all"}},
		"ptr.example":        {area: spfA, status: StatusWarn, codes: []string{"spf-ptr"}},
		"multi.example":      {area: spfA, status: StatusFail, codes: []string{"spf-multiple"}},
		"syntax.example":     {area: spfA, status: StatusFail, codes: []string{"spf-syntax"}},
		"badinclude.example": {area: spfA, status: StatusFail, codes: []string{"spf-include-missing"}},
		"loop.example":       {area: spfA, status: StatusFail, codes: []string{"spf-include-loop"}},
		"long.example":       {area: spfA, status: StatusWarn, codes: []string{"spf-too-long"}},
		"nothing.example": {area: spfA, status: StatusFail, codes: []string{"spf-missing", "domain-nxdomain"}, grade: "F",
			check: func(t *testing.T, r *Report) {
				if !r.MX.NXDomain || !r.MX.has("mx-nxdomain") {
					t.Errorf("MX = %+v", r.MX)
				}
			}},
		"nomx.example": {area: dmA, status: StatusFail, codes: []string{"dmarc-missing"}, grade: "F",
			check: func(t *testing.T, r *Report) {
				if r.MX.Status != StatusWarn || !r.MX.has("mx-none") || !r.MX.Implicit {
					t.Errorf("MX = %+v", r.MX)
				}
			}},
		"sub.parent.example": {area: dmA, status: StatusPass, codes: []string{"dmarc-inherited", "dmarc-policy-quarantine"},
			check: func(t *testing.T, r *Report) {
				if !r.DMARC.Inherited || r.DMARC.PolicyDomain != "parent.example" || r.DMARC.Policy != "quarantine" {
					t.Errorf("DMARC = %+v", r.DMARC)
				}
				if !slices.Contains(r.DMARC.Discovery, "_dmarc.sub.parent.example TXT: NXDOMAIN") {
					t.Errorf("discovery = %v", r.DMARC.Discovery)
				}
			}},
		"removed.example": {area: dmA, status: StatusWarn, codes: []string{"dmarc-removed-tags"},
			check: func(t *testing.T, r *Report) {
				if text := findingText(r.DMARC.Area, "dmarc-removed-tags"); !strings.Contains(text, "pct=50") || !strings.Contains(text, "pct, rf, ri") {
					t.Errorf("text: %s", text)
				}
				if r.DMARC.Pct != 50 {
					t.Errorf("pct = %d", r.DMARC.Pct)
				}
			}},
		"ext.example": {area: dmA, status: StatusWarn, codes: []string{"dmarc-rua-unauthorized", "dmarc-rua-external-authorized"},
			check: func(t *testing.T, r *Report) {
				if len(r.DMARC.RUA) != 2 || r.DMARC.RUA[0].Authorized || r.DMARC.RUA[0].AuthName != "ext.example._report._dmarc.vendor.example" || !r.DMARC.RUA[1].Authorized {
					t.Errorf("rua = %+v", r.DMARC.RUA)
				}
				var ask bool
				for _, s := range r.Remediation.Records {
					if s.Action == ActionAsk && s.Name == "ext.example._report._dmarc.vendor.example" && s.Value == "v=DMARC1" {
						ask = true
					}
				}
				if !ask {
					t.Errorf("no authorization record suggested: %+v", r.Remediation.Records)
				}
			}},
		"strict.example":  {area: dmA, status: StatusWarn, codes: []string{"dmarc-strict", "dmarc-sp-weaker", "dmarc-np-weaker"}},
		"twice.example":   {area: dmA, status: StatusFail, codes: []string{"dmarc-multiple"}},
		"testing.example": {area: dmA, status: StatusWarn, codes: []string{"dmarc-testing"}},
		"weak.example": {area: dkA, status: StatusWarn, codes: []string{"dkim-key-weak", "dkim-key-testing"},
			check: func(t *testing.T, r *Report) {
				var sug bool
				for _, s := range r.Remediation.Records {
					if s.Area == "dkim" && s.Action == ActionReplace && !strings.Contains(s.Value, "t=y") && strings.Contains(s.Value, "p=") {
						sug = true
					}
				}
				if !sug {
					t.Errorf("no t=y removal suggested: %+v", r.Remediation.Records)
				}
			}},
		"broken.example":    {area: dkA, status: StatusFail, codes: []string{"dkim-key-broken"}},
		"revoked.example":   {area: dkA, status: StatusPass, codes: []string{"dkim-key-revoked"}},
		"syntaxkey.example": {area: dkA, status: StatusFail, codes: []string{"dkim-key-syntax"}},
		"ed.example":        {area: dkA, status: StatusPass, codes: []string{"dkim-key"}},
		"sha1.example":      {area: dkA, status: StatusFail, codes: []string{"dkim-key-sha1-only"}},
		"mixednull.example": {area: mxA, status: StatusFail, codes: []string{"mx-null-mixed"}},
		"noaddr.example":    {area: mxA, status: StatusFail, codes: []string{"mx-no-address"}},
		"cname.example":     {area: mxA, status: StatusWarn, codes: []string{"mx-cname"}},
		"iplit.example":     {area: mxA, status: StatusFail, codes: []string{"mx-ip-literal"}},
		"nullmx.example": {area: mxA, status: StatusPass, codes: []string{"mx-null"},
			check: func(t *testing.T, r *Report) {
				if !r.SPF.has("spf-null-mx-no-spf") {
					t.Errorf("SPF findings %v", findingCodes(r.SPF.Area))
				}
			}},
		"parked.example": {area: dkA, status: StatusPass, codes: []string{"dkim-not-needed"}, absent: []string{"dkim-none-found"}, grade: "A"},
	}
	given := map[string][]string{"good.example": {"selector1"}}
	for domain, w := range cases {
		domain = strings.TrimSpace(domain)
		if w.area == nil {
			continue
		}
		t.Run(domain, func(t *testing.T) {
			r := check(domain, given[domain]...)
			a := w.area(r)
			if a.Status != w.status {
				t.Errorf("status %s, want %s (%s); findings %v; error %q", a.Status, w.status, a.Verdict, findingCodes(*a), a.Error)
			}
			codes := findingCodes(*a)
			for _, c := range w.codes {
				if !slices.Contains(codes, c) {
					t.Errorf("finding %s missing; have %v", c, codes)
				}
			}
			for _, c := range w.absent {
				if slices.Contains(codes, c) {
					t.Errorf("unexpected finding %s", c)
				}
			}
			if a.Verdict == "" || r.Verdict == "" {
				t.Errorf("empty verdict: area %q, overall %q", a.Verdict, r.Verdict)
			}
			if w.grade != "" && r.Grade != w.grade {
				t.Errorf("grade %s (%d), want %s: %s", r.Grade, r.Score, w.grade, r.Verdict)
			}
			if w.check != nil {
				w.check(t, r)
			}
		})
	}
}

func TestGivenSelectorMissing(t *testing.T) {
	r := checker(t)("good.example", "custom")
	if !r.DKIM.has("dkim-selector-missing") || r.DKIM.Status != StatusFail {
		t.Errorf("DKIM = %+v", r.DKIM.Area)
	}
	if r.DKIM.Checked[0] != "custom" || !slices.Contains(r.DKIM.Checked, "selector1") {
		t.Errorf("checked = %v", r.DKIM.Checked)
	}
}

func TestInvalidDomain(t *testing.T) {
	r := Check(context.Background(), dns.NewZone(), "not a domain..", nil)
	if r.Error == "" || r.Grade != "F" || r.SPF.Status != StatusError {
		t.Errorf("report = %+v", r)
	}
	r = Check(context.Background(), dns.NewZone(), "localhost", nil)
	if r.Error == "" {
		t.Error("single label accepted")
	}
}

// TestTemporaryFailure: a DNS server that does not answer makes areas
// "error", never pass or fail.
func TestTemporaryFailure(t *testing.T) {
	z := testZone(t)
	z.SetFaultFunc(func(name string, _ dns.Type) dns.Fault {
		if strings.HasSuffix(name, "good.example") {
			return dns.FaultServFail
		}
		return dns.FaultNone
	})
	r := Check(context.Background(), z, "good.example", &Options{Now: func() time.Time { return checkedAt }})
	for _, a := range r.Areas() {
		if a.Status != StatusError {
			t.Errorf("%s: %s (%s)", a.Name, a.Status, a.Verdict)
		}
	}
}

func TestGradeLetters(t *testing.T) {
	for score, want := range map[int]string{100: "A", 90: "A", 89: "B", 75: "B", 74: "C", 60: "C", 59: "D", 40: "D", 39: "F", 0: "F"} {
		if got := letter(score); got != want {
			t.Errorf("letter(%d) = %s, want %s", score, got, want)
		}
	}
	if capGrade("A", "C") != "C" || capGrade("D", "C") != "D" {
		t.Error("capGrade")
	}
}

func TestSplitLong(t *testing.T) {
	var ips []string
	for i := range 60 {
		ips = append(ips, "ip4:198.51.100."+itoa(i)+"/32")
	}
	parts := splitLong("x.example", "v=spf1 mx "+strings.Join(ips, " ")+" -all")
	if len(parts) < 3 {
		t.Fatalf("parts = %v", parts)
	}
	main := parts[0].value
	if !strings.HasPrefix(main, "v=spf1 mx include:_spf1.x.example") || !strings.HasSuffix(main, " -all") {
		t.Errorf("main = %q", main)
	}
	n := 0
	for _, p := range parts[1:] {
		if len(p.value) > maxPart {
			t.Errorf("%s is %d octets", p.name, len(p.value))
		}
		n += strings.Count(p.value, "ip4:")
	}
	if n != 60 {
		t.Errorf("%d ranges kept of 60", n)
	}
}

func TestWithoutTesting(t *testing.T) {
	for in, want := range map[string]string{
		"v=DKIM1; t=y; k=rsa; p=AB": "v=DKIM1; k=rsa; p=AB",
		"v=DKIM1; t=y:s; p=AB":      "v=DKIM1; t=s; p=AB",
		"v=DKIM1; p=AB":             "v=DKIM1; p=AB",
	} {
		if got := withoutTesting(in); got != want {
			t.Errorf("withoutTesting(%q) = %q, want %q", in, got, want)
		}
	}
}
