package spf

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

// Kind names a term of an SPF record: a mechanism (RFC 7208 §5) or a
// modifier (§6).
type Kind string

// The mechanisms (RFC 7208 §5) and modifiers (§6).
const (
	KindAll      Kind = "all"
	KindInclude  Kind = "include"
	KindA        Kind = "a"
	KindMX       Kind = "mx"
	KindPTR      Kind = "ptr"
	KindIP4      Kind = "ip4"
	KindIP6      Kind = "ip6"
	KindExists   Kind = "exists"
	KindRedirect Kind = "redirect"
	KindExp      Kind = "exp"
	// KindUnknown is a modifier this implementation does not know; it is
	// ignored (RFC 7208 §6).
	KindUnknown Kind = "unknown-modifier"
)

// IsMechanism reports whether k is a mechanism rather than a modifier.
func (k Kind) IsMechanism() bool {
	switch k {
	case KindAll, KindInclude, KindA, KindMX, KindPTR, KindIP4, KindIP6, KindExists:
		return true
	}
	return false
}

// CountsLookup reports whether evaluating a term of kind k counts against
// the limit of 10 DNS-querying terms (RFC 7208 §4.6.4).
func (k Kind) CountsLookup() bool {
	switch k {
	case KindInclude, KindA, KindMX, KindPTR, KindExists, KindRedirect:
		return true
	}
	return false
}

// Qualifier is the prefix of a directive (RFC 7208 §4.6.2): the result a
// matching mechanism yields.
type Qualifier string

// The qualifiers of RFC 7208 §4.6.2.
const (
	QualPass     Qualifier = "+"
	QualFail     Qualifier = "-"
	QualSoftFail Qualifier = "~"
	QualNeutral  Qualifier = "?"
)

// Verdict returns the result a mechanism with this qualifier yields when
// it matches (RFC 7208 §4.6.2).
func (q Qualifier) Verdict() Verdict {
	switch q {
	case QualFail:
		return Fail
	case QualSoftFail:
		return SoftFail
	case QualNeutral:
		return Neutral
	}
	return Pass
}

// Record is a parsed SPF record (RFC 7208 §4.6, §12).
type Record struct {
	// Text is the record as published (character-strings joined).
	Text string `json:"text"`
	// Terms lists the directives and modifiers in order.
	Terms []Term `json:"terms"`

	redirect int // index in Terms of the redirect modifier, -1 if none
	exp      int // index in Terms of the exp modifier, -1 if none
	hasAll   bool
	lookups  int // terms that count against the lookup limit
}

// Redirect returns the redirect modifier, or nil.
func (r *Record) Redirect() *Term {
	if r.redirect < 0 {
		return nil
	}
	return &r.Terms[r.redirect]
}

// Exp returns the exp modifier, or nil.
func (r *Record) Exp() *Term {
	if r.exp < 0 {
		return nil
	}
	return &r.Terms[r.exp]
}

// HasAll reports whether the record has an "all" mechanism, which makes
// any redirect modifier be ignored (RFC 7208 §6.1).
func (r *Record) HasAll() bool { return r.hasAll }

// LookupTerms returns how many of the record's terms would count against
// the DNS lookup limit if all were evaluated (RFC 7208 §4.6.4); includes
// and redirects count once here, not their targets.
func (r *Record) LookupTerms() int { return r.lookups }

// Term is one directive or modifier.
type Term struct {
	// Pos is the byte offset of the term in Record.Text.
	Pos int `json:"pos"`
	// Text is the term as written.
	Text string `json:"text"`
	Kind Kind   `json:"kind"`
	// Qualifier is set for mechanisms ("+" when not written).
	Qualifier Qualifier `json:"qualifier,omitempty"`
	// Name is the modifier name as written (for unknown modifiers).
	Name string `json:"name,omitempty"`
	// DomainSpec is the domain-spec of include, a, mx, ptr, exists,
	// redirect and exp, or the value of an unknown modifier; "" when the
	// mechanism has none and applies to the current <domain>.
	DomainSpec string `json:"domain_spec,omitempty"`
	// Network is the address range of ip4 and ip6.
	Network netip.Prefix `json:"network,omitzero"`
	// CIDR4 and CIDR6 are the dual-cidr-length of a and mx (RFC 7208
	// §5.6), -1 when not written (meaning /32 and /128).
	CIDR4 int `json:"cidr4"`
	CIDR6 int `json:"cidr6"`

	spec macroString // DomainSpec, pre-parsed
}

