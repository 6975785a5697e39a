package dkim

import (
	"context"
	"sync"

	"portcullis/internal/dns"
)

// KeyCache keeps parsed key records across messages, so that a record is
// parsed, and its RSA modulus prepared, once rather than per signature.
// Entries are keyed by the record text DNS returned: the DNS cache and its
// TTLs stay the authority on which record is current, and a record DNS no
// longer returns is never served. A KeyCache is safe for concurrent use;
// the DKIM and the ARC verifiers of one process can share one.
type KeyCache struct {
	size int
	mu   sync.Mutex
	keys map[string]keyEntry
}

type keyEntry struct {
	key *Key
	err error
}

// NewKeyCache returns a cache of at most size parsed records
// (DefaultKeyCacheSize when size is 0 or less). When it is full it starts
// again empty: the working set of a gateway is a few hundred keys.
func NewKeyCache(size int) *KeyCache {
	if size <= 0 {
		size = DefaultKeyCacheSize
	}
	return &KeyCache{size: size}
}

// Lookup is LookupKey with the parsed records kept. A nil *KeyCache keeps
// nothing. A revoked key is returned with its error wrapping
// ErrKeyRevoked, so that its flags can be reported.
func (c *KeyCache) Lookup(ctx context.Context, r dns.Resolver, selector, domain string) (*Key, error) {
	txts, err := lookupKeyTXT(ctx, r, selector, domain)
	if err != nil {
		return nil, err
	}
	var first error
	for _, t := range txts {
		e := c.parse(t)
		if e.err == nil {
			return e.key, nil
		}
		if first == nil {
			first = e.err
			if e.key != nil && e.key.Revoked {
				return e.key, e.err
			}
		}
	}
	return nil, first
}

// parse returns the parse of the record text t: the cached one, or a new
// one that is then cached (a nil cache parses every time).
func (c *KeyCache) parse(t string) keyEntry {
	var e keyEntry
	if c == nil {
		e.key, e.err = ParseKeyRecord(t)
		return e
	}
	c.mu.Lock()
	e, ok := c.keys[t]
	c.mu.Unlock()
	if ok {
		return e
	}
	e.key, e.err = ParseKeyRecord(t)
	c.mu.Lock()
	if c.keys == nil || len(c.keys) >= c.size {
		c.keys = make(map[string]keyEntry)
	}
	c.keys[t] = e
	c.mu.Unlock()
	return e
}
