package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"portcullis/internal/config"
	"portcullis/internal/evidence"
	"portcullis/internal/testutil"
)

// TestBadConfigs checks that every file of testdata/bad is refused with the
// error written beside it (NAME.err holds a substring of the message).
func TestBadConfigs(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil || len(files) < 30 {
		t.Fatalf("%d bad configs: %v", len(files), err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(strings.TrimSuffix(f, ".yaml") + ".err")
			if err != nil {
				t.Fatalf("no .err beside %s: %v", f, err)
			}
			c, err := config.Load(f)
			if err == nil {
				err = c.Validate()
			}
			if err == nil {
				t.Fatalf("accepted")
			}
			if !strings.Contains(err.Error(), strings.TrimSpace(string(want))) {
				t.Errorf("error %q\nwant it to contain %q", err, strings.TrimSpace(string(want)))
			}
			if !errors.Is(err, config.ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	c, err := config.Load(filepath.Join(testutil.RepoRoot(), "examples", "portcullis.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Listeners[1].Limits.MaxMessageSize != 25<<20 || c.Listeners[0].Limits.MaxMessageSize != 50<<20 {
		t.Errorf("sizes %v %v", c.Listeners[0].Limits.MaxMessageSize, c.Listeners[1].Limits.MaxMessageSize)
	}
	set := c.PolicySet()
	if got := set.For("partners").DMARCQuarantine.Action; got != evidence.Deliver {
		t.Errorf("partners dmarc_quarantine %q", got)
	}
	if got := set.For("mx").DMARCQuarantine.Action; got != evidence.Quarantine {
		t.Errorf("mx dmarc_quarantine %q", got)
	}
	if got := set.For("partners").OwnDomain.Domains; len(got) != 2 {
		t.Errorf("partners lost own-domain protection: %v", got)
	}
	if c.Store.EvidenceRetention.D() != 180*24*time.Hour {
		t.Errorf("retention %v", c.Store.EvidenceRetention)
	}
	sc := c.SMTP(nil)
	if err := sc.Validate(); err != nil || !sc.Listeners[1].ProxyProtocol {
		t.Errorf("smtp config %+v: %v", sc.Listeners[1], err)
	}
}

func TestDefaults(t *testing.T) {
	c := config.Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	l := c.Listeners[0]
	if l.Address != config.DefaultSMTPAddress || l.Name != "local" || len(l.AcceptDomains) != 4 ||
		c.Metrics.Address != config.DefaultMetricsAddress || c.Downstream.Type != config.DownstreamMaildir ||
		c.Downstream.Maildir != filepath.Join(config.DefaultDataDir, "maildir") || c.AuthServID != c.Hostname {
		t.Errorf("defaults %+v", c)
	}
	// An empty file is the default configuration, with the same version.
	e, err := config.Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	h1, _ := c.Hash()
	h2, _ := e.Hash()
	if h1 != h2 || !strings.HasPrefix(h1, "sha256:") || len(h1) != 7+64 {
		t.Errorf("hashes %s %s", h1, h2)
	}
}

// TestHashIsOfTheEffectiveConfig: spelling a default out does not change the
// version; changing a value does.
func TestHashIsOfTheEffectiveConfig(t *testing.T) {
	hash := func(y string) string {
		t.Helper()
		c, err := config.Parse([]byte(y))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		h, err := c.Hash()
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	base := hash("hostname: mx.example.org\n")
	if got := hash("hostname: mx.example.org\ndns:\n  timeout: 2s\npolicy:\n  dmarc_reject:\n    action: reject\n"); got != base {
		t.Error("spelling out defaults changed the version")
	}
	if got := hash("hostname: mx.example.org\npolicy:\n  dmarc_reject:\n    action: quarantine\n"); got == base {
		t.Error("a policy change kept the version")
	}
}

// TestShowRoundTrip: the effective YAML loads back to the same version.
func TestShowRoundTrip(t *testing.T) {
	c, err := config.Load(filepath.Join(testutil.RepoRoot(), "examples", "portcullis.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	y, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := config.Parse(y)
	if err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	if err := c2.Validate(); err != nil {
		t.Fatal(err)
	}
	h1, _ := c.Hash()
	h2, _ := c2.Hash()
	if h1 != h2 {
		t.Errorf("versions differ after a round trip:\n%s", y)
	}
}

func TestDurationAndSize(t *testing.T) {
	for in, want := range map[string]time.Duration{"30s": 30 * time.Second, "90d": 90 * 24 * time.Hour, "1h30m": 90 * time.Minute, "0": 0} {
		d, err := config.ParseDuration(in)
		if err != nil || d.D() != want {
			t.Errorf("ParseDuration(%q) = %v, %v", in, d, err)
		}
	}
	for _, bad := range []string{"", "1.5d", "-3d", "3 days", "1y"} {
		if _, err := config.ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) accepted", bad)
		}
	}
	for in, want := range map[string]int64{"1000": 1000, "512KiB": 512 << 10, "25MiB": 25 << 20, "1GiB": 1 << 30} {
		s, err := config.ParseSize(in)
		if err != nil || int64(s) != want {
			t.Errorf("ParseSize(%q) = %v, %v", in, s, err)
		}
		if s.String() != in {
			t.Errorf("Size(%d).String() = %q, want %q", want, s.String(), in)
		}
	}
	for _, bad := range []string{"", "25MB", "-1", "1.5MiB", "99999999999GiB"} {
		if _, err := config.ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
	for d, want := range map[time.Duration]string{5 * time.Minute: "5m", 2 * time.Hour: "2h", 48 * time.Hour: "2d", 90 * time.Second: "1m30s", 0: "0s"} {
		if got := config.Duration(d).String(); got != want {
			t.Errorf("Duration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestLoopbackDefaultDomains(t *testing.T) {
	for addr, loop := range map[string]bool{"127.0.0.1:2525": true, "[::1]:25": true, "localhost:25": true, "0.0.0.0:25": false, ":25": false, "192.0.2.1:25": false} {
		c, err := config.Parse([]byte("listeners:\n  - name: l\n    address: \"" + addr + "\"\n"))
		if err != nil {
			t.Fatal(err)
		}
		err = c.Validate()
		if loop && err != nil {
			t.Errorf("%s: %v", addr, err)
		}
		if !loop && (err == nil || !strings.Contains(err.Error(), "listeners[0].accept_domains")) {
			t.Errorf("%s: %v", addr, err)
		}
	}
}
