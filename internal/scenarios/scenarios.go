// Package scenarios holds the table of inbound-mail scenarios that every
// inbound path of Portcullis must decide alike: the SMTP gateway (package
// smtpgw) and the milter inside Postfix (package milter). Each scenario is
// data: a DNS zone shared by all (SPF RFC 7208, DKIM RFC 6376, DMARC RFC
// 9989 records, keys made at run time), an envelope, a message built and
// signed (DKIM) or ARC-sealed (RFC 8617) for it, and the disposition both
// paths must reach: the action, the policy rule, the SMTP reply class
// (RFC 5321 §4.2, enhanced status code RFC 3463 / RFC 7372) and, for a
// delivered message, what our Authentication-Results (RFC 8601) says.
//
// The policy every path runs is Policy(): own-domain protection for
// ProtectedDomain and ListDomain as a trusted ARC sealer.
package scenarios

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"portcullis/internal/arc"
	"portcullis/internal/authres"
	"portcullis/internal/dkim"
	"portcullis/internal/dns"
	"portcullis/internal/evidence"
	"portcullis/internal/message"
	"portcullis/internal/policy"
)

// The lab's domains.
const (
	// ProtectedDomain is the organisation's own domain (own-domain
	// protection); it publishes p=none, which own-domain protection
	// overrides.
	ProtectedDomain = "corp.example"
	// RejectDomain publishes p=reject and authorises only 192.0.2.0/24.
	RejectDomain = "bank.example"
	// QuarantineDomain publishes p=quarantine, authorises 192.0.2.0/24.
	QuarantineDomain = "shop.example"
	// NoneDomain publishes p=none, authorises 192.0.2.0/24.
	NoneDomain = "monitor.example"
	// GoodDomain publishes p=reject, authorises the loopback and signs
	// with Selector: its mail sent from the loopback passes DMARC.
	GoodDomain = "good.example"
	// NewsDomain publishes p=reject and signs; its newsletter reaches us
	// through ListDomain, which changes the body (DKIM breaks) and seals.
	NewsDomain = "news.example"
	// ListDomain is a mailing list that authorises the loopback in SPF and
	// seals ARC sets with Selector; Policy() trusts it.
	ListDomain = "list.example"
	// SlowDomain's DMARC record never answers (a DNS timeout).
	SlowDomain = "slow.example"
	// AttackerDomain authorises everyone in SPF ("+all") and has no DMARC
	// record: the envelope domain of the spoofs.
	AttackerDomain = "attacker.example"
	// RecipientDomain is the domain the lab's mail is for.
	RecipientDomain = "inbound.example"
	// Selector is the DKIM and ARC selector of the signing domains.
	Selector = "lab"
	// HELO is the name the lab's SMTP client gives.
	HELO = "client.lab.example"
)

var (
	keyOnce sync.Once
	keys    map[string]*rsa.PrivateKey
	keyErr  error
)

// signingDomains hold a DKIM/ARC key each.
var signingDomains = []string{GoodDomain, NewsDomain, ListDomain}

// Lab is the DNS zone and the keys of the scenarios.
type Lab struct {
	Zone *dns.Zone
	Keys map[string]*rsa.PrivateKey
	// Now is the time used in Date fields and signatures.
	Now time.Time
}

