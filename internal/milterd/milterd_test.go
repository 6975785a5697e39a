package milterd_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"portcullis/internal/config"
	"portcullis/internal/evidence"
	"portcullis/internal/milterd"
	"portcullis/internal/scenarios"
	"portcullis/internal/store"
)

const zone = `$TTL 3600
$ORIGIN bank.test.
@       IN TXT "v=spf1 ip4:192.0.2.0/24 -all"
_dmarc  IN TXT "v=DMARC1; p=reject"
`

func newDaemon(t *testing.T, extra string) (*milterd.Daemon, *config.Config) {
	t.Helper()
	dir := t.TempDir()
	zf := filepath.Join(dir, "lab.zone")
	if err := os.WriteFile(zf, []byte(zone), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse([]byte("data_dir: " + filepath.Join(dir, "data") + "\nauthserv_id: mx.portcullis.test\n" +
		"dns:\n  zone_file: " + zf + "\nmetrics:\n  disabled: true\n" +
		"milter:\n  listen: inet:127.0.0.1:0\n  metrics_address: 127.0.0.1:0\n" + extra))
	if err != nil {
		t.Fatal(err)
	}
	d, err := milterd.New(context.Background(), c, milterd.Options{Logger: scenarios.QuietLogger(), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return d, c
}

// TestDaemon: the daemon decides a spoof over the milter protocol with
// the configured policy, records it with path "milter", serves /healthz
// and /metrics, and shuts down cleanly.
func TestDaemon(t *testing.T) {
	d, _ := newDaemon(t, "")
	if d.Releaser() != nil {
		t.Error("a releaser without milter.release.via")
	}
	d.Start()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = d.Shutdown(context.Background())
		}
	})

	c := gomilter.NewClient("tcp", d.Addr().String(), gomilter.WithAction(gomilter.AllClientSupportedActionMasks))
	macros := gomilter.NewMacroBag()
	macros.Set(gomilter.MacroQueueId, "4QDAEMON")
	s, err := c.Session(macros)
	if err != nil {
		t.Fatal(err)
	}
	steps := []func() (*gomilter.Action, error){
		func() (*gomilter.Action, error) { return s.Conn("spoofer", gomilter.FamilyInet, 1234, "203.0.113.9") },
		func() (*gomilter.Action, error) { return s.Helo("spoofer.test") },
		func() (*gomilter.Action, error) { return s.Mail("x@attacker.test", "") },
		func() (*gomilter.Action, error) { return s.Rcpt("alice@inbound.test", "") },
		func() (*gomilter.Action, error) { return s.DataStart() },
		func() (*gomilter.Action, error) { return s.HeaderField("From", " security@bank.test", nil) },
		func() (*gomilter.Action, error) { return s.HeaderField("Message-ID", " <daemon@test>", nil) },
		func() (*gomilter.Action, error) { return s.HeaderEnd() },
		func() (*gomilter.Action, error) { return s.BodyChunk([]byte("Verify your account.\r\n")) },
	}
	for i, step := range steps {
		if a, err := step(); err != nil || a.StopProcessing() {
			t.Fatalf("step %d: %v %v", i, a, err)
		}
	}
	_, act, err := s.End()
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if act.Type != gomilter.ActionRejectWithCode || !strings.HasPrefix(act.SMTPReply, "550 5.7.26 ") {
		t.Errorf("spoof: %v", act)
	}

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + d.MetricsAddr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz %d %q", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "portcullis_build_info") || !strings.Contains(body, `rule="dmarc-reject"`) {
		t.Errorf("/metrics %d:\n%s", code, body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Store().Flush(ctx); err != nil {
		t.Fatal(err)
	}
	page, err := d.Store().QueryEvidence(ctx, store.EvidenceQuery{MessageID: "daemon@test"})
	if err != nil || len(page.Records) != 1 {
		t.Fatalf("evidence: %v %d", err, len(page.Records))
	}
	r := page.Records[0]
	if r.Decision.Action != evidence.Reject || r.Path != "milter" || r.QueueID != "4QDAEMON" || r.ConfigVersion != d.ConfigVersion() || r.Client.IP != "203.0.113.9" {
		t.Errorf("record %+v", r)
	}
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	stopped = true
	if _, err := net.DialTimeout("tcp", d.Addr().String(), time.Second); err == nil {
		t.Error("the milter still listens after Shutdown")
	}
}

// TestDaemonRelease: with milter.release.via the daemon builds its
// releaser (and so sends quarantine notifications).
func TestDaemonRelease(t *testing.T) {
	d, _ := newDaemon(t, "  release:\n    via: 127.0.0.1:10026\n")
	defer d.Shutdown(context.Background())
	if d.Releaser() == nil {
		t.Fatal("no releaser")
	}
}

// TestDaemonBadListen: a listen address in use is an error of New.
func TestDaemonBadListen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	c, err := config.Parse([]byte("data_dir: " + dir + "\nmetrics:\n  disabled: true\nmilter:\n  listen: inet:" + ln.Addr().String() + "\n  metrics_disabled: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := milterd.New(context.Background(), c, milterd.Options{Logger: scenarios.QuietLogger()}); err == nil || !strings.Contains(err.Error(), "milter.listen") {
		t.Errorf("New on a busy address: %v", err)
	}
}
