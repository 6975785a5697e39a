package dns

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// ClientConfig configures a Client. The zero value of every field means its
// default.
type ClientConfig struct {
	// Servers are the recursive resolvers to ask, "host:port" or "host"
	// (port 53), IPv6 literals in brackets when a port is given. Default:
	// the nameservers of /etc/resolv.conf (ServersFromResolvConf).
	Servers []string
	// Timeout bounds one attempt (one exchange with one server, including
	// a retry over TCP after truncation). Default 2 s.
	Timeout time.Duration
	// Attempts is how many times the whole server list is tried before
	// giving up. Default 2.
	Attempts int
	// UDPSize is the EDNS0 payload size advertised (RFC 6891 §6.2.5).
	// Default 1232, which avoids IP fragmentation.
	UDPSize uint16
}

// Client is a stub resolver (RFC 1035 §7, RFC 1123 §6.1.3.1) asking
// recursive servers over UDP with EDNS0 (RFC 6891) and over TCP when an
// answer is truncated (RFC 7766 §5). A Client is safe for concurrent use and
// does not cache (wrap it in a Cache).
//
// Each query tries the servers in order, Attempts times over, each attempt
// bounded by Timeout and by ctx; it moves to the next server after a
// timeout, a network error, an unusable reply (wrong ID or question,
// garbage) or an RCODE other than NOERROR and NXDOMAIN. The error returned
// is that of the last attempt: ErrTimeout when every server was silent,
// ErrServFail for SERVFAIL, ErrTemporary otherwise.
type Client struct {
	servers  []string
	timeout  time.Duration
	attempts int
	udpSize  uint16
}

// NewClient returns a Client for cfg.
func NewClient(cfg ClientConfig) (*Client, error) {
	c := &Client{timeout: cfg.Timeout, attempts: cfg.Attempts, udpSize: cfg.UDPSize}
	if c.timeout <= 0 {
		c.timeout = 2 * time.Second
	}
	if c.attempts <= 0 {
		c.attempts = 2
	}
	if c.udpSize == 0 {
		c.udpSize = 1232
	}
	c.udpSize = max(c.udpSize, mdns.MinMsgSize)
	servers := cfg.Servers
	if len(servers) == 0 {
		var err error
		if servers, err = ServersFromResolvConf(""); err != nil {
			return nil, err
		}
	}
	for _, s := range servers {
		addr, err := serverAddr(s)
		if err != nil {
			return nil, err
		}
		c.servers = append(c.servers, addr)
	}
	return c, nil
}

// Servers returns the "host:port" addresses the Client asks, in order.
func (c *Client) Servers() []string { return append([]string(nil), c.servers...) }

// serverAddr normalises a server address to host:port, port 53 by default.
func serverAddr(s string) (string, error) {
	s = strings.TrimSpace(s)
	if host, port, err := net.SplitHostPort(s); err == nil {
		if host == "" {
			return "", fmt.Errorf("dns: server %q: no host", s)
		}
		if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
			return "", fmt.Errorf("dns: server %q: bad port", s)
		}
		return net.JoinHostPort(host, port), nil
	}
	host := strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if host == "" || strings.ContainsAny(host, " /") {
		return "", fmt.Errorf("dns: server %q: not host:port", s)
	}
	if strings.Count(host, ":") > 0 {
		// An IPv6 literal without port.
		if _, err := netip.ParseAddr(host); err != nil {
			return "", fmt.Errorf("dns: server %q: not host:port", s)
		}
	}
	return net.JoinHostPort(host, "53"), nil
}

// DefaultResolvConf is the file ServersFromResolvConf reads by default.
const DefaultResolvConf = "/etc/resolv.conf"

