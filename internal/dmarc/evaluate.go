package dmarc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"

	"portcullis/internal/dns"
)

// Status is a DMARC result (RFC 9989 §9.2; RFC 8601 method "dmarc").
type Status string

// The DMARC results.
const (
	// Pass: a policy record exists and an Authenticated Identifier is
	// aligned with the Author Domain.
	Pass Status = "pass"
	// Fail: a policy record exists and no Authenticated Identifier is
	// aligned.
	Fail Status = "fail"
	// None: no policy record applies to the Author Domain.
	None Status = "none"
	// TempError: a DNS query the evaluation needed failed temporarily; a
	// later attempt might succeed. Never turned into none or fail.
	TempError Status = "temperror"
	// PermError: the evaluation cannot complete, e.g. the record found has
	// no valid policy and no valid rua= (RFC 9989 §4.10.1), or several
	// records were published (RFC 7489 §6.6.3 step 5).
	PermError Status = "permerror"
)

// PolicySource names the tag that gave the applied policy.
type PolicySource string

// The policy sources.
const (
	SourceP  PolicySource = "p"
	SourceSP PolicySource = "sp"
	SourceNP PolicySource = "np"
)

// AuthStatus is the result of an underlying authentication check as RFC
// 8601 names it ("pass", "fail", "softfail", "neutral", "none",
// "temperror", "permerror", "policy"). Only "pass" makes an Authenticated
// Identifier (RFC 9989 §4.3); the comparison ignores case.
type AuthStatus string

// AuthPass is the only status that yields an Authenticated Identifier.
const AuthPass AuthStatus = "pass"

func (s AuthStatus) pass() bool { return strings.EqualFold(string(s), string(AuthPass)) }

// SPFResult is the SPF result for the MAIL FROM identity (RFC 9989 §3.2.4:
// DMARC uses only MAIL FROM, or postmaster@HELO for a null path).
type SPFResult struct {
	Result AuthStatus
	// Domain is the domain the SPF check was made for.
	Domain string
}

// DKIMResult is the result of one DKIM signature (RFC 9989 §3.2.3).
type DKIMResult struct {
	Result AuthStatus
	// Domain is the signature's d= value.
	Domain string
	// Selector is the signature's s= value (reported, not used).
	Selector string
}

// Input is what DMARC evaluates for one message.
type Input struct {
	// FromDomain is the Author Domain, as AuthorDomain returns it (it is
	// normalised again here).
	FromDomain string
	SPF        SPFResult
	DKIM       []DKIMResult
}

// Sampler draws pct= samples: IntN returns a number in [0, n). A
// *math/rand/v2.Rand satisfies it.
type Sampler interface {
	IntN(n int) int
}

// Options tune an evaluation. A nil *Options means the defaults.
type Options struct {
	// Mode is RFC9989 (default) or RFC7489.
	Mode Mode
	// PSL is the Public Suffix List of RFC7489 mode; nil means
	// EmbeddedPSL(), the list compiled into golang.org/x/net.
	PSL PublicSuffixList
	// PSLIncludePrivate makes RFC7489 mode use the PRIVATE section of the
	// list too. By default only the ICANN section counts: RFC 7489 §3.2
	// defines the Organizational Domain as the domain registered with a
	// registrar, which is what the ICANN section describes.
	PSLIncludePrivate bool
	// Rand draws the pct= samples of RFC7489 mode; nil means the
	// math/rand/v2 global source.
	Rand Sampler
	// MaxIdentifierWalks bounds the DNS Tree Walks made for Authenticated
	// Identifiers (SPF domain and distinct DKIM domains) in RFC9989 mode,
	// besides the Author Domain's own walk; each walk asks at most 8
	// queries. Identifiers identical to the Author Domain need no walk.
	// Default 10.
	MaxIdentifierWalks int
}

// DefaultMaxIdentifierWalks is the default of Options.MaxIdentifierWalks.
const DefaultMaxIdentifierWalks = 10

// MaxTreeWalkQueries is the most DNS queries one DNS Tree Walk asks (RFC
// 9989 §4.10).
const MaxTreeWalkQueries = 8

// Lookup is one DNS query made by an evaluation, for traces.
type Lookup struct {
	Name    string
	Type    dns.Type
	Outcome string // "NOERROR, 2 records", "NODATA", "NXDOMAIN" or the error
}

