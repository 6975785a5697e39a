// Package quarantine implements the operations on quarantined messages
// and the notifications about them: listing, showing (header, evidence and
// the verdict in words), release (re-delivery downstream over SMTP, RFC
// 5321, or LMTP, RFC 2033, with a trace field naming the release and its
// actor, optionally after a second person's approval), deletion and expiry
// by retention; periodic digests to each recipient of the messages held
// for them and immediate alerts to the owner of a watched partner domain,
// composed as RFC 5322 messages (text/plain, quoted-printable, RFC 2045)
// marked Auto-Submitted: auto-generated (RFC 3834 §5).
//
// Every state change and every change of the notification settings is an
// audit event (package audit), committed with the change.
package quarantine

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"portcullis/internal/audit"
	"portcullis/internal/evidence"
	"portcullis/internal/governance"
	"portcullis/internal/relay"
	"portcullis/internal/store"
)

// Store is what the quarantine needs of the repository: the items, their
// bodies and evidence (store.Store) and audited state changes, settings
// and notification marks (store.GovernanceStore). The SQLite back end is
// both.
type Store interface {
	store.Store
	store.GovernanceStore
}

// Errors.
var (
	// ErrApprovalRequired: releases need a second person's approval; the
	// release was not made (request it, then have an admin approve it).
	ErrApprovalRequired = errors.New("quarantine: release requires approval")
	// ErrDelivery: the downstream did not accept the released message;
	// the item stays in the quarantine. It wraps the relay error, so
	// relay.IsTemporary tells whether a retry may succeed.
	ErrDelivery = errors.New("quarantine: re-delivery failed")
	// ErrState: the item is not in a state that allows the operation.
	ErrState = errors.New("quarantine: not allowed in this state")
	// ErrNotFound: no item with that id.
	ErrNotFound = errors.New("quarantine: not found")
)

// ReleasedField is the header field a released message carries on top.
const ReleasedField = "X-Portcullis-Released"

// Config configures the quarantine.
type Config struct {
	// ReleaseRequiresApproval makes every release a request by an operator
	// that an admin, a different person, approves. Default false: an
	// operator or admin releases directly.
	ReleaseRequiresApproval bool `yaml:"release_requires_approval" json:"release_requires_approval"`
	// Retention is how long an item is kept at most (items also go at
	// their own expiry). Default 30 days.
	Retention governance.Duration `yaml:"retention" json:"retention"`
}

// DefaultRetention is the default of Config.Retention.
const DefaultRetention = 30 * 24 * time.Hour

// Manager operates on the quarantine. It is safe for concurrent use.
type Manager struct {
	st      Store
	log     *audit.Log
	roles   governance.Roles
	cfg     Config
	deliver relay.Deliverer
	route   func(ctx context.Context, it *store.QuarantineItem) (relay.Deliverer, error)
	now     func() time.Time
	logger  *slog.Logger

	mu       sync.Mutex
	inflight map[string]bool // ids being released by this process
}

