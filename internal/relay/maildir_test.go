package relay

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func newMaildir(t testing.TB) (*Maildir, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mail")
	m, err := NewMaildir(MaildirConfig{Dir: dir, Hostname: "gw:1/a"})
	if err != nil {
		t.Fatal(err)
	}
	return m, dir
}

func TestMaildirLayoutAndContent(t *testing.T) {
	m, dir := newMaildir(t)
	data := []byte("From: a@example.net\r\nSubject: hi\r\n\r\nbody line\r\nsecond\r\n")
	res := m.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"Bob@Example.ORG", "carol@example.org"}, Data: data})
	if res.Status != StatusAccepted || res.Err != nil || res.Reply.Code != 250 {
		t.Fatalf("%+v", res)
	}
	for _, tc := range []struct{ rcpt, box string }{
		{"Bob@Example.ORG", "Bob@example.org"},
		{"carol@example.org", "carol@example.org"},
	} {
		box := filepath.Join(dir, tc.box)
		for _, sub := range []string{"tmp", "new", "cur"} {
			fi, err := os.Stat(filepath.Join(box, sub))
			if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
				t.Fatalf("%s/%s: %v %v", box, sub, fi, err)
			}
		}
		if ents, _ := os.ReadDir(filepath.Join(box, "tmp")); len(ents) != 0 {
			t.Errorf("tmp/ not empty: %v", ents)
		}
		ents, err := os.ReadDir(filepath.Join(box, "new"))
		if err != nil || len(ents) != 1 {
			t.Fatalf("new/: %v %v", ents, err)
		}
		name := ents[0].Name()
		// maildir(5) unique name; ":" and "/" of the host name escaped.
		if !regexp.MustCompile(`^\d+\.M\d{6}P\d+Q\d+R[0-9a-f]{16}\.gw\\0721\\057a$`).MatchString(name) {
			t.Errorf("file name %q", name)
		}
		fi, _ := ents[0].Info()
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("file mode %v", fi.Mode())
		}
		got, err := os.ReadFile(filepath.Join(box, "new", name))
		if err != nil {
			t.Fatal(err)
		}
		want := "Return-Path: <a@example.net>\nDelivered-To: " + tc.rcpt + "\nFrom: a@example.net\nSubject: hi\n\nbody line\nsecond\n"
		if string(got) != want {
			t.Errorf("content\n got %q\nwant %q", got, want)
		}
	}
}

func TestMaildirNullSender(t *testing.T) {
	m, dir := newMaildir(t)
	res := m.Deliver(context.Background(), Message{MailFrom: "", Rcpts: []string{"x@example.org"}, Data: []byte("Subject: bounce\r\n\r\n")})
	if res.Status != StatusAccepted {
		t.Fatal(res)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "x@example.org", "new"))
	got, _ := os.ReadFile(filepath.Join(dir, "x@example.org", "new", ents[0].Name()))
	if !strings.HasPrefix(string(got), "Return-Path: <>\n") {
		t.Errorf("%q", got)
	}
}

func TestMailboxNameSafety(t *testing.T) {
	for _, tc := range []struct {
		rcpt, want string
		bad        bool
	}{
		{rcpt: "user@Example.ORG", want: "user@example.org"},
		{rcpt: "User@example.org.", want: "User@example.org"},
		{rcpt: "../../etc/passwd@example.org", want: "%2E.%2F..%2Fetc%2Fpasswd@example.org"},
		{rcpt: "a/b@example.org", want: "a%2Fb@example.org"},
		{rcpt: "/abs@example.org", want: "%2Fabs@example.org"},
		{rcpt: "..", want: "%2E."},
		{rcpt: ".", want: "%2E"},
		{rcpt: ".hidden@example.org", want: "%2Ehidden@example.org"},
		{rcpt: "a\\b@example.org", want: "a%5Cb@example.org"},
		{rcpt: "100%@example.org", want: "100%25@example.org"},
		{rcpt: "sp ace@example.org", want: "sp%20ace@example.org"},
		{rcpt: "nul\x00@example.org", want: "nul%00@example.org"},
		{rcpt: "x@b\u00fccher.example", want: "x@xn--bcher-kva.example"},
		{rcpt: "x@B\u00dcCHER.example", want: "x@xn--bcher-kva.example"},
		{rcpt: "j\u00f6rg@example.org", want: "j%C3%B6rg@example.org"},
		{rcpt: "x@../../etc", want: "x@..%2F..%2Fetc"},
		{rcpt: "postmaster", want: "postmaster"},
		{rcpt: "@example.org", bad: true},
		{rcpt: "x@", bad: true},
		{rcpt: "", bad: true},
		{rcpt: strings.Repeat("a", 300) + "@example.org", bad: true},
	} {
		got, err := MailboxName(tc.rcpt)
		if tc.bad {
			if err == nil || !IsPermanent(err) || !errors.Is(err, ErrBadAddress) {
				t.Errorf("MailboxName(%q) = %q, %v; want a permanent ErrBadAddress", tc.rcpt, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("MailboxName(%q) = %q, %v; want %q", tc.rcpt, got, err, tc.want)
		}
		checkComponent(t, tc.rcpt, got)
	}
}

func checkComponent(t testing.TB, in, name string) {
	t.Helper()
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") || strings.HasPrefix(name, ".") || len(name) > 255 {
		t.Fatalf("MailboxName(%q) = %q: not one safe path component", in, name)
	}
	base := "/srv/mail"
	if j := filepath.Join(base, name); filepath.Dir(j) != base {
		t.Fatalf("MailboxName(%q) = %q escapes the directory: %s", in, name, j)
	}
}

// unescapeMailbox inverts MailboxName's escaping.
func unescapeMailbox(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("truncated escape")
		}
		n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", err
		}
		b.WriteByte(byte(n))
		i += 2
	}
	return b.String(), nil
}

