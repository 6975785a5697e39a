package dkim

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"portcullis/internal/dns"
	"portcullis/internal/message"
)

func loadKey(t testing.TB, path string) crypto.Signer {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParsePrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// txtRecord splits a TXT value into character-strings of at most 255
// octets, as DNS carries it.
func txtRecord(v string) dns.Record {
	var parts []string
	for len(v) > 255 {
		parts = append(parts, v[:255])
		v = v[255:]
	}
	parts = append(parts, v)
	return dns.Record{Type: dns.TypeTXT, TTL: 300, TXT: parts}
}

// testEnv holds a zone with the test keys published.
type testEnv struct {
	zone   *dns.Zone
	rsa    crypto.Signer
	ed     crypto.Signer
	rsa512 crypto.Signer
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	e := &testEnv{
		zone:   dns.NewZone(),
		rsa:    loadKey(t, filepath.Join("testdata", "rsa2048.pem")),
		ed:     loadKey(t, filepath.Join("testdata", "ed25519.pem")),
		rsa512: loadKey(t, filepath.Join("testdata", "rsa512.pem")),
	}
	for sel, k := range map[string]crypto.Signer{"rsa": e.rsa, "ed": e.ed, "weak": e.rsa512} {
		rec, err := KeyRecord(k.Public())
		if err != nil {
			t.Fatal(err)
		}
		e.zone.Add(KeyName(sel, "example.com"), txtRecord(rec))
	}
	return e
}

func (e *testEnv) verifier() *Verifier {
	return &Verifier{Resolver: e.zone, Now: func() time.Time { return time.Unix(1700000000, 0) }}
}

const sampleMessage = "From: Alice <alice@example.com>\r\n" +
	"To: Bob <bob@example.org>\r\n" +
	"Subject: Quarterly numbers\r\n" +
	"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n" +
	"Message-ID: <1@example.com>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"Hello Bob,\r\n" +
	"\r\n" +
	"the numbers are  attached.\r\n" +
	"Alice\r\n"

// sign signs msg with s and returns the signed message.
func sign(t testing.TB, s *Signer, msg string) string {
	t.Helper()
	br := bufio.NewReader(strings.NewReader(msg))
	h, err := message.ReadHeader(br, message.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var body io.Reader = br
	if h.BareLF {
		body = message.NewCRLFReader(br)
	}
	f, err := s.Sign(h, body)
	if err != nil {
		t.Fatal(err)
	}
	return string(f.Raw) + msg
}

func verify(t testing.TB, v *Verifier, msg string) []*SignatureResult {
	t.Helper()
	res, err := v.Verify(context.Background(), bytes.NewReader([]byte(msg)))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestSignVerifyRoundTrip(t *testing.T) {
	e := newTestEnv(t)
	v := e.verifier()
	for _, key := range []string{"rsa", "ed"} {
		for _, canon := range []string{"simple/simple", "relaxed/relaxed", "relaxed/simple", "simple/relaxed"} {
			t.Run(key+"/"+canon, func(t *testing.T) {
				s := &Signer{Domain: "example.com", Selector: key, Key: e.rsa, Canonicalization: canon,
					Timestamp: time.Unix(1699990000, 0), Expiration: time.Unix(1800000000, 0)}
				if key == "ed" {
					s.Key = e.ed
				}
				signed := sign(t, s, sampleMessage)
				res := verify(t, v, signed)
				if len(res) != 1 || res[0].Result != Pass {
					t.Fatalf("got %+v\n%s", res[0], signed)
				}
				r := res[0]
				wantAlg, wantBits := "rsa-sha256", 2048
				if key == "ed" {
					wantAlg, wantBits = "ed25519-sha256", 256
				}
				if r.Algorithm != wantAlg || r.KeyBits != wantBits || r.Canonicalization != canon || r.Domain != "example.com" ||
					r.Selector != key || r.Timestamp != 1699990000 || r.Expiration != 1800000000 || r.Identity != "@example.com" {
					t.Errorf("result fields: %+v", r)
				}
				if len(r.HeaderB) != 8 || !strings.HasPrefix(r.Signature.B, r.HeaderB) {
					t.Errorf("header.b = %q", r.HeaderB)
				}
				// Every default-oversigned field is protected.
				for _, n := range []string{"From", "To", "Subject", "Date", "Cc", "Reply-To"} {
					if !containsFold(r.Oversigned, n) {
						t.Errorf("%s not reported oversigned: %v", n, r.Oversigned)
					}
				}
				if strings.Join(r.NotOversigned, ",") != "Message-ID,Content-Type,MIME-Version" {
					t.Errorf("NotOversigned = %v", r.NotOversigned)
				}
				for _, line := range strings.Split(signed[:strings.Index(signed, "From:")], "\r\n") {
					if len(line) > 78 {
						t.Errorf("signature line of %d columns: %q", len(line), line)
					}
				}

				// One changed octet in a signed header field fails.
				tampered := strings.Replace(signed, "Quarterly", "Quarterlz", 1)
				if r := verify(t, v, tampered)[0]; r.Result != Fail || !errors.Is(r.Err, ErrBadSignature) {
					t.Errorf("changed Subject: %v %v", r.Result, r.Err)
				}
				// One changed octet in the body fails with a body hash
				// mismatch.
				tampered = strings.Replace(signed, "Hello", "Hellp", 1)
				if r := verify(t, v, tampered)[0]; r.Result != Fail || !errors.Is(r.Err, ErrBodyHashMismatch) || r.BodyDiagnosis != DiagChanged {
					t.Errorf("changed body: %v %v %q", r.Result, r.Err, r.BodyDiagnosis)
				}
				// A second From added on top breaks the oversigned
				// signature.
				tampered = "From: Mallory <m@example.net>\r\n" + signed
				if r := verify(t, v, tampered)[0]; r.Result != Fail {
					t.Errorf("added From: %v %v", r.Result, r.Err)
				}
			})
		}
	}
}

func containsFold(list []string, s string) bool {
	for _, e := range list {
		if strings.EqualFold(e, s) {
			return true
		}
	}
	return false
}

func TestBodyHashDiagnosis(t *testing.T) {
	e := newTestEnv(t)
	v := e.verifier()
	tests := []struct {
		name, canon string
		edit        func(string) string
		want        string
	}{
		{"footer simple", "relaxed/simple", func(m string) string { return m + "--\r\nThis message was scanned.\r\n" }, DiagAppended},
		{"footer relaxed", "relaxed/relaxed", func(m string) string { return m + "\r\n\r\n--\r\nDisclaimer\r\n" }, DiagAppended},
		{"trailing spaces simple", "relaxed/simple", func(m string) string { return strings.Replace(m, "Alice\r\n", "Alice   \r\n", 1) }, DiagWhitespace},
		{"bare LF", "relaxed/relaxed", func(m string) string { return strings.Replace(m, "Hello Bob,\r\n", "Hello Bob,\n", 1) }, DiagLineEndings},
		{"spaces and footer", "relaxed/simple", func(m string) string {
			return strings.Replace(m, "Alice\r\n", "Alice \r\n", 1) + "footer\r\n"
		}, DiagWhitespaceAppended},
		{"changed", "relaxed/relaxed", func(m string) string { return strings.Replace(m, "Hello Bob", "Hallo Bob", 1) }, DiagChanged},
	}
	msg := strings.Replace(sampleMessage, "the numbers are  attached.", "the numbers are attached.", 1)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Signer{Domain: "example.com", Selector: "ed", Key: e.ed, Canonicalization: tc.canon}
			signed := tc.edit(sign(t, s, msg))
			r := verify(t, v, signed)[0]
			if r.Result != Fail || r.BodyDiagnosis != tc.want {
				t.Errorf("got %v %q (%s), want diagnosis %q", r.Result, r.BodyDiagnosis, r.Reason, tc.want)
			}
		})
	}
	// Not seekable: no diagnosis, still a failure.
	s := &Signer{Domain: "example.com", Selector: "ed", Key: e.ed}
	signed := sign(t, s, msg) + "footer\r\n"
	res, err := v.Verify(context.Background(), io.LimitReader(strings.NewReader(signed), 1<<20))
	if err != nil || res[0].Result != Fail || res[0].BodyDiagnosis != "" {
		t.Errorf("unseekable: %+v %v", res[0], err)
	}
}

