package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"portcullis/internal/evidence"
	"portcullis/internal/milter/postfixtest"
	"portcullis/internal/store"
	"portcullis/internal/store/sqlite"
	"portcullis/internal/testutil"
)

const milterZone = `$TTL 3600
$ORIGIN bank.test.
@       IN TXT "v=spf1 ip4:192.0.2.0/24 -all"
_dmarc  IN TXT "v=DMARC1; p=reject"
$ORIGIN monitor.test.
@       IN TXT "v=spf1 ip4:127.0.0.0/8 -all"
_dmarc  IN TXT "v=DMARC1; p=none"
`

// TestMilterCommand runs `portcullis milter` (the command, with its
// configuration file and lab zone) inside a private Postfix: a spoof of a
// p=reject domain is refused with 550 5.7.x through Postfix, a message that
// passes DMARC is delivered with our Authentication-Results, and both leave
// evidence records with path "milter" and Postfix's queue id.
func TestMilterCommand(t *testing.T) {
	postfixtest.Require(t)
	swaksBin := testutil.LookPath(t, "swaks", "swaks")
	dir := t.TempDir()
	zone := filepath.Join(dir, "lab.zone")
	if err := os.WriteFile(zone, []byte(milterZone), 0o644); err != nil {
		t.Fatal(err)
	}
	port := postfixtest.FreePort(t)
	cfg := filepath.Join(dir, "portcullis.yaml")
	data := filepath.Join(dir, "data")
	yaml := "data_dir: " + data + "\nhostname: mx.portcullis.test\nauthserv_id: mx.portcullis.test\n" +
		"dns:\n  zone_file: " + zone + "\nmetrics:\n  disabled: true\n" +
		"milter:\n  listen: inet:127.0.0.1:" + strconv.Itoa(port) + "\n  metrics_disabled: true\n  timeout: 20s\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _, err := runCmd(t, newConfigCmd, "", "config", "check", "--config", cfg); err != nil {
		t.Fatalf("config check: %v\n%s", err, out)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var stderr strings.Builder
	go func() {
		root := newRootCmd()
		root.SetArgs([]string{"milter", "--config", cfg})
		root.SetOut(&strings.Builder{})
		root.SetErr(&stderr)
		done <- root.ExecuteContext(ctx)
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("portcullis milter: %v", err)
			}
		case <-time.After(40 * time.Second):
			t.Error("portcullis milter did not stop")
		}
	}
	t.Cleanup(stop)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for deadline := time.Now().Add(15 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the milter does not listen on %s: %v\n%s", addr, err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	sink := postfixtest.NewSink(t, false)
	pf := postfixtest.Start(t, postfixtest.Config{RelayTo: sink.Addr(), Domains: []string{"inbound.test"}, Milter: "inet:" + addr})
	host, pport, _ := net.SplitHostPort(pf.Addr)
	send := func(from, hdrFrom, id string) (string, error) {
		sctx, scancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer scancel()
		out, err := exec.CommandContext(sctx, swaksBin, "--server", host, "--port", pport, "--helo", "client.test",
			"--from", from, "--to", "alice@inbound.test", "--timeout", "30",
			"--header", "From: "+hdrFrom, "--header", "Message-Id: <"+id+">", "--header", "Subject: milter command test",
			"--body", "Hello.").CombinedOutput()
		return string(out), err
	}
	out, err := send("x@attacker.test", "security@bank.test", "spoof@cmd.test")
	if err == nil || !strings.Contains(out, "<** 550 5.7.26 ") {
		t.Errorf("spoof: %v\n%s", err, out)
	}
	out, err = send("alerts@monitor.test", "alerts@monitor.test", "none@cmd.test")
	if err != nil {
		t.Fatalf("aligned: %v\n%s", err, out)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	m, err := sink.Find(wctx, postfixtest.ByMessageID("none@cmd.test"))
	if err != nil {
		t.Fatalf("not delivered: %v\n%s", err, pf.Log())
	}
	if ars := m.Header("Authentication-Results"); len(ars) != 1 || !strings.HasPrefix(ars[0], "mx.portcullis.test;") || !strings.Contains(ars[0], "dmarc=pass") {
		t.Errorf("Authentication-Results %q", ars)
	}

	// The evidence, read once the milter has stopped (and committed).
	stop()
	st, err := sqlite.Open(context.Background(), data, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for id, want := range map[string]evidence.Action{"spoof@cmd.test": evidence.Reject, "none@cmd.test": evidence.Deliver} {
		page, err := st.QueryEvidence(context.Background(), store.EvidenceQuery{MessageID: id})
		if err != nil || len(page.Records) != 1 {
			t.Fatalf("%s: %v %d records", id, err, len(page.Records))
		}
		r := page.Records[0]
		if r.Decision.Action != want || r.Path != "milter" || r.Listener != "milter" || r.QueueID == "" || !strings.HasPrefix(r.ConfigVersion, "sha256:") {
			t.Errorf("%s: %s by %s, path %q listener %q queue id %q version %q", id, r.Decision.Action, r.Decision.Rule, r.Path, r.Listener, r.QueueID, r.ConfigVersion)
		}
	}
	if !strings.Contains(stderr.String(), "portcullis milter started") {
		t.Errorf("log:\n%s", stderr.String())
	}
}
