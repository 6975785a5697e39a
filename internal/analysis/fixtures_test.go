package analysis

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"portcullis/internal/arc"
	"portcullis/internal/authres"
	"portcullis/internal/dkim"
	"portcullis/internal/dns"
	"portcullis/internal/message"
)

// update regenerates the forensic fixtures under testdata/forensics:
//
//	go test ./internal/analysis -run TestForensicFixtures -update
var update = flag.Bool("update", false, "regenerate the signed fixtures in testdata/forensics")

// fixtureDir holds the forensic scenarios: unsigned templates (*.tmpl),
// the signed messages made from them (*.eml), the signing keys and the
// zone file that publishes the keys and the senders' policies.
const fixtureDir = "testdata/forensics"

// fixtureTime is the t= of every signature and seal: fixed, so that the
// fixtures regenerate byte for byte (RSASSA-PKCS1-v1_5 is deterministic).
var fixtureTime = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)

// scenario is one forensic case: how its message was made and sent.
type scenario struct {
	name     string // file name without extension
	ip       string
	helo     string
	mailFrom string
	rcpt     string
}

var (
	// The spoof: attacker.example sends with its own SPF and DKIM
	// passing, a From in bank.example (p=reject).
	spoofCase = scenario{"spoof", "203.0.113.66", "mail.attacker.example", "bounce@attacker.example", "finance@corp.example"}
	// The forward: shop.example's newsletter, signed by shop.example,
	// forwarded by list.example.net, which adds a footer and keeps the
	// MAIL FROM: SPF fails at the list's address and the body hash fails.
	forwardCase = scenario{"forwarded", "192.0.2.77", "mx.list.example.net", "news@shop.example", "alice@corp.example"}
	// The same forward, ARC-sealed by the list after adding the footer.
	forwardARCCase = scenario{"forwarded-arc", "192.0.2.77", "mx.list.example.net", "news@shop.example", "alice@corp.example"}
)

func (s scenario) input(t testing.TB) Input {
	t.Helper()
	msg, err := os.ReadFile(filepath.Join(fixtureDir, s.name+".eml"))
	if err != nil {
		t.Fatal(err)
	}
	return Input{ClientIP: netip.MustParseAddr(s.ip), HELO: s.helo, MailFrom: s.mailFrom, RcptTo: []string{s.rcpt}, Message: msg}
}