// NewLab returns the lab: a fresh zone (faults included) with the keys,
// which are made once per process (RSA-2048, RFC 8301 §3.2).
func NewLab(tb testing.TB) *Lab {
	tb.Helper()
	keyOnce.Do(func() {
		keys = map[string]*rsa.PrivateKey{}
		for _, d := range signingDomains {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				keyErr = err
				return
			}
			keys[d] = k
		}
	})
	if keyErr != nil {
		tb.Fatal(keyErr)
	}
	z := dns.NewZone()
	txt := func(name string, s ...string) {
		z.Add(name, dns.Record{Type: dns.TypeTXT, TXT: s, TTL: 3600})
	}
	a := func(name, ip string) {
		z.Add(name, dns.Record{Type: dns.TypeA, IP: netip.MustParseAddr(ip), TTL: 3600})
	}
	const loopback = "v=spf1 ip4:127.0.0.0/8 ip4:192.0.2.0/24 -all"
	const remote = "v=spf1 ip4:192.0.2.0/24 -all"
	txt(ProtectedDomain, remote)
	txt("_dmarc."+ProtectedDomain, "v=DMARC1; p=none")
	txt(RejectDomain, remote)
	txt("_dmarc."+RejectDomain, "v=DMARC1; p=reject")
	txt(QuarantineDomain, remote)
	txt("_dmarc."+QuarantineDomain, "v=DMARC1; p=quarantine")
	txt(NoneDomain, remote)
	txt("_dmarc."+NoneDomain, "v=DMARC1; p=none")
	txt(GoodDomain, loopback)
	txt("_dmarc."+GoodDomain, "v=DMARC1; p=reject")
	txt(NewsDomain, remote)
	txt("_dmarc."+NewsDomain, "v=DMARC1; p=reject")
	txt(ListDomain, loopback)
	txt("_dmarc."+ListDomain, "v=DMARC1; p=none")
	txt(SlowDomain, loopback)
	txt("_dmarc."+SlowDomain, "v=DMARC1; p=reject")
	z.SetFault("_dmarc."+SlowDomain, 0, dns.FaultTimeout)
	txt(AttackerDomain, "v=spf1 +all")
	txt(RecipientDomain, "v=spf1 -all")
	for _, d := range signingDomains {
		rec, err := dkim.KeyRecord(keys[d].Public())
		if err != nil {
			tb.Fatal(err)
		}
		txt(dkim.KeyName(Selector, d), splitTXT(rec)...)
	}
	// iprev (RFC 8601 §3) of the loopback.
	z.Add("1.0.0.127.in-addr.arpa", dns.Record{Type: dns.TypePTR, Host: "localhost.lab.example", TTL: 3600})
	a("localhost.lab.example", "127.0.0.1")
	return &Lab{Zone: z, Keys: keys, Now: time.Now()}
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

// Policy is the policy every path runs in the scenarios: the defaults, own-
// domain protection for ProtectedDomain, and ListDomain trusted as an ARC
// sealer.
func Policy() *policy.Set {
	return &policy.Set{Default: policy.Policy{
		OwnDomain: policy.OwnDomainRule{Domains: []string{ProtectedDomain}},
		TrustedARC: policy.ARCRule{Sealers: []policy.TrustedSealer{{
			Domain: ListDomain, Note: "the lab's mailing list; seals what it saw before adding its footer",
		}}},
	}}
}

// Expect is the disposition a scenario must get on every path.
type Expect struct {
	// Action is the policy's action.
	Action evidence.Action
	// Rule is the deciding rule's id.
	Rule string
	// Code is the SMTP reply code to the end of data: 250 (deliver,
	// quarantine), 550 (reject) or 451 (defer).
	Code int
	// Enhanced is a prefix of the enhanced status code, e.g. "5.7." (RFC
	// 7372) for a policy rejection.
	Enhanced string
	// AuthResults are substrings our Authentication-Results must contain
	// on a delivered message, e.g. "dmarc=pass".
	AuthResults []string
}

// Scenario is one row of the table.
type Scenario struct {
	// Name is a short identifier (test names, message ids).
	Name string
	// Describe says in words what happens.
	Describe string
	// MailFrom is the envelope sender; Rcpt the one recipient.
	MailFrom, Rcpt string
	// Build makes the message; msgID (without angle brackets) identifies
	// it downstream.
	Build func(tb testing.TB, lab *Lab, msgID string) []byte
	Want  Expect
}

