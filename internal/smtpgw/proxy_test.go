package smtpgw

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// proxyV2 builds a version 2 header (for tests and fuzz seeds).
func proxyV2(cmd byte, src, dst netip.AddrPort, tlv []byte) []byte {
	var body []byte
	fam := byte(0x11) // AF_INET, STREAM
	if src.Addr().Is6() {
		fam = 0x21
	}
	if cmd == 0x0 || !src.IsValid() {
		fam = 0x00
	} else {
		body = append(body, src.Addr().AsSlice()...)
		body = append(body, dst.Addr().AsSlice()...)
		body = binary.BigEndian.AppendUint16(body, src.Port())
		body = binary.BigEndian.AppendUint16(body, dst.Port())
	}
	body = append(body, tlv...)
	h := append([]byte{}, proxyV2Sig...)
	h = append(h, 0x20|cmd, fam)
	h = binary.BigEndian.AppendUint16(h, uint16(len(body)))
	return append(h, body...)
}

func proxiedGW(t *testing.T, h Handler, trusted string, mod func(*ListenerConfig)) (*Server, string) {
	return startGW(t, h, func(l *ListenerConfig) {
		l.ProxyProtocol = true
		l.ProxyTrustedCIDRs = []string{trusted}
		l.ProxyHeaderTimeout = 300 * time.Millisecond
		if mod != nil {
			mod(l)
		}
	})
}

func sendRaw(t *testing.T, r *raw) {
	t.Helper()
	r.envelope()
	r.write("Subject: x\r\n\r\nbody\r\n.\r\n")
	if code, msg := r.reply(); code != 250 {
		t.Fatalf("end of data: %d %s", code, msg)
	}
}

func TestProxyTrusted(t *testing.T) {
	v6src := netip.MustParseAddrPort("[2001:db8::1]:50000")
	v6dst := netip.MustParseAddrPort("[2001:db8::25]:25")
	for _, tc := range []struct {
		name     string
		header   []byte
		ip       string
		port     uint16
		local    string
		proxied  bool
		realAddr bool
	}{
		{name: "v1 TCP4", header: []byte("PROXY TCP4 192.0.2.10 198.51.100.1 40000 25\r\n"), ip: "192.0.2.10", port: 40000, local: "198.51.100.1", proxied: true},
		{name: "v1 TCP6", header: []byte("PROXY TCP6 2001:db8::1 2001:db8::25 50000 25\r\n"), ip: "2001:db8::1", port: 50000, local: "2001:db8::25", proxied: true},
		{name: "v1 UNKNOWN", header: []byte("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"), realAddr: true},
		{name: "v2 INET", header: proxyV2(1, netip.MustParseAddrPort("203.0.113.7:1234"), netip.MustParseAddrPort("198.51.100.1:25"), nil), ip: "203.0.113.7", port: 1234, local: "198.51.100.1", proxied: true},
		{name: "v2 INET6 with TLVs", header: proxyV2(1, v6src, v6dst, []byte{0x02, 0x00, 0x03, 'a', 'b', 'c'}), ip: "2001:db8::1", port: 50000, local: "2001:db8::25", proxied: true},
		{name: "v2 LOCAL", header: proxyV2(0, netip.AddrPort{}, netip.AddrPort{}, nil), realAddr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &recorder{}
			_, addr := proxiedGW(t, h, "127.0.0.0/8", nil)
			sendRaw(t, dialRaw(t, addr, tc.header))
			tx := h.all()[0]
			if tc.realAddr {
				if tx.ClientIP != netip.MustParseAddr("127.0.0.1") || tx.Proxied {
					t.Errorf("client %v proxied %v, want the connection's own address", tx.ClientIP, tx.Proxied)
				}
				return
			}
			if tx.ClientIP != netip.MustParseAddr(tc.ip) || tx.ClientPort != tc.port || tx.LocalIP != netip.MustParseAddr(tc.local) || !tx.Proxied {
				t.Errorf("client %v:%d local %v proxied %v", tx.ClientIP, tx.ClientPort, tx.LocalIP, tx.Proxied)
			}
		})
	}
}

