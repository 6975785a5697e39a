package smtpgw

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certReloader serves a certificate from PEM files and reads them again
// when they change, so a renewed certificate is used without a restart. A
// change that does not load (half-written files, a key that does not
// match) keeps the previous certificate.
type certReloader struct {
	certFile, keyFile string
	every             time.Duration
	log               *slog.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	certMod   time.Time
	keyMod    time.Time
	lastCheck time.Time
}

func newCertReloader(certFile, keyFile string, every time.Duration, log *slog.Logger) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile, every: every, log: log}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload reads the files now.
func (c *certReloader) Reload() error {
	cm, km := modTime(c.certFile), modTime(c.keyFile)
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("smtpgw: loading certificate %s: %w", c.certFile, err)
	}
	c.mu.Lock()
	c.cert, c.certMod, c.keyMod, c.lastCheck = &cert, cm, km, time.Now()
	c.mu.Unlock()
	return nil
}

// GetCertificate is the tls.Config hook.
func (c *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	check := time.Since(c.lastCheck) >= c.every
	if check {
		c.lastCheck = time.Now()
	}
	changed := check && (!modTime(c.certFile).Equal(c.certMod) || !modTime(c.keyFile).Equal(c.keyMod))
	cert := c.cert
	c.mu.Unlock()
	if changed {
		if err := c.Reload(); err != nil {
			c.log.Warn("smtpgw: certificate changed but does not load; keeping the previous one", "err", err)
		} else {
			c.log.Info("smtpgw: certificate reloaded", "file", c.certFile)
			c.mu.Lock()
			cert = c.cert
			c.mu.Unlock()
		}
	}
	return cert, nil
}

func modTime(path string) time.Time {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}
