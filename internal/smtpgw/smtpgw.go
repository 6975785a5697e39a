// Package smtpgw implements Portcullis's SMTP listener: the server side of
// RFC 5321 on github.com/emersion/go-smtp, acting as a before-queue filter.
// Each mail transaction is read whole (with hard limits), handed once to a
// Handler, and the Handler's reply is what the client gets; the listener
// itself never answers 250 on its own.
//
// Standards: SMTP RFC 5321 (relay refusal §3.6.2, postmaster §4.5.1, line
// and size limits §4.5.3.1, timeouts §4.5.3.2, bare CR/LF §2.3.8, trace
// fields §4.4), enhanced status codes RFC 3463 and RFC 7372, STARTTLS
// RFC 3207, SIZE RFC 1870, 8BITMIME RFC 6152, SMTPUTF8 RFC 6531, the
// Received "with" keywords of RFC 3848, and the PROXY protocol (HAProxy
// specification, versions 1 and 2) in front of the listener.
package smtpgw

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Handler decides the fate of one mail transaction. Handle is called once
// per transaction, after the whole message was read, from the connection's
// goroutine; it may be called concurrently for different connections. A
// panic in Handle becomes a 451 4.3.0 reply and the session continues.
type Handler interface {
	Handle(ctx context.Context, tx *Transaction) Reply
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, tx *Transaction) Reply

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, tx *Transaction) Reply { return f(ctx, tx) }

// Transaction is one mail transaction as received: envelope, connection
// facts and the raw message.
type Transaction struct {
	// ID identifies the transaction: SessionID, "-", sequence number.
	ID string
	// SessionID identifies the connection.
	SessionID string
	// Listener is the name of the listener that received the message.
	Listener string
	// Hostname is the listener's own name (banner, Received "by").
	Hostname string

	// ClientIP and ClientPort are the peer's address, taken from the PROXY
	// header when the listener trusts it (Proxied).
	ClientIP   netip.Addr
	ClientPort uint16
	// LocalIP and LocalPort are the address the client connected to.
	LocalIP   netip.Addr
	LocalPort uint16
	Proxied   bool

	// HELO is the argument of the client's last HELO/EHLO.
	HELO string
	// TLS describes the session's TLS, e.g. "TLSv1.3 with cipher
	// TLS_AES_128_GCM_SHA256"; empty when the session is plaintext.
	TLS string

	// MailFrom is the reverse-path without angle brackets; "" is the null
	// reverse-path (RFC 5321 §4.5.5).
	MailFrom string
	// Params are the MAIL FROM parameters.
	Params MailParams
	// RcptTo are the accepted forward-paths, in order.
	RcptTo []string

	// Data is the message exactly as received (after dot-unstuffing), with
	// CRLF line endings (bare CR/LF normalised when the listener is so
	// configured).
	Data []byte
	// Normalised is true when bare CR or LF were turned into CRLF.
	Normalised bool
	// ReceivedAt is when the end of the data arrived.
	ReceivedAt time.Time
}

// MailParams are the MAIL FROM parameters the gateway understands.
type MailParams struct {
	Size     int64  // SIZE= (RFC 1870), 0 when not given
	Body     string // BODY= value upper-cased: "7BIT", "8BITMIME" (RFC 6152) or ""
	SMTPUTF8 bool   // SMTPUTF8 (RFC 6531 §3.4)
}

// EnhancedCode is an RFC 3463 enhanced status code; the zero value means
// "derive class.0.0 from the reply code".
type EnhancedCode [3]int

func (e EnhancedCode) String() string {
	return strconv.Itoa(e[0]) + "." + strconv.Itoa(e[1]) + "." + strconv.Itoa(e[2])
}

// Reply is an SMTP reply to the end of DATA.
type Reply struct {
	Code     int
	Enhanced EnhancedCode
	// Text is the human-readable part; "\n" separates the lines of a
	// multi-line reply.
	Text string
}

func (r Reply) String() string {
	return strconv.Itoa(r.Code) + " " + r.Enhanced.String() + " " + r.Text
}

// Common replies.
var (
	ReplyOK = Reply{Code: 250, Enhanced: EnhancedCode{2, 0, 0}, Text: "OK"}
)

// Errors the listener maps to replies with ErrorReply.
var (
	// ErrMessageTooBig: the data exceeded MaxMessageBytes.
	ErrMessageTooBig = errors.New("smtpgw: message too big")
	// ErrHeaderTooBig: the header section exceeded MaxHeaderBytes.
	ErrHeaderTooBig = errors.New("smtpgw: header section too big")
	// ErrLineTooLong: a line exceeded MaxLineLength.
	ErrLineTooLong = errors.New("smtpgw: line too long")
	// ErrBareLineEnding: a bare CR or LF in the data (RFC 5321 §2.3.8).
	ErrBareLineEnding = errors.New("smtpgw: bare CR or LF in message")
	// ErrShuttingDown: the server is draining.
	ErrShuttingDown = errors.New("smtpgw: shutting down")
	// ErrHandlerPanic: the Handler panicked.
	ErrHandlerPanic = errors.New("smtpgw: handler panicked")
	// ErrInvalidReply: the Handler returned a reply that is not a valid
	// final reply.
	ErrInvalidReply = errors.New("smtpgw: handler returned an invalid reply")
)

