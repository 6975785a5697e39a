package relay

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

func TestSMTPDeliverHappyPath(t *testing.T) {
	s := &sink{}
	addr, _ := startSink(t, s, sinkOpts{})
	d := newSMTP(t, SMTPConfig{Hosts: []string{addr}, TLS: TLSOff})
	data := []byte("From: a@example.net\r\nSubject: dots\r\n\r\nline one\r\n.\r\n..two dots\r\n.leading dot\r\n")
	res := d.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org", "y@example.org"}, Data: data})
	if res.Status != StatusAccepted || res.Err != nil {
		t.Fatalf("status %v err %v", res.Status, res.Err)
	}
	if res.Partial() {
		t.Error("Partial() = true for a full acceptance")
	}
	if res.Host != addr || res.TLS != "" {
		t.Errorf("host %q tls %q", res.Host, res.TLS)
	}
	if res.Reply.Code != 250 || res.Reply.Enhanced != (EnhancedCode{2, 0, 0}) || !res.Reply.Remote || res.Reply.Text != "OK: queued" {
		t.Errorf("reply %+v", res.Reply)
	}
	if len(res.Rcpts) != 2 || res.Rcpts[0].Rcpt != "x@example.org" || res.Rcpts[1].Status != StatusAccepted {
		t.Errorf("rcpts %+v", res.Rcpts)
	}
	msgs := s.messages()
	if len(msgs) != 1 {
		t.Fatalf("sink got %d messages", len(msgs))
	}
	m := msgs[0]
	if !bytes.Equal(m.data, data) {
		t.Errorf("data differs (dot-stuffing?):\n got %q\nwant %q", m.data, data)
	}
	if m.from != "a@example.net" || strings.Join(m.rcpts, ",") != "x@example.org,y@example.org" {
		t.Errorf("envelope %q %v", m.from, m.rcpts)
	}
	if m.helo != "gw.test" {
		t.Errorf("EHLO name %q", m.helo)
	}
	if m.opts.Size != int64(len(data)) {
		t.Errorf("SIZE=%d, want %d", m.opts.Size, len(data))
	}
}

func TestSMTPNullSenderAndDuplicates(t *testing.T) {
	s := &sink{}
	addr, _ := startSink(t, s, sinkOpts{})
	d := newSMTP(t, SMTPConfig{Hosts: []string{addr}, TLS: TLSOff})
	res := d.Deliver(context.Background(), Message{MailFrom: "", Rcpts: []string{"x@example.org", "x@example.org"}, Data: testMessage(100)})
	if res.Status != StatusAccepted || len(res.Rcpts) != 2 || res.Rcpts[1].Status != StatusAccepted {
		t.Fatalf("%+v", res)
	}
	if got := s.rcptCmds.Load(); got != 1 {
		t.Errorf("%d RCPT commands for a duplicated recipient, want 1", got)
	}
	if m := s.messages(); len(m) != 1 || m[0].from != "" {
		t.Errorf("messages %+v", m)
	}
}

func TestSMTPTemporaryReplies(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    *sink
	}{
		{"MAIL 451", &sink{mailErr: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}}},
		{"RCPT 450", &sink{rcptErr: map[string]error{"x@example.org": &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "mailbox busy"}}}},
		{"DATA 452", &sink{dataErr: &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "insufficient storage"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, _ := startSink(t, tc.s, sinkOpts{})
			d := newSMTP(t, SMTPConfig{Hosts: []string{addr}, TLS: TLSOff})
			res := d.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org"}, Data: testMessage(200)})
			if res.Status != StatusTemporary || !IsTemporary(res.Err) || !errors.Is(res.Err, ErrRejected) {
				t.Fatalf("status %v err %v", res.Status, res.Err)
			}
			if res.Reply.Code/100 != 4 || !res.Reply.Remote || res.Reply.Text == "" {
				t.Errorf("reply %+v", res.Reply)
			}
			if len(tc.s.messages()) != 0 {
				t.Error("message stored although refused")
			}
		})
	}
}

