package dns

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Fault makes a Zone fail a query on purpose, to test how callers handle
// temporary DNS failures.
type Fault int

const (
	// FaultNone: answer normally.
	FaultNone Fault = iota
	// FaultTimeout: Zone.Query fails at once with ErrTimeout; served over
	// the wire (ServeDNS) the query is never answered.
	FaultTimeout
	// FaultServFail: Zone.Query fails with ErrServFail; over the wire the
	// answer has RCODE SERVFAIL (RFC 1035 §4.1.1 RCODE 2).
	FaultServFail
)

func (f Fault) String() string {
	switch f {
	case FaultNone:
		return "none"
	case FaultTimeout:
		return "timeout"
	case FaultServFail:
		return "servfail"
	}
	return fmt.Sprintf("Fault(%d)", int(f))
}

// DefaultNegativeTTL is the negative-caching TTL of a Zone's NXDOMAIN and
// NODATA answers for names under no SOA record of the zone.
const DefaultNegativeTTL = 300 * time.Second

// Zone is an in-memory authoritative zone. It implements Resolver directly
// (lab mode, unit tests) and miekg/dns's Handler (ServeDNS) so that it can
// be served over the wire (package dnstest).
//
// Answers follow the rules of an authoritative server (RFC 1034 §4.3.2):
//   - a name that holds records, or that has descendants (an empty
//     non-terminal, RFC 8020 §2), exists: asking it for a type it has no
//     record of is NOERROR with no records (NODATA);
//   - any other name is NXDOMAIN, unless a wildcard "*.<closest encloser>"
//     exists, whose records then answer for the name (RFC 4592 §3.3.1);
//   - CNAMEs are followed inside the zone for every type but CNAME, at most
//     MaxCNAMEChain of them; a loop or a longer chain fails with an error
//     wrapping ErrServFail, as a recursive resolver answers SERVFAIL then.
//     RCode is that of the last name of the chain (RFC 6604 §3);
//   - the TTL of an answer is the smallest TTL of its records and CNAMEs;
//     a negative answer (NXDOMAIN or NODATA) has the negative TTL of
//     RFC 2308 §5, min(TTL, MINIMUM) of the closest enclosing SOA, or the
//     zone's negative TTL (SetNegativeTTL, default 300 s) when no SOA
//     encloses the name.
//
// Records keep their insertion order. A Zone is safe for concurrent use:
// records and faults may be added while queries are answered. The zero
// value is not usable; call NewZone or LoadZone.
type Zone struct {
	mu        sync.RWMutex
	nodes     map[string]*zoneNode // every owner name and every ancestor of one
	soas      map[string]soaData   // zone apex → its SOA
	faults    map[faultKey]Fault
	faultFunc func(name string, t Type) Fault
	negTTL    time.Duration
}

type zoneNode struct {
	recs []Record // in insertion order; nil for an empty non-terminal
}

type faultKey struct {
	name string
	t    Type // 0: every type
}

// soaData is what a Zone keeps of an SOA record (RFC 1035 §3.3.13).
type soaData struct {
	ttl                                     uint32
	mname, rname                            string
	serial, refresh, retry, expire, minimum uint32
}

// NewZone returns an empty zone.
func NewZone() *Zone {
	return &Zone{
		nodes:  make(map[string]*zoneNode),
		soas:   make(map[string]soaData),
		faults: make(map[faultKey]Fault),
		negTTL: DefaultNegativeTTL,
	}
}

// SetNegativeTTL sets the negative TTL of NXDOMAIN and NODATA answers for
// names under no SOA record of the zone. d is truncated to whole seconds.
func (z *Zone) SetNegativeTTL(d time.Duration) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.negTTL = max(d, 0).Truncate(time.Second)
}

// Add appends rec to the records of name. name is canonicalised with
// CanonicalName; a name that is not a valid domain name is ignored, since a
// query for it fails with ErrInvalidName whatever the zone holds. Hosts
// (CNAME target, MX exchange, PTR target) are lower-cased and lose their
// trailing dot. TTL is used as given (0 means "do not cache").
//
// A CNAME record is given with Type TypeCNAME and its target in Host; a
// name with a CNAME answers every other type through it (RFC 1034 §3.6.2
// forbids other data beside a CNAME; LoadZone refuses it). An SOA record
// (Type TypeSOA, primary server in Host) makes name a zone apex whose
// negative TTL is the record's TTL (LoadZone keeps the real MINIMUM).
// Records of any other Type are stored and answered as they are.
func (z *Zone) Add(name string, rec Record) {
	n, err := CanonicalName(name)
	if err != nil {
		return
	}
	switch rec.Type {
	case TypeCNAME, TypeMX, TypePTR, TypeSOA:
		rec.Host = strings.ToLower(strings.TrimSuffix(rec.Host, "."))
	}
	if len(rec.TXT) > 0 {
		rec.TXT = append([]string(nil), rec.TXT...)
	}
	var soa *soaData
	if rec.Type == TypeSOA {
		soa = &soaData{ttl: rec.TTL, mname: rec.Host, rname: "hostmaster." + n, serial: 1,
			refresh: 3600, retry: 600, expire: 604800, minimum: rec.TTL}
	}
	z.add(n, rec, soa)
}

