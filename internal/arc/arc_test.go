package arc

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"portcullis/internal/authres"
	"portcullis/internal/dkim"
	"portcullis/internal/dns"
	"portcullis/internal/message"
)

const testMessage = "From: Alice <alice@origin.example>\r\n" +
	"To: list@lists.example\r\n" +
	"Subject: Quarterly figures\r\n" +
	"Date: Thu, 14 Jan 2021 15:00:01 -0800\r\n" +
	"Message-ID: <1@origin.example>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain\r\n" +
	"\r\n" +
	"Hello,\r\nthe figures are attached.\r\n"

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

// testRSAKey returns a 1024-bit key generated once per test binary.
func testRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	rsaOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			panic(err)
		}
		rsaKey = k
	})
	return rsaKey
}

// hop is one ADMD that seals.
type hop struct {
	domain, selector string
	key              crypto.Signer
}

func newHop(t testing.TB, z *dns.Zone, domain string, ed bool) hop {
	t.Helper()
	var key crypto.Signer
	if ed {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	} else {
		key = testRSAKey(t)
	}
	rec, err := dkim.KeyRecord(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	z.Add(dkim.KeyName("arc", domain), dns.Record{Type: dns.TypeTXT, TTL: 300, TXT: splitTXT(rec)})
	return hop{domain: domain, selector: "arc", key: key}
}

func splitTXT(v string) []string {
	var parts []string
	for len(v) > 255 {
		parts = append(parts, v[:255])
		v = v[255:]
	}
	return append(parts, v)
}

func readMessage(t testing.TB, raw string) (*message.Header, []byte) {
	t.Helper()
	br := bufio.NewReader(strings.NewReader(raw))
	h, err := message.ReadHeader(br, message.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	if _, err := body.ReadFrom(br); err != nil {
		t.Fatal(err)
	}
	return h, body.Bytes()
}

func render(h *message.Header, body []byte) string { return string(h.Bytes()) + string(body) }

// seal validates the message's chain as hop would, then seals it, with the
// AR reporting dmarc=pass at the first hop.
func (hp hop) seal(t testing.TB, r dns.Resolver, raw string, ts int64) (string, *SealedSet) {
	t.Helper()
	h, body := readMessage(t, raw)
	res, err := (&Verifier{Resolver: r}).Verify(context.Background(), h, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	ar := &authres.Header{ServID: "mx." + hp.domain}
	ar.Results = append(ar.Results, res.AuthResult())
	ar.Results = append(ar.Results,
		authres.Result{Method: "spf", Value: "pass", Props: []authres.Prop{{Type: "smtp", Name: "mailfrom", Value: "alice@origin.example"}}},
		authres.Result{Method: "dmarc", Value: "pass", Props: []authres.Prop{{Type: "header", Name: "from", Value: "origin.example"}}})
	s := &Sealer{Domain: hp.domain, Selector: hp.selector, Key: hp.key, Clock: func() time.Time { return time.Unix(ts, 0) }}
	set, err := s.Seal(context.Background(), h, bytes.NewReader(body), ar, res)
	if err != nil {
		t.Fatalf("Seal by %s: %v", hp.domain, err)
	}
	h.Prepend(set.Fields()...)
	return render(h, body), set
}

func verify(t testing.TB, r dns.Resolver, raw string) *Result {
	t.Helper()
	res, err := (&Verifier{Resolver: r}).VerifyMessage(context.Background(), strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// threeHops returns a message sealed by three ADMDs (RSA, Ed25519, RSA).
func threeHops(t testing.TB) (*dns.Zone, string) {
	t.Helper()
	z := dns.NewZone()
	hops := []hop{newHop(t, z, "lists.example", false), newHop(t, z, "forwarder.example", true), newHop(t, z, "relay.example", false)}
	raw := testMessage
	for i, hp := range hops {
		raw, _ = hp.seal(t, z, raw, 1700000000+int64(i))
	}
	return z, raw
}

func TestSealVerifyThreeHops(t *testing.T) {
	z, raw := threeHops(t)
	res := verify(t, z, raw)
	if res.Status != Pass || res.Err != nil {
		t.Fatalf("status %s: %v", res.Status, res.Err)
	}
	if res.Instances != 3 || res.OldestPass != 0 {
		t.Errorf("instances %d, oldest-pass %d; want 3 and 0", res.Instances, res.OldestPass)
	}
	wantSealers := []string{"lists.example", "forwarder.example", "relay.example"}
	wantCV := []Status{None, Pass, Pass}
	for i, s := range res.Sets {
		if s.Instance != i+1 || s.SealDomain != wantSealers[i] || s.SealSelector != "arc" || s.SignatureDomain != wantSealers[i] {
			t.Errorf("set %d: %+v", i+1, s)
		}
		if s.CV != wantCV[i] || s.Seal != Pass {
			t.Errorf("set %d: cv=%s seal=%s", i+1, s.CV, s.Seal)
		}
		if s.Signature != Pass {
			t.Errorf("set %d: AMS %s (%v)", i+1, s.Signature, s.SignatureErr)
		}
		if s.AuthResults == nil || s.AuthResults.ServID != "mx."+wantSealers[i] {
			t.Errorf("set %d: AAR %+v (%v)", i+1, s.AuthResults, s.AuthResultsErr)
		}
	}
	// What the first hop saw.
	first := res.Set(1).AuthResults
	if d := first.ResultsFor("dmarc"); len(d) != 1 || d[0].Value != "pass" {
		t.Errorf("AAR i=1 dmarc = %+v", d)
	}
	if a := first.ResultsFor("arc"); len(a) != 1 || a[0].Value != "none" {
		t.Errorf("AAR i=1 arc = %+v", a)
	}
	if a := res.Set(3).AuthResults.ResultsFor("arc"); len(a) != 1 || a[0].Value != "pass" {
		t.Errorf("AAR i=3 arc = %+v", a)
	}
	if res.Set(0) != nil || res.Set(4) != nil {
		t.Error("Set out of range is not nil")
	}
	ar := res.AuthResult()
	if ar.Method != "arc" || ar.Value != "pass" {
		t.Errorf("AuthResult = %+v", ar)
	}
	if v, _ := ar.Prop("header", "oldest-pass"); v != "0" {
		t.Errorf("header.oldest-pass = %q", v)
	}
	if err := (&authres.Header{ServID: "mx", Results: []authres.Result{ar}}).Validate(); err != nil {
		t.Errorf("AR statement not valid RFC 8601: %v", err)
	}
}

func TestOldestPass(t *testing.T) {
	z := dns.NewZone()
	h1, h2, h3 := newHop(t, z, "a.example", true), newHop(t, z, "b.example", true), newHop(t, z, "c.example", true)
	raw, _ := h1.seal(t, z, testMessage, 1)
	// A mailing list at hop 2 tags the subject, which AMS(1) signed.
	raw = strings.Replace(raw, "Subject: Quarterly figures", "Subject: [list] Quarterly figures", 1)
	if res := verify(t, z, raw); res.Status != Fail || !errors.Is(res.Err, ErrSignature) {
		t.Fatalf("modified message: %s %v, want the newest AMS to fail", res.Status, res.Err)
	}
	// Hop 2 validated a failing chain: it seals with cv=fail, covering only
	// its own set (RFC 8617 §5.1.2).
	raw2, set := h2.seal(t, z, raw, 2)
	if set.CV != Fail || set.Instance != 2 {
		t.Fatalf("hop 2 sealed i=%d cv=%s", set.Instance, set.CV)
	}
	h, body := readMessage(t, raw2)
	c, _ := ParseChain(h)
	data, err := appendSealData(nil, []Set{c.Sets[1]}, c.Sets[1].AS.Field.Raw)
	if err != nil {
		t.Fatal(err)
	}
	key := h2.key.Public().(ed25519.PublicKey)
	if !ed25519.Verify(key, digest(dkim.Ed25519SHA256, data), c.Sets[1].AS.Value) {
		t.Error("the cv=fail seal does not cover exactly its own set")
	}
	res := verify(t, z, raw2)
	if res.Status != Fail || !errors.Is(res.Err, ErrChainFailed) {
		t.Errorf("after a cv=fail seal: %s %v, want fail (chain marked failed)", res.Status, res.Err)
	}
	// Nobody adds to a failed chain (RFC 8617 §5.1 step 1).
	_, err = (&Sealer{Domain: "c.example", Selector: "arc", Key: h3.key}).Seal(context.Background(), h, bytes.NewReader(body), &authres.Header{ServID: "mx.c.example"}, res)
	if !errors.Is(err, ErrChainFailed) {
		t.Errorf("sealing a failed chain: %v, want ErrChainFailed", err)
	}

	// The same change made before hop 2 seals a passing chain instead:
	// hop 2 changes the subject after validating, then seals cv=pass.
	raw, _ = h1.seal(t, z, testMessage, 1)
	hh, b := readMessage(t, raw)
	pre, err := (&Verifier{Resolver: z}).Verify(context.Background(), hh, bytes.NewReader(b))
	if err != nil || pre.Status != Pass {
		t.Fatalf("before modification: %v %v", pre, err)
	}
	modified := strings.Replace(raw, "Subject: Quarterly figures", "Subject: [list] Quarterly figures", 1)
	hh, b = readMessage(t, modified)
	set2, err := (&Sealer{Domain: "b.example", Selector: "arc", Key: h2.key, Clock: func() time.Time { return time.Unix(2, 0) }}).
		Seal(context.Background(), hh, bytes.NewReader(b), &authres.Header{ServID: "mx.b.example", Results: []authres.Result{{Method: "arc", Value: "pass"}}}, pre)
	if err != nil {
		t.Fatal(err)
	}
	hh.Prepend(set2.Fields()...)
	raw3, _ := h3.seal(t, z, render(hh, b), 3)
	res = verify(t, z, raw3)
	if res.Status != Pass {
		t.Fatalf("status %s: %v", res.Status, res.Err)
	}
	if res.OldestPass != 2 {
		t.Errorf("oldest-pass = %d, want 2 (AMS(1) broken by the subject tag)", res.OldestPass)
	}
	if res.Set(1).Signature != Fail || res.Set(2).Signature != Pass || res.Set(3).Signature != Pass {
		t.Errorf("AMS results %s %s %s", res.Set(1).Signature, res.Set(2).Signature, res.Set(3).Signature)
	}
	if r := (&Verifier{Resolver: z, SkipOldestPass: true}); true {
		res2, err := r.VerifyMessage(context.Background(), strings.NewReader(raw3))
		if err != nil || res2.Status != Pass || res2.OldestPass != -1 {
			t.Errorf("SkipOldestPass: %+v %v", res2, err)
		}
	}
}

func TestVerifyFailures(t *testing.T) {
	z, raw := threeHops(t)
	tests := []struct {
		name   string
		edit   func(string) string
		target error
	}{
		{"body changed", func(s string) string { return strings.Replace(s, "the figures", "THE figures", 1) }, ErrSignature},
		{"signed header changed", func(s string) string { return strings.Replace(s, "From: Alice", "From: Mallory", 1) }, ErrSignature},
		{"AAR changed", func(s string) string { return strings.Replace(s, "i=1; mx.lists.example", "i=1; mx.evil.example", 1) }, ErrSignature},
		{"AS removed", func(s string) string {
			h, body := readMessage(t, s)
			h.Remove(func(f *message.Field) bool { return f.Is(SealField) && strings.Contains(f.Value(), "i=2;") })
			return render(h, body)
		}, ErrStructure},
		{"AAR duplicated", func(s string) string { return "ARC-Authentication-Results: i=2; x.example; none\r\n" + s }, ErrStructure},
		{"instance 51", func(s string) string { return "ARC-Authentication-Results: i=51; x.example; none\r\n" + s }, ErrMalformed},
		{"gap", func(s string) string {
			h, body := readMessage(t, s)
			h.Remove(func(f *message.Field) bool { return strings.Contains(f.Value(), "i=2;") })
			return render(h, body)
		}, ErrStructure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := verify(t, z, tt.edit(raw))
			if res.Status != Fail || !errors.Is(res.Err, tt.target) {
				t.Errorf("status %s, err %v; want fail wrapping %v", res.Status, res.Err, tt.target)
			}
			if res.Reason == "" {
				t.Error("no reason")
			}
			if ar := res.AuthResult(); ar.Value != "fail" || ar.Reason == "" {
				t.Errorf("AuthResult = %+v", ar)
			}
			if res.Temporary {
				t.Error("a definite failure reported as temporary")
			}
		})
	}
}

func TestTemporaryFailure(t *testing.T) {
	z, raw := threeHops(t)
	z.SetFault(dkim.KeyName("arc", "forwarder.example"), dns.TypeTXT, dns.FaultServFail)
	res := verify(t, z, raw)
	// RFC 8617 §5.2.1: a DNS failure fails the chain; Temporary tells.
	if res.Status != Fail || !res.Temporary || !errors.Is(res.Err, ErrTemporary) || !errors.Is(res.Err, dns.ErrTemporary) {
		t.Fatalf("status %s temporary %v, err %v; want a temporary fail", res.Status, res.Temporary, res.Err)
	}
	if s := res.Set(2); s.Seal != Fail || !errors.Is(s.SealErr, ErrTemporary) {
		t.Errorf("set 2: seal %s (%v)", s.Seal, s.SealErr)
	}
	if ar := res.AuthResult(); ar.Value != "fail" {
		t.Errorf("AuthResult = %+v", ar)
	}
	// Sealing it records cv=fail (a caller that defers does not seal).
	h, body := readMessage(t, raw)
	set, err := (&Sealer{Domain: "x.example", Selector: "s", Key: testRSAKey(t)}).Seal(context.Background(), h, bytes.NewReader(body), &authres.Header{ServID: "x"}, res)
	if err != nil || set.CV != Fail || set.Instance != 4 {
		t.Errorf("Seal after a temporary failure: %+v %v", set, err)
	}
	// A definite failure outranks a temporary one.
	z.SetFault(dkim.KeyName("arc", "forwarder.example"), dns.TypeTXT, dns.FaultNone)
	z.SetFault(dkim.KeyName("arc", "lists.example"), dns.TypeTXT, dns.FaultTimeout)
	res = verify(t, z, strings.Replace(raw, "From: Alice", "From: Mallory", 1))
	if res.Status != Fail || res.Temporary || !errors.Is(res.Err, ErrSignature) {
		t.Errorf("broken AMS with a timeout elsewhere: %s temporary=%v %v", res.Status, res.Temporary, res.Err)
	}
}

func TestKeyErrors(t *testing.T) {
	z, raw := threeHops(t)
	z2 := dns.NewZone()
	// Same records, but the relay's key is replaced by one that allows
	// only sha1, and the lists key is absent.
	rec, _ := dkim.KeyRecord(testRSAKey(t).Public())
	z2.Add(dkim.KeyName("arc", "relay.example"), dns.Record{Type: dns.TypeTXT, TXT: splitTXT(strings.Replace(rec, "v=DKIM1;", "v=DKIM1; h=sha1;", 1))})
	res := verify(t, z2, raw)
	if res.Status != Fail || !errors.Is(res.Err, ErrKey) {
		t.Errorf("h=sha1 key: %s %v, want ErrKey", res.Status, res.Err)
	}
	res = verify(t, dns.NewZone(), raw)
	if res.Status != Fail || !errors.Is(res.Err, ErrKey) || !errors.Is(res.Err, dkim.ErrNoKey) {
		t.Errorf("no key: %s %v, want ErrKey and dkim.ErrNoKey", res.Status, res.Err)
	}
	_ = z
	// RSA keys over the minimum are accepted; raising the minimum fails them.
	res2, err := (&Verifier{Resolver: z, MinRSABits: 2048}).VerifyMessage(context.Background(), strings.NewReader(raw))
	if err != nil || res2.Status != Fail || !errors.Is(res2.Err, ErrKey) {
		t.Errorf("MinRSABits 2048: %s %v", res2.Status, res2.Err)
	}
}

func TestNoChain(t *testing.T) {
	res := verify(t, dns.NewZone(), testMessage)
	if res.Status != None || res.Err != nil || res.Instances != 0 {
		t.Errorf("%+v", res)
	}
	if ar := res.AuthResult(); ar.Value != "none" {
		t.Errorf("AuthResult = %+v", ar)
	}
	// Bare LF line endings are read as CRLF.
	z, raw := threeHops(t)
	if res := verify(t, z, strings.ReplaceAll(raw, "\r\n", "\n")); res.Status != Pass {
		t.Errorf("LF message: %s %v", res.Status, res.Err)
	}
}

func TestMaxInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("seals 50 times")
	}
	z := dns.NewZone()
	hp := newHop(t, z, "loop.example", true)
	raw := testMessage
	var set *SealedSet
	for i := range MaxInstances {
		raw, set = hp.seal(t, z, raw, int64(i))
	}
	if set.Instance != MaxInstances {
		t.Fatalf("last instance %d", set.Instance)
	}
	res := verify(t, z, raw)
	if res.Status != Pass || res.Instances != MaxInstances {
		t.Fatalf("50 sets: %s %v", res.Status, res.Err)
	}
	h, body := readMessage(t, raw)
	_, err := (&Sealer{Domain: "loop.example", Selector: "arc", Key: hp.key}).Seal(context.Background(), h, bytes.NewReader(body), &authres.Header{ServID: "x"}, res)
	if !errors.Is(err, ErrStructure) {
		t.Errorf("51st set: %v, want ErrStructure", err)
	}
}

func TestSealerConfig(t *testing.T) {
	small := smallKey{}
	ok := &Result{Status: None, OldestPass: -1}
	h, body := readMessage(t, testMessage)
	ar := &authres.Header{ServID: "mx.example"}
	bad := []Sealer{
		{Domain: "example.org", Selector: "s"},
		{Domain: "example.org", Selector: "s", Key: small},
		{Domain: "bad domain", Selector: "s", Key: testRSAKey(t)},
		{Domain: "example.org", Selector: "s", Key: testRSAKey(t), Algorithm: dkim.RSASHA1},
		{Domain: "example.org", Selector: "s", Key: testRSAKey(t), Headers: []string{"From", "ARC-Seal"}},
		{Domain: "example.org", Selector: "s", Key: testRSAKey(t), Headers: []string{"From", "Authentication-Results"}},
		{Domain: "example.org", Selector: "s", Key: testRSAKey(t), Headers: []string{"From", "arc-authentication-results"}},
		{Domain: "example.org", Selector: "s", Key: testRSAKey(t), Headers: []string{"From", "ARC-Message-Signature"}},
		{Domain: "example.org", Selector: "s", Key: testRSAKey(t), Headers: []string{"From:To"}},
	}
	for i, s := range bad {
		if _, err := s.Seal(context.Background(), h, bytes.NewReader(body), ar, ok); !errors.Is(err, ErrSealerConfig) {
			t.Errorf("sealer %d: %v, want ErrSealerConfig", i, err)
		}
	}
	s := &Sealer{Domain: "Example.ORG", Selector: "S1", Key: testRSAKey(t)}
	if _, err := s.Seal(context.Background(), h, bytes.NewReader(body), nil, ok); !errors.Is(err, ErrSealerConfig) {
		t.Errorf("nil AR: %v", err)
	}
	if _, err := s.Seal(context.Background(), h, bytes.NewReader(body), ar, nil); !errors.Is(err, ErrSealerConfig) {
		t.Errorf("nil chain: %v", err)
	}
	if _, err := s.Seal(context.Background(), h, bytes.NewReader(body), ar, &Result{Status: Pass, Instances: 1}); !errors.Is(err, ErrStructure) {
		t.Errorf("chain result of another message: %v", err)
	}
	set, err := s.Seal(context.Background(), h, bytes.NewReader(body), ar, ok)
	if err != nil {
		t.Fatal(err)
	}
	// Default h=: the fields present, lower case; d= and s= lower case.
	ams, err := ParseMessageSignature(set.MessageSignature)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ams.Headers, ":"); got != "from:to:subject:date:message-id:mime-version:content-type" {
		t.Errorf("default h= %q", got)
	}
	if ams.Domain != "example.org" || ams.Selector != "s1" || ams.Instance != 1 {
		t.Errorf("AMS %+v", ams)
	}
	for _, f := range set.Fields() {
		for l := range strings.SplitSeq(strings.TrimSuffix(string(f.Raw), "\r\n"), "\r\n") {
			if len(l) > 998 {
				t.Errorf("line of %d octets in %s", len(l), f.Name)
			}
		}
	}
	if set.AuthResults.Value() != " i=1; mx.example; none" {
		t.Errorf("AAR %q", set.AuthResults.Value())
	}
}

// smallKey is a signer with a 512-bit RSA public key (crypto/rsa no longer
// generates such keys); the Sealer must refuse it before signing.
type smallKey struct{}

func (smallKey) Public() crypto.PublicKey {
	return &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 511), E: 65537}
}

