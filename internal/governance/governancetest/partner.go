// Package governancetest implements the fixture of the case governance
// exists for, shared by the tests of governance, quarantine and the
// gateway: a partner domain that publishes DMARC p=quarantine (RFC 9989)
// but has no SPF record (RFC 7208) and whose mail is DKIM-signed (RFC 6376)
// by its mail provider's domain, which does not align with the partner's
// From domain. Its real mail fails DMARC and is quarantined; an exception
// bound to the provider's DKIM d= lets it through, and nothing else that
// claims the partner's From domain.
package governancetest

import (
	"net/netip"
	"testing"

	"portcullis/internal/dkim"
	"portcullis/internal/dns"
	"portcullis/internal/pipeline/pipelinetest"
)

// The partner case's names.
const (
	// PartnerDomain publishes p=quarantine and no SPF record.
	PartnerDomain = "partner.example"
	// ProviderDomain is the partner's mail provider: it signs the
	// partner's mail with d=ProviderDomain, s=pipelinetest.Selector.
	ProviderDomain = "mailprovider.example"
	// ProviderIP is the provider's outbound address (it has a PTR and
	// a forward record).
	ProviderIP = "198.51.100.25"
	// SpooferIP is somewhere else.
	SpooferIP = "203.0.113.66"
	// Recipient is the partner's contact at our organisation.
	Recipient = "orders@" + pipelinetest.RecipientDomain
)

// NewLab returns the pipelinetest lab zone with the partner and its
// provider added: _dmarc.partner.example "v=DMARC1; p=quarantine", no SPF
// for partner.example, the lab key published as
// lab._domainkey.mailprovider.example, and an SPF record for the provider
// itself.
func NewLab(tb testing.TB) *pipelinetest.Lab {
	tb.Helper()
	lab := pipelinetest.NewLab(tb)
	AddPartner(tb, lab)
	return lab
}

// AddPartner adds the partner and its provider to a lab zone (see
// NewLab).
func AddPartner(tb testing.TB, lab *pipelinetest.Lab) {
	tb.Helper()
	rec, err := dkim.KeyRecord(lab.Key.Public())
	if err != nil {
		tb.Fatal(err)
	}
	z := lab.Zone
	txt := func(name string, s ...string) { z.Add(name, dns.Record{Type: dns.TypeTXT, TXT: s, TTL: 3600}) }
	txt("_dmarc."+PartnerDomain, "v=DMARC1; p=quarantine")
	z.Add(PartnerDomain, dns.Record{Type: dns.TypeMX, Pref: 10, Host: "mx." + ProviderDomain, TTL: 3600})
	var parts []string
	for len(rec) > 255 {
		parts = append(parts, rec[:255])
		rec = rec[255:]
	}
	txt(pipelinetest.Selector+"._domainkey."+ProviderDomain, append(parts, rec)...)
	txt(ProviderDomain, "v=spf1 ip4:198.51.100.0/24 -all")
	z.Add("25.100.51.198.in-addr.arpa", dns.Record{Type: dns.TypePTR, Host: "out1." + ProviderDomain, TTL: 3600})
	z.Add("out1."+ProviderDomain, dns.Record{Type: dns.TypeA, IP: netip.MustParseAddr(ProviderIP), TTL: 3600})
}

// PartnerMessage returns a purchase order from the partner, signed by the
// provider (the partner's real mail).
func PartnerMessage(tb testing.TB, lab *pipelinetest.Lab, subject string) []byte {
	tb.Helper()
	return lab.Build(tb, pipelinetest.Msg{From: "orders@" + PartnerDomain, To: Recipient, Subject: subject, Sign: ProviderDomain})
}

// SpoofMessage returns a message claiming the partner's From domain,
// without the provider's signature.
func SpoofMessage(tb testing.TB, lab *pipelinetest.Lab, subject string) []byte {
	tb.Helper()
	return lab.Build(tb, pipelinetest.Msg{From: "billing@" + PartnerDomain, To: Recipient, Subject: subject})
}
