package dnstest_test

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"portcullis/internal/dns"
	"portcullis/internal/dns/dnstest"
)

func testServer(t *testing.T) (*dnstest.Server, *dns.Zone) {
	z := dns.NewZone()
	z.Add("example.com", dns.Record{Type: dns.TypeSOA, TTL: 900, Host: "ns.example.com"})
	z.Add("example.com", dns.Record{Type: dns.TypeA, TTL: 60, IP: netip.MustParseAddr("192.0.2.1")})
	z.Add("www.example.com", dns.Record{Type: dns.TypeCNAME, TTL: 30, Host: "alias.example.com"})
	z.Add("alias.example.com", dns.Record{Type: dns.TypeCNAME, TTL: 30, Host: "example.com"})
	z.Add("big.example.com", dns.Record{Type: dns.TypeTXT, TTL: 60, TXT: []string{strings.Repeat("x", 255), strings.Repeat("y", 255), strings.Repeat("z", 255)}})
	z.SetFault("silent.example.com", 0, dns.FaultTimeout)
	z.SetFault("broken.example.com", 0, dns.FaultServFail)
	return dnstest.Serve(t, z), z
}

func exchange(t *testing.T, addr, network, name string, qtype uint16, edns bool) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	if edns {
		m.SetEdns0(4096, false)
	}
	c := &mdns.Client{Net: network, Timeout: 300 * time.Millisecond}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", name, mdns.Type(qtype), network, err)
	}
	return r
}

func TestWireAnswers(t *testing.T) {
	s, _ := testServer(t)

	r := exchange(t, s.Addr(), "udp", "WWW.example.com.", mdns.TypeA, false)
	if r.Rcode != mdns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 3 {
		t.Fatalf("CNAME chain answer: %v", r)
	}
	for i, want := range []string{"www.example.com.", "alias.example.com.", "example.com."} {
		if r.Answer[i].Header().Name != want {
			t.Errorf("answer %d owned by %s, want %s", i, r.Answer[i].Header().Name, want)
		}
	}

	for _, q := range []struct {
		name  string
		rcode int
	}{{"nx.example.com.", mdns.RcodeNameError}, {"www.example.com.", mdns.RcodeSuccess}} {
		r = exchange(t, s.Addr(), "udp", q.name, mdns.TypeTXT, false)
		if r.Rcode != q.rcode || len(r.Ns) != 1 {
			t.Fatalf("%s TXT: %v", q.name, r)
		}
		soa, ok := r.Ns[0].(*mdns.SOA)
		if !ok || soa.Hdr.Name != "example.com." || soa.Hdr.Ttl != 900 || soa.Minttl != 900 {
			t.Errorf("%s: authority %v, want the example.com SOA", q.name, r.Ns[0])
		}
	}

	r = exchange(t, s.Addr(), "udp", "broken.example.com.", mdns.TypeA, false)
	if r.Rcode != mdns.RcodeServerFailure {
		t.Errorf("FaultServFail: %v", mdns.RcodeToString[r.Rcode])
	}
	m := new(mdns.Msg)
	m.SetQuestion("silent.example.com.", mdns.TypeA)
	if _, _, err := (&mdns.Client{Timeout: 200 * time.Millisecond}).Exchange(m, s.Addr()); err == nil {
		t.Errorf("FaultTimeout answered")
	}
}

func TestWireTruncation(t *testing.T) {
	s, _ := testServer(t)
	before := s.Queries()
	r := exchange(t, s.Addr(), "udp", "big.example.com.", mdns.TypeTXT, false)
	if !r.Truncated {
		t.Errorf("770-octet answer over UDP without EDNS0 not truncated")
	}
	r = exchange(t, s.Addr(), "udp", "big.example.com.", mdns.TypeTXT, true)
	if r.Truncated || len(r.Answer) != 1 || r.IsEdns0() == nil {
		t.Errorf("with EDNS0 4096: TC %v, %d answers, OPT %v", r.Truncated, len(r.Answer), r.IsEdns0())
	}
	r = exchange(t, s.Addr(), "tcp", "big.example.com.", mdns.TypeTXT, false)
	if r.Truncated || len(r.Answer) != 1 {
		t.Errorf("over TCP: TC %v, %d answers", r.Truncated, len(r.Answer))
	}
	if got := s.Queries() - before; got != 3 {
		t.Errorf("Queries counted %d, want 3", got)
	}
}

func TestServeClosedByCleanup(t *testing.T) {
	var addr string
	t.Run("serve", func(t *testing.T) {
		s, _ := testServer(t)
		addr = s.Addr()
		exchange(t, addr, "tcp", "example.com.", mdns.TypeA, false)
	})
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("server still listening on %s after cleanup", addr)
	}
}
