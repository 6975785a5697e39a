// Package relay implements the downstream delivery of Portcullis: one
// message, already accepted for delivery by the policy, is handed to the
// organisation's mailbox server over SMTP (RFC 5321) or LMTP (RFC 2033), or
// written into Maildir directories on the local disk.
//
// The gateway has no queue of its own. It answers 250 to the sending MTA only
// after a Deliverer reported the message accepted, so a Result classifies
// every outcome as accepted, temporary (the gateway answers 4xx and the
// sender retries) or permanent (the gateway passes the downstream's 5xx
// back). Anything that goes wrong on the way — an unreachable host, a
// timeout, a connection cut in the middle of DATA, a TLS handshake that fails
// when TLS is required — is temporary.
//
// Standards: SMTP RFC 5321 (replies §4.2, timeouts §4.5.3.2, trace fields
// §4.4), LMTP RFC 2033 (one reply per recipient after DATA), STARTTLS
// RFC 3207, opportunistic security RFC 7435, SIZE RFC 1870, 8BITMIME
// RFC 6152, SMTPUTF8 RFC 6531, enhanced status codes RFC 3463, and the
// Maildir layout of D. J. Bernstein's maildir(5).
package relay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Deliverer delivers one message downstream. Deliver never panics on bad
// input and always returns one RcptResult per recipient of msg, in order.
type Deliverer interface {
	Deliver(ctx context.Context, msg Message) Result
}

// Message is one message to deliver.
type Message struct {
	// MailFrom is the reverse-path without angle brackets; "" is the null
	// reverse-path (RFC 5321 §4.5.5).
	MailFrom string
	// Rcpts are the forward-paths without angle brackets. Duplicates are
	// delivered once; each position still gets its own RcptResult.
	Rcpts []string
	// Data is the whole message (header and body) with CRLF line endings.
	Data []byte
	// SMTPUTF8 records that the sender asked for SMTPUTF8 (RFC 6531 §3.4):
	// the message may carry UTF-8 in its header fields.
	SMTPUTF8 bool
}

// Status classifies the outcome of a delivery. The zero value is
// StatusTemporary, so an unset status never reads as delivered.
type Status uint8

const (
	// StatusTemporary: not delivered; the sender should retry (4xx).
	StatusTemporary Status = iota
	// StatusAccepted: the downstream accepted responsibility for the
	// message (2xx after DATA), or the Maildir file is durable.
	StatusAccepted
	// StatusPermanent: refused for good (5xx); retrying cannot help.
	StatusPermanent
)

func (s Status) String() string {
	switch s {
	case StatusAccepted:
		return "accepted"
	case StatusPermanent:
		return "permanent"
	default:
		return "temporary"
	}
}

// EnhancedCode is an RFC 3463 enhanced status code (class.subject.detail);
// the zero value means none.
type EnhancedCode [3]int

func (e EnhancedCode) String() string {
	if e == (EnhancedCode{}) {
		return ""
	}
	return strconv.Itoa(e[0]) + "." + strconv.Itoa(e[1]) + "." + strconv.Itoa(e[2])
}

// Reply is an SMTP reply: the downstream's own (Remote) or one made up
// locally for a failure that had no reply (a refused connection, a
// timeout, a message the downstream cannot take).
type Reply struct {
	Code     int
	Enhanced EnhancedCode
	Text     string
	// Remote is true when the reply was received from the downstream, so
	// its code and text may be passed back to the sender as they are.
	Remote bool
}

func (r Reply) String() string {
	if r.Code == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(strconv.Itoa(r.Code))
	if e := r.Enhanced.String(); e != "" {
		b.WriteByte(' ')
		b.WriteString(e)
	}
	if r.Text != "" {
		b.WriteByte(' ')
		b.WriteString(r.Text)
	}
	return b.String()
}

// RcptResult is the outcome for one recipient.
type RcptResult struct {
	Rcpt   string
	Status Status
	Reply  Reply
	// Err is set when the recipient was not accepted; it wraps ErrTemporary
	// or ErrPermanent.
	Err error
}

