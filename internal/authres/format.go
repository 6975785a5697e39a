package authres

import (
	"fmt"
	"strconv"
	"strings"
)

// FoldWidth is the line length Format aims at (RFC 5322 §2.1.1 SHOULD
// limit of 78 characters, CRLF excluded).
const FoldWidth = 78

// Format returns the field value for an "Authentication-Results: " field:
// the authserv-id, the version when set, then "none" or each statement in
// the order of h.Results, each written as method[/version]=result, its
// comment, reason and properties in their order. Values are quoted when
// they are neither a token nor an address (RFC 8601 §2.2 pvalue). Lines are
// folded (CRLF TAB) before a statement, or before a property of a long
// statement, that would pass FoldWidth. The value carries no trailing
// CRLF.
//
// Format writes anything Parse can return, so Parse(Format(h)) gives h
// back for every h that Parse produced; use Validate first to hold
// generated fields to RFC 8601 strictly.
func (h *Header) Format() (string, error) {
	return h.FormatAt(len(FieldName) + 2)
}

// FormatAt is Format for a value that starts at column col (the length of
// what precedes it on the first line, e.g. the field name, colon and space,
// or "ARC-Authentication-Results: i=1; ").
func (h *Header) FormatAt(col int) (string, error) {
	if h.ServID == "" {
		return "", fmt.Errorf("%w: empty authserv-id", ErrUnrepresentable)
	}
	id, err := formatValue(h.ServID)
	if err != nil {
		return "", fmt.Errorf("authserv-id: %w", err)
	}
	w := &folder{col: col}
	w.word(id, false)
	if h.Version > 0 {
		w.word(strconv.Itoa(h.Version), true)
	}
	if len(h.Results) == 0 {
		w.raw(";")
		w.word("none", true)
		return w.b.String(), nil
	}
	for i := range h.Results {
		words, err := resultWords(&h.Results[i])
		if err != nil {
			return "", fmt.Errorf("result %d (%s): %w", i+1, h.Results[i].Method, err)
		}
		w.raw(";")
		// Start a statement on a new line when it does not fit on this
		// one but fits on a fresh one; a longer one is folded between its
		// words.
		total := len(words) // the separators, and the ";" after it
		for _, s := range words {
			total += len(s)
		}
		if w.col+total > FoldWidth && 1+total <= FoldWidth {
			w.fold()
			w.b.WriteString(words[0])
			w.col += len(words[0])
		} else {
			w.word(words[0], true)
		}
		for _, s := range words[1:] {
			w.word(s, true)
		}
	}
	return w.b.String(), nil
}

// Field returns the whole field, "Authentication-Results: value\r\n".
func (h *Header) Field() (string, error) {
	v, err := h.Format()
	if err != nil {
		return "", err
	}
	return FieldName + ": " + v + "\r\n", nil
}

// String returns the formatted value, or a description of why it cannot
// be formatted.
func (h *Header) String() string {
	v, err := h.Format()
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return v
}

type folder struct {
	b   strings.Builder
	col int
}

func (w *folder) raw(s string) {
	w.b.WriteString(s)
	w.col += len(s)
}

func (w *folder) fold() {
	w.b.WriteString("\r\n\t")
	w.col = 1
}

// word writes s, preceded by a space or, when s would pass FoldWidth and
// the line already holds something, by a fold.
func (w *folder) word(s string, sep bool) {
	if sep {
		if w.col+1+len(s) > FoldWidth && w.col > 1 {
			w.fold()
		} else {
			w.b.WriteByte(' ')
			w.col++
		}
	}
	w.b.WriteString(s)
	w.col += len(s)
}

func resultWords(r *Result) ([]string, error) {
	if !validName(r.Method, false) {
		return nil, fmt.Errorf("%w: method %q", ErrUnrepresentable, r.Method)
	}
	if r.Value == "" {
		return nil, fmt.Errorf("%w: empty result", ErrUnrepresentable)
	}
	res, err := formatValue(r.Value)
	if err != nil {
		return nil, fmt.Errorf("result: %w", err)
	}
	first := r.Method
	if r.Version > 0 {
		first += "/" + strconv.Itoa(r.Version)
	}
	words := []string{first + "=" + res}
	if r.Comment != "" {
		c, err := formatComment(r.Comment)
		if err != nil {
			return nil, err
		}
		words = append(words, c)
	}
	if r.Reason != "" {
		v, err := formatPValue(r.Reason)
		if err != nil {
			return nil, fmt.Errorf("reason: %w", err)
		}
		words = append(words, "reason="+v)
	}
	for _, p := range r.Props {
		if !validName(p.Name, false) || (p.Type != "" && !validName(p.Type, false)) {
			return nil, fmt.Errorf("%w: property %q", ErrUnrepresentable, p.Key())
		}
		if p.Type == "" && strings.EqualFold(p.Name, "reason") {
			return nil, fmt.Errorf("%w: property named reason without ptype", ErrUnrepresentable)
		}
		v, err := formatPValue(p.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Key(), err)
		}
		words = append(words, p.Key()+"="+v)
		if p.Comment != "" {
			c, err := formatComment(p.Comment)
			if err != nil {
				return nil, err
			}
			words = append(words, c)
		}
	}
	return words, nil
}

