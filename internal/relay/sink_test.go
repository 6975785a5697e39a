package relay

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// sink is a downstream SMTP/LMTP server for the tests, on go-smtp.
type sink struct {
	mu   sync.Mutex
	msgs []sunk

	// Behaviour, set before use.
	mailErr    error
	rcptErr    map[string]error
	dataErr    error
	lmtpStatus map[string]error // LMTP: per-recipient reply after DATA
	cutAfter   int              // >0: close the connection after reading this many DATA bytes
	dataDelay  time.Duration    // sleep before answering the final dot
	discard    bool             // benchmarks: read and forget

	sessions atomic.Int32
	rcptCmds atomic.Int32
}

type sunk struct {
	from  string
	rcpts []string
	data  []byte
	tls   bool
	opts  smtp.MailOptions
	helo  string
}

func (s *sink) messages() []sunk {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sunk(nil), s.msgs...)
}

func (s *sink) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s.sessions.Add(1)
	_, isTLS := c.TLSConnectionState()
	return &sinkSession{s: s, c: c, tls: isTLS}, nil
}

type sinkSession struct {
	s     *sink
	c     *smtp.Conn
	tls   bool
	from  string
	opts  smtp.MailOptions
	rcpts []string
}

func (ss *sinkSession) Reset()        { ss.from, ss.rcpts = "", nil }
func (ss *sinkSession) Logout() error { return nil }
func (ss *sinkSession) Mail(from string, opts *smtp.MailOptions) error {
	if ss.s.mailErr != nil {
		return ss.s.mailErr
	}
	ss.from = from
	if opts != nil {
		ss.opts = *opts
	}
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.rcptCmds.Add(1)
	if err := ss.s.rcptErr[to]; err != nil {
		return err
	}
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

func (ss *sinkSession) read(r io.Reader) ([]byte, error) {
	if ss.s.cutAfter > 0 {
		buf := make([]byte, ss.s.cutAfter)
		io.ReadFull(r, buf)
		ss.c.Conn().Close()
		return nil, errors.New("cut")
	}
	if ss.s.discard {
		_, err := io.Copy(io.Discard, r)
		return nil, err
	}
	return io.ReadAll(r)
}

func (ss *sinkSession) Data(r io.Reader) error {
	data, err := ss.read(r)
	if err != nil {
		return err
	}
	if ss.s.dataDelay > 0 {
		time.Sleep(ss.s.dataDelay)
	}
	if ss.s.dataErr != nil {
		return ss.s.dataErr
	}
	ss.store(data, ss.rcpts)
	return nil
}

func (ss *sinkSession) store(data []byte, rcpts []string) {
	if ss.s.discard {
		return
	}
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, sunk{from: ss.from, rcpts: append([]string(nil), rcpts...), data: data, tls: ss.tls, opts: ss.opts, helo: ss.c.Hostname()})
	ss.s.mu.Unlock()
}

func (ss *sinkSession) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	data, err := ss.read(r)
	if err != nil {
		return err
	}
	var ok []string
	for _, rc := range ss.rcpts {
		e := ss.s.lmtpStatus[rc]
		status.SetStatus(rc, e)
		if e == nil {
			ok = append(ok, rc)
		}
	}
	ss.store(data, ok)
	return nil
}

type sinkOpts struct {
	tls      *tls.Config
	lmtp     bool
	maxBytes int64
	utf8     bool
	readTO   time.Duration
}

// startSink serves s on 127.0.0.1 and returns its address.
func startSink(t testing.TB, s *sink, o sinkOpts) (string, *smtp.Server) {
	t.Helper()
	srv := smtp.NewServer(s)
	srv.Domain = "sink.test"
	srv.TLSConfig = o.tls
	srv.LMTP = o.lmtp
	srv.MaxMessageBytes = o.maxBytes
	srv.EnableSMTPUTF8 = o.utf8
	srv.ReadTimeout = o.readTO
	srv.ErrorLog = log.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), srv
}

// selfSigned returns a server TLS config for "localhost"/127.0.0.1 and the
// pool that trusts it.
func selfSigned(t testing.TB) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}, pool
}

// scripted serves one canned SMTP dialogue per connection: greeting, then
// ehlo for EHLO/LHLO, 221 for QUIT and 250 for anything else.
func scripted(t testing.TB, greeting, ehlo string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				io.WriteString(c, greeting)
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					cmd := strings.ToUpper(strings.TrimSpace(line))
					switch {
					case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "LHLO"):
						io.WriteString(c, ehlo)
					case cmd == "DATA":
						io.WriteString(c, "354 go ahead\r\n")
						for {
							l, err := br.ReadString('\n')
							if err != nil {
								return
							}
							if l == ".\r\n" {
								break
							}
						}
						io.WriteString(c, "250 2.0.0 stored\r\n")
					case cmd == "QUIT":
						io.WriteString(c, "221 bye\r\n")
						return
					default:
						io.WriteString(c, "250 ok\r\n")
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// closedPort returns a 127.0.0.1 address nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func newSMTP(t testing.TB, cfg SMTPConfig) *SMTP {
	t.Helper()
	if cfg.LocalName == "" {
		cfg.LocalName = "gw.test"
	}
	if cfg.CommandTimeout == 0 {
		cfg.CommandTimeout = 3 * time.Second
	}
	d, err := NewSMTP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func testMessage(size int) []byte {
	var b strings.Builder
	b.WriteString("From: a@example.net\r\nTo: b@example.org\r\nSubject: test\r\nMessage-ID: <1@example.net>\r\n\r\n")
	for b.Len() < size {
		b.WriteString("The quick brown fox jumps over the lazy dog 0123456789.\r\n")
	}
	return []byte(b.String())
}
