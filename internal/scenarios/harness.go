package scenarios

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"portcullis/internal/analysis"
	"portcullis/internal/pipeline"
	"portcullis/internal/store"
	"portcullis/internal/store/sqlite"
)

// AuthServID is the authserv-id of the lab's Portcullis (RFC 8601 §2.5).
const AuthServID = "mx.portcullis.test"

// OpenStore opens a SQLite store in a temporary directory, closed by
// tb.Cleanup.
func OpenStore(tb testing.TB) store.Store {
	tb.Helper()
	st, err := sqlite.Open(context.Background(), tb.TempDir(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	return st
}

// NewPipeline returns the pipeline every path of the scenarios runs: the
// lab's zone as resolver, Policy(), st, and d for delivery.
func (l *Lab) NewPipeline(tb testing.TB, st store.Store, d pipeline.Deliverer) *pipeline.Pipeline {
	tb.Helper()
	an, err := analysis.New(analysis.Config{
		AuthServID:   AuthServID,
		Resolver:     l.Zone,
		CheckTimeout: 2 * time.Second,
	})
	if err != nil {
		tb.Fatal(err)
	}
	p, err := pipeline.New(pipeline.Config{
		Analyzer:      an,
		Policies:      Policy(),
		Store:         st,
		Deliverer:     d,
		AuthServID:    AuthServID,
		ConfigVersion: "sha256:scenarios",
		Logger:        QuietLogger(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// QuietLogger discards logs.
func QuietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// ConfigYAML is the configuration file both inbound paths of the scenarios
// run from: the gateway (`portcullis serve`: an SMTP listener "mx" on a
// port the system picks, delivering to downstream) and the milter
// (`portcullis milter` on a loopback port the system picks), with the
// lab's DNS served at dnsAddr and the policy of Policy() written as YAML.
// DNS queries time out after 300 ms, once: the DNS-timeout scenario
// defers quickly.
func ConfigYAML(dataDir, dnsAddr, downstream string) string {
	return `data_dir: ` + dataDir + `
hostname: ` + AuthServID + `
authserv_id: ` + AuthServID + `
dns:
  servers: ["` + dnsAddr + `"]
  timeout: 300ms
  attempts: 1
analysis:
  check_timeout: 5s
listeners:
  - name: mx
    address: 127.0.0.1:0
    accept_domains: [` + RecipientDomain + `]
downstream:
  type: smtp
  hosts: ["` + downstream + `"]
  tls: "off"
policy:
  own_domain:
    domains: [` + ProtectedDomain + `]
  trusted_arc_sealers:
    sealers:
      - domain: ` + ListDomain + `
        note: the lab's mailing list; seals what it saw before adding its footer
metrics:
  disabled: true
milter:
  listen: inet:127.0.0.1:0
  metrics_disabled: true
`
}
