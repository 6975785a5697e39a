package milter

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	gomilter "github.com/d--j/go-milter"

	"portcullis/internal/pipeline"
)

// session is the milter of one MTA connection: one SMTP session, possibly
// several messages, possibly (Postfix) several SMTP sessions in turn.
type session struct {
	srv     *Server
	version uint32

	// Connection facts, kept across the messages of the SMTP session.
	clientIP   netip.Addr
	clientPort uint16
	clientName string
	helo       string
	tls        string

	// The current message.
	mailFrom  string
	smtpUTF8  bool
	rcpts     []string
	authUser  string
	queueID   string
	buf       bytes.Buffer
	tooBig    bool
	tooMany   bool
	badName   bool
	inHeader  bool
	sawHeader bool
}

var _ gomilter.Milter = (*session)(nil)

func newSession(s *Server, version uint32) *session {
	return &session{srv: s, version: version}
}

// NewConnection implements gomilter.Milter.
func (ss *session) NewConnection(m gomilter.Modifier) error {
	ss.resetConnection()
	ss.srv.cfg.Logger.Debug("milter: MTA connected", "milter_id", m.MilterId(), "version", m.Version(),
		"actions", m.Actions().String(), "protocol", m.Protocol().String())
	return nil
}

func (ss *session) resetConnection() {
	ss.clientIP, ss.clientPort, ss.clientName, ss.helo, ss.tls = netip.Addr{}, 0, "", "", ""
	ss.resetMessage()
}

func (ss *session) resetMessage() {
	ss.mailFrom, ss.smtpUTF8, ss.rcpts, ss.authUser, ss.queueID = "", false, nil, "", ""
	ss.tooBig, ss.tooMany, ss.badName, ss.inHeader, ss.sawHeader = false, false, false, false, false
	if ss.buf.Cap() > 1<<20 {
		ss.buf = bytes.Buffer{} // do not keep a large buffer per idle connection
	}
	ss.buf.Reset()
}

// Connect implements gomilter.Milter: the client's address, port and name
// (the MTA's verified reverse name, or "unknown").
func (ss *session) Connect(host, family string, port uint16, addr string, m gomilter.Modifier) (*gomilter.Response, error) {
	ss.resetConnection()
	if family == "tcp4" || family == "tcp6" {
		if ip, err := netip.ParseAddr(addr); err == nil {
			ss.clientIP = ip.Unmap()
		}
	}
	if !ss.clientIP.IsValid() {
		// The macro is the fallback (an MTA that does not send the
		// address with the event, or sends a family the event cannot
		// carry).
		if ip, err := netip.ParseAddr(strings.Trim(m.Get(gomilter.MacroClientAddr), "[]")); err == nil {
			ss.clientIP = ip.Unmap()
		}
	}
	ss.clientPort = port
	ss.clientName = host
	if ss.clientName == "" {
		ss.clientName = m.Get(gomilter.MacroClientName)
	}
	return gomilter.RespContinue, nil
}

// Helo implements gomilter.Milter. The TLS macros are those of the
// session's STARTTLS, when the MTA has them by now.
func (ss *session) Helo(name string, m gomilter.Modifier) (*gomilter.Response, error) {
	ss.helo = name
	ss.tls = tlsDescription(m)
	return gomilter.RespContinue, nil
}

// tlsDescription formats the TLS macros like the SMTP listener does, e.g.
// "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384"; "" for plaintext.
func tlsDescription(m gomilter.Macros) string {
	version := m.Get(gomilter.MacroTlsVersion)
	cipher := m.Get(gomilter.MacroCipher)
	switch {
	case version == "" && cipher == "":
		return ""
	case cipher == "":
		return version
	case version == "":
		return "cipher " + cipher
	}
	return version + " with cipher " + cipher
}

