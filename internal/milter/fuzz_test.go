package milter

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	gomilter "github.com/d--j/go-milter"

	"portcullis/internal/evidence"
	"portcullis/internal/pipeline"
	"portcullis/internal/policy"
)

// stubModifier is the Modifier of the read-only milter events.
type stubModifier struct {
	protocol gomilter.OptProtocol
	macros   map[string]string
}

func (m stubModifier) Get(name gomilter.MacroName) string { return m.macros[name] }
func (m stubModifier) GetEx(name gomilter.MacroName) (string, bool) {
	v, ok := m.macros[name]
	return v, ok
}
func (stubModifier) Version() uint32                        { return 6 }
func (m stubModifier) Protocol() gomilter.OptProtocol       { return m.protocol }
func (stubModifier) Actions() gomilter.OptAction            { return actions }
func (stubModifier) MaxDataSize() gomilter.DataSize         { return gomilter.DataSize64K }
func (stubModifier) MilterId() uint64                       { return 1 }
func (stubModifier) AddRecipient(string, string) error      { return nil }
func (stubModifier) DeleteRecipient(string) error           { return nil }
func (stubModifier) ReplaceBodyRawChunk([]byte) error       { return nil }
func (stubModifier) ReplaceBody(io.Reader) error            { return nil }
func (stubModifier) Quarantine(string) error                { return nil }
func (stubModifier) AddHeader(string, string) error         { return nil }
func (stubModifier) ChangeHeader(int, string, string) error { return nil }
func (stubModifier) InsertHeader(int, string, string) error { return nil }
func (stubModifier) ChangeFrom(string, string) error        { return nil }
func (stubModifier) Progress() error                        { return nil }

// FuzzMessage feeds the events of one message with hostile header fields
// and body chunks, as an MTA would pass them on from the Internet: the
// milter never panics, never buffers more than MaxMessageBytes, and the
// message it hands to the pipeline has only CRLF line endings in its
// header section.
func FuzzMessage(f *testing.F) {
	f.Add("Subject", " hello", "From", "\ta@example.net\n b", []byte("body\r\n"), []byte("more\r\n"), true, "192.0.2.1")
	f.Add("X", "", "Y", "\r\n\r\n", []byte("\r\n.\r\n"), []byte{}, false, "IPv6:2001:db8::1")
	f.Add("Authentication-Results", " mx; dkim=pass\rx", "", "\n", []byte{0, 1, 2}, []byte("\n\n"), true, "")
	f.Add(strings.Repeat("N", 300), strings.Repeat("v", 3000), "A", "b", bytes.Repeat([]byte("x"), 5000), []byte("y"), false, "not an ip")
	f.Fuzz(func(t *testing.T, n1, v1, n2, v2 string, b1, b2 []byte, leading bool, addr string) {
		var got *pipeline.Transaction
		proc := &fakeProc{fn: func(_ context.Context, tx *pipeline.Transaction) pipeline.Outcome {
			got = tx
			return deliverOutcome(nil)
		}}
		srv, err := NewServer(proc, Config{MaxMessageBytes: 4096, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		m := stubModifier{macros: map[string]string{gomilter.MacroClientAddr: addr}}
		if leading {
			m.protocol = gomilter.OptHeaderLeadingSpace
		}
		ss := newSession(srv, 6)
		_ = ss.NewConnection(m)
		_, _ = ss.Connect("client", "unknown", 0, addr, m)
		_, _ = ss.Helo(v1, m)
		_, _ = ss.MailFrom(v2, v1, m)
		_, _ = ss.RcptTo(v1, "", m)
		_, _ = ss.Header(n1, v1, m)
		_, _ = ss.Header(n2, v2, m)
		_, _ = ss.Headers(m)
		_, _ = ss.BodyChunk(b1, m)
		_, _ = ss.BodyChunk(b2, m)
		if ss.buf.Len() > 4096 {
			t.Fatalf("buffered %d bytes over the 4096 limit", ss.buf.Len())
		}
		resp, err := ss.EndOfMessage(m)
		if err != nil || resp == nil {
			t.Fatalf("end of message: %v %v", resp, err)
		}
		if got == nil {
			return // too big: refused before the pipeline
		}
		if len(got.Message) > 4096 {
			t.Fatalf("message of %d bytes", len(got.Message))
		}
		head := got.Message
		if i := bytes.Index(head, []byte("\r\n\r\n")); i >= 0 {
			head = head[:i+2]
		}
		for i := 0; i < len(head); i++ {
			if head[i] == '\n' && (i == 0 || head[i-1] != '\r') {
				t.Fatalf("bare LF at %d in the header section %q", i, head)
			}
		}
		// Each Header event is one field: the values cannot add lines
		// that start a field, nor end the header section early.
		fields := 0
		for _, line := range strings.SplitAfter(string(head), "\r\n") {
			if line != "" && line[0] != ' ' && line[0] != '\t' {
				fields++
			}
		}
		if fields != 2 {
			t.Fatalf("%d fields in the header section %q, want the 2 the MTA sent", fields, head)
		}
	})
}

// FuzzAnswer checks the mapping of outcomes to milter answers: only a 2xx
// that says deliver or quarantine is accepted (or discarded), and every
// reply is one the library can send.
func FuzzAnswer(f *testing.F) {
	f.Add("deliver", 250, "2.0.0", "Message accepted [x]")
	f.Add("reject", 550, "5.7.26", "Message rejected [x]")
	f.Add("defer", 451, "4.7.1", "try again %s\r\nlater")
	f.Add("quarantine", 250, "", "")
	f.Add("deliver", 199, "x", strings.Repeat("y", 70000))
	f.Fuzz(func(t *testing.T, action string, code int, enh, text string) {
		out := pipeline.Outcome{Action: evidence.Action(action), Reply: policy.Reply{Code: code, Enhanced: enh, Text: text}}
		a := answerFor(&out)
		switch a.kind {
		case answerAccept:
			if code/100 != 2 || out.Action != evidence.Deliver {
				t.Fatalf("accepted %q %d", action, code)
			}
		case answerDiscard:
			if code/100 != 2 || out.Action != evidence.Quarantine {
				t.Fatalf("discarded %q %d", action, code)
			}
		case answerReply:
			if a.code < 400 || a.code > 599 {
				t.Fatalf("reply code %d", a.code)
			}
			if code/100 == 2 && a.code != 451 {
				t.Fatalf("2xx %q mapped to %d", action, a.code)
			}
			// Sendable, or replaced by the generic 451 in apply.
			_, _ = gomilter.RejectWithCodeAndReason(a.code, a.reason)
		default:
			t.Fatalf("kind %d", a.kind)
		}
	})
}

// FuzzParseAddress: listen addresses never panic the parser, and what it
// accepts is a network Go can listen on.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"unix:/run/m.sock", "inet:127.0.0.1:8891", "inet:8891@localhost", "inet6:[::1]:1", "inet:[::1", "local:", "/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		network, addr, err := ParseAddress(s)
		if err != nil {
			return
		}
		switch network {
		case "unix":
			if !strings.HasPrefix(addr, "/") {
				t.Fatalf("%q: relative socket %q", s, addr)
			}
		case "tcp4", "tcp6":
			if !strings.Contains(addr, ":") {
				t.Fatalf("%q: address %q", s, addr)
			}
		default:
			t.Fatalf("%q: network %q", s, network)
		}
	})
}