// Result is the outcome of Evaluate.
type Result struct {
	Result Status
	Mode   Mode
	// FromDomain is the normalised Author Domain.
	FromDomain string
	// OrgDomain is the Author Domain's Organizational Domain, when the
	// evaluation determined it: always in RFC7489 mode; in RFC9989 mode
	// when policy discovery walked the tree or relaxed alignment needed it
	// (RFC 9989 §4.10.2 skips it otherwise).
	OrgDomain string
	// PolicyDomain is the domain whose record applies (RFC 9989 §3.2.5).
	PolicyDomain string
	// Policy is the policy in effect for failing mail after t=y or pct=
	// (RFC 7489) lowered it; PublishedPolicy is the one published. Both
	// are "" when no record applies.
	Policy          Policy
	PublishedPolicy Policy
	// PolicySource is the tag that gave PublishedPolicy. For passing mail
	// np= is not resolved: the source is then sp or p.
	PolicySource PolicySource
	// PolicySubstituted reports a record with a missing or invalid p=
	// (or invalid sp=/np=) applied as p=none because rua= is valid (RFC
	// 9989 §4.10.1).
	PolicySubstituted bool
	// Testing reports t=y (RFC 9989 §4.7): the Domain Owner asks that the
	// policy not be applied; Policy is one level below PublishedPolicy.
	Testing bool
	// SampledOut reports (RFC7489 mode) a failing message that pct=
	// sampling left out of the policy; Policy is then one level below.
	SampledOut bool
	// AuthorExists is false when np= applied to a non-existent Author
	// Domain (RFC 9989 §3.2.13).
	AuthorExists bool
	// SPFAligned and DKIMAligned report an aligned passing identifier;
	// DKIMAlignedDomain is the first aligned DKIM d=.
	SPFAligned        bool
	DKIMAligned       bool
	DKIMAlignedDomain string
	// Record is the text of the record applied and Parsed its parse.
	Record string
	Parsed *Record
	// Warnings notes problems that did not change the result.
	Warnings []string
	// Reason explains the result in words.
	Reason string
	// Err is the DNS error behind a temperror or permerror, if any.
	Err error
	// Lookups lists the DNS queries made, in order.
	Lookups []Lookup
}

// ErrEvaluation classifies evaluation errors in Result.Err that are not
// DNS errors.
var ErrEvaluation = errors.New("dmarc: evaluation error")

type globalRand struct{}

func (globalRand) IntN(n int) int { return rand.IntN(n) }

// Evaluate applies DMARC to one message: policy discovery for the Author
// Domain, Identifier Alignment of the passing SPF and DKIM identifiers,
// and the policy in effect. Every DNS query goes through r under ctx.
func Evaluate(ctx context.Context, r dns.Resolver, in Input, opts *Options) Result {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.PSL == nil {
		o.PSL = EmbeddedPSL()
	}
	if o.Rand == nil {
		o.Rand = globalRand{}
	}
	if o.MaxIdentifierWalks <= 0 {
		o.MaxIdentifierWalks = DefaultMaxIdentifierWalks
	}
	s := &session{ctx: ctx, r: r, o: &o, records: map[string]*dmarcAnswer{}, walks: map[string]*walkResult{}}
	res := s.evaluate(in)
	res.Mode = o.Mode
	res.Lookups = s.lookups
	res.Warnings = append(res.Warnings, s.warnings...)
	return res
}

type session struct {
	ctx      context.Context
	r        dns.Resolver
	o        *Options
	records  map[string]*dmarcAnswer // by domain, for _dmarc.<domain>
	walks    map[string]*walkResult  // by start domain
	lookups  []Lookup
	warnings []string
	nwalks   int
}

func (s *session) warnf(format string, args ...any) {
	if len(s.warnings) < maxWarnings {
		s.warnings = append(s.warnings, fmt.Sprintf(format, args...))
	}
}

func (s *session) icannOnly() bool { return !s.o.PSLIncludePrivate }

