package analysis

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"portcullis/internal/dns"
)

func TestCheckIPRev(t *testing.T) {
	z := dns.NewZone()
	ptr := func(ip string, names ...string) {
		for _, n := range names {
			z.Add(dns.ReverseName(netip.MustParseAddr(ip)), dns.Record{Type: dns.TypePTR, TTL: 60, Host: n})
		}
	}
	addr := func(name, ip string) {
		a := netip.MustParseAddr(ip)
		t := dns.TypeA
		if a.Is6() {
			t = dns.TypeAAAA
		}
		z.Add(name, dns.Record{Type: t, TTL: 60, IP: a})
	}
	ptr("192.0.2.1", "a.example")
	addr("a.example", "192.0.2.1")
	ptr("192.0.2.2", "none.example", "b.example")
	addr("b.example", "192.0.2.2")
	ptr("192.0.2.3", "c.example")
	addr("c.example", "192.0.2.99")
	ptr("192.0.2.4", "nxdomain.example")
	// 192.0.2.5: no PTR at all.
	z.Add(dns.ReverseName(netip.MustParseAddr("192.0.2.6")), dns.Record{Type: dns.TypeTXT, TXT: []string{"no ptr here"}})
	z.SetFault(dns.ReverseName(netip.MustParseAddr("192.0.2.7")), 0, dns.FaultTimeout)
	ptr("192.0.2.8", "slow.example")
	z.SetFault("slow.example", 0, dns.FaultServFail)
	ptr("192.0.2.9", "slow.example", "a9.example")
	addr("a9.example", "192.0.2.9")
	var many []string
	for i := range MaxIPRevNames + 1 {
		many = append(many, fmt.Sprintf("n%d.example", i))
	}
	ptr("192.0.2.10", many...)
	addr(many[MaxIPRevNames], "192.0.2.10") // only the 11th name confirms
	ptr("2001:db8::1", "v6.example")
	addr("v6.example", "2001:db8::1")
	ptr("2001:db8::2", "v4only.example")
	addr("v4only.example", "192.0.2.2")

	for _, tc := range []struct {
		ip     string
		want   IPRevResult
		ptr    string
		reason string
	}{
		{"192.0.2.1", IPRevPass, "a.example", ""},
		{"::ffff:192.0.2.1", IPRevPass, "a.example", ""},
		{"192.0.2.2", IPRevPass, "b.example", ""},
		{"192.0.2.3", IPRevFail, "c.example", "c.example does not resolve to 192.0.2.3"},
		{"192.0.2.4", IPRevFail, "nxdomain.example", "nxdomain.example has no address"},
		{"192.0.2.5", IPRevPermError, "", "no PTR record"},
		{"192.0.2.6", IPRevPermError, "", "no PTR record"},
		{"192.0.2.7", IPRevTempError, "", "PTR lookup failed temporarily"},
		{"192.0.2.8", IPRevTempError, "slow.example", "forward lookup failed temporarily"},
		{"192.0.2.9", IPRevPass, "a9.example", ""},
		{"192.0.2.10", IPRevFail, "n0.example", "1 more PTR names not checked (limit 10)"},
		{"2001:db8::1", IPRevPass, "v6.example", ""},
		{"2001:db8::2", IPRevFail, "v4only.example", "v4only.example has no address"},
	} {
		got := CheckIPRev(context.Background(), z, netip.MustParseAddr(tc.ip))
		if got.Result != tc.want || got.PTR != tc.ptr || !strings.Contains(got.Reason, tc.reason) {
			t.Errorf("%s: %s ptr %q reason %q; want %s ptr %q reason containing %q", tc.ip, got.Result, got.PTR, got.Reason, tc.want, tc.ptr, tc.reason)
		}
		if tc.want == IPRevPass && got.Reason != "" {
			t.Errorf("%s: pass with reason %q", tc.ip, got.Reason)
		}
	}
	if got := CheckIPRev(context.Background(), z, netip.Addr{}); got.Result != IPRevNone {
		t.Errorf("no address: %s", got.Result)
	}
}
