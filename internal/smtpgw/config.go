package smtpgw

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"time"

	"golang.org/x/net/idna"
)

// BareLineMode says what the listener does with a bare CR or LF in the
// message data (RFC 5321 §2.3.8: CR and LF may only appear together, as a
// line ending).
type BareLineMode string

const (
	// BareLineReject (the default) refuses the message with 550 5.6.0. A
	// bare LF is what SMTP smuggling attacks build their fake end-of-data
	// on, so a gateway in front of other MTAs refuses it.
	BareLineReject BareLineMode = "reject"
	// BareLineNormalise accepts the message and turns every bare CR and
	// bare LF into CRLF before the Handler sees it (Transaction.Normalised).
	BareLineNormalise BareLineMode = "normalize"
)

// Config is the configuration of a Server.
type Config struct {
	// Listeners are the SMTP listeners; at least one.
	Listeners []ListenerConfig
	// Logger receives the server's logs. Default: slog.Default().
	Logger *slog.Logger
}

// ListenerConfig configures one named SMTP listener. Zero values mean the
// documented defaults.
type ListenerConfig struct {
	// Name identifies the listener in logs, statistics and transactions
	// (letters, digits, "-", "_", ".").
	Name string
	// Address is the TCP address to listen on, e.g. ":25" or
	// "127.0.0.1:2525".
	Address string
	// Hostname is the name in the greeting banner and Received fields.
	// Default: os.Hostname().
	Hostname string

	// TLSCertFile and TLSKeyFile enable STARTTLS (RFC 3207) with this PEM
	// certificate chain and key. The files are read again when they change
	// (checked at most every TLSReloadInterval, and on Server.ReloadTLS).
	TLSCertFile string
	TLSKeyFile  string
	// TLSReloadInterval is how often a handshake may check the files for
	// changes. Default 10s.
	TLSReloadInterval time.Duration
	// RequireTLS refuses MAIL before STARTTLS with 530 5.7.0 (RFC 3207 §4).
	RequireTLS bool

	// MaxMessageBytes is the SIZE advertised (RFC 1870) and enforced; a
	// larger message is refused with 552 5.3.4 and the rest of its data
	// discarded. Default 25 MiB. (go-smtp's reader counts the final byte
	// against the limit, so the largest accepted message is one byte less.)
	MaxMessageBytes int64
	// MaxRecipients caps RCPT per transaction (452 4.5.3 beyond, RFC 5321
	// §4.5.3.1.10). Default 100, which is also the minimum RFC 5321
	// §4.5.3.1.8 requires servers to accept.
	MaxRecipients int
	// MaxLineLength caps a command or text line including CRLF. Default
	// and minimum 1000 (RFC 5321 §4.5.3.1.6).
	MaxLineLength int
	// MaxHeaderBytes caps the header section of a message (552 5.3.4
	// beyond). Default 256 KiB.
	MaxHeaderBytes int

	// ReadTimeout bounds the wait for each command; WriteTimeout each
	// reply. Defaults 5m (RFC 5321 §4.5.3.2.7) and 1m.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// DataTimeout bounds the whole DATA transfer. Default 10m.
	DataTimeout time.Duration
	// HandlerTimeout is the deadline of the Handler's context. Default 5m,
	// within the 10 minutes a client waits for the reply to the final dot
	// (RFC 5321 §4.5.3.2.6).
	HandlerTimeout time.Duration

	// MaxConnections caps simultaneous connections on the listener;
	// MaxConnectionsPerIP those from one client address (IPv6 counted per
	// /64). Beyond them the client gets 421 4.7.0 and the connection is
	// closed. Defaults 1000 and 20.
	MaxConnections      int
	MaxConnectionsPerIP int

	// ProxyProtocol expects a PROXY protocol header (version 1 or 2) from
	// connections whose source is in ProxyTrustedCIDRs, and then takes the
	// client address from it. Connections from other sources are served
	// as direct clients, and a PROXY header they send is just an unknown
	// command. ProxyTrustedCIDRs must not be empty when ProxyProtocol is on.
	ProxyProtocol     bool
	ProxyTrustedCIDRs []string
	// ProxyHeaderTimeout bounds the wait for the PROXY header. Default 5s.
	ProxyHeaderTimeout time.Duration

	// AcceptDomains are the recipient domains the gateway receives mail
	// for; RCPT TO any other domain is refused with 550 5.7.1 (never an
	// open relay, RFC 5321 §3.6.2). postmaster at these domains and at
	// Hostname is always accepted (RFC 5321 §4.5.1). Required.
	AcceptDomains []string

	// BareLineEndings is BareLineReject (default) or BareLineNormalise.
	BareLineEndings BareLineMode
	// DisableSMTPUTF8 stops advertising SMTPUTF8 (RFC 6531).
	DisableSMTPUTF8 bool
}

