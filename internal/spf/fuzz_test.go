package spf

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"portcullis/internal/dns"
)

// FuzzParseRecord: Parse never panics, and the terms it returns point at
// their text in the record.
func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{
		"v=spf1 ip4:192.0.2.0/24 -all",
		"v=spf1 a:mail.%{d2}/24//64 mx//96 ?ptr:example.org ~all",
		"v=spf1 include:_spf.example.net exists:%{ir}.%{v}.bl.%{d} redirect=%{d}.example",
		"v=spf1 exp=exp.%{d} moo.cow=x%{l}",
		"v=spf1 ip6:2001:db8::/32 ip6:::ffff:1.2.3.4/128",
		"v=spf1 a:foo:bar/baz.example.com a//0 a/0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rec, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v does not wrap ErrSyntax", err)
			}
			return
		}
		for _, tm := range rec.Terms {
			if tm.Pos < 0 || tm.Pos+len(tm.Text) > len(s) || s[tm.Pos:tm.Pos+len(tm.Text)] != tm.Text {
				t.Fatalf("term %q at %d does not match the record", tm.Text, tm.Pos)
			}
			if strings.IndexByte(tm.Text, ' ') >= 0 {
				t.Fatalf("term %q contains a space", tm.Text)
			}
		}
	})
}

// FuzzExpandMacro: ExpandMacros never panics; text without "%" expands to
// itself; an expansion of valid input is 7-bit ASCII.
func FuzzExpandMacro(f *testing.F) {
	for _, s := range []string{
		"%{ir}.%{v}._spf.%{d2}", "%{lr-}.lp._spf.%{d2}", "%{L}", "%{d0}", "%{l2r+-=,/_.}",
		"a%%b%_c%-d", "%{c} %{r} %{t}", "%{p}", "%", "%{", "%{d999999999999}",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	mc := MacroContext{
		Sender: "strong-bad@email.example.com", Domain: "email.example.com",
		IP: mustIP("2001:db8::cb01"), HELO: "mail.example.com", Receiver: "mx.example.org",
	}
	f.Fuzz(func(t *testing.T, s string, explain bool) {
		got, err := ExpandMacros(s, mc, explain)
		if err != nil {
			if !errors.Is(err, ErrMacro) {
				t.Fatalf("error %v does not wrap ErrMacro", err)
			}
			return
		}
		if !strings.Contains(s, "%") && got != s {
			t.Fatalf("%q expanded to %q", s, got)
		}
		for i := 0; i < len(got); i++ {
			if got[i] >= utf8.RuneSelf {
				t.Fatalf("expansion %q is not ASCII", got)
			}
		}
	})
}

// FuzzCheckRecord evaluates a fuzzed record through a zone: no panic, a
// record that does not parse is a permerror whose reason is in the trace.
func FuzzCheckRecord(f *testing.F) {
	f.Add("v=spf1 include:inc.example.com mx a:%{h} ptr exists:%{i}.e.example.com -all", "alice@example.com")
	f.Add("v=spf1 redirect=%{d2}", "bob@x.example.com")
	f.Add("v=spf1 -all exp=exp.example.com", "")
	f.Add("v=spf1 ip4:1.2.3.4/33", "a@example.com")
	f.Fuzz(func(t *testing.T, record, from string) {
		z := dns.NewZone()
		txt := func(name, text string) {
			z.Add(name, dns.Record{Type: dns.TypeTXT, TTL: 300, TXT: []string{text}})
		}
		txt("example.com", record)
		txt("inc.example.com", "v=spf1 ip4:192.0.2.0/24 ~all")
		txt("exp.example.com", "%{i} is not %{d}")
		z.Add("example.com", dns.Record{Type: dns.TypeMX, TTL: 300, Pref: 10, Host: "mx.example.com"})
		z.Add("mx.example.com", dns.Record{Type: dns.TypeA, TTL: 300, IP: mustIP("192.0.2.25")})
		res := Check(context.Background(), z, Request{IP: mustIP("192.0.2.99"), HELO: "mail.example.com", MailFrom: from}, nil)
		if errors.Is(res.Err, ErrInternal) {
			t.Fatalf("panic: %v", res.Err)
		}
		if res.Domain == "example.com" && IsSPFRecord(record) {
			if _, err := Parse(record); err != nil {
				if res.Result != PermError {
					t.Fatalf("unparsable record gave %s", res.Result)
				}
				if res.Trace == nil || res.Trace.Record == nil || res.Trace.Record.Reason == "" {
					t.Fatalf("permerror without a reason in the trace")
				}
			}
		}
	})
}