func TestBodyLengthLimit(t *testing.T) {
	e := newTestEnv(t)
	v := e.verifier()
	// Sign with l= by hand: sign a message, then check that l= covers
	// the signed part and flags what follows.
	s := &Signer{Domain: "example.com", Selector: "rsa", Key: e.rsa}
	br := bufio.NewReader(strings.NewReader(sampleMessage))
	h, _ := message.ReadHeader(br, message.Limits{})
	body, _ := bytesFrom(br)
	f, err := s.signWithLength(h, body, 12)
	if err != nil {
		t.Fatal(err)
	}
	signed := string(f.Raw) + sampleMessage + "Unsigned content added later\r\n"
	r := verify(t, v, signed)[0]
	if r.Result != Pass || r.BodyLength == nil || *r.BodyLength != 12 || r.UnsignedBodyBytes == 0 || !strings.Contains(r.Reason, "not covered") {
		t.Errorf("l=: %+v", r)
	}
	// l= larger than the body fails.
	f, err = s.signWithLength(h, body, int64(len(body)+100))
	if err != nil {
		t.Fatal(err)
	}
	r = verify(t, v, string(f.Raw)+sampleMessage)[0]
	if r.Result != Fail || !errors.Is(r.Err, ErrBodyTooShort) {
		t.Errorf("l= too large: %v %v", r.Result, r.Err)
	}
}

