package dns_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mdns "github.com/miekg/dns"

	"portcullis/internal/dns"
	"portcullis/internal/dns/dnstest"
)

// testZone is testdata/example.zone plus records that exercise the wire.
func testZone(t *testing.T) *dns.Zone {
	t.Helper()
	z, err := dns.LoadZoneFile("testdata/example.zone")
	if err != nil {
		t.Fatal(err)
	}
	// Names with octets that presentation form escapes (RFC 1035 §5.1).
	z.Add("o'brien@x;y(z).example.com", txt(60, "odd name"))
	z.Add("sp ace.example.com", txt(60, "space"))
	// A TXT record far larger than 1232 octets: TCP whatever the EDNS size.
	var huge []string
	for range 20 {
		huge = append(huge, strings.Repeat("h", 200))
	}
	z.Add("huge.example.com", txt(60, huge...))
	z.Add("noauth.example", a(60, "192.0.2.9"))                                            // no SOA encloses it
	z.Add("nullmx.example.com", dns.Record{Type: dns.TypeMX, TTL: 60, Pref: 0, Host: "."}) // RFC 7505
	return z
}

// TestClientMatchesZone asks the same questions of a Zone directly and of
// a Client through dnstest: the answers must be identical.
func TestClientMatchesZone(t *testing.T) {
	z := testZone(t)
	z.SetNegativeTTL(45 * time.Second)
	srv := dnstest.Serve(t, z)
	c := srv.Resolver(t, time.Second)
	questions := []struct {
		name string
		typ  dns.Type
	}{
		{"example.com", dns.TypeA}, {"example.com", dns.TypeAAAA}, {"example.com", dns.TypeMX},
		{"example.com", dns.TypeTXT}, {"example.com", dns.TypeSOA}, {"1.2.0.192.in-addr.arpa", dns.TypePTR},
		{"www.example.com", dns.TypeA}, {"www.example.com", dns.TypeCNAME}, {"WWW.Example.COM.", dns.TypeTXT},
		{"dangling.example.com", dns.TypeA}, {"nx.example.com", dns.TypeA}, {"c.example.com", dns.TypeTXT},
		{"x.y.wild.example.com", dns.TypeTXT}, {"quoted.example.com", dns.TypeTXT}, {"big.example.com", dns.TypeTXT},
		{"huge.example.com", dns.TypeTXT}, {"o'brien@x;y(z).example.com", dns.TypeTXT}, {"sp ace.example.com", dns.TypeTXT},
		{"nx.noauth.example", dns.TypeA}, {"noauth.example", dns.TypeTXT}, {"_dmarc.example.com", dns.TypeTXT},
		{"nullmx.example.com", dns.TypeMX},
	}
	for _, q := range questions {
		want := query(t, z, q.name, q.typ)
		got := query(t, c, q.name, q.typ)
		if diff := cmp.Diff(want, got, addrCmp); diff != "" {
			t.Errorf("%s %s: client differs from zone (-zone +client):\n%s", q.name, q.typ, diff)
		}
	}
	// Spot checks that the comparison above compares something.
	if r := query(t, c, "nx.example.com", dns.TypeA); !r.NXDomain() || r.TTL != 600*time.Second {
		t.Errorf("NXDOMAIN: %+v (want negative TTL min(3600, 600) from the SOA)", r)
	}
	if r := query(t, c, "c.example.com", dns.TypeTXT); !r.NoData() || r.TTL != 600*time.Second {
		t.Errorf("NODATA: %+v", r)
	}
	if r := query(t, c, "nx.noauth.example", dns.TypeA); r.TTL != 45*time.Second {
		t.Errorf("negative TTL without zone SOA: %v", r.TTL)
	}
	if r := query(t, c, "nullmx.example.com", dns.TypeMX); len(r.Records) != 1 || r.Records[0].Host != "" {
		t.Errorf("null MX: %+v", r)
	}
	if r := query(t, c, "huge.example.com", dns.TypeTXT); len(r.Records) != 1 || len(r.Records[0].Text()) != 4000 {
		t.Errorf("huge TXT: %d records", len(r.Records))
	}
}

func TestClientTCPFallback(t *testing.T) {
	srv := dnstest.Serve(t, testZone(t))
	// Without a large EDNS0 size the 600-octet TXT does not fit in UDP.
	c, err := dns.NewClient(dns.ClientConfig{Servers: []string{srv.Addr()}, Timeout: time.Second, UDPSize: 512})
	if err != nil {
		t.Fatal(err)
	}
	r := query(t, c, "big.example.com", dns.TypeTXT)
	if len(r.Records) != 1 || len(r.Records[0].TXT) != 6 || len(r.Records[0].Text()) != 600 {
		t.Fatalf("big TXT: %+v", r)
	}
	if n := srv.Queries(); n != 2 {
		t.Errorf("%d queries, want 2 (UDP truncated, then TCP)", n)
	}
	// A small answer needs no TCP.
	query(t, c, "example.com", dns.TypeA)
	if n := srv.Queries(); n != 3 {
		t.Errorf("%d queries, want 3", n)
	}
}