func TestProxyUntrustedSource(t *testing.T) {
	h := &recorder{}
	srv, addr := proxiedGW(t, h, "10.0.0.0/8", nil)
	r := dialRaw(t, addr, []byte("PROXY TCP4 192.0.2.10 198.51.100.1 40000 25\r\n"))
	if code, _ := r.reply(); code != 220 {
		t.Fatalf("greeting %d", code)
	}
	// The header is just a bad command from an untrusted peer.
	if code, _ := r.reply(); code/100 != 5 {
		t.Errorf("PROXY line from an untrusted source answered %d", code)
	}
	r.expect(250, "EHLO client.test")
	r.expect(250, "MAIL FROM:<a@example.net>")
	r.expect(250, "RCPT TO:<b@example.org>")
	r.expect(354, "DATA")
	r.write("Subject: x\r\n\r\n.\r\n")
	if code, _ := r.reply(); code != 250 {
		t.Fatal(code)
	}
	if tx := h.all()[0]; tx.ClientIP != netip.MustParseAddr("127.0.0.1") || tx.Proxied {
		t.Errorf("untrusted header was honoured: %v", tx.ClientIP)
	}
	if srv.Stats().Total().ProxyHeaderErrors != 0 {
		t.Error("counted as a proxy error")
	}
}

func TestProxyTrustedBadOrMissingHeader(t *testing.T) {
	srv, addr := proxiedGW(t, &recorder{}, "127.0.0.1/32", nil)
	for _, pre := range [][]byte{
		[]byte("PROXY TCP4 999.0.2.10 198.51.100.1 40000 25\r\n"),
		[]byte("EHLO client.test\r\n"),
		append(append([]byte{}, proxyV2Sig...), 0x21, 0x11, 0x00, 0x02, 0, 0),
		nil, // nothing: the header timeout
	} {
		r := dialRaw(t, addr, pre)
		r.c.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 64)
		if n, err := r.c.Read(buf); err == nil {
			t.Errorf("preamble %q: got %q, want the connection closed without a greeting", pre, buf[:n])
		}
	}
	if got := srv.Stats().Total().ProxyHeaderErrors; got != 4 {
		t.Errorf("ProxyHeaderErrors = %d, want 4", got)
	}
}

func TestProxyPerClientLimit(t *testing.T) {
	_, addr := proxiedGW(t, &recorder{}, "127.0.0.0/8", func(l *ListenerConfig) { l.MaxConnectionsPerIP = 1 })
	r1 := dialRaw(t, addr, []byte("PROXY TCP4 192.0.2.10 198.51.100.1 40000 25\r\n"))
	if code, _ := r1.reply(); code != 220 {
		t.Fatal(code)
	}
	r2 := dialRaw(t, addr, []byte("PROXY TCP4 192.0.2.10 198.51.100.1 40001 25\r\n"))
	if code, msg := r2.reply(); code != 421 {
		t.Errorf("second connection of the same client: %d %s", code, msg)
	}
	// Another client through the same proxy is welcome.
	r3 := dialRaw(t, addr, []byte("PROXY TCP4 192.0.2.11 198.51.100.1 40000 25\r\n"))
	if code, _ := r3.reply(); code != 220 {
		t.Errorf("other client: %d", code)
	}
}

