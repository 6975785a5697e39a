package milter_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
	"github.com/emersion/go-smtp"

	"portcullis/internal/milter"
	"portcullis/internal/milter/postfixtest"
	"portcullis/internal/scenarios"
)

// splitMessage returns the header fields (name, value after the colon)
// and the body of msg, as an MTA hands them to a milter.
func splitMessage(msg []byte) ([][2]string, []byte) {
	var fields [][2]string
	rest := string(msg)
	for {
		i := indexCRLF(rest)
		if i <= 0 {
			break
		}
		line := rest[:i]
		rest = rest[i+2:]
		for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
			j := indexCRLF(rest)
			line += "\n" + rest[:j]
			rest = rest[j+2:]
		}
		for k := 0; k < len(line); k++ {
			if line[k] == ':' {
				fields = append(fields, [2]string{line[:k], line[k+1:]})
				break
			}
		}
	}
	if len(rest) >= 2 {
		rest = rest[2:]
	}
	return fields, []byte(rest)
}

func indexCRLF(s string) int {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '\r' && s[i+1] == '\n' {
			return i
		}
	}
	return len(s)
}

// BenchmarkMilterMessage: one message (DKIM-signed, aligned SPF, delivered:
// the full analysis, the decision, the header changes) through the milter
// protocol per iteration, over one MTA connection, with the lab's in-memory
// DNS. It measures the milter and the pipeline without the MTA.
func BenchmarkMilterMessage(b *testing.B) {
	lab := scenarios.NewLab(b)
	p := lab.NewPipeline(b, scenarios.OpenStore(b), milter.Deliverer())
	srv, err := milter.NewServer(p, milter.Config{Logger: scenarios.QuietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	msg := lab.Signed(b, scenarios.GoodDomain, lab.Plain(b, "sales@"+scenarios.GoodDomain, "alice@"+scenarios.RecipientDomain, "Bench", "bench@lab.example"))
	fields, body := splitMessage(msg)
	c := gomilter.NewClient("tcp", ln.Addr().String(), gomilter.WithAction(gomilter.AllClientSupportedActionMasks))
	s, err := c.Session(gomilter.NewMacroBag())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Conn("localhost", gomilter.FamilyInet, 40000, "127.0.0.1"); err != nil {
		b.Fatal(err)
	}
	if _, err := s.Helo(scenarios.HELO); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i > 0 {
			if err := s.Abort(nil); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := s.Mail("bounces@"+scenarios.GoodDomain, ""); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Rcpt("alice@"+scenarios.RecipientDomain, ""); err != nil {
			b.Fatal(err)
		}
		if _, err := s.DataStart(); err != nil {
			b.Fatal(err)
		}
		for _, f := range fields {
			if _, err := s.HeaderField(f[0], f[1], nil); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := s.HeaderEnd(); err != nil {
			b.Fatal(err)
		}
		if _, err := s.BodyChunk(body); err != nil {
			b.Fatal(err)
		}
		mods, act, err := s.End()
		if err != nil {
			b.Fatal(err)
		}
		if act.Type != gomilter.ActionAccept || len(mods) != 1 {
			b.Fatalf("action %v, %d modifications", act, len(mods))
		}
	}
}

// throughput sends n copies of msg through addr over conns concurrent SMTP
// connections and returns the time until the sink had all of them.
func throughput(t *testing.T, addr string, sink *postfixtest.Sink, msg []byte, n, conns int) time.Duration {
	t.Helper()
	base := sink.Count()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	start := time.Now()
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := smtp.Dial(addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if err := c.Hello(scenarios.HELO); err != nil {
				errs <- err
				return
			}
			for next.Add(1) <= int64(n) {
				if err := c.SendMail("bounces@"+scenarios.GoodDomain, []string{"alice@" + scenarios.RecipientDomain}, bytes.NewReader(msg)); err != nil {
					errs <- err
					return
				}
			}
			_ = c.Quit()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("send: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := sink.WaitCount(ctx, base+n); err != nil {
		t.Fatalf("%d of %d delivered: %v", sink.Count()-base, n, err)
	}
	return time.Since(start)
}

// TestPostfixThroughput (PORTCULLIS_BENCH=1) measures messages per second
// through Postfix alone and through Postfix with Portcullis's milter, in
// the same run, on the same machine and with the same Postfix
// configuration but smtpd_milters: each message DKIM-signed, passing DMARC,
// delivered to an SMTP sink; the clock stops when the sink has them all.
// Both instances run side by side and are measured in alternation, rounds
// times, so that a change in the machine's load touches both; the median
// rounds are compared. PORTCULLIS_BENCH_MESSAGES, PORTCULLIS_BENCH_CONNS
// and PORTCULLIS_BENCH_ROUNDS change the load (defaults 500, 8 and 3).
func TestPostfixThroughput(t *testing.T) {
	if os.Getenv("PORTCULLIS_BENCH") != "1" {
		t.Skip("set PORTCULLIS_BENCH=1 to measure Postfix throughput with and without the milter")
	}
	postfixtest.Require(t)
	n, conns, rounds := envInt("PORTCULLIS_BENCH_MESSAGES", 500), envInt("PORTCULLIS_BENCH_CONNS", 8), envInt("PORTCULLIS_BENCH_ROUNDS", 3)
	lab := scenarios.NewLab(t)
	msg := lab.Signed(t, scenarios.GoodDomain, lab.Plain(t, "sales@"+scenarios.GoodDomain, "alice@"+scenarios.RecipientDomain, "Bench", "bench@lab.example"))

	type setup struct {
		name  string
		addr  string
		sink  *postfixtest.Sink
		rates []float64
	}
	var setups []*setup
	for _, withMilter := range []bool{false, true} {
		sink := postfixtest.NewSink(t, true)
		cfg := postfixtest.Config{RelayTo: sink.Addr(), Domains: []string{scenarios.RecipientDomain}}
		name := "postfix"
		if withMilter {
			name = "postfix+portcullis-milter"
			p := lab.NewPipeline(t, scenarios.OpenStore(t), milter.Deliverer())
			srv, err := milter.NewServer(p, milter.Config{Logger: scenarios.QuietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go func() { _ = srv.Serve(ln) }()
			t.Cleanup(func() { srv.Close() })
			cfg.Milter = "inet:" + ln.Addr().String()
		}
		pf := postfixtest.Start(t, cfg)
		// Warm up: process creation, connection caches.
		throughput(t, pf.Addr, sink, msg, 20, 2)
		setups = append(setups, &setup{name: name, addr: pf.Addr, sink: sink})
	}
	for r := 0; r < rounds; r++ {
		for _, s := range setups {
			d := throughput(t, s.addr, s.sink, msg, n, conns)
			rate := float64(n) / d.Seconds()
			s.rates = append(s.rates, rate)
			t.Logf("round %d %-26s %d messages over %d connections in %v: %.0f msg/s", r+1, s.name, n, conns, d.Round(time.Millisecond), rate)
		}
	}
	alone, with := median(setups[0].rates), median(setups[1].rates)
	t.Logf("median: postfix %.0f msg/s, postfix+milter %.0f msg/s: %.0f%% of Postfix alone's rate", alone, with, 100*with/alone)
	fmt.Fprintf(os.Stderr, "BENCH postfix %.1f msg/s, postfix+milter %.1f msg/s (median of %d rounds of %d messages, %d connections)\n", alone, with, rounds, n, conns)
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