func (smallKey) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("not a real key")
}

func TestParseAuthResults(t *testing.T) {
	tests := []struct {
		value string
		inst  int
		ok    bool
	}{
		{" i=1; mx.example; spf=pass smtp.mailfrom=a@b.example", 1, true},
		{" (c) i (d) = (e) 12 (f) ; mx.example; none", 12, true},
		{"\r\n\ti=50;mx.example; none", 50, true},
		{" i=0; mx.example; none", 0, false},
		{" i=51; mx.example; none", 0, false},
		{" i=001; mx.example; none", 0, false},
		{" I=1; mx.example; none", 0, false},
		{" i=1 mx.example; none", 0, false},
		{" mx.example; i=1; none", 0, false},
		{" i=; mx.example", 0, false},
		{" i=1", 0, false},
		{" (unterminated i=1; x", 0, false},
	}
	for _, tt := range tests {
		f, err := message.NewField(AuthResultsField, tt.value)
		if err != nil {
			t.Fatal(err)
		}
		a, err := ParseAuthResults(f)
		if (err == nil) != tt.ok || (tt.ok && a.Instance != tt.inst) {
			t.Errorf("%q: instance %d, err %v; want %d ok=%v", tt.value, a.Instance, err, tt.inst, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v does not wrap ErrMalformed", tt.value, err)
		}
	}
	// A payload that does not parse is reported, not fatal.
	f, _ := message.NewField(AuthResultsField, " i=1; spf=pass")
	a, err := ParseAuthResults(f)
	if err != nil || a.Results != nil || !errors.Is(a.ResultsErr, authres.ErrSyntax) {
		t.Errorf("bad payload: %+v %v", a, err)
	}
}

func TestConsolidateAuthResults(t *testing.T) {
	h, _ := readMessage(t, "Authentication-Results: MX.example; arc=none;\r\n spf=pass smtp.mailfrom=a@b.example\r\n"+
		"Authentication-Results: other.example; dkim=fail\r\n"+
		"Authentication-Results: mx.example; (broken\r\n"+
		"Authentication-Results: mx.example; dmarc=pass header.from=b.example\r\n"+
		"From: a@b.example\r\n\r\nbody\r\n")
	ar := ConsolidateAuthResults(h, "mx.example")
	if ar == nil || ar.ServID != "mx.example" || len(ar.Results) != 3 {
		t.Fatalf("%+v", ar)
	}
	for i, m := range []string{"arc", "spf", "dmarc"} {
		if ar.Results[i].Method != m {
			t.Errorf("result %d is %s, want %s", i, ar.Results[i].Method, m)
		}
	}
	if ConsolidateAuthResults(h, "nobody.example") != nil {
		t.Error("consolidated fields of another authserv-id")
	}
}

func TestStatusHelpers(t *testing.T) {
	for s, want := range map[string]Status{"none": None, "PASS": Pass, "Fail": Fail} {
		if got, ok := parseCV(s); !ok || got != want {
			t.Errorf("parseCV(%q) = %s %v", s, got, ok)
		}
	}
	if _, ok := parseCV("temperror"); ok {
		t.Error("temperror is not a cv= value")
	}
	if public(tempFail) != Fail || public(Pass) != Pass || fmt.Sprint(None) != "none" {
		t.Error("public")
	}
}
