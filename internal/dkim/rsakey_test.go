package dkim

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"math/big"
	"sync"
	"testing"
)

// rsaTestKeys are generated once: 1024 to 4096 bits, the sizes DKIM meets.
var rsaTestKeys = sync.OnceValue(func() map[int]*rsa.PrivateKey {
	m := map[int]*rsa.PrivateKey{}
	for _, bits := range []int{1024, 2048, 3072, 4096} {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			panic(err)
		}
		m[bits] = k
	}
	return m
})

// rawSign applies the RSA private operation to em, whatever it holds, so
// that tests can make signatures over malformed encodings.
func rawSign(k *rsa.PrivateKey, em []byte) []byte {
	m := new(big.Int).SetBytes(em)
	s := new(big.Int).Exp(m, k.D, k.N)
	return s.FillBytes(make([]byte, (k.N.BitLen()+7)/8))
}

// emsa builds EMSA-PKCS1-v1_5 (RFC 8017 §9.2) with the given parts, so
// that each can be broken on its own.
func emsa(k int, lead []byte, ps byte, psLen int, sep byte, t []byte) []byte {
	em := append([]byte{}, lead...)
	em = append(em, bytes.Repeat([]byte{ps}, psLen)...)
	em = append(em, sep)
	em = append(em, t...)
	if len(em) < k {
		em = append(bytes.Repeat([]byte{0}, k-len(em)), em...)
	}
	return em[len(em)-k:]
}

// agree checks that the prepared key and crypto/rsa give the same verdict.
func agree(t *testing.T, name string, p *rsaPublic, pub *rsa.PublicKey, h crypto.Hash, digest, sig []byte, want bool) {
	t.Helper()
	ours := p.verifyPKCS1v15(h, digest, sig) == nil
	std := rsa.VerifyPKCS1v15(pub, h, digest, sig) == nil
	if ours != std || ours != want {
		t.Errorf("%s: prepared key says %v, crypto/rsa %v, want %v", name, ours, std, want)
	}
}

// TestRSAPublicAgreesWithCryptoRSA compares the prepared-key verification
// with crypto/rsa on valid signatures and on each way a signature or its
// encoding can be wrong.
func TestRSAPublicAgreesWithCryptoRSA(t *testing.T) {
	for bits, k := range rsaTestKeys() {
		pub := &k.PublicKey
		p, err := newRSAPublic(pub)
		if err != nil {
			t.Fatal(err)
		}
		size := (bits + 7) / 8
		for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA1} {
			var digest []byte
			if h == crypto.SHA256 {
				d := sha256.Sum256([]byte("header data"))
				digest = d[:]
			} else {
				d := sha1.Sum([]byte("header data"))
				digest = d[:]
			}
			sig, err := rsa.SignPKCS1v15(rand.Reader, k, h, digest)
			if err != nil {
				t.Fatal(err)
			}
			name := func(s string) string { return h.String() + "/" + big.NewInt(int64(bits)).String() + ": " + s }
			agree(t, name("valid"), p, pub, h, digest, sig, true)
			for i := range []int{0, size / 2, size - 1} {
				bad := bytes.Clone(sig)
				bad[[]int{0, size / 2, size - 1}[i]] ^= 0x01
				agree(t, name("flipped bit"), p, pub, h, digest, bad, false)
			}
			other := bytes.Clone(digest)
			other[0] ^= 0x80
			agree(t, name("other digest"), p, pub, h, other, sig, false)
			agree(t, name("short"), p, pub, h, digest, sig[1:], false)
			agree(t, name("long"), p, pub, h, digest, append([]byte{0}, sig...), false)
			agree(t, name("empty"), p, pub, h, digest, nil, false)
			agree(t, name("s = n"), p, pub, h, digest, pub.N.FillBytes(make([]byte, size)), false)
			agree(t, name("s > n"), p, pub, h, digest, bytes.Repeat([]byte{0xff}, size), false)
			agree(t, name("s = 0"), p, pub, h, digest, make([]byte, size), false)
			one := make([]byte, size)
			one[size-1] = 1
			agree(t, name("s = 1"), p, pub, h, digest, one, false)

			prefix := digestInfoPrefix[h]
			tt := append(bytes.Clone(prefix), digest...)
			psLen := size - len(tt) - 3
			good := emsa(size, []byte{0, 1}, 0xff, psLen, 0, tt)
			agree(t, name("raw good encoding"), p, pub, h, digest, rawSign(k, good), true)
			broken := map[string][]byte{
				"lead 0x00 0x02": emsa(size, []byte{0, 2}, 0xff, psLen, 0, tt),
				"PS of 0xfe":     emsa(size, []byte{0, 1}, 0xfe, psLen, 0, tt),
				"separator 0x01": emsa(size, []byte{0, 1}, 0xff, psLen, 1, tt),
				// The hash moved left with garbage after it: a lenient
				// parser that reads T from the separator would accept it.
				"garbage after T": emsa(size, []byte{0, 1}, 0xff, psLen-4, 0, append(bytes.Clone(tt), 0xde, 0xad, 0xbe, 0xef)),
				// DigestInfo without the NULL parameters.
				"no NULL params": emsa(size, []byte{0, 1}, 0xff, psLen+2, 0, noNullPrefix(prefix, digest)),
				"other hash OID": emsa(size, []byte{0, 1}, 0xff, psLen, 0, otherOID(prefix, digest)),
			}
			for what, em := range broken {
				agree(t, name(what), p, pub, h, digest, rawSign(k, em), false)
			}
			// The PS must be there: a zero PS with 0x00 0x01 directly
			// followed by the separator is refused by both.
			if psLen > 8 {
				em := emsa(size, []byte{0, 0, 1}, 0xff, psLen-1, 0, tt)
				agree(t, name("shifted encoding"), p, pub, h, digest, rawSign(k, em), false)
			}
		}
		// A digest whose length is not the hash's is refused.
		d := sha256.Sum256([]byte("x"))
		sig, _ := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, d[:])
		if p.verifyPKCS1v15(crypto.SHA256, d[:20], sig) == nil {
			t.Error("a 20-octet digest verified as SHA-256")
		}
		if p.verifyPKCS1v15(crypto.SHA512, make([]byte, 64), sig) == nil {
			t.Error("SHA-512 verified although it has no DigestInfo here")
		}
	}
}

