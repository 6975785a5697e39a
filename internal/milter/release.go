package milter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"portcullis/internal/pipeline"
	"portcullis/internal/relay"
	"portcullis/internal/store"
)

// ErrNoRelease: a release was asked for but ReleaseConfig.Via is empty.
var ErrNoRelease = errors.New("milter: no release address configured (milter.release.via)")

// ReleaseConfig says how a message the milter quarantined goes back into
// the MTA once it is released.
//
// The milter answered SMFIR_DISCARD for it: the MTA has no copy. A release
// therefore re-injects the stored message over SMTP into a listener of the
// MTA that runs no milter (in Postfix, a second smtpd in master.cf with
// "-o smtpd_milters=", docs/postfix.md): through the main listener the
// milter would see the message again and hold it again. The MTA then
// delivers it as it delivers any mail, with our Authentication-Results
// (added before it was stored) on top.
type ReleaseConfig struct {
	// Via is the "host:port" of that listener, e.g. "127.0.0.1:10026";
	// "smtp://host:port" is accepted too. Empty: releases of milter mail
	// are refused (ErrNoRelease).
	Via string
	// LocalName is the EHLO name. Default: os.Hostname().
	LocalName string
	// TLS is the STARTTLS mode (relay.ParseTLSMode). Default
	// opportunistic.
	TLS relay.TLSMode
	// Timeout bounds the whole re-injection. Default 2 minutes.
	Timeout time.Duration
	// Logger receives debug logs. Default slog.Default().
	Logger *slog.Logger
}

// Releaser re-injects released messages of the milter path. It is a
// relay.Deliverer: the quarantine (package quarantine) hands it a released
// message as it hands one to the gateway's downstream, picked by
// ReleaseRoute.
type Releaser struct {
	smtp    *relay.SMTP
	timeout time.Duration
}

// NewReleaser returns the Releaser for cfg, or ErrNoRelease when cfg.Via
// is empty.
func NewReleaser(cfg ReleaseConfig) (*Releaser, error) {
	via := strings.TrimPrefix(strings.TrimSpace(cfg.Via), "smtp://")
	if via == "" {
		return nil, ErrNoRelease
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	s, err := relay.NewSMTP(relay.SMTPConfig{
		Hosts: []string{via}, LocalName: cfg.LocalName, TLS: cfg.TLS,
		// One message now and then: no pooled connection is kept.
		MaxIdlePerHost: -1,
		Logger:         cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("milter: release via %q: %w", cfg.Via, err)
	}
	return &Releaser{smtp: s, timeout: cfg.Timeout}, nil
}

// Deliver implements relay.Deliverer: the message goes to the MTA's
// milter-less listener.
func (r *Releaser) Deliver(ctx context.Context, msg relay.Message) relay.Result {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	return r.smtp.Deliver(ctx, msg)
}

// Close releases the client.
func (r *Releaser) Close() error { return r.smtp.Close() }

// ReleaseRoute returns the function by which the quarantine picks where a
// released item goes (quarantine.ManagerOptions.DelivererFor): an item
// whose evidence record says the milter received it (path "milter") goes
// back into the MTA through releaser; any other goes to downstream, the
// gateway's. A milter item without a releaser (no milter.release.via) is
// refused with ErrNoRelease rather than delivered somewhere else.
func ReleaseRoute(st store.Store, downstream, releaser relay.Deliverer) func(ctx context.Context, it *store.QuarantineItem) (relay.Deliverer, error) {
	return func(ctx context.Context, it *store.QuarantineItem) (relay.Deliverer, error) {
		rec, err := st.GetEvidence(ctx, it.ID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("milter: evidence of %s: %w", it.ID, err)
		}
		if rec != nil && rec.Path == string(pipeline.PathMilter) {
			if r, ok := releaser.(*Releaser); releaser == nil || (ok && r == nil) {
				return nil, ErrNoRelease
			}
			return releaser, nil
		}
		return downstream, nil
	}
}
