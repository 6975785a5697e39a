package pipeline_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"portcullis/internal/analysis"
	"portcullis/internal/authres"
	"portcullis/internal/evidence"
	"portcullis/internal/message"
	"portcullis/internal/pipeline"
	"portcullis/internal/pipeline/pipelinetest"
	"portcullis/internal/policy"
	"portcullis/internal/relay"
	"portcullis/internal/store"
	"portcullis/internal/store/sqlite"
)

const servID = "mx.inbound.example"

// harness is a pipeline over the lab zone, a SQLite store in a temporary
// directory and a Deliverer the test chooses.
type harness struct {
	lab   *pipelinetest.Lab
	store *faultStore
	pipe  *pipeline.Pipeline
	obs   *recorder
}

type recorder struct {
	mu   sync.Mutex
	outs []pipeline.Outcome
}

func (r *recorder) Observe(_ *pipeline.Transaction, out *pipeline.Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outs = append(r.outs, *out)
}

// faultStore wraps the SQLite store to make PutQuarantine fail on demand.
type faultStore struct {
	store.Store
	failQuarantine bool
}

func (f *faultStore) PutQuarantine(ctx context.Context, it *store.QuarantineItem, body io.Reader) error {
	if f.failQuarantine {
		return store.ErrUnavailable
	}
	return f.Store.PutQuarantine(ctx, it, body)
}

