package scenarios_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"portcullis/internal/config"
	"portcullis/internal/dns/dnstest"
	"portcullis/internal/evidence"
	"portcullis/internal/gateway"
	"portcullis/internal/milter/postfixtest"
	"portcullis/internal/milterd"
	"portcullis/internal/scenarios"
	"portcullis/internal/store"
)

// path is one inbound path under test: where the client connects, the
// downstream that receives what is delivered, and Portcullis's store.
type path struct {
	name   string
	addr   string
	sink   *postfixtest.Sink
	store  store.Store
	postfx *postfixtest.Instance
}

// observed is the disposition of one message as seen from outside: the
// client's reply, the evidence record, the quarantine and the downstream.
type observed struct {
	code        int
	enhanced    string
	text        string
	action      evidence.Action
	rule        string
	quarantined bool
	delivered   *postfixtest.Message
}

// loadConfig writes the scenarios' configuration for one path and loads
// it as the commands do.
func loadConfig(t *testing.T, dnsAddr, downstream string) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "portcullis.yaml")
	if err := os.WriteFile(path, []byte(scenarios.ConfigYAML(t.TempDir(), dnsAddr, downstream)), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// startGateway runs the SMTP gateway path as `portcullis serve` does
// (package gateway) from the scenarios' configuration, delivering to a
// sink.
func startGateway(t *testing.T, dnsAddr string) *path {
	sink := postfixtest.NewSink(t, false)
	c := loadConfig(t, dnsAddr, sink.Addr())
	gw, err := gateway.New(context.Background(), c, gateway.Options{Logger: scenarios.QuietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = gw.Shutdown(ctx)
	})
	return &path{name: "smtp", addr: gw.SMTPAddr("mx").String(), sink: sink, store: gw.Store()}
}

// startPostfixMilter runs the milter path as `portcullis milter` does
// (package milterd) from the same configuration, inside a private Postfix
// (smtpd_milters) that relays to a sink.
func startPostfixMilter(t *testing.T, dnsAddr string) *path {
	sink := postfixtest.NewSink(t, false)
	c := loadConfig(t, dnsAddr, "127.0.0.1:9") // the gateway's downstream: unused here
	d, err := milterd.New(context.Background(), c, milterd.Options{Logger: scenarios.QuietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	d.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = d.Shutdown(ctx)
	})
	pf := postfixtest.Start(t, postfixtest.Config{
		RelayTo: sink.Addr(),
		Domains: []string{scenarios.RecipientDomain},
		Milter:  "inet:" + d.Addr().String(),
	})
	return &path{name: "milter", addr: pf.Addr, sink: sink, store: d.Store(), postfx: pf}
}

// send runs one SMTP transaction as the lab's client and returns the reply
// to the end of data.
func send(addr, from, rcpt string, msg []byte) (code int, enhanced, text string, err error) {
	c, err := smtp.Dial(addr)
	if err != nil {
		return 0, "", "", err
	}
	defer c.Close()
	c.CommandTimeout = 30 * time.Second
	c.SubmissionTimeout = 60 * time.Second
	if err := c.Hello(scenarios.HELO); err != nil {
		return 0, "", "", err
	}
	if err := c.Mail(from, nil); err != nil {
		return 0, "", "", err
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return 0, "", "", err
	}
	w, err := c.Data()
	if err != nil {
		return 0, "", "", err
	}
	if _, err := w.Write(msg); err != nil {
		return 0, "", "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return se.Code, fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2]), se.Message, nil
		}
		return 0, "", "", err
	}
	_ = c.Quit()
	// go-smtp returns a 2xx as a DataResponse without its code.
	enh, rest, _ := strings.Cut(resp.StatusText, " ")
	if !strings.HasPrefix(enh, "2.") {
		enh, rest = "2.0.0", resp.StatusText
	}
	return 250, enh, rest, nil
}

