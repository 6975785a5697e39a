package dns

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	mdns "github.com/miekg/dns"
)

// This file converts between the package's raw model (names and TXT
// character-strings as plain octets) and github.com/miekg/dns, which keeps
// both in presentation form with backslash escapes (RFC 1035 §5.1: "\X"
// quotes X, "\DDD" is the octet of decimal value DDD).

var errEscapedDot = errors.New("escaped dot inside a label is not supported")

// unescape turns a presentation-form string into its octets. When name is
// true the string is a domain name and an escaped dot (a dot inside a label)
// is refused, since the raw model separates labels by dots.
func unescape(s string, name bool) (string, error) {
	if strings.IndexByte(s, '\\') < 0 {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i+1 >= len(s) {
			return "", fmt.Errorf("dangling backslash in %q", s)
		}
		if isDigit(s[i+1]) {
			if i+3 >= len(s) || !isDigit(s[i+2]) || !isDigit(s[i+3]) {
				return "", fmt.Errorf("bad \\DDD escape in %q", s)
			}
			v := int(s[i+1]-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0')
			if v > 255 {
				return "", fmt.Errorf("bad \\DDD escape in %q", s)
			}
			c = byte(v)
			i += 3
		} else {
			c = s[i+1]
			i++
		}
		if name && c == '.' {
			return "", errEscapedDot
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// escapeName turns a raw domain name (labels separated by dots) into the
// presentation form miekg/dns packs: backslashes and the characters miekg
// treats specially are quoted, unprintable octets become \DDD.
func escapeName(raw string) string {
	return escape(raw, func(c byte) bool {
		switch c {
		case ' ', '\'', '@', ';', '(', ')', '"', '\\':
			return true
		}
		return false
	})
}

// escapeTXT turns a raw character-string into presentation form.
func escapeTXT(raw string) string {
	return escape(raw, func(c byte) bool { return c == '"' || c == '\\' })
}

func escape(raw string, special func(byte) bool) string {
	clean := true
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c < ' ' || c > '~' || special(c) {
			clean = false
			break
		}
	}
	if clean {
		return raw
	}
	var b strings.Builder
	b.Grow(len(raw) + 8)
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c < ' ' || c > '~':
			fmt.Fprintf(&b, "\\%03d", c)
		case special(c):
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// fqdn returns the presentation form of a canonical raw name with the
// trailing dot miekg/dns expects.
func fqdn(raw string) string {
	if raw == "" {
		return "."
	}
	return escapeName(raw) + "."
}

// canonicalWire turns a presentation-form name from miekg/dns into the
// canonical raw form of CanonicalName.
func canonicalWire(s string) (string, error) {
	raw, err := unescape(s, true)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidName, err)
	}
	return CanonicalName(raw)
}

// recordToRR builds the wire record for rec owned by the canonical name
// owner. It returns nil for a record that cannot be encoded (a type whose
// data the Record model does not carry, or an address of the wrong family).
func recordToRR(owner string, rec Record) mdns.RR {
	hdr := mdns.RR_Header{Name: fqdn(owner), Rrtype: uint16(rec.Type), Class: mdns.ClassINET, Ttl: rec.TTL}
	switch rec.Type {
	case TypeA:
		if !rec.IP.Unmap().Is4() {
			return nil
		}
		return &mdns.A{Hdr: hdr, A: rec.IP.Unmap().AsSlice()}
	case TypeAAAA:
		if !rec.IP.IsValid() || rec.IP.Is4() {
			return nil
		}
		a := rec.IP.As16()
		return &mdns.AAAA{Hdr: hdr, AAAA: a[:]}
	case TypeCNAME:
		return &mdns.CNAME{Hdr: hdr, Target: fqdn(rec.Host)}
	case TypePTR:
		return &mdns.PTR{Hdr: hdr, Ptr: fqdn(rec.Host)}
	case TypeMX:
		return &mdns.MX{Hdr: hdr, Preference: rec.Pref, Mx: fqdn(rec.Host)}
	case TypeTXT, typeSPF:
		txt := make([]string, len(rec.TXT))
		for i, s := range rec.TXT {
			txt[i] = escapeTXT(s)
		}
		if len(txt) == 0 {
			// RFC 1035 §3.3.14: at least one character-string.
			txt = []string{""}
		}
		if rec.Type == typeSPF {
			return &mdns.SPF{Hdr: hdr, Txt: txt}
		}
		return &mdns.TXT{Hdr: hdr, Txt: txt}
	}
	return nil
}

// typeSPF is the SPF RR type (RFC 4408 §3.1.1), obsolete since RFC 7208
// §3.1 but still found in zone files and test suites. Its data is a TXT's.
const typeSPF Type = 99

// rrToRecord converts a wire record to a Record. ok is false when the
// record's data cannot be represented (a name with an escaped dot).
func rrToRecord(rr mdns.RR) (rec Record, ok bool) {
	h := rr.Header()
	rec = Record{Type: Type(h.Rrtype), TTL: h.Ttl}
	var err error
	switch v := rr.(type) {
	case *mdns.A:
		ip, ok4 := netip.AddrFromSlice(v.A.To4())
		if !ok4 {
			return rec, false
		}
		rec.IP = ip
	case *mdns.AAAA:
		ip, ok6 := netip.AddrFromSlice(v.AAAA.To16())
		if !ok6 {
			return rec, false
		}
		rec.IP = ip
	case *mdns.CNAME:
		rec.Host, err = canonicalWire(v.Target)
	case *mdns.PTR:
		rec.Host, err = canonicalWire(v.Ptr)
	case *mdns.MX:
		rec.Pref = v.Preference
		rec.Host, err = canonicalWire(v.Mx)
	case *mdns.SOA:
		rec.Host, err = canonicalWire(v.Ns)
	case *mdns.TXT:
		rec.TXT, err = unescapeAll(v.Txt)
	case *mdns.SPF:
		rec.TXT, err = unescapeAll(v.Txt)
	}
	return rec, err == nil
}

func unescapeAll(in []string) ([]string, error) {
	out := make([]string, len(in))
	for i, s := range in {
		u, err := unescape(s, false)
		if err != nil {
			return nil, err
		}
		out[i] = u
	}
	return out, nil
}
