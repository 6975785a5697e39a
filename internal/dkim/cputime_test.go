//go:build linux

package dkim

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"os"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	msgauth "github.com/emersion/go-msgauth/dkim"

	"portcullis/internal/dns"
	"portcullis/internal/message"
)

// processCPU returns the CPU time used by the process: every thread, so
// that the garbage collector's background work counts against the code
// that made the garbage.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuPerOp returns the process CPU time of one call of f, over n calls
// that start with no garbage left from earlier measurements.
func cpuPerOp(n int, f func()) time.Duration {
	for i := 0; i < n/10; i++ {
		f()
	}
	runtime.GC()
	start := processCPU()
	for i := 0; i < n; i++ {
		f()
	}
	return (processCPU() - start) / time.Duration(n)
}

// TestVerifyCPUTime compares the process CPU time of one verification
// (ours, go-msgauth, the floors of BenchmarkVerifyFloor and
// BenchmarkVerifyFloorPrepared), which is steadier than wall time on a
// shared machine. It runs only with PORTCULLIS_CPU_BENCH=1.
func TestVerifyCPUTime(t *testing.T) {
	if os.Getenv("PORTCULLIS_CPU_BENCH") != "1" {
		t.Skip("set PORTCULLIS_CPU_BENCH=1 to run")
	}
	w := newFloorWork(t)
	msg, rec := w.msg, w.record
	resp := &dns.Response{Records: []dns.Record{txtRecord(rec)}}
	v := &Verifier{Resolver: staticResolver{resp}}
	ctx := context.Background()
	r := bytes.NewReader(msg)
	ours := func() { r.Reset(msg); v.Verify(ctx, r) }
	opts := &msgauth.VerifyOptions{LookupTXT: func(string) ([]string, error) { return []string{rec}, nil }}
	theirs := func() { r.Reset(msg); msgauth.VerifyWithOptions(r, opts) }
	body := w.body
	floor := func() { w.verify(nil) }
	prepared := w.preparedKey(t)
	floorPrepared := func() { w.verify(prepared) }
	bodyR := func() { bh := NewBodyHasher(Relaxed, crypto.SHA256, -1); bh.Write(body); bh.Sum() }
	bodyS := func() { bh := NewBodyHasher(Simple, crypto.SHA256, -1); bh.Write(body); bh.Sum() }
	sha := func() { sha256.Sum256(body) }
	hr, hbr := bytes.NewReader(msg), bufio.NewReaderSize(nil, 16<<10)
	hdr := func() { hr.Reset(msg); hbr.Reset(hr); message.ReadHeader(hbr, message.Limits{}) }
	var os_, ths, fs, fps, rf, rfp, rt []time.Duration
	for range 9 {
		o, th := cpuPerOp(4000, ours), cpuPerOp(4000, theirs)
		f, fp := cpuPerOp(4000, floor), cpuPerOp(4000, floorPrepared)
		os_, ths, fs, fps = append(os_, o), append(ths, th), append(fs, f), append(fps, fp)
		// Ratios of measurements of the same round, in thousandths.
		rf = append(rf, 1000*o/f)
		rfp = append(rfp, 1000*o/fp)
		rt = append(rt, 1000*o/th)
	}
	t.Logf("median of 9 rounds of process CPU time per verification: ours %v, go-msgauth %v, floor %v, "+
		"floor with the prepared key %v; median per-round ratio ours/floor %.2f, ours/prepared floor %.2f, ours/go-msgauth %.2f",
		median(os_), median(ths), median(fs), median(fps),
		float64(median(rf))/1000, float64(median(rfp))/1000, float64(median(rt))/1000)
	msgS, recS, _ := benchMessageCanon(&testing.B{}, "simple/simple")
	vS := &Verifier{Resolver: staticResolver{&dns.Response{Records: []dns.Record{txtRecord(recS)}}}}
	rS := bytes.NewReader(msgS)
	oursSimple := func() { rS.Reset(msgS); vS.Verify(ctx, rS) }
	var ss, sf []time.Duration
	for range 9 {
		o, f := cpuPerOp(4000, oursSimple), cpuPerOp(4000, floor)
		ss, sf = append(ss, o), append(sf, 1000*o/f)
	}
	t.Logf("simple/simple: ours %v, median per-round ratio ours/floor %.2f", median(ss), float64(median(sf))/1000)
	t.Logf("parts: relaxed body hash %v, simple body hash %v, SHA-256 of the body %v, header parsing %v",
		cpuPerOp(8000, bodyR), cpuPerOp(8000, bodyS), cpuPerOp(8000, sha), cpuPerOp(8000, hdr))
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
