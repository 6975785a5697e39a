package smtpgw

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// Connection states, for a draining shutdown.
const (
	connIdle    int32 = iota // no transaction: may be closed at shutdown
	connTx                   // between MAIL and the reply to the data
	connClosing              // being closed by the server
)

// listener is one named listener: the TCP accept loop with its limits and
// PROXY handling in front of a go-smtp Server.
type listener struct {
	srv     *Server
	cfg     ListenerConfig
	raw     net.Listener
	smtp    *smtp.Server
	certs   *certReloader
	trusted []netip.Prefix
	domains map[string]bool

	accepted chan net.Conn
	done     chan struct{}
	doneOnce sync.Once
	wg       sync.WaitGroup // accept loop and connection set-up goroutines

	mu    sync.Mutex
	conns map[*trackedConn]struct{}
	perIP map[netip.Prefix]int
	total int

	nAccepted, nRejected, nProxyErr              atomic.Uint64
	nTx, nAcc, nDefer, nReject, nPanic, nRefused atomic.Uint64
	nRcptDenied                                  atomic.Uint64
}

func newListener(s *Server, cfg ListenerConfig) (*listener, error) {
	l := &listener{
		srv:      s,
		cfg:      cfg,
		accepted: make(chan net.Conn),
		done:     make(chan struct{}),
		conns:    make(map[*trackedConn]struct{}),
		perIP:    make(map[netip.Prefix]int),
		domains:  make(map[string]bool),
	}
	l.trusted, _ = parseCIDRs(cfg.ProxyTrustedCIDRs)
	for _, d := range cfg.AcceptDomains {
		n, _ := normaliseDomain(d)
		l.domains[n] = true
	}
	gs := smtp.NewServer(backend{l})
	gs.Domain = cfg.Hostname
	gs.MaxMessageBytes = cfg.MaxMessageBytes
	gs.MaxRecipients = cfg.MaxRecipients
	gs.MaxLineLength = cfg.MaxLineLength
	gs.ReadTimeout = cfg.ReadTimeout
	gs.WriteTimeout = cfg.WriteTimeout
	gs.EnableSMTPUTF8 = !cfg.DisableSMTPUTF8
	gs.ErrorLog = smtpLogger{log: s.log, name: cfg.Name}
	if cfg.TLSCertFile != "" {
		c, err := newCertReloader(cfg.TLSCertFile, cfg.TLSKeyFile, cfg.TLSReloadInterval, s.log)
		if err != nil {
			return nil, err
		}
		l.certs = c
		gs.TLSConfig = newTLSConfig(c)
	}
	l.smtp = gs
	return l, nil
}

func (l *listener) serve() {
	l.wg.Add(1)
	go l.acceptLoop()
	go func() {
		if err := l.smtp.Serve(chanListener{l}); err != nil {
			select {
			case <-l.done:
			default:
				l.srv.log.Error("smtpgw: listener stopped", "listener", l.cfg.Name, "err", err)
			}
		}
	}()
}

func (l *listener) stopAccepting() {
	l.raw.Close()
	l.doneOnce.Do(func() { close(l.done) })
}

func (l *listener) acceptLoop() {
	defer l.wg.Done()
	var delay time.Duration
	for {
		raw, err := l.raw.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off.
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else if delay *= 2; delay > time.Second {
				delay = time.Second
			}
			l.srv.log.Warn("smtpgw: accept failed", "listener", l.cfg.Name, "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		l.nAccepted.Add(1)
		l.mu.Lock()
		over := l.total >= l.cfg.MaxConnections
		if !over {
			l.total++
		}
		l.mu.Unlock()
		if over {
			l.nRejected.Add(1)
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				l.refuse(raw, "Too many connections, try again later")
			}()
			continue
		}
		l.wg.Add(1)
		go l.setup(raw)
	}
}

// refuse answers 421 4.7.0 and closes (RFC 5321 §3.1 allows a 421 greeting
// when the service is not available).
func (l *listener) refuse(raw net.Conn, text string) {
	_ = raw.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = raw.Write([]byte("421 4.7.0 " + l.cfg.Hostname + " " + text + "\r\n"))
	raw.Close()
}

func (l *listener) releaseTotal() {
	l.mu.Lock()
	l.total--
	l.mu.Unlock()
}

