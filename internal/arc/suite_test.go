package arc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"portcullis/internal/dkim"
	"portcullis/internal/dns"
	"portcullis/internal/message"
	"portcullis/internal/testutil"
)

// validationScenario is one document of arc-draft-validation-tests.yml.
type validationScenario struct {
	Description string                    `yaml:"description"`
	Tests       map[string]validationTest `yaml:"tests"`
	TXTRecords  map[string]string         `yaml:"txt-records"`
}

type validationTest struct {
	Message     string `yaml:"message"`
	CV          string `yaml:"cv"`
	Description string `yaml:"description"`
}

// readScenarios decodes a YAML stream of scenarios. The suite repeats some
// test names inside one tests: mapping; like the reference runner
// (PyYAML), the later definition wins.
func readScenarios[T any](t testing.TB, path string) []T {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var out []T
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("%s: %v", path, err)
		}
		dedupKeys(&doc)
		var s T
		if err := doc.Decode(&s); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, s)
	}
	return out
}

// dedupKeys removes, in every mapping, all but the last occurrence of a
// key.
func dedupKeys(n *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		last := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			last[n.Content[i].Value] = i
		}
		var kept []*yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if last[n.Content[i].Value] == i {
				kept = append(kept, n.Content[i], n.Content[i+1])
			}
		}
		n.Content = kept
	}
	for _, c := range n.Content {
		dedupKeys(c)
	}
}

// crlf turns the suite's LF line endings into CRLF.
func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

// zoneFrom serves the scenario's key records, split into 255-octet
// character-strings as a DNS server would hold them.
func zoneFrom(records map[string]string) *dns.Zone {
	z := dns.NewZone()
	for name, v := range records {
		v = strings.TrimRight(v, "\n")
		var parts []string
		for len(v) > 255 {
			parts = append(parts, v[:255])
			v = v[255:]
		}
		parts = append(parts, v)
		z.Add(name, dns.Record{Type: dns.TypeTXT, TTL: 300, TXT: parts})
	}
	return z
}

func TestValidationSuite(t *testing.T) {
	runValidationSuite(t, nil)
}

// TestValidationSuiteSharedKeys runs the suite again with one key cache
// for all its scenarios, as the analysis shares one between messages: the
// cache is keyed by the record text, so every result must be the same.
func TestValidationSuiteSharedKeys(t *testing.T) {
	runValidationSuite(t, dkim.NewKeyCache(0))
}

