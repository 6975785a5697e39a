package relay

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// TLSMode says when the SMTP/LMTP client uses STARTTLS (RFC 3207).
type TLSMode uint8

const (
	// TLSOpportunistic (the default) uses STARTTLS when the downstream
	// offers it, without authenticating the certificate (opportunistic
	// security, RFC 7435 §1.3); when the handshake fails, the delivery is
	// tried again once in plaintext on a new connection.
	TLSOpportunistic TLSMode = iota
	// TLSRequired refuses to send a message unless STARTTLS succeeds and the
	// certificate verifies against RootCAs/CAFile (the system pool when
	// neither is set) for TLSServerName; anything else is a temporary
	// failure.
	TLSRequired
	// TLSOff never uses STARTTLS.
	TLSOff
)

func (m TLSMode) String() string {
	switch m {
	case TLSRequired:
		return "required"
	case TLSOff:
		return "off"
	default:
		return "opportunistic"
	}
}

// ParseTLSMode parses "opportunistic" (or ""), "required" or "off".
func ParseTLSMode(s string) (TLSMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "opportunistic", "may":
		return TLSOpportunistic, nil
	case "required", "require", "encrypt":
		return TLSRequired, nil
	case "off", "none", "disabled":
		return TLSOff, nil
	}
	return 0, fmt.Errorf("relay: unknown TLS mode %q (want opportunistic, required or off)", s)
}

// SMTPConfig configures an SMTP or LMTP Deliverer. The zero value of every
// field but Hosts means its documented default.
type SMTPConfig struct {
	// Hosts are the downstream servers, tried in order while the delivery
	// fails temporarily: "host:port" for TCP, "unix:/path" or "/path" for a
	// Unix socket (usual for LMTP).
	Hosts []string
	// LMTP speaks LMTP (RFC 2033) instead of SMTP: LHLO, and one reply per
	// recipient after DATA.
	LMTP bool
	// LocalName is the name sent in EHLO/LHLO. Default: os.Hostname().
	LocalName string

	// ConnectTimeout bounds the TCP connect. Default 10s.
	ConnectTimeout time.Duration
	// CommandTimeout bounds each command's reply, the greeting and STARTTLS.
	// Default 60s (RFC 5321 §4.5.3.2 allows more; the sender is waiting).
	CommandTimeout time.Duration
	// DataTimeout bounds writing the message and waiting for the reply to
	// the final dot. Default 3m, under the sender's 10 minutes
	// (RFC 5321 §4.5.3.2.6).
	DataTimeout time.Duration

	// TLS is the STARTTLS mode. Default TLSOpportunistic.
	TLS TLSMode
	// TLSServerName is the name the certificate must carry in TLSRequired
	// mode. Default: the host part of the address being tried.
	TLSServerName string
	// RootCAs verifies the downstream certificate in TLSRequired mode.
	RootCAs *x509.CertPool
	// CAFile is a PEM file of CA certificates added to RootCAs.
	CAFile string
	// InsecureSkipVerify disables certificate verification in TLSRequired
	// mode (labs only). Default false.
	InsecureSkipVerify bool

	// MaxIdlePerHost is how many idle connections are kept per host for
	// reuse. Default 4; negative disables reuse (one connection per
	// message).
	MaxIdlePerHost int
	// IdleTimeout is how long an idle connection is kept. Default 30s.
	IdleTimeout time.Duration
	// MaxMessagesPerConn closes a connection after this many transactions.
	// Default 100.
	MaxMessagesPerConn int

	// Logger receives debug logs. Default: slog.Default().
	Logger *slog.Logger
}