// Prefixes returns the IPv4 and IPv6 prefix lengths of an a or mx term.
func (t *Term) Prefixes() (v4, v6 int) {
	v4, v6 = 32, 128
	if t.CIDR4 >= 0 {
		v4 = t.CIDR4
	}
	if t.CIDR6 >= 0 {
		v6 = t.CIDR6
	}
	return v4, v6
}

// ErrSyntax is wrapped by every error Parse returns: the record does not
// follow the grammar of RFC 7208 §12, which makes check_host() return
// permerror (§4.6).
var ErrSyntax = errors.New("spf: syntax error")

// SyntaxError locates a syntax error in a record.
type SyntaxError struct {
	// Pos is the byte offset of the offending term in the record.
	Pos int
	// Term is the offending term ("" for errors about the whole record).
	Term string
	// Msg says what is wrong.
	Msg string
}

func (e *SyntaxError) Error() string {
	if e.Term == "" {
		return "spf: syntax error: " + e.Msg
	}
	return "spf: syntax error in term " + strconv.Quote(e.Term) + " at offset " + strconv.Itoa(e.Pos) + ": " + e.Msg
}

// Unwrap returns ErrSyntax.
func (e *SyntaxError) Unwrap() error { return ErrSyntax }

// IsSPFRecord reports whether txt is an SPF version 1 record: it begins
// with "v=spf1" (case-insensitive) followed by a space or the end
// (RFC 7208 §4.5).
func IsSPFRecord(txt string) bool {
	if len(txt) < 6 || !strings.EqualFold(txt[:6], "v=spf1") {
		return false
	}
	return len(txt) == 6 || txt[6] == ' '
}

// ParseOptions relax the grammar; the zero value is RFC 7208 exactly.
type ParseOptions struct {
	// AllowSingleLabel accepts a domain-spec that is a single label
	// ("include:localnet"), which the domain-end rule of RFC 7208 §7.1
	// forbids. Some private deployments publish such names.
	AllowSingleLabel bool
}

// Parse parses an SPF record (RFC 7208 §4.6, §12). Every syntax error in
// the record is reported, wherever it is (§4.6: the record must be
// checked in full before evaluation).
func Parse(record string) (*Record, error) {
	return ParseWith(record, ParseOptions{})
}

// ParseWith is Parse with relaxations of the grammar.
func ParseWith(record string, po ParseOptions) (*Record, error) {
	if !IsSPFRecord(record) {
		return nil, &SyntaxError{Msg: `record does not begin with "v=spf1"`}
	}
	rec := &Record{Text: record, redirect: -1, exp: -1}
	// RFC 7208 §12: terms = *( 1*SP ( directive / modifier ) ), record =
	// version terms *SP. Only SP separates terms; any other character is
	// part of a term.
	n := 0
	for i := 6; i < len(record); i++ {
		if record[i] != ' ' && record[i-1] == ' ' {
			n++
		}
	}
	rec.Terms = make([]Term, 0, n)
	i := 6
	for i < len(record) {
		for i < len(record) && record[i] == ' ' {
			i++
		}
		if i == len(record) {
			break
		}
		j := strings.IndexByte(record[i:], ' ')
		if j < 0 {
			j = len(record)
		} else {
			j += i
		}
		rec.Terms = append(rec.Terms, Term{})
		t := &rec.Terms[len(rec.Terms)-1]
		if err := parseTerm(t, record[i:j], i, po); err != nil {
			return nil, err
		}
		switch t.Kind {
		case KindRedirect, KindExp:
			// RFC 7208 §6: redirect and exp must not appear more than once.
			idx := &rec.redirect
			if t.Kind == KindExp {
				idx = &rec.exp
			}
			if *idx >= 0 {
				return nil, &SyntaxError{Pos: i, Term: t.Text, Msg: "modifier " + string(t.Kind) + " appears more than once"}
			}
			*idx = len(rec.Terms) - 1
		case KindAll:
			rec.hasAll = true
		}
		if t.Kind.CountsLookup() {
			rec.lookups++
		}
		i = j
	}
	return rec, nil
}

