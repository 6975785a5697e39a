// Package review implements `portcullis config review`: it reads the
// gateway's configuration together with its governed state (exceptions,
// trusted ARC sealers, notification settings) and reports what weakens
// enforcement or accountability, each finding with the team accountable
// for fixing it: an inbound path whose policy does not enforce DMARC (RFC
// 9989 §4.7 p=reject and p=quarantine), an accepted domain without
// own-domain protection, a DMARC temperror accepted, trusted upstream
// Authentication-Results (RFC 8601 §5), exceptions and sealers about to
// expire or not governed at all, notifications switched off.
package review

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"portcullis/internal/config"
	"portcullis/internal/evidence"
	"portcullis/internal/governance"
	"portcullis/internal/policy"
	"portcullis/internal/quarantine"
)

// Severity orders findings.
type Severity string

// The severities, most severe first.
const (
	High   Severity = "high"
	Medium Severity = "medium"
	Low    Severity = "low"
	Info   Severity = "info"
)

func (s Severity) rank() int {
	switch s {
	case High:
		return 0
	case Medium:
		return 1
	case Low:
		return 2
	}
	return 3
}

// AtLeast reports whether s is as severe as t or more.
func (s Severity) AtLeast(t Severity) bool { return s.rank() <= t.rank() }

// ParseSeverity parses a severity name.
func ParseSeverity(s string) (Severity, error) {
	switch v := Severity(strings.ToLower(s)); v {
	case High, Medium, Low, Info:
		return v, nil
	}
	return "", fmt.Errorf("severity %q: want high, medium, low or info", s)
}

// The finding ids.
const (
	ListenerNoEnforcement = "listener-no-enforcement"
	OwnDomainUnprotected  = "own-domain-unprotected"
	TempErrorAccepted     = "temperror-accepted"
	TrustedAuthResults    = "trusted-authentication-results"
	ExpiringSoon          = "expiring-soon"
	PendingApproval       = "pending-approval"
	UngovernedException   = "ungoverned-exception"
	UngovernedSealer      = "ungoverned-sealer"
	NotificationsDisabled = "notifications-disabled"
	OwnerUnreachable      = "owner-unreachable"
	RolesUnset            = "roles-unset"
	ActorsUnauthenticated = "actors-unauthenticated"
	ReleaseUnapproved     = "release-without-approval"
	AuditUnkeyed          = "audit-unkeyed"
)

// Finding is one thing the review reports.
type Finding struct {
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	// Subject is what the finding is about ("listener mx", "exception
	// partner-po").
	Subject string `json:"subject"`
	Message string `json:"message"`
	// Owner is the team accountable for fixing it.
	Owner string `json:"owner"`
	// Fix says how.
	Fix string `json:"fix,omitempty"`
}

func (f Finding) String() string {
	s := fmt.Sprintf("%-6s %s: %s: %s (owner %s)", strings.ToUpper(string(f.Severity)), f.ID, f.Subject, f.Message, f.Owner)
	if f.Fix != "" {
		s += "\n       fix: " + f.Fix
	}
	return s
}

// Input is what the review reads.
type Input struct {
	// Config is the validated configuration (defaults filled in).
	Config *config.Config
	// Exceptions and Sealers are the governed objects (all states).
	Exceptions []*governance.Exception
	Sealers    []*governance.Sealer
	// Notifications are the stored notification settings.
	Notifications quarantine.Settings
	// NotificationsChange describes the last change of the settings
	// ("by bob at 2026-06-01T09:00:00Z"), if any.
	NotificationsChange string
	// Now is the time of the review.
	Now time.Time
}

// path is an inbound path with its policy.
type path struct {
	name    string
	kind    string // "listener" or "milter"
	domains []string
	pol     *policy.Policy
}

func (in *Input) paths() []path {
	c := in.Config
	var out []path
	set := c.PolicySet()
	for _, l := range c.Listeners {
		out = append(out, path{name: l.Name, kind: "listener", domains: l.AcceptDomains, pol: filled(set.For(l.Name))})
	}
	if c.Milter != nil {
		m := c.MilterSection()
		out = append(out, path{name: m.Name, kind: "milter", pol: filled(c.MilterPolicySet().For(m.Name))})
	}
	return out
}

// filled lays the policy defaults under p.
func filled(p *policy.Policy) *policy.Policy {
	s := policy.Set{Default: *policy.Default(), Listeners: map[string]policy.Policy{"": *p}}
	return s.For("")
}

func ownerOf(owners ...string) string {
	for _, o := range owners {
		if o != "" {
			return o
		}
	}
	return policy.DefaultOwner
}