// ManagerOptions are the dependencies of a Manager.
type ManagerOptions struct {
	// Deliverer re-delivers released messages downstream. Required for
	// Release and ApproveRelease.
	Deliverer relay.Deliverer
	// DelivererFor, when set, picks the Deliverer of each released item
	// instead of Deliverer: a message held by the milter goes back into
	// its MTA, not to the gateway's downstream (milter.ReleaseRoute).
	DelivererFor func(ctx context.Context, it *store.QuarantineItem) (relay.Deliverer, error)
	// Roles maps actors to roles (governance.Config.Users).
	Roles governance.Roles
	// Now is the clock. Default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// NewManager returns a Manager on st whose changes are audited in log.
func NewManager(st Store, log *audit.Log, cfg Config, o ManagerOptions) *Manager {
	if cfg.Retention <= 0 {
		cfg.Retention = governance.Duration(DefaultRetention)
	}
	m := &Manager{st: st, log: log, roles: o.Roles, cfg: cfg, deliver: o.Deliverer, route: o.DelivererFor, now: o.Now, logger: o.Logger, inflight: map[string]bool{}}
	if m.now == nil {
		m.now = time.Now
	}
	if m.logger == nil {
		m.logger = slog.Default()
	}
	return m
}

// Config returns the configuration with its defaults.
func (m *Manager) Config() Config { return m.cfg }

// List returns a page of items matching q.
func (m *Manager) List(ctx context.Context, q store.QuarantineQuery) (store.QuarantinePage, error) {
	return m.st.ListQuarantine(ctx, q)
}

// View is what Show returns.
type View struct {
	Item *store.QuarantineItem
	// Header is the message's header block as stored (the trace and
	// Authentication-Results fields added on the way in included), at
	// most MaxHeaderShown bytes; empty once the body is deleted.
	Header string
	// Evidence is the message's evidence record (nil if there is none).
	Evidence *evidence.Record
	// Verdict says in words why the message was quarantined.
	Verdict string
}

// MaxHeaderShown bounds View.Header.
const MaxHeaderShown = 64 << 10

// Show returns an item with its header, evidence and verdict in words.
func (m *Manager) Show(ctx context.Context, id string) (*View, error) {
	it, err := m.get(ctx, id)
	if err != nil {
		return nil, err
	}
	v := &View{Item: it}
	rec, err := m.st.GetEvidence(ctx, id)
	switch {
	case err == nil:
		v.Evidence = rec
		v.Verdict = VerdictInWords(rec)
	case errors.Is(err, store.ErrNotFound):
		v.Verdict = "No evidence record: " + it.Reason
	default:
		return nil, err
	}
	if it.State != store.Deleted {
		h, err := m.header(ctx, id)
		if err != nil {
			return nil, err
		}
		v.Header = h
	}
	return v, nil
}

// header reads the header block of a stored body.
func (m *Manager) header(ctx context.Context, id string) (string, error) {
	rc, err := m.st.OpenQuarantineBody(ctx, id)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	r := bufio.NewReader(io.LimitReader(rc, MaxHeaderShown))
	var b strings.Builder
	for {
		line, err := r.ReadString('\n')
		if strings.TrimRight(line, "\r\n") == "" && (err == nil || line != "") {
			break
		}
		b.WriteString(line)
		if err != nil {
			break
		}
	}
	return b.String(), nil
}

func (m *Manager) get(ctx context.Context, id string) (*store.QuarantineItem, error) {
	it, err := m.st.GetQuarantine(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return it, err
}

// itemJSON is an item as audit events record it.
type itemJSON struct {
	State     store.QuarantineState `json:"state"`
	Sender    string                `json:"sender"`
	Rcpts     []string              `json:"recipients"`
	Subject   string                `json:"subject"`
	Reason    string                `json:"reason"`
	UpdatedBy string                `json:"updated_by,omitempty"`
	// Note is the request's or refusal's reason, the delivery reply of a
	// release.
	Note        string `json:"note,omitempty"`
	RequestedBy string `json:"requested_by,omitempty"`
	ReleasedBy  string `json:"released_by,omitempty"`
	Delivery    string `json:"delivery,omitempty"`
}

func snapshotOf(it *store.QuarantineItem) itemJSON {
	return itemJSON{State: it.State, Sender: it.Sender, Rcpts: it.Recipients, Subject: it.Subject, Reason: it.Reason, UpdatedBy: it.UpdatedBy}
}

// transition moves item it to state to with its audit event.
func (m *Manager) transition(ctx context.Context, it *store.QuarantineItem, to store.QuarantineState, actor string, action audit.Action, after itemJSON) error {
	before, err := audit.Marshal(snapshotOf(it))
	if err != nil {
		return err
	}
	after.State = to
	a, err := audit.Marshal(after)
	if err != nil {
		return err
	}
	b, err := m.log.Builder(audit.Event{Actor: actor, Action: action, Time: m.now(),
		Object: audit.Object{Type: "quarantine", ID: it.ID}, Before: before, After: a}, nil)
	if err != nil {
		return err
	}
	err = m.st.UpdateQuarantineStateAudited(ctx, it.ID, it.State, to, actor, b)
	if errors.Is(err, store.ErrStateConflict) || errors.Is(err, store.ErrInvalidTransition) {
		return fmt.Errorf("%w: %w", ErrState, err)
	}
	return err
}

// RequestRelease asks for the release of a held item (an operator or
// admin); an admin other than actor approves it with ApproveRelease, or
// refuses it with RefuseRelease.
func (m *Manager) RequestRelease(ctx context.Context, id, actor, reason string) error {
	if err := m.roles.Authorize(actor, governance.RoleOperator); err != nil {
		return err
	}
	it, err := m.get(ctx, id)
	if err != nil {
		return err
	}
	if it.State != store.Held {
		return fmt.Errorf("%w: item %s is %s", ErrState, id, it.State)
	}
	after := snapshotOf(it)
	after.Note, after.RequestedBy, after.UpdatedBy = strings.TrimSpace(reason), actor, actor
	return m.transition(ctx, it, store.ReleaseRequested, actor, audit.QuarantineReleaseRequest, after)
}

// RefuseRelease returns a requested release to held (an admin).
func (m *Manager) RefuseRelease(ctx context.Context, id, actor, reason string) error {
	if err := m.roles.Authorize(actor, governance.RoleAdmin); err != nil {
		return err
	}
	it, err := m.get(ctx, id)
	if err != nil {
		return err
	}
	if it.State != store.ReleaseRequested {
		return fmt.Errorf("%w: item %s is %s, no release was requested", ErrState, id, it.State)
	}
	after := snapshotOf(it)
	after.Note, after.UpdatedBy = strings.TrimSpace(reason), actor
	return m.transition(ctx, it, store.Held, actor, audit.QuarantineReleaseRefuse, after)
}

// Release re-delivers a held item downstream at once (when releases need
// no approval), or approves a requested release (ApproveRelease).
func (m *Manager) Release(ctx context.Context, id, actor string) (*relay.Result, error) {
	it, err := m.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if it.State == store.ReleaseRequested {
		return m.ApproveRelease(ctx, id, actor)
	}
	if m.cfg.ReleaseRequiresApproval {
		return nil, fmt.Errorf("%w: request it (quarantine release-request), then an admin approves it", ErrApprovalRequired)
	}
	if err := m.roles.Authorize(actor, governance.RoleOperator); err != nil {
		return nil, err
	}
	if it.State != store.Held {
		return nil, fmt.Errorf("%w: item %s is %s", ErrState, id, it.State)
	}
	return m.release(ctx, it, actor, "")
}

// ApproveRelease approves a requested release and re-delivers the item:
// actor must be an admin and not the requester.
func (m *Manager) ApproveRelease(ctx context.Context, id, actor string) (*relay.Result, error) {
	if err := m.roles.Authorize(actor, governance.RoleAdmin); err != nil {
		return nil, err
	}
	it, err := m.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if it.State != store.ReleaseRequested {
		return nil, fmt.Errorf("%w: item %s is %s, no release was requested", ErrState, id, it.State)
	}
	if strings.EqualFold(it.UpdatedBy, actor) {
		return nil, fmt.Errorf("%w: %s requested this release", governance.ErrSelfApproval, actor)
	}
	return m.release(ctx, it, actor, it.UpdatedBy)
}

// release delivers it downstream with the release field on top and, once
// the downstream accepted it, records the new state. A message is
// delivered before its state changes: if the state change fails after
// delivery, the message was delivered (the error says so) and a second
// release could deliver it twice, which is preferred to losing it.
func (m *Manager) release(ctx context.Context, it *store.QuarantineItem, actor, requestedBy string) (*relay.Result, error) {
	deliver := m.deliver
	if m.route != nil {
		d, err := m.route(ctx, it)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrDelivery, err)
		}
		deliver = d
	}
	if deliver == nil {
		return nil, fmt.Errorf("%w: no downstream configured", ErrDelivery)
	}
	m.mu.Lock()
	if m.inflight[it.ID] {
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: item %s is being released", ErrState, it.ID)
	}
	m.inflight[it.ID] = true
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.inflight, it.ID)
		m.mu.Unlock()
	}()

	rc, err := m.st.OpenQuarantineBody(ctx, it.ID)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, err
	}
	now := m.now().UTC()
	field := releasedField(actor, requestedBy, it.ID, now)
	msg := make([]byte, 0, len(field)+len(body))
	msg = append(append(msg, field...), body...)
	smtputf8 := !isASCII(it.Sender)
	for _, r := range it.Recipients {
		smtputf8 = smtputf8 || !isASCII(r)
	}
	res := deliver.Deliver(ctx, relay.Message{MailFrom: it.Sender, Rcpts: it.Recipients, Data: msg, SMTPUTF8: smtputf8})
	if res.Status != relay.StatusAccepted {
		return &res, fmt.Errorf("%w: %s: %w", ErrDelivery, res.Reply, res.Err)
	}
	after := snapshotOf(it)
	after.ReleasedBy, after.RequestedBy, after.UpdatedBy = actor, requestedBy, actor
	after.Delivery = strings.TrimSpace(res.Host + " " + res.Reply.String())
	if res.Partial() {
		after.Note = "some recipients were refused by the downstream"
	}
	if err := m.transition(ctx, it, store.Released, actor, audit.QuarantineRelease, after); err != nil {
		return &res, fmt.Errorf("item %s was delivered, but its state could not be recorded: %w", it.ID, err)
	}
	return &res, nil
}