func bytesFrom(br *bufio.Reader) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(br)
	return b.Bytes(), err
}

// signWithLength signs with an l= tag (the Signer does not offer it: l=
// invites appended content, RFC 6376 §8.2).
func (s *Signer) signWithLength(h *message.Header, body []byte, l int64) (*message.Field, error) {
	// Build a signature by hand with the same primitives.
	bh := NewBodyHasher(Relaxed, crypto.SHA256, l)
	bh.Write(body)
	names := s.headerList(h)
	sigText := "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=rsa; l=" +
		itoa(l) + "; h=" + strings.Join(names, ":") + "; bh=" + b64(bh.Sum()) + "; b="
	data, err := AppendHeaderData(nil, Relaxed, SelectHeaders(h.Fields, names), []byte(sigText+"\r\n"))
	if err != nil {
		return nil, err
	}
	d := crypto.SHA256.New()
	d.Write(data)
	sig, err := SignDigest(s.Key, RSASHA256, d.Sum(nil))
	if err != nil {
		return nil, err
	}
	return message.ParseField([]byte(sigText + b64(sig) + "\r\n"))
}

func TestVerifyResults(t *testing.T) {
	e := newTestEnv(t)
	e.zone.Add(KeyName("revoked", "example.com"), txtRecord("v=DKIM1; k=rsa; p="))
	e.zone.Add(KeyName("garbage", "example.com"), txtRecord("v=DKIM1; k=rsa; p=!!!"))
	e.zone.Add(KeyName("testing", "example.com"), txtRecord(mustRecord(t, e.ed)+"; t=y"))
	e.zone.Add(KeyName("strict", "example.com"), txtRecord(mustRecord(t, e.ed)+"; t=s"))
	e.zone.Add(KeyName("sha1only", "example.com"), txtRecord(mustRecord(t, e.ed)+"; h=sha1"))
	e.zone.Add(KeyName("tlsrpt", "example.com"), txtRecord(mustRecord(t, e.ed)+"; s=tlsrpt"))
	e.zone.Add(KeyName("slow", "example.com"), txtRecord(mustRecord(t, e.ed)))
	e.zone.SetFault(KeyName("slow", "example.com"), 0, dns.FaultTimeout)
	e.zone.Add(KeyName("servfail", "example.com"), txtRecord(mustRecord(t, e.ed)))
	e.zone.SetFault(KeyName("servfail", "example.com"), 0, dns.FaultServFail)
	v := e.verifier()

	signedBy := func(sel string, k crypto.Signer, mod func(*Signer)) string {
		s := &Signer{Domain: "example.com", Selector: sel, Key: k}
		if mod != nil {
			mod(s)
		}
		return sign(t, s, sampleMessage)
	}
	tests := []struct {
		name   string
		msg    string
		result Result
		err    error
	}{
		{"pass", signedBy("ed", e.ed, nil), Pass, nil},
		{"no key", signedBy("missing", e.ed, nil), PermError, ErrNoKey},
		{"revoked", signedBy("revoked", e.rsa, nil), PermError, ErrKeyRevoked},
		{"invalid record", signedBy("garbage", e.rsa, nil), PermError, ErrKeySyntax},
		{"timeout", signedBy("slow", e.ed, nil), TempError, dns.ErrTemporary},
		{"servfail", signedBy("servfail", e.ed, nil), TempError, dns.ErrServFail},
		{"wrong key type", signedBy("ed", e.rsa, nil), PermError, ErrKeyUnsuitable},
		{"key h=sha1", signedBy("sha1only", e.ed, nil), PermError, ErrKeyUnsuitable},
		{"key s=tlsrpt", signedBy("tlsrpt", e.ed, nil), PermError, ErrKeyUnsuitable},
		{"t=s subdomain", signedBy("strict", e.ed, func(s *Signer) { s.Identity = "a@sub.example.com" }), PermError, ErrKeyUnsuitable},
		{"t=s same domain", signedBy("strict", e.ed, func(s *Signer) { s.Identity = "a@example.com" }), Pass, nil},
		{"expired", signedBy("ed", e.ed, func(s *Signer) {
			s.Timestamp, s.Expiration = time.Unix(1600000000, 0), time.Unix(1600000100, 0)
		}), Neutral, ErrExpired},
		{"not yet expired", signedBy("ed", e.ed, func(s *Signer) {
			s.Timestamp, s.Expiration = time.Unix(1600000000, 0), time.Unix(1700000000, 0)
		}), Pass, nil},
		{"weak key", strings.Replace(signedBy("rsa", e.rsa, nil), "s=rsa;", "s=weak;", 1), Fail, ErrKeyTooSmall},
		{"rsa-sha1", strings.Replace(signedBy("rsa", e.rsa, nil), "a=rsa-sha256", "a=rsa-sha1", 1), Fail, ErrSHA1},
		{"v=2", strings.Replace(signedBy("ed", e.ed, nil), "v=1;", "v=2;", 1), Neutral, ErrVersion},
		{"no From in h=", signedBy("ed", e.ed, func(s *Signer) { s.Headers = []string{"From"} }), Pass, nil},
		{"unknown a=", strings.Replace(signedBy("ed", e.ed, nil), "a=ed25519-sha256", "a=ed448-sha256", 1), Neutral, ErrUnknownAlgorithm},
		{"i= outside d=", signedBy("ed", e.ed, func(s *Signer) { s.Identity = "a@example.com" }), Pass, nil},
	}
	// Signatures with h= lacking From and i= outside d= cannot be made by
	// the Signer: edit them in.
	tests = append(tests,
		struct {
			name   string
			msg    string
			result Result
			err    error
		}{"h= without From", strings.Replace(signedBy("ed", e.ed, func(s *Signer) { s.Headers = []string{"From", "To"} }), "h=From:To", "h=To", 1), Neutral, ErrFromNotSigned},
		struct {
			name   string
			msg    string
			result Result
			err    error
		}{"i= outside d=", strings.Replace(signedBy("ed", e.ed, func(s *Signer) { s.Identity = "a@example.com" }), "i=a@example.com", "i=a@example.net", 1), Neutral, ErrDomainMismatch},
	)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := verify(t, v, tc.msg)
			if len(res) != 1 {
				t.Fatalf("%d results", len(res))
			}
			r := res[0]
			if r.Result != tc.result || (tc.err != nil && !errors.Is(r.Err, tc.err)) {
				t.Errorf("got %s (%v), want %s (%v)", r.Result, r.Err, tc.result, tc.err)
			}
			if r.Result != Pass && r.Reason == "" {
				t.Error("no reason")
			}
		})
	}
	// The testing flag is reported.
	r := verify(t, v, signedBy("testing", e.ed, nil))[0]
	if r.Result != Pass || !r.Testing {
		t.Errorf("t=y: %+v", r)
	}
}

