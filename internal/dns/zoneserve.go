package dns

import (
	"errors"
	"net"

	mdns "github.com/miekg/dns"
)

// serverUDPSize is the EDNS0 payload size a served Zone advertises
// (RFC 6891 §6.2.5; 1232 octets avoids IP fragmentation, DNS Flag Day 2020).
const serverUDPSize = 1232

// ServeDNS answers req from the zone, so that a Zone can be served with
// miekg/dns's Server (see package dnstest). The answer is what a recursive
// resolver would return for the zone's data: RA and AA set, CNAME chains in
// the answer section before the records of the asked type (RFC 1034
// §4.3.2), and for NXDOMAIN and NODATA the zone's SOA in the authority
// section (RFC 2308 §3) so that the client can compute the negative TTL.
//
// Over UDP an answer larger than the client's EDNS0 payload size (512
// octets without EDNS0, RFC 1035 §4.2.1) is truncated with TC set so that
// the client retries over TCP (RFC 7766 §5). FaultTimeout sends nothing;
// FaultServFail, a CNAME loop or an over-long chain send SERVFAIL.
func (z *Zone) ServeDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	m := new(mdns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true

	_, overTCP := w.RemoteAddr().(*net.TCPAddr)
	size := mdns.MinMsgSize
	if overTCP {
		size = mdns.MaxMsgSize
	}
	if opt := req.IsEdns0(); opt != nil {
		if opt.Version() != 0 {
			// RFC 6891 §6.1.3: unsupported EDNS version.
			m.SetEdns0(serverUDPSize, false)
			m.IsEdns0().SetExtendedRcode(mdns.RcodeBadVers)
			m.Rcode = mdns.RcodeBadVers
			_ = w.WriteMsg(m)
			return
		}
		if !overTCP {
			size = max(int(opt.UDPSize()), mdns.MinMsgSize)
		}
	}
	write := func() {
		// RFC 6891 §6.1.1: answer EDNS0 with EDNS0. Truncate accounts
		// for the OPT record.
		if req.IsEdns0() != nil && m.IsEdns0() == nil {
			m.SetEdns0(serverUDPSize, false)
		}
		m.Truncate(size)
		_ = w.WriteMsg(m)
	}

	switch {
	case req.Opcode != mdns.OpcodeQuery:
		m.Rcode = mdns.RcodeNotImplemented
		write()
		return
	case len(req.Question) != 1:
		m.Rcode = mdns.RcodeFormatError
		write()
		return
	case req.Question[0].Qclass != mdns.ClassINET:
		m.Rcode = mdns.RcodeRefused
		write()
		return
	}
	q := req.Question[0]
	n, err := canonicalWire(q.Name)
	if err != nil {
		m.Rcode = mdns.RcodeFormatError
		write()
		return
	}
	t := Type(q.Qtype)
	ans, err := z.resolve(n, t)
	if err != nil {
		if errors.Is(err, ErrTimeout) {
			return // never answer
		}
		m.Rcode = mdns.RcodeServerFailure
		write()
		return
	}
	for _, l := range ans.chain {
		m.Answer = append(m.Answer, &mdns.CNAME{
			Hdr:    mdns.RR_Header{Name: fqdn(l.owner), Rrtype: mdns.TypeCNAME, Class: mdns.ClassINET, Ttl: l.ttl},
			Target: fqdn(l.target),
		})
	}
	encoded := 0
	for _, r := range ans.recs {
		rr := recordToRR(ans.final, r)
		if r.Type == TypeSOA {
			rr = z.soaRR(ans.final, r)
		}
		if rr != nil {
			m.Answer = append(m.Answer, rr)
			encoded++
		}
	}
	if ans.rcode == NXDomain {
		m.Rcode = mdns.RcodeNameError
	}
	if encoded == 0 {
		if len(ans.recs) > 0 {
			// Records without wire data (see recordToRR): NODATA.
			z.mu.RLock()
			ans.soaOwner, ans.soa, ans.negTTL = z.negative(ans.final)
			z.mu.RUnlock()
		}
		m.Ns = append(m.Ns, soaToRR(ans.soaOwner, ans.soa))
	}
	write()
}

// soaRR is the wire form of the SOA record rec at the apex n: the full SOA
// loaded from a zone file, or one made from rec (see Zone.Add).
func (z *Zone) soaRR(n string, rec Record) mdns.RR {
	z.mu.RLock()
	s, ok := z.soas[n]
	z.mu.RUnlock()
	if !ok || s.mname != rec.Host {
		s = soaData{mname: rec.Host, rname: "hostmaster." + n, serial: 1,
			refresh: 3600, retry: 600, expire: 604800, minimum: rec.TTL}
	}
	s.ttl = rec.TTL
	return soaToRR(n, s)
}

func soaToRR(owner string, s soaData) *mdns.SOA {
	return &mdns.SOA{
		Hdr: mdns.RR_Header{Name: fqdn(owner), Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: s.ttl},
		Ns:  fqdn(s.mname), Mbox: fqdn(s.rname), Serial: s.serial, Refresh: s.refresh,
		Retry: s.retry, Expire: s.expire, Minttl: s.minimum,
	}
}
