// Package config implements the configuration file of the Portcullis gateway:
// typed YAML (unknown fields are errors) whose every field documents its
// default, read by Load, checked by Validate, then used to build the SMTP
// listeners (RFC 5321), the DNS resolver, the analysis (SPF RFC 7208, DKIM
// RFC 6376, DMARC RFC 9989 or RFC 7489, ARC RFC 8617), the policy, the
// downstream delivery (SMTP, LMTP RFC 2033 or Maildir), the store, metrics and
// logging.
//
// The effective configuration (the file with every default filled in) has a
// version, "sha256:" and the hex SHA-256 of its canonical YAML (Hash), which
// every evidence record names. docs/config.md is the reference.
package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"portcullis/internal/policy"
)

// Documented defaults.
const (
	// DefaultDataDir is where the store and the Maildir live.
	DefaultDataDir = "./portcullis-data"
	// DefaultSMTPAddress is the address of the listener of the
	// configuration without a file: the loopback, port 2525 (a port
	// that needs no privilege).
	DefaultSMTPAddress = "127.0.0.1:2525"
	// DefaultListenerName names that listener.
	DefaultListenerName = "local"
	// DefaultMetricsAddress serves /metrics and /healthz on the loopback.
	DefaultMetricsAddress = "127.0.0.1:9425"
)

// DefaultLoopbackDomains are the recipient domains a loopback listener
// accepts when its accept_domains is empty: "localhost" and the
// second-level names reserved for documentation (RFC 2606 §3), which no
// real mail is addressed to. A listener on any other address must list its
// domains.
var DefaultLoopbackDomains = []string{"localhost", "example.com", "example.net", "example.org"}

// ErrInvalid is wrapped by every error of Validate and Load.
var ErrInvalid = errors.New("invalid configuration")

// Error is a configuration error naming the item at fault by its YAML path,
// e.g. "listeners[1].address".
type Error struct {
	Path string
	Msg  string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *Error) Unwrap() error { return ErrInvalid }

func errorf(path, format string, args ...any) error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Config is the gateway's configuration. The zero value of every field means
// the default named on it.
type Config struct {
	// DataDir holds the evidence database, quarantined messages and (for
	// the maildir downstream) the mailboxes. Default "./portcullis-data".
	// A relative path is relative to the working directory.
	DataDir string `yaml:"data_dir"`
	// Hostname is this host's name: the SMTP banner and the "by" of
	// Received fields. Default: os.Hostname(), or "localhost".
	Hostname string `yaml:"hostname"`
	// AuthServID is the authserv-id of the Authentication-Results
	// fields this gateway writes (RFC 8601 §2.5); inbound fields claiming
	// it are removed. Default: Hostname.
	AuthServID string `yaml:"authserv_id"`
	// AuthResults says which other inbound Authentication-Results fields
	// are removed or kept.
	AuthResults AuthResultsConfig `yaml:"authentication_results"`
	// DNS configures the resolver every check uses.
	DNS DNSConfig `yaml:"dns"`
	// Analysis tunes the checks.
	Analysis AnalysisConfig `yaml:"analysis"`
	// Listeners are the SMTP listeners. Default: one listener named
	// "local" on 127.0.0.1:2525 accepting DefaultLoopbackDomains.
	Listeners []ListenerConfig `yaml:"listeners"`
	// Downstream is where delivered mail goes. Default: Maildir under
	// DataDir.
	Downstream DownstreamConfig `yaml:"downstream"`
	// Policy is the policy of every listener (docs/policy.md). Every field
	// left out takes its default.
	Policy policy.Policy `yaml:"policy"`
	// Policies are named overrides of Policy that listeners select with
	// their policy field: each changes only the fields it sets. Default
	// none.
	Policies map[string]policy.Policy `yaml:"policies,omitempty"`
	// Store configures the evidence and quarantine store.
	Store StoreConfig `yaml:"store"`
	// Metrics configures the HTTP server of /metrics and /healthz.
	Metrics MetricsConfig `yaml:"metrics"`
	// Logging configures the logs.
	Logging LoggingConfig `yaml:"logging"`
	// ShutdownTimeout bounds a graceful shutdown: the transactions in
	// flight get this long to finish. Default 30s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// Milter configures `portcullis milter` (milter.go, docs/postfix.md).
	// Default absent: MilterSection gives its defaults.
	Milter *MilterConfig `yaml:"milter,omitempty"`
	// Governance configures exceptions, sealers, releases and the audit
	// log (governance.go, docs/governance.md).
	Governance GovernanceConfig `yaml:"governance"`
}

