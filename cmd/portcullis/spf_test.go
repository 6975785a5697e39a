package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"portcullis/internal/dns"
	"portcullis/internal/dns/dnstest"
)

const spfLabZone = "../../examples/lab.zone"

// runSPF runs "portcullis ARGS..." with only the spf command attached; err
// is what main turns into exit status 2.
func runSPF(t *testing.T, args ...string) (string, error) {
	t.Helper()
	g := &globalFlags{}
	root := &cobra.Command{Use: "portcullis", SilenceUsage: true, SilenceErrors: true}
	g.register(root)
	root.AddCommand(newSPFCmd(g))
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestSPFCommandText(t *testing.T) {
	out, err := runSPF(t, "--dns-zone", spfLabZone, "spf", "--ip", "192.0.2.10", "--helo", "mail.example.com", "--mail-from", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"SPF check of alice@example.com (identity mailfrom) for client 192.0.2.10, HELO mail.example.com\n",
		`record: "v=spf1 ip4:192.0.2.0/24 include:_spf.example.net -all"`,
		"✓ ip4:192.0.2.0/24",
		"Result: pass (ip4:192.0.2.0/24)\n",
		"DNS lookups: 0 of 10, void lookups: 0 of 2",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// A sender the domain does not authorize: fail, still exit status 0.
	out, err = runSPF(t, "--dns-zone", spfLabZone, "spf", "--ip", "203.0.113.9", "--helo", "mail.example.com", "--mail-from", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"✗ include:_spf.example.net     no match (include gave softfail), DNS lookup 1\n",
		"      include _spf.example.net\n",
		"        ✓ ~all ",
		"✓ -all ",
		"Result: fail (-all)\n",
		"Explanation: example.com does not designate 203.0.113.9 as a permitted sender",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// --mail-from "": the HELO identity.
	out, err = runSPF(t, "--dns-zone", spfLabZone, "spf", "--ip", "192.0.2.20", "--helo", "mail.example.com", "--mail-from", "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "postmaster@mail.example.com (identity helo)") || !strings.Contains(out, "Result: pass (a)") {
		t.Errorf("HELO identity:\n%s", out)
	}
}

func TestSPFCommandJSON(t *testing.T) {
	z := dns.NewZone()
	z.Add("example.org", dns.Record{Type: dns.TypeTXT, TTL: 60, TXT: []string{"v=spf1 exists:slow.example.org -all"}})
	z.SetFault("slow.example.org", 0, dns.FaultTimeout)
	srv := dnstest.Serve(t, z)
	out, err := runSPF(t, "--dns-server", srv.Addr(), "--dns-timeout", "100ms",
		"spf", "--ip", "2001:db8::1", "--helo", "mx.example.org", "--mail-from", "bob@example.org", "--json")
	if err != nil {
		t.Fatal(err) // a temperror is a result, not a usage error
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, k := range []string{"result", "explanation", "domain", "identity", "lookups", "void_lookups", "trace"} {
		if _, ok := v[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, out)
		}
	}
	if v["result"] != "temperror" || v["identity"] != "mailfrom" || v["domain"] != "example.org" || v["lookups"] != 1.0 {
		t.Errorf("JSON %s", out)
	}
}

func TestSPFCommandUsage(t *testing.T) {
	for _, args := range [][]string{
		{"spf", "--helo", "a.example", "--mail-from", "x@a.example"},               // no --ip
		{"spf", "--ip", "192.0.2.300", "--mail-from", "x@a.example"},               // bad --ip
		{"spf", "--ip", "fe80::1%eth0", "--mail-from", "x@a.example"},              // zone
		{"spf", "--ip", "192.0.2.1"},                                               // no identity
		{"spf", "--ip", "192.0.2.1", "--mail-from", "x@a.example", "extra"},        // argument
		{"spf", "--ip", "192.0.2.1", "--mail-from", "x@a.example", "--check-helo"}, // --check-helo without --helo
	} {
		if _, err := runSPF(t, append([]string{"--dns-zone", spfLabZone}, args...)...); err == nil {
			t.Errorf("%q: no usage error", args)
		}
	}
}
