package analysis

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"portcullis/internal/dns"
)

// MaxIPRevNames bounds the PTR names whose addresses are looked up, as RFC
// 7208 §4.6.4 bounds the PTR names SPF validates (10): a hostile reverse
// zone cannot make one message cost more queries.
const MaxIPRevNames = 10

// IPRevResult is the result of the iprev method (RFC 8601 §2.7.3), plus
// None when there was no client address to check (no result is
// registered for that: it is left out of Authentication-Results).
type IPRevResult string

// The iprev results.
const (
	IPRevPass      IPRevResult = "pass"
	IPRevFail      IPRevResult = "fail"
	IPRevTempError IPRevResult = "temperror"
	IPRevPermError IPRevResult = "permerror"
	IPRevNone      IPRevResult = "none"
)

// IPRev is the outcome of the reverse-DNS check of the client address.
type IPRev struct {
	Result IPRevResult
	// PTR is the name that was confirmed (pass); otherwise the first PTR
	// name, unconfirmed, or "" when there is none.
	PTR string
	// Names lists every PTR name returned, in order.
	Names []string
	// Reason says in words why the result is not pass.
	Reason string
	// Err is the DNS error behind a temperror or permerror.
	Err error
}

// CheckIPRev applies the iprev method of RFC 8601 §3 to ip: look up the PTR
// records of ip, then the addresses (A for IPv4, AAAA for IPv6) of each
// name, up to MaxIPRevNames names; the check passes when one of them is
// ip. Results (RFC 8601 §2.7.3): pass; fail when no forward lookup gives
// ip back (including names without addresses); temperror when a lookup
// failed temporarily and no name confirmed ip; permerror when ip has no
// PTR data (NXDOMAIN or NODATA) or the reverse lookup cannot be made.
func CheckIPRev(ctx context.Context, r dns.Resolver, ip netip.Addr) IPRev {
	ip = ip.Unmap()
	if !ip.IsValid() {
		return IPRev{Result: IPRevNone, Reason: "no client address"}
	}
	names, _, err := dns.LookupPTR(ctx, r, ip)
	if err != nil {
		if dns.IsTemporary(err) {
			return IPRev{Result: IPRevTempError, Reason: "PTR lookup failed temporarily: " + err.Error(), Err: err}
		}
		return IPRev{Result: IPRevPermError, Reason: "PTR lookup failed: " + err.Error(), Err: err}
	}
	res := IPRev{Names: names}
	if len(names) == 0 {
		res.Result = IPRevPermError
		res.Reason = "no PTR record for " + ip.String()
		return res
	}
	res.PTR = names[0]
	var tempErr error
	var notes []string
	for i, name := range names {
		if i >= MaxIPRevNames {
			notes = append(notes, fmt.Sprintf("%d more PTR names not checked (limit %d)", len(names)-i, MaxIPRevNames))
			break
		}
		addrs, _, err := dns.LookupAddrs(ctx, r, name, ip.Is6())
		if err != nil {
			if dns.IsTemporary(err) && tempErr == nil {
				tempErr = err
			}
			notes = append(notes, name+": "+err.Error())
			continue
		}
		for _, a := range addrs {
			if a.Unmap() == ip {
				return IPRev{Result: IPRevPass, PTR: name, Names: names}
			}
		}
		if len(addrs) == 0 {
			notes = append(notes, name+" has no address")
		} else {
			notes = append(notes, name+" does not resolve to "+ip.String())
		}
	}
	if tempErr != nil {
		res.Result, res.Err = IPRevTempError, tempErr
		res.Reason = "forward lookup failed temporarily: " + strings.Join(notes, "; ")
		return res
	}
	res.Result = IPRevFail
	res.Reason = strings.Join(notes, "; ")
	return res
}
