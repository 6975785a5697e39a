package dkim

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"portcullis/internal/message"
)

// Algorithm is a DKIM signing algorithm, the a= tag (RFC 6376 §3.3).
type Algorithm string

// Algorithms. RSASHA1 is parsed so that it can be reported, but RFC 8301
// §3.1 forbids verifiers to accept it and signers to use it.
const (
	RSASHA256     Algorithm = "rsa-sha256"     // RFC 6376 §3.3.2
	Ed25519SHA256 Algorithm = "ed25519-sha256" // RFC 8463 §3
	RSASHA1       Algorithm = "rsa-sha1"       // RFC 6376 §3.3.1, obsolete (RFC 8301)
)

// Hash returns the hash function of the algorithm (0 if unknown).
func (a Algorithm) Hash() crypto.Hash {
	switch a {
	case RSASHA256, Ed25519SHA256:
		return crypto.SHA256
	case RSASHA1:
		return crypto.SHA1
	}
	return 0
}

// HashName returns the name of the hash as a key record's h= tag spells
// it ("sha256", "sha1").
func (a Algorithm) HashName() string {
	_, h, _ := strings.Cut(string(a), "-")
	return h
}

// KeyType returns the key type the algorithm needs (KeyTypeRSA,
// KeyTypeEd25519), as a key record's k= tag spells it.
func (a Algorithm) KeyType() string {
	k, _, _ := strings.Cut(string(a), "-")
	return k
}

// Signature errors. Each error of ParseSignature wraps ErrInvalidSignature
// and, where one applies, a more precise sentinel below. Such a signature
// is ignored by verifiers (RFC 6376 §6.1.1, PERMFAIL).
var (
	ErrInvalidSignature = errors.New("dkim: invalid signature")
	// ErrMissingTag: a required tag is absent (RFC 6376 §6.1.1).
	ErrMissingTag = fmt.Errorf("%w: missing required tag", ErrInvalidSignature)
	// ErrVersion: v= is not 1 (RFC 6376 §6.1.1, incompatible version).
	ErrVersion = fmt.Errorf("%w: incompatible version", ErrInvalidSignature)
	// ErrUnknownAlgorithm: a= names an algorithm that is not known.
	ErrUnknownAlgorithm = fmt.Errorf("%w: unknown signing algorithm", ErrInvalidSignature)
	// ErrFromNotSigned: h= does not include From (RFC 6376 §5.4, §6.1.1).
	ErrFromNotSigned = fmt.Errorf("%w: From field not signed", ErrInvalidSignature)
	// ErrDomainMismatch: the i= domain is not d= or a subdomain of it
	// (RFC 6376 §3.5, §6.1.1).
	ErrDomainMismatch = fmt.Errorf("%w: i= not within d=", ErrInvalidSignature)
	// ErrNoQueryMethod: q= lists no method this implementation knows
	// (RFC 6376 §3.5: only dns/txt is defined).
	ErrNoQueryMethod = fmt.Errorf("%w: no known query method", ErrInvalidSignature)
)

// Signature is a parsed DKIM-Signature field (RFC 6376 §3.5).
type Signature struct {
	// Field is the header field the signature was parsed from.
	Field *message.Field
	// Tags holds every tag as parsed.
	Tags TagList
	// Version is v= (must be "1").
	Version string
	// Algorithm is a= as written, lower-cased.
	Algorithm Algorithm
	// Domain is d=, the SDID, lower-cased.
	Domain string
	// Selector is s=, lower-cased.
	Selector string
	// Identity is i=, the AUID, decoded from dkim-quoted-printable; when
	// i= is absent it is "@" followed by Domain (RFC 6376 §3.5).
	Identity string
	// IdentitySet reports that i= was present.
	IdentitySet bool
	// HeaderCanon and BodyCanon are from c= (default simple/simple).
	HeaderCanon, BodyCanon Canonicalization
	// Headers lists the h= field names in order, as written.
	Headers []string
	// BodyHash is bh=, decoded.
	BodyHash []byte
	// Value is b=, decoded; B is b= as written, without white space (the
	// base64 text that header.b identifies, RFC 6008).
	Value []byte
	B     string
	// Length is l=, or -1 when absent.
	Length int64
	// Timestamp is t= (seconds since the Unix epoch), or -1 when absent.
	Timestamp int64
	// Expiration is x=, or -1 when absent.
	Expiration int64
	// QueryMethods lists q= (default "dns/txt").
	QueryMethods []string
	// CopiedHeaders is z=, as written (diagnostic only).
	CopiedHeaders string
}

// Hash returns the hash function of the signature's algorithm.
func (s *Signature) Hash() crypto.Hash { return s.Algorithm.Hash() }

// MaxSignedFields bounds the number of names in h= that ParseSignature
// accepts, to bound the work of header selection on hostile input.
const MaxSignedFields = 1024