func TestSMTPPermanentKeepsRemoteText(t *testing.T) {
	s := &sink{dataErr: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message refused by content filter #42"}}
	addr, _ := startSink(t, s, sinkOpts{})
	d := newSMTP(t, SMTPConfig{Hosts: []string{addr}, TLS: TLSOff})
	res := d.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org", "y@example.org"}, Data: testMessage(200)})
	if res.Status != StatusPermanent || !IsPermanent(res.Err) {
		t.Fatalf("status %v err %v", res.Status, res.Err)
	}
	want := Reply{Code: 554, Enhanced: EnhancedCode{5, 7, 1}, Text: "Message refused by content filter #42", Remote: true}
	if res.Reply != want {
		t.Errorf("reply %+v, want %+v", res.Reply, want)
	}
	if res.Reply.String() != "554 5.7.1 Message refused by content filter #42" {
		t.Errorf("String() = %q", res.Reply.String())
	}
	for _, rr := range res.Rcpts {
		if rr.Status != StatusPermanent || rr.Reply != want {
			t.Errorf("rcpt %+v", rr)
		}
	}
}

func TestSMTPRecipientMix(t *testing.T) {
	s := &sink{rcptErr: map[string]error{"gone@example.org": &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}}}
	addr, _ := startSink(t, s, sinkOpts{})
	d := newSMTP(t, SMTPConfig{Hosts: []string{addr}, TLS: TLSOff})
	res := d.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org", "gone@example.org"}, Data: testMessage(200)})
	if res.Status != StatusAccepted || !res.Partial() {
		t.Fatalf("status %v partial %v", res.Status, res.Partial())
	}
	if r := res.Rcpts[1]; r.Status != StatusPermanent || r.Reply.Code != 550 || r.Reply.Text != "No such user" {
		t.Errorf("refused rcpt %+v", r)
	}
	if m := s.messages(); len(m) != 1 || len(m[0].rcpts) != 1 || m[0].rcpts[0] != "x@example.org" {
		t.Errorf("sink %+v", m)
	}

	// Every recipient refused: no DATA, permanent, session reusable.
	res = d.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"gone@example.org"}, Data: testMessage(200)})
	if res.Status != StatusPermanent || res.Reply.Code != 550 {
		t.Fatalf("all refused: %+v", res)
	}
	res = d.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org"}, Data: testMessage(200)})
	if res.Status != StatusAccepted {
		t.Fatalf("after RSET: %+v", res)
	}
	if st := d.Stats(); st.Dials != 1 || st.Reused != 2 {
		t.Errorf("stats %+v: want 1 dial and 2 reuses", st)
	}
}

func TestLMTPPerRecipientReplies(t *testing.T) {
	s := &sink{lmtpStatus: map[string]error{
		"full@example.org":    &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "Mailbox full"},
		"blocked@example.org": &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Delivery not authorised"},
	}}
	addr, _ := startSink(t, s, sinkOpts{lmtp: true})
	d := newSMTP(t, SMTPConfig{Hosts: []string{addr}, LMTP: true, TLS: TLSOff})
	res := d.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"ok@example.org", "full@example.org", "blocked@example.org"}, Data: testMessage(300)})
	want := []struct {
		st   Status
		code int
		text string
	}{
		{StatusAccepted, 250, ""},
		{StatusTemporary, 452, "Mailbox full"},
		{StatusPermanent, 550, "Delivery not authorised"},
	}
	for i, w := range want {
		r := res.Rcpts[i]
		// go-smtp's LMTP server puts "<rcpt> " in front of its text.
		if r.Status != w.st || r.Reply.Code != w.code || !strings.HasSuffix(r.Reply.Text, w.text) || !r.Reply.Remote {
			t.Errorf("rcpt %d: %+v, want %+v", i, r, w)
		}
	}
	if res.Status != StatusTemporary || !res.Partial() {
		t.Errorf("overall %v partial %v: a temporary recipient makes the whole temporary", res.Status, res.Partial())
	}
	if m := s.messages(); len(m) != 1 || strings.Join(m[0].rcpts, ",") != "ok@example.org" {
		t.Errorf("sink %+v", m)
	}
	// The session stays usable after mixed replies.
	res = d.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"ok@example.org"}, Data: testMessage(300)})
	if res.Status != StatusAccepted || d.Stats().Reused != 1 {
		t.Errorf("second LMTP delivery %v, stats %+v", res.Status, d.Stats())
	}
}

