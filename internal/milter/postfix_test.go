package milter_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"portcullis/internal/audit"
	"portcullis/internal/dkim"
	"portcullis/internal/evidence"
	"portcullis/internal/governance"
	"portcullis/internal/message"
	"portcullis/internal/milter"
	"portcullis/internal/milter/postfixtest"
	"portcullis/internal/pipeline"
	"portcullis/internal/quarantine"
	"portcullis/internal/relay"
	"portcullis/internal/scenarios"
	"portcullis/internal/store"
	"portcullis/internal/testutil"
)

// rig is Portcullis's milter (in process, with the scenarios' lab) inside a
// private Postfix that relays to a sink.
type rig struct {
	lab   *scenarios.Lab
	store store.Store
	sink  *postfixtest.Sink
	pf    *postfixtest.Instance
}

// slowProc delays the pipeline, to stand for a slow DNS or check.
type slowProc struct {
	p     milter.Processor
	delay time.Duration
}

func (s slowProc) Process(ctx context.Context, tx *pipeline.Transaction) pipeline.Outcome {
	time.Sleep(s.delay)
	return s.p.Process(ctx, tx)
}

// startRig starts the milter with cfg (wrap may wrap the pipeline) and a
// Postfix pointing at it; main are extra main.cf parameters.
func startRig(t *testing.T, cfg milter.Config, wrap func(milter.Processor) milter.Processor, main map[string]string) *rig {
	t.Helper()
	postfixtest.Require(t)
	r := &rig{lab: scenarios.NewLab(t), store: scenarios.OpenStore(t), sink: postfixtest.NewSink(t, false)}
	var proc milter.Processor = r.lab.NewPipeline(t, r.store, milter.Deliverer())
	if wrap != nil {
		proc = wrap(proc)
	}
	cfg.Logger = scenarios.QuietLogger()
	srv, err := milter.NewServer(proc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	r.pf = postfixtest.Start(t, postfixtest.Config{
		RelayTo: r.sink.Addr(), Domains: []string{scenarios.RecipientDomain},
		Milter: "inet:" + ln.Addr().String(), ReleasePort: postfixtest.FreePort(t), Main: main,
	})
	return r
}

// swaks sends file to addr with the swaks client (Debian package swaks)
// and returns its transcript; a non-2xx reply is an error.
func swaks(t *testing.T, addr, from, to, file string) (string, error) {
	t.Helper()
	bin := testutil.LookPath(t, "swaks", "swaks")
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--server", host, "--port", port, "--helo", scenarios.HELO,
		"--from", from, "--to", to, "--data", "@"+file, "--timeout", "30").CombinedOutput()
	return string(out), err
}

var queuedAs = regexp.MustCompile(`<-  250 2\.0\.0 Ok: queued as ([0-9A-Za-z]+)`)

func writeMessage(t *testing.T, msg []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "msg.eml")
	if err := os.WriteFile(p, msg, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// record returns the one evidence record of the message with Message-ID id.
func (r *rig) record(t *testing.T, id string) *evidence.Record {
	t.Helper()
	ctx := context.Background()
	if err := r.store.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	page, err := r.store.QueryEvidence(ctx, store.EvidenceQuery{MessageID: id})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Records) != 1 {
		t.Fatalf("%d evidence records for %s", len(page.Records), id)
	}
	return page.Records[0]
}

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestPostfix(t *testing.T) {
	r := startRig(t, milter.Config{}, nil, nil)
	t.Run("deliver", func(t *testing.T) { testPostfixDeliver(t, r) })
	t.Run("reject", func(t *testing.T) { testPostfixReject(t, r) })
	t.Run("quarantine-release", func(t *testing.T) { testPostfixQuarantine(t, r) })
	if t.Failed() {
		t.Logf("Postfix log:\n%s", r.pf.Log())
	}
}

