package spf

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// macroMode says where a macro-string appears, which decides the macro
// letters and literal characters allowed.
type macroMode uint8

const (
	// macroDomain: a domain-spec; letters s l o d i p h v (RFC 7208 §7.2:
	// c, r and t are allowed only in exp text).
	macroDomain macroMode = iota
	// macroExplain: an explain-string (the TXT record an exp= names):
	// every letter, and SP between macro-strings (RFC 7208 §6.2, §7.1).
	macroExplain
	// macroAny: the value of an unknown modifier, a macro-string with the
	// letters of the grammar (RFC 7208 §12).
	macroAny
)

// macroToken is a literal run or one %{...} macro-expand.
type macroToken struct {
	lit     string // literal text, when letter == 0
	letter  byte   // lower-case macro letter
	upper   bool   // upper-case letter: URL-escape the value (§7.3)
	digits  int    // keep this many right-hand parts; 0: all
	reverse bool
	delims  string // "" means "."
	end     int    // offset just past the token in the source
}

// macroString is a pre-parsed macro-string.
type macroString struct {
	raw string
	// toks is nil when raw contains no macro at all: it expands to itself.
	toks []macroToken
	// literalTail is the offset where the literal text after the last
	// macro-expand (including %%, %_ and %-) begins.
	literalTail int
}

// ErrMacro is wrapped by macro syntax errors.
var ErrMacro = errors.New("invalid macro")

func macroErr(msg string) error { return fmt.Errorf("%w: %s", ErrMacro, msg) }

// parseMacroString parses a macro-string (RFC 7208 §7.1):
//
//	macro-string = *( macro-expand / macro-literal )
//	macro-expand = ( "%{" macro-letter transformers *delimiter "}" )
//	               / "%%" / "%_" / "%-"
//	macro-literal = %x21-24 / %x26-7E
//	transformers = *DIGIT [ "r" ]
//	delimiter    = "." / "-" / "+" / "," / "/" / "_" / "="
func parseMacroString(s string, mode macroMode) (macroString, error) {
	ms := macroString{raw: s}
	if strings.IndexByte(s, '%') < 0 {
		for i := 0; i < len(s); i++ {
			if !isMacroLiteral(s[i], mode) {
				return ms, macroErr("character " + strconv.QuoteRune(rune(s[i])) + " not allowed")
			}
		}
		return ms, nil
	}
	ms.toks = make([]macroToken, 0, 4)
	var lit strings.Builder
	flush := func(end int) {
		if lit.Len() > 0 {
			ms.toks = append(ms.toks, macroToken{lit: lit.String(), end: end})
			lit.Reset()
		}
	}
	i := 0
	for i < len(s) {
		c := s[i]
		if c != '%' {
			if !isMacroLiteral(c, mode) {
				return ms, macroErr("character " + strconv.QuoteRune(rune(c)) + " not allowed")
			}
			lit.WriteByte(c)
			i++
			continue
		}
		if i+1 >= len(s) {
			return ms, macroErr(`"%" at the end`)
		}
		switch s[i+1] {
		case '%':
			lit.WriteByte('%')
			i += 2
			ms.literalTail = i
			continue
		case '_':
			lit.WriteByte(' ')
			i += 2
			ms.literalTail = i
			continue
		case '-':
			lit.WriteString("%20")
			i += 2
			ms.literalTail = i
			continue
		case '{':
		default:
			return ms, macroErr(`"%" must be followed by "{", "%", "_" or "-"`)
		}
		flush(i)
		tok, n, err := parseMacroExpand(s[i:], mode)
		if err != nil {
			return ms, err
		}
		i += n
		tok.end = i
		ms.toks = append(ms.toks, tok)
		ms.literalTail = i
	}
	flush(len(s))
	return ms, nil
}