// run sends the scenario's message through p and observes its disposition.
func (p *path) run(t *testing.T, lab *scenarios.Lab, sc scenarios.Scenario) (observed, string) {
	t.Helper()
	id := scenarios.MessageID(sc.Name, p.name)
	msg := sc.Build(t, lab, id)
	var o observed
	var err error
	o.code, o.enhanced, o.text, err = send(p.addr, sc.MailFrom, sc.Rcpt, msg)
	if err != nil {
		t.Fatalf("%s: send: %v", p.name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.store.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	page, err := p.store.QueryEvidence(ctx, store.EvidenceQuery{MessageID: id})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Records) != 1 {
		t.Fatalf("%s: %d evidence records for %s", p.name, len(page.Records), id)
	}
	rec := page.Records[0]
	o.action, o.rule = rec.Decision.Action, rec.Decision.Rule
	if rec.Path != p.name {
		t.Errorf("%s: evidence path %q", p.name, rec.Path)
	}
	if item, err := p.store.GetQuarantine(ctx, rec.ID); err == nil {
		o.quarantined = item.State == store.Held
	} else if !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	if o.action == evidence.Deliver {
		m, err := p.sink.Find(ctx, postfixtest.ByMessageID(id))
		if err != nil {
			t.Fatalf("%s: delivered message %s did not reach the downstream", p.name, id)
		}
		o.delivered = &m
	}
	return o, id
}

// TestScenariosBothPaths runs every scenario through the SMTP gateway and
// through Postfix with the milter, both built from one configuration file
// as `portcullis serve` and `portcullis milter` build them, with one DNS
// server, and checks that both reach the scenario's disposition (and so the
// same one).
func TestScenariosBothPaths(t *testing.T) {
	postfixtest.Require(t)
	lab := scenarios.NewLab(t)
	// One DNS server for both paths, over the wire: the DNS-timeout
	// scenario's record is never answered.
	dnsAddr := dnstest.Serve(t, lab.Zone).Addr()
	paths := []*path{startGateway(t, dnsAddr), startPostfixMilter(t, dnsAddr)}
	type notDelivered struct {
		p  *path
		id string
	}
	var absent []notDelivered
	for _, sc := range scenarios.All() {
		t.Run(sc.Name, func(t *testing.T) {
			got := map[string]observed{}
			for _, p := range paths {
				o, id := p.run(t, lab, sc)
				got[p.name] = o
				checkDisposition(t, p.name, sc, o)
				if o.action != evidence.Deliver {
					absent = append(absent, notDelivered{p, id})
				}
				t.Logf("%-6s %d %s %-10s %-20s %s", p.name, o.code, o.enhanced, o.action, o.rule, o.text)
			}
			a, b := got["smtp"], got["milter"]
			if a.code != b.code || a.enhanced != b.enhanced || a.action != b.action || a.rule != b.rule || a.quarantined != b.quarantined {
				t.Errorf("the paths disagree:\n smtp   %d %s %s %s quarantined=%v\n milter %d %s %s %s quarantined=%v",
					a.code, a.enhanced, a.action, a.rule, a.quarantined, b.code, b.enhanced, b.action, b.rule, b.quarantined)
			}
		})
	}
	// Nothing that was not delivered reached a downstream: by now every
	// delivered message has (each was waited for), and Postfix discarded
	// or refused the others before queueing them.
	time.Sleep(500 * time.Millisecond)
	for _, n := range absent {
		for _, m := range n.p.sink.Messages() {
			if postfixtest.ByMessageID(n.id)(m) {
				t.Errorf("%s: %s reached the downstream", n.p.name, n.id)
			}
		}
	}
	if t.Failed() {
		t.Logf("Postfix log:\n%s", paths[1].postfx.Log())
	}
}

func checkDisposition(t *testing.T, pathName string, sc scenarios.Scenario, o observed) {
	t.Helper()
	w := sc.Want
	if o.code != w.Code || !strings.HasPrefix(o.enhanced, w.Enhanced) {
		t.Errorf("%s: reply %d %s %q, want %d %s…", pathName, o.code, o.enhanced, o.text, w.Code, w.Enhanced)
	}
	if o.action != w.Action || (w.Rule != "" && o.rule != w.Rule) {
		t.Errorf("%s: evidence %s by %s, want %s by %s", pathName, o.action, o.rule, w.Action, w.Rule)
	}
	if o.quarantined != (w.Action == evidence.Quarantine) {
		t.Errorf("%s: quarantined=%v", pathName, o.quarantined)
	}
	if w.Action != evidence.Deliver {
		return
	}
	if o.delivered == nil {
		t.Fatalf("%s: not delivered", pathName)
	}
	ars := o.delivered.Header("Authentication-Results")
	var ours string
	for _, v := range ars {
		if strings.HasPrefix(v, scenarios.AuthServID+";") {
			if ours != "" {
				t.Errorf("%s: two Authentication-Results of ours: %q", pathName, ars)
			}
			ours = v
		}
	}
	if ours == "" {
		t.Fatalf("%s: no Authentication-Results of ours in %q", pathName, ars)
	}
	for _, s := range w.AuthResults {
		if !strings.Contains(ours, s) {
			t.Errorf("%s: our Authentication-Results %q lacks %q", pathName, ours, s)
		}
	}
}