// formatValue writes an RFC 2045 value: the token itself, else a quoted
// string.
func formatValue(s string) (string, error) {
	if isToken(s) {
		return s, nil
	}
	return quote(s)
}

// formatPValue writes a pvalue: a token or an address as it is, else a
// quoted string (RFC 8601 §2.2).
func formatPValue(s string) (string, error) {
	if isToken(s) || isAddress(s) {
		return s, nil
	}
	return quote(s)
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

// isAddress reports [ [ local-part ] "@" ] domain-name with a dot-atom
// local-part (RFC 5322 §3.4.1) and a domain-name of RFC 6376 §3.5.
func isAddress(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	if !ok {
		return false
	}
	if local != "" && !isDotAtom(local) {
		return false
	}
	return isDomainName(domain)
}

func isAtext(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0 || c >= 0x80
}

func isDotAtom(s string) bool {
	for part := range strings.SplitSeq(s, ".") {
		if part == "" {
			return false
		}
		for i := 0; i < len(part); i++ {
			if !isAtext(part[i]) {
				return false
			}
		}
	}
	return true
}

// isDomainName: sub-domain 1*("." sub-domain), each of letters, digits
// and hyphens, not starting or ending with a hyphen (RFC 6376 §3.5).
func isDomainName(s string) bool {
	labels := strings.Split(s, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c >= 0x80) {
				return false
			}
		}
	}
	return true
}

// quote writes a quoted-string (RFC 5322 §3.2.4), escaping '"' and '\'.
func quote(s string) (string, error) {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\r' || c == '\n' || isCtl(c):
			return "", fmt.Errorf("%w: control character 0x%02x in value", ErrUnrepresentable, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String(), nil
}

// formatComment writes a comment. Balanced parentheses (nested comments
// within the depth Parse accepts) are written as they are; otherwise every
// parenthesis is escaped as a quoted-pair. Backslashes are always escaped.
func formatComment(s string) (string, error) {
	depth, deepest, balanced := 0, 0, true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '(':
			depth++
			deepest = max(deepest, depth)
		case c == ')':
			depth--
			if depth < 0 {
				balanced = false
			}
		case c == '\r' || c == '\n' || isCtl(c):
			return "", fmt.Errorf("%w: control character 0x%02x in comment", ErrUnrepresentable, c)
		}
	}
	if depth != 0 || deepest+1 > MaxCommentDepth {
		balanced = false
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('(')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' || (!balanced && (c == '(' || c == ')')) {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	b.WriteByte(')')
	return b.String(), nil
}

// Validate checks h against RFC 8601 strictly: a non-empty authserv-id,
// keywords that are RFC 5321 Ldh-str, results registered for registered
// methods (RFC 8601 §2.7), a ptype on every property, and version 1.
// Producers call it before Format; Parse does not require it.
func (h *Header) Validate() error {
	if h.ServID == "" {
		return fmt.Errorf("%w: empty authserv-id", ErrInvalid)
	}
	if !h.Supported() {
		return fmt.Errorf("%w: version %d", ErrInvalid, h.Version)
	}
	for i, r := range h.Results {
		if !isKeyword(r.Method) {
			return fmt.Errorf("%w: result %d: method %q is not a keyword", ErrInvalid, i+1, r.Method)
		}
		if !isKeyword(r.Value) {
			return fmt.Errorf("%w: result %d: result %q is not a keyword", ErrInvalid, i+1, r.Value)
		}
		if !ValidResult(r.Method, r.Value) {
			return fmt.Errorf("%w: result %d: %q is not a registered result of method %q", ErrInvalid, i+1, r.Value, r.Method)
		}
		for _, p := range r.Props {
			if p.Type == "" {
				return fmt.Errorf("%w: result %d: property %q has no ptype", ErrInvalid, i+1, p.Name)
			}
			if !isKeyword(p.Type) || !isKeyword(p.Name) {
				return fmt.Errorf("%w: result %d: property %q is not ptype.keyword", ErrInvalid, i+1, p.Key())
			}
		}
	}
	return nil
}

// isKeyword: RFC 5321 §4.1.2 Ldh-str = *( ALPHA / DIGIT / "-" ) Let-dig.
func isKeyword(s string) bool {
	if s == "" || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