func (c *SMTPConfig) setDefaults() error {
	if len(c.Hosts) == 0 {
		return errors.New("relay: no downstream hosts configured")
	}
	for _, h := range c.Hosts {
		network, addr := splitHost(h)
		if network == "tcp" {
			if _, _, err := net.SplitHostPort(addr); err != nil {
				return fmt.Errorf("relay: downstream host %q: want host:port, unix:/path or /path", h)
			}
		} else if addr == "" {
			return fmt.Errorf("relay: downstream host %q: empty socket path", h)
		}
	}
	if c.LocalName == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		c.LocalName = h
	}
	if strings.ContainsAny(c.LocalName, " \t\r\n") {
		return fmt.Errorf("relay: local name %q contains white space", c.LocalName)
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.CommandTimeout <= 0 {
		c.CommandTimeout = 60 * time.Second
	}
	if c.DataTimeout <= 0 {
		c.DataTimeout = 3 * time.Minute
	}
	if c.TLS > TLSOff {
		return fmt.Errorf("relay: unknown TLS mode %d", c.TLS)
	}
	if c.MaxIdlePerHost == 0 {
		c.MaxIdlePerHost = 4
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 30 * time.Second
	}
	if c.MaxMessagesPerConn <= 0 {
		c.MaxMessagesPerConn = 100
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// splitHost returns the network and address of a Hosts entry.
func splitHost(h string) (network, addr string) {
	if p, ok := strings.CutPrefix(h, "unix:"); ok {
		return "unix", p
	}
	if strings.HasPrefix(h, "/") {
		return "unix", h
	}
	return "tcp", h
}

// SMTPStats counts the client's connections.
type SMTPStats struct {
	Dials        uint64 // connections opened (sessions set up)
	DialFailures uint64 // connections that could not be opened
	Reused       uint64 // transactions run on an idle pooled connection
	StaleRetries uint64 // pooled connections found dead and replaced
	TLS          uint64 // sessions that went through STARTTLS
	Idle         int    // idle connections now in the pool
}

// SMTP delivers over SMTP or LMTP with github.com/emersion/go-smtp, keeping
// a small pool of idle connections per host. It is safe for concurrent use.
type SMTP struct {
	cfg     SMTPConfig
	roots   *x509.CertPool
	mu      sync.Mutex
	idle    map[string][]*smtpConn
	closed  bool
	stop    chan struct{}
	janitor sync.WaitGroup

	dials, dialFailures, reused, stale, tlsCount atomic.Uint64
}

var _ Deliverer = (*SMTP)(nil)

// NewSMTP validates cfg and returns an SMTP/LMTP Deliverer. Close releases
// its pooled connections.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	d := &SMTP{cfg: cfg, idle: make(map[string][]*smtpConn), stop: make(chan struct{})}
	d.roots = cfg.RootCAs
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("relay: reading CA file: %w", err)
		}
		if d.roots == nil {
			d.roots = x509.NewCertPool()
		} else {
			d.roots = d.roots.Clone()
		}
		if !d.roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("relay: CA file %s holds no PEM certificate", cfg.CAFile)
		}
	}
	if cfg.MaxIdlePerHost > 0 {
		d.janitor.Add(1)
		go d.reapIdle()
	}
	return d, nil
}

// Stats returns the connection counters.
func (d *SMTP) Stats() SMTPStats {
	d.mu.Lock()
	n := 0
	for _, l := range d.idle {
		n += len(l)
	}
	d.mu.Unlock()
	return SMTPStats{
		Dials: d.dials.Load(), DialFailures: d.dialFailures.Load(), Reused: d.reused.Load(),
		StaleRetries: d.stale.Load(), TLS: d.tlsCount.Load(), Idle: n,
	}
}

// Close closes the idle connections (sending QUIT) and stops pooling;
// deliveries in progress finish and then close their connection.
func (d *SMTP) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	var all []*smtpConn
	for h, l := range d.idle {
		all = append(all, l...)
		delete(d.idle, h)
	}
	d.mu.Unlock()
	close(d.stop)
	d.janitor.Wait()
	for _, c := range all {
		c.quit()
	}
	return nil
}

