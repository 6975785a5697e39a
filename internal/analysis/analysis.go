package analysis

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"portcullis/internal/arc"
	"portcullis/internal/dkim"
	"portcullis/internal/dmarc"
	"portcullis/internal/dns"
	"portcullis/internal/message"
	"portcullis/internal/spf"
)

// DefaultCheckTimeout is the default of Config.CheckTimeout: the 20 s RFC
// 7208 §4.6.4 asks an SPF evaluation to be allowed at least.
const DefaultCheckTimeout = 20 * time.Second

// DefaultSPFRecordCache is the number of parsed SPF records an Analyzer
// keeps.
const DefaultSPFRecordCache = 4096

// Errors.
var (
	// ErrConfig: New was given an unusable Config.
	ErrConfig = errors.New("analysis: invalid configuration")
	// ErrPanic: a check panicked; its result is temperror.
	ErrPanic = errors.New("analysis: check panicked")
	// ErrDeadline: a check did not finish within Config.CheckTimeout (or
	// the caller's context ended); its result is temperror.
	ErrDeadline = errors.New("analysis: check deadline exceeded")
)

// Config configures an Analyzer. The zero value of every optional field
// means its default.
type Config struct {
	// AuthServID is the authserv-id of this host's Authentication-Results
	// fields (RFC 8601 §2.5). Required.
	AuthServID string
	// Resolver answers every DNS question of every check. Required. Put
	// a dns.Cache in front of the network.
	Resolver dns.Resolver
	// DMARCMode is dmarc.RFC9989 (default) or dmarc.RFC7489.
	DMARCMode dmarc.Mode
	// PSL is the Public Suffix List of RFC 7489 mode; nil means the list
	// compiled into golang.org/x/net (dmarc.EmbeddedPSL).
	PSL dmarc.PublicSuffixList
	// PSLIncludePrivate makes RFC 7489 mode use the PRIVATE section of
	// the list too (default: the ICANN section only).
	PSLIncludePrivate bool
	// DMARCSampler draws the pct= samples of RFC 7489 mode; nil means
	// math/rand/v2.
	DMARCSampler dmarc.Sampler
	// MaxDKIMSignatures bounds the DKIM signatures verified per message,
	// top first; the others are reported with result "policy" (RFC 6376
	// §6.1 lets verifiers limit them). Default dkim.DefaultMaxSignatures
	// (5); negative: no limit.
	MaxDKIMSignatures int
	// CheckTimeout bounds each check (SPF, DKIM, ARC, iprev, then DMARC).
	// A check that overruns it is a temperror. Default
	// DefaultCheckTimeout.
	CheckTimeout time.Duration
	// Clock gives the time (DKIM and ARC x= expiry, SPF %{t}); nil means
	// time.Now.
	Clock func() time.Time
	// SPFTrace keeps the structured SPF trace in the Verdict (for
	// forensics). Default off: the gateway does not need it.
	SPFTrace bool
	// HeaderLimits bounds the header block parsed (see message.Limits;
	// zero fields mean the defaults of package message).
	HeaderLimits message.Limits
}

// Analyzer runs the analysis of messages with one Config. It keeps caches
// across messages (parsed DKIM keys and SPF records) and is safe for
// concurrent use.
type Analyzer struct {
	cfg       Config
	dkim      *dkim.Verifier
	arc       *arc.Verifier
	spfOpts   *spf.Options
	dmarcOpts *dmarc.Options
}