func (s *session) evaluate(in Input) Result {
	res := Result{AuthorExists: true}
	author, err := NormalizeDomain(in.FromDomain)
	if err != nil {
		res.Result = PermError
		res.Err = err
		res.Reason = fmt.Sprintf("the Author Domain %q is not a valid domain name", clip(in.FromDomain))
		return res
	}
	res.FromDomain = author

	// Policy discovery.
	var rec *Record
	switch s.o.Mode {
	case RFC7489:
		rec, err = s.discover7489(author, &res)
	default:
		rec, err = s.discover9989(author, &res)
	}
	if err != nil {
		return s.fail(res, err)
	}
	if rec == nil {
		if res.Result == "" {
			res.Result = None
		}
		return res
	}
	res.Record = rec.Raw
	res.Parsed = rec
	for _, w := range rec.Warnings {
		res.Warnings = append(res.Warnings, "record at _dmarc."+res.PolicyDomain+": "+w)
	}
	p, sp, np, substituted, ok, problem := rec.Applicable()
	if !ok {
		// RFC 9989 §4.10.1: no valid p/sp/np and no valid rua: "the Mail
		// Receiver applies no DMARC processing to this message".
		res.Result = PermError
		res.Err = fmt.Errorf("%w: record at _dmarc.%s: %s and no valid rua", ErrEvaluation, res.PolicyDomain, problem)
		res.Reason = fmt.Sprintf("the DMARC record of %s cannot be applied: %s, and it has no valid rua= (RFC 9989 §4.10.1)", res.PolicyDomain, problem)
		return res
	}
	res.PolicySubstituted = substituted

	// Identifier Alignment (RFC 9989 §4.10.2, §5.3.4).
	var alignErr error
	res.SPFAligned, alignErr = s.alignSPF(author, in.SPF, rec.ASPF, &res)
	dkimAligned, dkimDomain, dkimErr := s.alignDKIM(author, in.DKIM, rec.ADKIM, &res)
	res.DKIMAligned, res.DKIMAlignedDomain = dkimAligned, dkimDomain
	alignErr = errors.Join(alignErr, dkimErr)

	// Policy selection (RFC 9989 §4.10.1; RFC 7489 §6.6.3).
	subdomain := res.PolicyDomain != author
	res.PublishedPolicy, res.PolicySource = p, SourceP
	if subdomain {
		if sp != "" {
			res.PublishedPolicy, res.PolicySource = sp, SourceSP
		}
	}
	passed := res.SPFAligned || res.DKIMAligned
	switch {
	case passed:
		res.Result = Pass
		if alignErr != nil {
			res.Warnings = append(res.Warnings, "alignment of another identifier could not be checked: "+alignErr.Error())
		}
	case alignErr != nil:
		return s.fail(res, alignErr)
	default:
		res.Result = Fail
		if subdomain && np != "" {
			exists, err := s.exists(author)
			if err != nil {
				return s.fail(res, err)
			}
			res.AuthorExists = exists
			if !exists {
				res.PublishedPolicy, res.PolicySource = np, SourceNP
			}
		}
	}
	res.Policy = res.PublishedPolicy
	if s.o.Mode == RFC9989 && rec.Testing {
		// RFC 9989 §4.7 "t": the policy applied is one level below.
		res.Testing = true
		res.Policy = res.PublishedPolicy.downgrade()
	}
	if s.o.Mode == RFC7489 && res.Result == Fail && rec.Pct < 100 && res.PublishedPolicy != PolicyNone {
		// RFC 7489 §6.6.4: at most pct% of failing messages get the
		// policy; the others get the next policy down.
		if rec.Pct == 0 || s.o.Rand.IntN(100) >= rec.Pct {
			res.SampledOut = true
			res.Policy = res.PublishedPolicy.downgrade()
		}
	}
	res.Reason = s.reason(res)
	return res
}

// fail turns an error into temperror (temporary DNS failure) or permerror.
func (s *session) fail(res Result, err error) Result {
	res.Err = err
	if dns.IsTemporary(err) {
		res.Result = TempError
		res.Reason = "a DNS query needed by DMARC failed temporarily: " + err.Error()
	} else {
		res.Result = PermError
		res.Reason = "DMARC evaluation failed: " + err.Error()
	}
	res.Policy, res.PublishedPolicy, res.PolicySource = "", "", ""
	return res
}

func (s *session) reason(res Result) string {
	var b strings.Builder
	switch res.Result {
	case Pass:
		b.WriteString("aligned ")
		var ids []string
		if res.SPFAligned {
			ids = append(ids, "SPF")
		}
		if res.DKIMAligned {
			ids = append(ids, "DKIM d="+res.DKIMAlignedDomain)
		}
		b.WriteString(strings.Join(ids, " and "))
		fmt.Fprintf(&b, " for %s", res.FromDomain)
	case Fail:
		fmt.Fprintf(&b, "no aligned SPF or DKIM identifier for %s", res.FromDomain)
	}
	fmt.Fprintf(&b, "; policy %s=%s from the record of %s", res.PolicySource, res.PublishedPolicy, res.PolicyDomain)
	if !res.AuthorExists {
		b.WriteString(" (the Author Domain does not exist)")
	}
	if res.PolicySubstituted {
		b.WriteString(" (applied as p=none: the record has no valid policy but a valid rua=)")
	}
	if res.Testing {
		fmt.Fprintf(&b, "; t=y: %s applied", res.Policy)
	}
	if res.SampledOut {
		fmt.Fprintf(&b, "; pct=%d sampling left this message out: %s applied", res.Parsed.Pct, res.Policy)
	}
	return b.String()
}

