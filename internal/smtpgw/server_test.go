package smtpgw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

func TestTransactionReachesHandler(t *testing.T) {
	h := &recorder{}
	srv, addr := startGW(t, h, nil)
	c := dial(t, addr)
	data := "From: a@example.net\r\nSubject: hi\r\n\r\n.leading dot\r\nbody\r\n"
	if err := c.Mail("a@example.net", &smtp.MailOptions{Size: int64(len(data)), Body: smtp.Body8BitMIME}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"b@example.org", "c@EXAMPLE.org"} {
		if err := c.Rcpt(r, nil); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, data)
	resp, err := w.CloseWithResponse()
	if err != nil {
		t.Fatal(err)
	}
	txs := h.all()
	if len(txs) != 1 {
		t.Fatalf("%d transactions", len(txs))
	}
	tx := txs[0]
	if resp.StatusText != "2.0.0 Queued as "+tx.ID {
		t.Errorf("client got %q: the Handler's reply must pass through", resp.StatusText)
	}
	if tx.Listener != "mx" || tx.Hostname != "mx.test" || tx.HELO != "client.test" || tx.TLS != "" || tx.Proxied {
		t.Errorf("connection facts %+v", tx)
	}
	if tx.ClientIP != netip.MustParseAddr("127.0.0.1") || tx.ClientPort == 0 || tx.LocalIP != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("addresses %v:%d -> %v:%d", tx.ClientIP, tx.ClientPort, tx.LocalIP, tx.LocalPort)
	}
	if tx.MailFrom != "a@example.net" || strings.Join(tx.RcptTo, ",") != "b@example.org,c@EXAMPLE.org" {
		t.Errorf("envelope %q %v", tx.MailFrom, tx.RcptTo)
	}
	if tx.Params.Size != int64(len(data)) || tx.Params.Body != "8BITMIME" || tx.Params.SMTPUTF8 {
		t.Errorf("params %+v", tx.Params)
	}
	if string(tx.Data) != data || tx.Normalised {
		t.Errorf("data %q", tx.Data)
	}
	if !strings.HasPrefix(tx.ID, tx.SessionID+"-1") || len(tx.SessionID) != 16 || time.Since(tx.ReceivedAt) > 5*time.Second {
		t.Errorf("ids %q %q at %v", tx.ID, tx.SessionID, tx.ReceivedAt)
	}

	// A second transaction on the same session, null reverse-path.
	if err := send(c, "", []string{"b@example.org"}, "Subject: bounce\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	tx2 := h.all()[1]
	if tx2.MailFrom != "" || tx2.SessionID != tx.SessionID || tx2.ID != tx.SessionID+"-2" {
		t.Errorf("second transaction %q %q %q", tx2.MailFrom, tx2.SessionID, tx2.ID)
	}
	st := srv.Stats().Total()
	if st.Transactions != 2 || st.Accepted != 2 || st.ConnectionsAccepted != 1 || st.ConnectionsActive != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestHandlerReplies(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Reply
		code int
		enh  smtp.EnhancedCode
		text string
	}{
		{"reject", Reply{550, EnhancedCode{5, 7, 1}, "Rejected by DMARC policy"}, 550, smtp.EnhancedCode{5, 7, 1}, "Rejected by DMARC policy"},
		{"defer", Reply{451, EnhancedCode{4, 7, 1}, "Try later"}, 451, smtp.EnhancedCode{4, 7, 1}, "Try later"},
		{"class mismatch", Reply{550, EnhancedCode{2, 0, 0}, "no"}, 550, smtp.EnhancedCode{5, 0, 0}, "no"},
		{"control characters", Reply{554, EnhancedCode{5, 7, 0}, "bad\r\x00thing"}, 554, smtp.EnhancedCode{5, 7, 0}, "bad  thing"},
		{"empty text", Reply{Code: 452}, 452, smtp.EnhancedCode{4, 0, 0}, "Try again later"},
		{"zero reply", Reply{}, 451, smtp.EnhancedCode{4, 3, 0}, "Local error in processing, try again later ["},
		{"intermediate code", Reply{Code: 354}, 451, smtp.EnhancedCode{4, 3, 0}, "Local error in processing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			h := &recorder{fn: func(context.Context, *Transaction) Reply { return in }}
			_, addr := startGW(t, h, nil)
			c := dial(t, addr)
			err := send(c, "a@example.net", []string{"b@example.org"}, "Subject: x\r\n\r\n")
			code, enh, msg := smtpCode(err)
			if code != tc.code || enh != tc.enh || !strings.HasPrefix(msg, tc.text) {
				t.Errorf("got %d %v %q, want %d %v %q...", code, enh, msg, tc.code, tc.enh, tc.text)
			}
			// The session survives a refused transaction.
			if err := c.Noop(); err != nil {
				t.Errorf("NOOP after the reply: %v", err)
			}
		})
	}
}