func noNullPrefix(prefix, digest []byte) []byte {
	// 30 len 30 len' OID 05 00 04 hlen → drop the 05 00 and fix the lengths.
	p := bytes.Clone(prefix)
	i := bytes.Index(p, []byte{0x05, 0x00})
	p = append(p[:i], p[i+2:]...)
	p[1] -= 2
	p[3] -= 2
	return append(p, digest...)
}

func otherOID(prefix, digest []byte) []byte {
	p := bytes.Clone(prefix)
	p[len(p)-5] ^= 0x01 // the last octet of the hash OID
	return append(p, digest...)
}

// TestNewRSAPublicRefuses checks that keys crypto/rsa will not verify with
// are not prepared either, and that ParseKeyRecord leaves them to
// crypto/rsa.
func TestNewRSAPublicRefuses(t *testing.T) {
	n := rsaTestKeys()[2048].N
	cases := map[string]*rsa.PublicKey{
		"even exponent":    {N: n, E: 65536},
		"exponent 1":       {N: n, E: 1},
		"huge exponent":    {N: n, E: 1 << 32},
		"even modulus":     {N: new(big.Int).Add(n, big.NewInt(1)), E: 65537},
		"zero modulus":     {N: new(big.Int), E: 65537},
		"no modulus":       {E: 65537},
		"modulus > 16k":    {N: new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), 16384), big.NewInt(1)), E: 65537},
		"negative modulus": {N: new(big.Int).Neg(n), E: 65537},
	}
	for name, pub := range cases {
		if _, err := newRSAPublic(pub); err == nil {
			t.Errorf("%s: prepared", name)
		}
	}
}

// TestKeyVerifyDigestPrepared checks that a parsed RSA key record carries
// the prepared key, verifies with it, and falls back to crypto/rsa when
// Public is replaced.
func TestKeyVerifyDigestPrepared(t *testing.T) {
	k := rsaTestKeys()[2048]
	rec, err := KeyRecord(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ParseKeyRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	if key.rsa == nil {
		t.Fatal("RSA key record parsed without a prepared key")
	}
	d := sha256.Sum256([]byte("data"))
	sig, _ := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, d[:])
	if err := key.VerifyDigest(RSASHA256, d[:], sig); err != nil {
		t.Fatalf("valid signature: %v", err)
	}
	if err := key.VerifyDigest(Ed25519SHA256, d[:], sig); err != ErrKeyMismatch {
		t.Fatalf("ed25519 with an RSA key: %v, want ErrKeyMismatch", err)
	}
	other := rsaTestKeys()[1024]
	key.Public = &other.PublicKey
	if err := key.VerifyDigest(RSASHA256, d[:], sig); err == nil {
		t.Fatal("a replaced Public still verified with the prepared key")
	}
	sig2, _ := rsa.SignPKCS1v15(rand.Reader, other, crypto.SHA256, d[:])
	if err := key.VerifyDigest(RSASHA256, d[:], sig2); err != nil {
		t.Fatalf("replaced Public: %v", err)
	}
	// An even exponent is not prepared; verification fails as in crypto/rsa.
	bad := &rsa.PublicKey{N: k.N, E: 4}
	der := base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PublicKey(bad))
	even, err := ParseKeyRecord("v=DKIM1; k=rsa; p=" + der)
	if err != nil {
		t.Fatalf("even exponent: %v (the record is well-formed)", err)
	}
	if even.rsa != nil {
		t.Fatal("even exponent prepared")
	}
	if even.VerifyDigest(RSASHA256, d[:], sig) == nil {
		t.Fatal("even exponent verified")
	}
}

// FuzzRSAVerify compares the prepared key with crypto/rsa on arbitrary
// signatures and digests.
func FuzzRSAVerify(f *testing.F) {
	k := rsaTestKeys()[1024]
	p, err := newRSAPublic(&k.PublicKey)
	if err != nil {
		f.Fatal(err)
	}
	d := sha256.Sum256([]byte("seed"))
	sig, _ := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, d[:])
	f.Add(d[:], sig, false)
	f.Add(d[:20], sig, true)
	f.Add(d[:], bytes.Repeat([]byte{0xff}, 128), false)
	f.Fuzz(func(t *testing.T, digest, sig []byte, sha1 bool) {
		h := crypto.SHA256
		if sha1 {
			h = crypto.SHA1
		}
		ours := p.verifyPKCS1v15(h, digest, sig) == nil
		std := rsa.VerifyPKCS1v15(&k.PublicKey, h, digest, sig) == nil
		if ours != std {
			t.Fatalf("prepared key %v, crypto/rsa %v", ours, std)
		}
	})
}
