package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	gomilter "github.com/d--j/go-milter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"portcullis/internal/analysis"
	"portcullis/internal/audit"
	"portcullis/internal/config"
	"portcullis/internal/governance"
	"portcullis/internal/metrics"
	"portcullis/internal/milter"
	"portcullis/internal/pipeline"
	"portcullis/internal/quarantine"
	"portcullis/internal/store/sqlite"
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
			return runMilter(ctx, c, c.Logger(cmd.ErrOrStderr()), nil)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "YAML configuration file (default: the embedded defaults)")
	cmd.Flags().StringVar(&listen, "listen", "", "listen address, unix:/path or inet:HOST:PORT (default: milter.listen, "+config.DefaultMilterListen+")")
	return cmd
}

// runMilter builds the milter's parts from c (which passed Validate) and
// serves until ctx ends; ready, when set, is called with the bound address
// once the milter accepts connections.
func runMilter(ctx context.Context, c *config.Config, log *slog.Logger, ready func(net.Addr)) (err error) {
	m := c.MilterSection()
	// go-milter reports protocol trouble (a peer that broke the
	// protocol, a failed negotiation) through this hook of the library.
	gomilter.LogWarning = func(format string, v ...any) {
		log.Warn(fmt.Sprintf(format, v...), "component", "milter-protocol")
	}
	yamlText, err := c.YAML()
	if err != nil {
		return err
	}
	hash, err := c.Hash()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	st, err := sqlite.Open(ctx, c.DataDir, &sqlite.Options{Logger: log})
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer func() {
		if cerr := st.Close(); cerr != nil {
			log.Error("store close", "err", cerr)
		}
	}()
	if err := st.PutConfigVersion(ctx, hash, string(yamlText)); err != nil {
		return fmt.Errorf("store: config version: %w", err)
	}
	resolver, cache, err := c.Resolver()
	if err != nil {
		return err
	}
	an, err := analysis.New(c.AnalysisConfig(resolver))
	if err != nil {
		return err
	}
	// Governance: the exceptions and trusted sealers in force apply to the
	// milter's mail exactly as to the gateway's (the same store).
	aopts, err := c.AuditOptions()
	if err != nil {
		return err
	}
	alog, err := audit.New(st, aopts)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	gov, err := governance.New(alog, c.GovernanceSettings(), &governance.Options{Logger: log})
	if err != nil {
		return fmt.Errorf("governance: %w", err)
	}
	if err := gov.Refresh(ctx, true); err != nil {
		return fmt.Errorf("governance: %w", err)
	}
	// Notifications (digests of held mail, partner alerts, expiry
	// warnings) go out through Postfix's milter-less listener, like
	// released mail.
	var notifier *quarantine.Notifier
	releaser, err := c.MilterReleaser(log)
	switch {
	case err == nil:
		defer releaser.Close()
		notifier = quarantine.NewNotifier(st, quarantine.NotifierOptions{
			Deliverer: releaser, Governance: gov, DefaultFrom: c.Governance.NotificationsFrom,
			Lookback: c.Store.QuarantineRetention.D(), Logger: log,
		})
		if err := notifier.ReloadSettings(ctx); err != nil {
			return fmt.Errorf("notifications: %w", err)
		}
	case errors.Is(err, milter.ErrNoRelease):
		log.Warn("milter.release.via is not set: messages the milter quarantines cannot be released, and no quarantine notifications are sent from this process")
	default:
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics.RegisterInfo(reg, version, hash)
	metrics.RegisterDNSCache(reg, cache)
	metrics.RegisterStore(reg, st)
	pipe, err := pipeline.New(pipeline.Config{
		Analyzer: an, Policies: c.MilterPolicySet(), Store: st, Deliverer: milter.Deliverer(),
		AuthServID: c.AuthServID, ExtraServIDs: c.AuthResults.OurIDs, TrustedServIDs: c.AuthResults.TrustedIDs,
		RemoveUntrusted: c.AuthResults.RemoveUntrusted, HeaderLimits: an.Config().HeaderLimits,
		ConfigVersion: hash, QuarantineRetention: c.Store.QuarantineRetention.D(),
		Observer: observers{metrics.NewPipeline(reg), govObserver{gov, notifier}}, Logger: log,
		PolicySource: gov,
	})
	if err != nil {
		return err
	}
	srv, err := milter.NewServer(pipe, c.MilterServer(log))
	if err != nil {
		return err
	}
	ln, err := milter.Listen(m.Listen)
	if err != nil {
		return fmt.Errorf("milter.listen: %w", err)
	}
	var httpSrv *http.Server
	if !m.MetricsDisabled {
		hl, err := net.Listen("tcp", m.MetricsAddress)
		if err != nil {
			ln.Close()
			return fmt.Errorf("milter.metrics_address: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
			hctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if _, err := st.GetConfigVersion(hctx, hash); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, "store unavailable\n")
				return
			}
			io.WriteString(w, "ok\n")
		})
		httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := httpSrv.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server stopped", "err", err)
			}
		}()
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	pruneDone := make(chan struct{})
	go pruneLoop(ctx, c, st, log, pruneDone)
	// Governance refresh, hit counters and recorded expiries; the
	// notifications. Both stop with bctx, before the store closes.
	bctx, bcancel := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		if err := gov.Run(bctx); err != nil {
			log.Error("governance stopped", "err", err)
		}
	}()
	if notifier != nil {
		bg.Add(1)
		go func() {
			defer bg.Done()
			if err := notifier.Run(bctx, c.Governance.RefreshInterval.D()); err != nil {
				log.Error("notifications stopped", "err", err)
			}
		}()
	}
	log.Info("portcullis milter started", "listen", ln.Addr().String(), "config_version", hash, "data_dir", c.DataDir,
		"name", m.Name, "release_via", m.Release.Via)
	if ready != nil {
		ready(ln.Addr())
	}

	select {
	case <-ctx.Done():
	case err = <-served:
		log.Error("milter listener stopped", "err", err)
	}
	log.Info("shutting down: finishing the messages in flight", "timeout", c.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), c.ShutdownTimeout.D())
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil && !errors.Is(serr, context.DeadlineExceeded) {
		log.Error("milter shutdown", "err", serr)
	}
	<-pruneDone
	bcancel()
	bg.Wait()
	if httpSrv != nil {
		_ = httpSrv.Shutdown(sctx)
	}
	log.Info("portcullis milter stopped")
	return err
}