func TestRelayDenied(t *testing.T) {
	h := &recorder{}
	srv, addr := startGW(t, h, nil)
	c := dial(t, addr)
	if err := c.Mail("a@example.net", &smtp.MailOptions{UTF8: true}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rcpt string
		ok   bool
	}{
		{"b@example.org", true},
		{"b@EXAMPLE.ORG.", true},
		{"x@b\u00fccher.example", true},
		{"x@xn--bcher-kva.example", true},
		{"victim@other.example", false},
		{"b@sub.example.org", false},
		{"b@example.org.evil.example", false},
		{"postmaster@mx.test", true},
		{"PostMaster@MX.test", true},
		{"postmaster@other.example", false},
		{"b@[127.0.0.1]", false},
		{"b%other.example@example.org", true}, // local part; delivery decides
	} {
		err := c.Rcpt(tc.rcpt, nil)
		if tc.ok && err != nil {
			t.Errorf("RCPT %s refused: %v", tc.rcpt, err)
		}
		if !tc.ok {
			code, enh, msg := smtpCode(err)
			if code != 550 || enh != (smtp.EnhancedCode{5, 7, 1}) || msg != "Relay not permitted" {
				t.Errorf("RCPT %s: %d %v %q, want 550 5.7.1", tc.rcpt, code, enh, msg)
			}
		}
	}
	if got := srv.Stats().Total().RcptDenied; got != 5 {
		t.Errorf("RcptDenied = %d, want 5", got)
	}
	// RFC 6531 §3.4: non-ASCII addresses need the SMTPUTF8 parameter.
	c3 := dial(t, addr)
	if code, enh, _ := smtpCode(c3.Mail("j\u00f6rg@example.net", nil)); code != 553 || enh != (smtp.EnhancedCode{5, 6, 7}) {
		t.Errorf("non-ASCII MAIL without SMTPUTF8: %d %v", code, enh)
	}
	c3.Mail("a@example.net", nil)
	if code, enh, _ := smtpCode(c3.Rcpt("x@b\u00fccher.example", nil)); code != 553 || enh != (smtp.EnhancedCode{5, 6, 7}) {
		t.Errorf("non-ASCII RCPT without SMTPUTF8: %d %v", code, enh)
	}
	// Only a refused recipient: no DATA.
	c2 := dial(t, addr)
	c2.Mail("a@example.net", nil)
	c2.Rcpt("victim@other.example", nil)
	if _, err := c2.Data(); err == nil {
		t.Error("DATA accepted with no valid recipient")
	}
	if len(h.all()) != 0 {
		t.Error("Handler called")
	}
}

