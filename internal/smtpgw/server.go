package smtpgw

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// Server runs the configured SMTP listeners.
type Server struct {
	cfg       Config
	handler   Handler
	log       *slog.Logger
	listeners []*listener

	baseCtx  context.Context
	cancel   context.CancelFunc
	draining atomic.Bool

	mu      sync.Mutex
	started bool
	stopped bool
}

// New validates cfg, loads the TLS certificates and returns a Server ready
// to Start. h receives every transaction.
func New(cfg Config, h Handler) (*Server, error) {
	if h == nil {
		return nil, errors.New("smtpgw: nil Handler")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, handler: h, log: cfg.Logger}
	s.baseCtx, s.cancel = context.WithCancel(context.Background())
	for _, lc := range cfg.Listeners {
		l, err := newListener(s, lc.withDefaults())
		if err != nil {
			s.cancel()
			return nil, err
		}
		s.listeners = append(s.listeners, l)
	}
	return s, nil
}

// Start binds every listener and serves them in the background. When one
// address cannot be bound, the ones already bound are closed.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("smtpgw: server already started")
	}
	for i, l := range s.listeners {
		ln, err := net.Listen("tcp", l.cfg.Address)
		if err != nil {
			for _, prev := range s.listeners[:i] {
				prev.raw.Close()
			}
			return fmt.Errorf("smtpgw: listener %q: %w", l.cfg.Name, err)
		}
		l.raw = ln
	}
	for _, l := range s.listeners {
		l.serve()
		s.log.Info("smtpgw: listening", "listener", l.cfg.Name, "addr", l.raw.Addr().String())
	}
	s.started = true
	return nil
}

// Addr returns the bound address of the named listener (nil before Start
// or for an unknown name).
func (s *Server) Addr(name string) net.Addr {
	for _, l := range s.listeners {
		if l.cfg.Name == name && l.raw != nil {
			return l.raw.Addr()
		}
	}
	return nil
}

// ReloadTLS reads every listener's certificate files again.
func (s *Server) ReloadTLS() error {
	var errs []error
	for _, l := range s.listeners {
		if l.certs != nil {
			if err := l.certs.Reload(); err != nil {
				errs = append(errs, fmt.Errorf("listener %q: %w", l.cfg.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Shutdown stops accepting connections, closes idle sessions (with a 421
// 4.3.2 on plaintext ones, RFC 5321 §3.8), lets the transactions in flight
// finish and answer, and closes their sessions after. When ctx ends first,
// the remaining connections are closed, the Handlers' context is cancelled,
// and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	started := s.started
	s.mu.Unlock()
	s.draining.Store(true)
	if !started {
		s.cancel()
		return nil
	}
	for _, l := range s.listeners {
		l.stopAccepting()
	}
	// go-smtp's Shutdown closes the channel listener and waits for its
	// connection goroutines; the connections themselves are closed below.
	smtpDone := make(chan struct{})
	go func() {
		defer close(smtpDone)
		for _, l := range s.listeners {
			_ = l.smtp.Shutdown(context.Background())
		}
	}()

	forced := false
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		open := 0
		for _, l := range s.listeners {
			open += l.closeIdle()
		}
		if open == 0 {
			break
		}
		select {
		case <-ctx.Done():
			forced = true
		case <-tick.C:
		}
		if forced {
			break
		}
	}
	if forced {
		s.log.Warn("smtpgw: shutdown deadline reached, closing transactions in flight")
		for _, l := range s.listeners {
			l.closeAll()
		}
		s.cancel()
	}
	for _, l := range s.listeners {
		l.wg.Wait()
	}
	select {
	case <-smtpDone:
	case <-time.After(5 * time.Second):
		s.log.Error("smtpgw: connection goroutines still running after shutdown")
	}
	s.cancel()
	if forced {
		return ctx.Err()
	}
	return nil
}

// Close closes every listener and connection at once.
func (s *Server) Close() error {
	s.mu.Lock()
	s.stopped = true
	started := s.started
	s.mu.Unlock()
	s.draining.Store(true)
	s.cancel()
	if !started {
		return nil
	}
	for _, l := range s.listeners {
		l.stopAccepting()
		l.closeAll()
		_ = l.smtp.Close()
	}
	for _, l := range s.listeners {
		l.wg.Wait()
	}
	return nil
}

// ListenerStats are one listener's counters.
type ListenerStats struct {
	Name string
	// ConnectionsAccepted counts TCP connections accepted;
	// ConnectionsActive those open now; ConnectionsRejected those refused
	// with 421 for a connection limit; ProxyHeaderErrors those closed for a
	// missing or malformed PROXY header.
	ConnectionsAccepted uint64
	ConnectionsActive   int64
	ConnectionsRejected uint64
	ProxyHeaderErrors   uint64
	// Transactions counts Handler calls; Accepted, Deferred and Rejected
	// their 2xx, 4xx and 5xx replies; HandlerPanics the panics among them.
	Transactions  uint64
	Accepted      uint64
	Deferred      uint64
	Rejected      uint64
	HandlerPanics uint64
	// MessagesRefused counts messages refused before the Handler (size,
	// header size, line length, bare line endings).
	MessagesRefused uint64
	// RcptDenied counts RCPT refused as relaying (550 5.7.1).
	RcptDenied uint64
}

// Stats are the server's counters, one entry per listener.
type Stats struct {
	Listeners []ListenerStats
}

// Total adds up the listeners' counters.
func (st Stats) Total() ListenerStats {
	t := ListenerStats{Name: "total"}
	for _, l := range st.Listeners {
		t.ConnectionsAccepted += l.ConnectionsAccepted
		t.ConnectionsActive += l.ConnectionsActive
		t.ConnectionsRejected += l.ConnectionsRejected
		t.ProxyHeaderErrors += l.ProxyHeaderErrors
		t.Transactions += l.Transactions
		t.Accepted += l.Accepted
		t.Deferred += l.Deferred
		t.Rejected += l.Rejected
		t.HandlerPanics += l.HandlerPanics
		t.MessagesRefused += l.MessagesRefused
		t.RcptDenied += l.RcptDenied
	}
	return t
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	var st Stats
	for _, l := range s.listeners {
		st.Listeners = append(st.Listeners, l.stats())
	}
	return st
}

// newTLSConfig builds the STARTTLS configuration of a listener.
func newTLSConfig(c *certReloader) *tls.Config {
	return &tls.Config{GetCertificate: c.GetCertificate, MinVersion: tls.VersionTLS12}
}

// smtpLogger sends go-smtp's internal messages to slog at debug level.
type smtpLogger struct {
	log  *slog.Logger
	name string
}

func (g smtpLogger) Printf(format string, v ...any) {
	g.log.Debug("smtpgw: "+fmt.Sprintf(format, v...), "listener", g.name)
}

func (g smtpLogger) Println(v ...any) {
	g.log.Debug("smtpgw: "+fmt.Sprint(v...), "listener", g.name)
}

var _ smtp.Logger = smtpLogger{}