// pruneLoop deletes expired evidence and quarantined messages on
// store.prune_interval until ctx ends.
func pruneLoop(ctx context.Context, c *config.Config, st *sqlite.Store, log *slog.Logger, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(c.Store.PruneInterval.D())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			pctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
			res, err := st.Prune(pctx, now, c.Store.EvidenceRetention.D(), c.Store.QuarantineRetention.D())
			cancel()
			if err != nil {
				log.Error("retention pruning failed", "err", err)
				continue
			}
			if res.Evidence+res.Quarantine+res.Orphans > 0 {
				log.Info("retention pruning", "evidence", res.Evidence, "quarantine", res.Quarantine, "orphans", res.Orphans)
			}
		}
	}
}

// observers fans a pipeline outcome out to several observers.
type observers []pipeline.Observer

func (o observers) Observe(tx *pipeline.Transaction, out *pipeline.Outcome) {
	for _, x := range o {
		x.Observe(tx, out)
	}
}

// govObserver feeds the governance hit counters and the partner-watch
// alerts; neither does I/O on the message's path.
type govObserver struct {
	gov      *governance.Service
	notifier *quarantine.Notifier
}

func (g govObserver) Observe(_ *pipeline.Transaction, out *pipeline.Outcome) {
	if out.Record == nil {
		return
	}
	g.gov.OnDecision(context.Background(), *out.Record)
	if g.notifier != nil {
		g.notifier.OnDecision(context.Background(), *out.Record)
	}
}
