package spf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"portcullis/internal/dns"
	"portcullis/internal/dns/dnstest"
	"portcullis/internal/testutil"
)

// The conformance suites (see ../shared/testdata/SOURCES.md) run through
// the wire: each scenario's zone is a dns.Zone served by dnstest and asked
// by a dns.Client.

// suiteTimeout bounds one query attempt; TIMEOUT names are never answered.
const suiteTimeout = time.Second

// suiteFile is one YAML file of a suite and the number of tests it holds.
type suiteFile struct {
	dir, file string
	tests     int
	opts      Options
	// diverge lists the tests whose expected result is not the RFC 7208
	// one; the result asserted instead is given.
	diverge map[string]divergence
}

// divergence is a test whose preferred result (the first listed) is not
// the RFC 7208 result: the result asserted instead, and why.
type divergence struct {
	result Verdict
	why    string
}

// rfc4408Divergences are the tests of the RFC 4408 suite whose preferred
// result RFC 7208 changed. The RFC 7208 result is asserted exactly; the
// runner fails when an entry's result becomes the suite's preferred one,
// so that the table stays true.
var rfc4408Divergences = map[string]divergence{
	// RFC 7208 §4.4, §4.5 and Appendix D.1: the SPF RR type is no longer
	// queried; only TXT records count.
	"spfonly":     {None, "only an SPF-type record: RFC 7208 asks TXT only, so there is no record"},
	"spfoverride": {Fail, "SPF-type record ignored (RFC 7208 §4.4); the TXT record decides"},
	"multitxt1":   {PermError, "two v=spf1 TXT records is a permerror (RFC 7208 §4.5); the SPF-type record no longer overrides"},
	"multispf2":   {Pass, "the single TXT record decides; the two SPF-type records are not asked (RFC 7208 §4.4)"},
	"txttimeout":  {TempError, "the TXT lookup times out: temperror (RFC 7208 §4.4); no SPF-type fallback"},
	// RFC 7208 §4.6.4: more than 10 MX names is a permerror (RFC 4408
	// left the result open and preferred ignoring the excess).
	"mx-limit": {PermError, "more than 10 MX names: permerror (RFC 7208 §4.6.4)"},
	// RFC 7208 §5 and §5.7: a DNS error in "exists" is a temperror.
	"exists-dnserr": {TempError, "DNS timeout during exists: temperror (RFC 7208 §5)"},
	// A target name that cannot be a DNS name (empty or over-long label)
	// does not exist: the mechanism does not match. The RFC 7208 suite
	// prefers fail; the RFC 4408 suite preferred permerror.
	"invalid-domain-empty-label":    {Fail, "empty label in the target name: no match (RFC 7208 §4.3 by analogy; preferred by the RFC 7208 suite)"},
	"invalid-domain-long":           {Fail, "label over 63 octets in the target name: no match (preferred by the RFC 7208 suite)"},
	"invalid-domain-long-via-macro": {Fail, "label over 63 octets after macro expansion: no match (preferred by the RFC 7208 suite)"},
}

// pyspfDivergences are pyspf's own tests of its non-RFC modes (the
// "strict" key: 0 is lax, 2 is harsh). RFC 7208 §6 ignores the
// obsolete "default=" modifier, which gives neutral (as the OpenSPF
// RFC 7208 tests default-modifier-obsolete* require); "ambiguous" is not
// an SPF result.
var pyspfDivergences = map[string]divergence{
	"default-modifier":       {Neutral, "pyspf lax mode (strict: 0) implements the pre-RFC default= modifier; RFC 7208 §6 ignores unknown modifiers"},
	"default-modifier-harsh": {Neutral, "pyspf harsh mode (strict: 2) reports 'ambiguous', which is not an RFC 7208 result"},
}

