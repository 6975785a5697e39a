package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"portcullis/internal/audit"
	"portcullis/internal/governance"
	"portcullis/internal/pipeline"
	"portcullis/internal/quarantine"
	"portcullis/internal/relay"
)

// govParts are the governance parts of a gateway: the audit log, the
// governed exceptions and sealers (a PolicySource of the pipeline), and
// the notifier of digests, alerts and expiry warnings.
type govParts struct {
	log      *audit.Log
	svc      *governance.Service
	notifier *quarantine.Notifier

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// initGovernance builds the governance parts over the store, loads the
// active exceptions and sealers, and records the configuration load in
// the audit log when the configuration changed since the last one.
func (g *Gateway) initGovernance(ctx context.Context, d pipeline.Deliverer) error {
	opts, err := g.cfg.AuditOptions()
	if err != nil {
		return err
	}
	l, err := audit.New(g.store, opts)
	if err != nil {
		return err
	}
	svc, err := governance.New(l, g.cfg.GovernanceSettings(), &governance.Options{Logger: g.log})
	if err != nil {
		return fmt.Errorf("governance: %w", err)
	}
	if err := svc.Refresh(ctx, true); err != nil {
		return fmt.Errorf("governance: %w", err)
	}
	n := quarantine.NewNotifier(g.store, quarantine.NotifierOptions{
		Deliverer: relayDeliverer{d}, Governance: svc, DefaultFrom: g.cfg.Governance.NotificationsFrom,
		Lookback: g.cfg.Store.QuarantineRetention.D(), Logger: g.log,
	})
	if err := n.ReloadSettings(ctx); err != nil {
		return fmt.Errorf("notifications: %w", err)
	}
	g.gov = &govParts{log: l, svc: svc, notifier: n}
	g.observers = append(g.observers, g.gov)
	return g.recordConfigLoad(ctx)
}

// recordConfigLoad appends a config.load event naming the previous and
// the new configuration version, unless the version is the one last
// loaded (a restart with the same configuration changes nothing).
func (g *Gateway) recordConfigLoad(ctx context.Context) error {
	var last *audit.Event
	f := audit.Filter{Action: string(audit.ConfigLoad), Limit: 1000}
	for {
		evs, more, err := g.gov.log.List(ctx, f)
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		if len(evs) > 0 {
			last = evs[len(evs)-1]
			f.AfterSeq = last.Seq
		}
		if !more {
			break
		}
	}
	if last != nil && last.Object.ID == g.hash {
		return nil
	}
	type version struct {
		Version    string         `json:"version"`
		Governance *govConfigView `json:"governance,omitempty"`
	}
	var before json.RawMessage
	if last != nil {
		before, _ = audit.Marshal(version{Version: last.Object.ID})
	}
	view := &govConfigView{
		MaxLifetime: g.cfg.Governance.MaxLifetime.String(), WarnBefore: g.cfg.Governance.WarnBefore.String(),
		Users: g.cfg.Governance.Users, ReleaseRequiresApproval: g.cfg.Governance.ReleaseRequiresApproval,
		AuditKeyed: g.cfg.Governance.AuditKeyFile != "",
	}
	after, err := audit.Marshal(version{Version: g.hash, Governance: view})
	if err != nil {
		return err
	}
	if _, err := g.gov.log.Append(ctx, audit.Event{Actor: audit.SystemActor, Action: audit.ConfigLoad,
		Object: audit.Object{Type: "config", ID: g.hash}, Before: before, After: after}); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// govConfigView is the governance part of a configuration as the
// config.load event records it (the key itself never).
type govConfigView struct {
	MaxLifetime             string            `json:"max_lifetime"`
	WarnBefore              string            `json:"warn_before"`
	Users                   map[string]string `json:"users,omitempty"`
	ReleaseRequiresApproval bool              `json:"release_requires_approval"`
	AuditKeyed              bool              `json:"audit_keyed"`
}

// Observe implements pipeline.Observer for governance: hit counters of
// the exception or sealer that decided, and partner-watch alerts. Neither
// does I/O on the message's path.
func (p *govParts) Observe(_ *pipeline.Transaction, out *pipeline.Outcome) {
	if out.Record == nil {
		return
	}
	ctx := context.Background()
	p.svc.OnDecision(ctx, *out.Record)
	p.notifier.OnDecision(ctx, *out.Record)
}

// startGovernance runs the snapshot refresh, hit counters, recorded
// expiries, digests, alerts and expiry warnings in the background.
func (g *Gateway) startGovernance() {
	if g.gov == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.gov.cancel = cancel
	g.gov.wg.Add(2)
	go func() {
		defer g.gov.wg.Done()
		if err := g.gov.svc.Run(ctx); err != nil {
			g.log.Error("governance stopped", "err", err)
		}
	}()
	go func() {
		defer g.gov.wg.Done()
		if err := g.gov.notifier.Run(ctx, g.cfg.Governance.RefreshInterval.D()); err != nil {
			g.log.Error("notifications stopped", "err", err)
		}
	}()
}

// stopGovernance stops the background work; the hit counters gathered
// are written before it returns (the store is still open).
func (g *Gateway) stopGovernance() {
	if g.gov == nil || g.gov.cancel == nil {
		return
	}
	g.gov.cancel()
	g.gov.wg.Wait()
}

// Governance returns the governed exceptions and sealers of the gateway.
func (g *Gateway) Governance() *governance.Service { return g.gov.svc }

// Notifier returns the gateway's notifier.
func (g *Gateway) Notifier() *quarantine.Notifier { return g.gov.notifier }

// AuditLog returns the gateway's audit log.
func (g *Gateway) AuditLog() *audit.Log { return g.gov.log }

// relayDeliverer sends notifications through the pipeline's downstream.
type relayDeliverer struct{ d pipeline.Deliverer }

func (r relayDeliverer) Deliver(ctx context.Context, m relay.Message) relay.Result {
	return r.d.Deliver(ctx, &pipeline.Delivery{
		Tx:      &pipeline.Transaction{MailFrom: m.MailFrom, RcptTo: m.Rcpts, SMTPUTF8: m.SMTPUTF8, Path: pipeline.PathSMTP},
		Message: m.Data,
	})
}
