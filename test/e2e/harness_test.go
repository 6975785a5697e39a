package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"portcullis/internal/dns/dnstest"
	"portcullis/internal/evidence"
	"portcullis/internal/pipeline/pipelinetest"
	"portcullis/internal/store"
	"portcullis/internal/store/sqlite"
	"portcullis/internal/testutil"
)

// binPath is the portcullis binary built by TestMain.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "portcullis-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "portcullis")
	args := []string{"build", "-o", binPath}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "portcullis/cmd/portcullis")...)
	build.Dir = testutil.RepoRoot()
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building portcullis:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const authServID = "gw.lab.example"

// env is one gateway under test: lab DNS served over the wire, a downstream
// sink, a configuration file and the running binary.
type env struct {
	t       *testing.T
	lab     *pipelinetest.Lab
	dns     *dnstest.Server
	sink    *pipelinetest.Sink
	dir     string
	cfgPath string
	smtp    string // listener address
	metrics string

	mu   sync.Mutex
	cmd  *exec.Cmd
	logs *bytes.Buffer
	done chan struct{}
}

// freePort returns a loopback address that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// newEnv writes the configuration; extra is appended to it (YAML).
func newEnv(t *testing.T, extra string) *env {
	t.Helper()
	e := &env{t: t, lab: pipelinetest.NewLab(t), dir: t.TempDir()}
	e.dns = dnstest.Serve(t, e.lab.Zone)
	e.sink = pipelinetest.StartSink(t, "", false, true)
	e.smtp, e.metrics = freePort(t), freePort(t)
	cfg := fmt.Sprintf(`data_dir: %s
hostname: gw.lab.example
authserv_id: %s
dns:
  servers: ["%s"]
  timeout: 300ms
  attempts: 1
  cache:
    failure_ttl: 1s
analysis:
  check_timeout: 5s
listeners:
  - name: mx
    address: "%s"
    accept_domains: [%s]
    limits:
      max_connections_per_ip: 200
downstream:
  type: smtp
  hosts: ["%s"]
  tls: "off"
  connect_timeout: 1s
  command_timeout: 5s
  data_timeout: 10s
policy:
  own_domain:
    domains: [%s]
metrics:
  address: "%s"
shutdown_timeout: 10s
logging:
  level: warn
%s`, filepath.Join(e.dir, "data"), authServID, e.dns.Addr(), e.smtp, pipelinetest.RecipientDomain,
		e.sink.Addr(), pipelinetest.ProtectedDomain, e.metrics, extra)
	e.cfgPath = filepath.Join(e.dir, "portcullis.yaml")
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.stop() })
	return e
}

// start runs `portcullis serve` and waits for /healthz.
func (e *env) start() {
	e.t.Helper()
	e.mu.Lock()
	e.logs = &bytes.Buffer{}
	cmd := exec.Command(binPath, "serve", "--config", e.cfgPath)
	cmd.Stdout, cmd.Stderr = &lockedWriter{w: e.logs, mu: &e.mu}, &lockedWriter{w: e.logs, mu: &e.mu}
	if err := cmd.Start(); err != nil {
		e.mu.Unlock()
		e.t.Fatal(err)
	}
	e.cmd, e.done = cmd, make(chan struct{})
	done := e.done
	e.mu.Unlock()
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			e.t.Fatalf("portcullis serve exited: %s\n%s", cmd.ProcessState, e.logText())
		default:
		}
		resp, err := http.Get("http://" + e.metrics + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(30 * time.Millisecond)
	}
	e.t.Fatalf("portcullis serve not healthy after 20s:\n%s", e.logText())
}

// stop sends SIGTERM and waits for the process to end.
func (e *env) stop() {
	e.mu.Lock()
	cmd, done := e.cmd, e.done
	e.cmd = nil
	e.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		e.t.Errorf("portcullis serve did not stop within 30s of SIGTERM")
	}
	if cmd.ProcessState != nil && !cmd.ProcessState.Success() {
		e.t.Errorf("portcullis serve exited with %s:\n%s", cmd.ProcessState, e.logText())
	}
}

func (e *env) logText() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.logs == nil {
		return ""
	}
	return e.logs.String()
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// run runs the binary with args and returns its standard output.
func (e *env) run(args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command(binPath, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%w: %s", err, errb.String())
	}
	return out.String(), err
}

// evidence returns the records matching q, read from the data directory
// (beside the running gateway: SQLite WAL readers do not block it).
func (e *env) evidence(q store.EvidenceQuery) []*evidence.Record {
	e.t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(e.dir, "data"), &sqlite.Options{ReadConns: 1})
	if err != nil {
		e.t.Fatal(err)
	}
	defer st.Close()
	q.Limit = store.MaxLimit
	var out []*evidence.Record
	for {
		page, err := st.QueryEvidence(context.Background(), q)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, page.Records...)
		if page.Next == "" {
			return out
		}
		q.Cursor = page.Next
	}
}

