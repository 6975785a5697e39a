package relay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/idna"
)

// MaildirConfig configures Maildir delivery.
type MaildirConfig struct {
	// Dir holds one Maildir per recipient: Dir/<mailbox>/{tmp,new,cur},
	// <mailbox> being MailboxName(recipient). Created when missing.
	Dir string
	// Hostname goes into the unique file names. Default: os.Hostname().
	Hostname string
	// DirMode and FileMode are the permissions of created directories and
	// message files. Defaults 0700 and 0600.
	DirMode  fs.FileMode
	FileMode fs.FileMode
	// Logger receives debug logs. Default: slog.Default().
	Logger *slog.Logger
}

// Maildir delivers into Maildir directories on the local disk, as a mail
// delivery agent would: each message is written under tmp/, fsync'd, linked
// into new/, and new/ is fsync'd, and only then is the recipient accepted.
// It is safe for concurrent use.
type Maildir struct {
	cfg     MaildirConfig
	host    string // Hostname escaped for file names
	pid     int
	counter atomic.Uint64
	made    sync.Map // mailbox path -> struct{}: directories known durable
}

var _ Deliverer = (*Maildir)(nil)

// NewMaildir creates cfg.Dir when missing and returns the Deliverer.
func NewMaildir(cfg MaildirConfig) (*Maildir, error) {
	if cfg.Dir == "" {
		return nil, errors.New("relay: maildir directory not configured")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("relay: maildir directory: %w", err)
	}
	cfg.Dir = dir
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
		if cfg.Hostname == "" {
			cfg.Hostname = "localhost"
		}
	}
	if cfg.DirMode == 0 {
		cfg.DirMode = 0o700
	}
	if cfg.FileMode == 0 {
		cfg.FileMode = 0o600
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := mkdirDurable(cfg.Dir, cfg.DirMode); err != nil {
		return nil, fmt.Errorf("relay: maildir directory: %w", err)
	}
	// maildir(5): "/" and ":" in the host name are written \057 and \072.
	host := strings.NewReplacer("/", `\057`, ":", `\072`).Replace(cfg.Hostname)
	return &Maildir{cfg: cfg, host: host, pid: os.Getpid()}, nil
}

// MailboxName maps a recipient address to the name of its Maildir
// directory under Dir: one path component that can never climb out of Dir.
// The domain is case-folded (to its lower-case A-label when it is an
// internationalised name); the local part keeps its case (RFC 5321 §2.4).
// Bytes other than letters, digits and "!#$&'*+-=?^_`{|}~.@" are written
// %XX, as are "%" itself and a leading "." (so "..", "." and hidden names
// cannot occur); the mapping is therefore one-to-one.
func MailboxName(rcpt string) (string, error) {
	local, domain := rcpt, ""
	if i := strings.LastIndexByte(rcpt, '@'); i >= 0 {
		local, domain = rcpt[:i], rcpt[i+1:]
		if domain == "" {
			return "", permErr(ErrBadAddress, "empty domain in %q", rcpt)
		}
	}
	if local == "" {
		return "", permErr(ErrBadAddress, "empty local part in %q", rcpt)
	}
	name := local
	if domain != "" {
		domain = strings.TrimRight(domain, ".")
		if isASCII(domain) {
			domain = strings.ToLower(domain)
		} else {
			a, err := idna.Lookup.ToASCII(domain)
			if err != nil {
				return "", permErr(ErrBadAddress, "domain of %q: %v", rcpt, err)
			}
			domain = a
		}
		if domain == "" {
			return "", permErr(ErrBadAddress, "empty domain in %q", rcpt)
		}
		name = local + "@" + domain
	}
	var b strings.Builder
	b.Grow(len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		if safeMailboxByte(c) && !(i == 0 && c == '.') {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	out := b.String()
	if len(out) > 255 {
		return "", permErr(ErrBadAddress, "address too long for a mailbox name: %q", rcpt)
	}
	return out, nil
}

func safeMailboxByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$&'*+-=?^_`{|}~.@", c) >= 0
}

// MailboxPath returns the Maildir directory of rcpt.
func (m *Maildir) MailboxPath(rcpt string) (string, error) {
	name, err := MailboxName(rcpt)
	if err != nil {
		return "", err
	}
	return filepath.Join(m.cfg.Dir, name), nil
}

// Deliver writes one copy of msg per distinct recipient, each with
// Return-Path (RFC 5321 §4.4) and Delivered-To header fields prepended and
// CRLF line endings turned into the LF of local files.
func (m *Maildir) Deliver(ctx context.Context, msg Message) Result {
	res := Result{Rcpts: make([]RcptResult, len(msg.Rcpts))}
	uniq, index := uniqueRcpts(msg.Rcpts)
	results := make([]RcptResult, len(uniq))
	for i, r := range uniq {
		results[i] = m.deliverOne(ctx, msg, r)
	}
	for i, j := range index {
		res.Rcpts[i] = results[j]
		res.Rcpts[i].Rcpt = msg.Rcpts[i]
	}
	summarise(&res)
	return res
}

func (m *Maildir) deliverOne(ctx context.Context, msg Message, rcpt string) RcptResult {
	rr := RcptResult{Rcpt: rcpt}
	fail := func(err error) RcptResult {
		if IsPermanent(err) {
			rr.Status, rr.Reply = StatusPermanent, localReply(StatusPermanent, err)
		} else {
			rr.Status, rr.Reply = StatusTemporary, localReply(StatusTemporary, ErrMailboxIO)
			if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
				// RFC 3463 X.2.2: mailbox full.
				rr.Reply = Reply{Code: 452, Enhanced: EnhancedCode{4, 2, 2}, Text: "Mailbox full, try again later"}
			}
		}
		rr.Err = err
		return rr
	}
	if err := ctx.Err(); err != nil {
		return fail(tempErr(ErrTimeout, "maildir delivery to %q: %v", rcpt, err))
	}
	if !validAddress(rcpt) || !validAddress(msg.MailFrom) {
		return fail(permErr(ErrBadAddress, "envelope address unusable in a header field"))
	}
	box, err := m.MailboxPath(rcpt)
	if err != nil {
		return fail(err)
	}
	if err := m.ensureMaildir(box); err != nil {
		return fail(tempErr(ErrMailboxIO, "%s: %v", box, err))
	}
	file, err := m.write(box, msg, rcpt)
	if err != nil {
		return fail(tempErr(ErrMailboxIO, "%s: %v", box, err))
	}
	m.cfg.Logger.Debug("relay: maildir delivery", "rcpt", rcpt, "file", file)
	rr.Status = StatusAccepted
	rr.Reply = Reply{Code: 250, Enhanced: EnhancedCode{2, 0, 0}, Text: "Delivered to mailbox"}
	return rr
}

