// Package dnstest implements an in-process DNS server for integration
// tests: it serves a dns.Zone on 127.0.0.1 over UDP and TCP on one port,
// speaking the real wire protocol (RFC 1035 §4, RFC 6891 EDNS0, RFC 7766
// TCP), so that a dns.Client, or the portcullis binary, can be tested
// against known data without the network.
//
// The answers are those of dns.Zone.ServeDNS: CNAME chains in the answer
// section, an SOA in the authority section of NXDOMAIN and NODATA answers
// (RFC 2308 §3), UDP answers larger than the client's EDNS0 size (512
// octets without EDNS0) truncated with TC, FaultTimeout never answered and
// FaultServFail answered SERVFAIL.
package dnstest

import (
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"portcullis/internal/dns"
)

// Server is a running test DNS server.
type Server struct {
	addr    string
	queries atomic.Int64
	udp     *mdns.Server
	tcp     *mdns.Server
}

// Serve starts serving z on 127.0.0.1 (UDP and TCP, same port chosen by the
// system) and stops the server in tb.Cleanup. Records and faults added to z
// afterwards are served at once.
func Serve(tb testing.TB, z *dns.Zone) *Server {
	tb.Helper()
	s := &Server{}
	handler := mdns.HandlerFunc(func(w mdns.ResponseWriter, req *mdns.Msg) {
		s.queries.Add(1)
		z.ServeDNS(w, req)
	})
	pc, ln, err := listenPair()
	if err != nil {
		tb.Fatalf("dnstest: %v", err)
	}
	s.addr = pc.LocalAddr().String()
	s.udp = &mdns.Server{PacketConn: pc, Handler: handler}
	s.tcp = &mdns.Server{Listener: ln, Handler: handler,
		ReadTimeout: 5 * time.Second, IdleTimeout: func() time.Duration { return 5 * time.Second }}
	for _, srv := range []*mdns.Server{s.udp, s.tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		errc := make(chan error, 1)
		go func() { errc <- srv.ActivateAndServe() }()
		select {
		case <-started:
		case err := <-errc:
			tb.Fatalf("dnstest: serve: %v", err)
		}
	}
	tb.Cleanup(func() {
		_ = s.udp.Shutdown()
		_ = s.tcp.Shutdown()
	})
	return s
}

// listenPair opens a UDP socket on a free port of 127.0.0.1 and a TCP
// listener on the same port, trying again when the TCP port is taken.
func listenPair() (net.PacketConn, net.Listener, error) {
	var last error
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		last = err
	}
	return nil, nil, errors.Join(errors.New("no port free for both UDP and TCP"), last)
}

// Addr returns the server's "127.0.0.1:port", the same for UDP and TCP.
func (s *Server) Addr() string { return s.addr }

// Queries returns how many queries the server received, over UDP and TCP
// (a truncated UDP answer retried over TCP counts twice), including those
// it did not answer.
func (s *Server) Queries() int64 { return s.queries.Load() }

// Resolver returns a dns.Client asking only this server, with one attempt
// of at most timeout, and no cache.
func (s *Server) Resolver(tb testing.TB, timeout time.Duration) dns.Resolver {
	tb.Helper()
	c, err := dns.NewClient(dns.ClientConfig{Servers: []string{s.addr}, Timeout: timeout, Attempts: 1})
	if err != nil {
		tb.Fatalf("dnstest: %v", err)
	}
	return c
}
