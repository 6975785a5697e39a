package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"time"

	"portcullis/internal/authres"
	"portcullis/internal/policy"
	"portcullis/internal/relay"
	"portcullis/internal/smtpgw"
)

// policyPath matches the item paths of the policy package's errors:
// "own_domain.action", "exceptions[0] (id \"x\")".
var policyPath = regexp.MustCompile(`^[a-z_]+(\[[0-9]+\])?(\.[a-z_]+(\[[0-9]+\])?)*( \(.*\))?$`)

var listenerName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// isLoopback reports whether a listener address binds only the loopback
// interface: "127.0.0.1:2525", "[::1]:25", "localhost:2525".
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// anyPort reports an address whose port the system chooses (":0"), which
// never collides with another.
func anyPort(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "0"
}

// Validate checks the configuration and returns the first error, naming
// the item at fault by its YAML path (e.g. "listeners[1].address: ...").
func (c *Config) Validate() error {
	if strings.TrimSpace(c.DataDir) == "" {
		return errorf("data_dir", "must not be empty")
	}
	if c.Hostname == "" || strings.ContainsAny(c.Hostname, " \t\r\n") {
		return errorf("hostname", "%q is not a host name", c.Hostname)
	}
	if err := validServID(c.AuthServID); err != nil {
		return errorf("authserv_id", "%v", err)
	}
	sp := authres.StripPolicy{ServIDs: append([]string{c.AuthServID}, c.AuthResults.OurIDs...), Trusted: c.AuthResults.TrustedIDs}
	for i, id := range c.AuthResults.OurIDs {
		if err := validServID(id); err != nil {
			return errorf(fmt.Sprintf("authentication_results.our_ids[%d]", i), "%v", err)
		}
	}
	for i, id := range c.AuthResults.TrustedIDs {
		if err := validServID(id); err != nil {
			return errorf(fmt.Sprintf("authentication_results.trusted_ids[%d]", i), "%v", err)
		}
		if sp.Ours(id) {
			return errorf(fmt.Sprintf("authentication_results.trusted_ids[%d]", i), "%q is one of our own authserv-ids: a field claiming it can only be forged", id)
		}
	}
	if err := c.validateDNS(); err != nil {
		return err
	}
	switch c.Analysis.DMARCMode {
	case "rfc9989", "rfc7489":
	default:
		return errorf("analysis.dmarc_mode", "%q: want rfc9989 or rfc7489", c.Analysis.DMARCMode)
	}
	if c.Analysis.CheckTimeout < 0 {
		return errorf("analysis.check_timeout", "must not be negative")
	}
	if c.Analysis.MaxDKIMSignatures < -1 {
		return errorf("analysis.max_dkim_signatures", "must be -1 (no limit) or more")
	}
	if err := c.validatePolicies(); err != nil {
		return err
	}
	if err := c.validateListeners(); err != nil {
		return err
	}
	if err := c.validateDownstream(); err != nil {
		return err
	}
	if err := c.validateMilter(); err != nil {
		return err
	}
	if err := c.validateGovernance(); err != nil {
		return err
	}
	for _, d := range []struct {
		path string
		v    Duration
	}{{"store.evidence_retention", c.Store.EvidenceRetention}, {"store.quarantine_retention", c.Store.QuarantineRetention}, {"store.prune_interval", c.Store.PruneInterval}, {"store.batch_wait", c.Store.BatchWait}, {"shutdown_timeout", c.ShutdownTimeout}} {
		if d.v < 0 {
			return errorf(d.path, "must not be negative")
		}
	}
	if c.Store.BatchWait > Duration(time.Second) {
		return errorf("store.batch_wait", "%s is more than 1s: quarantined messages wait for it", c.Store.BatchWait)
	}
	if !c.Metrics.Disabled {
		if _, _, err := net.SplitHostPort(c.Metrics.Address); err != nil {
			return errorf("metrics.address", "%q is not host:port", c.Metrics.Address)
		}
		for i, l := range c.Listeners {
			if l.Address == c.Metrics.Address && !anyPort(l.Address) {
				return errorf("metrics.address", "%s is also the address of listeners[%d]", l.Address, i)
			}
		}
	}
	switch strings.ToLower(c.Logging.Level) {
	case "debug", "info", "warn", "error":
	default:
		return errorf("logging.level", "%q: want debug, info, warn or error", c.Logging.Level)
	}
	switch c.Logging.Format {
	case "text", "json":
	default:
		return errorf("logging.format", "%q: want text or json", c.Logging.Format)
	}
	return nil
}

