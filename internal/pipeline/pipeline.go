package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"portcullis/internal/analysis"
	"portcullis/internal/authres"
	"portcullis/internal/evidence"
	"portcullis/internal/message"
	"portcullis/internal/policy"
	"portcullis/internal/relay"
	"portcullis/internal/store"
)

// Path names the inbound path of a Transaction.
type Path string

// The inbound paths.
const (
	// PathSMTP: a listener of the gateway received the message (package
	// smtpgw).
	PathSMTP Path = "smtp"
	// PathMilter: an MTA (Postfix) handed the message over the milter
	// protocol.
	PathMilter Path = "milter"
)

// Rule ids of the actions the pipeline itself takes when it cannot carry
// out the policy's decision. They appear in Outcome.Rule and in the
// evidence record's decision.rule, with decision.overrides naming the
// policy's rule.
const (
	// RuleDownstreamTemporary: the downstream did not accept the message
	// for now (4xx, unreachable, timeout, connection lost); 451.
	RuleDownstreamTemporary = "downstream-temporary"
	// RuleDownstreamPermanent: the downstream refused the message for
	// every recipient (5xx); its reply is passed back.
	RuleDownstreamPermanent = "downstream-permanent"
	// RuleQuarantineFailed: the quarantine could not store the message;
	// 451.
	RuleQuarantineFailed = "quarantine-failed"
	// RuleInternalError: an internal error or panic; 451 4.3.0.
	RuleInternalError = "internal-error"
)

// Errors recorded in Outcome.Err.
var (
	// ErrPanic: a step panicked.
	ErrPanic = errors.New("pipeline: panic")
	// ErrPrepare: the message could not be prepared for delivery (its
	// header does not parse, or our Authentication-Results cannot be
	// written).
	ErrPrepare = errors.New("pipeline: cannot prepare the message for delivery")
	// ErrQuarantine: the quarantine store failed.
	ErrQuarantine = errors.New("pipeline: quarantine failed")
	// ErrAction: the decision named no action the pipeline knows.
	ErrAction = errors.New("pipeline: unknown action")
	// ErrTransaction: Process was given an unusable Transaction.
	ErrTransaction = errors.New("pipeline: invalid transaction")
	// ErrConfig: New was given an unusable Config.
	ErrConfig = errors.New("pipeline: invalid configuration")
)

// Transaction is one inbound message with its SMTP facts, as an adapter
// hands it to Process. The pipeline does not modify it.
type Transaction struct {
	// ID identifies the message: the evidence record's id, the quarantine
	// item's id, and the id appended to every reply. It must be unique
	// and satisfy store.ValidID; empty means Process makes one.
	ID string
	// Listener names the inbound path's configuration: the SMTP listener,
	// or the milter. Its policy is Config.Policies.For(Listener).
	Listener string
	// Path is PathSMTP or PathMilter.
	Path Path
	// ReceivedAt is when the end of the data arrived. Zero means the
	// time Process starts.
	ReceivedAt time.Time

	// Client facts. ClientIP's zero value means none (no SPF, no iprev).
	ClientIP   netip.Addr
	ClientPort uint16
	HELO       string
	// TLS describes the client session's TLS, "" for plaintext.
	TLS string

	// MailFrom is the reverse-path without angle brackets; "" is the null
	// reverse-path (RFC 5321 §4.5.5).
	MailFrom string
	// RcptTo are the forward-paths without angle brackets, in order.
	RcptTo []string
	// SMTPUTF8 records that the client asked for SMTPUTF8 (RFC 6531).
	SMTPUTF8 bool
	// QueueID is the MTA's queue id (milter path).
	QueueID string

	// Message is the whole message, header and body, with CRLF line
	// endings.
	Message []byte
	// Trace are header fields this hop adds above the message when it is
	// delivered or quarantined: the Received field of the SMTP listener
	// (RFC 5321 §4.4), each CRLF-terminated. The milter path leaves it
	// empty: the MTA adds its own.
	Trace []string
}

