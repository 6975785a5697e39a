package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"portcullis/internal/config"
	"portcullis/internal/governance"
)

func TestGovernanceSection(t *testing.T) {
	c, err := config.Parse([]byte("hostname: gw.corp.example\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	g := c.GovernanceSettings()
	if g.MaxLifetime.Std() != governance.DefaultMaxLifetime || g.WarnBefore.Std() != governance.DefaultWarnBefore || g.Users != nil {
		t.Errorf("defaults: %+v", g)
	}
	if c.Governance.NotificationsFrom != "postmaster@gw.corp.example" || c.QuarantineSettings().ReleaseRequiresApproval {
		t.Errorf("defaults: %+v", c.Governance)
	}
	if o, err := c.AuditOptions(); err != nil || o.Key != nil {
		t.Errorf("no key file: %+v, %v", o, err)
	}

	dir := t.TempDir()
	key := filepath.Join(dir, "audit.key")
	if err := os.WriteFile(key, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	y := `hostname: gw.corp.example
store:
  quarantine_retention: 14d
governance:
  max_lifetime: 30d
  warn_before: 7d
  users: {alice: operator, bob: admin}
  release_requires_approval: true
  audit_key_file: ` + key + "\n"
	c, err = config.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	g = c.GovernanceSettings()
	if g.MaxLifetime.Std() != 30*24*time.Hour || g.WarnBefore.Std() != 7*24*time.Hour || g.Users["bob"] != governance.RoleAdmin {
		t.Errorf("settings: %+v", g)
	}
	q := c.QuarantineSettings()
	if !q.ReleaseRequiresApproval || q.Retention.Std() != 14*24*time.Hour {
		t.Errorf("quarantine: %+v", q)
	}
	o, err := c.AuditOptions()
	if err != nil || string(o.Key) != "0123456789abcdef0123" {
		t.Errorf("key: %q, %v", o.Key, err)
	}
	yml, err := c.YAML()
	if err != nil || !strings.Contains(string(yml), "release_requires_approval: true") || strings.Contains(string(yml), "0123456789") {
		t.Errorf("effective YAML:\n%s", yml)
	}
	if err := os.WriteFile(key, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AuditOptions(); !errors.Is(err, config.ErrInvalid) {
		t.Errorf("short key: %v", err)
	}
	c.Governance.AuditKeyFile = filepath.Join(dir, "missing")
	if _, err := c.AuditOptions(); err == nil {
		t.Error("missing key file accepted")
	}
}