func TestLMTPOverUnixSocket(t *testing.T) {
	s := &sink{}
	srv := smtp.NewServer(s)
	srv.LMTP = true
	srv.Domain = "lmtp.test"
	sock := filepath.Join(t.TempDir(), "lmtp.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	d := newSMTP(t, SMTPConfig{Hosts: []string{"unix:" + sock}, LMTP: true})
	res := d.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"ok@example.org"}, Data: testMessage(100)})
	if res.Status != StatusAccepted {
		t.Fatalf("%+v", res)
	}
}

func TestSMTPDownstreamDown(t *testing.T) {
	d := newSMTP(t, SMTPConfig{Hosts: []string{closedPort(t)}, ConnectTimeout: time.Second})
	start := time.Now()
	res := d.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org"}, Data: testMessage(100)})
	if res.Status != StatusTemporary || !errors.Is(res.Err, ErrUnreachable) || !IsTemporary(res.Err) {
		t.Fatalf("status %v err %v", res.Status, res.Err)
	}
	if res.Reply.Remote || res.Reply.Code != 451 || res.Reply.Enhanced != (EnhancedCode{4, 4, 1}) {
		t.Errorf("reply %+v", res.Reply)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
	if d.Stats().DialFailures != 1 {
		t.Errorf("stats %+v", d.Stats())
	}
}

func TestSMTPFailoverToNextHost(t *testing.T) {
	s := &sink{}
	addr, _ := startSink(t, s, sinkOpts{})
	busy := &sink{mailErr: &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "going down"}}
	busyAddr, _ := startSink(t, busy, sinkOpts{})
	d := newSMTP(t, SMTPConfig{Hosts: []string{closedPort(t), busyAddr, addr}, TLS: TLSOff})
	res := d.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org"}, Data: testMessage(100)})
	if res.Status != StatusAccepted || res.Host != addr {
		t.Fatalf("status %v host %q err %v", res.Status, res.Host, res.Err)
	}
	if len(s.messages()) != 1 {
		t.Error("third host did not get the message")
	}
	// A permanent answer from the first host is final: no failover.
	perm := &sink{mailErr: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "sender refused"}}
	permAddr, _ := startSink(t, perm, sinkOpts{})
	other := &sink{}
	otherAddr, _ := startSink(t, other, sinkOpts{})
	d2 := newSMTP(t, SMTPConfig{Hosts: []string{permAddr, otherAddr}, TLS: TLSOff})
	res = d2.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org"}, Data: testMessage(100)})
	if res.Status != StatusPermanent || res.Host != permAddr || len(other.messages()) != 0 {
		t.Errorf("permanent: status %v host %q", res.Status, res.Host)
	}
}

func TestSMTPConnectionCutMidData(t *testing.T) {
	s := &sink{cutAfter: 2000}
	addr, _ := startSink(t, s, sinkOpts{})
	d := newSMTP(t, SMTPConfig{Hosts: []string{addr}, TLS: TLSOff})
	res := d.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org"}, Data: testMessage(200000)})
	if res.Status != StatusTemporary || !errors.Is(res.Err, ErrConnectionLost) {
		t.Fatalf("status %v err %v", res.Status, res.Err)
	}
	if res.Reply.Remote || res.Reply.Code != 451 {
		t.Errorf("reply %+v", res.Reply)
	}
	if st := d.Stats(); st.Idle != 0 {
		t.Errorf("a cut session went back to the pool: %+v", st)
	}
}

