// Package milter implements Portcullis's milter adapter: the second inbound
// path, inside an MTA (Postfix's smtpd_milters, or Sendmail's
// INPUT_MAIL_FILTER), on github.com/d--j/go-milter (milter protocol version
// 6). It runs the same pipeline as the SMTP gateway.
//
// Per message the adapter collects the connection facts from the milter
// events and macros (client address and name, HELO, the TLS of the client
// session, MAIL FROM, RCPT TO, the MTA's queue id), rebuilds the message
// (header fields as the MTA has them, CRLF line endings, bounded in size),
// and at the end of the message hands a pipeline.Transaction with path
// "milter" to the pipeline. The Outcome becomes the milter's answer:
//
//   - deliver: the Authentication-Results fields the pipeline removed
//     (forged ones claiming our authserv-id, RFC 8601 §5) are deleted with
//     SMFIR_CHGHEADER and an empty value, last occurrence first, and our
//     Authentication-Results is inserted at the top with SMFIR_INSHEADER
//     (RFC 8601 §5); then SMFIR_ACCEPT, and the MTA delivers.
//   - reject: SMFIR_REPLYCODE with the policy's 5xx (550 5.7.x, RFC 7372).
//   - defer: SMFIR_REPLYCODE with the 4xx (451 4.7.x), so the sender keeps
//     the message and retries.
//   - quarantine: the pipeline stored the message durably in Portcullis's
//     own quarantine store before answering; the adapter then answers
//     SMFIR_DISCARD: the MTA tells the sender 250 and drops its copy. A
//     release re-injects the stored message over SMTP (Releaser) into a
//     listener of the MTA that runs no milter.
//   - any internal error, panic or timeout: 451 4.3.0, never an accept.
//
// When the milter is unreachable or breaks the connection, the MTA applies
// its own milter_default_action: it must be tempfail (docs/postfix.md).
//
// Standards: the milter protocol version 6 as Sendmail's libmilter and
// Postfix implement it; SMTP replies RFC 5321 §4.2 with enhanced status
// codes RFC 3463 and RFC 7372; Authentication-Results RFC 8601.
package milter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	gomilter "github.com/d--j/go-milter"

	"portcullis/internal/pipeline"
)

// Defaults of Config.
const (
	DefaultListener         = "milter"
	DefaultMaxMessageBytes  = 25 << 20
	DefaultMaxRecipients    = 1000
	DefaultTimeout          = 2 * time.Minute
	DefaultProgressInterval = 30 * time.Second
	DefaultIdleTimeout      = 10 * time.Minute
)

// Errors.
var (
	// ErrConfig: NewServer was given an unusable Config.
	ErrConfig = errors.New("milter: invalid configuration")
	// ErrAddress: a listen address that is neither unix:PATH nor
	// inet:HOST:PORT (nor inet6:…).
	ErrAddress = errors.New("milter: invalid listen address")
)

// Processor runs the pipeline on one transaction; *pipeline.Pipeline is one.
type Processor interface {
	Process(ctx context.Context, tx *pipeline.Transaction) pipeline.Outcome
}

// AuthenticatedMode says what the milter does with mail from a client that
// authenticated to the MTA (the {auth_authen} macro is set): submission by
// the organisation's own users, not inbound mail.
type AuthenticatedMode string

const (
	// AuthenticatedAccept (the default) accepts it unchanged without
	// analysis: the inbound policy (own-domain protection first) would
	// reject the organisation's own outbound mail.
	AuthenticatedAccept AuthenticatedMode = "accept"
	// AuthenticatedCheck runs it through the pipeline like any message.
	AuthenticatedCheck AuthenticatedMode = "check"
)

