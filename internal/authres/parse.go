package authres

import (
	"fmt"
	"strconv"
	"strings"
)

// Parse parses the value of an Authentication-Results field (the text
// after the colon, folded or not) following RFC 8601 §2.2:
//
//	authres-payload = [CFWS] authserv-id [ CFWS authres-version ]
//	                  ( no-result / 1*resinfo ) [CFWS] CRLF
//	resinfo         = [CFWS] ";" methodspec [ CFWS reasonspec ]
//	                  [ CFWS 1*propspec ]
//
// Keywords (method, result, ptype, property) are returned lower case;
// values are unquoted. Line breaks (CR, LF) count as folding white space.
//
// Tolerated departures from the ABNF, each seen from widespread senders
// and each without ambiguity:
//   - empty statements: a ";" at the end or two ";" in a row, and an
//     authserv-id with no statement at all (read as "none");
//   - a statement that is a lone token without "=" (a stray repetition of
//     the authserv-id, as Outlook writes), or a method with "=" and no
//     result: skipped, as it reports nothing;
//   - between the authserv-id and the first ";", words and word=value
//     pairs that are not a version (an old Yahoo layout): skipped. A word
//     followed by anything but ";", "=" or the end is still an error;
//   - names (method, result, ptype, property) written as quoted strings,
//     and "ptype.property" quoted as one string;
//   - a property without ptype (x-bits=1024, action=none): kept with
//     Prop.Type "";
//   - result keywords that are tokens rather than keywords (containing
//     "." or "+"), and unquoted property values containing any printable
//     character but white space, ";", "(", ")" and '"' (header.b=ab/c+d,
//     address=a=b@example.com): kept as written.
//
// "none" must stand alone: "none" followed by anything, or after or before
// another statement, is an error, since it would claim that nothing was
// evaluated while reporting results.
func Parse(value string) (*Header, error) {
	if len(value) > MaxValueLen {
		return nil, fmt.Errorf("%w: value of %d bytes (max %d)", ErrLimit, len(value), MaxValueLen)
	}
	p := &parser{s: value}
	h, err := p.header()
	if err != nil {
		return nil, err
	}
	return h, nil
}

// ParseField parses a whole field, "Authentication-Results: value" (the
// name in any case, with or without a trailing CRLF).
func ParseField(field string) (*Header, error) {
	name, value, ok := strings.Cut(field, ":")
	if !ok || !strings.EqualFold(strings.TrimRight(name, " \t"), FieldName) {
		return nil, &SyntaxError{Offset: 0, Msg: "not an " + FieldName + " field"}
	}
	return Parse(value)
}

// FieldName is the name of the header field.
const FieldName = "Authentication-Results"

type parser struct {
	s       string
	i       int
	pending []string // comment texts not yet attached
}

func (p *parser) eof() bool { return p.i >= len(p.s) }

func (p *parser) peek() byte {
	if p.i >= len(p.s) {
		return 0
	}
	return p.s[p.i]
}