// parseMacroExpand parses "%{...}" at the start of s and returns the
// token and its length.
func parseMacroExpand(s string, mode macroMode) (macroToken, int, error) {
	var tok macroToken
	i := 2
	if i >= len(s) {
		return tok, 0, macroErr("unterminated %{")
	}
	l := s[i]
	lower := l | 0x20
	switch lower {
	case 's', 'l', 'o', 'd', 'i', 'p', 'h', 'v':
	case 'c', 'r', 't':
		if mode == macroDomain {
			return tok, 0, macroErr("%{" + string(l) + "} is allowed only in explanations")
		}
	default:
		return tok, 0, macroErr("unknown macro letter " + strconv.QuoteRune(rune(l)))
	}
	if !isAlpha(l) {
		return tok, 0, macroErr("unknown macro letter " + strconv.QuoteRune(rune(l)))
	}
	tok.letter = lower
	tok.upper = l != lower
	i++
	// transformers = *DIGIT [ "r" ]
	start := i
	val := 0
	for i < len(s) && isDigit(s[i]) {
		if val < 1000 {
			val = val*10 + int(s[i]-'0')
		}
		i++
	}
	if i > start {
		if val == 0 {
			// RFC 7208 §7.3: if a DIGIT is specified, the value MUST be
			// nonzero.
			return tok, 0, macroErr("zero digit transformer")
		}
		tok.digits = val
	}
	if i < len(s) && (s[i]|0x20) == 'r' {
		tok.reverse = true
		i++
	}
	dstart := i
	for i < len(s) && isDelimiter(s[i]) {
		i++
	}
	if i > dstart {
		tok.delims = s[dstart:i]
	}
	if i >= len(s) || s[i] != '}' {
		return tok, 0, macroErr("malformed %{...}")
	}
	return tok, i + 1, nil
}

func isDelimiter(c byte) bool {
	switch c {
	case '.', '-', '+', ',', '/', '_', '=':
		return true
	}
	return false
}

// isMacroLiteral: macro-literal = %x21-24 / %x26-7E; an explain-string
// also allows SP.
func isMacroLiteral(c byte, mode macroMode) bool {
	if c == ' ' {
		return mode == macroExplain
	}
	return c >= 0x21 && c <= 0x7e && c != '%'
}

// macroEnv holds the values the macro letters stand for (RFC 7208 §7.2).
type macroEnv struct {
	sender       string // <sender>
	local        string // local-part of <sender>
	senderDomain string // domain of <sender>
	domain       string // <domain>
	helo         string
	receiver     string
	ip           netip.Addr // unmapped
	now          func() time.Time
	// checker finds the validated domain name of ip for %{p} (§7.3);
	// without one, ptrName is used, or "unknown".
	checker *checker
	ptrName string
}

// expand appends the expansion of ms to dst.
func (ms *macroString) expand(dst []byte, env *macroEnv) []byte {
	if ms.toks == nil {
		return append(dst, ms.raw...)
	}
	for i := range ms.toks {
		t := &ms.toks[i]
		if t.letter == 0 {
			dst = append(dst, t.lit...)
			continue
		}
		dst = t.expand(dst, env)
	}
	return dst
}

// hasMacros reports whether expanding ms needs the environment.
func (ms *macroString) hasMacros() bool { return ms.toks != nil }

func (t *macroToken) expand(dst []byte, env *macroEnv) []byte {
	var val string
	var buf [72]byte
	switch t.letter {
	case 's':
		val = env.sender
	case 'l':
		val = env.local
	case 'o':
		val = env.senderDomain
	case 'd':
		val = env.domain
	case 'h':
		val = env.helo
	case 'i':
		val = string(dottedIP(buf[:0], env.ip))
	case 'c':
		if env.ip.IsValid() {
			val = env.ip.String()
		}
	case 'v':
		// RFC 7208 §7.3: "in-addr" for IPv4, "ip6" for IPv6.
		val = "in-addr"
		if env.ip.Is6() {
			val = "ip6"
		}
	case 'p':
		switch {
		case env.checker != nil:
			val = env.checker.validatedName(env.domain)
		case env.ptrName != "":
			val = env.ptrName
		default:
			val = "unknown"
		}
	case 'r':
		// RFC 7208 §7.2: the domain name of the host performing the check,
		// or "unknown".
		val = env.receiver
		if val == "" {
			val = "unknown"
		}
	case 't':
		now := time.Now
		if env.now != nil {
			now = env.now
		}
		val = strconv.FormatInt(now().Unix(), 10)
	}
	if t.digits == 0 && !t.reverse && (t.delims == "" || t.delims == ".") {
		return appendEscaped(dst, val, t.upper)
	}
	return appendEscapedParts(dst, val, t)
}

