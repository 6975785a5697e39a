package dkim

import (
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"testing"

	"portcullis/internal/dns"
)

// Keys from RFC 8463 Appendix A.2.
const (
	rfc8463Ed25519Record = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
	rfc8463RSARecord     = "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB"
	// A 512-bit RSA key from the Mail::DKIM corpus.
	rsa512 = "MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBALgSoqXVSEmfcIsOzw7oRuCCOwsmtX/SJnTWxYyj2leFxfS/AVJ+dYfY+hXqMsT7l+MZvvh/R1WzN4MO/kI/7XsCAwEAAQ=="
	// The same RSA-1024 key as a bare PKCS#1 RSAPublicKey (dkimpy's
	// 1024_testkey_wo_markers.pub.rsa.txt form).
	rsa1024PKCS1 = "MIGJAoGBAOQeU5CgFPNZGIazlXo2k/eJ1jpaTTxrmqF1HrDLlt04pvaMtCJj8nXolyLRC/H9vJjMI1vdb3XcW26gAIN/PBD8EL97/y4GwJH7LPUvGP48vqUe+oyqszesbiGy1PlCO8c70/OjFnJVgvMF87YR4Lcindb6aSvI5MgpP6X8rjDdAgMBAAE="
)

func TestParseKeyRecord(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		err     error
		typ     string
		bits    int
		testing bool
		strict  bool
		email   bool
		sha256  bool
	}{
		{name: "ed25519", in: rfc8463Ed25519Record, typ: "ed25519", bits: 256, email: true, sha256: true},
		{name: "rsa", in: rfc8463RSARecord, typ: "rsa", bits: 1024, email: true, sha256: true},
		{name: "no v= no k=", in: "p=" + rsa512, typ: "rsa", bits: 512, email: true, sha256: true},
		{name: "pkcs1", in: "k=rsa; p=" + rsa1024PKCS1, typ: "rsa", bits: 1024, email: true, sha256: true},
		{name: "folded p", in: "k=rsa; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJB ALgSoqXVSEmfcIsOzw7oRuCCOwsmtX/SJnTWxYyj2leFxfS/AVJ+dYfY+hXqMsT7l+MZvvh/R1WzN4MO/kI/7XsCAwEAAQ==", typ: "rsa", bits: 512, email: true, sha256: true},
		{name: "testing", in: "v=DKIM1; t=y; s=email; p=" + rsa512, typ: "rsa", bits: 512, testing: true, email: true, sha256: true},
		{name: "extra tags", in: "v=DKIM1; s=email:web:fine; x1 = extra ; t = y:n:extra; h=md5:sha1; p=" + rsa512 + " ; ", typ: "rsa", bits: 512, testing: true, email: true},
		{name: "strict", in: "v=DKIM1; t=s; p=" + rsa512, typ: "rsa", bits: 512, strict: true, email: true, sha256: true},
		{name: "h=sha256", in: "h=sha1:sha256; p=" + rsa512, typ: "rsa", bits: 512, email: true, sha256: true},
		{name: "h=bad", in: "v=DKIM1; h=bad; p=" + rsa512, typ: "rsa", bits: 512, email: true},
		{name: "s=chat", in: "v=DKIM1; s=chat; p=" + rsa512, typ: "rsa", bits: 512, sha256: true},
		{name: "s=*", in: "s=*; p=" + rsa512, typ: "rsa", bits: 512, email: true, sha256: true},
		{name: "g= ignored", in: "v=DKIM1; g=jl*g; p=" + rsa512, typ: "rsa", bits: 512, email: true, sha256: true},
		// Errors.
		{name: "revoked", in: "k=rsa; t=y; p=", err: ErrKeyRevoked},
		{name: "v=DKIM3", in: "v=DKIM3; t=y; p=" + rsa512, err: ErrKeySyntax},
		{name: "v not first", in: "k=rsa; v=DKIM1; p=" + rsa512, err: ErrKeySyntax},
		{name: "v=DKIM1:", in: "v=DKIM1:; p=" + rsa512, err: ErrKeySyntax},
		{name: "syntax", in: "k=rsa; t; p=" + rsa512, err: ErrKeySyntax},
		{name: "k=foobar", in: "k=foobar; t=y; p=" + rsa512, err: ErrKeyUnsupported},
		{name: "no p", in: "v=DKIM1; k=rsa", err: ErrKeySyntax},
		{name: "empty record", in: "", err: ErrKeySyntax},
		{name: "bad base64", in: "p=!!!!", err: ErrKeySyntax},
		{name: "not a key", in: "p=AAAA", err: ErrKeySyntax},
		{name: "ed25519 spki", in: "v=DKIM1; k=ed25519; p=MCowBQYDK2VwAyEA3SUqa9UbfciWkk7tlcJ9P1VD5pXAasg0JUn/OgjVbKE=", err: ErrKeySyntax},
		{name: "ed25519 short", in: "k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcH", err: ErrKeySyntax},
		{name: "rsa key as ed25519", in: "k=ed25519; p=" + rsa512, err: ErrKeySyntax},
		{name: "ed25519 key as rsa", in: "k=rsa; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", err: ErrKeySyntax},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParseKeyRecord(tc.in)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				if tc.err == ErrKeyRevoked && (k == nil || !k.Revoked || !k.Testing) {
					t.Errorf("revoked key not reported with its flags: %+v", k)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.Type != tc.typ || k.Bits != tc.bits || k.Testing != tc.testing || k.Strict != tc.strict ||
				k.AllowsEmail() != tc.email || k.AllowsHash("sha256") != tc.sha256 {
				t.Errorf("got type %s bits %d testing %v strict %v email %v sha256 %v",
					k.Type, k.Bits, k.Testing, k.Strict, k.AllowsEmail(), k.AllowsHash("sha256"))
			}
			switch tc.typ {
			case "rsa":
				if _, ok := k.Public.(*rsa.PublicKey); !ok {
					t.Errorf("Public is %T", k.Public)
				}
			case "ed25519":
				if _, ok := k.Public.(ed25519.PublicKey); !ok {
					t.Errorf("Public is %T", k.Public)
				}
			}
		})
	}
}

