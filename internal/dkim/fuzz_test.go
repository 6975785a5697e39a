package dkim

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"strings"
	"testing"

	"portcullis/internal/message"
)

func FuzzParseTagList(f *testing.F) {
	f.Add("v=1; a=rsa-sha256; b=abc\r\n def;")
	f.Add("k=rsa; t; p=")
	f.Add(";;")
	f.Add("x1 = extra ; t = y:n:extra; h=md5:sha1; p= ; ")
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseTagList(s)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, tag := range l {
			if !validTagName(tag.Name) || seen[tag.Name] {
				t.Fatalf("bad or duplicate name %q", tag.Name)
			}
			seen[tag.Name] = true
			if strings.ContainsRune(tag.Value, ';') || tag.Value != trimFWS(tag.Value) {
				t.Fatalf("value %q not trimmed or holds ;", tag.Value)
			}
		}
	})
}

func FuzzParseKeyRecord(f *testing.F) {
	f.Add(rfc8463Ed25519Record)
	f.Add(rfc8463RSARecord)
	f.Add("v=DKIM1; k=rsa; t=y; p=")
	f.Add("v=DKIM1; s=email:web:fine; x1 = extra ; t = y:n:extra; h=md5:sha1; p=" + rsa512)
	f.Add("k=ed25519; p=MCowBQYDK2VwAyEA3SUqa9UbfciWkk7tlcJ9P1VD5pXAasg0JUn/OgjVbKE=")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKeyRecord(s)
		if err != nil {
			return
		}
		if k.Public == nil || k.Bits <= 0 || (k.Type != KeyTypeRSA && k.Type != KeyTypeEd25519) {
			t.Fatalf("accepted key without a usable public key: %+v", k)
		}
	})
}

func FuzzParseSignature(f *testing.F) {
	f.Add("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=sel;\r\n\th=from:to; bh=AAAA; b=AAAA\r\n")
	f.Add("DKIM-Signature: v=1; a=ed25519-sha256; d=example.com; s=s; i=a=40b@sub.example.com; l=10; t=1; x=2; q=dns/txt:foo; h=From; bh=AAAA; b=AA\r\n =\r\n")
	f.Add("DKIM-Signature: v=1; a=rsa-sha1; d=legitimate.com(.attacker.com; s=s; h=from; bh=AAAA; b=AAAA\r\n")
	f.Fuzz(func(t *testing.T, raw string) {
		fld, err := message.ParseField([]byte(raw))
		if err != nil {
			return
		}
		sig, err := ParseSignature(fld)
		if sig == nil {
			t.Fatal("nil signature")
		}
		// Removing b= never panics and keeps everything before it.
		if stripped, err := RemoveSignatureValue(fld.Raw); err == nil && len(stripped) > len(fld.Raw) {
			t.Fatalf("stripped field grew")
		}
		if err != nil {
			return
		}
		if !withinDomain(sig.Identity[strings.LastIndexByte(sig.Identity, '@')+1:], sig.Domain) {
			t.Fatalf("accepted i=%q outside d=%q", sig.Identity, sig.Domain)
		}
		if !containsFold(sig.Headers, "from") {
			t.Fatal("accepted h= without From")
		}
		_, _ = AppendHeaderData(nil, sig.HeaderCanon, nil, fld.Raw)
	})
}

// FuzzBodyHasher checks the streaming canonicalization against the plain
// reference implementation, for any split of the input.
func FuzzBodyHasher(f *testing.F) {
	f.Add([]byte(" C \r\nD \t E\r\n\r\n\r\n"), uint16(3))
	f.Add([]byte("a\r\r\n  \r\n"), uint16(1))
	f.Fuzz(func(t *testing.T, in []byte, split uint16) {
		for _, c := range []Canonicalization{Simple, Relaxed} {
			want := sha256.Sum256([]byte(refCanonBody(in, c)))
			bh := NewBodyHasher(c, crypto.SHA256, -1)
			k := int(split) % (len(in) + 1)
			bh.Write(in[:k])
			bh.Write(in[k:])
			if got := bh.Sum(); !bytes.Equal(got, want[:]) {
				t.Fatalf("%v(%q) split %d: wrong hash", c, in, k)
			}
		}
	})
}
