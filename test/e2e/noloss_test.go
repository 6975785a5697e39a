package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"portcullis/internal/evidence"
	"portcullis/internal/pipeline/pipelinetest"
	"portcullis/internal/store"
)

// isRefused reports a connection refused: nothing was sent.
func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// TestNoLoss sends 1,000 messages through the real binary, 16 at a time,
// while faults are injected: the downstream flaps (451 at the end of DATA,
// connections cut without a reply, 421 at the greeting, 550, stopped and
// restarted), some clients cut their connection in the middle of DATA, and
// the gateway itself is stopped (SIGTERM) and started again twice. Then:
// every message that got a 250 is downstream or in the quarantine, with its
// evidence; every other one got a 4xx, a 5xx or a broken connection, so its
// sender still has it; no cut or refused message went anywhere.
func TestNoLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("no-loss run skipped in -short mode")
	}
	const (
		total       = 1000
		concurrency = 16
	)
	e := newEnv(t, "")
	e.start()

	type kind int
	const (
		kDeliver kind = iota
		kQuarantine
		kSpoof
		kCut
	)
	type msgRec struct {
		kind kind
		mid  string
		data []byte
		from string
		res  result
		code int
	}
	msgs := make([]*msgRec, total)
	for i := range msgs {
		m := &msgRec{}
		switch i % 20 {
		case 13, 14:
			m.kind = kQuarantine
			m.from = "billing@" + pipelinetest.AttackerDomain
			m.data = e.lab.Build(t, pipelinetest.Msg{From: "billing@" + pipelinetest.QuarantineDomain, Subject: fmt.Sprintf("invoice %d", i), BodySize: 2000})
		case 15, 16:
			m.kind = kSpoof
			m.from = "ceo@" + pipelinetest.AttackerDomain
			m.data = e.lab.Build(t, pipelinetest.Msg{From: "ceo@" + pipelinetest.ProtectedDomain, Subject: fmt.Sprintf("wire %d", i), BodySize: 2000})
		case 17:
			m.kind = kCut
			m.from = "alice@" + pipelinetest.GoodDomain
			m.data = e.lab.Build(t, pipelinetest.Msg{From: "alice@" + pipelinetest.GoodDomain, Subject: fmt.Sprintf("cut %d", i), Sign: pipelinetest.GoodDomain, BodySize: 8000})
		default:
			m.kind = kDeliver
			m.from = "alice@" + pipelinetest.GoodDomain
			m.data = e.lab.Build(t, pipelinetest.Msg{From: "alice@" + pipelinetest.GoodDomain, Subject: fmt.Sprintf("report %d", i), Sign: pipelinetest.GoodDomain, BodySize: 8000})
		}
		m.mid = pipelinetest.MessageID(m.data)
		msgs[i] = m
	}

	// The downstream flaps until the run ends.
	stopFaults := make(chan struct{})
	var faultsDone sync.WaitGroup
	faultsDone.Add(1)
	go func() {
		defer faultsDone.Done()
		seq := []pipelinetest.Mode{pipelinetest.Accept, pipelinetest.TempFail, pipelinetest.Accept, pipelinetest.Drop,
			pipelinetest.Accept, pipelinetest.Busy, pipelinetest.Accept, -1, pipelinetest.Accept, pipelinetest.Reject}
		for i := 0; ; i++ {
			m := seq[i%len(seq)]
			d := 60 * time.Millisecond
			if m == pipelinetest.Accept {
				d = 250 * time.Millisecond
			}
			if m == -1 { // stopped, then restarted on the same port
				e.sink.Stop()
			} else {
				e.sink.SetMode(m)
			}
			select {
			case <-stopFaults:
				e.sink.SetMode(pipelinetest.Accept)
				_ = e.sink.Start()
				return
			case <-time.After(d):
			}
			if m == -1 {
				if err := e.sink.Start(); err != nil {
					t.Error(err)
				}
			}
		}
	}()

	// The gateway restarts twice, when 30% and 65% of the messages are
	// through.
	var done atomic.Int64
	restarts := make(chan struct{})
	go func() {
		defer close(restarts)
		for _, at := range []int64{total * 30 / 100, total * 65 / 100} {
			for done.Load() < at {
				time.Sleep(5 * time.Millisecond)
			}
			e.stop()
			time.Sleep(100 * time.Millisecond)
			e.start()
		}
	}()

	var refused atomic.Int64
	start := time.Now()
	work := make(chan *msgRec)
	var wg sync.WaitGroup
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range work {
				// A connection refused (the gateway restarting) never
				// carried the message: like an MTA, try again shortly.
				for try := 0; ; try++ {
					var err error
					if m.kind == kCut {
						err = sendCut(e.smtp, m.data, m.from, rcpt)
					} else {
						m.res, m.code, err = sendGo(context.Background(), e.smtp, m.data, m.from, rcpt)
					}
					if !isRefused(err) || try == 500 {
						break
					}
					refused.Add(1)
					time.Sleep(20 * time.Millisecond)
				}
				done.Add(1)
			}
		}()
	}
	for _, m := range msgs {
		work <- m
	}
	close(work)
	wg.Wait()
	<-restarts
	close(stopFaults)
	faultsDone.Wait()
	elapsed := time.Since(start)
	e.stop()

	counts := map[string]int{}
	dataDir := filepath.Join(e.dir, "data")
	for _, m := range msgs {
		inSink := e.sink.Has(m.mid)
		recs := e.evidence(store.EvidenceQuery{MessageID: m.mid})
		var quarantined bool
		for _, r := range recs {
			if r.Decision.Action == evidence.Quarantine {
				if _, err := os.Stat(filepath.Join(dataDir, "quarantine", r.ID+".eml")); err == nil {
					quarantined = true
				} else {
					t.Errorf("%s: quarantine record %s without its body: %v", m.mid, r.ID, err)
				}
			}
		}
		if inSink > 1 {
			counts["duplicated downstream"]++
		}
		if m.kind == kCut {
			counts["cut mid-DATA"]++
			if inSink > 0 || quarantined || len(recs) > 0 {
				t.Errorf("%s: cut in the middle of DATA, yet delivered %d, quarantined %v, %d records", m.mid, inSink, quarantined, len(recs))
			}
			continue
		}
		switch m.res {
		case res2xx:
			counts["250"]++
			if inSink == 0 && !quarantined {
				t.Errorf("LOST: %s (kind %d) got 250 but is neither downstream nor in the quarantine; records %+v", m.mid, m.kind, recs)
			}
			var recorded bool
			for _, r := range recs {
				recorded = recorded || r.Decision.Action == evidence.Deliver || r.Decision.Action == evidence.Quarantine
			}
			if !recorded {
				t.Errorf("%s got 250 without a deliver or quarantine record", m.mid)
			}
			if m.kind == kSpoof {
				t.Errorf("%s: a spoof got 250", m.mid)
			}
		case res4xx:
			counts["4xx"]++
		case res5xx:
			counts["5xx"]++
		default:
			counts["broken connection"]++
		}
		if m.res != res2xx && quarantined {
			// Quarantined but not acknowledged (the connection broke
			// after the commit): the sender retries, a duplicate.
			counts["quarantined without 250"]++
		}
		if m.kind == kSpoof && inSink > 0 {
			t.Errorf("%s: a spoof reached the downstream", m.mid)
		}
	}
	t.Logf("%d messages in %v (%d at a time, 2 gateway restarts, downstream flapping): %v; %d connections refused while the gateway restarted (retried)",
		total, elapsed.Round(time.Millisecond), concurrency, counts, refused.Load())
	if counts["250"] < total/4 {
		t.Errorf("only %d messages got 250: the faults drowned the run", counts["250"])
	}
}
