package smtpgw

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// recorder is a Handler that keeps the transactions and answers reply (or
// what fn returns).
type recorder struct {
	mu    sync.Mutex
	txs   []*Transaction
	reply Reply
	fn    func(ctx context.Context, tx *Transaction) Reply
}

func (r *recorder) Handle(ctx context.Context, tx *Transaction) Reply {
	r.mu.Lock()
	r.txs = append(r.txs, tx)
	r.mu.Unlock()
	if r.fn != nil {
		return r.fn(ctx, tx)
	}
	if r.reply.Code == 0 {
		return Reply{Code: 250, Enhanced: EnhancedCode{2, 0, 0}, Text: "Queued as " + tx.ID}
	}
	return r.reply
}

func (r *recorder) all() []*Transaction {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*Transaction(nil), r.txs...)
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func baseListener() ListenerConfig {
	return ListenerConfig{
		Name:          "mx",
		Address:       "127.0.0.1:0",
		Hostname:      "mx.test",
		AcceptDomains: []string{"example.org", "B\u00fccher.example"},
		ReadTimeout:   5 * time.Second,
		WriteTimeout:  5 * time.Second,
	}
}

// startGW runs a Server with one listener ("mx") for the test.
func startGW(t testing.TB, h Handler, mod func(*ListenerConfig)) (*Server, string) {
	t.Helper()
	lc := baseListener()
	if mod != nil {
		mod(&lc)
	}
	s, err := New(Config{Listeners: []ListenerConfig{lc}, Logger: quietLogger()}, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, s.Addr("mx").String()
}

// dial returns a go-smtp client that said EHLO client.test.
func dial(t testing.TB, addr string) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	c.CommandTimeout = 5 * time.Second
	c.SubmissionTimeout = 5 * time.Second
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// send runs one transaction and returns the error of the first failing
// step (nil when the data was accepted).
func send(c *smtp.Client, from string, rcpts []string, data string) error {
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, data); err != nil {
		return err
	}
	return w.Close()
}

func smtpCode(err error) (int, smtp.EnhancedCode, string) {
	if se, ok := err.(*smtp.SMTPError); ok {
		return se.Code, se.EnhancedCode, se.Message
	}
	return 0, smtp.EnhancedCode{}, fmt.Sprint(err)
}

// raw is a hand-driven SMTP dialogue, for what a well-behaved client would
// not send (bare LF, long lines, PROXY headers, BDAT).
type raw struct {
	t  testing.TB
	c  net.Conn
	tp *textproto.Conn
}

func dialRaw(t testing.TB, addr string, preamble []byte) *raw {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if len(preamble) > 0 {
		if _, err := c.Write(preamble); err != nil {
			t.Fatal(err)
		}
	}
	return &raw{t: t, c: c, tp: textproto.NewConn(c)}
}

// reply reads one (possibly multi-line) reply.
func (r *raw) reply() (int, string) {
	r.t.Helper()
	code, msg, err := r.tp.ReadResponse(0)
	if err != nil {
		if te, ok := err.(*textproto.Error); ok {
			return te.Code, te.Msg
		}
		r.t.Fatalf("reading reply: %v", err)
	}
	return code, msg
}

// cmd sends a command line and returns the reply.
func (r *raw) cmd(line string) (int, string) {
	r.t.Helper()
	if err := r.tp.PrintfLine("%s", line); err != nil {
		r.t.Fatal(err)
	}
	return r.reply()
}

// write sends bytes as they are.
func (r *raw) write(b string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, b); err != nil {
		r.t.Fatal(err)
	}
}

// expect fails unless code is want.
func (r *raw) expect(want int, line string) string {
	r.t.Helper()
	code, msg := r.cmd(line)
	if code != want {
		r.t.Fatalf("%q: got %d %s, want %d", line, code, msg, want)
	}
	return msg
}

// envelope does greeting, EHLO, MAIL, RCPT and DATA (354).
func (r *raw) envelope() {
	r.t.Helper()
	if code, msg := r.reply(); code != 220 {
		r.t.Fatalf("greeting %d %s", code, msg)
	}
	r.expect(250, "EHLO client.test")
	r.expect(250, "MAIL FROM:<a@example.net>")
	r.expect(250, "RCPT TO:<b@example.org>")
	r.expect(354, "DATA")
}

// writeCert writes a self-signed certificate for "mx.test" and its key as
// PEM files into dir and returns their paths and the certificate.
func writeCert(t testing.TB, dir, prefix string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "mx.test"},
		DNSNames:              []string{"mx.test"},
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
	cert, _ = x509.ParseCertificate(der)
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(dir, prefix+"cert.pem")
	keyFile = filepath.Join(dir, prefix+"key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

// dialTLS returns a go-smtp client that went through STARTTLS, trusting
// cert, and the certificate the server presented.
func dialTLS(t testing.TB, addr string, cert *x509.Certificate) (*smtp.Client, *x509.Certificate) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	c, err := smtp.DialStartTLS(addr, &tls.Config{RootCAs: pool, ServerName: "mx.test"})
	if err != nil {
		t.Fatal(err)
	}
	c.CommandTimeout = 5 * time.Second
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	st, ok := c.TLSConnectionState()
	if !ok || len(st.PeerCertificates) == 0 {
		t.Fatal("no TLS state after STARTTLS")
	}
	return c, st.PeerCertificates[0]
}

func testMessage(size int) string {
	var b strings.Builder
	b.WriteString("From: a@example.net\r\nTo: b@example.org\r\nSubject: test\r\nMessage-ID: <1@example.net>\r\n\r\n")
	for b.Len() < size {
		b.WriteString("The quick brown fox jumps over the lazy dog 0123456789.\r\n")
	}
	return b.String()
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