// Review returns the findings, most severe first.
func Review(in Input) []Finding {
	var out []Finding
	add := func(f Finding) { out = append(out, f) }
	c := in.Config
	now := in.Now
	if now.IsZero() {
		now = time.Now()
	}
	warn := c.Governance.WarnBefore.D()

	for _, p := range in.paths() {
		subj := p.kind + " " + p.name
		pol := p.pol
		for _, r := range []struct {
			field string
			rule  policy.Rule
			what  string
		}{
			{"dmarc_reject", pol.DMARCReject, "mail whose DMARC fails under p=reject"},
			{"dmarc_quarantine", pol.DMARCQuarantine, "mail whose DMARC fails under p=quarantine"},
		} {
			if r.rule.Action == evidence.Deliver {
				add(Finding{ID: ListenerNoEnforcement, Severity: High, Subject: subj,
					Message: fmt.Sprintf("%s.action is deliver: %s is delivered (spoofed mail reaches the inbox)", r.field, r.what),
					Owner:   ownerOf(r.rule.Owner, pol.Owner), Fix: "remove the override so that the rule's default (reject, quarantine) applies"})
			}
		}
		if pol.OwnDomain.Action == evidence.Deliver && len(pol.OwnDomain.Domains) > 0 {
			add(Finding{ID: ListenerNoEnforcement, Severity: High, Subject: subj,
				Message: "own_domain.action is deliver: spoofs of our own domains are delivered",
				Owner:   ownerOf(pol.OwnDomain.Owner, pol.Owner), Fix: "set own_domain.action to reject"})
		}
		for _, d := range p.domains {
			if !covers(pol.OwnDomain, d) {
				add(Finding{ID: OwnDomainUnprotected, Severity: High, Subject: subj,
					Message: fmt.Sprintf("mail for %s is accepted but %s is not in own_domain.domains: a message forging From: ...@%s is judged only by the DMARC record the domain publishes", d, d, d),
					Owner:   ownerOf(pol.OwnDomain.Owner, pol.Owner), Fix: fmt.Sprintf("add %s to policy.own_domain.domains", d)})
			}
		}
		if pol.DMARCTempError.Action == evidence.Deliver {
			add(Finding{ID: TempErrorAccepted, Severity: High, Subject: subj,
				Message: "dmarc_temperror.action is deliver: when DNS fails, mail that would be rejected is accepted (fail open)",
				Owner:   ownerOf(pol.DMARCTempError.Owner, pol.Owner), Fix: "set dmarc_temperror.action to defer (the sender retries)"})
		}
	}

	seenExc, seenSealer := map[string]bool{}, map[string]bool{}
	for _, p := range in.paths() {
		pol := p.pol
		for _, e := range pol.Exceptions {
			if seenExc[e.ID] {
				continue
			}
			seenExc[e.ID] = true
			sev, msg := Medium, "is configured in the file: it has no recorded approval, and the gateway does not count its use"
			if !e.Expires.IsZero() && !now.Before(e.Expires) {
				sev, msg = Low, "is configured in the file and expired on "+e.Expires.UTC().Format("2006-01-02")+": remove it"
			} else if !e.Expires.IsZero() && e.Expires.Sub(now) <= warn {
				msg += "; it expires on " + e.Expires.UTC().Format("2006-01-02")
			}
			add(Finding{ID: UngovernedException, Severity: sev, Subject: "exception " + e.ID + " (configuration file)", Message: "the exception " + msg,
				Owner: ownerOf(e.Owner, pol.Owner), Fix: "replace it with a governed exception (portcullis exception request) approved by a second person"})
		}
		for _, s := range pol.TrustedARC.Sealers {
			if seenSealer[s.Domain] {
				continue
			}
			seenSealer[s.Domain] = true
			add(Finding{ID: UngovernedSealer, Severity: Medium, Subject: "sealer " + s.Domain + " (configuration file)",
				Message: "the trusted ARC sealer is configured in the file: no approval, no expiry, no hit counter",
				Owner:   ownerOf(s.Owner, pol.TrustedARC.Owner, pol.Owner), Fix: "replace it with a governed sealer (portcullis sealer request)"})
		}
	}

	if ids := c.AuthResults.TrustedIDs; len(ids) > 0 {
		add(Finding{ID: TrustedAuthResults, Severity: Medium, Subject: "authentication_results.trusted_ids",
			Message: fmt.Sprintf("Authentication-Results fields of %s are kept as they come: anyone who can reach a listener directly can forge them for the mailbox server to trust", strings.Join(ids, ", ")),
			Owner:   ownerOf(c.Policy.Owner), Fix: "accept connections only from that service, or remove the trust"})
	}

	for _, e := range in.Exceptions {
		reviewGoverned(add, "exception "+e.ID, e.Describe(), &e.Lifecycle, now, warn)
	}
	for _, s := range in.Sealers {
		reviewGoverned(add, "sealer "+s.ID, s.Describe(), &s.Lifecycle, now, warn)
	}

	n := in.Notifications
	if off := n.Disabled(); len(off) > 0 {
		msg := strings.Join(off, ", ") + " turned off: quarantined partner mail can go unnoticed"
		if in.NotificationsChange != "" {
			msg += " (changed " + in.NotificationsChange + ")"
		}
		add(Finding{ID: NotificationsDisabled, Severity: High, Subject: "notifications", Message: msg,
			Owner: ownerOf(c.Policy.Owner), Fix: "portcullis notifications set --digests on --alerts on --expiry-warnings on --actor YOU"})
	}
	if n.AlertsEnabled {
		for _, w := range n.Watch {
			if n.OwnerAddress(w.Owner) == "" {
				add(Finding{ID: OwnerUnreachable, Severity: Medium, Subject: "watch " + w.Domain,
					Message: fmt.Sprintf("alerts about %s go to %s, which has no address (notifications owners, admin address)", w.Domain, w.Owner),
					Owner:   ownerOf(w.Owner), Fix: "portcullis notifications set --owner " + w.Owner + "=ADDRESS --actor YOU"})
			}
		}
	}
	if n.ExpiryWarningsEnabled && n.AdminAddress == "" {
		var unreachable []string
		for _, e := range in.Exceptions {
			if e.State == governance.Active && n.OwnerAddress(e.Owner) == "" && !slices.Contains(unreachable, e.Owner) {
				unreachable = append(unreachable, e.Owner)
			}
		}
		for _, o := range unreachable {
			add(Finding{ID: OwnerUnreachable, Severity: Low, Subject: "owner " + o,
				Message: "owns exceptions but has no notification address: expiry warnings cannot reach it",
				Owner:   o, Fix: "portcullis notifications set --owner " + o + "=ADDRESS --actor YOU"})
		}
	}

	if len(c.Governance.Users) == 0 {
		add(Finding{ID: RolesUnset, Severity: Medium, Subject: "governance.users",
			Message: "no users and roles are configured: any actor may approve; the second-person rule rests on the --actor names alone",
			Owner:   ownerOf(c.Policy.Owner), Fix: "list the operators and admins under governance.users"})
	}
	if c.Governance.ActorAuth != config.ActorAuthOS {
		add(Finding{ID: ActorsUnauthenticated, Severity: Low, Subject: "governance.actor_auth",
			Message: "--actor is a claimed name: whoever runs the CLI on the data directory may approve as anyone",
			Owner:   ownerOf(c.Policy.Owner), Fix: "give each person an account of their own and set governance.actor_auth: os"})
	}
	if !c.Governance.ReleaseRequiresApproval {
		add(Finding{ID: ReleaseUnapproved, Severity: Info, Subject: "governance.release_requires_approval",
			Message: "an operator releases quarantined mail alone", Owner: ownerOf(c.Policy.Owner),
			Fix: "set governance.release_requires_approval: true to need an admin's approval"})
	}
	if c.Governance.AuditKeyFile == "" {
		add(Finding{ID: AuditUnkeyed, Severity: Low, Subject: "governance.audit_key_file",
			Message: "the audit log is a plain hash chain: someone with write access to the database can rewrite it whole",
			Owner:   ownerOf(c.Policy.Owner), Fix: "configure an audit key kept outside the data directory, and export heads (portcullis audit head)"})
	}

	sort.SliceStable(out, func(i, j int) bool { return out[i].Severity.rank() < out[j].Severity.rank() })
	return out
}