// ErrorReply is the one place where errors become SMTP replies. The text of
// err is never shown to the peer: known conditions get their RFC reply,
// everything else a generic 451 4.3.0 (RFC 3463 "other or undefined mail
// system status"), so the sender keeps the message and retries. id (a
// transaction or evidence id) is appended so that the peer's report can be
// matched with the logs.
func ErrorReply(err error, id string) Reply {
	var r Reply
	switch {
	case err == nil:
		r = ReplyOK
	case errors.Is(err, ErrMessageTooBig):
		// RFC 1870 §6.2; RFC 3463 X.3.4.
		r = Reply{552, EnhancedCode{5, 3, 4}, "Message size exceeds fixed maximum message size"}
	case errors.Is(err, ErrHeaderTooBig):
		r = Reply{552, EnhancedCode{5, 3, 4}, "Message header section exceeds the size limit"}
	case errors.Is(err, ErrLineTooLong):
		// RFC 5321 §4.5.3.1.6.
		r = Reply{554, EnhancedCode{5, 6, 0}, "Message contains a line that is too long"}
	case errors.Is(err, ErrBareLineEnding):
		// RFC 5321 §2.3.8: CR and LF only as CRLF.
		r = Reply{550, EnhancedCode{5, 6, 0}, "Message contains bare CR or LF, not permitted (RFC 5321 section 2.3.8)"}
	case errors.Is(err, ErrShuttingDown):
		// RFC 5321 §3.8.
		r = Reply{421, EnhancedCode{4, 3, 2}, "Service shutting down, try again later"}
	default:
		r = Reply{451, EnhancedCode{4, 3, 0}, "Local error in processing, try again later"}
	}
	if id != "" && r.Code/100 != 2 {
		r.Text += " [" + id + "]"
	}
	return r
}

// validate returns r made safe to send, or the 451 for an invalid reply.
func (r Reply) validate(id string) (Reply, error) {
	class := r.Code / 100
	if r.Code < 200 || r.Code > 599 || class == 3 {
		return ErrorReply(ErrInvalidReply, id), fmt.Errorf("%w: code %d", ErrInvalidReply, r.Code)
	}
	// RFC 3463 §2: the class of the enhanced code matches the reply's.
	e := r.Enhanced
	if e[0] != class || e[1] < 0 || e[1] > 999 || e[2] < 0 || e[2] > 999 {
		e = EnhancedCode{class, 0, 0}
	}
	text := sanitiseText(r.Text)
	if text == "" {
		switch class {
		case 2:
			text = "OK"
		case 4:
			text = "Try again later"
		default:
			text = "Rejected"
		}
	}
	return Reply{Code: r.Code, Enhanced: e, Text: text}, nil
}

// sanitiseText keeps printable text and "\n" line breaks (RFC 5321 §4.2:
// textstring is HT and printable characters), caps the size.
func sanitiseText(s string) string {
	const maxText = 2000
	var b strings.Builder
	for _, c := range s {
		switch {
		case c == '\n':
			b.WriteByte('\n')
		case c < 0x20 || c == 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteRune(c)
		}
		if b.Len() >= maxText {
			break
		}
	}
	out := strings.Trim(b.String(), "\n")
	if len(out) > maxText {
		out = out[:maxText]
	}
	return out
}

// TLSDescription formats a TLS connection state, e.g. "TLSv1.3 with cipher
// TLS_AES_128_GCM_SHA256"; "" when there is no completed handshake.
func TLSDescription(st *tls.ConnectionState) string {
	if st == nil || !st.HandshakeComplete {
		return ""
	}
	return strings.ReplaceAll(tls.VersionName(st.Version), " ", "v") + " with cipher " + tls.CipherSuiteName(st.CipherSuite)
}

// ReceivedField returns the Received trace field for tx (RFC 5321 §4.4),
// CRLF-terminated, with the "with" protocol of RFC 3848 / RFC 6531 §3.7.3
// (ESMTP, ESMTPS, UTF8SMTP, UTF8SMTPS) and a "for" clause when the
// transaction has a single recipient.
func (tx *Transaction) ReceivedField() string {
	proto := "ESMTP"
	if tx.Params.SMTPUTF8 {
		proto = "UTF8SMTP"
	}
	if tx.TLS != "" {
		proto += "S"
	}
	var b strings.Builder
	b.WriteString("Received: from ")
	b.WriteString(traceToken(tx.HELO))
	b.WriteString(" (")
	b.WriteString(addressLiteral(tx.ClientIP))
	b.WriteString(")\r\n\tby ")
	b.WriteString(traceToken(tx.Hostname))
	b.WriteString(" (Portcullis) with ")
	b.WriteString(proto)
	if tx.TLS != "" {
		b.WriteString(" (")
		b.WriteString(tx.TLS)
		b.WriteString(")")
	}
	b.WriteString(" id ")
	b.WriteString(tx.ID)
	if len(tx.RcptTo) == 1 {
		b.WriteString("\r\n\tfor <")
		b.WriteString(traceToken(tx.RcptTo[0]))
		b.WriteString(">")
	}
	b.WriteString(";\r\n\t")
	at := tx.ReceivedAt
	if at.IsZero() {
		at = time.Now()
	}
	b.WriteString(at.Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	b.WriteString("\r\n")
	return b.String()
}

// traceToken keeps a peer-supplied word from breaking the header field.
func traceToken(s string) string {
	if s == "" {
		return "unknown"
	}
	var b strings.Builder
	for _, c := range s {
		if c <= ' ' || c == 0x7f || c == '(' || c == ')' || c == ';' || c == '<' || c == '>' {
			b.WriteByte('_')
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// addressLiteral formats an IP as an RFC 5321 §4.1.3 address literal.
func addressLiteral(ip netip.Addr) string {
	switch {
	case !ip.IsValid():
		return "unknown"
	case ip.Is4():
		return "[" + ip.String() + "]"
	}
	return "[IPv6:" + ip.WithZone("").String() + "]"
}
