package dmarc

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// PublicSuffixList tells which suffix of a domain is public, for the RFC
// 7489 §3.2 Organizational Domain.
type PublicSuffixList interface {
	// PublicSuffix returns the public suffix of domain, a name as
	// NormalizeDomain returns it (lower case, A-labels, no trailing dot).
	// With icannOnly set, only the rules of the list's ICANN section
	// count. A name that no rule matches has its top-level label as its
	// public suffix (the implicit "*" rule).
	PublicSuffix(domain string, icannOnly bool) string
}

// List is a Public Suffix List in the publicsuffix.org format, parsed by
// ParsePSL or LoadPSLFile.
//
// Format and algorithm (https://publicsuffix.org/list/): one rule per line,
// the first white-space-delimited word; lines starting with "//" are
// comments; "*" as a label matches any one label; a rule starting with "!"
// is an exception. Rules between the "===BEGIN ICANN DOMAINS===" and
// "===END ICANN DOMAINS===" comments form the ICANN section, those between
// the PRIVATE markers the PRIVATE section; rules outside both markers count
// as ICANN. IDN rules are stored as A-labels, so that the list matches the
// output of NormalizeDomain. The prevailing rule is an exception rule if
// one matches, else the matching rule with the most labels, else "*"; an
// exception rule's public suffix is the rule without its left-most label.
type List struct {
	exact     map[string]bool // rule → in ICANN section
	wildcard  map[string]bool // "*.rest" stored as rest
	exception map[string]bool // "!rule" stored as rule
	other     []pslRule       // rules with a "*" not in the left-most label
	rules     int
}

type pslRule struct {
	labels []string // right to left
	icann  bool
}