// ServersFromResolvConf returns the "host:port" of each nameserver line of
// the resolv.conf(5) file at path (DefaultResolvConf when ""). A file that
// does not exist or lists no nameserver yields 127.0.0.1:53, as the C
// resolver does; other read errors are returned. IPv6 link-local zones
// ("fe80::1%eth0") are kept.
func ServersFromResolvConf(path string) ([]string, error) {
	if path == "" {
		path = DefaultResolvConf
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return []string{"127.0.0.1:53"}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue
		}
		host := fields[1]
		ipPart, _, _ := strings.Cut(host, "%")
		if net.ParseIP(ipPart) == nil {
			continue // resolv.conf nameservers are addresses
		}
		out = append(out, net.JoinHostPort(host, "53"))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dns: %s: %w", path, err)
	}
	if len(out) == 0 {
		out = []string{"127.0.0.1:53"}
	}
	return out, nil
}

// Query asks the configured servers (see Client).
func (c *Client) Query(ctx context.Context, name string, t Type) (*Response, error) {
	n, err := CanonicalName(name)
	if err != nil {
		return nil, &Error{Name: name, Type: t, Err: err}
	}
	req := new(mdns.Msg)
	req.SetQuestion(fqdn(n), uint16(t))
	req.RecursionDesired = true
	// RFC 6840 §5.7: AD in a query asks for AD in the answer without DO.
	req.AuthenticatedData = true
	req.SetEdns0(c.udpSize, false)

	var last error
	for range c.attempts {
		for _, server := range c.servers {
			if err := ctxError(ctx); err != nil {
				return nil, &Error{Name: n, Type: t, Err: err}
			}
			reply, err := c.attempt(ctx, req, server)
			if err == nil {
				resp, err := c.response(n, t, reply)
				if err == nil {
					return resp, nil
				}
				if errors.Is(err, ErrPermanent) {
					return nil, &Error{Name: n, Type: t, Err: err}
				}
				last = fmt.Errorf("%w (from %s)", err, server)
				continue
			}
			last = err
		}
	}
	if err := ctxError(ctx); err != nil {
		last = err
	}
	return nil, &Error{Name: n, Type: t, Err: last}
}

// attempt is one exchange with server: over UDP, then over TCP if the UDP
// answer is truncated, within c.timeout and ctx. Each attempt uses a new
// socket (and so a new source port) and a new random ID (RFC 5452 §9.2).
func (c *Client) attempt(ctx context.Context, req *mdns.Msg, server string) (*mdns.Msg, error) {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req = req.Copy()
	req.Id = mdns.Id()
	reply, err := c.exchange(actx, req, server, "udp")
	if err == nil && reply.Truncated {
		// RFC 7766 §5 (RFC 1035 §4.2.1): retry over TCP.
		reply, err = c.exchange(actx, req, server, "tcp")
	}
	if err == nil && reply.Rcode == mdns.RcodeFormatError && req.IsEdns0() != nil {
		// RFC 6891 §7: a server that does not understand EDNS0 answers
		// FORMERR; ask again without the OPT record.
		plain := req.Copy()
		plain.Extra = nil
		plain.Id = mdns.Id()
		reply, err = c.exchange(actx, plain, server, "udp")
		if err == nil && reply.Truncated {
			reply, err = c.exchange(actx, plain, server, "tcp")
		}
	}
	if err != nil {
		if cerr := ctxError(ctx); cerr != nil {
			return nil, cerr
		}
		if ctxError(actx) != nil {
			return nil, fmt.Errorf("%w: %s: no answer in %v", ErrTimeout, server, c.timeout)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, fmt.Errorf("%w: %s: %v", ErrTimeout, server, err)
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrTemporary, server, err)
	}
	return reply, nil
}

