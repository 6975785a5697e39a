package dmarc

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"portcullis/internal/testutil"
)

type pslCheck struct {
	line      int
	commented bool   // the upstream file comments the check out
	input     string // "" for null
	expected  string // "" for null
}

var checkRE = regexp.MustCompile(`^(//)?checkPublicSuffix\((null|'[^']*'), (null|'[^']*')\);`)

func loadPSLChecks(t *testing.T, path string) []pslCheck {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []pslCheck
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		m := checkRE.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		unq := func(s string) string {
			if s == "null" {
				return ""
			}
			return strings.Trim(s, "'")
		}
		out = append(out, pslCheck{line: n, commented: m[1] != "", input: unq(m[2]), expected: unq(m[3])})
	}
	return out
}

// pslCommentedOut is what this matcher answers for the four checks the
// upstream file comments out ("Listed, but non-Internet, TLD"): .local is
// not in the list, so the implicit "*" rule applies and only the bare TLD
// has no registrable domain.
var pslCommentedOut = map[string]string{
	"local":             "",
	"example.local":     "example.local",
	"b.example.local":   "example.local",
	"a.b.example.local": "example.local",
}

// registrableForTest applies the test file's conventions: null input and
// names that are not domain names (a leading dot) have no registrable
// domain; IDN results are compared as A-labels.
func registrableForTest(t *testing.T, list PublicSuffixList, input string, icannOnly bool) string {
	if input == "" {
		return ""
	}
	r, err := RegistrableDomain(list, input, icannOnly)
	if err != nil {
		return ""
	}
	return r
}

func TestPSLOfficialVectors(t *testing.T) {
	dir := testutil.SharedTestdata(t, "dmarc-psl")
	list, err := LoadPSLFile(filepath.Join(dir, "public_suffix_list.dat"))
	if err != nil {
		t.Fatal(err)
	}
	checks := loadPSLChecks(t, filepath.Join(dir, "test_psl.txt"))
	if len(checks) != 82 {
		t.Fatalf("%d checks, want 82", len(checks))
	}
	active, passed, commented := 0, 0, 0
	for _, c := range checks {
		want := c.expected
		if c.commented {
			commented++
			w, ok := pslCommentedOut[c.input]
			if !ok {
				t.Fatalf("line %d: unexpected commented check %q", c.line, c.input)
			}
			want = w
		} else {
			active++
		}
		if want != "" {
			a, err := NormalizeDomain(want)
			if err != nil {
				t.Fatalf("line %d: expected %q: %v", c.line, want, err)
			}
			want = a
		}
		got := registrableForTest(t, list, c.input, false)
		if got != want {
			t.Errorf("line %d: checkPublicSuffix(%q): %q, want %q", c.line, c.input, got, want)
			continue
		}
		if !c.commented {
			passed++
		}
	}
	t.Logf("PSL vectors: %d/%d active checks pass (full list); %d commented-out checks answered as listed; 82 in all", passed, active, commented)
	if active != 78 || commented != 4 {
		t.Errorf("active %d, commented %d; want 78 and 4", active, commented)
	}
}

// TestPSLICANNOnly runs the official vectors with the ICANN section only:
// the checks that depend on a PRIVATE rule change, and only those.
func TestPSLICANNOnly(t *testing.T) {
	dir := testutil.SharedTestdata(t, "dmarc-psl")
	list, err := LoadPSLFile(filepath.Join(dir, "public_suffix_list.dat"))
	if err != nil {
		t.Fatal(err)
	}
	// uk.com is a PRIVATE rule (CentralNic); under ICANN rules only, com
	// is the suffix.
	private := map[string]string{
		"uk.com":             "uk.com",
		"example.uk.com":     "uk.com",
		"b.example.uk.com":   "uk.com",
		"a.b.example.uk.com": "uk.com",
	}
	differ := 0
	for _, c := range loadPSLChecks(t, filepath.Join(dir, "test_psl.txt")) {
		if c.commented {
			continue
		}
		want := c.expected
		if w, ok := private[c.input]; ok {
			want = w
			differ++
		}
		if want != "" {
			want, _ = NormalizeDomain(want)
		}
		if got := registrableForTest(t, list, c.input, true); got != want {
			t.Errorf("line %d: ICANN-only checkPublicSuffix(%q): %q, want %q", c.line, c.input, got, want)
		}
	}
	if differ != 4 {
		t.Errorf("%d checks differ, want 4", differ)
	}
}

// TestEmbeddedPSL checks the x/net adapter, including its ICANN-only
// answers, on names whose rules are stable.
func TestEmbeddedPSL(t *testing.T) {
	l := EmbeddedPSL()
	for _, tc := range []struct {
		domain    string
		icannOnly bool
		want      string
	}{
		{"www.example.com", false, "example.com"},
		{"foo.blogspot.com", false, "foo.blogspot.com"},
		{"foo.blogspot.com", true, "blogspot.com"},
		{"a.b.example.uk.com", false, "example.uk.com"},
		{"a.b.example.uk.com", true, "uk.com"},
		{"yoni.za.org", false, "yoni.za.org"},
		{"yoni.za.org", true, "za.org"},
		{"a.b.example.co.uk", true, "example.co.uk"},
		{"www.ck", true, "www.ck"},
		{"a.b.test.ck", true, "b.test.ck"},
		{"example.example", true, "example.example"},
		{"com", true, ""},
	} {
		got, err := RegistrableDomain(l, tc.domain, tc.icannOnly)
		if err != nil || got != tc.want {
			t.Errorf("%q icannOnly=%v: %q, %v; want %q", tc.domain, tc.icannOnly, got, err, tc.want)
		}
	}
}

func TestParsePSL(t *testing.T) {
	const data = `// comment
// ===BEGIN ICANN DOMAINS===
com
*.jp
*.kobe.jp
!city.kobe.jp
jp
公司.cn
cn
// ===END ICANN DOMAINS===
// ===BEGIN PRIVATE DOMAINS===
blogspot.com
a.*.example
// ===END PRIVATE DOMAINS===
`
	l, err := ParsePSL(strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if l.Len() != 9 {
		t.Errorf("Len %d, want 9", l.Len())
	}
	for _, tc := range []struct {
		domain    string
		icannOnly bool
		want      string
	}{
		{"x.blogspot.com", false, "blogspot.com"},
		{"x.blogspot.com", true, "com"},
		{"www.city.kobe.jp", false, "kobe.jp"},
		{"www.other.kobe.jp", false, "other.kobe.jp"},
		{"x.xn--55qx5d.cn", false, "xn--55qx5d.cn"},
		{"z.a.b.example", false, "a.b.example"},
		{"z.a.b.example", true, "example"},
		{"unlisted", false, "unlisted"},
	} {
		if got := l.PublicSuffix(tc.domain, tc.icannOnly); got != tc.want {
			t.Errorf("PublicSuffix(%q, %v) = %q, want %q", tc.domain, tc.icannOnly, got, tc.want)
		}
	}
	if _, err := ParsePSL(strings.NewReader("// nothing\n")); err == nil {
		t.Error("empty list accepted")
	}
	if _, err := ParsePSL(strings.NewReader("a..b\n")); err == nil {
		t.Error("rule with an empty label accepted")
	}
}
