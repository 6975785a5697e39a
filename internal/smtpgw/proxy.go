package smtpgw

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// The PROXY protocol (HAProxy, "The PROXY protocol", versions 1 and 2) lets
// a load balancer in front of the gateway pass on the client's address. It
// is parsed here, rather than with a dependency, because only a narrow part
// is needed (TCP over IPv4/IPv6, LOCAL/UNKNOWN, TLVs skipped) and the reader
// must consume exactly the header and nothing of the SMTP stream behind it.

// ErrProxyHeader reports a missing or malformed PROXY protocol header.
var ErrProxyHeader = errors.New("smtpgw: bad PROXY protocol header")

// proxyV2Sig is the 12-byte signature of a version 2 header (spec §2.2).
var proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

const (
	// proxyV1MaxLen is the longest version 1 line, CRLF included (§2.1).
	proxyV1MaxLen = 107
	// proxyV2MaxBody caps the address block and TLVs of a version 2
	// header; the specification allows 65535, real proxies send far less.
	proxyV2MaxBody = 4096
)

// proxyHeader is a parsed PROXY header. When Local is true the header names
// no client (v1 UNKNOWN, v2 LOCAL, or a family other than TCP over IP):
// the connection's own addresses stand.
type proxyHeader struct {
	Version int
	Local   bool
	Src     netip.AddrPort
	Dst     netip.AddrPort
	Len     int // bytes of the header on the wire
}

func proxyErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProxyHeader, fmt.Sprintf(format, args...))
}

// readProxyHeader reads one PROXY header (v1 or v2) from r, consuming
// exactly its bytes.
func readProxyHeader(r io.Reader) (proxyHeader, error) {
	var head [16]byte
	// Every valid header is at least 15 (v1 "PROXY UNKNOWN\r\n") or 16 (v2)
	// bytes long, so the first 12 can be read at once.
	if _, err := io.ReadFull(r, head[:12]); err != nil {
		return proxyHeader{}, fmt.Errorf("%w: %w", ErrProxyHeader, err)
	}
	if bytes.Equal(head[:12], proxyV2Sig) {
		if _, err := io.ReadFull(r, head[12:16]); err != nil {
			return proxyHeader{}, fmt.Errorf("%w: %w", ErrProxyHeader, err)
		}
		n := int(binary.BigEndian.Uint16(head[14:16]))
		if n > proxyV2MaxBody {
			return proxyHeader{}, proxyErr("v2 header of %d bytes exceeds %d", n, proxyV2MaxBody)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return proxyHeader{}, fmt.Errorf("%w: %w", ErrProxyHeader, err)
		}
		return parseProxyV2(head, body)
	}
	if !bytes.HasPrefix(head[:12], []byte("PROXY ")) {
		return proxyHeader{}, proxyErr("no PROXY signature")
	}
	if bytes.IndexByte(head[:12], '\n') >= 0 {
		return proxyHeader{}, proxyErr("v1 line too short")
	}
	line := make([]byte, 12, proxyV1MaxLen)
	copy(line, head[:12])
	var b [1]byte
	for line[len(line)-1] != '\n' {
		if len(line) == proxyV1MaxLen {
			return proxyHeader{}, proxyErr("v1 line longer than %d bytes", proxyV1MaxLen)
		}
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return proxyHeader{}, fmt.Errorf("%w: %w", ErrProxyHeader, err)
		}
		line = append(line, b[0])
	}
	return parseProxyV1(line)
}