// add stores rec at the canonical name n and marks every ancestor of n as
// existing (RFC 8020: a name with descendants exists).
func (z *Zone) add(n string, rec Record, soa *soaData) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.touch(n)
	node := z.nodes[n]
	if rec.Type != 0 {
		node.recs = append(node.recs, rec)
	}
	if soa != nil {
		z.soas[n] = *soa
	}
}

// touch makes n and all its ancestors exist. z.mu must be held.
func (z *Zone) touch(n string) {
	if _, ok := z.nodes[n]; ok {
		return
	}
	z.nodes[n] = &zoneNode{}
	for a := n; a != ""; {
		a = parent(a)
		if _, ok := z.nodes[a]; ok {
			return
		}
		z.nodes[a] = &zoneNode{}
	}
}

// parent returns the name without its first label ("" for a single label).
func parent(n string) string {
	if i := strings.IndexByte(n, '.'); i >= 0 {
		return n[i+1:]
	}
	return ""
}

// SetFault makes queries for name fail with f: queries of type t, or of
// every type when t is 0. FaultNone removes the fault. A fault applies to
// every name of a CNAME chain, as a recursive resolver failing on one link
// fails the whole query.
func (z *Zone) SetFault(name string, t Type, f Fault) {
	n, err := CanonicalName(name)
	if err != nil {
		return
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	k := faultKey{n, t}
	if f == FaultNone {
		delete(z.faults, k)
		return
	}
	z.faults[k] = f
}

// SetFaultFunc installs fn, asked first for every name and type a query
// touches (canonical name); when it returns FaultNone the faults of
// SetFault apply. fn must be safe for concurrent use; nil removes it.
func (z *Zone) SetFaultFunc(fn func(name string, t Type) Fault) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.faultFunc = fn
}

func (z *Zone) fault(n string, t Type) Fault {
	z.mu.RLock()
	fn := z.faultFunc
	z.mu.RUnlock()
	if fn != nil {
		if f := fn(n, t); f != FaultNone {
			return f
		}
	}
	z.mu.RLock()
	defer z.mu.RUnlock()
	if f, ok := z.faults[faultKey{n, t}]; ok {
		return f
	}
	return z.faults[faultKey{n, 0}]
}

// cnameLink is one alias of a chain: owner is an alias of target.
type cnameLink struct {
	owner, target string
	ttl           uint32
}

// zoneAnswer is the full authoritative answer to one question, shared by
// Query and ServeDNS.
type zoneAnswer struct {
	rcode RCode
	chain []cnameLink
	final string   // the last name of the chain (the asked name if none)
	recs  []Record // records of the asked type at final, copied
	// For negative answers: the SOA for the authority section (RFC 2308
	// §3) and the negative TTL in seconds.
	soaOwner string
	soa      soaData
	negTTL   uint32
}