// dmarcAnswer is the outcome of one query for _dmarc.<domain>.
type dmarcAnswer struct {
	rec   *Record // the one DMARC record, or nil
	count int     // how many records started with v=DMARC1
	err   error   // temporary DNS failure
}

// dmarcRecord asks for _dmarc.<domain> TXT once per evaluation and keeps
// the records starting with v=DMARC1 (RFC 9989 §4.10 steps 1-2, 5-6). Only
// a temporary failure is an error: a name too long to query holds no
// record.
func (s *session) dmarcRecord(domain string) *dmarcAnswer {
	if a, ok := s.records[domain]; ok {
		return a
	}
	a := &dmarcAnswer{}
	s.records[domain] = a
	name := "_dmarc." + domain
	if len(name) > 253 {
		s.warnf("%s is longer than a domain name can be (253 octets): no record there", clip(name))
		return a
	}
	texts, resp, err := dns.LookupTXT(s.ctx, s.r, name)
	s.trace(name, dns.TypeTXT, resp, err)
	if err != nil {
		if dns.IsTemporary(err) || !errors.Is(err, dns.ErrPermanent) {
			a.err = err
			if !dns.IsTemporary(err) {
				a.err = fmt.Errorf("%w: %w", dns.ErrTemporary, err)
			}
			return a
		}
		s.warnf("query %s: %v: treated as no record", name, err)
		return a
	}
	var found string
	for _, t := range texts {
		if IsDMARCRecord(t) {
			a.count++
			found = t
		}
	}
	switch {
	case a.count == 1:
		rec, err := ParseRecord(found, s.o.Mode)
		if err == nil {
			a.rec = rec
		}
	case a.count > 1:
		s.warnf("%d DMARC records at %s: all discarded", a.count, name)
	}
	return a
}

func (s *session) trace(name string, t dns.Type, resp *dns.Response, err error) {
	l := Lookup{Name: name, Type: t}
	switch {
	case err != nil:
		l.Outcome = err.Error()
	case resp.NXDomain():
		l.Outcome = "NXDOMAIN"
	case resp.NoData():
		l.Outcome = "NODATA"
	default:
		l.Outcome = fmt.Sprintf("NOERROR, %d records", len(resp.Records))
	}
	s.lookups = append(s.lookups, l)
}

// found is a DMARC record met by a tree walk.
type found struct {
	domain string
	rec    *Record
}

// walkResult is a DNS Tree Walk from one domain (RFC 9989 §4.10) and the
// Organizational Domain selected from it (§4.10.2).
type walkResult struct {
	found []found // longest name first
	org   string
	psd   string // the domain whose psd=y record stopped the walk
	err   error
}

// walk performs the DNS Tree Walk of RFC 9989 §4.10 from domain: query
// domain, then, if it has 8 labels or more, the name of its 7 right-most
// labels, else its parent, then each parent in turn, at most 8 queries;
// records that do not start with v=DMARC1 are discarded, several records at
// one name are all discarded (steps 2, 6); the walk stops at a record with
// psd=y or psd=n. The Organizational Domain is then selected (§4.10.2):
// the domain of a psd=n record; the domain one label below a psd=y record
// other than the starting domain's; else the record with the fewest labels;
// else, no record found, the starting domain.
func (s *session) walk(domain string) *walkResult {
	if w, ok := s.walks[domain]; ok {
		return w
	}
	w := &walkResult{}
	s.walks[domain] = w
	target := domain
	for first := true; target != ""; first = false {
		a := s.dmarcRecord(target)
		if a.err != nil {
			w.err = a.err
			return w
		}
		if a.rec != nil {
			w.found = append(w.found, found{target, a.rec})
			if a.rec.PSD == PSDYes || a.rec.PSD == PSDNo {
				break
			}
		}
		if first && labelCount(target) >= 8 {
			// Step 4: "If x >= 8, remove the left-most labels from the
			// subject domain until 7 labels remain."
			target = lastLabels(target, 7)
		} else {
			target = parentDomain(target)
		}
	}
	w.org = domain
	if n := len(w.found); n > 0 {
		last := w.found[n-1]
		switch {
		case last.rec.PSD == PSDNo:
			w.org = last.domain
		case last.rec.PSD == PSDYes && last.domain != domain:
			w.psd = last.domain
			w.org = lastLabels(domain, labelCount(last.domain)+1)
		default:
			w.org = last.domain
		}
	}
	return w
}

