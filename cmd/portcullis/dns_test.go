package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"portcullis/internal/dns"
	"portcullis/internal/dns/dnstest"
)

const labZone = "../../examples/lab.zone"

// runDNS runs "portcullis ARGS..." with only the dns command attached and
// returns its stdout, the exit status main would use, and stderr.
func runDNS(t *testing.T, args ...string) (string, int, string) {
	t.Helper()
	g := &globalFlags{}
	root := &cobra.Command{Use: "portcullis", SilenceUsage: true, SilenceErrors: true}
	g.register(root)
	root.AddCommand(newDNSCmd(g))
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	code := 0
	if err := root.Execute(); err != nil {
		code = report(&errOut, err)
	}
	return out.String(), code, errOut.String()
}

func TestDNSCommandText(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"example.com", "TXT"}, []string{
			"example.com TXT: NOERROR, 1 record(s), TTL 3600s\n",
			"example.com.\t3600\tIN\tTXT\t\"v=spf1 ip4:192.0.2.0/24 include:_spf.example.net -all\"\n",
		}},
		{[]string{"WWW.example.com.", "a"}, []string{
			"www.example.com A: NOERROR",
			"CNAME chain: www.example.com -> mail.example.com\n",
			"mail.example.com.\t3600\tIN\tA\t192.0.2.20\n",
		}},
		{[]string{"example.com", "MX"}, []string{"\tMX\t10 mx1.example.com.\n", "\tMX\t20 mx2.example.com.\n"}},
		{[]string{"nope.example.com", "TXT"}, []string{"nope.example.com TXT: NXDOMAIN, negative TTL 300s\n"}},
		{[]string{"example.net", "MX"}, []string{"example.net MX: NOERROR (NODATA: no MX record), negative TTL 300s\n"}},
		{[]string{"20.2.0.192.in-addr.arpa", "PTR"}, []string{"\tPTR\tmail.example.com.\n"}},
	}
	for _, tt := range tests {
		out, code, stderr := runDNS(t, append([]string{"--dns-zone", labZone, "dns"}, tt.args...)...)
		if code != 0 || stderr != "" {
			t.Errorf("%v: exit %d, stderr %q", tt.args, code, stderr)
		}
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: output lacks %q:\n%s", tt.args, w, out)
			}
		}
	}
}

func TestDNSCommandJSON(t *testing.T) {
	out, code, _ := runDNS(t, "--dns-zone", labZone, "dns", "www.example.com", "A", "--json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var v struct {
		Name    string
		RCode   string
		CNAMEs  []string
		TTL     int64
		Records []struct {
			Type string
			TTL  uint32
			IP   string
		}
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if v.Name != "www.example.com" || v.RCode != "NOERROR" || len(v.CNAMEs) != 1 || v.TTL != 3600 ||
		len(v.Records) != 1 || v.Records[0].IP != "192.0.2.20" || v.Records[0].Type != "A" {
		t.Errorf("JSON %+v", v)
	}

	out, code, _ = runDNS(t, "--dns-zone", labZone, "dns", "example.net", "TXT", "--json")
	if code != 0 || !strings.Contains(out, `"rcode": "NOERROR"`) || !strings.Contains(out, `"nodata": true`) {
		t.Errorf("NODATA JSON (exit %d): %s", code, out)
	}
	out, code, _ = runDNS(t, "--dns-zone", labZone, "dns", "example.com", "TXT", "--json")
	if code != 0 || !strings.Contains(out, `"text": "v=spf1 ip4:192.0.2.0/24 include:_spf.example.net -all"`) {
		t.Errorf("TXT JSON (exit %d): %s", code, out)
	}
}

func TestDNSCommandFailures(t *testing.T) {
	z := dns.NewZone()
	z.Add("ok.example", dns.Record{Type: dns.TypeTXT, TTL: 60, TXT: []string{"fine"}})
	z.SetFault("fail.example", 0, dns.FaultServFail)
	z.SetFault("slow.example", 0, dns.FaultTimeout)
	srv := dnstest.Serve(t, z)
	base := []string{"--dns-server", srv.Addr(), "--dns-timeout", "100ms", "dns"}

	out, code, _ := runDNS(t, append(base, "ok.example", "TXT")...)
	if code != 0 || !strings.Contains(out, `"fine"`) {
		t.Errorf("over the wire: exit %d, %q", code, out)
	}
	_, code, stderr := runDNS(t, append(base, "fail.example", "A")...)
	if code != 1 || !strings.Contains(stderr, "SERVFAIL") {
		t.Errorf("SERVFAIL: exit %d, stderr %q", code, stderr)
	}
	start := time.Now()
	out, code, stderr = runDNS(t, append(base, "slow.example", "A", "--json")...)
	if code != 1 || stderr != "" || !strings.Contains(out, `"temporary": true`) || !strings.Contains(out, "timeout") {
		t.Errorf("timeout JSON: exit %d, out %q, stderr %q", code, out, stderr)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("timeout took %v", d)
	}
	_, code, stderr = runDNS(t, append(base, "a..b", "A")...)
	if code != 1 || !strings.Contains(stderr, "invalid domain name") {
		t.Errorf("invalid name: exit %d, %q", code, stderr)
	}

	// Usage and configuration errors: status 2.
	for _, args := range [][]string{
		{"--dns-zone", labZone, "dns", "example.com", "BOGUS"},
		{"--dns-zone", labZone, "dns", "example.com"},
		{"--dns-zone", "missing.zone", "dns", "example.com", "A"},
		{"--dns-zone", labZone, "--dns-server", "127.0.0.1:53", "dns", "example.com", "A"},
		{"--dns-server", "127.0.0.1:0", "dns", "example.com", "A"},
	} {
		if _, code, stderr := runDNS(t, args...); code != 2 || !strings.HasPrefix(stderr, "portcullis: ") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
}

func TestNewResolverCaches(t *testing.T) {
	z := dns.NewZone()
	z.Add("ok.example", dns.Record{Type: dns.TypeA, TTL: 60})
	srv := dnstest.Serve(t, z)
	r, err := newResolver(&globalFlags{dnsServers: []string{srv.Addr()}, dnsTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c, ok := r.(*dns.Cache)
	if !ok {
		t.Fatalf("resolver is a %T, want a *dns.Cache", r)
	}
	for range 3 {
		if _, err := c.Query(t.Context(), "ok.example", dns.TypeA); err != nil {
			t.Fatal(err)
		}
	}
	if srv.Queries() != 1 {
		t.Errorf("%d queries reached the server", srv.Queries())
	}
	if _, err := newResolver(&globalFlags{dnsZone: labZone, dnsServers: []string{"127.0.0.1:53"}}); err == nil {
		t.Error("--dns-zone with --dns-server accepted")
	}
}

func TestReport(t *testing.T) {
	var b bytes.Buffer
	if code := report(&b, errors.New("boom")); code != 2 || b.String() != "portcullis: boom\n" {
		t.Errorf("plain error: %d %q", code, b.String())
	}
	b.Reset()
	if code := report(&b, &exitError{code: 1}); code != 1 || b.Len() != 0 {
		t.Errorf("silent: %d %q", code, b.String())
	}
	b.Reset()
	if code := report(&b, &exitError{code: 1, err: errors.New("dns failed")}); code != 1 || b.String() != "portcullis: dns failed\n" {
		t.Errorf("coded: %d %q", code, b.String())
	}
}
