// Package milterd implements `portcullis milter` as one process: from a
// validated configuration it builds what the SMTP gateway builds (the DNS
// resolver and cache, the analysis of SPF RFC 7208, DKIM RFC 6376, ARC RFC
// 8617, iprev RFC 8601 §3 and DMARC RFC 9989, the policy with the governed
// exceptions and trusted sealers, the evidence store and the quarantine) and
// puts the milter (package milter, the milter protocol of Postfix and
// Sendmail) in front of it instead of SMTP listeners. It also serves
// Prometheus metrics and /healthz, prunes expired records, sends quarantine
// notifications through the MTA's release listener, and shuts down
// gracefully.
//
// The command runs a Daemon; the tests that compare the two inbound paths
// run the same code.
package milterd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"portcullis/internal/analysis"
	"portcullis/internal/audit"
	"portcullis/internal/config"
	"portcullis/internal/governance"
	"portcullis/internal/metrics"
	"portcullis/internal/milter"
	"portcullis/internal/pipeline"
	"portcullis/internal/quarantine"
	"portcullis/internal/store"
	"portcullis/internal/store/sqlite"
)

// Options are the parts of a Daemon that do not come from the
// configuration file.
type Options struct {
	// Logger receives the logs. Default: the configuration's logging
	// section, on standard error.
	Logger *slog.Logger
	// Version is the program version, for the build_info metric.
	Version string
	// Observer, when set, sees every outcome after the metrics do.
	Observer pipeline.Observer
}

// Daemon is a milter process, built and ready to serve.
type Daemon struct {
	cfg  *config.Config
	sec  *config.MilterConfig
	log  *slog.Logger
	hash string

	store    *sqlite.Store
	gov      *governance.Service
	audit    *audit.Log
	notifier *quarantine.Notifier
	releaser *milter.Releaser
	pipe     *pipeline.Pipeline
	srv      *milter.Server
	ln       net.Listener
	reg      *prometheus.Registry
	httpSrv  *http.Server
	httpLn   net.Listener

	observers []pipeline.Observer
	cancelBg  context.CancelFunc
	bg        sync.WaitGroup
	served    chan error
	stopOnce  sync.Once
	stopErr   error
}

// New builds a Daemon from cfg (validated here): it opens the store
// (creating the data directory), loads the governed exceptions and sealers,
// and binds the milter's listen address and the metrics address. Nothing is
// served until Start.
func New(ctx context.Context, cfg *config.Config, o Options) (_ *Daemon, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, sec: cfg.MilterSection(), log: o.Logger, reg: prometheus.NewRegistry(), served: make(chan error, 1)}
	if d.log == nil {
		d.log = cfg.Logger(os.Stderr)
	}
	defer func() {
		if err != nil {
			d.closeParts()
		}
	}()

	if d.store, d.hash, err = cfg.OpenStore(ctx, d.log); err != nil {
		return nil, err
	}
	resolver, cache, err := cfg.Resolver()
	if err != nil {
		return nil, err
	}
	an, err := analysis.New(cfg.AnalysisConfig(resolver))
	if err != nil {
		return nil, err
	}

	// Governance: the exceptions and trusted sealers in force apply to
	// the milter's mail exactly as to the gateway's (the same store).
	aopts, err := cfg.AuditOptions()
	if err != nil {
		return nil, err
	}
	if d.audit, err = audit.New(d.store, aopts); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if d.gov, err = governance.New(d.audit, cfg.GovernanceSettings(), &governance.Options{Logger: d.log}); err != nil {
		return nil, fmt.Errorf("governance: %w", err)
	}
	if err := d.gov.Refresh(ctx, true); err != nil {
		return nil, fmt.Errorf("governance: %w", err)
	}
	// Released mail and quarantine notifications go back into the MTA
	// through its milter-less listener.
	switch d.releaser, err = cfg.MilterReleaser(d.log); {
	case err == nil:
		d.notifier = quarantine.NewNotifier(d.store, quarantine.NotifierOptions{
			Deliverer: d.releaser, Governance: d.gov, DefaultFrom: cfg.Governance.NotificationsFrom,
			Lookback: cfg.Store.QuarantineRetention.D(), Logger: d.log,
		})
		if err := d.notifier.ReloadSettings(ctx); err != nil {
			return nil, fmt.Errorf("notifications: %w", err)
		}
	case errors.Is(err, milter.ErrNoRelease):
		d.releaser = nil
		d.log.Warn("milter.release.via is not set: messages the milter quarantines cannot be released, and this process sends no quarantine notifications")
	default:
		return nil, err
	}

	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics.RegisterInfo(d.reg, o.Version, d.hash)
	metrics.RegisterDNSCache(d.reg, cache)
	metrics.RegisterStore(d.reg, d.store)
	d.observers = append(d.observers, metrics.NewPipeline(d.reg), govObserver{d.gov, d.notifier})
	if o.Observer != nil {
		d.observers = append(d.observers, o.Observer)
	}
	d.pipe, err = pipeline.New(pipeline.Config{
		Analyzer: an, Policies: cfg.MilterPolicySet(), Store: d.store, Deliverer: milter.Deliverer(),
		AuthServID: cfg.AuthServID, ExtraServIDs: cfg.AuthResults.OurIDs, TrustedServIDs: cfg.AuthResults.TrustedIDs,
		RemoveUntrusted: cfg.AuthResults.RemoveUntrusted, HeaderLimits: an.Config().HeaderLimits,
		ConfigVersion: d.hash, QuarantineRetention: cfg.Store.QuarantineRetention.D(),
		Observer: d, Logger: d.log, PolicySource: d.gov,
	})
	if err != nil {
		return nil, err
	}
	if d.srv, err = milter.NewServer(d.pipe, cfg.MilterServer(d.log)); err != nil {
		return nil, err
	}
	if d.ln, err = milter.Listen(d.sec.Listen); err != nil {
		return nil, fmt.Errorf("milter.listen: %w", err)
	}
	if !d.sec.MetricsDisabled {
		if d.httpLn, err = net.Listen("tcp", d.sec.MetricsAddress); err != nil {
			return nil, fmt.Errorf("milter.metrics_address: %w", err)
		}
	}
	return d, nil
}