// Deliver sends msg to the first host that gives a non-temporary answer for
// each recipient; recipients that fail temporarily are tried on the next
// host.
func (d *SMTP) Deliver(ctx context.Context, msg Message) Result {
	res := Result{Rcpts: make([]RcptResult, len(msg.Rcpts))}
	uniq, index := uniqueRcpts(msg.Rcpts)
	results := make([]RcptResult, len(uniq))
	var pending []int
	for i, r := range uniq {
		results[i].Rcpt = r
		switch {
		case !validAddress(r) || r == "":
			err := permErr(ErrBadAddress, "recipient %q", r)
			results[i] = RcptResult{Rcpt: r, Status: StatusPermanent, Reply: localReply(StatusPermanent, ErrBadAddress), Err: err}
		case !validAddress(msg.MailFrom):
			err := permErr(ErrBadAddress, "sender %q", msg.MailFrom)
			results[i] = RcptResult{Rcpt: r, Status: StatusPermanent, Reply: Reply{Code: 553, Enhanced: EnhancedCode{5, 1, 7}, Text: "Bad sender address syntax"}, Err: err}
		default:
			results[i].Err = tempErr(ErrUnreachable, "no downstream host tried")
			results[i].Reply = localReply(StatusTemporary, ErrUnreachable)
			pending = append(pending, i)
		}
	}
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		for _, i := range pending {
			results[i].Err = tempErr(ErrDelivererClosed, "shutting down")
			results[i].Reply = localReply(StatusTemporary, ErrDelivererClosed)
		}
		pending = nil
	}
	if err := ctx.Err(); err != nil {
		for _, i := range pending {
			results[i].Err = tempErr(ErrTimeout, "before delivery: %v", err)
			results[i].Reply = localReply(StatusTemporary, ErrTimeout)
		}
		pending = nil
	}
	for _, host := range d.cfg.Hosts {
		if len(pending) == 0 || ctx.Err() != nil {
			break
		}
		rcpts := make([]string, len(pending))
		for j, i := range pending {
			rcpts[j] = uniq[i]
		}
		rs, tlsDesc := d.deliverHost(ctx, host, msg, rcpts)
		res.Host, res.TLS = host, tlsDesc
		var still []int
		for j, i := range pending {
			results[i] = rs[j]
			if rs[j].Status == StatusTemporary {
				still = append(still, i)
			}
		}
		pending = still
	}
	for i, j := range index {
		res.Rcpts[i] = results[j]
		res.Rcpts[i].Rcpt = msg.Rcpts[i]
	}
	summarise(&res)
	return res
}

// deliverHost runs one transaction on host, on a pooled connection when one
// is idle. A pooled connection that turns out to be dead before anything
// was sent is replaced by a fresh one.
func (d *SMTP) deliverHost(ctx context.Context, host string, msg Message, rcpts []string) ([]RcptResult, string) {
	for {
		c, reused, err := d.get(ctx, host)
		if err != nil {
			return allRcpts(rcpts, StatusTemporary, localReply(StatusTemporary, err), err), ""
		}
		if reused {
			d.reused.Add(1)
		}
		rs, keep, stale := d.transact(ctx, c, msg, rcpts, reused)
		if stale {
			d.stale.Add(1)
			c.close()
			continue
		}
		if keep {
			d.put(c)
		} else {
			c.close()
		}
		return rs, c.tls
	}
}

func allRcpts(rcpts []string, st Status, rep Reply, err error) []RcptResult {
	rs := make([]RcptResult, len(rcpts))
	for i, r := range rcpts {
		rs[i] = RcptResult{Rcpt: r, Status: st, Reply: rep, Err: err}
	}
	return rs
}

// smtpConn is one open session with a downstream host.
type smtpConn struct {
	host      string
	raw       net.Conn // the TCP/Unix connection under any TLS
	c         *smtp.Client
	tls       string
	maxSize   int64
	eightBit  bool
	utf8      bool
	uses      int
	idleSince time.Time
}