// discover9989 is DMARC Policy Discovery (RFC 9989 §4.10.1).
func (s *session) discover9989(author string, res *Result) (*Record, error) {
	a := s.dmarcRecord(author)
	if a.err != nil {
		return nil, a.err
	}
	if a.rec != nil {
		res.PolicyDomain = author
		return a.rec, nil
	}
	// No record for the Author Domain: walk the tree (the first query is
	// the one just made) to find the Organizational Domain, whose record
	// applies, or else the Public Suffix Domain's.
	w := s.walk(author)
	if w.err != nil {
		return nil, w.err
	}
	res.OrgDomain = w.org
	for _, f := range w.found {
		if f.domain == w.org {
			res.PolicyDomain = f.domain
			return f.rec, nil
		}
	}
	if w.psd != "" {
		res.PolicyDomain = w.psd
		return w.found[len(w.found)-1].rec, nil
	}
	res.Reason = fmt.Sprintf("no DMARC policy record for %s nor any parent domain queried by the tree walk", author)
	return nil, nil
}

// discover7489 is RFC 7489 §6.6.3 policy discovery with the
// Organizational Domain of §3.2.
func (s *session) discover7489(author string, res *Result) (*Record, error) {
	org, err := OrganizationalDomainPSL(s.o.PSL, author, s.icannOnly())
	if err != nil {
		return nil, err
	}
	res.OrgDomain = org
	for _, d := range []string{author, org} {
		a := s.dmarcRecord(d)
		if a.err != nil {
			return nil, a.err
		}
		if a.count > 1 {
			// Step 5: "If the remaining set contains multiple records
			// ..., policy discovery terminates and DMARC processing is not
			// applied to this message."
			res.Result = PermError
			res.PolicyDomain = d
			res.Reason = fmt.Sprintf("%d DMARC records published at _dmarc.%s (RFC 7489 §6.6.3)", a.count, d)
			return nil, nil
		}
		if a.rec != nil {
			res.PolicyDomain = d
			return a.rec, nil
		}
		if org == author {
			break
		}
	}
	res.Reason = fmt.Sprintf("no DMARC policy record for %s nor its Organizational Domain %s", author, org)
	return nil, nil
}

// orgDomain returns the Organizational Domain of d in the session's mode.
// In RFC9989 mode every walk but the Author Domain's counts against
// MaxIdentifierWalks.
func (s *session) orgDomain(author string) OrgDomainFunc {
	return func(d string) (string, error) {
		if s.o.Mode == RFC7489 {
			return OrganizationalDomainPSL(s.o.PSL, d, s.icannOnly())
		}
		if _, done := s.walks[d]; !done && d != author {
			if s.nwalks >= s.o.MaxIdentifierWalks {
				return "", errWalkLimit
			}
			s.nwalks++
		}
		w := s.walk(d)
		if w.err != nil {
			return "", w.err
		}
		return w.org, nil
	}
}

var errWalkLimit = errors.New("tree-walk limit for authenticated identifiers reached")

// align checks one passing identifier.
func (s *session) align(author, id string, mode Alignment, res *Result) (bool, error) {
	org := s.orgDomain(author)
	ok, err := Aligned(mode, author, id, func(d string) (string, error) {
		o, err := org(d)
		if err == nil && d == author {
			res.OrgDomain = o
		}
		return o, err
	})
	if errors.Is(err, errWalkLimit) {
		s.warnf("identifier %s not checked: %v", clip(id), err)
		return false, nil
	}
	return ok, err
}

func (s *session) alignSPF(author string, spf SPFResult, mode Alignment, res *Result) (bool, error) {
	if !spf.Result.pass() || spf.Domain == "" {
		return false, nil
	}
	return s.align(author, spf.Domain, mode, res)
}

