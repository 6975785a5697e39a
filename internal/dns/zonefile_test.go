package dns_test

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"portcullis/internal/dns"
)

var addrCmp = cmp.Comparer(func(x, y netip.Addr) bool { return x == y })

func TestLoadZoneFile(t *testing.T) {
	z, err := dns.LoadZoneFile("testdata/example.zone")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		typ  dns.Type
		want *dns.Response
	}{
		{"example.com", dns.TypeTXT, &dns.Response{RCode: dns.Success, TTL: time.Hour, Records: []dns.Record{
			// Multi-string TXT keeps its character-strings apart.
			txt(3600, "v=spf1 ip4:192.0.2.0/24 ", "include:_spf.example.net -all"),
		}}},
		{"example.com", dns.TypeMX, &dns.Response{RCode: dns.Success, TTL: time.Hour, Records: []dns.Record{
			{Type: dns.TypeMX, TTL: 3600, Pref: 10, Host: "mx1.example.com"}, // relative name
			{Type: dns.TypeMX, TTL: 3600, Pref: 20, Host: "mx2.example.net"},
		}}},
		{"example.com", dns.TypeAAAA, &dns.Response{RCode: dns.Success, TTL: time.Hour, Records: []dns.Record{
			{Type: dns.TypeAAAA, TTL: 3600, IP: netip.MustParseAddr("2001:db8::1")},
		}}},
		{"mx1.example.com", dns.TypeA, &dns.Response{RCode: dns.Success, TTL: 300 * time.Second, Records: []dns.Record{
			a(300, "192.0.2.25"),
		}}},
		{"www.example.com", dns.TypeA, &dns.Response{RCode: dns.Success, TTL: 60 * time.Second,
			CNAMEs: []string{"alias.example.com", "host.example.com"}, Records: []dns.Record{a(3600, "192.0.2.80")}}},
		{"1.2.0.192.in-addr.arpa", dns.TypePTR, &dns.Response{RCode: dns.Success, TTL: time.Hour, Records: []dns.Record{
			{Type: dns.TypePTR, TTL: 3600, Host: "host.example.com"},
		}}},
		{"quoted.example.com", dns.TypeTXT, &dns.Response{RCode: dns.Success, TTL: time.Hour, Records: []dns.Record{
			txt(3600, `a "quoted" word`, `back\slash`, "byte\xff"),
		}}},
		// Negative TTL: min(SOA TTL 3600, MINIMUM 600), RFC 2308 §5.
		{"nx.example.com", dns.TypeA, &dns.Response{RCode: dns.NXDomain, TTL: 600 * time.Second}},
		{"ns1.example.com", dns.TypeTXT, &dns.Response{RCode: dns.Success, TTL: 600 * time.Second}},
		{"c.example.com", dns.TypeTXT, &dns.Response{RCode: dns.Success, TTL: 600 * time.Second}},
		// A name with only an NS record exists.
		{"example.com", dns.TypeCNAME, &dns.Response{RCode: dns.Success, TTL: 600 * time.Second}},
		{"x.wild.example.com", dns.TypeTXT, &dns.Response{RCode: dns.Success, TTL: time.Hour, Records: []dns.Record{
			txt(3600, "wildcard"),
		}}},
	}
	for _, tt := range tests {
		got := query(t, z, tt.name, tt.typ)
		tt.want.Name, tt.want.Type = tt.name, tt.typ
		if diff := cmp.Diff(tt.want, got, addrCmp); diff != "" {
			t.Errorf("%s %s (-want +got):\n%s", tt.name, tt.typ, diff)
		}
	}
	resp := query(t, z, "example.com", dns.TypeSOA)
	if len(resp.Records) != 1 || resp.Records[0].Host != "ns1.example.com" {
		t.Errorf("SOA: %+v", resp)
	}
}

func TestLoadZoneOrigin(t *testing.T) {
	src := "@ 300 IN TXT \"apex\"\nsub 300 IN A 192.0.2.1\n$TTL 120\nnottl IN A 192.0.2.2\n"
	z, err := dns.LoadZone(strings.NewReader(src), "Example.ORG.")
	if err != nil {
		t.Fatal(err)
	}
	if r := query(t, z, "example.org", dns.TypeTXT); len(r.Records) != 1 || r.Records[0].Text() != "apex" {
		t.Errorf("apex: %+v", r)
	}
	if r := query(t, z, "sub.example.org", dns.TypeA); len(r.Records) != 1 {
		t.Errorf("relative name: %+v", r)
	}
	if r := query(t, z, "nottl.example.org", dns.TypeA); len(r.Records) != 1 || r.Records[0].TTL != 120 {
		t.Errorf("$TTL: %+v", r)
	}
	// No SOA: the zone's default negative TTL.
	if r := query(t, z, "nx.example.org", dns.TypeA); r.TTL != dns.DefaultNegativeTTL {
		t.Errorf("negative TTL without SOA: %v", r.TTL)
	}
	// Before any TTL: 3600 s.
	z, err = dns.LoadZone(strings.NewReader("x.example. IN A 192.0.2.1\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if r := query(t, z, "x.example", dns.TypeA); r.Records[0].TTL != 3600 {
		t.Errorf("default TTL %d", r.Records[0].TTL)
	}
}

func TestLoadZoneErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"syntax", "$ORIGIN example.com.\n$TTL 60\nok IN A 192.0.2.1\nbad IN A 999.1.1.1\n", "line: 4"},
		{"unknown type", "$ORIGIN example.com.\n\nx 60 IN BOGUS foo\n", "line: 3"},
		{"unterminated", "$ORIGIN example.com.\nx 60 IN TXT \"open\n", "line:"},
		{"relative without origin", "www 60 IN A 192.0.2.1\n", "line: 1"},
		{"include refused", "$INCLUDE other.zone\n", "$INCLUDE directive not allowed"},
		{"class", "x.example. 60 CH TXT \"chaos\"\n", "class CH is not IN"},
		{"cname and other data", "x.example. 60 IN CNAME y.example.\nx.example. 60 IN TXT \"t\"\n", "CNAME and other data at x.example"},
		{"two cnames", "x.example. 60 IN CNAME y.example.\nx.example. 60 IN CNAME z.example.\n", "2 CNAME records at x.example"},
		{"two soas", "x. 60 IN SOA a. b. 1 2 3 4 5\nx. 60 IN SOA a. b. 1 2 3 4 5\n", "second SOA"},
		{"escaped dot", "a\\.b.example. 60 IN A 192.0.2.1\n", "escaped dot"},
		{"label too long", strings.Repeat("a", 64) + ".example. 60 IN A 192.0.2.1\n", "line: 1"},
	}
	for _, tt := range tests {
		_, err := dns.LoadZone(strings.NewReader(tt.src), "")
		if err == nil {
			t.Errorf("%s: no error", tt.name)
			continue
		}
		if !errors.Is(err, dns.ErrBadZone) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %q, want ErrBadZone mentioning %q", tt.name, err, tt.want)
		}
	}
}

