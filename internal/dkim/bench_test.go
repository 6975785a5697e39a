package dkim

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	msgauth "github.com/emersion/go-msgauth/dkim"

	"portcullis/internal/dns"
	"portcullis/internal/message"
)

// staticResolver answers every query with one prepared response: a warm
// cache, so that benchmarks measure verification, not DNS.
type staticResolver struct{ resp *dns.Response }

func (s staticResolver) Query(context.Context, string, dns.Type) (*dns.Response, error) {
	return s.resp, nil
}

// benchMessage returns a message of about 10 KB signed with RSA-2048,
// relaxed/relaxed, and the key record.
func benchMessage(b *testing.B) (msg []byte, record string, key crypto.Signer) {
	return benchMessageCanon(b, "relaxed/relaxed")
}

func benchMessageCanon(b *testing.B, canon string) (msg []byte, record string, key crypto.Signer) {
	b.Helper()
	key = loadKey(b, filepath.Join("testdata", "rsa2048.pem"))
	var body strings.Builder
	for i := 0; body.Len() < 10000; i++ {
		fmt.Fprintf(&body, "Line %d of the report: the quarterly figures are attached, see  the table below.\r\n", i)
	}
	unsigned := "Received: from mx.example.org (mx.example.org [192.0.2.1])\r\n\tby mx.example.com with ESMTPS id 4Xyz; Mon, 01 Jan 2024 00:00:00 +0000\r\n" +
		"From: Alice Example <alice@example.com>\r\nTo: Bob <bob@example.org>\r\nCc: carol@example.org\r\n" +
		"Subject: Quarterly report\r\nDate: Mon, 01 Jan 2024 00:00:00 +0000\r\nMessage-ID: <report-1@example.com>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body.String()
	signed := sign(b, &Signer{Domain: "example.com", Selector: "rsa", Key: key, Canonicalization: canon}, unsigned)
	rec, err := KeyRecord(key.Public())
	if err != nil {
		b.Fatal(err)
	}
	return []byte(signed), rec, key
}

// BenchmarkVerify verifies a 10 KB RSA-2048 relaxed/relaxed message.
func BenchmarkVerify(b *testing.B) {
	benchmarkVerify(b, "relaxed/relaxed")
}

// BenchmarkVerifySimple verifies the same message signed simple/simple.
func BenchmarkVerifySimple(b *testing.B) {
	benchmarkVerify(b, "simple/simple")
}

func benchmarkVerify(b *testing.B, canon string) {
	msg, rec, _ := benchMessageCanon(b, canon)
	resp := &dns.Response{Records: []dns.Record{txtRecord(rec)}}
	v := &Verifier{Resolver: staticResolver{resp}}
	ctx := context.Background()
	r := bytes.NewReader(msg)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		r.Reset(msg)
		res, err := v.Verify(ctx, r)
		if err != nil || len(res) != 1 || res[0].Result != Pass {
			b.Fatalf("%v %v", res, err)
		}
	}
}

// BenchmarkVerifyGoMsgauth verifies the same message with
// github.com/emersion/go-msgauth/dkim.
func BenchmarkVerifyGoMsgauth(b *testing.B) {
	msg, rec, _ := benchMessage(b)
	opts := &msgauth.VerifyOptions{LookupTXT: func(string) ([]string, error) { return []string{rec}, nil }}
	r := bytes.NewReader(msg)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		r.Reset(msg)
		res, err := msgauth.VerifyWithOptions(r, opts)
		if err != nil || len(res) != 1 || res[0].Err != nil {
			b.Fatalf("%v %v", res, err)
		}
	}
}

// floorWork is what any verifier must compute for the bench message: the
// body, the header data and the signature value.
type floorWork struct {
	msg, body, data []byte
	sig             *Signature
	record          string
	pub             *rsa.PublicKey
}

func newFloorWork(tb testing.TB) *floorWork {
	b, ok := tb.(*testing.B)
	if !ok {
		b = &testing.B{}
	}
	msg, rec, key := benchMessage(b)
	br := bufio.NewReader(bytes.NewReader(msg))
	h, err := message.ReadHeader(br, message.Limits{})
	if err != nil {
		tb.Fatal(err)
	}
	body, _ := bytesFrom(br)
	sig, err := ParseSignature(h.Fields[0])
	if err != nil {
		tb.Fatal(err)
	}
	data, err := AppendHeaderData(nil, sig.HeaderCanon, SelectHeaders(h.Fields, sig.Headers), h.Fields[0].Raw)
	if err != nil {
		tb.Fatal(err)
	}
	return &floorWork{msg: msg, body: body, data: data, sig: sig, record: rec, pub: key.Public().(*rsa.PublicKey)}
}

// verify hashes the body and the header data and verifies the signature:
// with crypto/rsa, which prepares the modulus every time, when prepared is
// nil; else with prepared, the key made ready once.
func (w *floorWork) verify(prepared *Key) error {
	bodySum := sha256.Sum256(w.body)
	floorSink ^= bodySum[0]
	d := sha256.Sum256(w.data)
	if prepared == nil {
		return rsa.VerifyPKCS1v15(w.pub, crypto.SHA256, d[:], w.sig.Value)
	}
	return prepared.VerifyDigest(RSASHA256, d[:], w.sig.Value)
}

// preparedKey returns the key parsed from the record, prepared once as the
// verifier's key cache keeps it.
func (w *floorWork) preparedKey(tb testing.TB) *Key {
	key, err := ParseKeyRecord(w.record)
	if err != nil {
		tb.Fatal(err)
	}
	return key
}

func benchmarkFloor(b *testing.B, w *floorWork, prepared *Key) {
	b.ReportAllocs()
	b.SetBytes(int64(len(w.msg)))
	for b.Loop() {
		if err := w.verify(prepared); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyFloor is the least work any verifier built on crypto/rsa
// must do: SHA-256 of the canonical header data and of the body, and one
// RSA-2048 signature verification.
func BenchmarkVerifyFloor(b *testing.B) {
	w := newFloorWork(b)
	benchmarkFloor(b, w, nil)
}

// BenchmarkVerifyFloorPrepared is BenchmarkVerifyFloor with the RSA key
// prepared once, as the verifier's key cache keeps it: the least work left
// once the modulus preparation is saved too.
func BenchmarkVerifyFloorPrepared(b *testing.B) {
	w := newFloorWork(b)
	benchmarkFloor(b, w, w.preparedKey(b))
}

// floorSink keeps the body hash of BenchmarkVerifyFloor alive.
var floorSink byte

// BenchmarkBodyHasher measures canonicalization and hashing of a 10 KB
// body.
func BenchmarkBodyHasher(b *testing.B) {
	msg, _, _ := benchMessage(b)
	body := msg[bytes.Index(msg, []byte("\r\n\r\n"))+4:]
	for _, c := range []Canonicalization{Simple, Relaxed} {
		b.Run(c.String(), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				bh := NewBodyHasher(c, crypto.SHA256, -1)
				bh.Write(body)
				bh.Sum()
			}
		})
	}
}

// BenchmarkSign signs the same message with RSA-2048.
func BenchmarkSign(b *testing.B) {
	msg, _, key := benchMessage(b)
	br := bufio.NewReader(bytes.NewReader(msg))
	h, _ := message.ReadHeader(br, message.Limits{})
	body, _ := bytesFrom(br)
	s := &Signer{Domain: "example.com", Selector: "rsa", Key: key}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(h, bytes.NewReader(body)); err != nil {
			b.Fatal(err)
		}
	}
}
