package forensics

import (
	"errors"
	"fmt"
	"strings"

	"portcullis/internal/dkim"
	"portcullis/internal/dmarc"
	"portcullis/internal/spf"
)

func (e *explainer) addFinding(code, severity, format string, args ...any) {
	text := format
	if len(args) > 0 {
		text = fmt.Sprintf(format, args...)
	}
	e.rep.Findings = append(e.rep.Findings, Finding{Code: code, Severity: severity, Text: text})
}

func (e *explainer) advise(who, format string, args ...any) {
	e.rep.Advice = append(e.rep.Advice, Advice{For: who, Text: fmt.Sprintf(format, args...)})
}

// alignedWith reports whether the identifier domain d of kind ("dkim",
// "spf") aligns with the From domain.
func (e *explainer) alignedWith(kind, d string) bool {
	for _, a := range e.rep.Alignment {
		if a.Identifier == kind && a.Domain == d {
			return a.Aligned
		}
	}
	return false
}

func keyText(s DKIMSignature) string {
	if s.KeyBits == 0 {
		return ""
	}
	return fmt.Sprintf(" (%s key, %d bits)", s.KeyType, s.KeyBits)
}

func (e *explainer) findings() {
	if e.authorErr != nil {
		e.addFinding("from-invalid", SeverityProblem, "The From field does not give one author domain (%v): DMARC cannot be applied and the message should be refused (RFC 9989 §5.3.1).", e.authorErr)
	}
	e.dkimFindings()
	e.spfFindings()
	e.alignmentFindings()
	e.dmarcFindings()
	e.arcFindings()
	e.changeFindings()
	for _, a := range e.ars {
		if !a.ours {
			e.addFinding("upstream-results", SeverityInfo, "Authentication-Results %d was written by %s, another system: it is shown as that system's claim, not trusted as a result of the receiver.", a.n, a.servID)
		}
	}
}

func (e *explainer) dkimFindings() {
	if len(e.rep.DKIM) == 0 {
		e.addFinding("dkim-none", SeverityWarning, "The message has no DKIM signature: only SPF could authenticate it, and SPF does not survive forwarding.")
		return
	}
	for i, s := range e.rep.DKIM {
		var err error
		if i < len(e.sigs) {
			err = e.sigs[i].Err
		}
		id := fmt.Sprintf("DKIM d=%s s=%s", s.Domain, s.Selector)
		switch {
		case s.Result == "pass":
			e.addFinding("dkim-pass", SeverityInfo, "%s verifies now%s.", id, keyText(s))
		case s.BodyDiagnosis == dkim.DiagAppended || s.BodyDiagnosis == dkim.DiagWhitespaceAppended:
			e.addFinding("dkim-body-appended", SeverityProblem, "%s fails: content was appended to the body after signing (a footer or disclaimer); the body as signed is still a prefix of today's body, so the signature would verify without the addition.", id)
		case s.BodyDiagnosis == dkim.DiagWhitespace || s.BodyDiagnosis == dkim.DiagLineEndings:
			e.addFinding("dkim-body-reencoded", SeverityProblem, "%s fails: the body was re-encoded in transit (it differs from the signed body only in %s); %s canonicalization does not tolerate that.", id,
				map[string]string{dkim.DiagWhitespace: "white space", dkim.DiagLineEndings: "line endings"}[s.BodyDiagnosis], bodyCanon(s.Canonicalization))
		case s.BodyDiagnosis == dkim.DiagChanged || s.BodyDiagnosis == dkim.DiagTooLarge:
			e.addFinding("dkim-body-changed", SeverityProblem, "%s fails: the body was changed after signing (%s).", id, s.Reason)
		case errors.Is(err, dkim.ErrSHA1) || errors.Is(err, dkim.ErrKeyTooSmall):
			e.addFinding("dkim-weak", SeverityProblem, "%s fails: %s (RFC 8301).", id, s.Reason)
		case errors.Is(err, dkim.ErrBadSignature):
			e.addFinding("dkim-header-changed", SeverityProblem, "%s fails: the body is intact but the signed header fields were changed after signing (for example a Subject tag), or the signature was not made with this key.", id)
		case s.Result == "permerror":
			e.addFinding("dkim-key-problem", SeverityProblem, "%s cannot be verified: %s.", id, s.Reason)
		case s.Result == "temperror":
			e.addFinding("dkim-temperror", SeverityWarning, "%s could not be verified now: %s.", id, s.Reason)
		default:
			e.addFinding("dkim-unusable", SeverityWarning, "%s is %s: %s.", id, s.Result, s.Reason)
		}
		if s.Testing {
			e.addFinding("dkim-testing", SeverityInfo, "The key of %s has t=y: the domain says it is testing DKIM.", id)
		}
	}
}

