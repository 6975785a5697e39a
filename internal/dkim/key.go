package dkim

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"portcullis/internal/dns"
)

// Key-record errors. The error of ParseKeyRecord and LookupKey wraps one of
// them (LookupKey also returns DNS errors that wrap dns.ErrTemporary).
var (
	// ErrKeySyntax: the record is not a valid DKIM key record (RFC 6376
	// §3.6.1): a tag-list syntax error, a v= other than DKIM1 or not
	// first, no p=, or a p= that is not a valid key. Maps to permerror.
	ErrKeySyntax = errors.New("dkim: invalid key record")
	// ErrKeyRevoked: the record has an empty p= (RFC 6376 §3.6.1).
	ErrKeyRevoked = errors.New("dkim: key revoked")
	// ErrKeyUnsupported: the record names a key type (k=) this
	// implementation does not know. Maps to permerror.
	ErrKeyUnsupported = errors.New("dkim: unsupported key type")
	// ErrNoKey: no key record exists at the selector (NXDOMAIN, or no TXT
	// record). Maps to permerror (RFC 6376 §6.1.2 step 3).
	ErrNoKey = errors.New("dkim: no key for signature")
	// ErrKeyUnavailable: the key lookup failed temporarily (the error
	// also wraps dns.ErrTemporary). Maps to temperror.
	ErrKeyUnavailable = errors.New("dkim: key unavailable")
)

// Key types (the k= tag of a key record).
const (
	KeyTypeRSA     = "rsa"     // RFC 6376 §3.6.1
	KeyTypeEd25519 = "ed25519" // RFC 8463 §4
)

// Key is a parsed DKIM public-key record (RFC 6376 §3.6.1).
type Key struct {
	// Tags is the record as parsed.
	Tags TagList
	// Type is the k= value: KeyTypeRSA (the default) or KeyTypeEd25519.
	Type string
	// HashAlgorithms lists the h= values (hash algorithms the key may be
	// used with); nil means any.
	HashAlgorithms []string
	// Services lists the s= values; nil means "*" (any service).
	Services []string
	// Flags lists the t= values.
	Flags []string
	// Testing is t=y: the domain is testing DKIM.
	Testing bool
	// Strict is t=s: the i= domain of a signature must equal d=, not be
	// a subdomain of it.
	Strict bool
	// Notes is n=, as written.
	Notes string
	// Revoked reports an empty p=: the key was revoked.
	Revoked bool
	// Public is *rsa.PublicKey or ed25519.PublicKey; nil when revoked.
	Public crypto.PublicKey
	// Bits is the size of an RSA modulus, 256 for Ed25519.
	Bits int

	// rsa is Public prepared for verification, when Public is an RSA key
	// that ParseKeyRecord could prepare; rsaFor is the key it was made
	// from, so that a Public replaced afterwards is not verified with it.
	rsa    *rsaPublic
	rsaFor *rsa.PublicKey
}

// VerifyDigest is the package's VerifyDigest with k.Public. For an RSA key
// parsed by ParseKeyRecord it reuses the modulus prepared at parse time,
// which saves about a quarter of an RSA-2048 verification.
func (k *Key) VerifyDigest(alg Algorithm, digest, sig []byte) error {
	if k.rsa != nil && k.Public == crypto.PublicKey(k.rsaFor) {
		if alg.KeyType() != KeyTypeRSA {
			return ErrKeyMismatch
		}
		return k.rsa.verifyPKCS1v15(alg.Hash(), digest, sig)
	}
	return VerifyDigest(k.Public, alg, digest, sig)
}

// AllowsHash reports whether the key may be used with the hash algorithm
// named h ("sha256", "sha1"): the h= tag lists it or is absent (RFC 6376
// §3.6.1).
func (k *Key) AllowsHash(h string) bool {
	if k.HashAlgorithms == nil {
		return true
	}
	for _, a := range k.HashAlgorithms {
		if a == h {
			return true
		}
	}
	return false
}

// AllowsEmail reports whether the key may be used for email: s= is absent
// or lists "email" or "*" (RFC 6376 §3.6.1).
func (k *Key) AllowsEmail() bool {
	if k.Services == nil {
		return true
	}
	for _, s := range k.Services {
		if s == "*" || s == "email" {
			return true
		}
	}
	return false
}