func runValidationSuite(t *testing.T, keys *dkim.KeyCache) {
	dir := testutil.SharedTestdata(t, "arc-valimail")
	scenarios := readScenarios[validationScenario](t, filepath.Join(dir, "arc-draft-validation-tests.yml"))
	total, passed := 0, 0
	for _, sc := range scenarios {
		v := &Verifier{Resolver: zoneFrom(sc.TXTRecords), Keys: keys}
		names := make([]string, 0, len(sc.Tests))
		for n := range sc.Tests {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, name := range names {
			tc := sc.Tests[name]
			total++
			ok := t.Run(name, func(t *testing.T) {
				want := Status(strings.ToLower(tc.CV))
				if want == "" {
					// The reference runner printed None for these: under
					// RFC 8617 §5.2 they fail (see SOURCES.md).
					want = Fail
				}
				res, err := v.VerifyMessage(context.Background(), strings.NewReader(crlf(tc.Message)))
				if err != nil {
					t.Fatalf("VerifyMessage: %v", err)
				}
				if res.Status != want {
					t.Errorf("%s: status %s (%v), want %s", tc.Description, res.Status, res.Err, want)
				}
				if res.Status == Fail && res.Err == nil {
					t.Errorf("fail without an error")
				}
			})
			if ok {
				passed++
			}
		}
	}
	t.Logf("ARC validation suite: %d/%d", passed, total)
	if total != 171 {
		t.Errorf("suite holds %d tests, want 171", total)
	}
	if passed != total {
		t.Errorf("passed %d/%d", passed, total)
	}
}

// signingScenario is one document of arc-draft-sign-tests.yml.
type signingScenario struct {
	Description string                 `yaml:"description"`
	Domain      string                 `yaml:"domain"`
	Selector    string                 `yaml:"sel"`
	PrivateKey  string                 `yaml:"privatekey"`
	TXTRecords  map[string]string      `yaml:"txt-records"`
	Tests       map[string]signingTest `yaml:"tests"`
}

type signingTest struct {
	Message     string `yaml:"message"`
	T           int64  `yaml:"t"`
	SigHeaders  string `yaml:"sig-headers"`
	SrvID       string `yaml:"srv-id"`
	AS          string `yaml:"AS"`
	AMS         string `yaml:"AMS"`
	AAR         string `yaml:"AAR"`
	Description string `yaml:"description"`
}

// tagSet is how the reference runner compares fields: the set of
// ";"-separated parts after removing all white space.
func tagSet(s string) map[string]bool {
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
	out := map[string]bool{}
	for p := range strings.SplitSeq(s, ";") {
		if p != "" {
			out[p] = true
		}
	}
	return out
}

func TestSigningSuite(t *testing.T) {
	dir := testutil.SharedTestdata(t, "arc-valimail")
	scenarios := readScenarios[signingScenario](t, filepath.Join(dir, "arc-draft-sign-tests.yml"))
	total, passed := 0, 0
	for _, sc := range scenarios {
		key, err := dkim.ParsePrivateKey([]byte(sc.PrivateKey))
		if err != nil {
			t.Fatal(err)
		}
		zone := zoneFrom(sc.TXTRecords)
		names := make([]string, 0, len(sc.Tests))
		for n := range sc.Tests {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, name := range names {
			tc := sc.Tests[name]
			total++
			ok := t.Run(name, func(t *testing.T) {
				raw := crlf(tc.Message)
				br := bufio.NewReader(strings.NewReader(raw))
				h, err := message.ReadHeader(br, message.Limits{})
				if err != nil {
					t.Fatal(err)
				}
				bodyBytes, err := io.ReadAll(br)
				if err != nil {
					t.Fatal(err)
				}
				v := &Verifier{Resolver: zone}
				chain, err := v.Verify(context.Background(), h, bytes.NewReader(bodyBytes))
				if err != nil {
					t.Fatal(err)
				}
				ar := ConsolidateAuthResults(h, tc.SrvID)
				if ar == nil {
					t.Fatalf("no Authentication-Results for %s", tc.SrvID)
				}
				// The suite stamps the chain status into the AR (README);
				// it must agree with this package's validation.
				if arcs := ar.ResultsFor("arc"); len(arcs) == 1 && arcs[0].Value != string(chain.Status) {
					t.Errorf("chain status %s (%v), the suite's AR says arc=%s", chain.Status, chain.Err, arcs[0].Value)
				}
				s := &Sealer{
					Domain: sc.Domain, Selector: sc.Selector, Key: key,
					Headers: strings.Split(tc.SigHeaders, ":"),
					Clock:   func() time.Time { return time.Unix(tc.T, 0) },
				}
				set, err := s.Seal(context.Background(), h, bytes.NewReader(bodyBytes), ar, chain)
				wantNone := strings.TrimSpace(tc.AS) == ""
				if wantNone {
					if !errors.Is(err, ErrChainFailed) {
						t.Fatalf("Seal = %v, %v; want no set (ErrChainFailed)", set, err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range []struct {
					name      string
					got, want string
				}{
					{"AAR", set.AuthResults.Value(), tc.AAR},
					{"AMS", set.MessageSignature.Value(), tc.AMS},
					{"AS", set.Seal.Value(), tc.AS},
				} {
					if diff := cmp.Diff(tagSet(c.want), tagSet(c.got)); diff != "" {
						t.Errorf("%s (-want +got):\n%s\ngot: %q", c.name, diff, c.got)
					}
				}
				// The sealed message validates.
				h.Prepend(set.Fields()...)
				res, err := v.Verify(context.Background(), h, bytes.NewReader(bodyBytes))
				if err != nil {
					t.Fatal(err)
				}
				want := Pass
				if set.CV == Fail {
					want = Fail // a chain sealed with cv=fail stays failed
				}
				if res.Status != want {
					t.Errorf("sealed message: status %s (%v), want %s", res.Status, res.Err, want)
				}
			})
			if ok {
				passed++
			}
		}
	}
	t.Logf("ARC signing suite: %d/%d", passed, total)
	if total != 17 {
		t.Errorf("suite holds %d tests, want 17", total)
	}
	if passed != total {
		t.Errorf("passed %d/%d", passed, total)
	}
}