// AuthResultsConfig configures the removal of inbound
// Authentication-Results fields (RFC 8601 §5).
type AuthResultsConfig struct {
	// OurIDs are further authserv-ids of this organisation (other
	// gateway nodes, the mailbox server); fields claiming them are
	// removed like those claiming authserv_id. Default none.
	OurIDs []string `yaml:"our_ids"`
	// TrustedIDs are authserv-ids of upstream services (a filtering
	// provider in front of this gateway) whose fields are kept. Default
	// none.
	TrustedIDs []string `yaml:"trusted_ids"`
	// RemoveUntrusted also removes the fields of every other service.
	// Default false: they are kept (RFC 8601 §5 allows either).
	RemoveUntrusted bool `yaml:"remove_untrusted"`
}

// DNSConfig configures the resolver.
type DNSConfig struct {
	// Servers are the recursive resolvers, "host:port" or "host" (port
	// 53). Default: the nameservers of /etc/resolv.conf.
	Servers []string `yaml:"servers"`
	// ZoneFile answers every question from this RFC 1035 zone file
	// instead of the network (lab mode). Excludes Servers. Default none.
	ZoneFile string `yaml:"zone_file"`
	// Timeout bounds one query attempt. Default 2s.
	Timeout Duration `yaml:"timeout"`
	// Attempts is how often the server list is tried. Default 2.
	Attempts int `yaml:"attempts"`
	// Cache configures the answer cache in front of the resolver.
	Cache DNSCacheConfig `yaml:"cache"`
}

// DNSCacheConfig configures the DNS cache (TTL-respecting, with negative
// caching of RFC 2308).
type DNSCacheConfig struct {
	// MaxEntries bounds the answers kept. Default 100000.
	MaxEntries int `yaml:"max_entries"`
	// MaxTTL caps how long a positive answer is kept. Default 24h.
	MaxTTL Duration `yaml:"max_ttl"`
	// MaxNegativeTTL caps how long NXDOMAIN and NODATA are kept. Default
	// 1h.
	MaxNegativeTTL Duration `yaml:"max_negative_ttl"`
	// FailureTTL is how long a timeout or SERVFAIL is remembered (RFC
	// 2308 §7.1 allows 5 minutes). Default 5s.
	FailureTTL Duration `yaml:"failure_ttl"`
}

// AnalysisConfig tunes the checks.
type AnalysisConfig struct {
	// DMARCMode is "rfc9989" (default: the DNS tree walk) or "rfc7489"
	// (Public Suffix List and pct=).
	DMARCMode string `yaml:"dmarc_mode"`
	// CheckTimeout bounds each check; one that overruns is a temperror.
	// Default 20s (RFC 7208 §4.6.4).
	CheckTimeout Duration `yaml:"check_timeout"`
	// MaxDKIMSignatures bounds the DKIM signatures verified per message.
	// Default 5.
	MaxDKIMSignatures int `yaml:"max_dkim_signatures"`
}