func TestMaxRecipients(t *testing.T) {
	_, addr := startGW(t, &recorder{}, func(l *ListenerConfig) { l.MaxRecipients = 3 })
	c := dial(t, addr)
	c.Mail("a@example.net", nil)
	for i := 0; i < 3; i++ {
		if err := c.Rcpt(fmt.Sprintf("u%d@example.org", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	code, enh, _ := smtpCode(c.Rcpt("u3@example.org", nil))
	// RFC 5321 §4.5.3.1.10: 452 too many recipients.
	if code != 452 || enh != (smtp.EnhancedCode{4, 5, 3}) {
		t.Errorf("4th RCPT: %d %v, want 452 4.5.3", code, enh)
	}
}

func TestSizeCap(t *testing.T) {
	h := &recorder{}
	srv, addr := startGW(t, h, func(l *ListenerConfig) { l.MaxMessageBytes = 10000 })
	c := dial(t, addr)
	if ok, v := c.Extension("SIZE"); !ok || v != "10000" {
		t.Errorf("SIZE advertised as %q", v)
	}
	// Declared too big: refused at MAIL (RFC 1870 §6.2).
	code, enh, _ := smtpCode(c.Mail("a@example.net", &smtp.MailOptions{Size: 20000}))
	if code != 552 || enh != (smtp.EnhancedCode{5, 3, 4}) {
		t.Errorf("MAIL SIZE=20000: %d %v", code, enh)
	}
	c.Reset()
	// go-smtp's reader counts the byte after the last one against the
	// limit: MaxMessageBytes-1 is the largest message accepted (documented
	// on ListenerConfig.MaxMessageBytes).
	exact := "Subject: x\r\n\r\n" + strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyz\r\n", 400)
	exact = exact[:9999-2] + "\r\n"
	if err := send(c, "a@example.net", []string{"b@example.org"}, exact); err != nil {
		t.Errorf("message of MaxMessageBytes-1: %v", err)
	}
	if code, _, _ := smtpCode(send(c, "a@example.net", []string{"b@example.org"}, exact[:len(exact)-2]+"x\r\n")); code != 552 {
		t.Errorf("message of MaxMessageBytes: %d (go-smtp changed? update the MaxMessageBytes doc)", code)
	}
	// Undeclared and too big: refused after the data, the rest discarded.
	code, enh, _ = smtpCode(send(c, "a@example.net", []string{"b@example.org"}, testMessage(50000)))
	if code != 552 || enh != (smtp.EnhancedCode{5, 3, 4}) {
		t.Errorf("50 kB message: %d %v", code, enh)
	}
	// The session is still in step.
	if err := send(c, "a@example.net", []string{"b@example.org"}, testMessage(9000)); err != nil {
		t.Errorf("9 kB message after the refusal: %v", err)
	}
	if n := len(h.all()); n != 2 {
		t.Errorf("Handler called %d times, want 2", n)
	}
	if st := srv.Stats().Total(); st.MessagesRefused != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestHeaderSizeCap(t *testing.T) {
	h := &recorder{}
	_, addr := startGW(t, h, func(l *ListenerConfig) { l.MaxHeaderBytes = 2048 })
	c := dial(t, addr)
	big := "Subject: x\r\n" + strings.Repeat("X-Filler: 0123456789012345678901234567890123456789\r\n", 60) + "\r\nbody\r\n"
	code, enh, _ := smtpCode(send(c, "a@example.net", []string{"b@example.org"}, big))
	if code != 552 || enh != (smtp.EnhancedCode{5, 3, 4}) {
		t.Errorf("big header: %d %v", code, enh)
	}
	// The same size in the body is fine.
	small := "Subject: x\r\n\r\n" + strings.Repeat("0123456789012345678901234567890123456789\r\n", 80)
	if err := send(c, "a@example.net", []string{"b@example.org"}, small); err != nil {
		t.Error(err)
	}
}

func TestLineLengthLimit(t *testing.T) {
	h := &recorder{}
	_, addr := startGW(t, h, nil)

	// 998 octets + CRLF = 1000: the largest line RFC 5321 §4.5.3.1.6 allows.
	r := dialRaw(t, addr, nil)
	r.envelope()
	r.write("Subject: x\r\n\r\n" + strings.Repeat("a", 998) + "\r\n.\r\n")
	if code, msg := r.reply(); code != 250 {
		t.Fatalf("1000-octet line: %d %s", code, msg)
	}

	r = dialRaw(t, addr, nil)
	r.envelope()
	r.write("Subject: x\r\n\r\n" + strings.Repeat("a", 1500) + "\r\n.\r\n")
	if code, msg := r.reply(); code != 554 || !strings.HasPrefix(msg, "5.6.0 ") {
		t.Errorf("1502-octet line: %d %s", code, msg)
	}
	if n := len(h.all()); n != 1 {
		t.Errorf("Handler called %d times, want 1", n)
	}

	// A command line beyond the limit closes the session.
	r = dialRaw(t, addr, nil)
	r.reply()
	if code, _ := r.cmd("EHLO " + strings.Repeat("x", 1200)); code != 500 {
		t.Errorf("long command: %d", code)
	}
}

func TestBareLineEndings(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
	}{
		{"bare LF", "Subject: x\r\n\r\nline\nline\r\n"},
		{"bare CR", "Subject: x\r\n\r\nline\rline\r\n"},
		{"smuggling", "Subject: x\r\n\r\nhello\n.\r\nMAIL FROM:<evil@example.com>\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &recorder{}
			_, addr := startGW(t, h, nil)
			r := dialRaw(t, addr, nil)
			r.envelope()
			r.write(tc.data + ".\r\n")
			code, msg := r.reply()
			if code != 550 || !strings.HasPrefix(msg, "5.6.0 ") {
				t.Errorf("reject mode: %d %s", code, msg)
			}
			if len(h.all()) != 0 {
				t.Error("Handler called")
			}

			h2 := &recorder{}
			_, addr2 := startGW(t, h2, func(l *ListenerConfig) { l.BareLineEndings = BareLineNormalise })
			r = dialRaw(t, addr2, nil)
			r.envelope()
			r.write(tc.data + ".\r\n")
			if code, msg := r.reply(); code != 250 {
				t.Fatalf("normalise mode: %d %s", code, msg)
			}
			tx := h2.all()[0]
			if !tx.Normalised || hasBareLineEnding(tx.Data) {
				t.Errorf("not normalised: %q", tx.Data)
			}
			if want := strings.NewReplacer("\r\n", "\r\n", "\n", "\r\n", "\r", "\r\n").Replace(tc.data); string(tx.Data) != want {
				t.Errorf("normalised data %q, want %q", tx.Data, want)
			}
		})
	}
}

func TestBDAT(t *testing.T) {
	h := &recorder{}
	_, addr := startGW(t, h, nil)
	r := dialRaw(t, addr, nil)
	r.reply()
	r.expect(250, "EHLO client.test")
	r.expect(250, "MAIL FROM:<a@example.net>")
	r.expect(250, "RCPT TO:<b@example.org>")
	part1, part2 := "Subject: chunks\r\n", "\r\nbody\r\n"
	r.write(fmt.Sprintf("BDAT %d\r\n%s", len(part1), part1))
	if code, _ := r.reply(); code != 250 {
		t.Fatalf("first chunk: %d", code)
	}
	r.write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(part2), part2))
	if code, msg := r.reply(); code != 250 || !strings.Contains(msg, "Queued as") {
		t.Fatalf("last chunk: %d %s", code, msg)
	}
	if txs := h.all(); len(txs) != 1 || string(txs[0].Data) != part1+part2 {
		t.Errorf("transactions %+v", txs)
	}
	// go-smtp lifts the line limit inside BDAT chunks; the listener does not.
	long := "Subject: x\r\n\r\n" + strings.Repeat("a", 1500) + "\r\n"
	r.expect(250, "MAIL FROM:<a@example.net>")
	r.expect(250, "RCPT TO:<b@example.org>")
	// The chunk follows the command separately, so that go-smtp reads it
	// with its line limit lifted (together, go-smtp's read-ahead trips
	// its own limit and closes the session with 500 5.4.0).
	r.write(fmt.Sprintf("BDAT %d LAST\r\n", len(long)))
	time.Sleep(50 * time.Millisecond)
	r.write(long)
	code, msg := r.reply()
	t.Logf("BDAT long line: %d %s", code, msg)
	if !(code == 554 && strings.HasPrefix(msg, "5.6.0 ") || code == 500) {
		t.Errorf("long line in BDAT: %d %s", code, msg)
	}
	if n := len(h.all()); n != 1 {
		t.Errorf("Handler called %d times, want 1", n)
	}
}

