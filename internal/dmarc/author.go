package dmarc

import (
	"errors"
	"fmt"
	"strings"
)

// Errors of Author Domain extraction (RFC 9989 §5.3.1). Each is a distinct
// reason a policy can name; all are wrapped by *AuthorError.
var (
	// ErrNoFromField: the message has no From header field (RFC 5322
	// §3.6 requires exactly one).
	ErrNoFromField = errors.New("dmarc: no From header field")
	// ErrMultipleFromFields: the message has more than one From field
	// (RFC 5322 §3.6; RFC 9989 §4.4: no reliable way to find the policy).
	ErrMultipleFromFields = errors.New("dmarc: several From header fields")
	// ErrFromSyntax: the From field is not an RFC 5322 address-list
	// (§3.4, with the obsolete syntax of §4.4, RFC 6854 groups and RFC
	// 6532 UTF-8).
	ErrFromSyntax = errors.New("dmarc: From header field syntax error")
	// ErrNoAuthorAddress: the From field holds no mailbox (for example an
	// empty group "undisclosed-recipients:;").
	ErrNoAuthorAddress = errors.New("dmarc: From header field holds no address")
	// ErrAuthorDomainLiteral: a mailbox of the From field has a domain
	// literal ("user@[192.0.2.1]"), which has no domain name to look up.
	ErrAuthorDomainLiteral = errors.New("dmarc: From address has a domain literal, not a domain name")
	// ErrMultipleAuthorDomains: the From field's mailboxes have more than
	// one domain (RFC 9989 §5.3.1: "If zero or more than one domain is
	// extracted ... DMARC validation is not possible").
	ErrMultipleAuthorDomains = errors.New("dmarc: From header field holds addresses in several domains")
	// ErrInvalidAuthorDomain: the domain of a From mailbox is not a valid
	// domain name; errors.Is also matches ErrInvalidDomain or
	// ErrInvalidIDN for the detail.
	ErrInvalidAuthorDomain = errors.New("dmarc: From address domain is invalid")
	// ErrFromTooLong: the From fields exceed the hostile-input limits.
	ErrFromTooLong = errors.New("dmarc: From header field too long")
)

// AuthorError describes why no single Author Domain could be extracted.
// Unwrap returns the reason (one of the Err* variables above) and, for an
// invalid domain, the domain error.
type AuthorError struct {
	Reason error  // one of the sentinel errors above
	Detail string // human-readable detail
	Err    error  // underlying error, if any
}

func (e *AuthorError) Error() string {
	if e.Detail == "" {
		return e.Reason.Error()
	}
	return e.Reason.Error() + ": " + e.Detail
}

// Unwrap returns the reason and the underlying error.
func (e *AuthorError) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Reason, e.Err}
	}
	return []error{e.Reason}
}

// Mailbox is one address of a From field.
type Mailbox struct {
	// LocalPart is the local-part as written, quotes removed.
	LocalPart string
	// Domain is the domain as written (comments and white space removed),
	// or the domain literal with its brackets.
	Domain string
	// DomainLiteral reports a domain literal.
	DomainLiteral bool
	// ADomain is Domain normalised by NormalizeDomain (lower case,
	// A-labels); "" for a domain literal or an invalid domain.
	ADomain string
}

// Author is what the From fields of a message say about its author.
type Author struct {
	// Mailboxes lists every mailbox of every From field, in order.
	Mailboxes []Mailbox
	// Domains lists the distinct normalised domains of Mailboxes, in the
	// order they first appear.
	Domains []string
	// Domain is the Author Domain when exactly one domain was found.
	Domain string
	// Warnings notes tolerated deviations (a trailing dot in a domain).
	Warnings []string
}

// Hostile-input limits of From parsing.
const (
	// MaxFromLength bounds the total length of the From field values.
	MaxFromLength = 64 << 10
	// MaxFromMailboxes bounds the mailboxes parsed from the From fields.
	MaxFromMailboxes = 1000
)

// AuthorDomain returns the Author Domain of a message from the values of
// its From header fields (field bodies after "From:", folded or not):
// the one domain of its mailboxes, normalised (lower case, A-labels, RFC
// 9989 §5.3.1). It fails with an *AuthorError whose reason is one of
// ErrNoFromField, ErrMultipleFromFields, ErrFromSyntax, ErrNoAuthorAddress,
// ErrAuthorDomainLiteral, ErrMultipleAuthorDomains, ErrInvalidAuthorDomain
// or ErrFromTooLong.
func AuthorDomain(fromFieldValues []string) (string, error) {
	a, err := ParseAuthor(fromFieldValues)
	if err != nil {
		return "", err
	}
	return a.Domain, nil
}