// appendEscapedParts applies the transformers of RFC 7208 §7.3: split
// val on the delimiters, reverse the parts if asked, keep the right-most
// t.digits parts and join them with ".".
func appendEscapedParts(dst []byte, val string, t *macroToken) []byte {
	delims := t.delims
	if delims == "" {
		delims = "."
	}
	var partsBuf [16]string
	parts := partsBuf[:0]
	start := 0
	for i := 0; i < len(val); i++ {
		if strings.IndexByte(delims, val[i]) >= 0 {
			parts = append(parts, val[start:i])
			start = i + 1
		}
	}
	parts = append(parts, val[start:])
	if t.reverse {
		for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
			parts[i], parts[j] = parts[j], parts[i]
		}
	}
	if t.digits > 0 && t.digits < len(parts) {
		parts = parts[len(parts)-t.digits:]
	}
	for i, p := range parts {
		if i > 0 {
			dst = append(dst, '.')
		}
		dst = appendEscaped(dst, p, t.upper)
	}
	return dst
}

// appendEscaped appends s, URL-escaped when esc is set: RFC 7208 §7.3,
// upper-case macro letters escape every character outside the
// "unreserved" set of RFC 3986 (ALPHA DIGIT "-" "." "_" "~").
func appendEscaped(dst []byte, s string, esc bool) []byte {
	if !esc {
		return append(dst, s...)
	}
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~' {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', hex[c>>4], hex[c&0xf])
	}
	return dst
}

// dottedIP appends the %{i} form of ip (RFC 7208 §7.3): the dotted quad
// of an IPv4 address, the 32 dot-separated nibbles of an IPv6 address.
func dottedIP(dst []byte, ip netip.Addr) []byte {
	switch {
	case ip.Is4():
		a := ip.As4()
		for i, b := range a {
			if i > 0 {
				dst = append(dst, '.')
			}
			dst = strconv.AppendUint(dst, uint64(b), 10)
		}
	case ip.Is6():
		const hex = "0123456789abcdef"
		a := ip.As16()
		for i, b := range a {
			if i > 0 {
				dst = append(dst, '.')
			}
			dst = append(dst, hex[b>>4], '.', hex[b&0xf])
		}
	}
	return dst
}

// MacroContext gives the values of the macro letters for ExpandMacros.
type MacroContext struct {
	// Sender is <sender>, "local-part@domain" (RFC 7208 §4.1).
	Sender string
	// Domain is <domain>, the domain whose record is being evaluated.
	Domain string
	// IP is the SMTP client address.
	IP   netip.Addr
	HELO string
	// Receiver is the domain of the checking host (%{r}); "" gives
	// "unknown".
	Receiver string
	// Now gives %{t}; nil means time.Now.
	Now func() time.Time
	// PTR is the validated domain name of IP for %{p}; "" gives "unknown".
	PTR string
}

// ExpandMacros expands the macros of s (RFC 7208 §7). explain selects the
// explain-string grammar of exp= text, which allows the letters c, r and
// t and spaces; otherwise s is a domain-spec's macro-string. A syntax
// error returns an error wrapping ErrMacro.
func ExpandMacros(s string, mc MacroContext, explain bool) (string, error) {
	mode := macroDomain
	if explain {
		mode = macroExplain
	}
	ms, err := parseMacroString(s, mode)
	if err != nil {
		return "", err
	}
	local, dom := splitSender(mc.Sender)
	env := macroEnv{
		sender: mc.Sender, local: local, senderDomain: dom, domain: mc.Domain,
		helo: mc.HELO, receiver: mc.Receiver, ip: mc.IP.Unmap(), now: mc.Now,
	}
	env.ptrName = mc.PTR
	return string(ms.expand(nil, &env)), nil
}

// splitSender splits "local@domain" at its last "@"; an empty local-part
// becomes "postmaster" (RFC 7208 §4.3). Without "@", the whole string is
// the domain.
func splitSender(sender string) (local, domain string) {
	i := strings.LastIndexByte(sender, '@')
	if i < 0 {
		return "postmaster", sender
	}
	local, domain = sender[:i], sender[i+1:]
	if local == "" {
		local = "postmaster"
	}
	return local, domain
}

// truncateDomain removes a trailing dot and then, while the name exceeds
// 253 octets, its left-most label (RFC 7208 §7.3: "if the expanded domain
// name exceeds 253 characters ..., the left side is truncated to fit, by
// removing successive domain labels (and their following dots) until the
// total length does not exceed 253 characters").
func truncateDomain(name string) string {
	name = strings.TrimSuffix(name, ".")
	for len(name) > 253 {
		i := strings.IndexByte(name, '.')
		if i < 0 {
			return ""
		}
		name = name[i+1:]
	}
	return name
}
