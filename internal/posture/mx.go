package posture

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"portcullis/internal/dns"
)

// MXReport is the MX area.
type MXReport struct {
	Area
	Hosts []MXHost `json:"hosts"`
	// Null reports a null MX (RFC 7505): the domain accepts no mail.
	Null bool `json:"null"`
	// NXDomain reports that the domain does not exist.
	NXDomain bool `json:"nxdomain"`
	// Implicit reports no MX record: mail goes to the domain's own
	// address records (RFC 5321 §5.1).
	Implicit bool `json:"implicit"`
}

// MXHost is one MX record.
type MXHost struct {
	Pref  uint16   `json:"pref"`
	Host  string   `json:"host"`
	Addrs []string `json:"addrs"`
	// CNAME is the alias target when the host is an alias.
	CNAME string `json:"cname,omitempty"`
	// Problem says why the host cannot receive mail.
	Problem string `json:"problem,omitempty"`
}

func checkMX(ctx context.Context, r dns.Resolver, domain string) MXReport {
	rep := MXReport{Hosts: []MXHost{}}
	a := &rep.Area
	recs, resp, err := dns.LookupMX(ctx, r, domain)
	if err != nil {
		a.Error = err.Error()
		a.Verdict = "not checked: " + err.Error()
		return rep
	}
	if resp.NXDomain() {
		rep.NXDomain = true
		a.add("mx-nxdomain", SeverityProblem, "RFC 1035 §4.1.1", domain+" does not exist (NXDOMAIN).")
		a.Verdict = "the domain does not exist"
		return rep
	}
	if len(recs) == 0 {
		rep.Implicit = true
		v4, _, err4 := dns.LookupAddrs(ctx, r, domain, false)
		v6, _, err6 := dns.LookupAddrs(ctx, r, domain, true)
		switch {
		case err4 != nil || err6 != nil:
			a.Error = "temporary DNS failure for the address of " + domain
		case len(v4)+len(v6) > 0:
			a.add("mx-none", SeverityWarning, "RFC 5321 §5.1", fmt.Sprintf("No MX record: mail to %s goes to its address record (implicit MX). Publish MX records, or a null MX if the domain receives no mail.", domain))
			a.Verdict = "no MX: mail goes to the domain's A/AAAA (implicit MX)"
		default:
			a.add("mx-none", SeverityWarning, "RFC 5321 §5.1, RFC 7505", fmt.Sprintf("No MX record and no address: %s cannot receive mail, not even bounces and reports. Publish MX records, or a null MX (\"%s. MX 0 .\") to say so.", domain, domain))
			a.Verdict = "no MX and no address: cannot receive mail"
		}
		return rep
	}
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Pref < recs[j].Pref })
	null := 0
	for _, rec := range recs {
		if h := strings.TrimSuffix(rec.Host, "."); h == "" {
			null++
		}
	}
	if null > 0 {
		if len(recs) == 1 && recs[0].Pref == 0 {
			rep.Null = true
			rep.Hosts = append(rep.Hosts, MXHost{Pref: 0, Host: ".", Addrs: []string{}})
			a.add("mx-null", SeverityInfo, "RFC 7505", "Null MX: the domain declares that it accepts no mail.")
			a.Verdict = "null MX: accepts no mail"
			return rep
		}
		a.add("mx-null-mixed", SeverityProblem, "RFC 7505 §3", "A null MX (\".\") is published together with other MX records or with a preference other than 0: RFC 7505 forbids it, and senders behave unpredictably.")
	}
	good := 0
	var temp []string
	for _, rec := range recs {
		h := strings.TrimSuffix(rec.Host, ".")
		if h == "" {
			continue
		}
		mh := MXHost{Pref: rec.Pref, Host: h, Addrs: []string{}}
		if _, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
			mh.Problem = "an IP address, not a host name"
			a.add("mx-ip-literal", SeverityProblem, "RFC 5321 §5.1", fmt.Sprintf("MX %s is an address: an MX must name a host (RFC 5321 §5.1); many senders ignore it.", h))
			rep.Hosts = append(rep.Hosts, mh)
			continue
		}
		failed := false
		for _, v6 := range []bool{false, true} {
			ips, r6, err := dns.LookupAddrs(ctx, r, h, v6)
			if err != nil {
				failed = true
				temp = append(temp, h)
				continue
			}
			for _, ip := range ips {
				mh.Addrs = append(mh.Addrs, ip.String())
			}
			if len(r6.CNAMEs) > 0 && mh.CNAME == "" {
				mh.CNAME = r6.CNAMEs[len(r6.CNAMEs)-1]
			}
		}
		switch {
		case failed:
		case len(mh.Addrs) == 0:
			mh.Problem = "no A or AAAA record"
			a.add("mx-no-address", SeverityProblem, "RFC 5321 §5.1", fmt.Sprintf("MX %s (preference %d) has no address record: senders cannot deliver to it.", h, rec.Pref))
		default:
			good++
		}
		if mh.CNAME != "" {
			a.add("mx-cname", SeverityWarning, "RFC 2181 §10.3, RFC 5321 §5.1", fmt.Sprintf("MX %s is an alias of %s: MX records must name the host itself, not an alias.", h, mh.CNAME))
		}
		rep.Hosts = append(rep.Hosts, mh)
	}
	if len(temp) > 0 {
		a.Error = "temporary DNS failure for " + strings.Join(uniq(temp), ", ")
	}
	switch {
	case good == 0 && a.Error == "":
		a.Verdict = "no MX host has an address: the domain cannot receive mail"
	case a.has("mx-no-address") || a.has("mx-ip-literal") || a.has("mx-null-mixed"):
		a.Verdict = fmt.Sprintf("%d of %d MX hosts usable", good, len(rep.Hosts))
	case a.has("mx-cname"):
		a.Verdict = fmt.Sprintf("%d MX host(s), some are aliases", good)
	default:
		a.add("mx-ok", SeverityInfo, "RFC 5321 §5.1", fmt.Sprintf("%d MX host(s), each with an address.", good))
		a.Verdict = fmt.Sprintf("%d MX host(s) with addresses", good)
	}
	return rep
}
