package store

import (
	"strings"
	"testing"
	"unicode/utf8"

	"portcullis/internal/evidence"
)

// FuzzDecodeCursor: cursors come back from API clients. Decoding never
// panics, and what decodes re-encodes to a cursor that decodes the same.
func FuzzDecodeCursor(f *testing.F) {
	f.Add("c1.MTc3ODc1MTAwMDEyMzQ1Njc4OS40Mg")
	f.Add("c1.LTEuMQ")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := DecodeCursor(s)
		if err != nil {
			return
		}
		c2, err := DecodeCursor(c.Encode())
		if err != nil || !c2.ReceivedAt.Equal(c.ReceivedAt) || c2.Seq != c.Seq {
			t.Fatalf("%q decodes to %+v, which re-decodes to %+v, %v", s, c, c2, err)
		}
	})
}

// FuzzKeysOf: the header From field and the envelope are written by the
// sender. Deriving the index keys never panics, and the keys are in
// normal form.
func FuzzKeysOf(f *testing.F) {
	f.Add(`"Name" <a@b.example>`, "<Bounce@X.example>", "<R@Corp.example>", "")
	f.Add("a@b, c@d", "", "x", "B.Example.")
	f.Add(`"unterminated <e@f>`, "<>", "<<>>", "")
	f.Add("=?utf-8?q?K=C3=A4se?= <k@k.example>", "@", "@@", "\x00")
	f.Fuzz(func(t *testing.T, from, mailFrom, rcpt, dmarcDomain string) {
		r := &evidence.Record{
			HeaderFrom: from,
			Envelope:   evidence.Envelope{MailFrom: mailFrom, RcptTo: []string{rcpt, strings.ToUpper(rcpt)}},
			Auth:       evidence.Auth{DMARC: evidence.DMARC{FromDomain: dmarcDomain}},
		}
		k := KeysOf(r)
		if len(k.Recipients) != len(k.RecipientDomains) || len(k.Recipients) > 2 {
			t.Fatalf("recipients %q, domains %q", k.Recipients, k.RecipientDomains)
		}
		for _, s := range append([]string{k.MailFrom, k.HeaderFromAddr}, k.Recipients...) {
			if utf8.ValidString(s) && s != strings.ToLower(s) {
				t.Fatalf("key %q is not lower case", s)
			}
		}
		seen := map[string]bool{}
		for _, rc := range k.Recipients {
			if seen[rc] || rc == "" {
				t.Fatalf("recipient %q repeated or empty in %q", rc, k.Recipients)
			}
			seen[rc] = true
		}
	})
}
