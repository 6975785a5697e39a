package config

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"portcullis/internal/analysis"
	"portcullis/internal/dmarc"
	"portcullis/internal/dns"
	"portcullis/internal/policy"
	"portcullis/internal/relay"
	"portcullis/internal/smtpgw"
	"portcullis/internal/store/sqlite"
)

// SMTP returns the configuration of the SMTP listeners.
func (c *Config) SMTP(log *slog.Logger) smtpgw.Config {
	out := smtpgw.Config{Logger: log}
	for _, l := range c.Listeners {
		out.Listeners = append(out.Listeners, c.smtpListener(l))
	}
	return out
}

// PolicySet returns the policy of every listener: Policy, with the named
// override of each listener that selects one.
func (c *Config) PolicySet() *policy.Set {
	s := &policy.Set{Default: c.Policy, Listeners: map[string]policy.Policy{}}
	for _, l := range c.Listeners {
		if l.Policy != "" {
			s.Listeners[l.Name] = c.Policies[l.Policy]
		}
	}
	return s
}

// Resolver builds the DNS resolver: the zone file in lab mode, else a stub
// resolver; either behind a cache, which is returned too (for its
// statistics).
func (c *Config) Resolver() (dns.Resolver, *dns.Cache, error) {
	var next dns.Resolver
	if c.DNS.ZoneFile != "" {
		z, err := dns.LoadZoneFile(c.DNS.ZoneFile)
		if err != nil {
			return nil, nil, fmt.Errorf("dns.zone_file: %w", err)
		}
		next = z
	} else {
		cl, err := dns.NewClient(dns.ClientConfig{Servers: c.DNS.Servers, Timeout: c.DNS.Timeout.D(), Attempts: c.DNS.Attempts})
		if err != nil {
			return nil, nil, fmt.Errorf("dns: %w", err)
		}
		next = cl
	}
	cache := dns.NewCache(next, dns.CacheConfig{
		MaxEntries: c.DNS.Cache.MaxEntries, MaxTTL: c.DNS.Cache.MaxTTL.D(),
		MaxNegativeTTL: c.DNS.Cache.MaxNegativeTTL.D(), FailureTTL: c.DNS.Cache.FailureTTL.D(),
	})
	return cache, cache, nil
}

// AnalysisConfig returns the analysis configuration over resolver r. The
// structured SPF trace is off: the gateway does not keep it.
func (c *Config) AnalysisConfig(r dns.Resolver) analysis.Config {
	mode := dmarc.RFC9989
	if c.Analysis.DMARCMode == "rfc7489" {
		mode = dmarc.RFC7489
	}
	return analysis.Config{
		AuthServID: c.AuthServID, Resolver: r, DMARCMode: mode,
		MaxDKIMSignatures: c.Analysis.MaxDKIMSignatures, CheckTimeout: c.Analysis.CheckTimeout.D(),
	}
}

// Deliverer builds the downstream: Maildir, or an SMTP/LMTP client. The
// returned closer (nil for Maildir) releases pooled connections.
func (c *Config) Deliverer(log *slog.Logger) (relay.Deliverer, io.Closer, error) {
	d := c.Downstream
	if d.Type == DownstreamMaildir {
		m, err := relay.NewMaildir(relay.MaildirConfig{Dir: d.Maildir, Hostname: c.Hostname, Logger: log})
		if err != nil {
			return nil, nil, fmt.Errorf("downstream.maildir: %w", err)
		}
		return m, nil, nil
	}
	mode, err := relay.ParseTLSMode(d.TLS)
	if err != nil {
		return nil, nil, fmt.Errorf("downstream.tls: %w", err)
	}
	s, err := relay.NewSMTP(relay.SMTPConfig{
		Hosts: d.Hosts, LMTP: d.Type == DownstreamLMTP, LocalName: c.Hostname,
		ConnectTimeout: d.ConnectTimeout.D(), CommandTimeout: d.CommandTimeout.D(), DataTimeout: d.DataTimeout.D(),
		TLS: mode, TLSServerName: d.TLSServerName, CAFile: d.CAFile,
		MaxIdlePerHost: d.MaxIdlePerHost, IdleTimeout: d.IdleTimeout.D(), MaxMessagesPerConn: d.MaxMessagesPerConn,
		Logger: log,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("downstream: %w", err)
	}
	return s, s, nil
}

// Logger returns the slog logger the logging section describes, writing
// to w.
func (c *Config) Logger(w io.Writer) *slog.Logger {
	var level slog.Level
	switch strings.ToLower(c.Logging.Level) {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Logging.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// OpenStore creates the data directory, opens the evidence store in it
// and records this configuration's version there, so that every evidence
// record's config_version can be looked up. It returns the store and the
// version (Hash). Both inbound paths, the gateway and the milter, start
// with it.
func (c *Config) OpenStore(ctx context.Context, log *slog.Logger) (_ *sqlite.Store, version string, err error) {
	yamlText, err := c.YAML()
	if err != nil {
		return nil, "", err
	}
	if version, err = c.Hash(); err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, "", fmt.Errorf("data_dir: %w", err)
	}
	st, err := sqlite.Open(ctx, c.DataDir, &sqlite.Options{Logger: log, BatchWait: c.Store.BatchWait.D()})
	if err != nil {
		return nil, "", fmt.Errorf("store: %w", err)
	}
	if err := st.PutConfigVersion(ctx, version, string(yamlText)); err != nil {
		st.Close()
		return nil, "", fmt.Errorf("store: config version: %w", err)
	}
	return st, version, nil
}
