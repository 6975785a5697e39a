package quarantine

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"portcullis/internal/evidence"
)

// Text from a message (a subject, a From field) goes into the header of a
// notification: whatever it holds, it must stay one line of ASCII.
func FuzzEncodeHeader(f *testing.F) {
	f.Add("PO 4711")
	f.Add("=?utf-8?q?K=C3=A4se?= \r\nBcc: victim@example.org")
	f.Add("Käse\x00\x7f\u2028")
	f.Add(strings.Repeat("é", 300))
	f.Fuzz(func(t *testing.T, s string) {
		h := encodeHeader(s)
		if strings.ContainsAny(h, "\r\n") || !isASCII(h) {
			t.Errorf("encodeHeader(%q) = %q", s, h)
		}
		if c := clean(s, 50); strings.ContainsAny(c, "\r\n\x00") {
			t.Errorf("clean(%q) = %q", s, c)
		}
	})
}

// The release field names an actor: whatever the name, the field is one
// RFC 5322 field of ASCII lines, folded only before a space.
func FuzzReleasedField(f *testing.F) {
	f.Add("alice", "bob", "q1")
	f.Add("a\r\nBcc: x@y", "", "id")
	f.Add(strings.Repeat("x", 200), strings.Repeat("y", 90), "abc")
	f.Fuzz(func(t *testing.T, actor, requestedBy, id string) {
		b := releasedField(actor, requestedBy, id, time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC))
		if !bytes.HasPrefix(b, []byte(ReleasedField+": ")) || !bytes.HasSuffix(b, []byte("\r\n")) {
			t.Fatalf("field %q", b)
		}
		lines := strings.Split(strings.TrimSuffix(string(b), "\r\n"), "\r\n")
		for i, l := range lines {
			if strings.ContainsAny(l, "\r\n") || i > 0 && !strings.HasPrefix(l, " ") {
				t.Errorf("line %d of %q", i, b)
			}
			if strings.TrimSpace(l) == "" {
				t.Errorf("empty line %d of %q", i, b)
			}
		}
		if !isASCII(string(b)) {
			t.Errorf("non-ASCII field %q", b)
		}
	})
}

func FuzzVerdictInWords(f *testing.F) {
	f.Add("dmarc-quarantine", "quarantine", "partner.example", "fail", "pass", "mailprovider.example", "none")
	f.Add("own-domain", "reject", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, rule, action, from, dmarc, dkimRes, dkimDom, spf string) {
		rec := &evidence.Record{HeaderFrom: from, Decision: evidence.Decision{Rule: rule, Action: evidence.Action(action)},
			Auth: evidence.Auth{SPF: evidence.SPF{Result: spf}, DMARC: evidence.DMARC{Result: dmarc, FromDomain: from},
				DKIM: []evidence.DKIM{{Result: dkimRes, Domain: dkimDom}}}}
		if VerdictInWords(rec) == "" {
			t.Error("empty verdict")
		}
	})
}
