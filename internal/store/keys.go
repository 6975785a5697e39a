package store

import (
	"encoding/base64"
	"fmt"
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"portcullis/internal/evidence"
)

// MaxIDLength bounds record and quarantine ids.
const MaxIDLength = 128

// ValidID reports whether id can name a record and a quarantined body
// file: 1 to MaxIDLength characters of [A-Za-z0-9._-], not starting with
// a dot or a hyphen. Ids never contain a path separator.
func ValidID(id string) bool {
	if id == "" || len(id) > MaxIDLength || id[0] == '.' || id[0] == '-' {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// ValidateRecord checks what every back end needs of a record: a valid id,
// a received_at time and one of the four actions.
func ValidateRecord(r *evidence.Record) error {
	switch {
	case r == nil:
		return fmt.Errorf("%w: nil record", ErrInvalid)
	case !ValidID(r.ID):
		return fmt.Errorf("%w: record id %q", ErrInvalid, r.ID)
	case !timeInRange(r.ReceivedAt):
		return fmt.Errorf("%w: record %s has received_at %v", ErrInvalid, r.ID, r.ReceivedAt)
	case !r.Decision.Action.Valid():
		return fmt.Errorf("%w: record %s has action %q", ErrInvalid, r.ID, r.Decision.Action)
	}
	return nil
}

// ValidateQuarantineItem checks an item before it is stored and sets a zero
// State to Held.
func ValidateQuarantineItem(it *QuarantineItem) error {
	switch {
	case it == nil:
		return fmt.Errorf("%w: nil quarantine item", ErrInvalid)
	case !ValidID(it.ID):
		return fmt.Errorf("%w: quarantine id %q", ErrInvalid, it.ID)
	case !timeInRange(it.ReceivedAt):
		return fmt.Errorf("%w: quarantine item %s has received_at %v", ErrInvalid, it.ID, it.ReceivedAt)
	case !timeInRange(it.ExpiresAt):
		return fmt.Errorf("%w: quarantine item %s has expires_at %v", ErrInvalid, it.ID, it.ExpiresAt)
	case it.State != "" && !it.State.Valid():
		return fmt.Errorf("%w: quarantine item %s has state %q", ErrInvalid, it.ID, it.State)
	case it.Size < 0:
		return fmt.Errorf("%w: quarantine item %s has size %d", ErrInvalid, it.ID, it.Size)
	}
	if it.State == "" {
		it.State = Held
	}
	return nil
}

// Times are indexed as Unix nanoseconds, which cover 1678 to 2262; stored
// times must lie between 1970 and 2200.
var (
	minTime = time.Unix(0, 0)
	maxTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

func timeInRange(t time.Time) bool { return !t.Before(minTime) && t.Before(maxTime) }

// Keys are the indexed values derived from a record, computed the same way
// by every back end so that queries match the same records everywhere.
type Keys struct {
	MailFrom         string // normalised MAIL FROM address ("" for the null sender)
	MailFromDomain   string
	HeaderFromAddr   string // normalised address of the header From field
	HeaderFromDomain string
	MessageID        string   // Message-ID without <> and surrounding space
	Recipients       []string // normalised RCPT TO addresses, unique, in order
	RecipientDomains []string // their domains, parallel to Recipients
}

// KeysOf derives a record's indexed values.
func KeysOf(r *evidence.Record) Keys {
	var k Keys
	k.MailFrom = NormalizeAddress(r.Envelope.MailFrom)
	k.MailFromDomain = AddressDomain(k.MailFrom)
	k.HeaderFromAddr = headerFromAddress(r.HeaderFrom)
	// DMARC's RFC5322.From domain (RFC 9989 §4.4) is the authoritative
	// one when the check ran; otherwise the address's domain.
	k.HeaderFromDomain = NormalizeDomain(r.Auth.DMARC.FromDomain)
	if k.HeaderFromDomain == "" {
		k.HeaderFromDomain = AddressDomain(k.HeaderFromAddr)
	}
	k.MessageID = NormalizeMessageID(r.MessageID)
	seen := make(map[string]bool, len(r.Envelope.RcptTo))
	for _, rc := range r.Envelope.RcptTo {
		a := NormalizeAddress(rc)
		if a == "" || seen[a] {
			continue
		}
		seen[a] = true
		k.Recipients = append(k.Recipients, a)
		k.RecipientDomains = append(k.RecipientDomains, AddressDomain(a))
	}
	return k
}

// NormalizeAddress turns an envelope address as written in the record
// ("<User@Example.ORG>", "user@example.org") into the indexed form:
// without angle brackets and space, lower case. Addresses are compared
// case-insensitively in trace queries, although RFC 5321 §2.4 lets a local
// part be case-sensitive, because operators search that way.
func NormalizeAddress(s string) string {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "<") && strings.HasSuffix(s, ">") {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	return strings.ToLower(s)
}

// AddressDomain returns the normalised domain of an address (after the last
// '@'), or "" when it has none.
func AddressDomain(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return NormalizeDomain(addr[i+1:])
}

// NormalizeDomain lower-cases a domain and drops a trailing dot.
func NormalizeDomain(d string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
}

// NormalizeMessageID strips the angle brackets of a msg-id (RFC 5322
// §3.6.4) so that "<a@b>" and "a@b" find the same record.
func NormalizeMessageID(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "<")
	s = strings.TrimSuffix(s, ">")
	return strings.TrimSpace(s)
}

// headerFromAddress extracts the address of the header From value stored
// in a record, which may be a bare address or a full mailbox
// ("Name <a@b>", RFC 5322 §3.4). The first mailbox is indexed when there
// are several.
func headerFromAddress(v string) string {
	v = strings.TrimSpace(v)
	if v == "" || !utf8.ValidString(v) {
		return ""
	}
	if list, err := mail.ParseAddressList(v); err == nil && len(list) > 0 {
		return strings.ToLower(list[0].Address)
	}
	// A malformed field (the records of structure failures): take what is
	// between the first <> pair, or the whole value if it looks like an
	// address.
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			return NormalizeAddress(v[i+1 : i+j])
		}
	}
	if strings.Contains(v, "@") && !strings.ContainsAny(v, " ,;") {
		return strings.ToLower(v)
	}
	return ""
}

