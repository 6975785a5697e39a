package arc

import (
	"strings"

	"portcullis/internal/authres"
	"portcullis/internal/dkim"
	"portcullis/internal/message"
)

// Seal is a parsed ARC-Seal field (RFC 8617 §4.1.3).
type Seal struct {
	// Field is the header field as it appears in the message.
	Field *message.Field
	// Tags holds every tag as parsed.
	Tags dkim.TagList
	// Instance is i=.
	Instance int
	// Algorithm is a=, lower case.
	Algorithm dkim.Algorithm
	// Domain and Selector are d= and s=, lower case: the sealer.
	Domain, Selector string
	// CV is the chain validation status the sealer recorded.
	CV Status
	// Value is b=, decoded.
	Value []byte
	// Timestamp is t=, or -1 when absent.
	Timestamp int64
}

// MessageSignature is a parsed ARC-Message-Signature field (RFC 8617
// §4.1.2): a DKIM-Signature (RFC 6376 §3.5) whose i= is the instance and
// which has no v=.
type MessageSignature struct {
	Field     *message.Field
	Tags      dkim.TagList
	Instance  int
	Algorithm dkim.Algorithm
	// Domain and Selector are d= and s=, lower case.
	Domain, Selector string
	// HeaderCanon and BodyCanon are c=. Without c=, they are
	// relaxed/relaxed and CanonDefaulted is set: see
	// ParseMessageSignature.
	HeaderCanon, BodyCanon dkim.Canonicalization
	CanonDefaulted         bool
	// Headers is the h= list as written, empty elements dropped.
	Headers  []string
	BodyHash []byte
	Value    []byte
	// Length is l=, or -1 when absent.
	Length int64
	// Timestamp and Expiration are t= and x=, or -1 when absent.
	Timestamp, Expiration int64
}

// AuthResults is a parsed ARC-Authentication-Results field (RFC 8617
// §4.1.1).
type AuthResults struct {
	Field    *message.Field
	Instance int
	// Results is the authres-payload. It is nil when the payload does not
	// parse (ResultsErr says why): the payload is informational, covered
	// by the seals but not needed for validation, so a payload this
	// package cannot read does not break the chain.
	Results    *authres.Header
	ResultsErr error
}

// parseInstance reads an instance value: position = 1*2DIGIT, 1 to 50
// (RFC 8617 §4.1.1, §4.2.1).
func parseInstance(s string) (int, bool) {
	if len(s) == 0 || len(s) > 2 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, n >= 1 && n <= MaxInstances
}