// Result is the outcome of one delivery.
type Result struct {
	// Status is the overall outcome:
	//   - accepted when every recipient was accepted, or when some were
	//     accepted and the rest refused permanently (see Partial): asking
	//     the sender to retry would deliver the accepted ones twice and
	//     could never succeed for the others;
	//   - temporary when any recipient failed temporarily (a retry of the
	//     whole message may duplicate it for the recipients already
	//     accepted: duplication is preferred to loss);
	//   - permanent when every recipient was refused permanently.
	Status Status
	// Rcpts has one entry per Message.Rcpts, in the same order.
	Rcpts []RcptResult
	// Host is the downstream that gave the deciding answer ("" for Maildir).
	Host string
	// TLS describes the downstream connection's TLS ("" when plaintext).
	TLS string
	// Reply summarises the outcome: the downstream's reply to DATA when
	// accepted, else the first reply of the deciding class.
	Reply Reply
	// Err is nil when accepted, else the first error of the deciding class.
	Err error
}

// Partial reports whether some recipients were accepted and others not.
func (r Result) Partial() bool {
	var acc, other bool
	for _, rr := range r.Rcpts {
		if rr.Status == StatusAccepted {
			acc = true
		} else {
			other = true
		}
	}
	return acc && other
}

// Errors. Every error in a Result wraps ErrTemporary or ErrPermanent, and
// usually one of the more specific sentinels.
var (
	ErrTemporary = errors.New("relay: temporary failure")
	ErrPermanent = errors.New("relay: permanent failure")

	ErrUnreachable     = errors.New("downstream unreachable")
	ErrTimeout         = errors.New("downstream timed out")
	ErrConnectionLost  = errors.New("connection to downstream lost")
	ErrTLSUnavailable  = errors.New("downstream offers no STARTTLS but TLS is required")
	ErrTLSHandshake    = errors.New("TLS handshake with downstream failed")
	ErrProtocol        = errors.New("downstream SMTP session could not be opened")
	ErrRejected        = errors.New("downstream refused")
	ErrMessageTooBig   = errors.New("message exceeds the downstream's SIZE limit")
	ErrNeedsSMTPUTF8   = errors.New("message needs SMTPUTF8, downstream does not offer it")
	ErrNeeds8BitMIME   = errors.New("message has 8-bit content, downstream does not offer 8BITMIME")
	ErrBadAddress      = errors.New("recipient address unusable")
	ErrNoRecipients    = errors.New("message has no recipients")
	ErrMailboxIO       = errors.New("maildir write failed")
	ErrDelivererClosed = errors.New("deliverer closed")
)

// IsTemporary reports whether err is a temporary delivery failure.
func IsTemporary(err error) bool { return errors.Is(err, ErrTemporary) }

// IsPermanent reports whether err is a permanent delivery failure.
func IsPermanent(err error) bool { return errors.Is(err, ErrPermanent) }

func tempErr(kind error, format string, args ...any) error {
	return fmt.Errorf("%w: %w: %s", ErrTemporary, kind, fmt.Sprintf(format, args...))
}

func permErr(kind error, format string, args ...any) error {
	return fmt.Errorf("%w: %w: %s", ErrPermanent, kind, fmt.Sprintf(format, args...))
}

