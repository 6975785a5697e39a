// Package gateway implements the Portcullis SMTP gateway as one process:
// it builds, from a validated configuration, the DNS resolver and cache, the
// analysis (SPF RFC 7208, DKIM RFC 6376, ARC RFC 8617, DMARC RFC 9989), the
// policy, the evidence store, the downstream delivery (SMTP RFC 5321, LMTP RFC
// 2033 or Maildir), the pipeline and the SMTP listeners, with an HTTP server for
// Prometheus metrics and /healthz, retention pruning on a timer, and a
// graceful shutdown that lets the transactions in flight finish.
//
// `portcullis serve` runs a Gateway; the end-to-end tests and the throughput
// benchmark run the same code.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"portcullis/internal/analysis"
	"portcullis/internal/config"
	"portcullis/internal/dns"
	"portcullis/internal/metrics"
	"portcullis/internal/pipeline"
	"portcullis/internal/policy"
	"portcullis/internal/relay"
	"portcullis/internal/smtpgw"
	"portcullis/internal/store"
	"portcullis/internal/store/sqlite"
)

// Options are the parts of a Gateway that do not come from the
// configuration file.
type Options struct {
	// Logger receives the logs. Default: the configuration's logging
	// section, on standard error.
	Logger *slog.Logger
	// Version is the program version, for the build_info metric.
	Version string
	// Deliverer, when set, replaces the configured downstream (tests).
	Deliverer pipeline.Deliverer
	// Observer, when set, sees every outcome after the metrics do.
	Observer pipeline.Observer
}

// Gateway is a running (or ready to run) gateway.
type Gateway struct {
	cfg  *config.Config
	log  *slog.Logger
	hash string

	store     *sqlite.Store
	cache     *dns.Cache
	analyzer  *analysis.Analyzer
	delivery  io.Closer
	pipe      *pipeline.Pipeline
	smtp      *smtpgw.Server
	reg       *prometheus.Registry
	httpSrv   *http.Server
	httpLn    net.Listener
	observers []pipeline.Observer
	gov       *govParts

	running   atomic.Bool
	stopOnce  sync.Once
	stopErr   error
	stopPrune context.CancelFunc
	wg        sync.WaitGroup
}

// New builds a Gateway from cfg, which must have passed Validate. It opens
// the store (creating the data directory) and records the configuration
// version; nothing listens until Start.
func New(ctx context.Context, cfg *config.Config, o Options) (_ *Gateway, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, log: o.Logger, reg: prometheus.NewRegistry()}
	if g.log == nil {
		g.log = cfg.Logger(os.Stderr)
	}
	defer func() {
		if err != nil {
			g.closeParts()
		}
	}()

	if g.store, g.hash, err = cfg.OpenStore(ctx, g.log); err != nil {
		return nil, err
	}

	resolver, cache, err := cfg.Resolver()
	if err != nil {
		return nil, err
	}
	g.cache = cache
	if g.analyzer, err = analysis.New(cfg.AnalysisConfig(resolver)); err != nil {
		return nil, err
	}

	deliverer := o.Deliverer
	if deliverer == nil {
		d, closer, err := cfg.Deliverer(g.log)
		if err != nil {
			return nil, err
		}
		g.delivery = closer
		if s, ok := d.(*relay.SMTP); ok {
			metrics.RegisterRelay(g.reg, s)
		}
		deliverer = pipeline.Relay(d)
	}

	g.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics.RegisterInfo(g.reg, o.Version, g.hash)
	metrics.RegisterDNSCache(g.reg, cache)
	metrics.RegisterStore(g.reg, g.store)
	g.observers = append(g.observers, metrics.NewPipeline(g.reg))
	if o.Observer != nil {
		g.observers = append(g.observers, o.Observer)
	}

	if err := g.initGovernance(ctx, deliverer); err != nil {
		return nil, err
	}
	g.pipe, err = pipeline.New(pipeline.Config{
		Analyzer: g.analyzer, Policies: cfg.PolicySet(), Store: g.store, Deliverer: deliverer,
		AuthServID: cfg.AuthServID, ExtraServIDs: cfg.AuthResults.OurIDs, TrustedServIDs: cfg.AuthResults.TrustedIDs,
		RemoveUntrusted: cfg.AuthResults.RemoveUntrusted, HeaderLimits: g.analyzer.Config().HeaderLimits,
		ConfigVersion: g.hash, QuarantineRetention: cfg.Store.QuarantineRetention.D(),
		Observer: g, Logger: g.log, PolicySource: g.gov.svc,
	})
	if err != nil {
		return nil, err
	}
	if g.smtp, err = smtpgw.New(cfg.SMTP(g.log), smtpgw.HandlerFunc(g.handle)); err != nil {
		return nil, err
	}
	metrics.RegisterSMTP(g.reg, g.smtp.Stats)
	return g, nil
}

