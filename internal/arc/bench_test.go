package arc

import (
	"bytes"
	"context"
	"testing"

	"portcullis/internal/authres"
	"portcullis/internal/dkim"
)

// BenchmarkVerifyChain validates a message with three ARC sets (RSA-1024,
// Ed25519, RSA-1024), keys served by an in-memory zone: three seals, the
// newest AMS and two older ones for oldest-pass.
func BenchmarkVerifyChain(b *testing.B) {
	benchmarkVerifyChain(b, nil)
}

// BenchmarkVerifyChainSharedKeys is BenchmarkVerifyChain with the parsed
// keys kept across messages, as the analysis keeps them.
func BenchmarkVerifyChainSharedKeys(b *testing.B) {
	benchmarkVerifyChain(b, dkim.NewKeyCache(0))
}

func benchmarkVerifyChain(b *testing.B, keys *dkim.KeyCache) {
	z, raw := threeHops(b)
	h, body := readMessage(b, raw)
	v := &Verifier{Resolver: z, Keys: keys}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		res, err := v.Verify(ctx, h, bytes.NewReader(body))
		if err != nil || res.Status != Pass {
			b.Fatalf("%v %v", res.Status, err)
		}
	}
}

// BenchmarkSeal adds a fourth set to the three-hop message (RSA-1024).
func BenchmarkSeal(b *testing.B) {
	z, raw := threeHops(b)
	h, body := readMessage(b, raw)
	v := &Verifier{Resolver: z}
	res, err := v.Verify(context.Background(), h, bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	ar := res.AuthResult()
	s := &Sealer{Domain: "bench.example", Selector: "arc", Key: testRSAKey(b)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Seal(context.Background(), h, bytes.NewReader(body), authresHeader(ar), res); err != nil {
			b.Fatal(err)
		}
	}
}

func authresHeader(r authres.Result) *authres.Header {
	return &authres.Header{ServID: "mx.bench.example", Results: []authres.Result{r}}
}