// validServID checks an authserv-id: RFC 8601 §2.2 makes it a value
// (token or quoted-string); Portcullis requires a token, as written in
// practice (a host name).
func validServID(id string) error {
	if id == "" {
		return errors.New("must not be empty")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?=`, c) >= 0 {
			return fmt.Errorf("%q is not a token (RFC 8601 §2.2): it may not contain %q", id, string(c))
		}
	}
	return nil
}

func (c *Config) validateDNS() error {
	d := &c.DNS
	if d.ZoneFile != "" && len(d.Servers) > 0 {
		return errorf("dns.zone_file", "excludes dns.servers")
	}
	for i, s := range d.Servers {
		host := s
		if h, _, err := net.SplitHostPort(s); err == nil {
			host = h
		}
		if _, err := netip.ParseAddr(host); err != nil {
			return errorf(fmt.Sprintf("dns.servers[%d]", i), "%q: want an IP address, optionally with :port", s)
		}
	}
	switch {
	case d.Timeout <= 0:
		return errorf("dns.timeout", "must be positive")
	case d.Attempts < 1:
		return errorf("dns.attempts", "must be at least 1")
	case d.Cache.MaxEntries < 1:
		return errorf("dns.cache.max_entries", "must be at least 1")
	case d.Cache.MaxTTL < 0:
		return errorf("dns.cache.max_ttl", "must not be negative")
	case d.Cache.MaxNegativeTTL < 0:
		return errorf("dns.cache.max_negative_ttl", "must not be negative")
	}
	return nil
}

func (c *Config) validatePolicies() error {
	if err := c.Policy.Validate(); err != nil {
		return policyError("policy", err)
	}
	names := make([]string, 0, len(c.Policies))
	for n := range c.Policies {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !listenerName.MatchString(n) {
			return errorf("policies."+n, "a policy name is 1-63 letters, digits, '.', '-' or '_'")
		}
		s := policy.Set{Default: c.Policy, Listeners: map[string]policy.Policy{n: c.Policies[n]}}
		if err := s.For(n).Validate(); err != nil {
			return policyError("policies."+n, err)
		}
	}
	return nil
}

// policyError names a policy error by its full YAML path: the policy
// package reports "policy: invalid: own_domain.action: ...".
func policyError(prefix string, err error) error {
	msg := strings.TrimPrefix(err.Error(), policy.ErrInvalid.Error()+": ")
	if path, rest, ok := strings.Cut(msg, ": "); ok && policyPath.MatchString(path) {
		return errorf(prefix+"."+path, "%s", rest)
	}
	return errorf(prefix, "%s", msg)
}

func (c *Config) validateListeners() error {
	seenName := map[string]int{}
	seenAddr := map[string]int{}
	for i, l := range c.Listeners {
		p := fmt.Sprintf("listeners[%d]", i)
		if !listenerName.MatchString(l.Name) {
			return errorf(p+".name", "%q: want 1-63 letters, digits, '.', '-' or '_'", l.Name)
		}
		if j, ok := seenName[l.Name]; ok {
			return errorf(p+".name", "%q is also the name of listeners[%d]", l.Name, j)
		}
		seenName[l.Name] = i
		host, port, err := net.SplitHostPort(l.Address)
		if err != nil || port == "" {
			return errorf(p+".address", "%q is not host:port", l.Address)
		}
		if host != "" && !strings.EqualFold(host, "localhost") {
			if _, err := netip.ParseAddr(host); err != nil {
				return errorf(p+".address", "%q: the host must be an IP address, localhost or empty (every address)", l.Address)
			}
		}
		if j, ok := seenAddr[l.Address]; ok && !anyPort(l.Address) {
			return errorf(p+".address", "%s is also the address of listeners[%d]", l.Address, j)
		}
		seenAddr[l.Address] = i
		if len(l.AcceptDomains) == 0 {
			return errorf(p+".accept_domains", "required on a listener that is not on the loopback (%s): list the domains this gateway receives mail for; it never relays", l.Address)
		}
		if l.Policy != "" {
			if _, ok := c.Policies[l.Policy]; !ok {
				return errorf(p+".policy", "%q is not defined under policies", l.Policy)
			}
		}
		if (l.TLS.CertFile == "") != (l.TLS.KeyFile == "") {
			return errorf(p+".tls", "cert_file and key_file go together")
		}
		if l.TLS.Require && l.TLS.CertFile == "" {
			return errorf(p+".tls.require", "needs cert_file and key_file")
		}
		switch l.BareLineEndings {
		case "reject", "normalize":
		default:
			return errorf(p+".bare_line_endings", "%q: want reject or normalize", l.BareLineEndings)
		}
		lim := l.Limits
		switch {
		case lim.MaxMessageSize < 1024:
			return errorf(p+".limits.max_message_size", "%s is too small (at least 1KiB)", lim.MaxMessageSize)
		case lim.MaxHeaderSize < 1024:
			return errorf(p+".limits.max_header_size", "%s is too small (at least 1KiB)", lim.MaxHeaderSize)
		case lim.MaxHeaderSize > lim.MaxMessageSize:
			return errorf(p+".limits.max_header_size", "exceeds max_message_size")
		case lim.MaxRecipients < 1:
			return errorf(p+".limits.max_recipients", "must be at least 1")
		case lim.MaxConnections < 1:
			return errorf(p+".limits.max_connections", "must be at least 1")
		case lim.MaxConnectionsPerIP < 1:
			return errorf(p+".limits.max_connections_per_ip", "must be at least 1")
		case lim.MaxConnectionsPerIP > lim.MaxConnections:
			return errorf(p+".limits.max_connections_per_ip", "%d exceeds max_connections %d", lim.MaxConnectionsPerIP, lim.MaxConnections)
		case lim.ReadTimeout <= 0:
			return errorf(p+".limits.read_timeout", "must be positive")
		case lim.DataTimeout <= 0:
			return errorf(p+".limits.data_timeout", "must be positive")
		case lim.ProcessTimeout <= 0:
			return errorf(p+".limits.process_timeout", "must be positive")
		}
		for j, cidr := range l.Proxy.TrustedCIDRs {
			if _, err := netip.ParsePrefix(cidr); err != nil {
				if _, err2 := netip.ParseAddr(cidr); err2 != nil {
					return errorf(fmt.Sprintf("%s.proxy_protocol.trusted_cidrs[%d]", p, j), "%q is not an address or CIDR range", cidr)
				}
			}
		}
		// The listener package checks the rest (domain syntax).
		if err := c.smtpListener(l).Validate(); err != nil {
			msg := err.Error()
			if _, rest, ok := strings.Cut(msg, fmt.Sprintf("listener %q: ", l.Name)); ok {
				msg = rest
			}
			return errorf(p, "%s", msg)
		}
	}
	return nil
}

func (c *Config) validateDownstream() error {
	d := &c.Downstream
	switch d.Type {
	case DownstreamMaildir:
		if len(d.Hosts) > 0 {
			return errorf("downstream.hosts", "not used by type maildir")
		}
		if d.Maildir == "" {
			return errorf("downstream.maildir", "must not be empty")
		}
		return nil
	case DownstreamSMTP, DownstreamLMTP:
	default:
		return errorf("downstream.type", "%q: want maildir, smtp or lmtp", d.Type)
	}
	if d.Maildir != "" {
		return errorf("downstream.maildir", "only used by type maildir")
	}
	if len(d.Hosts) == 0 {
		return errorf("downstream.hosts", "type %s needs at least one host", d.Type)
	}
	for i, h := range d.Hosts {
		p := fmt.Sprintf("downstream.hosts[%d]", i)
		if strings.HasPrefix(h, "unix:") || strings.HasPrefix(h, "/") {
			if strings.TrimPrefix(h, "unix:") == "" {
				return errorf(p, "empty socket path")
			}
			continue
		}
		if _, port, err := net.SplitHostPort(h); err != nil || port == "" {
			return errorf(p, "%q is not host:port or unix:/path", h)
		}
		for j, l := range c.Listeners {
			if l.Address == h {
				return errorf(p, "%s is listeners[%d] itself: the gateway would deliver to itself", h, j)
			}
		}
	}
	if _, err := relay.ParseTLSMode(d.TLS); err != nil {
		return errorf("downstream.tls", "%q: want opportunistic, required or off", d.TLS)
	}
	switch {
	case d.ConnectTimeout <= 0:
		return errorf("downstream.connect_timeout", "must be positive")
	case d.CommandTimeout <= 0:
		return errorf("downstream.command_timeout", "must be positive")
	case d.DataTimeout <= 0:
		return errorf("downstream.data_timeout", "must be positive")
	case d.MaxIdlePerHost < -1:
		return errorf("downstream.max_idle_per_host", "must be -1 (no reuse) or more")
	case d.IdleTimeout <= 0:
		return errorf("downstream.idle_timeout", "must be positive")
	case d.MaxMessagesPerConn < 1:
		return errorf("downstream.max_messages_per_conn", "must be at least 1")
	}
	return nil
}

// smtpListener converts one listener to the listener package's config.
func (c *Config) smtpListener(l ListenerConfig) smtpgw.ListenerConfig {
	return smtpgw.ListenerConfig{
		Name: l.Name, Address: l.Address, Hostname: l.Hostname,
		TLSCertFile: l.TLS.CertFile, TLSKeyFile: l.TLS.KeyFile, RequireTLS: l.TLS.Require,
		MaxMessageBytes: int64(l.Limits.MaxMessageSize), MaxRecipients: l.Limits.MaxRecipients,
		MaxHeaderBytes: int(l.Limits.MaxHeaderSize),
		ReadTimeout:    l.Limits.ReadTimeout.D(), DataTimeout: l.Limits.DataTimeout.D(), HandlerTimeout: l.Limits.ProcessTimeout.D(),
		MaxConnections: l.Limits.MaxConnections, MaxConnectionsPerIP: l.Limits.MaxConnectionsPerIP,
		ProxyProtocol: len(l.Proxy.TrustedCIDRs) > 0, ProxyTrustedCIDRs: l.Proxy.TrustedCIDRs, ProxyHeaderTimeout: l.Proxy.HeaderTimeout.D(),
		AcceptDomains:   l.AcceptDomains,
		BareLineEndings: smtpgw.BareLineMode(l.BareLineEndings),
		DisableSMTPUTF8: l.DisableSMTPUTF8,
	}
}
