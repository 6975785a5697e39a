package smtpgw

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"portcullis/internal/testutil"
)

// swaks runs the swaks SMTP client (Debian package swaks) against addr and
// returns its exit error and transcript.
func swaks(t *testing.T, addr string, args ...string) (string, error) {
	t.Helper()
	bin := testutil.LookPath(t, "swaks", "swaks")
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := []string{"--server", host, "--port", port, "--helo", "swaks.test", "--from", "sender@example.net", "--timeout", "10"}
	out, err := exec.CommandContext(ctx, bin, append(base, args...)...).CombinedOutput()
	return string(out), err
}

func TestSwaksSend(t *testing.T) {
	h := &recorder{}
	_, addr := startGW(t, h, nil)
	out, err := swaks(t, addr, "--to", "rcpt@example.org", "--header", "Subject: from swaks", "--body", "Hello from swaks.")
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	txs := h.all()
	if len(txs) != 1 {
		t.Fatalf("%d transactions\n%s", len(txs), out)
	}
	tx := txs[0]
	if tx.HELO != "swaks.test" || tx.MailFrom != "sender@example.net" || len(tx.RcptTo) != 1 || tx.RcptTo[0] != "rcpt@example.org" {
		t.Errorf("envelope %q %q %v", tx.HELO, tx.MailFrom, tx.RcptTo)
	}
	if !strings.Contains(string(tx.Data), "Subject: from swaks\r\n") || !strings.Contains(string(tx.Data), "Hello from swaks.") {
		t.Errorf("data %q", tx.Data)
	}
	if !strings.Contains(out, "<-  250 2.0.0 Queued as "+tx.ID) {
		t.Errorf("swaks did not see the Handler's reply:\n%s", out)
	}
}

func TestSwaksSTARTTLS(t *testing.T) {
	bin := testutil.LookPath(t, "swaks", "swaks")
	if sup, _ := exec.Command(bin, "--support").CombinedOutput(); !strings.Contains(string(sup), "TLS supported") {
		testutil.Missing(t, "swaks without TLS support (install Debian package libnet-ssleay-perl)")
	}
	certFile, keyFile, _ := writeCert(t, t.TempDir(), "")
	h := &recorder{}
	_, addr := startGW(t, h, func(l *ListenerConfig) {
		l.TLSCertFile, l.TLSKeyFile, l.RequireTLS = certFile, keyFile, true
	})
	out, err := swaks(t, addr, "--to", "rcpt@example.org", "--tls", "--body", "over TLS")
	if err != nil {
		t.Fatalf("swaks --tls: %v\n%s", err, out)
	}
	if txs := h.all(); len(txs) != 1 || !strings.HasPrefix(txs[0].TLS, "TLSv1.") {
		t.Fatalf("transactions %+v\n%s", txs, out)
	}
	if !strings.Contains(out, "<~  250 ") {
		t.Errorf("no encrypted 250 in the transcript:\n%s", out)
	}
	// Without STARTTLS the listener refuses MAIL.
	out, err = swaks(t, addr, "--to", "rcpt@example.org", "--body", "plaintext")
	if err == nil || !strings.Contains(out, "530 5.7.0") {
		t.Errorf("plaintext MAIL: %v\n%s", err, out)
	}
}

func TestSwaksOversize(t *testing.T) {
	h := &recorder{}
	_, addr := startGW(t, h, func(l *ListenerConfig) { l.MaxMessageBytes = 5000 })
	body := filepath.Join(t.TempDir(), "body.txt")
	if err := os.WriteFile(body, []byte(strings.Repeat("0123456789 abcdefghijklmnopqrstuvwxyz\n", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := swaks(t, addr, "--to", "rcpt@example.org", "--body", "@"+body)
	if err == nil || !strings.Contains(out, "552 5.3.4") {
		t.Errorf("oversize message: %v\n%s", err, out)
	}
	if len(h.all()) != 0 {
		t.Error("Handler called for an oversize message")
	}
	// The same listener still takes a small one.
	if out, err := swaks(t, addr, "--to", "rcpt@example.org", "--body", "small"); err != nil {
		t.Errorf("small message: %v\n%s", err, out)
	}
	// And refuses relaying.
	out, err = swaks(t, addr, "--to", "victim@elsewhere.example", "--body", "relay?")
	if err == nil || !strings.Contains(out, "550 5.7.1 Relay not permitted") {
		t.Errorf("relay attempt: %v\n%s", err, out)
	}
}