// bodyCanon is the body half of a c= value ("simple" when absent,
// RFC 6376 §3.5).
func bodyCanon(c string) string {
	if _, b, ok := strings.Cut(c, "/"); ok && b != "" {
		return b
	}
	return "simple"
}

func (e *explainer) spfFindings() {
	if e.spfNow == nil {
		if !e.clientIP.IsValid() {
			e.addFinding("spf-not-checked", SeverityInfo, "No public client address was found in the trace: SPF was not verified now.")
		}
		return
	}
	r := e.spfNow
	who := fmt.Sprintf("SPF for %s (%s) and client %s", r.Domain, r.Identity, e.clientIP)
	switch r.Result {
	case spf.Pass:
		e.addFinding("spf-pass", SeverityInfo, "%s passes now (%s).", who, r.Mechanism)
	case spf.Fail, spf.SoftFail:
		e.addFinding("spf-fail", SeverityProblem, "%s gives %s now: %s does not list that address.", who, r.Result, r.Domain)
	case spf.None:
		e.addFinding("spf-none", SeverityWarning, "%s: %s publishes no SPF record.", who, r.Domain)
	case spf.TempError:
		e.addFinding("spf-temperror", SeverityWarning, "%s could not be evaluated now: %s.", who, r.Reason)
	case spf.PermError:
		e.addFinding("spf-permerror", SeverityProblem, "%s is a permerror now: %s.", who, r.Reason)
	default:
		e.addFinding("spf-"+string(r.Result), SeverityInfo, "%s gives %s now.", who, r.Result)
	}
	if e.fromSPF != nil && e.fromSPF.Result == spf.Pass {
		e.addFinding("from-domain-authorizes-client", SeverityInfo, "The SPF record of the From domain %s lists the client %s (%s): the domain owner has authorized this sending service.", e.author, e.clientIP, e.fromSPF.Mechanism)
	}
}

func (e *explainer) alignmentFindings() {
	for _, a := range e.rep.Alignment {
		pass := a.Now == "pass" || (a.Now == "" && a.Recorded == "pass")
		label := "DKIM d=" + a.Domain
		if a.Identifier == "spf" {
			label = "MAIL FROM domain " + a.Domain
		}
		switch {
		case pass && a.Aligned:
			e.addFinding("aligned-pass", SeverityInfo, "%s passes and is aligned with the From domain %s (%s): DMARC passes on it.", label, e.author, a.Mode)
		case pass && !a.Aligned:
			e.addFinding("unaligned-pass", SeverityWarning, "%s passes but is not aligned with the From domain %s (%s alignment): it does not count for DMARC.", label, e.author, a.Mode)
		}
	}
}

func (e *explainer) dmarcFindings() {
	d := e.rep.DMARC
	if e.dmarcNow == nil {
		return
	}
	switch dmarc.Status(d.Result) {
	case dmarc.Pass:
		e.addFinding("dmarc-pass", SeverityInfo, "DMARC passes now for %s (record at _dmarc.%s).", d.AuthorDomain, d.PolicyDomain)
	case dmarc.Fail:
		e.addFinding("dmarc-fail", SeverityProblem, "DMARC fails now for %s: no identity that passes is aligned with it; the domain asks receivers to %s such mail (%s=%s at _dmarc.%s).",
			d.AuthorDomain, policyVerb(d.PublishedPolicy), d.Source, d.PublishedPolicy, d.PolicyDomain)
	case dmarc.None:
		e.addFinding("dmarc-no-record", SeverityWarning, "%s publishes no DMARC record (nor does its organizational domain): receivers get no policy for mail that fails.", d.AuthorDomain)
	case dmarc.TempError:
		e.addFinding("dmarc-temperror", SeverityWarning, "DMARC could not be evaluated now: %s.", d.Reason)
	case dmarc.PermError:
		e.addFinding("dmarc-permerror", SeverityProblem, "The DMARC record of %s cannot be applied: %s.", d.AuthorDomain, d.Reason)
	}
	if d.PublishedPolicy == string(dmarc.PolicyNone) {
		e.addFinding("dmarc-policy-none", SeverityWarning, "%s publishes p=none: monitoring only; receivers are not asked to block mail that fails.", d.PolicyDomain)
	}
	if d.Testing {
		e.addFinding("dmarc-testing", SeverityInfo, "The DMARC record has t=y: the domain owner asks that the policy be applied one level lower (RFC 9989 §4.7).")
	}
}