// exchange sends req to server over network and reads the answer with the
// same ID (miekg/dns discards others over UDP and fails over TCP). The
// connection is closed as soon as ctx ends, which unblocks the read.
func (c *Client) exchange(ctx context.Context, req *mdns.Msg, server, network string) (*mdns.Msg, error) {
	mc := &mdns.Client{Net: network, UDPSize: c.udpSize, Timeout: c.timeout}
	conn, err := mc.DialContext(ctx, server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	reply, _, err := mc.ExchangeWithConnContext(ctx, req, conn)
	if err != nil {
		return nil, err
	}
	// RFC 5452 §9.1: the answer must be for the question asked (the name
	// compared without regard to case, RFC 4343).
	if !reply.Response || len(reply.Question) != 1 {
		return nil, fmt.Errorf("reply is not an answer to the question")
	}
	q, rq := req.Question[0], reply.Question[0]
	if q.Qtype != rq.Qtype || q.Qclass != rq.Qclass || !strings.EqualFold(q.Name, rq.Name) {
		return nil, fmt.Errorf("reply for %s %s, not the question asked", rq.Name, mdns.Type(rq.Qtype))
	}
	return reply, nil
}

// response turns a reply into a Response or an error: NOERROR and
// NXDOMAIN are answers, other RCODEs temporary failures.
func (c *Client) response(n string, t Type, reply *mdns.Msg) (*Response, error) {
	switch reply.Rcode {
	case mdns.RcodeSuccess, mdns.RcodeNameError:
	case mdns.RcodeServerFailure:
		return nil, ErrServFail
	default:
		return nil, fmt.Errorf("%w: RCODE %s", ErrTemporary, rcodeName(reply.Rcode))
	}
	resp := &Response{Name: n, Type: t, Authenticated: reply.AuthenticatedData}
	if reply.Rcode == mdns.RcodeNameError {
		resp.RCode = NXDomain
	}
	ttl := uint32(1<<32 - 1)

	// RFC 1034 §5.3.3 and RFC 2308 §2.1: follow the CNAME chain through the
	// answer section to the records of the asked type. The RCODE concerns
	// the last name of the chain (RFC 6604 §3).
	cur := n
	seen := map[string]bool{n: true}
	for {
		var cname *mdns.CNAME
		for _, rr := range reply.Answer {
			h := rr.Header()
			if h.Class != mdns.ClassINET {
				continue
			}
			owner, err := canonicalWire(h.Name)
			if err != nil || owner != cur {
				continue
			}
			if Type(h.Rrtype) == t {
				rec, ok := rrToRecord(rr)
				if !ok {
					continue
				}
				resp.Records = append(resp.Records, rec)
				ttl = min(ttl, rec.TTL)
			} else if v, ok := rr.(*mdns.CNAME); ok && t != TypeCNAME && cname == nil {
				cname = v
			}
		}
		if len(resp.Records) > 0 || cname == nil {
			break
		}
		target, err := canonicalWire(cname.Target)
		if err != nil {
			return nil, fmt.Errorf("%w: bad CNAME target %q", ErrServFail, cname.Target)
		}
		resp.CNAMEs = append(resp.CNAMEs, target)
		ttl = min(ttl, cname.Hdr.Ttl)
		if len(resp.CNAMEs) > MaxCNAMEChain {
			return nil, fmt.Errorf("%w: CNAME chain longer than %d", ErrServFail, MaxCNAMEChain)
		}
		if seen[target] {
			return nil, fmt.Errorf("%w: CNAME loop at %s", ErrServFail, target)
		}
		seen[target] = true
		cur = target
	}
	if len(resp.Records) > 0 && resp.RCode == NXDomain {
		// Records for the name contradict NXDOMAIN: trust neither.
		return nil, fmt.Errorf("%w: NXDOMAIN with answers for %s", ErrTemporary, cur)
	}
	if len(resp.Records) == 0 {
		// RFC 2308 §5: the negative TTL is min(SOA TTL, SOA MINIMUM) of the
		// SOA in the authority section; without one, do not cache.
		neg := uint32(0)
		for _, rr := range reply.Ns {
			if soa, ok := rr.(*mdns.SOA); ok {
				neg = min(soa.Hdr.Ttl, soa.Minttl)
				break
			}
		}
		ttl = min(ttl, neg)
	}
	resp.TTL = time.Duration(ttl) * time.Second
	return resp, nil
}

func rcodeName(rc int) string {
	if s, ok := mdns.RcodeToString[rc]; ok {
		return s
	}
	return strconv.Itoa(rc)
}
