//go:build linux

package dkim

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
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

// threadCPU returns the CPU time used by the calling thread.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(1 /* RUSAGE_THREAD, Linux */, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func cpuPerOp(n int, f func()) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for i := 0; i < n/10; i++ {
		f()
	}
	runtime.GC()
	start := threadCPU()
	for i := 0; i < n; i++ {
		f()
	}
	return (threadCPU() - start) / time.Duration(n)
}

// TestVerifyCPUTime compares the thread CPU time of one verification
// (ours, go-msgauth, the floor of BenchmarkVerifyFloor), which is steadier
// than wall time on a shared machine. It runs only with
// PORTCULLIS_CPU_BENCH=1.
func TestVerifyCPUTime(t *testing.T) {
	if os.Getenv("PORTCULLIS_CPU_BENCH") != "1" {
		t.Skip("set PORTCULLIS_CPU_BENCH=1 to run")
	}
	b := &testing.B{}
	msg, rec, key := benchMessage(b)
	resp := &dns.Response{Records: []dns.Record{txtRecord(rec)}}
	v := &Verifier{Resolver: staticResolver{resp}}
	ctx := context.Background()
	r := bytes.NewReader(msg)
	ours := func() { r.Reset(msg); v.Verify(ctx, r) }
	opts := &msgauth.VerifyOptions{LookupTXT: func(string) ([]string, error) { return []string{rec}, nil }}
	theirs := func() { r.Reset(msg); msgauth.VerifyWithOptions(r, opts) }
	br := bufio.NewReader(bytes.NewReader(msg))
	h, _ := message.ReadHeader(br, message.Limits{})
	body, _ := bytesFrom(br)
	sig, _ := ParseSignature(h.Fields[0])
	data, _ := AppendHeaderData(nil, sig.HeaderCanon, SelectHeaders(h.Fields, sig.Headers), h.Fields[0].Raw)
	pub := key.Public().(*rsa.PublicKey)
	floor := func() {
		sha256.Sum256(body)
		d := sha256.Sum256(data)
		rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig.Value)
	}
	bodyR := func() { bh := NewBodyHasher(Relaxed, crypto.SHA256, -1); bh.Write(body); bh.Sum() }
	bodyS := func() { bh := NewBodyHasher(Simple, crypto.SHA256, -1); bh.Write(body); bh.Sum() }
	sha := func() { sha256.Sum256(body) }
	hdr := func() { message.ReadHeader(bufio.NewReader(bytes.NewReader(msg)), message.Limits{}) }
	var os_, ths, fs []time.Duration
	for range 7 {
		os_ = append(os_, cpuPerOp(2000, ours))
		ths = append(ths, cpuPerOp(2000, theirs))
		fs = append(fs, cpuPerOp(2000, floor))
	}
	o, th, f := median(os_), median(ths), median(fs)
	t.Logf("median of 7 rounds of thread CPU time per verification: ours %v, go-msgauth %v, floor %v; ours/floor %.2f, ours/go-msgauth %.2f",
		o, th, f, float64(o)/float64(f), float64(o)/float64(th))
	t.Logf("parts: relaxed body hash %v, simple body hash %v, SHA-256 of the body %v, header parsing %v",
		cpuPerOp(2000, bodyR), cpuPerOp(2000, bodyS), cpuPerOp(2000, sha), cpuPerOp(2000, hdr))
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