func suiteFiles() []suiteFile {
	base := Options{DefaultExplanation: "DEFAULT", Timeout: 10 * time.Second}
	blitiri := base
	// The blitiri suite names single-label domains ("mx10", "include:d11")
	// throughout, which RFC 7208 §4.3 and §7.1 refuse; its upstream runs it
	// without enforcing that ("We don't enforce TLD structure").
	blitiri.AllowSingleLabel = true
	return []suiteFile{
		{dir: "spf-openspf", file: "rfc7208-tests.yml", tests: 203, opts: base},
		{dir: "spf-openspf", file: "rfc4408-tests.yml", tests: 191, opts: base, diverge: rfc4408Divergences},
		{dir: "spf-pyspf", file: "test.yml", tests: 16, opts: base, diverge: pyspfDivergences},
		{dir: "spf-blitiri", file: "blitirispf-tests.yml", tests: 21, opts: blitiri},
	}
}

type yamlScenario struct {
	Description string                 `yaml:"description"`
	Comment     string                 `yaml:"comment"`
	Tests       map[string]yamlTest    `yaml:"tests"`
	Zonedata    map[string][]yaml.Node `yaml:"zonedata"`
}

type yamlTest struct {
	Helo        string    `yaml:"helo"`
	Host        string    `yaml:"host"`
	Mailfrom    string    `yaml:"mailfrom"`
	Result      yaml.Node `yaml:"result"`
	Explanation *string   `yaml:"explanation"`
	Spec        yaml.Node `yaml:"spec"`
}

