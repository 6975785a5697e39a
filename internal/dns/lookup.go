package dns

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
)

// MaxCNAMEChain bounds the aliases a resolver follows for one query.
const MaxCNAMEChain = 8

// CanonicalName lower-cases name, removes one trailing dot and checks it is
// a valid domain name in presentation form: labels of 1 to 63 octets and at
// most 253 octets in all (RFC 1035 §2.3.4). Any octet is allowed in a label
// (RFC 2181 §11); the root is returned as "".
func CanonicalName(name string) (string, error) {
	n := strings.ToLower(strings.TrimSuffix(name, "."))
	if n == "" {
		return "", nil
	}
	if len(n) > 253 {
		return "", fmt.Errorf("%w: %d octets", ErrInvalidName, len(n))
	}
	for l := range strings.SplitSeq(n, ".") {
		if l == "" {
			return "", fmt.Errorf("%w: empty label in %q", ErrInvalidName, name)
		}
		if len(l) > 63 {
			return "", fmt.Errorf("%w: label of %d octets", ErrInvalidName, len(l))
		}
	}
	return n, nil
}

// LookupTXT returns the text of each TXT record at name (character-strings
// joined), with the response for RCODE and TTL.
func LookupTXT(ctx context.Context, r Resolver, name string) ([]string, *Response, error) {
	resp, err := r.Query(ctx, name, TypeTXT)
	if err != nil {
		return nil, nil, err
	}
	out := make([]string, 0, len(resp.Records))
	for _, rec := range resp.Records {
		out = append(out, rec.Text())
	}
	return out, resp, nil
}

// LookupAddrs returns the addresses of the A (ipv6 false) or AAAA (ipv6
// true) records at name.
func LookupAddrs(ctx context.Context, r Resolver, name string, ipv6 bool) ([]netip.Addr, *Response, error) {
	t := TypeA
	if ipv6 {
		t = TypeAAAA
	}
	resp, err := r.Query(ctx, name, t)
	if err != nil {
		return nil, nil, err
	}
	out := make([]netip.Addr, 0, len(resp.Records))
	for _, rec := range resp.Records {
		out = append(out, rec.IP)
	}
	return out, resp, nil
}

// LookupMX returns the MX records at name, in the order received.
func LookupMX(ctx context.Context, r Resolver, name string) ([]Record, *Response, error) {
	resp, err := r.Query(ctx, name, TypeMX)
	if err != nil {
		return nil, nil, err
	}
	return resp.Records, resp, nil
}

// ReverseName returns the in-addr.arpa or ip6.arpa name of ip (RFC 1035
// §3.5, RFC 3596 §2.5).
func ReverseName(ip netip.Addr) string {
	ip = ip.Unmap()
	var b strings.Builder
	if ip.Is4() {
		a := ip.As4()
		fmt.Fprintf(&b, "%d.%d.%d.%d.in-addr.arpa", a[3], a[2], a[1], a[0])
		return b.String()
	}
	a := ip.As16()
	const hex = "0123456789abcdef"
	for i := len(a) - 1; i >= 0; i-- {
		b.WriteByte(hex[a[i]&0xf])
		b.WriteByte('.')
		b.WriteByte(hex[a[i]>>4])
		b.WriteByte('.')
	}
	b.WriteString("ip6.arpa")
	return b.String()
}

// LookupPTR returns the names of the PTR records for ip.
func LookupPTR(ctx context.Context, r Resolver, ip netip.Addr) ([]string, *Response, error) {
	resp, err := r.Query(ctx, ReverseName(ip), TypePTR)
	if err != nil {
		return nil, nil, err
	}
	out := make([]string, 0, len(resp.Records))
	for _, rec := range resp.Records {
		out = append(out, rec.Host)
	}
	return out, resp, nil
}
