package review_test

import (
	"strings"
	"testing"
	"time"

	"portcullis/internal/config"
	"portcullis/internal/evidence"
	"portcullis/internal/governance"
	"portcullis/internal/policy"
	"portcullis/internal/quarantine"
	"portcullis/internal/review"
)

var now = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

// base is a configuration that the review finds nothing high in: the
// accepted domain is protected, roles, release approval and an audit key
// are configured.
const base = `
hostname: gw.corp.example
listeners:
  - name: mx
    address: "0.0.0.0:25"
    accept_domains: [corp.example]
policy:
  owner: mail-team
  own_domain:
    domains: [corp.example]
    owner: security
governance:
  users: {alice: operator, bob: admin}
  release_requires_approval: true
  audit_key_file: /etc/portcullis/audit.key
  actor_auth: os
`

func parse(t *testing.T, y string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

func run(t *testing.T, in review.Input) []review.Finding {
	t.Helper()
	if in.Now.IsZero() {
		in.Now = now
	}
	if in.Notifications.DigestInterval == 0 {
		in.Notifications = quarantine.DefaultSettings()
	}
	return review.Review(in)
}

// find returns the findings with id.
func find(fs []review.Finding, id string) []review.Finding {
	var out []review.Finding
	for _, f := range fs {
		if f.ID == id {
			out = append(out, f)
		}
	}
	return out
}

func TestCleanConfiguration(t *testing.T) {
	fs := run(t, review.Input{Config: parse(t, base)})
	if len(fs) != 0 {
		for _, f := range fs {
			t.Errorf("unexpected finding: %s", f)
		}
	}
}

func TestListenerWithoutEnforcement(t *testing.T) {
	c := parse(t, base+`
policies:
  legacy:
    owner: legacy-team
    dmarc_reject: {action: deliver}
    dmarc_quarantine: {action: deliver, owner: partners}
`)
	c.Listeners = append(c.Listeners, config.ListenerConfig{Name: "legacy", Address: "0.0.0.0:2526", AcceptDomains: []string{"corp.example"}, Policy: "legacy"})
	fs := find(run(t, review.Input{Config: c}), review.ListenerNoEnforcement)
	if len(fs) != 2 {
		t.Fatalf("findings: %v", fs)
	}
	for _, f := range fs {
		if f.Subject != "listener legacy" || f.Severity != review.High {
			t.Errorf("finding %s", f)
		}
	}
	// The rule's owner as the gateway's decisions name it: the override
	// sets no owner for the rule, so the override's policy owner applies.
	if fs[0].Owner != "legacy-team" || !strings.Contains(fs[0].Message, "dmarc_reject.action is deliver") {
		t.Errorf("reject: %s", fs[0])
	}
	if fs[1].Owner != "partners" || !strings.Contains(fs[1].Message, "dmarc_quarantine.action is deliver") {
		t.Errorf("quarantine: %s", fs[1])
	}
	// own_domain turned into deliver.
	c = parse(t, strings.Replace(base, "    owner: security", "    owner: security\n    action: deliver", 1))
	fs = find(run(t, review.Input{Config: c}), review.ListenerNoEnforcement)
	if len(fs) != 1 || !strings.Contains(fs[0].Message, "own_domain.action is deliver") || fs[0].Owner != "security" {
		t.Errorf("own domain deliver: %v", fs)
	}
}

func TestOwnDomainUnprotected(t *testing.T) {
	c := parse(t, strings.Replace(base, "accept_domains: [corp.example]", "accept_domains: [corp.example, sub.corp.example, corp-mail.example]", 1))
	fs := find(run(t, review.Input{Config: c}), review.OwnDomainUnprotected)
	if len(fs) != 1 || !strings.Contains(fs[0].Message, "corp-mail.example") || fs[0].Owner != "security" || fs[0].Severity != review.High {
		t.Errorf("findings: %v", fs)
	}
}

func TestTempErrorAccepted(t *testing.T) {
	c := parse(t, base+"  # temperror\n")
	c.Policy.DMARCTempError = policy.Rule{Action: evidence.Deliver, Owner: "dns-team"}
	fs := find(run(t, review.Input{Config: c}), review.TempErrorAccepted)
	if len(fs) != 1 || fs[0].Owner != "dns-team" || !strings.Contains(fs[0].Message, "fail open") {
		t.Errorf("findings: %v", fs)
	}
}

func TestTrustedAuthResults(t *testing.T) {
	c := parse(t, base+"authentication_results:\n  trusted_ids: [filter.provider.example]\n")
	fs := find(run(t, review.Input{Config: c}), review.TrustedAuthResults)
	if len(fs) != 1 || !strings.Contains(fs[0].Message, "filter.provider.example") || fs[0].Owner != "mail-team" {
		t.Errorf("findings: %v", fs)
	}
}

func governed(id, owner string, state governance.State, expires time.Time) *governance.Exception {
	return &governance.Exception{ID: id, FromDomains: []string{"partner.example"}, Allow: evidence.Deliver,
		Binding:   policy.Binding{DKIMDomains: []string{"mailprovider.example"}},
		Lifecycle: governance.Lifecycle{Owner: owner, State: state, RequestedBy: "alice", Expires: expires}}
}

func TestExpiringAndPending(t *testing.T) {
	c := parse(t, base)
	soon := governed("partner-po", "procurement", governance.Active, now.Add(5*24*time.Hour))
	later := governed("later", "procurement", governance.Active, now.Add(50*24*time.Hour))
	renewing := governed("renewing", "finance", governance.Active, now.Add(3*24*time.Hour))
	renewing.Renewal = &governance.Renewal{RequestedBy: "alice", Expires: now.Add(60 * 24 * time.Hour)}
	pending := governed("pending", "sales", governance.Requested, now.Add(20*24*time.Hour))
	gone := governed("gone", "sales", governance.Active, now.Add(-time.Hour))
	sealer := &governance.Sealer{ID: "list", Domain: "lists.example.net",
		Lifecycle: governance.Lifecycle{Owner: "collab", State: governance.Active, Expires: now.Add(24 * time.Hour)}}
	fs := run(t, review.Input{Config: c, Exceptions: []*governance.Exception{soon, later, renewing, pending, gone},
		Sealers: []*governance.Sealer{sealer}})
	exp := find(fs, review.ExpiringSoon)
	if len(exp) != 3 {
		t.Fatalf("expiring: %v", exp)
	}
	got := map[string]string{}
	for _, f := range exp {
		got[f.Subject] = f.Owner
	}
	if got["exception partner-po"] != "procurement" || got["exception renewing"] != "finance" || got["sealer list"] != "collab" {
		t.Errorf("expiring: %v", got)
	}
	for _, f := range exp {
		if f.Subject == "exception renewing" && !strings.Contains(f.Message, "renewal by alice waits") {
			t.Errorf("renewing: %s", f)
		}
		if f.Subject == "exception partner-po" && !strings.Contains(f.Message, "in 5d") {
			t.Errorf("partner-po: %s", f)
		}
	}
	pend := find(fs, review.PendingApproval)
	if len(pend) != 1 || pend[0].Subject != "exception pending" || pend[0].Owner != "sales" {
		t.Errorf("pending: %v", pend)
	}
}

func TestUngoverned(t *testing.T) {
	c := parse(t, base+`  # static exception
`)
	c.Policy.Exceptions = []policy.Exception{{ID: "static-po", FromDomain: "partner.example", Owner: "procurement",
		Binding: policy.Binding{SPFDomains: []string{"partner.example"}}, Expires: now.Add(3 * 24 * time.Hour)}}
	c.Policy.TrustedARC.Sealers = []policy.TrustedSealer{{Domain: "lists.example.net"}}
	c.Listeners = append(c.Listeners, config.ListenerConfig{Name: "mx2", Address: "0.0.0.0:26", AcceptDomains: []string{"corp.example"}})
	fs := run(t, review.Input{Config: c})
	exc := find(fs, review.UngovernedException)
	if len(exc) != 1 || exc[0].Owner != "procurement" || !strings.Contains(exc[0].Message, "expires on 2026-06-04") {
		t.Errorf("exceptions (reported once for two listeners): %v", exc)
	}
	sl := find(fs, review.UngovernedSealer)
	// A sealer without an owner belongs to the policy's owner.
	if len(sl) != 1 || sl[0].Owner != "mail-team" {
		t.Errorf("sealers: %v", sl)
	}
}

func TestNotificationsDisabled(t *testing.T) {
	c := parse(t, base)
	s := quarantine.DefaultSettings()
	s.DigestEnabled, s.AlertsEnabled = false, true
	s.Watch = []quarantine.Watch{{Domain: "partner.example", Owner: "procurement"}}
	fs := run(t, review.Input{Config: c, Notifications: s, NotificationsChange: "by bob at 2026-05-30T10:00:00Z"})
	off := find(fs, review.NotificationsDisabled)
	if len(off) != 1 || off[0].Severity != review.High || !strings.Contains(off[0].Message, "recipient digests turned off") ||
		!strings.Contains(off[0].Message, "by bob at 2026-05-30") || off[0].Owner != "mail-team" {
		t.Errorf("disabled: %v", off)
	}
	un := find(fs, review.OwnerUnreachable)
	if len(un) != 1 || un[0].Subject != "watch partner.example" || un[0].Owner != "procurement" {
		t.Errorf("unreachable: %v", un)
	}
	if fs[0].Severity != review.High {
		t.Errorf("not sorted by severity: %v", fs)
	}
}

func TestGovernanceSettings(t *testing.T) {
	c := parse(t, strings.Split(base, "governance:")[0])
	fs := run(t, review.Input{Config: c})
	for _, id := range []string{review.RolesUnset, review.ActorsUnauthenticated, review.ReleaseUnapproved, review.AuditUnkeyed} {
		if len(find(fs, id)) != 1 {
			t.Errorf("no %s finding: %v", id, fs)
		}
	}
}

func TestMilterPath(t *testing.T) {
	c := parse(t, base+`policies:
  postfix:
    dmarc_reject: {action: deliver}
milter:
  policy: postfix
`)
	fs := find(run(t, review.Input{Config: c}), review.ListenerNoEnforcement)
	if len(fs) != 1 || fs[0].Subject != "milter milter" {
		t.Errorf("milter: %v", fs)
	}
}

func TestFindingString(t *testing.T) {
	f := review.Finding{ID: review.TempErrorAccepted, Severity: review.High, Subject: "listener mx", Message: "m", Owner: "dns-team", Fix: "do x"}
	if got, want := f.String(), "HIGH   temperror-accepted: listener mx: m (owner dns-team)\n       fix: do x"; got != want {
		t.Errorf("String:\n%s\nwant\n%s", got, want)
	}
	if s, err := review.ParseSeverity("Medium"); err != nil || s != review.Medium || !review.High.AtLeast(s) || review.Low.AtLeast(s) {
		t.Errorf("ParseSeverity: %v %v", s, err)
	}
}