func reviewGoverned(add func(Finding), subj, what string, l *governance.Lifecycle, now time.Time, warn time.Duration) {
	switch st := l.Effective(now); {
	case st == governance.Active && l.Expires.Sub(now) <= warn:
		msg := fmt.Sprintf("%s expires on %s (in %s)", what, l.Expires.UTC().Format("2006-01-02 15:04 UTC"), governance.Duration(l.Expires.Sub(now).Round(time.Hour)))
		fix := "renew it if still needed (a second person approves), or let it expire"
		if l.Renewal != nil {
			msg += "; a renewal by " + l.Renewal.RequestedBy + " waits for approval"
			fix = "approve or refuse the pending renewal"
		}
		add(Finding{ID: ExpiringSoon, Severity: Medium, Subject: subj, Message: msg, Owner: l.Owner, Fix: fix})
	case st == governance.Requested:
		add(Finding{ID: PendingApproval, Severity: Info, Subject: subj,
			Message: fmt.Sprintf("%s was requested by %s and waits for a second person's approval", what, l.RequestedBy),
			Owner:   l.Owner})
	case st == governance.Active && l.Renewal != nil:
		add(Finding{ID: PendingApproval, Severity: Info, Subject: subj,
			Message: fmt.Sprintf("a renewal requested by %s waits for approval", l.Renewal.RequestedBy), Owner: l.Owner})
	}
}

// covers reports whether own-domain protection covers domain d.
func covers(r policy.OwnDomainRule, d string) bool {
	d = strings.ToLower(strings.TrimSuffix(d, "."))
	for _, p := range r.Domains {
		p = strings.ToLower(strings.TrimSuffix(p, "."))
		if d == p || !r.Exact && strings.HasSuffix(d, "."+p) {
			return true
		}
	}
	return false
}
