package spf

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParseTerms(t *testing.T) {
	rec, err := Parse("v=spf1  ip4:192.0.2.0/24 -ip6:2001:DB8::/32 ~a a:mail.%{d2}/24//64 mx//96 " +
		"?ptr:example.org include:_spf.example.net exists:%{ir}.bl.example.com " +
		"+all redirect=_spf.example.com exp=exp.%{d} moo.cow=x ")
	if err != nil {
		t.Fatal(err)
	}
	want := []Term{
		{Pos: 8, Text: "ip4:192.0.2.0/24", Kind: KindIP4, Qualifier: QualPass, Network: netip.MustParsePrefix("192.0.2.0/24"), CIDR4: -1, CIDR6: -1},
		{Pos: 25, Text: "-ip6:2001:DB8::/32", Kind: KindIP6, Qualifier: QualFail, Network: netip.MustParsePrefix("2001:db8::/32"), CIDR4: -1, CIDR6: -1},
		{Pos: 44, Text: "~a", Kind: KindA, Qualifier: QualSoftFail, CIDR4: -1, CIDR6: -1},
		{Pos: 47, Text: "a:mail.%{d2}/24//64", Kind: KindA, Qualifier: QualPass, DomainSpec: "mail.%{d2}", CIDR4: 24, CIDR6: 64},
		{Pos: 67, Text: "mx//96", Kind: KindMX, Qualifier: QualPass, CIDR4: -1, CIDR6: 96},
		{Pos: 74, Text: "?ptr:example.org", Kind: KindPTR, Qualifier: QualNeutral, DomainSpec: "example.org", CIDR4: -1, CIDR6: -1},
		{Pos: 91, Text: "include:_spf.example.net", Kind: KindInclude, Qualifier: QualPass, DomainSpec: "_spf.example.net", CIDR4: -1, CIDR6: -1},
		{Pos: 116, Text: "exists:%{ir}.bl.example.com", Kind: KindExists, Qualifier: QualPass, DomainSpec: "%{ir}.bl.example.com", CIDR4: -1, CIDR6: -1},
		{Pos: 144, Text: "+all", Kind: KindAll, Qualifier: QualPass, CIDR4: -1, CIDR6: -1},
		{Pos: 149, Text: "redirect=_spf.example.com", Kind: KindRedirect, Name: "redirect", DomainSpec: "_spf.example.com", CIDR4: -1, CIDR6: -1},
		{Pos: 175, Text: "exp=exp.%{d}", Kind: KindExp, Name: "exp", DomainSpec: "exp.%{d}", CIDR4: -1, CIDR6: -1},
		{Pos: 188, Text: "moo.cow=x", Kind: KindUnknown, Name: "moo.cow", DomainSpec: "x", CIDR4: -1, CIDR6: -1},
	}
	if diff := cmp.Diff(want, rec.Terms, cmpopts.IgnoreUnexported(Term{}), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("terms (-want +got):\n%s", diff)
	}
	for _, tm := range rec.Terms {
		if rec.Text[tm.Pos:tm.Pos+len(tm.Text)] != tm.Text {
			t.Errorf("term %q: Pos %d does not point at it", tm.Text, tm.Pos)
		}
	}
	if rec.Redirect() == nil || rec.Redirect().DomainSpec != "_spf.example.com" {
		t.Errorf("Redirect() = %+v", rec.Redirect())
	}
	if rec.Exp() == nil || rec.Exp().DomainSpec != "exp.%{d}" {
		t.Errorf("Exp() = %+v", rec.Exp())
	}
	if !rec.HasAll() {
		t.Error("HasAll() = false")
	}
	if got := rec.LookupTerms(); got != 7 { // ~a a mx ptr include exists redirect
		t.Errorf("LookupTerms() = %d, want 7", got)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		rec  string
		pos  int // offset of the offending term; -1 for the whole record
		term string
	}{
		{"v=spf10", -1, ""},
		{"spf1 -all", -1, ""},
		{"v=spf1 -all moo", 12, "moo"},                   // §4.6: errors anywhere
		{"v=spf1 -all.", 7, "-all."},                     // §5.1
		{"v=spf1 all:foo", 7, "all:foo"},                 //
		{"v=spf1 -all/8", 7, "-all/8"},                   //
		{"v=spf1 ip4", 7, "ip4"},                         // §5.6
		{"v=spf1 ip4:1.2.3", 7, "ip4:1.2.3"},             //
		{"v=spf1 ip4:1.2.3.4/33", 7, "ip4:1.2.3.4/33"},   //
		{"v=spf1 ip4:1.2.3.4/032", 7, "ip4:1.2.3.4/032"}, // no leading zero
		{"v=spf1 ip4:1.2.3.4//32", 7, "ip4:1.2.3.4//32"}, // no dual CIDR on ip4
		{"v=spf1 ip4:1.2.3.4:8080", 7, "ip4:1.2.3.4:8080"},
		{"v=spf1 ip4:01.2.3.4", 7, "ip4:01.2.3.4"},
		{"v=spf1 ip4:::1", 7, "ip4:::1"},
		{"v=spf1 ip6:1.2.3.4", 7, "ip6:1.2.3.4"},
		{"v=spf1 ip6::CAFE::BABE", 7, "ip6::CAFE::BABE"},
		{"v=spf1 ip6:::1/129", 7, "ip6:::1/129"},
		{"v=spf1 ip6:fe80::1%eth0", 7, "ip6:fe80::1%eth0"},
		{"v=spf1 a/33", 7, "a/33"},           // §5.3
		{"v=spf1 a//129", 7, "a//129"},       //
		{"v=spf1 a/24/64", 7, "a/24/64"},     //
		{"v=spf1 a:", 7, "a:"},               //
		{"v=spf1 a:museum", 7, "a:museum"},   // §7.1 domain-end
		{"v=spf1 a:museum.", 7, "a:museum."}, //
		{"v=spf1 a:abc.123", 7, "a:abc.123"}, // numeric toplabel
		{"v=spf1 a:example.-com", 7, "a:example.-com"},
		{"v=spf1 a:foo.example.com\x00", 7, "a:foo.example.com\x00"},
		{"v=spf1 mx:example.com:8080", 7, "mx:example.com:8080"},
		{"v=spf1 ptr/0", 7, "ptr/0"},       // §5.5
		{"v=spf1 ptr:", 7, "ptr:"},         //
		{"v=spf1 include", 7, "include"},   // §5.2
		{"v=spf1 include:", 7, "include:"}, //
		{"v=spf1 include:a.com/24", 7, "include:a.com/24"},
		{"v=spf1 exists", 7, "exists"}, // §5.7
		{"v=spf1 exists:a.com/24", 7, "exists:a.com/24"},
		{"v=spf1 exp=", 7, "exp="},         // §6.2
		{"v=spf1 exp=-all", 7, "exp=-all"}, //
		{"v=spf1 exp=%{r}.example.com", 7, "exp=%{r}.example.com"},
		{"v=spf1 redirect=", 7, "redirect="}, // §6.1
		{"v=spf1 redirect:a.com", 7, "redirect:a.com"},
		{"v=spf1 redirect=a.com redirect=b.com", 22, "redirect=b.com"}, // §6
		{"v=spf1 exp=a.com EXP=b.com", 17, "EXP=b.com"},                //
		{"v=spf1 1up=foo", 7, "1up=foo"},                               // name = ALPHA ...
		{"v=spf1 =all", 7, "=all"},                                     //
		{"v=spf1 foo=%abc", 7, "foo=%abc"},                             // macro-string
		{"v=spf1 moo.cow/far=x", 7, "moo.cow/far=x"},                   //
		{"v=spf1 a:a.com\rptr", 7, "a:a.com\rptr"},                     // only SP separates
		{"v=spf1 \x80a:example.net", 7, "\x80a:example.net"},
		{"v=spf1 -exists:%(ir).sbl.example.com", 7, "-exists:%(ir).sbl.example.com"},
		{"v=spf1 +-all", 7, "+-all"},
	}
	for _, tt := range tests {
		rec, err := Parse(tt.rec)
		if err == nil {
			t.Errorf("Parse(%q) = %d terms, want a syntax error", tt.rec, len(rec.Terms))
			continue
		}
		if !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q): %v does not wrap ErrSyntax", tt.rec, err)
		}
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q): %T is not a *SyntaxError", tt.rec, err)
			continue
		}
		if tt.pos >= 0 && (se.Pos != tt.pos || se.Term != tt.term) {
			t.Errorf("Parse(%q): error at %d %q, want %d %q (%v)", tt.rec, se.Pos, se.Term, tt.pos, tt.term, err)
		}
	}
}

