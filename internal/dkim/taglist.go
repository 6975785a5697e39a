package dkim

import (
	"errors"
	"fmt"
	"strings"
)

// Tag is one tag=value pair of a tag-list.
type Tag struct {
	// Name is the tag name, case-sensitive (RFC 6376 §3.2).
	Name string
	// Value is the tag value with the white space around it removed.
	// White space inside the value (folding included) is kept: callers
	// remove it where the tag's syntax allows it (base64 values).
	Value string
}

// TagList is a parsed tag-list, in the order the tags appear.
type TagList []Tag

// Get returns the value of the tag named name and whether it is present.
func (l TagList) Get(name string) (string, bool) {
	for _, t := range l {
		if t.Name == name {
			return t.Value, true
		}
	}
	return "", false
}

// Has reports whether the tag named name is present.
func (l TagList) Has(name string) bool {
	_, ok := l.Get(name)
	return ok
}

// ErrTagSyntax is wrapped by every error of ParseTagList.
var ErrTagSyntax = errors.New("dkim: tag-list syntax error")

// ParseTagList parses a tag=value list (RFC 6376 §3.2), the syntax of the
// DKIM-Signature field value, of key records and of the ARC fields:
//
//	tag-list  = tag-spec *( ";" tag-spec ) [ ";" ]
//	tag-spec  = [FWS] tag-name [FWS] "=" [FWS] tag-value [FWS]
//	tag-name  = ALPHA *ALNUMPUNC
//	tag-value = [ tval *( 1*(WSP / FWS) tval ) ]
//	tval      = 1*VALCHAR          ; %x21-3A / %x3C-7E
//
// Tag names are case-sensitive. A tag that occurs twice makes the whole
// list invalid (RFC 6376 §3.2). Values may be empty. White space is SP,
// HTAB, CR and LF. A list with no tag at all, an empty tag-spec other than
// after the final ";", a tag-spec without "=", an invalid tag name or an
// octet outside VALCHAR in a value are errors wrapping ErrTagSyntax.
func ParseTagList(s string) (TagList, error) {
	n := strings.Count(s, ";") + 1
	list := make(TagList, 0, n)
	for i := 0; ; i++ {
		spec, rest, more := strings.Cut(s, ";")
		s = rest
		spec = trimFWS(spec)
		if spec == "" {
			if !more && i > 0 {
				break // the optional ";" at the end
			}
			if i == 0 && !more {
				return nil, fmt.Errorf("%w: empty tag-list", ErrTagSyntax)
			}
			return nil, fmt.Errorf("%w: empty tag-spec", ErrTagSyntax)
		}
		name, value, ok := strings.Cut(spec, "=")
		if !ok {
			return nil, fmt.Errorf("%w: %q has no \"=\"", ErrTagSyntax, clipString(spec))
		}
		name = trimFWS(name)
		if !validTagName(name) {
			return nil, fmt.Errorf("%w: invalid tag name %q", ErrTagSyntax, clipString(name))
		}
		value = trimFWS(value)
		for j := 0; j < len(value); j++ {
			c := value[j]
			if (c < 0x21 || c > 0x7e) && !isFWSOctet(c) {
				return nil, fmt.Errorf("%w: invalid octet 0x%02x in the value of %s=", ErrTagSyntax, c, name)
			}
		}
		for _, t := range list {
			if t.Name == name {
				return nil, fmt.Errorf("%w: duplicate tag %s=", ErrTagSyntax, name)
			}
		}
		list = append(list, Tag{Name: name, Value: value})
		if !more {
			break
		}
	}
	return list, nil
}

func isFWSOctet(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func trimFWS(s string) string {
	i, j := 0, len(s)
	for i < j && isFWSOctet(s[i]) {
		i++
	}
	for j > i && isFWSOctet(s[j-1]) {
		j--
	}
	return s[i:j]
}

// removeFWS returns s without any white space (for base64 values, which
// may be folded: RFC 6376 §2.4 base64string).
func removeFWS(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if isFWSOctet(s[i]) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if !isFWSOctet(s[i]) {
			b = append(b, s[i])
		}
	}
	return string(b)
}

// appendWithoutFWS appends s without its white space to dst.
func appendWithoutFWS(dst []byte, s string) []byte {
	// Runs between white space are appended whole.
	start := 0
	for i := 0; i < len(s); i++ {
		if isFWSOctet(s[i]) {
			dst = append(dst, s[start:i]...)
			start = i + 1
		}
	}
	return append(dst, s[start:]...)
}

// validTagName checks tag-name = ALPHA *ALNUMPUNC (RFC 6376 §3.2).
func validTagName(s string) bool {
	if s == "" || !isAlpha(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isAlpha(c) && !isDigit(c) && c != '_' {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func clipString(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// splitColonList splits a colon-separated list, trimming white space
// around each element and dropping empty elements.
func splitColonList(s string) []string {
	out := make([]string, 0, strings.Count(s, ":")+1)
	for e := range strings.SplitSeq(s, ":") {
		if e = trimFWS(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}