// Delivery is a message the policy decided to deliver, prepared for the
// downstream.
type Delivery struct {
	// Tx is the transaction (envelope and connection facts).
	Tx *Transaction
	// Message is the message as it is to be delivered: the Trace fields
	// and our Authentication-Results on top, forged ones removed.
	Message []byte
	// Changes are the header changes that turned Tx.Message into Message.
	Changes *HeaderChanges
}

// Deliverer hands a prepared message downstream. The SMTP gateway passes
// one that relays to the mailbox server (Relay); the milter passes one that
// accepts at once, since the MTA applies Changes and delivers.
//
// Process maps the result to the one SMTP reply of the transaction:
//   - every recipient accepted (or no per-recipient results): 250;
//   - any recipient failed temporarily: 451 for the transaction, even when
//     others were accepted. The sender retries the whole message, so the
//     recipients that had accepted it may get it twice: a duplicate is
//     preferred to a loss;
//   - every recipient refused permanently: the downstream's 5xx, passed
//     back;
//   - some recipients accepted and the others refused permanently: the
//     first refusal's 5xx, its text saying how many recipients did accept.
//     The reply to DATA is one for all recipients, and a 250 would drop
//     the refused recipients without anyone knowing; with the 5xx the
//     sender's MTA reports the failure to the sender (who may resend, a
//     duplicate for the others, again preferred to a silent loss).
//
// A Deliverer that panics is an internal error (451 4.3.0).
type Deliverer interface {
	Deliver(ctx context.Context, d *Delivery) relay.Result
}

// DelivererFunc adapts a function to Deliverer.
type DelivererFunc func(ctx context.Context, d *Delivery) relay.Result

// Deliver calls f.
func (f DelivererFunc) Deliver(ctx context.Context, d *Delivery) relay.Result { return f(ctx, d) }

// Relay adapts a relay.Deliverer (SMTP, LMTP or Maildir) to Deliverer.
func Relay(d relay.Deliverer) Deliverer {
	return DelivererFunc(func(ctx context.Context, dl *Delivery) relay.Result {
		return d.Deliver(ctx, relay.Message{
			MailFrom: dl.Tx.MailFrom,
			Rcpts:    dl.Tx.RcptTo,
			Data:     dl.Message,
			SMTPUTF8: dl.Tx.SMTPUTF8,
		})
	})
}

// Analyzer runs the analysis of one message; *analysis.Analyzer is one.
type Analyzer interface {
	Run(ctx context.Context, in analysis.Input) *analysis.Verdict
}

// Observer receives every Outcome once Process is done with it, e.g. to
// count messages for metrics. It is called from the goroutine that called
// Process and must not block for long. out and tx must not be kept.
type Observer interface {
	Observe(tx *Transaction, out *Outcome)
}

