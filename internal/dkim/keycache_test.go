package dkim

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"portcullis/internal/dns"
)

// swapResolver answers with whatever record is current, like a DNS cache
// whose entry expired and was fetched again.
type swapResolver struct{ rec atomic.Pointer[dns.Response] }

func (s *swapResolver) Query(context.Context, string, dns.Type) (*dns.Response, error) {
	return s.rec.Load(), nil
}

func (s *swapResolver) set(txt string) {
	s.rec.Store(&dns.Response{Records: []dns.Record{txtRecord(txt)}})
}

// TestKeyCache checks that a record is parsed once while DNS returns it,
// that a changed record is parsed anew, that a full cache starts again
// and stays correct, and that a nil cache parses every time.
func TestKeyCache(t *testing.T) {
	ctx := context.Background()
	keys := rsaTestKeys()
	rec1, _ := KeyRecord(&keys[1024].PublicKey)
	rec2, _ := KeyRecord(&keys[2048].PublicKey)
	rec3, _ := KeyRecord(&keys[3072].PublicKey)
	r := &swapResolver{}
	r.set(rec1)
	c := NewKeyCache(2)

	k1, err := c.Lookup(ctx, r, "s", "example.com")
	if err != nil || k1.Bits != 1024 {
		t.Fatalf("first lookup: %v, %v", k1, err)
	}
	if again, _ := c.Lookup(ctx, r, "s", "example.com"); again != k1 {
		t.Error("the same record was parsed again")
	}
	r.set(rec2)
	k2, err := c.Lookup(ctx, r, "s", "example.com")
	if err != nil || k2.Bits != 2048 {
		t.Fatalf("after the record changed: %v, %v (the old key must not be served)", k2, err)
	}
	r.set(rec3) // a third record: the cache of 2 starts again
	if k3, err := c.Lookup(ctx, r, "s", "example.com"); err != nil || k3.Bits != 3072 {
		t.Fatalf("third record: %v, %v", k3, err)
	}
	r.set(rec1)
	if k, err := c.Lookup(ctx, r, "s", "example.com"); err != nil || k.Bits != 1024 {
		t.Fatalf("first record again: %v, %v", k, err)
	}
	if n := len(c.keys); n > 2 {
		t.Errorf("cache of 2 holds %d records", n)
	}

	var none *KeyCache
	a, err := none.Lookup(ctx, r, "s", "example.com")
	b, _ := none.Lookup(ctx, r, "s", "example.com")
	if err != nil || a == b || a.Bits != 1024 {
		t.Errorf("nil cache: %v %v, %v (want two parses)", a, b, err)
	}

	r.set("v=DKIM1; k=rsa; t=y; p=")
	k, err := c.Lookup(ctx, r, "s", "example.com")
	if !errors.Is(err, ErrKeyRevoked) || k == nil || !k.Testing {
		t.Errorf("revoked key: %v, %v (want the key with its flags and ErrKeyRevoked)", k, err)
	}
}

// TestKeyCacheConcurrent looks keys up from several goroutines while the
// record changes (run with -race).
func TestKeyCacheConcurrent(t *testing.T) {
	ctx := context.Background()
	keys := rsaTestKeys()
	recs := make([]string, 0, 2)
	for _, bits := range []int{1024, 2048} {
		rec, _ := KeyRecord(&keys[bits].PublicKey)
		recs = append(recs, rec)
	}
	r := &swapResolver{}
	r.set(recs[0])
	c := NewKeyCache(1)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if g == 0 && i%20 == 0 {
					r.set(recs[(i/20)%2])
				}
				if k, err := c.Lookup(ctx, r, "s", "example.com"); err != nil || (k.Bits != 1024 && k.Bits != 2048) {
					t.Errorf("lookup: %v, %v", k, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