func (c *smtpConn) close() {
	_ = c.raw.SetDeadline(time.Now().Add(time.Second))
	_ = c.c.Close()
}

// quit ends the session politely (RFC 5321 §4.1.1.10) and closes it.
func (c *smtpConn) quit() {
	_ = c.raw.SetDeadline(time.Now().Add(2 * time.Second))
	if err := c.c.Quit(); err != nil {
		_ = c.c.Close()
	}
}

func (d *SMTP) get(ctx context.Context, host string) (*smtpConn, bool, error) {
	now := time.Now()
	var expired []*smtpConn
	d.mu.Lock()
	l := d.idle[host]
	var found *smtpConn
	for len(l) > 0 {
		c := l[len(l)-1]
		l = l[:len(l)-1]
		if now.Sub(c.idleSince) > d.cfg.IdleTimeout {
			expired = append(expired, c)
			continue
		}
		found = c
		break
	}
	d.idle[host] = l
	d.mu.Unlock()
	for _, c := range expired {
		go c.quit()
	}
	if found != nil {
		return found, true, nil
	}
	c, err := d.dial(ctx, host, d.cfg.TLS)
	if err != nil {
		d.dialFailures.Add(1)
		return nil, false, err
	}
	d.dials.Add(1)
	return c, false, nil
}

func (d *SMTP) put(c *smtpConn) {
	c.uses++
	c.idleSince = time.Now()
	d.mu.Lock()
	if d.closed || d.cfg.MaxIdlePerHost < 0 || c.uses >= d.cfg.MaxMessagesPerConn || len(d.idle[c.host]) >= d.cfg.MaxIdlePerHost {
		d.mu.Unlock()
		go c.quit()
		return
	}
	d.idle[c.host] = append(d.idle[c.host], c)
	d.mu.Unlock()
}

// reapIdle closes connections idle for longer than IdleTimeout.
func (d *SMTP) reapIdle() {
	defer d.janitor.Done()
	every := d.cfg.IdleTimeout / 2
	if every < 50*time.Millisecond {
		every = 50 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case now := <-t.C:
			var expired []*smtpConn
			d.mu.Lock()
			for h, l := range d.idle {
				kept := l[:0]
				for _, c := range l {
					if now.Sub(c.idleSince) > d.cfg.IdleTimeout {
						expired = append(expired, c)
					} else {
						kept = append(kept, c)
					}
				}
				d.idle[h] = kept
			}
			d.mu.Unlock()
			for _, c := range expired {
				c.quit()
			}
		}
	}
}

// greetedConn replays a greeting in front of a connection whose real
// greeting was already read, so that a go-smtp Client can be created on a
// session that went through STARTTLS here.
type greetedConn struct {
	net.Conn
	pending []byte
}

func (g *greetedConn) Read(p []byte) (int, error) {
	if len(g.pending) > 0 {
		n := copy(p, g.pending)
		g.pending = g.pending[n:]
		return n, nil
	}
	return g.Conn.Read(p)
}

func (d *SMTP) newClient(conn net.Conn) *smtp.Client {
	var c *smtp.Client
	if d.cfg.LMTP {
		c = smtp.NewClientLMTP(conn)
	} else {
		c = smtp.NewClient(conn)
	}
	c.CommandTimeout = d.cfg.CommandTimeout
	c.SubmissionTimeout = d.cfg.DataTimeout
	return c
}

func (d *SMTP) tlsConfig(host string) *tls.Config {
	name := d.cfg.TLSServerName
	if name == "" {
		name, _, _ = net.SplitHostPort(host)
	}
	conf := &tls.Config{ServerName: name, RootCAs: d.roots, MinVersion: tls.VersionTLS12}
	if d.cfg.TLS == TLSOpportunistic || d.cfg.InsecureSkipVerify {
		// RFC 7435 §1.3: opportunistic security encrypts without
		// authenticating the peer.
		conf.InsecureSkipVerify = true
	}
	return conf
}