// fixtureZone loads the scenarios' zone file.
func fixtureZone(t testing.TB) *dns.Zone {
	t.Helper()
	z, err := dns.LoadZoneFile(filepath.Join(fixtureDir, "forensics.zone"))
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// fixtureKey reads (or with -update, makes) the RSA-2048 key of name.
func fixtureKey(t testing.TB, name string) *rsa.PrivateKey {
	t.Helper()
	path := filepath.Join(fixtureDir, "keys", name+".pem")
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) && *update {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		b = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	s, err := dkim.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return s.(*rsa.PrivateKey)
}

// splitMessage parses a message into its header and body (CRLF).
func splitMessage(t testing.TB, msg []byte) (*message.Header, []byte) {
	t.Helper()
	h, err := message.ReadHeader(bufio.NewReader(bytes.NewReader(msg)), message.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return h, msg[h.Consumed:]
}

func joinMessage(h *message.Header, body []byte) []byte {
	return append(h.Bytes(), body...)
}

// crlf turns the LF line endings of a template into CRLF.
func crlf(b []byte) []byte {
	return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
}

// dkimSign signs msg for domain and selector with key.
func dkimSign(t testing.TB, msg []byte, domain, selector string, key crypto.Signer) []byte {
	t.Helper()
	h, body := splitMessage(t, msg)
	s := &dkim.Signer{Domain: domain, Selector: selector, Key: key, Timestamp: fixtureTime}
	f, err := s.Sign(h, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	h.Prepend(f)
	return joinMessage(h, body)
}

// footer is what list.example.net appends to every message it forwards.
const footer = "-- \r\nYou received this message through the list.example.net forwarding service.\r\n"

// forward makes what list.example.net relays: a Received field on top and
// the footer after the body.
func forward(t testing.TB, msg []byte) []byte {
	t.Helper()
	h, body := splitMessage(t, msg)
	rcv, err := message.NewField("Received", " from mail.shop.example (mail.shop.example [198.51.100.20])\r\n\tby mx.list.example.net with ESMTPS; Mon, 2 Mar 2026 09:31:00 +0000")
	if err != nil {
		t.Fatal(err)
	}
	h.Prepend(rcv)
	body = append(append([]byte{}, body...), footer...)
	return joinMessage(h, body)
}

// arcSeal adds list.example.net's ARC set: what it saw on arrival (the
// original message passed DKIM and DMARC) sealed over the forwarded form.
func arcSeal(t testing.TB, msg []byte, key crypto.Signer) []byte {
	t.Helper()
	h, body := splitMessage(t, msg)
	ar, err := authres.Parse("mx.list.example.net; dkim=pass header.d=shop.example header.s=s2026; spf=pass smtp.mailfrom=news@shop.example; dmarc=pass header.from=shop.example")
	if err != nil {
		t.Fatal(err)
	}
	chain, err := (&arc.Verifier{Resolver: dns.NewZone()}).Verify(context.Background(), h, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	s := &arc.Sealer{Domain: "list.example.net", Selector: "arc1", Key: key, Clock: func() time.Time { return fixtureTime.Add(time.Minute) }}
	set, err := s.Seal(context.Background(), h, bytes.NewReader(body), ar, chain)
	if err != nil {
		t.Fatal(err)
	}
	h.Prepend(set.Fields()...)
	return joinMessage(h, body)
}

// txtStrings writes a TXT value as RFC 1035 character-strings of at most
// 255 octets.
func txtStrings(s string) string {
	var parts []string
	for len(s) > 0 {
		n := min(len(s), 250)
		parts = append(parts, `"`+s[:n]+`"`)
		s = s[n:]
	}
	return strings.Join(parts, " ")
}

// TestForensicFixtures checks that the committed fixtures are what the
// templates and keys make; with -update it writes them.
func TestForensicFixtures(t *testing.T) {
	shop, attacker, list := fixtureKey(t, "shop"), fixtureKey(t, "attacker"), fixtureKey(t, "list")
	tmpl := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(fixtureDir, name+".tmpl"))
		if err != nil {
			t.Fatal(err)
		}
		return crlf(b)
	}
	want := map[string][]byte{}
	want["spoof.eml"] = dkimSign(t, tmpl("spoof"), "attacker.example", "s1", attacker)
	original := dkimSign(t, tmpl("newsletter"), "shop.example", "s2026", shop)
	want["forwarded.eml"] = forward(t, original)
	want["forwarded-arc.eml"] = arcSeal(t, forward(t, original), list)

	zoneTmpl, err := os.ReadFile(filepath.Join(fixtureDir, "forensics.zone.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	zone := string(zoneTmpl)
	for name, k := range map[string]*rsa.PrivateKey{"SHOP": shop, "ATTACKER": attacker, "LIST": list} {
		rec, err := dkim.KeyRecord(k.Public())
		if err != nil {
			t.Fatal(err)
		}
		zone = strings.ReplaceAll(zone, "{{"+name+"_KEY}}", txtStrings(rec))
	}
	want["forensics.zone"] = []byte(zone)

	for name, b := range want {
		path := filepath.Join(fixtureDir, name)
		if name == "forwarded-arc.eml" && !*update {
			// The ARC fields' layout (tag order, folding) belongs to
			// package arc and may change; the scenario tests check
			// that the committed chain validates.
			continue
		}
		if *update {
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, b) {
			t.Errorf("%s differs from what its template and keys make; run go test -run TestForensicFixtures -update", path)
		}
	}
	if *update {
		fmt.Println("fixtures written to", fixtureDir)
	}
}