func TestLoadZoneFileInclude(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(path, s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(sub, "inc.zone"), "inc 60 IN TXT \"included\"\n")
	write(filepath.Join(dir, "main.zone"), "$ORIGIN example.com.\n$INCLUDE sub/inc.zone\nmain 60 IN TXT \"main\"\n")
	z, err := dns.LoadZoneFile(filepath.Join(dir, "main.zone"))
	if err != nil {
		t.Fatal(err)
	}
	if r := query(t, z, "inc.example.com", dns.TypeTXT); len(r.Records) != 1 {
		t.Errorf("included record: %+v", r)
	}

	// Nothing outside the zone file's directory, by path or by link.
	outside := filepath.Join(t.TempDir(), "secret.zone")
	write(outside, "secret.example. 60 IN TXT \"secret\"\n")
	if err := os.Symlink(outside, filepath.Join(dir, "link.zone")); err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(dir, outside)
	for _, inc := range []string{rel, outside, "link.zone", "missing.zone"} {
		write(filepath.Join(dir, "bad.zone"), "$INCLUDE "+inc+"\n")
		_, err := dns.LoadZoneFile(filepath.Join(dir, "bad.zone"))
		if err == nil || !errors.Is(err, dns.ErrBadZone) {
			t.Errorf("$INCLUDE %s: err %v, want refusal", inc, err)
		}
	}
	if _, err := dns.LoadZoneFile(filepath.Join(dir, "nonexistent.zone")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestExampleLabZone(t *testing.T) {
	z, err := dns.LoadZoneFile("../../examples/lab.zone")
	if err != nil {
		t.Fatal(err)
	}
	txts, _, err := dns.LookupTXT(context.Background(), z, "example.com")
	if err != nil || !cmp.Equal(txts, []string{"v=spf1 ip4:192.0.2.0/24 include:_spf.example.net -all"}) {
		t.Errorf("example.com TXT %q %v", txts, err)
	}
	if txts, _, err := dns.LookupTXT(context.Background(), z, "_spf.example.net"); err != nil || len(txts) != 1 || !strings.HasPrefix(txts[0], "v=spf1 ") {
		t.Errorf("include target %q %v", txts, err)
	}
	if mx, _, err := dns.LookupMX(context.Background(), z, "example.com"); err != nil || len(mx) != 2 {
		t.Errorf("MX %+v %v", mx, err)
	}
	if ips, _, err := dns.LookupAddrs(context.Background(), z, "mx1.example.com", false); err != nil || len(ips) != 1 {
		t.Errorf("A %v %v", ips, err)
	}
}

// FuzzLoadZone checks that no zone file makes LoadZone panic, that every
// error wraps ErrBadZone, and that a loaded zone answers without panicking.
func FuzzLoadZone(f *testing.F) {
	if src, err := os.ReadFile("testdata/example.zone"); err == nil {
		f.Add(src)
	}
	f.Add([]byte("$ORIGIN example.com.\n@ 60 IN TXT \"a\" \"b\"\nwww 60 IN CNAME @\n"))
	f.Add([]byte("$TTL 60\nx.example. IN MX 0 .\n*.example. IN A 192.0.2.1\n"))
	f.Add([]byte("$GENERATE 1-3 host$ 60 IN A 192.0.2.$\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		z, err := dns.LoadZone(bytes.NewReader(data), "example.com.")
		if err != nil {
			if !errors.Is(err, dns.ErrBadZone) {
				t.Fatalf("error %v does not wrap ErrBadZone", err)
			}
			return
		}
		ctx := context.Background()
		for _, name := range []string{"example.com", "www.example.com", "x.example", "a.b.example.com"} {
			for _, typ := range []dns.Type{dns.TypeA, dns.TypeTXT, dns.TypeCNAME, dns.TypeMX} {
				resp, err := z.Query(ctx, name, typ)
				if err == nil && resp.Name != name {
					t.Fatalf("Name %q for %q", resp.Name, name)
				}
				if err != nil && !dns.IsTemporary(err) {
					t.Fatalf("%s %s: %v", name, typ, err)
				}
			}
		}
	})
}
