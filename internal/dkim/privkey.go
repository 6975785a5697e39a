package dkim

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
)

// ErrPrivateKey is wrapped by the errors of ParsePrivateKey.
var ErrPrivateKey = errors.New("dkim: unusable private key")

// ParsePrivateKey reads a signing key: a PEM block holding a PKCS#1 RSA
// key ("RSA PRIVATE KEY") or a PKCS#8 RSA or Ed25519 key ("PRIVATE KEY"),
// or the base64 of a raw Ed25519 private key as RFC 8463 Appendix A
// prints it (the 32-octet seed; a 64-octet seed-and-public-key is
// accepted too).
func ParsePrivateKey(data []byte) (crypto.Signer, error) {
	if block, _ := pem.Decode(data); block != nil {
		switch block.Type {
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrPrivateKey, err)
			}
			return k, nil
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrPrivateKey, err)
			}
			switch k := k.(type) {
			case *rsa.PrivateKey:
				return k, nil
			case ed25519.PrivateKey:
				return k, nil
			}
			return nil, fmt.Errorf("%w: PKCS#8 key of type %T", ErrPrivateKey, k)
		}
		return nil, fmt.Errorf("%w: PEM block %q", ErrPrivateKey, block.Type)
	}
	raw, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(data)))
	if err != nil {
		return nil, fmt.Errorf("%w: neither PEM nor base64", ErrPrivateKey)
	}
	switch len(raw) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(raw), nil
	case ed25519.PrivateKeySize:
		k := ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize])
		if !bytes.Equal(k[ed25519.SeedSize:], raw[ed25519.SeedSize:]) {
			return nil, fmt.Errorf("%w: Ed25519 public half does not match the seed", ErrPrivateKey)
		}
		return k, nil
	}
	return nil, fmt.Errorf("%w: base64 key of %d octets is not an Ed25519 key", ErrPrivateKey, len(raw))
}

// KeyRecord returns the DNS TXT record text publishing pub as a DKIM key
// (RFC 6376 §3.6.1; RFC 8463 §4.2 for Ed25519: the raw 32-octet key).
func KeyRecord(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return "", err
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(k), nil
	}
	return "", fmt.Errorf("%w: public key of type %T", ErrPrivateKey, pub)
}
