package config

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"portcullis/internal/milter"
	"portcullis/internal/policy"
	"portcullis/internal/relay"
)

// Defaults of the milter section.
const (
	// DefaultMilterListen is where `portcullis milter` listens: the
	// loopback, port 8891 (Postfix: smtpd_milters = inet:127.0.0.1:8891).
	DefaultMilterListen = "inet:127.0.0.1:8891"
	// DefaultMilterMetricsAddress serves the milter's /metrics and
	// /healthz, beside the gateway's 9425.
	DefaultMilterMetricsAddress = "127.0.0.1:9426"
)

// MilterConfig configures `portcullis milter`, the milter inside Postfix
// (docs/postfix.md). It uses the rest of the file (data_dir, authserv_id,
// authentication_results, dns, analysis, policy, policies, store, logging)
// like `portcullis serve` does; listeners and downstream are not used: the
// MTA receives and delivers.
type MilterConfig struct {
	// Listen is "unix:/path/to/socket" or "inet:HOST:PORT" (also
	// "inet6:[::1]:PORT" and Sendmail's "inet:PORT@HOST"). Default
	// inet:127.0.0.1:8891.
	Listen string `yaml:"listen"`
	// Name names this inbound path in evidence records and selects its
	// policy. Default "milter".
	Name string `yaml:"name"`
	// Policy names the override in policies that applies to the milter's
	// mail. Default none: the policy section.
	Policy string `yaml:"policy,omitempty"`
	// MaxMessageSize bounds the message the milter buffers; a larger one is
	// refused with 552 5.3.4. Default 25MiB; keep it at or above Postfix's
	// message_size_limit.
	MaxMessageSize Size `yaml:"max_message_size"`
	// MaxRecipients bounds the recipients of a message. Default 1000.
	MaxRecipients int `yaml:"max_recipients"`
	// Timeout is the deadline of the checks and the decision for one
	// message. Keep it below Postfix's milter_content_timeout (default
	// 300s). Default 2m.
	Timeout Duration `yaml:"timeout"`
	// ProgressInterval is how often the milter tells Postfix it is still
	// working on a message (which restarts Postfix's timer). Default 30s.
	ProgressInterval Duration `yaml:"progress_interval"`
	// IdleTimeout closes a milter connection idle for this long. Default
	// 10m.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// Authenticated is what happens to mail from clients that
	// authenticated to Postfix (SASL submission): "accept" (default)
	// passes it unchecked, "check" applies the inbound policy to it too.
	Authenticated string `yaml:"authenticated"`
	// Release says how released messages go back into Postfix.
	Release MilterReleaseConfig `yaml:"release"`
	// MetricsAddress serves /metrics and /healthz of the milter process.
	// Default 127.0.0.1:9426.
	MetricsAddress string `yaml:"metrics_address"`
	// MetricsDisabled turns that server off. Default false.
	MetricsDisabled bool `yaml:"metrics_disabled"`
}

// MilterReleaseConfig configures the re-injection of released messages.
type MilterReleaseConfig struct {
	// Via is the "host:port" of a Postfix smtpd that runs no milter
	// (master.cf: "-o smtpd_milters="), e.g. 127.0.0.1:10026. Default
	// none: releasing a message the milter quarantined is refused.
	Via string `yaml:"via,omitempty"`
	// TLS is "off", "opportunistic" or "required". Default "off" (the
	// loopback).
	TLS string `yaml:"tls"`
	// Timeout bounds one re-injection. Default 2m.
	Timeout Duration `yaml:"timeout"`
}

// fillMilter sets the milter section's defaults, when the section is
// present.
func (c *Config) fillMilter() {
	m := c.Milter
	if m == nil {
		return
	}
	if m.Listen == "" {
		m.Listen = DefaultMilterListen
	}
	if m.Name == "" {
		m.Name = milter.DefaultListener
	}
	if m.MaxMessageSize == 0 {
		m.MaxMessageSize = milter.DefaultMaxMessageBytes
	}
	if m.MaxRecipients == 0 {
		m.MaxRecipients = milter.DefaultMaxRecipients
	}
	if m.Timeout == 0 {
		m.Timeout = Duration(milter.DefaultTimeout)
	}
	if m.ProgressInterval == 0 {
		m.ProgressInterval = Duration(milter.DefaultProgressInterval)
	}
	if m.IdleTimeout == 0 {
		m.IdleTimeout = Duration(milter.DefaultIdleTimeout)
	}
	if m.Authenticated == "" {
		m.Authenticated = string(milter.AuthenticatedAccept)
	}
	if m.Release.TLS == "" {
		m.Release.TLS = "off"
	}
	if m.Release.Timeout == 0 {
		m.Release.Timeout = Duration(2 * time.Minute)
	}
	if m.MetricsAddress == "" {
		m.MetricsAddress = DefaultMilterMetricsAddress
	}
}