// MailFrom implements gomilter.Milter: a new message starts.
func (ss *session) MailFrom(from, esmtpArgs string, m gomilter.Modifier) (*gomilter.Response, error) {
	ss.resetMessage()
	ss.mailFrom = from
	if from == "" {
		// Some MTAs send "<>" or nothing for the null reverse-path; the
		// macro agrees with the event otherwise.
		ss.mailFrom = gomilter.RemoveAngle(m.Get(gomilter.MacroMailAddr))
	}
	if ss.mailFrom == "<>" {
		ss.mailFrom = ""
	}
	for _, arg := range strings.Fields(esmtpArgs) {
		if strings.EqualFold(arg, "SMTPUTF8") { // RFC 6531 §3.4
			ss.smtpUTF8 = true
		}
	}
	ss.authUser = m.Get(gomilter.MacroAuthAuthen)
	ss.queueID = m.Get(gomilter.MacroQueueId)
	if ss.tls == "" {
		ss.tls = tlsDescription(m)
	}
	return gomilter.RespContinue, nil
}

// RcptTo implements gomilter.Milter.
func (ss *session) RcptTo(rcptTo, _ string, m gomilter.Modifier) (*gomilter.Response, error) {
	if rcptTo == "" {
		rcptTo = gomilter.RemoveAngle(m.Get(gomilter.MacroRcptAddr))
	}
	if len(ss.rcpts) >= ss.srv.cfg.MaxRecipients {
		ss.tooMany = true
	} else if rcptTo != "" {
		ss.rcpts = append(ss.rcpts, rcptTo)
	}
	if id := m.Get(gomilter.MacroQueueId); id != "" {
		ss.queueID = id
	}
	return gomilter.RespContinue, nil
}

// Data implements gomilter.Milter (not sent when the MTA honours
// SMFIP_NODATA).
func (ss *session) Data(gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

// Header implements gomilter.Milter: the fields are written back as the
// MTA has them, "name:value" and CRLF. With SMFIP_HDR_LEADSPC negotiated
// the value is exactly what followed the colon; without it the MTA ate one
// space after the colon, which is put back.
func (ss *session) Header(name, value string, m gomilter.Modifier) (*gomilter.Response, error) {
	ss.inHeader, ss.sawHeader = true, true
	if ss.tooBig {
		return gomilter.RespContinue, nil
	}
	if m.Protocol()&gomilter.OptHeaderLeadingSpace == 0 {
		value = " " + value
	}
	if !ss.fits(len(name) + 1 + len(value) + 2 + strings.Count(value, "\n")*2) {
		return gomilter.RespContinue, nil
	}
	if !validName(name) {
		// No MTA passes such a field on; it cannot be written back
		// without changing the structure of the header.
		ss.badName = true
		return gomilter.RespContinue, nil
	}
	ss.buf.WriteString(name)
	ss.buf.WriteByte(':')
	writeValue(&ss.buf, value)
	ss.buf.WriteString("\r\n")
	return gomilter.RespContinue, nil
}

// validName reports whether name is a field name of RFC 5322 §2.2:
// printable US-ASCII but the colon.
func validName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

// writeValue writes a field value whose lines the milter protocol separates
// with LF (Postfix) or CRLF: each line break is written as CRLF, and a line
// that does not start with white space gets a space, so that a value can
// only ever continue its own field (RFC 5322 §2.2.3 folding): it cannot end
// the header section or start a field of its own. A lone CR stays as it is.
func writeValue(b *bytes.Buffer, s string) {
	for {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			b.WriteString(s)
			return
		}
		line := strings.TrimSuffix(s[:i], "\r")
		b.WriteString(line)
		b.WriteString("\r\n")
		s = s[i+1:]
		if s == "" || (s[0] != ' ' && s[0] != '\t') {
			b.WriteByte(' ')
		}
	}
}

// Headers implements gomilter.Milter: the end of the header section.
func (ss *session) Headers(gomilter.Modifier) (*gomilter.Response, error) {
	ss.inHeader = false
	if ss.fits(2) {
		ss.buf.WriteString("\r\n")
	}
	return gomilter.RespContinue, nil
}

// BodyChunk implements gomilter.Milter. The MTA sends the body with CRLF
// line endings, as it would deliver it; the bytes are kept as they are
// (the analysis reads a bare LF as CRLF).
func (ss *session) BodyChunk(chunk []byte, _ gomilter.Modifier) (*gomilter.Response, error) {
	if ss.tooBig {
		return gomilter.RespContinue, nil
	}
	if !ss.fits(len(chunk)) {
		return gomilter.RespContinue, nil
	}
	ss.buf.Write(chunk)
	return gomilter.RespContinue, nil
}