// ListenerConfig is one SMTP listener.
type ListenerConfig struct {
	// Name identifies the listener in logs, metrics and evidence; 1-63
	// letters, digits, ".", "-", "_". Required, unique.
	Name string `yaml:"name"`
	// Address is the TCP address, "host:port". Required.
	Address string `yaml:"address"`
	// Hostname is the banner name. Default: the top-level hostname.
	Hostname string `yaml:"hostname"`
	// AcceptDomains are the recipient domains accepted (RCPT TO any other
	// is refused, 550 5.7.1: never an open relay). Required, except on a
	// loopback address where the default is DefaultLoopbackDomains.
	AcceptDomains []string `yaml:"accept_domains"`
	// Policy names an entry of the top-level policies whose fields
	// override the policy on this listener. Default none.
	Policy string `yaml:"policy"`
	// TLS enables STARTTLS (RFC 3207).
	TLS ListenerTLS `yaml:"tls"`
	// Limits bound what a client may send.
	Limits ListenerLimits `yaml:"limits"`
	// Proxy accepts the PROXY protocol from trusted load balancers.
	Proxy ProxyConfig `yaml:"proxy_protocol"`
	// BareLineEndings is "reject" (default: 550 5.6.0 for a bare CR or
	// LF, which SMTP smuggling needs) or "normalize".
	BareLineEndings string `yaml:"bare_line_endings"`
	// DisableSMTPUTF8 stops advertising SMTPUTF8 (RFC 6531). Default
	// false.
	DisableSMTPUTF8 bool `yaml:"disable_smtputf8"`
}

// ListenerTLS configures STARTTLS.
type ListenerTLS struct {
	// CertFile and KeyFile are the PEM certificate chain and key; both or
	// neither. Default none (no STARTTLS). They are read again when they
	// change.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// Require refuses MAIL before STARTTLS (530 5.7.0). Default false.
	Require bool `yaml:"require"`
}

// ListenerLimits bound a client's resources.
type ListenerLimits struct {
	// MaxMessageSize is the SIZE advertised and enforced (RFC 1870).
	// Default 25MiB.
	MaxMessageSize Size `yaml:"max_message_size"`
	// MaxHeaderSize bounds the header section. Default 256KiB.
	MaxHeaderSize Size `yaml:"max_header_size"`
	// MaxRecipients caps RCPT per message. Default 100.
	MaxRecipients int `yaml:"max_recipients"`
	// MaxConnections caps simultaneous connections. Default 1000.
	MaxConnections int `yaml:"max_connections"`
	// MaxConnectionsPerIP caps those of one client address (IPv6 per
	// /64). Default 20.
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip"`
	// ReadTimeout bounds the wait for each command. Default 5m.
	ReadTimeout Duration `yaml:"read_timeout"`
	// DataTimeout bounds the whole DATA transfer. Default 10m.
	DataTimeout Duration `yaml:"data_timeout"`
	// ProcessTimeout bounds the analysis, decision and delivery of one
	// message. Default 5m.
	ProcessTimeout Duration `yaml:"process_timeout"`
}

// ProxyConfig configures the PROXY protocol (HAProxy v1 and v2).
type ProxyConfig struct {
	// TrustedCIDRs are the load balancers allowed to send a PROXY header
	// naming the client; connections from elsewhere are direct clients.
	// Empty (the default) disables the PROXY protocol.
	TrustedCIDRs []string `yaml:"trusted_cidrs"`
	// HeaderTimeout bounds the wait for the header. Default 5s.
	HeaderTimeout Duration `yaml:"header_timeout"`
}

// Downstream types.
const (
	DownstreamMaildir = "maildir"
	DownstreamSMTP    = "smtp"
	DownstreamLMTP    = "lmtp"
)