func mustRecord(t testing.TB, k crypto.Signer) string {
	rec, err := KeyRecord(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestMultipleSignaturesAndCap(t *testing.T) {
	e := newTestEnv(t)
	v := e.verifier()
	v.MaxSignatures = 3
	msg := sampleMessage
	for i := range 4 {
		msg = sign(t, &Signer{Domain: "example.com", Selector: "ed", Key: e.ed, Timestamp: time.Unix(int64(1600000000+i), 0)}, msg)
	}
	res := verify(t, v, msg)
	if len(res) != 4 {
		t.Fatalf("%d results", len(res))
	}
	for i, r := range res {
		want := Pass
		if i == 3 {
			want = Policy
		}
		if r.Result != want {
			t.Errorf("signature %d: %s (%s), want %s", i, r.Result, r.Reason, want)
		}
	}
	if !errors.Is(res[3].Err, ErrTooManySignatures) {
		t.Errorf("cap error: %v", res[3].Err)
	}
	// header.b values are unique prefixes of at least 8 characters.
	for i, r := range res {
		if len(r.HeaderB) < 8 {
			t.Errorf("header.b %q too short", r.HeaderB)
		}
		for j, o := range res {
			if i != j && strings.HasPrefix(o.Signature.B, r.HeaderB) {
				t.Errorf("header.b %q of %d also prefixes %d", r.HeaderB, i, j)
			}
		}
	}
	// Signatures with a common b= prefix get longer header.b.
	results := []*SignatureResult{
		{Signature: &Signature{B: "abcdefghijkl"}},
		{Signature: &Signature{B: "abcdefghijXY"}},
		{Signature: &Signature{B: "zz"}},
	}
	setHeaderB(results)
	if results[0].HeaderB != "abcdefghijk" || results[1].HeaderB != "abcdefghijX" || results[2].HeaderB != "zz" {
		t.Errorf("header.b: %q %q %q", results[0].HeaderB, results[1].HeaderB, results[2].HeaderB)
	}
}

func TestUnsignedMessage(t *testing.T) {
	v := &Verifier{Resolver: dns.NewZone()}
	res := verify(t, v, sampleMessage)
	if len(res) != 0 {
		t.Errorf("unsigned message: %d results", len(res))
	}
}

func TestLFOnlyMessage(t *testing.T) {
	e := newTestEnv(t)
	signed := sign(t, &Signer{Domain: "example.com", Selector: "rsa", Key: e.rsa, Canonicalization: "simple/simple"}, sampleMessage)
	lf := strings.ReplaceAll(signed, "\r\n", "\n")
	if r := verify(t, e.verifier(), lf)[0]; r.Result != Pass {
		t.Errorf("LF-only message: %s %s", r.Result, r.Reason)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
