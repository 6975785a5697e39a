package dmarc

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Errors about domain names given to the package.
var (
	// ErrInvalidDomain: the name is not a usable domain name (empty, an
	// empty label, a label over 63 octets, over 253 octets in all, or a
	// character that cannot occur in a host name of mail).
	ErrInvalidDomain = errors.New("dmarc: invalid domain name")
	// ErrInvalidIDN: the name holds a U-label that cannot be converted to
	// an A-label, or an A-label ("xn--") that does not decode to a valid
	// U-label (RFC 5890 §2.3.2.1, RFC 5891 §5).
	ErrInvalidIDN = fmt.Errorf("%w: invalid internationalized domain name", ErrInvalidDomain)
)

// NormalizeDomain returns name in the form DMARC compares and queries:
// lower case, without one trailing dot, every U-label converted to an
// A-label (RFC 9989 §5.3.1: "If the domain is a U-label, the domain MUST be
// converted to an A-label, as described in Section 2.3 of [RFC5890]").
// A-labels in the input are checked to decode to a valid U-label. The
// conversion uses the UTS #46 lookup profile of golang.org/x/net/idna
// (non-transitional, IDNA2008-compatible).
func NormalizeDomain(name string) (string, error) {
	n := strings.TrimSuffix(name, ".")
	if n == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidDomain)
	}
	if !isASCII(n) {
		if !utf8.ValidString(n) {
			return "", fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidIDN, clip(name))
		}
		a, err := idna.Lookup.ToASCII(n)
		if err != nil {
			return "", fmt.Errorf("%w: %q: %v", ErrInvalidIDN, clip(name), err)
		}
		n = a
	} else {
		n = strings.ToLower(n)
	}
	if len(n) > 253 {
		return "", fmt.Errorf("%w: %d octets (RFC 1035 §2.3.4 allows 253)", ErrInvalidDomain, len(n))
	}
	for l := range strings.SplitSeq(n, ".") {
		if l == "" {
			return "", fmt.Errorf("%w: empty label in %q", ErrInvalidDomain, clip(name))
		}
		if len(l) > 63 {
			return "", fmt.Errorf("%w: label of %d octets (RFC 1035 §2.3.4 allows 63)", ErrInvalidDomain, len(l))
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; c <= ' ' || c >= 0x7f {
				return "", fmt.Errorf("%w: character %q in %q", ErrInvalidDomain, c, clip(name))
			}
		}
		if strings.HasPrefix(l, "xn--") {
			// RFC 5891 §5.4: an A-label must decode to a valid U-label
			// whose A-label is the same string.
			u, err := idna.Lookup.ToUnicode(l)
			if err != nil {
				return "", fmt.Errorf("%w: A-label %q: %v", ErrInvalidIDN, l, err)
			}
			if back, err := idna.Lookup.ToASCII(u); err != nil || back != l {
				return "", fmt.Errorf("%w: A-label %q does not round-trip", ErrInvalidIDN, l)
			}
		}
	}
	return n, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// parentDomain returns d without its first label ("" for one label).
func parentDomain(d string) string {
	if i := strings.IndexByte(d, '.'); i >= 0 {
		return d[i+1:]
	}
	return ""
}

// isSubdomainOf reports whether d is a proper subdomain of parent.
func isSubdomainOf(d, parent string) bool {
	return len(d) > len(parent)+1 && strings.HasSuffix(d, parent) && d[len(d)-len(parent)-1] == '.'
}

// labelCount returns the number of labels of d (0 for "").
func labelCount(d string) int {
	if d == "" {
		return 0
	}
	return strings.Count(d, ".") + 1
}

// lastLabels returns the n right-most labels of d (all of d when it has n
// labels or fewer).
func lastLabels(d string, n int) string {
	if n <= 0 {
		return ""
	}
	i := len(d)
	for ; n > 0; n-- {
		j := strings.LastIndexByte(d[:i], '.')
		if j < 0 {
			return d
		}
		i = j
	}
	return d[i+1:]
}
