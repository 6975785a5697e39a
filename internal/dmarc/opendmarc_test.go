package dmarc

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"portcullis/internal/testutil"
)

// openDMARCCases is ../shared/testdata/dmarc-opendmarc/opendmarc-cases.json.
type openDMARCCases struct {
	RecordParse []struct {
		ID      int    `json:"id"`
		Record  string `json:"record"`
		Outcome string `json:"outcome"`
	} `json:"record_parse"`
	Alignment []struct {
		ID      int    `json:"id"`
		Domain  string `json:"domain"`
		Against string `json:"against"`
		Mode    string `json:"mode"`
		Outcome int    `json:"outcome"`
	} `json:"alignment"`
	FromDomain []struct {
		ID          int    `json:"id"`
		HeaderValue string `json:"header_value"`
		Domain      string `json:"domain"`
	} `json:"from_domain"`
	OrgDomain []struct {
		ID        int    `json:"id"`
		Domain    string `json:"domain"`
		OrgDomain string `json:"org_domain"`
	} `json:"org_domain"`
}

func loadOpenDMARC(t *testing.T) (openDMARCCases, string) {
	t.Helper()
	dir := testutil.SharedTestdata(t, "dmarc-opendmarc")
	b, err := os.ReadFile(filepath.Join(dir, "opendmarc-cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c openDMARCCases
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c, dir
}

// recordParseDeviations lists the OpenDMARC record-parse cases where this
// package follows the RFC and OpenDMARC does not; the value is this
// package's outcome (true = a record that applies).
var recordParseDeviations = map[int]struct {
	valid bool
	why   string
}{
	// OpenDMARC accepts "n" for none; RFC 9989 §4.8 dmarc-request allows
	// only none/quarantine/reject, and with no rua the record does not
	// apply (§4.10.1).
	5: {false, "p=n is not a valid policy"},
	// OpenDMARC refuses the record; RFC 9989 §4.8 (and RFC 7489 §6.3) say
	// syntax errors in other tags are discarded in favour of defaults.
	10: {true, "adkim=bob: default r applies"},
	11: {true, "aspf=bob: default r applies"},
	12: {true, "rf=bob: removed tag (RFC 9989) / unknown format, default afrf (RFC 7489)"},
	13: {true, "ri=bob: removed tag (RFC 9989) / default 86400 (RFC 7489)"},
	14: {true, "pct=500: removed tag (RFC 9989) / default 100 (RFC 7489)"},
	19: {true, "rf=000...: removed tag (RFC 9989) / unknown format, default afrf (RFC 7489)"},
}

func TestOpenDMARCRecordParse(t *testing.T) {
	c, _ := loadOpenDMARC(t)
	if len(c.RecordParse) != 19 {
		t.Fatalf("record_parse: %d cases, want 19", len(c.RecordParse))
	}
	for _, mode := range []Mode{RFC9989, RFC7489} {
		agree, deviate := 0, 0
		for _, tc := range c.RecordParse {
			want := tc.Outcome == "DMARC_PARSE_OKAY"
			if d, ok := recordParseDeviations[tc.ID]; ok {
				if d.valid == want {
					t.Errorf("case %d listed as a deviation but OpenDMARC agrees", tc.ID)
				}
				want = d.valid
				deviate++
			} else {
				agree++
			}
			got := false
			rec, err := ParseRecord(tc.Record, mode)
			if err == nil {
				_, _, _, _, got, _ = rec.Applicable()
			} else if !errors.Is(err, ErrNotDMARC) {
				t.Errorf("%v case %d: error %v does not wrap ErrNotDMARC", mode, tc.ID, err)
			}
			if got != want {
				t.Errorf("%v case %d %q: applicable %v, want %v", mode, tc.ID, tc.Record, got, want)
			}
		}
		t.Logf("%v: record_parse 19/19 checked: %d agree with OpenDMARC, %d deviations (RFC followed)", mode, agree, deviate)
		if agree != 12 || deviate != 7 {
			t.Errorf("%v: %d agree, %d deviate; want 12 and 7", mode, agree, deviate)
		}
	}
}

// alignmentDeviations: OpenDMARC tolerates stray dots around a domain;
// such strings are not domain names (empty labels, RFC 1035 §2.3.1), so
// they align with nothing here.
var alignmentDeviations = map[int]bool{
	5: false, // ".mac.com." has an empty first label
	6: false, // "....mac.com...." has empty labels
}

func TestOpenDMARCAlignment(t *testing.T) {
	c, dir := loadOpenDMARC(t)
	if len(c.Alignment) != 10 {
		t.Fatalf("alignment: %d cases, want 10", len(c.Alignment))
	}
	old, err := LoadPSLFile(filepath.Join(dir, "testfiles", "effective_tld_names.dat"))
	if err != nil {
		t.Fatal(err)
	}
	// OpenDMARC runs each case with its 2012 list and without a list; here
	// with the 2012 list (both sections, ICANN only) and with x/net's list.
	orgs := map[string]OrgDomainFunc{
		"2012 list":             PSLOrgDomain(old, false),
		"2012 list ICANN only":  PSLOrgDomain(old, true),
		"x/net list ICANN only": PSLOrgDomain(EmbeddedPSL(), true),
	}
	for name, org := range orgs {
		agree := 0
		for _, tc := range c.Alignment {
			want := tc.Outcome == 0
			if d, ok := alignmentDeviations[tc.ID]; ok {
				want = d
			} else {
				agree++
			}
			mode := AlignRelaxed
			if tc.Mode == "strict" {
				mode = AlignStrict
			}
			got, err := Aligned(mode, tc.Domain, tc.Against, org)
			if err != nil {
				t.Errorf("%s case %d: %v", name, tc.ID, err)
			}
			if got != want {
				t.Errorf("%s case %d (%s %q vs %q): aligned %v, want %v", name, tc.ID, tc.Mode, tc.Domain, tc.Against, got, want)
			}
		}
		t.Logf("%s: alignment 10/10 checked: %d agree with OpenDMARC, %d deviations", name, agree, len(alignmentDeviations))
		if agree != 8 {
			t.Errorf("%s: %d agree, want 8", name, agree)
		}
	}
}

// fromDomainDeviations: OpenDMARC takes the first mailbox of any string it
// can scan; this package follows RFC 5322 and RFC 9989 §5.3.1.
var fromDomainDeviations = map[int]error{
	6:  ErrFromSyntax,            // "<<<><joe@joe.com>>>" is not an address-list
	7:  ErrMultipleAuthorDomains, // two domains: DMARC validation is not possible (RFC 9989 §5.3.1)
	8:  ErrMultipleAuthorDomains, // idem
	9:  ErrFromSyntax,            // "Mail From:<joe@joe.com>": a group without its ';' (a header name pasted into the value)
	13: ErrFromSyntax,            // "From: Davide D'Marco <user@blah.com>": idem
}

func TestOpenDMARCFromDomain(t *testing.T) {
	c, _ := loadOpenDMARC(t)
	if len(c.FromDomain) != 13 {
		t.Fatalf("from_domain: %d cases, want 13", len(c.FromDomain))
	}
	agree := 0
	for _, tc := range c.FromDomain {
		got, err := AuthorDomain([]string{tc.HeaderValue})
		if want, ok := fromDomainDeviations[tc.ID]; ok {
			if !errors.Is(err, want) {
				t.Errorf("case %d %q: got %q, %v; want error %v", tc.ID, tc.HeaderValue, got, err, want)
			}
			continue
		}
		agree++
		if err != nil || got != tc.Domain {
			t.Errorf("case %d %q: got %q, %v; want %q", tc.ID, tc.HeaderValue, got, err, tc.Domain)
		}
	}
	t.Logf("from_domain 13/13 checked: %d agree with OpenDMARC, %d deviations (RFC followed)", agree, len(fromDomainDeviations))
	if agree != 8 {
		t.Errorf("%d agree, want 8", agree)
	}
}

func TestOpenDMARCOrgDomain(t *testing.T) {
	c, dir := loadOpenDMARC(t)
	if len(c.OrgDomain) != 3 {
		t.Fatalf("org_domain: %d cases, want 3", len(c.OrgDomain))
	}
	old, err := LoadPSLFile(filepath.Join(dir, "testfiles", "effective_tld_names.dat"))
	if err != nil {
		t.Fatal(err)
	}
	pass := 0
	for _, icannOnly := range []bool{false, true} {
		for _, tc := range c.OrgDomain {
			got, err := OrganizationalDomainPSL(old, tc.Domain, icannOnly)
			if err != nil || got != tc.OrgDomain {
				t.Errorf("case %d %q (icannOnly %v): %q, %v; want %q", tc.ID, tc.Domain, icannOnly, got, err, tc.OrgDomain)
				continue
			}
			pass++
		}
	}
	t.Logf("org_domain: %d/6 (3 cases, each with and without the PRIVATE section)", pass)
}
