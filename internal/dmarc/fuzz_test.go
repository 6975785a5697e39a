package dmarc

import (
	"errors"
	"strings"
	"testing"
)

func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{
		"v=DMARC1; p=reject",
		"v=DMARC1; p=none; sp=quarantine; np=reject; psd=n; t=y; adkim=s; aspf=r; fo=0:d:s; rua=mailto:a@example.com!10m,mailto:b@example.net; ruf=mailto:f@example.com",
		"v=DMARC1; p=reject; pct=50; rf=afrf:iodef; ri=3600",
		"V = DMARC1 ;; p = Quarantine ; foo=bar ; =x; 1=2",
		"v=DMARC1; p=bogus; rua=ftp://x",
		"v=DMARC1; rua=mailto:%2C%21@x!99999999999999999999t",
		"v=DMARC1",
		"",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, txt string, legacy bool) {
		mode := RFC9989
		if legacy {
			mode = RFC7489
		}
		r, err := ParseRecord(txt, mode)
		if err != nil {
			if !errors.Is(err, ErrNotDMARC) || IsDMARCRecord(txt) {
				t.Fatalf("%q: %v", txt, err)
			}
			return
		}
		if !IsDMARCRecord(txt) {
			t.Fatalf("%q parsed but IsDMARCRecord is false", txt)
		}
		p, sp, np, sub, ok, problem := r.Applicable()
		if ok && !sub && p == "" {
			t.Fatalf("%q: applicable without p", txt)
		}
		if sub && (p != PolicyNone || sp != "" || np != "" || len(r.RUA) == 0) {
			t.Fatalf("%q: bad substitution", txt)
		}
		if !ok && problem == "" {
			t.Fatalf("%q: inapplicable without a reason", txt)
		}
		if r.Pct < 0 || r.Pct > 100 || len(r.Warnings) > maxWarnings+1 || len(r.RUA) > maxURIs || len(r.RUF) > maxURIs {
			t.Fatalf("%q: out of bounds: %+v", txt, r)
		}
		for _, u := range append(r.RUA, r.RUF...) {
			if u.Scheme == "" || (u.Scheme == "mailto" && !strings.Contains(u.Address, "@")) {
				t.Fatalf("%q: bad URI %+v", txt, u)
			}
		}
	})
}

func FuzzAuthorDomain(f *testing.F) {
	for _, s := range []string{
		"Joe <joe@example.com>",
		"\"a, b\" <x@example.com>, y@EXAMPLE.com",
		"G: a@x.example, (c) b@x.example;",
		"<@r1.example,@r2.example:u@bücher.de>",
		"u@xn--85x722f.xn--55qx5d.cn.",
		"(nested (comment)) \"q\\\"s\"@[192.0.2.1]",
		"a..b@docomo.ne.jp",
		"Mail From:<joe@joe.com>",
		"undisclosed-recipients:;",
		"x@a\r\n .example",
	} {
		f.Add(s, "")
	}
	f.Add("a@example.com", "b@example.com")
	f.Fuzz(func(t *testing.T, v1, v2 string) {
		fields := []string{v1}
		if v2 != "" {
			fields = append(fields, v2)
		}
		a, err := ParseAuthor(fields)
		if err != nil {
			var ae *AuthorError
			if !errors.As(err, &ae) || ae.Reason == nil {
				t.Fatalf("%q: error %T %v", fields, err, err)
			}
			if len(fields) > 1 && !errors.Is(err, ErrMultipleFromFields) {
				t.Fatalf("%q: two fields but %v", fields, err)
			}
			if a != nil && len(a.Domains) == 0 {
				t.Fatalf("%q: Author without domains", fields)
			}
			return
		}
		if a.Domain == "" || len(a.Domains) != 1 || a.Domains[0] != a.Domain {
			t.Fatalf("%q: %+v", fields, a)
		}
		// The domain is normalised: normalising again is the identity.
		if d, err := NormalizeDomain(a.Domain); err != nil || d != a.Domain {
			t.Fatalf("%q: domain %q not normalised: %q %v", fields, a.Domain, d, err)
		}
	})
}