func policyVerb(p string) string {
	switch p {
	case "reject":
		return "reject"
	case "quarantine":
		return "quarantine"
	}
	return "only report"
}

func (e *explainer) arcFindings() {
	c := e.rep.ARC
	switch c.Result {
	case "pass":
		var who []string
		for _, s := range c.Sets {
			t := fmt.Sprintf("%s (i=%d", s.Sealer, s.Instance)
			if s.DMARC != "" {
				t += ", saw dmarc=" + s.DMARC
			}
			who = append(who, t+")")
		}
		e.addFinding("arc-pass", SeverityInfo, "The ARC chain validates now: %s.", strings.Join(who, ", "))
		first := c.Sets[0]
		latest := c.Sets[len(c.Sets)-1]
		switch {
		case c.Vouched:
			e.addFinding("arc-vouched", SeverityInfo, "The trusted sealer %s vouches that DMARC passed when %s received the message (ARC-Authentication-Results i=1).", latest.Sealer, orDash(first.AuthServID))
		case first.DMARC == "pass":
			e.addFinding("arc-sealer-untrusted", SeverityInfo, "%s recorded dmarc=pass on arrival (i=1), but the sealer %s is not a trusted ARC sealer here.", orDash(first.AuthServID), latest.Sealer)
		}
	case "fail":
		e.addFinding("arc-fail", SeverityWarning, "The ARC chain does not validate now: %s.", c.Reason)
	case "temperror":
		e.addFinding("arc-temperror", SeverityWarning, "The ARC chain could not be validated now: %s.", c.Reason)
	}
}

// keyFailure reports a verification failure about the key (its record),
// which a DNS change explains, as opposed to a changed message.
func keyFailure(err error) bool {
	return errors.Is(err, dkim.ErrNoKey) || errors.Is(err, dkim.ErrKeyRevoked) || errors.Is(err, dkim.ErrKeySyntax) ||
		errors.Is(err, dkim.ErrKeyUnsupported) || errors.Is(err, dkim.ErrKeyUnavailable) || errors.Is(err, dkim.ErrKeyUnsuitable) ||
		errors.Is(err, dkim.ErrKeyTooSmall) || errors.Is(err, dkim.ErrBadSignature)
}

// changeFindings compares what the receiving system recorded with what is
// verified now, and says both when they differ.
func (e *explainer) changeFindings() {
	if e.ourID == "" {
		return
	}
	by := e.ourID
	for i, s := range e.rep.DKIM {
		rec := ""
		for _, r := range e.final {
			if r.Method != "dkim" || resultDomain(r) != s.Domain {
				continue
			}
			if sel, ok := r.Prop("header", "s"); ok && !strings.EqualFold(sel, s.Selector) {
				continue
			}
			if b, ok := r.Prop("header", "b"); ok && s.HeaderB != "" && !strings.HasPrefix(s.HeaderB, b) && !strings.HasPrefix(b, s.HeaderB) {
				continue
			}
			rec = r.Value
			break
		}
		if rec == "" || rec == s.Result {
			continue
		}
		var err error
		if i < len(e.sigs) {
			err = e.sigs[i].Err
		}
		if s.Result == "pass" || keyFailure(err) || s.Result == "temperror" {
			e.addFinding("dns-changed-dkim", SeverityWarning, "DNS has changed since receipt: %s recorded dkim=%s for d=%s s=%s; verified now: %s (%s). The key record at %s was changed or removed since.",
				by, rec, s.Domain, s.Selector, s.Result, orNone(s.Reason), dkim.KeyName(s.Selector, s.Domain))
		} else {
			e.addFinding("recorded-differs-dkim", SeverityWarning, "%s recorded dkim=%s for d=%s s=%s; verified now: %s (%s). The copy explained here differs from the one received, or the verifiers disagree.",
				by, rec, s.Domain, s.Selector, s.Result, orNone(s.Reason))
		}
	}
	if e.spfNow != nil {
		if r := e.finalResult("spf", e.spfNow.Domain); r != nil && r.Value != string(e.spfNow.Result) {
			e.addFinding("dns-changed-spf", SeverityWarning, "DNS has changed since receipt, or the trace names another client: %s recorded spf=%s for %s; verified now for client %s: %s.",
				by, r.Value, e.spfNow.Domain, e.clientIP, e.spfNow.Result)
		}
	}
	if e.dmarcNow != nil {
		if r := e.finalResult("dmarc", ""); r != nil {
			if r.Value != e.rep.DMARC.Result {
				e.addFinding("recorded-differs-dmarc", SeverityWarning, "%s recorded dmarc=%s; evaluated now: %s. Both are shown: the receiver acted on the recorded result.",
					by, r.Value, e.rep.DMARC.Result)
			}
			if p := recordedPolicy(r); p != "" && e.rep.DMARC.PublishedPolicy != "" && p != e.rep.DMARC.PublishedPolicy {
				e.addFinding("dns-changed-dmarc", SeverityWarning, "DNS has changed since receipt: %s recorded the DMARC policy p=%s; the record published now says %s=%s (%s).",
					by, p, e.rep.DMARC.Source, e.rep.DMARC.PublishedPolicy, e.rep.DMARC.Record)
			}
		}
	}
	if r := e.finalResult("arc", ""); r != nil && e.rep.ARC.Result != "" && r.Value != e.rep.ARC.Result {
		e.addFinding("recorded-differs-arc", SeverityWarning, "%s recorded arc=%s; validated now: %s.", by, r.Value, e.rep.ARC.Result)
	}
}