// DownstreamConfig is where delivered messages go.
type DownstreamConfig struct {
	// Type is "maildir" (default: one Maildir per recipient under
	// Maildir), "smtp" or "lmtp" (to Hosts).
	Type string `yaml:"type"`
	// Hosts are the SMTP or LMTP servers, tried in order while delivery
	// fails temporarily: "host:port", or "unix:/path" for LMTP over a
	// Unix socket. Required for smtp and lmtp.
	Hosts []string `yaml:"hosts,omitempty"`
	// Maildir is the directory of the maildir type. Default
	// <data_dir>/maildir.
	Maildir string `yaml:"maildir,omitempty"`
	// TLS is "opportunistic" (default: STARTTLS when offered, RFC 7435),
	// "required" (verified certificate) or "off".
	TLS string `yaml:"tls,omitempty"`
	// TLSServerName is the name the certificate must carry in required
	// mode. Default: the host being tried.
	TLSServerName string `yaml:"tls_server_name,omitempty"`
	// CAFile is a PEM file of CAs for required mode. Default: the system
	// pool.
	CAFile string `yaml:"ca_file,omitempty"`
	// ConnectTimeout bounds the TCP connect. Default 10s.
	ConnectTimeout Duration `yaml:"connect_timeout,omitempty"`
	// CommandTimeout bounds each command's reply. Default 60s.
	CommandTimeout Duration `yaml:"command_timeout,omitempty"`
	// DataTimeout bounds sending the message and its reply. Default 3m.
	DataTimeout Duration `yaml:"data_timeout,omitempty"`
	// MaxIdlePerHost is how many idle connections are pooled per host
	// for reuse. Default 16; -1 disables reuse.
	MaxIdlePerHost int `yaml:"max_idle_per_host,omitempty"`
	// IdleTimeout is how long an idle connection is kept. Default 30s.
	IdleTimeout Duration `yaml:"idle_timeout,omitempty"`
	// MaxMessagesPerConn closes a connection after that many messages.
	// Default 100.
	MaxMessagesPerConn int `yaml:"max_messages_per_conn,omitempty"`
}

// StoreConfig configures the store.
type StoreConfig struct {
	// EvidenceRetention is how long evidence records are kept. Default
	// 90d.
	EvidenceRetention Duration `yaml:"evidence_retention"`
	// QuarantineRetention is how long quarantined messages are kept.
	// Default 30d.
	QuarantineRetention Duration `yaml:"quarantine_retention"`
	// PruneInterval is how often expired records and messages are
	// deleted. Default 1h.
	PruneInterval Duration `yaml:"prune_interval"`
	// BatchWait is how long the store's writer, holding one record, waits
	// for more before it commits them together (one fsync per batch).
	// The records of delivered, rejected and deferred messages are
	// written after their reply, so the wait delays no reply; a
	// quarantined message's 250 waits for it. Default 50ms.
	BatchWait Duration `yaml:"batch_wait"`
}

// MetricsConfig configures the HTTP server of /metrics (Prometheus text
// format) and /healthz.
type MetricsConfig struct {
	// Address is "host:port". Default 127.0.0.1:9425.
	Address string `yaml:"address"`
	// Disabled turns the server off. Default false.
	Disabled bool `yaml:"disabled"`
	// Pprof also serves the Go profiler under /debug/pprof/ (for
	// performance work; keep the address on the loopback). Default false.
	Pprof bool `yaml:"pprof"`
}

// LoggingConfig configures the logs (log/slog on standard error).
type LoggingConfig struct {
	// Level is "debug", "info" (default), "warn" or "error".
	Level string `yaml:"level"`
	// Format is "text" (default) or "json".
	Format string `yaml:"format"`
}

