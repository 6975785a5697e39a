package dmarc

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseRecordNotDMARC(t *testing.T) {
	for _, txt := range []string{
		"",
		"   ",
		"v=spf1 -all",
		"p=reject; v=DMARC1",       // v must be first (RFC 9989 §4.7)
		"v=dmarc1; p=reject",       // the value is case-sensitive
		"v=DMARC2; p=reject",       // another version
		"v=DMARC1p=reject",         // no separator after the version
		"v=DMARC1 p=reject",        // idem
		"vv=DMARC1; p=reject",      // not the v tag
		"bio=a263adeab8acdcdb8b89", // rspamd zone filler
	} {
		if _, err := ParseRecord(txt, RFC9989); !errors.Is(err, ErrNotDMARC) {
			t.Errorf("%q: err %v, want ErrNotDMARC", txt, err)
		}
		if IsDMARCRecord(txt) {
			t.Errorf("IsDMARCRecord(%q) = true", txt)
		}
	}
}

func TestParseRecordFull(t *testing.T) {
	r, err := ParseRecord(" V = DMARC1 ;P=Reject; sp=quarantine ; np=reject; psd=n; t=y; adkim=s; aspf=S; fo=1:d:s; "+
		"rua=mailto:agg@example.com!10m, mailto:other@example.net; ruf=mailto:f%40x@example.com; foo=bar;", RFC9989)
	if err != nil {
		t.Fatal(err)
	}
	if r.P != PolicyReject || r.SP != PolicyQuarantine || r.NP != PolicyReject {
		t.Errorf("policies %q %q %q", r.P, r.SP, r.NP)
	}
	if r.PSD != PSDNo || !r.Testing || r.ADKIM != AlignStrict || r.ASPF != AlignStrict {
		t.Errorf("psd %q testing %v adkim %q aspf %q", r.PSD, r.Testing, r.ADKIM, r.ASPF)
	}
	if !slices.Equal(r.FO, []string{"1", "d", "s"}) {
		t.Errorf("fo %v", r.FO)
	}
	if len(r.RUA) != 2 || r.RUA[0].Address != "agg@example.com" || r.RUA[0].MaxSize != 10<<20 || r.RUA[1].Address != "other@example.net" {
		t.Errorf("rua %+v", r.RUA)
	}
	if len(r.RUF) != 1 || r.RUF[0].Address != "f@x@example.com" || r.RUF[0].Scheme != "mailto" {
		t.Errorf("ruf %+v", r.RUF)
	}
	if !slices.Equal(r.Unknown, []string{"foo"}) {
		t.Errorf("unknown %v", r.Unknown)
	}
	if _, _, _, sub, ok, _ := r.Applicable(); !ok || sub {
		t.Errorf("applicable %v substituted %v", ok, sub)
	}
	// The obsolete size suffix is noted in RFC 9989 mode.
	if !containsSubstring(r.Warnings, "obsolete") {
		t.Errorf("no warning about the size suffix: %q", r.Warnings)
	}
}

func TestParseRecordDefaults(t *testing.T) {
	r, err := ParseRecord("v=DMARC1; p=none", RFC9989)
	if err != nil {
		t.Fatal(err)
	}
	if r.SP != "" || r.NP != "" || r.PSD != PSDUnknown || r.Testing || r.ADKIM != AlignRelaxed || r.ASPF != AlignRelaxed ||
		!slices.Equal(r.FO, []string{"0"}) || r.Pct != 100 || r.RI != 86400 || !slices.Equal(r.RF, []string{"afrf"}) {
		t.Errorf("defaults: %+v", r)
	}
	if len(r.Warnings) != 0 {
		t.Errorf("warnings %q", r.Warnings)
	}
}

