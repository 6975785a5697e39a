package analysis

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"portcullis/internal/authres"
	"portcullis/internal/evidence"
)

// FuzzAnalyze feeds hostile messages and envelope values to the whole
// analysis: no check may panic (a recovered panic is a bug in the check,
// even though the Verdict fails closed), and the Authentication-Results
// field and the evidence record must always be produced and parse back.
//
// Run it with a short -fuzzminimizetime (e.g. 2s): minimising a
// multi-kilobyte message takes the default 60 s for every new input.
func FuzzAnalyze(f *testing.F) {
	for _, name := range []string{"spoof.eml", "forwarded.eml", "forwarded-arc.eml"} {
		b, err := os.ReadFile(filepath.Join(fixtureDir, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "news@shop.example", "mx.list.example.net")
	}
	f.Add([]byte("From: a@example.com\r\nFrom: b@example.org\r\n\r\n"), "", "")
	f.Add([]byte("DKIM-Signature: v=1; a=rsa-sha256; d=shop.example; s=s2026; h=from; bh=; b=\r\nFrom: x@shop.example\r\n\r\n"), "a\r\nb@c", "\x00")
	f.Add([]byte("ARC-Seal: i=1; cv=none; a=rsa-sha256; d=list.example.net; s=arc1; b=\r\nFrom: <>\r\n\r\n"), "@", ";")
	a := newAnalyzer(f, fixtureZone(f))
	f.Fuzz(func(t *testing.T, msg []byte, mailFrom, helo string) {
		v := a.Run(context.Background(), Input{ClientIP: netip.MustParseAddr("192.0.2.77"), HELO: helo, MailFrom: mailFrom, Message: msg})
		for _, c := range v.Checks {
			if errors.Is(c.Failure, ErrPanic) {
				t.Fatalf("check %s panicked: %v", c.Name, c.Failure)
			}
		}
		ar, err := v.AuthResultsValue()
		if err != nil {
			t.Fatalf("Authentication-Results: %v", err)
		}
		back, err := authres.Parse(ar)
		if err != nil {
			t.Fatalf("our Authentication-Results do not parse: %v\n%q", err, ar)
		}
		if back.ServID != "mx.corp.example" {
			t.Fatalf("authserv-id %q", back.ServID)
		}
		var rec evidence.Record
		if err := v.FillRecord(&rec); err != nil {
			t.Fatal(err)
		}
		if _, err := json.Marshal(rec); err != nil {
			t.Fatal(err)
		}
	})
}