func orNone(s string) string {
	if s == "" {
		return "no detail"
	}
	return s
}

// facts gathers what the cause is decided on.
type facts struct {
	passed          bool   // DMARC passed for the receiver (recorded, else now)
	verdictSource   string // "recorded by X" or "verified now"
	alignedSigs     []int  // indexes in rep.DKIM of signatures aligned with From
	alignedPass     bool
	appended        int // index of an aligned signature with content appended, or -1
	contentBroken   int // index of an aligned signature broken by a content change, or -1
	keyBroken       int // index of an aligned signature failing on its key, or -1
	spfAligned      bool
	spfFailed       bool // aligned MAIL FROM, SPF fail/softfail
	forwarded       bool
	list            bool
	thirdDKIM       string // a non-aligned d= that passes
	thirdSPF        string // a non-aligned MAIL FROM domain that passes
	fromAuthorizes  bool
	arcUntrusted    bool
	published       string
	enforced        bool
	dmarcTempError  bool
	receiverOutcome string
}

func (e *explainer) gather() facts {
	f := facts{appended: -1, contentBroken: -1, keyBroken: -1}
	if r := e.finalResult("dmarc", ""); r != nil {
		f.passed = r.Value == "pass"
		f.verdictSource = "recorded by " + e.ourID
		f.receiverOutcome = r.Value
		f.dmarcTempError = r.Value == "temperror"
	} else if e.dmarcNow != nil {
		f.passed = e.dmarcNow.Result == dmarc.Pass
		f.verdictSource = "verified now"
		f.receiverOutcome = string(e.dmarcNow.Result)
		f.dmarcTempError = e.dmarcNow.Result == dmarc.TempError
	}
	for i, s := range e.rep.DKIM {
		if !e.alignedWith("dkim", s.Domain) {
			if s.Result == "pass" || e.bestDKIMRecorded(s.Domain) == "pass" {
				f.thirdDKIM = s.Domain
			}
			continue
		}
		f.alignedSigs = append(f.alignedSigs, i)
		var err error
		if i < len(e.sigs) {
			err = e.sigs[i].Err
		}
		switch {
		case s.Result == "pass":
			f.alignedPass = true
		case s.BodyDiagnosis == dkim.DiagAppended || s.BodyDiagnosis == dkim.DiagWhitespaceAppended:
			if f.appended < 0 {
				f.appended = i
			}
			if f.contentBroken < 0 {
				f.contentBroken = i
			}
		case s.BodyDiagnosis != "" || errors.Is(err, dkim.ErrBadSignature) && !errors.Is(err, dkim.ErrBodyHashMismatch):
			if f.contentBroken < 0 {
				f.contentBroken = i
			}
		case s.Result == "permerror" || errors.Is(err, dkim.ErrKeyTooSmall) || errors.Is(err, dkim.ErrSHA1):
			if f.keyBroken < 0 {
				f.keyBroken = i
			}
		}
	}
	for _, a := range e.rep.Alignment {
		if a.Identifier != "spf" {
			continue
		}
		res := a.Recorded
		if res == "" {
			res = a.Now
		}
		if a.Aligned {
			f.spfAligned = true
			f.spfFailed = res == "fail" || res == "softfail" || a.Now == "fail" || a.Now == "softfail"
		} else if res == "pass" || a.Now == "pass" {
			f.thirdSPF = a.Domain
		}
	}
	for _, s := range e.rep.Forwarding {
		if s.Code != "arc-sealed" {
			f.forwarded = true
		}
		if s.Code == "mailing-list" {
			f.list = true
		}
	}
	f.fromAuthorizes = e.fromSPF != nil && e.fromSPF.Result == spf.Pass
	if c := e.rep.ARC; c.Result == "pass" && len(c.Sets) > 0 && !c.Vouched && c.Sets[0].DMARC == "pass" {
		f.arcUntrusted = true
	}
	f.published = e.rep.DMARC.PublishedPolicy
	f.enforced = (f.published == "reject" || f.published == "quarantine") && !e.rep.DMARC.Testing
	return f
}

