// Package rspamd loads the rspamd DMARC cases of the shared test data
// (../shared/testdata/dmarc-rspamd/rspamd-cases.json) for the tests of
// several packages: the case list and its DNS zone.
package rspamd

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"portcullis/internal/dns"
	"portcullis/internal/testutil"
)

// Cases is the case file.
type Cases struct {
	Zone []struct {
		Name    string   `json:"name"`
		Type    string   `json:"type"`
		Replies []string `json:"replies"`
		RCode   string   `json:"rcode"`
	} `json:"zone"`
	DMARCCases []struct {
		Name          string   `json:"name"`
		Message       string   `json:"message"`
		IP            string   `json:"ip"`
		From          string   `json:"from"`
		HELO          string   `json:"helo"`
		ExpectSymbols []string `json:"expect_symbols"`
	} `json:"dmarc_cases"`
}

// Load reads the case file and checks it holds the 18 DMARC cases. It
// returns the cases and the folder of the messages they name; it skips
// (or fails with CI=true) when the shared test data is absent.
func Load(tb testing.TB) (*Cases, string) {
	tb.Helper()
	dir := testutil.SharedTestdata(tb, "dmarc-rspamd")
	b, err := os.ReadFile(filepath.Join(dir, "rspamd-cases.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var c Cases
	if err := json.Unmarshal(b, &c); err != nil {
		tb.Fatal(err)
	}
	if len(c.DMARCCases) != 18 {
		tb.Fatalf("%d DMARC cases, want 18", len(c.DMARCCases))
	}
	return &c, dir
}

// DNSZone turns the case file's zone into a dns.Zone: "norec" makes the
// name exist without records of the type (NODATA), "nxdomain" leaves it
// out, "timeout" makes queries of that type time out. Names absent from
// the zone are NXDOMAIN, as the case file asks.
func (c *Cases) DNSZone(tb testing.TB) *dns.Zone {
	tb.Helper()
	z := dns.NewZone()
	for _, e := range c.Zone {
		typ, err := dns.ParseType(e.Type)
		if err != nil {
			tb.Fatalf("zone %s: %v", e.Name, err)
		}
		switch e.RCode {
		case "norec":
			// A record of another type makes the name exist.
			other := dns.TypeTXT
			if typ == dns.TypeTXT {
				other = dns.TypeMX
			}
			z.Add(e.Name, dns.Record{Type: other, TTL: 300, TXT: []string{"x"}, Host: "placeholder.invalid"})
			continue
		case "nxdomain":
			continue
		case "timeout":
			z.SetFault(e.Name, typ, dns.FaultTimeout)
			continue
		case "":
		default:
			tb.Fatalf("zone %s: rcode %q", e.Name, e.RCode)
		}
		for _, v := range e.Replies {
			rec := dns.Record{Type: typ, TTL: 300}
			switch typ {
			case dns.TypeTXT:
				rec.TXT = []string{v}
			case dns.TypeA, dns.TypeAAAA:
				rec.IP = netip.MustParseAddr(v)
			case dns.TypeMX:
				pref, host, _ := strings.Cut(v, " ")
				n, err := strconv.Atoi(pref)
				if err != nil {
					tb.Fatalf("zone %s MX %q", e.Name, v)
				}
				rec.Pref, rec.Host = uint16(n), host
			case dns.TypePTR, dns.TypeCNAME:
				rec.Host = v
			}
			z.Add(e.Name, rec)
		}
	}
	return z
}