// Config configures a Pipeline.
type Config struct {
	// Analyzer runs the checks. Required.
	Analyzer Analyzer
	// Policies gives each listener its policy. Nil means policy.Default()
	// for every listener.
	Policies *policy.Set
	// Store keeps evidence and quarantined messages. Required.
	Store store.Store
	// Deliverer hands delivered messages downstream. Required.
	Deliverer Deliverer

	// AuthServID is the authserv-id of our Authentication-Results (RFC
	// 8601 §2.5): fields that claim it are removed. Required; it must be
	// the Analyzer's.
	AuthServID string
	// ExtraServIDs are other authserv-ids of our ADMD (other gateway
	// nodes): fields claiming them are removed too.
	ExtraServIDs []string
	// TrustedServIDs are authserv-ids of trusted upstream services whose
	// fields are kept (authres.StripPolicy.Trusted).
	TrustedServIDs []string
	// RemoveUntrusted also removes well-formed Authentication-Results of
	// any other service (authres.StripPolicy.RemoveUntrusted). Default
	// false.
	RemoveUntrusted bool
	// HeaderLimits bound the header parsed to apply the changes; use the
	// Analyzer's.
	HeaderLimits message.Limits

	// ConfigVersion is written into every evidence record ("sha256:…").
	ConfigVersion string
	// QuarantineRetention is how long a quarantined message is kept
	// (QuarantineItem.ExpiresAt). Default 30 days.
	QuarantineRetention time.Duration

	// PolicySource, when set, adds the governed exceptions and trusted
	// ARC sealers in force to each message's policy. Default none.
	PolicySource PolicySource

	// Observer, when set, sees every Outcome.
	Observer Observer
	// Logger receives the pipeline's logs. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// DefaultQuarantineRetention is the default of Config.QuarantineRetention.
const DefaultQuarantineRetention = 30 * 24 * time.Hour

// Pipeline processes transactions. It is safe for concurrent use.
type Pipeline struct {
	cfg      Config
	strip    authres.StripPolicy
	log      *slog.Logger
	now      func() time.Time
	policies sync.Map // listener name → *policy.Policy
}

// New validates cfg and returns a Pipeline.
func New(cfg Config) (*Pipeline, error) {
	switch {
	case cfg.Analyzer == nil:
		return nil, fmt.Errorf("%w: no Analyzer", ErrConfig)
	case cfg.Store == nil:
		return nil, fmt.Errorf("%w: no Store", ErrConfig)
	case cfg.Deliverer == nil:
		return nil, fmt.Errorf("%w: no Deliverer", ErrConfig)
	case cfg.AuthServID == "":
		return nil, fmt.Errorf("%w: no AuthServID", ErrConfig)
	}
	if cfg.Policies != nil {
		if err := cfg.Policies.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	p := &Pipeline{cfg: cfg, log: cfg.Logger, now: cfg.Now}
	p.strip = authres.StripPolicy{
		ServIDs:         append([]string{cfg.AuthServID}, cfg.ExtraServIDs...),
		Trusted:         cfg.TrustedServIDs,
		RemoveUntrusted: cfg.RemoveUntrusted,
	}
	if err := p.strip.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.cfg.QuarantineRetention <= 0 {
		p.cfg.QuarantineRetention = DefaultQuarantineRetention
	}
	return p, nil
}

// StripPolicy returns the policy by which inbound Authentication-Results
// fields are removed.
func (p *Pipeline) StripPolicy() *authres.StripPolicy { return &p.strip }

// PolicyFor returns the policy applied to messages of listener.
func (p *Pipeline) PolicyFor(listener string) *policy.Policy {
	if v, ok := p.policies.Load(listener); ok {
		return v.(*policy.Policy)
	}
	var pol *policy.Policy
	if p.cfg.Policies != nil {
		pol = p.cfg.Policies.For(listener)
	} else {
		pol = policy.Default()
	}
	v, _ := p.policies.LoadOrStore(listener, pol)
	return v.(*policy.Policy)
}

// Timings are the durations of the steps of one Process call.
type Timings struct {
	Analysis time.Duration
	Decision time.Duration
	// Action is the time spent acting: storing a quarantined message,
	// or preparing and delivering (Delivery is the part spent in the
	// Deliverer).
	Action   time.Duration
	Delivery time.Duration
	Total    time.Duration
}

// Outcome is what Process did with one message.
type Outcome struct {
	// ID is the evidence id (the transaction's, or the one Process made).
	ID string
	// Action is what was done: it differs from Decision.Action when the
	// decision could not be carried out (a downstream or storage failure,
	// an internal error).
	Action evidence.Action
	// Rule is the rule that decided Action: Decision.Rule, or one of the
	// pipeline's Rule ids.
	Rule string
	// Reply is the SMTP reply to send (RFC 5321 §4.2, RFC 3463). Its text
	// is generic and ends with the evidence id.
	Reply policy.Reply
	// Decision is the policy's decision (zero when the pipeline failed
	// before deciding).
	Decision policy.Decision
	// Verdict is the analysis (nil when the pipeline failed before it
	// finished).
	Verdict *analysis.Verdict
	// Changes are the header changes applied for delivery: for the milter,
	// what to tell the MTA. Nil unless the message was prepared for
	// delivery.
	Changes *HeaderChanges
	// Delivery is the Deliverer's result (nil unless delivery was tried).
	Delivery *relay.Result
	// Record is the evidence record written (nil only if none could be
	// built).
	Record *evidence.Record
	// EvidenceErr is the failure to store the record, if any: it is
	// logged; it changes the reply only for a quarantined message whose
	// record could not be stored (still 250: the message itself is held).
	EvidenceErr error
	// Err is the internal error behind a RuleInternalError or
	// RuleQuarantineFailed outcome. It is never sent to the peer.
	Err error
	// Timings are the durations of the steps.
	Timings Timings
}

// Accepted reports whether the reply is a 2xx: the message is downstream
// or in the quarantine.
func (o *Outcome) Accepted() bool { return o.Reply.Code/100 == 2 }

// state carries one Process call.
type state struct {
	tx       *Transaction
	out      *Outcome
	pol      *policy.Policy
	recorded bool
	start    time.Time
}

// Process analyses, decides and acts on one message, writes its evidence
// record and returns the reply to give. It never panics and never returns a
// 2xx unless the message was accepted downstream or committed to the
// quarantine.
func (p *Pipeline) Process(ctx context.Context, tx *Transaction) (out Outcome) {
	st := &state{tx: tx, out: &out, start: time.Now()}
	defer func() {
		if r := recover(); r != nil {
			err := fmt.Errorf("%w: %v", ErrPanic, r)
			p.log.Error("pipeline: panic", "id", out.ID, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			p.internalError(ctx, st, err)
		}
		out.Timings.Total = time.Since(st.start)
		if p.cfg.Observer != nil {
			p.observe(tx, &out)
		}
	}()
	if tx == nil {
		st.tx = &Transaction{}
		tx = st.tx
		out.ID = newID()
		p.internalError(ctx, st, fmt.Errorf("%w: nil", ErrTransaction))
		return out
	}
	out.ID = tx.ID
	if out.ID == "" {
		out.ID = newID()
	}
	if !store.ValidID(out.ID) {
		id := out.ID
		out.ID = newID()
		p.internalError(ctx, st, fmt.Errorf("%w: id %q", ErrTransaction, id))
		return out
	}
	received := tx.ReceivedAt
	if received.IsZero() {
		received = p.now()
	}
	st.pol = p.PolicyFor(tx.Listener)

	// 1. Analysis.
	t := time.Now()
	v := p.cfg.Analyzer.Run(ctx, analysis.Input{
		ClientIP: tx.ClientIP, HELO: tx.HELO, MailFrom: tx.MailFrom, RcptTo: tx.RcptTo, TLS: tx.TLS, Message: tx.Message,
	})
	out.Timings.Analysis = time.Since(t)
	out.Verdict = v

	// 2. Decision.
	t = time.Now()
	env := policy.Envelope{
		Listener: tx.Listener, ClientIP: tx.ClientIP, MailFrom: tx.MailFrom, RcptTo: tx.RcptTo, ReceivedAt: received,
	}
	st.pol = p.messagePolicy(st.pol, env)
	d := policy.Decide(st.pol, v, env)
	out.Timings.Decision = time.Since(t)
	out.Decision = d
	out.Action, out.Rule = d.Action, d.Rule

	rec := p.newRecord(tx, out.ID, received)
	out.Record = rec
	arErr := v.FillRecord(rec)
	rec.Decision = d.Evidence()

	// 3. Action.
	t = time.Now()
	defer func() { out.Timings.Action = time.Since(t) }()
	switch d.Action {
	case evidence.Reject, evidence.Defer:
		out.Reply = withID(d.Reply, out.ID)
		p.record(ctx, st, false)
	case evidence.Quarantine:
		if arErr != nil {
			p.internalError(ctx, st, fmt.Errorf("%w: %w", ErrPrepare, arErr))
			return out
		}
		p.quarantine(ctx, st)
	case evidence.Deliver:
		if arErr != nil {
			p.internalError(ctx, st, fmt.Errorf("%w: %w", ErrPrepare, arErr))
			return out
		}
		p.deliver(ctx, st)
	default:
		p.internalError(ctx, st, fmt.Errorf("%w: %q", ErrAction, d.Action))
	}
	return out
}

// newRecord starts the evidence record of tx.
func (p *Pipeline) newRecord(tx *Transaction, id string, received time.Time) *evidence.Record {
	rec := &evidence.Record{
		ID: id, ReceivedAt: received.UTC(), Listener: tx.Listener, ConfigVersion: p.cfg.ConfigVersion,
		Path: string(tx.Path), QueueID: tx.QueueID,
	}
	rec.Client = evidence.Client{HELO: tx.HELO, TLS: tx.TLS}
	if tx.ClientIP.IsValid() {
		rec.Client.IP = tx.ClientIP.String()
	}
	rec.Envelope = evidence.Envelope{MailFrom: tx.MailFrom, RcptTo: append([]string{}, tx.RcptTo...)}
	return rec
}

// recordTimeout bounds the wait to write one evidence record.
const recordTimeout = 30 * time.Second

// record writes the outcome's evidence record once: durably (PutEvidence)
// when durable is set, else queued for the next group commit.
func (p *Pipeline) record(ctx context.Context, st *state, durable bool) {
	if st.recorded {
		return
	}
	st.recorded = true
	out := st.out
	rec := out.Record
	if rec == nil {
		return
	}
	rec.Decision.SMTPReply = out.Reply.String()
	// The message's fate is sealed: its record is written even when the
	// client has gone or the server is shutting down, within a bound (the
	// queue may be full).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	var err error
	if durable {
		err = p.cfg.Store.PutEvidence(ctx, rec)
	} else {
		err = p.cfg.Store.EnqueueEvidence(ctx, rec)
	}
	if err != nil {
		out.EvidenceErr = err
		p.log.Error("pipeline: evidence not stored", "id", out.ID, "action", out.Action, "err", err)
	}
}

// internalError turns the outcome into a 451 4.3.0 for err (RFC 3463
// X.3.0, "other or undefined mail system status": the sender retries) and
// records it, unless a record was written already.
func (p *Pipeline) internalError(ctx context.Context, st *state, err error) {
	out := st.out
	out.Err = err
	out.Action, out.Rule = evidence.Defer, RuleInternalError
	out.Reply = withID(policy.Reply{Code: 451, Enhanced: "4.3.0", Text: "Local error in processing, try again later"}, out.ID)
	p.log.Error("pipeline: internal error", "id", out.ID, "listener", st.tx.Listener, "err", err)
	if st.recorded {
		return
	}
	rec := out.Record
	if rec == nil {
		rec = p.newRecord(st.tx, out.ID, p.now())
		out.Record = rec
	}
	p.override(st, evidence.Defer, RuleInternalError, "internal error: "+err.Error())
	p.record(ctx, st, false)
}

// override replaces the record's decision with the pipeline's own action,
// keeping the policy's rule in Overrides.
func (p *Pipeline) override(st *state, action evidence.Action, rule, reason string) {
	rec := st.out.Record
	prev := rec.Decision
	owner := policy.DefaultOwner
	if st.pol != nil && st.pol.Owner != "" {
		owner = st.pol.Owner
	}
	rec.Decision = evidence.Decision{Action: action, Rule: rule, Reason: reason, Owner: owner}
	if prev.Rule != "" {
		rec.Decision.Overrides = prev.Rule
		rec.Decision.Reason = fmt.Sprintf("%s (policy: %s by %s)", reason, prev.Action, prev.Rule)
	}
	rec.Decision.Exception = prev.Exception
}

func (p *Pipeline) observe(tx *Transaction, out *Outcome) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("pipeline: observer panicked", "id", out.ID, "panic", fmt.Sprint(r))
		}
	}()
	p.cfg.Observer.Observe(tx, out)
}

// withID appends the evidence id to a reply's text, so that the sender's
// report can be matched with the record.
func withID(r policy.Reply, id string) policy.Reply {
	if id != "" {
		r.Text += " [" + id + "]"
	}
	return r
}

// idEncoding is lower-case base32 without padding.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns a random id of 16 characters (80 bits).
func newID() string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return idEncoding.EncodeToString(b[:])
}

// cleanText keeps the printable US-ASCII of s (RFC 5321 §4.2 textstring),
// at most max bytes, for a downstream's text passed back to the sender.
func cleanText(s string, max int) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < max; i++ {
		c := s[i]
		switch {
		case c == '\r' || c == '\n' || c == '\t':
			b.WriteByte(' ')
		case c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
		}
	}
	return strings.TrimSpace(b.String())
}
