package smtpgw

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// backend creates a session per EHLO/HELO (go-smtp starts a new one after
// STARTTLS).
type backend struct{ l *listener }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	tc := trackedOf(c.Conn())
	if tc == nil {
		return nil, smtpErr(ErrorReply(errors.New("untracked connection"), ""))
	}
	if b.l.srv.draining.Load() {
		return nil, smtpErr(ErrorReply(ErrShuttingDown, ""))
	}
	s := &session{l: b.l, conn: c, tc: tc, helo: c.Hostname()}
	if st, ok := c.TLSConnectionState(); ok {
		tc.tls.Store(true)
		s.tls = TLSDescription(&st)
	}
	return s, nil
}

// trackedOf finds the trackedConn under a go-smtp connection (possibly
// wrapped in TLS).
func trackedOf(c net.Conn) *trackedConn {
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	tc, _ := c.(*trackedConn)
	return tc
}

type session struct {
	l    *listener
	conn *smtp.Conn
	tc   *trackedConn
	helo string
	tls  string

	from   string
	params MailParams
	rcpts  []string
}

func smtpErr(r Reply) *smtp.SMTPError {
	return &smtp.SMTPError{Code: r.Code, EnhancedCode: smtp.EnhancedCode(r.Enhanced), Message: r.Text}
}

func (s *session) Reset() {
	s.from, s.params, s.rcpts = "", MailParams{}, nil
	s.tc.state.CompareAndSwap(connTx, connIdle)
}

func (s *session) Logout() error {
	s.tc.state.CompareAndSwap(connTx, connIdle)
	return nil
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if s.l.srv.draining.Load() {
		return smtpErr(ErrorReply(ErrShuttingDown, ""))
	}
	if s.l.cfg.RequireTLS && s.tls == "" {
		// RFC 3207 §4.
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Must issue a STARTTLS command first"}
	}
	if !isASCII(from) && (opts == nil || !opts.UTF8) {
		return errNonASCII
	}
	if !s.tc.state.CompareAndSwap(connIdle, connTx) && s.tc.state.Load() != connTx {
		return smtpErr(ErrorReply(ErrShuttingDown, ""))
	}
	s.from, s.rcpts = from, nil
	s.params = MailParams{}
	if opts != nil {
		s.params = MailParams{Size: opts.Size, Body: strings.ToUpper(string(opts.Body)), SMTPUTF8: opts.UTF8}
	}
	return nil
}

