package gateway_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"portcullis/internal/audit"
	"portcullis/internal/config"
	"portcullis/internal/dns/dnstest"
	"portcullis/internal/gateway"
	"portcullis/internal/pipeline/pipelinetest"
	"portcullis/internal/store"
	"portcullis/internal/store/storetest"
)

// TestGatewayMaildir runs the gateway in-process on the zero-configuration
// downstream (Maildir under the data directory): a message whose DMARC
// passes lands in the recipient's Maildir with our Authentication-Results;
// /healthz and /metrics answer; Shutdown stops serving.
func TestGatewayMaildir(t *testing.T) {
	lab := pipelinetest.NewLab(t)
	srv := dnstest.Serve(t, lab.Zone)
	dir := t.TempDir()
	y := "data_dir: " + dir + "\nhostname: gw.lab.example\ndns:\n  servers: [\"" + srv.Addr() + "\"]\n  timeout: 1s\n" +
		"listeners:\n  - name: local\n    address: 127.0.0.1:0\n    accept_domains: [" + pipelinetest.RecipientDomain + "]\n" +
		"metrics:\n  address: 127.0.0.1:0\n"
	cfg, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(context.Background(), cfg, gateway.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	defer g.Shutdown(context.Background())

	msg := lab.Build(t, pipelinetest.Msg{From: "alice@" + pipelinetest.GoodDomain, Sign: pipelinetest.GoodDomain})
	rcpt := "bob@" + pipelinetest.RecipientDomain
	c, err := smtp.Dial(g.SMTPAddr("local").String())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("alice@"+pipelinetest.GoodDomain, []string{rcpt}, strings.NewReader(string(msg))); err != nil {
		t.Fatal(err)
	}
	c.Close()

	files, _ := filepath.Glob(filepath.Join(dir, "maildir", rcpt, "new", "*"))
	if len(files) != 1 {
		t.Fatalf("%d files in the Maildir", len(files))
	}
	b, _ := os.ReadFile(files[0])
	if !strings.Contains(string(b), "Authentication-Results: gw.lab.example;") || !strings.Contains(string(b), "dmarc=pass") {
		t.Errorf("delivered message:\n%s", b)
	}

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + g.MetricsAddr().String() + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/healthz"); code != 200 {
		t.Errorf("healthz %d %s", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, `portcullis_messages_total{action="deliver",listener="local",rule="dmarc-pass"} 1`) ||
		!strings.Contains(body, `portcullis_build_info{config_version="`+g.ConfigVersion()+`"`) {
		t.Errorf("metrics %d:\n%s", code, body)
	}
	if code, _ := get("/debug/pprof/"); code != 404 {
		t.Errorf("pprof served without metrics.pprof: %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := smtp.Dial(g.SMTPAddr("local").String()); err == nil {
		t.Error("still accepting connections after Shutdown")
	}
}

// TestGatewayRetentionAudited checks that the gateway's pruning removes an
// expired quarantined message and an evidence record past its retention,
// and records both removals in the audit log.
func TestGatewayRetentionAudited(t *testing.T) {
	dir := t.TempDir()
	y := "data_dir: " + dir + "\nhostname: gw.lab.example\n" +
		"listeners:\n  - name: local\n    address: 127.0.0.1:0\n    accept_domains: [" + pipelinetest.RecipientDomain + "]\n" +
		"metrics:\n  disabled: true\nstore:\n  prune_interval: 100ms\n  evidence_retention: 1d\n"
	cfg, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, _, err := cfg.OpenStore(ctx, quiet)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	it := &store.QuarantineItem{ID: "q-expired", Recipients: []string{"bob@" + pipelinetest.RecipientDomain},
		Sender: "po@partner.example", Subject: "PO", Reason: "dmarc-quarantine",
		ReceivedAt: now.Add(-48 * time.Hour), ExpiresAt: now.Add(-time.Hour)}
	if err := st.PutQuarantine(ctx, it, strings.NewReader("Subject: PO\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := st.PutEvidence(ctx, storetest.FullRecord("ev-old", now.Add(-72*time.Hour))); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	g, err := gateway.New(ctx, cfg, gateway.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	defer g.Shutdown(context.Background())
	want := map[audit.Action]string{audit.QuarantineExpire: `"ids":["q-expired"]`, audit.EvidenceExpire: `"removed":1`}
	for action, fragment := range want {
		for {
			evs, _, err := g.AuditLog().List(ctx, audit.Filter{Action: string(action)})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) > 0 {
				if len(evs) != 1 || evs[0].Actor != audit.SystemActor || !strings.Contains(string(evs[0].After), fragment) {
					t.Errorf("%s: %d entries, first %+v, after %s", action, len(evs), evs[0], evs[0].After)
				}
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("no %s entry in the audit log", action)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