func TestClientFailures(t *testing.T) {
	z := testZone(t)
	z.SetFault("fail.example.com", 0, dns.FaultServFail)
	z.SetFault("slow.example.com", dns.TypeTXT, dns.FaultTimeout)
	srv := dnstest.Serve(t, z)
	c := srv.Resolver(t, 150*time.Millisecond)
	ctx := context.Background()

	_, err := c.Query(ctx, "fail.example.com", dns.TypeA)
	if !errors.Is(err, dns.ErrServFail) || !dns.IsTemporary(err) {
		t.Errorf("SERVFAIL: %v", err)
	}
	start := time.Now()
	_, err = c.Query(ctx, "slow.example.com", dns.TypeTXT)
	if !errors.Is(err, dns.ErrTimeout) || !dns.IsTemporary(err) {
		t.Errorf("timeout: %v", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > time.Second {
		t.Errorf("timeout took %v, want about 150ms", d)
	}
	var e *dns.Error
	if !errors.As(err, &e) || e.Name != "slow.example.com" || e.Type != dns.TypeTXT {
		t.Errorf("error %#v", err)
	}

	// The ctx deadline wins over a longer per-attempt timeout.
	long := srv.Resolver(t, 10*time.Second)
	dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = long.Query(dctx, "slow.example.com", dns.TypeTXT)
	if !errors.Is(err, dns.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ctx deadline: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("ctx deadline honoured after %v", d)
	}

	// Cancellation ends the wait at once.
	cctx, cancel2 := context.WithCancel(ctx)
	time.AfterFunc(50*time.Millisecond, cancel2)
	start = time.Now()
	_, err = long.Query(cctx, "slow.example.com", dns.TypeTXT)
	if !errors.Is(err, context.Canceled) || !dns.IsTemporary(err) {
		t.Errorf("cancel: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("cancel honoured after %v", d)
	}

	if _, err := c.Query(ctx, "a..b", dns.TypeA); !errors.Is(err, dns.ErrInvalidName) {
		t.Errorf("invalid name: %v", err)
	}
}

func TestClientRetriesNextServer(t *testing.T) {
	dead := dns.NewZone()
	dead.SetFaultFunc(func(string, dns.Type) dns.Fault { return dns.FaultTimeout })
	s1 := dnstest.Serve(t, dead)
	sf := dns.NewZone()
	sf.SetFaultFunc(func(string, dns.Type) dns.Fault { return dns.FaultServFail })
	s2 := dnstest.Serve(t, sf)
	s3 := dnstest.Serve(t, testZone(t))

	c, err := dns.NewClient(dns.ClientConfig{Servers: []string{s1.Addr(), s2.Addr(), s3.Addr()}, Timeout: time.Second, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	r := query(t, c, "example.com", dns.TypeA)
	if len(r.Records) != 1 {
		t.Errorf("answer %+v", r)
	}
	if s1.Queries() != 1 || s2.Queries() != 1 || s3.Queries() != 1 {
		t.Errorf("queries %d %d %d, want 1 each", s1.Queries(), s2.Queries(), s3.Queries())
	}

	// Attempts: the server list is tried that many times.
	c, err = dns.NewClient(dns.ClientConfig{Servers: []string{s1.Addr(), s2.Addr()}, Timeout: time.Second, Attempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Query(context.Background(), "example.com", dns.TypeA)
	if !errors.Is(err, dns.ErrServFail) {
		t.Errorf("last error %v, want the SERVFAIL of the last server", err)
	}
	if s1.Queries() != 3 || s2.Queries() != 3 {
		t.Errorf("queries %d %d, want 3 each", s1.Queries(), s2.Queries())
	}
}

// serveFunc serves a hand-written handler on 127.0.0.1 UDP.
func serveFunc(t *testing.T, h func(w mdns.ResponseWriter, req *mdns.Msg)) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &mdns.Server{PacketConn: pc, Handler: mdns.HandlerFunc(h), NotifyStartedFunc: func() { close(started) }}
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

func TestClientReplyChecks(t *testing.T) {
	var sawAD, sawRD, sawEDNS atomic.Bool
	addr := serveFunc(t, func(w mdns.ResponseWriter, req *mdns.Msg) {
		sawAD.Store(req.AuthenticatedData)
		sawRD.Store(req.RecursionDesired)
		if opt := req.IsEdns0(); opt != nil && opt.UDPSize() == 1232 {
			sawEDNS.Store(true)
		}
		m := new(mdns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		switch strings.ToLower(q.Name) {
		case "signed.example.":
			m.AuthenticatedData = true
			rr, _ := mdns.NewRR("signed.example. 60 IN A 192.0.2.1")
			m.Answer = append(m.Answer, rr)
		case "refused.example.":
			m.Rcode = mdns.RcodeRefused
		case "wrongq.example.":
			m.Question[0].Name = "other.example."
		case "nosoa.example.":
			m.Rcode = mdns.RcodeNameError
		case "contradiction.example.":
			m.Rcode = mdns.RcodeNameError
			rr, _ := mdns.NewRR("contradiction.example. 60 IN A 192.0.2.1")
			m.Answer = append(m.Answer, rr)
		case "0x20.example.":
			// RFC 4343: a server may echo the name in another case.
			m.Question[0].Name = "0X20.EXAMPLE."
			rr, _ := mdns.NewRR("0X20.EXAMPLE. 60 IN TXT \"mixed\"")
			m.Answer = append(m.Answer, rr)
		case "loop.example.":
			for _, s := range []string{"loop.example. 60 IN CNAME l2.example.", "l2.example. 60 IN CNAME loop.example."} {
				rr, _ := mdns.NewRR(s)
				m.Answer = append(m.Answer, rr)
			}
		case "other.example.":
			// Records of other names or types are ignored.
			for _, s := range []string{"unrelated.example. 60 IN A 192.0.2.7", "other.example. 60 IN AAAA 2001:db8::1"} {
				rr, _ := mdns.NewRR(s)
				m.Answer = append(m.Answer, rr)
			}
		}
		_ = w.WriteMsg(m)
	})
	c, err := dns.NewClient(dns.ClientConfig{Servers: []string{addr}, Timeout: time.Second, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := query(t, c, "signed.example", dns.TypeA)
	if !r.Authenticated || len(r.Records) != 1 {
		t.Errorf("AD: %+v", r)
	}
	if !sawAD.Load() || !sawRD.Load() || !sawEDNS.Load() {
		t.Errorf("query flags: AD %v RD %v EDNS0 1232 %v", sawAD.Load(), sawRD.Load(), sawEDNS.Load())
	}
	if _, err := c.Query(ctx, "refused.example", dns.TypeA); !dns.IsTemporary(err) || errors.Is(err, dns.ErrServFail) || !strings.Contains(err.Error(), "REFUSED") {
		t.Errorf("REFUSED: %v", err)
	}
	if _, err := c.Query(ctx, "wrongq.example", dns.TypeA); !dns.IsTemporary(err) {
		t.Errorf("wrong question: %v", err)
	}
	if r := query(t, c, "nosoa.example", dns.TypeA); !r.NXDomain() || r.TTL != 0 {
		t.Errorf("NXDOMAIN without SOA: %+v (RFC 2308 §5: not cacheable)", r)
	}
	if _, err := c.Query(ctx, "contradiction.example", dns.TypeA); !dns.IsTemporary(err) {
		t.Errorf("NXDOMAIN with answer: %v", err)
	}
	if r := query(t, c, "0x20.example", dns.TypeTXT); len(r.Records) != 1 || r.Name != "0x20.example" {
		t.Errorf("case of echoed name: %+v", r)
	}
	if _, err := c.Query(ctx, "loop.example", dns.TypeA); !errors.Is(err, dns.ErrServFail) {
		t.Errorf("CNAME loop: %v", err)
	}
	if r := query(t, c, "other.example", dns.TypeA); !r.NoData() {
		t.Errorf("unrelated records: %+v", r)
	}
}

func TestNewClientServers(t *testing.T) {
	c, err := dns.NewClient(dns.ClientConfig{Servers: []string{"192.0.2.1", "192.0.2.2:5353", "[2001:db8::1]:53", "2001:db8::2", "localhost:53"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"192.0.2.1:53", "192.0.2.2:5353", "[2001:db8::1]:53", "[2001:db8::2]:53", "localhost:53"}
	if got := c.Servers(); !cmp.Equal(got, want) {
		t.Errorf("servers %q, want %q", got, want)
	}
	for _, bad := range []string{"", ":53", "192.0.2.1:0", "192.0.2.1:99999", "a b", "2001:db8::zz"} {
		if _, err := dns.NewClient(dns.ClientConfig{Servers: []string{bad}}); err == nil {
			t.Errorf("server %q accepted", bad)
		}
	}
}

func TestServersFromResolvConf(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	conf := "# comment\nsearch example.com\nnameserver 192.0.2.53 # trailing\nnameserver  2001:db8::53\noptions ndots:2\nnameserver fe80::1%eth0\nnameserver not-an-ip\n;nameserver 192.0.2.99\n"
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := dns.ServersFromResolvConf(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"192.0.2.53:53", "[2001:db8::53]:53", "[fe80::1%eth0]:53"}
	if !cmp.Equal(got, want) {
		t.Errorf("servers %q, want %q", got, want)
	}
	for _, p := range []string{filepath.Join(dir, "missing"), writeTemp(t, "search example.com\n")} {
		got, err := dns.ServersFromResolvConf(p)
		if err != nil || !cmp.Equal(got, []string{"127.0.0.1:53"}) {
			t.Errorf("%s: %q %v, want the 127.0.0.1:53 fallback", p, got, err)
		}
	}
}

func writeTemp(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
