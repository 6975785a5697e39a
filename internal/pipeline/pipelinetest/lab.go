// Package pipelinetest implements the fixtures of the gateway's tests and
// benchmarks: a lab DNS zone with SPF (RFC 7208), DKIM (RFC 6376) and DMARC
// (RFC 9989) records for a few domains, messages signed with a key made at
// run time, and a downstream SMTP/LMTP server (RFC 5321, RFC 2033) whose
// faults the test controls.
package pipelinetest

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"portcullis/internal/dkim"
	"portcullis/internal/dns"
	"portcullis/internal/message"
)

// The lab's domains. Each authorizes 127.0.0.0/8 and 192.0.2.0/24 in SPF,
// so that tests connecting from the loopback pass SPF for them.
const (
	// GoodDomain publishes p=reject and signs with Selector: its signed
	// mail passes DMARC.
	GoodDomain = "good.example"
	// QuarantineDomain publishes p=quarantine.
	QuarantineDomain = "quar.example"
	// ProtectedDomain is meant to be listed in the policy's own_domain
	// rule; it publishes p=none.
	ProtectedDomain = "corp.example"
	// AttackerDomain has an SPF record that passes from anywhere, and no
	// DMARC record.
	AttackerDomain = "attacker.example"
	// SlowDomain's DMARC record never answers (a DNS timeout).
	SlowDomain = "slow.example"
	// RecipientDomain is where the lab's mail goes.
	RecipientDomain = "inbound.example"
	// Selector is the DKIM selector of GoodDomain and QuarantineDomain.
	Selector = "lab"
)

var (
	keyOnce sync.Once
	labKey  *rsa.PrivateKey
	keyErr  error
)

// Key returns the lab's RSA-2048 DKIM key, made once per process.
func Key(tb testing.TB) *rsa.PrivateKey {
	tb.Helper()
	keyOnce.Do(func() { labKey, keyErr = rsa.GenerateKey(rand.Reader, 2048) })
	if keyErr != nil {
		tb.Fatal(keyErr)
	}
	return labKey
}

// Lab is a DNS zone and a signing key.
type Lab struct {
	Zone *dns.Zone
	Key  crypto.Signer
}

// NewLab returns the lab zone with the key's record published.
func NewLab(tb testing.TB) *Lab {
	tb.Helper()
	k := Key(tb)
	rec, err := dkim.KeyRecord(k.Public())
	if err != nil {
		tb.Fatal(err)
	}
	z := dns.NewZone()
	txt := func(name string, s ...string) { z.Add(name, dns.Record{Type: dns.TypeTXT, TXT: s, TTL: 3600}) }
	a := func(name, ip string) {
		z.Add(name, dns.Record{Type: dns.TypeA, IP: netip.MustParseAddr(ip), TTL: 3600})
	}
	spf := "v=spf1 ip4:127.0.0.0/8 ip4:192.0.2.0/24 -all"
	for _, d := range []string{GoodDomain, QuarantineDomain, ProtectedDomain, SlowDomain} {
		txt(d, spf)
		a(d, "192.0.2.1")
	}
	txt("_dmarc."+GoodDomain, "v=DMARC1; p=reject")
	txt("_dmarc."+QuarantineDomain, "v=DMARC1; p=quarantine")
	txt("_dmarc."+ProtectedDomain, "v=DMARC1; p=none")
	z.Add("_dmarc."+SlowDomain, dns.Record{Type: dns.TypeTXT, TXT: []string{"v=DMARC1; p=reject"}, TTL: 3600})
	z.SetFault("_dmarc."+SlowDomain, 0, dns.FaultTimeout)
	for _, d := range []string{GoodDomain, QuarantineDomain} {
		txt(Selector+"._domainkey."+d, splitTXT(rec)...)
	}
	txt(AttackerDomain, "v=spf1 +all")
	a(AttackerDomain, "203.0.113.5")
	txt(RecipientDomain, "v=spf1 -all")
	// iprev for the loopback and the documentation senders.
	z.Add("1.0.0.127.in-addr.arpa", dns.Record{Type: dns.TypePTR, Host: "localhost.lab.example", TTL: 3600})
	a("localhost.lab.example", "127.0.0.1")
	z.Add("10.2.0.192.in-addr.arpa", dns.Record{Type: dns.TypePTR, Host: "mail." + GoodDomain, TTL: 3600})
	a("mail."+GoodDomain, "192.0.2.10")
	return &Lab{Zone: z, Key: k}
}