func TestHandlerPanic(t *testing.T) {
	h := &recorder{fn: func(_ context.Context, tx *Transaction) Reply {
		if tx.RcptTo[0] == "boom@example.org" {
			panic("handler bug")
		}
		return ReplyOK
	}}
	srv, addr := startGW(t, h, nil)
	c := dial(t, addr)
	code, enh, msg := smtpCode(send(c, "a@example.net", []string{"boom@example.org"}, "Subject: x\r\n\r\n"))
	if code != 451 || enh != (smtp.EnhancedCode{4, 3, 0}) || strings.Contains(msg, "handler bug") {
		t.Errorf("after panic: %d %v %q", code, enh, msg)
	}
	if !strings.Contains(msg, "["+h.all()[0].ID+"]") {
		t.Errorf("reply %q does not name the transaction", msg)
	}
	// The session continues.
	if err := send(c, "a@example.net", []string{"ok@example.org"}, "Subject: x\r\n\r\n"); err != nil {
		t.Errorf("next transaction: %v", err)
	}
	if st := srv.Stats().Total(); st.HandlerPanics != 1 || st.Deferred != 1 || st.Accepted != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestRequireTLSAndReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, cert1 := writeCert(t, dir, "")
	h := &recorder{}
	srv, addr := startGW(t, h, func(l *ListenerConfig) {
		l.TLSCertFile, l.TLSKeyFile, l.RequireTLS = certFile, keyFile, true
	})
	c := dial(t, addr)
	if ok, _ := c.Extension("STARTTLS"); !ok {
		t.Fatal("STARTTLS not offered")
	}
	code, enh, _ := smtpCode(c.Mail("a@example.net", nil))
	if code != 530 || enh != (smtp.EnhancedCode{5, 7, 0}) {
		t.Errorf("MAIL before STARTTLS: %d %v, want 530 5.7.0", code, enh)
	}

	tc, peer := dialTLS(t, addr, cert1)
	if peer.SerialNumber.Cmp(cert1.SerialNumber) != 0 {
		t.Error("wrong certificate served")
	}
	if err := send(tc, "a@example.net", []string{"b@example.org"}, "Subject: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if tx := h.all()[0]; !strings.HasPrefix(tx.TLS, "TLSv1.3 with cipher TLS_") {
		t.Errorf("TLS = %q", tx.TLS)
	}

	// Renewed certificate: served after ReloadTLS.
	newCert, newKey, cert2 := writeCert(t, dir, "new-")
	os.Rename(newCert, certFile)
	os.Rename(newKey, keyFile)
	if err := srv.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	if _, peer := dialTLS(t, addr, cert2); peer.SerialNumber.Cmp(cert2.SerialNumber) != 0 {
		t.Error("renewed certificate not served")
	}
	// A broken file keeps the current certificate.
	os.WriteFile(keyFile, []byte("garbage"), 0o600)
	if err := srv.ReloadTLS(); err == nil {
		t.Error("ReloadTLS accepted a broken key")
	}
	if _, peer := dialTLS(t, addr, cert2); peer.SerialNumber.Cmp(cert2.SerialNumber) != 0 {
		t.Error("certificate lost after a failed reload")
	}
}