// releasedField returns the X-Portcullis-Released field, folded (RFC 5322
// §2.2.3) so that no line exceeds 78 characters.
func releasedField(actor, requestedBy, id string, at time.Time) []byte {
	parts := []string{"by " + asciiOnly(actor) + " at " + at.Format(time.RFC3339)}
	if requestedBy != "" {
		parts = append(parts, "requested by "+asciiOnly(requestedBy))
	}
	parts = append(parts, "evidence "+asciiOnly(id))
	var b bytes.Buffer
	b.WriteString(ReleasedField + ":")
	line := len(ReleasedField) + 1
	for i, p := range parts {
		if i < len(parts)-1 {
			p += ";"
		}
		if line+1+len(p) > 78 && line > len(ReleasedField)+1 {
			b.WriteString("\r\n")
			line = 0
		}
		b.WriteString(" " + p)
		line += 1 + len(p)
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// asciiOnly replaces what is not printable US-ASCII.
func asciiOnly(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c > ' ' && c < 0x7f && c != ';' {
			b.WriteRune(c)
		} else {
			b.WriteByte('?')
		}
	}
	return b.String()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// Delete deletes an item and its body (an operator or admin).
func (m *Manager) Delete(ctx context.Context, id, actor, reason string) error {
	if err := m.roles.Authorize(actor, governance.RoleOperator); err != nil {
		return err
	}
	it, err := m.get(ctx, id)
	if err != nil {
		return err
	}
	if it.State == store.Deleted {
		return fmt.Errorf("%w: item %s is deleted already", ErrState, id)
	}
	after := snapshotOf(it)
	after.Note, after.UpdatedBy = strings.TrimSpace(reason), actor
	return m.transition(ctx, it, store.Deleted, actor, audit.QuarantineDelete, after)
}

// Expire removes the items past their expiry or older than the retention
// (evidence is left alone) and records the run in the audit log when it
// removed any (Retention.Run).
func (m *Manager) Expire(ctx context.Context) (int64, error) {
	r := Retention{Store: m.st, Log: m.log, QuarantineRetention: m.cfg.Retention.Std()}
	res, err := r.Run(ctx, m.now())
	return res.Quarantine, err
}