// setup reads the PROXY header when the peer is a trusted proxy, applies
// the per-client limit and hands the connection to go-smtp.
func (l *listener) setup(raw net.Conn) {
	defer l.wg.Done()
	remote := addrPortOf(raw.RemoteAddr())
	local := addrPortOf(raw.LocalAddr())
	proxied := false
	if l.cfg.ProxyProtocol && l.isTrusted(remote.Addr()) {
		_ = raw.SetReadDeadline(time.Now().Add(l.cfg.ProxyHeaderTimeout))
		// A shutdown does not wait for a slow proxy.
		read := make(chan struct{})
		go func() {
			select {
			case <-l.done:
				_ = raw.SetReadDeadline(time.Now())
			case <-read:
			}
		}()
		h, err := readProxyHeader(raw)
		close(read)
		_ = raw.SetReadDeadline(time.Time{})
		if err != nil {
			l.nProxyErr.Add(1)
			l.srv.log.Info("smtpgw: bad PROXY header from trusted proxy", "listener", l.cfg.Name, "proxy", remote.String(), "err", err)
			raw.Close()
			l.releaseTotal()
			return
		}
		if !h.Local {
			remote, local, proxied = h.Src, h.Dst, true
		}
	}
	key := clientKey(remote.Addr())
	tc := &trackedConn{Conn: raw, l: l, remote: remote, local: local, proxied: proxied, key: key, id: newID()}
	l.mu.Lock()
	closing := false
	select {
	case <-l.done:
		closing = true
	default:
	}
	over := l.perIP[key] >= l.cfg.MaxConnectionsPerIP
	if !closing && !over {
		l.perIP[key]++
		l.conns[tc] = struct{}{}
	}
	l.mu.Unlock()
	switch {
	case closing:
		raw.Close()
		l.releaseTotal()
		return
	case over:
		l.nRejected.Add(1)
		l.refuse(raw, "Too many connections from your address, try again later")
		l.releaseTotal()
		return
	}
	select {
	case l.accepted <- tc:
	case <-l.done:
		tc.Close()
	}
}

func (l *listener) isTrusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range l.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// closeIdle closes the connections without a transaction in flight and
// returns how many connections remain open.
func (l *listener) closeIdle() int {
	l.mu.Lock()
	conns := make([]*trackedConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	open := 0
	for _, c := range conns {
		if c.state.CompareAndSwap(connIdle, connClosing) {
			c.goodbye()
			continue
		}
		open++
	}
	return open
}

func (l *listener) closeAll() {
	l.mu.Lock()
	conns := make([]*trackedConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		c.state.Store(connClosing)
		c.Close()
	}
}

func (l *listener) stats() ListenerStats {
	l.mu.Lock()
	active := int64(len(l.conns))
	l.mu.Unlock()
	return ListenerStats{
		Name:                l.cfg.Name,
		ConnectionsAccepted: l.nAccepted.Load(),
		ConnectionsActive:   active,
		ConnectionsRejected: l.nRejected.Load(),
		ProxyHeaderErrors:   l.nProxyErr.Load(),
		Transactions:        l.nTx.Load(),
		Accepted:            l.nAcc.Load(),
		Deferred:            l.nDefer.Load(),
		Rejected:            l.nReject.Load(),
		HandlerPanics:       l.nPanic.Load(),
		MessagesRefused:     l.nRefused.Load(),
		RcptDenied:          l.nRcptDenied.Load(),
	}
}

// chanListener hands the connections set up by the accept loop to go-smtp.
type chanListener struct{ l *listener }

func (c chanListener) Accept() (net.Conn, error) {
	select {
	case conn := <-c.l.accepted:
		return conn, nil
	case <-c.l.done:
		return nil, net.ErrClosed
	}
}

func (c chanListener) Close() error {
	c.l.doneOnce.Do(func() { close(c.l.done) })
	return nil
}

func (c chanListener) Addr() net.Addr { return c.l.raw.Addr() }

// trackedConn is an accepted connection with the client address (from the
// PROXY header when trusted), its limits bookkeeping and its state.
type trackedConn struct {
	net.Conn
	l       *listener
	remote  netip.AddrPort
	local   netip.AddrPort
	proxied bool
	key     netip.Prefix
	id      string
	seq     atomic.Uint64

	state     atomic.Int32
	tls       atomic.Bool // the session is inside TLS: no plaintext goodbye
	closeOnce sync.Once
}

func (c *trackedConn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.remote) }
func (c *trackedConn) LocalAddr() net.Addr  { return net.TCPAddrFromAddrPort(c.local) }

func (c *trackedConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		err = c.Conn.Close()
		l := c.l
		l.mu.Lock()
		if _, ok := l.conns[c]; ok {
			delete(l.conns, c)
			if l.perIP[c.key]--; l.perIP[c.key] <= 0 {
				delete(l.perIP, c.key)
			}
			l.total--
		}
		l.mu.Unlock()
	})
	return err
}

// goodbye tells an idle plaintext client that the service closes (RFC 5321
// §3.8) and closes the connection.
func (c *trackedConn) goodbye() {
	if !c.tls.Load() {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.Conn.Write([]byte("421 4.3.2 " + c.l.cfg.Hostname + " Service shutting down\r\n"))
	}
	c.Close()
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	if a != nil {
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
	}
	return netip.AddrPort{}
}

// clientKey is what the per-client connection limit counts: the IPv4
// address, or the IPv6 /64 (one site usually holds a whole /64).
func clientKey(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if !a.IsValid() {
		return netip.Prefix{}
	}
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.WithZone("").Prefix(64)
	return p
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns a random session id (16 base32 characters, 80 bits).
func newID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return strings.ToLower(idEncoding.EncodeToString(b[:]))
}