// localReply makes the reply the gateway would give for a failure that had
// no downstream reply.
func localReply(st Status, kind error) Reply {
	if st == StatusPermanent {
		switch {
		case errors.Is(kind, ErrMessageTooBig):
			// RFC 1870 §6.1, RFC 3463 X.3.4.
			return Reply{Code: 552, Enhanced: EnhancedCode{5, 3, 4}, Text: "Message too big for the destination"}
		case errors.Is(kind, ErrNeedsSMTPUTF8):
			// RFC 6531 §3.2 and §3.6.3: X.6.7 non-ASCII addresses not permitted.
			return Reply{Code: 553, Enhanced: EnhancedCode{5, 6, 7}, Text: "Non-ASCII addresses not permitted by the destination"}
		case errors.Is(kind, ErrNeeds8BitMIME):
			// RFC 6152 §3: no conversion here, so a permanent failure; RFC 3463 X.6.3.
			return Reply{Code: 554, Enhanced: EnhancedCode{5, 6, 3}, Text: "8-bit content not accepted by the destination"}
		case errors.Is(kind, ErrBadAddress):
			return Reply{Code: 553, Enhanced: EnhancedCode{5, 1, 3}, Text: "Bad destination mailbox address syntax"}
		}
		return Reply{Code: 554, Enhanced: EnhancedCode{5, 0, 0}, Text: "Delivery failed"}
	}
	switch {
	case errors.Is(kind, ErrUnreachable), errors.Is(kind, ErrTLSUnavailable), errors.Is(kind, ErrTLSHandshake), errors.Is(kind, ErrProtocol):
		// RFC 3463 X.4.1: no answer from host / X.4.7 for TLS (security).
		if errors.Is(kind, ErrTLSUnavailable) || errors.Is(kind, ErrTLSHandshake) {
			return Reply{Code: 451, Enhanced: EnhancedCode{4, 7, 5}, Text: "Secure connection to the destination failed, try again later"}
		}
		return Reply{Code: 451, Enhanced: EnhancedCode{4, 4, 1}, Text: "Destination unreachable, try again later"}
	case errors.Is(kind, ErrTimeout), errors.Is(kind, ErrConnectionLost):
		// RFC 3463 X.4.2: bad connection.
		return Reply{Code: 451, Enhanced: EnhancedCode{4, 4, 2}, Text: "Connection to the destination lost, try again later"}
	case errors.Is(kind, ErrMailboxIO):
		return Reply{Code: 451, Enhanced: EnhancedCode{4, 3, 0}, Text: "Mailbox write failed, try again later"}
	}
	return Reply{Code: 451, Enhanced: EnhancedCode{4, 3, 0}, Text: "Delivery failed, try again later"}
}

// summarise fills the overall Status, Reply and Err of res from its Rcpts.
func summarise(res *Result) {
	var firstTemp, firstPerm *RcptResult
	accepted := 0
	for i := range res.Rcpts {
		rr := &res.Rcpts[i]
		switch rr.Status {
		case StatusAccepted:
			accepted++
		case StatusPermanent:
			if firstPerm == nil {
				firstPerm = rr
			}
		default:
			if firstTemp == nil {
				firstTemp = rr
			}
		}
	}
	switch {
	case len(res.Rcpts) == 0:
		res.Status = StatusPermanent
		res.Err = fmt.Errorf("%w: %w", ErrPermanent, ErrNoRecipients)
		res.Reply = Reply{Code: 554, Enhanced: EnhancedCode{5, 5, 1}, Text: "No valid recipients"}
	case firstTemp != nil:
		res.Status = StatusTemporary
		res.Reply, res.Err = firstTemp.Reply, firstTemp.Err
	case accepted > 0:
		res.Status = StatusAccepted
		res.Err = nil
		for _, rr := range res.Rcpts {
			if rr.Status == StatusAccepted {
				res.Reply = rr.Reply
				break
			}
		}
	default:
		res.Status = StatusPermanent
		res.Reply, res.Err = firstPerm.Reply, firstPerm.Err
	}
}

// uniqueRcpts returns the distinct recipients of rcpts in first-seen order
// and, for each position of rcpts, the index of its distinct recipient.
func uniqueRcpts(rcpts []string) (uniq []string, index []int) {
	index = make([]int, len(rcpts))
	seen := make(map[string]int, len(rcpts))
	for i, r := range rcpts {
		if j, ok := seen[r]; ok {
			index[i] = j
			continue
		}
		seen[r] = len(uniq)
		index[i] = len(uniq)
		uniq = append(uniq, r)
	}
	return uniq, index
}

// validAddress reports whether an envelope address can be written into an
// SMTP command or a header field without changing its meaning.
func validAddress(a string) bool {
	if len(a) > 512 {
		return false
	}
	for i := 0; i < len(a); i++ {
		switch c := a[i]; {
		case c < 0x20, c == 0x7f, c == '<', c == '>':
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func has8Bit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// headerSection returns the header section of a message: everything before
// the first empty line (RFC 5322 §2.1).
func headerSection(data []byte) []byte {
	if len(data) >= 2 && data[0] == '\r' && data[1] == '\n' {
		return nil
	}
	for i := 0; i+3 < len(data); i++ {
		if data[i] == '\r' && data[i+1] == '\n' && data[i+2] == '\r' && data[i+3] == '\n' {
			return data[:i+2]
		}
	}
	return data
}
