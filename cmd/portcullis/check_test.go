package main

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"portcullis/internal/dns"
	"portcullis/internal/dns/dnstest"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkZone publishes three domains: one in order, one with p=none, one
// with an SPF tree over the lookup limit.
func checkZone() *dns.Zone {
	z := dns.NewZone()
	txt := func(name, v string) { z.Add(name, dns.Record{Type: dns.TypeTXT, TTL: 60, TXT: []string{v}}) }
	txt("ok.example", "v=spf1 ip4:192.0.2.0/24 -all")
	txt("_dmarc.ok.example", "v=DMARC1; p=reject; rua=mailto:d@ok.example")
	z.Add("ok.example", dns.Record{Type: dns.TypeMX, TTL: 60, Pref: 10, Host: "mx.ok.example"})
	z.Add("mx.ok.example", dns.Record{Type: dns.TypeA, TTL: 60, IP: netip.MustParseAddr("192.0.2.1")})
	txt("mon.example", "v=spf1 ip4:192.0.2.0/24 ~all")
	txt("_dmarc.mon.example", "v=DMARC1; p=none")
	var incs []string
	for i := range 11 {
		n := string(rune('a'+i)) + ".inc.example"
		incs = append(incs, "include:"+n)
		txt(n, "v=spf1 ip4:198.51.100."+string(rune('0'+i%10))+" -all")
	}
	txt("many.example", "v=spf1 "+strings.Join(incs, " ")+" -all")
	txt("_dmarc.many.example", "v=DMARC1; p=quarantine; rua=mailto:d@many.example")
	return z
}

func TestCheckCommand(t *testing.T) {
	srv := dnstest.Serve(t, checkZone())
	dir := t.TempDir()
	list := filepath.Join(dir, "domains.txt")
	if err := os.WriteFile(list, []byte("# partners\nmany.example   # over the limit\n\nOK.example.\nmon.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "posture.html")
	out, errOut, err := runCmd(t, newCheckCmd, "", "--dns-server", srv.Addr(), "--dns-timeout", "300ms",
		"check", "--concurrency", "2", "--from-file", list, "--report", report, "mon.example", "zz.example")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	// Input order (arguments first, then the file), repeats dropped.
	var order []int
	for _, d := range []string{"mon.example  grade", "zz.example  grade", "many.example  grade", "ok.example  grade"} {
		i := strings.Index(out, d)
		if i < 0 {
			t.Fatalf("output lacks %q:\n%s", d, out)
		}
		order = append(order, i)
	}
	for i := 1; i < len(order); i++ {
		if order[i] < order[i-1] {
			t.Errorf("results not in input order:\n%s", out)
		}
	}
	if strings.Count(out, "mon.example  grade") != 1 {
		t.Error("mon.example checked twice")
	}
	for _, want := range []string{"ok.example  grade A", "SPF    FAIL  11 DNS lookups, over the limit of 10", "include:k.inc.example", "p=none: monitoring only"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(errOut, "\r[") {
		t.Errorf("progress bar drawn on a non-terminal: %q", errOut)
	}
	html := readFile(t, report)
	for _, want := range []string{"<!DOCTYPE html>", "many.example", "ok.example", "The path to p=reject"} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %q", want)
		}
	}

	// JSON, Markdown.
	md := filepath.Join(dir, "posture.md")
	out, _, err = runCmd(t, newCheckCmd, "", "--dns-server", srv.Addr(), "--dns-timeout", "300ms", "check", "--json", "--report", md, "--selector", "s2026", "ok.example")
	if err != nil {
		t.Fatal(err)
	}
	var reps []struct {
		Domain string `json:"domain"`
		Grade  string `json:"grade"`
		DKIM   struct {
			Checked []string `json:"checked"`
		} `json:"dkim"`
	}
	if err := json.Unmarshal([]byte(out), &reps); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(reps) != 1 || reps[0].Domain != "ok.example" || reps[0].DKIM.Checked[0] != "s2026" {
		t.Errorf("JSON: %+v", reps)
	}
	if !strings.HasPrefix(readFile(t, md), "# Email authentication report for ok.example") {
		t.Error("Markdown report")
	}
}

func TestCheckCommandErrors(t *testing.T) {
	z := dns.NewZone()
	for _, args := range [][]string{
		{"check"},
		{"check", "--report", "x.pdf", "a.example"},
		{"check", "--concurrency", "0", "a.example"},
		{"check", "--from-file", "/nonexistent/list", "a.example"},
	} {
		srv := dnstest.Serve(t, z)
		if _, _, err := runCmd(t, newCheckCmd, "", append([]string{"--dns-server", srv.Addr()}, args...)...); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