// dial opens a session with host: connect, read the greeting, EHLO/LHLO
// with LocalName, STARTTLS per mode (RFC 3207 §4; EHLO again afterwards,
// §4.2), and read the extensions the transaction needs.
func (d *SMTP) dial(ctx context.Context, host string, mode TLSMode) (*smtpConn, error) {
	network, addr := splitHost(host)
	dialer := net.Dialer{Timeout: d.cfg.ConnectTimeout}
	raw, err := dialer.DialContext(ctx, network, addr)
	if err != nil {
		if ctx.Err() != nil || isTimeout(err) {
			return nil, tempErr(ErrUnreachable, "connect %s: timed out", host)
		}
		return nil, tempErr(ErrUnreachable, "connect %s: %v", host, err)
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()

	sc := &smtpConn{host: host, raw: raw}
	var session net.Conn = raw
	if mode != TLSOff {
		_ = raw.SetDeadline(time.Now().Add(d.cfg.CommandTimeout))
		tp := textproto.NewConn(raw)
		if _, _, err := tp.ReadResponse(220); err != nil {
			raw.Close()
			return nil, sessionErr(host, "greeting", err)
		}
		verb := "EHLO"
		if d.cfg.LMTP {
			verb = "LHLO"
		}
		offered := false
		if id, err := tp.Cmd("%s %s", verb, d.cfg.LocalName); err == nil {
			tp.StartResponse(id)
			_, msg, rerr := tp.ReadResponse(250)
			tp.EndResponse(id)
			var te *textproto.Error
			if rerr != nil && !errors.As(rerr, &te) {
				raw.Close()
				return nil, sessionErr(host, verb, rerr)
			}
			offered = rerr == nil && hasExtension(msg, "STARTTLS")
		} else {
			raw.Close()
			return nil, sessionErr(host, verb, err)
		}
		if !offered && mode == TLSRequired {
			quitRaw(tp)
			raw.Close()
			return nil, tempErr(ErrTLSUnavailable, "%s", host)
		}
		if offered {
			id, err := tp.Cmd("STARTTLS")
			if err != nil {
				raw.Close()
				return nil, sessionErr(host, "STARTTLS", err)
			}
			tp.StartResponse(id)
			_, _, rerr := tp.ReadResponse(220)
			tp.EndResponse(id)
			var te *textproto.Error
			switch {
			case rerr == nil:
				tc := tls.Client(raw, d.tlsConfig(host))
				hctx, cancel := context.WithTimeout(ctx, d.cfg.CommandTimeout)
				herr := tc.HandshakeContext(hctx)
				cancel()
				if herr != nil {
					raw.Close()
					if mode == TLSRequired {
						return nil, tempErr(ErrTLSHandshake, "%s: %v", host, herr)
					}
					// Opportunistic: a failed handshake leaves the session
					// unusable; try once more without TLS.
					d.cfg.Logger.Debug("relay: STARTTLS handshake failed, retrying in plaintext", "host", host, "err", herr)
					return d.dial(ctx, host, TLSOff)
				}
				st := tc.ConnectionState()
				sc.tls = TLSDescription(&st)
				d.tlsCount.Add(1)
				session = tc
			case errors.As(rerr, &te) && mode != TLSRequired:
				// The server refused STARTTLS (e.g. 454): carry on in
				// plaintext.
			default:
				raw.Close()
				if mode == TLSRequired {
					return nil, tempErr(ErrTLSHandshake, "%s: STARTTLS refused: %v", host, rerr)
				}
				return nil, sessionErr(host, "STARTTLS", rerr)
			}
		}
		_ = raw.SetDeadline(time.Time{})
		session = &greetedConn{Conn: session, pending: []byte("220 resumed\r\n")}
	}

	sc.c = d.newClient(session)
	if err := sc.c.Hello(d.cfg.LocalName); err != nil {
		sc.c.Close()
		return nil, sessionErr(host, "EHLO", err)
	}
	if ok, v := sc.c.Extension("SIZE"); ok && v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
			sc.maxSize = n
		}
	}
	sc.eightBit, _ = sc.c.Extension("8BITMIME")
	sc.utf8, _ = sc.c.Extension("SMTPUTF8")
	return sc, nil
}

