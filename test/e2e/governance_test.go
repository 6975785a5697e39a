package e2e

import (
	"bytes"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"portcullis/internal/dns/dnstest"
	"portcullis/internal/evidence"
	"portcullis/internal/governance/governancetest"
	"portcullis/internal/pipeline/pipelinetest"
	"portcullis/internal/policy"
	"portcullis/internal/store"
)

// newGovEnv is newEnv with the partner of governancetest in the lab zone,
// a listener that takes the client address from a PROXY header sent by
// the test (so that messages come "from" the partner's provider or from
// elsewhere), and governance configured.
func newGovEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, lab: pipelinetest.NewLab(t), dir: t.TempDir()}
	governancetest.AddPartner(t, e.lab)
	e.dns = dnstest.Serve(t, e.lab.Zone)
	e.sink = pipelinetest.StartSink(t, "", false, true)
	e.smtp, e.metrics = freePort(t), freePort(t)
	cfg := fmt.Sprintf(`data_dir: %s
hostname: gw.lab.example
authserv_id: %s
dns:
  servers: ["%s"]
  timeout: 300ms
  attempts: 1
analysis:
  check_timeout: 5s
listeners:
  - name: mx
    address: "%s"
    accept_domains: [%s]
    proxy_protocol:
      trusted_cidrs: [127.0.0.1/32]
downstream:
  type: smtp
  hosts: ["%s"]
  tls: "off"
  connect_timeout: 1s
  command_timeout: 5s
  data_timeout: 10s
policy:
  own_domain:
    domains: [%s]
metrics:
  address: "%s"
shutdown_timeout: 10s
logging:
  level: warn
governance:
  users: {alice: operator, bob: admin}
  refresh_interval: 200ms
  notifications_from: postmaster@gw.lab.example
`, filepath.Join(e.dir, "data"), authServID, e.dns.Addr(), e.smtp, pipelinetest.RecipientDomain,
		e.sink.Addr(), pipelinetest.ProtectedDomain, e.metrics)
	e.cfgPath = filepath.Join(e.dir, "portcullis.yaml")
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.stop() })
	return e
}

