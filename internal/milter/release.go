package milter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"portcullis/internal/relay"
	"portcullis/internal/store"
)

// ErrNoRelease: a release was asked for but ReleaseConfig.Via is empty.
var ErrNoRelease = errors.New("milter: no release address configured (milter.release.via)")

// ErrNotHeld: the quarantine item is not in a state that can be released.
var ErrNotHeld = errors.New("milter: quarantine item is not held")

// DefaultReleaseMaxSize bounds the stored message a release reads.
const DefaultReleaseMaxSize = 64 << 20

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
// relay.Deliverer, so that the quarantine's release command can hand it a
// message like it hands one to the gateway's downstream.
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

// Reinject reads quarantined message id from st (it must be Held or
// ReleaseRequested) and hands it to d with its original envelope. It does
// not change the item's state: the caller records the release (with its
// approval and audit) once Reinject reports the message accepted. The
// stored body's size and SHA-256 are verified while it is read; a
// corrupted body is not re-injected.
func Reinject(ctx context.Context, st store.Store, d relay.Deliverer, id string) (relay.Result, error) {
	item, err := st.GetQuarantine(ctx, id)
	if err != nil {
		return relay.Result{}, err
	}
	if item.State != store.Held && item.State != store.ReleaseRequested {
		return relay.Result{}, fmt.Errorf("%w: %s is %s", ErrNotHeld, id, item.State)
	}
	body, err := st.OpenQuarantineBody(ctx, id)
	if err != nil {
		return relay.Result{}, err
	}
	defer body.Close()
	data, err := io.ReadAll(io.LimitReader(body, DefaultReleaseMaxSize+1))
	if err != nil {
		return relay.Result{}, fmt.Errorf("milter: read quarantined %s: %w", id, err)
	}
	if len(data) > DefaultReleaseMaxSize {
		return relay.Result{}, fmt.Errorf("milter: quarantined %s is larger than %d bytes", id, DefaultReleaseMaxSize)
	}
	res := d.Deliver(ctx, relay.Message{MailFrom: item.Sender, Rcpts: item.Recipients, Data: data})
	if res.Status != relay.StatusAccepted {
		err = res.Err
		if err == nil {
			err = fmt.Errorf("milter: release of %s: %s", id, res.Reply.String())
		}
		return res, err
	}
	return res, nil
}
