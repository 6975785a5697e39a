package relay_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"portcullis/internal/relay"
)

// Deliver into Maildirs under a directory, the zero-configuration default.
func ExampleNewMaildir() {
	dir, _ := os.MkdirTemp("", "maildir-example")
	defer os.RemoveAll(dir)
	d, err := relay.NewMaildir(relay.MaildirConfig{Dir: dir})
	if err != nil {
		panic(err)
	}
	res := d.Deliver(context.Background(), relay.Message{
		MailFrom: "alice@example.net",
		Rcpts:    []string{"Bob@Example.ORG", "../escape@example.org"},
		Data:     []byte("From: alice@example.net\r\nSubject: hi\r\n\r\nHello\r\n"),
	})
	fmt.Println(res.Status, res.Reply)
	for _, r := range res.Rcpts {
		box, _ := d.MailboxPath(r.Rcpt)
		fmt.Println(r.Rcpt, "->", filepath.Base(box))
	}
	// Output:
	// accepted 250 2.0.0 Delivered to mailbox
	// Bob@Example.ORG -> Bob@example.org
	// ../escape@example.org -> %2E.%2Fescape@example.org
}

// Relay to the mailbox server over LMTP on a Unix socket, falling back to
// SMTP on a second host, and act on the outcome.
func ExampleNewSMTP() {
	d, err := relay.NewSMTP(relay.SMTPConfig{
		Hosts:     []string{"unix:/run/dovecot/lmtp"},
		LMTP:      true,
		LocalName: "gw.example.org",
	})
	if err != nil {
		panic(err)
	}
	defer d.Close()
	res := d.Deliver(context.Background(), relay.Message{MailFrom: "a@example.net", Rcpts: []string{"b@example.org"}, Data: []byte("Subject: x\r\n\r\n")})
	switch res.Status {
	case relay.StatusAccepted:
		// answer 250 to the sender
	case relay.StatusPermanent:
		// pass res.Reply (the downstream's 5xx when res.Reply.Remote) back
	default:
		// answer 451: the sender keeps the message and retries
	}
}