// All returns the scenarios.
func All() []Scenario {
	rcpt := "alice@" + RecipientDomain
	return []Scenario{
		{
			Name:     "own-domain-spoof",
			Describe: "an outsider writes as the CEO of the protected domain (which publishes only p=none)",
			MailFrom: "ceo@" + AttackerDomain, Rcpt: rcpt,
			Build: func(tb testing.TB, lab *Lab, id string) []byte {
				return lab.Plain(tb, "ceo@"+ProtectedDomain, rcpt, "Urgent wire transfer", id)
			},
			Want: Expect{Action: evidence.Reject, Rule: policy.RuleOwnDomain, Code: 550, Enhanced: "5.7."},
		},
		{
			Name:     "dmarc-reject",
			Describe: "spoof of a domain with p=reject: SPF unaligned, no signature",
			MailFrom: "billing@" + AttackerDomain, Rcpt: rcpt,
			Build: func(tb testing.TB, lab *Lab, id string) []byte {
				return lab.Plain(tb, "security@"+RejectDomain, rcpt, "Verify your account", id)
			},
			Want: Expect{Action: evidence.Reject, Rule: policy.RuleDMARCReject, Code: 550, Enhanced: "5.7."},
		},
		{
			Name:     "dmarc-quarantine",
			Describe: "spoof of a domain with p=quarantine",
			MailFrom: "orders@" + AttackerDomain, Rcpt: rcpt,
			Build: func(tb testing.TB, lab *Lab, id string) []byte {
				return lab.Plain(tb, "orders@"+QuarantineDomain, rcpt, "Your order", id)
			},
			Want: Expect{Action: evidence.Quarantine, Rule: policy.RuleDMARCQuarantine, Code: 250, Enhanced: "2."},
		},
		{
			Name:     "dmarc-none",
			Describe: "DMARC fails for a domain with p=none: delivered, tagged",
			MailFrom: "news@" + AttackerDomain, Rcpt: rcpt,
			Build: func(tb testing.TB, lab *Lab, id string) []byte {
				return lab.Plain(tb, "alerts@"+NoneDomain, rcpt, "Monitoring alert", id)
			},
			Want: Expect{Action: evidence.Deliver, Rule: policy.RuleDMARCNone, Code: 250, Enhanced: "2.",
				AuthResults: []string{"dmarc=fail", "header.from=" + NoneDomain}},
		},
		{
			Name:     "aligned-pass",
			Describe: "signed by the author's domain, sent from its authorised address: DMARC pass",
			MailFrom: "bounces@" + GoodDomain, Rcpt: rcpt,
			Build: func(tb testing.TB, lab *Lab, id string) []byte {
				return lab.Signed(tb, GoodDomain, lab.Plain(tb, "sales@"+GoodDomain, rcpt, "Quarterly figures", id))
			},
			Want: Expect{Action: evidence.Deliver, Rule: policy.RuleDMARCPass, Code: 250, Enhanced: "2.",
				AuthResults: []string{"dkim=pass", "header.d=" + GoodDomain, "spf=pass", "dmarc=pass"}},
		},
		{
			Name: "forwarded-trusted-arc",
			Describe: "a p=reject newsletter forwarded by a mailing list that adds a footer (DKIM breaks, SPF is " +
				"the list's) and seals what it saw: the trusted sealer's dmarc=pass delivers it",
			MailFrom: "list-bounces@" + ListDomain, Rcpt: rcpt,
			Build: func(tb testing.TB, lab *Lab, id string) []byte {
				orig := lab.Signed(tb, NewsDomain, lab.Plain(tb, "editor@"+NewsDomain, "members@"+ListDomain, "Issue 42", id))
				return lab.Forward(tb, orig)
			},
			Want: Expect{Action: evidence.Deliver, Rule: policy.RuleARCSealer, Code: 250, Enhanced: "2.",
				AuthResults: []string{"arc=pass", "dmarc=fail"}},
		},
		{
			Name:     "dns-timeout",
			Describe: "the author domain's DMARC record times out: temperror, the sender retries",
			MailFrom: "bounces@" + SlowDomain, Rcpt: rcpt,
			Build: func(tb testing.TB, lab *Lab, id string) []byte {
				return lab.Plain(tb, "info@"+SlowDomain, rcpt, "Slow news", id)
			},
			Want: Expect{Action: evidence.Defer, Rule: policy.RuleDMARCTempError, Code: 451, Enhanced: "4.7."},
		},
		{
			Name:     "malformed-from",
			Describe: "a From field with two authors of different domains",
			MailFrom: "x@" + AttackerDomain, Rcpt: rcpt,
			Build: func(tb testing.TB, lab *Lab, id string) []byte {
				return lab.Message(tb, []string{
					"From: ceo@" + ProtectedDomain + ", x@" + AttackerDomain,
					"To: " + rcpt,
					"Subject: Two authors",
				}, id)
			},
			Want: Expect{Action: evidence.Reject, Rule: policy.RuleStructureSeveralDomains, Code: 550, Enhanced: "5.7."},
		},
	}
}