func TestSMTPContextDeadline(t *testing.T) {
	s := &sink{dataDelay: 2 * time.Second}
	addr, _ := startSink(t, s, sinkOpts{})
	d := newSMTP(t, SMTPConfig{Hosts: []string{addr}, TLS: TLSOff})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	res := d.Deliver(ctx, Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org"}, Data: testMessage(100)})
	if res.Status != StatusTemporary || !errors.Is(res.Err, ErrTimeout) {
		t.Fatalf("status %v err %v", res.Status, res.Err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("Deliver returned after %v, the context allowed 300ms", el)
	}
	// A context already done: nothing is attempted.
	res = d.Deliver(ctx, Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org"}, Data: testMessage(100)})
	if res.Status != StatusTemporary || !errors.Is(res.Err, ErrTimeout) {
		t.Errorf("expired context: %v %v", res.Status, res.Err)
	}
}

func TestSMTPGreetingRefusedIsTemporary(t *testing.T) {
	addr := scripted(t, "554 5.3.2 no service here\r\n", "250 ok\r\n")
	d := newSMTP(t, SMTPConfig{Hosts: []string{addr}})
	res := d.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org"}, Data: testMessage(100)})
	if res.Status != StatusTemporary || !errors.Is(res.Err, ErrProtocol) {
		t.Fatalf("status %v err %v", res.Status, res.Err)
	}
}

func TestSMTPSizeLimitRespected(t *testing.T) {
	s := &sink{}
	addr, _ := startSink(t, s, sinkOpts{maxBytes: 1000})
	d := newSMTP(t, SMTPConfig{Hosts: []string{addr}, TLS: TLSOff})
	res := d.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org"}, Data: testMessage(5000)})
	if res.Status != StatusPermanent || !errors.Is(res.Err, ErrMessageTooBig) {
		t.Fatalf("status %v err %v", res.Status, res.Err)
	}
	if res.Reply.Code != 552 || res.Reply.Enhanced != (EnhancedCode{5, 3, 4}) || res.Reply.Remote {
		t.Errorf("reply %+v", res.Reply)
	}
	if s.sessions.Load() != 1 || len(s.messages()) != 0 {
		t.Error("message sent although over SIZE")
	}
	// A small one still goes, on the same session.
	if res := d.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org"}, Data: testMessage(200)}); res.Status != StatusAccepted {
		t.Errorf("small message: %+v", res)
	}
}

func TestSMTPUTF8AndEightBit(t *testing.T) {
	utf8Msg := []byte("From: =?utf-8?q?J=C3=B6rg?= <j@example.net>\r\nSubject: Grüße\r\n\r\nHallo\r\n")
	t.Run("offered", func(t *testing.T) {
		s := &sink{}
		addr, _ := startSink(t, s, sinkOpts{utf8: true})
		d := newSMTP(t, SMTPConfig{Hosts: []string{addr}, TLS: TLSOff})
		res := d.Deliver(context.Background(), Message{MailFrom: "jörg@exämple.net", Rcpts: []string{"x@example.org"}, Data: utf8Msg, SMTPUTF8: true})
		if res.Status != StatusAccepted {
			t.Fatalf("%+v", res)
		}
		if m := s.messages(); len(m) != 1 || !m[0].opts.UTF8 || m[0].opts.Body != smtp.Body8BitMIME {
			t.Errorf("MAIL options %+v", m[0].opts)
		}
	})
	t.Run("address without SMTPUTF8", func(t *testing.T) {
		s := &sink{}
		addr, _ := startSink(t, s, sinkOpts{})
		d := newSMTP(t, SMTPConfig{Hosts: []string{addr}, TLS: TLSOff})
		res := d.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"jörg@example.org"}, Data: testMessage(100)})
		if res.Status != StatusPermanent || !errors.Is(res.Err, ErrNeedsSMTPUTF8) || res.Reply.Enhanced != (EnhancedCode{5, 6, 7}) {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("header without SMTPUTF8", func(t *testing.T) {
		s := &sink{}
		addr, _ := startSink(t, s, sinkOpts{})
		d := newSMTP(t, SMTPConfig{Hosts: []string{addr}, TLS: TLSOff})
		res := d.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org"}, Data: utf8Msg, SMTPUTF8: true})
		if res.Status != StatusPermanent || res.Reply.Enhanced != (EnhancedCode{5, 6, 9}) {
			t.Fatalf("%+v", res)
		}
		// Without the sender's SMTPUTF8 the same bytes are plain 8-bit
		// content, which 8BITMIME carries.
		res = d.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org"}, Data: utf8Msg})
		if res.Status != StatusAccepted {
			t.Fatalf("8-bit content: %+v", res)
		}
	})
	t.Run("8-bit without 8BITMIME", func(t *testing.T) {
		addr := scripted(t, "220 old.test ESMTP\r\n", "250-old.test\r\n250 SIZE 100000\r\n")
		d := newSMTP(t, SMTPConfig{Hosts: []string{addr}})
		res := d.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org"}, Data: utf8Msg})
		if res.Status != StatusPermanent || !errors.Is(res.Err, ErrNeeds8BitMIME) || res.Reply.Enhanced != (EnhancedCode{5, 6, 3}) {
			t.Fatalf("%+v", res)
		}
		res = d.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org"}, Data: testMessage(100)})
		if res.Status != StatusAccepted {
			t.Fatalf("7-bit message to the same server: %+v", res)
		}
	})
}

func TestSMTPBadAddresses(t *testing.T) {
	s := &sink{}
	addr, _ := startSink(t, s, sinkOpts{})
	d := newSMTP(t, SMTPConfig{Hosts: []string{addr}, TLS: TLSOff})
	res := d.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org\r\nRCPT TO:<evil@example.com>", "ok@example.org"}, Data: testMessage(100)})
	if res.Rcpts[0].Status != StatusPermanent || !errors.Is(res.Rcpts[0].Err, ErrBadAddress) || res.Rcpts[1].Status != StatusAccepted {
		t.Fatalf("%+v", res.Rcpts)
	}
	if s.rcptCmds.Load() != 1 {
		t.Errorf("%d RCPT commands, want 1", s.rcptCmds.Load())
	}
	res = d.Deliver(context.Background(), Message{MailFrom: "a@example.net", Data: testMessage(100)})
	if res.Status != StatusPermanent || !errors.Is(res.Err, ErrNoRecipients) {
		t.Errorf("no recipients: %+v", res)
	}
}

func TestSTARTTLSOpportunistic(t *testing.T) {
	srvTLS, _ := selfSigned(t)
	s := &sink{}
	addr, _ := startSink(t, s, sinkOpts{tls: srvTLS})
	d := newSMTP(t, SMTPConfig{Hosts: []string{addr}})
	res := d.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org"}, Data: testMessage(100)})
	if res.Status != StatusAccepted {
		t.Fatalf("%+v", res)
	}
	if !strings.HasPrefix(res.TLS, "TLSv1.3 with cipher ") {
		t.Errorf("TLS = %q", res.TLS)
	}
	if m := s.messages(); len(m) != 1 || !m[0].tls || m[0].helo != "gw.test" {
		t.Errorf("sink %+v", m)
	}

	// No STARTTLS offered: plaintext.
	plain := &sink{}
	plainAddr, _ := startSink(t, plain, sinkOpts{})
	d2 := newSMTP(t, SMTPConfig{Hosts: []string{plainAddr}})
	res = d2.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org"}, Data: testMessage(100)})
	if res.Status != StatusAccepted || res.TLS != "" || plain.messages()[0].tls {
		t.Errorf("plaintext fallback: %+v", res)
	}

	// A handshake that fails (the server only speaks TLS 1.1, the client
	// wants 1.2+): retried once in plaintext.
	oldTLS := srvTLS.Clone()
	oldTLS.MinVersion, oldTLS.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	old := &sink{}
	oldAddr, _ := startSink(t, old, sinkOpts{tls: oldTLS})
	d3 := newSMTP(t, SMTPConfig{Hosts: []string{oldAddr}})
	res = d3.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org"}, Data: testMessage(100)})
	if res.Status != StatusAccepted || res.TLS != "" {
		t.Errorf("after failed handshake: %+v", res)
	}
	if old.sessions.Load() < 1 || len(old.messages()) != 1 || old.messages()[0].tls {
		t.Errorf("old server: %d sessions, %+v", old.sessions.Load(), old.messages())
	}
}

func TestSTARTTLSRequired(t *testing.T) {
	srvTLS, pool := selfSigned(t)
	s := &sink{}
	addr, _ := startSink(t, s, sinkOpts{tls: srvTLS})
	msg := Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org"}, Data: testMessage(100)}

	d := newSMTP(t, SMTPConfig{Hosts: []string{addr}, TLS: TLSRequired, RootCAs: pool, TLSServerName: "localhost"})
	if res := d.Deliver(context.Background(), msg); res.Status != StatusAccepted || res.TLS == "" {
		t.Fatalf("verified TLS: %+v", res)
	}
	if d.Stats().TLS != 1 {
		t.Errorf("stats %+v", d.Stats())
	}

	// Unknown CA (system pool): temporary, nothing sent.
	before := len(s.messages())
	d2 := newSMTP(t, SMTPConfig{Hosts: []string{addr}, TLS: TLSRequired})
	res := d2.Deliver(context.Background(), msg)
	if res.Status != StatusTemporary || !errors.Is(res.Err, ErrTLSHandshake) || res.Reply.Enhanced != (EnhancedCode{4, 7, 5}) {
		t.Errorf("unverified cert: %+v", res)
	}
	// Wrong name.
	d3 := newSMTP(t, SMTPConfig{Hosts: []string{addr}, TLS: TLSRequired, RootCAs: pool, TLSServerName: "mx.example.org"})
	if res := d3.Deliver(context.Background(), msg); res.Status != StatusTemporary || !errors.Is(res.Err, ErrTLSHandshake) {
		t.Errorf("wrong name: %+v", res)
	}
	// Insecure lab mode.
	d4 := newSMTP(t, SMTPConfig{Hosts: []string{addr}, TLS: TLSRequired, InsecureSkipVerify: true})
	if res := d4.Deliver(context.Background(), msg); res.Status != StatusAccepted {
		t.Errorf("insecure skip verify: %+v", res)
	}
	if got := len(s.messages()) - before; got != 1 {
		t.Errorf("%d messages sent over unverified TLS, want 1 (the insecure one)", got)
	}

	// No STARTTLS offered: temporary.
	plain := &sink{}
	plainAddr, _ := startSink(t, plain, sinkOpts{})
	d5 := newSMTP(t, SMTPConfig{Hosts: []string{plainAddr}, TLS: TLSRequired})
	if res := d5.Deliver(context.Background(), msg); res.Status != StatusTemporary || !errors.Is(res.Err, ErrTLSUnavailable) || len(plain.messages()) != 0 {
		t.Errorf("no STARTTLS: %+v", res)
	}
}

func TestPoolReuse(t *testing.T) {
	srvTLS, _ := selfSigned(t)
	s := &sink{}
	addr, _ := startSink(t, s, sinkOpts{tls: srvTLS})
	d := newSMTP(t, SMTPConfig{Hosts: []string{addr}})
	for i := 0; i < 5; i++ {
		res := d.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org"}, Data: testMessage(1000)})
		if res.Status != StatusAccepted || res.TLS == "" {
			t.Fatalf("delivery %d: %+v", i, res)
		}
	}
	st := d.Stats()
	// go-smtp starts a server session at each EHLO: one before and one
	// after STARTTLS, on the one connection.
	if st.Dials != 1 || st.Reused != 4 || st.Idle != 1 || s.sessions.Load() != 2 {
		t.Errorf("stats %+v, server sessions %d: want one connection reused 4 times", st, s.sessions.Load())
	}

	// Reuse disabled: one session per message.
	s2 := &sink{}
	addr2, _ := startSink(t, s2, sinkOpts{})
	d2 := newSMTP(t, SMTPConfig{Hosts: []string{addr2}, MaxIdlePerHost: -1, TLS: TLSOff})
	for i := 0; i < 3; i++ {
		d2.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org"}, Data: testMessage(100)})
	}
	if st := d2.Stats(); st.Dials != 3 || st.Reused != 0 {
		t.Errorf("no reuse: %+v", st)
	}

	// MaxMessagesPerConn caps a session's transactions.
	s3 := &sink{}
	addr3, _ := startSink(t, s3, sinkOpts{})
	d3 := newSMTP(t, SMTPConfig{Hosts: []string{addr3}, MaxMessagesPerConn: 2, TLS: TLSOff})
	for i := 0; i < 4; i++ {
		d3.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org"}, Data: testMessage(100)})
	}
	if st := d3.Stats(); st.Dials != 2 {
		t.Errorf("MaxMessagesPerConn=2, 4 messages: %+v", st)
	}
}

func TestPoolRecoversAfterServerClosedIdle(t *testing.T) {
	s := &sink{}
	// The server drops sessions idle for 150ms (with a 421, as go-smtp does).
	addr, _ := startSink(t, s, sinkOpts{readTO: 150 * time.Millisecond})
	d := newSMTP(t, SMTPConfig{Hosts: []string{addr}, TLS: TLSOff, IdleTimeout: time.Minute})
	msg := Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org"}, Data: testMessage(100)}
	if res := d.Deliver(context.Background(), msg); res.Status != StatusAccepted {
		t.Fatal(res)
	}
	time.Sleep(400 * time.Millisecond)
	if res := d.Deliver(context.Background(), msg); res.Status != StatusAccepted {
		t.Fatalf("after the server closed the idle session: %+v", res)
	}
	st := d.Stats()
	if st.StaleRetries != 1 || st.Dials != 2 {
		t.Errorf("stats %+v: want one stale retry and a second dial", st)
	}
	if len(s.messages()) != 2 {
		t.Errorf("%d messages", len(s.messages()))
	}
}

func TestPoolIdleTimeout(t *testing.T) {
	s := &sink{}
	addr, _ := startSink(t, s, sinkOpts{})
	d := newSMTP(t, SMTPConfig{Hosts: []string{addr}, TLS: TLSOff, IdleTimeout: 100 * time.Millisecond})
	d.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org"}, Data: testMessage(100)})
	if d.Stats().Idle != 1 {
		t.Fatalf("stats %+v", d.Stats())
	}
	deadline := time.Now().Add(2 * time.Second)
	for d.Stats().Idle != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("idle session not reaped: %+v", d.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSMTPClosed(t *testing.T) {
	s := &sink{}
	addr, _ := startSink(t, s, sinkOpts{})
	d := newSMTP(t, SMTPConfig{Hosts: []string{addr}, TLS: TLSOff})
	d.Close()
	res := d.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"x@example.org"}, Data: testMessage(100)})
	if res.Status != StatusTemporary || !errors.Is(res.Err, ErrDelivererClosed) {
		t.Errorf("%+v", res)
	}
}

func TestSMTPConfigValidation(t *testing.T) {
	for _, cfg := range []SMTPConfig{
		{},
		{Hosts: []string{"no-port"}},
		{Hosts: []string{"unix:"}},
		{Hosts: []string{"127.0.0.1:25"}, LocalName: "has space"},
		{Hosts: []string{"127.0.0.1:25"}, TLS: 7},
		{Hosts: []string{"127.0.0.1:25"}, CAFile: "/nonexistent/ca.pem"},
	} {
		if _, err := NewSMTP(cfg); err == nil {
			t.Errorf("NewSMTP(%+v) accepted", cfg)
		}
	}
	for in, want := range map[string]TLSMode{"": TLSOpportunistic, "required": TLSRequired, "OFF": TLSOff} {
		if got, err := ParseTLSMode(in); err != nil || got != want {
			t.Errorf("ParseTLSMode(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseTLSMode("sometimes"); err == nil {
		t.Error("ParseTLSMode accepted nonsense")
	}
}

func TestSuccessReplyParsing(t *testing.T) {
	for in, want := range map[string]Reply{
		"2.0.0 Ok: queued as ABC": {Code: 250, Enhanced: EnhancedCode{2, 0, 0}, Text: "Ok: queued as ABC", Remote: true},
		"Ok":                      {Code: 250, Text: "Ok", Remote: true},
		"5.0.0 odd":               {Code: 250, Text: "5.0.0 odd", Remote: true},
	} {
		if got := successReply(in); got != want {
			t.Errorf("successReply(%q) = %+v, want %+v", in, got, want)
		}
	}
}