// testPostfixDeliver: a message signed with simple/simple canonicalisation
// (every header byte counts, RFC 6376 §3.4.1) that carries two forged
// Authentication-Results claiming our authserv-id and one of another
// service. Through Postfix, the milter must see the header exactly (DKIM
// passes), have Postfix remove the forged fields, keep the other and put
// ours on top.
func testPostfixDeliver(t *testing.T, r *rig) {
	id := scenarios.MessageID("simple", "milter")
	head := []string{
		"Authentication-Results: " + scenarios.AuthServID + "; dmarc=pass header.from=" + scenarios.GoodDomain,
		"From:  Sales  <sales@" + scenarios.GoodDomain + ">",
		"To: alice@" + scenarios.RecipientDomain,
		"Subject:\tQuarterly\r\n  figures, folded",
		"Authentication-Results: other.example; spf=pass smtp.mailfrom=" + scenarios.GoodDomain,
		"X-Forged: yes",
		"Authentication-Results:" + scenarios.AuthServID + "; dkim=pass header.d=" + scenarios.GoodDomain,
	}
	msg := r.lab.Message(t, head, id)
	h, err := message.ReadHeader(bufio.NewReader(bytes.NewReader(msg)), message.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	body := msg[h.Consumed:]
	s := &dkim.Signer{Domain: scenarios.GoodDomain, Selector: scenarios.Selector, Key: r.lab.Keys[scenarios.GoodDomain],
		Canonicalization: "simple/simple", Timestamp: r.lab.Now,
		Headers: []string{"from", "to", "subject", "date", "message-id", "x-forged"}}
	sig, err := s.Sign(h, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	h.Prepend(sig)
	msg = append(h.Bytes(), body...)

	out, err := swaks(t, r.pf.Addr, "bounces@"+scenarios.GoodDomain, "alice@"+scenarios.RecipientDomain, writeMessage(t, msg))
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	m := queuedAs.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no queue id in the transcript:\n%s", out)
	}
	queueID := m[1]
	got, err := r.sink.Find(waitCtx(t), postfixtest.ByMessageID(id))
	if err != nil {
		t.Fatalf("not delivered: %v", err)
	}
	names := got.FieldNames()
	if len(names) < 2 || names[0] != "Authentication-Results" || names[1] != "Received" {
		t.Errorf("fields %v: want our Authentication-Results on top, above Postfix's Received", names)
	}
	ars := got.Header("Authentication-Results")
	if len(ars) != 2 {
		t.Fatalf("Authentication-Results %q: want ours and other.example's", ars)
	}
	ours := ars[0]
	if !strings.HasPrefix(ours, scenarios.AuthServID+";") || !strings.Contains(ours, "dkim=pass") ||
		!strings.Contains(ours, "dmarc=pass") || !strings.Contains(ours, "spf=pass") {
		t.Errorf("our Authentication-Results %q: want dkim, spf and dmarc pass", ours)
	}
	if !strings.HasPrefix(ars[1], "other.example;") {
		t.Errorf("other service's field %q not kept", ars[1])
	}
	if x := got.Header("X-Forged"); len(x) != 1 {
		t.Errorf("X-Forged %q: only Authentication-Results fields are removed", x)
	}
	// The rest of the message is as sent: the body and the signed fields.
	// (swaks ends the data with one more CRLF: an empty line, which
	// simple body canonicalisation ignores, RFC 6376 §3.4.3.)
	if !bytes.HasSuffix(bytes.TrimRight(got.Data, "\r\n"), bytes.TrimRight(body, "\r\n")) {
		t.Errorf("body changed:\n%q\nwant suffix %q", got.Data[max(0, len(got.Data)-len(body)-20):], body)
	}
	if !bytes.Contains(got.Data, []byte("Subject:\tQuarterly\r\n  figures, folded\r\n")) {
		t.Errorf("folded Subject changed:\n%s", got.Data)
	}

	rec := r.record(t, id)
	if rec.Path != "milter" || rec.Listener != "milter" || rec.QueueID != queueID {
		t.Errorf("record path %q listener %q queue id %q, want milter, milter, %q", rec.Path, rec.Listener, rec.QueueID, queueID)
	}
	if rec.Client.IP != "127.0.0.1" || rec.Client.HELO != scenarios.HELO {
		t.Errorf("record client %+v", rec.Client)
	}
	if rec.Envelope.MailFrom != "bounces@"+scenarios.GoodDomain || len(rec.Envelope.RcptTo) != 1 || rec.Envelope.RcptTo[0] != "alice@"+scenarios.RecipientDomain {
		t.Errorf("record envelope %+v", rec.Envelope)
	}
	if rec.Decision.Action != evidence.Deliver || rec.Delivery == nil || rec.Delivery.Status != "accepted" {
		t.Errorf("record decision %+v delivery %+v", rec.Decision, rec.Delivery)
	}
}

func testPostfixReject(t *testing.T, r *rig) {
	sc := findScenario(t, "own-domain-spoof")
	id := scenarios.MessageID(sc.Name, "milter")
	out, err := swaks(t, r.pf.Addr, sc.MailFrom, sc.Rcpt, writeMessage(t, sc.Build(t, r.lab, id)))
	if err == nil {
		t.Fatalf("swaks succeeded:\n%s", out)
	}
	if !strings.Contains(out, "<** 550 5.7.26 Message claims to be from "+scenarios.ProtectedDomain) {
		t.Errorf("no 550 5.7.26 in the transcript:\n%s", out)
	}
	rec := r.record(t, id)
	if rec.Decision.Action != evidence.Reject || rec.Decision.Rule != "own-domain" {
		t.Errorf("record %+v", rec.Decision)
	}
	// The reply names the evidence id.
	if !strings.Contains(out, "["+rec.ID+"]") {
		t.Errorf("evidence id %s not in the reply:\n%s", rec.ID, out)
	}
}

// testPostfixQuarantine: the milter holds the message in Portcullis's
// quarantine and has Postfix discard it (the sender gets 250); a release
// re-injects it through Postfix's milter-less listener and it is delivered
// once, with the Authentication-Results it was held with.
func testPostfixQuarantine(t *testing.T, r *rig) {
	sc := findScenario(t, "dmarc-quarantine")
	id := scenarios.MessageID(sc.Name, "milter")
	out, err := swaks(t, r.pf.Addr, sc.MailFrom, sc.Rcpt, writeMessage(t, sc.Build(t, r.lab, id)))
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	if !queuedAs.MatchString(out) {
		t.Errorf("no 250 in the transcript:\n%s", out)
	}
	rec := r.record(t, id)
	if rec.Decision.Action != evidence.Quarantine {
		t.Fatalf("record %+v", rec.Decision)
	}
	ctx := context.Background()
	item, err := r.store.GetQuarantine(ctx, rec.ID)
	if err != nil || item.State != store.Held {
		t.Fatalf("quarantine item %+v %v", item, err)
	}
	if !strings.Contains(r.pf.Log(), "milter triggers DISCARD action") {
		t.Errorf("Postfix did not discard the message:\n%s", r.pf.Log())
	}

	rel, err := milter.NewReleaser(milter.ReleaseConfig{Via: "smtp://" + r.pf.ReleaseAddr, LocalName: "portcullis.test", TLS: relay.TLSOff})
	if err != nil {
		t.Fatal(err)
	}
	defer rel.Close()
	// The quarantine's own release, as `portcullis quarantine release`
	// runs it, with the milter's route: back into Postfix, not to a
	// gateway downstream (there is none here).
	qst := r.store.(quarantine.Store)
	alog, err := audit.New(qst, nil)
	if err != nil {
		t.Fatal(err)
	}
	mgr := quarantine.NewManager(qst, alog, quarantine.Config{}, quarantine.ManagerOptions{
		DelivererFor: milter.ReleaseRoute(r.store, nil, rel),
		Roles:        governance.Roles{"bob": governance.RoleAdmin},
		Logger:       scenarios.QuietLogger(),
	})
	if res, err := mgr.Release(ctx, rec.ID, "bob"); err != nil {
		t.Fatalf("release: %v (%+v)", err, res)
	}
	if item, err := r.store.GetQuarantine(ctx, rec.ID); err != nil || item.State != store.Released {
		t.Errorf("after the release: %+v %v", item, err)
	}
	got, err := r.sink.Find(waitCtx(t), postfixtest.ByMessageID(id))
	if err != nil {
		t.Fatalf("released message not delivered: %v", err)
	}
	ars := got.Header("Authentication-Results")
	if len(ars) != 1 || !strings.HasPrefix(ars[0], scenarios.AuthServID+";") || !strings.Contains(ars[0], "dmarc=fail") {
		t.Errorf("released message's Authentication-Results %q", ars)
	}
	if rel := got.Header("X-Portcullis-Released"); len(rel) != 1 || !strings.Contains(rel[0], "by bob") {
		t.Errorf("X-Portcullis-Released %q", rel)
	}
	if got.MailFrom != sc.MailFrom || len(got.Rcpts) != 1 || got.Rcpts[0] != sc.Rcpt {
		t.Errorf("released envelope %q %v", got.MailFrom, got.Rcpts)
	}
	// Released once: not filtered (and held) a second time.
	time.Sleep(300 * time.Millisecond)
	n := 0
	for _, m := range r.sink.Messages() {
		if postfixtest.ByMessageID(id)(m) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("released message delivered %d times", n)
	}
	if page, _ := r.store.QueryEvidence(ctx, store.EvidenceQuery{MessageID: id}); len(page.Records) != 1 {
		t.Errorf("%d evidence records after the release: the milter saw it again", len(page.Records))
	}
	// A second release of the same item is refused.
	if _, err := mgr.Release(ctx, rec.ID, "bob"); err == nil {
		t.Error("second release accepted")
	}
}

// TestReleaseRoute: the quarantine sends an item back the way it came.
func TestReleaseRoute(t *testing.T) {
	ctx := context.Background()
	st := scenarios.OpenStore(t)
	put := func(id, path string) *store.QuarantineItem {
		rec := &evidence.Record{ID: id, ReceivedAt: time.Now().UTC(), Listener: "x", Path: path,
			Decision: evidence.Decision{Action: evidence.Quarantine, Rule: "dmarc-quarantine"}}
		if err := st.PutEvidence(ctx, rec); err != nil {
			t.Fatal(err)
		}
		return &store.QuarantineItem{ID: id}
	}
	gw, rel := relay.Deliverer(&relay.Maildir{}), relay.Deliverer(&milter.Releaser{})
	route := milter.ReleaseRoute(st, gw, rel)
	if d, err := route(ctx, put("fromsmtp0000001", "smtp")); err != nil || d != gw {
		t.Errorf("smtp item: %v %v", d, err)
	}
	if d, err := route(ctx, put("frommilter00001", "milter")); err != nil || d != rel {
		t.Errorf("milter item: %v %v", d, err)
	}
	// An item without evidence (none should exist) goes the default way.
	if d, err := route(ctx, &store.QuarantineItem{ID: "noevidence00001"}); err != nil || d != gw {
		t.Errorf("item without evidence: %v %v", d, err)
	}
	// Without a release address a milter item is refused, not delivered
	// to the gateway's downstream.
	var none *milter.Releaser
	if _, err := milter.ReleaseRoute(st, gw, none)(ctx, put("frommilter00002", "milter")); !errors.Is(err, milter.ErrNoRelease) {
		t.Errorf("milter item without releaser: %v", err)
	}
	if _, err := milter.ReleaseRoute(st, gw, nil)(ctx, put("frommilter00003", "milter")); !errors.Is(err, milter.ErrNoRelease) {
		t.Errorf("milter item with nil releaser: %v", err)
	}
}

func findScenario(t *testing.T, name string) scenarios.Scenario {
	for _, sc := range scenarios.All() {
		if sc.Name == name {
			return sc
		}
	}
	t.Fatalf("no scenario %q", name)
	return scenarios.Scenario{}
}

// TestPostfixMilterUnavailable: with milter_default_action = tempfail a
// milter that is down defers the mail (451); nothing passes unfiltered.
func TestPostfixMilterUnavailable(t *testing.T) {
	sink := postfixtest.NewSink(t, false)
	pf := postfixtest.Start(t, postfixtest.Config{
		RelayTo: sink.Addr(), Domains: []string{scenarios.RecipientDomain},
		Milter: "inet:127.0.0.1:" + strconv.Itoa(postfixtest.FreePort(t)), // nothing listens
	})
	lab := scenarios.NewLab(t)
	sc := findScenario(t, "aligned-pass")
	id := scenarios.MessageID(sc.Name, "down")
	out, err := swaks(t, pf.Addr, sc.MailFrom, sc.Rcpt, writeMessage(t, sc.Build(t, lab, id)))
	if err == nil || !strings.Contains(out, "451 4.7.1") {
		t.Errorf("milter down: %v\n%s", err, out)
	}
	time.Sleep(300 * time.Millisecond)
	if n := sink.Count(); n != 0 {
		t.Errorf("%d messages delivered past a dead milter", n)
	}
}

// TestPostfixMilterTimeout: Postfix gives the milter milter_content_timeout
// for its answer to the end of the message. A slower pipeline is deferred by
// Postfix (tempfail); progress packets restart Postfix's timer, so the same
// slow pipeline gets its answer through.
func TestPostfixMilterTimeout(t *testing.T) {
	main := map[string]string{"milter_content_timeout": "1s"}
	slow := func(p milter.Processor) milter.Processor { return slowProc{p, 2 * time.Second} }
	sc := findScenario(t, "aligned-pass")
	for _, tc := range []struct {
		name     string
		progress time.Duration
		wantOK   bool
	}{
		{"no-progress", -1, false},
		{"progress", 250 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startRig(t, milter.Config{ProgressInterval: tc.progress}, slow, main)
			id := scenarios.MessageID(sc.Name, tc.name)
			out, err := swaks(t, r.pf.Addr, sc.MailFrom, sc.Rcpt, writeMessage(t, sc.Build(t, r.lab, id)))
			if tc.wantOK {
				if err != nil {
					t.Fatalf("swaks: %v\n%s\n%s", err, out, r.pf.Log())
				}
				if _, err := r.sink.Find(waitCtx(t), postfixtest.ByMessageID(id)); err != nil {
					t.Errorf("not delivered: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(out, "451 4.7.1") {
				t.Errorf("want Postfix's tempfail: %v\n%s", err, out)
			}
		})
	}
}

// TestPostfixUnixSocket: the milter on a Unix socket (mode 0660, group
// postfix, as docs/postfix.md sets it up), which Postfix's smtpd and
// cleanup reach as the postfix user.
func TestPostfixUnixSocket(t *testing.T) {
	postfixtest.Require(t)
	grp, err := user.LookupGroup("postfix")
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.Atoi(grp.Gid)
	dir, err := os.MkdirTemp("", "milter-sock-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "milter.sock")
	lab, st, sink := scenarios.NewLab(t), scenarios.OpenStore(t), postfixtest.NewSink(t, false)
	srv, err := milter.NewServer(lab.NewPipeline(t, st, milter.Deliverer()), milter.Config{Logger: scenarios.QuietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := milter.Listen("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v %v", fi.Mode(), err)
	}
	if err := os.Chown(sock, 0, gid); err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	pf := postfixtest.Start(t, postfixtest.Config{RelayTo: sink.Addr(), Domains: []string{scenarios.RecipientDomain}, Milter: "unix:" + sock})
	sc := findScenario(t, "aligned-pass")
	id := scenarios.MessageID(sc.Name, "unix")
	if out, err := swaks(t, pf.Addr, sc.MailFrom, sc.Rcpt, writeMessage(t, sc.Build(t, lab, id))); err != nil {
		t.Fatalf("swaks: %v\n%s\n%s", err, out, pf.Log())
	}
	m, err := sink.Find(waitCtx(t), postfixtest.ByMessageID(id))
	if err != nil {
		t.Fatalf("not delivered: %v\n%s", err, pf.Log())
	}
	if ars := m.Header("Authentication-Results"); len(ars) != 1 || !strings.Contains(ars[0], "dmarc=pass") {
		t.Errorf("Authentication-Results %q", ars)
	}
}