// errNonASCII refuses a non-ASCII address in a transaction without the
// SMTPUTF8 parameter (RFC 6531 §3.4 requires it; §3.5: 553 5.6.7).
var errNonASCII = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7}, Message: "Non-ASCII address without SMTPUTF8"}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if !isASCII(to) && !s.params.SMTPUTF8 {
		return errNonASCII
	}
	if !s.l.acceptsRcpt(to) {
		s.l.nRcptDenied.Add(1)
		// RFC 5321 §3.6.2 (no open relay); RFC 7372 / RFC 3463 X.7.1.
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relay not permitted"}
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

// acceptsRcpt applies AcceptDomains, with postmaster at the listener's own
// host name always accepted (RFC 5321 §4.5.1).
func (l *listener) acceptsRcpt(to string) bool {
	i := strings.LastIndexByte(to, '@')
	if i < 0 {
		// go-smtp only passes local@domain; a bare "Postmaster" never
		// reaches here.
		return false
	}
	local, domain := to[:i], to[i+1:]
	d, err := normaliseDomain(domain)
	if err != nil {
		return false
	}
	if l.domains[d] {
		return true
	}
	if strings.EqualFold(local, "postmaster") {
		if h, err := normaliseDomain(l.cfg.Hostname); err == nil && h == d {
			return true
		}
	}
	return false
}

func (s *session) Data(r io.Reader) error {
	l := s.l
	txID := s.tc.id + "-" + strconv.FormatUint(s.tc.seq.Add(1), 10)
	_ = s.conn.Conn().SetReadDeadline(time.Now().Add(l.cfg.DataTimeout))
	data, err := readData(r, l.cfg.MaxMessageBytes, s.params.Size)
	if err == nil {
		data, err = checkData(data, l.cfg)
	}
	if err != nil {
		l.nRefused.Add(1)
		l.srv.log.Info("smtpgw: message refused before analysis", "listener", l.cfg.Name, "tx", txID, "client", s.tc.remote.String(), "err", err)
		return smtpErr(ErrorReply(err, txID))
	}
	tx := &Transaction{
		ID:         txID,
		SessionID:  s.tc.id,
		Listener:   l.cfg.Name,
		Hostname:   l.cfg.Hostname,
		ClientIP:   s.tc.remote.Addr(),
		ClientPort: s.tc.remote.Port(),
		LocalIP:    s.tc.local.Addr(),
		LocalPort:  s.tc.local.Port(),
		Proxied:    s.tc.proxied,
		HELO:       s.helo,
		TLS:        s.tls,
		MailFrom:   s.from,
		Params:     s.params,
		RcptTo:     append([]string(nil), s.rcpts...),
		Data:       data.bytes,
		Normalised: data.normalised,
		ReceivedAt: time.Now(),
	}
	reply := s.handle(tx)
	switch reply.Code / 100 {
	case 2:
		l.nAcc.Add(1)
	case 4:
		l.nDefer.Add(1)
	default:
		l.nReject.Add(1)
	}
	// go-smtp sends a *SMTPError's code and text as they are, 250 too.
	return smtpErr(reply)
}

// handle calls the Handler once, turning a panic or an invalid reply into
// 451 4.3.0: the gateway never answers 250 for a message it has not
// placed.
func (s *session) handle(tx *Transaction) (reply Reply) {
	l := s.l
	l.nTx.Add(1)
	defer func() {
		if p := recover(); p != nil {
			l.nPanic.Add(1)
			l.srv.log.Error("smtpgw: handler panicked", "listener", l.cfg.Name, "tx", tx.ID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			reply = ErrorReply(ErrHandlerPanic, tx.ID)
		}
	}()
	ctx, cancel := context.WithTimeout(l.srv.baseCtx, l.cfg.HandlerTimeout)
	defer cancel()
	r, err := l.srv.handler.Handle(ctx, tx).validate(tx.ID)
	if err != nil {
		l.srv.log.Error("smtpgw: handler reply invalid", "listener", l.cfg.Name, "tx", tx.ID, "err", err)
	}
	return r
}

type message struct {
	bytes      []byte
	normalised bool
}

// readData reads the message through go-smtp's reader (which stops at max
// bytes with ErrDataTooLarge), mapping its errors.
func readData(r io.Reader, max, sizeHint int64) (message, error) {
	var buf bytes.Buffer
	hint := int64(16 << 10)
	if sizeHint > 0 {
		hint = sizeHint + 1024
	}
	if hint > max+1 {
		hint = max + 1
	}
	buf.Grow(int(hint))
	_, err := buf.ReadFrom(io.LimitReader(r, max+1))
	switch {
	case errors.Is(err, smtp.ErrDataTooLarge), err == nil && int64(buf.Len()) > max:
		return message{}, ErrMessageTooBig
	case errors.Is(err, smtp.ErrTooLongLine):
		return message{}, ErrLineTooLong
	case err != nil:
		return message{}, fmt.Errorf("reading data: %w", err)
	}
	return message{bytes: buf.Bytes()}, nil
}

// checkData applies the line-ending rule, the line-length limit (again:
// go-smtp lifts it for BDAT chunks, RFC 3030 keeps it for non-binary
// content) and the header-size limit.
func checkData(m message, cfg ListenerConfig) (message, error) {
	if longestLine(m.bytes) > cfg.MaxLineLength {
		return m, ErrLineTooLong
	}
	if hasBareLineEnding(m.bytes) {
		if cfg.BareLineEndings != BareLineNormalise {
			return m, ErrBareLineEnding
		}
		m.bytes, m.normalised = normaliseLineEndings(m.bytes), true
	}
	if headerLen(m.bytes) > cfg.MaxHeaderBytes {
		return m, ErrHeaderTooBig
	}
	return m, nil
}

// hasBareLineEnding reports a CR not followed by LF or an LF not preceded
// by CR (RFC 5321 §2.3.8).
func hasBareLineEnding(b []byte) bool {
	lf := 0
	for off := 0; ; {
		i := bytes.IndexByte(b[off:], '\n')
		if i < 0 {
			break
		}
		p := off + i
		if p == 0 || b[p-1] != '\r' {
			return true
		}
		lf++
		off = p + 1
	}
	// Every LF has its CR: any further CR is bare.
	return bytes.Count(b, []byte{'\r'}) != lf
}

// normaliseLineEndings turns bare CR and bare LF into CRLF.
func normaliseLineEndings(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/32)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '\r':
			out = append(out, '\r', '\n')
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
		case '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	return out
}

// longestLine returns the length of the longest line, its line ending
// included (RFC 5321 §4.5.3.1.6 counts the CRLF).
func longestLine(b []byte) int {
	longest := 0
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return max(longest, len(b))
		}
		longest = max(longest, i+1)
		b = b[i+1:]
	}
	return longest
}

// headerLen is the size of the header section: the bytes before the empty
// line that ends it (RFC 5322 §2.1), or the whole message without one.
func headerLen(b []byte) int {
	if bytes.HasPrefix(b, []byte("\r\n")) {
		return 0
	}
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		return i + 2
	}
	return len(b)
}
