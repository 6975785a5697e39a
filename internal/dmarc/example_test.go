package dmarc_test

import (
	"context"
	"fmt"

	"portcullis/internal/dmarc"
	"portcullis/internal/dns"
)

func ExampleEvaluate() {
	z := dns.NewZone()
	z.Add("_dmarc.example.com", dns.Record{Type: dns.TypeTXT, TTL: 300, TXT: []string{"v=DMARC1; p=reject; sp=quarantine"}})
	z.Add("news.example.com", dns.Record{Type: dns.TypeMX, TTL: 300, Pref: 10, Host: "mx.example.com"})

	from, err := dmarc.AuthorDomain([]string{" News <news@News.Example.com>"})
	if err != nil {
		panic(err)
	}
	res := dmarc.Evaluate(context.Background(), z, dmarc.Input{
		FromDomain: from,
		SPF:        dmarc.SPFResult{Result: dmarc.AuthPass, Domain: "bounces.esp.example"},
		DKIM:       []dmarc.DKIMResult{{Result: dmarc.AuthPass, Domain: "esp.example"}},
	}, nil)
	fmt.Println(res.Result, res.Policy, res.PolicySource, res.PolicyDomain, res.OrgDomain)
	// Output: fail quarantine sp example.com example.com
}

func ExampleOrganizationalDomain() {
	z := dns.NewZone()
	z.Add("_dmarc.bank.example", dns.Record{Type: dns.TypeTXT, TXT: []string{"v=DMARC1; p=reject; psd=y"}})
	org, err := dmarc.OrganizationalDomain(context.Background(), z, "mail.giant.bank.example")
	fmt.Println(org, err)
	// Output: giant.bank.example <nil>
}