// parseAlgorithm reads a= (RFC 6376 §3.5 via RFC 8617 §4.1.2, §4.1.3).
// rsa-sha1 is refused (RFC 8301 §3.1).
func parseAlgorithm(field, a string) (dkim.Algorithm, error) {
	alg := dkim.Algorithm(strings.ToLower(a))
	switch alg {
	case dkim.RSASHA256, dkim.Ed25519SHA256:
		return alg, nil
	case dkim.RSASHA1:
		return alg, malformed(field, "a=rsa-sha1 is not accepted (RFC 8301 §3.1)")
	}
	return alg, malformed(field, "unknown algorithm a=%s", clip(a))
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// decodeB decodes a non-empty base64 tag value.
func decodeB(field, name, v string) ([]byte, error) {
	b, err := dkim.DecodeBase64(v)
	if err != nil || len(b) == 0 {
		return nil, malformed(field, "%s= is not a base64 value", name)
	}
	return b, nil
}

func requireTags(field string, tags dkim.TagList, names ...string) error {
	for _, n := range names {
		if !tags.Has(n) {
			return malformed(field, "no %s= tag", n)
		}
	}
	return nil
}

// ParseSeal parses an ARC-Seal field (RFC 8617 §4.1.3): tags a, b, cv, d,
// i and s are required, t is optional, h is forbidden (the seal's scope is
// fixed by RFC 8617 §5.1.1, not listed); unknown tags are ignored. On
// error the returned Seal holds what could be read.
func ParseSeal(f *message.Field) (*Seal, error) {
	const name = SealField
	s := &Seal{Field: f, Timestamp: -1}
	tags, err := dkim.ParseTagList(f.Value())
	if err != nil {
		return s, malformed(name, "%v", err)
	}
	s.Tags = tags
	s.Domain = lowerTag(tags, "d")
	s.Selector = lowerTag(tags, "s")
	if i, ok := tags.Get("i"); ok {
		s.Instance, _ = parseInstance(i)
	}
	if err := requireTags(name, tags, "i", "a", "b", "cv", "d", "s"); err != nil {
		return s, err
	}
	i, _ := tags.Get("i")
	if _, ok := parseInstance(i); !ok {
		return s, malformed(name, "i=%s is not an instance from 1 to %d", clip(i), MaxInstances)
	}
	if tags.Has("h") {
		return s, malformed(name, "h= is not allowed in an ARC-Seal")
	}
	a, _ := tags.Get("a")
	if s.Algorithm, err = parseAlgorithm(name, a); err != nil {
		return s, err
	}
	cv, _ := tags.Get("cv")
	var ok bool
	if s.CV, ok = parseCV(cv); !ok {
		return s, malformed(name, "cv=%s is not none, pass or fail", clip(cv))
	}
	if !dkim.ValidDomain(s.Domain) {
		return s, malformed(name, "d=%s is not a domain name", clip(s.Domain))
	}
	if !dkim.ValidDomain(s.Selector) {
		return s, malformed(name, "s=%s is not a selector", clip(s.Selector))
	}
	b, _ := tags.Get("b")
	if s.Value, err = decodeB(name, "b", b); err != nil {
		return s, err
	}
	if t, ok := tags.Get("t"); ok {
		if s.Timestamp, err = dkim.ParseDigits(t, 12); err != nil {
			return s, malformed(name, "t=: %v", err)
		}
	}
	return s, nil
}

func lowerTag(tags dkim.TagList, name string) string {
	v, _ := tags.Get(name)
	return strings.ToLower(v)
}

// ParseMessageSignature parses an ARC-Message-Signature field (RFC 8617
// §4.1.2) with the DKIM-Signature rules of RFC 6376 §3.5 and §6.1.1,
// except that i= is the instance, there is no v= (a v= is an unknown tag,
// ignored) and From need not be signed.
//
// RFC 8617 §4.1.2 forbids signers to list ARC fields in h=. An h= naming
// ARC-Seal is rejected, as the ValiMail suite and dkimpy do; one naming
// ARC-Authentication-Results or ARC-Message-Signature is accepted, as the
// suite expects of validators (ams_fields_h_includes_ams and most of its
// messages). On error the returned value holds what could be read.
//
// Without c=, DKIM's default would be simple/simple (RFC 6376 §3.5), while
// ARC implementations (the ValiMail suite, dkimpy) sign and read an AMS
// without c= as relaxed/relaxed, the canonicalization ARC uses for its
// seals (RFC 8617 §5.1.1). Such an AMS is read as relaxed/relaxed with
// CanonDefaulted set, and the Verifier also accepts it under simple/simple.
func ParseMessageSignature(f *message.Field) (*MessageSignature, error) {
	const name = MessageSignatureField
	s := &MessageSignature{Field: f, Length: -1, Timestamp: -1, Expiration: -1}
	tags, err := dkim.ParseTagList(f.Value())
	if err != nil {
		return s, malformed(name, "%v", err)
	}
	s.Tags = tags
	s.Domain = lowerTag(tags, "d")
	s.Selector = lowerTag(tags, "s")
	if i, ok := tags.Get("i"); ok {
		s.Instance, _ = parseInstance(i)
	}
	if err := requireTags(name, tags, "i", "a", "b", "bh", "d", "h", "s"); err != nil {
		return s, err
	}
	i, _ := tags.Get("i")
	if _, ok := parseInstance(i); !ok {
		return s, malformed(name, "i=%s is not an instance from 1 to %d", clip(i), MaxInstances)
	}
	a, _ := tags.Get("a")
	if s.Algorithm, err = parseAlgorithm(name, a); err != nil {
		return s, err
	}
	if !dkim.ValidDomain(s.Domain) {
		return s, malformed(name, "d=%s is not a domain name", clip(s.Domain))
	}
	if !dkim.ValidDomain(s.Selector) {
		return s, malformed(name, "s=%s is not a selector", clip(s.Selector))
	}
	if c, ok := tags.Get("c"); !ok {
		s.HeaderCanon, s.BodyCanon, s.CanonDefaulted = dkim.Relaxed, dkim.Relaxed, true
	} else {
		// An empty c= is not the default: the tag is present without a
		// value (RFC 6376 §3.5 sig-c-tag needs an algorithm name).
		if c == "" {
			return s, malformed(name, "empty c=")
		}
		if s.HeaderCanon, s.BodyCanon, err = dkim.ParseCanonicalization(c); err != nil {
			return s, malformed(name, "c=: %v", err)
		}
	}
	h, _ := tags.Get("h")
	s.Headers = dkim.SplitColonList(h)
	if len(s.Headers) > dkim.MaxSignedFields {
		return s, malformed(name, "h= lists %d fields, more than %d", len(s.Headers), dkim.MaxSignedFields)
	}
	for _, n := range s.Headers {
		if !dkim.ValidFieldName(n) {
			return s, malformed(name, "h= holds %q, not a field name", clip(n))
		}
		if strings.EqualFold(n, SealField) {
			return s, malformed(name, "h= includes ARC-Seal")
		}
	}
	bh, _ := tags.Get("bh")
	if s.BodyHash, err = decodeB(name, "bh", bh); err != nil {
		return s, err
	}
	b, _ := tags.Get("b")
	if s.Value, err = decodeB(name, "b", b); err != nil {
		return s, err
	}
	if l, ok := tags.Get("l"); ok {
		if s.Length, err = dkim.ParseDigits(l, 76); err != nil {
			return s, malformed(name, "l=: %v", err)
		}
	}
	if t, ok := tags.Get("t"); ok {
		if s.Timestamp, err = dkim.ParseDigits(t, 12); err != nil {
			return s, malformed(name, "t=: %v", err)
		}
	}
	if x, ok := tags.Get("x"); ok {
		if s.Expiration, err = dkim.ParseDigits(x, 12); err != nil {
			return s, malformed(name, "x=: %v", err)
		}
		// RFC 6376 §3.5 x=: it MUST be greater than t=.
		if s.Timestamp >= 0 && s.Expiration <= s.Timestamp {
			return s, malformed(name, "x=%d is not after t=%d", s.Expiration, s.Timestamp)
		}
	}
	if q, ok := tags.Get("q"); ok {
		// RFC 6376 §3.5 q=: dns/txt is the only query method defined.
		known := false
		for _, m := range dkim.SplitColonList(q) {
			if m == "dns/txt" {
				known = true
			}
		}
		if !known {
			return s, malformed(name, "q=%s names no known query method", clip(q))
		}
	}
	return s, nil
}

// ParseAuthResults parses an ARC-Authentication-Results field (RFC 8617
// §4.1.1):
//
//	arc-info = instance [CFWS] ";" authres-payload
//	instance = [CFWS] %s"i" [CFWS] "=" [CFWS] position
//
// The instance prefix must be exactly that; the payload is parsed with
// authres.Parse into Results (a payload that does not parse is reported in
// ResultsErr, not as an error).
func ParseAuthResults(f *message.Field) (*AuthResults, error) {
	const name = AuthResultsField
	a := &AuthResults{Field: f}
	v := f.Value()
	p := 0
	skip := func() bool {
		var ok bool
		p, ok = skipCFWS(v, p)
		return ok
	}
	if !skip() {
		return a, malformed(name, "unterminated comment")
	}
	if p >= len(v) || v[p] != 'i' {
		return a, malformed(name, "does not start with i=")
	}
	p++
	if !skip() || p >= len(v) || v[p] != '=' {
		return a, malformed(name, "does not start with i=")
	}
	p++
	if !skip() {
		return a, malformed(name, "unterminated comment")
	}
	start := p
	for p < len(v) && v[p] >= '0' && v[p] <= '9' {
		p++
	}
	n, ok := parseInstance(v[start:p])
	if !ok {
		return a, malformed(name, "i=%s is not an instance from 1 to %d", clip(v[start:p]), MaxInstances)
	}
	a.Instance = n
	if !skip() || p >= len(v) || v[p] != ';' {
		return a, malformed(name, "i=%d is not followed by \";\"", n)
	}
	a.Results, a.ResultsErr = authres.Parse(v[p+1:])
	return a, nil
}

// skipCFWS skips white space (folding included) and comments from p,
// and reports false for an unterminated or too deeply nested comment.
func skipCFWS(v string, p int) (int, bool) {
	for p < len(v) {
		switch v[p] {
		case ' ', '\t', '\r', '\n':
			p++
		case '(':
			depth := 0
			for {
				if p >= len(v) {
					return p, false
				}
				switch v[p] {
				case '\\':
					p++
				case '(':
					depth++
					if depth > authres.MaxCommentDepth {
						return p, false
					}
				case ')':
					depth--
				}
				p++
				if depth == 0 {
					break
				}
			}
		default:
			return p, true
		}
	}
	return p, true
}