func (e *explainer) setCause(code, confidence, summary, format string, args ...any) {
	e.rep.Cause = Cause{Code: code, Summary: summary, Detail: fmt.Sprintf(format, args...), Confidence: confidence}
}

// cause decides the likely cause of the outcome, the first rule that
// applies, and the advice that goes with it (docs/forensics.md lists the
// rules).
func (e *explainer) cause() {
	f := e.gather()
	author := e.author
	switch {
	case e.authorErr != nil:
		e.setCause("malformed-from", "certain", "The From field does not name one author domain.",
			"DMARC needs exactly one author domain (RFC 9989 §5.3.1); this message has %v. Such a message cannot be authenticated and is refused by policy.", e.authorErr)
		e.advise(ForReceiver, "Refuse messages whose From field has no single domain; they cannot be attributed to anyone.")
		e.advise(ForSender, "Send one From field with one address.")

	case f.passed:
		how := e.passedBy()
		e.setCause("authenticated", "certain", fmt.Sprintf("The message is authenticated for %s: DMARC passed (%s).", author, f.verdictSource),
			"%s. The From domain is genuine; if the message is unwanted, the problem is its content or the sender's account, not spoofing.", how)
		if f.forwarded && f.alignedPass {
			e.rep.Cause.Detail += " The message was forwarded (see the signs of forwarding) and its aligned DKIM signature survived the trip."
		}
		if e.hasFinding("dns-changed-dkim") || e.hasFinding("recorded-differs-dmarc") || e.hasFinding("dns-changed-spf") {
			e.rep.Cause.Detail += " The DNS has changed since receipt (see the findings): verified today the result would differ, which does not change what happened at receipt."
			e.advise(ForSender, "When rotating DKIM keys, keep the old selector's key published for some days after signing stops, so that messages in transit and later forensic checks still verify.")
		}
		e.advise(ForReceiver, "Nothing to change in authentication: treat an unwanted message as content abuse (report, block the sender address or content), not as spoofing.")

	case f.dmarcTempError:
		e.setCause("dns-temporary-failure", "likely", "DMARC could not be evaluated because of a temporary DNS failure.",
			"A DNS query DMARC needed failed temporarily (%s); a receiver defers such a message (451) and the sender retries.", orNone(e.rep.DMARC.Reason))
		e.advise(ForReceiver, "Check the resolver and retry; the message is deferred, not lost.")
		e.advise(ForSender, "Make sure the authoritative servers of %s answer reliably.", author)

	case e.rep.ARC.Vouched:
		c := e.rep.ARC
		latest := c.Sets[len(c.Sets)-1]
		e.setCause("arc-trusted-forwarder", "likely", fmt.Sprintf("A trusted ARC forwarder (%s) vouched for the original DMARC pass.", latest.Sealer),
			"DMARC fails now for %s because %s, but the ARC chain validates and %s recorded dmarc=pass when the message first reached it (i=1). %s is a trusted sealer, so the original pass is accepted (RFC 8617).",
			author, e.breakage(f), orDash(c.Sets[0].AuthServID), latest.Sealer)
		e.advise(ForReceiver, "Nothing to change: the message was delivered on the trusted sealer's word. Review the list of trusted sealers regularly.")
		e.advise(ForForwarder, "Keep ARC-sealing; it is what lets the original authentication survive your changes.")

	case f.arcUntrusted:
		c := e.rep.ARC
		latest := c.Sets[len(c.Sets)-1]
		e.setCause("arc-forwarder-untrusted", "likely", fmt.Sprintf("An intermediary (%s) changed the message; it vouches with ARC for the original pass but is not trusted here.", latest.Sealer),
			"DMARC fails for %s because %s. The ARC chain validates and %s recorded dmarc=pass on arrival, but %s is not among the trusted ARC sealers, so its word was not taken.",
			author, e.breakage(f), orDash(c.Sets[0].AuthServID), latest.Sealer)
		e.advise(ForReceiver, "If %s is a forwarder or list your users rely on and you trust its operator, add it to the trusted ARC sealers (a governed exception: owner, justification, expiry).", latest.Sealer)
		e.advise(ForForwarder, "Avoid modifying messages (footers, subject tags), or rewrite the From field to your own domain for DMARC-protected senders.")

	case f.contentBroken >= 0 && f.list:
		s := e.rep.DKIM[f.contentBroken]
		what := "changed the message"
		code := "mailing-list-modified"
		summary := "A mailing list changed the message and broke the author's DKIM signature."
		if f.appended >= 0 {
			what, code, summary = "appended a footer to the body", "mailing-list-footer", "A mailing-list footer broke the DKIM body hash."
		}
		e.setCause(code, "likely", summary,
			"The list (%s) %s after %s signed it, so DKIM d=%s no longer verifies; the list also sends from its own envelope%s, so SPF is not aligned with %s either. DMARC fails for %s although the author's mail was genuine.",
			e.listName(), what, s.Domain, s.Domain, e.spfDomainText(), author, author)
		e.advise(ForForwarder, "The list operator should ARC-seal the messages it distributes (RFC 8617), stop adding footers and subject tags, or rewrite the From field to the list's own domain for authors whose domain publishes p=quarantine or p=reject.")
		e.advise(ForReceiver, "If the list ARC-seals, add it to the trusted ARC sealers; otherwise mail from DMARC-protected authors through this list will keep failing.")
		e.advise(ForSender, "Nothing is wrong on the author's side; do not add l= to signatures to work around lists (it lets anyone append content).")

	case f.appended >= 0:
		s := e.rep.DKIM[f.appended]
		e.setCause("footer-appended", "likely", "Content appended after signing (a footer or disclaimer) broke the DKIM body hash.",
			"The body signed by d=%s is still the beginning of today's body: something added text after the signature was made%s. DMARC fails for %s.",
			s.Domain, e.relaysText(s), author)
		e.advise(ForSender, "If your own gateway adds the disclaimer, sign after it (make DKIM signing the last step of outbound processing).")
		e.advise(ForForwarder, "A relay that appends text must not do so to signed mail, or must ARC-seal it.")

	case f.forwarded && (f.contentBroken >= 0 || f.spfFailed):
		code, summary := "forwarding-broke-spf", "Forwarding broke SPF."
		switch {
		case f.contentBroken >= 0 && f.spfFailed:
			code, summary = "forwarding-broke-spf-dkim", "Forwarding broke SPF and DKIM."
		case f.contentBroken >= 0:
			code, summary = "forwarding-broke-dkim", "Forwarding broke DKIM."
		}
		e.setCause(code, "likely", summary, "%s", e.forwardDetail(f))
		e.advise(ForForwarder, "Rewrite the envelope sender with SRS so that SPF is checked for your own domain, do not modify forwarded messages, and ARC-seal them (RFC 8617).")
		e.advise(ForSender, "Sign all mail with DKIM (relaxed/relaxed canonicalization): an aligned DKIM signature survives plain forwarding, SPF never does.")
		e.advise(ForReceiver, "If this forwarder is known and ARC-seals, add it to the trusted ARC sealers; otherwise expect forwarded mail from DMARC-protected domains to fail.")

	case f.keyBroken >= 0:
		s := e.rep.DKIM[f.keyBroken]
		e.setCause("sender-dkim-broken", "likely", fmt.Sprintf("The DKIM signature of %s cannot be verified: %s.", s.Domain, orNone(s.Reason)),
			"The message carries a signature aligned with %s, but it fails for a reason on the signer's side (%s), not because the message changed. DMARC fails unless SPF is aligned and passes.", author, orNone(s.Reason))
		e.advise(ForSender, "Publish a valid key at %s (RSA of 2048 bits or Ed25519 with an RSA fallback), and keep it published as long as mail signed with it can be in transit.", dkim.KeyName(s.Selector, s.Domain))

	// A sender that authenticates as an unrelated domain is a third party
	// the owner has not set up for alignment when the owner's own SPF
	// record lists it, or possibly when the owner does not enforce DMARC;
	// against an enforcing policy with nothing authorizing it, it is
	// treated as a spoof (below).
	case (f.thirdDKIM != "" || f.thirdSPF != "") && f.fromAuthorizes, f.thirdDKIM != "" && !f.enforced:
		conf := "likely"
		if !f.fromAuthorizes {
			conf = "possible"
		}
		provider := f.thirdDKIM
		if provider == "" {
			provider = f.thirdSPF
		}
		detail := fmt.Sprintf("The message authenticates for %s (%s), not for %s: the identities that pass are not aligned with the From domain, so DMARC fails.", provider, e.thirdText(f), author)
		if f.fromAuthorizes {
			detail += fmt.Sprintf(" The SPF record of %s itself lists the sending address, so the domain owner uses this service: a legitimate sender that is not set up for alignment.", author)
		} else {
			detail += fmt.Sprintf(" Nothing in %s's DNS authorizes this service: it is either a sender the domain owner has not set up, or someone using %s's service to impersonate %s.", author, provider, author)
		}
		e.setCause("misaligned-third-party", conf, fmt.Sprintf("A third-party sender (%s) sends as %s without aligned authentication.", provider, author), "%s", detail)
		e.advise(ForSender, "Have %s sign with d=%s (publish the DKIM key or CNAME it gives you under _domainkey.%s) and use a bounce (MAIL FROM) domain under %s, so that DKIM or SPF aligns.", provider, author, author, author)
		e.advise(ForReceiver, "Do not allow-list %s: that lets anyone spoof it. If the mail is needed before the sender fixes it, grant a time-limited exception bound to DKIM d=%s verifying AND From %s.", author, provider, author)

	default:
		e.spoofCause(f)
	}
}