// Normalize validates an evidence query and puts it in indexed form: lower
// case strings, a page size within limits.
func (q EvidenceQuery) Normalize() (EvidenceQuery, error) {
	q.Sender = NormalizeAddress(q.Sender)
	q.Recipient = NormalizeAddress(q.Recipient)
	q.Domain = NormalizeDomain(q.Domain)
	q.MessageID = NormalizeMessageID(q.MessageID)
	if q.Action != "" && !q.Action.Valid() {
		return q, fmt.Errorf("%w: action %q", ErrInvalid, q.Action)
	}
	if err := normalizePage(&q.Limit, q.Offset, q.Cursor); err != nil {
		return q, err
	}
	return q, nil
}

// Normalize validates a quarantine query like EvidenceQuery.Normalize.
func (q QuarantineQuery) Normalize() (QuarantineQuery, error) {
	q.Sender = NormalizeAddress(q.Sender)
	q.Recipient = NormalizeAddress(q.Recipient)
	if q.State != "" && !q.State.Valid() {
		return q, fmt.Errorf("%w: state %q", ErrInvalid, q.State)
	}
	if err := normalizePage(&q.Limit, q.Offset, q.Cursor); err != nil {
		return q, err
	}
	return q, nil
}

func normalizePage(limit *int, offset int, cursor string) error {
	switch {
	case *limit < 0:
		return fmt.Errorf("%w: negative limit", ErrInvalid)
	case offset < 0:
		return fmt.Errorf("%w: negative offset", ErrInvalid)
	case offset > 0 && cursor != "":
		return fmt.Errorf("%w: cursor and offset together", ErrInvalid)
	case *limit == 0:
		*limit = DefaultLimit
	case *limit > MaxLimit:
		*limit = MaxLimit
	}
	return nil
}

// Cursor is the position after the last item of a page: its received_at
// and the back end's insertion sequence number, which breaks ties.
type Cursor struct {
	ReceivedAt time.Time
	Seq        int64
}

const cursorPrefix = "c1."

// Encode renders the cursor as an opaque URL-safe string.
func (c Cursor) Encode() string {
	raw := strconv.FormatInt(c.ReceivedAt.UnixNano(), 10) + "." + strconv.FormatInt(c.Seq, 10)
	return cursorPrefix + base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// DecodeCursor parses a string made by Cursor.Encode.
func DecodeCursor(s string) (Cursor, error) {
	bad := fmt.Errorf("%w: cursor %q", ErrInvalid, s)
	if !strings.HasPrefix(s, cursorPrefix) || len(s) > 64 {
		return Cursor{}, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(s[len(cursorPrefix):])
	if err != nil {
		return Cursor{}, bad
	}
	ns, seq, ok := strings.Cut(string(raw), ".")
	if !ok {
		return Cursor{}, bad
	}
	n, err1 := strconv.ParseInt(ns, 10, 64)
	q, err2 := strconv.ParseInt(seq, 10, 64)
	if err1 != nil || err2 != nil || q < 0 {
		return Cursor{}, bad
	}
	return Cursor{ReceivedAt: time.Unix(0, n).UTC(), Seq: q}, nil
}