// New returns an Analyzer for cfg.
func New(cfg Config) (*Analyzer, error) {
	if strings.TrimSpace(cfg.AuthServID) == "" {
		return nil, fmt.Errorf("%w: AuthServID is required", ErrConfig)
	}
	if strings.ContainsAny(cfg.AuthServID, " \t\r\n;()\"") {
		return nil, fmt.Errorf("%w: AuthServID %q is not a token (RFC 8601 §2.5)", ErrConfig, cfg.AuthServID)
	}
	if cfg.Resolver == nil {
		return nil, fmt.Errorf("%w: Resolver is required", ErrConfig)
	}
	switch cfg.DMARCMode {
	case dmarc.RFC9989, dmarc.RFC7489:
	default:
		return nil, fmt.Errorf("%w: unknown DMARC mode %d", ErrConfig, cfg.DMARCMode)
	}
	if cfg.CheckTimeout < 0 {
		return nil, fmt.Errorf("%w: CheckTimeout %v is negative", ErrConfig, cfg.CheckTimeout)
	}
	if cfg.CheckTimeout == 0 {
		cfg.CheckTimeout = DefaultCheckTimeout
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	a := &Analyzer{cfg: cfg}
	// DKIM and ARC share the parsed keys (and prepared RSA moduli): a
	// forwarder's ARC key is often its DKIM key too.
	keys := dkim.NewKeyCache(0)
	a.dkim = &dkim.Verifier{
		Resolver:      cfg.Resolver,
		Now:           cfg.Clock,
		MaxSignatures: cfg.MaxDKIMSignatures,
		HeaderLimits:  cfg.HeaderLimits,
		Keys:          keys,
	}
	a.arc = &arc.Verifier{Resolver: cfg.Resolver, Clock: cfg.Clock, Keys: keys}
	a.spfOpts = &spf.Options{
		Timeout:       cfg.CheckTimeout,
		DisableTrace:  !cfg.SPFTrace,
		ParsedRecords: spf.NewRecordCache(DefaultSPFRecordCache),
	}
	a.dmarcOpts = &dmarc.Options{
		Mode:              cfg.DMARCMode,
		PSL:               cfg.PSL,
		PSLIncludePrivate: cfg.PSLIncludePrivate,
		Rand:              cfg.DMARCSampler,
	}
	return a, nil
}

// Config returns the Analyzer's configuration with defaults filled in.
func (a *Analyzer) Config() Config { return a.cfg }

// Input is what the analysis of one message starts from: the connection
// facts of the SMTP transaction and the message.
type Input struct {
	// ClientIP is the SMTP client's address. The zero value means no
	// connection facts (a message checked offline): SPF is then "none"
	// and iprev is not evaluated.
	ClientIP netip.Addr
	// HELO is the HELO/EHLO name the client gave.
	HELO string
	// MailFrom is the MAIL FROM address without angle brackets; "" is the
	// null reverse-path (RFC 5321 §4.5.5), for which SPF and DMARC use
	// the HELO identity (RFC 7208 §2.4, RFC 9989 §4.4).
	MailFrom string
	// RcptTo lists the RCPT TO addresses.
	RcptTo []string
	// TLS describes the TLS session ("" for none), for the record.
	TLS string
	// Message is the whole message, header and body, CRLF line endings
	// (bare LF is accepted and read as CRLF).
	Message []byte
}

// Run analyses one message. It always returns a Verdict: failures of the
// checks are results (temperror, permerror), and a message whose header
// cannot be parsed has Author.Fault FaultMalformedHeader.
func (a *Analyzer) Run(ctx context.Context, in Input) *Verdict {
	v := &Verdict{
		AuthServID: a.cfg.AuthServID,
		DMARCMode:  a.cfg.DMARCMode,
		ClientIP:   in.ClientIP.Unmap(),
		HELO:       in.HELO,
		MailFrom:   in.MailFrom,
		RcptTo:     in.RcptTo,
		TLS:        in.TLS,
	}
	in.ClientIP = v.ClientIP
	timeout := a.cfg.CheckTimeout

	h, herr := message.ReadHeader(bufio.NewReader(bytes.NewReader(in.Message)), a.cfg.HeaderLimits)
	var body []byte
	if herr != nil {
		v.HeaderErr = herr
		v.Author = Author{Fault: FaultMalformedHeader, Err: herr}
	} else {
		body = in.Message[min(int(h.Consumed), len(in.Message)):]
		if h.BareLF {
			// The header was read as CRLF: read the body the same way
			// (message.NewCRLFReader), once, for both verifiers.
			body, _ = io.ReadAll(message.NewCRLFReader(bytes.NewReader(body)))
		}
		v.readHeaderFacts(h)
	}

	// SPF, the HELO identity, DKIM, ARC and iprev are independent: run
	// them at once, each bounded by the check timeout, and merge by name.
	ph := newPhase(ctx, timeout)
	defer ph.cancel()
	spfMain := start(ph, "spf", func(ctx context.Context) spf.Result { return a.checkSPF(ctx, in, false) })
	var spfHELO *pending[spf.Result]
	if in.ClientIP.IsValid() && in.MailFrom != "" && in.HELO != "" {
		spfHELO = start(ph, "spf-helo", func(ctx context.Context) spf.Result { return a.checkSPF(ctx, in, true) })
	}
	var dkimP *pending[[]*dkim.SignatureResult]
	var arcP *pending[*arc.Result]
	if h != nil && h.Count("DKIM-Signature") > 0 {
		dkimP = start(ph, "dkim", func(ctx context.Context) []*dkim.SignatureResult {
			res, err := a.dkim.VerifyHeader(ctx, h, bytes.NewReader(body))
			if err != nil {
				// Reading an in-memory body cannot fail; should it, no
				// signature can be trusted.
				return a.dkimFailed(h, err)
			}
			return res
		})
	}
	if h != nil && hasARC(h) {
		arcP = start(ph, "arc", func(ctx context.Context) *arc.Result {
			res, err := a.arc.Verify(ctx, h, bytes.NewReader(body))
			if err != nil {
				return arcFailed(err)
			}
			return res
		})
	}
	var iprevP *pending[IPRev]
	if in.ClientIP.IsValid() {
		iprevP = start(ph, "iprev", func(ctx context.Context) IPRev { return CheckIPRev(ctx, a.cfg.Resolver, in.ClientIP) })
	}

	// Merge in a fixed order.
	var err error
	v.SPF, err = spfMain.wait()
	v.note(spfMain, err)
	if err != nil {
		v.SPF = spfFailed(in, false, err)
	}
	if spfHELO != nil {
		r, err := spfHELO.wait()
		v.note(spfHELO, err)
		if err != nil {
			r = spfFailed(in, true, err)
		}
		v.SPFHELO = &r
	}
	if dkimP != nil {
		v.DKIM, err = dkimP.wait()
		v.note(dkimP, err)
		if err != nil {
			v.DKIM = a.dkimFailed(h, err)
		}
	}
	if arcP != nil {
		v.ARC, err = arcP.wait()
		v.note(arcP, err)
		if err != nil || v.ARC == nil {
			v.ARC = arcFailed(err)
		}
	} else {
		// RFC 8617 §5.2 step 1: no ARC set, status none.
		v.ARC = &arc.Result{Status: arc.None, OldestPass: -1, Chain: &arc.Chain{}}
	}
	if iprevP != nil {
		v.IPRev, err = iprevP.wait()
		v.note(iprevP, err)
		if err != nil {
			v.IPRev = IPRev{Result: IPRevTempError, Reason: err.Error(), Err: err}
		}
	} else {
		v.IPRev = IPRev{Result: IPRevNone, Reason: "no connection facts"}
	}

	// DMARC, over the merged results (RFC 9989 §5.3).
	if v.Author.Fault != FaultNone {
		// RFC 9989 §5.3.1: with zero or several Author Domains "DMARC
		// validation is not possible"; reported as permerror.
		v.DMARC = dmarc.Result{Result: dmarc.PermError, Mode: a.cfg.DMARCMode, AuthorExists: true,
			Reason: "no single Author Domain: " + v.Author.Fault.Describe(), Err: v.Author.Err}
	} else {
		din := v.dmarcInput()
		dph := newPhase(ctx, timeout)
		defer dph.cancel()
		dm := start(dph, "dmarc", func(ctx context.Context) dmarc.Result {
			return dmarc.Evaluate(ctx, a.cfg.Resolver, din, a.dmarcOpts)
		})
		v.DMARC, err = dm.wait()
		v.note(dm, err)
		if err != nil {
			v.DMARC = dmarc.Result{Result: dmarc.TempError, Mode: a.cfg.DMARCMode, FromDomain: v.Author.Domain,
				AuthorExists: true, Reason: err.Error(), Err: err}
		}
	}
	return v
}

// hasARC reports whether the header has any ARC field (RFC 8617 §4.1).
func hasARC(h *message.Header) bool {
	for _, f := range h.Fields {
		if f.Is(arc.SealField) || f.Is(arc.MessageSignatureField) || f.Is(arc.AuthResultsField) {
			return true
		}
	}
	return false
}

// readHeaderFacts fills the facts the header gives: From, Author Domain,
// Message-ID, Subject, and the DKIM and ARC field counts.
func (v *Verdict) readHeaderFacts(h *message.Header) {
	fields := h.All("From")
	from := make([]string, len(fields))
	v.Author.Values = make([]string, len(fields))
	for i, f := range fields {
		from[i] = f.Value()
		v.Author.Values[i] = f.Unfolded()
	}
	if f := h.Get("Message-ID"); f != nil {
		v.MessageID = f.Unfolded()
	}
	if f := h.Get("Subject"); f != nil {
		v.Subject = f.Unfolded()
	}
	domain, err := dmarc.AuthorDomain(from)
	if err != nil {
		v.Author.Err = err
		v.Author.Fault = faultOf(err)
		return
	}
	v.Author.Domain = domain
}

// checkSPF evaluates the MAIL FROM identity (or HELO for the null path,
// RFC 7208 §2.4), or with helo the HELO identity (§2.3).
func (a *Analyzer) checkSPF(ctx context.Context, in Input, helo bool) spf.Result {
	if !in.ClientIP.IsValid() {
		res := spfIdentity(in, helo)
		res.Result = spf.None
		res.Reason = "no connection facts"
		return res
	}
	req := spf.Request{IP: in.ClientIP, HELO: in.HELO, MailFrom: in.MailFrom, Receiver: a.cfg.AuthServID, Now: a.cfg.Clock}
	if helo {
		return spf.CheckHELO(ctx, a.cfg.Resolver, req, a.spfOpts)
	}
	return spf.Check(ctx, a.cfg.Resolver, req, a.spfOpts)
}

// spfIdentity returns a Result naming the identity and domain a check
// evaluates, without a verdict.
func spfIdentity(in Input, helo bool) spf.Result {
	if helo || in.MailFrom == "" {
		return spf.Result{Identity: spf.IdentityHELO, Domain: strings.TrimSuffix(in.HELO, "."), Sender: "postmaster@" + in.HELO}
	}
	domain := in.MailFrom
	if i := strings.LastIndexByte(domain, '@'); i >= 0 {
		domain = domain[i+1:]
	}
	return spf.Result{Identity: spf.IdentityMailFrom, Domain: strings.TrimSuffix(domain, "."), Sender: in.MailFrom}
}

// spfFailed is the temperror of an SPF check that panicked or timed out.
func spfFailed(in Input, helo bool, err error) spf.Result {
	res := spfIdentity(in, helo)
	res.Result, res.Reason, res.Err = spf.TempError, err.Error(), err
	return res
}

// dkimFailed is the outcome of a DKIM check that panicked or timed out:
// temperror for each signature it would have verified, so that none of
// them counts as a pass.
func (a *Analyzer) dkimFailed(h *message.Header, err error) []*dkim.SignatureResult {
	var out []*dkim.SignatureResult
	for _, f := range h.All("DKIM-Signature") {
		sig, _ := dkim.ParseSignature(f)
		r := &dkim.SignatureResult{Result: dkim.TempError, Reason: err.Error(), Err: err}
		if sig != nil {
			r.Domain, r.Selector, r.Algorithm, r.Identity, r.Signature = sig.Domain, sig.Selector, string(sig.Algorithm), sig.Identity, sig
			r.HeaderB = sig.B[:min(len(sig.B), 8)]
		}
		out = append(out, r)
	}
	return out
}

// arcFailed is the outcome of an ARC check that panicked or timed out.
func arcFailed(err error) *arc.Result {
	if err == nil {
		err = ErrDeadline
	}
	// RFC 8617 §5.2.1 makes any error a failed chain; Temporary marks it
	// as one a later attempt might validate.
	return &arc.Result{Status: arc.Fail, Temporary: true, Reason: err.Error(), Err: err, OldestPass: -1}
}

// dmarcInput gathers what DMARC evaluates (RFC 9989 §4.4): the Author
// Domain, the SPF result of the MAIL FROM identity (HELO for the null
// path, which spf.Check already chose) and every DKIM result.
func (v *Verdict) dmarcInput() dmarc.Input {
	in := dmarc.Input{
		FromDomain: v.Author.Domain,
		SPF:        dmarc.SPFResult{Result: dmarc.AuthStatus(v.SPF.Result), Domain: v.SPF.Domain},
	}
	for _, d := range v.DKIM {
		in.DKIM = append(in.DKIM, dmarc.DKIMResult{Result: dmarc.AuthStatus(d.Result), Domain: d.Domain, Selector: d.Selector})
	}
	return in
}