func TestCertificateReloadedOnChange(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, cert1 := writeCert(t, dir, "")
	_, addr := startGW(t, &recorder{}, func(l *ListenerConfig) {
		l.TLSCertFile, l.TLSKeyFile, l.TLSReloadInterval = certFile, keyFile, time.Millisecond
	})
	if _, peer := dialTLS(t, addr, cert1); peer.SerialNumber.Cmp(cert1.SerialNumber) != 0 {
		t.Fatal("wrong certificate")
	}
	newCert, newKey, cert2 := writeCert(t, dir, "new-")
	later := time.Now().Add(time.Minute)
	os.Chtimes(newCert, later, later)
	os.Chtimes(newKey, later, later)
	os.Rename(newCert, certFile)
	os.Rename(newKey, keyFile)
	time.Sleep(5 * time.Millisecond)
	if _, peer := dialTLS(t, addr, cert2); peer.SerialNumber.Cmp(cert2.SerialNumber) != 0 {
		t.Error("changed files not picked up")
	}
}

func TestConnectionLimits(t *testing.T) {
	srv, addr := startGW(t, &recorder{}, func(l *ListenerConfig) { l.MaxConnectionsPerIP = 2; l.MaxConnections = 3 })
	greet := func() (*raw, int, string) {
		r := dialRaw(t, addr, nil)
		code, msg := r.reply()
		return r, code, msg
	}
	r1, c1, _ := greet()
	_, c2, _ := greet()
	if c1 != 220 || c2 != 220 {
		t.Fatalf("first two: %d %d", c1, c2)
	}
	r3, c3, msg := greet()
	if c3 != 421 || !strings.HasPrefix(msg, "4.7.0 ") {
		t.Errorf("third from the same address: %d %s, want 421 4.7.0", c3, msg)
	}
	if _, err := r3.c.Read(make([]byte, 1)); err == nil {
		t.Error("refused connection left open")
	}
	// One closes: a new one is welcome again.
	r1.cmd("QUIT")
	r1.c.Close()
	waitFor(t, "the closed connection to be released", func() bool { return srv.Stats().Total().ConnectionsActive == 1 })
	if _, c, _ := greet(); c != 220 {
		t.Errorf("after a close: %d", c)
	}
	if st := srv.Stats().Total(); st.ConnectionsRejected != 1 || st.ConnectionsAccepted != 4 {
		t.Errorf("stats %+v", st)
	}
}

