package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"portcullis/internal/pipeline/pipelinetest"
	"portcullis/internal/relay"
)

// relayEnv, when set in the environment of the test binary, makes it a
// plain SMTP relay with no checks (the ceiling of the benchmark): it
// listens on the first address and relays every message to the second with
// the same pooled client the gateway uses.
const relayEnv = "PORTCULLIS_E2E_PLAIN_RELAY"

func init() {
	if v := os.Getenv(relayEnv); v != "" {
		listen, downstream, _ := strings.Cut(v, ",")
		if err := plainRelay(listen, downstream); err != nil {
			fmt.Fprintln(os.Stderr, "plain relay:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// plainRelay answers 250 once the downstream accepted, like the gateway,
// but without analysis, policy or evidence.
func plainRelay(listen, downstream string) error {
	d, err := relay.NewSMTP(relay.SMTPConfig{Hosts: []string{downstream}, LocalName: "relay.lab.example", TLS: relay.TLSOff, MaxIdlePerHost: 16})
	if err != nil {
		return err
	}
	defer d.Close()
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &relaySession{d: d}, nil }))
	srv.Domain = "relay.lab.example"
	srv.MaxMessageBytes = 25 << 20
	srv.ReadTimeout, srv.WriteTimeout = time.Minute, time.Minute
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	go func() { _ = srv.Serve(ln) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return srv.Close()
}

type relaySession struct {
	d     *relay.SMTP
	from  string
	rcpts []string
}

func (s *relaySession) Reset()        { s.from, s.rcpts = "", nil }
func (s *relaySession) Logout() error { return nil }
func (s *relaySession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *relaySession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}
func (s *relaySession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	res := s.d.Deliver(context.Background(), relay.Message{MailFrom: s.from, Rcpts: s.rcpts, Data: b})
	if res.Status != relay.StatusAccepted {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 1}, Message: "downstream failed"}
	}
	return nil
}

// procCPU returns the user+system CPU time a process has used, from
// /proc/PID/stat (fields 14 and 15, in clock ticks of 1/100 s).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("unreadable /proc stat")
	}
	f := strings.Fields(s[i+1:])
	// After the command: state is field 3, utime 14, stime 15.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("unreadable /proc stat")
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// runStats is one measured run.
type runStats struct {
	n, failed int
	elapsed   time.Duration
	cpu       time.Duration
	lat       []time.Duration // from the end of the data to the reply
}

func (r runStats) rate() float64 { return float64(r.n) / r.elapsed.Seconds() }
func (r runStats) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*p))]
}

// blast sends n messages to addr from conc clients, one message per
// connection, and measures the process pid's CPU over the run.
func blast(t *testing.T, addr string, pid int, msgs [][]byte, n, conc int) runStats {
	t.Helper()
	var next atomic.Int64
	var mu sync.Mutex
	st := runStats{}
	cpu0, err := procCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			failed := 0
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					break
				}
				d, err := sendTimed(addr, msgs[i%len(msgs)], "alice@"+pipelinetest.GoodDomain, rcpt)
				if err != nil {
					failed++
					continue
				}
				lat = append(lat, d)
			}
			mu.Lock()
			st.lat = append(st.lat, lat...)
			st.failed += failed
			mu.Unlock()
		}()
	}
	wg.Wait()
	st.elapsed = time.Since(start)
	cpu1, _ := procCPU(pid)
	st.cpu = cpu1 - cpu0
	st.n = n - st.failed
	slices.Sort(st.lat)
	return st
}

// sendTimed sends one message on its own connection and returns the time
// from the end of the data to the 250.
func sendTimed(addr string, msg []byte, from, to string) (time.Duration, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("mail.good.example"); err != nil {
		return 0, err
	}
	if err := c.Mail(from, nil); err != nil {
		return 0, err
	}
	if err := c.Rcpt(to, nil); err != nil {
		return 0, err
	}
	w, err := c.Data()
	if err != nil {
		return 0, err
	}
	if _, err := w.Write(msg); err != nil {
		return 0, err
	}
	t := time.Now()
	if err := w.Close(); err != nil {
		return 0, err
	}
	d := time.Since(t)
	_ = c.Quit()
	return d, nil
}