// Config configures the milter. The zero value of every field means its
// documented default.
type Config struct {
	// Listener names this inbound path: the policy applied
	// (policy.Set.For) and the evidence record's listener. Default
	// "milter".
	Listener string
	// MaxMessageBytes bounds the message (header and body) the milter
	// buffers; a larger one is refused with 552 5.3.4 (RFC 3463 X.3.4).
	// Default 25 MiB. Keep it at or above Postfix's message_size_limit.
	MaxMessageBytes int64
	// MaxRecipients bounds the recipients recorded per message (the MTA
	// enforces its own limit); beyond it the message is refused with
	// 452 4.5.3 (RFC 5321 §4.5.3.1.10). Default 1000.
	MaxRecipients int
	// Timeout is the deadline of the pipeline for one message, from the
	// end of the data. It must stay below the MTA's milter_content_timeout
	// (Postfix default 300s). A check that overruns it is a temperror, and
	// the policy defers. Default 2 minutes.
	Timeout time.Duration
	// ProgressInterval is how often the milter tells the MTA that it is
	// still working on a message (SMFIR_PROGRESS, protocol version 6),
	// which restarts the MTA's timer. Default 30s; negative disables.
	ProgressInterval time.Duration
	// IdleTimeout closes a milter connection on which the MTA sent nothing
	// for this long (the MTA keeps one connection per SMTP session).
	// Default 10 minutes.
	IdleTimeout time.Duration
	// Authenticated is AuthenticatedAccept (default) or
	// AuthenticatedCheck.
	Authenticated AuthenticatedMode
	// Logger receives the milter's logs. Default slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.Listener == "" {
		c.Listener = DefaultListener
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.MaxRecipients == 0 {
		c.MaxRecipients = DefaultMaxRecipients
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = DefaultProgressInterval
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.Authenticated == "" {
		c.Authenticated = AuthenticatedAccept
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	switch {
	case c.MaxMessageBytes < 1024:
		return fmt.Errorf("%w: max message size %d is below 1024 bytes", ErrConfig, c.MaxMessageBytes)
	case c.MaxRecipients < 1:
		return fmt.Errorf("%w: max recipients %d", ErrConfig, c.MaxRecipients)
	case c.Timeout < 0:
		return fmt.Errorf("%w: negative timeout", ErrConfig)
	case c.IdleTimeout < 0:
		return fmt.Errorf("%w: negative idle timeout", ErrConfig)
	case c.Authenticated != AuthenticatedAccept && c.Authenticated != AuthenticatedCheck:
		return fmt.Errorf("%w: authenticated mode %q (want accept or check)", ErrConfig, c.Authenticated)
	}
	return nil
}

// Server serves the milter protocol.
type Server struct {
	cfg  Config
	proc Processor
	srv  *gomilter.Server
}

// The actions the milter needs: add and change (delete) header fields.
// SMFIR_INSHEADER needs either.
const actions = gomilter.OptAddHeader | gomilter.OptChangeHeader

// The protocol steps the milter does not need the MTA to send, or to wait
// for a reply to: it decides once, at the end of the message. Each is asked
// for only when the MTA offers it.
const wantProtocol = gomilter.OptNoUnknown | gomilter.OptNoData |
	gomilter.OptNoConnReply | gomilter.OptNoHeloReply | gomilter.OptNoMailReply | gomilter.OptNoRcptReply |
	gomilter.OptNoDataReply | gomilter.OptNoUnknownReply | gomilter.OptNoHeaderReply | gomilter.OptNoEOHReply |
	gomilter.OptNoBodyReply |
	// The header values exactly as received, leading space included:
	// DKIM's simple header canonicalisation (RFC 6376 §3.4.1) needs them.
	gomilter.OptHeaderLeadingSpace

// Macros asked of the MTA at each stage (SMFIR_SETSYMLIST). The client
// address, port and name come with the connect event itself; the macros
// are the fallback and the extra facts.
var macroRequests = []struct {
	stage  gomilter.MacroStage
	macros []gomilter.MacroName
}{
	{gomilter.StageConnect, []gomilter.MacroName{gomilter.MacroMTAFQDN, gomilter.MacroDaemonName, gomilter.MacroClientAddr, gomilter.MacroClientName, gomilter.MacroClientPort}},
	{gomilter.StageHelo, []gomilter.MacroName{gomilter.MacroTlsVersion, gomilter.MacroCipher, gomilter.MacroCipherBits}},
	{gomilter.StageMail, []gomilter.MacroName{gomilter.MacroQueueId, gomilter.MacroAuthType, gomilter.MacroAuthAuthen, gomilter.MacroMailAddr}},
	{gomilter.StageRcpt, []gomilter.MacroName{gomilter.MacroQueueId, gomilter.MacroRcptAddr}},
	{gomilter.StageEOM, []gomilter.MacroName{gomilter.MacroQueueId}},
}

// NewServer returns a milter server that hands every message to proc.
func NewServer(proc Processor, cfg Config) (*Server, error) {
	if proc == nil {
		return nil, fmt.Errorf("%w: no Processor", ErrConfig)
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, proc: proc}
	opts := []gomilter.Option{
		gomilter.WithDynamicMilter(func(version uint32, _ gomilter.OptAction, _ gomilter.OptProtocol, _ gomilter.DataSize) gomilter.Milter {
			return newSession(s, version)
		}),
		gomilter.WithActions(actions),
		gomilter.WithProtocols(wantProtocol),
		gomilter.WithNegotiationCallback(negotiate),
		gomilter.WithReadTimeout(cfg.IdleTimeout),
		gomilter.WithWriteTimeout(30 * time.Second),
	}
	for _, r := range macroRequests {
		opts = append(opts, gomilter.WithMacroRequest(r.stage, r.macros))
	}
	s.srv = gomilter.NewServer(opts...)
	return s, nil
}

// negotiate agrees on version 6 (or the MTA's lower one, down to 2), on
// the actions the milter needs (the MTA must offer them all), and on the
// protocol options the MTA offers among those the milter wants: unlike the
// library's default negotiation, an MTA that lacks an optional step (e.g.
// the leading-space option) is not refused.
func negotiate(mtaVersion, milterVersion uint32, mtaActions, milterActions gomilter.OptAction, mtaProtocol, milterProtocol gomilter.OptProtocol, offered gomilter.DataSize) (uint32, gomilter.OptAction, gomilter.OptProtocol, gomilter.DataSize, error) {
	version := min(mtaVersion, milterVersion)
	if version < 2 {
		return 0, 0, 0, 0, fmt.Errorf("milter: MTA protocol version %d is too old", mtaVersion)
	}
	if mtaActions&actions != actions {
		return 0, 0, 0, 0, fmt.Errorf("milter: the MTA does not allow the header changes the milter needs (offered %v, need %v)", mtaActions, actions)
	}
	proto := milterProtocol & mtaProtocol
	if version < 6 {
		// Only the options of version 2 (bits 0-6); the "no reply"
		// options and the leading space came with version 6.
		proto &= 0x7f
	}
	// The library adds SMFIF_SETSYMLIST to ask for macros; it is kept only
	// when offered.
	acts := milterActions & mtaActions
	return version, acts, proto, offered, nil
}

// Serve accepts MTA connections on ln until Shutdown or Close.
func (s *Server) Serve(ln net.Listener) error {
	err := s.srv.Serve(ln)
	if errors.Is(err, gomilter.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections and waits, bounded by ctx, for the
// MTA connections to end; past ctx they are closed (the MTA then applies
// milter_default_action to their messages: tempfail).
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// Close closes the listeners and every MTA connection at once.
func (s *Server) Close() error { return s.srv.Close() }

// Listen opens a milter listen address in the notation Postfix and
// Sendmail use:
//
//	unix:/run/portcullis/milter.sock   (also local:PATH, or an absolute PATH)
//	inet:127.0.0.1:8891                (also inet:8891@127.0.0.1)
//	inet6:[::1]:8891                   (also inet6:8891@::1)
//
// A stale Unix socket file left by a previous run is replaced, after a
// connection attempt shows that nothing listens on it; the new socket gets
// mode 0660 (give the MTA's group access to it).
func Listen(addr string) (net.Listener, error) {
	network, address, err := ParseAddress(addr)
	if err != nil {
		return nil, err
	}
	if network != "unix" {
		return net.Listen(network, address)
	}
	if _, err := os.Lstat(address); err == nil {
		if c, err := net.DialTimeout("unix", address, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("milter: %s is in use", address)
		}
		if err := os.Remove(address); err != nil {
			return nil, fmt.Errorf("milter: remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", address)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(address, 0o660); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// ParseAddress splits a milter address (see Listen) into a Go network
// ("unix", "tcp4", "tcp6") and address.
func ParseAddress(addr string) (network, address string, err error) {
	bad := func(why string) (string, string, error) {
		return "", "", fmt.Errorf("%w: %q: %s", ErrAddress, addr, why)
	}
	if strings.HasPrefix(addr, "/") {
		return "unix", addr, nil
	}
	kind, rest, ok := strings.Cut(addr, ":")
	if !ok || rest == "" {
		return bad("want unix:PATH or inet:HOST:PORT")
	}
	switch strings.ToLower(kind) {
	case "unix", "local":
		if !strings.HasPrefix(rest, "/") {
			return bad("the socket path must be absolute")
		}
		return "unix", rest, nil
	case "inet", "inet6":
		var host, port string
		if p, h, ok := strings.Cut(rest, "@"); ok {
			host, port = h, p // Sendmail notation PORT@HOST
		} else {
			h, p, err := net.SplitHostPort(rest)
			if err != nil {
				return bad(err.Error())
			}
			host, port = h, p
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 0 || n > 65535 {
			return bad("invalid port")
		}
		if host == "" {
			return bad("the host is required (listen on 127.0.0.1 unless the MTA runs elsewhere)")
		}
		network = "tcp4"
		if strings.EqualFold(kind, "inet6") {
			network = "tcp6"
		}
		return network, net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(n)), nil
	}
	return bad("unknown kind " + strconv.Quote(kind))
}
