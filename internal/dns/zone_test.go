package dns_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"portcullis/internal/dns"
)

func txt(ttl uint32, s ...string) dns.Record { return dns.Record{Type: dns.TypeTXT, TTL: ttl, TXT: s} }
func a(ttl uint32, ip string) dns.Record {
	return dns.Record{Type: dns.TypeA, TTL: ttl, IP: netip.MustParseAddr(ip)}
}
func cname(ttl uint32, target string) dns.Record {
	return dns.Record{Type: dns.TypeCNAME, TTL: ttl, Host: target}
}

func query(t *testing.T, r dns.Resolver, name string, typ dns.Type) *dns.Response {
	t.Helper()
	resp, err := r.Query(context.Background(), name, typ)
	if err != nil {
		t.Fatalf("Query(%s, %s): %v", name, typ, err)
	}
	return resp
}

func TestZoneExistence(t *testing.T) {
	z := dns.NewZone()
	z.Add("a.b.c.example.com", txt(60, "deep"))
	z.Add("example.com", a(60, "192.0.2.1"))

	tests := []struct {
		name   string
		typ    dns.Type
		rcode  dns.RCode
		nodata bool
	}{
		{"a.b.c.example.com", dns.TypeTXT, dns.Success, false},
		{"a.b.c.example.com", dns.TypeA, dns.Success, true}, // NODATA
		{"b.c.example.com", dns.TypeTXT, dns.Success, true}, // empty non-terminal, RFC 8020
		{"c.example.com", dns.TypeA, dns.Success, true},     // empty non-terminal
		{"example.com", dns.TypeA, dns.Success, false},
		{"example.com", dns.TypeMX, dns.Success, true},
		{"com", dns.TypeTXT, dns.Success, true},             // ancestor of every name
		{"x.example.com", dns.TypeTXT, dns.NXDomain, false}, // unknown
		{"x.a.b.c.example.com", dns.TypeTXT, dns.NXDomain, false},
		{"example.org", dns.TypeA, dns.NXDomain, false},
	}
	for _, tt := range tests {
		resp := query(t, z, tt.name, tt.typ)
		if resp.RCode != tt.rcode || resp.NoData() != tt.nodata {
			t.Errorf("%s %s: RCode %v NoData %v, want %v %v", tt.name, tt.typ, resp.RCode, resp.NoData(), tt.rcode, tt.nodata)
		}
		if tt.rcode == dns.NXDomain && (!resp.NXDomain() || !resp.Void()) {
			t.Errorf("%s %s: NXDomain() %v Void() %v", tt.name, tt.typ, resp.NXDomain(), resp.Void())
		}
	}
}

