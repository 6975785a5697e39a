package postfixtest

import (
	"context"
	"net/smtp"
	"strings"
	"testing"
	"time"
)

func TestRelayToSink(t *testing.T) {
	sink := NewSink(t, false)
	pf := Start(t, Config{RelayTo: sink.Addr(), ReleasePort: FreePort(t)})
	msg := "From: a@example.net\r\nTo: b@example.org\r\nSubject: hi\r\nMessage-ID: <relay-1@example.net>\r\n\r\nbody\r\n"
	for _, addr := range []string{pf.Addr, pf.ReleaseAddr} {
		if err := smtp.SendMail(addr, nil, "a@example.net", []string{"b@example.org"}, []byte(msg)); err != nil {
			t.Fatalf("send to %s: %v", addr, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := sink.WaitCount(ctx, 2); err != nil {
		t.Fatalf("%v\n%s", err, pf.Log())
	}
	m := sink.Messages()[0]
	if m.MailFrom != "a@example.net" || len(m.Rcpts) != 1 || m.Rcpts[0] != "b@example.org" {
		t.Errorf("envelope %q %v", m.MailFrom, m.Rcpts)
	}
	if got := m.Header("Subject"); len(got) != 1 || got[0] != "hi" {
		t.Errorf("Subject %q", got)
	}
	if names := m.FieldNames(); len(names) == 0 || names[0] != "Received" {
		t.Errorf("fields %v: Postfix's Received should be on top", names)
	}
	if !strings.Contains(pf.Log(), "status=sent") {
		t.Errorf("no status=sent in the log:\n%s", pf.Log())
	}
}
