package dkim

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"errors"

	"filippo.io/bigmod"
)

// rsaPublic is an RSA public key prepared for repeated RSASSA-PKCS1-v1_5
// verification (RFC 8017 §8.2.2).
//
// crypto/rsa prepares the modulus (its Montgomery constants, R² mod n) on
// every call to VerifyPKCS1v15, about a quarter of the cost of an
// RSA-2048 verification. A gateway verifies signatures from a small set of
// keys again and again, and the key cache (KeyCache) keeps the parsed Key,
// so the preparation is done once per key record here.
// crypto/rsa offers no way to keep it, so the public operation uses
// filippo.io/bigmod, the standard library's own modular arithmetic
// (crypto/internal/fips140/bigmod) published as a module; only the
// encoding check of RFC 8017 §8.2.2 step 3-4 is written here.
type rsaPublic struct {
	n *bigmod.Modulus
	e uint
	k int // length of the modulus in octets
}

// Exponent and modulus limits, as crypto/rsa applies them to verification.
const (
	rsaMaxBits = 16384
	rsaMaxE    = 1<<31 - 1
)

// newRSAPublic prepares pub. It fails for keys crypto/rsa refuses to verify
// with: an even modulus or exponent, an exponent under 3 or over 2³¹-1, a
// modulus over 16384 bits. Keys under 1024 bits are prepared (RFC 8301
// size policy is the verifier's, which reports it).
func newRSAPublic(pub *rsa.PublicKey) (*rsaPublic, error) {
	if pub.N == nil || pub.N.Sign() <= 0 || pub.N.Bit(0) == 0 {
		return nil, errors.New("dkim: RSA modulus is not a positive odd number")
	}
	if pub.N.BitLen() > rsaMaxBits {
		return nil, errors.New("dkim: RSA modulus too large")
	}
	if pub.E < 3 || pub.E > rsaMaxE || pub.E&1 == 0 {
		return nil, errors.New("dkim: unusable RSA public exponent")
	}
	n, err := bigmod.NewModulus(pub.N.Bytes())
	if err != nil {
		return nil, err
	}
	return &rsaPublic{n: n, e: uint(pub.E), k: n.Size()}, nil
}

// DigestInfo prefixes of RFC 8017 §9.2 note 1: the DER encoding of the
// DigestInfo up to the hash value.
var digestInfoPrefix = map[crypto.Hash][]byte{
	crypto.SHA1:   {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14},
	crypto.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
}

// verifyPKCS1v15 checks sig, an RSASSA-PKCS1-v1_5 signature over the digest
// made with hash (RFC 8017 §8.2.2): the signature is as long as the
// modulus and less than it (RSAVP1, §5.2.2), and the octets it opens to
// equal EMSA-PKCS1-v1_5(digest) (§9.2) exactly. Building the expected
// encoding and comparing, rather than parsing what the signature holds,
// leaves no room for the lenient-parser forgeries of low-exponent keys.
func (p *rsaPublic) verifyPKCS1v15(hash crypto.Hash, digest, sig []byte) error {
	prefix, ok := digestInfoPrefix[hash]
	if !ok || len(digest) != hash.Size() {
		return errors.New("dkim: unsupported hash for RSA")
	}
	if len(sig) != p.k {
		return ErrBadSignature
	}
	tLen := len(prefix) + len(digest)
	if p.k < tLen+11 { // §9.2 step 3: at least 8 octets of 0xff
		return ErrBadSignature
	}
	s, err := bigmod.NewNat().SetBytes(sig, p.n)
	if err != nil { // s ≥ n
		return ErrBadSignature
	}
	em := bigmod.NewNat().ExpShortVarTime(s, p.e, p.n).Bytes(p.n)
	// EM = 0x00 || 0x01 || PS (0xff…) || 0x00 || T
	psEnd := p.k - tLen - 1
	if em[0] != 0 || em[1] != 1 || em[psEnd] != 0 {
		return ErrBadSignature
	}
	for _, b := range em[2:psEnd] {
		if b != 0xff {
			return ErrBadSignature
		}
	}
	if !bytes.Equal(em[psEnd+1:p.k-len(digest)], prefix) || !bytes.Equal(em[p.k-len(digest):], digest) {
		return ErrBadSignature
	}
	return nil
}
