package analysis

import (
	"errors"
	"net/netip"
	"strings"

	"portcullis/internal/arc"
	"portcullis/internal/dkim"
	"portcullis/internal/dmarc"
	"portcullis/internal/spf"
)

// Fault is a structural reason why a message has no single Author Domain
// (RFC 9989 §5.3.1), which policy may reject on whatever the checks say.
type Fault string

// The faults. Each is distinct so that a policy can name it.
const (
	FaultNone Fault = ""
	// FaultMalformedHeader: the header block could not be parsed (it
	// breaks RFC 5322 §2.2 or the header limits).
	FaultMalformedHeader Fault = "malformed-header"
	// FaultNoFrom: no From field (RFC 5322 §3.6 requires one).
	FaultNoFrom Fault = "no-from"
	// FaultSeveralFrom: more than one From field (RFC 5322 §3.6 allows
	// one; RFC 9989 §5.3.1).
	FaultSeveralFrom Fault = "several-from"
	// FaultSeveralDomains: the From field holds addresses in more than
	// one domain (RFC 9989 §5.3.1).
	FaultSeveralDomains Fault = "several-domains"
	// FaultNoAuthorDomain: the From field yields no usable domain: a
	// syntax error, no address, a domain literal, an invalid domain name,
	// or a field over the hostile-input limits.
	FaultNoAuthorDomain Fault = "no-author-domain"
)

// Describe says what the fault is in words.
func (f Fault) Describe() string {
	switch f {
	case FaultNone:
		return "none"
	case FaultMalformedHeader:
		return "the message header cannot be parsed"
	case FaultNoFrom:
		return "the message has no From field"
	case FaultSeveralFrom:
		return "the message has several From fields"
	case FaultSeveralDomains:
		return "the From field holds addresses in several domains"
	case FaultNoAuthorDomain:
		return "the From field holds no usable domain"
	}
	return string(f)
}

// faultOf maps an error of dmarc.AuthorDomain to its Fault.
func faultOf(err error) Fault {
	switch {
	case errors.Is(err, dmarc.ErrNoFromField):
		return FaultNoFrom
	case errors.Is(err, dmarc.ErrMultipleFromFields):
		return FaultSeveralFrom
	case errors.Is(err, dmarc.ErrMultipleAuthorDomains):
		return FaultSeveralDomains
	}
	return FaultNoAuthorDomain
}

// Author is what the From field says about the author of the message.
type Author struct {
	// Domain is the Author Domain (RFC 9989 §3.2.1), normalised (lower
	// case, A-labels); "" when Fault is set.
	Domain string
	// Fault says why there is no single Author Domain.
	Fault Fault
	// Err is the error behind Fault: a *dmarc.AuthorError (errors.Is
	// tells its reason) or the header parse error.
	Err error
	// Values are the From field bodies, unfolded, in order.
	Values []string
}

// Verdict is the outcome of the analysis of one message: the connection
// facts it started from, the structural facts of the header and the typed
// result of every check.
type Verdict struct {
	// AuthServID is this host's authserv-id (RFC 8601 §2.5).
	AuthServID string
	// DMARCMode is the DMARC specification followed.
	DMARCMode dmarc.Mode

	// Connection facts, as given in the Input.
	ClientIP netip.Addr
	HELO     string
	MailFrom string
	RcptTo   []string
	TLS      string

	// HeaderErr is set when the header block could not be parsed; the
	// checks that need it (DKIM, ARC, DMARC) were not run.
	HeaderErr error
	// Author holds the From field facts.
	Author Author
	// MessageID and Subject are the first such fields, unfolded.
	MessageID string
	Subject   string

	// SPF is the check of the identity DMARC uses: MAIL FROM, or HELO
	// for the null reverse-path (RFC 7208 §2.4, RFC 9989 §4.4).
	SPF spf.Result
	// SPFHELO is the separate check of the HELO identity (RFC 7208
	// §2.3), when MAIL FROM is not null and a HELO name was given.
	SPFHELO *spf.Result
	// DKIM has one result per DKIM-Signature field, top first.
	DKIM []*dkim.SignatureResult
	// ARC is the chain validation (never nil).
	ARC *arc.Result
	// DMARC is the DMARC evaluation.
	DMARC dmarc.Result
	// IPRev is the reverse-DNS check of the client address.
	IPRev IPRev

	// Checks reports how each check ran, in a fixed order.
	Checks []CheckRun
}

// DKIMPassed reports whether a DKIM signature with d= domain verified
// (case-insensitive).
func (v *Verdict) DKIMPassed(domain string) bool {
	for _, d := range v.DKIM {
		if d.Result == dkim.Pass && strings.EqualFold(d.Domain, strings.TrimSuffix(domain, ".")) {
			return true
		}
	}
	return false
}

// TempErrors lists the checks whose result is temperror, by name ("spf",
// "dkim", "arc", "dmarc", "iprev"), each once, in that order. For ARC it
// is a chain that failed only because a key could not be fetched for now
// (arc.Result.Temporary).
func (v *Verdict) TempErrors() []string {
	var out []string
	if v.SPF.Result == spf.TempError {
		out = append(out, "spf")
	}
	for _, d := range v.DKIM {
		if d.Result == dkim.TempError {
			out = append(out, "dkim")
			break
		}
	}
	if v.ARC != nil && v.ARC.Status == arc.Fail && v.ARC.Temporary {
		out = append(out, "arc")
	}
	if v.DMARC.Result == dmarc.TempError {
		out = append(out, "dmarc")
	}
	if v.IPRev.Result == IPRevTempError {
		out = append(out, "iprev")
	}
	return out
}