// Message builds a message from header lines (without line endings) plus
// Date and Message-ID, and a short body.
func (l *Lab) Message(tb testing.TB, header []string, msgID string) []byte {
	tb.Helper()
	var b bytes.Buffer
	for _, f := range header {
		b.WriteString(f)
		b.WriteString("\r\n")
	}
	b.WriteString("Date: " + l.Now.Format(time.RFC1123Z) + "\r\n")
	b.WriteString("Message-ID: <" + msgID + ">\r\n")
	b.WriteString("MIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: text/plain; charset=us-ascii\r\n")
	b.WriteString("\r\n")
	b.WriteString("Hello,\r\n\r\nthis is scenario message " + msgID + ".\r\n\r\n-- \r\nThe lab\r\n")
	return b.Bytes()
}

// Plain builds a message from from to to.
func (l *Lab) Plain(tb testing.TB, from, to, subject, msgID string) []byte {
	tb.Helper()
	return l.Message(tb, []string{"From: " + from, "To: " + to, "Subject: " + subject}, msgID)
}

// split cuts msg into its parsed header and body.
func split(tb testing.TB, msg []byte) (*message.Header, []byte) {
	tb.Helper()
	h, err := message.ReadHeader(bufio.NewReader(bytes.NewReader(msg)), message.Limits{})
	if err != nil {
		tb.Fatal(err)
	}
	return h, msg[h.Consumed:]
}

// Signed adds a DKIM signature of domain (relaxed/relaxed, RFC 6376 §5).
func (l *Lab) Signed(tb testing.TB, domain string, msg []byte) []byte {
	tb.Helper()
	h, body := split(tb, msg)
	s := &dkim.Signer{Domain: domain, Selector: Selector, Key: l.Keys[domain], Timestamp: l.Now}
	f, err := s.Sign(h, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	h.Prepend(f)
	return append(h.Bytes(), body...)
}

// Forward is what ListDomain does to a message: it checks it on arrival
// (DKIM and DMARC pass, seen from 192.0.2.25), adds its Received field, a
// List-Id and a footer (the body hash no longer matches), then seals an ARC
// set over the result whose ARC-Authentication-Results says what it saw
// (RFC 8617 §5.1).
func (l *Lab) Forward(tb testing.TB, msg []byte) []byte {
	tb.Helper()
	h, body := split(tb, msg)
	author := ""
	if f := h.Get("From"); f != nil {
		author = f.Value()
		if i := strings.LastIndexByte(author, '@'); i >= 0 {
			author = strings.TrimSpace(author[i+1:])
		}
	}
	rcv, err := message.NewField("Received", " from mail."+author+" (mail."+author+" [192.0.2.25])\r\n\tby lists."+ListDomain+
		" with ESMTPS; "+l.Now.Format(time.RFC1123Z))
	if err != nil {
		tb.Fatal(err)
	}
	lid, err := message.NewField("List-Id", " Lab members <members."+ListDomain+">")
	if err != nil {
		tb.Fatal(err)
	}
	h.Prepend(rcv, lid)
	body = append(append([]byte{}, body...), []byte("_______________________________________________\r\nmembers mailing list\r\n")...)

	ar, err := authres.Parse(fmt.Sprintf("lists.%s; dkim=pass header.d=%s header.s=%s; spf=pass smtp.mailfrom=bounces@%s; dmarc=pass header.from=%s",
		ListDomain, author, Selector, author, author))
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	chain, err := (&arc.Verifier{Resolver: l.Zone}).Verify(ctx, h, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	s := &arc.Sealer{Domain: ListDomain, Selector: Selector, Key: l.Keys[ListDomain], Clock: func() time.Time { return l.Now }}
	set, err := s.Seal(ctx, h, bytes.NewReader(body), ar, chain)
	if err != nil {
		tb.Fatal(err)
	}
	h.Prepend(set.Fields()...)
	return append(h.Bytes(), body...)
}

// MessageID returns a unique message id for scenario name on path.
func MessageID(name, path string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s.%s.%x@lab.example", name, path, b)
}