func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	h := &recorder{fn: func(ctx context.Context, tx *Transaction) Reply {
		close(started)
		<-release
		return Reply{Code: 250, Enhanced: EnhancedCode{2, 0, 0}, Text: "Delivered"}
	}}
	srv, addr := startGW(t, h, nil)
	idle := dialRaw(t, addr, nil)
	idle.reply()
	idle.expect(250, "EHLO idle.test")

	busy := dial(t, addr)
	result := make(chan error, 1)
	go func() { result <- send(busy, "a@example.net", []string{"b@example.org"}, testMessage(5000)) }()
	<-started

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	// The idle session is told and closed; new connections are refused.
	if code, msg := idle.reply(); code != 421 || !strings.HasPrefix(msg, "4.3.2 ") {
		t.Errorf("idle session got %d %s, want 421 4.3.2", code, msg)
	}
	waitFor(t, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a transaction in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-result; err != nil {
		t.Errorf("in-flight transaction: %v, want its 250", err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := busy.Noop(); err == nil {
		t.Error("session still open after Shutdown")
	}
}

func TestShutdownDeadline(t *testing.T) {
	cancelled := make(chan struct{})
	started := make(chan struct{})
	h := &recorder{fn: func(ctx context.Context, tx *Transaction) Reply {
		close(started)
		<-ctx.Done()
		close(cancelled)
		return ErrorReply(ctx.Err(), tx.ID)
	}}
	srv, addr := startGW(t, h, nil)
	c := dial(t, addr)
	go send(c, "a@example.net", []string{"b@example.org"}, "Subject: x\r\n\r\n")
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want the deadline", err)
	}
	select {
	case <-cancelled:
	case <-time.After(2 * time.Second):
		t.Error("the Handler's context was not cancelled")
	}
}

func TestDrainingRefusesMail(t *testing.T) {
	srv, err := New(Config{Listeners: []ListenerConfig{baseListener()}, Logger: quietLogger()}, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	l := srv.listeners[0]
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	tc := &trackedConn{Conn: a, l: l, id: "test"}
	s := &session{l: l, tc: tc}
	if err := s.Mail("a@example.net", nil); err != nil {
		t.Fatalf("MAIL before draining: %v", err)
	}
	if tc.state.Load() != connTx {
		t.Error("MAIL did not mark the transaction in flight")
	}
	s.Reset()
	if tc.state.Load() != connIdle {
		t.Error("RSET did not end the transaction")
	}
	srv.draining.Store(true)
	code, enh, _ := smtpCode(s.Mail("a@example.net", nil))
	if code != 421 || enh != (smtp.EnhancedCode{4, 3, 2}) {
		t.Errorf("MAIL while draining: %d %v, want 421 4.3.2", code, enh)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown of a server never started: %v", err)
	}
}

func TestErrorReplyNeverEchoes(t *testing.T) {
	secret := fmt.Errorf("store: open /var/lib/portcullis/db: password=hunter2: %w", io.ErrUnexpectedEOF)
	r := ErrorReply(secret, "abc-1")
	if r.Code != 451 || r.Enhanced != (EnhancedCode{4, 3, 0}) || strings.Contains(r.Text, "hunter2") || strings.Contains(r.Text, "/var") {
		t.Errorf("ErrorReply = %+v", r)
	}
	if !strings.HasSuffix(r.Text, "[abc-1]") {
		t.Errorf("ErrorReply text %q does not name the id", r.Text)
	}
	for err, want := range map[error]int{
		fmt.Errorf("x: %w", ErrMessageTooBig):  552,
		fmt.Errorf("x: %w", ErrHeaderTooBig):   552,
		fmt.Errorf("x: %w", ErrLineTooLong):    554,
		fmt.Errorf("x: %w", ErrBareLineEnding): 550,
		ErrShuttingDown:                        421,
		ErrHandlerPanic:                        451,
		context.DeadlineExceeded:               451,
	} {
		if got := ErrorReply(err, "id"); got.Code != want || got.Enhanced[0] != want/100 {
			t.Errorf("ErrorReply(%v) = %+v, want %d", err, got, want)
		}
	}
	if r := ErrorReply(nil, "id"); r != ReplyOK {
		t.Errorf("ErrorReply(nil) = %+v", r)
	}
}

func TestReceivedField(t *testing.T) {
	tx := &Transaction{
		ID: "abc-1", Hostname: "mx.test", HELO: "mail.example.net", ClientIP: netip.MustParseAddr("2001:db8::25"),
		TLS: "TLSv1.3 with cipher TLS_AES_128_GCM_SHA256", Params: MailParams{SMTPUTF8: true},
		RcptTo: []string{"b@example.org"}, ReceivedAt: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC),
	}
	want := "Received: from mail.example.net ([IPv6:2001:db8::25])\r\n" +
		"\tby mx.test (Portcullis) with UTF8SMTPS (TLSv1.3 with cipher TLS_AES_128_GCM_SHA256) id abc-1\r\n" +
		"\tfor <b@example.org>;\r\n\tFri, 01 May 2026 12:00:00 +0000\r\n"
	if got := tx.ReceivedField(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	tx2 := &Transaction{ID: "x", Hostname: "mx.test", HELO: "evil\r\nX-Injected: 1", ClientIP: netip.MustParseAddr("192.0.2.1"), RcptTo: []string{"a@example.org", "b@example.org"}}
	got := tx2.ReceivedField()
	if strings.Count(got, "\r\n") != 3 || !strings.Contains(got, "[192.0.2.1]") || !strings.Contains(got, "with ESMTP id x;") {
		t.Errorf("got %q", got)
	}
}

func TestConfigValidation(t *testing.T) {
	good := baseListener()
	if err := (Config{Listeners: []ListenerConfig{good}}).Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*ListenerConfig)
		want string
	}{
		{"no name", func(l *ListenerConfig) { l.Name = "" }, "name"},
		{"bad address", func(l *ListenerConfig) { l.Address = "nowhere" }, "address"},
		{"open relay", func(l *ListenerConfig) { l.AcceptDomains = nil }, "accept_domains"},
		{"bad domain", func(l *ListenerConfig) { l.AcceptDomains = []string{"a..b"} }, "accept_domains"},
		{"cert without key", func(l *ListenerConfig) { l.TLSCertFile = "/x.pem" }, "tls_key_file"},
		{"require tls without cert", func(l *ListenerConfig) { l.RequireTLS = true }, "require_tls"},
		{"short lines", func(l *ListenerConfig) { l.MaxLineLength = 512 }, "max_line_length"},
		{"proxy without cidrs", func(l *ListenerConfig) { l.ProxyProtocol = true }, "proxy_trusted_cidrs"},
		{"bad cidr", func(l *ListenerConfig) { l.ProxyTrustedCIDRs = []string{"10.0.0.0/33"} }, "proxy_trusted_cidrs"},
		{"bare mode", func(l *ListenerConfig) { l.BareLineEndings = "fix" }, "bare_line_endings"},
		{"per-ip over total", func(l *ListenerConfig) { l.MaxConnections = 5; l.MaxConnectionsPerIP = 10 }, "max_connections_per_ip"},
		{"negative size", func(l *ListenerConfig) { l.MaxMessageBytes = -1 }, "max_message_bytes"},
	} {
		l := baseListener()
		tc.mod(&l)
		err := Config{Listeners: []ListenerConfig{l}}.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %q", tc.name, err, tc.want)
		}
	}
	if err := (Config{Listeners: []ListenerConfig{good, good}}).Validate(); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate names: %v", err)
	}
	if err := (Config{}).Validate(); err == nil {
		t.Error("no listeners accepted")
	}
	l := baseListener()
	l.TLSCertFile, l.TLSKeyFile = "/nonexistent/cert.pem", "/nonexistent/key.pem"
	if _, err := New(Config{Listeners: []ListenerConfig{l}}, &recorder{}); err == nil {
		t.Error("New accepted missing certificate files")
	}
	if _, err := New(Config{Listeners: []ListenerConfig{good}}, nil); err == nil {
		t.Error("New accepted a nil Handler")
	}
}

