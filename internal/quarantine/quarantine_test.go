package quarantine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"portcullis/internal/audit"
	"portcullis/internal/evidence"
	"portcullis/internal/governance"
	"portcullis/internal/pipeline/pipelinetest"
	"portcullis/internal/policy"
	"portcullis/internal/quarantine"
	"portcullis/internal/relay"
	"portcullis/internal/store"
	"portcullis/internal/store/sqlite"
)

var t0 = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type fixture struct {
	st    *sqlite.Store
	log   *audit.Log
	clock *fakeClock
	sink  *pipelinetest.Sink
	relay *relay.SMTP
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	c := &fakeClock{now: t0}
	st, err := sqlite.Open(ctxFor(t), t.TempDir(), &sqlite.Options{Logger: quiet, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l, err := audit.New(st, &audit.Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	sink := pipelinetest.StartSink(t, "", false, true)
	r, err := relay.NewSMTP(relay.SMTPConfig{Hosts: []string{sink.Addr()}, LocalName: "gw.test", MaxIdlePerHost: -1,
		ConnectTimeout: 2 * time.Second, CommandTimeout: 2 * time.Second, DataTimeout: 2 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &fixture{st: st, log: l, clock: c, sink: sink, relay: r}
}

var roles = governance.Roles{"alice": governance.RoleOperator, "bob": governance.RoleAdmin, "carol": governance.RoleAdmin}

func (f *fixture) manager(cfg quarantine.Config) *quarantine.Manager {
	return quarantine.NewManager(f.st, f.log, cfg, quarantine.ManagerOptions{Deliverer: f.relay, Roles: roles, Now: f.clock.Now, Logger: quiet})
}

// partnerRecord is the evidence of the partner's quarantined purchase
// order.
func partnerRecord(id string, at time.Time, rcpts ...string) *evidence.Record {
	if len(rcpts) == 0 {
		rcpts = []string{"orders@inbound.example"}
	}
	return &evidence.Record{
		ID: id, ReceivedAt: at, Listener: "mx",
		Client:     evidence.Client{IP: "198.51.100.25", HELO: "out1.mailprovider.example"},
		Envelope:   evidence.Envelope{MailFrom: "bounce@partner.example", RcptTo: rcpts},
		HeaderFrom: "Partner Orders <orders@partner.example>", Subject: "PO 4711",
		Auth: evidence.Auth{
			SPF:   evidence.SPF{Result: "none", Domain: "partner.example", Identity: "mailfrom"},
			DKIM:  []evidence.DKIM{{Result: "pass", Domain: "mailprovider.example", Selector: "lab", Algorithm: "rsa-sha256", KeyBits: 2048}},
			ARC:   evidence.ARC{Result: "none"},
			DMARC: evidence.DMARC{Result: "fail", FromDomain: "partner.example", OrgDomain: "partner.example", Policy: "quarantine", PolicySource: "p"},
		},
		AuthenticationResults: "mx.inbound.example; spf=none smtp.mailfrom=partner.example; dkim=pass header.d=mailprovider.example; dmarc=fail header.from=partner.example",
		Decision: evidence.Decision{Action: evidence.Quarantine, Rule: policy.RuleDMARCQuarantine, Owner: "email-security",
			Reason: "DMARC fail for partner.example, which publishes p=quarantine", SMTPReply: "250 2.0.0 Message accepted"},
	}
}

const partnerBody = "Received: from out1.mailprovider.example\r\nFrom: Partner Orders <orders@partner.example>\r\nTo: <orders@inbound.example>\r\nSubject: PO 4711\r\nMessage-ID: <po4711@partner.example>\r\n\r\nPlease deliver 12 pallets.\r\n"

// hold quarantines a message as the pipeline does: body and item, then
// the evidence.
func (f *fixture) hold(t *testing.T, id string, at time.Time, rcpts ...string) {
	t.Helper()
	rec := partnerRecord(id, at, rcpts...)
	body := strings.Replace(partnerBody, "po4711", id, 1)
	it := &store.QuarantineItem{ID: id, Recipients: rec.Envelope.RcptTo, Sender: rec.Envelope.MailFrom, Subject: rec.Subject,
		Reason: rec.Decision.Rule + ": " + rec.Decision.Reason, ReceivedAt: at, ExpiresAt: at.Add(30 * 24 * time.Hour)}
	if err := f.st.PutQuarantine(ctxFor(t), it, strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if err := f.st.PutEvidence(ctxFor(t), rec); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) state(t *testing.T, id string) store.QuarantineState {
	t.Helper()
	it, err := f.st.GetQuarantine(ctxFor(t), id)
	if err != nil {
		t.Fatal(err)
	}
	return it.State
}

func (f *fixture) actions(t *testing.T, id string) string {
	t.Helper()
	evs, _, err := f.log.List(ctxFor(t), audit.Filter{ObjectType: "quarantine", ObjectID: id})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, string(e.Action)+" by "+e.Actor)
	}
	return strings.Join(out, ", ")
}

func TestRelease(t *testing.T) {
	f := newFixture(t)
	m := f.manager(quarantine.Config{})
	ctx := ctxFor(t)
	f.hold(t, "q1", t0, "orders@inbound.example", "ap@inbound.example")
	f.clock.Advance(time.Hour)

	if _, err := m.Release(ctx, "q1", "mallory"); !errors.Is(err, governance.ErrForbidden) {
		t.Errorf("release by an unknown actor: %v", err)
	}
	res, err := m.Release(ctx, "q1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != relay.StatusAccepted {
		t.Errorf("result %+v", res)
	}
	msgs := f.sink.Messages()
	if len(msgs) != 1 {
		t.Fatalf("downstream got %d messages", len(msgs))
	}
	got := msgs[0]
	want := "X-Portcullis-Released: by alice at 2026-06-01T10:00:00Z; evidence q1\r\n"
	if !strings.HasPrefix(string(got.Data), want) {
		t.Errorf("released message starts with %q, want %q", firstLines(got.Data, 2), want)
	}
	if !bytes.HasSuffix(got.Data, []byte(strings.Replace(partnerBody, "po4711", "q1", 1))) {
		t.Errorf("the stored message is not delivered unchanged under the field")
	}
	if got.MailFrom != "bounce@partner.example" || strings.Join(got.Rcpts, ",") != "orders@inbound.example,ap@inbound.example" {
		t.Errorf("envelope %s → %v", got.MailFrom, got.Rcpts)
	}
	if st := f.state(t, "q1"); st != store.Released {
		t.Errorf("state %s", st)
	}
	if _, err := m.Release(ctx, "q1", "bob"); !errors.Is(err, quarantine.ErrState) {
		t.Errorf("second release: %v", err)
	}
	if f.sink.Count() != 1 {
		t.Errorf("released twice")
	}
	if got, want := f.actions(t, "q1"), "quarantine.release by alice"; got != want {
		t.Errorf("audit: %s, want %s", got, want)
	}
	evs, _, _ := f.log.List(ctx, audit.Filter{Action: string(audit.QuarantineRelease)})
	if !strings.Contains(string(evs[0].Before), `"state":"held"`) || !strings.Contains(string(evs[0].After), `"state":"released"`) ||
		!strings.Contains(string(evs[0].After), `"released_by":"alice"`) {
		t.Errorf("audit before/after: %s → %s", evs[0].Before, evs[0].After)
	}
	if _, err := m.Release(ctx, "nope", "alice"); !errors.Is(err, quarantine.ErrNotFound) {
		t.Errorf("missing item: %v", err)
	}
}

func firstLines(b []byte, n int) string {
	lines := strings.SplitN(string(b), "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

func TestReleaseApproval(t *testing.T) {
	f := newFixture(t)
	m := f.manager(quarantine.Config{ReleaseRequiresApproval: true})
	ctx := ctxFor(t)
	f.hold(t, "q1", t0)
	f.hold(t, "q2", t0)

	if _, err := m.Release(ctx, "q1", "alice"); !errors.Is(err, quarantine.ErrApprovalRequired) {
		t.Errorf("direct release: %v", err)
	}
	if _, err := m.Release(ctx, "q1", "bob"); !errors.Is(err, quarantine.ErrApprovalRequired) {
		t.Errorf("direct release by an admin: %v", err)
	}
	if f.sink.Count() != 0 {
		t.Fatal("delivered without approval")
	}
	if _, err := m.ApproveRelease(ctx, "q1", "bob"); !errors.Is(err, quarantine.ErrState) {
		t.Errorf("approving what nobody requested: %v", err)
	}
	if err := m.RequestRelease(ctx, "q1", "alice", "the partner confirmed by phone"); err != nil {
		t.Fatal(err)
	}
	if st := f.state(t, "q1"); st != store.ReleaseRequested {
		t.Errorf("state %s", st)
	}
	if err := m.RequestRelease(ctx, "q1", "alice", "again"); !errors.Is(err, quarantine.ErrState) {
		t.Errorf("second request: %v", err)
	}
	if _, err := m.ApproveRelease(ctx, "q1", "alice"); !errors.Is(err, governance.ErrForbidden) {
		t.Errorf("operator approving: %v", err)
	}
	// An admin's own request needs another admin.
	if err := m.RequestRelease(ctx, "q2", "bob", "mine"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ApproveRelease(ctx, "q2", "bob"); !errors.Is(err, governance.ErrSelfApproval) {
		t.Errorf("self-approval: %v", err)
	}
	if err := m.RefuseRelease(ctx, "q2", "carol", "it is a phish"); err != nil {
		t.Fatal(err)
	}
	if st := f.state(t, "q2"); st != store.Held {
		t.Errorf("refused: state %s", st)
	}

	f.clock.Advance(30 * time.Minute)
	if _, err := m.ApproveRelease(ctx, "q1", "bob"); err != nil {
		t.Fatal(err)
	}
	msgs := f.sink.Messages()
	if len(msgs) != 1 {
		t.Fatalf("downstream got %d messages", len(msgs))
	}
	want := "X-Portcullis-Released: by bob at 2026-06-01T09:30:00Z; requested by alice;\r\n evidence q1\r\n"
	if !strings.HasPrefix(string(msgs[0].Data), want) {
		t.Errorf("released message starts with %q, want %q", firstLines(msgs[0].Data, 2), want)
	}
	if got, want := f.actions(t, "q1"), "quarantine.release-request by alice, quarantine.release by bob"; got != want {
		t.Errorf("audit: %s, want %s", got, want)
	}
	if got, want := f.actions(t, "q2"), "quarantine.release-request by bob, quarantine.release-refuse by carol"; got != want {
		t.Errorf("audit: %s, want %s", got, want)
	}
	if _, err := f.log.Verify(ctx); err != nil {
		t.Error(err)
	}
}

func TestReleaseDownstreamFailure(t *testing.T) {
	f := newFixture(t)
	m := f.manager(quarantine.Config{})
	ctx := ctxFor(t)
	f.hold(t, "q1", t0)
	f.sink.SetMode(pipelinetest.TempFail)
	_, err := m.Release(ctx, "q1", "alice")
	if !errors.Is(err, quarantine.ErrDelivery) || !relay.IsTemporary(err) {
		t.Errorf("release into a failing downstream: %v", err)
	}
	if st := f.state(t, "q1"); st != store.Held {
		t.Errorf("state %s after a failed release", st)
	}
	if a := f.actions(t, "q1"); a != "" {
		t.Errorf("a failed release was audited: %s", a)
	}
	f.sink.SetMode(pipelinetest.Accept)
	if _, err := m.Release(ctx, "q1", "alice"); err != nil {
		t.Fatal(err)
	}
	if f.sink.Count() != 1 {
		t.Errorf("%d delivered", f.sink.Count())
	}
}

func TestDeleteAndShow(t *testing.T) {
	f := newFixture(t)
	m := f.manager(quarantine.Config{})
	ctx := ctxFor(t)
	f.hold(t, "q1", t0)
	v, err := m.Show(ctx, "q1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v.Header, "Received: from out1.mailprovider.example\r\n") || !strings.Contains(v.Header, "Subject: PO 4711\r\n") ||
		strings.Contains(v.Header, "pallets") {
		t.Errorf("header:\n%s", v.Header)
	}
	if v.Evidence == nil || v.Evidence.ID != "q1" {
		t.Errorf("evidence %+v", v.Evidence)
	}
	for _, want := range []string{"Quarantined", "partner.example has no SPF record", "validly DKIM-signed by mailprovider.example, which is not partner.example", "p=quarantine", "dmarc-quarantine"} {
		if !strings.Contains(v.Verdict, want) {
			t.Errorf("verdict %q lacks %q", v.Verdict, want)
		}
	}
	if err := m.Delete(ctx, "q1", "alice", "phish"); err != nil {
		t.Fatal(err)
	}
	if st := f.state(t, "q1"); st != store.Deleted {
		t.Errorf("state %s", st)
	}
	if _, err := f.st.OpenQuarantineBody(ctx, "q1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("body after delete: %v", err)
	}
	if err := m.Delete(ctx, "q1", "alice", "again"); !errors.Is(err, quarantine.ErrState) {
		t.Errorf("deleting twice: %v", err)
	}
	if _, err := m.Release(ctx, "q1", "alice"); !errors.Is(err, quarantine.ErrState) {
		t.Errorf("releasing a deleted item: %v", err)
	}
	v, err = m.Show(ctx, "q1")
	if err != nil || v.Header != "" {
		t.Errorf("show deleted: %+v, %v", v, err)
	}
	if got := f.actions(t, "q1"); got != "quarantine.delete by alice" {
		t.Errorf("audit: %s", got)
	}
}

func TestExpireByRetention(t *testing.T) {
	f := newFixture(t)
	m := f.manager(quarantine.Config{Retention: governance.Duration(7 * 24 * time.Hour)})
	ctx := ctxFor(t)
	f.hold(t, "old", t0.Add(-8*24*time.Hour))
	f.hold(t, "new", t0.Add(-24*time.Hour))
	n, err := m.Expire(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Expire: %d, %v", n, err)
	}
	if _, err := f.st.GetQuarantine(ctx, "old"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("old item: %v", err)
	}
	if _, err := f.st.GetQuarantine(ctx, "new"); err != nil {
		t.Errorf("new item: %v", err)
	}
	evs, _, _ := f.log.List(ctx, audit.Filter{Action: string(audit.QuarantineExpire)})
	if len(evs) != 1 || evs[0].Actor != audit.SystemActor || !strings.Contains(string(evs[0].After), `"removed":1`) {
		t.Errorf("audit: %+v", evs)
	}
	if n, err := m.Expire(ctx); err != nil || n != 0 {
		t.Errorf("second Expire: %d, %v", n, err)
	}
	if evs, _, _ := f.log.List(ctx, audit.Filter{Action: string(audit.QuarantineExpire)}); len(evs) != 1 {
		t.Errorf("an empty run was audited")
	}
}

// decodeBody parses a notification and returns its header and decoded
// text.
func decodeBody(t *testing.T, data []byte) (*mail.Message, string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not an RFC 5322 message: %v\n%s", err, data)
	}
	if msg.Header.Get("Content-Transfer-Encoding") != "quoted-printable" || msg.Header.Get("Auto-Submitted") != "auto-generated" {
		t.Errorf("header: %v", msg.Header)
	}
	for _, line := range strings.Split(string(data), "\r\n") {
		if len(line) > 78 {
			t.Errorf("line of %d characters: %q", len(line), line)
		}
	}
	b, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	return msg, string(b)
}

func TestDigest(t *testing.T) {
	f := newFixture(t)
	ctx := ctxFor(t)
	n := quarantine.NewNotifier(f.st, quarantine.NotifierOptions{Deliverer: f.relay, DefaultFrom: "postmaster@inbound.example", Now: f.clock.Now, Logger: quiet})
	f.hold(t, "q1", t0.Add(-2*time.Hour), "orders@inbound.example")
	f.hold(t, "q2", t0.Add(-time.Hour), "orders@inbound.example", "ap@inbound.example")
	f.hold(t, "q3", t0.Add(-time.Hour))
	if err := f.st.UpdateQuarantineState(ctx, "q3", store.Held, store.Released, "bob"); err != nil {
		t.Fatal(err)
	}

	rep, err := n.SendDigests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Recipients != 2 || rep.Items != 3 || len(rep.Failed) != 0 {
		t.Errorf("report %+v", rep)
	}
	byRcpt := map[string]pipelinetest.Received{}
	for _, m := range f.sink.Messages() {
		byRcpt[m.Rcpts[0]] = m
		if m.MailFrom != "" {
			t.Errorf("digest sent with MAIL FROM <%s>, want the null reverse-path", m.MailFrom)
		}
	}
	orders, ok := byRcpt["orders@inbound.example"]
	if !ok || len(byRcpt) != 2 {
		t.Fatalf("digests to %v", byRcpt)
	}
	msg, text := decodeBody(t, orders.Data)
	if got := msg.Header.Get("Subject"); got != "Quarantine digest: 2 new messages held for orders@inbound.example" {
		t.Errorf("subject %q", got)
	}
	if got := msg.Header.Get("To"); got != "<orders@inbound.example>" {
		t.Errorf("to %q", got)
	}
	for _, want := range []string{
		"1. From:     Partner Orders <orders@partner.example>", "Subject:  PO 4711", "Id:       q1", "Id:       q2",
		"validly DKIM-signed by mailprovider.example, which is not partner.example", "2026-06-01 07:00 UTC",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("digest lacks %q:\n%s", want, text)
		}
	}
	if strings.Index(text, "Id:       q1") > strings.Index(text, "Id:       q2") {
		t.Errorf("items not oldest first")
	}
	if strings.Contains(text, "q3") {
		t.Errorf("released item in the digest")
	}
	_, apText := decodeBody(t, byRcpt["ap@inbound.example"].Data)
	if !strings.Contains(apText, "Id:       q2") || strings.Contains(apText, "q1") {
		t.Errorf("ap digest:\n%s", apText)
	}

	// Once per item: nothing new, nothing sent.
	if rep, err := n.SendDigests(ctx); err != nil || rep.Recipients != 0 {
		t.Errorf("second run: %+v, %v", rep, err)
	}
	f.hold(t, "q4", t0, "orders@inbound.example")
	rep, err = n.SendDigests(ctx)
	if err != nil || rep.Recipients != 1 || rep.Items != 1 {
		t.Errorf("third run: %+v, %v", rep, err)
	}
	last := f.sink.Messages()[f.sink.Count()-1]
	_, text = decodeBody(t, last.Data)
	if !strings.Contains(text, "1 new message addressed to orders@inbound.example was held") || !strings.Contains(text, "Id:       q4") || strings.Contains(text, "q1") {
		t.Errorf("third digest:\n%s", text)
	}

	// A failing downstream: reported again next time.
	f.hold(t, "q5", t0, "orders@inbound.example")
	f.sink.SetMode(pipelinetest.TempFail)
	rep, err = n.SendDigests(ctx)
	if err != nil || len(rep.Failed) != 1 {
		t.Errorf("failing run: %+v, %v", rep, err)
	}
	f.sink.SetMode(pipelinetest.Accept)
	if rep, err := n.SendDigests(ctx); err != nil || rep.Items != 1 {
		t.Errorf("after the failure: %+v, %v", rep, err)
	}

	// Disabled: an audited change, and nothing is sent.
	if _, _, err := quarantine.UpdateSettings(ctx, f.log, roles, "alice", func(s *quarantine.Settings) error { s.DigestEnabled = false; return nil }); !errors.Is(err, governance.ErrForbidden) {
		t.Errorf("operator disabling digests: %v", err)
	}
	before, after, err := quarantine.UpdateSettings(ctx, f.log, roles, "bob", func(s *quarantine.Settings) error { s.DigestEnabled = false; return nil })
	if err != nil || !before.DigestEnabled || after.DigestEnabled {
		t.Fatalf("disable: %+v → %+v, %v", before, after, err)
	}
	if err := n.ReloadSettings(ctx); err != nil {
		t.Fatal(err)
	}
	f.hold(t, "q6", t0, "orders@inbound.example")
	count := f.sink.Count()
	if rep, err := n.SendDigests(ctx); err != nil || rep.Recipients != 0 || f.sink.Count() != count {
		t.Errorf("disabled digests sent: %+v, %v", rep, err)
	}
	evs, _, _ := f.log.List(ctx, audit.Filter{Action: string(audit.NotificationsChange)})
	if len(evs) != 1 || evs[0].Actor != "bob" || evs[0].Before != nil || !strings.Contains(string(evs[0].After), `"digest_enabled":false`) {
		t.Errorf("audit of the change: %+v", evs)
	}
}

func TestAlerts(t *testing.T) {
	f := newFixture(t)
	ctx := ctxFor(t)
	if _, _, err := quarantine.UpdateSettings(ctx, f.log, nil, "bob", func(s *quarantine.Settings) error {
		s.Owners = map[string]string{"procurement": "procurement@inbound.example"}
		s.Watch = []quarantine.Watch{{Domain: "partner.example", Owner: "procurement", Note: "purchase orders"}}
		s.AlertCooldown = governance.Duration(10 * time.Minute)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	n := quarantine.NewNotifier(f.st, quarantine.NotifierOptions{Deliverer: f.relay, DefaultFrom: "postmaster@inbound.example", Now: f.clock.Now, Logger: quiet})
	if err := n.ReloadSettings(ctx); err != nil {
		t.Fatal(err)
	}
	rec := partnerRecord("e1", t0)
	n.OnDecision(ctx, *rec)
	delivered := *partnerRecord("e2", t0)
	delivered.Decision.Action = evidence.Deliver
	n.OnDecision(ctx, delivered)
	other := *partnerRecord("e3", t0)
	other.HeaderFrom, other.Envelope.MailFrom = "x@elsewhere.example", "x@elsewhere.example"
	n.OnDecision(ctx, other)
	if sent := n.SendAlerts(ctx); sent != 1 {
		t.Fatalf("%d alerts sent, want 1", sent)
	}
	m := f.sink.Messages()[0]
	if m.Rcpts[0] != "procurement@inbound.example" {
		t.Errorf("alert to %v", m.Rcpts)
	}
	msg, text := decodeBody(t, m.Data)
	if got := msg.Header.Get("Subject"); got != "Portcullis alert: mail from partner.example quarantined" {
		t.Errorf("subject %q", got)
	}
	for _, want := range []string{"Evidence: e1", "Subject:  PO 4711", "client 198.51.100.25", "mailprovider.example", "purchase orders", "portcullis quarantine release e1"} {
		if !strings.Contains(text, want) {
			t.Errorf("alert lacks %q:\n%s", want, text)
		}
	}
	// Within the cooldown: folded, then summarized once it passed.
	rej := *partnerRecord("e4", t0)
	rej.Decision.Action = evidence.Reject
	rej.HeaderFrom = "ceo@sub.partner.example"
	n.OnDecision(ctx, rej)
	n.OnDecision(ctx, rej)
	if sent := n.SendAlerts(ctx); sent != 0 {
		t.Errorf("%d alerts within the cooldown", sent)
	}
	f.clock.Advance(11 * time.Minute)
	if sent := n.SendAlerts(ctx); sent != 1 {
		t.Errorf("%d summaries after the cooldown, want 1", sent)
	}
	_, text = decodeBody(t, f.sink.Messages()[1].Data)
	if !strings.Contains(text, "2 more messages from partner.example") {
		t.Errorf("summary:\n%s", text)
	}
	// Disabled: nothing is queued.
	if _, _, err := quarantine.UpdateSettings(ctx, f.log, nil, "bob", func(s *quarantine.Settings) error { s.AlertsEnabled = false; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := n.ReloadSettings(ctx); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Hour)
	n.OnDecision(ctx, *rec)
	if sent := n.SendAlerts(ctx); sent != 0 {
		t.Errorf("%d alerts while disabled", sent)
	}
}

func TestExpiryWarnings(t *testing.T) {
	f := newFixture(t)
	ctx := ctxFor(t)
	svc, err := governance.New(f.log, governance.Config{}, &governance.Options{Now: f.clock.Now, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RequestException(ctx, governance.ExceptionRequest{ID: "partner-po", FromDomains: []string{"partner.example"},
		Binding: policy.Binding{DKIMDomains: []string{"mailprovider.example"}}, Owner: "procurement", Justification: "POs",
		Expires: t0.Add(20 * 24 * time.Hour)}, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Approve(ctx, governance.KindException, "partner-po", "bob"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := quarantine.UpdateSettings(ctx, f.log, nil, "bob", func(s *quarantine.Settings) error {
		s.AdminAddress = "postmaster@inbound.example"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	n := quarantine.NewNotifier(f.st, quarantine.NotifierOptions{Deliverer: f.relay, Governance: svc, Now: f.clock.Now, Logger: quiet})
	if err := n.ReloadSettings(ctx); err != nil {
		t.Fatal(err)
	}
	if sent, err := n.SendExpiryWarnings(ctx); err != nil || sent != 0 {
		t.Errorf("20 days ahead: %d, %v", sent, err)
	}
	f.clock.Advance(10 * 24 * time.Hour)
	if sent, err := n.SendExpiryWarnings(ctx); err != nil || sent != 1 {
		t.Fatalf("10 days ahead: %d, %v", sent, err)
	}
	if sent, err := n.SendExpiryWarnings(ctx); err != nil || sent != 0 {
		t.Errorf("warned twice: %d, %v", sent, err)
	}
	m := f.sink.Messages()[0]
	msg, text := decodeBody(t, m.Data)
	if m.Rcpts[0] != "postmaster@inbound.example" || !strings.Contains(msg.Header.Get("Subject"), "exception partner-po expires on 2026-06-21") ||
		!strings.Contains(text, "portcullis exception renew partner-po") {
		t.Errorf("warning to %v: %s\n%s", m.Rcpts, msg.Header.Get("Subject"), text)
	}
}

func TestSettingsValidation(t *testing.T) {
	for _, s := range []quarantine.Settings{
		{DigestInterval: governance.Duration(500 * time.Millisecond)},
		{DigestInterval: governance.Duration(time.Hour), From: "not an address"},
		{DigestInterval: governance.Duration(time.Hour), Owners: map[string]string{"x": "a\r\nBcc: evil@x"}},
		{DigestInterval: governance.Duration(time.Hour), Watch: []quarantine.Watch{{Domain: "partner.example"}}},
		{DigestInterval: governance.Duration(time.Hour), Watch: []quarantine.Watch{{Domain: "a b", Owner: "x"}}},
	} {
		if err := s.Validate(); !errors.Is(err, governance.ErrInvalid) {
			t.Errorf("Validate(%+v): %v", s, err)
		}
	}
	d := quarantine.DefaultSettings()
	if err := d.Validate(); err != nil || len(d.Disabled()) != 0 {
		t.Errorf("defaults: %v, disabled %v", err, d.Disabled())
	}
}

func TestVerdictInWords(t *testing.T) {
	rec := partnerRecord("x", t0)
	got := quarantine.VerdictInWords(rec)
	want := "Quarantined: the message claims to come from partner.example, but neither SPF nor DKIM authenticated partner.example: " +
		"partner.example has no SPF record; it is validly DKIM-signed by mailprovider.example, which is not partner.example. " +
		"partner.example publishes a DMARC policy asking receivers to treat as suspicious such mail (p=quarantine). (Rule dmarc-quarantine, owner email-security.)"
	if got != want {
		t.Errorf("VerdictInWords:\n got %s\nwant %s", got, want)
	}
	id := "partner-po"
	rec.Decision = evidence.Decision{Action: evidence.Deliver, Rule: policy.RuleException, Exception: &id, Owner: "procurement"}
	if got := quarantine.VerdictInWords(rec); !strings.HasPrefix(got, "Delivered by exception partner-po") || !strings.Contains(got, "owned by procurement") {
		t.Errorf("exception: %s", got)
	}
	if got := quarantine.VerdictInWords(nil); got == "" {
		t.Error("nil record")
	}
	rec.Decision = evidence.Decision{Action: evidence.Reject, Rule: "structure-no-from", Reason: "the message has no From field"}
	if got := quarantine.VerdictInWords(rec); got != "Rejected: the message has no From field. (Rule structure-no-from, owner email-security.)" {
		t.Errorf("structure: %s", got)
	}
}

// A digest for many items lists MaxDigestItems and counts the rest.
func TestDigestBounded(t *testing.T) {
	f := newFixture(t)
	ctx := ctxFor(t)
	n := quarantine.NewNotifier(f.st, quarantine.NotifierOptions{Deliverer: f.relay, MaxDigestItems: 3, Now: f.clock.Now, Logger: quiet})
	for i := range 5 {
		f.hold(t, fmt.Sprintf("q%d", i), t0.Add(-time.Duration(i)*time.Minute))
	}
	if rep, err := n.SendDigests(ctx); err != nil || rep.Items != 5 {
		t.Fatalf("%+v, %v", rep, err)
	}
	_, text := decodeBody(t, f.sink.Messages()[0].Data)
	if !strings.Contains(text, "5 new messages") || !strings.Contains(text, "... and 2 more.") || strings.Contains(text, "4. From") {
		t.Errorf("digest:\n%s", text)
	}
}