// ParseAuthor parses the From header fields of a message. On
// ErrMultipleFromFields and ErrMultipleAuthorDomains the Author is returned
// too, filled from every field, for a receiver that chooses to evaluate
// each domain (RFC 9989 §5.3.1 and §11.5 allow it).
//
// Parsing follows RFC 5322 §3.4 address-list with the obsolete forms of
// §4.4 (obs-addr-list and obs-mbox-list empty elements, obs-route in angle
// addresses, obs-phrase with "." in display names, CFWS between the words
// and dots of local-parts and domains), groups in From (RFC 6854 §2.1),
// UTF-8 in atoms and quoted strings (RFC 6532 §3.2) and comments nested to
// any depth. Deliberate tolerances, chosen because they cannot change
// which domain a reader sees: any sequence of words and dots is accepted as
// a local-part (real addresses such as "a..b@docomo.ne.jp" exist, and the
// local-part plays no role in DMARC), octets that are not UTF-8 are allowed
// in display names and local-parts, and one trailing dot after a domain is
// removed with a warning. net/mail is not used: it rejects several of
// these forms and does not tell its failures apart.
func ParseAuthor(fromFieldValues []string) (*Author, error) {
	if len(fromFieldValues) == 0 {
		return nil, &AuthorError{Reason: ErrNoFromField}
	}
	a, err := parseAuthor(fromFieldValues)
	if len(fromFieldValues) > 1 {
		// Several From fields is the first problem to report, whatever
		// the fields hold (RFC 5322 §3.6, RFC 9989 §4.4).
		var ae *AuthorError
		if errors.As(err, &ae) && ae.Reason != ErrMultipleAuthorDomains {
			a = nil
		}
		return a, &AuthorError{Reason: ErrMultipleFromFields, Detail: fmt.Sprintf("%d From fields", len(fromFieldValues))}
	}
	return a, err
}

func parseAuthor(fromFieldValues []string) (*Author, error) {
	total := 0
	for _, v := range fromFieldValues {
		total += len(v)
	}
	if total > MaxFromLength {
		return nil, &AuthorError{Reason: ErrFromTooLong, Detail: fmt.Sprintf("%d octets (limit %d)", total, MaxFromLength)}
	}
	a := &Author{}
	for i, v := range fromFieldValues {
		boxes, warns, err := parseAddressList(v)
		if err != nil {
			return nil, &AuthorError{Reason: ErrFromSyntax, Detail: fieldDetail(i, len(fromFieldValues), err.Error())}
		}
		a.Mailboxes = append(a.Mailboxes, boxes...)
		a.Warnings = append(a.Warnings, warns...)
		if len(a.Mailboxes) > MaxFromMailboxes {
			return nil, &AuthorError{Reason: ErrFromTooLong, Detail: fmt.Sprintf("more than %d mailboxes", MaxFromMailboxes)}
		}
	}
	if len(a.Mailboxes) == 0 {
		return nil, &AuthorError{Reason: ErrNoAuthorAddress}
	}
	seen := map[string]bool{}
	for i := range a.Mailboxes {
		m := &a.Mailboxes[i]
		if m.DomainLiteral {
			return nil, &AuthorError{Reason: ErrAuthorDomainLiteral, Detail: clip(m.Domain)}
		}
		d, err := NormalizeDomain(m.Domain)
		if err != nil {
			return nil, &AuthorError{Reason: ErrInvalidAuthorDomain, Detail: clip(m.Domain), Err: err}
		}
		m.ADomain = d
		if !seen[d] {
			seen[d] = true
			a.Domains = append(a.Domains, d)
		}
	}
	if len(a.Domains) > 1 {
		return a, &AuthorError{Reason: ErrMultipleAuthorDomains, Detail: strings.Join(a.Domains, ", ")}
	}
	a.Domain = a.Domains[0]
	return a, nil
}

func fieldDetail(i, n int, s string) string {
	if n == 1 {
		return s
	}
	return fmt.Sprintf("field %d: %s", i+1, s)
}

// Token kinds of the address lexer.
type tokKind byte

const (
	tAtom    tokKind = 'a' // 1*atext (RFC 5322 §3.2.3, RFC 6532 §3.2)
	tQuoted  tokKind = 'q' // quoted-string, value unquoted (§3.2.4)
	tLiteral tokKind = 'l' // domain-literal, brackets kept (§3.4.1)
	// Specials used by the address grammar are their own kind: < > : ; @ , .
)

type token struct {
	kind tokKind
	text string
}

