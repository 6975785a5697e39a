package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"portcullis/internal/evidence"
	"portcullis/internal/governance"
	"portcullis/internal/pipeline/pipelinetest"
	"portcullis/internal/policy"
	"portcullis/internal/review"
	"portcullis/internal/store"
	"portcullis/internal/store/sqlite"
)

// govConfig writes a configuration whose downstream is sink (when not
// nil), with extra appended, and returns its path.
func govConfig(t *testing.T, sink *pipelinetest.Sink, extra string) string {
	t.Helper()
	dir := t.TempDir()
	down := "downstream:\n  type: maildir\n"
	if sink != nil {
		down = fmt.Sprintf("downstream:\n  type: smtp\n  hosts: [%q]\n  tls: \"off\"\n  connect_timeout: 1s\n  command_timeout: 2s\n  data_timeout: 2s\n", sink.Addr())
	}
	cfg := fmt.Sprintf(`data_dir: %s
hostname: gw.corp.example
listeners:
  - name: mx
    address: "127.0.0.1:0"
    accept_domains: [corp.example]
%spolicy:
  own_domain:
    domains: [corp.example]
metrics:
  disabled: true
governance:
  users: {alice: operator, bob: admin, carol: admin}
%s`, filepath.Join(dir, "data"), down, extra)
	p := filepath.Join(dir, "portcullis.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func dataDirOf(cfgPath string) string { return filepath.Join(filepath.Dir(cfgPath), "data") }

// run runs one governance command line.
func run(t *testing.T, mk func(*globalFlags) *cobra.Command, args ...string) (string, error) {
	t.Helper()
	out, errOut, err := runCmd(t, mk, "", args...)
	if errOut != "" {
		t.Logf("stderr: %s", errOut)
	}
	return out, err
}

func mustRun(t *testing.T, mk func(*globalFlags) *cobra.Command, args ...string) string {
	t.Helper()
	out, err := run(t, mk, args...)
	if err != nil {
		t.Fatalf("portcullis %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func TestExceptionCommands(t *testing.T) {
	cfg := govConfig(t, nil, "")
	c := "--config=" + cfg
	_, err := run(t, newExceptionCmd, "exception", "request", c, "--from-domain", "partner.example", "--owner", "procurement",
		"--justification", "POs", "--expires", "30d", "--actor", "alice")
	if !errors.Is(err, governance.ErrInvalid) || !strings.Contains(err.Error(), "no binding") {
		t.Errorf("request without a binding: %v", err)
	}
	_, err = run(t, newExceptionCmd, "exception", "request", c, "--from-domain", "partner.example", "--dkim-domain", "mailprovider.example",
		"--owner", "procurement", "--justification", "POs", "--expires", "91d", "--actor", "alice")
	if !errors.Is(err, governance.ErrInvalid) || !strings.Contains(err.Error(), "maximum lifetime") {
		t.Errorf("request beyond 90 days: %v", err)
	}
	if _, err := run(t, newExceptionCmd, "exception", "request", c, "--from-domain", "partner.example", "--dkim-domain", "x.example",
		"--owner", "p", "--justification", "j", "--expires", "30d"); err == nil || !strings.Contains(err.Error(), "--actor is required") {
		t.Errorf("request without an actor: %v", err)
	}
	out := mustRun(t, newExceptionCmd, "exception", "request", c, "--id", "partner-po", "--from-domain", "partner.example",
		"--dkim-domain", "mailprovider.example", "--cidr", "198.51.100.0/24,198.51.101.7", "--rcpt", "orders@corp.example",
		"--action", "deliver", "--owner", "procurement", "--justification", "purchase orders", "--ticket", "CHG-1042",
		"--expires", "30d", "--actor", "alice")
	if !strings.Contains(out, "exception partner-po requested by alice: From partner.example via client 198.51.100.0/24 and client 198.51.101.7/32 and DKIM d=mailprovider.example verified: deliver for orders@corp.example") {
		t.Errorf("request output:\n%s", out)
	}
	// No self-approval; an operator cannot approve.
	if _, err := run(t, newExceptionCmd, "exception", "approve", "partner-po", c, "--actor", "alice"); !errors.Is(err, governance.ErrForbidden) {
		t.Errorf("approval by the operator who requested: %v", err)
	}
	out = mustRun(t, newExceptionCmd, "exception", "approve", "partner-po", c, "--actor", "bob")
	if !strings.HasPrefix(out, "exception partner-po approved by bob: active until ") {
		t.Errorf("approve output: %s", out)
	}
	out = mustRun(t, newExceptionCmd, "exception", "list", c)
	if !strings.Contains(out, "partner-po  active  partner.example") || !strings.Contains(out, "dkim:mailprovider.example") {
		t.Errorf("list:\n%s", out)
	}
	out = mustRun(t, newExceptionCmd, "exception", "show", "partner-po", c, "--json")
	var e governance.Exception
	if err := json.Unmarshal([]byte(out), &e); err != nil || e.ApprovedBy != "bob" || e.RequestedBy != "alice" || e.Ticket != "CHG-1042" {
		t.Errorf("show --json: %v\n%s", err, out)
	}
	out = mustRun(t, newExceptionCmd, "exception", "show", "partner-po", c)
	for _, want := range []string{"Requested:     by alice", "Approved:      by bob", "exception.request            by alice  → requested", "exception.approve            by bob  requested → active"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	// Renewal: requested by alice, approved by carol.
	mustRun(t, newExceptionCmd, "exception", "renew", "partner-po", c, "--expires", "60d", "--actor", "alice", "--justification", "still needed")
	if out := mustRun(t, newExceptionCmd, "exception", "list", c, "--state", "active"); !strings.Contains(out, "active+renewal") {
		t.Errorf("pending renewal not shown:\n%s", out)
	}
	mustRun(t, newExceptionCmd, "exception", "approve", "partner-po", c, "--actor", "carol")
	if _, err := run(t, newExceptionCmd, "exception", "revoke", "partner-po", c, "--actor", "alice"); !errors.Is(err, governance.ErrInvalid) {
		t.Errorf("revoke without a reason: %v", err)
	}
	mustRun(t, newExceptionCmd, "exception", "revoke", "partner-po", c, "--actor", "alice", "--reason", "partner fixed SPF")
	if out := mustRun(t, newExceptionCmd, "exception", "list", c, "--state", "revoked"); !strings.Contains(out, "partner-po  revoked") {
		t.Errorf("list --state revoked:\n%s", out)
	}

	// Sealers, the same way.
	out = mustRun(t, newSealerCmd, "sealer", "request", c, "--id", "list", "--domain", "lists.example.net", "--owner", "collab",
		"--justification", "staff list", "--expires", "14d", "--actor", "alice")
	if !strings.Contains(out, "sealer list requested by alice: trust ARC seals of lists.example.net") {
		t.Errorf("sealer request: %s", out)
	}
	mustRun(t, newSealerCmd, "sealer", "approve", "list", c, "--actor", "bob")
	if out := mustRun(t, newSealerCmd, "sealer", "list", c); !strings.Contains(out, "list  active  lists.example.net  collab") {
		t.Errorf("sealer list:\n%s", out)
	}

	// The audit log has every change, and verifies.
	out = mustRun(t, newAuditCmd, "audit", "list", c, "--action", "exception.")
	for _, want := range []string{"alice  exception.request", "bob    exception.approve", "alice  exception.renew", "carol  exception.approve", "alice  exception.revoke"} {
		if !strings.Contains(out, want) {
			t.Errorf("audit list lacks %q:\n%s", want, out)
		}
	}
	out = mustRun(t, newAuditCmd, "audit", "list", c, "--actor", "bob", "--json")
	var evs []map[string]any
	if err := json.Unmarshal([]byte(out), &evs); err != nil || len(evs) != 2 {
		t.Errorf("audit list --json --actor bob: %v\n%s", err, out)
	}
	out = mustRun(t, newAuditCmd, "audit", "verify", c)
	if !strings.HasPrefix(out, "audit log OK: 7 entries, head 7:") {
		t.Errorf("verify: %s", out)
	}
	head := strings.TrimSpace(mustRun(t, newAuditCmd, "audit", "head", c))
	if out := mustRun(t, newAuditCmd, "audit", "verify", c, "--anchor", head); !strings.Contains(out, "1 anchors found") {
		t.Errorf("verify --anchor: %s", out)
	}

	// Tampering: the command says where, and exits 1.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDirOf(cfg), sqlite.DBName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE audit SET actor = 'mallory' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	out, err = run(t, newAuditCmd, "audit", "verify", c)
	var ee *exitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out, "audit log BROKEN at seq 2 (modified)") {
		t.Errorf("verify after tampering: %v\n%s", err, out)
	}
}

// hold stores a quarantined message with its evidence, as the gateway
// does.
func hold(t *testing.T, dataDir, id string) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dataDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Now().UTC().Add(-time.Hour)
	rec := &evidence.Record{ID: id, ReceivedAt: at, Listener: "mx", Envelope: evidence.Envelope{MailFrom: "bounce@partner.example", RcptTo: []string{"orders@corp.example"}},
		HeaderFrom: "orders@partner.example", Subject: "PO 4711",
		Auth: evidence.Auth{SPF: evidence.SPF{Result: "none", Domain: "partner.example"}, DKIM: []evidence.DKIM{{Result: "pass", Domain: "mailprovider.example"}},
			DMARC: evidence.DMARC{Result: "fail", FromDomain: "partner.example", Policy: "quarantine"}},
		Decision: evidence.Decision{Action: evidence.Quarantine, Rule: policy.RuleDMARCQuarantine, Owner: "email-security"}}
	it := &store.QuarantineItem{ID: id, Recipients: rec.Envelope.RcptTo, Sender: rec.Envelope.MailFrom, Subject: rec.Subject,
		Reason: "dmarc-quarantine: p=quarantine", ReceivedAt: at, ExpiresAt: at.Add(30 * 24 * time.Hour)}
	body := "From: orders@partner.example\r\nTo: orders@corp.example\r\nSubject: PO 4711\r\nMessage-ID: <" + id + "@partner.example>\r\n\r\n12 pallets\r\n"
	if err := st.PutQuarantine(ctx, it, strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if err := st.PutEvidence(ctx, rec); err != nil {
		t.Fatal(err)
	}
}

func TestQuarantineCommands(t *testing.T) {
	sink := pipelinetest.StartSink(t, "", false, true)
	cfg := govConfig(t, sink, "  release_requires_approval: true\n")
	c := "--config=" + cfg
	hold(t, dataDirOf(cfg), "q1")
	hold(t, dataDirOf(cfg), "q2")

	out := mustRun(t, newQuarantineCmd, "quarantine", "list", c, "--state", "held")
	if !strings.Contains(strings.Join(strings.Fields(out), " "), "q1 "+time.Now().UTC().Add(-time.Hour).Format("2006-01-02")) ||
		!strings.Contains(strings.Join(strings.Fields(out), " "), "held bounce@partner.example orders@corp.example PO 4711 dmarc-quarantine") {
		t.Errorf("list:\n%s", out)
	}
	out = mustRun(t, newQuarantineCmd, "quarantine", "show", "q1", c)
	for _, want := range []string{"Why: Quarantined: the message claims to come from partner.example", "validly DKIM-signed by mailprovider.example", "Subject: PO 4711"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	if _, err := run(t, newQuarantineCmd, "quarantine", "release", "q1", c, "--actor", "alice"); err == nil || !strings.Contains(err.Error(), "requires approval") {
		t.Errorf("direct release with approval required: %v", err)
	}
	mustRun(t, newQuarantineCmd, "quarantine", "release-request", "q1", c, "--actor", "alice", "--reason", "partner confirmed")
	if _, err := run(t, newQuarantineCmd, "quarantine", "approve-release", "q1", c, "--actor", "alice"); !errors.Is(err, governance.ErrForbidden) {
		t.Errorf("operator approving: %v", err)
	}
	out = mustRun(t, newQuarantineCmd, "quarantine", "approve-release", "q1", c, "--actor", "bob")
	if !strings.HasPrefix(out, "released q1 by bob: ") {
		t.Errorf("approve-release: %s", out)
	}
	msgs := sink.Messages()
	if len(msgs) != 1 || !strings.HasPrefix(string(msgs[0].Data), "X-Portcullis-Released: by bob at ") ||
		!strings.Contains(string(msgs[0].Data), "requested by alice;") {
		t.Fatalf("downstream got %d messages: %q", len(msgs), msgs)
	}
	mustRun(t, newQuarantineCmd, "quarantine", "delete", "q2", c, "--actor", "alice", "--reason", "phish")
	out = mustRun(t, newAuditCmd, "audit", "list", c, "--object", "quarantine")
	for _, want := range []string{"alice  quarantine.release-request  quarantine:q1  held → release-requested", "bob    quarantine.release", "alice  quarantine.delete"} {
		if !strings.Contains(out, want) {
			t.Errorf("audit lacks %q:\n%s", want, out)
		}
	}
}

func TestNotificationsAndReviewCommands(t *testing.T) {
	sink := pipelinetest.StartSink(t, "", false, true)
	cfg := govConfig(t, sink, "")
	c := "--config=" + cfg
	if _, err := run(t, newNotificationsCmd, "notifications", "set", c, "--digests", "off", "--actor", "alice"); !errors.Is(err, governance.ErrForbidden) {
		t.Errorf("operator turning digests off: %v", err)
	}
	out := mustRun(t, newNotificationsCmd, "notifications", "set", c, "--digests", "off", "--owner", "procurement=procurement@corp.example", "--actor", "bob")
	if !strings.Contains(out, "warning: recipient digests turned off") {
		t.Errorf("set: %s", out)
	}
	mustRun(t, newNotificationsCmd, "notifications", "watch", "add", "partner.example", c, "--owner", "procurement", "--actor", "bob")
	out = mustRun(t, newNotificationsCmd, "notifications", "show", c)
	for _, want := range []string{"Digests:          OFF", "Partner alerts:   on", "Owner:            procurement = procurement@corp.example", "Watch:            partner.example, owner procurement"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	if _, err := run(t, newNotificationsCmd, "notifications", "send-digests", c); err == nil || !strings.Contains(err.Error(), "turned off") {
		t.Errorf("send-digests while off: %v", err)
	}

	// An exception expiring soon, and a config that accepts temperrors.
	mustRun(t, newExceptionCmd, "exception", "request", c, "--id", "partner-po", "--from-domain", "partner.example", "--dkim-domain", "mailprovider.example",
		"--owner", "procurement", "--justification", "POs", "--expires", "5d", "--actor", "alice")
	mustRun(t, newExceptionCmd, "exception", "approve", "partner-po", c, "--actor", "bob")
	b, _ := os.ReadFile(cfg)
	cfgText := strings.Replace(string(b), "policy:\n", "policy:\n  dmarc_temperror:\n    action: deliver\n    owner: dns-team\n", 1)
	if err := os.WriteFile(cfg, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	reviewCmd := func(g *globalFlags) *cobra.Command { return withReview(newConfigCmd(g), g) }
	out, err := run(t, reviewCmd, "config", "review", c, "--fail-on", "high")
	var ee *exitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("--fail-on high with high findings: %v", err)
	}
	for _, want := range []string{
		"HIGH   temperror-accepted: listener mx: dmarc_temperror.action is deliver",
		"(owner dns-team)",
		"HIGH   notifications-disabled: notifications: recipient digests turned off: quarantined partner mail can go unnoticed (changed by bob at ",
		"MEDIUM expiring-soon: exception partner-po: From partner.example via DKIM d=mailprovider.example verified: deliver expires on",
		"(owner procurement)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("review lacks %q:\n%s", want, out)
		}
	}
	out = mustRun(t, reviewCmd, "config", "review", c, "--json")
	var fs []review.Finding
	if err := json.Unmarshal([]byte(out), &fs); err != nil || len(fs) == 0 {
		t.Fatalf("review --json: %v\n%s", err, out)
	}
	for _, f := range fs {
		if f.Owner == "" {
			t.Errorf("finding without an owner: %+v", f)
		}
	}
	// Digests back on: the change is audited; the finding is gone.
	mustRun(t, newNotificationsCmd, "notifications", "set", c, "--digests", "on", "--actor", "carol")
	out = mustRun(t, reviewCmd, "config", "review", c)
	if strings.Contains(out, "notifications-disabled") {
		t.Errorf("finding after turning digests on:\n%s", out)
	}
	out = mustRun(t, newAuditCmd, "audit", "list", c, "--action", "notifications.change")
	if strings.Count(out, "notifications.change") != 3 {
		t.Errorf("notification changes audited:\n%s", out)
	}
}

func TestParseExpiry(t *testing.T) {
	now := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"30d": now.Add(30 * 24 * time.Hour), "2w": now.Add(14 * 24 * time.Hour), "36h": now.Add(36 * time.Hour),
		"2026-07-01": time.Date(2026, 7, 1, 23, 59, 59, 0, time.UTC), "2026-07-01T10:00:00Z": time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC),
	} {
		got, err := parseExpiry(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseExpiry(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "soon", "-3d", "0d"} {
		if _, err := parseExpiry(bad, now); err == nil {
			t.Errorf("parseExpiry(%q) accepted", bad)
		}
	}
}

// TestActorAuthOS checks governance.actor_auth: os: the actor is the
// account running the command; --actor may be left out, and another name
// is refused, so the second-person rule rests on accounts.
func TestActorAuthOS(t *testing.T) {
	cfg := govConfig(t, nil, "  actor_auth: os\n")
	c := "--config=" + cfg
	account := "alice"
	real := osAccount
	osAccount = func() (string, error) { return account, nil }
	t.Cleanup(func() { osAccount = real })

	request := []string{"exception", "request", c, "--id", "partner-po", "--from-domain", "partner.example", "--owner", "procurement",
		"--dkim-domain", "mailer.partner.example", "--justification", "POs", "--expires", "30d"}
	if _, err := run(t, newExceptionCmd, append(request, "--actor", "bob")...); err == nil ||
		!strings.Contains(err.Error(), "this command runs as alice") {
		t.Fatalf("request naming another actor: %v", err)
	}
	out := mustRun(t, newExceptionCmd, request...)
	if !strings.Contains(out, "exception partner-po requested by alice") {
		t.Errorf("request without --actor:\n%s", out)
	}
	// alice cannot approve her own request, nor approve as bob.
	if _, err := run(t, newExceptionCmd, "exception", "approve", "partner-po", c); !errors.Is(err, governance.ErrForbidden) {
		t.Errorf("alice approving her own request: %v", err)
	}
	if _, err := run(t, newExceptionCmd, "exception", "approve", "partner-po", c, "--actor", "bob"); err == nil ||
		!strings.Contains(err.Error(), "runs as alice") {
		t.Errorf("alice approving as bob: %v", err)
	}
	account = "bob"
	mustRun(t, newExceptionCmd, "exception", "approve", "partner-po", c)
	out = mustRun(t, newAuditCmd, "audit", "list", c, "--json")
	var evs []struct{ Actor, Action string }
	if err := json.Unmarshal([]byte(out), &evs); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got []string
	for _, e := range evs {
		got = append(got, e.Action+" by "+e.Actor)
	}
	if want := "exception.request by alice,exception.approve by bob"; strings.Join(got, ",") != want {
		t.Errorf("audit: %s, want %s", strings.Join(got, ","), want)
	}

	// The real account of this process, whatever it is, is the only
	// accepted actor.
	osAccount = real
	who, err := real()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, newExceptionCmd, append(request, "--actor", "not-"+who)...); err == nil ||
		!strings.Contains(err.Error(), "runs as "+who) {
		t.Errorf("another name than the real account %s: %v", who, err)
	}
}
