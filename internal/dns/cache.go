package dns

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// CacheConfig configures a Cache. The zero value of every field means its
// default.
type CacheConfig struct {
	// MinTTL and MaxTTL clamp how long a positive answer is kept.
	// Defaults 0 and 24 h. An answer whose clamped TTL is 0 is not kept.
	MinTTL, MaxTTL time.Duration
	// MaxNegativeTTL caps how long an NXDOMAIN or NODATA answer is kept
	// (its TTL is the negative TTL of RFC 2308 §5). Default 1 h. A negative
	// answer with TTL 0 (no SOA in the authority section, RFC 2308 §5) is
	// not kept.
	MaxNegativeTTL time.Duration
	// FailureTTL is how long a temporary failure (timeout, SERVFAIL) is
	// kept, so that a failing name is not asked again for every message:
	// RFC 2308 §7.1 allows up to 5 minutes. Default 5 s; negative: never
	// kept. Permanent errors (an invalid name) are never kept: they are
	// found again without asking anyone.
	FailureTTL time.Duration
	// MaxEntries bounds the entries kept; beyond it the least recently
	// used ones are evicted (CLOCK approximation of LRU). Default 100,000.
	MaxEntries int
	// QueryTimeout bounds a query to the next Resolver. That query runs
	// under its own context, detached from the callers' (values kept,
	// cancellation and deadline not), so that a caller giving up does not
	// fail the others waiting for the same answer. Default 30 s.
	QueryTimeout time.Duration
	// Now returns the current time; default time.Now. Tests set it to
	// make entries expire.
	Now func() time.Time
}

// Cache is a Resolver that remembers the answers of another (RFC 1035
// §7.4, RFC 2308): positive answers for their TTL, NXDOMAIN and NODATA for
// their negative TTL, temporary failures briefly. Identical queries in
// flight at the same time are sent once and their answer shared. A Cache
// is safe for concurrent use.
//
// The *Response a Cache returns is shared by every caller that gets it
// from the cache: callers must treat it, and its slices, as read only. Its
// TTL is the TTL it was received with, not the time left in the cache.
type Cache struct {
	next Resolver
	cfg  CacheConfig

	mu       sync.RWMutex
	entries  map[cacheKey]*cacheEntry
	clock    []*cacheEntry // CLOCK ring, at most cfg.MaxEntries
	hand     int
	inflight map[cacheKey]*cacheCall

	hits, misses, coalesced, evictions atomic.Uint64
}

type cacheKey struct {
	name string
	t    Type
}

type cacheEntry struct {
	key     cacheKey
	resp    *Response
	err     error
	expires time.Time
	ref     atomic.Bool // CLOCK reference bit
}

type cacheCall struct {
	done chan struct{}
	resp *Response
	err  error
}

// CacheStats are counters of a Cache since it was made.
type CacheStats struct {
	Hits      uint64 // answered from the cache
	Misses    uint64 // sent to the next Resolver
	Coalesced uint64 // waited for an identical query already in flight
	Evictions uint64 // live entries removed to respect MaxEntries
	Entries   int    // entries now held (expired ones included until reused)
}

// NewCache returns a Cache in front of next.
func NewCache(next Resolver, cfg CacheConfig) *Cache {
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = 24 * time.Hour
	}
	cfg.MinTTL = min(max(cfg.MinTTL, 0), cfg.MaxTTL)
	if cfg.MaxNegativeTTL <= 0 {
		cfg.MaxNegativeTTL = time.Hour
	}
	if cfg.FailureTTL == 0 {
		cfg.FailureTTL = 5 * time.Second
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 100_000
	}
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Cache{
		next:     next,
		cfg:      cfg,
		entries:  make(map[cacheKey]*cacheEntry),
		inflight: make(map[cacheKey]*cacheCall),
	}
}

// Stats returns the cache's counters.
func (c *Cache) Stats() CacheStats {
	c.mu.RLock()
	n := len(c.entries)
	c.mu.RUnlock()
	return CacheStats{
		Hits:      c.hits.Load(),
		Misses:    c.misses.Load(),
		Coalesced: c.coalesced.Load(),
		Evictions: c.evictions.Load(),
		Entries:   n,
	}
}