// lexAddress splits an unfolded field body into tokens, dropping CFWS
// (RFC 5322 §3.2.2). Comments nest; quoted-pairs are honoured in comments,
// quoted strings and (obsolete) domain literals.
func lexAddress(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '(':
			depth := 0
			for ; i < len(s); i++ {
				switch s[i] {
				case '\\':
					i++
				case '(':
					depth++
				case ')':
					depth--
				case 0:
					return nil, errors.New("NUL in comment")
				}
				if depth == 0 {
					break
				}
			}
			if depth != 0 || i >= len(s) {
				return nil, errors.New("unterminated comment")
			}
			i++
		case c == '"':
			var b strings.Builder
			i++
			closed := false
			for i < len(s) {
				d := s[i]
				if d == '\\' && i+1 < len(s) {
					b.WriteByte(s[i+1])
					i += 2
					continue
				}
				if d == '"' {
					closed = true
					i++
					break
				}
				if d == 0 {
					return nil, errors.New("NUL in quoted string")
				}
				b.WriteByte(d)
				i++
			}
			if !closed {
				return nil, errors.New("unterminated quoted string")
			}
			toks = append(toks, token{tQuoted, b.String()})
		case c == '[':
			j := i + 1
			for j < len(s) && s[j] != ']' {
				if s[j] == '[' || s[j] == 0 {
					return nil, errors.New("bad domain literal")
				}
				if s[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return nil, errors.New("unterminated domain literal")
			}
			toks = append(toks, token{tLiteral, s[i : j+1]})
			i = j + 1
		case strings.IndexByte("<>:;@,.", c) >= 0:
			toks = append(toks, token{tokKind(c), s[i : i+1]})
			i++
		case isAtext(c):
			j := i
			for j < len(s) && isAtext(s[j]) {
				j++
			}
			toks = append(toks, token{tAtom, s[i:j]})
			i = j
		default:
			return nil, fmt.Errorf("unexpected character %q", c)
		}
	}
	return toks, nil
}