// TestGatewayThroughput measures messages per second through the real
// `portcullis serve` (a separate process, so that its CPU time is its own)
// with 16 concurrent clients, one message per connection, ~10 KB messages
// signed with RSA-2048 whose DMARC passes (the deliver path: analysis,
// policy, Authentication-Results, relay, evidence), DNS warm; and the same
// through a plain go-smtp relay without checks (the ceiling). The clients
// and the downstream sink run in the test process. See docs/bench.md.
//
//	PORTCULLIS_BENCH=1 go test -run TestGatewayThroughput -v ./test/e2e
func TestGatewayThroughput(t *testing.T) {
	if os.Getenv("PORTCULLIS_BENCH") == "" {
		t.Skip("set PORTCULLIS_BENCH=1 to run the throughput benchmark (docs/bench.md)")
	}
	if raceEnabled {
		t.Skip("the throughput benchmark is meaningless under the race detector")
	}
	n := 5000
	if v, err := strconv.Atoi(os.Getenv("PORTCULLIS_BENCH_N")); err == nil && v > 0 {
		n = v
	}
	const conc = 16

	// The data directory on the real disk, not a tmpfs: fsync costs what it
	// costs in production.
	// PORTCULLIS_BENCH_CONFIG is YAML added to the gateway's configuration
	// (experiments: "store:\n  batch_wait: 50ms").
	e := newEnv(t, os.Getenv("PORTCULLIS_BENCH_CONFIG"))
	e.sink.Stop()
	e.sink = pipelinetest.StartSink(t, "", false, false)
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	// The benchmark's downstream, default logging (info, one line per
	// message) and a generous per-IP connection limit.
	text := strings.Replace(string(cfg), "logging:\n  level: warn\n", "logging:\n  level: info\n", 1)
	text = strings.Replace(text, "max_connections_per_ip: 200", "max_connections_per_ip: 1000", 1)
	if os.Getenv("PORTCULLIS_BENCH_PROFILE") != "" {
		text = strings.Replace(text, "metrics:\n", "metrics:\n  pprof: true\n", 1)
	}
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "  hosts: [") {
			lines[i] = fmt.Sprintf("  hosts: [%q]", e.sink.Addr())
		}
	}
	if err := os.WriteFile(e.cfgPath, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(e.dir, "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()

	t.Logf("signing messages (RSA-2048)")
	msgs := make([][]byte, 500)
	for i := range msgs {
		msgs[i] = e.lab.Build(t, pipelinetest.Msg{
			From: "alice@" + pipelinetest.GoodDomain, Subject: fmt.Sprintf("Quarterly report %d", i),
			Sign: pipelinetest.GoodDomain, BodySize: 9500,
		})
	}
	t.Logf("message size %d octets", len(msgs[0]))

	// The ceiling: a plain relay in a child process (this test binary).
	relayAddr := freePort(t)
	rc := exec.Command(os.Args[0], "-test.run=^$")
	rc.Env = append(os.Environ(), relayEnv+"="+relayAddr+","+e.sink.Addr())
	out, _ := rc.StdoutPipe()
	rc.Stderr = os.Stderr
	if err := rc.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Process.Signal(syscall.SIGTERM); _ = rc.Wait() }()
	if line, _ := bufio.NewReader(out).ReadString('\n'); strings.TrimSpace(line) != "ready" {
		t.Fatalf("plain relay: %q", line)
	}

	// The gateway: the real binary.
	e.start()
	gwPID := e.cmd.Process.Pid

	warm := func(addr string, pid int) {
		if s := blast(t, addr, pid, msgs, 300, conc); s.failed > 0 {
			t.Fatalf("warm-up against %s: %d failed", addr, s.failed)
		}
	}
	warm(relayAddr, rc.Process.Pid)
	warm(e.smtp, gwPID)

	ceil := blast(t, relayAddr, rc.Process.Pid, msgs, n, conc)
	if prof := os.Getenv("PORTCULLIS_BENCH_PROFILE"); prof != "" {
		// A CPU profile of the gateway during its run (go tool pprof).
		go func() {
			cmd := exec.Command("curl", "-s", "-o", prof, "http://"+e.metrics+"/debug/pprof/profile?seconds=6")
			if err := cmd.Run(); err != nil {
				t.Logf("profile: %v", err)
			}
		}()
	}
	gw := blast(t, e.smtp, gwPID, msgs, n, conc)
	if gw.failed > 0 || ceil.failed > 0 {
		t.Errorf("failures: gateway %d, ceiling %d\n%s", gw.failed, ceil.failed, e.logText())
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
	t.Logf("plain relay (ceiling): %d msgs in %v: %.0f msg/s, p50 %s p99 %s, CPU %.3f ms/msg",
		ceil.n, ceil.elapsed.Round(time.Millisecond), ceil.rate(), ms(ceil.pct(.5)), ms(ceil.pct(.99)), float64(ceil.cpu.Microseconds())/1000/float64(ceil.n))
	t.Logf("portcullis gateway:    %d msgs in %v: %.0f msg/s, p50 %s p99 %s, CPU %.3f ms/msg",
		gw.n, gw.elapsed.Round(time.Millisecond), gw.rate(), ms(gw.pct(.5)), ms(gw.pct(.99)), float64(gw.cpu.Microseconds())/1000/float64(gw.n))
	t.Logf("ratio %.2f of the ceiling; added latency (end of data to reply) p50 %s, p99 %s",
		gw.rate()/ceil.rate(), ms(gw.pct(.5)-ceil.pct(.5)), ms(gw.pct(.99)-ceil.pct(.99)))
	if resp, err := http.Get("http://" + e.metrics + "/metrics"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var batches, records, dials, reused float64
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "portcullis_downstream_dials_total "); ok {
				dials, _ = strconv.ParseFloat(v, 64)
			}
			if v, ok := strings.CutPrefix(l, "portcullis_downstream_reused_total "); ok {
				reused, _ = strconv.ParseFloat(v, 64)
			}
			if v, ok := strings.CutPrefix(l, "portcullis_store_batches_total "); ok {
				batches, _ = strconv.ParseFloat(v, 64)
			}
			if v, ok := strings.CutPrefix(l, "portcullis_store_evidence_committed_total "); ok {
				records, _ = strconv.ParseFloat(v, 64)
			}
		}
		if batches > 0 {
			t.Logf("evidence: %.0f records in %.0f group commits (%.1f per fsync)", records, batches, records/batches)
		}
		t.Logf("downstream: %.0f connections opened, %.0f messages on reused connections", dials, reused)
	}
	if got := e.sink.Count(); got < 2*n {
		t.Errorf("sink has %d messages, want at least %d", got, 2*n)
	}
	e.stop()
}