// ConfigVersion returns the version of the configuration in effect, as
// written into every evidence record.
func (g *Gateway) ConfigVersion() string { return g.hash }

// Store returns the evidence store.
func (g *Gateway) Store() store.Store { return g.store }

// Pipeline returns the pipeline.
func (g *Gateway) Pipeline() *pipeline.Pipeline { return g.pipe }

// SMTPAddr returns the bound address of the named listener (nil before
// Start).
func (g *Gateway) SMTPAddr(listener string) net.Addr { return g.smtp.Addr(listener) }

// MetricsAddr returns the bound address of the metrics server (nil when
// disabled or before Start).
func (g *Gateway) MetricsAddr() net.Addr {
	if g.httpLn == nil {
		return nil
	}
	return g.httpLn.Addr()
}

// Observe implements pipeline.Observer: it fans the outcome out to the
// metrics and the Options' observer.
func (g *Gateway) Observe(tx *pipeline.Transaction, out *pipeline.Outcome) {
	for _, o := range g.observers {
		o.Observe(tx, out)
	}
}

// Start binds the metrics server and the SMTP listeners and starts the
// pruning timer.
func (g *Gateway) Start() error {
	if !g.cfg.Metrics.Disabled {
		ln, err := net.Listen("tcp", g.cfg.Metrics.Address)
		if err != nil {
			return fmt.Errorf("metrics.address: %w", err)
		}
		g.httpLn = ln
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", g.healthz)
		if g.cfg.Metrics.Pprof {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		g.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := g.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				g.log.Error("metrics server stopped", "err", err)
			}
		}()
	}
	if err := g.smtp.Start(); err != nil {
		if g.httpSrv != nil {
			_ = g.httpSrv.Close()
		}
		return err
	}
	g.running.Store(true)
	// Retention: every run that removes evidence or quarantined mail is
	// recorded in the audit log.
	retention := g.cfg.Retention(g.store, g.gov.log)
	pctx, stopPrune := context.WithCancel(context.Background())
	g.stopPrune = stopPrune
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		retention.Loop(pctx, g.cfg.Store.PruneInterval.D(), g.log)
	}()
	g.startGovernance()
	attrs := []any{"config_version", g.hash, "data_dir", g.cfg.DataDir, "downstream", g.cfg.Downstream.Type}
	for _, l := range g.cfg.Listeners {
		attrs = append(attrs, "listener."+l.Name, g.smtp.Addr(l.Name).String())
	}
	if a := g.MetricsAddr(); a != nil {
		attrs = append(attrs, "metrics", a.String())
	}
	g.log.Info("portcullis gateway started", attrs...)
	return nil
}

// healthz answers 200 while the gateway serves and its store answers,
// 503 otherwise (starting, shutting down, storage failing).
func (g *Gateway) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !g.running.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not serving")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := g.store.GetConfigVersion(ctx, g.hash); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "store unavailable")
		return
	}
	fmt.Fprintln(w, "ok")
}