// fits reports whether n more bytes stay within MaxMessageBytes; once they
// do not, the message is marked too big and the buffer released.
func (ss *session) fits(n int) bool {
	if int64(ss.buf.Len())+int64(n) > ss.srv.cfg.MaxMessageBytes {
		ss.tooBig = true
		ss.buf = bytes.Buffer{}
		return false
	}
	return true
}

// Abort implements gomilter.Milter: the message ended without an end of
// message (RSET, a refused transaction, or after our answer).
func (ss *session) Abort(gomilter.Modifier) error {
	ss.resetMessage()
	return nil
}

// Unknown implements gomilter.Milter.
func (ss *session) Unknown(string, gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

// Cleanup implements gomilter.Milter.
func (ss *session) Cleanup(gomilter.Modifier) { ss.resetConnection() }

// EndOfMessage implements gomilter.Milter: the message is complete; the
// pipeline decides and the Outcome is applied.
func (ss *session) EndOfMessage(m gomilter.Modifier) (resp *gomilter.Response, err error) {
	cfg := &ss.srv.cfg
	defer ss.resetMessage()
	defer func() {
		if r := recover(); r != nil {
			cfg.Logger.Error("milter: panic", "queue_id", ss.queueID, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			resp, err = internalError(), nil
		}
	}()
	if id := m.Get(gomilter.MacroQueueId); id != "" {
		ss.queueID = id
	}
	switch {
	case ss.tooBig:
		cfg.Logger.Info("milter: message too big", "queue_id", ss.queueID, "limit", cfg.MaxMessageBytes)
		// RFC 1870 §6.2; RFC 3463 X.3.4.
		return gomilter.RejectWithCodeAndReason(552, "5.3.4 Message size exceeds fixed maximum message size")
	case ss.badName:
		// RFC 5322 §2.2; RFC 3463 X.6.0 (other media error).
		return gomilter.RejectWithCodeAndReason(554, "5.6.0 Malformed header field name")
	case ss.tooMany:
		// RFC 5321 §4.5.3.1.10; RFC 3463 X.5.3.
		return gomilter.RejectWithCodeAndReason(452, "4.5.3 Too many recipients")
	case ss.authUser != "" && cfg.Authenticated == AuthenticatedAccept:
		cfg.Logger.Debug("milter: authenticated submission accepted unchecked", "queue_id", ss.queueID, "user", ss.authUser)
		return gomilter.RespAccept, nil
	}
	if !ss.sawHeader && ss.buf.Len() == 0 {
		// No header event and no end-of-header event: an MTA that did
		// not send the message. Nothing to decide on; fail closed.
		cfg.Logger.Error("milter: end of message without the message", "queue_id", ss.queueID)
		return internalError(), nil
	}
	if ss.inHeader {
		// The MTA sent no end-of-header event (SMFIP_NOEOH).
		ss.buf.WriteString("\r\n")
	}

	tx := &pipeline.Transaction{
		Listener:   cfg.Listener,
		Path:       pipeline.PathMilter,
		ReceivedAt: time.Now(),
		ClientIP:   ss.clientIP,
		ClientPort: ss.clientPort,
		HELO:       ss.helo,
		TLS:        ss.tls,
		MailFrom:   ss.mailFrom,
		RcptTo:     append([]string(nil), ss.rcpts...),
		SMTPUTF8:   ss.smtpUTF8,
		QueueID:    ss.queueID,
		Message:    bytes.Clone(ss.buf.Bytes()),
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	stop := ss.startProgress(m)
	out := ss.srv.proc.Process(ctx, tx)
	stop()
	return ss.apply(&out, m)
}

// startProgress sends SMFIR_PROGRESS every ProgressInterval until the
// returned function is called (and returns only once no progress packet
// can be written any more: the answer must not interleave with one).
func (ss *session) startProgress(m gomilter.Modifier) (stop func()) {
	every := ss.srv.cfg.ProgressInterval
	if every <= 0 || ss.version < 6 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := m.Progress(); err != nil {
					return
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