// ensureMaildir creates box/{tmp,new,cur} when missing and makes the new
// directory entries durable (fsync of the parent directories).
func (m *Maildir) ensureMaildir(box string) error {
	if _, ok := m.made.Load(box); ok {
		return nil
	}
	if fi, err := os.Lstat(box); err == nil && !fi.IsDir() {
		return fmt.Errorf("%s exists and is not a directory", box)
	}
	if err := mkdirDurable(box, m.cfg.DirMode); err != nil {
		return err
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		p := filepath.Join(box, sub)
		if fi, err := os.Lstat(p); err == nil && !fi.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", p)
		}
		if err := os.Mkdir(p, m.cfg.DirMode); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	if err := syncDir(box); err != nil {
		return err
	}
	m.made.Store(box, struct{}{})
	return nil
}

// mkdirDurable creates dir (and its parents) and fsyncs the parent of
// every directory it created.
func mkdirDurable(dir string, mode fs.FileMode) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirDurable(parent, mode); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, mode); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// uniqueName makes a file name unique across time, processes and hosts, in
// the modern maildir(5) form: seconds.M<microseconds>P<pid>Q<count>R<random>.host.
func (m *Maildir) uniqueName() string {
	now := time.Now()
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	return fmt.Sprintf("%d.M%06dP%dQ%dR%016x.%s", now.Unix(), now.Nanosecond()/1000, m.pid,
		m.counter.Add(1), binary.BigEndian.Uint64(rnd[:]), m.host)
}

// write stores one copy under box/tmp, fsyncs it, links it into box/new
// and fsyncs box/new (maildir(5) delivery steps). It returns the final path.
func (m *Maildir) write(box string, msg Message, rcpt string) (string, error) {
	for attempt := 0; ; attempt++ {
		name := m.uniqueName()
		tmp := filepath.Join(box, "tmp", name)
		dst := filepath.Join(box, "new", name)
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, m.cfg.FileMode)
		if errors.Is(err, fs.ErrExist) && attempt < 3 {
			continue
		}
		if err != nil {
			return "", err
		}
		werr := writeMessage(f, msg, rcpt)
		if werr == nil {
			werr = f.Sync()
		}
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			os.Remove(tmp)
			return "", werr
		}
		err = os.Link(tmp, dst)
		if errors.Is(err, fs.ErrExist) && attempt < 3 {
			os.Remove(tmp)
			continue
		}
		if err != nil {
			os.Remove(tmp)
			return "", err
		}
		if err := os.Remove(tmp); err != nil {
			m.cfg.Logger.Debug("relay: maildir tmp file not removed", "file", tmp, "err", err)
		}
		if err := syncDir(filepath.Join(box, "new")); err != nil {
			return "", err
		}
		return dst, nil
	}
}

func writeMessage(f *os.File, msg Message, rcpt string) error {
	w := bufio.NewWriterSize(f, 64<<10)
	// RFC 5321 §4.4: the final delivery records the reverse-path.
	fmt.Fprintf(w, "Return-Path: <%s>\nDelivered-To: %s\n", msg.MailFrom, rcpt)
	data := msg.Data
	for len(data) > 0 {
		i := bytes.Index(data, []byte("\r\n"))
		if i < 0 {
			w.Write(data)
			break
		}
		w.Write(data[:i])
		w.WriteByte('\n')
		data = data[i+2:]
	}
	return w.Flush()
}
