package dkim_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"fmt"
	"strings"

	"portcullis/internal/dkim"
	"portcullis/internal/dns"
	"portcullis/internal/message"
)

// Sign a message with Ed25519 (RFC 8463) and verify it against the key
// published in an in-memory zone.
func Example() {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	record, _ := dkim.KeyRecord(key.Public())
	zone := dns.NewZone()
	zone.Add(dkim.KeyName("mail", "example.com"), dns.Record{Type: dns.TypeTXT, TTL: 300, TXT: []string{record}})

	msg := "From: alice@example.com\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nHello.\r\n"
	br := bufio.NewReader(strings.NewReader(msg))
	h, _ := message.ReadHeader(br, message.Limits{})
	signer := &dkim.Signer{Domain: "example.com", Selector: "mail", Key: key}
	field, err := signer.Sign(h, br)
	if err != nil {
		panic(err)
	}

	v := &dkim.Verifier{Resolver: zone}
	results, _ := v.Verify(context.Background(), strings.NewReader(string(field.Raw)+msg))
	for _, r := range results {
		fmt.Println(r.Result, r.Domain, r.Selector, r.Algorithm, r.Oversigned)
	}
	// Output: pass example.com mail ed25519-sha256 [From To Cc Subject Date Reply-To]
}

// The canonicalization API that ARC (RFC 8617) shares.
func ExampleCanonicalizeHeader() {
	raw := []byte("Subject :  Hello\r\n\tWorld  \r\n")
	fmt.Printf("%q\n", dkim.CanonicalizeHeader(raw, dkim.Relaxed))
	// Output: "subject:Hello World\r\n"
}