// TestParseRecordRemovedTags: RFC 9989 Appendix C.5.2 removed pct, rf and
// ri; they are reported and ignored. RFC 7489 mode uses them.
func TestParseRecordRemovedTags(t *testing.T) {
	const txt = "v=DMARC1; p=reject; pct=20; rf=afrf; ri=3600; np=none; psd=y; t=y"
	r, err := ParseRecord(txt, RFC9989)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Removed, []string{"pct", "rf", "ri"}) || r.Pct != 100 || r.RI != 86400 {
		t.Errorf("RFC 9989: removed %v pct %d ri %d", r.Removed, r.Pct, r.RI)
	}
	if !containsSubstring(r.Warnings, "removed by RFC 9989") {
		t.Errorf("no removal warning: %q", r.Warnings)
	}
	r, err = ParseRecord(txt, RFC7489)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Removed) != 0 || r.Pct != 20 || r.RI != 3600 || !slices.Equal(r.RF, []string{"afrf"}) {
		t.Errorf("RFC 7489: removed %v pct %d ri %d rf %v", r.Removed, r.Pct, r.RI, r.RF)
	}
	// np, psd and t are not RFC 7489 tags.
	if !slices.Equal(r.Unknown, []string{"np", "psd", "t"}) || r.NP != "" || r.PSD != PSDUnknown || r.Testing {
		t.Errorf("RFC 7489: unknown %v np %q psd %q t %v", r.Unknown, r.NP, r.PSD, r.Testing)
	}
}

// TestParseRecordSyntaxErrors: syntax errors outside p/sp/np fall back to
// defaults with a warning (RFC 9989 §4.8).
func TestParseRecordSyntaxErrors(t *testing.T) {
	for _, tc := range []struct {
		txt   string
		check func(r *Record) bool
	}{
		{"v=DMARC1; p=none; adkim=x", func(r *Record) bool { return r.ADKIM == AlignRelaxed }},
		{"v=DMARC1; p=none; aspf=", func(r *Record) bool { return r.ASPF == AlignRelaxed }},
		{"v=DMARC1; p=none; psd=maybe", func(r *Record) bool { return r.PSD == PSDUnknown }},
		{"v=DMARC1; p=none; t=yes", func(r *Record) bool { return !r.Testing }},
		{"v=DMARC1; p=none; fo=0:1", func(r *Record) bool { return slices.Equal(r.FO, []string{"0"}) }},
		{"v=DMARC1; p=none; fo=x", func(r *Record) bool { return slices.Equal(r.FO, []string{"0"}) }},
		{"v=DMARC1; p=none; fo=d:d", func(r *Record) bool { return slices.Equal(r.FO, []string{"0"}) }},
		{"v=DMARC1; p=none; rua=nourl", func(r *Record) bool { return len(r.RUA) == 0 }},
		{"v=DMARC1; p=none; rua=mailto:a@b!xx", func(r *Record) bool { return len(r.RUA) == 0 }},
		{"v=DMARC1; p=none; rua=mailto:a@b%zz", func(r *Record) bool { return len(r.RUA) == 0 }},
		{"v=DMARC1; p=none; rua=mailto:a b@c", func(r *Record) bool { return len(r.RUA) == 0 }},
		{"v=DMARC1; p=none; rua=mailto:nobody", func(r *Record) bool { return len(r.RUA) == 0 }},
		{"v=DMARC1; p=none; rua=mailto:a@x.example,, mailto:b@x.example", func(r *Record) bool { return len(r.RUA) == 2 }},
		{"v=DMARC1; p=none; p=reject", func(r *Record) bool { return r.P == PolicyNone }},
		{"v=DMARC1; p=none;; sp=reject", func(r *Record) bool { return r.SP == PolicyReject }},
		{"v=DMARC1; p=none; 1x=y; =z; novalue", func(r *Record) bool { return r.P == PolicyNone }},
		{"v=DMARC1; p=none; sp=reject\x01", func(r *Record) bool { return r.SP == "" }},
	} {
		r, err := ParseRecord(tc.txt, RFC9989)
		if err != nil {
			t.Errorf("%q: %v", tc.txt, err)
			continue
		}
		if !tc.check(r) {
			t.Errorf("%q: wrong value: %+v", tc.txt, r)
		}
		if len(r.Warnings) == 0 {
			t.Errorf("%q: no warning", tc.txt)
		}
	}
	// RFC 7489 mode: pct out of range and bad ri fall back to defaults.
	r, _ := ParseRecord("v=DMARC1; p=none; pct=101; ri=-1; rf=bob", RFC7489)
	if r.Pct != 100 || r.RI != 86400 || !slices.Equal(r.RF, []string{"afrf"}) || len(r.Warnings) < 3 {
		t.Errorf("7489 defaults: %+v", r)
	}
}