func TestParseValid(t *testing.T) {
	for _, r := range []string{
		"v=spf1",
		"V=SpF1 -ALL",
		"v=spf1 ",
		"v=spf1 a  -all",
		"v=spf1 a:foo:bar/baz.example.com", // §7.1: ":" and "/" are macro-literals
		"v=spf1 a:foo.example.xn--zckzah",  // toplabel with dashes
		"v=spf1 a:macro%%percent%_%_space%-url-space.example.com",
		"v=spf1 a:%{H}", // domain-end may be a macro
		"v=spf1 exists:%{l2r+-}.user.%{d2}",
		"v=spf1 default=pass", // unknown modifiers ignored
		"v=spf1 moo.cow-far_out=man:dog/cat",
		"v=spf1 ip6:::1.1.1.1/0 ip4:0.0.0.0/0",
		"v=spf1 ip6:::FFFF:1.2.3.4",
		"v=spf1 mx:a.example.com/0//0",
		"v=spf1 exp=ptr:lalala.com",
		"v=spf1 ip4=1.2.3.4", // an unknown modifier named ip4
	} {
		if _, err := Parse(r); err != nil {
			t.Errorf("Parse(%q): %v", r, err)
		}
	}
	if _, err := ParseWith("v=spf1 include:localnet", ParseOptions{AllowSingleLabel: true}); err != nil {
		t.Errorf("AllowSingleLabel: %v", err)
	}
	if _, err := Parse("v=spf1 include:localnet"); err == nil {
		t.Error("a single-label domain-spec parsed without AllowSingleLabel")
	}
}

func TestIsSPFRecord(t *testing.T) {
	for r, want := range map[string]bool{
		"v=spf1": true, "v=spf1 -all": true, "V=SPF1 a": true,
		"v=spf10": false, "v=spf1mx": false, "v=spf": false, " v=spf1": false, "spf2.0/pra": false,
	} {
		if got := IsSPFRecord(r); got != want {
			t.Errorf("IsSPFRecord(%q) = %v, want %v", r, got, want)
		}
	}
}
