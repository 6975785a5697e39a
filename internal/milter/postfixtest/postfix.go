// Package postfixtest runs a private Postfix instance for integration tests
// of the milter adapter: its own configuration, queue and data directories
// under a temporary directory, an smtpd on a loopback port, and every
// message relayed to an in-test SMTP sink (Sink). Nothing of the machine's
// own Postfix (/etc/postfix/main.cf, /var/spool/postfix) is read or changed.
//
// Postfix's master must start as root (it drops to mail_owner, the
// "postfix" user the Debian package creates). Require skips a test, or
// fails it when CI=true, when Postfix is not installed or the test does not
// run as root.
package postfixtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"portcullis/internal/testutil"
)

// Paths of the Debian package's programs.
const (
	postfixCmd = "/usr/sbin/postfix"
	masterCmd  = "/usr/lib/postfix/sbin/master"
)

// Require skips tb (or fails it with CI=true) unless a private Postfix can
// run here: Debian package postfix installed and the test running as root.
// It returns the path of the postfix command.
func Require(tb testing.TB) string {
	tb.Helper()
	bin, err := exec.LookPath("postfix")
	if err != nil {
		bin = postfixCmd
	}
	if _, err := os.Stat(bin); err != nil {
		testutil.Missing(tb, "postfix not installed (install Debian package postfix, or run scripts/test.sh)")
	}
	if _, err := os.Stat(masterCmd); err != nil {
		testutil.Missing(tb, "%s not found (install Debian package postfix)", masterCmd)
	}
	if _, err := user.Lookup("postfix"); err != nil {
		testutil.Missing(tb, "no postfix user (install Debian package postfix)")
	}
	if os.Geteuid() != 0 {
		testutil.Missing(tb, "a private Postfix instance needs root (its master drops to the postfix user)")
	}
	return bin
}

// Config describes a private instance.
type Config struct {
	// Domains are the recipient domains Postfix relays (relay_domains).
	// Default: example.org.
	Domains []string
	// RelayTo is the "host:port" every message is relayed to (relayhost),
	// usually a Sink's Addr. Required.
	RelayTo string
	// Milter is the smtpd_milters value ("inet:127.0.0.1:PORT" or
	// "unix:/path"); empty runs Postfix without a milter.
	Milter string
	// MilterDefaultAction is milter_default_action. Default "tempfail".
	MilterDefaultAction string
	// ReleasePort, when not zero, adds a second smtpd on 127.0.0.1:PORT
	// without milters: the port a released quarantined message is
	// re-injected through, so that it is not filtered twice.
	ReleasePort int
	// Main holds extra main.cf parameters (they override the defaults).
	Main map[string]string
}

// Instance is a running private Postfix.
type Instance struct {
	// Dir holds etc/ (main.cf, master.cf), queue/, data/ and maillog.
	Dir string
	// Addr is the smtpd's "127.0.0.1:PORT".
	Addr string
	// ReleaseAddr is the milter-less smtpd's address ("" when none).
	ReleaseAddr string

	tb     testing.TB
	master *exec.Cmd
	done   chan struct{}
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Start configures and starts a private Postfix; it is stopped by
// tb.Cleanup. The smtpd accepts connections when Start returns.
func Start(tb testing.TB, cfg Config) *Instance {
	tb.Helper()
	bin := Require(tb)
	if cfg.RelayTo == "" {
		tb.Fatal("postfixtest: Config.RelayTo is required")
	}
	// Not tb.TempDir: its parents are mode 0700 and the postfix user must
	// reach the queue and data directories. The path stays short for the
	// Unix sockets under queue/private.
	dir, err := os.MkdirTemp("", "pfx-")
	if err != nil {
		tb.Fatal(err)
	}
	in := &Instance{Dir: dir, tb: tb, done: make(chan struct{})}
	tb.Cleanup(func() {
		in.stop()
		if !tb.Failed() || os.Getenv("POSTFIXTEST_KEEP") == "" {
			_ = os.RemoveAll(dir)
		}
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	pw, err := user.Lookup("postfix")
	if err != nil {
		tb.Fatal(err)
	}
	uid, _ := strconv.Atoi(pw.Uid)
	for _, d := range []string{"etc", "queue", "data"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	// data_directory belongs to mail_owner (master.lock, caches).
	if err := os.Chown(filepath.Join(dir, "data"), uid, -1); err != nil {
		tb.Fatal(err)
	}

	port := FreePort(tb)
	in.Addr = "127.0.0.1:" + strconv.Itoa(port)
	if cfg.ReleasePort != 0 {
		in.ReleaseAddr = "127.0.0.1:" + strconv.Itoa(cfg.ReleasePort)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "main.cf"), mainCF(dir, cfg), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "master.cf"), masterCF(port, cfg.ReleasePort), 0o644); err != nil {
		tb.Fatal(err)
	}

	// "postfix check" creates the queue directories with their owners
	// and modes (post-install create-missing) and checks the files.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, "-c", filepath.Join(dir, "etc"), "check").CombinedOutput(); err != nil {
		tb.Fatalf("postfix check: %v\n%s\n%s", err, out, in.Log())
	}

	// The master in the foreground (-d) as the leader of its own process
	// group, so that stopping it stops every Postfix process it started.
	in.master = exec.Command(masterCmd, "-c", filepath.Join(dir, "etc"), "-d")
	in.master.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr bytes.Buffer
	in.master.Stdout, in.master.Stderr = &stderr, &stderr
	if err := in.master.Start(); err != nil {
		tb.Fatalf("start postfix master: %v", err)
	}
	go func() { _ = in.master.Wait(); close(in.done) }()

	for _, addr := range []string{in.Addr, in.ReleaseAddr} {
		if addr == "" {
			continue
		}
		if err := waitBanner(addr, in.done, 20*time.Second); err != nil {
			tb.Fatalf("postfix smtpd on %s: %v\n%s\n%s", addr, err, stderr.String(), in.Log())
		}
	}
	return in
}

// waitBanner waits until addr answers with a 220 greeting.
func waitBanner(addr string, done <-chan struct{}, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("master exited")
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 512)
			n, _ := c.Read(buf)
			_, _ = c.Write([]byte("QUIT\r\n"))
			c.Close()
			if strings.HasPrefix(string(buf[:n]), "220") {
				return nil
			}
			last = fmt.Errorf("greeting %q", buf[:n])
		} else {
			last = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no greeting within %v: %v", limit, last)
}