func (e *explainer) spoofCause(f facts) {
	author := e.author
	d := e.rep.DMARC
	what := e.claimText(f)
	switch {
	case f.enforced:
		e.setCause("spoof-blocked-by-dmarc", "likely", fmt.Sprintf("Spoof blocked by DMARC: nothing authenticates %s, which publishes p=%s.", author, f.published),
			"%s The message claims to be from %s, but no authenticated identity is aligned with it and nothing suggests forwarding. %s asks receivers to %s such mail (%s=%s), so a receiver enforcing DMARC blocks it.",
			what, author, d.PolicyDomain, f.published, d.Source, f.published)
		e.advise(ForReceiver, "Keep enforcing DMARC on every inbound path. If this message was delivered, find the rule, exception or path that bypassed the policy.")
		e.advise(ForSender, "Nothing to change: the policy works. The aggregate reports of %s will list the sending address %s.", author, e.clientText())
		if f.thirdDKIM != "" {
			e.advise(ForSender, "If %s does send mail through %s, that service must sign with d=%s (or use a bounce domain under it); until then its mail is refused like this one.", author, f.thirdDKIM, author)
		}
	case f.published == "none" || (f.published != "" && d.Testing):
		e.setCause("spoof-not-blocked", "likely", fmt.Sprintf("Unauthenticated mail claiming %s: DMARC does not ask for blocking (p=none or t=y).", author),
			"%s No authenticated identity is aligned with %s and nothing suggests forwarding, but %s publishes only a monitoring policy, so receivers are not asked to block it.",
			what, author, d.PolicyDomain)
		e.advise(ForSender, "Move the DMARC policy of %s from p=none to p=quarantine and then p=reject once the aggregate reports show all legitimate mail aligned (see `portcullis check %s`).", author, author)
		e.advise(ForReceiver, "Do not deliver such mail as trusted: tag or quarantine it by local policy; if %s is one of your own domains, own-domain protection rejects it whatever its record says.", author)
	default:
		e.setCause("spoof-no-dmarc", "possible", fmt.Sprintf("Unauthenticated mail claiming %s, which publishes no DMARC policy.", author),
			"%s No authenticated identity is aligned with %s and nothing suggests forwarding; without a DMARC record receivers cannot tell a spoof from a misconfigured sender.",
			what, author)
		e.advise(ForSender, "Publish a DMARC record for %s (start with p=none and rua= to collect reports; see `portcullis check %s`).", author, author)
		e.advise(ForReceiver, "Treat the message as unauthenticated: tag it or quarantine it by local policy.")
	}
}