func newHarness(t testing.TB, d pipeline.Deliverer, mutate ...func(*policy.Policy)) *harness {
	t.Helper()
	lab := pipelinetest.NewLab(t)
	a, err := analysis.New(analysis.Config{AuthServID: servID, Resolver: lab.Zone, CheckTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	pol := policy.Default()
	pol.OwnDomain.Domains = []string{pipelinetest.ProtectedDomain}
	for _, m := range mutate {
		m(pol)
	}
	fs := &faultStore{Store: st}
	obs := &recorder{}
	p, err := pipeline.New(pipeline.Config{
		Analyzer: a, Policies: &policy.Set{Default: *pol}, Store: fs, Deliverer: d,
		AuthServID: servID, TrustedServIDs: []string{"filter.upstream.example"},
		ConfigVersion: "sha256:test", Observer: obs,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{lab: lab, store: fs, pipe: p, obs: obs}
}

func (h *harness) tx(msg []byte, mailFrom string, rcpts ...string) *pipeline.Transaction {
	if len(rcpts) == 0 {
		rcpts = []string{"rcpt@" + pipelinetest.RecipientDomain}
	}
	return &pipeline.Transaction{
		Listener: "mx", Path: pipeline.PathSMTP, ReceivedAt: time.Now(),
		ClientIP: netip.MustParseAddr("192.0.2.10"), HELO: "mail.good.example",
		MailFrom: mailFrom, RcptTo: rcpts, Message: msg,
		Trace: []string{"Received: from mail.good.example ([192.0.2.10])\r\n\tby mx.inbound.example with ESMTP id test;\r\n\tThu, 1 Jan 2026 00:00:00 +0000\r\n"},
	}
}

// evidenceOf flushes the store and reads the outcome's record.
func (h *harness) evidenceOf(t *testing.T, id string) *evidence.Record {
	t.Helper()
	if err := h.store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec, err := h.store.GetEvidence(context.Background(), id)
	if err != nil {
		t.Fatalf("evidence %s: %v", id, err)
	}
	return rec
}

// capture is a Deliverer that keeps what it is given and answers res.
type capture struct {
	mu    sync.Mutex
	got   []*pipeline.Delivery
	res   relay.Result
	panic bool
}

func (c *capture) Deliver(_ context.Context, d *pipeline.Delivery) relay.Result {
	if c.panic {
		panic("deliverer exploded")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, d)
	res := c.res
	if res.Rcpts == nil {
		for _, r := range d.Tx.RcptTo {
			res.Rcpts = append(res.Rcpts, relay.RcptResult{Rcpt: r, Status: res.Status, Reply: res.Reply})
		}
	}
	return res
}

func accepted() relay.Result {
	return relay.Result{Status: relay.StatusAccepted, Host: "mailbox:25", Reply: relay.Reply{Code: 250, Enhanced: relay.EnhancedCode{2, 0, 0}, Text: "Ok: queued", Remote: true}}
}

func wantReply(t *testing.T, out pipeline.Outcome, code int, enhanced string) {
	t.Helper()
	if out.Reply.Code != code || (enhanced != "" && out.Reply.Enhanced != enhanced) {
		t.Fatalf("reply %q, want %d %s (rule %s, err %v)", out.Reply, code, enhanced, out.Rule, out.Err)
	}
	if !strings.HasSuffix(out.Reply.Text, "["+out.ID+"]") {
		t.Errorf("reply %q does not end with the evidence id %s", out.Reply, out.ID)
	}
}

func TestSpoofOfProtectedDomainRejected(t *testing.T) {
	c := &capture{res: accepted()}
	h := newHarness(t, c)
	msg := h.lab.Build(t, pipelinetest.Msg{From: "ceo@" + pipelinetest.ProtectedDomain, Subject: "wire transfer"})
	out := h.pipe.Process(context.Background(), h.tx(msg, "x@"+pipelinetest.AttackerDomain))
	wantReply(t, out, 550, "")
	if !strings.HasPrefix(out.Reply.Enhanced, "5.7.") || out.Rule != policy.RuleOwnDomain || out.Action != evidence.Reject {
		t.Errorf("outcome %s %s %q", out.Action, out.Rule, out.Reply)
	}
	if len(c.got) != 0 {
		t.Error("a rejected message was delivered")
	}
	rec := h.evidenceOf(t, out.ID)
	if rec.Decision.Action != evidence.Reject || rec.Decision.Rule != policy.RuleOwnDomain || rec.ConfigVersion != "sha256:test" ||
		rec.Decision.SMTPReply != out.Reply.String() || rec.Path != "smtp" || rec.Listener != "mx" {
		t.Errorf("record %+v", rec.Decision)
	}
}

func TestDeliverStripsForgedAndPrependsOurs(t *testing.T) {
	c := &capture{res: accepted()}
	h := newHarness(t, c)
	forged := "Authentication-Results: " + servID + "; dmarc=pass header.from=good.example"
	forged2 := "Authentication-Results: MX.Inbound.Example.; spf=pass smtp.mailfrom=good.example"
	trusted := "Authentication-Results: filter.upstream.example; spf=pass smtp.mailfrom=good.example"
	other := "Authentication-Results: elsewhere.example; dkim=pass header.d=good.example"
	msg := h.lab.Build(t, pipelinetest.Msg{
		From: "alice@" + pipelinetest.GoodDomain, Subject: "hello", Sign: pipelinetest.GoodDomain,
		Extra: []string{trusted, forged, other, forged2},
	})
	out := h.pipe.Process(context.Background(), h.tx(msg, "alice@"+pipelinetest.GoodDomain))
	wantReply(t, out, 250, "2.0.0")
	if out.Action != evidence.Deliver || out.Rule != policy.RuleDMARCPass {
		t.Fatalf("outcome %s %s", out.Action, out.Rule)
	}
	if len(c.got) != 1 {
		t.Fatalf("%d deliveries", len(c.got))
	}
	h2, err := message.ReadHeader(bufio.NewReader(bytes.NewReader(c.got[0].Message)), message.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !h2.Fields[0].Is("Received") || !h2.Fields[1].Is(authres.FieldName) {
		t.Fatalf("top fields %s, %s", h2.Fields[0].Name, h2.Fields[1].Name)
	}
	ours, err := authres.Parse(h2.Fields[1].Value())
	if err != nil || ours.ServID != servID || len(ours.ResultsFor("dmarc")) != 1 || ours.ResultsFor("dmarc")[0].Value != "pass" {
		t.Fatalf("our field %q: %v", h2.Fields[1].Value(), err)
	}
	var servIDs []string
	for _, f := range h2.All(authres.FieldName) {
		a, err := authres.Parse(f.Value())
		if err != nil {
			t.Fatal(err)
		}
		servIDs = append(servIDs, a.ServID)
	}
	if got := strings.Join(servIDs, ","); got != servID+",filter.upstream.example,elsewhere.example" {
		t.Errorf("Authentication-Results kept: %s", got)
	}
	// The body is untouched, so the DKIM signature still verifies downstream.
	if !bytes.HasSuffix(c.got[0].Message, msg[bytes.Index(msg, []byte("\r\n\r\n")):]) {
		t.Error("body changed")
	}
	ch := out.Changes
	if ch == nil || len(ch.Removed) != 2 || len(ch.Added) != 2 {
		t.Fatalf("changes %+v", ch)
	}
	// The forged fields are the 2nd and 4th Authentication-Results.
	if ch.Removed[0].Occurrence != 2 || ch.Removed[1].Occurrence != 4 || ch.Removed[0].Reason != "remove-forged" ||
		ch.Removed[0].Position != 2 || ch.Removed[1].Position != 4 {
		t.Errorf("removed %+v", ch.Removed)
	}
	if ch.Added[1].Name != authres.FieldName || ch.Added[1].Value != h2.Fields[1].Value()[1:] {
		t.Errorf("added %+v", ch.Added[1])
	}
	rec := h.evidenceOf(t, out.ID)
	if rec.Decision.Action != evidence.Deliver || rec.Delivery == nil || rec.Delivery.Status != "accepted" ||
		rec.Delivery.Host != "mailbox:25" || rec.AuthenticationResults == "" {
		t.Errorf("record %+v delivery %+v", rec.Decision, rec.Delivery)
	}
	if len(h.obs.outs) != 1 || h.obs.outs[0].ID != out.ID {
		t.Errorf("observer saw %d outcomes", len(h.obs.outs))
	}
}

func TestQuarantineDurableBefore250(t *testing.T) {
	c := &capture{res: accepted()}
	h := newHarness(t, c)
	msg := h.lab.Build(t, pipelinetest.Msg{From: "bob@" + pipelinetest.QuarantineDomain, Subject: "invoice"})
	out := h.pipe.Process(context.Background(), h.tx(msg, "bob@"+pipelinetest.AttackerDomain))
	wantReply(t, out, 250, "")
	if out.Action != evidence.Quarantine || len(c.got) != 0 {
		t.Fatalf("outcome %s, %d deliveries", out.Action, len(c.got))
	}
	// No Flush: the record and the item are durable already.
	rec, err := h.store.GetEvidence(context.Background(), out.ID)
	if err != nil || rec.Decision.Action != evidence.Quarantine {
		t.Fatalf("evidence %v %v", rec, err)
	}
	it, err := h.store.GetQuarantine(context.Background(), out.ID)
	if err != nil || it.State != store.Held || !strings.HasPrefix(it.Reason, policy.RuleDMARCQuarantine) {
		t.Fatalf("item %+v %v", it, err)
	}
	rc, err := h.store.OpenQuarantineBody(context.Background(), out.ID)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Contains(body, []byte("Authentication-Results: "+servID)) || !bytes.HasSuffix(body, msg[bytes.Index(msg, []byte("\r\n\r\n")):]) {
		t.Fatalf("body %q %v", body, err)
	}
}

func TestQuarantineFailureDefers(t *testing.T) {
	h := newHarness(t, &capture{res: accepted()})
	h.store.failQuarantine = true
	msg := h.lab.Build(t, pipelinetest.Msg{From: "bob@" + pipelinetest.QuarantineDomain})
	out := h.pipe.Process(context.Background(), h.tx(msg, "bob@"+pipelinetest.AttackerDomain))
	wantReply(t, out, 451, "4.3.0")
	if out.Rule != pipeline.RuleQuarantineFailed || !errors.Is(out.Err, store.ErrUnavailable) {
		t.Errorf("rule %s err %v", out.Rule, out.Err)
	}
	if strings.Contains(out.Reply.Text, "unavailable") {
		t.Errorf("reply echoes the error: %q", out.Reply.Text)
	}
	rec := h.evidenceOf(t, out.ID)
	if rec.Decision.Action != evidence.Defer || rec.Decision.Rule != pipeline.RuleQuarantineFailed || rec.Decision.Overrides != policy.RuleDMARCQuarantine {
		t.Errorf("record %+v", rec.Decision)
	}
}

func TestDownstreamReplies(t *testing.T) {
	rcpts := []string{"a@" + pipelinetest.RecipientDomain, "b@" + pipelinetest.RecipientDomain}
	temp := relay.Reply{Code: 421, Enhanced: relay.EnhancedCode{4, 3, 2}, Text: "busy", Remote: true}
	perm := relay.Reply{Code: 550, Enhanced: relay.EnhancedCode{5, 1, 1}, Text: "no such user\x00 here", Remote: true}
	ok := relay.Reply{Code: 250, Enhanced: relay.EnhancedCode{2, 0, 0}, Text: "ok", Remote: true}
	unreachable := relay.Result{Status: relay.StatusTemporary, Err: relay.ErrUnreachable,
		Reply: relay.Reply{Code: 451, Enhanced: relay.EnhancedCode{4, 4, 1}, Text: "connection refused"}}
	cases := []struct {
		name       string
		res        relay.Result
		code       int
		enh        string
		action     evidence.Action
		rule       string
		textSubstr string
	}{
		{"unreachable", unreachable, 451, "4.4.1", evidence.Defer, pipeline.RuleDownstreamTemporary, "temporarily"},
		{"remote 4xx", relay.Result{Status: relay.StatusTemporary, Reply: temp}, 451, "4.3.2", evidence.Defer, pipeline.RuleDownstreamTemporary, ""},
		{"remote 5xx", relay.Result{Status: relay.StatusPermanent, Reply: perm}, 550, "5.1.1", evidence.Reject, pipeline.RuleDownstreamPermanent, "no such user here"},
		{"partial temporary", relay.Result{Status: relay.StatusTemporary, Reply: temp, Rcpts: []relay.RcptResult{
			{Rcpt: rcpts[0], Status: relay.StatusAccepted, Reply: ok}, {Rcpt: rcpts[1], Status: relay.StatusTemporary, Reply: temp}}},
			451, "4.3.2", evidence.Defer, pipeline.RuleDownstreamTemporary, ""},
		{"partial permanent", relay.Result{Status: relay.StatusAccepted, Reply: ok, Rcpts: []relay.RcptResult{
			{Rcpt: rcpts[0], Status: relay.StatusAccepted, Reply: ok}, {Rcpt: rcpts[1], Status: relay.StatusPermanent, Reply: perm}}},
			550, "5.1.1", evidence.Deliver, policy.RuleDMARCPass, "accepted for the other 1"},
	}
	c := &capture{}
	h := newHarness(t, c)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.res = tc.res
			msg := h.lab.Build(t, pipelinetest.Msg{From: "alice@" + pipelinetest.GoodDomain, Sign: pipelinetest.GoodDomain})
			out := h.pipe.Process(context.Background(), h.tx(msg, "alice@"+pipelinetest.GoodDomain, rcpts...))
			wantReply(t, out, tc.code, tc.enh)
			if out.Action != tc.action || out.Rule != tc.rule || !strings.Contains(out.Reply.Text, tc.textSubstr) {
				t.Errorf("%s %s %q", out.Action, out.Rule, out.Reply)
			}
			rec := h.evidenceOf(t, out.ID)
			if rec.Decision.Action != tc.action || rec.Delivery == nil || rec.Decision.SMTPReply != out.Reply.String() {
				t.Errorf("record %+v %+v", rec.Decision, rec.Delivery)
			}
			if tc.action != evidence.Deliver && rec.Decision.Overrides != policy.RuleDMARCPass {
				t.Errorf("overrides %q", rec.Decision.Overrides)
			}
		})
	}
}

// panicky is an Analyzer that panics.
type panicky struct{}

func (panicky) Run(context.Context, analysis.Input) *analysis.Verdict { panic("analysis exploded") }

func TestPanicsAre451(t *testing.T) {
	c := &capture{res: accepted(), panic: true}
	h := newHarness(t, c)
	msg := h.lab.Build(t, pipelinetest.Msg{From: "alice@" + pipelinetest.GoodDomain, Sign: pipelinetest.GoodDomain})
	out := h.pipe.Process(context.Background(), h.tx(msg, "alice@"+pipelinetest.GoodDomain))
	wantReply(t, out, 451, "4.3.0")
	if out.Rule != pipeline.RuleInternalError || !errors.Is(out.Err, pipeline.ErrPanic) || strings.Contains(out.Reply.Text, "exploded") {
		t.Errorf("%s %v %q", out.Rule, out.Err, out.Reply)
	}
	rec := h.evidenceOf(t, out.ID)
	if rec.Decision.Action != evidence.Defer || rec.Decision.Rule != pipeline.RuleInternalError || rec.Decision.Overrides != policy.RuleDMARCPass {
		t.Errorf("record %+v", rec.Decision)
	}

	st, err := sqlite.Open(context.Background(), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p, err := pipeline.New(pipeline.Config{Analyzer: panicky{}, Store: st, Deliverer: c, AuthServID: servID})
	if err != nil {
		t.Fatal(err)
	}
	out = p.Process(context.Background(), h.tx(msg, "alice@"+pipelinetest.GoodDomain))
	wantReply(t, out, 451, "4.3.0")
	if err := st.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rec, err := st.GetEvidence(context.Background(), out.ID); err != nil || rec.Decision.Rule != pipeline.RuleInternalError {
		t.Errorf("record %v %v", rec, err)
	}
}

func TestDNSTimeoutDefers(t *testing.T) {
	c := &capture{res: accepted()}
	h := newHarness(t, c)
	msg := h.lab.Build(t, pipelinetest.Msg{From: "x@" + pipelinetest.SlowDomain})
	out := h.pipe.Process(context.Background(), h.tx(msg, "x@"+pipelinetest.SlowDomain))
	wantReply(t, out, 451, "")
	if out.Action != evidence.Defer || out.Rule != policy.RuleDMARCTempError || len(c.got) != 0 {
		t.Errorf("%s %s %d deliveries", out.Action, out.Rule, len(c.got))
	}
}

func TestTransactionIDs(t *testing.T) {
	h := newHarness(t, &capture{res: accepted()})
	msg := h.lab.Build(t, pipelinetest.Msg{From: "alice@" + pipelinetest.GoodDomain, Sign: pipelinetest.GoodDomain})
	tx := h.tx(msg, "alice@"+pipelinetest.GoodDomain)
	tx.ID = "ABCDEF-1"
	if out := h.pipe.Process(context.Background(), tx); out.ID != "ABCDEF-1" {
		t.Errorf("id %s", out.ID)
	}
	tx.ID = "../etc/passwd"
	out := h.pipe.Process(context.Background(), tx)
	wantReply(t, out, 451, "4.3.0")
	if !errors.Is(out.Err, pipeline.ErrTransaction) || out.ID == tx.ID {
		t.Errorf("%v %s", out.Err, out.ID)
	}
	out = h.pipe.Process(context.Background(), nil)
	wantReply(t, out, 451, "4.3.0")
}

func TestMilterDelivererAndLMTPPartial(t *testing.T) {
	sink := pipelinetest.StartSink(t, "", true, true)
	d, err := relay.NewSMTP(relay.SMTPConfig{Hosts: []string{sink.Addr()}, LMTP: true, LocalName: "gw.lab.example"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	h := newHarness(t, pipeline.Relay(d))
	rcpts := []string{"ok@" + pipelinetest.RecipientDomain, "gone@" + pipelinetest.RecipientDomain}
	sink.SetRcptMode(rcpts[1], pipelinetest.Reject)
	msg := h.lab.Build(t, pipelinetest.Msg{From: "alice@" + pipelinetest.GoodDomain, Sign: pipelinetest.GoodDomain})
	out := h.pipe.Process(context.Background(), h.tx(msg, "alice@"+pipelinetest.GoodDomain, rcpts...))
	wantReply(t, out, 550, "5.7.1")
	if got := sink.Messages(); len(got) != 1 || len(got[0].Rcpts) != 1 || got[0].Rcpts[0] != rcpts[0] {
		t.Fatalf("sink got %+v", got)
	}
	rec := h.evidenceOf(t, out.ID)
	if rec.Decision.Action != evidence.Deliver || len(rec.Delivery.Rcpts) != 2 || rec.Delivery.Rcpts[1].Status != "permanent" {
		t.Errorf("record %+v %+v", rec.Decision, rec.Delivery)
	}

	sink.SetRcptMode(rcpts[1], pipelinetest.TempFail)
	out = h.pipe.Process(context.Background(), h.tx(msg, "alice@"+pipelinetest.GoodDomain, rcpts...))
	wantReply(t, out, 451, "")

	// The milter's Deliverer accepts at once: the MTA applies the changes.
	acc := pipeline.DelivererFunc(func(context.Context, *pipeline.Delivery) relay.Result {
		return relay.Result{Status: relay.StatusAccepted}
	})
	hm := newHarness(t, acc)
	tx := hm.tx(msg, "alice@"+pipelinetest.GoodDomain)
	tx.Path, tx.Trace, tx.QueueID = pipeline.PathMilter, nil, "4Zx1y2"
	out = hm.pipe.Process(context.Background(), tx)
	wantReply(t, out, 250, "")
	if len(out.Changes.Added) != 1 || out.Changes.Added[0].Name != authres.FieldName {
		t.Errorf("changes %+v", out.Changes)
	}
	if rec := hm.evidenceOf(t, out.ID); rec.QueueID != "4Zx1y2" || rec.Path != "milter" {
		t.Errorf("record path %q queue %q", rec.Path, rec.QueueID)
	}
}

// TestEvidenceAfterClientGone: the client's context ends once the
// downstream accepted the message; the record is still written.
func TestEvidenceAfterClientGone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	d := pipeline.DelivererFunc(func(context.Context, *pipeline.Delivery) relay.Result {
		cancel()
		return accepted()
	})
	h := newHarness(t, d)
	msg := h.lab.Build(t, pipelinetest.Msg{From: "alice@" + pipelinetest.GoodDomain, Sign: pipelinetest.GoodDomain})
	out := h.pipe.Process(ctx, h.tx(msg, "alice@"+pipelinetest.GoodDomain))
	wantReply(t, out, 250, "")
	if out.EvidenceErr != nil {
		t.Fatal(out.EvidenceErr)
	}
	if rec := h.evidenceOf(t, out.ID); rec.Decision.Action != evidence.Deliver {
		t.Errorf("record %+v", rec.Decision)
	}
}
