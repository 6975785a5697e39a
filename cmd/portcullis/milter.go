package main

import (
	"fmt"
	"os/signal"
	"syscall"

	gomilter "github.com/d--j/go-milter"
	"github.com/spf13/cobra"

	"portcullis/internal/config"
	"portcullis/internal/milterd"
)

func newMilterCmd(g *globalFlags) *cobra.Command {
	var configPath, listen string
	cmd := &cobra.Command{
		Use:   "milter [--config FILE] [--listen unix:PATH|inet:HOST:PORT]",
		Short: "Run Portcullis as a milter inside Postfix: the same policy on the MTA's inbound path",
		Long: `Run the milter: Postfix (smtpd_milters) hands every message to Portcullis,
which runs the same checks and the same policy as "portcullis serve" and
answers at the end of the message:

  deliver     our Authentication-Results added at the top, forged ones
              removed; Postfix delivers
  reject      550 5.7.x to the sender
  defer       451 4.7.x; the sender retries
  quarantine  stored in Portcullis's quarantine, then discarded from
              Postfix (the sender gets 250); a release re-injects it
              through milter.release.via

Every message leaves one evidence record (path "milter", with Postfix's
queue id). Any internal error is a 451. Set milter_default_action =
tempfail in Postfix, never accept: see docs/postfix.md.

The configuration is the gateway's file (docs/config.md) with its milter
section; listeners and downstream are not used. --listen replaces
milter.listen. SIGINT or SIGTERM stops it: no new connections, the
messages in flight get shutdown_timeout to finish.`,
		Example: `  portcullis milter --config /etc/portcullis/portcullis.yaml
  portcullis --dns-zone examples/lab.zone milter --listen inet:127.0.0.1:8891`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadConfig(cmd, g, configPath)
			if err != nil {
				return err
			}
			if listen != "" {
				m := *c.MilterSection()
				m.Listen = listen
				c.Milter = &m
				if err := c.Validate(); err != nil {
					return fmt.Errorf("--listen: %w", err)
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			log := c.Logger(cmd.ErrOrStderr())
			// go-milter reports protocol trouble (a peer that broke the
			// protocol, a failed negotiation) through this hook of the
			// library.
			gomilter.LogWarning = func(format string, v ...any) {
				log.Warn(fmt.Sprintf(format, v...), "component", "milter-protocol")
			}
			d, err := milterd.New(ctx, c, milterd.Options{Logger: log, Version: version})
			if err != nil {
				return err
			}
			return d.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "YAML configuration file (default: the embedded defaults)")
	cmd.Flags().StringVar(&listen, "listen", "", "listen address, unix:/path or inet:HOST:PORT (default: milter.listen, "+config.DefaultMilterListen+")")
	return cmd
}