// Observe implements pipeline.Observer: it fans the outcome out.
func (d *Daemon) Observe(tx *pipeline.Transaction, out *pipeline.Outcome) {
	for _, o := range d.observers {
		o.Observe(tx, out)
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

// Addr is the milter's bound listen address.
func (d *Daemon) Addr() net.Addr { return d.ln.Addr() }

// MetricsAddr is the bound metrics address (nil when disabled).
func (d *Daemon) MetricsAddr() net.Addr {
	if d.httpLn == nil {
		return nil
	}
	return d.httpLn.Addr()
}

// Store returns the evidence and quarantine store.
func (d *Daemon) Store() store.Store { return d.store }

// Releaser returns the re-injection into the MTA (nil without
// milter.release.via).
func (d *Daemon) Releaser() *milter.Releaser { return d.releaser }

// ConfigVersion is the version every evidence record names.
func (d *Daemon) ConfigVersion() string { return d.hash }

// Start serves the milter and the metrics, and starts the background work
// (governance refresh and hit counters, notifications, pruning).
func (d *Daemon) Start() {
	if d.httpLn != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", d.healthz)
		d.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := d.httpSrv.Serve(d.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Error("metrics server stopped", "err", err)
			}
		}()
	}
	go func() { d.served <- d.srv.Serve(d.ln) }()
	ctx, cancel := context.WithCancel(context.Background())
	d.cancelBg = cancel
	d.bg.Add(2)
	go func() {
		defer d.bg.Done()
		if err := d.gov.Run(ctx); err != nil {
			d.log.Error("governance stopped", "err", err)
		}
	}()
	go func() {
		defer d.bg.Done()
		// Retention: every run that removes evidence or quarantined
		// mail is recorded in the audit log.
		d.cfg.Retention(d.store, d.audit).Loop(ctx, d.cfg.Store.PruneInterval.D(), d.log)
	}()
	if d.notifier != nil {
		d.bg.Add(1)
		go func() {
			defer d.bg.Done()
			if err := d.notifier.Run(ctx, d.cfg.Governance.RefreshInterval.D()); err != nil {
				d.log.Error("notifications stopped", "err", err)
			}
		}()
	}
	attrs := []any{"listen", d.ln.Addr().String(), "config_version", d.hash, "data_dir", d.cfg.DataDir,
		"name", d.sec.Name, "release_via", d.sec.Release.Via}
	if a := d.MetricsAddr(); a != nil {
		attrs = append(attrs, "metrics", a.String())
	}
	d.log.Info("portcullis milter started", attrs...)
}

// Run starts the daemon, serves until ctx ends (or the listener fails),
// then shuts down within shutdown_timeout.
func (d *Daemon) Run(ctx context.Context) error {
	d.Start()
	var err error
	select {
	case <-ctx.Done():
	case err = <-d.served:
		d.log.Error("milter listener stopped", "err", err)
	}
	d.log.Info("shutting down: finishing the messages in flight", "timeout", d.cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), d.cfg.ShutdownTimeout.D())
	defer cancel()
	return errors.Join(err, d.Shutdown(sctx))
}

// Shutdown stops accepting MTA connections and lets the messages in flight
// finish; connections left when ctx ends are closed (the MTA tempfails
// their messages). Then the background work stops and the store closes,
// committing the evidence queued.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.stopOnce.Do(func() {
		var errs []error
		if err := d.srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			errs = append(errs, fmt.Errorf("milter: %w", err))
		}
		if d.cancelBg != nil {
			d.cancelBg()
			d.bg.Wait()
		}
		if d.httpSrv != nil {
			hctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = d.httpSrv.Shutdown(hctx)
			cancel()
		}
		d.closeParts()
		d.stopErr = errors.Join(errs...)
		d.log.Info("portcullis milter stopped")
	})
	return d.stopErr
}

// closeParts closes what New opened.
func (d *Daemon) closeParts() {
	if d.ln != nil {
		_ = d.ln.Close()
	}
	if d.httpLn != nil && d.httpSrv == nil {
		_ = d.httpLn.Close()
	}
	if d.releaser != nil {
		_ = d.releaser.Close()
	}
	if d.store != nil {
		if err := d.store.Close(); err != nil {
			d.log.Error("store close", "err", err)
		}
	}
}

// healthz answers 200 while the store answers.
func (d *Daemon) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := d.store.GetConfigVersion(ctx, d.hash); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "store unavailable\n")
		return
	}
	_, _ = io.WriteString(w, "ok\n")
}