// alignDKIM checks the passing DKIM signatures (RFC 9989 §4.4.1: any
// aligned one suffices): identical domains first, which need no DNS, then
// the others in order.
func (s *session) alignDKIM(author string, sigs []DKIMResult, mode Alignment, res *Result) (bool, string, error) {
	var domains []string
	seen := map[string]bool{}
	for _, sig := range sigs {
		if !sig.Result.pass() {
			continue
		}
		d, err := NormalizeDomain(sig.Domain)
		if err != nil {
			s.warnf("DKIM d=%q is not a valid domain name", clip(sig.Domain))
			continue
		}
		if d == author {
			return true, d, nil
		}
		if !seen[d] {
			seen[d] = true
			domains = append(domains, d)
		}
	}
	if mode == AlignStrict {
		return false, "", nil
	}
	var errs error
	for _, d := range domains {
		ok, err := s.align(author, d, mode, res)
		if err != nil {
			errs = errors.Join(errs, err)
			continue
		}
		if ok {
			return true, d, nil
		}
	}
	return false, "", errs
}

// exists tells whether the Author Domain exists (RFC 9989 §3.2.13,
// Appendix A.4): a domain does not exist when a query for it is answered
// NXDOMAIN (RFC 8020); any record, of any type, makes it exist, and so
// does a CNAME. One NXDOMAIN is enough by that definition; A, then AAAA,
// then MX are asked until one answer shows the name exists, so that a
// single server answering NXDOMAIN wrongly for one type (the case RFC 8020
// §4 discusses) does not turn np= on. These are also the types RFC 9091
// §2.7 used; unlike RFC 9091, NODATA means the domain exists.
func (s *session) exists(domain string) (bool, error) {
	for _, t := range []dns.Type{dns.TypeA, dns.TypeAAAA, dns.TypeMX} {
		resp, err := s.r.Query(s.ctx, domain, t)
		s.trace(domain, t, resp, err)
		if err != nil {
			if !errors.Is(err, dns.ErrPermanent) && !dns.IsTemporary(err) {
				err = fmt.Errorf("%w: %w", dns.ErrTemporary, err)
			}
			return true, err
		}
		if !resp.NXDomain() || len(resp.CNAMEs) > 0 {
			return true, nil
		}
	}
	return false, nil
}

// OrganizationalDomain returns the Organizational Domain of domain by RFC
// 9989 §4.10.2: a DNS Tree Walk from domain (at most 8 queries) and the
// selection rules of psd=n, psd=y and the record with the fewest labels.
// A temporary DNS failure is returned as an error wrapping
// dns.ErrTemporary.
func OrganizationalDomain(ctx context.Context, r dns.Resolver, domain string) (string, error) {
	d, err := NormalizeDomain(domain)
	if err != nil {
		return "", err
	}
	s := &session{ctx: ctx, r: r, o: &Options{}, records: map[string]*dmarcAnswer{}, walks: map[string]*walkResult{}}
	w := s.walk(d)
	if w.err != nil {
		return "", w.err
	}
	return w.org, nil
}

// Discovery is the outcome of DMARC Policy Discovery for one domain.
type Discovery struct {
	// Domain is the normalised domain discovery started from.
	Domain string
	// PolicyDomain is where the applicable record was found, "" if none.
	PolicyDomain string
	// OrgDomain is the Organizational Domain when discovery determined it.
	OrgDomain string
	// Record is the applicable record, nil when none applies.
	Record *Record
	// Reason explains an absent record.
	Reason   string
	Warnings []string
	Lookups  []Lookup
}

// Discover performs DMARC Policy Discovery for domain (RFC 9989 §4.10.1,
// or RFC 7489 §6.6.3 in RFC7489 mode) without evaluating a message, e.g.
// for a posture check of a domain. A temporary DNS failure is an error
// wrapping dns.ErrTemporary; several records published at one name in
// RFC7489 mode leave Record nil with a Reason.
func Discover(ctx context.Context, r dns.Resolver, domain string, opts *Options) (*Discovery, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.PSL == nil {
		o.PSL = EmbeddedPSL()
	}
	d, err := NormalizeDomain(domain)
	if err != nil {
		return nil, err
	}
	s := &session{ctx: ctx, r: r, o: &o, records: map[string]*dmarcAnswer{}, walks: map[string]*walkResult{}}
	var res Result
	var rec *Record
	if o.Mode == RFC7489 {
		rec, err = s.discover7489(d, &res)
	} else {
		rec, err = s.discover9989(d, &res)
	}
	disc := &Discovery{Domain: d, PolicyDomain: res.PolicyDomain, OrgDomain: res.OrgDomain, Record: rec,
		Reason: res.Reason, Warnings: s.warnings, Lookups: s.lookups}
	if rec == nil {
		disc.PolicyDomain = ""
	}
	return disc, err
}