func TestParseProxyHeaders(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ok   bool
		src  string
		used int // bytes consumed
	}{
		{in: "PROXY TCP4 192.0.2.1 192.0.2.2 1 65535\r\nEHLO", ok: true, src: "192.0.2.1:1", used: 40},
		{in: "PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 0 25\r\n", ok: true, src: "192.0.2.1:0"},
		{in: "PROXY UNKNOWN\r\n", ok: true},
		{in: "PROXY TCP4 192.0.2.1 192.0.2.2 01 25\r\n"},      // leading zero
		{in: "PROXY TCP4 192.0.2.1 192.0.2.2 65536 25\r\n"},   // port range
		{in: "PROXY TCP4 2001:db8::1 192.0.2.2 1 25\r\n"},     // family mismatch
		{in: "PROXY TCP6 fe80::1%eth0 2001:db8::2 1 25\r\n"},  // zone
		{in: "PROXY TCP4  192.0.2.1 192.0.2.2 1 25\r\n"},      // double space
		{in: "PROXY TCP4 192.0.2.1 192.0.2.2 1 25\n"},         // LF only
		{in: "PROXY UDP4 192.0.2.1 192.0.2.2 1 25\r\n"},       // protocol
		{in: "PROXY TCP4 192.0.2.1 192.0.2.2 1 25 extra\r\n"}, // fields
		{in: "PROXY " + strings.Repeat("A", 120) + "\r\n"},    // too long
		{in: "PROXY\r\n"},  // short
		{in: "HELO x\r\n"}, // not PROXY
		{in: string(proxyV2Sig) + "\x21\x11\x00\x0c" + "\xc0\x00\x02\x01\xc0\x00\x02\x02\x00\x19\x00\x19", ok: true, src: "192.0.2.1:25"},
		{in: string(proxyV2Sig) + "\x31\x11\x00\x00"},                              // version 3
		{in: string(proxyV2Sig) + "\x22\x11\x00\x00"},                              // command 2
		{in: string(proxyV2Sig) + "\x21\x12\x00\x0c" + strings.Repeat("\x01", 12)}, // DGRAM
		{in: string(proxyV2Sig) + "\x21\x11\x00\x0b" + strings.Repeat("\x01", 11)}, // short block
		{in: string(proxyV2Sig) + "\x21\x11\xff\xff"},                              // over the cap
		{in: string(proxyV2Sig) + "\x21\x31\x00\x10" + strings.Repeat("\x01", 16)}, // short unix block
		{in: string(proxyV2Sig) + "\x21\x00\x00\x00", ok: true},                    // UNSPEC
	} {
		br := bytes.NewReader([]byte(tc.in))
		h, err := readProxyHeader(br)
		if !tc.ok {
			if err == nil || !errors.Is(err, ErrProxyHeader) {
				t.Errorf("%q: accepted (%+v), want ErrProxyHeader", tc.in, h)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if tc.src == "" && !h.Local || tc.src != "" && h.Src.String() != tc.src {
			t.Errorf("%q: %+v, want src %q", tc.in, h, tc.src)
		}
		used := len(tc.in) - br.Len()
		if h.Len != used || tc.used != 0 && used != tc.used {
			t.Errorf("%q: consumed %d bytes, header says %d", tc.in, used, h.Len)
		}
	}
}

func FuzzProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.1 192.0.2.2 1 25\r\n"))
	f.Add([]byte("PROXY TCP6 2001:db8::1 2001:db8::2 65535 25\r\nEHLO x\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(proxyV2(1, netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("192.0.2.2:25"), []byte{1, 0, 2, 'h', '2'}))
	f.Add(proxyV2(1, netip.MustParseAddrPort("[2001:db8::1]:1"), netip.MustParseAddrPort("[2001:db8::2]:25"), nil))
	f.Add(proxyV2(0, netip.AddrPort{}, netip.AddrPort{}, nil))
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bytes.NewReader(in)
		h, err := readProxyHeader(br)
		used := len(in) - br.Len()
		if err != nil {
			if !errors.Is(err, ErrProxyHeader) {
				t.Fatalf("error %v does not wrap ErrProxyHeader", err)
			}
			return
		}
		if used != h.Len {
			t.Fatalf("consumed %d bytes, header length %d", used, h.Len)
		}
		if h.Version == 1 && used > proxyV1MaxLen || h.Version == 2 && used > 16+proxyV2MaxBody {
			t.Fatalf("header of %d bytes", used)
		}
		if !h.Local && (!h.Src.IsValid() || !h.Dst.IsValid() || h.Src.Addr().Is4In6()) {
			t.Fatalf("non-local header without usable addresses: %+v", h)
		}
		if h.Version == 1 && !h.Local {
			// What was parsed prints back to an equivalent header.
			// A TCP6 header may carry IPv4-mapped addresses, which are
			// unmapped: print both in the family the line needs.
			proto, src, dst := "TCP4", h.Src.Addr().String(), h.Dst.Addr().String()
			if h.Src.Addr().Is6() || h.Dst.Addr().Is6() {
				proto = "TCP6"
				src = netip.AddrFrom16(h.Src.Addr().As16()).String()
				dst = netip.AddrFrom16(h.Dst.Addr().As16()).String()
			}
			line := "PROXY " + proto + " " + src + " " + dst + " " +
				itoa(h.Src.Port()) + " " + itoa(h.Dst.Port()) + "\r\n"
			h2, err := readProxyHeader(strings.NewReader(line))
			if err != nil || h2.Src != h.Src || h2.Dst != h.Dst {
				t.Fatalf("round trip of %q: %+v, %v", line, h2, err)
			}
		}
	})
}

func itoa(p uint16) string {
	var b [5]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + p%10)
		p /= 10
		if p == 0 {
			return string(b[i:])
		}
	}
}