// waitEvidence polls for at least n records matching q: the evidence of
// delivered, rejected and deferred messages is group-committed after the
// reply, so it may trail by a batch.
func (e *env) waitEvidence(q store.EvidenceQuery, n int) []*evidence.Record {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		recs := e.evidence(q)
		if len(recs) >= n || time.Now().After(deadline) {
			return recs
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// swaksReply matches the reply to the end of DATA in a swaks transcript:
// the first reply after the line " -> .".
var swaksReply = regexp.MustCompile(`(?m)^<(?:-|\*\*) +([2-5][0-9][0-9])[ -](.*)$`)

// swaks sends msg with swaks and returns the code and text of the reply to
// the end of DATA (0 when the session did not get there).
func (e *env) swaks(msg []byte, mailFrom string, rcpts ...string) (int, string) {
	e.t.Helper()
	bin := testutil.LookPath(e.t, "swaks", "swaks")
	f := filepath.Join(e.t.TempDir(), "msg.eml")
	if err := os.WriteFile(f, msg, 0o600); err != nil {
		e.t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(e.smtp)
	args := []string{"--server", host, "--port", port, "--helo", "mail.good.example", "--from", mailFrom,
		"--to", strings.Join(rcpts, ","), "--data", "@" + f, "--timeout", "30"}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+e.t.TempDir())
	out, _ := cmd.CombinedOutput() // swaks exits non-zero on a refusal
	text := string(out)
	i := strings.Index(text, "\n -> .\r\n")
	if i < 0 {
		i = strings.Index(text, "\n -> .\n")
	}
	if i < 0 {
		e.t.Logf("swaks transcript without end of data:\n%s", text)
		return 0, ""
	}
	m := swaksReply.FindStringSubmatch(text[i:])
	if m == nil {
		e.t.Logf("swaks transcript without a reply to the data:\n%s", text)
		return 0, ""
	}
	code, _ := strconv.Atoi(m[1])
	return code, strings.TrimSpace(m[2])
}

// send sends msg with a Go SMTP client, one message per connection, and
// classifies the outcome.
type result int

const (
	resBroken result = iota // the connection failed: the sender keeps the message
	res2xx
	res4xx
	res5xx
)

func sendGo(ctx context.Context, addr string, msg []byte, mailFrom string, rcpts ...string) (result, int, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return resBroken, 0, err
	}
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	c := smtp.NewClient(conn)
	defer c.Close()
	classify := func(err error) (result, int, error) {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			switch se.Code / 100 {
			case 4:
				return res4xx, se.Code, err
			case 5:
				return res5xx, se.Code, err
			}
		}
		return resBroken, 0, err
	}
	if err := c.Hello("mail.good.example"); err != nil {
		return classify(err)
	}
	if err := c.Mail(mailFrom, nil); err != nil {
		return classify(err)
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			return classify(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return classify(err)
	}
	if _, err := w.Write(msg); err != nil {
		return classify(err)
	}
	if err := w.Close(); err != nil {
		return classify(err)
	}
	_ = c.Quit()
	return res2xx, 250, nil
}

// sendCut opens a session and closes the connection after half the data.
func sendCut(addr string, msg []byte, mailFrom, rcpt string) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 4096)
	expect := func(prefix string) error {
		var got []byte
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return err
			}
			got = append(got, buf[:n]...)
			lines := strings.Split(strings.TrimRight(string(got), "\r\n"), "\r\n")
			last := lines[len(lines)-1]
			if strings.HasSuffix(string(got), "\r\n") && len(last) >= 4 && last[3] == ' ' {
				if !strings.HasPrefix(last, prefix) {
					return fmt.Errorf("got %q, want %s", last, prefix)
				}
				return nil
			}
		}
	}
	steps := []struct{ send, want string }{
		{"", "220"}, {"EHLO cut.lab.example\r\n", "250"}, {"MAIL FROM:<" + mailFrom + ">\r\n", "250"},
		{"RCPT TO:<" + rcpt + ">\r\n", "250"}, {"DATA\r\n", "354"},
	}
	for _, s := range steps {
		if s.send != "" {
			if _, err := conn.Write([]byte(s.send)); err != nil {
				return err
			}
		}
		if err := expect(s.want); err != nil {
			return err
		}
	}
	_, err = conn.Write(msg[:len(msg)/2])
	return err
}