// TestApplicable covers RFC 9989 §4.10.1: a record without a valid p (or
// with an invalid sp/np) applies as p=none when rua holds a valid URI, and
// not at all otherwise.
func TestApplicable(t *testing.T) {
	for _, tc := range []struct {
		txt           string
		ok, sub       bool
		p, sp, np     Policy
		problemSubstr string
	}{
		{"v=DMARC1; p=reject; sp=none; np=quarantine", true, false, PolicyReject, PolicyNone, PolicyQuarantine, ""},
		{"v=DMARC1; rua=mailto:r@example.com", true, true, PolicyNone, "", "", "no p tag"},
		{"v=DMARC1", false, false, "", "", "", "no p tag"},
		{"v=DMARC1; p=bogus", false, false, "", "", "", "invalid p"},
		{"v=DMARC1; p=bogus; rua=mailto:r@example.com", true, true, PolicyNone, "", "", "invalid p"},
		{"v=DMARC1; p=reject; sp=bogus", false, false, "", "", "", "invalid sp"},
		{"v=DMARC1; p=reject; np=bogus; rua=mailto:r@example.com", true, true, PolicyNone, "", "", "invalid np"},
		{"v=DMARC1; p=reject; sp=bogus; rua=ftp://x", true, true, PolicyNone, "", "", "invalid sp"},
		{"v=DMARC1; p=; rua=bad", false, false, "", "", "", "invalid p"},
	} {
		r, err := ParseRecord(tc.txt, RFC9989)
		if err != nil {
			t.Fatalf("%q: %v", tc.txt, err)
		}
		p, sp, np, sub, ok, problem := r.Applicable()
		if ok != tc.ok || sub != tc.sub || p != tc.p || sp != tc.sp || np != tc.np || !strings.Contains(problem, tc.problemSubstr) {
			t.Errorf("%q: ok %v sub %v p %q sp %q np %q problem %q", tc.txt, ok, sub, p, sp, np, problem)
		}
	}
	// In RFC 7489 mode np is unknown, so an invalid np does not matter.
	r, _ := ParseRecord("v=DMARC1; p=reject; np=bogus", RFC7489)
	if _, _, _, _, ok, _ := r.Applicable(); !ok {
		t.Error("RFC 7489: np=bogus made the record inapplicable")
	}
}

func TestParseURI(t *testing.T) {
	for _, tc := range []struct {
		in      string
		ok      bool
		size    uint64
		scheme  string
		address string
	}{
		{"mailto:dmarc@example.com", true, 0, "mailto", "dmarc@example.com"},
		{"MAILTO:dmarc@example.com!1k", true, 1024, "mailto", "dmarc@example.com"},
		{"mailto:dmarc@example.com!2g", true, 2 << 30, "mailto", "dmarc@example.com"},
		{"mailto:dmarc@example.com!3t", true, 3 << 40, "mailto", "dmarc@example.com"},
		{"mailto:dmarc@example.com!500", true, 500, "mailto", "dmarc@example.com"},
		{"mailto:a%2Cb@example.com?subject=x", true, 0, "mailto", "a,b@example.com"},
		{"https://example.com/report", true, 0, "https", ""},
		{"ftp://abuse.com", true, 0, "ftp", ""},
		{"mailto://abuse.com", false, 0, "", ""},
		{"mailto:", false, 0, "", ""},
		{"example.com", false, 0, "", ""},
		{"1http://x", false, 0, "", ""},
		{"mailto:a@b!", false, 0, "", ""},
		{"mailto:a@b!k", false, 0, "", ""},
		{"mailto:a@b!99999999999999999999t", false, 0, "", ""},
		{"mailto:a@b\"", false, 0, "", ""},
		{"", false, 0, "", ""},
	} {
		u, err := ParseURI(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v, want ok %v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && (u.MaxSize != tc.size || u.Scheme != tc.scheme || u.Address != tc.address) {
			t.Errorf("%q: %+v", tc.in, u)
		}
	}
}

func containsSubstring(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
