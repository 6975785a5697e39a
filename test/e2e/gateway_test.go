package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"portcullis/internal/analysis"
	"portcullis/internal/authres"
	"portcullis/internal/evidence"
	"portcullis/internal/message"
	"portcullis/internal/pipeline"
	"portcullis/internal/pipeline/pipelinetest"
	"portcullis/internal/policy"
	"portcullis/internal/store"
	"portcullis/internal/testutil"
)

var rcpt = "user@" + pipelinetest.RecipientDomain

// TestGateway runs the real binary through the cases every deployment must
// get right, with swaks as the client.
func TestGateway(t *testing.T) {
	testutil.LookPath(t, "swaks", "swaks")
	e := newEnv(t, "")
	e.start()

	t.Run("spoof of a protected domain is rejected", func(t *testing.T) {
		// Envelope from the attacker's domain (SPF passes for it), header
		// From the protected one: DMARC fails, own-domain protection.
		msg := e.lab.Build(t, pipelinetest.Msg{From: "ceo@" + pipelinetest.ProtectedDomain, Subject: "Urgent wire transfer"})
		code, text := e.swaks(msg, "ceo@"+pipelinetest.AttackerDomain, rcpt)
		if code != 550 || !strings.HasPrefix(text, "5.7.") {
			t.Fatalf("reply %d %s, want 550 5.7.x", code, text)
		}
		recs := e.waitEvidence(store.EvidenceQuery{MessageID: pipelinetest.MessageID(msg)}, 1)
		if len(recs) != 1 || recs[0].Decision.Action != evidence.Reject || recs[0].Decision.Rule != policy.RuleOwnDomain {
			t.Fatalf("evidence %+v", recs)
		}
		if !strings.Contains(text, "["+recs[0].ID+"]") {
			t.Errorf("reply %q does not name the evidence id %s", text, recs[0].ID)
		}
		if e.sink.Has(pipelinetest.MessageID(msg)) != 0 {
			t.Error("the spoof reached the downstream")
		}
	})

	t.Run("p=quarantine failure is quarantined", func(t *testing.T) {
		msg := e.lab.Build(t, pipelinetest.Msg{From: "billing@" + pipelinetest.QuarantineDomain, Subject: "Invoice"})
		code, text := e.swaks(msg, "billing@"+pipelinetest.AttackerDomain, rcpt)
		if code != 250 {
			t.Fatalf("reply %d %s, want 250", code, text)
		}
		recs := e.waitEvidence(store.EvidenceQuery{MessageID: pipelinetest.MessageID(msg)}, 1)
		if len(recs) != 1 || recs[0].Decision.Action != evidence.Quarantine || recs[0].Decision.Rule != policy.RuleDMARCQuarantine {
			t.Fatalf("evidence %+v", recs)
		}
		body, err := os.ReadFile(filepath.Join(e.dir, "data", "quarantine", recs[0].ID+".eml"))
		// swaks ends the data with one more empty line.
		if err != nil || !bytes.HasSuffix(bytes.TrimRight(body, "\r\n"), bytes.TrimRight(msg[bytes.Index(msg, []byte("\r\n\r\n")):], "\r\n")) {
			t.Fatalf("quarantined body: %v", err)
		}
		if e.sink.Has(pipelinetest.MessageID(msg)) != 0 {
			t.Error("the quarantined message reached the downstream")
		}
	})

	t.Run("aligned DKIM pass is delivered with our Authentication-Results", func(t *testing.T) {
		forged := "Authentication-Results: " + authServID + "; dmarc=pass header.from=" + pipelinetest.GoodDomain
		msg := e.lab.Build(t, pipelinetest.Msg{
			From: "alice@" + pipelinetest.GoodDomain, Subject: "Quarterly report", Sign: pipelinetest.GoodDomain,
			Extra: []string{forged, "Authentication-Results: other.example; spf=pass smtp.mailfrom=good.example"},
		})
		// The envelope sender is another domain: only DKIM can align.
		code, text := e.swaks(msg, "bounces@"+pipelinetest.AttackerDomain, rcpt)
		if code != 250 {
			t.Fatalf("reply %d %s, want 250", code, text)
		}
		got := e.sink.Messages()
		var data []byte
		for _, m := range got {
			if m.MessageID == pipelinetest.MessageID(msg) {
				data = m.Data
			}
		}
		if data == nil {
			t.Fatal("not delivered downstream")
		}
		h, err := message.ReadHeader(bufio.NewReader(bytes.NewReader(data)), message.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		var ours, others int
		for _, f := range h.All(authres.FieldName) {
			a, err := authres.Parse(f.Value())
			if err != nil {
				t.Fatal(err)
			}
			if strings.EqualFold(a.ServID, authServID) {
				ours++
				if r := a.ResultsFor("dkim"); len(r) != 1 || r[0].Value != "pass" {
					t.Errorf("our dkim result %+v", r)
				}
				if r := a.ResultsFor("dmarc"); len(r) != 1 || r[0].Value != "pass" {
					t.Errorf("our dmarc result %+v", r)
				}
			} else {
				others++
			}
		}
		if ours != 1 || others != 1 || !h.Fields[0].Is("Received") || !h.Fields[1].Is(authres.FieldName) {
			t.Errorf("%d fields of ours (want 1: the forged one removed), %d others; top fields %s, %s", ours, others, h.Fields[0].Name, h.Fields[1].Name)
		}
		// The message still verifies downstream: the body and signed
		// fields are untouched.
		a, err := analysis.New(analysis.Config{AuthServID: "mailbox.example", Resolver: e.lab.Zone})
		if err != nil {
			t.Fatal(err)
		}
		v := a.Run(context.Background(), analysis.Input{ClientIP: netip.MustParseAddr("127.0.0.1"), MailFrom: "bounces@" + pipelinetest.AttackerDomain, Message: data})
		if v.DMARC.Result != "pass" {
			t.Errorf("downstream DMARC %s: %s", v.DMARC.Result, v.DMARC.Reason)
		}
		recs := e.waitEvidence(store.EvidenceQuery{MessageID: pipelinetest.MessageID(msg)}, 1)
		if len(recs) != 1 || recs[0].Decision.Action != evidence.Deliver || recs[0].Delivery == nil || recs[0].Delivery.Status != "accepted" {
			t.Fatalf("evidence %+v", recs)
		}
	})

	t.Run("downstream down is 451 and nothing recorded as delivered", func(t *testing.T) {
		e.sink.Stop()
		defer func() {
			if err := e.sink.Start(); err != nil {
				t.Fatal(err)
			}
		}()
		msg := e.lab.Build(t, pipelinetest.Msg{From: "alice@" + pipelinetest.GoodDomain, Sign: pipelinetest.GoodDomain})
		code, text := e.swaks(msg, "alice@"+pipelinetest.GoodDomain, rcpt)
		if code != 451 {
			t.Fatalf("reply %d %s, want 451", code, text)
		}
		recs := e.waitEvidence(store.EvidenceQuery{MessageID: pipelinetest.MessageID(msg)}, 1)
		if len(recs) != 1 || recs[0].Decision.Action != evidence.Defer || recs[0].Decision.Rule != pipeline.RuleDownstreamTemporary ||
			recs[0].Decision.Overrides != policy.RuleDMARCPass {
			t.Fatalf("evidence %+v", recs)
		}
	})

	t.Run("DNS timeout is 451", func(t *testing.T) {
		msg := e.lab.Build(t, pipelinetest.Msg{From: "x@" + pipelinetest.SlowDomain})
		start := time.Now()
		code, text := e.swaks(msg, "x@"+pipelinetest.SlowDomain, rcpt)
		if code != 451 || !strings.HasPrefix(text, "4.") {
			t.Fatalf("reply %d %s, want 451 4.x.x", code, text)
		}
		recs := e.waitEvidence(store.EvidenceQuery{MessageID: pipelinetest.MessageID(msg)}, 1)
		if len(recs) != 1 || recs[0].Decision.Action != evidence.Defer || recs[0].Auth.DMARC.Result != "temperror" {
			t.Fatalf("evidence %+v", recs)
		}
		t.Logf("DNS timeout answered in %v", time.Since(start).Round(time.Millisecond))
	})

	t.Run("trace", func(t *testing.T) {
		out, err := e.run("trace", "--config", e.cfgPath, "--domain", pipelinetest.ProtectedDomain, "--json")
		if err != nil {
			t.Fatal(err)
		}
		var rec evidence.Record
		if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &rec); err != nil || rec.Decision.Action != evidence.Reject {
			t.Fatalf("trace --json %q: %v", out, err)
		}
		out, err = e.run("trace", "--config", e.cfgPath, "--action", "quarantine", "--since", "1h")
		if err != nil || !strings.Contains(out, "dmarc-quarantine") || strings.Count(out, "\n") != 2 {
			t.Fatalf("trace table %q: %v", out, err)
		}
		if _, err := e.run("trace", "--config", e.cfgPath, "--sender", "nobody@nowhere.example"); err == nil {
			t.Error("trace with no match exited 0")
		}
	})

	t.Run("metrics", func(t *testing.T) {
		resp, err := http.Get("http://" + e.metrics + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{
			`portcullis_messages_total{action="reject",listener="mx",rule="own-domain"} 1`,
			`portcullis_messages_total{action="quarantine",listener="mx",rule="dmarc-quarantine"} 1`,
			`portcullis_check_results_total{check="dmarc",result="temperror"} 1`,
			`portcullis_dns_cache_hits_total`, `portcullis_store_batches_total`, `portcullis_process_duration_seconds_bucket`,
		} {
			if !bytes.Contains(b, []byte(want)) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
}

func TestConfigCommands(t *testing.T) {
	e := &env{t: t}
	out, err := e.run("config", "check", "--config", filepath.Join(testutil.RepoRoot(), "examples", "portcullis.yaml"))
	if err != nil || !strings.Contains(out, "OK, version sha256:") {
		t.Fatalf("config check: %q %v", out, err)
	}
	out, err = e.run("config", "check", "--config", filepath.Join(testutil.RepoRoot(), "internal", "config", "testdata", "bad", "open-relay-public.yaml"))
	if err == nil || !strings.Contains(err.Error(), "listeners[0].accept_domains") {
		t.Fatalf("config check of a bad file: %q %v", out, err)
	}
	out, err = e.run("config", "show")
	if err != nil || !strings.Contains(out, "address: 127.0.0.1:2525") || !strings.Contains(out, "address: 127.0.0.1:9425") {
		t.Fatalf("config show: %q %v", out, err)
	}
}

// TestGracefulShutdown stops the gateway (SIGTERM) while a message is being
// delivered to a slow downstream: the transaction finishes, the client gets
// its 250, the message is downstream and its evidence is committed before
// the process exits.
func TestGracefulShutdown(t *testing.T) {
	e := newEnv(t, "")
	e.start()
	e.sink.SetDelay(1500 * time.Millisecond)
	msg := e.lab.Build(t, pipelinetest.Msg{From: "alice@" + pipelinetest.GoodDomain, Sign: pipelinetest.GoodDomain})
	type res struct {
		r    result
		code int
		err  error
	}
	done := make(chan res, 1)
	go func() {
		r, code, err := sendGo(context.Background(), e.smtp, msg, "alice@"+pipelinetest.GoodDomain, rcpt)
		done <- res{r, code, err}
	}()
	// Wait until the message is with the downstream, then stop.
	deadline := time.Now().Add(10 * time.Second)
	for e.sink.InData() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	stopped := make(chan struct{})
	go func() { e.stop(); close(stopped) }()
	r := <-done
	if r.r != res2xx {
		t.Fatalf("in-flight message got %v %d %v during shutdown", r.r, r.code, r.err)
	}
	<-stopped
	if e.sink.Has(pipelinetest.MessageID(msg)) != 1 {
		t.Error("not downstream")
	}
	recs := e.evidence(store.EvidenceQuery{MessageID: pipelinetest.MessageID(msg)})
	if len(recs) != 1 || recs[0].Decision.Action != evidence.Deliver {
		t.Errorf("evidence after shutdown: %+v", recs)
	}
}