// latin1 turns the code points U+0000..U+00FF that YAML decodes from
// "\xNN" escapes back into the octets they stand for.
func latin1(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r <= 0xff {
			b.WriteByte(byte(r))
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func readScenarios(t *testing.T, path string) []yamlScenario {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []yamlScenario
	for {
		var sc yamlScenario
		err := dec.Decode(&sc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, sc)
	}
	return out
}

// expected returns the acceptable results of a test (a string or a list).
func (yt *yamlTest) expected(t *testing.T) []Verdict {
	switch yt.Result.Kind {
	case yaml.ScalarNode:
		return []Verdict{Verdict(yt.Result.Value)}
	case yaml.SequenceNode:
		var out []Verdict
		for _, n := range yt.Result.Content {
			out = append(out, Verdict(n.Value))
		}
		return out
	}
	t.Fatalf("result: unexpected YAML node kind %v", yt.Result.Kind)
	return nil
}

// suiteZone builds the scenario's zone as pyspf's test driver serves it:
//   - every SPF record is served as TXT unless the name has a TXT entry
//     (even "TXT: NONE"), since RFC 7208 implementations ask TXT only;
//   - TIMEOUT (a bare entry, or a "TIMEOUT: true" key) makes the name time
//     out for every type it has no real record of; SERVFAIL likewise
//     answers SERVFAIL;
//   - names starting with "error." time out;
//   - names absent from the data do not exist.
func suiteZone(t *testing.T, data map[string][]yaml.Node) *dns.Zone {
	t.Helper()
	z := dns.NewZone()
	type faultSpec struct {
		fault dns.Fault
		has   map[dns.Type]bool
	}
	faults := map[string]*faultSpec{}
	for rawName, entries := range data {
		name := strings.ToLower(strings.TrimSuffix(latin1(rawName), "."))
		hasTXT := false
		for _, e := range entries {
			if e.Kind == yaml.MappingNode && len(e.Content) == 2 && e.Content[0].Value == "TXT" {
				hasTXT = true
			}
		}
		has := map[dns.Type]bool{}
		z.Add(name, dns.Record{}) // the name exists even with no record
		for _, e := range entries {
			if e.Kind == yaml.ScalarNode {
				switch e.Value {
				case "TIMEOUT":
					faults[name] = &faultSpec{fault: dns.FaultTimeout}
				default:
					t.Fatalf("zone %s: unknown entry %q", name, e.Value)
				}
				continue
			}
			if e.Kind != yaml.MappingNode || len(e.Content) != 2 {
				t.Fatalf("zone %s: unexpected entry", name)
			}
			key, val := e.Content[0].Value, e.Content[1]
			rec := dns.Record{TTL: 300}
			switch key {
			case "TIMEOUT":
				faults[name] = &faultSpec{fault: dns.FaultTimeout}
				continue
			case "SERVFAIL":
				faults[name] = &faultSpec{fault: dns.FaultServFail}
				continue
			case "A", "AAAA":
				rec.Type = dns.TypeA
				if key == "AAAA" {
					rec.Type = dns.TypeAAAA
				}
				ip, err := netip.ParseAddr(val.Value)
				if err != nil {
					t.Fatalf("zone %s: %v", name, err)
				}
				rec.IP = ip
			case "PTR", "CNAME":
				rec.Type = dns.TypePTR
				if key == "CNAME" {
					rec.Type = dns.TypeCNAME
				}
				rec.Host = latin1(val.Value)
			case "MX":
				var mx []yaml.Node
				if err := val.Decode(&mx); err != nil || len(mx) != 2 {
					t.Fatalf("zone %s: bad MX", name)
				}
				var pref uint16
				if err := mx[0].Decode(&pref); err != nil {
					t.Fatalf("zone %s: bad MX preference: %v", name, err)
				}
				rec.Type, rec.Pref, rec.Host = dns.TypeMX, pref, latin1(mx[1].Value)
			case "TXT", "SPF":
				if key == "SPF" && hasTXT {
					continue
				}
				rec.Type = dns.TypeTXT
				switch val.Kind {
				case yaml.ScalarNode:
					if key == "TXT" && val.Value == "NONE" {
						continue
					}
					rec.TXT = []string{latin1(val.Value)}
				case yaml.SequenceNode:
					rec.TXT = []string{}
					for _, s := range val.Content {
						rec.TXT = append(rec.TXT, latin1(s.Value))
					}
				}
			default:
				t.Fatalf("zone %s: unknown record type %q", name, key)
			}
			has[rec.Type] = true
			z.Add(name, rec)
		}
		if f := faults[name]; f != nil {
			f.has = has
		}
	}
	z.SetFaultFunc(func(name string, ty dns.Type) dns.Fault {
		if strings.HasPrefix(name, "error.") {
			return dns.FaultTimeout
		}
		if f := faults[name]; f != nil && !f.has[ty] {
			return f.fault
		}
		return dns.FaultNone
	})
	return z
}

// suiteCounts tallies one file's outcome.
type suiteCounts struct {
	run, passed, diverged atomic.Int64
	mu                    sync.Mutex
	seen                  map[string]bool // divergence entries met
}

func TestSuites(t *testing.T) {
	for _, sf := range suiteFiles() {
		t.Run(sf.file, func(t *testing.T) {
			dir := testutil.SharedTestdata(t, sf.dir)
			scenarios := readScenarios(t, filepath.Join(dir, sf.file))
			counts := &suiteCounts{seen: map[string]bool{}}
			t.Run("run", func(t *testing.T) {
				for i, sc := range scenarios {
					name := sc.Description
					if name == "" {
						name, _, _ = strings.Cut(strings.TrimSpace(sc.Comment), "\n")
					}
					name = fmt.Sprintf("%02d-%s", i, name)
					t.Run(name, func(t *testing.T) {
						t.Parallel()
						runScenario(t, sf, sc, counts)
					})
				}
			})
			run, passed := counts.run.Load(), counts.passed.Load()
			t.Logf("%s: %d run, %d passed (%d of them asserting the RFC 7208 result of a listed divergence)",
				sf.file, run, passed, counts.diverged.Load())
			if run != int64(sf.tests) {
				t.Errorf("%s: ran %d tests, want %d", sf.file, run, sf.tests)
			}
			if passed != run {
				t.Errorf("%s: %d of %d tests failed", sf.file, run-passed, run)
			}
			for name := range sf.diverge {
				if !counts.seen[name] {
					t.Errorf("divergence table lists %q, which is not a test of %s", name, sf.file)
				}
			}
		})
	}
}

func runScenario(t *testing.T, sf suiteFile, sc yamlScenario, counts *suiteCounts) {
	srv := dnstest.Serve(t, suiteZone(t, sc.Zonedata))
	r := srv.Resolver(t, suiteTimeout)
	names := make([]string, 0, len(sc.Tests))
	for n := range sc.Tests {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, tname := range names {
		yt := sc.Tests[tname]
		t.Run(tname, func(t *testing.T) {
			counts.run.Add(1)
			want := yt.expected(t)
			ip, err := netip.ParseAddr(yt.Host)
			if err != nil {
				t.Fatalf("host %q: %v", yt.Host, err)
			}
			req := Request{IP: ip, HELO: latin1(yt.Helo), MailFrom: latin1(yt.Mailfrom), Receiver: "receiver.example"}
			opts := sf.opts
			res := Check(context.Background(), r, req, &opts)
			if errors.Is(res.Err, ErrInternal) {
				t.Fatalf("CheckHost panicked: %v", res.Err)
			}
			if d, ok := sf.diverge[tname]; ok {
				counts.mu.Lock()
				counts.seen[tname] = true
				counts.mu.Unlock()
				if d.result == want[0] {
					t.Errorf("listed as diverging (%s) but the suite now prefers %s: remove it from the table", d.why, d.result)
					return
				}
				if res.Result != d.result {
					t.Errorf("result %s, want the RFC 7208 result %s (suite prefers %v; %s)\nreason: %s", res.Result, d.result, want, d.why, res.Reason)
					return
				}
				counts.diverged.Add(1)
				counts.passed.Add(1)
				return
			}
			// The first listed result is the one the suite prefers; an
			// alternative is accepted only through the divergence table.
			if res.Result != want[0] {
				t.Errorf("result %s, want %s (suite accepts %v; spec %s)\nreason: %s\n%s", res.Result, want[0], want, specText(yt.Spec), res.Reason, traceText(res))
				return
			}
			if yt.Explanation != nil && res.Result == Fail {
				// Compared ignoring case: %{i} of an IPv6 address spells its
				// nibbles in lower case (RFC 7208 §7.4), the suite in upper.
				if !strings.EqualFold(res.Explanation, *yt.Explanation) {
					t.Errorf("explanation %q, want %q", res.Explanation, *yt.Explanation)
					return
				}
			}
			counts.passed.Add(1)
		})
	}
}

// traceText renders a result's trace for test failure messages.
func traceText(res Result) string {
	var b strings.Builder
	if res.Trace != nil && res.Trace.Record != nil {
		writeRecordTrace(&b, res.Trace.Record, "  ")
	}
	return b.String()
}

func writeRecordTrace(b *strings.Builder, rt *RecordTrace, indent string) {
	fmt.Fprintf(b, "%s%s %s: %q -> %s %s\n", indent, rt.Via, rt.Domain, rt.Record, rt.Result, rt.Reason)
	if rt.Query != nil {
		fmt.Fprintf(b, "%s  TXT %s %s %v %s\n", indent, rt.Query.Name, rt.Query.RCode, rt.Query.AnswerList(), rt.Query.Error)
	}
	for _, tt := range rt.Terms {
		fmt.Fprintf(b, "%s  %s target=%s matched=%v %s %s\n", indent, tt.Text, tt.Target, tt.Matched, tt.Result, tt.Note)
		for _, q := range tt.Queries {
			fmt.Fprintf(b, "%s    %s %s %s %v %s\n", indent, q.Type, q.Name, q.RCode, q.AnswerList(), q.Error)
		}
		if tt.Child != nil {
			writeRecordTrace(b, tt.Child, indent+"    ")
		}
	}
}

// specText renders a test's "spec" (a string or a list of sections).
func specText(n yaml.Node) string {
	if n.Kind == yaml.SequenceNode {
		var parts []string
		for _, c := range n.Content {
			parts = append(parts, c.Value)
		}
		return strings.Join(parts, ", ")
	}
	return n.Value
}