// ParsePSL reads a Public Suffix List.
func ParsePSL(r io.Reader) (*List, error) {
	l := &List{exact: map[string]bool{}, wildcard: map[string]bool{}, exception: map[string]bool{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	icann := true
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "//") {
			switch {
			case strings.Contains(line, "===BEGIN ICANN DOMAINS==="):
				icann = true
			case strings.Contains(line, "===BEGIN PRIVATE DOMAINS==="):
				icann = false
			case strings.Contains(line, "===END PRIVATE DOMAINS==="):
				icann = true
			}
			continue
		}
		if line == "" {
			continue
		}
		rule := strings.Fields(line)[0]
		if err := l.add(rule, icann); err != nil {
			return nil, fmt.Errorf("dmarc: public suffix list line %d: %w", lineNo, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dmarc: reading public suffix list: %w", err)
	}
	if l.rules == 0 {
		return nil, fmt.Errorf("dmarc: public suffix list holds no rule")
	}
	return l, nil
}

// LoadPSLFile reads a Public Suffix List file such as
// public_suffix_list.dat.
func LoadPSLFile(path string) (*List, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dmarc: %w", err)
	}
	defer f.Close()
	return ParsePSL(f)
}

// Len returns the number of rules in the list.
func (l *List) Len() int { return l.rules }

func (l *List) add(rule string, icann bool) error {
	exc := strings.HasPrefix(rule, "!")
	rule = strings.TrimPrefix(rule, "!")
	rule = strings.TrimSuffix(strings.TrimPrefix(rule, "."), ".")
	if rule == "" {
		return fmt.Errorf("empty rule")
	}
	labels := strings.Split(rule, ".")
	for i, lab := range labels {
		if lab == "*" {
			continue
		}
		a, err := pslLabel(lab)
		if err != nil {
			return fmt.Errorf("rule %q: %w", rule, err)
		}
		labels[i] = a
	}
	l.rules++
	switch {
	case exc:
		l.exception[strings.Join(labels, ".")] = icann
	case labels[0] == "*" && !containsStar(labels[1:]):
		l.wildcard[strings.Join(labels[1:], ".")] = icann
	case containsStar(labels):
		rev := make([]string, len(labels))
		for i, lab := range labels {
			rev[len(labels)-1-i] = lab
		}
		l.other = append(l.other, pslRule{labels: rev, icann: icann})
	default:
		l.exact[strings.Join(labels, ".")] = icann
	}
	return nil
}

func containsStar(labels []string) bool {
	for _, l := range labels {
		if l == "*" {
			return true
		}
	}
	return false
}

// pslLabel converts one rule label to its lower-case A-label.
func pslLabel(lab string) (string, error) {
	if lab == "" {
		return "", fmt.Errorf("empty label")
	}
	if isASCII(lab) {
		return strings.ToLower(lab), nil
	}
	a, err := idna.Lookup.ToASCII(lab)
	if err != nil {
		// The list's own IDN rules are NFC and lower case already; fall
		// back to plain Punycode for one the lookup profile refuses.
		if a, err = idna.Punycode.ToASCII(lab); err != nil {
			return "", err
		}
	}
	return a, nil
}

// PublicSuffix implements PublicSuffixList.
func (l *List) PublicSuffix(domain string, icannOnly bool) string {
	ok := func(icann bool) bool { return icann || !icannOnly }
	// Walk the suffixes of domain from one label up; i is the index of the
	// dot before the previous (shorter) suffix.
	n := labelCount(domain)
	best, exception := 1, 0
	i := len(domain)
	for k := 1; k <= n; k++ {
		j := strings.LastIndexByte(domain[:i], '.')
		suffix := domain[j+1:]
		if ic, found := l.exception[suffix]; found && ok(ic) {
			exception = max(exception, k)
		}
		if ic, found := l.exact[suffix]; found && ok(ic) {
			best = max(best, k)
		}
		if k >= 2 {
			if ic, found := l.wildcard[domain[i+1:]]; found && ok(ic) {
				best = max(best, k)
			}
		}
		i = j
		if j < 0 {
			break
		}
	}
	if len(l.other) > 0 {
		labels := strings.Split(domain, ".")
		for _, r := range l.other {
			if ok(r.icann) && len(r.labels) <= len(labels) && matchRule(r.labels, labels) {
				best = max(best, len(r.labels))
			}
		}
	}
	if exception > 0 {
		return lastLabels(domain, exception-1)
	}
	return lastLabels(domain, best)
}

// matchRule matches rule labels (right to left) against domain labels.
func matchRule(rule, labels []string) bool {
	for i, r := range rule {
		if r != "*" && r != labels[len(labels)-1-i] {
			return false
		}
	}
	return true
}

// EmbeddedPSL returns the Public Suffix List compiled into
// golang.org/x/net/publicsuffix (the snapshot of the x/net version in
// go.mod; it is not updated at run time).
//
// That package answers with its full list and a flag telling whether the
// prevailing rule is in the ICANN section. For icannOnly, when the
// prevailing rule is a PRIVATE one, the ICANN answer is found by asking
// again for the parent of the private suffix until an ICANN rule (or the
// implicit "*" rule, which x/net also flags as not ICANN) prevails. This
// relies on PRIVATE rules sitting below ICANN suffixes, as every rule of
// the list does; load the list with LoadPSLFile for exact section
// handling.
func EmbeddedPSL() PublicSuffixList { return embeddedPSL{} }

type embeddedPSL struct{}

func (embeddedPSL) PublicSuffix(domain string, icannOnly bool) string {
	s, icann := publicsuffix.PublicSuffix(domain)
	for icannOnly && !icann {
		p := parentDomain(s)
		if p == "" {
			// A single label: the implicit "*" rule.
			return s
		}
		s, icann = publicsuffix.PublicSuffix(p)
	}
	return s
}

// OrganizationalDomainPSL returns the Organizational Domain of domain by
// RFC 7489 §3.2: its public suffix plus one label. A domain that is itself
// a public suffix is its own Organizational Domain. domain is normalised
// with NormalizeDomain first.
func OrganizationalDomainPSL(list PublicSuffixList, domain string, icannOnly bool) (string, error) {
	d, err := NormalizeDomain(domain)
	if err != nil {
		return "", err
	}
	if r := registrable(list, d, icannOnly); r != "" {
		return r, nil
	}
	return d, nil
}

// RegistrableDomain returns the public suffix of domain plus one label, or
// "" when domain is itself a public suffix (the "registrable domain" of the
// publicsuffix.org algorithm).
func RegistrableDomain(list PublicSuffixList, domain string, icannOnly bool) (string, error) {
	d, err := NormalizeDomain(domain)
	if err != nil {
		return "", err
	}
	return registrable(list, d, icannOnly), nil
}

func registrable(list PublicSuffixList, d string, icannOnly bool) string {
	suffix := list.PublicSuffix(d, icannOnly)
	if len(suffix) >= len(d) {
		return ""
	}
	return lastLabels(d, labelCount(suffix)+1)
}