// ParseKeyRecord parses the text of a DKIM key record (the TXT
// character-strings joined, RFC 6376 §3.6.2.2) per RFC 6376 §3.6.1 and
// RFC 8463 §4 (Ed25519: p= is the raw 32-octet public key).
//
// For RSA, p= is a DER SubjectPublicKeyInfo; a bare PKCS#1 RSAPublicKey is
// accepted too, as other verifiers do. Unknown tags are ignored, and so are
// unknown values in h=, s= and t=. A revoked key (empty p=) is returned
// with an error wrapping ErrKeyRevoked, so that its flags can still be
// reported.
func ParseKeyRecord(txt string) (*Key, error) {
	tags, err := ParseTagList(txt)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeySyntax, err)
	}
	k := &Key{Tags: tags, Type: KeyTypeRSA}
	// v= is optional, but when present it must be the first tag and be
	// "DKIM1" (RFC 6376 §3.6.1).
	if v, ok := tags.Get("v"); ok {
		if tags[0].Name != "v" {
			return nil, fmt.Errorf("%w: v= is not the first tag", ErrKeySyntax)
		}
		if v != "DKIM1" {
			return nil, fmt.Errorf("%w: unsupported version v=%s", ErrKeySyntax, clipString(v))
		}
	}
	if h, ok := tags.Get("h"); ok {
		k.HashAlgorithms = splitColonList(h)
		if k.HashAlgorithms == nil {
			k.HashAlgorithms = []string{}
		}
	}
	if s, ok := tags.Get("s"); ok {
		k.Services = splitColonList(s)
		if k.Services == nil {
			k.Services = []string{}
		}
	}
	if t, ok := tags.Get("t"); ok {
		k.Flags = splitColonList(t)
		for _, f := range k.Flags {
			switch f {
			case "y":
				k.Testing = true
			case "s":
				k.Strict = true
			}
		}
	}
	k.Notes, _ = tags.Get("n")
	if kt, ok := tags.Get("k"); ok {
		k.Type = kt
	}
	p, ok := tags.Get("p")
	if !ok {
		return nil, fmt.Errorf("%w: no p= tag", ErrKeySyntax)
	}
	switch k.Type {
	case KeyTypeRSA, KeyTypeEd25519:
	default:
		return nil, fmt.Errorf("%w: k=%s", ErrKeyUnsupported, clipString(k.Type))
	}
	p = removeFWS(p)
	if p == "" {
		k.Revoked = true
		return k, ErrKeyRevoked
	}
	der, err := decodeBase64(p)
	if err != nil {
		return nil, fmt.Errorf("%w: p= is not base64", ErrKeySyntax)
	}
	switch k.Type {
	case KeyTypeRSA:
		pub, err := parseRSAPublicKey(der)
		if err != nil {
			return nil, err
		}
		k.Public, k.Bits = pub, pub.N.BitLen()
		// A key the preparation refuses is left to crypto/rsa, which
		// refuses it too, with its own reason.
		if prepared, err := newRSAPublic(pub); err == nil {
			k.rsa, k.rsaFor = prepared, pub
		}
	case KeyTypeEd25519:
		// RFC 8463 §4.2: the base64 of the 32-octet public key.
		if len(der) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: ed25519 key of %d octets, want %d", ErrKeySyntax, len(der), ed25519.PublicKeySize)
		}
		k.Public, k.Bits = ed25519.PublicKey(der), 256
	}
	return k, nil
}

func parseRSAPublicKey(der []byte) (*rsa.PublicKey, error) {
	if pub, err := x509.ParsePKIXPublicKey(der); err == nil {
		rk, ok := pub.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("%w: k=rsa but p= holds a %T", ErrKeySyntax, pub)
		}
		return rk, nil
	}
	if rk, err := x509.ParsePKCS1PublicKey(der); err == nil {
		return rk, nil
	}
	return nil, fmt.Errorf("%w: p= is not an RSA public key", ErrKeySyntax)
}

// decodeBase64 decodes standard base64, with or without padding.
func decodeBase64(s string) ([]byte, error) {
	if strings.HasSuffix(s, "=") || len(s)%4 == 0 {
		return base64.StdEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// base64Encoding returns the encoding of b, standard base64 with or
// without padding.
func base64Encoding(b []byte) *base64.Encoding {
	if len(b) > 0 && b[len(b)-1] != '=' && len(b)%4 != 0 {
		return base64.RawStdEncoding
	}
	return base64.StdEncoding
}

// base64DecodedLen is the most octets appendBase64Bytes appends for b.
func base64DecodedLen(b []byte) int { return base64Encoding(b).DecodedLen(len(b)) }

// appendBase64Bytes decodes b, standard base64 with or without padding,
// and appends the octets to dst.
func appendBase64Bytes(dst, b []byte) ([]byte, error) {
	return base64Encoding(b).AppendDecode(dst, b)
}

// KeyName returns the DNS name of the key record for selector and domain:
// selector._domainkey.domain (RFC 6376 §3.6.2.1).
func KeyName(selector, domain string) string {
	return selector + "._domainkey." + domain
}

// LookupKey fetches and parses the key record for selector and domain
// (RFC 6376 §3.6.2, §6.1.2) through r.
//
// Errors: a temporary DNS failure wraps ErrKeyUnavailable and
// dns.ErrTemporary (temperror); no record (NXDOMAIN, NODATA, or a name that
// is not a valid DNS name) wraps ErrNoKey; a record that does not parse
// wraps ErrKeySyntax or ErrKeyUnsupported; a revoked key wraps
// ErrKeyRevoked (all permerror). When several TXT records exist, the first
// that parses is used; if none does, the error of the first is returned
// (with the key, when it is a revoked one). KeyCache.Lookup does the same
// and keeps the parsed records.
func LookupKey(ctx context.Context, r dns.Resolver, selector, domain string) (*Key, error) {
	return (*KeyCache)(nil).Lookup(ctx, r, selector, domain)
}

func lookupKeyTXT(ctx context.Context, r dns.Resolver, selector, domain string) ([]string, error) {
	name := KeyName(selector, domain)
	if _, err := dns.CanonicalName(name); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoKey, err)
	}
	txts, resp, err := dns.LookupTXT(ctx, r, name)
	if err != nil {
		if dns.IsTemporary(err) {
			return nil, fmt.Errorf("%w: %w", ErrKeyUnavailable, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrNoKey, err)
	}
	if resp.NXDomain() {
		return nil, fmt.Errorf("%w: %s does not exist (NXDOMAIN)", ErrNoKey, name)
	}
	if len(txts) == 0 {
		return nil, fmt.Errorf("%w: %s has no TXT record", ErrNoKey, name)
	}
	return txts, nil
}