// ParseSignature parses a DKIM-Signature field (RFC 6376 §3.5) and checks
// it as RFC 6376 §6.1.1 asks: required tags present, v=1, a known
// algorithm and canonicalization, From in h=, i= within d=, a known q=
// method, t= before x=. It does not check expiry, which depends on the
// time (see Expired).
//
// On error the returned Signature is still non-nil and holds what could be
// parsed (d=, s=, a= for reporting). The error wraps ErrInvalidSignature.
func ParseSignature(f *message.Field) (*Signature, error) {
	s := &Signature{Field: f, Length: -1, Timestamp: -1, Expiration: -1}
	tags, err := ParseTagList(f.Value())
	if err != nil {
		return s, fmt.Errorf("%w: %w", ErrInvalidSignature, err)
	}
	s.Tags = tags
	// Fill the reporting fields first, then check.
	if d, ok := tags.Get("d"); ok {
		s.Domain = strings.ToLower(d)
	}
	if sel, ok := tags.Get("s"); ok {
		s.Selector = strings.ToLower(sel)
	}
	if a, ok := tags.Get("a"); ok {
		s.Algorithm = Algorithm(strings.ToLower(a))
	}
	var bStack [1024]byte
	var bClean []byte // b= without white space
	if b, ok := tags.Get("b"); ok {
		bClean = appendWithoutFWS(bStack[:0], b)
		s.B = string(bClean)
	}
	for _, t := range [...]string{"v", "a", "b", "bh", "d", "h", "s"} {
		if !tags.Has(t) {
			return s, fmt.Errorf("%w %s=", ErrMissingTag, t)
		}
	}
	s.Version, _ = tags.Get("v")
	if s.Version != "1" {
		return s, fmt.Errorf("%w: v=%s", ErrVersion, clipString(s.Version))
	}
	if s.Algorithm.Hash() == 0 {
		return s, fmt.Errorf("%w: a=%s", ErrUnknownAlgorithm, clipString(string(s.Algorithm)))
	}
	if !validDomain(s.Domain) {
		return s, fmt.Errorf("%w: d=%s is not a domain name", ErrInvalidSignature, clipString(s.Domain))
	}
	if !validDomain(s.Selector) {
		return s, fmt.Errorf("%w: s=%s is not a selector", ErrInvalidSignature, clipString(s.Selector))
	}
	if c, ok := tags.Get("c"); ok {
		if s.HeaderCanon, s.BodyCanon, err = ParseCanonicalization(c); err != nil {
			return s, fmt.Errorf("%w: %w", ErrInvalidSignature, err)
		}
	}
	h, _ := tags.Get("h")
	s.Headers = splitColonList(h)
	if len(s.Headers) > MaxSignedFields {
		return s, fmt.Errorf("%w: h= lists %d fields, more than %d", ErrInvalidSignature, len(s.Headers), MaxSignedFields)
	}
	from := false
	for _, n := range s.Headers {
		if !validFieldName(n) {
			return s, fmt.Errorf("%w: h= holds %q, not a field name", ErrInvalidSignature, clipString(n))
		}
		if strings.EqualFold(n, "From") {
			from = true
		}
	}
	if !from {
		return s, ErrFromNotSigned
	}
	bh, _ := tags.Get("bh")
	var bhStack [128]byte
	bhClean := appendWithoutFWS(bhStack[:0], bh)
	// bh= and b= are decoded into one allocation, each clipped to its
	// length.
	decoded := make([]byte, 0, base64DecodedLen(bhClean)+base64DecodedLen(bClean))
	if s.BodyHash, err = appendBase64Bytes(decoded, bhClean); err != nil || len(s.BodyHash) == 0 {
		return s, fmt.Errorf("%w: bh= is not base64", ErrInvalidSignature)
	}
	s.BodyHash = s.BodyHash[:len(s.BodyHash):len(s.BodyHash)]
	rest := decoded[len(s.BodyHash):len(s.BodyHash)]
	if s.Value, err = appendBase64Bytes(rest, bClean); err != nil || len(s.Value) == 0 {
		return s, fmt.Errorf("%w: b= is not base64", ErrInvalidSignature)
	}
	s.Identity = "@" + s.Domain
	if i, ok := tags.Get("i"); ok {
		id, err := decodeQuotedPrintable(i)
		if err != nil {
			return s, fmt.Errorf("%w: i=: %w", ErrInvalidSignature, err)
		}
		s.Identity, s.IdentitySet = id, true
		at := strings.LastIndexByte(id, '@')
		if at < 0 {
			return s, fmt.Errorf("%w: i=%s has no @", ErrInvalidSignature, clipString(id))
		}
		// RFC 6376 §3.5 i=: the domain of i= must be d= or a subdomain.
		if !withinDomain(id[at+1:], s.Domain) {
			return s, fmt.Errorf("%w: i=%s, d=%s", ErrDomainMismatch, clipString(id), s.Domain)
		}
	}
	if l, ok := tags.Get("l"); ok {
		// RFC 6376 §3.5 l=: 1*76DIGIT. Values beyond int64 are larger
		// than any body.
		if s.Length, err = parseDigits(l, 76); err != nil {
			return s, fmt.Errorf("%w: l=: %w", ErrInvalidSignature, err)
		}
	}
	if t, ok := tags.Get("t"); ok {
		if s.Timestamp, err = parseDigits(t, 12); err != nil {
			return s, fmt.Errorf("%w: t=: %w", ErrInvalidSignature, err)
		}
	}
	if x, ok := tags.Get("x"); ok {
		if s.Expiration, err = parseDigits(x, 12); err != nil {
			return s, fmt.Errorf("%w: x=: %w", ErrInvalidSignature, err)
		}
		// RFC 6376 §3.5 x=: it MUST be greater than t=.
		if s.Timestamp >= 0 && s.Expiration <= s.Timestamp {
			return s, fmt.Errorf("%w: x=%d is not after t=%d", ErrInvalidSignature, s.Expiration, s.Timestamp)
		}
	}
	s.QueryMethods = []string{"dns/txt"}
	if q, ok := tags.Get("q"); ok {
		// RFC 6376 §3.5 q=: unrecognized methods are ignored; dns/txt is
		// the only one defined.
		s.QueryMethods = splitColonList(q)
		known := false
		for _, m := range s.QueryMethods {
			if m == "dns/txt" {
				known = true
			}
		}
		if !known {
			return s, fmt.Errorf("%w: q=%s", ErrNoQueryMethod, clipString(q))
		}
	}
	s.CopiedHeaders, _ = tags.Get("z")
	return s, nil
}