// Load reads the file at path, refusing unknown fields, and fills in the
// defaults. An empty path means no file: Default(). Call Validate before
// use.
func Load(path string) (*Config, error) {
	if path == "" {
		return Default(), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse reads a configuration from YAML, refusing unknown fields, and fills
// in the defaults.
func Parse(b []byte) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	c := &Config{}
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, &Error{Msg: cleanYAMLError(err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &Error{Msg: "more than one YAML document"}
	}
	c.fill()
	return c, nil
}

// cleanYAMLError shortens the decoder's messages ("yaml: unmarshal errors:\n
// line 3: field x not found in type config.Config").
func cleanYAMLError(err error) string {
	s := strings.TrimPrefix(err.Error(), "yaml: ")
	s = strings.TrimPrefix(s, "unmarshal errors:\n")
	lines := strings.Split(s, "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, "; ")
}

// Default returns the configuration used without a file: one loopback
// listener, Maildir delivery under ./portcullis-data, metrics on the
// loopback.
func Default() *Config {
	c := &Config{}
	c.fill()
	return c
}

// Hostname returns os.Hostname() when it is a usable name, else
// "localhost".
func Hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" || strings.ContainsAny(h, " \t;()\"\\") {
		return "localhost"
	}
	return h
}

// fill sets every zero field to its default.
func (c *Config) fill() {
	str := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	dur := func(p *Duration, v time.Duration) {
		if *p == 0 {
			*p = Duration(v)
		}
	}
	num := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	str(&c.DataDir, DefaultDataDir)
	str(&c.Hostname, Hostname())
	str(&c.AuthServID, c.Hostname)
	dur(&c.DNS.Timeout, 2*time.Second)
	num(&c.DNS.Attempts, 2)
	num(&c.DNS.Cache.MaxEntries, 100000)
	dur(&c.DNS.Cache.MaxTTL, 24*time.Hour)
	dur(&c.DNS.Cache.MaxNegativeTTL, time.Hour)
	dur(&c.DNS.Cache.FailureTTL, 5*time.Second)
	str(&c.Analysis.DMARCMode, "rfc9989")
	dur(&c.Analysis.CheckTimeout, 20*time.Second)
	num(&c.Analysis.MaxDKIMSignatures, 5)
	if len(c.Listeners) == 0 {
		c.Listeners = []ListenerConfig{{Name: DefaultListenerName, Address: DefaultSMTPAddress}}
	}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		str(&l.Hostname, c.Hostname)
		if len(l.AcceptDomains) == 0 && isLoopback(l.Address) {
			l.AcceptDomains = append([]string(nil), DefaultLoopbackDomains...)
		}
		str(&l.BareLineEndings, "reject")
		lim := &l.Limits
		if lim.MaxMessageSize == 0 {
			lim.MaxMessageSize = 25 << 20
		}
		if lim.MaxHeaderSize == 0 {
			lim.MaxHeaderSize = 256 << 10
		}
		num(&lim.MaxRecipients, 100)
		num(&lim.MaxConnections, 1000)
		num(&lim.MaxConnectionsPerIP, 20)
		dur(&lim.ReadTimeout, 5*time.Minute)
		dur(&lim.DataTimeout, 10*time.Minute)
		dur(&lim.ProcessTimeout, 5*time.Minute)
		dur(&l.Proxy.HeaderTimeout, 5*time.Second)
	}
	d := &c.Downstream
	str(&d.Type, DownstreamMaildir)
	if d.Type == DownstreamMaildir {
		str(&d.Maildir, filepath.Join(c.DataDir, "maildir"))
	}
	if d.Type == DownstreamSMTP || d.Type == DownstreamLMTP {
		str(&d.TLS, "opportunistic")
		dur(&d.ConnectTimeout, 10*time.Second)
		dur(&d.CommandTimeout, 60*time.Second)
		dur(&d.DataTimeout, 3*time.Minute)
		num(&d.MaxIdlePerHost, 16)
		dur(&d.IdleTimeout, 30*time.Second)
		num(&d.MaxMessagesPerConn, 100)
	}
	// The policy with its defaults laid under what the file sets.
	base := policy.Set{Default: *policy.Default(), Listeners: map[string]policy.Policy{"": c.Policy}}
	c.Policy = *base.For("")
	dur(&c.Store.EvidenceRetention, 90*24*time.Hour)
	dur(&c.Store.QuarantineRetention, 30*24*time.Hour)
	dur(&c.Store.PruneInterval, time.Hour)
	dur(&c.Store.BatchWait, 50*time.Millisecond)
	str(&c.Metrics.Address, DefaultMetricsAddress)
	str(&c.Logging.Level, "info")
	str(&c.Logging.Format, "text")
	dur(&c.ShutdownTimeout, 30*time.Second)
	c.fillMilter()
	c.fillGovernance()
}

// YAML returns the effective configuration as YAML: every default filled
// in, in field order. It is what `portcullis config show` prints and what
// Hash digests.
func (c *Config) YAML() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Hash returns the configuration version: "sha256:" and the hex SHA-256 of
// YAML(). Two files that differ only in what they leave to the defaults
// have the same version.
func (c *Config) Hash() (string, error) {
	y, err := c.YAML()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(y)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}
