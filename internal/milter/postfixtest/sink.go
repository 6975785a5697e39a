package postfixtest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Message is one message a Sink received.
type Message struct {
	MailFrom string
	Rcpts    []string
	// Data is the message as relayed, CRLF line endings.
	Data []byte
}

// Header returns the values of the header fields named name (case
// insensitive), unfolded, in order.
func (m Message) Header(name string) []string {
	head := m.Data
	if i := bytes.Index(head, []byte("\r\n\r\n")); i >= 0 {
		head = head[:i+2]
	}
	var out []string
	for _, f := range fields(string(head)) {
		k, v, ok := strings.Cut(f, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			v = strings.NewReplacer("\r\n", "", "\n", "").Replace(v)
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

// FieldNames returns the names of the header fields in order.
func (m Message) FieldNames() []string {
	head := m.Data
	if i := bytes.Index(head, []byte("\r\n\r\n")); i >= 0 {
		head = head[:i+2]
	}
	var out []string
	for _, f := range fields(string(head)) {
		if k, _, ok := strings.Cut(f, ":"); ok {
			out = append(out, k)
		}
	}
	return out
}

// fields splits a header block into its (folded) fields.
func fields(head string) []string {
	var out []string
	for _, line := range strings.SplitAfter(head, "\r\n") {
		if line == "" {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && len(out) > 0 {
			out[len(out)-1] += line
			continue
		}
		out = append(out, line)
	}
	return out
}

// Sink is the downstream SMTP server of a private Postfix: it accepts every
// message and keeps it (or only counts it, for benchmarks).
type Sink struct {
	srv  *smtp.Server
	addr string

	mu      sync.Mutex
	msgs    []Message
	count   int
	discard bool
	changed chan struct{}
}

// NewSink starts a Sink on 127.0.0.1, closed by tb.Cleanup. With discard
// the messages are counted, not kept.
func NewSink(tb testing.TB, discard bool) *Sink {
	tb.Helper()
	s := &Sink{discard: discard, changed: make(chan struct{})}
	s.srv = smtp.NewServer(s)
	s.srv.Domain = "sink.test"
	s.srv.ReadTimeout = time.Minute
	s.srv.WriteTimeout = time.Minute
	s.srv.MaxMessageBytes = 64 << 20
	s.srv.MaxRecipients = 1000
	s.srv.EnableSMTPUTF8 = true
	s.srv.ErrorLog = discardLogger{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s.addr = ln.Addr().String()
	go func() { _ = s.srv.Serve(ln) }()
	tb.Cleanup(func() { _ = s.srv.Close() })
	return s
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...interface{}) {}
func (discardLogger) Println(...interface{})        {}

// Addr is the sink's "127.0.0.1:PORT".
func (s *Sink) Addr() string { return s.addr }

// Messages returns the messages received so far.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Count returns how many messages were received.
func (s *Sink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// ErrTimeout is returned by Wait when the condition did not hold in time.
var ErrTimeout = errors.New("postfixtest: timed out waiting for the sink")

// WaitCount waits until the sink has received at least n messages.
func (s *Sink) WaitCount(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		c, ch := s.count, s.changed
		s.mu.Unlock()
		if c >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ErrTimeout
		}
	}
}

// Find waits until a received message satisfies match and returns it.
func (s *Sink) Find(ctx context.Context, match func(Message) bool) (Message, error) {
	for {
		s.mu.Lock()
		ch := s.changed
		for _, m := range s.msgs {
			if match(m) {
				s.mu.Unlock()
				return m, nil
			}
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Message{}, ErrTimeout
		}
	}
}

// ByMessageID matches a message by the content of its Message-ID field
// (without angle brackets).
func ByMessageID(id string) func(Message) bool {
	return func(m Message) bool {
		for _, v := range m.Header("Message-ID") {
			if strings.Trim(v, "<>") == id {
				return true
			}
		}
		return false
	}
}

func (s *Sink) add(m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count++
	if !s.discard {
		s.msgs = append(s.msgs, m)
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// NewSession implements smtp.Backend.
func (s *Sink) NewSession(*smtp.Conn) (smtp.Session, error) { return &sinkSession{sink: s}, nil }

type sinkSession struct {
	sink *Sink
	from string
	to   []string
}

func (ss *sinkSession) Reset()        { ss.from, ss.to = "", nil }
func (ss *sinkSession) Logout() error { return nil }
func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}
func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}
func (ss *sinkSession) Data(r io.Reader) error {
	var data []byte
	var err error
	if ss.sink.discard {
		_, err = io.Copy(io.Discard, r)
	} else {
		data, err = io.ReadAll(r)
	}
	if err != nil {
		return err
	}
	ss.sink.add(Message{MailFrom: ss.from, Rcpts: append([]string(nil), ss.to...), Data: data})
	return nil
}