func quitRaw(tp *textproto.Conn) {
	if id, err := tp.Cmd("QUIT"); err == nil {
		tp.StartResponse(id)
		_, _, _ = tp.ReadResponse(221)
		tp.EndResponse(id)
	}
}

// hasExtension reports whether an EHLO reply lists keyword (RFC 5321
// §4.1.1.1: the first line is the greeting, each further line one
// extension, keywords case-insensitive).
func hasExtension(msg, keyword string) bool {
	lines := strings.Split(msg, "\n")
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) > 0 && strings.EqualFold(f[0], keyword) {
			return true
		}
	}
	return false
}

// sessionErr classifies a failure while opening a session: always
// temporary, since the downstream did not get to judge the message.
func sessionErr(host, step string, err error) error {
	var te *textproto.Error
	var se *smtp.SMTPError
	switch {
	case errors.As(err, &te):
		return tempErr(ErrProtocol, "%s: %s: %d %s", host, step, te.Code, te.Msg)
	case errors.As(err, &se):
		return tempErr(ErrProtocol, "%s: %s: %d %s", host, step, se.Code, se.Message)
	case isTimeout(err):
		return tempErr(ErrTimeout, "%s: %s", host, step)
	}
	return tempErr(ErrConnectionLost, "%s: %s: %v", host, step, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// TLSDescription formats a TLS connection state for logs and trace fields,
// e.g. "TLSv1.3 with cipher TLS_AES_128_GCM_SHA256".
func TLSDescription(st *tls.ConnectionState) string {
	if st == nil || !st.HandshakeComplete {
		return ""
	}
	v := strings.ReplaceAll(tls.VersionName(st.Version), " ", "v")
	return v + " with cipher " + tls.CipherSuiteName(st.CipherSuite)
}

// outcome classifies the reply or error of one command.
type outcome struct {
	st    Status
	rep   Reply
	err   error
	alive bool // the session can go on
}

func (d *SMTP) classify(ctx context.Context, host, step string, err error) outcome {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		rep := Reply{Code: se.Code, Enhanced: EnhancedCode(se.EnhancedCode), Text: se.Message, Remote: true}
		if rep.Enhanced[0] != se.Code/100 {
			rep.Enhanced = EnhancedCode{}
		}
		switch se.Code / 100 {
		case 5:
			return outcome{StatusPermanent, rep, permErr(ErrRejected, "%s: %s: %s", host, step, rep), true}
		case 4:
			// 421: the server is closing the session (RFC 5321 §3.8).
			return outcome{StatusTemporary, rep, tempErr(ErrRejected, "%s: %s: %s", host, step, rep), se.Code != 421}
		}
		// An unexpected code (e.g. 2xx where 354 was due): the session is
		// out of step.
		return outcome{StatusTemporary, localReply(StatusTemporary, ErrProtocol), tempErr(ErrProtocol, "%s: %s: unexpected reply %s", host, step, rep), false}
	}
	kind := ErrConnectionLost
	if isTimeout(err) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		kind = ErrTimeout
	}
	return outcome{StatusTemporary, localReply(StatusTemporary, kind), tempErr(kind, "%s: %s: %v", host, step, err), false}
}

