package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"portcullis/internal/config"
	"portcullis/internal/gateway"
)

// loadConfig reads --config (or the defaults without it), lays the global
// DNS flags over its dns section, and validates it.
func loadConfig(cmd *cobra.Command, g *globalFlags, path string) (*config.Config, error) {
	c, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	pf := cmd.Flags()
	switch {
	case g.dnsZone != "" && len(g.dnsServers) > 0:
		return nil, fmt.Errorf("--dns-zone and --dns-server exclude each other")
	case g.dnsZone != "":
		c.DNS.ZoneFile, c.DNS.Servers = g.dnsZone, nil
	case len(g.dnsServers) > 0:
		c.DNS.Servers, c.DNS.ZoneFile = g.dnsServers, ""
	}
	if pf.Changed("dns-timeout") {
		c.DNS.Timeout = config.Duration(g.dnsTimeout)
	}
	if err := c.Validate(); err != nil {
		if path != "" {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return nil, err
	}
	return c, nil
}

// defaultGCPercent is the garbage collector's target of `serve` when GOGC
// is not set (the Go default is 100).
const defaultGCPercent = 400

func newServeCmd(g *globalFlags) *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "serve [--config FILE]",
		Short: "Run the SMTP gateway: analyse, decide, deliver or quarantine, keep the evidence",
		Long: `Run the gateway: SMTP listeners receive each message whole, the checks run
(SPF, DKIM, ARC, iprev, then DMARC), the policy decides, and the message is
rejected (550), deferred (451), quarantined (stored durably, then 250) or
delivered downstream (250 only once the downstream accepted it). Every
message leaves one evidence record (see "portcullis trace").

Without --config the gateway runs on its embedded defaults (docs/config.md):
SMTP on 127.0.0.1:2525 accepting mail for localhost, example.com,
example.net and example.org; data (evidence, quarantine, Maildir delivery)
under ./portcullis-data; Prometheus metrics and /healthz on
127.0.0.1:9425. --dns-zone, --dns-server and --dns-timeout replace the
configuration's dns section.

The garbage collector's target is 400% (GOGC=400) unless GOGC is set: the
heap is small and short-lived, and fewer collections cost less CPU per
message.

SIGINT or SIGTERM stops it gracefully: no new connections, the transactions
in flight finish and are answered, the evidence queue is committed.`,
		Example: `  portcullis --dns-zone examples/lab.zone serve
  portcullis serve --config /etc/portcullis/portcullis.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadConfig(cmd, g, configPath)
			if err != nil {
				return err
			}
			if os.Getenv("GOGC") == "" {
				// The gateway's heap is small and short-lived (one
				// message per transaction): collect less often, for
				// less CPU per message. GOGC overrides it.
				debug.SetGCPercent(defaultGCPercent)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			gw, err := gateway.New(ctx, c, gateway.Options{Logger: c.Logger(cmd.ErrOrStderr()), Version: version})
			if err != nil {
				return err
			}
			return gw.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "YAML configuration file (default: the embedded defaults)")
	return cmd
}

func newConfigCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check or show the gateway's configuration",
	}
	var path string
	check := &cobra.Command{
		Use:   "check [--config FILE]",
		Short: "Validate a configuration file",
		Long: `Read the configuration file (unknown fields are errors), fill in the
defaults and validate it. On success print its version (the sha256 of the
effective configuration, as evidence records name it) and exit 0; otherwise
print the error, which names the item at fault, and exit 2.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadConfig(cmd, g, path)
			if err != nil {
				return err
			}
			h, err := c.Hash()
			if err != nil {
				return err
			}
			name := path
			if name == "" {
				name = "embedded defaults"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: OK, version %s\n", name, h)
			return nil
		},
	}
	show := &cobra.Command{
		Use:   "show [--config FILE]",
		Short: "Print the effective configuration, every default filled in",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadConfig(cmd, g, path)
			if err != nil {
				return err
			}
			y, err := c.YAML()
			if err != nil {
				return err
			}
			h, err := c.Hash()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "# version %s\n%s", h, y)
			return nil
		},
	}
	for _, c := range []*cobra.Command{check, show} {
		c.Flags().StringVar(&path, "config", "", "YAML configuration file (default: the embedded defaults)")
	}
	cmd.AddCommand(check, show)
	return cmd
}
