package authres

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// FuzzParse checks that Parse never panics and that whatever it accepts,
// Format writes and Parse reads back unchanged.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"example.org 1; none",
		"example.com; spf=pass smtp.mailfrom=example.net",
		`mx; dkim=fail reason="a; b" header.d=example.com (c (d) \) e)`,
		`"q id"; "dkim"="pass" "header.d"="x" "policy"."p"=""`,
		"foo.example.net (foobar) 1 (baz); dkim (x) / 1 (y) = (z) fail policy (a) . (b) expired (c) = (d) 1362471462",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		h, err := Parse(in)
		if err != nil {
			return
		}
		s, err := h.Format()
		if err != nil {
			t.Fatalf("Format of parsed %q: %v", in, err)
		}
		back, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(Format(Parse(%q))) = %v\nformatted %q", in, err, s)
		}
		if diff := cmp.Diff(h, back, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip of %q (-first +second):\n%s\nformatted %q", in, diff, s)
		}
		sp := StripPolicy{ServIDs: []string{"mx.example.org"}}
		_ = sp.Decide(FieldName, in)
	})
}
