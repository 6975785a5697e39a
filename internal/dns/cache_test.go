package dns_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"portcullis/internal/dns"
	"portcullis/internal/dns/dnstest"
)

// counting is a Resolver that counts the queries it passes on, and can hold
// them until released.
type counting struct {
	next    dns.Resolver
	n       atomic.Int64
	gate    chan struct{} // when non-nil, queries wait for it to close
	ctxErrs atomic.Int64  // queries whose ctx had ended when they returned
}

func (c *counting) Query(ctx context.Context, name string, t dns.Type) (*dns.Response, error) {
	c.n.Add(1)
	if c.gate != nil {
		<-c.gate
	}
	resp, err := c.next.Query(ctx, name, t)
	if ctx.Err() != nil {
		c.ctxErrs.Add(1)
	}
	return resp, err
}

// fakeClock is a settable clock for CacheConfig.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

func newCacheUnderTest(z *dns.Zone, cfg dns.CacheConfig) (*dns.Cache, *counting, *fakeClock) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg.Now = clock.Now
	up := &counting{next: z}
	return dns.NewCache(up, cfg), up, clock
}

func TestCachePositiveTTL(t *testing.T) {
	z := dns.NewZone()
	z.Add("a.example", txt(60, "x"))
	z.Add("short.example", txt(5, "x"))
	z.Add("long.example", txt(86400*7, "x"))
	z.Add("zero.example", txt(0, "x"))
	c, up, clock := newCacheUnderTest(z, dns.CacheConfig{MinTTL: 10 * time.Second, MaxTTL: time.Hour})

	r1 := query(t, c, "a.example", dns.TypeTXT)
	r2 := query(t, c, "A.Example.", dns.TypeTXT)
	if up.n.Load() != 1 || r1 != r2 {
		t.Fatalf("second query went upstream (%d) or got another response", up.n.Load())
	}
	clock.Advance(59 * time.Second)
	query(t, c, "a.example", dns.TypeTXT)
	if up.n.Load() != 1 {
		t.Fatalf("expired before its TTL")
	}
	clock.Advance(time.Second)
	query(t, c, "a.example", dns.TypeTXT)
	if up.n.Load() != 2 {
		t.Fatalf("not expired after its TTL: %d upstream queries", up.n.Load())
	}
	// Other types of the same name are other entries.
	query(t, c, "a.example", dns.TypeA)
	if up.n.Load() != 3 {
		t.Fatalf("type not part of the key")
	}

	// MinTTL raises a short TTL; MaxTTL lowers a long one.
	query(t, c, "short.example", dns.TypeTXT)
	query(t, c, "long.example", dns.TypeTXT)
	query(t, c, "zero.example", dns.TypeTXT)
	base := up.n.Load()
	clock.Advance(9 * time.Second)
	query(t, c, "short.example", dns.TypeTXT)
	if up.n.Load() != base {
		t.Errorf("MinTTL not applied")
	}
	clock.Advance(time.Hour)
	query(t, c, "long.example", dns.TypeTXT)
	if up.n.Load() != base+1 {
		t.Errorf("MaxTTL not applied")
	}

	st := c.Stats()
	if st.Hits != 3 || st.Misses != uint64(up.n.Load()) || st.Coalesced != 0 {
		t.Errorf("stats %+v, upstream %d", st, up.n.Load())
	}
}

func TestCacheZeroTTLNotKept(t *testing.T) {
	z := dns.NewZone()
	z.Add("zero.example", txt(0, "x"))
	c, up, _ := newCacheUnderTest(z, dns.CacheConfig{})
	query(t, c, "zero.example", dns.TypeTXT)
	query(t, c, "zero.example", dns.TypeTXT)
	if up.n.Load() != 2 {
		t.Errorf("TTL 0 answer kept: %d upstream", up.n.Load())
	}
}

