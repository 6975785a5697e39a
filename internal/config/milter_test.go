package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"portcullis/internal/config"
	"portcullis/internal/evidence"
	"portcullis/internal/milter"
)

func TestMilterSection(t *testing.T) {
	c, err := config.Parse([]byte(`
authserv_id: mx.example.org
milter:
  listen: unix:/run/portcullis/milter.sock
  policy: postfix
  timeout: 90s
  authenticated: check
  release:
    via: 127.0.0.1:10026
policies:
  postfix:
    dmarc_quarantine:
      action: reject
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	m := c.MilterSection()
	if m.Listen != "unix:/run/portcullis/milter.sock" || m.Name != "milter" || m.MaxMessageSize != 25<<20 ||
		m.ProgressInterval.D() != 30*time.Second || m.Release.TLS != "off" || m.MetricsAddress != config.DefaultMilterMetricsAddress {
		t.Errorf("section with defaults %+v", m)
	}
	mc := c.MilterServer(nil)
	if mc.Listener != "milter" || mc.Timeout != 90*time.Second || mc.Authenticated != milter.AuthenticatedCheck || mc.MaxMessageBytes != 25<<20 {
		t.Errorf("milter.Config %+v", mc)
	}
	// The override applies to the milter's mail only.
	set := c.MilterPolicySet()
	if got := set.For("milter").DMARCQuarantine.Action; got != evidence.Reject {
		t.Errorf("milter dmarc_quarantine %q", got)
	}
	if got := set.For("local").DMARCQuarantine.Action; got != evidence.Quarantine {
		t.Errorf("local dmarc_quarantine %q", got)
	}
	r, err := c.MilterReleaser(nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	// The effective configuration shows the section's defaults.
	y, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(y), "progress_interval: 30s") {
		t.Errorf("effective YAML lacks the milter defaults:\n%s", y)
	}
}

func TestMilterSectionAbsent(t *testing.T) {
	c := config.Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	y, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	// A file without the section keeps its version.
	if strings.Contains(string(y), "milter") {
		t.Errorf("effective YAML of a file without a milter section mentions it:\n%s", y)
	}
	m := c.MilterSection()
	if m.Listen != config.DefaultMilterListen || m.Timeout.D() != milter.DefaultTimeout {
		t.Errorf("defaults %+v", m)
	}
	if _, err := c.MilterReleaser(nil); !errors.Is(err, milter.ErrNoRelease) {
		t.Errorf("releaser without release.via: %v", err)
	}
}
