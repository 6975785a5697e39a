// Package dns is the one way Portcullis asks the Domain Name System.
//
// Every check (SPF, DKIM, DMARC, ARC, iprev) gets its answers through the
// Resolver interface, so that the difference between a name that does not
// exist (NXDOMAIN), a name without records of the asked type (NODATA) and a
// lookup that failed (SERVFAIL, timeout) survives up to the protocol code:
// RFC 7208 §4.6.4 (void lookups), RFC 9989 (np=) and RFC 6376 §6.1.2
// (temperror versus permerror) all depend on it.
//
// Back ends:
//   - Client: a stub resolver asking configured servers (RFC 1035, RFC 6891
//     EDNS0, TCP on truncation), built on github.com/miekg/dns;
//   - Zone: an in-memory authoritative zone, built in code or loaded from an
//     RFC 1035 master file, used in lab mode and offline tests (empty
//     non-terminals per RFC 8020, wildcards per RFC 4592, faults on demand);
//     it also answers over the wire through miekg/dns (Zone.ServeDNS);
//   - Cache: a decorator with TTL-respecting positive and negative caching
//     (RFC 2308), bounded memory and coalescing of identical queries.
//
// The dnstest sub-package serves a Zone on 127.0.0.1 over UDP and TCP for
// integration tests that must go through the real wire protocol.
package dns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Type is a DNS resource record type (RFC 1035 §3.2.2), numerically equal
// to the wire value.
type Type uint16

// The record types Portcullis asks for.
const (
	TypeA     Type = 1
	TypeCNAME Type = 5
	TypeSOA   Type = 6
	TypePTR   Type = 12
	TypeMX    Type = 15
	TypeTXT   Type = 16
	TypeAAAA  Type = 28
)

func (t Type) String() string {
	switch t {
	case TypeA:
		return "A"
	case TypeCNAME:
		return "CNAME"
	case TypeSOA:
		return "SOA"
	case TypePTR:
		return "PTR"
	case TypeMX:
		return "MX"
	case TypeTXT:
		return "TXT"
	case TypeAAAA:
		return "AAAA"
	}
	return fmt.Sprintf("TYPE%d", uint16(t))
}

// ParseType reads a record type name such as "TXT" (case-insensitive).
func ParseType(s string) (Type, error) {
	for _, t := range []Type{TypeA, TypeCNAME, TypeSOA, TypePTR, TypeMX, TypeTXT, TypeAAAA} {
		if strings.EqualFold(s, t.String()) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("dns: unsupported record type %q", s)
}

// RCode is the outcome of a query that got an answer.
type RCode int

const (
	// Success (NOERROR): the name exists. With no Records it is NODATA.
	Success RCode = 0
	// NXDomain: the name does not exist (RFC 1035 §4.1.1 RCODE 3).
	NXDomain RCode = 3
)

func (r RCode) String() string {
	switch r {
	case Success:
		return "NOERROR"
	case NXDomain:
		return "NXDOMAIN"
	}
	return fmt.Sprintf("RCODE%d", int(r))
}

// Record is one answer record of the asked type. Only the fields of its
// Type are set.
type Record struct {
	Type Type
	TTL  uint32
	// TXT holds the character-strings of a TXT record, in order, as raw
	// bytes (RFC 1035 §3.3.14). Callers that want the record's text join
	// them with no separator (RFC 7208 §3.3, RFC 6376 §3.6.2.2).
	TXT []string
	// IP is set for A and AAAA.
	IP netip.Addr
	// Pref and Host are set for MX (Host is the exchange, lower case,
	// without the trailing dot; "" or "." for a null MX, RFC 7505).
	Pref uint16
	// Host is the MX exchange, the PTR or CNAME target, or the SOA's
	// primary server (MNAME), lower case, without the trailing dot.
	Host string
}

// Text returns the TXT record's character-strings joined with nothing
// between them.
func (r Record) Text() string { return strings.Join(r.TXT, "") }

// Response is the answer to one query. A Response is returned only when a
// server (or zone) answered with NOERROR or NXDOMAIN; every other outcome
// is an error.
type Response struct {
	// Name is the name asked, lower case, without the trailing dot.
	Name string
	Type Type
	// RCode is Success or NXDomain. After a CNAME chain it is the RCODE of
	// the last name in the chain.
	RCode RCode
	// CNAMEs lists the aliases followed, in order, each target lower case
	// without the trailing dot.
	CNAMEs []string
	// Records are the answers of the asked Type (after following CNAMEs).
	Records []Record
	// TTL is how long the whole response may be cached: the smallest TTL of
	// Records and CNAMEs, or for a negative answer the negative TTL of
	// RFC 2308 §5 (min of the SOA's TTL and MINIMUM field).
	TTL time.Duration
	// Authenticated reports the AD bit of the answer (RFC 4035 §3.2.3).
	Authenticated bool
}

// NXDomain reports that the name does not exist.
func (r *Response) NXDomain() bool { return r.RCode == NXDomain }

// NoData reports that the name exists but has no record of the asked type.
func (r *Response) NoData() bool { return r.RCode == Success && len(r.Records) == 0 }

// Void reports an answer with no records of the asked type, whether the
// name does not exist or has other types only (RFC 7208 §4.6.4).
func (r *Response) Void() bool { return len(r.Records) == 0 }

// Sentinel errors. Every error returned by a Resolver wraps exactly one of
// ErrTemporary or ErrPermanent, so that protocol code can tell a temperror
// from a permerror with errors.Is.
var (
	// ErrTemporary: the query may succeed later (timeout, SERVFAIL,
	// REFUSED, network failure, context deadline). Maps to temperror.
	ErrTemporary = errors.New("temporary DNS failure")
	// ErrPermanent: the query can never succeed as asked (the name is not a
	// valid domain name, e.g. a label over 63 octets or a name over 253).
	ErrPermanent = errors.New("permanent DNS failure")
	// ErrTimeout is a temporary failure in which no server answered in
	// time. It wraps ErrTemporary.
	ErrTimeout = fmt.Errorf("timeout: %w", ErrTemporary)
	// ErrServFail is a temporary failure in which a server answered
	// SERVFAIL. It wraps ErrTemporary.
	ErrServFail = fmt.Errorf("SERVFAIL: %w", ErrTemporary)
	// ErrInvalidName: the name is not a valid domain name. It wraps
	// ErrPermanent.
	ErrInvalidName = fmt.Errorf("invalid domain name: %w", ErrPermanent)
)

// Error describes a failed query.
type Error struct {
	Name string
	Type Type
	Err  error // wraps ErrTemporary or ErrPermanent
}

func (e *Error) Error() string {
	return fmt.Sprintf("dns: %s %s: %v", e.Name, e.Type, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// IsTemporary reports whether err is a temporary DNS failure.
func IsTemporary(err error) bool { return errors.Is(err, ErrTemporary) }

// Resolver answers one question. Implementations follow CNAME chains (up to
// a bounded length) for every Type but CNAME, return names lower case
// without the trailing dot, and honour ctx's deadline: a query cut short by
// ctx fails with an error wrapping ErrTemporary (and ctx.Err()).
//
// name may be given with or without the trailing dot and in any case.
type Resolver interface {
	Query(ctx context.Context, name string, t Type) (*Response, error)
}