func TestCacheNegative(t *testing.T) {
	z := dns.NewZone()
	z.Add("exists.example", a(3600, "192.0.2.1"))
	z.SetNegativeTTL(120 * time.Second)
	c, up, clock := newCacheUnderTest(z, dns.CacheConfig{MaxNegativeTTL: time.Minute})

	for range 3 {
		if r := query(t, c, "nx.example", dns.TypeA); !r.NXDomain() {
			t.Fatalf("%+v", r)
		}
		if r := query(t, c, "exists.example", dns.TypeTXT); !r.NoData() {
			t.Fatalf("%+v", r)
		}
	}
	if up.n.Load() != 2 {
		t.Fatalf("negative answers not kept: %d upstream", up.n.Load())
	}
	// Capped by MaxNegativeTTL (60s) below the negative TTL (120s).
	clock.Advance(time.Minute)
	query(t, c, "nx.example", dns.TypeA)
	query(t, c, "exists.example", dns.TypeTXT)
	if up.n.Load() != 4 {
		t.Fatalf("MaxNegativeTTL not applied: %d upstream", up.n.Load())
	}

	// Without a cap, the negative TTL itself.
	z.SetNegativeTTL(30 * time.Second)
	c, up, clock = newCacheUnderTest(z, dns.CacheConfig{})
	query(t, c, "nx.example", dns.TypeA)
	clock.Advance(29 * time.Second)
	query(t, c, "nx.example", dns.TypeA)
	clock.Advance(time.Second)
	query(t, c, "nx.example", dns.TypeA)
	if up.n.Load() != 2 {
		t.Fatalf("negative TTL: %d upstream, want 2", up.n.Load())
	}

	// A negative answer with TTL 0 (no SOA) is not kept.
	z.SetNegativeTTL(0)
	c, up, _ = newCacheUnderTest(z, dns.CacheConfig{})
	query(t, c, "nx.example", dns.TypeA)
	query(t, c, "nx.example", dns.TypeA)
	if up.n.Load() != 2 {
		t.Fatalf("negative TTL 0 kept")
	}
}

func TestCacheFailures(t *testing.T) {
	z := dns.NewZone()
	z.SetFault("fail.example", 0, dns.FaultServFail)
	ctx := context.Background()

	c, up, clock := newCacheUnderTest(z, dns.CacheConfig{})
	for range 3 {
		if _, err := c.Query(ctx, "fail.example", dns.TypeA); !errors.Is(err, dns.ErrServFail) {
			t.Fatalf("err %v", err)
		}
	}
	if up.n.Load() != 1 {
		t.Fatalf("failure not kept: %d upstream", up.n.Load())
	}
	clock.Advance(5 * time.Second) // default FailureTTL
	_, _ = c.Query(ctx, "fail.example", dns.TypeA)
	if up.n.Load() != 2 {
		t.Fatalf("failure kept past FailureTTL")
	}

	c, up, _ = newCacheUnderTest(z, dns.CacheConfig{FailureTTL: -1})
	_, _ = c.Query(ctx, "fail.example", dns.TypeA)
	_, _ = c.Query(ctx, "fail.example", dns.TypeA)
	if up.n.Load() != 2 {
		t.Fatalf("failure kept with FailureTTL < 0")
	}

	// Invalid names never reach the next resolver.
	if _, err := c.Query(ctx, "a..b", dns.TypeA); !errors.Is(err, dns.ErrInvalidName) || up.n.Load() != 2 {
		t.Fatalf("invalid name: %v, %d upstream", err, up.n.Load())
	}
}

func TestCacheCoalescing(t *testing.T) {
	z := dns.NewZone()
	z.Add("busy.example", txt(60, "x"))
	c, up, _ := newCacheUnderTest(z, dns.CacheConfig{})
	up.gate = make(chan struct{})

	const callers = 50
	var wg sync.WaitGroup
	results := make([]*dns.Response, callers)
	for i := range callers {
		wg.Go(func() {
			r, err := c.Query(context.Background(), "busy.example", dns.TypeTXT)
			if err != nil {
				t.Error(err)
			}
			results[i] = r
		})
	}
	waitFor(t, func() bool { return c.Stats().Coalesced == callers-1 })
	close(up.gate)
	wg.Wait()
	if up.n.Load() != 1 {
		t.Errorf("%d upstream queries for %d identical callers", up.n.Load(), callers)
	}
	for _, r := range results {
		if r != results[0] || len(r.Records) != 1 {
			t.Fatalf("callers got different answers")
		}
	}
	st := c.Stats()
	if st.Misses != 1 || st.Coalesced != callers-1 || st.Entries != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestCacheCoalescingOverWire coalesces queries to a real server: the
// server sees one query.
func TestCacheCoalescingOverWire(t *testing.T) {
	z := dns.NewZone()
	z.Add("wire.example", txt(60, "x"))
	release := make(chan struct{})
	var held atomic.Int64
	z.SetFaultFunc(func(string, dns.Type) dns.Fault {
		held.Add(1)
		<-release // hold the server's answer
		return dns.FaultNone
	})
	srv := dnstest.Serve(t, z)
	c := dns.NewCache(srv.Resolver(t, 5*time.Second), dns.CacheConfig{})

	const callers = 20
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			if r, err := c.Query(context.Background(), "wire.example", dns.TypeTXT); err != nil || len(r.Records) != 1 {
				t.Errorf("%v %+v", err, r)
			}
		})
	}
	waitFor(t, func() bool { return c.Stats().Coalesced == callers-1 && held.Load() == 1 })
	close(release)
	wg.Wait()
	if n := srv.Queries(); n != 1 {
		t.Errorf("server saw %d queries, want 1", n)
	}
}