// parseProxyV1 parses a version 1 line, CRLF included (spec §2.1):
// "PROXY" SP ( "TCP4" | "TCP6" ) SP src SP dst SP sport SP dport CRLF, or
// "PROXY UNKNOWN" followed by anything up to CRLF.
func parseProxyV1(line []byte) (proxyHeader, error) {
	h := proxyHeader{Version: 1, Len: len(line)}
	s, ok := strings.CutSuffix(string(line), "\r\n")
	if !ok || strings.ContainsAny(s, "\r\n") {
		return h, proxyErr("v1 line not ended by CRLF")
	}
	f := strings.Split(s, " ")
	if f[0] != "PROXY" || len(f) < 2 {
		return h, proxyErr("v1 line does not start with PROXY")
	}
	if f[1] == "UNKNOWN" {
		h.Local = true
		return h, nil
	}
	if f[1] != "TCP4" && f[1] != "TCP6" {
		return h, proxyErr("v1 protocol %q", f[1])
	}
	if len(f) != 6 {
		return h, proxyErr("v1 line has %d fields, want 6", len(f))
	}
	src, err1 := netip.ParseAddr(f[2])
	dst, err2 := netip.ParseAddr(f[3])
	if err1 != nil || err2 != nil || src.Zone() != "" || dst.Zone() != "" {
		return h, proxyErr("v1 addresses %q %q", f[2], f[3])
	}
	if f[1] == "TCP4" && (!src.Is4() || !dst.Is4()) || f[1] == "TCP6" && (!src.Is6() || !dst.Is6()) {
		return h, proxyErr("v1 addresses %q %q do not match %s", f[2], f[3], f[1])
	}
	sp, ok1 := parsePort(f[4])
	dp, ok2 := parsePort(f[5])
	if !ok1 || !ok2 {
		return h, proxyErr("v1 ports %q %q", f[4], f[5])
	}
	h.Src = netip.AddrPortFrom(src.Unmap(), sp)
	h.Dst = netip.AddrPortFrom(dst.Unmap(), dp)
	return h, nil
}

// parsePort parses a decimal port 0-65535 without sign or leading zeros.
func parsePort(s string) (uint16, bool) {
	if s == "" || len(s) > 5 || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	if n > 65535 {
		return 0, false
	}
	return uint16(n), true
}

// parseProxyV2 parses a version 2 header: the 16 fixed bytes and the body
// whose length they announce (spec §2.2).
func parseProxyV2(head [16]byte, body []byte) (proxyHeader, error) {
	h := proxyHeader{Version: 2, Len: 16 + len(body)}
	if head[12]>>4 != 2 {
		return h, proxyErr("v2 version %d", head[12]>>4)
	}
	switch head[12] & 0x0f {
	case 0x0: // LOCAL: the proxy's own connection (health checks).
		h.Local = true
		return h, nil
	case 0x1: // PROXY
	default:
		return h, proxyErr("v2 command %d", head[12]&0x0f)
	}
	family, transport := head[13]>>4, head[13]&0x0f
	switch family {
	case 0x0: // AF_UNSPEC: addresses unknown.
		h.Local = true
		return h, nil
	case 0x1, 0x2: // AF_INET, AF_INET6
	case 0x3: // AF_UNIX: no IP client to record.
		if len(body) < 216 {
			return h, proxyErr("v2 unix address block of %d bytes", len(body))
		}
		h.Local = true
		return h, nil
	default:
		return h, proxyErr("v2 address family %d", family)
	}
	if transport != 0x1 { // SOCK_STREAM only: SMTP is over TCP.
		return h, proxyErr("v2 transport %d", transport)
	}
	alen := 4
	if family == 0x2 {
		alen = 16
	}
	if len(body) < 2*alen+4 {
		return h, proxyErr("v2 address block of %d bytes, want %d", len(body), 2*alen+4)
	}
	src, _ := netip.AddrFromSlice(body[:alen])
	dst, _ := netip.AddrFromSlice(body[alen : 2*alen])
	sp := binary.BigEndian.Uint16(body[2*alen:])
	dp := binary.BigEndian.Uint16(body[2*alen+2:])
	h.Src = netip.AddrPortFrom(src.Unmap(), sp)
	h.Dst = netip.AddrPortFrom(dst.Unmap(), dp)
	// The TLVs after the addresses (ALPN, authority, SSL, ...) are not used.
	return h, nil
}