// MilterSection returns the milter section with its defaults: the file's,
// or the defaults alone when the file has none.
func (c *Config) MilterSection() *MilterConfig {
	if c.Milter == nil {
		d := &Config{Milter: &MilterConfig{}}
		d.fillMilter()
		return d.Milter
	}
	return c.Milter
}

// validateMilter checks the milter section (when present).
func (c *Config) validateMilter() error {
	if c.Milter == nil {
		return nil
	}
	m := c.MilterSection()
	if _, _, err := milter.ParseAddress(m.Listen); err != nil {
		return errorf("milter.listen", "%q: want unix:/path or inet:HOST:PORT", m.Listen)
	}
	if !listenerName.MatchString(m.Name) {
		return errorf("milter.name", "%q: letters, digits, '.', '_' and '-'", m.Name)
	}
	for i, l := range c.Listeners {
		if l.Name == m.Name {
			return errorf("milter.name", "%q is also the name of listeners[%d]", m.Name, i)
		}
	}
	if m.Policy != "" {
		if _, ok := c.Policies[m.Policy]; !ok {
			return errorf("milter.policy", "no policy %q in policies", m.Policy)
		}
	}
	switch {
	case m.MaxMessageSize < 1024:
		return errorf("milter.max_message_size", "must be at least 1KiB")
	case m.MaxRecipients < 1:
		return errorf("milter.max_recipients", "must be at least 1")
	case m.Timeout <= 0:
		return errorf("milter.timeout", "must be positive")
	case m.ProgressInterval < 0:
		return errorf("milter.progress_interval", "must not be negative")
	case m.IdleTimeout <= 0:
		return errorf("milter.idle_timeout", "must be positive")
	case m.Release.Timeout <= 0:
		return errorf("milter.release.timeout", "must be positive")
	}
	switch milter.AuthenticatedMode(m.Authenticated) {
	case milter.AuthenticatedAccept, milter.AuthenticatedCheck:
	default:
		return errorf("milter.authenticated", "%q: want accept or check", m.Authenticated)
	}
	if m.Release.Via != "" {
		if _, _, err := net.SplitHostPort(m.Release.Via); err != nil {
			return errorf("milter.release.via", "%q is not host:port", m.Release.Via)
		}
	}
	if _, err := relay.ParseTLSMode(m.Release.TLS); err != nil {
		return errorf("milter.release.tls", "%q: want off, opportunistic or required", m.Release.TLS)
	}
	if !m.MetricsDisabled {
		if _, _, err := net.SplitHostPort(m.MetricsAddress); err != nil {
			return errorf("milter.metrics_address", "%q is not host:port", m.MetricsAddress)
		}
		if !c.Metrics.Disabled && m.MetricsAddress == c.Metrics.Address {
			return errorf("milter.metrics_address", "%s is also metrics.address (the gateway's); the two processes need their own", m.MetricsAddress)
		}
	}
	return nil
}

// MilterServer returns the milter's configuration (MilterSection).
func (c *Config) MilterServer(log *slog.Logger) milter.Config {
	m := c.MilterSection()
	return milter.Config{
		Listener:         m.Name,
		MaxMessageBytes:  int64(m.MaxMessageSize),
		MaxRecipients:    m.MaxRecipients,
		Timeout:          m.Timeout.D(),
		ProgressInterval: m.ProgressInterval.D(),
		IdleTimeout:      m.IdleTimeout.D(),
		Authenticated:    milter.AuthenticatedMode(m.Authenticated),
		Logger:           log,
	}
}

// MilterPolicySet is PolicySet with the milter's policy override (when
// milter.policy names one) under the milter's name.
func (c *Config) MilterPolicySet() *policy.Set {
	s := c.PolicySet()
	m := c.MilterSection()
	if m.Policy != "" {
		if s.Listeners == nil {
			s.Listeners = map[string]policy.Policy{}
		}
		s.Listeners[m.Name] = c.Policies[m.Policy]
	}
	return s
}

// MilterReleaser returns the Releaser of milter.release, or
// milter.ErrNoRelease when milter.release.via is not set.
func (c *Config) MilterReleaser(log *slog.Logger) (*milter.Releaser, error) {
	m := c.MilterSection()
	mode, err := relay.ParseTLSMode(m.Release.TLS)
	if err != nil {
		return nil, fmt.Errorf("milter.release.tls: %w", err)
	}
	return milter.NewReleaser(milter.ReleaseConfig{
		Via: m.Release.Via, LocalName: c.Hostname, TLS: mode, Timeout: m.Release.Timeout.D(), Logger: log,
	})
}
