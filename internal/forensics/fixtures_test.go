package forensics

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io/fs"
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

// update rewrites the committed fixtures (messages, zones) and the golden
// outputs from the generator and the current code.
var update = flag.Bool("update", false, "rewrite testdata fixtures and golden files")

// receiverID is the authserv-id of the receiving system in every fixture.
const receiverID = "mx.receiver.example"

// checkedAt is the time of every "verified now" in the goldens.
var checkedAt = time.Date(2026, 5, 5, 8, 0, 0, 0, time.UTC)

// fixture is one message scenario: a generator that builds the message
// with real DKIM signatures and ARC seals from the keys committed under
// testdata/keys, and the zone the explanation runs against.
type fixture struct {
	name    string
	trusted []string // trusted ARC sealers
	build   func(g *gen) (eml []byte, zone string)
}

var fixtures = []fixture{
	{name: "01-spoof-blocked", build: buildSpoof},
	{name: "02-forwarded", build: buildForwarded},
	{name: "03-mailing-list", build: buildMailingList},
	{name: "04-arc-trusted", trusted: []string{"groups.example"}, build: buildARC},
	{name: "05-third-party", build: buildThirdParty},
	{name: "06-dns-changed", build: buildDNSChanged},
	{name: "07-spoof-signed", build: buildSpoofSigned},
	{name: "08-srs-forwarded", build: buildSRSForwarded},
}

// gen builds fixtures: keys, zone text, messages.
type gen struct {
	t    testing.TB
	keys map[string]crypto.Signer
}

func newGen(t testing.TB) *gen { return &gen{t: t, keys: map[string]crypto.Signer{}} }

// key returns the committed RSA key named name (testdata/keys/name.pem),
// generating it when -update is given and it does not exist yet.
func (g *gen) key(name string) crypto.Signer {
	if k, ok := g.keys[name]; ok {
		return k
	}
	path := filepath.Join("testdata", "keys", name+".pem")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && *update {
		k, gerr := rsa.GenerateKey(rand.Reader, 2048)
		if gerr != nil {
			g.t.Fatal(gerr)
		}
		der, merr := x509.MarshalPKCS8PrivateKey(k)
		if merr != nil {
			g.t.Fatal(merr)
		}
		data = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			g.t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			g.t.Fatal(err)
		}
		err = nil
	}
	if err != nil {
		g.t.Fatalf("key %s: %v", name, err)
	}
	k, err := dkim.ParsePrivateKey(data)
	if err != nil {
		g.t.Fatalf("key %s: %v", name, err)
	}
	g.keys[name] = k
	return k
}

// zone writes an RFC 1035 master file.
type zone struct{ b strings.Builder }

func newZone() *zone {
	z := &zone{}
	z.b.WriteString("$TTL 300\n")
	return z
}