// parseTerm parses one directive or modifier (RFC 7208 §4.6.1, §12).
func parseTerm(t *Term, s string, pos int, po ParseOptions) error {
	*t = Term{Pos: pos, Text: s, CIDR4: -1, CIDR6: -1}
	bad := func(msg string) error {
		return &SyntaxError{Pos: pos, Term: s, Msg: msg}
	}
	// A modifier is name "=" ...; name = ALPHA *( ALPHA / DIGIT / "-" /
	// "_" / "." ). A term whose name is followed by "=" is a modifier.
	if n := nameLen(s); n > 0 && n < len(s) && s[n] == '=' {
		name, value := s[:n], s[n+1:]
		t.Name = name
		t.DomainSpec = value
		switch {
		case strings.EqualFold(name, "redirect"):
			t.Kind = KindRedirect
		case strings.EqualFold(name, "exp"):
			t.Kind = KindExp
		default:
			// unknown-modifier = name "=" macro-string (RFC 7208 §6: ignored,
			// but its value must still be a valid macro-string).
			t.Kind = KindUnknown
			ms, err := parseMacroString(value, macroAny)
			if err != nil {
				return bad(err.Error())
			}
			t.spec = ms
			return nil
		}
		ms, err := parseDomainSpec(value, po)
		if err != nil {
			return bad(err.Error())
		}
		t.spec = ms
		return nil
	}

	rest := s
	t.Qualifier = QualPass
	switch rest[0] {
	case '+', '-', '~', '?':
		t.Qualifier = Qualifier(rest[:1])
		rest = rest[1:]
	}
	n := 0
	for n < len(rest) && isAlnum(rest[n]) {
		n++
	}
	name, arg := rest[:n], rest[n:]
	switch {
	case strings.EqualFold(name, "all"):
		t.Kind = KindAll
		if arg != "" {
			return bad(`"all" takes no argument`)
		}
	case strings.EqualFold(name, "include"), strings.EqualFold(name, "exists"):
		t.Kind = KindInclude
		if len(name) == 6 {
			t.Kind = KindExists
		}
		if arg == "" || arg[0] != ':' {
			return bad(`"` + string(t.Kind) + `" needs ":" and a domain`)
		}
		ms, err := parseDomainSpec(arg[1:], po)
		if err != nil {
			return bad(err.Error())
		}
		t.DomainSpec, t.spec = arg[1:], ms
	case strings.EqualFold(name, "a"), strings.EqualFold(name, "mx"):
		t.Kind = KindA
		if len(name) == 2 {
			t.Kind = KindMX
		}
		// a / mx [ ":" domain-spec ] [ dual-cidr-length ]
		spec, c4, c6, ok := splitDualCIDR(arg)
		if !ok {
			return bad("invalid CIDR length")
		}
		t.CIDR4, t.CIDR6 = c4, c6
		if spec != "" {
			if spec[0] != ':' {
				return bad(`unexpected text after "` + string(t.Kind) + `"`)
			}
			ms, err := parseDomainSpec(spec[1:], po)
			if err != nil {
				return bad(err.Error())
			}
			t.DomainSpec, t.spec = spec[1:], ms
		}
	case strings.EqualFold(name, "ptr"):
		t.Kind = KindPTR
		if arg != "" {
			if arg[0] != ':' {
				return bad(`unexpected text after "ptr"`)
			}
			ms, err := parseDomainSpec(arg[1:], po)
			if err != nil {
				return bad(err.Error())
			}
			t.DomainSpec, t.spec = arg[1:], ms
		}
	case strings.EqualFold(name, "ip4"), strings.EqualFold(name, "ip6"):
		t.Kind = KindIP4
		bits := 32
		if name[2] == '6' {
			t.Kind, bits = KindIP6, 128
		}
		if arg == "" || arg[0] != ':' {
			return bad(`"` + string(t.Kind) + `" needs ":" and an address`)
		}
		arg = arg[1:]
		addrText, cidrText, hasCIDR := strings.Cut(arg, "/")
		addr, err := netip.ParseAddr(addrText)
		// ip4-network is a dotted quad without leading zeros (ParseAddr
		// refuses them); ip6-network is an RFC 4291 §2.2 address, without a
		// zone.
		if err != nil || addr.Zone() != "" || (bits == 32) != addr.Is4() {
			return bad("invalid " + string(t.Kind) + " address")
		}
		plen := bits
		if hasCIDR {
			var ok bool
			if plen, ok = parseCIDR(cidrText, bits); !ok {
				return bad("invalid CIDR length")
			}
		}
		t.Network = netip.PrefixFrom(addr, plen).Masked()
	default:
		return bad("unknown mechanism " + strconv.Quote(name))
	}
	return nil
}

