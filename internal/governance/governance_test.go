package governance_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"portcullis/internal/audit"
	"portcullis/internal/evidence"
	"portcullis/internal/governance"
	"portcullis/internal/policy"
	"portcullis/internal/store"
	"portcullis/internal/store/sqlite"
)

var t0 = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

// fakeClock is a settable clock.
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

func openStore(t testing.TB) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(ctxFor(t), t.TempDir(), &sqlite.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type fixture struct {
	st    *sqlite.Store
	log   *audit.Log
	svc   *governance.Service
	clock *fakeClock
}

func newFixture(t testing.TB, cfg governance.Config) *fixture {
	t.Helper()
	return newFixtureOn(t, openStore(t), cfg)
}

func newFixtureOn(t testing.TB, st *sqlite.Store, cfg governance.Config) *fixture {
	t.Helper()
	c := &fakeClock{now: t0}
	l, err := audit.New(st, &audit.Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := governance.New(l, cfg, &governance.Options{Now: c.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{st: st, log: l, svc: svc, clock: c}
}

var roles = governance.Config{Users: governance.Roles{"alice": governance.RoleOperator, "bob": governance.RoleAdmin, "carol": governance.RoleAdmin}}

// partnerRequest is the exception of the motivating case: the partner's
// mail is signed by its provider's DKIM domain.
func partnerRequest() governance.ExceptionRequest {
	return governance.ExceptionRequest{
		ID:            "partner-po",
		FromDomains:   []string{"Partner.Example."},
		Binding:       policy.Binding{DKIMDomains: []string{"mailprovider.example"}},
		Allow:         evidence.Deliver,
		Owner:         "procurement",
		Justification: "purchase orders; partner has no SPF and signs with its provider's domain",
		Ticket:        "CHG-1042",
		Expires:       t0.Add(30 * 24 * time.Hour),
	}
}

func TestRequestValidation(t *testing.T) {
	f := newFixture(t, governance.Config{MaxLifetime: governance.Duration(60 * 24 * time.Hour)})
	ctx := ctxFor(t)
	for _, c := range []struct {
		name string
		mod  func(*governance.ExceptionRequest)
		want string
	}{
		{"no binding", func(r *governance.ExceptionRequest) { r.Binding = policy.Binding{} }, "no binding"},
		{"no expiry", func(r *governance.ExceptionRequest) { r.Expires = time.Time{} }, "expiry is required"},
		{"expiry past", func(r *governance.ExceptionRequest) { r.Expires = t0.Add(-time.Hour) }, "not in the future"},
		{"beyond max", func(r *governance.ExceptionRequest) { r.Expires = t0.Add(61 * 24 * time.Hour) }, "maximum lifetime"},
		{"no from", func(r *governance.ExceptionRequest) { r.FromDomains = nil }, "From domain is required"},
		{"bad from", func(r *governance.ExceptionRequest) { r.FromDomains = []string{"not a domain"} }, "not a domain"},
		{"bad dkim", func(r *governance.ExceptionRequest) { r.Binding.DKIMDomains = []string{"-x-"} }, "DKIM domain"},
		{"no owner", func(r *governance.ExceptionRequest) { r.Owner = " " }, "owner is required"},
		{"no justification", func(r *governance.ExceptionRequest) { r.Justification = "" }, "justification is required"},
		{"allow reject", func(r *governance.ExceptionRequest) { r.Allow = evidence.Reject }, "not deliver or quarantine"},
		{"bad recipient", func(r *governance.ExceptionRequest) { r.Recipients = []string{"a b@c"} }, "recipient"},
		{"bad id", func(r *governance.ExceptionRequest) { r.ID = "../x" }, "id"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := partnerRequest()
			c.mod(&r)
			_, err := f.svc.RequestException(ctx, r, "alice")
			if !errors.Is(err, governance.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("RequestException: %v; want ErrInvalid mentioning %q", err, c.want)
			}
		})
	}
	if h, _ := f.log.Head(ctx); h.Seq != 0 {
		t.Errorf("refused requests were audited: head %d", h.Seq)
	}
	if _, err := f.svc.RequestException(ctx, partnerRequest(), "two words"); !errors.Is(err, governance.ErrInvalid) {
		t.Errorf("actor with a space: %v", err)
	}

	e, err := f.svc.RequestException(ctx, partnerRequest(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if e.State != governance.Requested || e.FromDomains[0] != "partner.example" || e.RequestedBy != "alice" || !e.RequestedAt.Equal(t0) {
		t.Errorf("requested: %+v", e)
	}
	if _, err := f.svc.RequestException(ctx, partnerRequest(), "alice"); !errors.Is(err, governance.ErrInvalid) {
		t.Errorf("same id twice: %v", err)
	}
	// Within the default maximum of 90 days, refused beyond.
	d := newFixture(t, governance.Config{})
	r := partnerRequest()
	r.ID, r.Expires = "", t0.Add(90*24*time.Hour)
	e, err = d.svc.RequestException(ctx, r, "alice")
	if err != nil || !strings.HasPrefix(e.ID, "exc-") {
		t.Errorf("90 days: %v, id %q", err, e.ID)
	}
	r.Expires = t0.Add(90*24*time.Hour + time.Second)
	if _, err := d.svc.RequestException(ctx, r, "alice"); !errors.Is(err, governance.ErrInvalid) {
		t.Errorf("90 days and a second: %v", err)
	}
}

func TestApprovalRules(t *testing.T) {
	f := newFixture(t, roles)
	ctx := ctxFor(t)
	if _, err := f.svc.RequestException(ctx, partnerRequest(), "mallory"); !errors.Is(err, governance.ErrForbidden) {
		t.Errorf("request by an unknown actor: %v", err)
	}
	if _, err := f.svc.RequestException(ctx, partnerRequest(), "alice"); err != nil {
		t.Fatal(err)
	}
	// alice is an operator: she cannot approve, least of all her own.
	if _, err := f.svc.Approve(ctx, governance.KindException, "partner-po", "alice"); !errors.Is(err, governance.ErrForbidden) {
		t.Errorf("operator approving: %v", err)
	}
	// An admin who requested cannot approve their own request.
	r := partnerRequest()
	r.ID = "bobs"
	if _, err := f.svc.RequestException(ctx, r, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Approve(ctx, governance.KindException, "bobs", "BOB"); !errors.Is(err, governance.ErrSelfApproval) {
		t.Errorf("self-approval: %v", err)
	}
	if _, err := f.svc.Approve(ctx, governance.KindException, "nope", "bob"); !errors.Is(err, governance.ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	l, err := f.svc.Approve(ctx, governance.KindException, "partner-po", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if l.State != governance.Active || l.ApprovedBy != "bob" || l.RequestedBy != "alice" {
		t.Errorf("approved: %+v", l)
	}
	if _, err := f.svc.Approve(ctx, governance.KindException, "partner-po", "carol"); !errors.Is(err, governance.ErrState) {
		t.Errorf("approving an active exception: %v", err)
	}
	if got := len(f.svc.Snapshot().Exceptions()); got != 1 {
		t.Errorf("snapshot holds %d active exceptions, want 1", got)
	}

	// A request whose expiry passed cannot be approved.
	r = partnerRequest()
	r.ID, r.Expires = "short", t0.Add(time.Hour)
	if _, err := f.svc.RequestException(ctx, r, "alice"); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(2 * time.Hour)
	if _, err := f.svc.Approve(ctx, governance.KindException, "short", "bob"); !errors.Is(err, governance.ErrExpired) {
		t.Errorf("approving an expired request: %v", err)
	}

	// Revoked: it stops applying, and cannot be approved or renewed.
	env := policy.Envelope{ReceivedAt: f.clock.Now(), RcptTo: []string{"orders@corp.example"}}
	if p := f.svc.PolicyFor(nil, env); len(p.Exceptions) != 1 {
		t.Fatalf("before revocation: %d exceptions", len(p.Exceptions))
	}
	if _, err := f.svc.Revoke(ctx, governance.KindException, "partner-po", "alice", ""); !errors.Is(err, governance.ErrInvalid) {
		t.Errorf("revocation without a reason: %v", err)
	}
	if _, err := f.svc.Revoke(ctx, governance.KindException, "partner-po", "alice", "partner fixed SPF"); err != nil {
		t.Fatal(err)
	}
	if p := f.svc.PolicyFor(nil, env); len(p.Exceptions) != 0 {
		t.Errorf("revoked exception still applies: %+v", p.Exceptions)
	}
	if _, err := f.svc.Revoke(ctx, governance.KindException, "partner-po", "bob", "again"); !errors.Is(err, governance.ErrState) {
		t.Errorf("revoking twice: %v", err)
	}
	if _, err := f.svc.Approve(ctx, governance.KindException, "partner-po", "carol"); !errors.Is(err, governance.ErrState) {
		t.Errorf("approving a revoked exception: %v", err)
	}
	if _, err := f.svc.Renew(ctx, governance.KindException, "partner-po", f.clock.Now().Add(24*time.Hour), "", "alice"); !errors.Is(err, governance.ErrState) {
		t.Errorf("renewing a revoked exception: %v", err)
	}
	e, err := f.svc.Exception(ctx, "partner-po")
	if err != nil || e.State != governance.Revoked || e.RevokedBy != "alice" || e.RevokeReason != "partner fixed SPF" {
		t.Errorf("revoked: %+v, %v", e, err)
	}
	// Every change is in the audit log, and the chain verifies.
	evs, _, err := f.log.List(ctx, audit.Filter{ObjectID: "partner-po"})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, ev := range evs {
		actions = append(actions, string(ev.Action)+" by "+ev.Actor)
	}
	want := "exception.request by alice, exception.approve by bob, exception.revoke by alice"
	if got := strings.Join(actions, ", "); got != want {
		t.Errorf("audit trail: %s; want %s", got, want)
	}
	var before, after governance.Exception
	if err := json.Unmarshal(evs[1].Before, &before); err != nil || before.State != governance.Requested {
		t.Errorf("approve event before: %s", evs[1].Before)
	}
	if err := json.Unmarshal(evs[1].After, &after); err != nil || after.State != governance.Active || after.ApprovedBy != "bob" {
		t.Errorf("approve event after: %s", evs[1].After)
	}
	if _, err := f.log.Verify(ctx); err != nil {
		t.Errorf("audit verify: %v", err)
	}
}

func TestRenewal(t *testing.T) {
	f := newFixture(t, roles)
	ctx := ctxFor(t)
	if _, err := f.svc.RequestException(ctx, partnerRequest(), "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Renew(ctx, governance.KindException, "partner-po", t0.Add(40*24*time.Hour), "", "alice"); !errors.Is(err, governance.ErrState) {
		t.Errorf("renewing a request never approved: %v", err)
	}
	if _, err := f.svc.Approve(ctx, governance.KindException, "partner-po", "bob"); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(25 * 24 * time.Hour)
	now := f.clock.Now()
	if _, err := f.svc.Renew(ctx, governance.KindException, "partner-po", now.Add(91*24*time.Hour), "", "alice"); !errors.Is(err, governance.ErrInvalid) {
		t.Errorf("renewal beyond the maximum: %v", err)
	}
	newExp := now.Add(60 * 24 * time.Hour)
	l, err := f.svc.Renew(ctx, governance.KindException, "partner-po", newExp, "still needed, see CHG-1100", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if l.Renewal == nil || !l.Expires.Equal(t0.Add(30*24*time.Hour)) {
		t.Errorf("pending renewal changed the expiry: %+v", l)
	}
	if _, err := f.svc.Renew(ctx, governance.KindException, "partner-po", newExp, "", "bob"); !errors.Is(err, governance.ErrState) {
		t.Errorf("second renewal while one is pending: %v", err)
	}
	// Not approved: the old expiry holds.
	f.clock.Advance(6 * 24 * time.Hour)
	env := policy.Envelope{ReceivedAt: f.clock.Now()}
	if p := f.svc.PolicyFor(nil, env); len(p.Exceptions) != 0 {
		t.Errorf("exception applies past its expiry while the renewal waits")
	}
	if _, err := f.svc.Approve(ctx, governance.KindException, "partner-po", "alice"); !errors.Is(err, governance.ErrForbidden) {
		t.Errorf("operator approving a renewal: %v", err)
	}
	// The renewal's requester may not approve it, even as an admin.
	if _, err := f.svc.Renew(ctx, governance.KindException, "partner-po", newExp, "", "alice"); !errors.Is(err, governance.ErrState) {
		t.Errorf("renewing again: %v", err)
	}
	l, err = f.svc.Approve(ctx, governance.KindException, "partner-po", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if l.State != governance.Active || !l.Expires.Equal(newExp) || l.Renewal != nil || len(l.Renewals) != 1 ||
		l.Renewals[0].ApprovedBy != "bob" || !l.Renewals[0].PreviousExpires.Equal(t0.Add(30*24*time.Hour)) {
		t.Errorf("renewed: %+v", l)
	}
	if p := f.svc.PolicyFor(nil, env); len(p.Exceptions) != 1 {
		t.Errorf("renewed exception does not apply")
	}

	// An admin's own renewal needs another admin.
	g := newFixture(t, roles)
	if _, err := g.svc.RequestException(ctx, partnerRequest(), "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.svc.Approve(ctx, governance.KindException, "partner-po", "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.svc.Renew(ctx, governance.KindException, "partner-po", t0.Add(50*24*time.Hour), "", "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.svc.Approve(ctx, governance.KindException, "partner-po", "bob"); !errors.Is(err, governance.ErrSelfApproval) {
		t.Errorf("self-approved renewal: %v", err)
	}
	if _, err := g.svc.Approve(ctx, governance.KindException, "partner-po", "carol"); err != nil {
		t.Errorf("renewal approved by another admin: %v", err)
	}
}

// Expiry applies at each decision, with a snapshot loaded before it, and
// ExpireDue records it.
func TestExpiryAtDecisionTime(t *testing.T) {
	f := newFixture(t, governance.Config{})
	ctx := ctxFor(t)
	r := partnerRequest()
	r.Expires = t0.Add(time.Hour)
	if _, err := f.svc.RequestException(ctx, r, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Approve(ctx, governance.KindException, "partner-po", "bob"); err != nil {
		t.Fatal(err)
	}
	sn := f.svc.Snapshot()
	if p := sn.Apply(nil, policy.Envelope{ReceivedAt: t0.Add(59 * time.Minute)}); len(p.Exceptions) != 1 {
		t.Errorf("a minute before expiry: %d exceptions", len(p.Exceptions))
	}
	if p := sn.Apply(nil, policy.Envelope{ReceivedAt: t0.Add(time.Hour)}); len(p.Exceptions) != 0 {
		t.Errorf("at expiry: %d exceptions", len(p.Exceptions))
	}
	if p := sn.Apply(nil, policy.Envelope{}); len(p.Exceptions) != 0 {
		t.Errorf("without a time: %d exceptions", len(p.Exceptions))
	}
	if n, err := f.svc.ExpireDue(ctx); err != nil || n != 0 {
		t.Errorf("ExpireDue before expiry: %d, %v", n, err)
	}
	f.clock.Advance(time.Hour)
	e, _ := f.svc.Exception(ctx, "partner-po")
	if e.State != governance.Active || e.Effective(f.clock.Now()) != governance.Expired {
		t.Errorf("stored %s, effective %s", e.State, e.Effective(f.clock.Now()))
	}
	if n, err := f.svc.ExpireDue(ctx); err != nil || n != 1 {
		t.Errorf("ExpireDue: %d, %v", n, err)
	}
	if n, err := f.svc.ExpireDue(ctx); err != nil || n != 0 {
		t.Errorf("ExpireDue again: %d, %v", n, err)
	}
	e, _ = f.svc.Exception(ctx, "partner-po")
	if e.State != governance.Expired || !e.ExpiredAt.Equal(f.clock.Now()) {
		t.Errorf("after ExpireDue: %+v", e)
	}
	evs, _, _ := f.log.List(ctx, audit.Filter{Action: string(audit.ExceptionExpire)})
	if len(evs) != 1 || evs[0].Actor != audit.SystemActor {
		t.Errorf("expiry events: %+v", evs)
	}
}

func TestRecipientScope(t *testing.T) {
	f := newFixture(t, governance.Config{})
	ctx := ctxFor(t)
	r := partnerRequest()
	r.Recipients = []string{"Orders@Corp.Example", "@ap.corp.example"}
	if _, err := f.svc.RequestException(ctx, r, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Approve(ctx, governance.KindException, "partner-po", "bob"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		rcpts []string
		want  int
	}{
		{[]string{"orders@corp.example"}, 1},
		{[]string{"<ORDERS@corp.example>", "clerk@ap.corp.example"}, 1},
		{[]string{"orders@corp.example", "ceo@corp.example"}, 0},
		{[]string{"x@sub.ap.corp.example"}, 0},
		{nil, 0},
	} {
		p := f.svc.PolicyFor(nil, policy.Envelope{ReceivedAt: t0, RcptTo: c.rcpts})
		if len(p.Exceptions) != c.want {
			t.Errorf("recipients %v: %d exceptions, want %d", c.rcpts, len(p.Exceptions), c.want)
		}
	}
}

func TestSealers(t *testing.T) {
	f := newFixture(t, governance.Config{})
	ctx := ctxFor(t)
	req := governance.SealerRequest{ID: "list", Domain: "Lists.Example.Net", Owner: "collab", Justification: "mailing list rewrites bodies", Expires: t0.Add(10 * 24 * time.Hour)}
	s, err := f.svc.RequestSealer(ctx, req, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if s.Domain != "lists.example.net" {
		t.Errorf("domain %q", s.Domain)
	}
	req.ID = "list2"
	if _, err := f.svc.RequestSealer(ctx, req, "carol"); !errors.Is(err, governance.ErrInvalid) {
		t.Errorf("second sealer for the same domain: %v", err)
	}
	if _, err := f.svc.Approve(ctx, governance.KindSealer, "list", "alice"); !errors.Is(err, governance.ErrSelfApproval) {
		t.Errorf("self-approved sealer: %v", err)
	}
	if _, err := f.svc.Approve(ctx, governance.KindSealer, "list", "bob"); err != nil {
		t.Fatal(err)
	}
	base := policy.Default()
	base.TrustedARC.Sealers = []policy.TrustedSealer{{Domain: "static.example"}}
	p := f.svc.PolicyFor(base, policy.Envelope{ReceivedAt: t0})
	if len(p.TrustedARC.Sealers) != 2 || p.TrustedARC.Sealers[1].Domain != "lists.example.net" || p.TrustedARC.Sealers[1].Owner != "collab" {
		t.Errorf("sealers: %+v", p.TrustedARC.Sealers)
	}
	if len(base.TrustedARC.Sealers) != 1 {
		t.Errorf("Apply changed the base policy")
	}
	if p := f.svc.PolicyFor(base, policy.Envelope{ReceivedAt: t0.Add(10 * 24 * time.Hour)}); len(p.TrustedARC.Sealers) != 1 {
		t.Errorf("expired sealer applies")
	}
	// Hits: "rescued N DMARC failures".
	rec := evidence.Record{ReceivedAt: t0.Add(time.Minute), Decision: evidence.Decision{Action: evidence.Deliver, Rule: policy.RuleARCSealer},
		Auth: evidence.Auth{ARC: evidence.ARC{Result: "pass", Chain: []evidence.ARCHop{{Instance: 1, Sealer: "lists.example.net", Result: "pass"}}}}}
	for range 3 {
		f.svc.OnDecision(ctx, rec)
	}
	other := rec
	other.Decision.Rule = policy.RuleDMARCQuarantine
	f.svc.OnDecision(ctx, other)
	if err := f.svc.FlushHits(ctx); err != nil {
		t.Fatal(err)
	}
	s, err = f.svc.Sealer(ctx, "list")
	if err != nil || s.Hits != 3 || !s.LastUsed.Equal(t0.Add(time.Minute)) {
		t.Errorf("sealer hits: %d, last %v, %v", s.Hits, s.LastUsed, err)
	}
}

// countingStore counts AddHits calls.
type countingStore struct {
	*sqlite.Store
	mu    sync.Mutex
	calls int
	fail  bool
}

func (c *countingStore) AddHits(ctx context.Context, h []store.Hits) error {
	c.mu.Lock()
	c.calls++
	fail := c.fail
	c.mu.Unlock()
	if fail {
		return store.ErrUnavailable
	}
	return c.Store.AddHits(ctx, h)
}

func TestHitsAreBatched(t *testing.T) {
	st := openStore(t)
	cs := &countingStore{Store: st}
	c := &fakeClock{now: t0}
	l, _ := audit.New(cs, &audit.Options{Now: c.Now})
	svc, err := governance.New(l, governance.Config{}, &governance.Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t)
	if _, err := svc.RequestException(ctx, partnerRequest(), "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Approve(ctx, governance.KindException, "partner-po", "bob"); err != nil {
		t.Fatal(err)
	}
	id := "partner-po"
	rec := evidence.Record{ReceivedAt: t0, Decision: evidence.Decision{Action: evidence.Deliver, Rule: policy.RuleException, Exception: &id}}
	unknown := "static-one"
	for i := range 100 {
		rec.ReceivedAt = t0.Add(time.Duration(i) * time.Second)
		svc.OnDecision(ctx, rec)
		r2 := rec
		r2.Decision.Exception = &unknown
		svc.OnDecision(ctx, r2)
	}
	// Not flushed yet: Exception adds what is pending.
	e, _ := svc.Exception(ctx, id)
	if e.Hits != 100 {
		t.Errorf("pending hits: %d", e.Hits)
	}
	cs.fail = true
	if err := svc.FlushHits(ctx); err == nil {
		t.Fatal("flush into a failing store succeeded")
	}
	cs.fail = false
	svc.OnDecision(ctx, rec)
	if err := svc.FlushHits(ctx); err != nil {
		t.Fatal(err)
	}
	if err := svc.FlushHits(ctx); err != nil {
		t.Fatal(err)
	}
	if cs.calls != 2 {
		t.Errorf("%d AddHits calls for 201 decisions and three flushes, want 2 (one failed, one written, none for nothing)", cs.calls)
	}
	e, _ = svc.Exception(ctx, id)
	if e.Hits != 101 || !e.LastUsed.Equal(t0.Add(99*time.Second)) {
		t.Errorf("hits %d, last %v", e.Hits, e.LastUsed)
	}
	stored, _ := st.GetHits(ctx, "exception")
	if _, ok := stored[unknown]; ok {
		t.Errorf("hits counted for an exception not governed here")
	}
}

// A change made through another Service on the same store (a CLI) is seen
// at the next refresh; without a change nothing is reloaded.
func TestRefreshSeesOtherProcess(t *testing.T) {
	st := openStore(t)
	gw := newFixtureOn(t, st, governance.Config{})
	cli := newFixtureOn(t, st, governance.Config{})
	ctx := ctxFor(t)
	if err := gw.svc.Refresh(ctx, false); err != nil {
		t.Fatal(err)
	}
	loaded := gw.svc.Snapshot()
	if _, err := cli.svc.RequestException(ctx, partnerRequest(), "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.svc.Approve(ctx, governance.KindException, "partner-po", "bob"); err != nil {
		t.Fatal(err)
	}
	if len(gw.svc.Snapshot().Exceptions()) != 0 {
		t.Fatal("the gateway saw the change before refreshing")
	}
	if err := gw.svc.Refresh(ctx, false); err != nil {
		t.Fatal(err)
	}
	sn := gw.svc.Snapshot()
	if sn == loaded || len(sn.Exceptions()) != 1 || sn.Head != 2 {
		t.Errorf("after refresh: head %d, %d exceptions", sn.Head, len(sn.Exceptions()))
	}
	if err := gw.svc.Refresh(ctx, false); err != nil {
		t.Fatal(err)
	}
	if gw.svc.Snapshot() != sn {
		t.Errorf("reloaded without a change")
	}
}

func TestExpiringWithin(t *testing.T) {
	f := newFixture(t, governance.Config{})
	ctx := ctxFor(t)
	for _, c := range []struct {
		id string
		in time.Duration
	}{{"soon", 5 * 24 * time.Hour}, {"later", 40 * 24 * time.Hour}, {"sooner", 2 * 24 * time.Hour}} {
		r := partnerRequest()
		r.ID, r.Expires = c.id, t0.Add(c.in)
		if _, err := f.svc.RequestException(ctx, r, "alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Approve(ctx, governance.KindException, c.id, "bob"); err != nil {
			t.Fatal(err)
		}
	}
	r := partnerRequest()
	r.ID, r.Expires = "pending", t0.Add(24*time.Hour)
	if _, err := f.svc.RequestException(ctx, r, "alice"); err != nil {
		t.Fatal(err)
	}
	got, err := f.svc.ExpiringWithin(ctx, 14*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range got {
		ids = append(ids, e.ID+"/"+e.Owner)
	}
	if strings.Join(ids, ",") != "sooner/procurement,soon/procurement" {
		t.Errorf("expiring: %v", ids)
	}
}

func TestDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"90d": 90 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "1d12h": 36 * time.Hour, "36h": 36 * time.Hour, "1w2d": 9 * 24 * time.Hour,
	} {
		got, err := governance.ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "d", "9x", "1d1", "99999999999d"} {
		if _, err := governance.ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) accepted", bad)
		}
	}
	var c governance.Config
	if err := yaml.Unmarshal([]byte("max_lifetime: 30d\nwarn_before: 1w\nusers: {alice: operator, bob: admin}\n"), &c); err != nil {
		t.Fatal(err)
	}
	if c.MaxLifetime.Std() != 30*24*time.Hour || c.WarnBefore.Std() != 7*24*time.Hour || c.Users["bob"] != governance.RoleAdmin {
		t.Errorf("yaml: %+v", c)
	}
	if err := (governance.Config{Users: governance.Roles{"x": "root"}}).Validate(); !errors.Is(err, governance.ErrInvalid) {
		t.Errorf("bad role: %v", err)
	}
	if s := governance.Duration(90 * 24 * time.Hour).String(); s != "90d" {
		t.Errorf("String: %s", s)
	}
}

func TestIDs(t *testing.T) {
	f := newFixture(t, governance.Config{})
	r := partnerRequest()
	r.ID = ""
	r.Binding = policy.Binding{ClientCIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.2.7/24")}}
	e, err := f.svc.RequestException(ctxFor(t), r, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !store.ValidID(e.ID) || len(e.ID) != len("exc-")+8 {
		t.Errorf("id %q", e.ID)
	}
	if e.Binding.ClientCIDRs[0].String() != "192.0.2.0/24" {
		t.Errorf("CIDR not masked: %v", e.Binding.ClientCIDRs)
	}
}
