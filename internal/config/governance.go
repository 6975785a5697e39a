package config

import (
	"fmt"
	"os"
	"strings"
	"time"

	"portcullis/internal/audit"
	"portcullis/internal/governance"
	"portcullis/internal/quarantine"
)

// GovernanceConfig configures governance (docs/governance.md): who may
// request and approve exceptions, trusted ARC sealers and quarantine
// releases, how long an exception may live, and the audit log's key. The
// exceptions and sealers themselves are stored objects managed with
// `portcullis exception` and `portcullis sealer`; notification settings
// are stored too (`portcullis notifications`), so that every change to
// them is audited.
type GovernanceConfig struct {
	// MaxLifetime bounds how far ahead an exception or sealer may expire,
	// counted from its request or renewal. Default 90d.
	MaxLifetime Duration `yaml:"max_lifetime"`
	// WarnBefore is how long before its expiry the owner is warned and
	// `portcullis config review` reports it. Default 14d.
	WarnBefore Duration `yaml:"warn_before"`
	// Users maps actor names to roles: "operator" (requests, revokes,
	// releases when no approval is needed) or "admin" (also approves).
	// Default none: every actor has every role, and the config review
	// says so. An approver must differ from the requester either way.
	Users map[string]string `yaml:"users,omitempty"`
	// ReleaseRequiresApproval makes every quarantine release a request
	// that an admin, not the requester, approves. Default false.
	ReleaseRequiresApproval bool `yaml:"release_requires_approval"`
	// AuditKeyFile names a file holding the key (at least 16 bytes) that
	// authenticates every audit entry with an HMAC. Keep it outside
	// data_dir. Default none (a plain hash chain).
	AuditKeyFile string `yaml:"audit_key_file,omitempty"`
	// NotificationsFrom is the From address of digests, alerts and expiry
	// warnings unless the stored notification settings name another.
	// Default "postmaster@" + hostname.
	NotificationsFrom string `yaml:"notifications_from"`
	// RefreshInterval is how often the gateway looks for governance
	// changes made by another process (the CLI). Default 2s.
	RefreshInterval Duration `yaml:"refresh_interval"`
	// ActorAuth says how the CLI's --actor is checked. "" (the default)
	// takes it as given: a claimed name, recorded as claimed. ActorAuthOS
	// requires it to be the operating-system account that runs the
	// command (for a command run as root through sudo, the account sudo
	// ran it for), so that the second-person rule rests on accounts, not
	// on names anyone can type.
	ActorAuth string `yaml:"actor_auth,omitempty"`
}

// ActorAuthOS is the governance.actor_auth value that binds --actor to the
// operating-system account running the CLI.
const ActorAuthOS = "os"

// fillGovernance sets the governance defaults.
func (c *Config) fillGovernance() {
	g := &c.Governance
	if g.MaxLifetime == 0 {
		g.MaxLifetime = Duration(governance.DefaultMaxLifetime)
	}
	if g.WarnBefore == 0 {
		g.WarnBefore = Duration(governance.DefaultWarnBefore)
	}
	if g.RefreshInterval == 0 {
		g.RefreshInterval = Duration(governance.DefaultRefreshInterval)
	}
	if g.NotificationsFrom == "" {
		g.NotificationsFrom = "postmaster@" + c.Hostname
	}
}

// validateGovernance checks the governance section.
func (c *Config) validateGovernance() error {
	g := &c.Governance
	for _, d := range []struct {
		path string
		v    Duration
	}{{"governance.max_lifetime", g.MaxLifetime}, {"governance.warn_before", g.WarnBefore}, {"governance.refresh_interval", g.RefreshInterval}} {
		if d.v < 0 {
			return errorf(d.path, "must not be negative")
		}
	}
	if g.RefreshInterval > 0 && g.RefreshInterval < Duration(100*time.Millisecond) {
		return errorf("governance.refresh_interval", "%s is under 100ms", g.RefreshInterval)
	}
	for actor, role := range g.Users {
		if !audit.ValidActor(actor) {
			return errorf("governance.users", "%q is not an actor name (printable, no spaces)", actor)
		}
		switch governance.Role(role) {
		case governance.RoleOperator, governance.RoleAdmin:
		default:
			return errorf("governance.users."+actor, "role %q: want operator or admin", role)
		}
	}
	switch g.ActorAuth {
	case "", ActorAuthOS:
	default:
		return errorf("governance.actor_auth", "%q: want %q or nothing", g.ActorAuth, ActorAuthOS)
	}
	if g.NotificationsFrom != "" && (!strings.Contains(g.NotificationsFrom, "@") || strings.ContainsAny(g.NotificationsFrom, " \t\r\n<>")) {
		return errorf("governance.notifications_from", "%q is not an address", g.NotificationsFrom)
	}
	return nil
}

// GovernanceRoles returns the users section as roles.
func (c *Config) GovernanceRoles() governance.Roles {
	if len(c.Governance.Users) == 0 {
		return nil
	}
	r := governance.Roles{}
	for a, role := range c.Governance.Users {
		r[a] = governance.Role(role)
	}
	return r
}

// GovernanceSettings returns the configuration of package governance.
func (c *Config) GovernanceSettings() governance.Config {
	return governance.Config{
		MaxLifetime:     governance.Duration(c.Governance.MaxLifetime),
		WarnBefore:      governance.Duration(c.Governance.WarnBefore),
		Users:           c.GovernanceRoles(),
		RefreshInterval: governance.Duration(c.Governance.RefreshInterval),
	}
}

// QuarantineSettings returns the configuration of package quarantine.
func (c *Config) QuarantineSettings() quarantine.Config {
	return quarantine.Config{
		ReleaseRequiresApproval: c.Governance.ReleaseRequiresApproval,
		Retention:               governance.Duration(c.Store.QuarantineRetention),
	}
}

// AuditOptions reads the audit key file, when one is configured, and
// returns the audit log's options.
func (c *Config) AuditOptions() (*audit.Options, error) {
	o := &audit.Options{}
	if c.Governance.AuditKeyFile == "" {
		return o, nil
	}
	b, err := os.ReadFile(c.Governance.AuditKeyFile)
	if err != nil {
		return nil, fmt.Errorf("governance.audit_key_file: %w", err)
	}
	key := []byte(strings.TrimSpace(string(b)))
	if len(key) < 16 {
		return nil, errorf("governance.audit_key_file", "the key is %d bytes, at least 16 are needed", len(key))
	}
	o.Key = key
	return o, nil
}

// Retention returns the retention run of the store section over st, each
// run that removes anything recorded in log.
func (c *Config) Retention(st quarantine.Pruner, log *audit.Log) *quarantine.Retention {
	return &quarantine.Retention{Store: st, Log: log,
		EvidenceRetention: c.Store.EvidenceRetention.D(), QuarantineRetention: c.Store.QuarantineRetention.D()}
}