func TestSeveralListeners(t *testing.T) {
	h := &recorder{}
	a, b := baseListener(), baseListener()
	a.Name, b.Name = "mx", "submission-relay"
	b.AcceptDomains = []string{"other.example"}
	srv, err := New(Config{Listeners: []ListenerConfig{a, b}, Logger: quietLogger()}, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := send(dial(t, srv.Addr("submission-relay").String()), "a@example.net", []string{"x@other.example"}, "Subject: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := smtpCode(send(dial(t, srv.Addr("mx").String()), "a@example.net", []string{"x@other.example"}, "Subject: x\r\n\r\n")); code != 550 {
		t.Errorf("mx accepted other.example: %d", code)
	}
	if txs := h.all(); len(txs) != 1 || txs[0].Listener != "submission-relay" {
		t.Errorf("transactions %+v", txs)
	}
	st := srv.Stats()
	if len(st.Listeners) != 2 || st.Listeners[1].Transactions != 1 || st.Listeners[0].RcptDenied != 1 {
		t.Errorf("stats %+v", st)
	}
	if srv.Addr("nope") != nil {
		t.Error("Addr of an unknown listener")
	}
	// A second server on a bound address fails to start, cleanly.
	c := b
	c.Address = srv.Addr("mx").String()
	srv2, _ := New(Config{Listeners: []ListenerConfig{a, c}, Logger: quietLogger()}, h)
	if err := srv2.Start(); err == nil {
		srv2.Close()
		t.Error("Start on a bound address succeeded")
	}
}