// resolve answers the canonical name n for type t. Errors are *Error
// wrapping ErrTimeout or ErrServFail.
func (z *Zone) resolve(n string, t Type) (*zoneAnswer, error) {
	ans := &zoneAnswer{}
	cur := n
	for {
		switch z.fault(cur, t) {
		case FaultTimeout:
			return nil, &Error{Name: n, Type: t, Err: fmt.Errorf("%w (fault at %s)", ErrTimeout, cur)}
		case FaultServFail:
			return nil, &Error{Name: n, Type: t, Err: fmt.Errorf("%w (fault at %s)", ErrServFail, cur)}
		}
		z.mu.RLock()
		node, exists := z.lookup(cur)
		var cname *Record
		if exists {
			for i := range node.recs {
				r := &node.recs[i]
				if r.Type == t {
					ans.recs = append(ans.recs, *r)
				} else if r.Type == TypeCNAME && t != TypeCNAME && cname == nil {
					cname = r
				}
			}
		}
		if len(ans.recs) > 0 || cname == nil {
			ans.final = cur
			if !exists {
				ans.rcode = NXDomain
			}
			if len(ans.recs) == 0 {
				ans.soaOwner, ans.soa, ans.negTTL = z.negative(cur)
			}
			z.mu.RUnlock()
			return ans, nil
		}
		link := cnameLink{owner: cur, target: cname.Host, ttl: cname.TTL}
		z.mu.RUnlock()
		// RFC 1034 §3.6.2: restart the query at the alias's target.
		ans.chain = append(ans.chain, link)
		if len(ans.chain) > MaxCNAMEChain {
			return nil, &Error{Name: n, Type: t, Err: fmt.Errorf("%w: CNAME chain longer than %d", ErrServFail, MaxCNAMEChain)}
		}
		// The names visited so far are the owners of the chain's links.
		if slices.ContainsFunc(ans.chain, func(l cnameLink) bool { return l.owner == link.target }) {
			return nil, &Error{Name: n, Type: t, Err: fmt.Errorf("%w: CNAME loop at %s", ErrServFail, link.target)}
		}
		cur = link.target
	}
}

// lookup finds the node answering for n: n's own node, or the wildcard of
// its closest encloser (RFC 4592 §3.3.1). z.mu must be held for reading.
func (z *Zone) lookup(n string) (*zoneNode, bool) {
	if node, ok := z.nodes[n]; ok {
		return node, true
	}
	for a := n; a != ""; {
		a = parent(a)
		if _, ok := z.nodes[a]; !ok {
			continue
		}
		// a is the closest encloser; its wildcard is the source of
		// synthesis if it exists.
		w := "*"
		if a != "" {
			w += "." + a
		}
		if node, ok := z.nodes[w]; ok {
			return node, true
		}
		return nil, false
	}
	return nil, false
}

// negative returns the SOA to put in the authority section of a negative
// answer for n and the negative TTL in seconds (RFC 2308 §5). Without an
// enclosing SOA, one is made up at n's last label from the zone's negative
// TTL. z.mu must be held for reading.
func (z *Zone) negative(n string) (string, soaData, uint32) {
	for a := n; ; a = parent(a) {
		if soa, ok := z.soas[a]; ok {
			return a, soa, min(soa.ttl, soa.minimum)
		}
		if a == "" {
			break
		}
	}
	ttl := uint32(z.negTTL / time.Second)
	owner := n
	if i := strings.LastIndexByte(n, '.'); i >= 0 {
		owner = n[i+1:]
	}
	return owner, soaData{ttl: ttl, mname: "ns.invalid", rname: "hostmaster.invalid",
		serial: 1, refresh: 3600, retry: 600, expire: 604800, minimum: ttl}, ttl
}

// Query answers from the zone (see Zone). An invalid name fails with an
// error wrapping ErrInvalidName; a query whose ctx has ended fails with an
// error wrapping ErrTemporary and ctx.Err(). The Response is the caller's,
// but the TXT slices of its Records are shared with the zone: read only.
func (z *Zone) Query(ctx context.Context, name string, t Type) (*Response, error) {
	n, err := CanonicalName(name)
	if err != nil {
		return nil, &Error{Name: name, Type: t, Err: err}
	}
	if err := ctxError(ctx); err != nil {
		return nil, &Error{Name: n, Type: t, Err: err}
	}
	ans, err := z.resolve(n, t)
	if err != nil {
		return nil, err
	}
	resp := &Response{Name: n, Type: t, RCode: ans.rcode, Records: ans.recs}
	ttl := uint32(1<<32 - 1)
	for _, l := range ans.chain {
		resp.CNAMEs = append(resp.CNAMEs, l.target)
		ttl = min(ttl, l.ttl)
	}
	for _, r := range ans.recs {
		ttl = min(ttl, r.TTL)
	}
	if len(ans.recs) == 0 {
		ttl = min(ttl, ans.negTTL)
	}
	resp.TTL = time.Duration(ttl) * time.Second
	return resp, nil
}

// ctxError returns the error of a query cut short by ctx: ErrTimeout for a
// passed deadline, ErrTemporary otherwise, both also wrapping ctx.Err().
// A deadline already passed counts even before ctx's timer has fired, so
// that a read cut by the same deadline is reported as the ctx's.
func ctxError(ctx context.Context) error {
	err := ctx.Err()
	if err == nil {
		if d, ok := ctx.Deadline(); !ok || time.Now().Before(d) {
			return nil
		}
		err = context.DeadlineExceeded
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return fmt.Errorf("%w: %w", ErrTemporary, err)
}