// sendFrom sends msg over a connection that starts with a PROXY v1 header
// naming src as the client, and returns the reply code to the end of
// DATA (250, or the refusal's code).
func (e *env) sendFrom(src string, msg []byte, mailFrom string, rcpts ...string) int {
	e.t.Helper()
	conn, err := net.DialTimeout("tcp", e.smtp, 5*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	_, port, _ := net.SplitHostPort(e.smtp)
	if _, err := fmt.Fprintf(conn, "PROXY TCP4 %s 127.0.0.1 40001 %s\r\n", src, port); err != nil {
		e.t.Fatal(err)
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	code := func(err error) int {
		if se, ok := err.(*smtp.SMTPError); ok {
			return se.Code
		}
		e.t.Fatalf("SMTP session from %s: %v", src, err)
		return 0
	}
	if err := c.Hello("out1." + governancetest.ProviderDomain); err != nil {
		return code(err)
	}
	if err := c.Mail(mailFrom, nil); err != nil {
		return code(err)
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			return code(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return code(err)
	}
	if _, err := w.Write(msg); err != nil {
		e.t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		return code(err)
	}
	_ = c.Quit()
	return 250
}

// cli runs a portcullis command on the gateway's configuration.
func (e *env) cli(args ...string) string {
	e.t.Helper()
	out, err := e.run(append(args, "--config", e.cfgPath)...)
	if err != nil {
		e.t.Fatalf("portcullis %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// record waits for the evidence record of the message with Message-ID id.
func (e *env) record(id string) *evidence.Record {
	e.t.Helper()
	recs := e.waitEvidence(store.EvidenceQuery{MessageID: id}, 1)
	if len(recs) != 1 {
		e.t.Fatalf("%d evidence records for <%s>", len(recs), id)
	}
	return recs[0]
}

// waitSink waits until the downstream accepted a message matching ok.
func (e *env) waitSink(what string, ok func(pipelinetest.Received) bool) pipelinetest.Received {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range e.sink.Messages() {
			if ok(m) {
				return m
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("the downstream never got %s; it got %d messages:\n%s", what, e.sink.Count(), e.logText())
	return pipelinetest.Received{}
}

// decodeText returns the quoted-printable text of a notification.
func decodeText(t *testing.T, data []byte) string {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not a message: %v", err)
	}
	b, err := io.ReadAll(quotedprintable.NewReader(m.Body))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func to(rcpt, subjectPrefix string) func(pipelinetest.Received) bool {
	return func(m pipelinetest.Received) bool {
		return len(m.Rcpts) == 1 && m.Rcpts[0] == rcpt && strings.Contains(string(m.Data), "\r\nSubject: "+subjectPrefix)
	}
}

// TestPartnerException is the case governance exists for, end to end
// through the real gateway: a partner domain publishes DMARC p=quarantine
// but has no SPF and signs with its mail provider's DKIM domain. Its mail
// is quarantined and the recipient gets a digest (and the partner's owner
// an alert); an exception bound to the provider's DKIM d= is requested,
// approved by a second person, and the partner's real mail is then
// delivered and recorded as delivered-fail by that exception; the same
// From domain sent from another address without that signature is still
// quarantined; after the expiry the exception no longer applies.
func TestPartnerException(t *testing.T) {
	e := newGovEnv(t)
	bounce := "bounce@" + governancetest.PartnerDomain
	owner := "procurement@" + pipelinetest.RecipientDomain
	e.cli("notifications", "set", "--digest-interval", "1s", "--actor", "bob")
	e.cli("notifications", "watch", "add", governancetest.PartnerDomain, "--owner", owner, "--note", "purchase orders", "--actor", "bob")
	e.start()

	// 1. The partner's real mail is quarantined.
	po1 := governancetest.PartnerMessage(t, e.lab, "PO 4711")
	if code := e.sendFrom(governancetest.ProviderIP, po1, bounce, governancetest.Recipient); code != 250 {
		t.Fatalf("partner mail: reply %d", code)
	}
	rec := e.record(pipelinetest.MessageID(po1))
	if rec.Decision.Action != evidence.Quarantine || rec.Decision.Rule != policy.RuleDMARCQuarantine ||
		rec.Auth.SPF.Result != "none" || rec.Auth.DMARC.Result != "fail" || rec.Client.IP != governancetest.ProviderIP {
		t.Fatalf("partner mail before the exception: %+v %+v", rec.Decision, rec.Auth)
	}
	// The owner of the watched partner domain is alerted at once, the
	// recipient gets a digest.
	alert := e.waitSink("the partner alert", to(owner, "Portcullis alert: mail from partner.example quarantined"))
	if !strings.Contains(decodeText(t, alert.Data), "Evidence: "+rec.ID) {
		t.Errorf("alert:\n%s", alert.Data)
	}
	digest := e.waitSink("the recipient's digest", to(governancetest.Recipient, "Quarantine digest: 1 new message held for "+governancetest.Recipient))
	text := decodeText(t, digest.Data)
	for _, want := range []string{"From:     <orders@partner.example>", "Subject:  PO 4711", "Id:       " + rec.ID,
		"partner.example has no SPF record; it is validly DKIM-signed by mailprovider.example, which is not partner.example"} {
		if !strings.Contains(text, want) {
			t.Errorf("digest lacks %q:\n%s", want, text)
		}
	}
	if e.sink.Has(pipelinetest.MessageID(po1)) != 0 {
		t.Errorf("quarantined mail reached the downstream")
	}

	// 2. The exception: requested by alice, who cannot approve it; approved
	// by bob.
	const lifetime = 12 * time.Second
	requested := time.Now()
	out := e.cli("exception", "request", "--id", "partner-po", "--from-domain", governancetest.PartnerDomain,
		"--dkim-domain", governancetest.ProviderDomain, "--action", "deliver", "--owner", "procurement",
		"--justification", "purchase orders; the partner has no SPF and signs with its provider", "--ticket", "CHG-1042",
		"--expires", lifetime.String(), "--actor", "alice")
	if !strings.Contains(out, "exception partner-po requested by alice") {
		t.Fatalf("request: %s", out)
	}
	if _, err := e.run("exception", "approve", "partner-po", "--actor", "alice", "--config", e.cfgPath); err == nil {
		t.Fatal("alice approved her own request")
	}
	e.cli("exception", "approve", "partner-po", "--actor", "bob")
	time.Sleep(700 * time.Millisecond) // the gateway's refresh_interval is 200ms

	// 3. The partner's real mail is delivered, recorded as delivered-fail by
	// the exception.
	po2 := governancetest.PartnerMessage(t, e.lab, "PO 4712")
	if code := e.sendFrom(governancetest.ProviderIP, po2, bounce, governancetest.Recipient); code != 250 {
		t.Fatalf("partner mail with the exception: reply %d", code)
	}
	rec2 := e.record(pipelinetest.MessageID(po2))
	d := rec2.Decision
	if d.Action != evidence.Deliver || d.Rule != policy.RuleException || d.Exception == nil || *d.Exception != "partner-po" ||
		d.Overrides != policy.RuleDMARCQuarantine || d.Owner != "procurement" ||
		!strings.HasPrefix(d.Reason, "delivered-fail by exception partner-po") || d.Tag != "dmarc=fail, delivered by exception partner-po" {
		t.Errorf("partner mail with the exception: %+v", d)
	}
	if rec2.Delivery == nil || rec2.Delivery.Status != "accepted" || e.sink.Has(pipelinetest.MessageID(po2)) != 1 {
		t.Errorf("not delivered downstream: %+v", rec2.Delivery)
	}

	// 4. The same From domain, from another address, without the provider's
	// signature: still quarantined.
	spoof := governancetest.SpoofMessage(t, e.lab, "New bank details")
	if code := e.sendFrom(governancetest.SpooferIP, spoof, bounce, governancetest.Recipient); code != 250 {
		t.Fatalf("spoof: reply %d", code)
	}
	rec3 := e.record(pipelinetest.MessageID(spoof))
	if rec3.Decision.Action != evidence.Quarantine || rec3.Decision.Rule != policy.RuleDMARCQuarantine || rec3.Decision.Exception != nil {
		t.Errorf("spoof of the partner: %+v", rec3.Decision)
	}
	if e.sink.Has(pipelinetest.MessageID(spoof)) != 0 {
		t.Errorf("the spoof reached the downstream")
	}

	// 5. After the expiry the exception no longer applies (checked at each
	// decision, whatever the refresh).
	if wait := time.Until(requested.Add(lifetime + time.Second)); wait > 0 {
		time.Sleep(wait)
	}
	po3 := governancetest.PartnerMessage(t, e.lab, "PO 4713")
	if code := e.sendFrom(governancetest.ProviderIP, po3, bounce, governancetest.Recipient); code != 250 {
		t.Fatalf("partner mail after the expiry: reply %d", code)
	}
	rec4 := e.record(pipelinetest.MessageID(po3))
	if rec4.Decision.Action != evidence.Quarantine || rec4.Decision.Rule != policy.RuleDMARCQuarantine || rec4.Decision.Exception != nil {
		t.Errorf("partner mail after the expiry: %+v", rec4.Decision)
	}

	// Each quarantined item is in exactly one digest.
	e.waitSink("a digest of the later items", func(m pipelinetest.Received) bool {
		return to(governancetest.Recipient, "Quarantine digest:")(m) && strings.Contains(decodeText(t, m.Data), rec4.ID)
	})
	seen := map[string]int{}
	for _, m := range e.sink.Messages() {
		if to(governancetest.Recipient, "Quarantine digest:")(m) {
			text := decodeText(t, m.Data)
			for _, id := range []string{rec.ID, rec3.ID, rec4.ID} {
				if strings.Contains(text, "Id:       "+id) {
					seen[id]++
				}
			}
		}
	}
	for _, id := range []string{rec.ID, rec3.ID, rec4.ID} {
		if seen[id] != 1 {
			t.Errorf("item %s in %d digests, want 1", id, seen[id])
		}
	}

	// The counters are written at shutdown at the latest; the history is
	// in the audit log, which verifies.
	e.stop()
	out = e.cli("exception", "show", "partner-po")
	for _, want := range []string{"Hits:          1 messages", "State:         expired", "Requested:     by alice", "Approved:      by bob"} {
		if !strings.Contains(out, want) {
			t.Errorf("exception show lacks %q:\n%s", want, out)
		}
	}
	out = strings.Join(strings.Fields(e.cli("audit", "list")), " ")
	for _, want := range []string{"system config.load", "alice exception.request exception:partner-po → requested",
		"bob exception.approve exception:partner-po requested → active", "bob notifications.change"} {
		if !strings.Contains(out, want) {
			t.Errorf("audit list lacks %q:\n%s", want, out)
		}
	}
	if out := e.cli("audit", "verify"); !strings.HasPrefix(out, "audit log OK") {
		t.Errorf("audit verify: %s", out)
	}
}