func TestZoneCaseAndDot(t *testing.T) {
	z := dns.NewZone()
	z.Add("Mixed.Example.COM.", dns.Record{Type: dns.TypeMX, TTL: 300, Pref: 5, Host: "MX.Example.COM."})
	z.Add("mixed.example.com", dns.Record{Type: dns.TypeMX, TTL: 300, Pref: 10, Host: "b.example.net"})
	for _, name := range []string{"mixed.example.com", "MIXED.EXAMPLE.COM.", "mIxEd.example.Com"} {
		resp := query(t, z, name, dns.TypeMX)
		want := &dns.Response{Name: "mixed.example.com", Type: dns.TypeMX, RCode: dns.Success, TTL: 300 * time.Second,
			Records: []dns.Record{
				{Type: dns.TypeMX, TTL: 300, Pref: 5, Host: "mx.example.com"},
				{Type: dns.TypeMX, TTL: 300, Pref: 10, Host: "b.example.net"},
			}}
		if diff := cmp.Diff(want, resp, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
}

func TestZoneInsertionOrder(t *testing.T) {
	z := dns.NewZone()
	for i := range 20 {
		z.Add("order.example", txt(uint32(100+i), fmt.Sprint(i)))
	}
	resp := query(t, z, "order.example", dns.TypeTXT)
	for i, r := range resp.Records {
		if r.Text() != fmt.Sprint(i) {
			t.Fatalf("record %d is %q", i, r.Text())
		}
	}
	if resp.TTL != 100*time.Second {
		t.Errorf("TTL %v, want the smallest, 100s", resp.TTL)
	}
}

func TestZoneCNAME(t *testing.T) {
	z := dns.NewZone()
	z.Add("www.example.com", cname(300, "Alias.Example.com."))
	z.Add("alias.example.com", cname(60, "host.example.net"))
	z.Add("host.example.net", a(3600, "192.0.2.80"))
	z.Add("host.example.net", a(1800, "192.0.2.81"))
	z.Add("dangling.example.com", cname(120, "nowhere.example.com"))
	z.Add("empty.example.com", cname(120, "host.example.net"))

	resp := query(t, z, "WWW.example.com", dns.TypeA)
	if got, want := resp.CNAMEs, []string{"alias.example.com", "host.example.net"}; !cmp.Equal(got, want) {
		t.Errorf("CNAMEs %q, want %q", got, want)
	}
	if len(resp.Records) != 2 || resp.Records[1].IP != netip.MustParseAddr("192.0.2.81") {
		t.Errorf("records %+v", resp.Records)
	}
	if resp.TTL != 60*time.Second || resp.Name != "www.example.com" || resp.RCode != dns.Success {
		t.Errorf("TTL %v Name %q RCode %v", resp.TTL, resp.Name, resp.RCode)
	}

	// Asking for the CNAME itself does not follow it.
	resp = query(t, z, "www.example.com", dns.TypeCNAME)
	if len(resp.CNAMEs) != 0 || len(resp.Records) != 1 || resp.Records[0].Host != "alias.example.com" {
		t.Errorf("CNAME query: %+v", resp)
	}

	// RFC 6604: the RCODE is that of the last name of the chain.
	resp = query(t, z, "dangling.example.com", dns.TypeTXT)
	if !resp.NXDomain() || !cmp.Equal(resp.CNAMEs, []string{"nowhere.example.com"}) {
		t.Errorf("dangling: %+v", resp)
	}
	if resp.TTL != 120*time.Second {
		t.Errorf("dangling: TTL %v, want min(CNAME 120s, negative 300s)", resp.TTL)
	}
	resp = query(t, z, "empty.example.com", dns.TypeTXT)
	if !resp.NoData() || len(resp.CNAMEs) != 1 {
		t.Errorf("CNAME to NODATA: %+v", resp)
	}
}

func TestZoneCNAMELimits(t *testing.T) {
	z := dns.NewZone()
	z.Add("loop1.example", cname(60, "loop2.example"))
	z.Add("loop2.example", cname(60, "loop1.example"))
	z.Add("self.example", cname(60, "self.example"))
	// A chain of exactly MaxCNAMEChain aliases, and one a link longer.
	for i := range dns.MaxCNAMEChain + 1 {
		z.Add(fmt.Sprintf("c%d.example", i), cname(60, fmt.Sprintf("c%d.example", i+1)))
	}
	z.Add(fmt.Sprintf("c%d.example", dns.MaxCNAMEChain+1), txt(60, "end"))

	for _, name := range []string{"loop1.example", "self.example", "c0.example"} {
		_, err := z.Query(context.Background(), name, dns.TypeTXT)
		if !errors.Is(err, dns.ErrServFail) || !dns.IsTemporary(err) {
			t.Errorf("%s: err %v, want ErrServFail", name, err)
		}
	}
	resp := query(t, z, "c1.example", dns.TypeTXT)
	if len(resp.CNAMEs) != dns.MaxCNAMEChain || len(resp.Records) != 1 {
		t.Errorf("chain of %d: %+v", dns.MaxCNAMEChain, resp)
	}
}

func TestZoneWildcard(t *testing.T) {
	z := dns.NewZone()
	z.Add("*.wild.example", txt(60, "synthesised"))
	z.Add("real.wild.example", dns.Record{Type: dns.TypeA, TTL: 60, IP: netip.MustParseAddr("192.0.2.1")})
	z.Add("x.ent.wild.example", txt(60, "below an empty non-terminal"))
	z.Add("*.alias.example", cname(60, "target.example"))
	z.Add("target.example", txt(60, "target"))

	resp := query(t, z, "any.wild.example", dns.TypeTXT)
	if len(resp.Records) != 1 || resp.Records[0].Text() != "synthesised" || resp.Name != "any.wild.example" {
		t.Errorf("wildcard: %+v", resp)
	}
	// RFC 4592 §3.3.1: the closest encloser of a.b.wild.example is
	// wild.example, so its wildcard answers too.
	if resp := query(t, z, "a.b.wild.example", dns.TypeTXT); len(resp.Records) != 1 {
		t.Errorf("deeper wildcard: %+v", resp)
	}
	// An existing name is never answered by the wildcard: NODATA.
	if resp := query(t, z, "real.wild.example", dns.TypeTXT); !resp.NoData() {
		t.Errorf("existing name: %+v", resp)
	}
	// Nor is an empty non-terminal, nor a name below it (its own closest
	// encloser has no wildcard).
	if resp := query(t, z, "ent.wild.example", dns.TypeTXT); !resp.NoData() {
		t.Errorf("empty non-terminal: %+v", resp)
	}
	if resp := query(t, z, "y.ent.wild.example", dns.TypeTXT); !resp.NXDomain() {
		t.Errorf("below empty non-terminal: %+v", resp)
	}
	// A wildcard CNAME is synthesised for the name asked.
	resp = query(t, z, "foo.alias.example", dns.TypeTXT)
	if !cmp.Equal(resp.CNAMEs, []string{"target.example"}) || len(resp.Records) != 1 {
		t.Errorf("wildcard CNAME: %+v", resp)
	}
}

func TestZoneNegativeTTL(t *testing.T) {
	z := dns.NewZone()
	z.Add("example.com", a(60, "192.0.2.1"))
	if got := query(t, z, "nx.example.com", dns.TypeA).TTL; got != dns.DefaultNegativeTTL {
		t.Errorf("default negative TTL %v", got)
	}
	z.SetNegativeTTL(42 * time.Second)
	if got := query(t, z, "example.com", dns.TypeTXT).TTL; got != 42*time.Second {
		t.Errorf("NODATA TTL %v, want 42s", got)
	}
	// An SOA makes a zone apex; its TTL is then the negative TTL.
	z.Add("soa.example", dns.Record{Type: dns.TypeSOA, TTL: 77, Host: "ns.soa.example"})
	if got := query(t, z, "nx.soa.example", dns.TypeA).TTL; got != 77*time.Second {
		t.Errorf("negative TTL under SOA %v, want 77s", got)
	}
	resp := query(t, z, "soa.example", dns.TypeSOA)
	if len(resp.Records) != 1 || resp.Records[0].Host != "ns.soa.example" {
		t.Errorf("SOA query: %+v", resp)
	}
}

func TestZoneFaults(t *testing.T) {
	ctx := context.Background()
	z := dns.NewZone()
	z.Add("slow.example", txt(60, "x"))
	z.Add("slow.example", a(60, "192.0.2.1"))
	z.Add("broken.example", txt(60, "x"))
	z.Add("via.example", cname(60, "broken.example"))
	z.SetFault("slow.example", dns.TypeTXT, dns.FaultTimeout)
	z.SetFault("Broken.Example.", 0, dns.FaultServFail)

	if _, err := z.Query(ctx, "slow.example", dns.TypeTXT); !errors.Is(err, dns.ErrTimeout) || !dns.IsTemporary(err) {
		t.Errorf("timeout fault: %v", err)
	}
	if _, err := z.Query(ctx, "slow.example", dns.TypeA); err != nil {
		t.Errorf("fault on TXT only hit A: %v", err)
	}
	for _, typ := range []dns.Type{dns.TypeTXT, dns.TypeMX, dns.TypeA} {
		if _, err := z.Query(ctx, "broken.example", typ); !errors.Is(err, dns.ErrServFail) {
			t.Errorf("servfail fault, %s: %v", typ, err)
		}
	}
	// A fault on a link of a CNAME chain fails the query.
	if _, err := z.Query(ctx, "via.example", dns.TypeTXT); !errors.Is(err, dns.ErrServFail) {
		t.Errorf("fault through CNAME: %v", err)
	}
	var e *dns.Error
	if _, err := z.Query(ctx, "via.example", dns.TypeTXT); !errors.As(err, &e) || e.Name != "via.example" {
		t.Errorf("error %v is not a *dns.Error for the asked name", err)
	}
	z.SetFault("broken.example", 0, dns.FaultNone)
	if _, err := z.Query(ctx, "broken.example", dns.TypeTXT); err != nil {
		t.Errorf("fault not removed: %v", err)
	}

	// Dynamic faults, asked before the static ones.
	z.SetFaultFunc(func(name string, typ dns.Type) dns.Fault {
		if strings.HasPrefix(name, "error.") {
			return dns.FaultServFail
		}
		return dns.FaultNone
	})
	if _, err := z.Query(ctx, "ERROR.anything.example", dns.TypeA); !errors.Is(err, dns.ErrServFail) {
		t.Errorf("fault func: %v", err)
	}
	if _, err := z.Query(ctx, "slow.example", dns.TypeTXT); !errors.Is(err, dns.ErrTimeout) {
		t.Errorf("static fault under a fault func: %v", err)
	}
	z.SetFaultFunc(nil)
	if resp := query(t, z, "error.anything.example", dns.TypeA); !resp.NXDomain() {
		t.Errorf("fault func not removed: %+v", resp)
	}
}

func TestZoneErrors(t *testing.T) {
	z := dns.NewZone()
	long := strings.Repeat("a", 64) + ".example"
	z.Add(long, txt(60, "ignored")) // invalid names are not stored
	for _, name := range []string{long, "a..b", strings.Repeat("abc.", 70) + "com"} {
		_, err := z.Query(context.Background(), name, dns.TypeTXT)
		if !errors.Is(err, dns.ErrInvalidName) || !errors.Is(err, dns.ErrPermanent) || dns.IsTemporary(err) {
			t.Errorf("%.20s…: err %v, want ErrInvalidName", name, err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := z.Query(ctx, "example", dns.TypeTXT)
	if !dns.IsTemporary(err) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: %v", err)
	}
	ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	_, err = z.Query(ctx, "example", dns.TypeTXT)
	if !errors.Is(err, dns.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("expired ctx: %v", err)
	}
}

// TestZoneConcurrent adds and queries at once; run with -race.
func TestZoneConcurrent(t *testing.T) {
	z := dns.NewZone()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				name := fmt.Sprintf("n%d.w%d.example", i, w)
				z.Add(name, txt(60, "x"))
				if w == 0 {
					z.SetFault(name, dns.TypeA, dns.FaultServFail)
				}
				resp, err := z.Query(context.Background(), name, dns.TypeTXT)
				if err != nil || len(resp.Records) != 1 {
					t.Errorf("%s: %v %+v", name, err, resp)
					return
				}
				_, _ = z.Query(context.Background(), fmt.Sprintf("w%d.example", (w+1)%4), dns.TypeA)
			}
		})
	}
	wg.Wait()
}