func (p *parser) errAt(off int, format string, args ...any) error {
	return &SyntaxError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// found describes the input at the current position for error messages.
func (p *parser) found() string {
	if p.eof() {
		return "end of value"
	}
	end := p.i + 12
	if end > len(p.s) {
		end = len(p.s)
	}
	return strconv.Quote(p.s[p.i:end])
}

// flush returns the pending comments joined with one space and forgets
// them.
func (p *parser) flush() string {
	if len(p.pending) == 0 {
		return ""
	}
	s := strings.Join(p.pending, " ")
	p.pending = p.pending[:0]
	return s
}

func isWSP(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// isCtl reports a control character other than the white space handled as
// folding (RFC 5234 CTL minus HTAB, CR, LF).
func isCtl(c byte) bool { return (c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f }

// cfws skips white space (CR and LF included, as unfolding would leave
// them) and comments (RFC 5322 §3.2.2), collecting the comments' text.
func (p *parser) cfws() error {
	for !p.eof() {
		c := p.s[p.i]
		switch {
		case isWSP(c):
			p.i++
		case c == '(':
			text, err := p.comment()
			if err != nil {
				return err
			}
			p.pending = append(p.pending, text)
		default:
			return nil
		}
	}
	return nil
}

// comment reads a comment starting at "(" and returns its text without
// the outer parentheses, quoted-pairs decoded, line breaks removed
// (RFC 5322 §3.2.2: ccontent = ctext / quoted-pair / comment).
func (p *parser) comment() (string, error) {
	start := p.i
	depth := 0
	var b strings.Builder
	for !p.eof() {
		c := p.s[p.i]
		switch {
		case c == '(':
			depth++
			if depth > MaxCommentDepth {
				return "", fmt.Errorf("%w: comments nested deeper than %d (offset %d)", ErrLimit, MaxCommentDepth, p.i)
			}
			if depth > 1 {
				b.WriteByte(c)
			}
			p.i++
		case c == ')':
			depth--
			p.i++
			if depth == 0 {
				return b.String(), nil
			}
			b.WriteByte(c)
		case c == '\\':
			if p.i+1 >= len(p.s) {
				return "", p.errAt(p.i, "quoted-pair at end of value")
			}
			n := p.s[p.i+1]
			if n == '\r' || n == '\n' || isCtl(n) {
				return "", p.errAt(p.i, "invalid quoted-pair")
			}
			b.WriteByte(n)
			p.i += 2
		case c == '\r' || c == '\n':
			p.i++
		case isCtl(c):
			return "", p.errAt(p.i, "control character 0x%02x in comment", c)
		default:
			b.WriteByte(c)
			p.i++
		}
	}
	return "", p.errAt(start, "unterminated comment")
}

// quoted reads a quoted-string (RFC 5322 §3.2.4) starting at '"' and
// returns its content, quoted-pairs decoded and line breaks removed.
func (p *parser) quoted() (string, error) {
	start := p.i
	p.i++
	var b strings.Builder
	for !p.eof() {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return b.String(), nil
		case c == '\\':
			if p.i+1 >= len(p.s) {
				return "", p.errAt(p.i, "quoted-pair at end of value")
			}
			n := p.s[p.i+1]
			if n == '\r' || n == '\n' || isCtl(n) {
				return "", p.errAt(p.i, "invalid quoted-pair")
			}
			b.WriteByte(n)
			p.i += 2
		case c == '\r' || c == '\n':
			p.i++
		case isCtl(c):
			return "", p.errAt(p.i, "control character 0x%02x in quoted string", c)
		default:
			b.WriteByte(c)
			p.i++
		}
	}
	return "", p.errAt(start, "unterminated quoted string")
}

// isTokenChar reports an RFC 2045 §5.1 token character: printable
// US-ASCII except tspecials. Octets of UTF-8 sequences are accepted too
// (RFC 6532).
func isTokenChar(c byte) bool {
	if c >= 0x80 {
		return true
	}
	if c <= 0x20 || c == 0x7f {
		return false
	}
	return !strings.ContainsRune(`()<>@,;:\"/[]?=`, rune(c))
}

// isNameChar reports a character of a Keyword (RFC 5321 Ldh-str) and,
// tolerated, "_".
func isNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

func (p *parser) token() string {
	start := p.i
	for !p.eof() && isTokenChar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

// value reads an RFC 2045 value: token / quoted-string.
func (p *parser) value() (string, bool, error) {
	if p.peek() == '"' {
		s, err := p.quoted()
		return s, err == nil, err
	}
	t := p.token()
	return t, t != "", nil
}

// name reads a keyword (method, ptype, property), or a quoted string
// holding one; dotted allows "ptype.property" inside the quotes.
func (p *parser) name(what string, dotted bool) (string, error) {
	start := p.i
	if p.peek() == '"' {
		s, err := p.quoted()
		if err != nil {
			return "", err
		}
		if !validName(s, dotted) {
			return "", p.errAt(start, "invalid %s %q", what, s)
		}
		return strings.ToLower(s), nil
	}
	for !p.eof() && isNameChar(p.s[p.i]) {
		p.i++
	}
	if p.i == start {
		return "", p.errAt(start, "expected %s, found %s", what, p.found())
	}
	return strings.ToLower(p.s[start:p.i]), nil
}

func validName(s string, dotted bool) bool {
	if s == "" {
		return false
	}
	parts := []string{s}
	if dotted {
		parts = strings.SplitN(s, ".", 2)
	}
	for _, part := range parts {
		if part == "" {
			return false
		}
		for i := 0; i < len(part); i++ {
			if !isNameChar(part[i]) {
				return false
			}
		}
	}
	return true
}

// isPValueChar reports a character of an unquoted property value: any
// printable character but white space, ';', '(', ')' and '"'.
func isPValueChar(c byte) bool {
	if c >= 0x80 {
		return true
	}
	if c <= 0x20 || c == 0x7f {
		return false
	}
	return c != ';' && c != '(' && c != ')' && c != '"'
}

// pvalue reads a property or reason value (RFC 8601 §2.2 pvalue: value /
// [ [ local-part ] "@" ] domain-name), quoted or not.
func (p *parser) pvalue(what string) (string, error) {
	if p.peek() == '"' {
		return p.quoted()
	}
	start := p.i
	for !p.eof() && isPValueChar(p.s[p.i]) {
		p.i++
	}
	if p.i == start {
		return "", p.errAt(start, "expected %s value, found %s", what, p.found())
	}
	return p.s[start:p.i], nil
}

func (p *parser) digits() string {
	start := p.i
	for !p.eof() && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	return p.s[start:p.i]
}

func parseVersion(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

func (p *parser) header() (*Header, error) {
	h := &Header{}
	if err := p.cfws(); err != nil {
		return nil, err
	}
	// RFC 8601 §2.2: authserv-id = value.
	start := p.i
	id, ok, err := p.value()
	if err != nil {
		return nil, err
	}
	if !ok || id == "" {
		return nil, p.errAt(start, "expected authserv-id, found %s", p.found())
	}
	h.ServID = id
	if err := p.cfws(); err != nil {
		return nil, err
	}
	if p.peek() == '=' {
		return nil, p.errAt(p.i, "authserv-id %q followed by '=': the field must start with the authserv-id", id)
	}
	// authres-version, then the tolerated legacy words before the first ";".
	first := true
	for !p.eof() && p.peek() != ';' {
		wstart := p.i
		w := p.token()
		if w == "" {
			return nil, p.errAt(p.i, "expected ';' after authserv-id, found %s", p.found())
		}
		if first && w[0] >= '0' && w[0] <= '9' {
			v, ok := parseVersion(w)
			if !ok {
				return nil, p.errAt(wstart, "invalid authres-version %q", w)
			}
			h.Version = v
			first = false
			if err := p.cfws(); err != nil {
				return nil, err
			}
			continue
		}
		first = false
		if err := p.cfws(); err != nil {
			return nil, err
		}
		if p.peek() == '=' {
			if !validName(w, false) {
				return nil, p.errAt(wstart, "invalid attribute name %q after authserv-id", w)
			}
			p.i++
			if err := p.cfws(); err != nil {
				return nil, err
			}
			vstart := p.i
			if _, ok, err := p.value(); err != nil {
				return nil, err
			} else if !ok {
				return nil, p.errAt(vstart, "expected value of %q, found %s", w, p.found())
			}
			if err := p.cfws(); err != nil {
				return nil, err
			}
			continue
		}
		if !p.eof() && p.peek() != ';' {
			return nil, p.errAt(p.i, "unexpected %s after %q", p.found(), w)
		}
	}
	p.flush()

	none := false
	for !p.eof() {
		// p.peek() == ';'
		p.i++
		if err := p.cfws(); err != nil {
			return nil, err
		}
		if p.eof() || p.peek() == ';' {
			p.flush()
			continue
		}
		rstart := p.i
		r, kind, err := p.resinfo()
		if err != nil {
			return nil, err
		}
		switch kind {
		case resNone:
			if none || len(h.Results) > 0 {
				return nil, p.errAt(rstart, `"none" must be the only statement`)
			}
			none = true
		case resResult:
			if none {
				return nil, p.errAt(rstart, `statement after "none": "none" must be the only statement`)
			}
			if len(h.Results) >= MaxResults {
				return nil, fmt.Errorf("%w: more than %d results", ErrLimit, MaxResults)
			}
			h.Results = append(h.Results, r)
		}
		if !p.eof() && p.peek() != ';' {
			return nil, p.errAt(p.i, "expected ';' or end of value, found %s", p.found())
		}
	}
	return h, nil
}

type resKind int

const (
	resSkip resKind = iota
	resNone
	resResult
)

// resinfo reads one statement after its ";" and leading CFWS.
func (p *parser) resinfo() (Result, resKind, error) {
	var r Result
	// A lone token: "none", or a stray word that reports nothing.
	save, saveN := p.i, len(p.pending)
	if w := p.token(); w != "" {
		if err := p.cfws(); err != nil {
			return r, 0, err
		}
		if p.eof() || p.peek() == ';' {
			p.flush()
			if strings.EqualFold(w, "none") {
				return r, resNone, nil
			}
			return r, resSkip, nil
		}
		if strings.EqualFold(w, "none") && p.peek() != '=' && p.peek() != '/' {
			return r, 0, p.errAt(save, `"none" followed by %s: "none" must stand alone`, p.found())
		}
		p.i, p.pending = save, p.pending[:saveN]
	}
	// methodspec = [CFWS] method [CFWS] "=" [CFWS] result
	// method = Keyword [ [CFWS] "/" [CFWS] method-version ]
	m, err := p.name("method", false)
	if err != nil {
		return r, 0, err
	}
	r.Method = m
	if err := p.cfws(); err != nil {
		return r, 0, err
	}
	if p.peek() == '/' {
		p.i++
		if err := p.cfws(); err != nil {
			return r, 0, err
		}
		vstart := p.i
		v, ok := parseVersion(p.digits())
		if !ok {
			return r, 0, p.errAt(vstart, "expected method-version digits after %q/, found %s", m, p.found())
		}
		r.Version = v
		if err := p.cfws(); err != nil {
			return r, 0, err
		}
	}
	if p.peek() != '=' {
		return r, 0, p.errAt(p.i, "expected '=' after method %q, found %s", m, p.found())
	}
	p.i++
	if err := p.cfws(); err != nil {
		return r, 0, err
	}
	if p.eof() || p.peek() == ';' {
		p.flush()
		return r, resSkip, nil
	}
	vstart := p.i
	v, ok, err := p.value()
	if err != nil {
		return r, 0, err
	}
	if !ok || v == "" {
		return r, 0, p.errAt(vstart, "expected result of %q, found %s", m, p.found())
	}
	r.Value = strings.ToLower(v)
	if err := p.cfws(); err != nil {
		return r, 0, err
	}
	comments := p.takePending(nil)
	haveReason := false
	for !p.eof() && p.peek() != ';' {
		// reasonspec = "reason" [CFWS] "=" [CFWS] value
		// propspec = ptype [CFWS] "." [CFWS] property [CFWS] "=" pvalue
		nstart := p.i
		quoted := p.peek() == '"'
		n1, err := p.name("property", true)
		if err != nil {
			return r, 0, err
		}
		if err := p.cfws(); err != nil {
			return r, 0, err
		}
		var prop Prop
		switch {
		case p.peek() == '.':
			if quoted && strings.Contains(n1, ".") {
				return r, 0, p.errAt(p.i, "unexpected '.' after %q", n1)
			}
			p.i++
			if err := p.cfws(); err != nil {
				return r, 0, err
			}
			n2, err := p.name("property", false)
			if err != nil {
				return r, 0, err
			}
			if err := p.cfws(); err != nil {
				return r, 0, err
			}
			prop.Type, prop.Name = n1, n2
		case strings.Contains(n1, "."):
			prop.Type, prop.Name, _ = strings.Cut(n1, ".")
		default:
			prop.Name = n1
		}
		if p.peek() != '=' {
			return r, 0, p.errAt(p.i, "expected '=' after %q, found %s", prop.Key(), p.found())
		}
		p.i++
		if err := p.cfws(); err != nil {
			return r, 0, err
		}
		inner := p.takePending(nil)
		if prop.Type == "" && prop.Name == "reason" {
			if haveReason {
				return r, 0, p.errAt(nstart, "second reason")
			}
			haveReason = true
			if r.Reason, err = p.pvalue("reason"); err != nil {
				return r, 0, err
			}
			if err := p.cfws(); err != nil {
				return r, 0, err
			}
			comments = append(comments, inner...)
			comments = p.takePending(comments)
			continue
		}
		if prop.Value, err = p.pvalue(prop.Key()); err != nil {
			return r, 0, err
		}
		if err := p.cfws(); err != nil {
			return r, 0, err
		}
		prop.Comment = strings.Join(p.takePending(inner), " ")
		if len(r.Props) >= MaxProps {
			return r, 0, fmt.Errorf("%w: more than %d properties", ErrLimit, MaxProps)
		}
		r.Props = append(r.Props, prop)
	}
	r.Comment = strings.Join(comments, " ")
	return r, resResult, nil
}

// takePending appends the pending comments to dst and forgets them.
func (p *parser) takePending(dst []string) []string {
	dst = append(dst, p.pending...)
	p.pending = p.pending[:0]
	return dst
}
