package dkim

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"

	"portcullis/internal/message"
)

// SelectHeaders returns the fields that a signature with the h= list names
// covers, in h= order (RFC 6376 §5.4.2): for each name, the bottom-most
// field of that name not selected by an earlier occurrence of the same
// name. A name with no field left yields nil: it is signed as the null
// string, so that a field of that name added later breaks the signature
// (oversigning). Names compare case-insensitively.
func SelectHeaders(fields []*message.Field, names []string) []*message.Field {
	out := make([]*message.Field, len(names))
	// next[i] is where the search for names[i]'s name continues (from the
	// bottom up); the first occurrence of each name carries the state.
	type cursor struct {
		name string
		next int
	}
	var stack [16]cursor
	cursors := stack[:0]
	for i, n := range names {
		c := -1
		for j := range cursors {
			if len(cursors[j].name) == len(n) && strings.EqualFold(cursors[j].name, n) {
				c = j
				break
			}
		}
		if c < 0 {
			cursors = append(cursors, cursor{name: n, next: len(fields) - 1})
			c = len(cursors) - 1
		}
		k := cursors[c].next
		for k >= 0 && !fields[k].Is(n) {
			k--
		}
		if k >= 0 {
			out[i] = fields[k]
			cursors[c].next = k - 1
		} else {
			cursors[c].next = -1
		}
	}
	return out
}

// AppendHeaderData appends to dst the data a DKIM header hash covers
// (RFC 6376 §3.7): the canonical form under c of every non-nil field of
// selected, in order, then the signature field sig (raw, as in the
// message) with its b= value removed, canonicalized and without its final
// CRLF. Hash the result with the signature's hash function to get the
// digest that VerifyDigest and SignDigest take.
//
// ARC-Message-Signature uses the same construction (RFC 8617 §4.1.2).
func AppendHeaderData(dst []byte, c Canonicalization, selected []*message.Field, sig []byte) ([]byte, error) {
	for _, f := range selected {
		if f != nil {
			dst = AppendCanonicalHeader(dst, f.Raw, c)
		}
	}
	return AppendSignatureFieldData(dst, c, sig)
}

// AppendSignatureFieldData appends the canonical form under c of the
// signature field sig with its b= value removed and without the final
// CRLF (RFC 6376 §3.7, last step).
func AppendSignatureFieldData(dst []byte, c Canonicalization, sig []byte) ([]byte, error) {
	var stack [1024]byte
	stripped, err := AppendWithoutSignatureValue(stack[:0], sig)
	if err != nil {
		return dst, err
	}
	if c == Simple && !hasCRLFSuffix(stripped) {
		return append(dst, stripped...), nil
	}
	dst = AppendCanonicalHeader(dst, stripped, c)
	return dst[:len(dst)-2], nil
}

func hasCRLFSuffix(b []byte) bool {
	return len(b) >= 2 && b[len(b)-2] == '\r' && b[len(b)-1] == '\n'
}

// Errors of VerifyDigest.
var (
	// ErrBadSignature: the signature does not verify with the key.
	ErrBadSignature = errors.New("dkim: signature did not verify")
	// ErrKeyMismatch: the key's type does not suit the algorithm.
	ErrKeyMismatch = errors.New("dkim: key type does not match the algorithm")
)

// VerifyDigest checks the signature sig over digest, the hash of the
// header data (AppendHeaderData), with the public key pub under alg:
// RSASSA-PKCS1-v1_5 for rsa-* (RFC 6376 §3.3), PureEdDSA Ed25519 over the
// SHA-256 digest for ed25519-sha256 (RFC 8463 §3). It checks the
// cryptography only: policy such as RFC 8301 key sizes is the caller's.
func VerifyDigest(pub crypto.PublicKey, alg Algorithm, digest, sig []byte) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if alg.KeyType() != KeyTypeRSA {
			return ErrKeyMismatch
		}
		if err := rsa.VerifyPKCS1v15(k, alg.Hash(), digest, sig); err != nil {
			return ErrBadSignature
		}
		return nil
	case ed25519.PublicKey:
		if alg != Ed25519SHA256 {
			return ErrKeyMismatch
		}
		if len(k) != ed25519.PublicKeySize || !ed25519.Verify(k, digest, sig) {
			return ErrBadSignature
		}
		return nil
	}
	return fmt.Errorf("%w: %T", ErrKeyMismatch, pub)
}

// SignDigest signs digest, the hash of the header data, with key under
// alg (see VerifyDigest). key is an *rsa.PrivateKey or
// ed25519.PrivateKey (or another crypto.Signer with such a public key).
func SignDigest(key crypto.Signer, alg Algorithm, digest []byte) ([]byte, error) {
	switch key.Public().(type) {
	case *rsa.PublicKey:
		if alg.KeyType() != KeyTypeRSA {
			return nil, ErrKeyMismatch
		}
		return key.Sign(rand.Reader, digest, alg.Hash())
	case ed25519.PublicKey:
		if alg != Ed25519SHA256 {
			return nil, ErrKeyMismatch
		}
		return key.Sign(rand.Reader, digest, crypto.Hash(0))
	}
	return nil, fmt.Errorf("%w: %T", ErrKeyMismatch, key.Public())
}