func (e *explainer) hasFinding(code string) bool {
	for _, f := range e.rep.Findings {
		if f.Code == code {
			return true
		}
	}
	return false
}

// passedBy says which aligned identity made DMARC pass.
func (e *explainer) passedBy() string {
	var parts []string
	for _, a := range e.rep.Alignment {
		res := a.Recorded
		if res == "" {
			res = a.Now
		}
		if a.Aligned && res == "pass" {
			if a.Identifier == "dkim" {
				parts = append(parts, "DKIM d="+a.Domain)
			} else {
				parts = append(parts, "SPF for MAIL FROM domain "+a.Domain)
			}
		}
	}
	if len(parts) == 0 {
		return "The receiver recorded dmarc=pass"
	}
	return "Aligned with the From domain and passing: " + strings.Join(parts, ", ")
}

func (e *explainer) clientText() string {
	if e.clientIP.IsValid() {
		return e.clientIP.String()
	}
	return "of this message"
}

func (e *explainer) claimText(f facts) string {
	var parts []string
	if f.thirdSPF != "" {
		parts = append(parts, fmt.Sprintf("SPF passes only for the unrelated envelope domain %s", f.thirdSPF))
	} else if f.spfFailed {
		parts = append(parts, fmt.Sprintf("SPF fails for %s from %s", e.mailDomain, e.clientText()))
	}
	if len(e.rep.DKIM) == 0 {
		parts = append(parts, "the message has no DKIM signature")
	} else if len(f.alignedSigs) == 0 && f.thirdDKIM != "" {
		parts = append(parts, fmt.Sprintf("DKIM verifies only for the unrelated domain %s, which nothing in %s's DNS authorizes", f.thirdDKIM, e.author))
	} else if len(f.alignedSigs) == 0 {
		parts = append(parts, "no DKIM signature is aligned with the From domain")
	} else {
		parts = append(parts, "the aligned DKIM signature does not verify")
	}
	s := strings.Join(parts, "; ")
	return strings.ToUpper(s[:1]) + s[1:] + "."
}