// nameLen returns the length of the modifier name at the start of s
// (RFC 7208 §12: name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )).
func nameLen(s string) int {
	if s == "" || !isAlpha(s[0]) {
		return 0
	}
	n := 1
	for n < len(s) {
		c := s[n]
		if !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			break
		}
		n++
	}
	return n
}

// splitDualCIDR splits "[:domain-spec][/n4][//n6]" into its domain part
// (with its ":") and the two prefix lengths (-1 when absent). RFC 7208
// §5.6: dual-cidr-length = [ ip4-cidr-length ] [ "/" ip6-cidr-length ].
// The domain-spec may itself contain "/", so the lengths are taken from
// the end and only when they are digits.
func splitDualCIDR(s string) (rest string, c4, c6 int, ok bool) {
	c4, c6 = -1, -1
	if i := strings.LastIndex(s, "//"); i >= 0 && allDigits(s[i+2:]) {
		if c6, ok = parseCIDR(s[i+2:], 128); !ok {
			return "", 0, 0, false
		}
		s = s[:i]
	}
	if i := strings.LastIndexByte(s, '/'); i >= 0 && allDigits(s[i+1:]) {
		if c4, ok = parseCIDR(s[i+1:], 32); !ok {
			return "", 0, 0, false
		}
		s = s[:i]
	}
	if s != "" && s[0] != ':' {
		// Something else follows the mechanism name: a malformed length
		// ("a/24/64", "a//", "a/x") or an unknown suffix.
		return "", 0, 0, false
	}
	return s, c4, c6, true
}

// parseCIDR reads a prefix length: "0" or digits without a leading zero,
// at most max (RFC 7208 §12 ip4-cidr-length, ip6-cidr-length).
func parseCIDR(s string, max int) (int, bool) {
	if s == "" || len(s) > 3 || !allDigits(s) || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n, _ := strconv.Atoi(s)
	return n, n <= max
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return (c|0x20) >= 'a' && (c|0x20) <= 'z' }
func isAlnum(c byte) bool { return isAlpha(c) || isDigit(c) }

// parseDomainSpec checks a domain-spec (RFC 7208 §7.1):
//
//	domain-spec = macro-string domain-end
//	domain-end  = ( "." toplabel [ "." ] ) / macro-expand
//	toplabel    = ( *alphanum ALPHA *alphanum ) /
//	              ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
//
// The macro letters c, r and t are not allowed outside explanations.
func parseDomainSpec(s string, po ParseOptions) (macroString, error) {
	if s == "" {
		return macroString{}, errors.New("empty domain-spec")
	}
	ms, err := parseMacroString(s, macroDomain)
	if err != nil {
		return ms, err
	}
	if ms.hasMacros() && ms.literalTail == len(s) {
		return ms, nil // ends with a macro-expand
	}
	// The text after the last macro-expand must end with "." toplabel
	// [ "." ].
	tail := s[ms.literalTail:]
	tail = strings.TrimSuffix(tail, ".")
	dot := strings.LastIndexByte(tail, '.')
	top := tail[dot+1:]
	if !isTopLabel(top) {
		return ms, errors.New("domain-spec does not end with a valid top-level label")
	}
	if dot < 0 && !(po.AllowSingleLabel && ms.literalTail == 0) {
		return ms, errors.New("domain-spec is a single label")
	}
	return ms, nil
}

// isTopLabel checks the toplabel rule of RFC 7208 §7.1.
func isTopLabel(s string) bool {
	if s == "" {
		return false
	}
	alpha, dash := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isAlpha(c):
			alpha = true
		case isDigit(c):
		case c == '-':
			dash = true
		default:
			return false
		}
	}
	if !dash {
		return alpha
	}
	// 1*alphanum "-" *( alphanum / "-" ) alphanum
	return s[0] != '-' && s[len(s)-1] != '-'
}