var listenerName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// withDefaults returns c with defaults filled in.
func (c ListenerConfig) withDefaults() ListenerConfig {
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
		if c.Hostname == "" {
			c.Hostname = "localhost"
		}
	}
	if c.TLSReloadInterval <= 0 {
		c.TLSReloadInterval = 10 * time.Second
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 25 << 20
	}
	if c.MaxRecipients == 0 {
		c.MaxRecipients = 100
	}
	if c.MaxLineLength == 0 {
		c.MaxLineLength = 1000
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 256 << 10
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 5 * time.Minute
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = time.Minute
	}
	if c.DataTimeout == 0 {
		c.DataTimeout = 10 * time.Minute
	}
	if c.HandlerTimeout == 0 {
		c.HandlerTimeout = 5 * time.Minute
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = 1000
	}
	if c.MaxConnectionsPerIP == 0 {
		c.MaxConnectionsPerIP = 20
	}
	if c.ProxyHeaderTimeout == 0 {
		c.ProxyHeaderTimeout = 5 * time.Second
	}
	if c.BareLineEndings == "" {
		c.BareLineEndings = BareLineReject
	}
	return c
}

// Validate checks the configuration; its errors name the listener and
// field at fault.
func (c Config) Validate() error {
	if len(c.Listeners) == 0 {
		return errors.New("smtpgw: no listeners configured")
	}
	seen := map[string]bool{}
	var errs []error
	for i, l := range c.Listeners {
		if seen[l.Name] {
			errs = append(errs, fmt.Errorf("smtpgw: listener %q: name used twice", l.Name))
		}
		seen[l.Name] = true
		if err := l.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("listener #%d: %w", i+1, err))
		}
	}
	return errors.Join(errs...)
}

// Validate checks one listener's configuration.
func (c ListenerConfig) Validate() error {
	name := c.Name
	fail := func(format string, args ...any) error {
		return fmt.Errorf("smtpgw: listener %q: %s", name, fmt.Sprintf(format, args...))
	}
	if !listenerName.MatchString(c.Name) {
		return fail("name must be 1-63 letters, digits, '.', '-' or '_'")
	}
	if _, _, err := net.SplitHostPort(c.Address); err != nil {
		return fail("address %q: %v", c.Address, err)
	}
	c = c.withDefaults()
	if strings.ContainsAny(c.Hostname, " \t\r\n") {
		return fail("hostname %q contains white space", c.Hostname)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return fail("tls_cert_file and tls_key_file go together")
	}
	if c.RequireTLS && c.TLSCertFile == "" {
		return fail("require_tls needs a certificate")
	}
	switch {
	case c.MaxMessageBytes < 0:
		return fail("max_message_bytes is negative")
	case c.MaxRecipients < 1:
		return fail("max_recipients must be at least 1")
	case c.MaxLineLength < 1000:
		return fail("max_line_length %d is below the 1000 octets RFC 5321 §4.5.3.1.6 requires", c.MaxLineLength)
	case c.MaxHeaderBytes < 1024:
		return fail("max_header_bytes must be at least 1024")
	case c.ReadTimeout < 0, c.WriteTimeout < 0, c.DataTimeout < 0, c.HandlerTimeout < 0, c.ProxyHeaderTimeout < 0:
		return fail("timeouts must not be negative")
	case c.MaxConnections < 1 || c.MaxConnectionsPerIP < 1:
		return fail("connection limits must be at least 1")
	case c.MaxConnectionsPerIP > c.MaxConnections:
		return fail("max_connections_per_ip %d exceeds max_connections %d", c.MaxConnectionsPerIP, c.MaxConnections)
	}
	if c.BareLineEndings != BareLineReject && c.BareLineEndings != BareLineNormalise {
		return fail("bare_line_endings %q: want %q or %q", c.BareLineEndings, BareLineReject, BareLineNormalise)
	}
	if _, err := parseCIDRs(c.ProxyTrustedCIDRs); err != nil {
		return fail("proxy_trusted_cidrs: %v", err)
	}
	if c.ProxyProtocol && len(c.ProxyTrustedCIDRs) == 0 {
		return fail("proxy_protocol needs proxy_trusted_cidrs (the proxies allowed to name the client)")
	}
	if len(c.AcceptDomains) == 0 {
		return fail("accept_domains is empty: the listener would accept no recipient (and must never relay)")
	}
	for _, d := range c.AcceptDomains {
		if _, err := normaliseDomain(d); err != nil {
			return fail("accept_domains %q: %v", d, err)
		}
	}
	return nil
}

func parseCIDRs(ss []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ss {
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("%q: %v", s, err)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q: %v", s, err)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// normaliseDomain returns the lower-case A-label form of a domain for
// comparisons (RFC 5321 §2.4: domains are case-insensitive; RFC 5890
// A-labels for internationalised names).
func normaliseDomain(d string) (string, error) {
	d = strings.TrimSuffix(d, ".")
	if d == "" {
		return "", errors.New("empty domain")
	}
	if strings.HasPrefix(d, "[") {
		// An address literal (RFC 5321 §4.1.3) compares as written.
		return strings.ToLower(d), nil
	}
	ascii := true
	for i := 0; i < len(d); i++ {
		if d[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		d = strings.ToLower(d)
		for _, label := range strings.Split(d, ".") {
			if label == "" || len(label) > 63 {
				return "", fmt.Errorf("bad label in %q", d)
			}
		}
		return d, nil
	}
	a, err := idna.Lookup.ToASCII(d)
	if err != nil {
		return "", err
	}
	return a, nil
}