// stop ends the master and its process group.
func (in *Instance) stop() {
	if in.master == nil || in.master.Process == nil {
		return
	}
	pgid := in.master.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-in.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-in.done
	}
	// Children that outlived the master (none expected) go too.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// Log returns Postfix's log so far (maillog_file).
func (in *Instance) Log() string {
	b, _ := os.ReadFile(filepath.Join(in.Dir, "maillog"))
	return string(b)
}

// Sent returns how many deliveries Postfix's log shows with status=sent.
func (in *Instance) Sent() int {
	return strings.Count(in.Log(), "status=sent")
}

// mainCF writes main.cf. Everything not relayed to RelayTo is refused:
// no local delivery, no DNS.
func mainCF(dir string, cfg Config) []byte {
	domains := cfg.Domains
	if len(domains) == 0 {
		domains = []string{"example.org"}
	}
	action := cfg.MilterDefaultAction
	if action == "" {
		action = "tempfail"
	}
	p := map[string]string{
		"compatibility_level":      "3.6",
		"config_directory":         filepath.Join(dir, "etc"),
		"queue_directory":          filepath.Join(dir, "queue"),
		"data_directory":           filepath.Join(dir, "data"),
		"maillog_file":             filepath.Join(dir, "maillog"),
		"maillog_file_prefixes":    dir,
		"myhostname":               "mta.postfix.test",
		"mydomain":                 "postfix.test",
		"myorigin":                 "postfix.test",
		"mydestination":            "",
		"inet_interfaces":          "127.0.0.1",
		"inet_protocols":           "ipv4",
		"mynetworks":               "127.0.0.0/8",
		"relay_domains":            strings.Join(domains, ", "),
		"relayhost":                "[" + strings.Replace(cfg.RelayTo, ":", "]:", 1),
		"smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
		"smtp_host_lookup":         "native",
		"smtp_dns_support_level":   "disabled",
		"smtpd_peername_lookup":    "no",
		"local_transport":          "error:local delivery is disabled",
		"alias_maps":               "",
		"alias_database":           "",
		"biff":                     "no",
		"in_flow_delay":            "0",
		"smtputf8_enable":          "yes",
		// Failed relaying is retried soon: the tests wait for delivery.
		"minimal_backoff_time": "5s",
		"maximal_backoff_time": "10s",
		"queue_run_delay":      "5s",
		"smtp_connect_timeout": "5s",
	}
	if cfg.Milter != "" {
		p["smtpd_milters"] = cfg.Milter
		p["milter_default_action"] = action
		p["milter_protocol"] = "6"
		p["milter_connect_timeout"] = "10s"
		p["milter_command_timeout"] = "30s"
		p["milter_content_timeout"] = "60s"
	}
	for k, v := range cfg.Main {
		p[k] = v
	}
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteString("# Private Postfix instance of a Portcullis integration test.\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, p[k])
	}
	return b.Bytes()
}

// masterCF writes master.cf: the services a relay-only Postfix needs, none
// chrooted, and the smtpd on port (and the milter-less one on release).
func masterCF(port, release int) []byte {
	var b bytes.Buffer
	b.WriteString("# service type private unpriv chroot wakeup maxproc command\n")
	fmt.Fprintf(&b, "127.0.0.1:%d inet n - n - - smtpd\n", port)
	if release != 0 {
		fmt.Fprintf(&b, "127.0.0.1:%d inet n - n - - smtpd\n  -o smtpd_milters=\n  -o syslog_name=postfix/release\n", release)
	}
	b.WriteString(`cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
`)
	return b.Bytes()
}
