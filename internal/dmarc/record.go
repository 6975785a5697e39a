package dmarc

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Mode selects the specification an evaluation follows.
type Mode int

const (
	// RFC9989 is DMARC as published in May 2026 (DMARCbis): DNS Tree Walk,
	// np=, psd=, t=; pct=, rf= and ri= removed. The default.
	RFC9989 Mode = iota
	// RFC7489 is the 2015 Informational DMARC: Organizational Domain from a
	// Public Suffix List, pct= sampling, rf= and ri=.
	RFC7489
)

func (m Mode) String() string {
	switch m {
	case RFC9989:
		return "RFC 9989"
	case RFC7489:
		return "RFC 7489"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Policy is a Domain Owner Assessment Policy (RFC 9989 §3.2.8, §4.7 "p").
type Policy string

// The policies of RFC 9989 §4.7.
const (
	PolicyNone       Policy = "none"
	PolicyQuarantine Policy = "quarantine"
	PolicyReject     Policy = "reject"
)

// downgrade returns the policy one level below p, as t=y (RFC 9989 §4.7
// "t") and pct sampling (RFC 7489 §6.6.4) ask: reject becomes quarantine,
// quarantine becomes none.
func (p Policy) downgrade() Policy {
	switch p {
	case PolicyReject:
		return PolicyQuarantine
	case PolicyQuarantine:
		return PolicyNone
	}
	return p
}

// Alignment is an Identifier Alignment mode (RFC 9989 §4.7 "adkim",
// "aspf").
type Alignment string

// The alignment modes; relaxed is the default.
const (
	AlignRelaxed Alignment = "r"
	AlignStrict  Alignment = "s"
)

// PSD is the value of the psd= tag (RFC 9989 §4.7).
type PSD string

// The psd= values; PSDUnknown ("u") is the default.
const (
	PSDYes     PSD = "y"
	PSDNo      PSD = "n"
	PSDUnknown PSD = "u"
)

// URI is one reporting URI of rua= or ruf= (RFC 9989 §4.6, §4.8).
type URI struct {
	// URI is the URI as written, without the size suffix.
	URI string
	// Scheme is the URI scheme, lower case.
	Scheme string
	// Address is, for a mailto: URI, its addr-spec with percent-encoding
	// decoded (RFC 6068 §2).
	Address string
	// MaxSize is the obsolete "!size" suffix in octets (RFC 7489 §6.2;
	// RFC 9989 §4.8 obs-dmarc-report-size, to be ignored by reporters);
	// 0 when absent.
	MaxSize uint64
}

// Record is a parsed DMARC Policy Record.
//
// Tags that are absent or hold a syntax error keep their default, as
// RFC 9989 §4.8 ("Syntax errors in the remainder of the record MUST be
// discarded in favor of default values") and RFC 7489 §6.3 ask; each such
// error is described in Warnings. The p=, sp= and np= tags are the
// exception: their absence or invalidity decides whether the record can be
// applied at all (RFC 9989 §4.10.1), see Applicable.
type Record struct {
	// Raw is the record text (character-strings joined).
	Raw string
	// Mode is the specification the record was parsed under.
	Mode Mode

	// P, SP and NP are the p=, sp= and np= policies; "" when the tag is
	// absent or its value is invalid (see Applicable). NP is always "" in
	// RFC 7489 mode, which has no np= tag.
	P, SP, NP Policy
	// PSD is the psd= flag (RFC 9989 only; default u).
	PSD PSD
	// Testing reports t=y (RFC 9989 only).
	Testing bool
	// ADKIM and ASPF are the alignment modes (default relaxed).
	ADKIM, ASPF Alignment
	// FO lists the fo= failure-reporting options (default ["0"]).
	FO []string
	// RUA and RUF are the syntactically valid reporting URIs; invalid ones
	// are left out and described in Warnings.
	RUA, RUF []URI
	// Pct is the pct= sampling rate, 0 to 100 (RFC 7489 only; default
	// 100; RFC 9989 removed it).
	Pct int
	// RF lists the known rf= failure-report formats (RFC 7489 only;
	// default ["afrf"]).
	RF []string
	// RI is the ri= aggregate-report interval in seconds (RFC 7489 only;
	// default 86400).
	RI uint32

	// Unknown lists, in order, the names of tags this Mode does not define;
	// they are ignored (RFC 9989 §4.7, RFC 7489 §6.3).
	Unknown []string
	// Removed lists the tags RFC 9989 removed (pct, rf, ri; §C.5.2) that
	// the record holds; in RFC 9989 mode they are ignored.
	Removed []string
	// Warnings describes every syntax error discarded in favour of a
	// default, every ignored tag and every policy problem, in order.
	Warnings []string

	policyProblems []string
}

// Hostile-input limits of the record parser.
const (
	// maxURIs bounds the reporting URIs kept per tag.
	maxURIs = 32
	// maxWarnings bounds Record.Warnings.
	maxWarnings = 32
)

// ErrNotDMARC reports a TXT record that is not a DMARC Policy Record: it is
// empty or does not start with the tag v=DMARC1 (RFC 9989 §4.7 "v": "the
// entire record MUST be ignored"). Such records are discarded during
// policy discovery (RFC 9989 §4.10 step 2).
var ErrNotDMARC = errors.New("dmarc: not a DMARC record (no leading v=DMARC1)")

// wsp reports RFC 5234 WSP (space or horizontal tab).
func wsp(c byte) bool { return c == ' ' || c == '\t' }

func trimWSP(s string) string {
	i, j := 0, len(s)
	for i < j && wsp(s[i]) {
		i++
	}
	for j > i && wsp(s[j-1]) {
		j--
	}
	return s[i:j]
}

// IsDMARCRecord reports whether txt starts with the v=DMARC1 tag, that is
// whether policy discovery keeps it (RFC 9989 §4.10 steps 2 and 6).
func IsDMARCRecord(txt string) bool {
	first, _, _ := strings.Cut(txt, ";")
	name, value, ok := strings.Cut(first, "=")
	// RFC 9989 §4.8: dmarc-version = "v" equals %s"DMARC1". The tag name
	// is an ABNF literal, case-insensitive (RFC 5234 §2.3); the value is
	// case-sensitive. The DKIM tag-list syntax the record follows (RFC 6376
	// §3.2) allows white space around the tag.
	return ok && strings.EqualFold(trimWSP(name), "v") && trimWSP(value) == "DMARC1"
}

// ParseRecord parses the text of a DMARC Policy Record under mode's rules.
// It fails, with an error wrapping ErrNotDMARC, only when the text is not a
// DMARC record at all; every other problem is reported in the Record's
// Warnings, and Applicable tells whether the record can be applied.
func ParseRecord(txt string, mode Mode) (*Record, error) {
	if !IsDMARCRecord(txt) {
		if trimWSP(txt) == "" {
			return nil, fmt.Errorf("%w: empty record", ErrNotDMARC)
		}
		return nil, ErrNotDMARC
	}
	r := &Record{
		Raw: txt, Mode: mode,
		PSD: PSDUnknown, ADKIM: AlignRelaxed, ASPF: AlignRelaxed,
		FO: []string{"0"}, Pct: 100, RF: []string{"afrf"}, RI: 86400,
	}
	parts := strings.Split(txt, ";")
	seen := map[string]bool{"v": true}
	havePolicy := false
	for i, part := range parts[1:] {
		t := trimWSP(part)
		if t == "" {
			// RFC 9989 §4.8: dmarc-record = dmarc-version *(dmarc-sep
			// dmarc-tag) [dmarc-sep]: one trailing separator is allowed,
			// an empty tag elsewhere is a syntax error, ignored.
			if i != len(parts)-2 {
				r.warnf("empty tag between two ';' ignored")
			}
			continue
		}
		name, value, ok := strings.Cut(t, "=")
		name, value = trimWSP(name), trimWSP(value)
		if !ok || !isAlphaString(name) {
			r.warnf("malformed tag %q ignored (RFC 9989 §4.8: dmarc-tag = 1*ALPHA equals 1*dmarc-value)", clip(t))
			continue
		}
		// Tag names are matched ignoring case, like the ABNF literals of
		// RFC 9989 §4.8 (RFC 5234 §2.3).
		lname := strings.ToLower(name)
		if seen[lname] {
			r.warnf("duplicate tag %q ignored; the first occurrence applies", lname)
			continue
		}
		seen[lname] = true
		valueOK := value != "" && isDMARCValue(value)
		switch r.classify(lname) {
		case tagUnknown:
			r.Unknown = append(r.Unknown, lname)
			if mode == RFC7489 && (lname == "np" || lname == "psd" || lname == "t") {
				r.warnf("tag %q is not defined by RFC 7489 and is ignored", lname)
			}
			continue
		case tagRemoved:
			r.Removed = append(r.Removed, lname)
			r.warnf("tag %q was removed by RFC 9989 (Appendix C.5.2) and is ignored", lname)
			continue
		}
		if lname == "p" {
			havePolicy = true
		}
		if !valueOK {
			r.invalid(lname, value)
			continue
		}
		switch lname {
		case "p":
			if p, ok := parsePolicy(value); ok {
				r.P = p
			} else {
				r.invalid(lname, value)
			}
		case "sp":
			if p, ok := parsePolicy(value); ok {
				r.SP = p
			} else {
				r.invalid(lname, value)
			}
		case "np":
			if p, ok := parsePolicy(value); ok {
				r.NP = p
			} else {
				r.invalid(lname, value)
			}
		case "adkim", "aspf":
			var a Alignment
			switch strings.ToLower(value) {
			case "r":
				a = AlignRelaxed
			case "s":
				a = AlignStrict
			default:
				r.invalid(lname, value)
				continue
			}
			if lname == "adkim" {
				r.ADKIM = a
			} else {
				r.ASPF = a
			}
		case "psd":
			switch strings.ToLower(value) {
			case "y":
				r.PSD = PSDYes
			case "n":
				r.PSD = PSDNo
			case "u":
				r.PSD = PSDUnknown
			default:
				r.invalid(lname, value)
			}
		case "t":
			switch strings.ToLower(value) {
			case "y":
				r.Testing = true
			case "n":
				r.Testing = false
			default:
				r.invalid(lname, value)
			}
		case "fo":
			if fo, ok := parseFO(value, mode); ok {
				r.FO = fo
			} else {
				r.invalid(lname, value)
			}
		case "rua", "ruf":
			uris := r.parseURIs(lname, value)
			if lname == "rua" {
				r.RUA = uris
			} else {
				r.RUF = uris
			}
		case "pct":
			// RFC 7489 §6.3: pct = 1*3DIGIT, an integer from 0 to 100.
			n, err := strconv.Atoi(value)
			if err != nil || len(value) > 3 || !allDigits(value) || n > 100 {
				r.invalid(lname, value)
				continue
			}
			r.Pct = n
		case "rf":
			if rf, ok := r.parseRF(value); ok {
				r.RF = rf
			} else {
				r.invalid(lname, value)
			}
		case "ri":
			// RFC 7489 §6.3: ri = 1*32DIGIT, a 32-bit unsigned integer.
			n, err := strconv.ParseUint(value, 10, 32)
			if err != nil || !allDigits(value) {
				r.invalid(lname, value)
				continue
			}
			r.RI = uint32(n)
		}
	}
	if !havePolicy {
		r.policyProblems = append(r.policyProblems, "no p tag")
	}
	return r, nil
}

type tagClass int

const (
	tagKnown tagClass = iota
	tagUnknown
	tagRemoved
)

// classify sorts a tag name under the record's Mode: RFC 9989 §4.7 and
// §9.3 (pct, rf, ri "historic"), RFC 7489 §6.3.
func (r *Record) classify(name string) tagClass {
	switch name {
	case "p", "sp", "adkim", "aspf", "rua", "ruf", "fo":
		return tagKnown
	case "np", "psd", "t":
		if r.Mode == RFC9989 {
			return tagKnown
		}
		return tagUnknown
	case "pct", "rf", "ri":
		if r.Mode == RFC7489 {
			return tagKnown
		}
		return tagRemoved
	}
	return tagUnknown
}

// invalid records a syntax error in tag name: the tag keeps its default
// (RFC 9989 §4.8), except p, sp and np, whose errors decide whether the
// record applies (RFC 9989 §4.10.1).
func (r *Record) invalid(name, value string) {
	switch name {
	case "p", "sp", "np":
		r.policyProblems = append(r.policyProblems, fmt.Sprintf("invalid %s=%q", name, clip(value)))
		r.warnf("invalid value %q for tag %s (must be none, quarantine or reject)", clip(value), name)
	default:
		r.warnf("invalid value %q for tag %s; the default applies", clip(value), name)
	}
}

func (r *Record) warnf(format string, args ...any) {
	switch {
	case len(r.Warnings) < maxWarnings:
		r.Warnings = append(r.Warnings, fmt.Sprintf(format, args...))
	case len(r.Warnings) == maxWarnings:
		r.Warnings = append(r.Warnings, "further warnings omitted")
	}
}

// Applicable reports whether the record can be applied to a message, and
// the policies to apply (RFC 9989 §4.10.1; RFC 7489 §6.6.3 step 6): when
// p= is missing or invalid, or sp= or np= is invalid, the record applies
// as if it were "v=DMARC1; p=none" provided rua= holds at least one
// syntactically valid reporting URI (substituted is then true); otherwise
// no DMARC processing applies (ok false, and problem says why).
func (r *Record) Applicable() (p, sp, np Policy, substituted, ok bool, problem string) {
	if len(r.policyProblems) == 0 {
		return r.P, r.SP, r.NP, false, true, ""
	}
	problem = strings.Join(r.policyProblems, ", ")
	if len(r.RUA) > 0 {
		return PolicyNone, "", "", true, true, problem
	}
	return "", "", "", false, false, problem
}

func parsePolicy(v string) (Policy, bool) {
	// RFC 9989 §4.8: dmarc-request = "none" / "quarantine" / "reject",
	// ABNF literals, so case-insensitive (RFC 5234 §2.3).
	switch strings.ToLower(v) {
	case "none":
		return PolicyNone, true
	case "quarantine":
		return PolicyQuarantine, true
	case "reject":
		return PolicyReject, true
	}
	return "", false
}

// parseFO checks fo= (RFC 9989 §4.7, §4.8 dmarc-fo; RFC 7489 §6.3): a
// colon-separated list of 0, 1, d and s, each at most once; RFC 9989 makes
// 0 and 1 mutually exclusive.
func parseFO(v string, mode Mode) ([]string, bool) {
	var out []string
	seen := map[string]bool{}
	for f := range strings.SplitSeq(v, ":") {
		f = strings.ToLower(trimWSP(f))
		switch f {
		case "0", "1", "d", "s":
		default:
			return nil, false
		}
		if seen[f] {
			return nil, false
		}
		seen[f] = true
		out = append(out, f)
	}
	if mode == RFC9989 && seen["0"] && seen["1"] {
		return nil, false
	}
	return out, true
}

// parseRF checks rf= (RFC 7489 §6.3: Keyword *(":" Keyword)). Formats
// other than the registered "afrf" are ignored with a warning; when none
// is left the default applies.
func (r *Record) parseRF(v string) ([]string, bool) {
	var out []string
	for f := range strings.SplitSeq(v, ":") {
		f = trimWSP(f)
		if !isKeyword(f) {
			return nil, false
		}
		if strings.EqualFold(f, "afrf") {
			out = append(out, "afrf")
		} else {
			r.warnf("unknown failure-report format %q in rf ignored", clip(f))
		}
	}
	if len(out) == 0 {
		return nil, false
	}
	return out, true
}

// parseURIs parses a dmarc-urilist (RFC 9989 §4.8), keeping the valid
// URIs.
func (r *Record) parseURIs(tag, v string) []URI {
	var out []URI
	for elem := range strings.SplitSeq(v, ",") {
		elem = trimWSP(elem)
		u, err := ParseURI(elem)
		if err != nil {
			r.warnf("%s: %v", tag, err)
			continue
		}
		if u.MaxSize != 0 && r.Mode == RFC9989 {
			r.warnf("%s: size limit %q is obsolete syntax and is ignored (RFC 9989 §4.8, Appendix C.4)", tag, clip(elem))
		}
		if len(out) == maxURIs {
			r.warnf("%s: more than %d URIs; the rest are ignored", tag, maxURIs)
			break
		}
		out = append(out, u)
	}
	return out
}

// ParseURI parses one DMARC reporting URI with its optional obsolete size
// suffix ("mailto:a@example.com!10m"). The URI must be an RFC 3986 URI
// (scheme §3.1, and only characters of §2: unreserved, reserved and
// percent-encoded octets; commas and exclamation points must be encoded,
// RFC 9989 §4.8); a mailto: URI must hold an addr-spec (RFC 6068 §2).
func ParseURI(s string) (URI, error) {
	u := URI{}
	if s == "" {
		return u, errors.New("empty reporting URI")
	}
	if i := strings.LastIndexByte(s, '!'); i >= 0 {
		size, ok := parseSize(s[i+1:])
		if !ok {
			return u, fmt.Errorf("reporting URI %q: invalid size suffix", clip(s))
		}
		u.MaxSize = size
		s = s[:i]
	}
	colon := strings.IndexByte(s, ':')
	if colon <= 0 || !isScheme(s[:colon]) {
		return u, fmt.Errorf("reporting URI %q: no valid scheme (RFC 3986 §3.1)", clip(s))
	}
	for i := colon + 1; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return u, fmt.Errorf("reporting URI %q: bad percent-encoding (RFC 3986 §2.1)", clip(s))
			}
			i += 2
			continue
		}
		if !uriChar(c) {
			return u, fmt.Errorf("reporting URI %q: character %q not allowed (RFC 3986 §2)", clip(s), c)
		}
	}
	u.URI = s
	u.Scheme = strings.ToLower(s[:colon])
	if u.Scheme == "mailto" {
		to, _, _ := strings.Cut(s[colon+1:], "?")
		addr := percentDecode(to)
		at := strings.LastIndexByte(addr, '@')
		if at <= 0 || at == len(addr)-1 {
			return u, fmt.Errorf("reporting URI %q: mailto without an addr-spec (RFC 6068 §2)", clip(s))
		}
		u.Address = addr
	}
	return u, nil
}

