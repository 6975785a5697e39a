package spf

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestExpandRFC7208Examples checks the examples of RFC 7208 §7.4,
// verbatim.
func TestExpandRFC7208Examples(t *testing.T) {
	// "The <sender> is strong-bad@email.example.com. The IPv4 SMTP client
	// IP is 192.0.2.3. The IPv6 SMTP client IP is 2001:db8::cb01. The PTR
	// domain name of the client IP is mx.example.org."
	v4 := MacroContext{
		Sender: "strong-bad@email.example.com",
		Domain: "email.example.com",
		IP:     netip.MustParseAddr("192.0.2.3"),
		PTR:    "mx.example.org",
	}
	v6 := v4
	v6.IP = netip.MustParseAddr("2001:db8::cb01")
	tests := []struct {
		mc   MacroContext
		in   string
		want string
	}{
		{v4, "%{s}", "strong-bad@email.example.com"},
		{v4, "%{o}", "email.example.com"},
		{v4, "%{d}", "email.example.com"},
		{v4, "%{d4}", "email.example.com"},
		{v4, "%{d3}", "email.example.com"},
		{v4, "%{d2}", "example.com"},
		{v4, "%{d1}", "com"},
		{v4, "%{dr}", "com.example.email"},
		{v4, "%{d2r}", "example.email"},
		{v4, "%{l}", "strong-bad"},
		{v4, "%{l-}", "strong.bad"},
		{v4, "%{lr}", "strong-bad"},
		{v4, "%{lr-}", "bad.strong"},
		{v4, "%{l1r-}", "strong"},
		{v4, "%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"},
		{v4, "%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"},
		{v4, "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"},
		{v4, "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"},
		{v4, "%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"},
		{v6, "%{ir}.%{v}._spf.%{d2}", "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"},
	}
	for _, tt := range tests {
		got, err := ExpandMacros(tt.in, tt.mc, false)
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("%s (ip %s) = %q, want %q", tt.in, tt.mc.IP, got, tt.want)
		}
	}
}

func TestExpandLetters(t *testing.T) {
	now := time.Unix(1700000000, 0)
	mc := MacroContext{
		Sender:   "~jack&jill=up-a_b3.c@e8.example.com",
		Domain:   "e8.example.com",
		IP:       netip.MustParseAddr("::ffff:192.0.2.3"), // treated as IPv4
		HELO:     "mail.example.org",
		Receiver: "mx.example.net",
		Now:      func() time.Time { return now },
	}
	tests := []struct {
		in      string
		explain bool
		want    string
	}{
		{"%{h}", false, "mail.example.org"},
		{"%{v}", false, "in-addr"},
		{"%{i}", false, "192.0.2.3"},
		{"%{p}", false, "unknown"},
		{"%{c}", true, "192.0.2.3"},
		{"%{r}", true, "mx.example.net"},
		{"%{t}", true, "1700000000"},
		// RFC 7208 §7.3: upper-case letters URL-escape everything outside
		// the unreserved set.
		{"%{L}", false, "~jack%26jill%3Dup-a_b3.c"},
		{"%{S}", false, "~jack%26jill%3Dup-a_b3.c%40e8.example.com"},
		{"%{l}", false, "~jack&jill=up-a_b3.c"},
		// %% %_ %- (RFC 7208 §7.1).
		{"a%%b%_c%-d", false, "a%b c%20d"},
		{"%{d2}.x", false, "example.com.x"},
		{"%{d99}", false, "e8.example.com"},
		{"%{dR}", false, "com.example.e8"},
		{"%{l=}", false, "~jack&jill.up-a_b3.c"},
		{"%{l1=-}", false, "a_b3.c"},
		{"%{o2}", false, "example.com"},
		{"two words %{d1}", true, "two words com"},
	}
	for _, tt := range tests {
		got, err := ExpandMacros(tt.in, mc, tt.explain)
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("%s = %q, want %q", tt.in, got, tt.want)
		}
	}

	v6 := mc
	v6.IP = netip.MustParseAddr("2001:db8::1")
	if got, _ := ExpandMacros("%{c} %{v}", v6, true); got != "2001:db8::1 ip6" {
		t.Errorf("IPv6 %%{c} %%{v} = %q", got)
	}
	if got, _ := ExpandMacros("%{r}", MacroContext{}, true); got != "unknown" {
		t.Errorf("%%{r} without receiver = %q, want unknown", got)
	}
	if got, _ := ExpandMacros("%{l}", MacroContext{Sender: "@example.com"}, false); got != "postmaster" {
		t.Errorf("%%{l} of an empty local-part = %q, want postmaster (RFC 7208 §4.3)", got)
	}
}

func TestExpandErrors(t *testing.T) {
	tests := []struct {
		in      string
		explain bool
	}{
		{"%", false},
		{"foo%", false},
		{"%a", false},
		{"%(ir)", false},
		{"%{", false},
		{"%{d", false},
		{"%{x}", false},
		{"%{a}", false},
		{"%{d0}", false},  // RFC 7208 §7.3: a digit transformer is nonzero
		{"%{d00}", false}, // still zero
		{"%{d2x}", false}, // not a delimiter
		{"%{dr2}", false}, // digits come before "r"
		{"%{c}", false},   // c, r, t: exp only (RFC 7208 §7.2)
		{"%{r}", false},   //
		{"%{T}", false},   //
		{"a b", false},    // SP only in explain-strings
		{"a\tb", true},    // never a control character
		{"caf\xe9", true}, // 7-bit ASCII only (RFC 7208 §6.2)
		{"%{d}\x00", false},
	}
	for _, tt := range tests {
		if got, err := ExpandMacros(tt.in, MacroContext{}, tt.explain); err == nil {
			t.Errorf("%q (explain %v) = %q, want an error", tt.in, tt.explain, got)
		} else if !errors.Is(err, ErrMacro) {
			t.Errorf("%q: error %v does not name %v", tt.in, err, ErrMacro)
		}
	}
}

func TestTruncateDomain(t *testing.T) {
	label := strings.Repeat("a", 49) // 50 octets with its dot
	long := strings.Repeat(label+".", 6) + "example.com."
	got := truncateDomain(long)
	// 6*50 + 11 = 311 octets without the trailing dot: dropping two
	// labels leaves 211; dropping one leaves 261 > 253.
	want := strings.Repeat(label+".", 4) + "example.com"
	if got != want {
		t.Errorf("truncateDomain: got %d octets %q, want %d", len(got), got, len(want))
	}
	if got := truncateDomain("example.com."); got != "example.com" {
		t.Errorf("trailing dot: %q", got)
	}
	if got := truncateDomain(strings.Repeat("x", 300)); got != "" {
		t.Errorf("single label over 253: %q, want empty", got)
	}
}