// transact runs one mail transaction. keep says the session may be reused;
// stale says a reused session was found dead before anything was sent.
func (d *SMTP) transact(ctx context.Context, sc *smtpConn, msg Message, rcpts []string, reused bool) (rs []RcptResult, keep, stale bool) {
	stop := context.AfterFunc(ctx, func() { sc.raw.Close() })
	defer stop()

	rs = make([]RcptResult, len(rcpts))
	for i, r := range rcpts {
		rs[i].Rcpt = r
	}

	// RFC 6531 §3.4: non-ASCII addresses, or UTF-8 header fields the
	// sender declared, need SMTPUTF8.
	asciiEnvelope := isASCII(msg.MailFrom)
	for _, r := range rcpts {
		asciiEnvelope = asciiEnvelope && isASCII(r)
	}
	needUTF8 := !asciiEnvelope || msg.SMTPUTF8 && has8Bit(headerSection(msg.Data))
	if needUTF8 && !sc.utf8 {
		// RFC 6531 §3.2: a relay must not downgrade; the message is
		// refused (X.6.7 for addresses, X.6.9 for UTF-8 header fields).
		rep := localReply(StatusPermanent, ErrNeedsSMTPUTF8)
		if asciiEnvelope {
			rep = Reply{Code: 554, Enhanced: EnhancedCode{5, 6, 9}, Text: "UTF-8 header fields not accepted by the destination"}
		}
		return allRcpts(rcpts, StatusPermanent, rep, permErr(ErrNeedsSMTPUTF8, "%s", sc.host)), true, false
	}
	// RFC 6152 §3: 8-bit content only to a server that offers 8BITMIME
	// (SMTPUTF8 implies it, RFC 6531 §3.1).
	if !needUTF8 && !sc.eightBit && has8Bit(msg.Data) {
		return allRcpts(rcpts, StatusPermanent, localReply(StatusPermanent, ErrNeeds8BitMIME), permErr(ErrNeeds8BitMIME, "%s", sc.host)), true, false
	}
	// RFC 1870 §6.1: do not send what the server declared it will refuse.
	if sc.maxSize > 0 && int64(len(msg.Data)) > sc.maxSize {
		return allRcpts(rcpts, StatusPermanent, localReply(StatusPermanent, ErrMessageTooBig),
			permErr(ErrMessageTooBig, "%s: %d > %d bytes", sc.host, len(msg.Data), sc.maxSize)), true, false
	}

	// RFC 1870 §3: SIZE declares the size; go-smtp adds BODY=8BITMIME when
	// offered (RFC 6152 §2).
	if err := sc.c.Mail(msg.MailFrom, &smtp.MailOptions{Size: int64(len(msg.Data)), UTF8: needUTF8}); err != nil {
		o := d.classify(ctx, sc.host, "MAIL", err)
		if reused && !o.alive && ctx.Err() == nil {
			// The pooled session died while idle (closed by the server,
			// often after a 421 idle timeout). MAIL has no side effect.
			return nil, false, true
		}
		for i := range rs {
			rs[i].Status, rs[i].Reply, rs[i].Err = o.st, o.rep, o.err
		}
		return rs, o.alive && d.reset(sc), false
	}

	var accepted []int
	alive := true
	for i, r := range rcpts {
		if !alive {
			rs[i].Status, rs[i].Reply = StatusTemporary, localReply(StatusTemporary, ErrConnectionLost)
			rs[i].Err = tempErr(ErrConnectionLost, "%s: RCPT not sent", sc.host)
			continue
		}
		if err := sc.c.Rcpt(r, nil); err != nil {
			o := d.classify(ctx, sc.host, "RCPT", err)
			rs[i].Status, rs[i].Reply, rs[i].Err = o.st, o.rep, o.err
			alive = o.alive
			continue
		}
		accepted = append(accepted, i)
	}
	if !alive {
		// Accepted recipients got nothing: the transaction is void.
		for _, i := range accepted {
			rs[i].Status, rs[i].Reply = StatusTemporary, localReply(StatusTemporary, ErrConnectionLost)
			rs[i].Err = tempErr(ErrConnectionLost, "%s: session ended before DATA", sc.host)
		}
		return rs, false, false
	}
	if len(accepted) == 0 {
		return rs, d.reset(sc), false
	}
	setAll := func(o outcome) {
		for _, i := range accepted {
			rs[i].Status, rs[i].Reply, rs[i].Err = o.st, o.rep, o.err
		}
	}

	w, err := sc.c.Data()
	if err != nil {
		o := d.classify(ctx, sc.host, "DATA", err)
		setAll(o)
		return rs, o.alive && d.reset(sc), false
	}
	_ = sc.raw.SetWriteDeadline(time.Now().Add(d.cfg.DataTimeout))
	if _, err := w.Write(msg.Data); err != nil {
		setAll(d.classify(ctx, sc.host, "DATA content", err))
		return rs, false, false
	}
	if len(msg.Data) > 0 && !endsWithNewline(msg.Data) {
		// The DotWriter needs the last line ended before the final dot.
		if _, err := io.WriteString(w, "\r\n"); err != nil {
			setAll(d.classify(ctx, sc.host, "DATA content", err))
			return rs, false, false
		}
	}

	if !d.cfg.LMTP {
		resp, err := w.CloseWithResponse()
		_ = sc.raw.SetWriteDeadline(time.Time{})
		if err != nil {
			o := d.classify(ctx, sc.host, "end of DATA", err)
			setAll(o)
			return rs, o.alive, false
		}
		rep := successReply(resp.StatusText)
		for _, i := range accepted {
			rs[i].Status, rs[i].Reply, rs[i].Err = StatusAccepted, rep, nil
		}
		return rs, true, false
	}

	// RFC 2033 §4.2: one reply per accepted recipient, in RCPT order.
	resp, err := w.CloseWithLMTPResponse()
	_ = sc.raw.SetWriteDeadline(time.Time{})
	var lmtpErr smtp.LMTPDataError
	errors.As(err, &lmtpErr)
	_, onlyReplies := err.(smtp.LMTPDataError)
	broken := err != nil && !onlyReplies
	for _, i := range accepted {
		r := rcpts[i]
		switch {
		case resp[r] != nil:
			rs[i].Status, rs[i].Reply, rs[i].Err = StatusAccepted, successReply(resp[r].StatusText), nil
		case lmtpErr[r] != nil:
			o := d.classify(ctx, sc.host, "end of DATA for <"+r+">", lmtpErr[r])
			rs[i].Status, rs[i].Reply, rs[i].Err = o.st, o.rep, o.err
			if !o.alive {
				broken = true
			}
		default:
			// No reply for this recipient: the session was cut.
			cause := err
			if cause == nil {
				cause = io.ErrUnexpectedEOF
			}
			o := d.classify(ctx, sc.host, "end of DATA for <"+r+">", cause)
			if o.st != StatusTemporary || o.alive {
				o = outcome{StatusTemporary, localReply(StatusTemporary, ErrConnectionLost), tempErr(ErrConnectionLost, "%s: no reply for <%s>", sc.host, r), false}
			}
			rs[i].Status, rs[i].Reply, rs[i].Err = o.st, o.rep, o.err
			broken = true
		}
	}
	return rs, !broken, false
}

// reset sends RSET after an aborted transaction (RFC 5321 §4.1.1.5) and
// reports whether the session is still usable.
func (d *SMTP) reset(sc *smtpConn) bool {
	return sc.c.Reset() == nil
}

func endsWithNewline(b []byte) bool { return len(b) > 0 && b[len(b)-1] == '\n' }

// successReply parses the text of a 2xx reply, which go-smtp returns with
// its enhanced code still in front (RFC 2034 §4).
func successReply(text string) Reply {
	rep := Reply{Code: 250, Text: text, Remote: true}
	first, rest, _ := strings.Cut(text, " ")
	parts := strings.Split(first, ".")
	if len(parts) == 3 && parts[0] == "2" {
		var e EnhancedCode
		ok := true
		for i, p := range parts {
			n, err := strconv.Atoi(p)
			if err != nil || n < 0 || n > 999 {
				ok = false
				break
			}
			e[i] = n
		}
		if ok {
			rep.Enhanced, rep.Text = e, rest
		}
	}
	return rep
}