// Query answers from the cache when it holds a live entry, else asks the
// next Resolver (once for all identical queries in flight). A caller whose
// ctx ends while waiting gets an error wrapping ErrTemporary and ctx.Err();
// the query goes on for the others and its answer is kept.
func (c *Cache) Query(ctx context.Context, name string, t Type) (*Response, error) {
	n, err := CanonicalName(name)
	if err != nil {
		return nil, &Error{Name: name, Type: t, Err: err}
	}
	key := cacheKey{n, t}
	now := c.cfg.Now()

	c.mu.RLock()
	if e := c.entries[key]; e != nil && now.Before(e.expires) {
		resp, err := e.resp, e.err
		if !e.ref.Load() {
			e.ref.Store(true)
		}
		c.mu.RUnlock()
		c.hits.Add(1)
		return resp, err
	}
	c.mu.RUnlock()

	c.mu.Lock()
	// Filled while the lock was released?
	if e := c.entries[key]; e != nil && now.Before(e.expires) {
		e.ref.Store(true)
		c.mu.Unlock()
		c.hits.Add(1)
		return e.resp, e.err
	}
	call, joined := c.inflight[key]
	if !joined {
		call = &cacheCall{done: make(chan struct{})}
		c.inflight[key] = call
	}
	c.mu.Unlock()

	if joined {
		c.coalesced.Add(1)
	} else {
		c.misses.Add(1)
		go c.fetch(context.WithoutCancel(ctx), key, call)
	}
	select {
	case <-call.done:
		return call.resp, call.err
	case <-ctx.Done():
		return nil, &Error{Name: n, Type: t, Err: ctxError(ctx)}
	}
}

// fetch asks the next Resolver, stores the outcome and wakes the waiters.
func (c *Cache) fetch(ctx context.Context, key cacheKey, call *cacheCall) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.QueryTimeout)
	defer cancel()
	resp, err := c.next.Query(ctx, key.name, key.t)
	if err == nil && resp == nil {
		err = &Error{Name: key.name, Type: key.t, Err: errors.Join(ErrTemporary, errors.New("resolver returned no response"))}
	}
	call.resp, call.err = resp, err

	c.mu.Lock()
	if ttl := c.ttl(resp, err); ttl > 0 {
		c.store(key, resp, err, c.cfg.Now().Add(ttl))
	}
	delete(c.inflight, key)
	c.mu.Unlock()
	close(call.done)
}

// ttl is how long an outcome may be kept (0: not at all).
func (c *Cache) ttl(resp *Response, err error) time.Duration {
	switch {
	case err != nil:
		if IsTemporary(err) && c.cfg.FailureTTL > 0 {
			return c.cfg.FailureTTL
		}
		return 0
	case resp.Void():
		// RFC 2308 §5: negative answers for their negative TTL.
		return min(resp.TTL, c.cfg.MaxNegativeTTL)
	default:
		return min(max(resp.TTL, c.cfg.MinTTL), c.cfg.MaxTTL)
	}
}

// store puts an entry in the cache, evicting one if the cache is full.
// c.mu must be held.
func (c *Cache) store(key cacheKey, resp *Response, err error, expires time.Time) {
	if e := c.entries[key]; e != nil {
		e.resp, e.err, e.expires = resp, err, expires
		e.ref.Store(false)
		return
	}
	e := &cacheEntry{key: key, resp: resp, err: err, expires: expires}
	c.entries[key] = e
	if len(c.clock) < c.cfg.MaxEntries {
		c.clock = append(c.clock, e)
		return
	}
	// CLOCK: sweep from the hand, giving referenced entries a second
	// chance; an expired entry is taken at once. At most two turns.
	now := c.cfg.Now()
	for {
		old := c.clock[c.hand]
		if !now.Before(old.expires) || !old.ref.Load() {
			if now.Before(old.expires) {
				c.evictions.Add(1)
			}
			delete(c.entries, old.key)
			c.clock[c.hand] = e
			c.hand = (c.hand + 1) % len(c.clock)
			return
		}
		old.ref.Store(false)
		c.hand = (c.hand + 1) % len(c.clock)
	}
}
