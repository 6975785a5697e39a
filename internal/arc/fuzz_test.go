package arc

import (
	"bufio"
	"context"
	"strings"
	"testing"

	"portcullis/internal/dns"
	"portcullis/internal/message"
)

// FuzzParseARC feeds messages to the ARC field parsers and to the whole
// validation (with an empty zone: every key is missing), which must never
// panic, and checks invariants of what they return.
func FuzzParseARC(f *testing.F) {
	f.Add("ARC-Seal: i=1; a=rsa-sha256; cv=none; d=example.org; s=dummy; t=1; b=AAAA\r\n" +
		"ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=dummy; h=from; bh=AAAA; b=AAAA\r\n" +
		"ARC-Authentication-Results: i=1; mx.example.org; spf=pass smtp.mailfrom=a@example.org\r\n" +
		"From: a@example.org\r\n\r\nbody\r\n")
	f.Add("ARC-Authentication-Results: (x) i (y) = 2 ; mx; none\r\n\r\n")
	f.Add("ARC-Seal: i=51; cv=fail\r\nARC-Seal: i=0\r\n\r\n")
	z := dns.NewZone()
	v := &Verifier{Resolver: z}
	f.Fuzz(func(t *testing.T, raw string) {
		br := bufio.NewReader(strings.NewReader(raw))
		h, err := message.ReadHeader(br, message.Limits{})
		if err != nil {
			return
		}
		for _, fl := range h.Fields {
			switch {
			case fl.Is(SealField):
				if s, err := ParseSeal(fl); err == nil && (s.Instance < 1 || s.Instance > MaxInstances || len(s.Value) == 0) {
					t.Fatalf("ParseSeal accepted %+v", s)
				}
			case fl.Is(MessageSignatureField):
				if s, err := ParseMessageSignature(fl); err == nil && (s.Instance < 1 || s.Instance > MaxInstances || len(s.BodyHash) == 0) {
					t.Fatalf("ParseMessageSignature accepted %+v", s)
				}
			case fl.Is(AuthResultsField):
				if a, err := ParseAuthResults(fl); err == nil && (a.Instance < 1 || a.Instance > MaxInstances) {
					t.Fatalf("ParseAuthResults accepted instance %d", a.Instance)
				}
			}
		}
		c, err := ParseChain(h)
		if err == nil {
			for i, s := range c.Sets {
				if s.Instance != i+1 || s.AAR == nil || s.AMS == nil || s.AS == nil {
					t.Fatalf("ParseChain accepted an incomplete set %d: %+v", i+1, s)
				}
			}
		}
		res, err := v.Verify(context.Background(), h, br)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		switch res.Status {
		case None:
			if c.Fields != 0 {
				t.Fatalf("status none with %d ARC fields", c.Fields)
			}
		case Fail:
			if res.Err == nil {
				t.Fatal("fail without error")
			}
		default:
			// No key exists in the zone: nothing can pass.
			t.Fatalf("status %s with no keys", res.Status)
		}
	})
}
