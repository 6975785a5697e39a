package pipelinetest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Mode is how a Sink answers the end of DATA.
type Mode int32

// The modes.
const (
	// Accept stores the message and answers 250.
	Accept Mode = iota
	// TempFail answers 451 4.3.0 without storing.
	TempFail
	// Reject answers 550 5.7.1 without storing.
	Reject
	// Drop closes the connection without a reply, without storing.
	Drop
	// Busy answers 421 to every new connection's greeting.
	Busy
)

// Received is a message a Sink accepted.
type Received struct {
	MailFrom  string
	Rcpts     []string
	Data      []byte
	MessageID string
}

// Sink is a downstream SMTP or LMTP server that keeps what it accepts, in
// memory. Its Mode (and per-recipient modes over LMTP) is set by the test.
type Sink struct {
	addr string
	lmtp bool

	mode     atomic.Int32
	delay    atomic.Int64
	inData   atomic.Int64
	mu       sync.Mutex
	srv      *smtp.Server
	ln       net.Listener
	msgs     []Received
	byID     map[string]int
	rcptMode map[string]Mode
	keepData bool
}

// StartSink starts a sink on addr ("" for a free loopback port) and stops
// it in tb.Cleanup. keepData keeps every message's bytes (the benchmark
// does not).
func StartSink(tb testing.TB, addr string, lmtp, keepData bool) *Sink {
	tb.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	s := &Sink{addr: addr, lmtp: lmtp, byID: map[string]int{}, rcptMode: map[string]Mode{}, keepData: keepData}
	if err := s.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Stop() })
	return s
}

// Addr returns the "host:port" the sink listens on (the same across
// restarts).
func (s *Sink) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Start (re)starts listening on the sink's address.
func (s *Sink) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port may linger briefly after Stop
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	s.addr = ln.Addr().String()
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "sink.lab.example"
	srv.LMTP = s.lmtp
	srv.EnableSMTPUTF8 = true
	srv.MaxMessageBytes = 64 << 20
	srv.MaxRecipients = 1000
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	srv.ErrorLog = discardLogger{}
	s.srv, s.ln = srv, ln
	go func() { _ = srv.Serve(ln) }()
	return nil
}

// Stop closes the listener and every connection.
func (s *Sink) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv, s.ln = nil, nil
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// SetMode sets how the end of DATA is answered.
func (s *Sink) SetMode(m Mode) { s.mode.Store(int32(m)) }

// SetDelay makes the sink wait d before it answers the end of DATA.
func (s *Sink) SetDelay(d time.Duration) { s.delay.Store(int64(d)) }

// InData returns how many messages the sink is receiving or holding before
// its answer.
func (s *Sink) InData() int { return int(s.inData.Load()) }

// SetRcptMode sets, over LMTP, the answer for one recipient (Accept,
// TempFail or Reject).
func (s *Sink) SetRcptMode(rcpt string, m Mode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcptMode[strings.ToLower(rcpt)] = m
}

// Messages returns what the sink accepted, in order.
func (s *Sink) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.msgs...)
}

// Count returns how many messages the sink accepted.
func (s *Sink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// Has reports how many times a message with that Message-ID was accepted.
func (s *Sink) Has(messageID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byID[messageID]
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}

func (s *Sink) newSession(c *smtp.Conn) (smtp.Session, error) {
	if Mode(s.mode.Load()) == Busy {
		return nil, &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Busy, try later"}
	}
	return &sinkSession{s: s, c: c}, nil
}

type sinkSession struct {
	s     *Sink
	c     *smtp.Conn
	from  string
	rcpts []string
}

func (ss *sinkSession) Reset()        { ss.from, ss.rcpts = "", nil }
func (ss *sinkSession) Logout() error { return nil }
func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}
func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

var (
	errTemp   = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary failure in the sink"}
	errReject = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Refused by the sink"}
	errDrop   = errors.New("dropped")
)

// take reads the message and applies the mode; it returns the error for
// the whole message.
func (ss *sinkSession) take(r io.Reader) ([]byte, error) {
	ss.s.inData.Add(1)
	defer ss.s.inData.Add(-1)
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if d := time.Duration(ss.s.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	switch Mode(ss.s.mode.Load()) {
	case TempFail, Busy:
		return nil, errTemp
	case Reject:
		return nil, errReject
	case Drop:
		_ = ss.c.Close()
		return nil, errDrop
	}
	return data, nil
}

func (ss *sinkSession) store(data []byte, rcpts []string) {
	id := MessageID(data)
	rec := Received{MailFrom: ss.from, Rcpts: rcpts, MessageID: id}
	if ss.s.keepData {
		rec.Data = bytes.Clone(data)
	}
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, rec)
	ss.s.byID[id]++
	ss.s.mu.Unlock()
}

func (ss *sinkSession) Data(r io.Reader) error {
	data, err := ss.take(r)
	if err != nil {
		return err
	}
	ss.store(data, append([]string(nil), ss.rcpts...))
	return nil
}

// LMTPData answers per recipient (RFC 2033 §4.2).
func (ss *sinkSession) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	data, err := ss.take(r)
	if err != nil {
		return err
	}
	var ok []string
	for _, rc := range ss.rcpts {
		ss.s.mu.Lock()
		m := ss.s.rcptMode[strings.ToLower(rc)]
		ss.s.mu.Unlock()
		switch m {
		case TempFail:
			status.SetStatus(rc, errTemp)
		case Reject:
			status.SetStatus(rc, errReject)
		default:
			ok = append(ok, rc)
			status.SetStatus(rc, nil)
		}
	}
	if len(ok) > 0 {
		ss.store(data, ok)
	}
	return nil
}