func TestMaildirTraversalDelivery(t *testing.T) {
	m, dir := newMaildir(t)
	outside := filepath.Dir(dir)
	rcpts := []string{"../../escape@example.org", "../escape", "a/../../b@example.org", "..", "x@../.."}
	res := m.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: rcpts, Data: []byte("Subject: x\r\n\r\nbody\r\n")})
	if res.Status != StatusAccepted {
		t.Fatalf("%+v", res)
	}
	// Nothing but the mail directory itself beside it.
	ents, _ := os.ReadDir(outside)
	if len(ents) != 1 || ents[0].Name() != "mail" {
		t.Errorf("entries beside the mail directory: %v", ents)
	}
	boxes, _ := os.ReadDir(dir)
	if len(boxes) != len(rcpts) {
		t.Errorf("%d mailboxes for %d recipients: %v", len(boxes), len(rcpts), boxes)
	}
	for _, b := range boxes {
		if !b.IsDir() || strings.HasPrefix(b.Name(), ".") {
			t.Errorf("mailbox %q", b.Name())
		}
	}
}

func TestMaildirFailures(t *testing.T) {
	m, dir := newMaildir(t)
	// A file where the mailbox directory should be: temporary (the
	// administrator can fix it; the sender retries).
	if err := os.WriteFile(filepath.Join(dir, "blocked@example.org"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	res := m.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"blocked@example.org", "ok@example.org", "x@"}, Data: []byte("Subject: x\r\n\r\n")})
	if r := res.Rcpts[0]; r.Status != StatusTemporary || !errors.Is(r.Err, ErrMailboxIO) || r.Reply.Code != 451 {
		t.Errorf("blocked: %+v", r)
	}
	if r := res.Rcpts[1]; r.Status != StatusAccepted {
		t.Errorf("ok: %+v", r)
	}
	if r := res.Rcpts[2]; r.Status != StatusPermanent || r.Reply.Code != 553 {
		t.Errorf("bad address: %+v", r)
	}
	if res.Status != StatusTemporary {
		t.Errorf("overall %v", res.Status)
	}
	// Header injection through the envelope is refused.
	res = m.Deliver(context.Background(), Message{MailFrom: "a@example.net\nBcc: evil@example.com", Rcpts: []string{"ok@example.org"}, Data: []byte("Subject: x\r\n\r\n")})
	if res.Status != StatusPermanent {
		t.Errorf("CR/LF in sender: %+v", res)
	}
	// A cancelled context: temporary, nothing written.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res = m.Deliver(ctx, Message{MailFrom: "a@example.net", Rcpts: []string{"late@example.org"}, Data: []byte("Subject: x\r\n\r\n")})
	if res.Status != StatusTemporary {
		t.Errorf("cancelled: %+v", res)
	}
	if _, err := os.Stat(filepath.Join(dir, "late@example.org")); err == nil {
		t.Error("mailbox created after cancellation")
	}
	if _, err := NewMaildir(MaildirConfig{}); err == nil {
		t.Error("NewMaildir without a directory accepted")
	}
	if _, err := NewMaildir(MaildirConfig{Dir: filepath.Join(dir, "blocked@example.org")}); err == nil {
		t.Error("NewMaildir on a file accepted")
	}
}

func TestMaildirConcurrent(t *testing.T) {
	m, dir := newMaildir(t)
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := m.Deliver(context.Background(), Message{MailFrom: "a@example.net", Rcpts: []string{"same@example.org"}, Data: testMessage(2000)})
			if res.Status != StatusAccepted {
				t.Error(res)
			}
		}()
	}
	wg.Wait()
	ents, _ := os.ReadDir(filepath.Join(dir, "same@example.org", "new"))
	if len(ents) != 32 {
		t.Errorf("%d files, want 32", len(ents))
	}
}

func FuzzMailboxName(f *testing.F) {
	for _, s := range []string{"user@example.org", "../../x@y", "..", ".", "a/b@c", "x@b\u00fccher.example", "%2F@x", "@", "a@", "\x00@\x00", "x@[127.0.0.1]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rcpt string) {
		name, err := MailboxName(rcpt)
		if err != nil {
			if !errors.Is(err, ErrBadAddress) || !IsPermanent(err) {
				t.Fatalf("MailboxName(%q): error %v is not a permanent ErrBadAddress", rcpt, err)
			}
			return
		}
		checkComponent(t, rcpt, name)
		// One-to-one: the escaped name decodes back to the address with
		// its domain normalised.
		back, err := unescapeMailbox(name)
		if err != nil {
			t.Fatalf("MailboxName(%q) = %q does not decode: %v", rcpt, name, err)
		}
		local := rcpt
		if i := strings.LastIndexByte(rcpt, '@'); i >= 0 {
			local = rcpt[:i]
		}
		if !strings.HasPrefix(back, local) {
			t.Fatalf("MailboxName(%q) = %q decodes to %q, local part lost", rcpt, name, back)
		}
		again, err := MailboxName(back)
		if err != nil || again != name {
			t.Fatalf("MailboxName not idempotent on %q: %q -> %q (%v)", rcpt, name, again, err)
		}
	})
}