// isAtext reports RFC 5322 §3.2.3 atext, widened by RFC 6532 §3.2 to every
// octet of a UTF-8 sequence (invalid UTF-8 is caught where it matters,
// when a domain is normalised).
func isAtext(c byte) bool {
	if c >= 0x80 {
		return true
	}
	return isAlpha(c) || isDigit(c) || strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// unfold removes the CRLF (or bare LF) of folding white space (RFC 5322
// §2.2.3). A line break not followed by white space is an error.
func unfold(s string) (string, error) {
	if !strings.ContainsAny(s, "\r\n") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\r' || c == '\n' {
			j := i
			if c == '\r' && j+1 < len(s) && s[j+1] == '\n' {
				j++
			}
			if j+1 >= len(s) {
				i = j // a trailing line break ends the field
				continue
			}
			if s[j+1] != ' ' && s[j+1] != '\t' {
				return "", errors.New("line break not followed by white space")
			}
			i = j
			continue
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

type addrParser struct {
	toks  []token
	pos   int
	warns []string
}

func (p *addrParser) peek() tokKind {
	if p.pos < len(p.toks) {
		return p.toks[p.pos].kind
	}
	return 0
}

func (p *addrParser) next() token {
	t := p.toks[p.pos]
	p.pos++
	return t
}

func isWord(k tokKind) bool { return k == tAtom || k == tQuoted }

// parseAddressList parses one From field body.
func parseAddressList(v string) ([]Mailbox, []string, error) {
	u, err := unfold(v)
	if err != nil {
		return nil, nil, err
	}
	toks, err := lexAddress(u)
	if err != nil {
		return nil, nil, err
	}
	p := &addrParser{toks: toks}
	var out []Mailbox
	for {
		// RFC 5322 §4.4 obs-addr-list: empty elements between commas.
		for p.peek() == ',' {
			p.next()
		}
		if p.peek() == 0 {
			break
		}
		boxes, err := p.address(true)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, boxes...)
		if len(out) > MaxFromMailboxes {
			return out, p.warns, nil // the caller reports the limit
		}
		switch p.peek() {
		case 0:
		case ',':
			p.next()
		default:
			return nil, nil, fmt.Errorf("unexpected %q after an address", p.toks[p.pos].text)
		}
	}
	return out, p.warns, nil
}

// address parses RFC 5322 §3.4 address = mailbox / group (RFC 6854), or
// only a mailbox when group is false (inside a group).
func (p *addrParser) address(group bool) ([]Mailbox, error) {
	// Look ahead for the first token that tells the form apart.
	for i := p.pos; i < len(p.toks); i++ {
		switch p.toks[i].kind {
		case ':':
			if !group {
				return nil, errors.New("group inside a group")
			}
			return p.group()
		case '<':
			m, err := p.nameAddr()
			if err != nil {
				return nil, err
			}
			return []Mailbox{m}, nil
		case '@':
			m, err := p.addrSpec()
			if err != nil {
				return nil, err
			}
			return []Mailbox{m}, nil
		case ',', ';', '>':
			return nil, fmt.Errorf("no address before %q", p.toks[i].text)
		}
	}
	return nil, errors.New("no address (a display name or word without an addr-spec)")
}

// phrase parses a display-name: 1*word, or obs-phrase word *(word / ".")
// (RFC 5322 §3.2.5, §4.1).
func (p *addrParser) phrase() error {
	if !isWord(p.peek()) {
		return errors.New("display name expected")
	}
	p.next()
	for isWord(p.peek()) || p.peek() == '.' {
		p.next()
	}
	return nil
}

// group parses display-name ":" [group-list] ";" (RFC 5322 §3.4, allowed
// in From by RFC 6854 §2.1).
func (p *addrParser) group() ([]Mailbox, error) {
	if err := p.phrase(); err != nil {
		return nil, fmt.Errorf("group: %w", err)
	}
	if p.peek() != ':' {
		return nil, errors.New("group: ':' expected after the display name")
	}
	p.next()
	var out []Mailbox
	for {
		// obs-mbox-list / obs-group-list: empty elements.
		for p.peek() == ',' {
			p.next()
		}
		switch p.peek() {
		case ';':
			p.next()
			return out, nil
		case 0:
			return nil, errors.New("group: missing ';' at the end")
		}
		boxes, err := p.address(false)
		if err != nil {
			return nil, err
		}
		out = append(out, boxes...)
		if len(out) > MaxFromMailboxes {
			return out, nil
		}
		switch p.peek() {
		case ',', ';':
		default:
			return nil, errors.New("group: ',' or ';' expected after a mailbox")
		}
	}
}

// nameAddr parses [display-name] angle-addr, with obs-angle-addr's route
// (RFC 5322 §3.4, §4.4).
func (p *addrParser) nameAddr() (Mailbox, error) {
	if p.peek() != '<' {
		if err := p.phrase(); err != nil {
			return Mailbox{}, err
		}
		if p.peek() != '<' {
			return Mailbox{}, errors.New("'<' expected after the display name")
		}
	}
	p.next()
	if p.peek() == '@' || p.peek() == ',' {
		// obs-route = obs-domain-list ":" ; obs-domain-list =
		// *(CFWS / ",") "@" domain *("," [CFWS] ["@" domain])
		for p.peek() == ',' {
			p.next()
		}
		for p.peek() == '@' {
			p.next()
			if _, _, err := p.domain(); err != nil {
				return Mailbox{}, fmt.Errorf("route: %w", err)
			}
			for p.peek() == ',' {
				p.next()
			}
		}
		if p.peek() != ':' {
			return Mailbox{}, errors.New("route: ':' expected")
		}
		p.next()
	}
	m, err := p.addrSpec()
	if err != nil {
		return Mailbox{}, err
	}
	if p.peek() != '>' {
		return Mailbox{}, errors.New("'>' expected after the address")
	}
	p.next()
	return m, nil
}

// addrSpec parses local-part "@" domain (RFC 5322 §3.4.1).
func (p *addrParser) addrSpec() (Mailbox, error) {
	var local strings.Builder
	for isWord(p.peek()) || p.peek() == '.' {
		local.WriteString(p.next().text)
	}
	if local.Len() == 0 {
		return Mailbox{}, errors.New("empty local-part")
	}
	if p.peek() != '@' {
		return Mailbox{}, errors.New("'@' expected after the local-part")
	}
	p.next()
	d, lit, err := p.domain()
	if err != nil {
		return Mailbox{}, err
	}
	return Mailbox{LocalPart: local.String(), Domain: d, DomainLiteral: lit}, nil
}

// domain parses dot-atom / domain-literal / obs-domain (RFC 5322 §3.4.1,
// §4.4), tolerating one trailing dot.
func (p *addrParser) domain() (string, bool, error) {
	if p.peek() == tLiteral {
		return p.next().text, true, nil
	}
	if p.peek() != tAtom {
		return "", false, errors.New("domain expected after '@'")
	}
	var b strings.Builder
	b.WriteString(p.next().text)
	for p.peek() == '.' {
		p.next()
		if p.peek() != tAtom {
			if p.peek() == '.' {
				return "", false, errors.New("empty label in domain")
			}
			p.warns = append(p.warns, fmt.Sprintf("trailing dot after domain %q removed", clip(b.String())))
			break
		}
		b.WriteByte('.')
		b.WriteString(p.next().text)
	}
	return b.String(), false, nil
}