func (z *zone) txt(name, value string) *zone {
	var parts []string
	for len(value) > 255 {
		parts = append(parts, quote(value[:255]))
		value = value[255:]
	}
	parts = append(parts, quote(value))
	fmt.Fprintf(&z.b, "%s. IN TXT %s\n", name, strings.Join(parts, " "))
	return z
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func (z *zone) a(name, ip string) *zone {
	fmt.Fprintf(&z.b, "%s. IN A %s\n", name, ip)
	return z
}

func (z *zone) dkimKey(g *gen, selector, domain, keyName string) *zone {
	rec, err := dkim.KeyRecord(g.key(keyName).Public())
	if err != nil {
		g.t.Fatal(err)
	}
	return z.txt(dkim.KeyName(selector, domain), rec)
}

func (z *zone) String() string { return z.b.String() }

// msg is a message under construction: header fields are prepended as
// each hop would add them.
type msg struct {
	g    *gen
	h    *message.Header
	body []byte
}

func (g *gen) message(header, body string) *msg {
	raw := strings.ReplaceAll(strings.TrimLeft(header, "\n"), "\n", "\r\n") + "\r\n" + strings.ReplaceAll(body, "\n", "\r\n")
	br := bufio.NewReader(strings.NewReader(raw))
	h, err := message.ReadHeader(br, message.Limits{})
	if err != nil {
		g.t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(br); err != nil {
		g.t.Fatal(err)
	}
	return &msg{g: g, h: h, body: b.Bytes()}
}

// add prepends a field; value may hold "\n\t" folds.
func (m *msg) add(name, value string) *msg {
	f, err := message.NewField(name, " "+strings.ReplaceAll(value, "\n", "\r\n"))
	if err != nil {
		m.g.t.Fatalf("field %s: %v", name, err)
	}
	m.h.Prepend(f)
	return m
}

func (m *msg) sign(domain, selector, keyName, canon string, ts time.Time) *msg {
	s := &dkim.Signer{Domain: domain, Selector: selector, Key: m.g.key(keyName), Canonicalization: canon, Timestamp: ts}
	f, err := s.Sign(m.h, bytes.NewReader(m.body))
	if err != nil {
		m.g.t.Fatal(err)
	}
	m.h.Prepend(f)
	return m
}

// seal adds an ARC set as the ADMD of domain would, with ar its
// Authentication-Results on arrival.
func (m *msg) seal(r dns.Resolver, domain, selector, keyName string, ar *authres.Header, ts time.Time) *msg {
	res, err := (&arc.Verifier{Resolver: r}).Verify(context.Background(), m.h, bytes.NewReader(m.body))
	if err != nil {
		m.g.t.Fatal(err)
	}
	s := &arc.Sealer{Domain: domain, Selector: selector, Key: m.g.key(keyName), Clock: func() time.Time { return ts }}
	set, err := s.Seal(context.Background(), m.h, bytes.NewReader(m.body), ar, res)
	if err != nil {
		m.g.t.Fatal(err)
	}
	m.h.Prepend(set.Fields()...)
	return m
}

func (m *msg) bytes() []byte { return append(m.h.Bytes(), m.body...) }

func at(hh, mm, ss int) time.Time { return time.Date(2026, 5, 4, hh, mm, ss, 0, time.UTC) }

func stamp(t time.Time) string { return t.Format("Mon, 2 Jan 2006 15:04:05 -0700") }

// received writes a Received field value the way Postfix does.
func received(fromHelo, rdns, ip, by, with, id, rcpt string, t time.Time) string {
	return fmt.Sprintf("from %s (%s [%s])\n\tby %s with %s id %s\n\tfor <%s>; %s", fromHelo, rdns, ip, by, with, id, rcpt, stamp(t))
}

// buildSpoof: an attacker sends as ceo@bank.example from its own server,
// with its own envelope domain (SPF passes for attacker.example) and no
// signature; bank.example publishes p=reject.
func buildSpoof(g *gen) ([]byte, string) {
	z := newZone().
		txt("bank.example", "v=spf1 ip4:192.0.2.0/26 -all").
		txt("_dmarc.bank.example", "v=DMARC1; p=reject; rua=mailto:dmarc@bank.example").
		txt("attacker.example", "v=spf1 ip4:203.0.113.64/28 -all").
		a("mail.attacker.example", "203.0.113.66")
	m := g.message(`
From: "Bank Example CEO" <ceo@bank.example>
To: bob@receiver.example
Subject: Urgent wire transfer
Date: Mon, 4 May 2026 08:14:55 +0000
Message-ID: <20260504081455.77@attacker.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
`, "Bob,\n\nPlease wire 48,000 EUR to the account below today. Keep this confidential.\n\nCEO\n")
	m.add("Received", received("mail.attacker.example", "mail.attacker.example", "203.0.113.66", receiverID, "ESMTP", "4QaB2x", "bob@receiver.example", at(8, 15, 2)))
	m.add("Authentication-Results", receiverID+";\n\tspf=pass smtp.mailfrom=billing@attacker.example;\n\tdkim=none;\n\tdmarc=fail (p=reject) header.from=bank.example")
	m.add("Return-Path", "<billing@attacker.example>")
	return m.bytes(), z.String()
}

// buildForwarded: alice@sender.example writes to an alias at
// forwarder.example, which forwards to bob@receiver.example without
// rewriting the envelope (SPF fails from its address) and pads lines with
// white space (DKIM with simple body canonicalization fails).
func buildForwarded(g *gen) ([]byte, string) {
	z := newZone().
		txt("sender.example", "v=spf1 ip4:192.0.2.16/28 -all").
		dkimKey(g, "s1", "sender.example", "sender").
		txt("_dmarc.sender.example", "v=DMARC1; p=reject; rua=mailto:dmarc@sender.example").
		txt("forwarder.example", "v=spf1 ip4:198.51.100.0/28 -all").
		a("mx.forwarder.example", "198.51.100.7")
	m := g.message(`
From: Alice <alice@sender.example>
To: friends@forwarder.example
Subject: Saturday
Date: Mon, 4 May 2026 09:00:00 +0000
Message-ID: <a1b2c3@sender.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
`, "Hi all,\nThe walk starts at 10:00 at the station.\nAlice\n")
	m.add("Received", "from [10.1.2.3] (unknown [10.1.2.3])\n\tby mail.sender.example with ESMTPSA id S1x9; "+stamp(at(9, 0, 1)))
	m.sign("sender.example", "s1", "sender", "relaxed/simple", at(9, 0, 1))
	m.add("Received", received("mail.sender.example", "mail.sender.example", "192.0.2.25", "mx.forwarder.example", "ESMTPS", "F7k2", "friends@forwarder.example", at(9, 0, 3)))
	m.add("Authentication-Results", "mx.forwarder.example;\n\tspf=pass smtp.mailfrom=alice@sender.example;\n\tdkim=pass header.d=sender.example header.s=s1;\n\tdmarc=pass (p=reject) header.from=sender.example")
	// The forwarder re-formats the body: white space is added.
	m.body = []byte(strings.ReplaceAll(string(m.body), "\r\n", " \r\n"))
	m.body = []byte(strings.Replace(string(m.body), "at the station", "at  the station", 1))
	m.add("Authentication-Results", receiverID+";\n\tspf=fail smtp.mailfrom=alice@sender.example;\n\tdkim=fail (body hash did not verify) header.d=sender.example header.s=s1;\n\tdmarc=fail (p=reject) header.from=sender.example")
	m.add("Received", received("mx.forwarder.example", "mx.forwarder.example", "198.51.100.7", receiverID, "ESMTPS", "R9q1", "bob@receiver.example", at(9, 0, 6)))
	m.add("Return-Path", "<alice@sender.example>")
	return m.bytes(), z.String()
}

const listFooter = "_______________________________________________\ndev mailing list -- dev@lists.example\nTo unsubscribe send an email to dev-leave@lists.example\n"

// buildMailingList: carol@author.example posts to dev@lists.example; the
// list adds its fields and a footer, re-signs with its own d= and sends
// from its own envelope.
func buildMailingList(g *gen) ([]byte, string) {
	z := newZone().
		txt("author.example", "v=spf1 ip4:192.0.2.32/28 ~all").
		dkimKey(g, "k1", "author.example", "author").
		txt("_dmarc.author.example", "v=DMARC1; p=reject; rua=mailto:dmarc-rua@author.example").
		txt("lists.example", "v=spf1 ip4:198.51.100.16/28 -all").
		dkimKey(g, "list", "lists.example", "lists").
		a("mail.lists.example", "198.51.100.20")
	m := g.message(`
From: Carol <carol@author.example>
To: dev@lists.example
Subject: Release 2.4 planning
Date: Mon, 4 May 2026 10:20:00 +0000
Message-ID: <plan-24@author.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
`, "Hello list,\nthe 2.4 branch will be cut on Friday.\nCarol\n")
	m.sign("author.example", "k1", "author", "relaxed/relaxed", at(10, 20, 1))
	m.add("Received", received("mail.author.example", "mail.author.example", "192.0.2.40", "mail.lists.example", "ESMTPS", "L3m4", "dev@lists.example", at(10, 20, 3)))
	m.body = append(m.body, []byte(strings.ReplaceAll(listFooter, "\n", "\r\n"))...)
	m.add("List-Id", "Development <dev.lists.example>")
	m.add("List-Post", "<mailto:dev@lists.example>")
	m.add("List-Unsubscribe", "<mailto:dev-leave@lists.example>")
	m.add("Precedence", "list")
	m.sign("lists.example", "list", "lists", "relaxed/relaxed", at(10, 20, 4))
	m.add("Received", received("mail.lists.example", "mail.lists.example", "198.51.100.20", receiverID, "ESMTPS", "R4t5", "bob@receiver.example", at(10, 20, 6)))
	m.add("Authentication-Results", receiverID+";\n\tspf=pass smtp.mailfrom=dev-bounces@lists.example;\n\tdkim=fail (body hash did not verify) header.d=author.example header.s=k1;\n\tdkim=pass header.d=lists.example header.s=list;\n\tdmarc=fail (p=reject) header.from=author.example")
	m.add("Return-Path", "<dev-bounces@lists.example>")
	return m.bytes(), z.String()
}

// buildARC: the same post through groups.example, which authenticates it
// on arrival (DMARC pass), adds a footer and ARC-seals it; the receiver
// trusts groups.example as a sealer.
func buildARC(g *gen) ([]byte, string) {
	zt := newZone().
		txt("author.example", "v=spf1 ip4:192.0.2.32/28 ~all").
		dkimKey(g, "k1", "author.example", "author").
		txt("_dmarc.author.example", "v=DMARC1; p=reject; rua=mailto:dmarc-rua@author.example").
		txt("groups.example", "v=spf1 ip4:198.51.100.32/28 -all").
		dkimKey(g, "arc", "groups.example", "groups").
		a("mx.groups.example", "198.51.100.40")
	z, err := dns.LoadZone(strings.NewReader(zt.String()), "")
	if err != nil {
		g.t.Fatal(err)
	}
	m := g.message(`
From: Carol <carol@author.example>
To: team@groups.example
Subject: Offsite agenda
Date: Mon, 4 May 2026 11:00:00 +0000
Message-ID: <agenda-7@author.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
`, "Team,\nthe agenda for Thursday is attached to the wiki page.\nCarol\n")
	m.sign("author.example", "k1", "author", "relaxed/relaxed", at(11, 0, 1))
	m.add("Received", received("mail.author.example", "mail.author.example", "192.0.2.40", "mx.groups.example", "ESMTPS", "G8h1", "team@groups.example", at(11, 0, 2)))
	m.body = append(m.body, []byte("--\r\nYou received this message because you are subscribed to team@groups.example.\r\n")...)
	m.add("List-Id", "<team.groups.example>")
	m.add("List-Unsubscribe", "<mailto:team+unsubscribe@groups.example>")
	ar := &authres.Header{ServID: "mx.groups.example", Results: []authres.Result{
		{Method: "spf", Value: "pass", Props: []authres.Prop{{Type: "smtp", Name: "mailfrom", Value: "carol@author.example"}}},
		{Method: "dkim", Value: "pass", Props: []authres.Prop{{Type: "header", Name: "d", Value: "author.example"}, {Type: "header", Name: "s", Value: "k1"}}},
		{Method: "dmarc", Value: "pass", Props: []authres.Prop{{Type: "header", Name: "from", Value: "author.example"}}},
	}}
	m.seal(z, "groups.example", "arc", "groups", ar, at(11, 0, 3))
	m.add("Received", received("mx.groups.example", "mx.groups.example", "198.51.100.40", receiverID, "ESMTPS", "R2w7", "bob@receiver.example", at(11, 0, 5)))
	m.add("Authentication-Results", receiverID+";\n\tarc=pass header.oldest-pass=0;\n\tspf=pass smtp.mailfrom=team+bncBDE@groups.example;\n\tdkim=fail (body hash did not verify) header.d=author.example header.s=k1;\n\tdmarc=fail (p=reject) header.from=author.example")
	m.add("Return-Path", "<team+bncBDE@groups.example>")
	return m.bytes(), zt.String()
}

// buildThirdParty: partner.example sends order mail through the service
// mailer.example, which signs with its own d= and uses its own bounce
// domain; partner.example's SPF includes the service.
func buildThirdParty(g *gen) ([]byte, string) {
	z := newZone().
		txt("partner.example", "v=spf1 include:_spf.mailer.example -all").
		txt("_dmarc.partner.example", "v=DMARC1; p=quarantine; rua=mailto:dmarc@partner.example").
		txt("mail.mailer.example", "v=spf1 include:_spf.mailer.example -all").
		txt("_spf.mailer.example", "v=spf1 ip4:198.51.100.48/28 -all").
		dkimKey(g, "esp", "mailer.example", "mailer").
		a("out3.mailer.example", "198.51.100.50")
	m := g.message(`
From: Partner Orders <orders@partner.example>
To: purchasing@receiver.example
Subject: Purchase order PO-88121
Date: Mon, 4 May 2026 12:30:00 +0000
Message-ID: <po-88121.1@mailer.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
`, "Please find purchase order PO-88121 for 40 units below.\nPartner Example purchasing\n")
	m.sign("mailer.example", "esp", "mailer", "relaxed/relaxed", at(12, 30, 0))
	m.add("Received", received("out3.mailer.example", "out3.mailer.example", "198.51.100.50", receiverID, "ESMTPS", "R7p0", "purchasing@receiver.example", at(12, 30, 2)))
	m.add("Authentication-Results", receiverID+";\n\tspf=pass smtp.mailfrom=bounces+po88121@mail.mailer.example;\n\tdkim=pass header.d=mailer.example header.s=esp;\n\tdmarc=fail (p=quarantine) header.from=partner.example")
	m.add("Return-Path", "<bounces+po88121@mail.mailer.example>")
	return m.bytes(), z.String()
}

// buildDNSChanged: a message that passed at receipt; since then the
// signing key was withdrawn (rotated to a new selector) and the DMARC
// policy was raised.
func buildDNSChanged(g *gen) ([]byte, string) {
	z := newZone().
		txt("shop.example", "v=spf1 ip4:192.0.2.48/28 -all").
		dkimKey(g, "2026a", "shop.example", "shop-new").
		txt("_dmarc.shop.example", "v=DMARC1; p=reject; rua=mailto:dmarc@shop.example").
		a("mail.shop.example", "192.0.2.50")
	m := g.message(`
From: Shop Example <news@shop.example>
To: bob@receiver.example
Subject: Your order has shipped
Date: Mon, 4 May 2026 13:00:00 +0000
Message-ID: <ship-5521@shop.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
`, "Your order 5521 left our warehouse today.\n")
	m.sign("shop.example", "2025a", "shop-old", "relaxed/relaxed", at(13, 0, 0))
	m.add("Received", received("mail.shop.example", "mail.shop.example", "192.0.2.50", receiverID, "ESMTPS", "R1s3", "bob@receiver.example", at(13, 0, 2)))
	m.add("Authentication-Results", receiverID+";\n\tspf=pass smtp.mailfrom=bounce@shop.example;\n\tdkim=pass header.d=shop.example header.s=2025a;\n\tdmarc=pass (p=quarantine) header.from=shop.example")
	m.add("Return-Path", "<bounce@shop.example>")
	return m.bytes(), z.String()
}

// buildSpoofSigned: the attacker signs its spoof of ceo@bank.example with
// its own domain's key; bank.example publishes p=reject and nothing in its
// DNS mentions attacker.example.
func buildSpoofSigned(g *gen) ([]byte, string) {
	z := newZone().
		txt("bank.example", "v=spf1 ip4:192.0.2.0/26 -all").
		txt("_dmarc.bank.example", "v=DMARC1; p=reject; rua=mailto:dmarc@bank.example").
		txt("attacker.example", "v=spf1 ip4:203.0.113.64/28 -all").
		dkimKey(g, "x", "attacker.example", "attacker")
	m := g.message(`
From: "Bank Example Security" <security@bank.example>
To: bob@receiver.example
Subject: Verify your account
Date: Mon, 4 May 2026 14:00:00 +0000
Message-ID: <verify-1@attacker.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
`, "Your account will be closed unless you sign in within 24 hours.\n")
	m.sign("attacker.example", "x", "attacker", "relaxed/relaxed", at(14, 0, 0))
	m.add("Received", received("mail.attacker.example", "mail.attacker.example", "203.0.113.70", receiverID, "ESMTP", "R0z8", "bob@receiver.example", at(14, 0, 1)))
	m.add("Authentication-Results", receiverID+";\n\tspf=pass smtp.mailfrom=bounce@attacker.example;\n\tdkim=pass header.d=attacker.example header.s=x;\n\tdmarc=fail (p=reject) header.from=bank.example")
	m.add("Return-Path", "<bounce@attacker.example>")
	return m.bytes(), z.String()
}

// buildSRSForwarded: alice@sender.example writes to an alias at
// relay.example, which forwards without touching the message and rewrites
// the envelope with SRS: SPF passes for relay.example (not aligned), the
// DKIM signature survives, and DMARC passes on it.
func buildSRSForwarded(g *gen) ([]byte, string) {
	z := newZone().
		txt("sender.example", "v=spf1 ip4:192.0.2.16/28 -all").
		dkimKey(g, "s1", "sender.example", "sender").
		txt("_dmarc.sender.example", "v=DMARC1; p=reject; rua=mailto:dmarc@sender.example").
		txt("relay.example", "v=spf1 ip4:198.51.100.96/28 -all")
	m := g.message(`
From: Alice <alice@sender.example>
To: alice.smith@relay.example
Subject: Minutes of the board meeting
Date: Mon, 4 May 2026 15:00:00 +0000
Message-ID: <minutes-12@sender.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
`, "The minutes are attached to the shared folder.\nAlice\n")
	m.sign("sender.example", "s1", "sender", "relaxed/relaxed", at(15, 0, 0))
	m.add("Received", received("mail.sender.example", "mail.sender.example", "192.0.2.25", "mx.relay.example", "ESMTPS", "Y6u1", "alice.smith@relay.example", at(15, 0, 2)))
	m.add("Received", received("mx.relay.example", "mx.relay.example", "198.51.100.99", receiverID, "ESMTPS", "R5e2", "bob@receiver.example", at(15, 0, 4)))
	m.add("Authentication-Results", receiverID+";\n\tspf=pass smtp.mailfrom=SRS0=x7Gh=MQ=sender.example=alice@relay.example;\n\tdkim=pass header.d=sender.example header.s=s1;\n\tdmarc=pass (p=reject) header.from=sender.example")
	m.add("Return-Path", "<SRS0=x7Gh=MQ=sender.example=alice@relay.example>")
	return m.bytes(), z.String()
}
