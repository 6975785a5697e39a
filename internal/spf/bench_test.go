package spf

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	blitiri "blitiri.com.ar/go/spf"

	"portcullis/internal/dns"
)

// benchZone is a realistic policy: two provider includes (one nested) and
// the domain's MX hosts, 5 DNS-querying terms; the client matches the
// second MX host, late in the evaluation.
const benchZone = `
example.com.            TXT "v=spf1 include:_spf.a.example include:_spf.b.example mx -all"
example.com.            MX  10 mx1.example.com.
example.com.            MX  20 mx2.example.com.
mx1.example.com.        A   192.0.2.25
mx2.example.com.        A   192.0.2.26
_spf.a.example.         TXT "v=spf1 ip4:198.51.100.0/26 ip4:198.51.100.128/26 include:_netblocks.a.example ~all"
_netblocks.a.example.   TXT "v=spf1 ip4:203.0.113.0/28 ip6:2001:db8:a::/48 ?all"
_spf.b.example.         TXT "v=spf1 a:relay.b.example ip4:192.0.2.128/27 -all"
relay.b.example.        A   192.0.2.200
`

var benchClient = netip.MustParseAddr("192.0.2.26")

func benchResolver(b *testing.B) *dns.Cache {
	return dns.NewCache(loadZone(b, benchZone), dns.CacheConfig{})
}

// BenchmarkCheckWarm compares spf.Check with blitiri.com.ar/go/spf on the
// same records, both answered from the same warm dns.Cache.
func BenchmarkCheckWarm(b *testing.B) {
	ctx := context.Background()
	req := Request{IP: benchClient, HELO: "mx2.example.com", MailFrom: "alice@example.com"}
	run := func(b *testing.B, opts *Options) {
		r := benchResolver(b)
		if res := Check(ctx, r, req, opts); res.Result != Pass || res.Lookups != 5 {
			b.Fatalf("warm-up: %s %d %s", res.Result, res.Lookups, res.Reason)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if res := Check(ctx, r, req, opts); res.Result != Pass {
				b.Fatal(res.Result)
			}
		}
	}
	b.Run("portcullis/trace", func(b *testing.B) { run(b, nil) })
	b.Run("portcullis/notrace", func(b *testing.B) { run(b, &Options{DisableTrace: true}) })
	b.Run("portcullis/notrace+parsecache", func(b *testing.B) {
		run(b, &Options{DisableTrace: true, ParsedRecords: NewRecordCache(1000)})
	})
	b.Run("portcullis/trace+parsecache", func(b *testing.B) { run(b, &Options{ParsedRecords: NewRecordCache(1000)}) })
	b.Run("blitiri", func(b *testing.B) {
		r := blitiriAdapter{benchResolver(b)}
		ip := net.IP(benchClient.AsSlice())
		opts := []blitiri.Option{blitiri.WithResolver(r), blitiri.WithContext(ctx)}
		if res, err := blitiri.CheckHostWithSender(ip, "mx2.example.com", "alice@example.com", opts...); res != blitiri.Pass {
			b.Fatalf("warm-up: %s %v", res, err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if res, _ := blitiri.CheckHostWithSender(ip, "mx2.example.com", "alice@example.com", opts...); res != blitiri.Pass {
				b.Fatal(res)
			}
		}
	})
}

// BenchmarkCheckWarmPaired times spf.Check and blitiri's CheckHostWithSender
// alternately within the same loop, so that both see the same machine
// load: on a shared machine this gives a steadier ratio than comparing
// separate benchmarks. It reports each one's ns per check and the ratio
// portcullis/blitiri.
func BenchmarkCheckWarmPaired(b *testing.B) {
	ctx := context.Background()
	req := Request{IP: benchClient, HELO: "mx2.example.com", MailFrom: "alice@example.com"}
	ip := net.IP(benchClient.AsSlice())
	pair := func(b *testing.B, opts *Options) {
		r := benchResolver(b)
		bopts := []blitiri.Option{blitiri.WithResolver(blitiriAdapter{benchResolver(b)}), blitiri.WithContext(ctx)}
		Check(ctx, r, req, opts)
		blitiri.CheckHostWithSender(ip, "mx2.example.com", "alice@example.com", bopts...)
		var ours, theirs time.Duration
		n := 0
		for b.Loop() {
			t0 := time.Now()
			res := Check(ctx, r, req, opts)
			t1 := time.Now()
			bres, _ := blitiri.CheckHostWithSender(ip, "mx2.example.com", "alice@example.com", bopts...)
			t2 := time.Now()
			if res.Result != Pass || bres != blitiri.Pass {
				b.Fatal(res.Result, bres)
			}
			ours += t1.Sub(t0)
			theirs += t2.Sub(t1)
			n++
		}
		b.ReportMetric(float64(ours.Nanoseconds())/float64(n), "portcullis-ns/op")
		b.ReportMetric(float64(theirs.Nanoseconds())/float64(n), "blitiri-ns/op")
		b.ReportMetric(float64(ours)/float64(theirs), "ratio")
	}
	b.Run("trace", func(b *testing.B) { pair(b, nil) })
	b.Run("notrace", func(b *testing.B) { pair(b, &Options{DisableTrace: true}) })
	b.Run("notrace+parsecache", func(b *testing.B) {
		pair(b, &Options{DisableTrace: true, ParsedRecords: NewRecordCache(1000)})
	})
	b.Run("trace+parsecache", func(b *testing.B) { pair(b, &Options{ParsedRecords: NewRecordCache(1000)}) })
}

// blitiriAdapter answers blitiri's resolver interface (that of
// *net.Resolver) from a dns.Resolver, so both implementations get the
// same in-memory answers.
type blitiriAdapter struct{ r dns.Resolver }

func notFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (a blitiriAdapter) LookupTXT(ctx context.Context, name string) ([]string, error) {
	txts, resp, err := dns.LookupTXT(ctx, a.r, name)
	if err != nil {
		return nil, err
	}
	if resp.Void() {
		return nil, notFound(name)
	}
	return txts, nil
}

func (a blitiriAdapter) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	recs, resp, err := dns.LookupMX(ctx, a.r, name)
	if err != nil {
		return nil, err
	}
	if resp.Void() {
		return nil, notFound(name)
	}
	out := make([]*net.MX, 0, len(recs))
	for _, r := range recs {
		out = append(out, &net.MX{Host: r.Host + ".", Pref: r.Pref})
	}
	return out, nil
}

func (a blitiriAdapter) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	var out []net.IPAddr
	for _, v6 := range []bool{false, true} {
		ips, _, err := dns.LookupAddrs(ctx, a.r, host, v6)
		if err != nil {
			return nil, err
		}
		for _, ip := range ips {
			out = append(out, net.IPAddr{IP: net.IP(ip.AsSlice())})
		}
	}
	if len(out) == 0 {
		return nil, notFound(host)
	}
	return out, nil
}

func (a blitiriAdapter) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	names, resp, err := dns.LookupPTR(ctx, a.r, ip)
	if err != nil {
		return nil, err
	}
	if resp.Void() {
		return nil, notFound(addr)
	}
	return names, nil
}

func BenchmarkParse(b *testing.B) {
	const rec = "v=spf1 ip4:198.51.100.0/26 ip4:198.51.100.128/26 include:_netblocks.%{d2} a:mail.example.com/24//64 mx ~all"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(rec); err != nil {
			b.Fatal(err)
		}
	}
}