func (e *explainer) thirdText(f facts) string {
	var parts []string
	if f.thirdDKIM != "" {
		parts = append(parts, "DKIM d="+f.thirdDKIM+" verifies")
	}
	if f.thirdSPF != "" {
		parts = append(parts, "SPF passes for MAIL FROM domain "+f.thirdSPF)
	}
	return strings.Join(parts, ", ")
}

func (e *explainer) listName() string {
	if v := e.value("List-Id"); v != "" {
		return v
	}
	if e.mailDomain != "" {
		return e.mailDomain
	}
	return "the list"
}

func (e *explainer) spfDomainText() string {
	if e.mailDomain != "" {
		return " (MAIL FROM " + e.mailDomain + ")"
	}
	return ""
}

func (e *explainer) relaysText(s DKIMSignature) string {
	if len(s.RelaysAfter) == 0 {
		return ""
	}
	return " — it passed through " + strings.Join(s.RelaysAfter, ", ") + " after signing"
}

// breakage says in a few words why DMARC fails now.
func (e *explainer) breakage(f facts) string {
	switch {
	case f.appended >= 0:
		return fmt.Sprintf("content was appended to the body after d=%s signed it", e.rep.DKIM[f.appended].Domain)
	case f.contentBroken >= 0:
		return fmt.Sprintf("the message was changed after d=%s signed it", e.rep.DKIM[f.contentBroken].Domain)
	case f.spfFailed:
		return "SPF fails for the original envelope from the intermediary's address"
	case f.thirdSPF != "":
		return "the envelope was rewritten to " + f.thirdSPF
	}
	return "no aligned identity verifies any more"
}

func (e *explainer) forwardDetail(f facts) string {
	var b strings.Builder
	via := ""
	for _, s := range e.rep.Forwarding {
		if s.Code == "relayed-after-signature" || s.Code == "srs" || s.Code == "upstream-authentication" || s.Code == "resent" {
			via = s.Text
			break
		}
	}
	if via != "" {
		b.WriteString(via + " ")
	}
	if f.spfFailed {
		fmt.Fprintf(&b, "The forwarder kept the original envelope sender (%s), so SPF checked %s's record against the forwarder's address %s and failed. ", e.mailFrom, e.mailDomain, e.clientText())
	}
	if f.contentBroken >= 0 {
		s := e.rep.DKIM[f.contentBroken]
		switch s.BodyDiagnosis {
		case dkim.DiagWhitespace, dkim.DiagLineEndings:
			fmt.Fprintf(&b, "The forwarder also re-encoded the body (%s), which broke DKIM d=%s (%s body canonicalization). ", s.BodyDiagnosis, s.Domain, bodyCanon(s.Canonicalization))
		case "":
			fmt.Fprintf(&b, "The forwarder also changed signed header fields, which broke DKIM d=%s. ", s.Domain)
		default:
			fmt.Fprintf(&b, "The forwarder also changed the body, which broke DKIM d=%s. ", s.Domain)
		}
	}
	if up := e.upstreamDMARC(); up != "" {
		fmt.Fprintf(&b, "%s recorded dmarc=pass before forwarding: the original message was genuine. ", up)
	}
	fmt.Fprintf(&b, "No aligned identity survives, so DMARC fails for %s.", e.author)
	return b.String()
}

// upstreamDMARC returns the authserv-id of another system that recorded
// dmarc=pass, or "".
func (e *explainer) upstreamDMARC() string {
	for _, a := range e.ars {
		if a.ours {
			continue
		}
		for _, r := range a.hdr.ResultsFor("dmarc") {
			if r.Value == "pass" {
				return a.servID
			}
		}
	}
	return ""
}