// fakeResolver answers TXT queries from a map; names in fail get the
// error.
type fakeResolver struct {
	txt  map[string][]string
	fail map[string]error
}

func (f *fakeResolver) Query(_ context.Context, name string, t dns.Type) (*dns.Response, error) {
	if err := f.fail[name]; err != nil {
		return nil, &dns.Error{Name: name, Type: t, Err: err}
	}
	recs, ok := f.txt[name]
	if !ok {
		return &dns.Response{Name: name, Type: t, RCode: dns.NXDomain}, nil
	}
	resp := &dns.Response{Name: name, Type: t}
	for _, r := range recs {
		resp.Records = append(resp.Records, dns.Record{Type: dns.TypeTXT, TXT: []string{r}})
	}
	return resp, nil
}

func TestLookupKey(t *testing.T) {
	r := &fakeResolver{
		txt: map[string][]string{
			"brisbane._domainkey.example.com": {rfc8463Ed25519Record},
			"nodata._domainkey.example.com":   {},
			"two._domainkey.example.com":      {"garbage", rfc8463RSARecord},
			"bad._domainkey.example.com":      {"k=rsa; p=AAAA"},
		},
		fail: map[string]error{
			"slow._domainkey.example.com":  dns.ErrTimeout,
			"sfail._domainkey.example.com": dns.ErrServFail,
		},
	}
	ctx := context.Background()
	tests := []struct {
		sel  string
		err  error
		temp bool
	}{
		{sel: "brisbane"},
		{sel: "two"},
		{sel: "missing", err: ErrNoKey},
		{sel: "nodata", err: ErrNoKey},
		{sel: "bad", err: ErrKeySyntax},
		{sel: "slow", err: ErrKeyUnavailable, temp: true},
		{sel: "sfail", err: ErrKeyUnavailable, temp: true},
	}
	for _, tc := range tests {
		k, err := LookupKey(ctx, r, tc.sel, "example.com")
		if tc.err == nil {
			if err != nil || k == nil {
				t.Errorf("%s: %v", tc.sel, err)
			}
			continue
		}
		if !errors.Is(err, tc.err) || dns.IsTemporary(err) != tc.temp {
			t.Errorf("%s: err = %v, want %v (temporary %v)", tc.sel, err, tc.err, tc.temp)
		}
	}
}