// parseDigits parses 1*max DIGIT, saturating at math.MaxInt64.
func parseDigits(s string, maxDigits int) (int64, error) {
	if s == "" || len(s) > maxDigits {
		return 0, fmt.Errorf("%q is not 1 to %d digits", clipString(s), maxDigits)
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, fmt.Errorf("%q is not a number", clipString(s))
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return math.MaxInt64, nil
	}
	return n, nil
}

// validDomain checks a d= or s= value: dot-separated labels of letters,
// digits, hyphens and underscores, 1 to 63 octets each, 253 in all
// (RFC 6376 §3.5 domain-name and selector, RFC 5321 §4.1.2 sub-domain).
func validDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for l := range strings.SplitSeq(s, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !isAlpha(c) && !isDigit(c) && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}

// validFieldName checks field-name = 1*ftext (RFC 5322 §3.6.8).
func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

// withinDomain reports whether sub is domain or a subdomain of it,
// ignoring case.
func withinDomain(sub, domain string) bool {
	sub = strings.TrimSuffix(sub, ".")
	if len(sub) < len(domain) {
		return false
	}
	if !strings.EqualFold(sub[len(sub)-len(domain):], domain) {
		return false
	}
	return len(sub) == len(domain) || sub[len(sub)-len(domain)-1] == '.'
}

// decodeQuotedPrintable decodes dkim-quoted-printable (RFC 6376 §2.11):
// "=XX" hex escapes; white space is ignored.
func decodeQuotedPrintable(s string) (string, error) {
	if strings.IndexByte(s, '=') < 0 && !strings.ContainsAny(s, " \t\r\n") {
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isFWSOctet(c):
		case c == '=':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "", fmt.Errorf("invalid quoted-printable escape in %q", clipString(s))
			}
			v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b = append(b, byte(v))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return string(b), nil
}

func isHex(c byte) bool { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// Expired reports whether the signature has an x= that is before now
// (seconds since the Unix epoch), RFC 6376 §3.5 x=.
func (s *Signature) Expired(now int64) bool {
	return s.Expiration >= 0 && now > s.Expiration
}

// ErrNoBTag is returned by RemoveSignatureValue for a field without b=.
var ErrNoBTag = fmt.Errorf("%w: no b= tag", ErrInvalidSignature)

// RemoveSignatureValue returns a copy of the raw signature field (a
// DKIM-Signature, ARC-Message-Signature or ARC-Seal, with or without its
// final CRLF) in which the value of the b= tag, with all the white space
// around it, is deleted: "b=" is followed at once by the ";" that ended the
// tag, or by the end of the field (RFC 6376 §3.7). Every other octet,
// folding included, is kept, so that the result can be canonicalized with
// either algorithm.
func RemoveSignatureValue(raw []byte) ([]byte, error) {
	return AppendWithoutSignatureValue(nil, raw)
}

// AppendWithoutSignatureValue appends RemoveSignatureValue(raw) to dst.
func AppendWithoutSignatureValue(dst, raw []byte) ([]byte, error) {
	colon := bytes.IndexByte(raw, ':')
	if colon < 0 {
		return dst, ErrNoBTag
	}
	end := len(raw)
	if bytes.HasSuffix(raw, crlf) {
		end -= 2
	}
	pos := colon + 1
	for pos <= end {
		semi := bytes.IndexByte(raw[pos:end], ';')
		specEnd := end
		if semi >= 0 {
			specEnd = pos + semi
		}
		spec := raw[pos:specEnd]
		if eq := bytes.IndexByte(spec, '='); eq >= 0 {
			if name := bytes.Trim(spec[:eq], " \t\r\n"); len(name) == 1 && name[0] == 'b' {
				dst = append(dst, raw[:pos+eq+1]...)
				return append(dst, raw[specEnd:]...), nil
			}
		}
		pos = specEnd + 1
	}
	return dst, ErrNoBTag
}