func TestCacheCallerCancel(t *testing.T) {
	z := dns.NewZone()
	z.Add("slow.example", txt(60, "x"))
	c, up, _ := newCacheUnderTest(z, dns.CacheConfig{})
	up.gate = make(chan struct{})

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Query(ctx, "slow.example", dns.TypeTXT)
		errc <- err
	}()
	waitFor(t, func() bool { return up.n.Load() == 1 })
	var patient sync.WaitGroup
	patient.Go(func() {
		if r, err := c.Query(context.Background(), "slow.example", dns.TypeTXT); err != nil || len(r.Records) != 1 {
			t.Errorf("patient caller: %v %+v", err, r)
		}
	})
	waitFor(t, func() bool { return c.Stats().Coalesced == 1 })
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) || !dns.IsTemporary(err) {
			t.Errorf("cancelled caller: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("cancelled caller still waiting")
	}
	close(up.gate)
	patient.Wait()
	if up.ctxErrs.Load() != 0 {
		t.Errorf("the upstream query saw its ctx cancelled")
	}
	// The answer was kept.
	query(t, c, "slow.example", dns.TypeTXT)
	if up.n.Load() != 1 {
		t.Errorf("%d upstream queries", up.n.Load())
	}
}

func TestCacheQueryTimeout(t *testing.T) {
	// The upstream query runs under QueryTimeout, not under the caller's
	// (absent) deadline.
	slow := &deadlineResolver{}
	c := dns.NewCache(slow, dns.CacheConfig{QueryTimeout: 50 * time.Millisecond})
	start := time.Now()
	_, err := c.Query(context.Background(), "x.example", dns.TypeA)
	if !errors.Is(err, dns.ErrTimeout) || time.Since(start) > time.Second {
		t.Errorf("err %v after %v", err, time.Since(start))
	}
}

// deadlineResolver waits for its ctx to end.
type deadlineResolver struct{}

func (deadlineResolver) Query(ctx context.Context, name string, t dns.Type) (*dns.Response, error) {
	<-ctx.Done()
	return nil, &dns.Error{Name: name, Type: t, Err: fmt.Errorf("%w: %w", dns.ErrTimeout, ctx.Err())}
}

func TestCacheEviction(t *testing.T) {
	z := dns.NewZone()
	for i := range 100 {
		z.Add(fmt.Sprintf("n%d.example", i), txt(3600, "x"))
	}
	c, up, clock := newCacheUnderTest(z, dns.CacheConfig{MaxEntries: 10})
	for i := range 10 {
		query(t, c, fmt.Sprintf("n%d.example", i), dns.TypeTXT)
	}
	// n0 is used again: CLOCK gives it a second chance, n1 goes instead.
	query(t, c, "n0.example", dns.TypeTXT)
	query(t, c, "n10.example", dns.TypeTXT)
	before := up.n.Load()
	query(t, c, "n0.example", dns.TypeTXT)
	if up.n.Load() != before {
		t.Errorf("recently used entry evicted")
	}
	query(t, c, "n1.example", dns.TypeTXT)
	if up.n.Load() != before+1 {
		t.Errorf("n1 not evicted")
	}

	for i := range 100 {
		query(t, c, fmt.Sprintf("n%d.example", i), dns.TypeTXT)
		if st := c.Stats(); st.Entries > 10 {
			t.Fatalf("%d entries, bound 10", st.Entries)
		}
	}
	st := c.Stats()
	if st.Entries != 10 || st.Evictions < 90 {
		t.Errorf("stats %+v", st)
	}
	// Expired entries are reused first and are not counted as evictions.
	clock.Advance(2 * time.Hour)
	for i := range 10 {
		query(t, c, fmt.Sprintf("fresh%d.example", i), dns.TypeTXT)
	}
	if st2 := c.Stats(); st2.Evictions != st.Evictions || st2.Entries != 10 {
		t.Errorf("expired entries counted as evictions: %+v then %+v", st, st2)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