// Run starts the gateway, serves until ctx ends, then shuts down
// gracefully within the configuration's shutdown_timeout.
func (g *Gateway) Run(ctx context.Context) error {
	if err := g.Start(); err != nil {
		g.closeParts()
		return err
	}
	<-ctx.Done()
	g.log.Info("shutting down: finishing the transactions in flight", "timeout", g.cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), g.cfg.ShutdownTimeout.D())
	defer cancel()
	return g.Shutdown(sctx)
}

// Shutdown stops accepting connections, lets the transactions in flight
// finish (each answered only once its message is downstream, quarantined or
// refused), then drains the evidence queue and closes the store. When ctx
// ends first the remaining sessions are cut: their senders never got a 250,
// so they keep their messages.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.stopOnce.Do(func() {
		g.running.Store(false)
		var errs []error
		if err := g.smtp.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("smtp: %w", err))
		}
		if g.stopPrune != nil {
			g.stopPrune()
		}
		g.wg.Wait()
		g.stopGovernance()
		g.closeParts()
		if g.httpSrv != nil {
			hctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = g.httpSrv.Shutdown(hctx)
			cancel()
		}
		g.stopErr = errors.Join(errs...)
		g.log.Info("portcullis gateway stopped")
	})
	return g.stopErr
}

// closeParts releases the downstream connections and closes the store
// (which commits every queued evidence record first).
func (g *Gateway) closeParts() {
	if g.delivery != nil {
		_ = g.delivery.Close()
	}
	if g.store != nil {
		if err := g.store.Close(); err != nil {
			g.log.Error("store close", "err", err)
		}
	}
}

// handle is the SMTP listeners' Handler: one transaction through the
// pipeline.
func (g *Gateway) handle(ctx context.Context, tx *smtpgw.Transaction) smtpgw.Reply {
	ptx := &pipeline.Transaction{
		ID: tx.ID, Listener: tx.Listener, Path: pipeline.PathSMTP, ReceivedAt: tx.ReceivedAt,
		ClientIP: tx.ClientIP, ClientPort: tx.ClientPort, HELO: tx.HELO, TLS: tx.TLS,
		MailFrom: tx.MailFrom, RcptTo: tx.RcptTo, SMTPUTF8: tx.Params.SMTPUTF8,
		Message: tx.Data, Trace: []string{tx.ReceivedField()},
	}
	out := g.pipe.Process(ctx, ptx)
	level := slog.LevelInfo
	if out.Err != nil {
		level = slog.LevelError
	}
	if g.log.Enabled(ctx, level) {
		attrs := []slog.Attr{
			slog.String("id", out.ID), slog.String("listener", tx.Listener), slog.String("client", tx.ClientIP.String()),
			slog.String("mail_from", tx.MailFrom), slog.String("rcpt_to", strings.Join(tx.RcptTo, ",")),
			slog.String("action", string(out.Action)), slog.String("rule", out.Rule),
			slog.String("reply", out.Reply.String()), slog.Duration("duration", out.Timings.Total),
		}
		if out.Verdict != nil {
			attrs = append(attrs, slog.String("message_id", out.Verdict.MessageID), slog.String("dmarc", string(out.Verdict.DMARC.Result)))
		}
		if out.Err != nil {
			attrs = append(attrs, slog.String("err", out.Err.Error()))
		}
		g.log.LogAttrs(ctx, level, "message", attrs...)
	}
	return smtpReply(out.Reply)
}

// smtpReply converts the pipeline's reply to the listener's.
func smtpReply(r policy.Reply) smtpgw.Reply {
	var e smtpgw.EnhancedCode
	parts := strings.Split(r.Enhanced, ".")
	if len(parts) == 3 {
		for i, p := range parts {
			n, err := strconv.Atoi(p)
			if err != nil {
				e = smtpgw.EnhancedCode{}
				break
			}
			e[i] = n
		}
	}
	return smtpgw.Reply{Code: r.Code, Enhanced: e, Text: r.Text}
}