// splitTXT cuts a record into character-strings of at most 255 octets
// (RFC 1035 §3.3.14).
func splitTXT(s string) []string {
	var out []string
	for len(s) > 255 {
		out = append(out, s[:255])
		s = s[255:]
	}
	return append(out, s)
}

// Msg describes a lab message.
type Msg struct {
	From      string // header From address
	To        string // header To address; default rcpt@RecipientDomain
	Subject   string
	MessageID string // without <>; default a random id at the From domain
	// Extra are raw header fields (CRLF-terminated, or not) put at the
	// top before signing, e.g. a forged Authentication-Results.
	Extra []string
	// BodySize is the approximate size of the body in octets (default
	// 200).
	BodySize int
	// Sign signs with d=Sign, s=Selector ("" for no signature).
	Sign string
	// Date is the Date field (default now).
	Date time.Time
}

// Build returns the message with CRLF line endings.
func (l *Lab) Build(tb testing.TB, m Msg) []byte {
	tb.Helper()
	b, err := l.build(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func (l *Lab) build(m Msg) ([]byte, error) {
	if m.To == "" {
		m.To = "rcpt@" + RecipientDomain
	}
	if m.MessageID == "" {
		dom := m.From[strings.LastIndexByte(m.From, '@')+1:]
		m.MessageID = RandomID() + "@" + dom
	}
	if m.Date.IsZero() {
		m.Date = time.Now()
	}
	if m.BodySize == 0 {
		m.BodySize = 200
	}
	var hb bytes.Buffer
	for _, f := range m.Extra {
		hb.WriteString(strings.TrimRight(f, "\r\n") + "\r\n")
	}
	fmt.Fprintf(&hb, "From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
		m.From, m.To, m.Subject, m.Date.Format(time.RFC1123Z), m.MessageID)
	var body bytes.Buffer
	line := "The quick brown fox jumps over the lazy dog, and the lazy dog lets it.\r\n"
	for body.Len() < m.BodySize {
		body.WriteString(line)
	}
	raw := append(hb.Bytes(), body.Bytes()...)
	if m.Sign == "" {
		return raw, nil
	}
	h, err := message.ReadHeader(bufio.NewReader(bytes.NewReader(raw)), message.Limits{})
	if err != nil {
		return nil, err
	}
	s := &dkim.Signer{Domain: m.Sign, Selector: Selector, Key: l.Key}
	f, err := s.Sign(h, bytes.NewReader(body.Bytes()))
	if err != nil {
		return nil, err
	}
	h.Prepend(f)
	return append(h.Bytes(), body.Bytes()...), nil
}

// RandomID returns 16 random hex digits.
func RandomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x", b)
}

// MessageID returns the Message-ID of a message, without <>, or "".
func MessageID(msg []byte) string {
	for len(msg) > 0 {
		i := bytes.IndexByte(msg, '\n')
		if i < 0 {
			i = len(msg) - 1
		}
		line := msg[:i+1]
		msg = msg[i+1:]
		t := bytes.TrimRight(line, "\r\n")
		if len(t) == 0 {
			return ""
		}
		if len(t) > 11 && bytes.EqualFold(t[:11], []byte("message-id:")) {
			v := strings.TrimSpace(string(t[11:]))
			return strings.Trim(v, "<>")
		}
	}
	return ""
}