// parseSize reads obs-dmarc-report-size without its "!": 1*DIGIT
// ["k"/"m"/"g"/"t"], units of 2^10, 2^20, 2^30, 2^40 octets (RFC 7489
// §6.2).
func parseSize(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	mult := uint64(1)
	switch s[len(s)-1] {
	case 'k', 'K':
		mult = 1 << 10
	case 'm', 'M':
		mult = 1 << 20
	case 'g', 'G':
		mult = 1 << 30
	case 't', 'T':
		mult = 1 << 40
	}
	if mult != 1 {
		s = s[:len(s)-1]
	}
	if s == "" || !allDigits(s) {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > ^uint64(0)/mult {
		return 0, false
	}
	return n * mult, true
}

// percentDecode decodes %HH escapes; s was checked by ParseURI.
func percentDecode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isAlpha(c):
		case i > 0 && (isDigit(c) || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// uriChar reports the characters RFC 3986 §2 allows in a URI outside
// percent-encoding: unreserved, gen-delims and sub-delims.
func uriChar(c byte) bool {
	if isAlpha(c) || isDigit(c) {
		return true
	}
	return strings.IndexByte("-._~:/?#[]@!$&'()*+,;=", c) >= 0
}

// isDMARCValue checks dmarc-value (RFC 9989 §4.8): printing characters
// and space but semicolon.
func isDMARCValue(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == ';' {
			return false
		}
	}
	return true
}

// isKeyword checks an RFC 5321 §4.1.2 Keyword (Ldh-str).
func isKeyword(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlpha(c) && !isDigit(c) && (c != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

func isAlphaString(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isAlpha(s[i]) {
			return false
		}
	}
	return s != ""
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isHex(c byte) bool   { return isDigit(c) || c|0x20 >= 'a' && c|0x20 <= 'f' }

func unhex(c byte) byte {
	if isDigit(c) {
		return c - '0'
	}
	return (c | 0x20) - 'a' + 10
}

// clip shortens untrusted text quoted in messages.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
