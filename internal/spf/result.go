package spf

import (
	"errors"
	"net/netip"
	"time"
)

// Verdict is the result of check_host() (RFC 7208 §2.6, §8).
type Verdict string

// The results of RFC 7208 §2.6.
const (
	None      Verdict = "none"
	Neutral   Verdict = "neutral"
	Pass      Verdict = "pass"
	Fail      Verdict = "fail"
	SoftFail  Verdict = "softfail"
	TempError Verdict = "temperror"
	PermError Verdict = "permerror"
)

// Identity names the identity a check authorizes (RFC 7208 §2.3, §2.4).
type Identity string

// The identities of RFC 7208 §2.3 and §2.4.
const (
	IdentityMailFrom Identity = "mailfrom"
	IdentityHELO     Identity = "helo"
)

// Sentinel errors a Result's Err wraps (besides ErrSyntax and the errors
// of package dns, which wrap dns.ErrTemporary for a temperror).
var (
	// ErrMultipleRecords: more than one "v=spf1" record (RFC 7208 §4.5).
	ErrMultipleRecords = errors.New("spf: more than one SPF record")
	// ErrTooManyLookups: more than the allowed terms that query DNS
	// (RFC 7208 §4.6.4, 10 by default).
	ErrTooManyLookups = errors.New("spf: too many DNS lookups")
	// ErrTooManyVoidLookups: more than the allowed void lookups (RFC 7208
	// §4.6.4, 2 by default).
	ErrTooManyVoidLookups = errors.New("spf: too many void DNS lookups")
	// ErrTooManyMX: an "mx" mechanism found more than the allowed MX names
	// (RFC 7208 §4.6.4, 10 by default).
	ErrTooManyMX = errors.New("spf: too many MX records")
	// ErrIncludeNone: an include target has no SPF record (RFC 7208 §5.2).
	ErrIncludeNone = errors.New("spf: include target has no SPF record")
	// ErrRedirectNone: a redirect target has no SPF record or is not a
	// valid domain name (RFC 7208 §6.1).
	ErrRedirectNone = errors.New("spf: redirect target has no SPF record")
	// ErrInvalidDomain: the checked domain is not a valid, fully
	// qualified domain name; the result is none (RFC 7208 §4.3).
	ErrInvalidDomain = errors.New("spf: malformed domain")
	// ErrNoRecord: the domain publishes no SPF record (RFC 7208 §4.5).
	ErrNoRecord = errors.New("spf: no SPF record")
	// ErrInternal: the evaluation panicked; the result is temperror so
	// that the caller fails closed.
	ErrInternal = errors.New("spf: internal error")
)

// Request describes the SMTP transaction to check.
type Request struct {
	// IP is the SMTP client address. An IPv4-mapped IPv6 address is
	// treated as IPv4 (RFC 7208 §5).
	IP netip.Addr
	// HELO is the HELO/EHLO domain.
	HELO string
	// MailFrom is the SMTP MAIL FROM address; "" (the null reverse-path)
	// makes Check evaluate the HELO identity (RFC 7208 §2.4).
	MailFrom string
	// Receiver is the domain of the checking host, for %{r} in
	// explanations; "" expands to "unknown".
	Receiver string
	// Now gives %{t}; nil means time.Now.
	Now func() time.Time
}

// Defaults of Options (RFC 7208 §4.6.4).
const (
	DefaultMaxLookups     = 10
	DefaultMaxVoidLookups = 2
	DefaultMaxMXNames     = 10
	DefaultMaxPTRNames    = 10
	DefaultTimeout        = 20 * time.Second
	// DefaultExplanation is the explanation of a fail when the record has
	// no usable exp= (RFC 7208 §6.2). It is an explain-string.
	DefaultExplanation = "%{o} does not designate %{c} as a permitted sender"
)

// Options tune the evaluation. A nil *Options, and every zero field, mean
// the defaults of RFC 7208.
type Options struct {
	// MaxLookups bounds the terms that query DNS (include, a, mx, ptr,
	// exists, redirect). Default 10; RFC 7208 §4.6.4 makes 10 a MUST.
	MaxLookups int
	// MaxVoidLookups bounds the terms whose lookup returned no answer
	// (NXDOMAIN or NODATA). Default 2 (RFC 7208 §4.6.4); negative: none
	// allowed.
	MaxVoidLookups int
	// MaxMXNames bounds the MX names one "mx" mechanism may look up;
	// more is a permerror (RFC 7208 §4.6.4). Default 10.
	MaxMXNames int
	// MaxPTRNames bounds the PTR names one "ptr" mechanism or %{p} macro
	// validates; the rest are ignored (RFC 7208 §4.6.4). Default 10.
	MaxPTRNames int
	// Timeout bounds the whole evaluation; when exceeded the result is
	// temperror (RFC 7208 §4.6.4 asks for at least 20 s). Default 20 s.
	Timeout time.Duration
	// DefaultExplanation replaces the package's DefaultExplanation; it
	// is an explain-string, so it may use macros. A text that is not a
	// valid explain-string is used as it is.
	DefaultExplanation string
	// DisableTrace skips building Result.Trace.
	DisableTrace bool
	// AllowSingleLabel accepts single-label domains ("localnet") as the
	// checked domain and in domain-specs, which RFC 7208 §4.3 and §7.1
	// refuse. Off by default.
	AllowSingleLabel bool
	// ParsedRecords, if set, caches parsed records across checks.
	ParsedRecords *RecordCache
}

// Result is the outcome of a check.
type Result struct {
	Result Verdict `json:"result"`
	// Explanation is the text of a fail (RFC 7208 §6.2), "" otherwise.
	Explanation string `json:"explanation"`
	// Domain is the domain whose policy was checked (the MAIL FROM
	// domain or the HELO name).
	Domain string `json:"domain"`
	// Identity is the identity checked.
	Identity Identity `json:"identity"`
	// Sender is <sender> as check_host() saw it ("postmaster@" + HELO for
	// the HELO identity, "postmaster" for an empty local-part).
	Sender string `json:"sender"`
	// Mechanism is the text of the directive that decided the result, or
	// "default" when none matched; "" on errors.
	Mechanism string `json:"mechanism,omitempty"`
	// Lookups counts the terms that queried DNS (RFC 7208 §4.6.4).
	Lookups int `json:"lookups"`
	// VoidLookups counts the terms whose lookup found nothing.
	VoidLookups int `json:"void_lookups"`
	// Reason says why a temperror, permerror or none happened.
	Reason string `json:"reason,omitempty"`
	// Err is the error behind Reason, for errors.Is.
	Err error `json:"-"`
	// Trace is the structured evaluation, unless Options.DisableTrace.
	Trace *Trace `json:"trace,omitempty"`
}
